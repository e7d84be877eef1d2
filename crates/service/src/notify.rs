//! systemd's service notification (`Type=notify`): READY when the daemon is
//! capturing, WATCHDOG while windows keep flowing, STOPPING at shutdown. A
//! datagram to `$NOTIFY_SOCKET`; nothing at all when it is not set.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Where notifications go, if anywhere.
pub struct Notifier {
    sock: Option<(UnixDatagram, String)>,
    /// Half of `$WATCHDOG_USEC`: how often to say WATCHDOG=1.
    pub watchdog_every: Option<Duration>,
}

impl Notifier {
    /// From the environment systemd sets (`NOTIFY_SOCKET`, `WATCHDOG_USEC`).
    pub fn from_env() -> Self {
        let sock = std::env::var("NOTIFY_SOCKET")
            .ok()
            .filter(|s| !s.is_empty())
            .and_then(|addr| UnixDatagram::unbound().ok().map(|s| (s, addr)));
        let watchdog_every = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|us| *us > 0)
            .map(|us| Duration::from_micros(us / 2));
        Notifier {
            sock,
            watchdog_every: watchdog_every.filter(|_| std::env::var_os("NOTIFY_SOCKET").is_some()),
        }
    }

    /// Send one notification (`READY=1`, `WATCHDOG=1`, `STATUS=...`); errors
    /// are ignored: the service manager may be gone.
    pub fn send(&self, msg: &str) {
        let Some((sock, addr)) = &self.sock else {
            return;
        };
        if let Some(name) = addr.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt;
            if let Ok(a) = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()) {
                let _ = sock.send_to_addr(msg.as_bytes(), &a);
            }
        } else {
            let _ = sock.send_to(msg.as_bytes(), addr);
        }
    }
}
