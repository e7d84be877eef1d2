//! Where scored windows go. Each sink owns its output format:
//!
//! - [`csv`]: the predictions CSV (INTERFACE.md), plain for replay, rotating for the daemon;
//! - [`influx`]: InfluxDB line protocol over HTTP (v2 and 1.x APIs), batched, with retries,
//!   its queue kept on disk by [`journal`] when a buffer directory is set;
//! - [`kafka`]: the same points as messages to a Kafka topic (line protocol or JSON);
//! - [`prometheus`]: the daemon's metrics registry (served by [`crate::web`]);
//! - [`report`]: the replay report JSON and the printed table (metrics against baselines);
//! - [`plot`]: the phase-shift PNG;
//! - [`memory`]: every scored window kept in memory, for tests.
//!
//! The writer stage calls a sink from one thread, in window order.

pub mod alertmanager;
pub mod csv;
pub mod influx;
pub mod journal;
pub mod kafka;
pub mod memory;
pub mod plot;
pub mod prometheus;
pub mod report;

use crate::capture::CaptureSummary;
use crate::forecast::Scored;
use std::time::{Duration, Instant};

/// Errors of the sinks.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// A CSV file could not be created or written.
    #[error(transparent)]
    Csv(#[from] engine::csv::SinkError),
    /// The plot could not be drawn or saved.
    #[error(transparent)]
    Plot(#[from] plot::PlotError),
    /// The InfluxDB writer could not be set up.
    #[error(transparent)]
    Influx(#[from] influx::InfluxError),
    /// The Kafka producer could not be set up.
    #[error("{0}")]
    Kafka(String),
    /// The Alertmanager client could not be set up.
    #[error("cannot set up the Alertmanager client: {0}")]
    Alertmanager(String),
    /// The HTML report could not be written.
    #[error(transparent)]
    Html(#[from] crate::web::report::HtmlError),
    /// There was nothing to report on.
    #[error("{0}")]
    Empty(String),
}

/// One output of the pipeline.
pub trait Sink: Send {
    /// Stream number `index` (from 0; a capture: a file, an interface) named
    /// `name` begins. Replay's captures come one after another; the daemon's
    /// interfaces all at once, their windows interleaved (`Scored::stream`
    /// says whose), each stream's in window order.
    fn begin(&mut self, _index: usize, _name: &str) -> Result<(), SinkError> {
        Ok(())
    }
    /// One window and its forecasts, in its stream's window order.
    fn window(&mut self, s: &Scored) -> Result<(), SinkError>;
    /// Stream `index` ended.
    fn end(&mut self, _index: usize, _summary: &CaptureSummary) -> Result<(), SinkError> {
        Ok(())
    }
    /// Events started or ended (`crate::events`), after the window that
    /// decided them.
    fn events(&mut self, _changes: &[crate::events::Change]) -> Result<(), SinkError> {
        Ok(())
    }
    /// Periodic work (flushes, retries); called at least every 250 ms.
    fn tick(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
    /// When this sink next wants a [`Sink::tick`] (None: no sooner than usual).
    fn next_due(&self) -> Option<Instant> {
        None
    }
    /// No more windows: flush what is held, giving up at `deadline`.
    fn finish(&mut self, _deadline: Instant) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Longest the writer waits for a window before it ticks the sinks.
pub const TICK: Duration = Duration::from_millis(250);
