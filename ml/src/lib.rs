//! netforecast-ml: everything that needs the model, on top of the `netforecast`
//! engine. Owns libtorch (via tch), so the `netforecast` binary does not load it.
//!
//! - [`model`]: the TorchScript forecaster and its 15-window ring ([`train`] makes one);
//! - [`replay`] and [`plot`]: the pipeline from files, metrics against baselines, the plot;
//! - [`daemon`], [`config`], [`influx`], [`metrics`]: the live service and its sinks.

// The engine's modules, under the same paths as in the `netforecast` crate.
pub use netforecast::{app, capture, eval, flow, lab, live, pcapfile, pipeline, rng, sink, window};

pub mod config;
pub mod daemon;
pub mod gbt;
pub mod influx;
pub mod metrics;
pub mod model;
pub mod plot;
pub mod replay;
pub mod train;

use netforecast::app::AppError;
use std::fmt::Write as _;

/// Errors of the model commands; one line each, for `main` to print.
#[derive(Debug, thiserror::Error)]
pub enum MlError {
    #[error(transparent)]
    App(#[from] AppError),
    #[error(transparent)]
    Model(#[from] model::ModelError),
    #[error(transparent)]
    Train(#[from] train::TrainError),
    #[error(transparent)]
    Plot(#[from] plot::PlotError),
    #[error("{0}")]
    Usage(String),
    #[error("the {0} thread stopped unexpectedly")]
    Thread(&'static str),
}

impl From<netforecast::live::LiveError> for MlError {
    fn from(e: netforecast::live::LiveError) -> Self {
        MlError::App(e.into())
    }
}

impl From<netforecast::sink::SinkError> for MlError {
    fn from(e: netforecast::sink::SinkError) -> Self {
        MlError::App(e.into())
    }
}

/// Header of the predictions CSV (INTERFACE.md): one row per window that has a
/// forecast, on the row of the window it predicts.
pub const PREDICTIONS_HEADER: &str = "window_start,actual_mbps,predicted_mbps,congestion_prob";

/// Append one predictions line (with newline).
pub fn format_prediction_row(
    start_ns: i64,
    actual_mbps: f64,
    f: &model::Forecast,
    out: &mut String,
) {
    sink::format_epoch_ns(start_ns, out);
    let _ = writeln!(
        out,
        ",{},{},{}",
        actual_mbps, f.throughput_mbps, f.congestion_prob
    );
}
