//! The daemon: live capture -> forecasts -> InfluxDB / CSV, with metrics.
//!
//! Three named threads joined by bounded channels, each with a stated policy
//! when full: capture never blocks (a window that does not fit the inference
//! queue is dropped and counted), inference never blocks (a point that does not
//! fit the writer queue is dropped and counted); the writer owns a tokio
//! runtime, the InfluxDB client and the CSV, and holds up to `buffer_points`
//! through an outage. Shutdown cascades by dropping senders: SIGINT/SIGTERM
//! stops capture, inference drains and returns, the writer flushes within the
//! deadline, main joins all three and prints one summary line.

use crate::MlError as AppError;
use crate::app::shutdown_flag;
use crate::config::DaemonConfig;
use crate::influx::{InfluxWriter, Point, WriterStats};
use crate::live::{KernelStats, LiveCapture, LiveConfig};
use crate::metrics::Metrics;
use crate::model::{Forecast, Forecaster};
use crate::pipeline::{Counters, Engine, EngineConfig};
use crate::sink::SinkError;
use crate::window::{FEATURE_NAMES, WindowRow};
use crate::{PREDICTIONS_HEADER, format_prediction_row};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Windows waiting for inference: 1024 is 51 s at 50 ms.
const ROWS_QUEUE: usize = 1024;
/// Points waiting for the writer thread (it buffers further on its own).
const POINTS_QUEUE: usize = 4096;

/// What inference hands the writer for one window.
struct Out {
    point: Point,
    /// Predictions CSV row: (window start, actual, the forecast for it).
    csv: Option<(i64, f64, Forecast)>,
}

/// The daemon's end-of-run numbers.
#[derive(Clone, Debug, Default)]
pub struct DaemonSummary {
    pub seconds: f64,
    pub counters: Counters,
    pub kernel: KernelStats,
    pub windows_dropped: u64,
    pub forecasts: u64,
    pub points_dropped_queue: u64,
    pub writer: WriterStats,
    pub csv_rows: u64,
    pub csv_errors: u64,
}

/// Predictions CSV with size-based rotation (`F`, `F.1` .. `F.keep`).
struct RotatingCsv {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    file: Option<std::io::BufWriter<std::fs::File>>,
    bytes: u64,
    /// Rows in the buffer, not yet on disk.
    pending: u64,
}

impl RotatingCsv {
    fn open(path: &Path, max_mib: u64, keep: u32) -> Result<Self, SinkError> {
        let mut c = RotatingCsv {
            path: path.to_owned(),
            max_bytes: max_mib.max(1) << 20,
            keep,
            file: None,
            bytes: 0,
            pending: 0,
        };
        c.reopen()?;
        Ok(c)
    }

    fn reopen(&mut self) -> Result<(), SinkError> {
        let exists = self.path.exists();
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|source| SinkError::Create {
                path: self.path.clone(),
                source,
            })?;
        self.bytes = f.metadata().map(|m| m.len()).unwrap_or(0);
        let mut w = std::io::BufWriter::new(f);
        if !exists || self.bytes == 0 {
            let h = format!("{PREDICTIONS_HEADER}\n");
            w.write_all(h.as_bytes()).map_err(|e| self.err(e))?;
            self.bytes += h.len() as u64;
        }
        self.file = Some(w);
        Ok(())
    }

    fn err(&self, source: std::io::Error) -> SinkError {
        SinkError::Write {
            what: self.path.display().to_string(),
            source,
        }
    }

    /// Buffer one row. Rows count as written only when a flush succeeds; an
    /// error here or in [`RotatingCsv::flush`] loses the buffered rows, which the
    /// caller counts.
    fn write(&mut self, line: &str) -> Result<(), SinkError> {
        if self.bytes + line.len() as u64 > self.max_bytes {
            self.flush()?;
            self.file = None;
            for i in (1..self.keep).rev() {
                let _ = std::fs::rename(self.rotated(i), self.rotated(i + 1));
            }
            if self.keep > 0 {
                let _ = std::fs::rename(&self.path, self.rotated(1));
            } else {
                let _ = std::fs::remove_file(&self.path);
            }
            self.reopen()?;
        }
        let r = match self.file.as_mut() {
            Some(f) => f.write_all(line.as_bytes()),
            None => Err(std::io::Error::other("file not open")),
        };
        self.pending += 1;
        if let Err(e) = r {
            self.discard_buffer();
            return Err(self.err(e));
        }
        self.bytes += line.len() as u64;
        Ok(())
    }

    /// Drop what the buffer holds (after a failed write it would only fail again).
    fn discard_buffer(&mut self) {
        if let Some(w) = self.file.take() {
            let (f, _lost) = w.into_parts();
            self.file = Some(std::io::BufWriter::new(f));
        }
    }

    fn rotated(&self, i: u32) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{i}"));
        PathBuf::from(p)
    }

    /// Write the buffer out: Ok(rows now on disk) or Err((error, rows lost)).
    fn commit(&mut self) -> Result<u64, (SinkError, u64)> {
        let r = match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        };
        let n = std::mem::take(&mut self.pending);
        match r {
            Ok(()) => Ok(n),
            Err(e) => {
                self.discard_buffer();
                Err((self.err(e), n))
            }
        }
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.commit().map(|_| ()).map_err(|(e, _)| e)
    }
}

/// Count rows the CSV lost; the first loss is reported in one line, later ones
/// only counted (a full disk would otherwise print every second).
fn csv_failed(e: &SinkError, lost: u64, errors: &mut u64, m: &Metrics) {
    if *errors == 0 {
        eprintln!("netforecast: {e}; forecasts continue, rows that cannot be written are counted");
    }
    *errors += lost.max(1);
    m.csv_errors.inc_by(lost.max(1));
}

/// Flush the CSV's buffer and count its rows as written or lost.
fn commit_csv(c: &mut RotatingCsv, m: &Metrics, rows: &mut u64, errors: &mut u64) {
    match c.commit() {
        Ok(n) => {
            *rows += n;
            m.csv_rows.inc_by(n);
        }
        Err((e, lost)) => csv_failed(&e, lost, errors, m),
    }
}

/// Drop root: switch to `user`'s uid and gid (after the capture is open).
fn drop_privileges(user: &str) -> Result<(), AppError> {
    let name = std::ffi::CString::new(user)
        .map_err(|_| AppError::Usage(format!("bad user name {user:?}")))?;
    // SAFETY: getpwnam returns a pointer into static storage or null; we copy
    // the two integers out immediately, on this thread, before any other call.
    let (uid, gid) = unsafe {
        let pw = libc::getpwnam(name.as_ptr());
        if pw.is_null() {
            return Err(AppError::Usage(format!(
                "no user named {user:?}: create it or give another --user"
            )));
        }
        ((*pw).pw_uid, (*pw).pw_gid)
    };
    // SAFETY: plain libc calls with integer arguments; order matters (groups and
    // gid before uid, or the process could no longer change them).
    let ok = unsafe {
        libc::setgroups(0, std::ptr::null()) == 0
            && libc::setgid(gid) == 0
            && libc::setuid(uid) == 0
    };
    if ok {
        Ok(())
    } else {
        Err(AppError::Usage(format!(
            "cannot switch to user {user:?}: {}; --user needs root",
            std::io::Error::last_os_error()
        )))
    }
}

fn point_for(
    row: &WindowRow,
    prev: Option<&Forecast>,
    next: Option<&Forecast>,
    kernel_drops: i64,
) -> Point {
    let mut fields: Vec<(&'static str, f64)> = Vec::with_capacity(16);
    fields.push(("actual_mbps", row.throughput_mbps));
    if let Some(f) = prev {
        fields.push(("predicted_mbps", f.throughput_mbps));
        fields.push(("congestion_prob", f.congestion_prob));
    }
    if let Some(f) = next {
        fields.push(("issued_predicted_mbps", f.throughput_mbps));
        fields.push(("issued_congestion_prob", f.congestion_prob));
    }
    for (name, v) in FEATURE_NAMES.iter().zip(row.features()) {
        fields.push((name, v));
    }
    fields.push(("kernel_drops", kernel_drops as f64));
    Point {
        ts_ms: row.start_ns.div_euclid(1_000_000),
        fields,
    }
}

/// Run the daemon until SIGINT/SIGTERM.
pub fn run(cfg: DaemonConfig, quiet: bool) -> Result<DaemonSummary, AppError> {
    cfg.validate().map_err(|e| AppError::Usage(e.to_string()))?;
    let start = Instant::now();
    let stop = shutdown_flag();
    let metrics = Metrics::new();
    let model_dir = cfg
        .model
        .clone()
        .unwrap_or_else(crate::model::default_model_dir);

    // Inference thread first: it owns the model, so load errors surface before capture.
    let (row_tx, row_rx) = crossbeam_channel::bounded::<WindowRow>(ROWS_QUEUE);
    let (out_tx, out_rx) = crossbeam_channel::bounded::<Out>(POINTS_QUEUE);
    let (ready_tx, ready_rx) = crossbeam_channel::bounded::<Result<String, AppError>>(1);
    let m = Arc::clone(&metrics);
    let window_ms = cfg.window_ms;
    let status_line = !quiet && std::io::stderr().is_terminal();
    let inference = std::thread::Builder::new()
        .name("inference".into())
        .spawn(move || -> (u64, u64) {
            let mut fc = match Forecaster::load(&model_dir, window_ms) {
                Ok(f) => {
                    let _ = ready_tx.send(Ok(f.meta.model_version.clone()));
                    f
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e.into()));
                    return (0, 0);
                }
            };
            let (mut forecasts, mut dropped) = (0u64, 0u64);
            let mut pending: Option<Forecast> = None;
            let mut n = 0u64;
            let mut last_start: Option<i64> = None;
            let w_ns = window_ms as i64 * 1_000_000;
            for row in row_rx.iter() {
                n += 1;
                if last_start.is_some_and(|l| row.start_ns - l != w_ns) {
                    // A gap in the grid (dropped windows, a clock jump): history restarts.
                    fc.reset();
                }
                last_start = Some(row.start_ns);
                let late_ns = netforecast::live::now_ns() - (row.start_ns + w_ns);
                m.window_delay_seconds.observe(late_ns.max(0) as f64 / 1e9);
                let prev = pending.take().filter(|f| f.target_start_ns == row.start_ns);
                let t = Instant::now();
                let next = match fc.push(&row) {
                    Ok(f) => f,
                    Err(e) => {
                        eprintln!("netforecast: {e}");
                        None
                    }
                };
                if next.is_some() {
                    m.inference_seconds.observe(t.elapsed().as_secs_f64());
                    forecasts += 1;
                    m.forecasts.inc();
                }
                m.last_actual_mbps.set(row.throughput_mbps);
                if let Some(p) = prev {
                    m.last_predicted_mbps.set(p.throughput_mbps);
                }
                if let Some(f) = next {
                    m.last_congestion_prob.set(f.congestion_prob);
                }
                if prev.is_some() || next.is_some() {
                    let out = Out {
                        point: point_for(&row, prev.as_ref(), next.as_ref(), m.kernel_drops.get()),
                        csv: prev.map(|p| (row.start_ns, row.throughput_mbps, p)),
                    };
                    if out_tx.try_send(out).is_err() {
                        dropped += 1;
                        m.points_dropped_queue.inc();
                    }
                }
                if status_line && n % 5 == 0 {
                    eprint!(
                        "\r{} actual {:7.2} Mbit/s  forecast {:>7}  P(below) {:>5}  windows {}   ",
                        crate::sink::hms(row.start_ns),
                        row.throughput_mbps,
                        prev.map(|p| format!("{:.2}", p.throughput_mbps))
                            .unwrap_or_else(|| "-".into()),
                        next.map(|f| format!("{:.2}", f.congestion_prob))
                            .unwrap_or_else(|| "-".into()),
                        n
                    );
                }
                pending = next;
            }
            if status_line {
                eprintln!();
            }
            (forecasts, dropped)
        })
        .map_err(|_| AppError::Thread("inference"))?;
    let model_version = match ready_rx.recv() {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return Err(e),
        Err(_) => return Err(AppError::Thread("inference")),
    };

    // Capture: opened as root, then privileges may be dropped.
    let mut live_cfg = LiveConfig::new(&cfg.iface);
    live_cfg.filter = cfg.filter.clone();
    live_cfg.snaplen = cfg.snaplen;
    live_cfg.buffer_bytes = cfg.buffer_mib.saturating_mul(1 << 20);
    let mut capture = LiveCapture::open(&live_cfg)?;
    if let Some(u) = &cfg.user {
        drop_privileges(u)?;
    }

    // Writer: InfluxDB and/or the CSV.
    let csv_path = cfg
        .csv
        .clone()
        .or_else(|| (!cfg.influx.enabled()).then(|| PathBuf::from("netforecast-predictions.csv")));
    let writer_cfg = cfg.clone();
    let csv_for_writer = csv_path.clone();
    let m = Arc::clone(&metrics);
    let deadline = Duration::from_secs(cfg.shutdown_deadline_s);
    let iface = cfg.iface.clone();
    let mv = model_version.clone();
    let (wready_tx, wready_rx) = crossbeam_channel::bounded::<Result<(), AppError>>(1);
    let writer = std::thread::Builder::new()
        .name("writer".into())
        .spawn(move || -> Result<(WriterStats, u64, u64), AppError> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|_| AppError::Thread("writer runtime"))?;
            let mut influx = if writer_cfg.influx.enabled() {
                let w = InfluxWriter::new(&writer_cfg.influx, &writer_cfg.host, &iface, &mv)
                    .map_err(|e| AppError::Usage(e.to_string()))?;
                match rt.block_on(w.health()) {
                    Ok(()) => {}
                    Err(e) => eprintln!(
                        "netforecast: warning: {e}; points are held (up to {}) and written when it answers",
                        writer_cfg.influx.buffer_points
                    ),
                }
                Some(w)
            } else {
                None
            };
            let mut csv = match &csv_for_writer {
                Some(p) => match RotatingCsv::open(p, writer_cfg.csv_max_mib, writer_cfg.csv_keep) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        let _ = wready_tx.send(Err(e.into()));
                        return Ok((WriterStats::default(), 0, 0));
                    }
                },
                None => None,
            };
            let _ = wready_tx.send(Ok(()));
            let (mut csv_rows, mut csv_errors) = (0u64, 0u64);
            let mut line = String::new();
            let mut last_csv_flush = Instant::now();
            let publish = |w: &InfluxWriter| {
                m.writer_queue.set(w.queued() as i64);
                m.points_written.set(w.stats.points_written as i64);
                m.points_retried.set(w.stats.retries as i64);
                m.points_dropped.set((w.stats.dropped_overflow + w.stats.dropped_rejected) as i64);
            };
            loop {
                let wait = influx
                    .as_ref()
                    .and_then(|w| w.next_due())
                    .map(|d| d.saturating_duration_since(Instant::now()))
                    .unwrap_or(Duration::from_millis(250))
                    .min(Duration::from_millis(250));
                match out_rx.recv_timeout(wait) {
                    Ok(out) => {
                        if let Some(w) = influx.as_mut() {
                            if let Err(e) = w.push(&out.point) {
                                eprintln!("netforecast: {e}");
                            }
                        }
                        if let (Some(c), Some((start, actual, f))) = (csv.as_mut(), out.csv) {
                            line.clear();
                            format_prediction_row(start, actual, &f, &mut line);
                            if let Err(e) = c.write(&line) {
                                let lost = std::mem::take(&mut c.pending);
                                csv_failed(&e, lost, &mut csv_errors, &m);
                            }
                        }
                    }
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                    Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
                }
                if let Some(w) = influx.as_mut() {
                    while rt.block_on(w.flush_once(false)) {}
                    publish(w);
                }
                if last_csv_flush.elapsed() > Duration::from_secs(1) {
                    if let Some(c) = csv.as_mut() {
                        commit_csv(c, &m, &mut csv_rows, &mut csv_errors);
                    }
                    last_csv_flush = Instant::now();
                }
            }
            // Shutdown: everything queued goes out before the deadline if the server allows.
            let end = Instant::now() + deadline;
            if let Some(w) = influx.as_mut() {
                w.hurry();
                while w.queued() > 0 && Instant::now() < end {
                    if !rt.block_on(w.flush_once(true)) {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
                publish(w);
            }
            if let Some(c) = csv.as_mut() {
                commit_csv(c, &m, &mut csv_rows, &mut csv_errors);
            }
            Ok((influx.map(|w| w.stats).unwrap_or_default(), csv_rows, csv_errors))
        })
        .map_err(|_| AppError::Thread("writer"))?;
    match wready_rx.recv() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e),
        Err(_) => return Err(AppError::Thread("writer")),
    }

    let server = if cfg.metrics_addr.is_empty() {
        None
    } else {
        Some(
            crate::metrics::serve(&cfg.metrics_addr, Arc::clone(&metrics), Arc::clone(&stop))
                .map_err(|e| AppError::Usage(e.to_string()))?,
        )
    };
    if !quiet {
        eprintln!(
            "netforecast: capturing on {} (model {model_version}); writing to {}{}{}",
            cfg.iface,
            if cfg.influx.enabled() {
                cfg.influx.url.as_str()
            } else {
                ""
            },
            if cfg.influx.enabled() && csv_path.is_some() {
                " and "
            } else {
                ""
            },
            csv_path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
    }

    // Capture runs here, on a named thread, until the stop flag.
    let m = Arc::clone(&metrics);
    let stop_c = Arc::clone(&stop);
    let engine_cfg = EngineConfig {
        window_ns: cfg.window_ms as i64 * 1_000_000,
        ..EngineConfig::default()
    };
    let capture_thread = std::thread::Builder::new()
        .name("capture".into())
        .spawn(move || -> Result<(Counters, KernelStats, u64), AppError> {
            m.capturing.store(true, Ordering::Relaxed);
            let mut engine = Engine::new(engine_cfg);
            let mut dropped = 0u64;
            let mut published = Counters::default();
            let publish = |e: &Engine, k: KernelStats, published: &mut Counters| {
                let c = e.counters();
                m.frames.inc_by(c.frames - published.frames);
                m.packets_counted.inc_by(c.counted - published.counted);
                for (i, r) in crate::capture::SkipReason::ALL.iter().enumerate() {
                    let d = c.skipped[i] - published.skipped[i];
                    if d > 0 {
                        m.packets_skipped.with_label_values(&[r.name()]).inc_by(d);
                    }
                }
                m.windows
                    .inc_by(c.window.windows - published.window.windows);
                m.silent_windows
                    .inc_by(c.window.silent_windows - published.window.silent_windows);
                m.flows_active.set(c.flow.flows_active as i64);
                m.kernel_drops.set(k.dropped as i64);
                m.kernel_if_drops.set(k.if_dropped as i64);
                *published = c;
            };
            let res = capture.run_with_tick(
                &mut engine,
                &stop_c,
                &mut |r| {
                    if row_tx.try_send(r).is_err() {
                        dropped += 1;
                        m.rows_dropped.inc();
                    }
                },
                &mut |e, k| publish(e, k, &mut published),
            );
            m.capturing.store(false, Ordering::Relaxed);
            drop(row_tx);
            let k = res?;
            publish(&engine, k, &mut published);
            Ok((engine.counters(), k, dropped))
        })
        .map_err(|_| AppError::Thread("capture"))?;

    let captured = capture_thread
        .join()
        .map_err(|_| AppError::Thread("capture"));
    // Whatever capture returned, let inference and the writer drain and flush.
    stop.store(true, Ordering::Relaxed);
    let (forecasts, points_dropped_queue) = inference
        .join()
        .map_err(|_| AppError::Thread("inference"))?;
    let written = writer.join().map_err(|_| AppError::Thread("writer"))?;
    if let Some(s) = server {
        let _ = s.join();
    }
    let (counters, kernel, windows_dropped) = captured??;
    let (writer_stats, csv_rows, csv_errors) = written?;
    Ok(DaemonSummary {
        seconds: start.elapsed().as_secs_f64(),
        counters,
        kernel,
        windows_dropped,
        forecasts,
        points_dropped_queue,
        writer: writer_stats,
        csv_rows,
        csv_errors,
    })
}

impl DaemonSummary {
    pub fn line(&self) -> String {
        format!(
            "netforecast: stopped after {:.1} s: {} packets counted, {} windows, {} forecasts, {} points written ({} retries, {} dropped), {} CSV rows ({} failed), kernel drops {}, windows dropped {}",
            self.seconds,
            self.counters.counted,
            self.counters.window.windows,
            self.forecasts,
            self.writer.points_written,
            self.writer.retries,
            self.writer.dropped_overflow + self.writer.dropped_rejected + self.points_dropped_queue,
            self.csv_rows,
            self.csv_errors,
            self.kernel.dropped + self.kernel.if_dropped,
            self.windows_dropped
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rotates_by_size_and_keeps_the_header() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.csv");
        let mut c = RotatingCsv::open(&p, 1, 2).unwrap();
        let line = format!("{}\n", "x".repeat(1000));
        for _ in 0..3000 {
            c.write(&line).unwrap();
        }
        c.flush().unwrap();
        for f in [p.clone(), c.rotated(1), c.rotated(2)] {
            let text = std::fs::read_to_string(&f).unwrap();
            assert!(text.starts_with(PREDICTIONS_HEADER), "{}", f.display());
            assert!(text.len() <= 1 << 20);
        }
        assert!(!c.rotated(3).exists(), "keeps only 2 old files");
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
        };
        let f = |t: i64, v: f64| Forecast {
            target_start_ns: t,
            throughput_mbps: v,
            congestion_prob: 0.9,
        };
        let p = point_for(
            &row,
            Some(&f(row.start_ns, 1.5)),
            Some(&f(row.start_ns + 50_000_000, 2.5)),
            3,
        );
        assert_eq!(p.ts_ms, 1_700_000_000_050);
        let get = |k: &str| p.fields.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
        assert_eq!(get("actual_mbps"), Some(0.16));
        assert_eq!(get("predicted_mbps"), Some(1.5));
        assert_eq!(get("issued_predicted_mbps"), Some(2.5));
        assert_eq!(get("kernel_drops"), Some(3.0));
        assert_eq!(get("bif"), Some(10.0));
    }
}
