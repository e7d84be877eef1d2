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
        let mut csv = FeaturesCsv::create(&self.out, false)?;
        let mut pkts = self
            .packets_out
            .as_deref()
            .map(|p| CsvFile::create(p, PACKETS_HEADER))
            .transpose()?;
        let mut summaries = Vec::new();
        for p in paths {
            let mut source = FileSource::open(p, self.filter.as_deref())?;
            let mut write_err = None;
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
                &mut |r: WindowRow| {
                    if write_err.is_none()
                        && let Err(e) = csv.write(&r)
                    {
                        write_err = Some(e);
                        shutdown.trigger();
                    }
                },
            )?;
            if let Some(e) = write_err.or(observer.error) {
                return Err(e.into());
            }
            if self.print {
                eprintln!("{}", s.render());
            }
            summaries.push(s);
            if shutdown.is_set() {
                break;
            }
        }
        csv.flush()?;
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
