//! `netforecast replay`: the pipeline fed from capture files, as fast as they
//! can be read (or paced by their timestamps), with [`Policy::REPLAY`] (nothing
//! is dropped; a model error ends the run) and the evaluation sinks: the
//! predictions CSV, the report JSON, the plot and the printed table.

use crate::pipeline::{Pipeline, PipelineError, Policy, RunSummary, SourceOpener};
use crate::shutdown::Shutdown;
use crate::sinks::csv::PredictionsCsv;
use crate::sinks::prometheus::Metrics;
use crate::sinks::report::{Evaluation, ReplayReport, ReportSettings};
use crate::sinks::{Sink, SinkError};
use crate::source::{FileSource, PacketSource, SourceError, SystemClock};
use engine::forecast::SequenceModel;
use engine::pipeline::EngineConfig;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Everything a replay is given.
pub struct Replay<M> {
    /// Capture files, each a separate capture.
    pub inputs: Vec<PathBuf>,
    /// BPF filter for the files.
    pub filter: Option<String>,
    /// Pace by the packet timestamps.
    pub realtime: bool,
    /// Engine settings.
    pub engine: EngineConfig,
    /// The model, and the directory it came from (for the report).
    pub model: M,
    /// The model directory, as given.
    pub model_dir: String,
    /// Predictions CSV (`-`: standard output).
    pub out: Option<PathBuf>,
    /// Report JSON.
    pub report: Option<PathBuf>,
    /// Phase-shift PNG.
    pub plot: Option<PathBuf>,
    /// The self-contained HTML report.
    pub html: Option<PathBuf>,
    /// Score the events against rate schedules: `Some(None)` the one beside
    /// each capture, `Some(Some(F))` the file F (for one capture).
    pub events_truth: Option<Option<PathBuf>>,
    /// The event detector's thresholds (the daemon's `[events]` table).
    pub events: crate::events::EventConfig,
    /// Print the summaries and the table to standard error.
    pub print: bool,
    /// Stops the run between or inside captures.
    pub shutdown: Shutdown,
    /// More sinks (tests).
    pub extra_sinks: Vec<Box<dyn Sink>>,
    /// Publish the raw model instead of the online combination.
    pub model_only: bool,
    /// Most windows per model call (more for batch-invariant models).
    pub batch: usize,
    /// Add the band columns to the predictions CSV.
    pub band: bool,
    /// Corpus manifest with each capture's traffic class (`name`, `class`).
    pub classes: Option<PathBuf>,
}

/// Read a corpus manifest: capture name -> class.
pub fn read_classes(
    path: &std::path::Path,
) -> Result<std::collections::BTreeMap<String, String>, ReplayError> {
    let bad = |detail: String| ReplayError::Classes {
        path: path.to_owned(),
        detail,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .collect();
    let col = |n: &str| header.iter().position(|h| *h == n);
    let (Some(ni), Some(ci)) = (col("name"), col("class")) else {
        return Err(bad(
            "the first line must name the columns, among them name and class".into(),
        ));
    };
    let mut out = std::collections::BTreeMap::new();
    for (i, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Vec<&str> = line.split(',').map(str::trim).collect();
        match (v.get(ni), v.get(ci)) {
            (Some(n), Some(c)) if !n.is_empty() && !c.is_empty() => {
                out.insert((*n).to_owned(), (*c).to_owned());
            }
            _ => return Err(bad(format!("line {} has no name or no class", i + 2))),
        }
    }
    Ok(out)
}

/// Errors of `replay`.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// An input cannot be read.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// An output cannot be created.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// The run failed.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// The `--classes` manifest cannot be used.
    #[error("cannot use {path} as a class manifest: {detail}")]
    Classes {
        /// The manifest.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

impl<M: SequenceModel + Send + 'static> Replay<M> {
    /// Run every capture; the report, with the pipeline's numbers.
    pub fn run(self) -> Result<(ReplayReport, RunSummary), ReplayError> {
        // Refuse unreadable inputs before creating any output.
        for p in &self.inputs {
            if engine::pcapfile::CaptureFile::can_check_first(p) {
                FileSource::open(p, None)?;
            }
        }
        let classes = match &self.classes {
            Some(p) => read_classes(p)?,
            None => Default::default(),
        };
        let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
        if let Some(p) = &self.out {
            sinks.push(Box::new(
                PredictionsCsv::create_with_band(p, self.band).map_err(SinkError::from)?,
            ));
        }
        let truth = self
            .events_truth
            .as_ref()
            .map(|_| Arc::new(std::sync::Mutex::new(Vec::new())));
        if let (Some(file), Some(out)) = (&self.events_truth, &truth) {
            sinks.push(Box::new(crate::truth::TruthSink::new(
                file.clone(),
                self.model.threshold_mbps(),
                self.engine.window.secs_f64(),
                Arc::clone(out),
            )));
        }
        let eval = Evaluation::new(ReportSettings {
            model_dir: self.model_dir.clone(),
            model_version: self.model.version().to_owned(),
            threshold_mbps: self.model.threshold_mbps(),
            width: self.engine.window,
            report: self.report.clone(),
            plot: self.plot.clone(),
            print: self.print,
            classes,
            truth: truth.clone(),
        });
        let result = eval.result();
        sinks.push(Box::new(eval));
        let live = self.html.as_ref().map(|_| crate::live::Live::for_report());
        if let Some(l) = &live {
            sinks.push(Box::new(crate::live::LiveSink::new(Arc::clone(l))));
        }
        sinks.extend(self.extra_sinks);
        let sources: Vec<SourceOpener> = self
            .inputs
            .iter()
            .map(|p| {
                let (p, filter, realtime) = (p.clone(), self.filter.clone(), self.realtime);
                Box::new(move || {
                    let s = FileSource::open(&p, filter.as_deref())?;
                    let s = if realtime { s.paced() } else { s };
                    Ok(Box::new(s) as Box<dyn PacketSource>)
                }) as SourceOpener
            })
            .collect();
        let summary = Pipeline {
            concurrent: false,
            top_hosts: 0,
            top_flows: 0,
            sources,
            engine: self.engine,
            clock: Arc::new(SystemClock),
            grace_ns: 0,
            model: self.model,
            sinks,
            metrics: Metrics::new(),
            shutdown: self.shutdown,
            policy: Policy::REPLAY,
            flush_deadline: Duration::from_secs(10),
            online: (!self.model_only).then(crate::online::OnlineConfig::from_env),
            batch: self.batch,
            events: self.events,
        }
        .run()?;
        if self.print && summary.nonfinite_features > 0 {
            eprintln!(
                "non-finite feature values replaced by 0 before the model: {}",
                summary.nonfinite_features
            );
        }
        let report = result
            .lock()
            .ok()
            .and_then(|mut r| r.take())
            .ok_or_else(|| SinkError::Empty("the report was not made".into()))?;
        if let (Some(p), Some(l)) = (&self.html, &live) {
            crate::web::report::write(p, l, &report).map_err(SinkError::from)?;
        }
        Ok((report, summary))
    }
}
