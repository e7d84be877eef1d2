//! The one pipeline `replay` and the daemon run:
//!
//! ```text
//! sources --capture--> windows --inference--> scored windows --writer--> sinks
//! ```
//!
//! Three named threads joined by bounded channels. Everything it uses is passed
//! in: the packet sources, the clock, the model, the sinks, the metrics and the
//! shutdown signal, so a test runs the whole daemon in-process from a capture
//! with a manual clock, a trivial model and an in-memory sink. Replay and the
//! daemon differ only in those inputs and in the [`Policy`]: what a full queue
//! does (replay waits and loses nothing; live capture never waits and counts
//! what it drops) and whether a model error ends the run.
//!
//! Shutdown cascades by dropping senders: when the sources end or the shutdown
//! flag is set, capture returns, inference drains and returns, the writer
//! flushes its sinks within the deadline; [`Pipeline::run`] joins all three and
//! returns one [`RunSummary`].

use crate::capture::{CaptureObserver, CaptureSummary, run_capture};
use crate::events::{Change, Detector, EventConfig};
use crate::forecast::{ForecastStage, Scored};
use crate::online::OnlineConfig;
use crate::shutdown::Shutdown;
use crate::sinks::prometheus::Metrics;
use crate::sinks::{Sink, SinkError, TICK};
use crate::source::{Clock, KernelStats, PacketSource, SourceError};
use engine::forecast::{PredictError, SequenceModel};
use engine::pipeline::{Counters, EngineConfig};
use engine::window::WindowRow;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Windows waiting for inference: 1024 is 51 s at 50 ms.
const ROWS_QUEUE: usize = 1024;
/// Scored windows waiting for the writer (sinks buffer further on their own).
const SCORED_QUEUE: usize = 4096;
/// Most windows in one model call (what is queued when inference comes back).
const MAX_BATCH: usize = 64;

/// Opens a source when its turn comes (files are opened one at a time).
pub type SourceOpener = Box<dyn FnOnce() -> Result<Box<dyn PacketSource>, SourceError> + Send>;

/// What the pipeline does when a queue is full or the model fails.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Wait for room (replay: nothing is lost) instead of dropping and counting
    /// (live: capture never waits).
    pub block_when_full: bool,
    /// A model error ends the run (replay) instead of costing one forecast (live).
    pub model_errors_fatal: bool,
}

impl Policy {
    /// Files: wait, lose nothing, stop on the first model error.
    pub const REPLAY: Policy = Policy {
        block_when_full: true,
        model_errors_fatal: true,
    };
    /// Live capture: never wait, count drops, keep forecasting.
    pub const LIVE: Policy = Policy {
        block_when_full: false,
        model_errors_fatal: false,
    };
}

/// Errors that end a run.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A source failed (a bad file, the interface went away).
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The model failed and the policy says that ends the run.
    #[error(transparent)]
    Model(#[from] PredictError),
    /// A sink failed.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// A thread could not start or panicked.
    #[error("the {0} thread stopped unexpectedly")]
    Thread(&'static str),
}

/// The end-of-run numbers.
#[derive(Clone, Debug, Default)]
pub struct RunSummary {
    /// One summary per capture, in order.
    pub captures: Vec<CaptureSummary>,
    /// Forecasts issued.
    pub forecasts: u64,
    /// Windows dropped because inference fell behind (live).
    pub windows_dropped: u64,
    /// Scored windows dropped because the writer fell behind (live).
    pub scored_dropped: u64,
    /// Failed model calls (live); each costs the forecasts of its windows.
    pub model_errors: u64,
    /// Non-finite feature values replaced by 0 before the model.
    pub nonfinite_features: u64,
}

/// Between capture and inference.
enum Event {
    Begin(usize, String),
    Window(WindowRow),
    End(Box<CaptureSummary>),
}

/// Between inference and the writer.
enum Out {
    Begin(usize, String),
    Window(Box<Scored>),
    Events(Vec<Change>),
    End(Box<CaptureSummary>),
}

/// Everything a run is given.
pub struct Pipeline<M> {
    /// Opened and run one after another, each a separate capture.
    pub sources: Vec<SourceOpener>,
    /// Engine settings (window width, flow-table limits).
    pub engine: EngineConfig,
    /// Wall time, for live sources.
    pub clock: Arc<dyn Clock>,
    /// Delay after a window's end before a live source closes it, ns.
    pub grace_ns: i64,
    /// The model (moved to the inference thread).
    pub model: M,
    /// The outputs (moved to the writer thread).
    pub sinks: Vec<Box<dyn Sink>>,
    /// Counters and gauges, also read by the `/metrics` endpoint when served.
    pub metrics: Arc<Metrics>,
    /// Stops the run.
    pub shutdown: Shutdown,
    /// Full queues and model errors.
    pub policy: Policy,
    /// Longest the sinks may take to flush at the end.
    pub flush_deadline: Duration,
    /// The online combination's settings; `None` publishes the raw model.
    pub online: Option<OnlineConfig>,
    /// The event detector's thresholds.
    pub events: EventConfig,
    /// Most queued windows per model call; batch-invariant models get at
    /// least [`MAX_BATCH`]. 1 keeps every forecast bit for bit as alone.
    pub batch: usize,
}

/// Publishes the capture's counters as metrics (live runs tick once a second).
struct Publish<'a> {
    metrics: &'a Metrics,
}

impl CaptureObserver for Publish<'_> {
    fn tick(&mut self, counters: &Counters, kernel: Option<KernelStats>) {
        self.metrics.publish_capture(counters, kernel);
    }
}

impl<M: SequenceModel + Send + 'static> Pipeline<M> {
    /// Run until the sources end or the shutdown flag is set.
    pub fn run(self) -> Result<RunSummary, PipelineError> {
        let Pipeline {
            sources,
            engine,
            clock,
            grace_ns,
            model,
            sinks,
            metrics,
            shutdown,
            policy,
            flush_deadline,
            online,
            batch,
            events,
        } = self;
        let (row_tx, row_rx) = crossbeam_channel::bounded::<Event>(ROWS_QUEUE);
        let (out_tx, out_rx) = crossbeam_channel::bounded::<Out>(SCORED_QUEUE);

        let width = engine.window;
        let m = Arc::clone(&metrics);
        let sd = shutdown.clone();
        let inf_clock = Arc::clone(&clock);
        let inference = std::thread::Builder::new()
            .name("inference".into())
            .spawn(move || {
                inference_loop(
                    ForecastStage::with_online(model, width, online),
                    row_rx,
                    out_tx,
                    &m,
                    &sd,
                    policy,
                    inf_clock.as_ref(),
                    batch,
                    events,
                )
            })
            .map_err(|_| PipelineError::Thread("inference"))?;

        let sd = shutdown.clone();
        let writer = std::thread::Builder::new()
            .name("writer".into())
            .spawn(move || writer_loop(sinks, out_rx, &sd, flush_deadline))
            .map_err(|_| PipelineError::Thread("writer"))?;

        let m = Arc::clone(&metrics);
        let sd = shutdown.clone();
        let capture = std::thread::Builder::new()
            .name("capture".into())
            .spawn(move || capture_loop(sources, engine, clock, grace_ns, row_tx, &m, &sd, policy))
            .map_err(|_| PipelineError::Thread("capture"))?;

        let captured = capture.join().map_err(|_| PipelineError::Thread("capture"));
        let inferred = inference
            .join()
            .map_err(|_| PipelineError::Thread("inference"));
        let written = writer.join().map_err(|_| PipelineError::Thread("writer"));
        let (captures, windows_dropped) = captured??;
        let mut summary = inferred??;
        written??;
        summary.captures = captures;
        summary.windows_dropped = windows_dropped;
        Ok(summary)
    }
}

#[allow(clippy::too_many_arguments)]
fn capture_loop(
    sources: Vec<SourceOpener>,
    cfg: EngineConfig,
    clock: Arc<dyn Clock>,
    grace_ns: i64,
    tx: crossbeam_channel::Sender<Event>,
    metrics: &Metrics,
    shutdown: &Shutdown,
    policy: Policy,
) -> Result<(Vec<CaptureSummary>, u64), PipelineError> {
    let mut summaries = Vec::new();
    let mut dropped_total = 0u64;
    let result = (|| {
        for (i, open) in sources.into_iter().enumerate() {
            if shutdown.is_set() {
                break;
            }
            let mut source = open()?;
            let mut dropped = 0u64;
            // A closed channel means inference stopped; it reports why.
            let _ = tx.send(Event::Begin(i, source.name()));
            let mut emit = |r: WindowRow| {
                if policy.block_when_full {
                    let _ = tx.send(Event::Window(r));
                } else if tx.try_send(Event::Window(r)).is_err() {
                    dropped += 1;
                    metrics.windows_dropped.inc();
                }
            };
            metrics.set_capturing(true);
            let s = run_capture(
                source.as_mut(),
                cfg,
                clock.as_ref(),
                grace_ns,
                shutdown,
                &mut Publish { metrics },
                &mut emit,
            );
            metrics.set_capturing(false);
            let mut s = s?;
            s.rows_dropped = dropped;
            dropped_total += dropped;
            let _ = tx.send(Event::End(Box::new(s.clone())));
            summaries.push(s);
        }
        Ok::<(), PipelineError>(())
    })();
    // Dropping `tx` (returning) ends inference, which ends the writer.
    result.map(|()| (summaries, dropped_total))
}

#[allow(clippy::too_many_arguments)]
fn inference_loop<M: SequenceModel>(
    mut stage: ForecastStage<M>,
    rx: crossbeam_channel::Receiver<Event>,
    tx: crossbeam_channel::Sender<Out>,
    metrics: &Metrics,
    shutdown: &Shutdown,
    policy: Policy,
    clock: &dyn Clock,
    batch: usize,
    events: EventConfig,
) -> Result<RunSummary, PipelineError> {
    let mut summary = RunSummary::default();
    let mut failed: Option<PredictError> = None;
    let send = |o: Out, summary: &mut RunSummary| {
        if policy.block_when_full {
            let _ = tx.send(o);
        } else if tx.try_send(o).is_err() {
            summary.scored_dropped += 1;
            metrics.scored_dropped.inc();
        }
    };
    let batch_limit = if stage.model().batch_invariant() {
        batch.max(MAX_BATCH)
    } else {
        batch.max(1)
    };
    let mut rows = Vec::with_capacity(batch_limit);
    let mut next = None;
    let width_ns = stage.width().ns();
    let mut detector = Detector::new(events, "", width_ns);
    // End of the last window seen: where events still active at the end stop.
    let mut last_end_ns = 0i64;
    let live = !policy.block_when_full;
    let changed = |ch: Vec<Change>, summary: &mut RunSummary| {
        if ch.is_empty() {
            return;
        }
        for c in &ch {
            crate::events::log(c, live);
        }
        metrics.observe_events(&ch);
        send(Out::Events(ch), summary);
    };
    while let Some(ev) = next.take().or_else(|| rx.recv().ok()) {
        match ev {
            Event::Begin(i, name) => {
                stage.restart();
                // The previous capture's End ended its events.
                detector = Detector::new(events, name.clone(), width_ns);
                send(Out::Begin(i, name), &mut summary);
            }
            Event::End(s) => {
                changed(detector.end_all(last_end_ns), &mut summary);
                send(Out::End(s), &mut summary)
            }
            Event::Window(_) if failed.is_some() => {}
            Event::Window(row) => {
                // What else is queued goes to the model in the same call, if
                // that cannot change a forecast.
                rows.push(row);
                while rows.len() < batch_limit {
                    match rx.try_recv() {
                        Ok(Event::Window(r)) => rows.push(r),
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                let now = clock.now_ns();
                for r in &rows {
                    metrics.observe_window_delay(now - (r.start_ns + stage.width().ns()));
                }
                let (scored, error) = stage.step_batch(std::mem::take(&mut rows));
                if let Some(e) = error {
                    if policy.model_errors_fatal {
                        failed = Some(e);
                        shutdown.trigger();
                        continue;
                    }
                    summary.model_errors += 1;
                    metrics.model_failed(e.to_string());
                    crate::diag::warn_every(
                        &crate::diag::MODEL_ERRORS,
                        format_args!("{e}; those windows have no forecast"),
                    );
                }
                for scored in scored {
                    if scored.issued.is_some() {
                        summary.forecasts += 1;
                    }
                    metrics.observe_scored(&scored);
                    last_end_ns = scored.row.start_ns + width_ns;
                    detector.capture_lost(
                        (metrics.kernel_drops.get() + metrics.kernel_if_drops.get()).max(0) as u64
                            + metrics.windows_dropped.get(),
                    );
                    let ch = detector.window(&scored);
                    send(Out::Window(Box::new(scored)), &mut summary);
                    changed(ch, &mut summary);
                }
            }
        }
    }
    changed(detector.end_all(last_end_ns), &mut summary);
    summary.nonfinite_features = stage.nonfinite_features();
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(summary),
    }
}

fn writer_loop(
    mut sinks: Vec<Box<dyn Sink>>,
    rx: crossbeam_channel::Receiver<Out>,
    shutdown: &Shutdown,
    deadline: Duration,
) -> Result<(), PipelineError> {
    let mut failed: Option<SinkError> = None;
    let fail = |e: SinkError, failed: &mut Option<SinkError>| {
        if failed.is_none() {
            *failed = Some(e);
            // The run cannot deliver what it promised: stop it, keep draining.
            shutdown.trigger();
        }
    };
    let mut last_tick = Instant::now();
    loop {
        let now = Instant::now();
        let due = sinks
            .iter()
            .filter_map(|s| s.next_due())
            .min()
            .map(|d| d.saturating_duration_since(now))
            .unwrap_or(TICK)
            .min(TICK);
        match rx.recv_timeout(due) {
            Ok(out) if failed.is_none() => {
                for s in sinks.iter_mut() {
                    let r = match &out {
                        Out::Begin(i, name) => s.begin(*i, name),
                        Out::Window(w) => s.window(w),
                        Out::Events(c) => s.events(c),
                        Out::End(summary) => s.end(summary),
                    };
                    if let Err(e) = r {
                        fail(e, &mut failed);
                        break;
                    }
                }
            }
            Ok(_) => {}
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        }
        let now = Instant::now();
        let any_due = sinks.iter().any(|s| s.next_due().is_some_and(|d| d <= now));
        if failed.is_none() && (any_due || now.duration_since(last_tick) >= TICK) {
            last_tick = now;
            for s in sinks.iter_mut() {
                if let Err(e) = s.tick() {
                    fail(e, &mut failed);
                    break;
                }
            }
        }
    }
    if failed.is_none() {
        let end = Instant::now() + deadline;
        for s in sinks.iter_mut() {
            if let Err(e) = s.finish(end) {
                fail(e, &mut failed);
                break;
            }
        }
    }
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}
