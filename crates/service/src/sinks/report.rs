//! The evaluation sink of `replay`: every forecast scored against the window it
//! was made for, next to the naive baselines on exactly the same windows; the
//! report JSON (INTERFACE.md "Report JSON"), the phase-shift plot and the
//! printed table come from it when the run finishes.

use super::plot::{self, phase_shift_png};
use super::{Sink, SinkError};
use crate::capture::CaptureSummary;
use crate::forecast::Scored;
use engine::eval::{Calibration, Forecasts, Scoreboard, calibration, shown};
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
    /// The published forecast's metrics (the online combination of the model
    /// and the baselines, with the recalibrated probability).
    pub published: Option<engine::eval::Metrics>,
    /// The model's metrics.
    pub model: engine::eval::Metrics,
    /// Next = this window.
    pub persistence: engine::eval::Metrics,
    /// Next = the mean of the last 15 windows.
    pub mean_last_15: engine::eval::Metrics,
    /// Next = the exponentially weighted mean.
    pub ewma: engine::eval::Metrics,
    /// Calibration of the probabilities: the model's and the published one.
    pub calibration: CalibrationReport,
    /// The same metrics for each capture on its own.
    pub per_capture: Vec<CaptureReport>,
    /// The same metrics pooled per traffic class (`replay --classes`); empty
    /// without a manifest.
    pub per_class: Vec<ClassReport>,
    /// How unlike the training data the input was (`engine::shift`); null
    /// with `input_shift_note` saying why when it could not be judged.
    pub input_shift: Option<ShiftReport>,
    /// Why `input_shift` is null, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_shift_note: Option<String>,
    /// How often the actual fell inside the published forecast's band.
    pub band: BandReport,
    /// The events (`crate::events`), in order of their end.
    pub events: Vec<crate::events::Event>,
    /// The events against the captures' schedules (`replay --events-truth`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events_truth: Option<crate::truth::TruthReport>,
}

/// Windows whose forecast had a band, and where their actual fell.
#[derive(Debug, Default)]
struct BandTally {
    scored: u64,
    below: u64,
    above: u64,
    width_sum: f64,
    /// Windows forecast after a silent window, and of them inside.
    after_silent: u64,
    after_silent_inside: u64,
}

/// The prediction band's measured coverage (`service::band`).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct BandReport {
    /// The coverage it aims at (upper minus lower quantile).
    pub nominal: f64,
    /// Scored windows whose forecast had a band.
    pub scored: u64,
    /// Share of those whose throughput fell inside; null when none.
    pub coverage: Option<f64>,
    /// Mean width of those bands, Mbit/s.
    pub mean_width_mbps: Option<f64>,
    /// Share below the lower edge.
    pub below: Option<f64>,
    /// Share above the upper edge.
    pub above: Option<f64>,
    /// Coverage of the bands of forecasts made after a busy window, and
    /// after a silent one: there the next window is mostly silent too, the
    /// band is [0, 0] and it covers every silent window and no burst, so
    /// sparse traffic covers far more than the nominal share (an interval
    /// cannot cover 80 % of a distribution with 95 % of its mass at zero).
    pub coverage_after_busy: Option<f64>,
    /// See `coverage_after_busy`.
    pub coverage_after_silent: Option<f64>,
    /// Windows forecast after a silent window.
    pub scored_after_silent: u64,
}

/// One traffic class's pooled scores.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ClassReport {
    /// The class, as the manifest names it.
    pub class: String,
    /// Its captures in this run.
    pub captures: usize,
    /// Windows scored.
    pub windows: usize,
    /// Published, model and baselines on its windows.
    pub scores: Scoreboard,
    /// Calibration of the published probability.
    pub calibration: Calibration,
    /// The band's coverage on its windows.
    pub band: BandReport,
}

/// The input-shift monitor's verdict over the run.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ShiftReport {
    /// The largest distance the training data showed.
    pub threshold: f64,
    /// The largest distance seen here.
    pub max: f64,
    /// Windows (with a full minute behind them) beyond the threshold.
    pub windows_over: u64,
    /// Windows with a full minute behind them.
    pub windows_judged: u64,
}

/// Calibration of the model's and the published probability.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CalibrationReport {
    /// The model's probability.
    pub model: Calibration,
    /// The published (recalibrated) probability.
    pub published: Calibration,
    /// Brier score of the constant prevalence, fitted on these windows.
    pub brier_prevalence: f64,
    /// Brier score of P(next below | current below) and P(next below | current
    /// above), both fitted on these windows (an in-sample, so generous, baseline).
    pub brier_conditional: f64,
}

/// Brier scores of the prevalence and of the two conditional frequencies.
fn reference_briers(f: &Forecasts, threshold: f64) -> (f64, f64) {
    let n = f.actual.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let y: Vec<f64> = f
        .actual
        .iter()
        .map(|a| f64::from(u8::from(*a < threshold)))
        .collect();
    let cur: Vec<bool> = f.persistence.iter().map(|p| *p < threshold).collect();
    let prev = y.iter().sum::<f64>() / n as f64;
    let brier_prev = y.iter().map(|v| (v - prev).powi(2)).sum::<f64>() / n as f64;
    let mean_where = |c: bool| {
        let (s, k) = y
            .iter()
            .zip(&cur)
            .filter(|(_, x)| **x == c)
            .fold((0.0, 0usize), |(s, k), (v, _)| (s + v, k + 1));
        if k == 0 { prev } else { s / k as f64 }
    };
    let (p1, p0) = (mean_where(true), mean_where(false));
    let brier_cond = y
        .iter()
        .zip(&cur)
        .map(|(v, c)| (v - if *c { p1 } else { p0 }).powi(2))
        .sum::<f64>()
        / n as f64;
    (brier_prev, brier_cond)
}

/// One capture's scores.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CaptureReport {
    /// The capture.
    pub name: String,
    /// Windows scored.
    pub windows: usize,
    /// Published, model and baselines on this capture's windows.
    pub scores: Scoreboard,
    /// Calibration of the published probability on this capture.
    pub calibration: Calibration,
    /// The band's coverage on this capture.
    pub band: BandReport,
}

fn slice(f: &Forecasts, r: std::ops::Range<usize>) -> Forecasts {
    Forecasts {
        actual: f.actual[r.clone()].to_vec(),
        model: f.model[r.clone()].to_vec(),
        model_prob: f.model_prob[r.clone()].to_vec(),
        persistence: f.persistence[r.clone()].to_vec(),
        mean: f.mean[r.clone()].to_vec(),
        ewma: f.ewma[r.clone()].to_vec(),
        published: f.published[r.clone()].to_vec(),
        published_prob: f.published_prob[r].to_vec(),
    }
}

fn labels(f: &Forecasts, threshold: f64) -> Vec<bool> {
    f.actual.iter().map(|a| *a < threshold).collect()
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
    /// Capture name (file name without extensions) -> traffic class.
    pub classes: BTreeMap<String, String>,
    /// The events scored against schedules (`replay --events-truth`), filled
    /// by [`crate::truth::TruthSink`] as captures end.
    pub truth: Option<Arc<Mutex<Vec<crate::truth::CaptureTruth>>>>,
}

/// A capture's name in a manifest: its file name without `.gz`, `.pcap`,
/// `.pcapng`, `.cap`.
fn manifest_name(path: &str) -> String {
    let mut n = std::path::Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for ext in [".gz", ".pcapng", ".pcap", ".cap"] {
        if let Some(stem) = n.strip_suffix(ext) {
            n = stem.to_owned();
        }
    }
    n
}

/// Scores the forecasts; writes the report and the plot at the end. The report
/// is also handed back through [`Evaluation::result`].
pub struct Evaluation {
    cfg: ReportSettings,
    f: Forecasts,
    plot_pts: Vec<plot::Point>,
    /// Plot time of each window start of the current capture.
    plot_times: std::collections::BTreeMap<i64, f64>,
    plot_events: Vec<plot::Span>,
    /// (capture index, window start) of the last plotted window.
    plot_last: Option<(usize, i64)>,
    plot_t: f64,
    segment: usize,
    capture: usize,
    summaries: Vec<CaptureSummary>,
    names: Vec<String>,
    /// Where each capture's windows begin in `f`.
    capture_start: usize,
    per_capture: Vec<CaptureReport>,
    /// Class -> (captures, window ranges in `f`).
    class_ranges: BTreeMap<String, (usize, Vec<std::ops::Range<usize>>)>,
    shift: Option<ShiftReport>,
    band: BandTally,
    /// The band of each forecast window in `f` (None before the band has
    /// residuals), with whether the forecast followed a silent window.
    bands: Vec<Option<(f64, f64, bool)>>,
    /// Whether the last window of this capture was silent.
    prev_silent: Option<bool>,
    events: Vec<crate::events::Event>,
    result: Arc<Mutex<Option<ReplayReport>>>,
}

/// The band's coverage over windows with these actuals and bands (with
/// whether the forecast followed a silent window).
fn band_report(actual: &[f64], bands: &[Option<(f64, f64, bool)>]) -> BandReport {
    let mut b = BandTally::default();
    for (a, band) in actual.iter().zip(bands) {
        if let Some((lo, hi, after_silent)) = band {
            b.add(*a, *lo, *hi, *after_silent);
        }
    }
    b.report()
}

impl BandTally {
    fn add(&mut self, a: f64, lo: f64, hi: f64, after_silent: bool) {
        self.scored += 1;
        self.below += u64::from(a < lo);
        self.above += u64::from(a > hi);
        self.width_sum += hi - lo;
        if after_silent {
            self.after_silent += 1;
            self.after_silent_inside += u64::from((lo..=hi).contains(&a));
        }
    }

    fn report(&self) -> BandReport {
        let n = self.scored;
        let share = |k: u64| (n > 0).then(|| k as f64 / n as f64);
        BandReport {
            nominal: crate::band::BandConfig::default().nominal(),
            scored: n,
            coverage: share(n - self.below - self.above),
            mean_width_mbps: (n > 0).then(|| self.width_sum / n as f64),
            below: share(self.below),
            above: share(self.above),
            coverage_after_busy: {
                let busy = n - self.after_silent;
                let inside = n - self.below - self.above - self.after_silent_inside;
                (busy > 0).then(|| inside as f64 / busy as f64)
            },
            coverage_after_silent: (self.after_silent > 0)
                .then(|| self.after_silent_inside as f64 / self.after_silent as f64),
            scored_after_silent: self.after_silent,
        }
    }
}

impl Evaluation {
    /// A sink with these settings.
    pub fn new(cfg: ReportSettings) -> Self {
        Evaluation {
            cfg,
            f: Forecasts::default(),
            plot_pts: Vec::new(),
            plot_times: std::collections::BTreeMap::new(),
            plot_events: Vec::new(),
            plot_last: None,
            plot_t: 0.0,
            segment: 0,
            capture: 0,
            summaries: Vec::new(),
            names: Vec::new(),
            capture_start: 0,
            per_capture: Vec::new(),
            class_ranges: BTreeMap::new(),
            shift: None,
            band: BandTally::default(),
            bands: Vec::new(),
            prev_silent: None,
            events: Vec::new(),
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
        self.plot_times.clear();
        self.capture_start = self.f.actual.len();
        self.prev_silent = None;
        self.names.push(name.to_owned());
        Ok(())
    }

    fn events(&mut self, changes: &[crate::events::Change]) -> Result<(), SinkError> {
        for c in changes {
            if let crate::events::Change::Ended(e) = c {
                self.events.push(e.clone());
                // On the plot's axis: the last plotted window at or before each end.
                let at = |ns: i64| self.plot_times.range(..=ns).next_back().map(|(_, t)| *t);
                let w = self.cfg.width.secs_f64();
                if let Some(from) = at(e.start_ns) {
                    let to = e
                        .end_ns
                        .and_then(|n| at(n - self.cfg.width.ns()))
                        .map_or(from + w, |t| t + w);
                    self.plot_events.push((from, to, e.kind));
                }
            }
        }
        Ok(())
    }

    fn window(&mut self, s: &Scored) -> Result<(), SinkError> {
        // The band's context: the window the forecast was issued at (the previous one).
        let after_silent = self.prev_silent.replace(s.row.is_silent).unwrap_or(false);
        if let Some((d, threshold)) = s.input_shift {
            let r = self.shift.get_or_insert_with(ShiftReport::default);
            r.threshold = threshold;
            r.max = r.max.max(d);
            r.windows_judged += 1;
            if d > threshold {
                r.windows_over += 1;
            }
        }
        let (Some(fc), Some((p, m, e)), Some(pb)) =
            (&s.at_target, s.baselines, &s.published_at_target)
        else {
            return Ok(());
        };
        if let Some((lo, hi)) = s.band_at_target {
            self.band.add(s.row.throughput_mbps, lo, hi, after_silent);
        }
        let f = &mut self.f;
        f.actual.push(s.row.throughput_mbps);
        f.model.push(fc.throughput_mbps);
        f.model_prob.push(fc.congestion_prob);
        f.persistence.push(p);
        f.mean.push(m);
        f.ewma.push(e);
        f.published.push(pb.throughput_mbps);
        f.published_prob.push(pb.congestion_prob);
        self.bands
            .push(s.band_at_target.map(|(lo, hi)| (lo, hi, after_silent)));
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
        self.plot_times.insert(s.row.start_ns, self.plot_t);
        self.plot_pts.push(plot::Point {
            t_s: self.plot_t,
            segment: self.segment,
            actual_mbps: s.row.throughput_mbps,
            predicted_mbps: pb.throughput_mbps,
            congestion_prob: pb.congestion_prob,
        });
        Ok(())
    }

    fn end(&mut self, _index: usize, summary: &CaptureSummary) -> Result<(), SinkError> {
        if self.cfg.print {
            eprintln!("{}", summary.render());
        }
        self.summaries.push(summary.clone());
        let r = self.capture_start..self.f.actual.len();
        if let Some(class) = self.cfg.classes.get(&manifest_name(&summary.name)) {
            let e = self.class_ranges.entry(class.clone()).or_default();
            e.0 += 1;
            e.1.push(r.clone());
        }
        if !r.is_empty() {
            let f = slice(&self.f, r.clone());
            let t = self.cfg.threshold_mbps;
            self.per_capture.push(CaptureReport {
                name: summary.name.clone(),
                windows: r.len(),
                scores: Scoreboard::compute(&f, t),
                calibration: calibration(&labels(&f, t), &f.published_prob),
                band: band_report(&f.actual, &self.bands[r.clone()]),
            });
        }
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
            published: scores.published.clone(),
            model: scores.model.clone(),
            persistence: scores.persistence.clone(),
            mean_last_15: scores.mean_last_15.clone(),
            ewma: scores.ewma.clone(),
            calibration: CalibrationReport {
                brier_prevalence: reference_briers(&self.f, cfg.threshold_mbps).0,
                brier_conditional: reference_briers(&self.f, cfg.threshold_mbps).1,
                model: calibration(&labels(&self.f, cfg.threshold_mbps), &self.f.model_prob),
                published: calibration(
                    &labels(&self.f, cfg.threshold_mbps),
                    &self.f.published_prob,
                ),
            },
            per_capture: self.per_capture.clone(),
            per_class: self
                .class_ranges
                .iter()
                .filter_map(|(class, (captures, ranges))| {
                    let mut f = Forecasts::default();
                    for r in ranges {
                        f.extend(&slice(&self.f, r.clone()));
                    }
                    let bands: Vec<Option<(f64, f64, bool)>> = ranges
                        .iter()
                        .flat_map(|r| self.bands[r.clone()].iter().copied())
                        .collect();
                    (!f.actual.is_empty()).then(|| ClassReport {
                        class: class.clone(),
                        captures: *captures,
                        windows: f.actual.len(),
                        scores: Scoreboard::compute(&f, cfg.threshold_mbps),
                        calibration: calibration(&labels(&f, cfg.threshold_mbps), &f.published_prob),
                        band: band_report(&f.actual, &bands),
                    })
                })
                .collect(),
            band: self.band.report(),
            events: self.events.clone(),
            events_truth: cfg.truth.as_ref().map(|t| {
                crate::truth::TruthReport::pool(t.lock().map(|v| v.clone()).unwrap_or_default())
            }),
            input_shift: self.shift.clone(),
            input_shift_note: self.shift.is_none().then(|| {
                "not judged: the model has no input reference (trained before it existed), or no stream had a full minute of windows".to_owned()
            }),
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
            let headline = scores.published.as_ref().unwrap_or(&scores.model);
            let title = format!(
                "{what} - model {} - published MASE {}, ROC-AUC {}",
                cfg.model_version,
                shown(headline.mase, 3),
                shown(headline.roc_auc, 3)
            );
            phase_shift_png(
                p,
                &title,
                cfg.threshold_mbps,
                &self.plot_pts,
                &self.plot_events,
            )?;
        }
        if cfg.print {
            let c = &report.calibration;
            eprintln!(
                "\nforecasts for {} windows (model {}, threshold {} Mbit/s):\n{}\nprobability: published Brier {:.4}, log loss {:.4}, ECE {:.4}; model Brier {:.4}, ECE {:.4}; prevalence Brier {:.4}, P(next below | current) Brier {:.4}",
                self.f.actual.len(),
                cfg.model_version,
                cfg.threshold_mbps,
                scores.table(),
                c.published.brier,
                c.published.log_loss,
                c.published.ece,
                c.model.brier,
                c.model.ece,
                c.brier_prevalence,
                c.brier_conditional,
            );
            if let Some(t) = &report.events_truth {
                for l in t.lines() {
                    eprintln!("{l}");
                }
                for c in t.per_capture.iter().filter(|c| !c.scored) {
                    eprintln!("events: {}: {}", c.name, c.schedule);
                }
            }
            let b = &report.band;
            if let (Some(c), Some(w)) = (b.coverage, b.mean_width_mbps) {
                eprintln!(
                    "band: {:.1} % of {} windows inside (nominal {:.0} %; {:.1} % below, {:.1} % above), mean width {:.3} Mbit/s",
                    c * 100.0,
                    b.scored,
                    b.nominal * 100.0,
                    b.below.unwrap_or(0.0) * 100.0,
                    b.above.unwrap_or(0.0) * 100.0,
                    w
                );
            }
            if let Some(sh) = &report.input_shift
                && sh.windows_over > 0
            {
                eprintln!(
                    "\ninput unlike the training data: {} of {} windows beyond the training data's feature distance {:.3} (max here {:.3})",
                    sh.windows_over, sh.windows_judged, sh.threshold, sh.max
                );
            }
            if !report.per_class.is_empty() {
                eprintln!(
                    "\nper class (MASE published / model / EWMA, Brier published, ECE published):"
                );
                for c in &report.per_class {
                    eprintln!(
                        "  {:<24} {:>3} captures {:>7} windows  {:>6} / {:>6} / {:>6}  {}  {}",
                        c.class,
                        c.captures,
                        c.windows,
                        shown(c.scores.published.as_ref().map_or(f64::NAN, |m| m.mase), 3),
                        shown(c.scores.model.mase, 3),
                        shown(c.scores.ewma.mase, 3),
                        shown(c.calibration.brier, 4),
                        shown(c.calibration.ece, 4)
                    );
                }
            }
            if report.per_capture.len() > 1 {
                eprintln!("\nper capture (MASE published / model, ECE published):");
                for p in &report.per_capture {
                    eprintln!(
                        "  {:<48} {:>6} windows  {:>6} / {:>6}  {}",
                        p.name,
                        p.windows,
                        shown(p.scores.published.as_ref().map_or(f64::NAN, |m| m.mase), 3),
                        shown(p.scores.model.mase, 3),
                        shown(p.calibration.ece, 4)
                    );
                }
            }
        }
        if let Ok(mut r) = self.result.lock() {
            *r = Some(report);
        }
        Ok(())
    }
}
