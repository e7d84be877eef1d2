//! Events as alerts, posted to Alertmanager's API v2 (`POST /api/v2/alerts`).
//!
//! An event that starts is posted at once with `startsAt` and an `endsAt` a
//! few minutes ahead (as Prometheus does), and re-posted every `resend` while
//! active so Alertmanager does not resolve it; an event that ends is posted
//! with its real `endsAt`, which resolves it. Labels: `alertname`
//! (`NetforecastCongestionAhead`, ...), `kind`, `stream`, `host`, `severity`;
//! annotations: a summary and the forecast, band and signals when it started.
//! A failed post is kept (up to `MAX_PENDING` alerts) and retried on the next
//! tick; failures are counted and warned about at a limited rate.
//!
//! Owns the HTTP posting and the resend schedule; not when events happen.

use super::{Sink, SinkError};
use crate::events::{Change, Event, Kind};
use std::collections::BTreeMap;
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

/// The sink.
pub struct AlertmanagerSink {
    cfg: AlertmanagerConfig,
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
    active: BTreeMap<(&'static str, String), Event>,
    pending: Vec<serde_json::Value>,
    last_post: Instant,
    /// Counters.
    pub stats: AlertmanagerStats,
}

/// The `alertname` of a kind.
pub fn alertname(k: Kind) -> &'static str {
    match k {
        Kind::CongestionAhead => "NetforecastCongestionAhead",
        Kind::CapacityDrop => "NetforecastCapacityDrop",
        Kind::ForecastDegraded => "NetforecastForecastDegraded",
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
    /// A sink posting to `cfg.url`.
    pub fn new(cfg: AlertmanagerConfig) -> Result<Self, std::io::Error> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(std::io::Error::other)?;
        Ok(AlertmanagerSink {
            cfg,
            rt,
            client,
            active: BTreeMap::new(),
            pending: Vec::new(),
            last_post: Instant::now(),
            stats: AlertmanagerStats::default(),
        })
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

    fn queue(&mut self, a: serde_json::Value) {
        if self.pending.len() >= MAX_PENDING {
            self.pending.remove(0);
            self.stats.dropped += 1;
        }
        self.pending.push(a);
    }

    /// Post what is pending; keep it on failure.
    fn post(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let url = format!("{}/api/v2/alerts", self.cfg.url.trim_end_matches('/'));
        let body = serde_json::Value::Array(self.pending.clone());
        let client = &self.client;
        let result = self.rt.block_on(async {
            client
                .post(&url)
                .json(&body)
                .send()
                .await?
                .error_for_status()
        });
        self.last_post = Instant::now();
        match result {
            Ok(_) => {
                self.stats.sent += self.pending.len() as u64;
                self.pending.clear();
            }
            Err(e) => {
                self.stats.failed_posts += 1;
                crate::diag::warn_every(
                    &crate::diag::ALERTMANAGER_ERRORS,
                    format_args!(
                        "Alertmanager at {url} did not take {} alerts ({e}); retrying",
                        self.pending.len()
                    ),
                );
            }
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
                    self.active.remove(&(e.kind.name(), e.stream.clone()));
                    let a = self.alert(e, e.end_ns.unwrap_or_else(now_ns));
                    self.queue(a);
                }
            }
        }
        self.post();
        Ok(())
    }

    fn tick(&mut self) -> Result<(), SinkError> {
        if !self.pending.is_empty() {
            // A failed post: retry every second (what waits already holds the
            // active alerts, so nothing is queued twice).
            if self.last_post.elapsed() >= Duration::from_secs(1) {
                self.post();
            }
        } else if !self.active.is_empty() && self.last_post.elapsed() >= self.cfg.resend {
            let hold = self.cfg.hold.as_nanos() as i64;
            let again: Vec<serde_json::Value> = self
                .active
                .values()
                .map(|e| self.alert(e, now_ns() + hold))
                .collect();
            for a in again {
                self.queue(a);
            }
            self.post();
        }
        Ok(())
    }

    fn finish(&mut self, _deadline: Instant) -> Result<(), SinkError> {
        self.post();
        Ok(())
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
