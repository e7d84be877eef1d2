//! netforecast's service side: the one pipeline `replay` and the daemon run.
//!
//! ```text
//! source ──> capture stage ──> forecast stage ──> sinks
//! (file, live) (engine: windows) (model, matching)  (CSV, InfluxDB, Prometheus, report, plot)
//! ```
//!
//! - [`source`]: packet sources (files, live capture) and the clock;
//! - [`capture`]: a source through the engine into window rows, with its summary;
//! - [`forecast`]: each window to the model, each forecast matched to its target;
//! - [`online`]: self-scoring, the published combination and the recalibrated probability
//!   ([`analog`]: its expert that looks up the stream's own past);
//! - [`pipeline`]: the three threads and their queues, with everything passed in;
//! - [`sinks`]: every output, each owning its format;
//! - [`live`] and [`web`]: the last minutes in memory, and the HTTP endpoint (page, REST API, live stream, metrics);
//! - [`extract`], [`replay`], [`daemon`]: the commands, as wiring of the above;
//! - [`fleet`]: a simulated fleet of routers for the scale tests;
//! - [`config`]: the daemon's TOML and environment settings;
//! - [`shutdown`] and [`diag`]: the stop signal, and warnings that do not repeat.
//!
//! No libtorch here: a model is anything that implements
//! [`engine::forecast::SequenceModel`].

#![warn(missing_docs)]

pub mod analog;
pub mod band;
pub mod capture;
pub mod config;
pub mod daemon;
pub mod diag;
pub mod events;
pub mod extract;
pub mod fleet;
pub mod forecast;
pub mod hosts;
pub mod live;
pub mod notify;
pub mod online;
pub mod pipeline;
pub mod replay;
pub mod shutdown;
pub mod sinks;
pub mod source;
pub mod truth;
pub mod web;

/// Appends `v`, first dropping the oldest value when `q` already holds `n`:
/// the last `n` values, oldest first.
pub(crate) fn push_bounded<T>(q: &mut std::collections::VecDeque<T>, v: T, n: usize) {
    if q.len() == n {
        q.pop_front();
    }
    q.push_back(v);
}
