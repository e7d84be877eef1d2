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
use crate::forecast::{ForecastStage, ModelFacts, Scored};
use crate::hosts::{Kind, StreamEvent, TopStreams};
use crate::online::OnlineConfig;
use crate::shutdown::Shutdown;
use crate::sinks::prometheus::Metrics;
use crate::sinks::{Sink, SinkError, TICK};
use crate::source::{Clock, KernelStats, PacketSource, SourceError};
use engine::capture::PacketSummary;
use engine::forecast::{PredictError, SequenceModel, WindowWidth};
use engine::pipeline::{Counters, EngineConfig};
use engine::window::PacketFacts;
use engine::window::WindowRow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Windows waiting for inference: 1024 is 51 s at 50 ms.
const ROWS_QUEUE: usize = 1024;
/// Scored windows waiting for the writer (sinks buffer further on their own).
const SCORED_QUEUE: usize = 4096;
/// Most windows of one stream in one model call, for batch-invariant models.
const MAX_BATCH: usize = 64;
/// Most windows in one model call across all streams (a tick of the daemon's
/// streams goes in one call).
const MAX_TICK: usize = 4096;

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
    /// Forecasts skipped because the model could not do every stream's in
    /// its share of a window (live; hosts' streams, the least busy first).
    pub forecasts_skipped: u64,
    /// Non-finite feature values replaced by 0 before the model.
    pub nonfinite_features: u64,
}

/// Between capture and inference; every message names its stream.
enum Event {
    Begin(usize, String),
    Window(usize, WindowRow),
    End(usize, Box<CaptureSummary>),
}

/// Between inference and the writer.
enum Out {
    Begin(usize, String),
    Window(Box<Scored>),
    Events(Vec<Change>),
    End(usize, Box<CaptureSummary>),
}

/// Everything a run is given.
pub struct Pipeline<M> {
    /// Each a separate capture and stream: opened and run one after another
    /// (replay's files), or all at once (`concurrent`).
    pub sources: Vec<SourceOpener>,
    /// Run every source at once, each on its own capture thread (the daemon's
    /// interfaces); their windows share the inference thread and its model
    /// calls.
    pub concurrent: bool,
    /// Streams of their own for the busiest hosts of each live interface
    /// ([`crate::hosts`]); 0: none.
    pub top_hosts: usize,
    /// The same for the busiest TCP connections; 0: none.
    pub top_flows: usize,
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

/// What a capture thread does besides its windows: publishes its counters as
/// metrics (live runs tick once a second) and keeps its host and flow streams.
struct Observe<'a> {
    stream: usize,
    metrics: &'a Metrics,
    tops: Vec<TopStreams>,
    out: &'a dyn Fn(StreamEvent),
}

impl CaptureObserver for Observe<'_> {
    fn tick(&mut self, counters: &Counters, kernel: Option<KernelStats>) {
        self.metrics.publish_capture(self.stream, counters, kernel);
        for t in &mut self.tops {
            t.tick(&mut |e| (self.out)(e));
        }
    }

    fn counted(&mut self, p: &PacketSummary, f: &PacketFacts) {
        for t in &mut self.tops {
            t.packet(p, f, &mut |e| (self.out)(e));
        }
    }

    fn advance(&mut self, now_ns: i64) {
        for t in &mut self.tops {
            t.advance(now_ns, &mut |e| (self.out)(e));
        }
    }

    fn finish(&mut self) {
        for t in &mut self.tops {
            t.finish(&mut |e| (self.out)(e));
        }
    }
}

impl<M: SequenceModel + Send + 'static> Pipeline<M> {
    /// Run until the sources end or the shutdown flag is set.
    pub fn run(self) -> Result<RunSummary, PipelineError> {
        let Pipeline {
            sources,
            concurrent,
            top_hosts,
            top_flows,
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
                    model,
                    width,
                    online,
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
        let n_sources = sources.len();
        let capture = std::thread::Builder::new()
            .name("capture".into())
            .spawn(move || {
                let run = Capture {
                    top_hosts,
                    top_flows,
                    // Host streams are numbered after the captures.
                    next_index: Arc::new(AtomicUsize::new(n_sources)),
                    cfg: engine,
                    clock,
                    grace_ns,
                    metrics: &m,
                    shutdown: &sd,
                    policy,
                };
                if concurrent {
                    run.all_at_once(sources, row_tx)
                } else {
                    run.one_after_another(sources, row_tx)
                }
            })
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

/// What every capture thread is given.
struct Capture<'a> {
    top_hosts: usize,
    top_flows: usize,
    next_index: Arc<AtomicUsize>,
    cfg: EngineConfig,
    clock: Arc<dyn Clock>,
    grace_ns: i64,
    metrics: &'a Metrics,
    shutdown: &'a Shutdown,
    policy: Policy,
}

type Captured = Result<(Vec<CaptureSummary>, u64), PipelineError>;

impl Capture<'_> {
    /// Replay's files: each opened when the previous one is done.
    fn one_after_another(
        &self,
        sources: Vec<SourceOpener>,
        tx: crossbeam_channel::Sender<Event>,
    ) -> Captured {
        let mut summaries = Vec::new();
        let mut dropped = 0;
        for (i, open) in sources.into_iter().enumerate() {
            if self.shutdown.is_set() {
                break;
            }
            let s = self.one(i, open, &tx)?;
            dropped += s.rows_dropped;
            summaries.push(s);
        }
        // Dropping `tx` (returning) ends inference, which ends the writer.
        Ok((summaries, dropped))
    }

    /// The daemon's interfaces: one thread each, all at once. A capture that
    /// fails (its interface removed, its driver gone) ends its own stream with
    /// one error line and a failing `/healthz` while the others go on; when
    /// the last one fails the run stops with its error.
    fn all_at_once(
        &self,
        sources: Vec<SourceOpener>,
        tx: crossbeam_channel::Sender<Event>,
    ) -> Captured {
        let n = sources.len();
        let failed = std::sync::atomic::AtomicUsize::new(0);
        let results: Vec<Result<CaptureSummary, PipelineError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = sources
                .into_iter()
                .enumerate()
                .map(|(i, open)| {
                    let tx = tx.clone();
                    let failed = &failed;
                    std::thread::Builder::new()
                        .name(format!("capture-{i}"))
                        .spawn_scoped(scope, move || {
                            let r = self.one(i, open, &tx);
                            if let Err(e) = &r {
                                let all = failed.fetch_add(1, Ordering::SeqCst) + 1 == n;
                                if all || self.shutdown.is_set() {
                                    self.shutdown.trigger();
                                } else {
                                    tracing::error!("{e}; the other interfaces go on");
                                    self.metrics.capture_failed(e.to_string());
                                }
                            }
                            r
                        })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| match h {
                    Ok(h) => h.join().unwrap_or(Err(PipelineError::Thread("capture"))),
                    Err(_) => {
                        self.shutdown.trigger();
                        Err(PipelineError::Thread("capture"))
                    }
                })
                .collect()
        });
        // The run fails only when every capture did; the others' summaries
        // otherwise (the failure was said and shown while it ran).
        let mut summaries = Vec::new();
        let mut first_err = None;
        for r in results {
            match r {
                Ok(s) => summaries.push(s),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        if summaries.is_empty()
            && let Some(e) = first_err
        {
            return Err(e);
        }
        let dropped = summaries.iter().map(|s| s.rows_dropped).sum();
        Ok((summaries, dropped))
    }

    /// One capture, as stream `i`, to its end (with its host streams, if any).
    fn one(
        &self,
        i: usize,
        open: SourceOpener,
        tx: &crossbeam_channel::Sender<Event>,
    ) -> Result<CaptureSummary, PipelineError> {
        let mut source = open()?;
        let name = source.name();
        let dropped = std::cell::Cell::new(0u64);
        // A closed channel means inference stopped; it reports why.
        let _ = tx.send(Event::Begin(i, name.clone()));
        let send_row = |j: usize, r: WindowRow| {
            if self.policy.block_when_full {
                let _ = tx.send(Event::Window(j, r));
            } else if tx.try_send(Event::Window(j, r)).is_err() {
                dropped.set(dropped.get() + 1);
                self.metrics.window_dropped(i);
            }
        };
        let mut emit = |r: WindowRow| send_row(i, r);
        // A stream's beginning and end are rare and must not be lost: they wait.
        let host_event = |e: StreamEvent| match e {
            StreamEvent::Begin(j, n) => {
                let _ = tx.send(Event::Begin(j, n));
            }
            StreamEvent::Window(j, r) => send_row(j, r),
            StreamEvent::End(j, n, rows) => {
                let s = CaptureSummary {
                    name: n,
                    rows,
                    ..CaptureSummary::default()
                };
                let _ = tx.send(Event::End(j, Box::new(s)));
            }
        };
        let tops: Vec<TopStreams> = match crate::source::iface_of(&name) {
            Some(iface) if source.is_live() => {
                [(Kind::Host, self.top_hosts), (Kind::Flow, self.top_flows)]
                    .into_iter()
                    .filter(|(_, k)| *k > 0)
                    .map(|(kind, k)| {
                        TopStreams::new(
                            iface,
                            kind,
                            k,
                            self.cfg.window.ns(),
                            self.cfg.max_silent_gap_ns,
                            Arc::clone(&self.next_index),
                        )
                    })
                    .collect()
            }
            _ => Vec::new(),
        };
        self.metrics.set_capturing(i, &name, true);
        let s = run_capture(
            source.as_mut(),
            self.cfg,
            self.clock.as_ref(),
            self.grace_ns,
            self.shutdown,
            &mut Observe {
                stream: i,
                metrics: self.metrics,
                tops,
                out: &host_event,
            },
            &mut emit,
        );
        self.metrics.set_capturing(i, &name, false);
        let mut s = match s {
            Ok(s) => s,
            Err(e) => {
                // Its stream ends (sinks close it, its series stop); the
                // caller says why.
                let ended = CaptureSummary {
                    name,
                    ..CaptureSummary::default()
                };
                let _ = tx.send(Event::End(i, Box::new(ended)));
                return Err(e.into());
            }
        };
        s.rows_dropped = dropped.get();
        let _ = tx.send(Event::End(i, Box::new(s.clone())));
        Ok(s)
    }
}

/// Longest a live tick's call waits for more of its streams' windows.
const LINGER: Duration = Duration::from_millis(2);
/// ... and no longer than this after the last one arrived.
const LINGER_GAP: Duration = Duration::from_micros(300);

/// What one model call may cost live: the model's share of a window
/// ([`MODEL_SHARE`]), over the cost per sequence seen in calls of at least
/// [`Budget::LARGE`] sequences, or of [`Budget::MIN_SAMPLE`] before there
/// were any. A call has a cost of its own besides its sequences' (the native
/// trees compute their inputs in one go), so small calls overstate what a
/// sequence costs in a large one and would cut streams that fit.
#[derive(Default)]
struct Budget {
    /// Seconds per sequence (an EWMA) in calls of MIN_SAMPLE or more.
    per_seq_s: Option<f64>,
    /// The same in calls of LARGE or more.
    per_seq_large_s: Option<f64>,
}

/// The part of each window the inference thread may spend in the model.
const MODEL_SHARE: f64 = 0.7;

/// A tick's planned windows: stream, rows, which rows got a sequence.
type Plan = Vec<(usize, Vec<WindowRow>, Vec<bool>)>;

impl Budget {
    const MIN_SAMPLE: usize = 16;
    const LARGE: usize = 256;

    fn observe(&mut self, n: usize, per: Duration) {
        let x = per.as_secs_f64();
        let ewma = |p: Option<f64>| Some(p.map_or(x, |p| 0.8 * p + 0.2 * x));
        if n >= Self::MIN_SAMPLE {
            self.per_seq_s = ewma(self.per_seq_s);
        }
        if n >= Self::LARGE {
            self.per_seq_large_s = ewma(self.per_seq_large_s);
        }
    }

    /// Sequences one call may carry (None: not measured yet).
    fn affordable(&self, width: WindowWidth) -> Option<usize> {
        let per = self.per_seq_large_s.or(self.per_seq_s)?;
        Some(((MODEL_SHARE * width.secs_f64() / per) as usize).max(Self::MIN_SAMPLE))
    }

    /// Keep the `cost` most important sequences of `plan` (in `inputs`, in
    /// plan order): every stream that is not a host's, then hosts by the
    /// bytes of the window; the others' rows lose their sequence. Returns how
    /// many were skipped.
    fn keep(
        &self,
        plan: &mut Plan,
        inputs: &mut Vec<f32>,
        streams: &BTreeMap<usize, Stream>,
        cost: usize,
    ) -> usize {
        let stride = engine::forecast::LOOKBACK * engine::forecast::N_FEATURES;
        // (priority, sequence number, plan entry, row)
        let mut seqs = Vec::new();
        let mut k = 0;
        for (pi, (j, rows, staged)) in plan.iter().enumerate() {
            let host = streams.get(j).is_some_and(|s| s.host);
            for (ri, st) in staged.iter().enumerate() {
                if *st {
                    let pr = if host { rows[ri].size_bytes } else { u64::MAX };
                    seqs.push((pr, k, pi, ri));
                    k += 1;
                }
            }
        }
        if seqs.len() <= cost {
            return 0;
        }
        seqs.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let dropped = seqs.split_off(cost);
        let mut keep = vec![false; k];
        for s in &seqs {
            keep[s.1] = true;
        }
        for &(_, _, pi, ri) in &dropped {
            plan[pi].2[ri] = false;
        }
        let mut w = 0;
        for (i, kept) in keep.iter().enumerate() {
            if *kept {
                inputs.copy_within(i * stride..(i + 1) * stride, w * stride);
                w += 1;
            }
        }
        inputs.truncate(w * stride);
        dropped.len()
    }
}

/// One stream's state on the inference thread.
struct Stream {
    /// Its id (`crate::live::stream_id`).
    name: String,
    /// A host's or a flow's stream (forecast after the interfaces' when the
    /// model cannot do all).
    host: bool,
    stage: ForecastStage<ModelFacts>,
    detector: Detector,
    /// End of the last window seen: where events still active at the end stop.
    last_end_ns: i64,
}

#[allow(clippy::too_many_arguments)]
fn inference_loop<M: SequenceModel>(
    mut model: M,
    width: WindowWidth,
    online: Option<OnlineConfig>,
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
    // Windows of one stream in one call only where that cannot change a
    // forecast; windows of different streams always share the call.
    let per_stream = if model.batch_invariant() {
        batch.max(MAX_BATCH)
    } else {
        batch.max(1)
    };
    let facts = ModelFacts::of(&model);
    // A stream is known by its id (`eth0` for `live eth0`, a file's base
    // name): the `stream` of its events, alerts and metric series.
    let new_stream = |name: &str| {
        let id = crate::live::stream_id(name);
        Stream {
            host: matches!(crate::source::kind_and_key(name).0, "host" | "flow"),
            stage: ForecastStage::with_online(facts.clone(), width, online),
            detector: Detector::new(events, id.clone(), width.ns()),
            name: id,
            last_end_ns: 0,
        }
    };
    let mut streams: BTreeMap<usize, Stream> = BTreeMap::new();
    let mut nonfinite = 0u64;
    let mut next = None;
    let mut gathered: BTreeMap<usize, Vec<WindowRow>> = BTreeMap::new();
    let mut inputs: Vec<f32> = Vec::new();
    let mut budget = Budget::default();
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
                // A stream of the same number (a capture restarting) starts afresh.
                if let Some(old) = streams.insert(i, new_stream(&name)) {
                    nonfinite += old.stage.nonfinite_features();
                }
                send(Out::Begin(i, name), &mut summary);
            }
            Event::End(i, s) => {
                if let Some(mut st) = streams.remove(&i) {
                    changed(st.detector.end_all(st.last_end_ns), &mut summary);
                    nonfinite += st.stage.nonfinite_features();
                    metrics.retire_stream(&st.name);
                }
                send(Out::End(i, s), &mut summary)
            }
            Event::Window(..) if failed.is_some() => {}
            Event::Window(i, row) => {
                // What else is queued goes to the model in the same call: every
                // stream's windows of this tick, and more of one stream's where
                // that cannot change a forecast.
                let mut total = 1;
                gathered.entry(i).or_default().push(row);
                // Live with several streams, a tick's windows arrive as a burst
                // from each capture thread: wait a little for the rest of it
                // (a call costs about as much for 1 sequence as for 3).
                let linger_until = (live && streams.len() > 1).then(|| Instant::now() + LINGER);
                while total < MAX_TICK {
                    let got = match linger_until {
                        Some(until) => {
                            let left = until.saturating_duration_since(Instant::now());
                            rx.recv_timeout(left.min(LINGER_GAP))
                                .map_err(|_| crossbeam_channel::TryRecvError::Empty)
                        }
                        None => rx.try_recv(),
                    };
                    match got {
                        Ok(Event::Window(j, r)) => {
                            let rows = gathered.entry(j).or_default();
                            if rows.len() >= per_stream {
                                next = Some(Event::Window(j, r));
                                break;
                            }
                            rows.push(r);
                            total += 1;
                        }
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                let now = clock.now_ns();
                inputs.clear();
                let mut plan = Vec::with_capacity(gathered.len());
                for (j, rows) in std::mem::take(&mut gathered) {
                    if rows.is_empty() {
                        continue;
                    }
                    let st = streams
                        .entry(j)
                        .or_insert_with(|| new_stream(&format!("stream {j}")));
                    for r in &rows {
                        metrics.observe_window_delay(now - (r.start_ns + width.ns()));
                    }
                    let staged = st.stage.stage_rows(&rows, &mut inputs);
                    plan.push((j, rows, staged));
                }
                let mut n = plan
                    .iter()
                    .map(|(_, _, s)| s.iter().filter(|s| **s).count())
                    .sum::<usize>();
                // Live, more sequences than the model gets through in its share
                // of a window: the interfaces' own streams and the busiest
                // hosts are forecast, the rest skipped (and counted).
                if live
                    && let Some(cost) = budget.affordable(width)
                    && n > cost
                {
                    let skipped = budget.keep(&mut plan, &mut inputs, &streams, cost);
                    n -= skipped;
                    summary.forecasts_skipped += skipped as u64;
                    metrics.forecasts_skipped.inc_by(skipped as u64);
                }
                let t = Instant::now();
                let outputs = match n {
                    0 => Ok(Vec::new()),
                    _ => model.forward(&inputs, n).and_then(|o| {
                        if o.len() == n {
                            Ok(o)
                        } else {
                            Err(PredictError(format!(
                                "the model returned {} forecasts for {n} sequences",
                                o.len()
                            )))
                        }
                    }),
                };
                let inference = (n > 0).then(|| t.elapsed() / n as u32);
                if let Some(per) = inference {
                    budget.observe(n, per);
                }
                let mut outputs = match outputs {
                    Ok(o) => o.into_iter(),
                    Err(e) => {
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
                        Vec::new().into_iter()
                    }
                };
                for (j, rows, staged) in plan {
                    let Some(st) = streams.get_mut(&j) else {
                        continue;
                    };
                    for mut scored in st.stage.score_rows(rows, &staged, &mut outputs, inference) {
                        scored.stream = j;
                        if scored.issued.is_some() {
                            summary.forecasts += 1;
                        }
                        metrics.observe_scored(&st.name, &scored);
                        st.last_end_ns = scored.row.start_ns + width.ns();
                        st.detector.capture_lost(metrics.capture_lost(j));
                        let ch = st.detector.window(&scored);
                        send(Out::Window(Box::new(scored)), &mut summary);
                        changed(ch, &mut summary);
                    }
                }
            }
        }
    }
    for st in streams.values_mut() {
        changed(st.detector.end_all(st.last_end_ns), &mut summary);
        nonfinite += st.stage.nonfinite_features();
    }
    summary.nonfinite_features = nonfinite;
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
                        Out::End(i, summary) => s.end(*i, summary),
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

#[cfg(test)]
mod tests {
    use super::*;
    use engine::forecast::{LOOKBACK, N_FEATURES, Persistence};

    fn stream(name: &str) -> Stream {
        let facts = ModelFacts::of(&Persistence {
            threshold_mbps: 20.0,
        });
        let id = crate::live::stream_id(name);
        Stream {
            host: matches!(crate::source::kind_and_key(name).0, "host" | "flow"),
            stage: ForecastStage::with_online(facts, WindowWidth::DEFAULT, None),
            detector: Detector::new(EventConfig::default(), id.clone(), 50_000_000),
            name: id,
            last_end_ns: 0,
        }
    }

    fn row(size_bytes: u64) -> WindowRow {
        WindowRow {
            start_ns: 0,
            size_bytes,
            delay_s: 0.0,
            bif_bytes: 0,
            iat_mean_s: 0.0,
            iat_std_s: 0.0,
            throughput_mbps: 0.0,
            delay_grad_s: 0.0,
            bif_grad_bytes: 0,
            is_silent: false,
            packets: 1,
            tcp: Default::default(),
        }
    }

    #[test]
    fn over_budget_the_interfaces_and_the_busiest_hosts_are_forecast() {
        let streams: BTreeMap<usize, Stream> = [
            (0, stream("live eth0")),
            (1, stream("live eth0 host 10.0.0.1")),
            (2, stream("live eth0 host 10.0.0.2")),
            (3, stream("live eth0 host 10.0.0.3")),
        ]
        .into_iter()
        .collect();
        // One sequence each, filled with its stream number; host 3 has no
        // sequence this tick (its history is short).
        let stride = LOOKBACK * N_FEATURES;
        let mut plan: Plan = vec![
            (0, vec![row(10)], vec![true]),
            (1, vec![row(5_000)], vec![true]),
            (2, vec![row(90_000)], vec![true]),
            (3, vec![row(1_000_000)], vec![false]),
        ];
        let mut inputs: Vec<f32> = [0.0f32, 1.0, 2.0]
            .iter()
            .flat_map(|v| std::iter::repeat_n(*v, stride))
            .collect();
        let skipped = Budget::default().keep(&mut plan, &mut inputs, &streams, 2);
        assert_eq!(skipped, 1);
        // The interface (however quiet) and host 2 (the busier) stay, in order.
        let staged: Vec<bool> = plan.iter().map(|p| p.2[0]).collect();
        assert_eq!(staged, [true, false, true, false]);
        assert_eq!(inputs.len(), 2 * stride);
        assert!(inputs[..stride].iter().all(|v| *v == 0.0));
        assert!(inputs[stride..].iter().all(|v| *v == 2.0));
        // Within budget nothing changes.
        let before = inputs.clone();
        assert_eq!(
            Budget::default().keep(&mut plan, &mut inputs, &streams, 5),
            0
        );
        assert_eq!(inputs, before);
    }

    #[test]
    fn the_budget_follows_the_measured_cost_per_sequence() {
        let mut b = Budget::default();
        assert_eq!(b.affordable(WindowWidth::DEFAULT), None);
        b.observe(4, Duration::from_micros(500));
        assert_eq!(
            b.affordable(WindowWidth::DEFAULT),
            None,
            "small calls do not count"
        );
        b.observe(64, Duration::from_micros(100));
        // 70 % of 50 ms at 100 us a sequence (to float rounding).
        let fits = |b: &Budget| b.affordable(WindowWidth::DEFAULT).unwrap_or(0);
        assert!((349..=350).contains(&fits(&b)), "{}", fits(&b));
        // Once large calls are measured, their cost per sequence decides (a
        // small call's fixed cost spread over few sequences overstates it).
        b.observe(512, Duration::from_micros(20));
        assert!((1749..=1750).contains(&fits(&b)), "{}", fits(&b));
        b.observe(64, Duration::from_micros(100));
        assert!((1749..=1750).contains(&fits(&b)), "{}", fits(&b));
    }
}
