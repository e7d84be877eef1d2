//! Live capture through libpcap (`pcap` crate): immediate mode, an explicit
//! kernel buffer, a read timeout so the loop never blocks, a BPF filter, and the
//! kernel's drop counters.
//!
//! Owns the pcap handle and the wall clock. Windows close on the clock here
//! through [`Engine::advance_to`], so silent windows appear on time even when no
//! packet arrives. Does not own parsing or windows.

use crate::pipeline::Engine;
use crate::window::WindowRow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Live capture settings.
#[derive(Clone, Debug)]
pub struct LiveConfig {
    pub iface: String,
    /// BPF filter compiled into the kernel (default `tcp`).
    pub filter: String,
    /// Bytes kept per packet: headers with options fit in 128; 256 leaves room
    /// for tunnels and IPv6 extension headers.
    pub snaplen: i32,
    /// Kernel ring buffer, bytes. 64 MiB rides out ~50 ms stalls at 10 Gbit/s.
    pub buffer_bytes: i32,
    /// Read timeout, ms: bounds how late a window can close when traffic stops.
    pub timeout_ms: i32,
    /// Delay after a window's end before it is closed, for packets in delivery.
    pub grace_ns: i64,
    pub promisc: bool,
}

impl LiveConfig {
    pub fn new(iface: &str) -> Self {
        LiveConfig {
            iface: iface.to_owned(),
            filter: "tcp".into(),
            snaplen: 256,
            buffer_bytes: 64 << 20,
            timeout_ms: 5,
            grace_ns: 5_000_000,
            promisc: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error(
        "no permission to capture on {iface}: run as root or grant the binaries cap_net_raw (sudo setcap cap_net_raw,cap_net_admin=eip FILE, for both netforecast and netforecast-ml)"
    )]
    Permission { iface: String },
    #[error("no interface named {iface}: list interfaces with `ip link`")]
    NoSuchInterface { iface: String },
    #[error("cannot open {iface} for capture: {detail}")]
    Open { iface: String, detail: String },
    #[error("invalid capture filter {filter:?}: {detail}")]
    Filter { filter: String, detail: String },
    #[error("capture on {iface} failed: {detail} (did the interface go away?)")]
    Read { iface: String, detail: String },
}

/// Kernel counters from `pcap_stats` at the end of a live run.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct KernelStats {
    pub received: u64,
    pub dropped: u64,
    pub if_dropped: u64,
}

fn classify_open_error(iface: &str, e: pcap::Error) -> LiveError {
    let detail = e.to_string();
    let lower = detail.to_lowercase();
    if lower.contains("permission") || lower.contains("not permitted") {
        LiveError::Permission {
            iface: iface.into(),
        }
    } else if lower.contains("no such device") || lower.contains("doesn't exist") {
        LiveError::NoSuchInterface {
            iface: iface.into(),
        }
    } else {
        LiveError::Open {
            iface: iface.into(),
            detail,
        }
    }
}

/// Wall clock in nanoseconds since the Unix epoch.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// An open live capture.
pub struct LiveCapture {
    cap: pcap::Capture<pcap::Active>,
    cfg: LiveConfig,
    linktype: u32,
}

impl LiveCapture {
    pub fn open(cfg: &LiveConfig) -> Result<Self, LiveError> {
        let inactive = pcap::Capture::from_device(cfg.iface.as_str())
            .map_err(|e| classify_open_error(&cfg.iface, e))?;
        let mut cap = inactive
            .immediate_mode(true)
            .buffer_size(cfg.buffer_bytes)
            .snaplen(cfg.snaplen)
            .timeout(cfg.timeout_ms)
            .promisc(cfg.promisc)
            .precision(pcap::Precision::Nano)
            .open()
            .map_err(|e| classify_open_error(&cfg.iface, e))?;
        if !cfg.filter.is_empty() {
            cap.filter(&cfg.filter, true)
                .map_err(|e| LiveError::Filter {
                    filter: cfg.filter.clone(),
                    detail: e.to_string(),
                })?;
        }
        // libpcap's own read timeout does not fire on an idle TPACKET_V3 ring
        // (poll blocks forever), so read non-blocking and poll the fd ourselves.
        let cap = cap
            .setnonblock()
            .map_err(|e| classify_open_error(&cfg.iface, e))?;
        let linktype = cap.get_datalink().0 as u32;
        Ok(LiveCapture {
            cap,
            cfg: cfg.clone(),
            linktype,
        })
    }

    pub fn linktype(&self) -> u32 {
        self.linktype
    }

    /// Capture until `stop` is set: every frame goes to `engine`, windows close on
    /// the clock and go to `emit`. The window open at the stop is partial and is
    /// not emitted.
    pub fn run(
        &mut self,
        engine: &mut Engine,
        stop: &Arc<AtomicBool>,
        emit: &mut impl FnMut(WindowRow),
    ) -> Result<KernelStats, LiveError> {
        self.run_with_tick(engine, stop, emit, &mut |_, _| {})
    }

    /// [`LiveCapture::run`], calling `tick` about once a second with the engine
    /// and the kernel's counters (the daemon publishes them as metrics).
    pub fn run_with_tick(
        &mut self,
        engine: &mut Engine,
        stop: &Arc<AtomicBool>,
        emit: &mut impl FnMut(WindowRow),
        tick: &mut impl FnMut(&Engine, KernelStats),
    ) -> Result<KernelStats, LiveError> {
        engine.start_at(now_ns());
        let mut last_tick = now_ns();
        // Reading the clock costs ~20 ns; once per this many packets under load.
        const CLOCK_EVERY: u32 = 64;
        let mut since_clock = 0u32;
        while !stop.load(Ordering::Relaxed) {
            match self.cap.next_packet() {
                Ok(p) => {
                    let h = p.header;
                    // With nanosecond precision tv_usec carries nanoseconds.
                    let ts = h.ts.tv_sec as i64 * 1_000_000_000 + h.ts.tv_usec as i64;
                    engine.frame(self.linktype, p.data, h.len, Some(ts), emit);
                    since_clock += 1;
                    if since_clock < CLOCK_EVERY {
                        continue;
                    }
                }
                Err(pcap::Error::TimeoutExpired) => self.wait_readable(),
                Err(e) => {
                    return Err(LiveError::Read {
                        iface: self.cfg.iface.clone(),
                        detail: e.to_string(),
                    });
                }
            }
            since_clock = 0;
            let now = now_ns();
            engine.advance_to(now - self.cfg.grace_ns, emit);
            if now - last_tick >= 1_000_000_000 {
                last_tick = now;
                let k = self.stats()?;
                tick(engine, k);
            }
        }
        engine.advance_to(now_ns() - self.cfg.grace_ns, emit);
        self.stats()
    }

    /// Sleep until the capture fd is readable or the read timeout passes.
    fn wait_readable(&self) {
        use std::os::unix::io::AsRawFd;
        let mut pfd = libc::pollfd {
            fd: self.cap.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        unsafe {
            libc::poll(&mut pfd, 1, self.cfg.timeout_ms);
        }
    }

    pub fn stats(&mut self) -> Result<KernelStats, LiveError> {
        let s = self.cap.stats().map_err(|e| LiveError::Read {
            iface: self.cfg.iface.clone(),
            detail: e.to_string(),
        })?;
        Ok(KernelStats {
            received: s.received as u64,
            dropped: s.dropped as u64,
            if_dropped: s.if_dropped as u64,
        })
    }
}
