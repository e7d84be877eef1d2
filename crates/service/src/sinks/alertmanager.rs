//! Events as alerts, posted to Alertmanager's API v2 (`POST /api/v2/alerts`).
//!
//! An event that starts is posted at once with `startsAt` and an `endsAt` a
//! few minutes ahead (as Prometheus does), and re-posted every `resend` while
//! active so Alertmanager does not resolve it; an event that ends is posted
//! with its real `endsAt`, which resolves it. Labels: `alertname`
//! (`NetforecastCongestionAhead`, ...), `kind`, `stream`, `host`, `severity`
//! (as at the start: the labels name the alert, so they never change);
//! annotations: a summary and the forecast, band and signals when it started.
//! Posts happen on the sink's own thread, so the writer thread (and the CSV
//! and InfluxDB sinks beside it) never waits on Alertmanager: a failed post
//! is kept (up to `MAX_PENDING` alerts) and retried with a backoff from 1 s to
//! 30 s; failures are counted and warned about at a limited rate.
//!
//! Owns the HTTP posting and the resend schedule; not when events happen.

use super::{Sink, SinkError};
use crate::events::{Change, Event, Kind};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Alerts kept for a retry while Alertmanager does not answer.
const MAX_PENDING: usize = 1_000;

/// Where and how often.
#[derive(Clone, Debug)]
pub struct AlertmanagerConfig {
    /// Base URL, e.g. `http://127.0.0.1:9093`.
    pub url: String,
    /// The `host` label.
    pub host: String,
    /// Re-post active alerts this often.
    pub resend: Duration,
    /// An active alert's `endsAt` lies this far ahead of each post.
    pub hold: Duration,
}

/// Counters of the sink.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct AlertmanagerStats {
    /// Alerts Alertmanager accepted.
    pub sent: u64,
    /// Posts that failed (each retried).
    pub failed_posts: u64,
    /// Alerts given up because too many were waiting.
    pub dropped: u64,
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    failed_posts: AtomicU64,
    dropped: AtomicU64,
}

/// The sink: decides what to post; its thread posts.
pub struct AlertmanagerSink {
    cfg: AlertmanagerConfig,
    active: BTreeMap<(&'static str, String), Event>,
    tx: Option<crossbeam_channel::Sender<serde_json::Value>>,
    poster: Option<std::thread::JoinHandle<()>>,
    counters: Arc<Counters>,
    last_resend: Instant,
}

/// The `alertname` of a kind.
pub fn alertname(k: Kind) -> &'static str {
    match k {
        Kind::CongestionAhead => "NetforecastCongestionAhead",
        Kind::CapacityDrop => "NetforecastCapacityDrop",
        Kind::ForecastDegraded => "NetforecastForecastDegraded",
        Kind::CaptureDegraded => "NetforecastCaptureDegraded",
        Kind::LinkStall => "NetforecastLinkStall",
        Kind::ZeroWindow => "NetforecastZeroWindow",
    }
}

/// RFC 3339 (UTC, milliseconds) of a Unix time in ns.
pub fn rfc3339(ns: i64) -> String {
    let ms = ns.div_euclid(1_000_000);
    let secs = ms.div_euclid(1000);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = engine::csv::civil_from_days(secs.div_euclid(86_400));
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60,
        ms.rem_euclid(1000)
    )
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

impl AlertmanagerSink {
    /// A sink posting to `cfg.url` from its own thread.
    pub fn new(cfg: AlertmanagerConfig) -> Result<Self, std::io::Error> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(std::io::Error::other)?;
        let (tx, rx) = crossbeam_channel::bounded(MAX_PENDING);
        let counters = Arc::new(Counters::default());
        let url = format!("{}/api/v2/alerts", cfg.url.trim_end_matches('/'));
        let c = Arc::clone(&counters);
        let poster = std::thread::Builder::new()
            .name("alertmanager".into())
            .spawn(move || post_loop(rt, client, url, rx, c))?;
        Ok(AlertmanagerSink {
            cfg,
            active: BTreeMap::new(),
            tx: Some(tx),
            poster: Some(poster),
            counters,
            last_resend: Instant::now(),
        })
    }

    /// The counters so far.
    pub fn stats(&self) -> AlertmanagerStats {
        let c = &self.counters;
        AlertmanagerStats {
            sent: c.sent.load(Ordering::Relaxed),
            failed_posts: c.failed_posts.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
        }
    }

    /// The alert of `e`, ending at `ends_ns`.
    fn alert(&self, e: &Event, ends_ns: i64) -> serde_json::Value {
        let s = &e.signals;
        let num = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
        serde_json::json!({
            "labels": {
                "alertname": alertname(e.kind),
                "kind": e.kind.name(),
                "stream": e.stream,
                "host": self.cfg.host,
                "severity": match e.severity {
                    crate::events::Severity::Warning => "warning",
                    crate::events::Severity::Critical => "critical",
                },
            },
            "annotations": {
                "summary": format!("{} on {} ({})", e.kind.name().replace('_', " "), e.stream, self.cfg.host),
                "description": format!(
                    "at the start: throughput {:.2} Mbit/s, forecast {} Mbit/s, band {}, P(below) {}, ACK RTT {:.1} ms (minimum {:.1}), {} bytes in flight, {} silent windows of the last few",
                    s.throughput_mbps,
                    num(e.forecast_mbps),
                    e.band.map_or("-".to_string(), |(lo, hi)| format!("{lo:.2}-{hi:.2} Mbit/s")),
                    num(e.congestion_prob),
                    s.rtt_ms,
                    s.rtt_min_ms,
                    s.bif_bytes,
                    s.silent_windows
                ),
            },
            "startsAt": rfc3339(e.start_ns),
            "endsAt": rfc3339(ends_ns),
        })
    }

    /// Hand an alert to the posting thread, never waiting for it.
    fn queue(&mut self, a: serde_json::Value) {
        let full = self.tx.as_ref().is_some_and(|tx| tx.try_send(a).is_err());
        if full {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The alerts being held active.
    pub fn active(&self) -> usize {
        self.active.len()
    }
}

impl Sink for AlertmanagerSink {
    fn window(&mut self, _s: &crate::forecast::Scored) -> Result<(), SinkError> {
        Ok(())
    }

    fn events(&mut self, changes: &[Change]) -> Result<(), SinkError> {
        let hold = self.cfg.hold.as_nanos() as i64;
        for c in changes {
            match c {
                Change::Started(e) => {
                    let a = self.alert(e, now_ns().max(e.start_ns) + hold);
                    self.queue(a);
                    self.active
                        .insert((e.kind.name(), e.stream.clone()), e.clone());
                }
                Change::Ended(e) => {
                    // Alertmanager knows an alert by its labels: the end is
                    // posted with the severity the start was posted with (an
                    // event that grew critical would otherwise leave the
                    // warning firing until its endsAt and add a resolved twin).
                    let started = self.active.remove(&(e.kind.name(), e.stream.clone()));
                    let mut end = e.clone();
                    if let Some(st) = started {
                        end.severity = st.severity;
                    }
                    let a = self.alert(&end, e.end_ns.unwrap_or_else(now_ns));
                    self.queue(a);
                }
            }
        }
        Ok(())
    }

    fn tick(&mut self) -> Result<(), SinkError> {
        // Active alerts again before their `endsAt` passes.
        if !self.active.is_empty() && self.last_resend.elapsed() >= self.cfg.resend {
            self.last_resend = Instant::now();
            let hold = self.cfg.hold.as_nanos() as i64;
            let again: Vec<serde_json::Value> = self
                .active
                .values()
                .map(|e| self.alert(e, now_ns() + hold))
                .collect();
            for a in again {
                self.queue(a);
            }
        }
        Ok(())
    }

    fn finish(&mut self, _deadline: Instant) -> Result<(), SinkError> {
        // The thread makes one last attempt for what waits, then ends.
        self.tx = None;
        if let Some(h) = self.poster.take() {
            let _ = h.join();
        }
        Ok(())
    }
}

/// The posting thread: collects alerts, posts them in batches, backs off
/// after a failure (1 s doubling to 30 s), and on disconnect tries once more.
fn post_loop(
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
    url: String,
    rx: crossbeam_channel::Receiver<serde_json::Value>,
    counters: Arc<Counters>,
) {
    let mut pending: Vec<serde_json::Value> = Vec::new();
    let mut backoff = Duration::ZERO;
    let mut next_try = Instant::now();
    let mut open = true;
    while open || !pending.is_empty() {
        let wait = if pending.is_empty() {
            Duration::from_secs(3600)
        } else {
            next_try.saturating_duration_since(Instant::now())
        };
        if open {
            match rx.recv_timeout(wait) {
                Ok(a) => {
                    pending.push(a);
                    pending.extend(rx.try_iter());
                }
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => open = false,
            }
        }
        if pending.len() > MAX_PENDING {
            let over = pending.len() - MAX_PENDING;
            pending.drain(..over);
            counters.dropped.fetch_add(over as u64, Ordering::Relaxed);
        }
        if pending.is_empty() || (open && Instant::now() < next_try) {
            continue;
        }
        let body = serde_json::Value::Array(pending.clone());
        let result = rt.block_on(async {
            client
                .post(&url)
                .json(&body)
                .send()
                .await?
                .error_for_status()
        });
        match result {
            Ok(_) => {
                counters
                    .sent
                    .fetch_add(pending.len() as u64, Ordering::Relaxed);
                pending.clear();
                backoff = Duration::ZERO;
            }
            Err(e) => {
                counters.failed_posts.fetch_add(1, Ordering::Relaxed);
                backoff = (backoff * 2).clamp(Duration::from_secs(1), Duration::from_secs(30));
                next_try = Instant::now() + backoff;
                crate::diag::warn_every(
                    &crate::diag::ALERTMANAGER_ERRORS,
                    format_args!(
                        "Alertmanager at {url} did not take {} alerts ({e}); retrying in {} s",
                        pending.len(),
                        backoff.as_secs()
                    ),
                );
                if !open {
                    // Shutting down: one last attempt was made.
                    counters
                        .dropped
                        .fetch_add(pending.len() as u64, Ordering::Relaxed);
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_is_utc_with_milliseconds() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(1_700_000_000_123_456_789),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(rfc3339(951_782_400_000_000_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(-1_000_000), "1969-12-31T23:59:59.999Z");
    }
}
