//! The InfluxDB sink: points for each forecast, a bounded buffer that rides out
//! outages, batches by size or age, gzip, retries with exponential backoff on
//! network errors, 429 and 5xx (honouring Retry-After), no retry on other 4xx.
//!
//! Points are encoded with the `influxdb2` crate's `DataPoint` (line protocol,
//! millisecond timestamps). Writes go through `reqwest`, the HTTP client that
//! crate wraps, because its write call drops the response headers and
//! Retry-After could not be honoured through it. Speaks both `/api/v2/write`
//! (InfluxDB 2, VictoriaMetrics) and `/write?db=` (InfluxDB 1.x).

use super::journal::{Journal, Position};
use super::prometheus::Metrics;
use super::{Sink, SinkError};
use crate::config::{InfluxApi, InfluxConfig};
use crate::diag::{RateLimit, warn_every};
use crate::forecast::Scored;
use engine::window::FEATURE_NAMES;
use influxdb2::models::{DataPoint, WriteDataPoint};
use std::collections::VecDeque;
use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

static JOURNAL_FAILED: crate::diag::RateLimit = crate::diag::RateLimit::every(60);

/// Longest wait between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// A server that does not accept the connection within this is unreachable
/// (nothing was sent: resending is safe).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A connected server gets this long to answer. A batch whose answer never came
/// may have been stored, and is sent again (at-least-once: the points are
/// byte-identical, which InfluxDB stores once; VictoriaMetrics needs
/// `-dedup.minScrapeInterval=1ms`). A slow server that stores and then answers
/// within this gets no second copy; the old 10 s limit resent batches that a
/// busy server had already stored (issue 12, item 6).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// One window's point: measurement `traffic_prediction`, tags host, iface and
/// model; the fields below; timestamp = the window's start, in ms. An event's
/// point ([`event_point`]) goes to [`EVENTS_MEASUREMENT`] instead.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Point {
    /// Timestamp, ms since the epoch.
    pub ts_ms: i64,
    /// Field names and values (non-finite values are left out when encoded).
    pub fields: Vec<(&'static str, f64)>,
    /// Set for an event's start or end.
    pub event: Option<EventTags>,
    /// The `iface` tag when not the writer's own (a daemon capturing on
    /// several interfaces).
    pub iface: Option<String>,
    /// The tags `stream_kind` (`iface`, `host`) and `stream` (the interface,
    /// the host's address): which of the daemon's streams it is.
    pub stream: Option<(&'static str, String)>,
    /// The `host` tag when not the writer's own (a simulated fleet).
    pub host: Option<String>,
}

/// The measurement of event starts and ends (Grafana shows them as
/// annotations: `deploy/grafana/dashboards/phase-shift.json`).
pub const EVENTS_MEASUREMENT: &str = "netforecast_events";

/// What an event's point carries besides numbers: tags `kind`, `severity`,
/// `change` (`started` or `ended`), and a `text` field for the annotation.
#[derive(Clone, Debug, PartialEq)]
pub struct EventTags {
    /// `capacity_drop`, ...
    pub kind: &'static str,
    /// `warning` or `critical`.
    pub severity: &'static str,
    /// `started` or `ended`.
    pub change: &'static str,
    /// One line for a person.
    pub text: String,
}

/// Counters of the writer, for the summary and Prometheus.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[allow(missing_docs)]
pub struct WriterStats {
    /// Points handed to the writer.
    pub points_made: u64,
    pub points_written: u64,
    pub batches_written: u64,
    pub retries: u64,
    /// Oldest points dropped because the buffer was full during an outage.
    pub dropped_overflow: u64,
    /// Points the server refused for good (400, 401, 403, 404, 413).
    pub dropped_rejected: u64,
    /// Points still unsent when the shutdown deadline passed.
    pub dropped_shutdown: u64,
    /// Points that could not be encoded.
    pub dropped_encode: u64,
    /// Points still unsent at the end, kept in the disk buffer for the next run.
    pub held_on_disk: u64,
    pub queued: u64,
    /// Batches the server did not answer in time after receiving them (sent
    /// again: possibly stored twice).
    pub unanswered: u64,
}

/// The counts of several writers together (a fleet's).
impl std::ops::AddAssign for WriterStats {
    fn add_assign(&mut self, o: WriterStats) {
        self.points_made += o.points_made;
        self.points_written += o.points_written;
        self.batches_written += o.batches_written;
        self.retries += o.retries;
        self.dropped_overflow += o.dropped_overflow;
        self.dropped_rejected += o.dropped_rejected;
        self.dropped_shutdown += o.dropped_shutdown;
        self.dropped_encode += o.dropped_encode;
        self.held_on_disk += o.held_on_disk;
        self.queued += o.queued;
        self.unanswered += o.unanswered;
    }
}

impl WriterStats {
    /// Every point dropped, for any reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_overflow + self.dropped_rejected + self.dropped_shutdown + self.dropped_encode
    }
}

/// Errors of the InfluxDB writer.
#[allow(missing_docs)]
#[derive(Debug, thiserror::Error)]
pub enum InfluxError {
    #[error(
        "InfluxDB at {url} is not reachable: {detail}; check INFLUX_URL and that the server runs"
    )]
    Unreachable { url: String, detail: String },
    #[error("InfluxDB at {url} answered the health check with HTTP {status}: {body}")]
    Unhealthy {
        url: String,
        status: u16,
        body: String,
    },
    #[error("cannot encode a point: {0}")]
    Encode(String),
}

/// How a [`Point`] becomes a line of line protocol: the measurement and the
/// writer's own tags (host, iface, model), then the point's stream tags. Both
/// the InfluxDB and the Kafka sink write points this way.
#[derive(Clone, Debug)]
pub struct LineEncoder {
    measurement: String,
    tags: Vec<(&'static str, String)>,
    /// The window fields written (None: every one); events keep theirs.
    keep: Option<Vec<&'static str>>,
}

/// Every field a window's point can carry ([`point_for`]), in its order.
pub fn point_field_names() -> impl Iterator<Item = &'static str> {
    [
        "actual_mbps",
        "predicted_mbps",
        "congestion_prob",
        "predicted_lower_mbps",
        "predicted_upper_mbps",
        "issued_predicted_mbps",
        "issued_congestion_prob",
        "issued_lower_mbps",
        "issued_upper_mbps",
        "model_predicted_mbps",
        "model_congestion_prob",
        "mase_recent",
        "mase_total",
        "brier_recent",
        "input_shift",
    ]
    .into_iter()
    .chain(FEATURE_NAMES)
    .chain(["kernel_drops"])
}

impl LineEncoder {
    /// Points of `measurement` tagged host, iface (unless the point names its
    /// own) and model.
    pub fn new(measurement: &str, host: &str, iface: &str, model: &str) -> Self {
        LineEncoder {
            measurement: measurement.to_owned(),
            tags: vec![
                ("host", host.into()),
                ("iface", iface.into()),
                ("model", model.into()),
            ],
            keep: None,
        }
    }

    /// Write only these of a window's fields (empty: every one). Names that
    /// are not fields of a point (the configuration refuses them) are ignored.
    pub fn with_fields(mut self, names: &[String]) -> Self {
        self.keep = (!names.is_empty()).then(|| {
            point_field_names()
                .filter(|f| names.iter().any(|n| n == f))
                .collect()
        });
        self
    }

    /// Whether field `name` of `p` is written.
    pub fn writes(&self, p: &Point, name: &str) -> bool {
        match &self.keep {
            Some(keep) if p.event.is_none() => keep.contains(&name),
            _ => true,
        }
    }

    /// The measurement of `p` (events have their own).
    pub fn measurement<'a>(&'a self, p: &Point) -> &'a str {
        match p.event {
            Some(_) => EVENTS_MEASUREMENT,
            None => self.measurement.as_str(),
        }
    }

    /// Every tag of `p`, in the order they are written.
    pub fn tags<'a>(&'a self, p: &'a Point) -> Vec<(&'static str, &'a str)> {
        let mut t: Vec<(&'static str, &'a str)> = self
            .tags
            .iter()
            .map(|(k, v)| match (*k, &p.iface, &p.host) {
                ("iface", Some(iface), _) => ("iface", iface.as_str()),
                ("host", _, Some(host)) => ("host", host.as_str()),
                _ => (*k, v.as_str()),
            })
            .collect();
        if let Some((kind, key)) = &p.stream {
            t.push(("stream", key.as_str()));
            t.push(("stream_kind", *kind));
        }
        if let Some(e) = &p.event {
            t.extend([
                ("kind", e.kind),
                ("severity", e.severity),
                ("change", e.change),
            ]);
        }
        t
    }

    /// One point as line protocol (newline included).
    pub fn encode(&self, p: &Point) -> Result<Vec<u8>, InfluxError> {
        let mut b = DataPoint::builder(self.measurement(p));
        for (k, v) in self.tags(p) {
            b = b.tag(k, v);
        }
        if let Some(e) = &p.event {
            b = b.field("text", e.text.as_str());
        }
        for (k, v) in &p.fields {
            if v.is_finite() && self.writes(p, k) {
                b = b.field(*k, *v);
            }
        }
        let dp = b
            .timestamp(p.ts_ms)
            .build()
            .map_err(|e| InfluxError::Encode(e.to_string()))?;
        let mut out = Vec::with_capacity(256);
        dp.write_data_point_to(&mut out)
            .map_err(|e| InfluxError::Encode(e.to_string()))?;
        Ok(out)
    }
}

/// Batches points and writes them over HTTP.
pub struct InfluxWriter {
    cfg: InfluxConfig,
    client: reqwest::Client,
    write_url: String,
    encoder: LineEncoder,
    /// Encoded lines waiting, oldest first, with the time each was queued.
    buffer: VecDeque<(Instant, Vec<u8>, Option<Position>)>,
    /// The queue on disk, when a buffer directory is configured.
    journal: Option<Journal>,
    /// Everything up to here is written or dropped; the journal's cursor moves
    /// here at the next [`InfluxWriter::sync`].
    done: Option<Position>,
    next_attempt: Instant,
    backoff: Duration,
    /// HTTP statuses already reported once (refusals are logged once each).
    logged: Vec<u16>,
    /// Failed writes are said at most every 30 s (the longest backoff).
    said_retry: RateLimit,
    /// Counters for the summary and Prometheus.
    pub stats: WriterStats,
    /// Why the last write failed, while writes keep failing (for health).
    pub failing: Option<String>,
}

impl InfluxWriter {
    /// A writer for `cfg` whose points carry the tags host, iface and model.
    pub fn new(
        cfg: &InfluxConfig,
        host: &str,
        iface: &str,
        model: &str,
    ) -> Result<Self, InfluxError> {
        let base = cfg.url.trim_end_matches('/');
        let write_url = match cfg.api() {
            InfluxApi::V2 => format!(
                "{base}/api/v2/write?org={}&bucket={}&precision=ms",
                urlencode(&cfg.org),
                urlencode(&cfg.bucket)
            ),
            InfluxApi::V1 => format!("{base}/write?db={}&precision=ms", urlencode(&cfg.database)),
        };
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .tcp_keepalive(Duration::from_secs(15))
            .build()
            .map_err(|e| InfluxError::Unreachable {
                url: cfg.url.clone(),
                detail: e.to_string(),
            })?;
        Ok(InfluxWriter {
            cfg: cfg.clone(),
            client,
            write_url,
            encoder: LineEncoder::new(&cfg.measurement, host, iface, model)
                .with_fields(&cfg.fields),
            buffer: VecDeque::new(),
            journal: None,
            done: None,
            next_attempt: Instant::now(),
            backoff: FIRST_BACKOFF,
            logged: Vec::new(),
            said_retry: RateLimit::every(MAX_BACKOFF.as_secs()),
            failing: None,
            stats: WriterStats::default(),
        })
    }

    fn auth(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if self.cfg.token.is_empty() {
            req
        } else {
            req.header(
                "Authorization",
                format!("Token {}", self.cfg.token.expose()),
            )
        }
    }

    /// A server's words with the token replaced by `***` (a proxy may echo the
    /// Authorization header back).
    fn redact(&self, text: &str) -> String {
        let t = self.cfg.token.expose();
        if t.is_empty() {
            text.to_owned()
        } else {
            text.replace(t, "***")
        }
    }

    /// Health check at start: `/health` (v2) or `/ping` (v1) must answer 2xx.
    pub async fn health(&self) -> Result<(), InfluxError> {
        let base = self.cfg.url.trim_end_matches('/');
        let url = match self.cfg.api() {
            InfluxApi::V2 => format!("{base}/health"),
            InfluxApi::V1 => format!("{base}/ping"),
        };
        let resp = self.auth(self.client.get(&url)).send().await.map_err(|e| {
            InfluxError::Unreachable {
                url: self.cfg.url.clone(),
                detail: root_cause(&e),
            }
        })?;
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            Ok(())
        } else {
            let body = resp.text().await.unwrap_or_default();
            Err(InfluxError::Unhealthy {
                url: self.cfg.url.clone(),
                status,
                body: self.redact(&body).chars().take(200).collect(),
            })
        }
    }

    /// Encode one point as line protocol (newline included).
    pub fn encode(&self, p: &Point) -> Result<Vec<u8>, InfluxError> {
        self.encoder.encode(p)
    }

    /// Queue a point; beyond the buffer's bound the oldest is dropped and counted.
    pub fn push(&mut self, p: &Point) -> Result<(), InfluxError> {
        self.stats.points_made += 1;
        let line = self
            .encode(p)
            .inspect_err(|_| self.stats.dropped_encode += 1)?;
        let pos = match self.journal.as_mut().map(|j| j.append(&line)) {
            Some(Ok(p)) => Some(p),
            Some(Err(e)) => {
                crate::diag::warn_every(
                    &JOURNAL_FAILED,
                    format_args!(
                        "cannot write the disk buffer: {e}; points are held in memory only"
                    ),
                );
                None
            }
            None => None,
        };
        self.enqueue(line, pos);
        Ok(())
    }

    /// Queue a point already encoded as line protocol (newline included), as
    /// a relay does; beyond the bound the oldest is dropped and counted.
    pub fn push_encoded(&mut self, line: Vec<u8>) {
        self.stats.points_made += 1;
        self.enqueue(line, None);
    }

    /// Queue an encoded point; beyond the bound the oldest is dropped and counted.
    fn enqueue(&mut self, line: Vec<u8>, pos: Option<Position>) {
        if self.buffer.len() >= self.cfg.buffer_points {
            if let Some((_, _, p)) = self.buffer.pop_front() {
                self.mark_done(p);
            }
            self.stats.dropped_overflow += 1;
        }
        self.buffer.push_back((Instant::now(), line, pos));
        self.stats.queued = self.buffer.len() as u64;
    }

    fn mark_done(&mut self, p: Option<Position>) {
        if let Some(p) = p {
            self.done = Some(self.done.map_or(p, |d| d.max(p)));
        }
    }

    /// Keep the queue in `dir` on disk: points left there by an earlier run are
    /// queued again first. Returns how many came back.
    pub fn with_journal(&mut self, dir: &std::path::Path) -> std::io::Result<usize> {
        let (j, pending) = Journal::open(dir)?;
        self.journal = Some(j);
        let n = pending.len();
        for (line, pos) in pending {
            self.enqueue(line, Some(pos));
        }
        Ok(n)
    }

    /// Make the disk buffer durable and move its cursor past what is done.
    pub fn sync(&mut self) {
        let Some(j) = self.journal.as_mut() else {
            return;
        };
        let r = j.sync().and_then(|()| match self.done.take() {
            Some(d) => j.advance(d),
            None => Ok(()),
        });
        if let Err(e) = r {
            crate::diag::warn_every(
                &JOURNAL_FAILED,
                format_args!("cannot write the disk buffer: {e}; points are held in memory only"),
            );
        }
    }

    /// Whether unsent points survive the process (a disk buffer is configured).
    pub fn durable(&self) -> bool {
        self.journal.is_some()
    }

    /// Points held.
    pub fn queued(&self) -> usize {
        self.buffer.len()
    }

    /// When the next write should happen (None: nothing queued).
    pub fn next_due(&self) -> Option<Instant> {
        let (oldest, _, _) = self.buffer.front()?;
        let by_age = *oldest + Duration::from_millis(self.cfg.batch_age_ms);
        // A full batch is due at once: the oldest point's time, which is never
        // later than the caller's `now` (a fresh `Instant::now()` here was, and the
        // full batch then never counted as due: the writer stalled and spun).
        let due = if self.buffer.len() >= self.cfg.batch_points {
            *oldest
        } else {
            by_age
        };
        Some(due.max(self.next_attempt))
    }

    /// Write one batch if one is due (or `force` and not backing off). Returns
    /// true when a batch left the buffer.
    pub async fn flush_once(&mut self, force: bool) -> bool {
        let now = Instant::now();
        let Some(due) = self.next_due() else {
            return false;
        };
        if now < self.next_attempt || (!force && now < due) {
            return false;
        }
        let n = self.buffer.len().min(self.cfg.batch_points);
        let mut body = Vec::with_capacity(n * 300);
        for (_, l, _) in self.buffer.iter().take(n) {
            body.extend_from_slice(l);
        }
        let mut req = self
            .auth(self.client.post(&self.write_url))
            .header("Content-Type", "text/plain; charset=utf-8");
        if self.cfg.gzip {
            let mut gz = flate2::write::GzEncoder::new(
                Vec::with_capacity(body.len() / 4),
                flate2::Compression::fast(),
            );
            if gz.write_all(&body).is_ok()
                && let Ok(z) = gz.finish()
            {
                body = z;
                req = req.header("Content-Encoding", "gzip");
            }
        }
        let outcome = req.body(body).send().await;
        match outcome {
            Ok(resp) if resp.status().is_success() => {
                self.failing = None;
                let last = self.buffer.drain(..n).filter_map(|(_, _, p)| p).next_back();
                self.mark_done(last);
                self.stats.points_written += n as u64;
                self.stats.batches_written += 1;
                self.backoff = FIRST_BACKOFF;
                self.next_attempt = Instant::now();
                self.stats.queued = self.buffer.len() as u64;
                true
            }
            Ok(resp) => {
                let status = resp.status().as_u16();
                let retry_after = resp
                    .headers()
                    .get("Retry-After")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let body = resp.text().await.unwrap_or_default();
                if status == 429 || status >= 500 {
                    self.retry_later(retry_after, &format!("HTTP {status}"));
                    false
                } else {
                    // 400 bad data, 401/403 token, 404 bucket or database, 413 size:
                    // retrying cannot help. Say so once per status.
                    if !self.logged.contains(&status) {
                        self.logged.push(status);
                        tracing::error!(
                            "InfluxDB refused a batch of {n} points with HTTP {status} ({}); {}",
                            self.redact(body.trim())
                                .chars()
                                .take(200)
                                .collect::<String>(),
                            match status {
                                401 | 403 => "check INFLUX_TOKEN",
                                404 => "check INFLUX_ORG and INFLUX_BUCKET (or INFLUX_DB)",
                                _ => "these points are dropped",
                            }
                        );
                    }
                    self.failing = Some(format!("the server refuses writes (HTTP {status})"));
                    let last = self.buffer.drain(..n).filter_map(|(_, _, p)| p).next_back();
                    self.mark_done(last);
                    self.stats.dropped_rejected += n as u64;
                    self.stats.queued = self.buffer.len() as u64;
                    true
                }
            }
            Err(e) => {
                if e.is_timeout() && !e.is_connect() {
                    self.stats.unanswered += 1;
                    tracing::warn!(
                        "InfluxDB took over {} s to answer a batch of {n} points; it may have stored it, so it is sent again (identical points: InfluxDB keeps one copy, VictoriaMetrics needs -dedup.minScrapeInterval=1ms)",
                        REQUEST_TIMEOUT.as_secs()
                    );
                }
                self.retry_later(None, &root_cause(&e));
                false
            }
        }
    }

    /// The shutdown deadline passed: what is still held is dropped, and counted.
    pub fn abandon(&mut self) {
        self.stats.dropped_shutdown += self.buffer.len() as u64;
        let last = self.buffer.drain(..).filter_map(|(_, _, p)| p).next_back();
        self.mark_done(last);
        self.stats.queued = 0;
    }

    /// Shutdown: stop backing off, try again now and then every ~second.
    pub fn hurry(&mut self) {
        self.next_attempt = Instant::now();
        self.backoff = FIRST_BACKOFF;
    }

    fn retry_later(&mut self, retry_after: Option<Duration>, why: &str) {
        self.failing = Some(format!(
            "writes fail ({why}); {} points held",
            self.buffer.len()
        ));
        self.stats.retries += 1;
        let wait = retry_after
            .unwrap_or(self.backoff)
            .min(Duration::from_secs(300));
        warn_every(
            &self.said_retry,
            format_args!(
                "InfluxDB write failed ({why}); retrying in {:.1} s, {} points held",
                wait.as_secs_f64(),
                self.buffer.len()
            ),
        );
        self.next_attempt = Instant::now() + wait;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }
}

fn root_cause(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s = inner.to_string();
        src = inner.source();
    }
    s
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An event's start (at its start) or end (at its end, with its duration) as
/// a point of [`EVENTS_MEASUREMENT`]: the forecast, band, probability and
/// signals when it started as fields.
pub fn event_point(c: &crate::events::Change) -> Point {
    use crate::events::{Change, Severity};
    let (change, e) = match c {
        Change::Started(e) => ("started", e),
        Change::Ended(e) => ("ended", e),
    };
    let ts_ns = match c {
        Change::Started(_) => e.start_ns,
        Change::Ended(_) => e.end_ns.unwrap_or(e.start_ns),
    };
    let s = &e.signals;
    let mut fields: Vec<(&'static str, f64)> = vec![
        ("active", f64::from(u8::from(change == "started"))),
        ("throughput_mbps", s.throughput_mbps),
        ("rtt_ms", s.rtt_ms),
        ("rtt_min_ms", s.rtt_min_ms),
        ("bif_bytes", s.bif_bytes as f64),
        ("silent_windows", s.silent_windows as f64),
        ("capture_lost", s.capture_lost as f64),
        ("unacked_segments", s.unacked_segments as f64),
        ("zero_window_segments", s.zero_window_segments as f64),
        ("retransmissions", s.retransmissions as f64),
        ("duplicate_acks", s.duplicate_acks as f64),
    ];
    if let Some(end) = e.end_ns {
        fields.push(("duration_s", (end - e.start_ns) as f64 / 1e9));
    }
    for (name, v) in [
        ("forecast_mbps", e.forecast_mbps),
        ("lower_mbps", e.band.map(|b| b.0)),
        ("upper_mbps", e.band.map(|b| b.1)),
        ("congestion_prob", e.congestion_prob),
        ("mase_recent", e.mase_recent),
    ] {
        if let Some(v) = v {
            fields.push((name, v));
        }
    }
    let kind = e.kind.name();
    let severity = match e.severity {
        Severity::Warning => "warning",
        Severity::Critical => "critical",
    };
    let text = match c {
        Change::Started(_) => format!(
            "{} {change} ({severity}): {:.1} Mbit/s, ACK RTT {:.1} ms (min {:.1}), {} B in flight{}",
            kind.replace('_', " "),
            s.throughput_mbps,
            s.rtt_ms,
            s.rtt_min_ms,
            s.bif_bytes,
            e.band
                .map(|(lo, hi)| format!(", band {lo:.1}-{hi:.1} Mbit/s"))
                .unwrap_or_default()
        ),
        Change::Ended(_) => format!(
            "{} {change} after {:.1} s ({severity} at worst)",
            kind.replace('_', " "),
            (ts_ns - e.start_ns) as f64 / 1e9
        ),
    };
    Point {
        ts_ms: ts_ns.div_euclid(1_000_000),
        fields,
        event: Some(EventTags {
            kind,
            severity,
            change,
            text,
        }),
        iface: None,
        stream: None,
        host: None,
    }
}

/// The point of one window: the actual; the published forecast at its target
/// (`predicted_mbps`, `congestion_prob`) and as issued (`issued_*`); the raw
/// model's at its target (`model_*`); the rolling skill; the nine features and
/// the kernel's drops.
pub fn point_for(s: &Scored, kernel_drops: i64) -> Point {
    let mut fields: Vec<(&'static str, f64)> = Vec::with_capacity(24);
    fields.push(("actual_mbps", s.row.throughput_mbps));
    if let Some(f) = &s.published_at_target {
        fields.push(("predicted_mbps", f.throughput_mbps));
        fields.push(("congestion_prob", f.congestion_prob));
    }
    if let Some((lo, hi)) = s.band_at_target {
        fields.push(("predicted_lower_mbps", lo));
        fields.push(("predicted_upper_mbps", hi));
    }
    if let Some(f) = &s.published {
        fields.push(("issued_predicted_mbps", f.throughput_mbps));
        fields.push(("issued_congestion_prob", f.congestion_prob));
    }
    if let Some((lo, hi)) = s.band {
        fields.push(("issued_lower_mbps", lo));
        fields.push(("issued_upper_mbps", hi));
    }
    if let Some(f) = &s.at_target {
        fields.push(("model_predicted_mbps", f.throughput_mbps));
        fields.push(("model_congestion_prob", f.congestion_prob));
    }
    if let Some(k) = &s.skill {
        for (name, v) in [
            ("mase_recent", k.mase_recent),
            ("mase_total", k.mase_total),
            ("brier_recent", k.brier_recent),
        ] {
            if let Some(v) = v {
                fields.push((name, v));
            }
        }
    }
    if let Some((d, _)) = s.input_shift {
        fields.push(("input_shift", d));
    }
    for (name, v) in FEATURE_NAMES.iter().zip(s.row.features()) {
        fields.push((name, v));
    }
    fields.push(("kernel_drops", kernel_drops as f64));
    Point {
        ts_ms: s.row.start_ns.div_euclid(1_000_000),
        fields,
        event: None,
        iface: None,
        stream: None,
        host: None,
    }
}

/// The InfluxDB writer as a sink: owns a current-thread tokio runtime; a point
/// per window that has a forecast; stats published to the metrics.
pub struct InfluxSink {
    rt: tokio::runtime::Runtime,
    writer: InfluxWriter,
    metrics: Arc<Metrics>,
    tagger: Tagger,
}

/// Which interface and stream each point belongs to, from the streams' begin
/// and end: what both the InfluxDB and the Kafka sink tag points with.
#[derive(Default)]
pub struct Tagger {
    /// Each live stream's interface and (kind, key), by stream number.
    streams: std::collections::HashMap<usize, StreamTags>,
    /// The same by stream id (what events name).
    event_streams: std::collections::HashMap<String, StreamTags>,
}

impl Tagger {
    /// Stream `index` named `name` begins ([`Sink::begin`]).
    pub fn begin(&mut self, index: usize, name: &str) {
        if let Some(iface) = crate::source::iface_of(name) {
            let (kind, key) = crate::source::kind_and_key(name);
            let tags = StreamTags {
                iface: iface.to_owned(),
                stream: (kind, key.to_owned()),
            };
            self.event_streams
                .insert(crate::live::stream_id(name), tags.clone());
            self.streams.insert(index, tags);
        }
    }

    /// Stream `index` ended ([`Sink::end`]).
    pub fn end(&mut self, index: usize) {
        if let Some(t) = self.streams.remove(&index)
            && t.stream.0 != "iface"
        {
            // An interface's stream keeps its entry for events that end after it.
            self.event_streams
                .retain(|_, v| v.stream != t.stream || v.iface != t.iface);
        }
    }

    /// The point of a scored window, tagged with its stream.
    pub fn window_point(&self, s: &Scored, kernel_drops: i64) -> Point {
        let mut p = point_for(s, kernel_drops);
        if let Some(t) = self.streams.get(&s.stream) {
            t.set(&mut p);
        }
        p
    }

    /// The point of an event's start or end, tagged with its stream.
    pub fn event_point(&self, c: &crate::events::Change) -> Point {
        let mut p = event_point(c);
        let (crate::events::Change::Started(e) | crate::events::Change::Ended(e)) = c;
        if let Some(t) = self.event_streams.get(&e.stream) {
            t.set(&mut p);
        }
        p
    }
}

/// A live stream's tags.
#[derive(Clone, Debug)]
struct StreamTags {
    iface: String,
    stream: (&'static str, String),
}

impl StreamTags {
    fn set(&self, p: &mut Point) {
        p.iface = Some(self.iface.clone());
        p.stream = Some(self.stream.clone());
    }
}

impl InfluxSink {
    /// Set up the writer and check the server's health once (a failing check is
    /// a warning: points are held and written when it answers).
    pub fn new(
        cfg: &InfluxConfig,
        host: &str,
        iface: &str,
        model: &str,
        metrics: Arc<Metrics>,
    ) -> Result<Self, InfluxError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| InfluxError::Unreachable {
                url: cfg.url.clone(),
                detail: e.to_string(),
            })?;
        let mut writer = InfluxWriter::new(cfg, host, iface, model)?;
        if let Some(dir) = cfg
            .buffer_dir
            .as_ref()
            .filter(|d| !d.as_os_str().is_empty())
        {
            match writer.with_journal(dir) {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    "{n} points unsent by an earlier run are queued again from {}",
                    dir.display()
                ),
                Err(e) => {
                    return Err(InfluxError::Unreachable {
                        url: cfg.url.clone(),
                        detail: format!(
                            "cannot use the disk buffer {}: {e}; fix influx.buffer_dir",
                            dir.display()
                        ),
                    });
                }
            }
        }
        if let Err(e) = rt.block_on(writer.health()) {
            tracing::warn!(
                "{e}; points are held (up to {}) and written when it answers",
                cfg.buffer_points
            );
        }
        Ok(InfluxSink {
            rt,
            writer,
            metrics,
            tagger: Tagger::default(),
        })
    }

    fn publish(&self) {
        let (w, m) = (&self.writer, &self.metrics);
        m.writer_queue.set(w.queued() as i64);
        m.points_written.set(w.stats.points_written as i64);
        m.points_retried.set(w.stats.retries as i64);
        m.batches_unanswered.set(w.stats.unanswered as i64);
        m.points_made.set(w.stats.points_made as i64);
        m.points_held_on_disk.set(w.stats.held_on_disk as i64);
        m.set_writer_failing(w.failing.clone());
        for (reason, n) in [
            ("buffer_full", w.stats.dropped_overflow),
            ("refused", w.stats.dropped_rejected),
            ("shutdown", w.stats.dropped_shutdown),
            ("encode", w.stats.dropped_encode),
        ] {
            m.points_dropped.with_label_values(&[reason]).set(n as i64);
        }
    }
}

impl Sink for InfluxSink {
    fn begin(&mut self, index: usize, name: &str) -> Result<(), SinkError> {
        self.tagger.begin(index, name);
        Ok(())
    }

    fn end(
        &mut self,
        index: usize,
        _summary: &crate::capture::CaptureSummary,
    ) -> Result<(), SinkError> {
        self.tagger.end(index);
        Ok(())
    }

    fn events(&mut self, changes: &[crate::events::Change]) -> Result<(), SinkError> {
        for c in changes {
            if let Err(e) = self.writer.push(&self.tagger.event_point(c)) {
                tracing::error!("{e}");
            }
        }
        Ok(())
    }

    fn window(&mut self, s: &Scored) -> Result<(), SinkError> {
        if s.at_target.is_none() && s.issued.is_none() {
            return Ok(());
        }
        let p = self.tagger.window_point(s, self.metrics.kernel_drops.get());
        if let Err(e) = self.writer.push(&p) {
            tracing::error!("{e}");
        }
        Ok(())
    }

    fn tick(&mut self) -> Result<(), SinkError> {
        // Durable first (at most the last tick's points can be lost to a crash),
        // then what is due goes out.
        self.writer.sync();
        while self.rt.block_on(self.writer.flush_once(false)) {}
        self.writer.sync();
        self.publish();
        Ok(())
    }

    fn next_due(&self) -> Option<Instant> {
        self.writer.next_due()
    }

    fn finish(&mut self, deadline: Instant) -> Result<(), SinkError> {
        // Everything queued goes out before the deadline if the server allows.
        self.writer.hurry();
        while self.writer.queued() > 0 && Instant::now() < deadline {
            if !self.rt.block_on(self.writer.flush_once(true)) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let held = self.writer.queued();
        if held > 0 && self.writer.durable() {
            tracing::warn!(
                "InfluxDB: {held} points still unsent at the shutdown deadline stay in the disk buffer for the next run"
            );
            self.writer.stats.held_on_disk = held as u64;
        } else if held > 0 {
            tracing::error!(
                "InfluxDB: {held} points still unsent at the shutdown deadline are dropped (set influx.buffer_dir to keep them on disk)"
            );
            self.writer.abandon();
        }
        self.writer.sync();
        self.publish();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// Points with timestamps 0, 1, ... n-1 and one field.
    fn push_points(w: &mut InfluxWriter, n: i64) {
        for i in 0..n {
            w.push(&Point {
                ts_ms: i,
                fields: vec![("x", 1.0)],
                ..Point::default()
            })
            .unwrap();
        }
    }
    use engine::forecast::Forecast;
    use engine::window::WindowRow;

    fn writer(buffer: usize) -> InfluxWriter {
        let cfg = InfluxConfig {
            url: "http://127.0.0.1:1".into(),
            buffer_points: buffer,
            ..Default::default()
        };
        InfluxWriter::new(&cfg, "h", "eth0", "m1").unwrap()
    }

    #[test]
    fn line_protocol_has_tags_fields_and_ms_timestamp() {
        let w = writer(10);
        let l = w.encode(&Point {
            ts_ms: 1_700_000_000_050,
            fields: vec![("actual_mbps", 12.5), ("predicted_mbps", f64::NAN)],
            ..Point::default()
        });
        let s = String::from_utf8(l.unwrap()).unwrap();
        assert_eq!(
            s,
            "traffic_prediction,host=h,iface=eth0,model=m1 actual_mbps=12.5 1700000000050\n"
        );
    }

    #[test]
    fn an_event_is_a_point_of_its_own_measurement_with_its_text() {
        use crate::events::{Change, Event, Kind, Severity, Signals};
        let w = writer(10);
        let e = Event {
            kind: Kind::CapacityDrop,
            stream: "live eth0".into(),
            start_ns: 1_700_000_000_050_000_000,
            end_ns: None,
            severity: Severity::Critical,
            forecast_mbps: Some(38.5),
            band: Some((31.0, 45.0)),
            congestion_prob: None,
            mase_recent: None,
            signals: Signals {
                throughput_mbps: 9.75,
                rtt_ms: 42.0,
                rtt_min_ms: 20.5,
                bif_bytes: 64_000,
                silent_windows: 0,
                capture_lost: 0,
                unacked_segments: 0,
                zero_window_segments: 0,
                retransmissions: 0,
                duplicate_acks: 0,
            },
        };
        let l = String::from_utf8(w.encode(&event_point(&Change::Started(e.clone()))).unwrap())
            .unwrap();
        assert!(
            l.starts_with("netforecast_events,change=started,host=h,iface=eth0,kind=capacity_drop,model=m1,severity=critical "),
            "{l}"
        );
        assert!(
            l.contains("active=1,")
                && l.contains("lower_mbps=31,")
                && !l.contains("congestion_prob"),
            "{l}"
        );
        assert!(l.contains("text=\"capacity drop started (critical): 9.8 Mbit/s, ACK RTT 42.0 ms (min 20.5), 64000 B in flight, band 31.0-45.0 Mbit/s\""), "{l}");
        assert!(l.ends_with(" 1700000000050\n"), "{l}");
        let mut ended = e;
        ended.end_ns = Some(1_700_000_002_550_000_000);
        let l = String::from_utf8(w.encode(&event_point(&Change::Ended(ended))).unwrap()).unwrap();
        assert!(
            l.contains("change=ended") && l.contains("active=0,") && l.contains("duration_s=2.5"),
            "{l}"
        );
        assert!(
            l.contains("capacity drop ended after 2.5 s (critical at worst)")
                && l.ends_with(" 1700000002550\n"),
            "{l}"
        );
    }

    #[test]
    fn full_buffer_drops_the_oldest_and_counts() {
        let mut w = writer(3);
        for i in 0..5 {
            w.push(&Point {
                ts_ms: i,
                fields: vec![("x", 1.0)],
                ..Point::default()
            })
            .unwrap();
        }
        assert_eq!(w.queued(), 3);
        assert_eq!(w.stats.dropped_overflow, 2);
        assert!(String::from_utf8_lossy(&w.buffer[0].1).ends_with(" 2\n"));
    }

    #[test]
    fn a_full_batch_is_due_now_not_a_moment_later() {
        // Regression: with 200+ points queued the writer never flushed and spun a core.
        let cfg = InfluxConfig {
            url: "http://127.0.0.1:1".into(),
            batch_points: 2,
            batch_age_ms: 60_000,
            ..Default::default()
        };
        let mut w = InfluxWriter::new(&cfg, "h", "eth0", "m1").unwrap();
        push_points(&mut w, 3);
        let now = Instant::now();
        assert!(
            w.next_due().unwrap() <= now,
            "a full batch must be due already"
        );
        // And flush_once(false) really tries it (and fails: nothing listens).
        let rt = rt();
        assert!(!rt.block_on(w.flush_once(false)));
        assert_eq!(w.stats.retries, 1, "the due batch was attempted");
    }

    /// A server that answers every request with 401 and the request's
    /// Authorization header as the body, `n` times.
    fn echoing_server(n: usize) -> (std::net::SocketAddr, std::thread::JoinHandle<()>) {
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let h = std::thread::spawn(move || {
            for _ in 0..n {
                let Ok((mut s, _)) = l.accept() else { return };
                let mut req = Vec::new();
                let mut b = [0u8; 4096];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut b) {
                        Ok(0) | Err(_) => break,
                        Ok(k) => req.extend_from_slice(&b[..k]),
                    }
                }
                let text = String::from_utf8_lossy(&req).into_owned();
                let auth = text
                    .lines()
                    .find(|l| l.to_ascii_lowercase().starts_with("authorization:"))
                    .unwrap_or("")
                    .to_owned();
                let body = format!("unauthorized, you sent {auth}");
                let _ = write!(
                    s,
                    "HTTP/1.1 401 Unauthorized\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        (addr, h)
    }

    #[test]
    fn a_401_that_echoes_the_token_is_logged_redacted() {
        let (addr, server) = echoing_server(2);
        let cfg = InfluxConfig {
            url: format!("http://{addr}"),
            org: "o".into(),
            token: crate::config::Secret::new("s3cr3t-t0ken"),
            gzip: false,
            ..Default::default()
        };
        let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let sink = std::sync::Arc::clone(&logs);
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || Capture(std::sync::Arc::clone(&sink)))
            .finish();
        let rt = rt();
        let health = tracing::subscriber::with_default(subscriber, || {
            let mut w = InfluxWriter::new(&cfg, "h", "eth0", "m1").unwrap();
            let health = rt.block_on(w.health()).unwrap_err().to_string();
            w.push(&Point {
                ts_ms: 1,
                fields: vec![("x", 1.0)],
                ..Point::default()
            })
            .unwrap();
            assert!(rt.block_on(w.flush_once(true)), "a 401 drops the batch");
            assert_eq!(w.stats.dropped_rejected, 1);
            health
        });
        server.join().unwrap();
        let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
        for text in [&health, &logs] {
            assert!(text.contains("***"), "{text}");
            assert!(!text.contains("s3cr3t"), "the token leaked: {text}");
        }
        assert!(logs.contains("401"), "{logs}");
    }

    /// A busy server: it stores each batch at once but answers only after
    /// `delay` (the old 10 s request timeout resent such batches: duplicates).
    fn slow_server(
        delay: Duration,
    ) -> (
        std::net::SocketAddr,
        std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    ) {
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let stored = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let st = std::sync::Arc::clone(&stored);
        std::thread::spawn(move || {
            while let Ok((mut s, _)) = l.accept() {
                let st = std::sync::Arc::clone(&st);
                std::thread::spawn(move || {
                    let mut req = Vec::new();
                    let mut b = [0u8; 4096];
                    let body_at = loop {
                        if let Some(i) = req.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        match s.read(&mut b) {
                            Ok(0) | Err(_) => return,
                            Ok(k) => req.extend_from_slice(&b[..k]),
                        }
                    };
                    let head = String::from_utf8_lossy(&req[..body_at]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while req.len() < body_at + len {
                        match s.read(&mut b) {
                            Ok(0) | Err(_) => return,
                            Ok(k) => req.extend_from_slice(&b[..k]),
                        }
                    }
                    for line in String::from_utf8_lossy(&req[body_at..]).lines() {
                        st.lock().unwrap().push(line.to_owned());
                    }
                    std::thread::sleep(delay);
                    let _ = s.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
                });
            }
        });
        (addr, stored)
    }

    #[test]
    fn a_slow_answer_is_waited_for_not_resent() {
        let (addr, stored) = slow_server(Duration::from_secs(11));
        let cfg = InfluxConfig {
            url: format!("http://{addr}"),
            org: "o".into(),
            gzip: false,
            ..Default::default()
        };
        let rt = rt();
        let mut w = InfluxWriter::new(&cfg, "h", "eth0", "m1").unwrap();
        push_points(&mut w, 3);
        assert!(rt.block_on(w.flush_once(true)), "the batch was written");
        assert_eq!(w.stats.points_written, 3);
        assert_eq!(w.stats.unanswered, 0);
        assert_eq!(w.stats.retries, 0);
        assert_eq!(stored.lock().unwrap().len(), 3, "each point stored once");
    }

    struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Capture {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn unreachable_server_backs_off_and_keeps_points() {
        let rt = rt();
        let mut w = writer(10);
        w.push(&Point {
            ts_ms: 1,
            fields: vec![("x", 1.0)],
            ..Point::default()
        })
        .unwrap();
        assert!(!rt.block_on(w.flush_once(true)));
        assert_eq!(w.queued(), 1);
        assert_eq!(w.stats.retries, 1);
        // Backing off: a second forced flush right away does not even try.
        assert!(!rt.block_on(w.flush_once(true)));
        assert_eq!(w.stats.retries, 1);
        assert!(rt.block_on(w.health()).is_err());
    }

    #[test]
    fn points_carry_the_forecast_at_its_target_and_as_issued() {
        let row = WindowRow {
            start_ns: 1_700_000_000_050_000_000,
            size_bytes: 1000,
            delay_s: 0.01,
            bif_bytes: 10,
            iat_mean_s: 0.0,
            iat_std_s: 0.0,
            throughput_mbps: 0.16,
            delay_grad_s: 0.0,
            bif_grad_bytes: 0,
            is_silent: false,
            packets: 1,
            tcp: Default::default(),
        };
        let f = |t: i64, v: f64| Forecast {
            target_start_ns: t,
            throughput_mbps: v,
            congestion_prob: 0.9,
        };
        let s = Scored {
            stream: 0,
            row,
            at_target: Some(f(row.start_ns, 1.0)),
            baselines: None,
            issued: Some(f(row.start_ns + 50_000_000, 2.0)),
            inference: None,
            published_at_target: Some(f(row.start_ns, 1.5)),
            published: Some(f(row.start_ns + 50_000_000, 2.5)),
            band_at_target: Some((0.5, 2.5)),
            band: None,
            skill: None,
            input_shift: None,
        };
        let p = point_for(&s, 3);
        assert_eq!(p.ts_ms, 1_700_000_000_050);
        let get = |k: &str| p.fields.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
        assert_eq!(get("actual_mbps"), Some(0.16));
        assert_eq!(get("predicted_mbps"), Some(1.5));
        assert_eq!(get("issued_predicted_mbps"), Some(2.5));
        assert_eq!(get("model_predicted_mbps"), Some(1.0));
        assert_eq!(get("predicted_lower_mbps"), Some(0.5));
        assert_eq!(get("predicted_upper_mbps"), Some(2.5));
        assert_eq!(get("issued_lower_mbps"), None);
        assert_eq!(get("kernel_drops"), Some(3.0));
        assert_eq!(get("bif"), Some(10.0));
    }

    #[test]
    fn a_field_list_writes_those_fields_of_a_window_and_events_keep_theirs() {
        let f = |v: f64| Forecast {
            target_start_ns: 0,
            throughput_mbps: v,
            congestion_prob: 0.25,
        };
        // A window with every field: the names are point_field_names, in order.
        let s = Scored {
            stream: 0,
            row: WindowRow {
                start_ns: 1_700_000_000_050_000_000,
                size_bytes: 250_000,
                delay_s: 0.01,
                bif_bytes: 10,
                iat_mean_s: 0.0,
                iat_std_s: 0.0,
                throughput_mbps: 40.0,
                delay_grad_s: 0.0,
                bif_grad_bytes: 0,
                is_silent: false,
                packets: 170,
                tcp: Default::default(),
            },
            at_target: Some(f(1.0)),
            baselines: None,
            issued: Some(f(2.0)),
            inference: None,
            published_at_target: Some(f(3.0)),
            published: Some(f(4.0)),
            band_at_target: Some((0.5, 2.5)),
            band: Some((1.5, 5.5)),
            skill: Some(crate::online::Skill {
                mase_recent: Some(0.8),
                mase_total: Some(0.9),
                brier_recent: Some(0.01),
                scored: 10,
            }),
            input_shift: Some((0.1, 0.2)),
        };
        let p = point_for(&s, 0);
        let names: Vec<&str> = p.fields.iter().map(|(k, _)| *k).collect();
        assert_eq!(names, point_field_names().collect::<Vec<_>>());
        let all = LineEncoder::new("m", "h", "i", "v");
        let line = String::from_utf8(all.encode(&p).unwrap()).unwrap();
        assert_eq!(line.matches('=').count(), 3 + names.len(), "{line}");
        let fleet: Vec<String> = ["congestion_prob", "actual_mbps", "mase_recent"]
            .map(String::from)
            .into();
        let some = LineEncoder::new("m", "h", "i", "v").with_fields(&fleet);
        let line = String::from_utf8(some.encode(&p).unwrap()).unwrap();
        let fields = line.split(' ').nth(1).unwrap();
        assert_eq!(
            fields, "actual_mbps=40,congestion_prob=0.25,mase_recent=0.8",
            "{line}"
        );
        assert_eq!(line.trim_end().split(' ').nth(2), Some("1700000000050"));
        // An empty list is every field.
        let none = LineEncoder::new("m", "h", "i", "v").with_fields(&[]);
        assert_eq!(none.encode(&p).unwrap(), all.encode(&p).unwrap());
        // An event's point is written whole.
        let mut e = p.clone();
        e.event = Some(EventTags {
            kind: "capacity_drop",
            severity: "warning",
            change: "started",
            text: "t".into(),
        });
        assert_eq!(some.encode(&e).unwrap(), all.encode(&e).unwrap());
    }
}
