//! The daemon's Prometheus endpoint (`/metrics`, `/healthz`), bound to localhost
//! unless told otherwise. Metrics are kept in a `prometheus` registry; stages
//! publish their own counters into it, the HTTP thread only reads.

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Every metric the daemon exports.
pub struct Metrics {
    pub registry: Registry,
    pub frames: IntCounter,
    pub packets_counted: IntCounter,
    pub packets_skipped: IntCounterVec,
    pub kernel_drops: IntGauge,
    pub kernel_if_drops: IntGauge,
    pub windows: IntCounter,
    pub silent_windows: IntCounter,
    pub flows_active: IntGauge,
    pub rows_dropped: IntCounter,
    pub forecasts: IntCounter,
    pub inference_seconds: Histogram,
    /// Wall time between a window's end and its arrival at inference.
    pub window_delay_seconds: Histogram,
    pub points_dropped_queue: IntCounter,
    pub writer_queue: IntGauge,
    pub points_written: IntGauge,
    pub points_retried: IntGauge,
    pub points_dropped: IntGauge,
    pub csv_rows: IntCounter,
    pub csv_errors: IntCounter,
    pub last_actual_mbps: Gauge,
    pub last_predicted_mbps: Gauge,
    pub last_congestion_prob: Gauge,
    /// Set while the capture thread runs (for /healthz).
    pub capturing: Arc<AtomicBool>,
}

fn reg<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: T) -> T {
    // Names are fixed and unique, so registration cannot fail.
    let _ = r.register(Box::new(m.clone()));
    m
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let r = Registry::new_custom(Some("netforecast".into()), None).unwrap_or_default();
        let c = |n: &str, h: &str| reg(&r, IntCounter::new(n, h).expect("valid metric name"));
        let g = |n: &str, h: &str| reg(&r, IntGauge::new(n, h).expect("valid metric name"));
        let f = |n: &str, h: &str| reg(&r, Gauge::new(n, h).expect("valid metric name"));
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
            flows_active: g("flows_active", "TCP flows tracked"),
            rows_dropped: c(
                "windows_dropped_total",
                "Windows dropped because inference fell behind",
            ),
            forecasts: c("forecasts_total", "Forecasts made"),
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
            points_dropped_queue: c(
                "points_dropped_queue_total",
                "Points dropped because the writer fell behind",
            ),
            writer_queue: g("writer_queue_points", "Points waiting to be written"),
            points_written: g("points_written", "Points written to InfluxDB"),
            points_retried: g("write_retries", "Write attempts that will be retried"),
            points_dropped: g(
                "points_dropped",
                "Points dropped by the writer (buffer full or refused)",
            ),
            csv_rows: c("csv_rows_total", "Rows written to the predictions CSV"),
            csv_errors: c(
                "csv_errors_total",
                "Rows that could not be written to the predictions CSV",
            ),
            last_actual_mbps: f("last_actual_mbps", "Throughput of the last closed window"),
            last_predicted_mbps: f("last_predicted_mbps", "Forecast for the last closed window"),
            last_congestion_prob: f(
                "last_congestion_prob",
                "Probability the next window is below the threshold",
            ),
            capturing: Arc::new(AtomicBool::new(false)),
            registry: r,
        })
    }

    /// Prometheus text exposition of everything.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "cannot serve metrics on {addr}: {detail}; choose another --metrics-addr or give an empty one"
)]
pub struct ServeError {
    pub addr: String,
    pub detail: String,
}

/// Serve `/metrics` and `/healthz` on a named thread until `stop` is set.
pub fn serve(
    addr: &str,
    m: Arc<Metrics>,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>, ServeError> {
    let server = tiny_http::Server::http(addr).map_err(|e| ServeError {
        addr: addr.into(),
        detail: e.to_string(),
    })?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let Ok(Some(req)) = server.recv_timeout(std::time::Duration::from_millis(200))
                else {
                    continue;
                };
                let (code, body, ctype) = match req.url() {
                    "/metrics" => (200, m.render(), "text/plain; version=0.0.4"),
                    "/healthz" => {
                        if m.capturing.load(Ordering::Relaxed) {
                            (200, "ok\n".to_string(), "text/plain")
                        } else {
                            (503, "not capturing\n".to_string(), "text/plain")
                        }
                    }
                    _ => (404, "try /metrics or /healthz\n".to_string(), "text/plain"),
                };
                let header =
                    tiny_http::Header::from_bytes(&b"Content-Type"[..], ctype.as_bytes()).ok();
                let mut resp = tiny_http::Response::from_string(body).with_status_code(code);
                if let Some(h) = header {
                    resp = resp.with_header(h);
                }
                let _ = req.respond(resp);
            }
        })
        .map_err(|e| ServeError {
            addr: addr.into(),
            detail: e.to_string(),
        })
}
