//! The shutdown signal every stage is given (as mini-redis passes one into
//! `run`): set by SIGINT/SIGTERM in the binary, by a test, or by a stage that
//! cannot go on. Stages poll it; shutdown then cascades by dropping senders.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A shared "stop now" flag.
#[derive(Clone, Debug, Default)]
pub struct Shutdown(Arc<AtomicBool>);

impl Shutdown {
    /// A flag nothing has set yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A flag set by SIGINT or SIGTERM; a second signal ends the process at once.
    pub fn on_signals() -> Self {
        let s = Self::new();
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            // Registration only fails for forbidden signals, which these are not.
            let _ = signal_hook::flag::register_conditional_shutdown(sig, 1, Arc::clone(&s.0));
            let _ = signal_hook::flag::register(sig, Arc::clone(&s.0));
        }
        s
    }

    /// Ask every stage to stop.
    pub fn trigger(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether a stop was asked for.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}
