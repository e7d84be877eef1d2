//! The evaluation sink of `replay`: every forecast scored against the window it
//! was made for, next to the naive baselines on exactly the same windows; the
//! report JSON (INTERFACE.md "Report JSON"), the phase-shift plot and the
//! printed table come from it when the run finishes.

use super::plot::{self, phase_shift_png};
use super::{Sink, SinkError};
use crate::capture::CaptureSummary;
use crate::forecast::Scored;
use engine::eval::{Forecasts, Scoreboard};
use engine::forecast::{LOOKBACK, WindowWidth};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What `replay --report` writes (INTERFACE.md "Report JSON").
#[derive(Clone, Debug, serde::Serialize)]
pub struct ReplayReport {
    /// The model directory.
    pub model_dir: String,
    /// The model's short identifier.
    pub model_version: String,
    /// The congestion threshold, Mbit/s.
    pub threshold_mbps: f64,
    /// The captures, in order.
    pub captures: Vec<String>,
    /// Windows with a forecast (the ones scored).
    pub windows: usize,
    /// TCP segments counted.
    pub packets: u64,
    /// Frames not counted, by reason.
    pub skipped_packets: BTreeMap<String, u64>,
    /// The model's metrics.
    pub model: engine::eval::Metrics,
    /// Next = this window.
    pub persistence: engine::eval::Metrics,
    /// Next = the mean of the last 15 windows.
    pub mean_last_15: engine::eval::Metrics,
    /// Next = the exponentially weighted mean.
    pub ewma: engine::eval::Metrics,
}

/// Settings of the evaluation sink.
#[derive(Clone, Debug)]
pub struct ReportSettings {
    /// Model directory, as given.
    pub model_dir: String,
    /// The model's identifier.
    pub model_version: String,
    /// The congestion threshold, Mbit/s.
    pub threshold_mbps: f64,
    /// Window width (the plot's time axis).
    pub width: WindowWidth,
    /// Write the report JSON here.
    pub report: Option<PathBuf>,
    /// Draw the phase-shift PNG here.
    pub plot: Option<PathBuf>,
    /// Print each capture's summary and the table to standard error.
    pub print: bool,
}

/// Scores the forecasts; writes the report and the plot at the end. The report
/// is also handed back through [`Evaluation::result`].
pub struct Evaluation {
    cfg: ReportSettings,
    f: Forecasts,
    plot_pts: Vec<plot::Point>,
    /// (capture index, window start) of the last plotted window.
    plot_last: Option<(usize, i64)>,
    plot_t: f64,
    segment: usize,
    capture: usize,
    summaries: Vec<CaptureSummary>,
    names: Vec<String>,
    result: Arc<Mutex<Option<ReplayReport>>>,
}

impl Evaluation {
    /// A sink with these settings.
    pub fn new(cfg: ReportSettings) -> Self {
        Evaluation {
            cfg,
            f: Forecasts::default(),
            plot_pts: Vec::new(),
            plot_last: None,
            plot_t: 0.0,
            segment: 0,
            capture: 0,
            summaries: Vec::new(),
            names: Vec::new(),
            result: Arc::default(),
        }
    }

    /// Where the report appears when the run has finished.
    pub fn result(&self) -> Arc<Mutex<Option<ReplayReport>>> {
        Arc::clone(&self.result)
    }
}

impl Sink for Evaluation {
    fn begin(&mut self, index: usize, name: &str) -> Result<(), SinkError> {
        self.capture = index;
        self.names.push(name.to_owned());
        Ok(())
    }

    fn window(&mut self, s: &Scored) -> Result<(), SinkError> {
        let (Some(fc), Some((p, m, e))) = (&s.at_target, s.baselines) else {
            return Ok(());
        };
        let f = &mut self.f;
        f.actual.push(s.row.throughput_mbps);
        f.model.push(fc.throughput_mbps);
        f.model_prob.push(fc.congestion_prob);
        f.persistence.push(p);
        f.mean.push(m);
        f.ewma.push(e);
        // Plot time: forecast windows laid end to end; a new capture or a grid
        // restart starts a new segment instead of drawing across the gap.
        let w_ns = self.cfg.width.ns();
        match self.plot_last {
            Some((c, last)) if c == self.capture && s.row.start_ns - last == w_ns => {
                self.plot_t += self.cfg.width.secs_f64()
            }
            Some(_) => {
                self.segment += 1;
                self.plot_t += self.cfg.width.secs_f64();
            }
            None => {}
        }
        self.plot_last = Some((self.capture, s.row.start_ns));
        self.plot_pts.push(plot::Point {
            t_s: self.plot_t,
            segment: self.segment,
            actual_mbps: s.row.throughput_mbps,
            predicted_mbps: fc.throughput_mbps,
            congestion_prob: fc.congestion_prob,
        });
        Ok(())
    }

    fn end(&mut self, summary: &CaptureSummary) -> Result<(), SinkError> {
        if self.cfg.print {
            eprintln!("{}", summary.render());
        }
        self.summaries.push(summary.clone());
        Ok(())
    }

    fn finish(&mut self, _deadline: Instant) -> Result<(), SinkError> {
        let cfg = &self.cfg;
        if self.f.actual.is_empty() {
            return Err(SinkError::Empty(format!(
                "no window had a forecast: the captures need at least {} contiguous windows of TCP traffic",
                LOOKBACK + 1
            )));
        }
        let scores = Scoreboard::compute(&self.f, cfg.threshold_mbps);
        let mut skipped = BTreeMap::new();
        for s in &self.summaries {
            for (n, k) in s.counters.skipped_by_reason() {
                *skipped.entry(n.to_string()).or_insert(0) += k;
            }
        }
        let report = ReplayReport {
            model_dir: cfg.model_dir.clone(),
            model_version: cfg.model_version.clone(),
            threshold_mbps: cfg.threshold_mbps,
            captures: self.summaries.iter().map(|s| s.name.clone()).collect(),
            windows: self.f.actual.len(),
            packets: self.summaries.iter().map(|s| s.counters.counted).sum(),
            skipped_packets: skipped,
            model: scores.model.clone(),
            persistence: scores.persistence.clone(),
            mean_last_15: scores.mean_last_15.clone(),
            ewma: scores.ewma.clone(),
        };
        if let Some(p) = &cfg.report {
            std::fs::write(
                p,
                serde_json::to_string_pretty(&report).unwrap_or_default() + "\n",
            )
            .map_err(|source| engine::csv::SinkError::Write {
                what: p.display().to_string(),
                source,
            })?;
        }
        if let Some(p) = &cfg.plot {
            let first = self
                .names
                .first()
                .and_then(|p| std::path::Path::new(p).file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let what = if self.names.len() > 1 {
                format!("{} captures ({first}, ...)", self.names.len())
            } else {
                first
            };
            let title = format!(
                "{what} - model {} - MASE {:.3}, ROC-AUC {:.3}",
                cfg.model_version, scores.model.mase, scores.model.roc_auc
            );
            phase_shift_png(p, &title, cfg.threshold_mbps, &self.plot_pts)?;
        }
        if cfg.print {
            eprintln!(
                "\nforecasts for {} windows (model {}, threshold {} Mbit/s):\n{}",
                self.f.actual.len(),
                cfg.model_version,
                cfg.threshold_mbps,
                scores.table()
            );
        }
        if let Ok(mut r) = self.result.lock() {
            *r = Some(report);
        }
        Ok(())
    }
}
