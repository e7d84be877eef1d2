//! The shutdown signal every stage is given (as mini-redis passes one into
//! `run`): set by a signal in the binary, by a test, or by a stage that cannot
//! go on. Stages poll it; shutdown then cascades by dropping senders.
//!
//! The signal policy ([`Shutdown::on_signals`]):
//! - SIGINT or SIGTERM: stop capturing, drain, flush, print the summary. A
//!   repeated one does not cut the flush short (GNU `timeout` sends SIGTERM to
//!   the child and then to its process group).
//! - A third SIGINT/SIGTERM, or the grace period after the first running out
//!   (a capture blocked on a FIFO nobody writes to): exit at once, with one line.
//! - SIGHUP (an SSH drop, a closed terminal, logrotate): never fatal; outputs
//!   that can be reopened (the daemon's CSV) are reopened.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// A shared "stop now" flag, and the "reopen your files" requests of SIGHUP.
#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    stop: Arc<AtomicBool>,
    /// SIGHUPs received; a sink reopens when this moves.
    hangups: Arc<AtomicU64>,
}

impl Shutdown {
    /// A flag nothing has set yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A flag set by SIGINT or SIGTERM, with the policy in the module header.
    /// `grace` is how long a run may take to stop after the first signal.
    pub fn on_signals(grace: Duration) -> Self {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let s = Self::new();
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
            tracing::warn!(
                "cannot install signal handlers; SIGINT and SIGTERM end the process at once"
            );
            return s;
        };
        let me = s.clone();
        let spawned = std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                let mut stops = 0u32;
                for sig in signals.forever() {
                    if sig == SIGHUP {
                        me.hangups.fetch_add(1, Ordering::Relaxed);
                        tracing::info!("SIGHUP: reopening output files");
                        continue;
                    }
                    stops += 1;
                    me.trigger();
                    match stops {
                        1 => {
                            let code = 128 + sig;
                            let _ = std::thread::Builder::new().name("grace".into()).spawn(move || {
                                std::thread::sleep(grace);
                                eprintln!(
                                    "netforecast: still not stopped {} s after the signal; exiting without finishing",
                                    grace.as_secs()
                                );
                                std::process::exit(code);
                            });
                        }
                        2 => tracing::info!("stopping already; a third signal exits at once"),
                        _ => {
                            eprintln!("netforecast: third signal; exiting without finishing");
                            std::process::exit(128 + sig);
                        }
                    }
                }
            });
        if spawned.is_err() {
            tracing::warn!(
                "cannot start the signal thread; SIGINT and SIGTERM end the process at once"
            );
        }
        s
    }

    /// Ask every stage to stop.
    pub fn trigger(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Whether a stop was asked for.
    pub fn is_set(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// SIGHUPs so far: a sink that last saw a smaller number reopens its files.
    pub fn hangups(&self) -> u64 {
        self.hangups.load(Ordering::Relaxed)
    }

    /// Ask outputs to reopen their files (what SIGHUP does).
    pub fn hang_up(&self) {
        self.hangups.fetch_add(1, Ordering::Relaxed);
    }
}
