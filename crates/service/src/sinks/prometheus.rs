//! The pipeline's metrics, kept in a `prometheus` registry: each stage records
//! its own events into it through the methods here; the HTTP endpoint
//! ([`crate::web`]) only reads (`/metrics`, `/healthz`, `/readyz`).

use crate::forecast::Scored;
use crate::source::KernelStats;
use engine::pipeline::Counters;
use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Every metric the pipeline exports.
#[allow(missing_docs)]
pub struct Metrics {
    pub registry: Registry,
    pub frames: IntCounter,
    pub packets_counted: IntCounter,
    pub packets_skipped: IntCounterVec,
    pub kernel_drops: IntGauge,
    pub kernel_if_drops: IntGauge,
    pub windows: IntCounter,
    pub silent_windows: IntCounter,
    /// Segments sent again or out of order (tshark's retransmission flags).
    pub tcp_retransmissions: IntCounter,
    /// Duplicate ACKs.
    pub tcp_duplicate_acks: IntCounter,
    /// Zero-window advertisements.
    pub tcp_zero_windows: IntCounter,
    pub flows_active: IntGauge,
    pub windows_dropped: IntCounter,
    pub forecasts: IntCounter,
    pub forecasts_skipped: IntCounter,
    pub inference_seconds: Histogram,
    /// Wall time between a window's end and its arrival at inference.
    pub window_delay_seconds: Histogram,
    pub scored_dropped: IntCounter,
    pub writer_queue: IntGauge,
    pub points_written: IntGauge,
    pub points_retried: IntGauge,
    pub batches_unanswered: IntGauge,
    pub points_made: IntGauge,
    pub points_held_on_disk: IntGauge,
    pub points_dropped: prometheus::IntGaugeVec,
    /// Kafka points by what became of them: `made`, `delivered`, `failed`
    /// (the broker refused them for good), `dropped_queue_full`,
    /// `dropped_shutdown`, `unencodable`.
    pub kafka_points: prometheus::IntGaugeVec,
    /// Kafka points produced and not yet acknowledged.
    pub kafka_queue: IntGauge,
    pub csv_rows: IntCounter,
    pub csv_errors: IntCounter,
    pub last_actual_mbps: GaugeVec,
    pub last_predicted_mbps: GaugeVec,
    /// 1 while an event of `kind` is active on `stream`.
    pub alert_active: prometheus::IntGaugeVec,
    /// Events started, by kind.
    pub alerts: IntCounterVec,
    /// Band of the forecast for the next window (lower, upper edge), Mbit/s.
    pub next_lower_mbps: GaugeVec,
    pub next_upper_mbps: GaugeVec,
    /// Whether the last closed window fell inside its forecast's band.
    pub band_hits: IntCounterVec,
    pub band_scored: IntCounterVec,
    pub last_congestion_prob: GaugeVec,
    pub mase_recent: GaugeVec,
    pub mase_total: GaugeVec,
    pub brier_recent: GaugeVec,
    pub input_shift: GaugeVec,
    pub input_shift_threshold: GaugeVec,
    /// How many capture threads run (for /healthz).
    pub capturing: std::sync::atomic::AtomicUsize,
    /// Each capture's last published state (counters go up by the difference).
    published: Mutex<std::collections::BTreeMap<usize, Published>>,
    /// Health: when the last window went through inference.
    last_window: Mutex<Option<Instant>>,
    /// Health: why the writer fails, while it does.
    writer_failing: Mutex<Option<String>>,
    /// Health: captures that failed while others went on, with why.
    captures_failed: Mutex<Vec<String>>,
    /// Health: why the Kafka producer fails, while it does (outer None: no Kafka).
    kafka_failing: Mutex<Option<Option<String>>>,
    /// Health: the last model error and when.
    model_failed: Mutex<Option<(Instant, String)>>,
    /// When these metrics were made (the run's start).
    started: Instant,
}

/// One capture's counters and kernel statistics as last published.
#[derive(Default)]
struct Published {
    name: String,
    counters: Counters,
    kernel: Option<KernelStats>,
    windows_dropped: u64,
    ended: bool,
}

/// One part of the service as `/healthz` reports it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PartHealth {
    /// Working.
    pub ok: bool,
    /// What is wrong, when not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What `/healthz` and `/readyz` answer.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Health {
    /// `ok` or `failing`.
    pub status: &'static str,
    /// The parts that fail.
    pub failing: Vec<&'static str>,
    /// Capture, writer and model, each.
    pub parts: std::collections::BTreeMap<&'static str, PartHealth>,
}

/// A window older than this means the capture stage is stuck or gone.
const CAPTURE_STALE: Duration = Duration::from_secs(3);
/// A model error this recent makes the model part fail.
const MODEL_RECENT: Duration = Duration::from_secs(60);

fn reg<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: T) -> T {
    // Names are fixed and unique, so registration cannot fail.
    let _ = r.register(Box::new(m.clone()));
    m
}

impl Metrics {
    /// Every metric, registered and zero.
    pub fn new() -> Arc<Metrics> {
        let r = Registry::new_custom(Some("netforecast".into()), None).unwrap_or_default();
        let c = |n: &str, h: &str| reg(&r, IntCounter::new(n, h).expect("valid metric name"));
        let g = |n: &str, h: &str| reg(&r, IntGauge::new(n, h).expect("valid metric name"));
        // Per stream: the label is the stream's name (the alerts' `stream`).
        let fs = |n: &str, h: &str| {
            reg(
                &r,
                GaugeVec::new(Opts::new(n, h), &["stream"]).expect("valid metric"),
            )
        };
        let cs = |n: &str, h: &str| {
            reg(
                &r,
                IntCounterVec::new(Opts::new(n, h), &["stream"]).expect("valid metric"),
            )
        };
        Arc::new(Metrics {
            frames: c("frames_total", "Frames captured"),
            packets_counted: c("packets_counted_total", "TCP segments counted in windows"),
            packets_skipped: reg(
                &r,
                IntCounterVec::new(
                    Opts::new("packets_skipped_total", "Frames not counted, by reason"),
                    &["reason"],
                )
                .expect("valid metric"),
            ),
            kernel_drops: g("kernel_drops", "Packets the kernel dropped (pcap ps_drop)"),
            kernel_if_drops: g(
                "kernel_interface_drops",
                "Packets the interface dropped (pcap ps_ifdrop)",
            ),
            windows: c("windows_total", "Windows closed"),
            silent_windows: c("silent_windows_total", "Windows closed without a packet"),
            tcp_retransmissions: c(
                "tcp_retransmissions_total",
                "Segments sent again or out of order (tshark's retransmission, fast and spurious retransmission and out-of-order flags)",
            ),
            tcp_duplicate_acks: c(
                "tcp_duplicate_acks_total",
                "Duplicate ACKs (tshark's tcp.analysis.duplicate_ack)",
            ),
            tcp_zero_windows: c(
                "tcp_zero_window_total",
                "Segments advertising a zero receive window",
            ),
            flows_active: g("flows_active", "TCP flows tracked"),
            windows_dropped: c(
                "windows_dropped_total",
                "Windows dropped because inference fell behind",
            ),
            forecasts: c("forecasts_total", "Forecasts made"),
            forecasts_skipped: c(
                "forecasts_skipped_total",
                "Forecasts not made because the model could not do every stream's in its share of a window (the least busy hosts' first)",
            ),
            inference_seconds: reg(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new("inference_seconds", "Time per forecast").buckets(vec![
                        0.000_05, 0.000_1, 0.000_2, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.05,
                    ]),
                )
                .expect("valid metric"),
            ),
            window_delay_seconds: reg(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "window_delay_seconds",
                        "Time from a window's end to its forecast",
                    )
                    .buckets(vec![
                        0.001, 0.002, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.05, 0.1, 0.5, 1.0,
                    ]),
                )
                .expect("valid metric"),
            ),
            scored_dropped: c(
                "points_dropped_queue_total",
                "Points dropped because the writer fell behind",
            ),
            writer_queue: g("writer_queue_points", "Points waiting to be written"),
            points_written: g("points_written", "Points written to InfluxDB"),
            points_retried: g("write_retries", "Write attempts that will be retried"),
            batches_unanswered: g(
                "write_unanswered_batches",
                "Batches the server received but did not answer within 60 s (sent again)",
            ),
            points_made: g("points_made", "Points handed to the InfluxDB writer"),
            points_held_on_disk: g(
                "points_held_on_disk",
                "Points unsent at the end, kept in the disk buffer for the next run",
            ),
            points_dropped: reg(
                &r,
                prometheus::IntGaugeVec::new(
                    Opts::new("points_dropped", "Points the writer dropped, by reason"),
                    &["reason"],
                )
                .expect("valid metric"),
            ),
            kafka_points: reg(
                &r,
                prometheus::IntGaugeVec::new(
                    Opts::new(
                        "kafka_points",
                        "Points of the Kafka sink by what became of them",
                    ),
                    &["result"],
                )
                .expect("valid metric"),
            ),
            kafka_queue: g(
                "kafka_queue_points",
                "Kafka points produced and not yet acknowledged by the brokers",
            ),
            csv_rows: c("csv_rows_total", "Rows written to the predictions CSV"),
            csv_errors: c(
                "csv_errors_total",
                "Rows that could not be written to the predictions CSV",
            ),
            last_actual_mbps: fs("last_actual_mbps", "Throughput of the last closed window"),
            last_predicted_mbps: fs("last_predicted_mbps", "Forecast for the last closed window"),
            alert_active: reg(
                &r,
                prometheus::IntGaugeVec::new(
                    Opts::new(
                        "alert_active",
                        "1 while an event of this kind is active on the stream",
                    ),
                    &["kind", "stream"],
                )
                .expect("valid metric"),
            ),
            alerts: reg(
                &r,
                IntCounterVec::new(
                    Opts::new("alerts_total", "Events started, by kind"),
                    &["kind"],
                )
                .expect("valid metric"),
            ),
            next_lower_mbps: fs(
                "next_predicted_lower_mbps",
                "Lower edge (about the 10th percentile) of the band around the forecast for the next window",
            ),
            next_upper_mbps: fs(
                "next_predicted_upper_mbps",
                "Upper edge (about the 90th percentile) of the band around the forecast for the next window",
            ),
            band_hits: cs(
                "band_hits_total",
                "Windows whose throughput fell inside their forecast's band",
            ),
            band_scored: cs(
                "band_scored_total",
                "Windows whose forecast had a band (the coverage is hits over scored)",
            ),
            last_congestion_prob: fs(
                "last_congestion_prob",
                "Probability the next window is below the threshold",
            ),
            mase_recent: fs(
                "skill_mase_recent",
                "Published forecast's MAE over persistence's, last minute",
            ),
            mase_total: fs(
                "skill_mase_total",
                "Published forecast's MAE over persistence's, since start",
            ),
            brier_recent: fs(
                "skill_brier_recent",
                "Brier score of the published probability, last minute",
            ),
            input_shift: fs(
                "input_shift",
                "Distance of the last minute's features from the training data's (0 alike, 1 disjoint)",
            ),
            input_shift_threshold: fs(
                "input_shift_threshold",
                "Largest input_shift the model's own training data showed; above it the input is unlike the training data",
            ),
            capturing: std::sync::atomic::AtomicUsize::new(0),
            published: Mutex::default(),
            last_window: Mutex::default(),
            writer_failing: Mutex::default(),
            kafka_failing: Mutex::default(),
            captures_failed: Mutex::default(),
            model_failed: Mutex::default(),
            started: Instant::now(),
            registry: r,
        })
    }

    /// Capture `stream` (called `name`) starts (true) or stops (false); for
    /// /healthz, which fails while none runs.
    pub fn set_capturing(&self, stream: usize, name: &str, on: bool) {
        if on {
            self.capturing.fetch_add(1, Ordering::Relaxed);
        } else {
            self.capturing.fetch_sub(1, Ordering::Relaxed);
        }
        let Ok(mut published) = self.published.lock() else {
            return;
        };
        if on {
            published.insert(
                stream,
                Published {
                    name: name.to_owned(),
                    ..Published::default()
                },
            );
        } else if let Some(p) = published.get_mut(&stream) {
            // Its counters are in the totals; its kernel statistics stay in
            // the gauges (a live capture's drops do not go back to zero).
            p.ended = true;
        }
        // A replay of many files keeps only what the gauges still need.
        published.retain(|_, p| !p.ended || p.kernel.is_some());
    }

    /// Capture `stream`'s counters and the kernel's, as of now. Several
    /// captures (the daemon's interfaces) publish side by side: the counters
    /// add up, the kernel's drops are summed over the interfaces, the link is
    /// down when any is.
    pub fn publish_capture(&self, stream: usize, c: &Counters, k: Option<KernelStats>) {
        let Ok(mut published) = self.published.lock() else {
            return;
        };
        let p = published.entry(stream).or_default();
        let last = &p.counters;
        self.frames.inc_by(c.frames.saturating_sub(last.frames));
        self.packets_counted
            .inc_by(c.counted.saturating_sub(last.counted));
        for (i, r) in engine::capture::SkipReason::ALL.iter().enumerate() {
            let d = c.skipped[i].saturating_sub(last.skipped[i]);
            if d > 0 {
                self.packets_skipped
                    .with_label_values(&[r.name()])
                    .inc_by(d);
            }
        }
        self.windows
            .inc_by(c.window.windows.saturating_sub(last.window.windows));
        self.silent_windows.inc_by(
            c.window
                .silent_windows
                .saturating_sub(last.window.silent_windows),
        );
        self.tcp_retransmissions
            .inc_by(c.retransmissions.saturating_sub(last.retransmissions));
        self.tcp_duplicate_acks
            .inc_by(c.duplicate_acks.saturating_sub(last.duplicate_acks));
        self.tcp_zero_windows
            .inc_by(c.zero_windows.saturating_sub(last.zero_windows));
        p.counters = c.clone();
        if k.is_some() {
            p.kernel = k;
        }
        let running = || published.values().filter(|p| !p.ended);
        self.flows_active
            .set(running().map(|p| p.counters.flow.flows_active as i64).sum());
        let kernel: Vec<KernelStats> = published.values().filter_map(|p| p.kernel).collect();
        if !kernel.is_empty() {
            self.kernel_drops
                .set(kernel.iter().map(|k| k.dropped as i64).sum());
            self.kernel_if_drops
                .set(kernel.iter().map(|k| k.if_dropped as i64).sum());
        }
    }

    /// Capture `stream` dropped a window (inference fell behind).
    pub fn window_dropped(&self, stream: usize) {
        self.windows_dropped.inc();
        if let Ok(mut p) = self.published.lock() {
            p.entry(stream).or_default().windows_dropped += 1;
        }
    }

    /// What capture `stream` lost so far: packets the kernel or the interface
    /// dropped and windows inference never saw.
    pub fn capture_lost(&self, stream: usize) -> u64 {
        self.published.lock().map_or(0, |p| {
            p.get(&stream).map_or(0, |p| {
                p.kernel.map_or(0, |k| k.dropped + k.if_dropped) + p.windows_dropped
            })
        })
    }

    /// The running captures whose interface is down, by name.
    /// A capture failed while the daemon's other captures go on: `/healthz`
    /// names it (503) for the rest of the run.
    pub fn capture_failed(&self, why: String) {
        if let Ok(mut f) = self.captures_failed.lock() {
            f.push(why);
        }
    }

    fn links_down(&self) -> Vec<String> {
        self.published.lock().map_or_else(
            |_| Vec::new(),
            |p| {
                p.values()
                    .filter(|p| !p.ended && p.kernel.is_some_and(|k| k.link_down))
                    .map(|p| p.name.clone())
                    .collect()
            },
        )
    }

    /// A window reached inference `late_ns` after it ended.
    pub fn observe_window_delay(&self, late_ns: i64) {
        self.window_delay_seconds
            .observe(late_ns.max(0) as f64 / 1e9);
    }

    /// Why the writer fails (None: it works).
    pub fn set_writer_failing(&self, why: Option<String>) {
        if let Ok(mut w) = self.writer_failing.lock() {
            *w = why;
        }
    }

    /// Why the Kafka producer fails (None: it does not); its part of the health.
    pub fn set_kafka_failing(&self, why: Option<String>) {
        if let Ok(mut w) = self.kafka_failing.lock() {
            *w = Some(why);
        }
    }

    /// Whether a Kafka sink runs (it reports its health from the start).
    pub fn kafka_enabled(&self) -> bool {
        self.kafka_failing.lock().is_ok_and(|k| k.is_some())
    }

    /// The model failed on a window.
    pub fn model_failed(&self, why: String) {
        if let Ok(mut m) = self.model_failed.lock() {
            *m = Some((Instant::now(), why));
        }
    }

    /// The health of capture, writer and model now. `ready` also asks that a
    /// window has gone through (after start-up).
    pub fn health(&self, ready: bool) -> Health {
        let now = Instant::now();
        let mut parts = std::collections::BTreeMap::new();
        let last = self.last_window.lock().ok().and_then(|l| *l);
        let down = self.links_down();
        let failed = self
            .captures_failed
            .lock()
            .map(|f| f.join("; "))
            .unwrap_or_default();
        let capture = if self.capturing.load(Ordering::Relaxed) == 0 {
            Some("not capturing".to_owned())
        } else if !failed.is_empty() {
            Some(format!("a capture failed, the others go on: {failed}"))
        } else if !down.is_empty() {
            Some(format!(
                "the interface is down ({}); its windows are silent until it is back",
                down.join(", ")
            ))
        } else {
            match last {
                Some(t) if now.duration_since(t) > CAPTURE_STALE => Some(format!(
                    "no window for {:.0} s",
                    now.duration_since(t).as_secs_f64()
                )),
                None if ready => Some("no window yet".to_owned()),
                None if now.duration_since(self.started) > CAPTURE_STALE => {
                    Some("no window since start".to_owned())
                }
                _ => None,
            }
        };
        let writer = self.writer_failing.lock().ok().and_then(|w| w.clone());
        let model = self
            .model_failed
            .lock()
            .ok()
            .and_then(|m| m.clone())
            .filter(|(t, _)| now.duration_since(*t) < MODEL_RECENT)
            .map(|(_, why)| why);
        if let Some(kafka) = self.kafka_failing.lock().ok().and_then(|k| k.clone()) {
            parts.insert(
                "kafka",
                PartHealth {
                    ok: kafka.is_none(),
                    detail: kafka,
                },
            );
        }
        for (name, why) in [("capture", capture), ("writer", writer), ("model", model)] {
            parts.insert(
                name,
                PartHealth {
                    ok: why.is_none(),
                    detail: why,
                },
            );
        }
        let failing: Vec<&'static str> = parts
            .iter()
            .filter(|(_, p)| !p.ok)
            .map(|(n, _)| *n)
            .collect();
        Health {
            status: if failing.is_empty() { "ok" } else { "failing" },
            failing,
            parts,
        }
    }

    /// Events that started or ended.
    pub fn observe_events(&self, changes: &[crate::events::Change]) {
        use crate::events::Change;
        for c in changes {
            match c {
                Change::Started(e) => {
                    self.alerts.with_label_values(&[e.kind.name()]).inc();
                    self.alert_active
                        .with_label_values(&[e.kind.name(), e.stream.as_str()])
                        .set(1);
                }
                Change::Ended(e) => self
                    .alert_active
                    .with_label_values(&[e.kind.name(), e.stream.as_str()])
                    .set(0),
            }
        }
    }

    /// A window of stream `stream` went through the forecast stage.
    pub fn observe_scored(&self, stream: &str, s: &Scored) {
        if let Ok(mut l) = self.last_window.lock() {
            *l = Some(Instant::now());
        }
        if let Some(t) = s.inference {
            self.inference_seconds.observe(t.as_secs_f64());
            self.forecasts.inc();
        }
        let set = |g: &GaugeVec, v: f64| g.with_label_values(&[stream]).set(v);
        set(&self.last_actual_mbps, s.row.throughput_mbps);
        if let Some(p) = &s.published_at_target {
            set(&self.last_predicted_mbps, p.throughput_mbps);
        }
        if let Some((lo, hi)) = s.band_at_target {
            self.band_scored.with_label_values(&[stream]).inc();
            if (lo..=hi).contains(&s.row.throughput_mbps) {
                self.band_hits.with_label_values(&[stream]).inc();
            }
        }
        if let Some((lo, hi)) = s.band {
            set(&self.next_lower_mbps, lo);
            set(&self.next_upper_mbps, hi);
        }
        if let Some(f) = &s.published {
            set(&self.last_congestion_prob, f.congestion_prob);
        }
        if let Some((d, t)) = s.input_shift {
            set(&self.input_shift, d);
            set(&self.input_shift_threshold, t);
        }
        if let Some(k) = &s.skill {
            for (g, v) in [
                (&self.mase_recent, k.mase_recent),
                (&self.mase_total, k.mase_total),
                (&self.brier_recent, k.brier_recent),
            ] {
                if let Some(v) = v {
                    set(g, v);
                }
            }
        }
    }

    /// Stream `stream` retired: its series stop (a scrape no longer shows them).
    pub fn retire_stream(&self, stream: &str) {
        for g in [
            &self.last_actual_mbps,
            &self.last_predicted_mbps,
            &self.next_lower_mbps,
            &self.next_upper_mbps,
            &self.last_congestion_prob,
            &self.mase_recent,
            &self.mase_total,
            &self.brier_recent,
            &self.input_shift,
            &self.input_shift_threshold,
        ] {
            let _ = g.remove_label_values(&[stream]);
        }
        for c in [&self.band_hits, &self.band_scored] {
            let _ = c.remove_label_values(&[stream]);
        }
    }

    /// Prometheus text exposition of everything.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, name: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }

    /// The TCP analysis counters follow each capture's counters as they are
    /// published during the run, and several captures add up.
    #[test]
    fn tcp_counters_follow_every_publication_and_add_up_over_captures() {
        let m = Metrics::new();
        let counters = |r, d, z| Counters {
            retransmissions: r,
            duplicate_acks: d,
            zero_windows: z,
            ..Counters::default()
        };
        let read = |m: &Metrics| {
            let t = m.render();
            [
                "netforecast_tcp_retransmissions_total",
                "netforecast_tcp_duplicate_acks_total",
                "netforecast_tcp_zero_window_total",
            ]
            .map(|n| value(&t, n).unwrap_or_else(|| panic!("{n} missing in {t}")))
        };
        m.publish_capture(0, &counters(3, 10, 1), None);
        assert_eq!(read(&m), [3.0, 10.0, 1.0]);
        m.publish_capture(0, &counters(5, 10, 4), None);
        assert_eq!(read(&m), [5.0, 10.0, 4.0], "only what is new is added");
        m.publish_capture(1, &counters(7, 1, 0), None);
        assert_eq!(read(&m), [12.0, 11.0, 4.0], "a second capture adds to them");
    }
}
