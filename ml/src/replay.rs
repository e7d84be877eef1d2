//! `netforecast replay`: the forecasting pipeline fed from capture files.

use crate::MlError;
use netforecast::app::{AppError, process_file_paced, shutdown_flag};
use netforecast::pcapfile::CaptureFile;
use netforecast::pipeline::EngineConfig;
use netforecast::sink::{CsvFile, SinkError};
use netforecast::window::WindowRow;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Settings of `netforecast replay`.
#[derive(Clone, Debug)]
pub struct ReplayArgs {
    pub inputs: Vec<PathBuf>,
    pub model: PathBuf,
    pub out: Option<PathBuf>,
    pub report: Option<PathBuf>,
    pub plot: Option<PathBuf>,
    pub realtime: bool,
    pub window_ms: u32,
    pub quiet: bool,
}

/// What `replay --report` writes (INTERFACE.md "Report JSON").
#[derive(Clone, Debug, serde::Serialize)]
pub struct ReplayReport {
    pub model_dir: String,
    pub model_version: String,
    pub threshold_mbps: f64,
    pub captures: Vec<String>,
    /// Windows with a forecast (the ones scored).
    pub windows: usize,
    pub packets: u64,
    pub skipped_packets: std::collections::BTreeMap<String, u64>,
    pub model: netforecast::eval::Metrics,
    pub persistence: netforecast::eval::Metrics,
    pub mean_last_15: netforecast::eval::Metrics,
    pub ewma: netforecast::eval::Metrics,
}

/// `netforecast replay`: the live pipeline fed from capture files. Every window
/// goes to the model; the forecast for window t+1 is scored against t+1's actual
/// next to the naive baselines on exactly the same windows.
pub fn replay(
    a: &ReplayArgs,
    cfg: EngineConfig,
    filter: Option<&str>,
) -> Result<ReplayReport, MlError> {
    use crate::model::Forecaster;
    use netforecast::eval::{Baselines, Forecasts, Scoreboard};
    for p in &a.inputs {
        CaptureFile::open(p).map_err(AppError::from)?;
    }
    let mut fc = Forecaster::load(&a.model, a.window_ms)?;
    let threshold = fc.meta.threshold_mbps;
    let mut out = a
        .out
        .as_deref()
        .map(|p| CsvFile::create(p, crate::PREDICTIONS_HEADER))
        .transpose()?;
    let stop = shutdown_flag();
    let mut f = Forecasts::default();
    let mut plot_pts = Vec::new();
    let mut counters = Vec::new();
    // Plot time: forecast windows laid end to end; a new capture or a grid
    // restart starts a new segment instead of drawing across the gap.
    let mut plot_last: Option<(usize, i64)> = None;
    let mut plot_t = 0.0f64;
    let mut segment = 0usize;
    let w_ns = a.window_ms as i64 * 1_000_000;
    let w_s = a.window_ms as f64 / 1000.0;
    for (file_idx, path) in a.inputs.iter().enumerate() {
        fc.reset();
        let mut base = Baselines::default();
        let mut pending: Option<(crate::model::Forecast, (f64, f64, f64))> = None;
        let mut last_start: Option<i64> = None;
        let mut model_err: Option<crate::model::ModelError> = None;
        let mut line = String::new();
        let mut write_err: Option<SinkError> = None;
        let pace = a.realtime.then(Instant::now);
        let s = process_file_paced(path, cfg, filter, &stop, pace, &mut |row: WindowRow| {
            if model_err.is_some() {
                return Ok(());
            }
            if last_start.is_some_and(|l| row.start_ns - l != w_ns) {
                // The grid restarted (a long gap): history does not carry over.
                fc.reset();
                base = Baselines::default();
                pending = None;
            }
            last_start = Some(row.start_ns);
            if let Some((fcst, (p, m, e))) = pending.take() {
                if fcst.target_start_ns == row.start_ns {
                    f.actual.push(row.throughput_mbps);
                    f.model.push(fcst.throughput_mbps);
                    f.model_prob.push(fcst.congestion_prob);
                    f.persistence.push(p);
                    f.mean.push(m);
                    f.ewma.push(e);
                    match plot_last {
                        Some((fi, last)) if fi == file_idx && row.start_ns - last == w_ns => {
                            plot_t += w_s
                        }
                        Some(_) => {
                            segment += 1;
                            plot_t += w_s;
                        }
                        None => {}
                    }
                    plot_last = Some((file_idx, row.start_ns));
                    plot_pts.push(crate::plot::Point {
                        t_s: plot_t,
                        segment,
                        actual_mbps: row.throughput_mbps,
                        predicted_mbps: fcst.throughput_mbps,
                        congestion_prob: fcst.congestion_prob,
                    });
                    if let Some(o) = out.as_mut() {
                        line.clear();
                        crate::format_prediction_row(
                            row.start_ns,
                            row.throughput_mbps,
                            &fcst,
                            &mut line,
                        );
                        if let Err(e) = o.write_line(&line) {
                            write_err.get_or_insert(e);
                        }
                    }
                }
            }
            base.push(row.throughput_mbps);
            match fc.push(&row) {
                Ok(Some(fcst)) => pending = Some((fcst, base.forecast().unwrap_or_default())),
                Ok(None) => {}
                Err(e) => model_err = Some(e),
            }
            Ok(())
        })?;
        if let Some(e) = model_err {
            return Err(e.into());
        }
        if let Some(e) = write_err {
            return Err(AppError::from(e).into());
        }
        if !a.quiet {
            eprintln!("{}", s.render());
        }
        counters.push(s);
        if stop.load(Ordering::Relaxed) {
            break;
        }
    }
    if let Some(o) = out.as_mut() {
        o.flush().map_err(AppError::from)?;
    }
    if f.actual.is_empty() {
        return Err(MlError::Usage(format!(
            "no window had a forecast: the captures need at least {} contiguous windows of TCP traffic",
            crate::model::LOOKBACK + 1
        )));
    }
    let scores = Scoreboard::compute(&f, threshold);
    let mut skipped = std::collections::BTreeMap::new();
    for s in &counters {
        for (n, k) in s.counters.skipped_by_reason() {
            *skipped.entry(n.to_string()).or_insert(0) += k;
        }
    }
    let report = ReplayReport {
        model_dir: a.model.display().to_string(),
        model_version: fc.meta.model_version.clone(),
        threshold_mbps: threshold,
        captures: counters.iter().map(|s| s.name.clone()).collect(),
        windows: f.actual.len(),
        packets: counters.iter().map(|s| s.counters.counted).sum(),
        skipped_packets: skipped,
        model: scores.model.clone(),
        persistence: scores.persistence.clone(),
        mean_last_15: scores.mean_last_15.clone(),
        ewma: scores.ewma.clone(),
    };
    if let Some(p) = &a.report {
        std::fs::write(
            p,
            serde_json::to_string_pretty(&report).unwrap_or_default() + "\n",
        )
        .map_err(|source| {
            AppError::Sink(SinkError::Write {
                what: p.display().to_string(),
                source,
            })
        })?;
    }
    if let Some(p) = &a.plot {
        let first = a
            .inputs
            .first()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let what = if a.inputs.len() > 1 {
            format!("{} captures ({first}, ...)", a.inputs.len())
        } else {
            first
        };
        let title = format!(
            "{what} - model {} - MASE {:.3}, ROC-AUC {:.3}",
            fc.meta.model_version, scores.model.mase, scores.model.roc_auc
        );
        crate::plot::phase_shift_png(p, &title, threshold, &plot_pts)?;
    }
    if !a.quiet {
        eprintln!(
            "\nforecasts for {} windows (model {}, threshold {} Mbit/s):\n{}",
            f.actual.len(),
            fc.meta.model_version,
            threshold,
            scores.table()
        );
        if fc.nonfinite_features > 0 {
            eprintln!(
                "non-finite feature values replaced by 0 before the model: {}",
                fc.nonfinite_features
            );
        }
    }
    Ok(report)
}
