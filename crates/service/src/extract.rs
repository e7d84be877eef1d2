//! `netforecast extract`: the capture stage alone, writing the features CSV
//! (INTERFACE.md "Files") from files or a live interface; summaries to
//! standard error. No model is involved.

use crate::capture::{CaptureObserver, CaptureSummary, NoObserver, run_capture};
use crate::shutdown::Shutdown;
use crate::source::{FileSource, LiveConfig, LiveSource, SourceError, SystemClock};
use engine::capture::PacketSummary;
use engine::csv::{CsvFile, FeaturesCsv, PACKETS_HEADER, SinkError, format_packet_row};
use engine::flow::Analysis;
use engine::pipeline::EngineConfig;
use engine::window::WindowRow;
use std::path::PathBuf;

/// Errors of `extract`.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// An input cannot be read, or capture failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// An output cannot be written.
    #[error(transparent)]
    Output(#[from] SinkError),
    /// The options do not fit together (a usage error).
    #[error("{0}")]
    Usage(String),
    /// The capture thread could not start or panicked.
    #[error("the capture thread stopped unexpectedly")]
    Thread,
}

/// What to extract from.
#[derive(Clone, Debug)]
pub enum Input {
    /// Capture files, one after another, each a separate capture.
    Files(Vec<PathBuf>),
    /// A live interface, until the shutdown signal.
    Live(LiveConfig),
}

/// Settings of `extract`.
#[derive(Clone, Debug)]
pub struct Extract {
    /// Files or an interface.
    pub input: Input,
    /// Features CSV (`-`: standard output).
    pub out: PathBuf,
    /// Per-packet analysis CSV (files only).
    pub packets_out: Option<PathBuf>,
    /// Summaries as JSON.
    pub summary_json: Option<PathBuf>,
    /// Engine settings.
    pub engine: EngineConfig,
    /// BPF filter (files: applied per link type; live: in the kernel).
    pub filter: Option<String>,
    /// Print the summaries.
    pub print: bool,
}

/// Writes the per-packet CSV; the first write error stops the run.
struct PacketsCsv<'a> {
    csv: Option<&'a mut CsvFile>,
    line: String,
    error: Option<SinkError>,
    shutdown: &'a Shutdown,
}

impl CaptureObserver for PacketsCsv<'_> {
    fn packet(&mut self, frame: u64, p: &PacketSummary, a: &Analysis) {
        let Some(csv) = self.csv.as_deref_mut() else {
            return;
        };
        if self.error.is_some() {
            return;
        }
        self.line.clear();
        format_packet_row(frame, p, a, &mut self.line);
        if let Err(e) = csv.write_line(&self.line) {
            self.error = Some(e);
            self.shutdown.trigger();
        }
    }
}

/// A run of rows: `row`, then `n - 1` more at `step_ns` apart whose lines are
/// the same after `window_start` (silent windows carrying the same values).
struct Run {
    row: WindowRow,
    n: u32,
    step_ns: i64,
}

/// Runs per hand-over to the writer thread.
const RUNS_PER_BATCH: usize = 256;

/// Writes the features CSV on a thread of its own, so formatting rows (most of
/// the work on a sparse capture: 864 k windows for 139 k packets) runs beside
/// the engine rather than after it. Rows go over in batches of runs, a run of
/// identical silent rows as one entry: handing every row over instead took
/// the sparse capture from a median 0.047-0.052 s to 0.065 s (21 alternating
/// runs, twice). The first write error stops the run.
struct RowWriter<'scope> {
    tx: Option<crossbeam_channel::Sender<Vec<Run>>>,
    spare: crossbeam_channel::Receiver<Vec<Run>>,
    batch: Vec<Run>,
    thread: Option<std::thread::ScopedJoinHandle<'scope, Result<(), SinkError>>>,
}

impl engine::window::RowSink for &mut RowWriter<'_> {
    fn row(&mut self, r: WindowRow) {
        self.push(r)
    }

    fn silent_run(&mut self, first: WindowRow, n: u64, width_ns: i64) {
        RowWriter::silent_run(self, first, n, width_ns)
    }
}

impl<'scope> RowWriter<'scope> {
    fn start<'env>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        mut csv: FeaturesCsv,
        shutdown: &'env Shutdown,
    ) -> Result<Self, ExtractError> {
        let (tx, rx) = crossbeam_channel::bounded::<Vec<Run>>(8);
        let (spare_tx, spare) = crossbeam_channel::bounded::<Vec<Run>>(10);
        let thread = std::thread::Builder::new()
            .name("csv-writer".into())
            .spawn_scoped(scope, move || {
                let written = rx.iter().try_for_each(|mut batch| {
                    batch
                        .iter()
                        .try_for_each(|r| csv.write_repeated(&r.row, r.n, r.step_ns))?;
                    batch.clear();
                    let _ = spare_tx.try_send(batch);
                    Ok(())
                });
                let result = written.and_then(|()| csv.flush());
                if result.is_err() {
                    shutdown.trigger();
                }
                result
            })
            .map_err(|_| ExtractError::Thread)?;
        Ok(RowWriter {
            tx: Some(tx),
            spare,
            batch: Vec::with_capacity(RUNS_PER_BATCH),
            thread: Some(thread),
        })
    }

    fn push(&mut self, r: WindowRow) {
        if let Some(last) = self.batch.last_mut()
            && r.is_silent
            && last.row.is_silent
            && engine::csv::same_after_start(&r, &last.row)
        {
            let step = if last.n == 1 {
                r.start_ns - last.row.start_ns
            } else {
                last.step_ns
            };
            let next = step
                .checked_mul(i64::from(last.n))
                .and_then(|d| last.row.start_ns.checked_add(d));
            if step > 0 && next == Some(r.start_ns) && last.n < u32::MAX {
                last.step_ns = step;
                last.n += 1;
                return;
            }
        }
        if self.batch.len() == RUNS_PER_BATCH {
            self.send();
        }
        self.batch.push(Run {
            row: r,
            n: 1,
            step_ns: 0,
        });
    }

    /// `n` silent rows `width_ns` apart, as runs: the first joins the last
    /// run when it continues it, the rest extend that run.
    fn silent_run(&mut self, first: WindowRow, n: u64, width_ns: i64) {
        let mut r = first;
        let mut left = n;
        while left > 0 {
            self.push(r);
            left -= 1;
            r.start_ns += width_ns;
            let last = self.batch.last_mut().expect("a row was just pushed");
            let next = i64::from(last.n)
                .checked_mul(width_ns)
                .and_then(|d| last.row.start_ns.checked_add(d));
            if left > 0 && (last.n == 1 || last.step_ns == width_ns) && next == Some(r.start_ns) {
                let take = left.min(u64::from(u32::MAX - last.n));
                last.step_ns = width_ns;
                last.n += take as u32;
                left -= take;
                r.start_ns += width_ns * take as i64;
            }
        }
    }

    fn send(&mut self) {
        let next = self
            .spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(RUNS_PER_BATCH));
        let batch = std::mem::replace(&mut self.batch, next);
        // A send fails only once the writer has stopped on an error, which it
        // reports from `finish`.
        if let Some(tx) = &self.tx {
            let _ = tx.send(batch);
        }
    }

    /// Hand over what is left, wait for the writer, and report its error.
    fn finish(&mut self) -> Result<(), SinkError> {
        if !self.batch.is_empty() {
            self.send();
        }
        self.tx = None;
        match self.thread.take().map(|t| t.join()) {
            None => Ok(()),
            Some(Ok(r)) => r,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
        }
    }
}

impl Extract {
    /// Run to the end of the files, or until the shutdown signal (live).
    pub fn run(&self, shutdown: &Shutdown) -> Result<Vec<CaptureSummary>, ExtractError> {
        let summaries = match &self.input {
            Input::Files(paths) => self.files(paths, shutdown)?,
            Input::Live(cfg) => {
                if self.packets_out.is_some() {
                    return Err(ExtractError::Usage(
                        "--packets-out works with capture files; capture to a file with tcpdump -w first".into(),
                    ));
                }
                let mut cfg = cfg.clone();
                if let Some(f) = &self.filter {
                    cfg.filter = f.clone();
                }
                vec![self.live(&cfg, shutdown)?]
            }
        };
        if let Some(p) = &self.summary_json {
            let text = serde_json::to_string_pretty(&summaries).unwrap_or_else(|_| "[]".into());
            std::fs::write(p, text + "\n").map_err(|source| SinkError::Write {
                what: p.display().to_string(),
                source,
            })?;
        }
        Ok(summaries)
    }

    fn files(
        &self,
        paths: &[PathBuf],
        shutdown: &Shutdown,
    ) -> Result<Vec<CaptureSummary>, ExtractError> {
        // Refuse unreadable inputs before creating the output, so a typo does
        // not leave a header-only CSV behind.
        for p in paths {
            if engine::pcapfile::CaptureFile::can_check_first(p) {
                FileSource::open(p, None)?;
            }
        }
        let csv = FeaturesCsv::create(&self.out, false)?;
        let mut pkts = self
            .packets_out
            .as_deref()
            .map(|p| CsvFile::create(p, PACKETS_HEADER))
            .transpose()?;
        let mut summaries = Vec::new();
        std::thread::scope(|scope| -> Result<(), ExtractError> {
            let mut rows = RowWriter::start(scope, csv, shutdown)?;
            for (i, p) in paths.iter().enumerate() {
                let mut source = FileSource::open(p, self.filter.as_deref())?;
                let mut observer = PacketsCsv {
                    csv: pkts.as_mut(),
                    line: String::new(),
                    error: None,
                    shutdown,
                };
                let s = run_capture(
                    &mut source,
                    self.engine,
                    &SystemClock,
                    0,
                    shutdown,
                    &mut observer,
                    &mut rows,
                )?;
                if let Some(e) = observer.error {
                    return Err(e.into());
                }
                if shutdown.is_set() || i + 1 == paths.len() {
                    // A stop or a write error (which one is known once the
                    // writer has written what it was given), or the end: the
                    // outputs are complete before the last summary says so.
                    rows.finish()?;
                    if let Some(p) = pkts.as_mut() {
                        p.flush()?;
                    }
                }
                if self.print {
                    eprintln!("{}", s.render());
                }
                summaries.push(s);
                if shutdown.is_set() {
                    break;
                }
            }
            rows.finish()?;
            Ok(())
        })?;
        if let Some(p) = pkts.as_mut() {
            p.flush()?;
        }
        if self.print && summaries.len() > 1 {
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

    /// Live: the capture thread runs the engine and hands closed windows to this
    /// thread, which writes them. The channel never blocks capture: when the
    /// writer falls behind, rows are dropped and counted.
    fn live(&self, cfg: &LiveConfig, shutdown: &Shutdown) -> Result<CaptureSummary, ExtractError> {
        let mut source = LiveSource::open(cfg).map_err(SourceError::from)?;
        let mut csv = FeaturesCsv::create(&self.out, true)?;
        // 4096 rows = 200 s of windows at 50 ms: only a stuck writer fills it.
        let (tx, rx) = crossbeam_channel::bounded::<WindowRow>(4096);
        let sd = shutdown.clone();
        let engine = self.engine;
        let handle = std::thread::Builder::new()
            .name("capture".into())
            .spawn(move || {
                let mut dropped = 0u64;
                let grace = source.grace_ns();
                let r = run_capture(
                    &mut source,
                    engine,
                    &SystemClock,
                    grace,
                    &sd,
                    &mut NoObserver,
                    &mut |r| {
                        if tx.try_send(r).is_err() {
                            dropped += 1;
                        }
                    },
                );
                // Dropping `tx` here ends the writer loop.
                drop(tx);
                r.map(|mut s| {
                    s.rows_dropped = dropped;
                    s
                })
            })
            .map_err(|_| ExtractError::Thread)?;
        let mut write_err = None;
        for row in rx.iter() {
            if write_err.is_none()
                && let Err(e) = csv.write(&row)
            {
                // Keep draining so capture never blocks; report once at the end.
                write_err = Some(e);
                shutdown.trigger();
            }
        }
        let mut s = handle.join().map_err(|_| ExtractError::Thread)??;
        if let Some(e) = write_err {
            return Err(e.into());
        }
        csv.flush()?;
        s.rows = csv.rows;
        if self.print {
            eprintln!("{}", s.render());
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::window::RowSink;

    fn silent(start_ns: i64, bif: u64) -> WindowRow {
        WindowRow::silent(start_ns, 0.02, bif, 0)
    }

    /// Writes `feed` through a `RowWriter` into a file, and returns its text.
    fn written(name: &str, feed: impl FnOnce(&mut RowWriter<'_>)) -> String {
        let path =
            std::env::temp_dir().join(format!("nf-rowwriter-{}-{name}.csv", std::process::id()));
        let shutdown = Shutdown::new();
        std::thread::scope(|scope| {
            let csv = FeaturesCsv::create(&path, false).expect("create");
            let mut w = RowWriter::start(scope, csv, &shutdown).expect("start");
            feed(&mut w);
            w.finish().expect("finish");
        });
        let text = std::fs::read_to_string(&path).expect("read");
        let _ = std::fs::remove_file(&path);
        text
    }

    #[test]
    fn silent_runs_write_what_their_rows_write() {
        const W: i64 = 50_000_000;
        let t0 = 1_700_000_000 * 1_000_000_000;
        let busy = |k: i64| WindowRow {
            size_bytes: 1500,
            throughput_mbps: 0.24,
            packets: 1,
            is_silent: false,
            ..silent(t0 + k * W, 0)
        };
        // Runs that start a run, continue a row-by-row one, follow each
        // other, and carry other values; more than a batch of them.
        let mut rows = Vec::new();
        let mut runs = Vec::new();
        let mut k = 0;
        for i in 0..600 {
            rows.push(busy(k));
            runs.push((busy(k), 0));
            k += 1;
            let n = 1 + (i * 37) % 500;
            let bif = if i % 3 == 0 { 0 } else { 1000 * i as u64 };
            rows.push(silent(t0 + k * W, bif));
            runs.push((silent(t0 + k * W, bif), 1));
            k += 1;
            for j in 0..n {
                rows.push(silent(t0 + (k + j) * W, bif));
            }
            runs.push((silent(t0 + k * W, bif), n as u64));
            k += n;
        }
        let by_rows = written("rows", |w| rows.iter().for_each(|r| w.push(*r)));
        let by_runs = written("runs", |mut w| {
            for (r, n) in &runs {
                if *n == 0 {
                    (&mut w).row(*r);
                } else {
                    (&mut w).silent_run(*r, *n, W);
                }
            }
        });
        assert_eq!(by_rows.lines().count(), rows.len() + 1);
        assert!(by_rows == by_runs, "the two files differ");
    }
}
