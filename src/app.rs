//! Wiring of the commands. `extract` runs the engine over files or a live
//! interface and writes the features CSV; the summary goes to standard error.
//!
//! Owns threads, signals and summaries; the stages own their work.

use crate::live::{KernelStats, LiveCapture, LiveConfig, LiveError};
use crate::pcapfile::{CaptureFile, FileError};
use crate::pipeline::{Counters, Engine, EngineConfig};
use crate::sink::{CsvFile, FeaturesCsv, PACKETS_HEADER, SinkError, format_packet_row};
use crate::window::WindowRow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Live(#[from] LiveError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("invalid filter {filter:?} for link type {linktype}: {detail}")]
    Filter {
        filter: String,
        linktype: u32,
        detail: String,
    },
    #[error("{0}")]
    Usage(String),
    #[error("the {0} thread stopped unexpectedly")]
    Thread(&'static str),
}

/// What to extract from.
#[derive(Clone, Debug)]
pub enum Source {
    Files(Vec<PathBuf>),
    Live(LiveConfig),
}

/// Result of one capture (a file, or the live run).
#[derive(Clone, Debug, serde::Serialize)]
pub struct CaptureSummary {
    pub name: String,
    pub counters: Counters,
    pub rows: u64,
    pub elapsed_s: f64,
    pub cut_short_at: Option<u64>,
    pub invalid_timestamps: u64,
    pub kernel: Option<KernelStats>,
    pub rows_dropped: u64,
}

impl CaptureSummary {
    /// Multi-line human summary for standard error.
    pub fn render(&self) -> String {
        let c = &self.counters;
        let skipped = c.skipped_by_reason();
        let reasons = if skipped.is_empty() {
            String::new()
        } else {
            format!(
                " ({})",
                skipped
                    .iter()
                    .map(|(n, k)| format!("{n} {k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let pps = if self.elapsed_s > 0.0 {
            c.frames as f64 / self.elapsed_s
        } else {
            0.0
        };
        let mut s = format!(
            "{}: {} frames read, {} counted ({} bytes), {} skipped{}, {} filtered\n  windows {} ({} silent), late packets {}, time jumps {}\n  flows {} (peak {}, ended idle {} / closed {} / over cap {}, port reuse {}), ACK RTT samples {}, bytes-in-flight samples {}\n  {:.3} s, {:.0} packets/s",
            self.name,
            c.frames,
            c.counted,
            c.counted_bytes,
            c.skipped_total(),
            reasons,
            c.filtered,
            c.window.windows,
            c.window.silent_windows,
            c.window.late_packets,
            c.window.time_jumps,
            c.flow.flows_created,
            c.flow.flows_peak,
            c.flow.evicted_idle,
            c.flow.evicted_closed,
            c.flow.evicted_cap,
            c.flow.port_reuse_restarts,
            c.rtt_samples,
            c.bif_samples,
            self.elapsed_s,
            pps
        );
        if c.flow.segments_over_budget + c.flow.segments_over_direction_cap > 0 {
            s += &format!(
                "\n  unacked segments not remembered: {} over the per-direction cap, {} over the memory budget",
                c.flow.segments_over_direction_cap, c.flow.segments_over_budget
            );
        }
        if self.invalid_timestamps > 0 {
            s += &format!(
                "\n  records with an out-of-range sub-second timestamp field: {}",
                self.invalid_timestamps
            );
        }
        if let Some(at) = self.cut_short_at {
            s += &format!(
                "\n  warning: the file ends inside a record at byte {at}; everything before it was read"
            );
        }
        if let Some(k) = self.kernel {
            s += &format!(
                "\n  kernel: received {}, dropped {} (buffer full), dropped by interface {}",
                k.received, k.dropped, k.if_dropped
            );
        }
        if self.rows_dropped > 0 {
            s += &format!(
                "\n  rows dropped because the writer fell behind: {}",
                self.rows_dropped
            );
        }
        s
    }
}

/// BPF programs per link type, compiled on first use (files only; live capture
/// filters in the kernel).
struct FileFilter {
    expr: String,
    programs: HashMap<u32, pcap::BpfProgram>,
}

impl FileFilter {
    fn matches(&mut self, linktype: u32, data: &[u8]) -> Result<bool, AppError> {
        if !self.programs.contains_key(&linktype) {
            let dead = pcap::Capture::dead(pcap::Linktype(linktype as i32)).map_err(|e| {
                AppError::Filter {
                    filter: self.expr.clone(),
                    linktype,
                    detail: e.to_string(),
                }
            })?;
            let prog = dead
                .compile(&self.expr, true)
                .map_err(|e| AppError::Filter {
                    filter: self.expr.clone(),
                    linktype,
                    detail: e.to_string(),
                })?;
            self.programs.insert(linktype, prog);
        }
        Ok(self.programs.get(&linktype).is_some_and(|p| p.filter(data)))
    }
}

/// [`process_file`] for replay; with `pace`, records are released no faster than
/// their timestamps (`--realtime`), measured from that instant.
pub fn process_file_paced(
    path: &Path,
    cfg: EngineConfig,
    filter: Option<&str>,
    stop: &AtomicBool,
    pace: Option<Instant>,
    emit: &mut impl FnMut(WindowRow) -> Result<(), AppError>,
) -> Result<CaptureSummary, AppError> {
    process_file_inner(path, cfg, filter, stop, None, pace, emit)
}

/// Run one capture file through a fresh engine; rows go to `emit`.
pub fn process_file(
    path: &Path,
    cfg: EngineConfig,
    filter: Option<&str>,
    stop: &AtomicBool,
    packets_out: Option<&mut CsvFile>,
    emit: &mut impl FnMut(WindowRow) -> Result<(), AppError>,
) -> Result<CaptureSummary, AppError> {
    process_file_inner(path, cfg, filter, stop, packets_out, None, emit)
}

fn process_file_inner(
    path: &Path,
    cfg: EngineConfig,
    filter: Option<&str>,
    stop: &AtomicBool,
    mut packets_out: Option<&mut CsvFile>,
    pace: Option<Instant>,
    emit: &mut impl FnMut(WindowRow) -> Result<(), AppError>,
) -> Result<CaptureSummary, AppError> {
    let start = Instant::now();
    let mut file = CaptureFile::open(path)?;
    let mut engine = Engine::new(cfg);
    let mut filter = filter.map(|f| FileFilter {
        expr: f.to_owned(),
        programs: HashMap::new(),
    });
    let mut rows = 0u64;
    let sink_err: std::cell::RefCell<Option<AppError>> = std::cell::RefCell::new(None);
    let mut on_row = |r: WindowRow| {
        if sink_err.borrow().is_none() {
            match emit(r) {
                Ok(()) => rows += 1,
                Err(e) => *sink_err.borrow_mut() = Some(e),
            }
        }
    };
    let mut n = 0u32;
    let mut frame_no = 0u64;
    let mut line = String::new();
    let mut first_ts: Option<i64> = None;
    while let Some(rec) = file.next_record()? {
        frame_no += 1;
        if let (Some(t0), Some(ts)) = (pace, rec.ts_ns) {
            let base = *first_ts.get_or_insert(ts);
            let due = std::time::Duration::from_nanos((ts - base).max(0) as u64);
            let now = t0.elapsed();
            if due > now {
                std::thread::sleep(due - now);
            }
            if stop.load(Ordering::Relaxed) {
                break;
            }
        }
        if let Some(f) = filter.as_mut() {
            if !f.matches(rec.linktype, rec.data)? {
                engine.filtered();
                continue;
            }
        }
        let counted = engine.frame(rec.linktype, rec.data, rec.orig_len, rec.ts_ns, &mut on_row);
        if let (Some(w), Some((p, a))) = (packets_out.as_deref_mut(), counted) {
            line.clear();
            format_packet_row(frame_no, &p, &a, &mut line);
            w.write_line(&line)?;
        }
        n = n.wrapping_add(1);
        if n % 65536 == 0 && (stop.load(Ordering::Relaxed) || sink_err.borrow().is_some()) {
            break;
        }
    }
    engine.finish(&mut on_row);
    if let Some(e) = sink_err.into_inner() {
        return Err(e);
    }
    Ok(CaptureSummary {
        name: path.display().to_string(),
        counters: engine.counters(),
        rows,
        elapsed_s: start.elapsed().as_secs_f64(),
        cut_short_at: file.notes.cut_short_at,
        invalid_timestamps: file.notes.invalid_timestamps,
        kernel: None,
        rows_dropped: 0,
    })
}

/// Stop flag set by SIGINT/SIGTERM; a second signal ends the process at once.
pub fn shutdown_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Registration only fails for forbidden signals, which these are not.
        let _ = signal_hook::flag::register_conditional_shutdown(sig, 1, Arc::clone(&flag));
        let _ = signal_hook::flag::register(sig, Arc::clone(&flag));
    }
    flag
}

/// `netforecast extract`: features CSV from files or a live interface.
pub fn extract(
    source: Source,
    out: &Path,
    packets_out: Option<&Path>,
    summary_json: Option<&Path>,
    cfg: EngineConfig,
    filter: Option<&str>,
    quiet: bool,
) -> Result<Vec<CaptureSummary>, AppError> {
    let stop = shutdown_flag();
    match source {
        Source::Files(paths) => {
            // Refuse unreadable inputs before creating the output, so a typo does
            // not leave a header-only CSV behind.
            for p in &paths {
                CaptureFile::open(p)?;
            }
            let mut csv = FeaturesCsv::create(out, false)?;
            let mut pkts = packets_out
                .map(|p| CsvFile::create(p, PACKETS_HEADER))
                .transpose()?;
            let mut summaries = Vec::new();
            for p in &paths {
                let s = process_file(p, cfg, filter, &stop, pkts.as_mut(), &mut |r| {
                    csv.write(&r).map_err(AppError::from)
                })?;
                if !quiet {
                    eprintln!("{}", s.render());
                }
                summaries.push(s);
                if stop.load(Ordering::Relaxed) {
                    break;
                }
            }
            csv.flush()?;
            if let Some(p) = pkts.as_mut() {
                p.flush()?;
            }
            if let Some(p) = summary_json {
                write_summary_json(p, &summaries)?;
            }
            if !quiet && summaries.len() > 1 {
                let frames: u64 = summaries.iter().map(|s| s.counters.frames).sum();
                let counted: u64 = summaries.iter().map(|s| s.counters.counted).sum();
                let rows: u64 = summaries.iter().map(|s| s.rows).sum();
                let secs: f64 = summaries.iter().map(|s| s.elapsed_s).sum();
                eprintln!(
                    "total: {} files, {frames} frames, {counted} counted, {rows} windows, {:.0} packets/s",
                    summaries.len(),
                    frames as f64 / secs.max(1e-9)
                );
            }
            Ok(summaries)
        }
        Source::Live(mut live_cfg) => {
            if packets_out.is_some() {
                return Err(AppError::Usage(
                    "--packets-out works with capture files; capture to a file with tcpdump -w first".into(),
                ));
            }
            if let Some(f) = filter {
                live_cfg.filter = f.to_owned();
            }
            let s = vec![extract_live(&live_cfg, out, cfg, &stop, quiet)?];
            if let Some(p) = summary_json {
                write_summary_json(p, &s)?;
            }
            Ok(s)
        }
    }
}

/// The summaries as JSON, one object per capture, for scripts (the lab manifest).
fn write_summary_json(path: &Path, s: &[CaptureSummary]) -> Result<(), AppError> {
    let text = serde_json::to_string_pretty(s).unwrap_or_else(|_| "[]".into());
    std::fs::write(path, text + "\n").map_err(|source| {
        AppError::Sink(SinkError::Write {
            what: path.display().to_string(),
            source,
        })
    })
}

/// Live extract: the capture thread runs the engine and hands closed windows to
/// this thread, which writes them. The channel never blocks capture: when the
/// writer falls behind, rows are dropped and counted.
fn extract_live(
    live_cfg: &LiveConfig,
    out: &Path,
    cfg: EngineConfig,
    stop: &Arc<AtomicBool>,
    quiet: bool,
) -> Result<CaptureSummary, AppError> {
    let mut capture = LiveCapture::open(live_cfg)?;
    let mut csv = FeaturesCsv::create(out, true)?;
    // 4096 rows = 200 s of windows at 50 ms: only a stuck writer fills it.
    let (tx, rx) = crossbeam_channel::bounded::<WindowRow>(4096);
    let stop_c = Arc::clone(stop);
    let name = format!("live {}", live_cfg.iface);
    let handle = std::thread::Builder::new()
        .name("capture".into())
        .spawn(
            move || -> Result<(Counters, KernelStats, u64, f64), LiveError> {
                let start = Instant::now();
                let mut engine = Engine::new(cfg);
                let mut dropped = 0u64;
                let res = capture.run(&mut engine, &stop_c, &mut |r| {
                    if tx.try_send(r).is_err() {
                        dropped += 1;
                    }
                });
                // Dropping `tx` here ends the writer loop.
                drop(tx);
                let k = res?;
                Ok((engine.counters(), k, dropped, start.elapsed().as_secs_f64()))
            },
        )
        .map_err(|_| AppError::Thread("capture"))?;
    let mut write_err = None;
    for row in rx.iter() {
        if write_err.is_none() {
            if let Err(e) = csv.write(&row) {
                // Keep draining so capture never blocks; report once at the end.
                write_err = Some(e);
                stop.store(true, Ordering::Relaxed);
            }
        }
    }
    let joined = handle.join().map_err(|_| AppError::Thread("capture"))?;
    let (counters, kernel, rows_dropped, elapsed_s) = joined?;
    if let Some(e) = write_err {
        return Err(e.into());
    }
    csv.flush()?;
    let s = CaptureSummary {
        name,
        rows: csv.rows,
        counters,
        elapsed_s,
        cut_short_at: None,
        invalid_timestamps: 0,
        kernel: Some(kernel),
        rows_dropped,
    };
    if !quiet {
        eprintln!("{}", s.render());
    }
    Ok(s)
}
