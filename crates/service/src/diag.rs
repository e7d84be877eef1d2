//! Diagnostics for people: `tracing` events, and one helper for warnings that
//! would otherwise repeat (a full disk, a failing server, a model error on every
//! window): said once, or at most once per period with the count of the ones
//! held back. Counts for machines go to Prometheus from the same call sites.

use std::fmt::Arguments;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// How often one kind of warning may be said.
#[derive(Debug)]
pub struct RateLimit {
    /// Milliseconds between two, `u64::MAX`: only once.
    period_ms: u64,
    /// When it was last said, ms since the process's first warning + 1 (0: never).
    last_ms: AtomicU64,
    held_back: AtomicU64,
}

impl RateLimit {
    /// Said at most once per `secs` seconds.
    pub const fn every(secs: u64) -> Self {
        RateLimit {
            period_ms: secs * 1000,
            last_ms: AtomicU64::new(0),
            held_back: AtomicU64::new(0),
        }
    }

    /// Said only the first time.
    pub const fn once() -> Self {
        RateLimit {
            period_ms: u64::MAX,
            last_ms: AtomicU64::new(0),
            held_back: AtomicU64::new(0),
        }
    }

    /// Whether to say it now; `Some(n)`: yes, with `n` held back since the last time.
    pub fn allow(&self) -> Option<u64> {
        static START: OnceLock<Instant> = OnceLock::new();
        let now = START.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1;
        let last = self.last_ms.load(Ordering::Relaxed);
        let due = last == 0 || (self.period_ms != u64::MAX && now - last >= self.period_ms);
        if due
            && self
                .last_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            Some(self.held_back.swap(0, Ordering::Relaxed))
        } else {
            self.held_back.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// Model errors in the live pipeline.
pub static MODEL_ERRORS: RateLimit = RateLimit::every(60);
/// Alertmanager posts that failed.
pub static ALERTMANAGER_ERRORS: RateLimit = RateLimit::every(60);

/// A warning through `tracing`, limited by `limit`.
pub fn warn_every(limit: &RateLimit, msg: Arguments<'_>) {
    match limit.allow() {
        Some(0) => tracing::warn!("{msg}"),
        Some(n) => tracing::warn!("{msg} ({n} more like it since the last report)"),
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_says_it_once_and_counts_the_rest() {
        let l = RateLimit::once();
        assert_eq!(l.allow(), Some(0));
        assert_eq!(l.allow(), None);
        assert_eq!(l.allow(), None);
        assert_eq!(l.held_back.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn every_period_says_it_again_with_the_count() {
        let l = RateLimit::every(0);
        assert_eq!(l.allow(), Some(0));
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert_eq!(l.allow(), Some(0));
    }
}
