//! Online self-scoring: every window's actual is the label of the forecasts made
//! one window earlier, so each stream scores its forecasters as it runs and
//! publishes what has been working on this link.
//!
//! - The published throughput is an exponentially weighted average of the
//!   experts (the model, persistence, EWMA, the mean of the last 15, a resume
//!   expert for restarts (the level the sender kept before the silence, at
//!   most the rate the restart's first window ran at from its first payload),
//!   a tail expert for windows whose rate turned within them (the rate of
//!   their last fifth), and a burst expert: what is left of a burst the size of the stream's last
//!   ones, and the first window of the next burst once silence has lasted as
//!   long as most of the last three gaps, so video segments, periodic and
//!   repeated transfers are forecast to end and start where their like did)
//!   with fixed share (Herbster and Warmuth), so it can switch
//!   back quickly. Losses are
//!   absolute errors scaled by the link's recent persistence error, so one
//!   learning rate fits 50 kbit/s and 5 Gbit/s links. Weights are kept apart for
//!   six contexts: after a busy window that followed a busy one, after a
//!   silent window, after the first three busy windows following silence (a
//!   restart: a video segment, a page load, a sender its receiver released,
//!   where the forecasters that track a steady flow are not the ones that do
//!   well, and the smoothers still average the silence in),
//!   after a window whose rate fell, or rose, within it (its last fifth
//!   under or over the whole: the step of a link or the end of a transfer
//!   caught in the window, which the next window shows whole),
//!   and after a large move between two busy windows (a link dropping or
//!   coming back: the model learnt to expect a return towards the level,
//!   the traffic mostly keeps going where it went).
//!   Weights under 1 % are dropped: after silence on an idle link the published
//!   forecast is persistence's 0, not phantom traffic.
//! - While the receivers hold their senders back (most pure ACKs advertise a
//!   small or zero window), the forecast is at most the current window: a
//!   closing window lets through no more than it did, while the experts that
//!   follow the sender's history expect it to go on.
//! - A guard against the combination itself: while its absolute error over the
//!   last 10 s exceeds persistence's, persistence is published (a link where
//!   every expert but persistence lags, such as several backlogged flows
//!   trading bandwidth, or a paced sender).
//! - The published probability is the model's, recalibrated by an online
//!   logistic map on (logit of the model's probability, current window below the
//!   threshold, 1, the tail expert's rate below the threshold: where a window
//!   turned, its last fifth), starting from the model's own and following
//!   recent labels.
//! - Rolling skill: MASE against persistence over the last minute and since the
//!   start, and the Brier score of the published probability.
//!
//! Owns these numbers for one stream; costs about 2 us a window, most of it
//! the analog experts' lookup (`benches/README.md`).

use crate::analog::Analog;
use crate::push_bounded;
use std::collections::VecDeque;

/// The forecasters combined, in this order.
pub const EXPERTS: [&str; 11] = [
    "model",
    "persistence",
    "ewma",
    "mean_last_15",
    "burst",
    "resume",
    "tail",
    "ack_clock",
    "level",
    "analog",
    "analog_short",
];
/// The experts the caller forecasts (the rest the stage makes itself).
pub const GIVEN: usize = 4;
const N: usize = EXPERTS.len();
/// Contexts the weights are kept apart for; see [`context`].
const CONTEXTS: usize = 6;

/// A change of the throughput over this many times the stream's usual one
/// (its persistence error in steady windows) is a large move. Chosen on
/// development captures (`corpus/dev`, the committed cellular one, the stall
/// transfers, and a second lab set of seeds 221/222/321 of steps, outages,
/// cellular, on-off, video, web and mixture): pooled MASE 0.9492 without the
/// context, 0.9496 at 2, 0.9482 at 3, 0.9485 at 4, 0.9482 at 5, 0.9485 at 8,
/// 0.9479 at 12; the largest capture 1.030 without, 1.013, 1.016, 1.016,
/// 1.014, 1.034, 1.041.
const MOVE_SCALES: f64 = 3.0;

/// Burst volumes the burst expert remembers (their median is the typical
/// one).
const BURSTS_KEPT: usize = 3;
/// A burst over this many times the typical volume is not like the last ones:
/// the burst expert says persistence. Chosen with the expert's prior
/// weight on the development captures of the large-move context: pooled MASE
/// 0.9473 without the expert; with prior 0.02, 0.9370 when a burst at the
/// typical volume was already past it, and 0.9315 / 0.9302 / 0.9293 / 0.9289 /
/// 0.9291 at 1.02 / 1.05 / 1.2 / 1.5 / 2; with prior 0.06, 0.9281 / 0.9277 at
/// 1.2 / 1.5; with 0.1, 0.9281 / 0.9276 (runs differ by about 0.001 from float
/// rounding alone); the largest capture 1.021 at the choice, 1.011 to 1.025
/// over all.
const BURST_PAST: f64 = 1.5;

/// Busy windows whose senders were not held back that the resume expert
/// remembers (their median is the level a sender returns to).
const LEVELS_KEPT: usize = 5;
/// The resume expert's index in [`EXPERTS`]; it takes part in the restart
/// context only.
const RESUME: usize = 5;
/// The tail expert's index in [`EXPERTS`]; it takes part in the turn
/// contexts only.
const TAIL: usize = 6;
/// The ACK clock's index in [`EXPERTS`]: the window's throughput scaled by
/// what its ACKs reported delivered over what it sent
/// ([`engine::window::TcpProgress::ack_clock_mbps`]; a window without
/// reports leaves it asleep, see [`Online::issue`]). It takes part
/// everywhere but after silence and in restarts, where the first windows of
/// a burst are sent before any of its ACKs come back (on `web-s502` of the
/// development set the expert there took the capture from MASE 0.919 to
/// 0.982).
const ACK: usize = 7;
/// The ACK clock's prior weight (before the priors are normalised). Pooled
/// development MASE 0.8965 without the expert; 0.8867 / 0.8866 / 0.8856 /
/// 0.8888 at 0.03 / 0.1 / 0.2 / 0.37 (still in every context), the largest
/// capture 1.029 / 1.034 / 1.048 / 1.067; at 0.1 out of the restart
/// contexts 0.8859, the largest 1.034 (one window of
/// `steps-s222-reno-f2-ro`, its first); asleep without reports 0.8863, the
/// same largest.
const ACK_PRIOR: f64 = 0.1;
/// The level expert's index in [`EXPERTS`]: the mean of the busy windows
/// since the rate last moved (see [`LEVEL_SCALES`]), at most the last
/// [`LEVEL_WINDOWS`]. A flow held at a link's rate wobbles around it (a loss,
/// a window sent in two halves) and comes back; persistence forecasts each
/// wobble to last, the mean of the last 15 windows lags every step. It takes
/// part in the steady, after-silence and large-move contexts; in restarts
/// and turns the rate is still moving.
const LEVEL: usize = 8;
/// The level expert's prior weight (before the priors are normalised).
/// Chosen on the development captures with [`LEVEL_SCALES`] and
/// [`LEVEL_WINDOWS`]: pooled MASE 0.8863 without the expert; in every context,
/// 0.8837 / 0.8827 / 0.8833 / 0.8845 at 0.1 / 0.2 / 0.3 / 0.5 (3 scales, 40
/// windows); out of the restart context 0.8833, out of restarts and turns
/// 0.8821 (kept), out of every context but the steady one 0.8825.
const LEVEL_PRIOR: f64 = 0.2;
/// A busy window further than this many times the stream's usual change
/// (its persistence error in steady windows) from the level starts a new
/// one. Pooled development MASE 0.8832 / 0.8837 / 0.8837 / 0.8845 at 2 /
/// 2.5 / 3 / 4 (prior 0.1; 0.3 at 2: 0.8849).
const LEVEL_SCALES: f64 = 3.0;
/// The level is the mean of at most this many windows (older ones fade
/// out): 0.8834 at 20, 0.8833 at 40, 0.8837 at 200 (prior 0.3 / 0.3 / 0.1).
const LEVEL_WINDOWS: f64 = 40.0;
/// The analog expert's index in [`EXPERTS`] ([`crate::analog`]): what
/// followed the moments of the stream's last 51 s that moved most like its
/// last four windows. It takes part in every context.
const ANALOG: usize = 9;
/// The analog expert's prior weight (before the priors are normalised).
/// Pooled development MASE 0.8820 without it; 0.8747 / 0.8742 at 0.1 / 0.2
/// (256 windows, 5 and 10 matches, no level term); 0.8610 / 0.8597 at 0.2 /
/// 0.3 with the kept pattern and matches (512 windows). Left out of one
/// context at a time (512 windows): after silence 0.8611, restarts 0.8683,
/// the turns 0.8647, large moves 0.8657; it stays in all.
const ANALOG_PRIOR: f64 = 0.2;
/// The short analog expert's index in [`EXPERTS`]: the same lookup on the
/// last change alone ([`crate::analog::SHORT_PATTERN`]), in every context.
const ANALOG_SHORT: usize = 10;
/// Its prior weight. Pooled development MASE 0.8482 without it; 0.8424 /
/// 0.8416 / 0.8442 at 0.1 / 0.2 / 0.4 (a 2-change pattern; the largest
/// capture 0.998 / 0.996 / 1.068); with the 1-change pattern 0.8343 at 0.2,
/// 0.8339 at 0.3.
const ANALOG_SHORT_PRIOR: f64 = 0.2;
/// The turn contexts (see [`context`]): the rate fell, or rose, within the
/// window.
const FALLING: usize = 4;
const RISING: usize = 5;
/// A window whose last fifth ran at over this many times its whole rate, or
/// under its whole rate over this, turned within it. Chosen on the
/// development captures with the tail expert's prior (below) and the last
/// fifth (not the last two): pooled MASE 0.9192 without the turn contexts;
/// 0.8940 / 0.8943 / 0.8934 / 0.8967 / 0.9032 / 0.9088 at 1.1 / 1.15 / 1.2 /
/// 1.25 / 1.5 / 2 (the last two fifths: 0.9002 / 0.8938 / 0.8933 / 0.8953 /
/// 0.9120 / 0.9128); one context for both turns did worse (0.9045 at 1.25),
/// and so did leaving out windows whose last fifth was empty (0.9097: a
/// transfer that ended inside the window is the turn the expert gets
/// right most often).
const TURN_RATIO: f64 = 1.25;
/// The tail expert's prior weight in the turn contexts (before the priors
/// are normalised). Pooled development MASE at 1.25: 0.9010 / 0.8967 / 0.8943
/// at 0.6 / 0.8 / 0.9; the largest capture 1.086 / 1.023 / 1.024.
const TAIL_PRIOR: f64 = 0.8;

/// How a window's traffic was spread over it (from
/// [`engine::window::TcpProgress`]).
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Shape {
    /// The part of the window from its first payload on
    /// ([`engine::window::TcpProgress::active_fraction`]).
    pub active: f64,
    /// The rate over its last fifth, Mbit/s
    /// ([`engine::window::TcpProgress::tail_mbps`]; None: not known).
    pub tail_mbps: Option<f64>,
    /// The throughput the ACKs of the window clock out next, Mbit/s
    /// ([`engine::window::TcpProgress::ack_clock_mbps`]; None: no reports,
    /// the ACK clock sleeps).
    pub acked_mbps: Option<f64>,
}

impl Shape {
    /// Traffic over the whole window, nothing known of its tail.
    pub const WHOLE: Shape = Shape {
        active: 1.0,
        tail_mbps: None,
        acked_mbps: None,
    };
}

/// The context after a silent window (see [`context`]).
const AFTER_SILENCE: usize = 1;
/// The restart context (see [`context`]).
const RESTART: usize = 2;
/// The first this many busy windows after silence are forecast in the restart
/// context (the smoothers still average the silence in, and the sender is
/// still finding its rate). Chosen on the development captures with the
/// resume expert: pooled MASE 0.9230 with 1 (the first window only, as
/// before), 0.9215 / 0.9192 / 0.9186 / 0.9183 with 2 / 3 / 4 / 6; past 3 the
/// gains are at the size float rounding alone moves a run.
const RESTART_WINDOWS: usize = 3;
/// A restart whose first window carries less than this part of the level
/// (a zero-window probe, a keep-alive, a request) is not a resumption.
const RESUME_FROM: f64 = 0.1;
/// A window whose payload began later than this part of it from its end is
/// scaled as if it began there (one segment near the end says little about a
/// rate).
const MIN_ACTIVE: f64 = 0.25;
/// The resume expert's prior weight in the restart context.
const RESUME_PRIOR: f64 = 0.1;

/// The context of a forecast issued after a window that was `silent`, the
/// `since_silence`-th busy window after a silent one: 0 steady (busy after
/// busy), 1 after silence, 2 a restart (the first [`RESTART_WINDOWS`] busy
/// windows after silence), `turn` ([`FALLING`] or [`RISING`]: busy after
/// busy, the rate turned within the window, see [`TURN_RATIO`]), 3 a large
/// move (busy after busy, the throughput changed by more than `MOVE_SCALES`
/// times the stream's usual change: a link that drops or comes back, where
/// the forecasters that smooth a steady flow lag).
fn context(silent: bool, since_silence: Option<usize>, moved: bool, turn: Option<usize>) -> usize {
    match (silent, since_silence, turn) {
        (true, ..) => AFTER_SILENCE,
        (false, Some(n), _) if n <= RESTART_WINDOWS => RESTART,
        (false, _, Some(turned)) => turned,
        (false, ..) if moved => 3,
        (false, ..) => 0,
    }
}

/// Settings of the online stage. The defaults were chosen on development
/// captures only (lab profiles with seeds 501-506, paced and offloaded veth
/// transfers, the committed cellular capture): eta 0.3 and share 0.002 gave the
/// lowest pooled MASE (0.84) with no capture above 1.01. The guard's 200 windows
/// (10 s) were chosen the same way on a newer development set (the shipped
/// model; seeds 501-507 of video, web, mixture, on-off, outages, steps, three
/// veth transfers, the cellular capture): pooled MASE 0.860 with no guard, 0.852
/// at 100, 0.850 at 200, 0.852 at 400; the largest capture 1.045, 1.025, 0.999,
/// 1.000.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct OnlineConfig {
    /// Learning rate of the weights, per unit of scaled absolute error.
    pub eta: f64,
    /// Fixed share: the part of the weight redistributed every window.
    pub share: f64,
    /// Experts below this normalised weight are left out of the forecast.
    pub min_weight: f64,
    /// Windows in the rolling skill ("the last minute" at 50 ms).
    pub skill_windows: usize,
    /// Step size of the probability's recalibration.
    pub calib_rate: f64,
    /// Windows over which the combination is compared with persistence; while
    /// the combination's absolute error summed over them is the larger,
    /// persistence is published instead (0: never).
    pub guard_windows: usize,
    /// Starting weights, in [`EXPERTS`] order; fixed share returns weight
    /// towards them. The resume expert's share applies in the restart
    /// context only; elsewhere it is 0 and the others are scaled up to 1.
    pub prior: [f64; N],
    /// A forecast below this is published as 0: less than half of the smallest
    /// non-empty window (one 40-byte segment), so no window can carry it. Set
    /// from the window width by the forecast stage.
    pub floor_mbps: f64,
}

impl Default for OnlineConfig {
    fn default() -> Self {
        OnlineConfig {
            eta: 0.3,
            share: 0.002,
            min_weight: 0.01,
            skill_windows: 1200,
            calib_rate: 0.02,
            guard_windows: 200,
            prior: [
                0.37,
                0.37,
                0.1,
                0.1,
                0.06,
                RESUME_PRIOR,
                TAIL_PRIOR,
                ACK_PRIOR,
                LEVEL_PRIOR,
                ANALOG_PRIOR,
                ANALOG_SHORT_PRIOR,
            ],
            floor_mbps: 0.5 * 40.0 * 8.0 / 0.05 / 1e6,
        }
    }
}

impl OnlineConfig {
    /// The defaults, with overrides from `NETFORECAST_ONLINE` (for research:
    /// `eta=1,share=0.02,min_weight=0.01,calib_rate=0.02,guard_windows=200,prior=0.37/0.37/0.1/0.1/0.06/0.1/0.8/0.1/0.2/0.2/0.2`,
    /// one prior per expert in [`EXPERTS`] order).
    /// A malformed override is reported once and ignored.
    pub fn from_env() -> Self {
        let mut c = Self::default();
        let Ok(v) = std::env::var("NETFORECAST_ONLINE") else {
            return c;
        };
        for kv in v.split(',').filter(|s| !s.is_empty()) {
            let ok = match kv.split_once('=') {
                Some(("eta", x)) => x.parse().map(|x| c.eta = x).is_ok(),
                Some(("share", x)) => x.parse().map(|x| c.share = x).is_ok(),
                Some(("min_weight", x)) => x.parse().map(|x| c.min_weight = x).is_ok(),
                Some(("calib_rate", x)) => x.parse().map(|x| c.calib_rate = x).is_ok(),
                Some(("guard_windows", x)) => x.parse().map(|x| c.guard_windows = x).is_ok(),
                Some(("prior", x)) => {
                    let v: Vec<f64> = x.split('/').filter_map(|p| p.parse().ok()).collect();
                    let sum: f64 = v.iter().sum();
                    if v.len() == N && sum > 0.0 {
                        for (p, x) in c.prior.iter_mut().zip(v) {
                            *p = x / sum;
                        }
                        true
                    } else {
                        false
                    }
                }
                _ => false,
            };
            if !ok {
                tracing::warn!(
                    "NETFORECAST_ONLINE: cannot use {kv:?}; expected eta, share, min_weight, calib_rate, guard_windows or prior=a/b/c/d/e/f/g/h/i/j/k (one per expert)"
                );
            }
        }
        c
    }
}

/// Rolling skill of the published forecast.
#[derive(Copy, Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Skill {
    /// MAE of the published forecast over persistence's, last `skill_windows`
    /// windows (None until persistence has made an error).
    pub mase_recent: Option<f64>,
    /// The same since the stream started.
    pub mase_total: Option<f64>,
    /// Brier score of the published probability, last `skill_windows` windows.
    pub brier_recent: Option<f64>,
    /// Windows scored so far.
    pub scored: u64,
}

/// What was issued for the next window, kept until its actual arrives.
#[derive(Copy, Clone, Debug)]
struct Pending {
    experts: [f64; N],
    /// The combination, before the guard chose between it and persistence.
    combined: f64,
    context: usize,
    published: f64,
    prob: f64,
    x: [f64; 4],
    persistence: f64,
    /// Whether the ACK clock had a forecast (see [`Online::issue`]).
    ack_awake: bool,
}

/// Online scoring and combination for one stream.
#[derive(Clone, Debug)]
pub struct Online {
    cfg: OnlineConfig,
    threshold_mbps: f64,
    /// Normalised weights, per [`context`].
    w: [[f64; N]; CONTEXTS],
    pending: Option<Pending>,
    /// Recent persistence error per context, Mbit/s (the loss scale).
    scale: [Option<f64>; CONTEXTS],
    /// Whether the last window a forecast was issued after was silent, and
    /// its throughput.
    last_silent: bool,
    last_mbps: f64,
    theta: [f64; 4],
    g2: [f64; 4],
    recent: VecDeque<(f64, f64, f64)>,
    recent_sum: (f64, f64, f64),
    /// The combination's error less persistence's, last `guard_windows` windows.
    guard: VecDeque<f64>,
    guard_sum: f64,
    total: (f64, f64),
    scored: u64,
    /// How often a silent window has been followed by another (an exponential
    /// average over the stream's silent windows).
    silence_stays: f64,
    /// Throughput summed over the current burst's windows (Mbit/s x windows);
    /// None while it is unknown (the burst began before a gap in the grid).
    burst_so_far: Option<f64>,
    /// The volumes of the last bursts, newest last.
    bursts: VecDeque<f64>,
    /// Silent windows since the last busy one (None while unknown: the
    /// silence began before a gap in the grid); the lengths of the last gaps
    /// before a burst, and the first windows of those bursts.
    gap: Option<usize>,
    gaps: VecDeque<usize>,
    starts: VecDeque<f64>,
    /// The last busy windows whose receivers did not hold their senders
    /// back, newest last (the resume expert's level).
    levels: VecDeque<f64>,
    /// The highest throughput of the busy windows since the last silent one.
    run_max: f64,
    /// Busy windows since the last silent one, this one included (None
    /// before any silence was seen or across a gap in the grid).
    since_silence: Option<usize>,
    /// The level expert's sum of throughput and count of windows since the
    /// rate last moved (count 0: no level).
    level: (f64, f64),
    /// The analog experts' history (16 kB at most).
    analog: Analog,
}

/// The prior of `context` from the configured one: normalised, with the
/// resume expert's share only in the restart context.
fn prior_in(prior: [f64; N], context: usize) -> [f64; N] {
    let mut p = prior.map(|x| x.max(0.0));
    if context != RESTART {
        p[RESUME] = 0.0;
    }
    if context != FALLING && context != RISING {
        p[TAIL] = 0.0;
    }
    if context == RESTART || context == AFTER_SILENCE {
        p[ACK] = 0.0;
    }
    if matches!(context, RESTART | FALLING | RISING) {
        p[LEVEL] = 0.0;
    }
    let sum: f64 = p.iter().sum();
    if sum > 0.0 {
        p.map(|x| x / sum)
    } else {
        // Nothing to go on: persistence.
        std::array::from_fn(|i| if i == 1 { 1.0 } else { 0.0 })
    }
}

/// The median of at most [`LEVELS_KEPT`] values (the longest ring kept).
fn median(v: &VecDeque<f64>) -> Option<f64> {
    const { assert!(BURSTS_KEPT <= LEVELS_KEPT) };
    let n = v.len().min(LEVELS_KEPT);
    if n == 0 {
        return None;
    }
    let mut s = [0.0; LEVELS_KEPT];
    for (x, b) in s.iter_mut().zip(v) {
        *x = *b;
    }
    s[..n].sort_by(f64::total_cmp);
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        0.5 * (s[n / 2 - 1] + s[n / 2])
    })
}

fn logit(p: f64) -> f64 {
    let p = p.clamp(1e-4, 1.0 - 1e-4);
    (p / (1.0 - p)).ln()
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

impl Online {
    /// A fresh stream with a model whose probability refers to `threshold_mbps`.
    pub fn new(cfg: OnlineConfig, threshold_mbps: f64) -> Self {
        Online {
            cfg,
            threshold_mbps,
            w: std::array::from_fn(|c| prior_in(cfg.prior, c)),
            pending: None,
            scale: [None; CONTEXTS],
            last_silent: false,
            last_mbps: 0.0,
            theta: [1.0, 0.0, 0.0, 0.0],
            g2: [0.0; 4],
            recent: VecDeque::with_capacity(cfg.skill_windows + 1),
            recent_sum: (0.0, 0.0, 0.0),
            guard: VecDeque::with_capacity(cfg.guard_windows + 1),
            guard_sum: 0.0,
            total: (0.0, 0.0),
            scored: 0,
            silence_stays: 0.75,
            burst_so_far: Some(0.0),
            bursts: VecDeque::with_capacity(BURSTS_KEPT + 1),
            gap: Some(0),
            gaps: VecDeque::with_capacity(BURSTS_KEPT + 1),
            starts: VecDeque::with_capacity(BURSTS_KEPT + 1),
            levels: VecDeque::with_capacity(LEVELS_KEPT + 1),
            run_max: 0.0,
            since_silence: None,
            level: (0.0, 0.0),
            analog: Analog::new(),
        }
    }

    /// How often silence has been followed by silence on this stream.
    pub fn silence_stays(&self) -> f64 {
        self.silence_stays
    }

    /// A gap in the grid: what was issued will not be scored; what was learnt
    /// stays. The burst or silence in progress has lasted an unknown time, so
    /// it is not measured.
    pub fn gap(&mut self) {
        self.pending = None;
        self.burst_so_far = None;
        self.gap = None;
        self.levels.clear();
        self.run_max = 0.0;
        self.since_silence = None;
        self.level = (0.0, 0.0);
        self.analog.clear();
    }

    /// The current normalised weights per context: steady, after silence,
    /// restart, large move, falling and rising within the window.
    pub fn weights(&self) -> [[f64; N]; CONTEXTS] {
        self.w
    }

    /// Window `t`'s actual throughput arrived: score what was issued for it and
    /// learn. Returns the skill so far.
    pub fn observe(&mut self, actual_mbps: f64) -> Skill {
        if let Some(p) = self.pending.take() {
            self.learn(&p, actual_mbps);
        }
        self.skill()
    }

    fn learn(&mut self, p: &Pending, actual: f64) {
        let pers_err = (p.persistence - actual).abs();
        let scale = match self.scale[p.context] {
            None => pers_err,
            Some(s) => 0.99 * s + 0.01 * pers_err,
        };
        self.scale[p.context] = Some(scale);
        if p.context == AFTER_SILENCE {
            let stayed = if actual < self.cfg.floor_mbps {
                1.0
            } else {
                0.0
            };
            self.silence_stays = 0.95 * self.silence_stays + 0.05 * stayed;
        }
        // Scaled losses; the floor keeps an idle link (scale 0) from dividing by 0.
        let denom = scale.max(0.01);
        let prior = prior_in(self.cfg.prior, p.context);
        let w = &mut self.w[p.context];
        // A sleeping ACK clock keeps its weight; the awake experts share
        // what they had between them.
        let asleep = (!p.ack_awake).then_some(ACK);
        let kept = asleep.map_or(0.0, |i| w[i]);
        let before = w.iter().sum::<f64>() - kept;
        for (i, (wi, f)) in w.iter_mut().zip(p.experts).enumerate() {
            if Some(i) != asleep {
                let loss = ((f - actual).abs() / denom).min(20.0);
                *wi *= (-self.cfg.eta * loss).exp();
            }
        }
        let after = w.iter().sum::<f64>() - kept;
        if after > 0.0 && after.is_finite() {
            for (i, wi) in w.iter_mut().enumerate() {
                if Some(i) != asleep {
                    *wi *= before / after;
                }
            }
        }
        let sum: f64 = w.iter().sum();
        if sum > 0.0 && sum.is_finite() {
            for (wi, p) in w.iter_mut().zip(prior) {
                *wi = (1.0 - self.cfg.share) * (*wi / sum) + self.cfg.share * p;
            }
        } else {
            *w = prior;
        }
        // Probability: one step of logistic regression with RMS-scaled steps.
        let y = if actual < self.threshold_mbps {
            1.0
        } else {
            0.0
        };
        let err = p.prob - y;
        for k in 0..4 {
            let g = err * p.x[k];
            self.g2[k] = 0.99 * self.g2[k] + 0.01 * g * g;
            self.theta[k] -= self.cfg.calib_rate * g / (self.g2[k].sqrt() + 1e-6);
        }
        if self.cfg.guard_windows > 0 {
            let d = (p.combined - actual).abs() - pers_err;
            self.guard.push_back(d);
            self.guard_sum += d;
            if self.guard.len() > self.cfg.guard_windows
                && let Some(old) = self.guard.pop_front()
            {
                self.guard_sum -= old;
            }
        }
        // Skill.
        let e = (p.published - actual).abs();
        let b = err * err;
        self.recent.push_back((e, pers_err, b));
        self.recent_sum.0 += e;
        self.recent_sum.1 += pers_err;
        self.recent_sum.2 += b;
        if self.recent.len() > self.cfg.skill_windows
            && let Some((a, c, d)) = self.recent.pop_front()
        {
            self.recent_sum.0 -= a;
            self.recent_sum.1 -= c;
            self.recent_sum.2 -= d;
        }
        self.total.0 += e;
        self.total.1 += pers_err;
        self.scored += 1;
    }

    /// What was published for the next window is not the combination but this
    /// (`replay --model-only`): score that instead, so the skill describes what
    /// was published.
    pub fn publish_instead(&mut self, mbps: f64, prob: f64) {
        if let Some(p) = self.pending.as_mut() {
            p.published = mbps;
            p.prob = prob;
        }
    }

    /// The skill so far.
    pub fn skill(&self) -> Skill {
        let ratio = |a: f64, b: f64| (b > 1e-12).then(|| a / b);
        Skill {
            mase_recent: ratio(self.recent_sum.0, self.recent_sum.1),
            mase_total: ratio(self.total.0, self.total.1),
            brier_recent: (!self.recent.is_empty())
                .then(|| (self.recent_sum.2 / self.recent.len() as f64).max(0.0)),
            scored: self.scored,
        }
    }

    /// The burst expert. Inside a burst: what is left of a burst the size of
    /// the stream's recent ones (the median of the last few volumes between
    /// silent windows: video segments of one bitrate, a repeated transfer),
    /// at most the current window; persistence once the burst is past that
    /// size or before any burst has ended. In silence: the median first
    /// window of the last bursts when the next one is due (see below), else
    /// persistence's 0. Returns the forecast and whether a burst is due.
    fn burst(&mut self, current_mbps: f64, silent: bool) -> (f64, bool) {
        if silent {
            if let Some(v) = self.burst_so_far.filter(|v| *v > 0.0) {
                push_bounded(&mut self.bursts, v, BURSTS_KEPT);
            }
            self.burst_so_far = Some(0.0);
            self.gap = self.gap.map(|g| g.saturating_add(1));
            // A stream whose last bursts came after gaps of one length (a
            // player in its steady state, a periodic transfer): the next one
            // is due after this window when the gap has reached the length
            // most of the last three had. Chosen on the development captures:
            // pooled MASE 0.9277 without it, 0.9220 when all three had it,
            // 0.9209 most (the rule), 0.9210 the last two.
            let periodic = self.gaps.len() == BURSTS_KEPT
                && self.gap.is_some_and(|gap| {
                    self.gaps.iter().filter(|g| **g == gap).count() * 2 > BURSTS_KEPT
                });
            if periodic && let Some(start) = median(&self.starts) {
                return (start, true);
            }
            return (current_mbps, false);
        }
        if let Some(g) = self.gap.filter(|g| *g > 0) {
            push_bounded(&mut self.gaps, g, BURSTS_KEPT);
            push_bounded(&mut self.starts, current_mbps, BURSTS_KEPT);
        }
        self.gap = Some(0);
        let (Some(so_far), Some(typical)) = (
            self.burst_so_far.as_mut().map(|v| {
                *v += current_mbps;
                *v
            }),
            median(&self.bursts),
        ) else {
            return (current_mbps, false);
        };
        let left = if so_far > BURST_PAST * typical {
            current_mbps
        } else {
            (typical - so_far).clamp(0.0, current_mbps)
        };
        (left, false)
    }

    /// The level expert: the mean of the busy windows since the rate last
    /// moved by over [`LEVEL_SCALES`] times the stream's usual change (a
    /// silent window, or no usual change known yet, is a move), the newest
    /// [`LEVEL_WINDOWS`] weighted most.
    fn level(&mut self, current_mbps: f64, silent: bool) -> f64 {
        let (sum, n) = self.level;
        let moved = silent
            || n == 0.0
            || self.scale[0]
                .is_none_or(|s| (current_mbps - sum / n).abs() > LEVEL_SCALES * s.max(0.01));
        self.level = if moved {
            (current_mbps, 1.0)
        } else if n >= LEVEL_WINDOWS {
            (
                sum * (LEVEL_WINDOWS - 1.0) / LEVEL_WINDOWS + current_mbps,
                LEVEL_WINDOWS,
            )
        } else {
            (sum + current_mbps, n + 1.0)
        };
        self.level.0 / self.level.1
    }

    /// Issue the published forecast for the next window from the experts'
    /// forecasts (in [`EXPERTS`] order), the model's probability, whether the
    /// current window is silent, and whether its receivers `held` their senders
    /// back ([`engine::window::TcpProgress::receiver_limited`]: then
    /// the forecast is at most persistence's), and how its traffic was spread
    /// over it. Returns (throughput, probability).
    pub fn issue(
        &mut self,
        given: [f64; GIVEN],
        model_prob: f64,
        current_mbps: f64,
        silent: bool,
        held: bool,
        shape: Shape,
    ) -> (f64, f64) {
        // The tail expert: a window whose rate turned within it (its last
        // fifth well over or under the whole: a link that slowed or came
        // back, a transfer that ended or took off) goes on at the rate it
        // turned to; otherwise persistence.
        let turn = shape
            .tail_mbps
            .filter(|_| !silent && current_mbps > self.cfg.floor_mbps)
            .and_then(|t| {
                if t > TURN_RATIO * current_mbps {
                    Some((RISING, t))
                } else if t * TURN_RATIO < current_mbps {
                    Some((FALLING, t))
                } else {
                    None
                }
            });
        let tail = turn.map_or(current_mbps, |(_, t)| t);
        let moved = self.scale[0]
            .is_some_and(|s| (current_mbps - self.last_mbps).abs() > MOVE_SCALES * s.max(0.01));
        // Busy windows in a row up to the last one (None: unknown).
        let run = self.since_silence;
        self.since_silence = if silent {
            Some(0)
        } else {
            self.since_silence.map(|n| n.saturating_add(1))
        };
        let context = context(silent, self.since_silence, moved, turn.map(|(c, _)| c));
        let (burst, start_due) = self.burst(current_mbps, silent);
        // The resume expert: on the first busy window after silence, the
        // sender goes back to the level it kept before (a receiver that
        // stopped reading leaves the sender's window open and its data
        // queued; the next transfer on the same path), at most the rate this
        // window ran at from its first payload (a path that slowed meanwhile)
        // and no lower than the window's own.
        let resume = match median(&self.levels) {
            Some(level) if self.since_silence == Some(1) && current_mbps >= RESUME_FROM * level => {
                let rate = current_mbps / shape.active.clamp(MIN_ACTIVE, 1.0);
                level.min(rate).max(current_mbps)
            }
            _ => current_mbps,
        };
        // The level is kept from busy windows after busy ones (not a probe or
        // the partial first window of a restart) that no receiver held back.
        if !silent && !self.last_silent && !held {
            push_bounded(&mut self.levels, current_mbps, LEVELS_KEPT);
        }
        // A restart that ended before it could show a level again (a chunk a
        // slow reader let through, a short request) says the restarts here
        // are not returns: the level is forgotten. A probe into a zero window
        // or a keep-alive (under `RESUME_FROM` of it) says nothing.
        if silent {
            let short = run.is_some_and(|n| (1..LEVELS_KEPT).contains(&n));
            let resumed = median(&self.levels).is_some_and(|l| self.run_max >= RESUME_FROM * l);
            if short && resumed {
                self.levels.clear();
            }
            self.run_max = 0.0;
        } else {
            self.run_max = self.run_max.max(current_mbps);
        }
        let mut experts = [burst; N];
        experts[..GIVEN].copy_from_slice(&given);
        experts[RESUME] = resume;
        experts[TAIL] = tail;
        // Without ACK reports (a capture of one direction, a silent window)
        // the ACK clock sleeps: it is left out of the forecast and of the
        // learning, which keeps the others' weights as they would be without
        // it (sleeping experts).
        let ack = shape.acked_mbps.filter(|_| !silent);
        experts[ACK] = ack.unwrap_or(0.0);
        experts[LEVEL] = self.level(current_mbps, silent);
        self.analog.push(if silent { 0.0 } else { current_mbps });
        [experts[ANALOG], experts[ANALOG_SHORT]] = self.analog.forecasts();
        self.last_silent = silent;
        self.last_mbps = current_mbps;
        let w = self.w[context];
        let awake = |i: usize, x: f64| x >= self.cfg.min_weight && (i != ACK || ack.is_some());
        let kept: f64 = w
            .iter()
            .enumerate()
            .filter(|(i, x)| awake(*i, **x))
            .map(|(_, x)| x)
            .sum();
        let published = if kept > 0.0 {
            w.iter()
                .zip(experts)
                .enumerate()
                .filter(|(i, (x, _))| awake(*i, **x))
                .map(|(_, (x, f))| x * f)
                .sum::<f64>()
                / kept
        } else {
            experts[1]
        }
        .max(0.0);
        // No phantom traffic: what no window could carry is nothing; and after a
        // silent window, while silence has mostly been followed by silence on this
        // stream, the median of the next window is 0, which is also the forecast
        // with the least absolute error (a weighted mean would be a small positive
        // number every time).
        let combined = if published < self.cfg.floor_mbps
            || (silent && self.silence_stays >= 0.5 && !start_due)
        {
            0.0
        } else {
            published
        };
        // A receiver holding its sender back (its window closing: an
        // application not reading) lets through no more than it did; the
        // experts that follow the sender's history expect it to go on.
        let combined = if held {
            combined.min(experts[1])
        } else {
            combined
        };
        let published = if self.cfg.guard_windows > 0 && self.guard_sum > 0.0 {
            experts[1]
        } else {
            combined
        };
        let x = [
            logit(model_prob),
            if current_mbps < self.threshold_mbps {
                1.0
            } else {
                0.0
            },
            1.0,
            if tail < self.threshold_mbps { 1.0 } else { 0.0 },
        ];
        let prob = sigmoid(self.theta.iter().zip(x).map(|(t, v)| t * v).sum());
        self.pending = Some(Pending {
            experts,
            combined,
            context,
            published,
            prob,
            x,
            persistence: experts[1],
            ack_awake: ack.is_some(),
        });
        (published, prob)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A uniform draw in [0, 1) from a 64-bit linear congruential state.
    fn uniform(state: &mut u64) -> f64 {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (*state >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The defaults without the three experts that read the stream's own
    /// past (the level and the two analog experts): the synthetic streams of the tests
    /// of other mechanisms repeat exactly (+-1 in turn, the same stall every
    /// 60 windows), which those experts learn to forecast as no real stream
    /// lets them.
    fn without_the_past() -> OnlineConfig {
        let mut cfg = OnlineConfig::default();
        cfg.prior[LEVEL] = 0.0;
        cfg.prior[ANALOG] = 0.0;
        cfg.prior[ANALOG_SHORT] = 0.0;
        cfg
    }

    #[test]
    fn after_a_large_move_the_weights_are_learnt_apart() {
        // Steady windows at 40 +- 1 where the model knows the level (better
        // than persistence), and every 100 windows the link drops to 10 for 20
        // windows, where the model still says 40 for the first 5 (it expects
        // a return) and persistence is right.
        let mut o = Online::new(without_the_past(), 20.0);
        let mut after_drop = Vec::new();
        let mut steady = Vec::new();
        let mut last: f64 = 40.0;
        let mut since = 0;
        for t in 0..3000 {
            let cycle = t % 100;
            let level = if (50..70).contains(&cycle) {
                10.0
            } else {
                40.0
            };
            let actual = level + if t % 2 == 0 { 1.0 } else { -1.0 };
            since = if level == 10.0 && last > 30.0 || level == 40.0 && last < 20.0 {
                0
            } else {
                since + 1
            };
            o.observe(actual);
            let model = if since < 5 { 40.0 } else { level };
            let (p, _) = o.issue(
                [model, actual, actual, actual],
                0.1,
                actual,
                false,
                false,
                Shape::WHOLE,
            );
            if t > 2000 {
                if cycle == 50 {
                    after_drop.push(p);
                } else if (20..40).contains(&cycle) {
                    steady.push(p);
                }
            }
            last = actual;
        }
        // Right after the drop: close to persistence (11 or 9), not the model's 40.
        assert!(after_drop.iter().all(|p| *p < 15.0), "{after_drop:?}");
        // Steady: close to the model's level, not persistence's +-1 swings.
        let mae = steady.iter().map(|p| (p - 40.0).abs()).sum::<f64>() / steady.len() as f64;
        assert!(mae < 0.5, "steady published off the level by {mae}");
    }

    #[test]
    fn follows_persistence_when_the_model_keeps_overshooting() {
        let mut o = Online::new(OnlineConfig::default(), 20.0);
        let mut last = 10.0;
        let mut published = 0.0;
        for t in 0..400 {
            let actual = 10.0 + (t % 7) as f64 * 0.1;
            o.observe(actual);
            // The model forecasts 3x the last window, as the shipped one did on apps.
            (published, _) = o.issue(
                [3.0 * actual, actual, actual, actual],
                0.1,
                actual,
                false,
                false,
                Shape::WHOLE,
            );
            last = actual;
        }
        assert!(
            (published - last).abs() < 0.5,
            "published {published}, last {last}"
        );
        let s = o.skill();
        assert!(s.mase_recent.unwrap() < 1.3, "{s:?}");
    }

    #[test]
    fn bursts_of_one_size_are_forecast_to_end_where_the_last_ones_did() {
        // A video player: segments of 10 Mbit (10 windows at 20 Mbit/s, then
        // silence for 30 windows). The model and the smoothers expect the
        // burst to go on; persistence misses every end.
        let mut o = Online::new(OnlineConfig::default(), 20.0);
        let mut at_end = Vec::new();
        let mut inside = Vec::new();
        for t in 0..4000 {
            let phase = t % 40;
            let a = if phase < 10 { 20.0 } else { 0.0 };
            o.observe(a);
            let (p, _) = o.issue([20.0, a, 10.0, 5.0], 0.5, a, a == 0.0, false, Shape::WHOLE);
            if t > 3000 {
                match phase {
                    9 => at_end.push(p),
                    2..=7 => inside.push(p),
                    _ => {}
                }
            }
        }
        assert!(
            at_end.iter().all(|p| *p < 2.0),
            "the last window of a burst is forecast to be followed by silence: {at_end:?}"
        );
        assert!(
            inside.iter().all(|p| (p - 20.0).abs() < 2.0),
            "inside a burst the rate goes on: {inside:?}"
        );
        // The gaps are all of one length too, so the starts are foreseen as
        // well: almost nothing of persistence's error is left.
        let s = o.skill();
        assert!(s.mase_recent.unwrap() < 0.05, "{s:?}");
    }

    #[test]
    fn bursts_after_gaps_of_one_length_are_forecast_to_start_on_time() {
        // A periodic sender: 5 busy windows (the first 4 Mbit/s, then 10),
        // 20 silent ones, again and again; then the period breaks once (a gap
        // of 30).
        let mut o = Online::new(OnlineConfig::default(), 20.0);
        let (mut before_start, mut other_silent, mut broken) = (Vec::new(), Vec::new(), Vec::new());
        let mut pattern: Vec<f64> = Vec::new();
        for _ in 0..120 {
            pattern.extend([4.0, 10.0, 10.0, 10.0, 10.0]);
            pattern.extend([0.0; 20]);
        }
        pattern.extend([4.0, 10.0, 10.0, 10.0, 10.0]);
        pattern.extend([0.0; 30]);
        pattern.extend([4.0, 10.0, 10.0, 10.0, 10.0]);
        for (t, &a) in pattern.iter().enumerate() {
            o.observe(a);
            let (p, _) = o.issue(
                [1.0, a, 0.3 * a, 2.0],
                0.9,
                a,
                a == 0.0,
                false,
                Shape::WHOLE,
            );
            let next = pattern.get(t + 1).copied().unwrap_or(0.0);
            if t >= 3000 {
                broken.push((a, next, p));
            } else if t > 1000 && a == 0.0 {
                if next > 0.0 {
                    before_start.push(p);
                } else {
                    other_silent.push(p);
                }
            }
        }
        assert!(
            before_start.iter().all(|p| (p - 4.0).abs() < 0.5),
            "the first window of the next burst, on time: {before_start:?}"
        );
        assert!(
            other_silent.iter().all(|p| *p == 0.0),
            "no traffic before it is due"
        );
        // The broken period: one window of expected traffic at the usual
        // time, then 0 until the burst comes (its gap is not the usual one).
        let expected: Vec<f64> = broken
            .iter()
            .filter(|(a, next, _)| *a == 0.0 && *next == 0.0)
            .map(|(_, _, p)| *p)
            .collect();
        assert_eq!(
            expected.iter().filter(|p| **p > 0.0).count(),
            1,
            "{expected:?}"
        );
    }

    #[test]
    fn silence_cut_by_a_gap_in_the_grid_is_not_counted_as_a_period() {
        // A periodic sender (5 busy windows, 30 silent ones); 10 windows into
        // one silence the grid has a gap (the capture lost minutes), then 20
        // more silent windows: 30 counted, but the silence lasted far longer,
        // so no burst is due. After the next burst the period is known again.
        let mut o = Online::new(OnlineConfig::default(), 20.0);
        let mut feed = |o: &mut Online, a: f64| {
            o.observe(a);
            o.issue(
                [1.0, a, 0.3 * a, 2.0],
                0.9,
                a,
                a == 0.0,
                false,
                Shape::WHOLE,
            )
            .0
        };
        let cycle = |o: &mut Online, feed: &mut dyn FnMut(&mut Online, f64) -> f64| {
            let busy: Vec<f64> = (0..5).map(|_| feed(o, 10.0)).collect();
            let silent: Vec<f64> = (0..30).map(|_| feed(o, 0.0)).collect();
            (busy, silent)
        };
        for _ in 0..20 {
            cycle(&mut o, &mut feed);
        }
        let (_, silent) = cycle(&mut o, &mut feed);
        assert!(silent[29] > 5.0, "the period is learnt: {silent:?}");
        for _ in 0..5 {
            feed(&mut o, 10.0);
        }
        for _ in 0..10 {
            feed(&mut o, 0.0);
        }
        o.gap();
        let after_gap: Vec<f64> = (0..20).map(|_| feed(&mut o, 0.0)).collect();
        assert!(
            after_gap.iter().all(|p| *p == 0.0),
            "no burst is due after a silence of unknown length: {after_gap:?}"
        );
        let (_, silent) = cycle(&mut o, &mut feed);
        assert!(silent[29] > 5.0, "known again after a burst: {silent:?}");
    }

    #[test]
    fn a_receiver_closing_its_window_caps_the_forecast_at_the_current_window() {
        // A backlogged flow at 40 +- 2 the model knows (it forecasts the level),
        // then its receiver stops reading: the window closes over four windows
        // (30, 15, 5, 1) while the model, from the sender's history, still
        // expects 40.
        let run = |held_known: bool, cfg: OnlineConfig| {
            let mut o = Online::new(cfg, 20.0);
            let mut published = Vec::new();
            for t in 0..400 {
                let a = 40.0 + if t % 2 == 0 { 2.0 } else { -2.0 };
                o.observe(a);
                o.issue([40.0, a, a, 40.0], 0.1, a, false, false, Shape::WHOLE);
            }
            for a in [30.0, 15.0, 5.0, 1.0] {
                o.observe(a);
                published.push(
                    o.issue(
                        [40.0, a, 38.0, 39.0],
                        0.1,
                        a,
                        false,
                        held_known,
                        Shape::WHOLE,
                    )
                    .0,
                );
            }
            published
        };
        for cfg in [without_the_past(), OnlineConfig::default()] {
            let held = run(true, cfg);
            assert!(
                held.iter()
                    .zip([30.0, 15.0, 5.0, 1.0])
                    .all(|(p, a)| *p <= a),
                "at most the current window while the receiver holds back: {held:?}"
            );
        }
        // Without the receiver's signal the steady weights follow the model
        // (the experts that read the stream's past, which learn the +-2
        // alternation, left out).
        let blind = run(false, without_the_past());
        assert!(blind[0] > 30.0 && blind[3] > 1.0, "{blind:?}");
    }

    #[test]
    fn the_guard_publishes_persistence_while_the_combination_lags_and_lets_go() {
        // Two backlogged flows trading bandwidth every window (40, 60, 40, ...):
        // persistence errs by 20 every window, the experts forecasting the mean
        // 50 by 10. The combination is the better one and stays published.
        let cfg = without_the_past();
        let mut o = Online::new(cfg, 20.0);
        let mut published = Vec::new();
        for t in 0..600 {
            let a = if t % 2 == 0 { 40.0 } else { 60.0 };
            o.observe(a);
            published.push(
                o.issue([50.0, a, 50.0, 50.0], 0.1, a, false, false, Shape::WHOLE)
                    .0,
            );
        }
        assert!(
            published[400..].iter().all(|p| (p - 50.0).abs() < 1.0),
            "the combination, not persistence: {:?}",
            &published[590..]
        );
        // A staircase the lagging experts never catch: each window 1 Mbit/s up.
        // Persistence errs by 1, the others by 10: persistence is published
        // from the first 10 s on, and the combination comes back once the
        // others forecast better than persistence again.
        let cfg = OnlineConfig { eta: 0.0, ..cfg };
        let mut o = Online::new(cfg, 20.0);
        let mut p = 0.0;
        for t in 0..400 {
            let a = 25.0 + t as f64;
            o.observe(a);
            p = o
                .issue(
                    [a - 9.0, a, a - 9.0, a - 9.0],
                    0.1,
                    a,
                    false,
                    false,
                    Shape::WHOLE,
                )
                .0;
        }
        assert_eq!(p, 424.0, "persistence while everything else lags");
        for t in 400..800 {
            let a = 25.0 + t as f64;
            o.observe(a);
            p = o
                .issue(
                    [a + 1.0, a, a + 1.0, a + 1.0],
                    0.1,
                    a,
                    false,
                    false,
                    Shape::WHOLE,
                )
                .0;
        }
        // Weights stay at the prior (eta 0): a + 1 weighted by the model's,
        // EWMA's and the mean's prior, a (persistence and the burst expert,
        // no burst having ended) by the rest.
        let lagging = cfg.prior[0] + cfg.prior[2] + cfg.prior[3];
        assert!(
            (p - (824.0 + lagging)).abs() < 1e-9,
            "the combination, better again, is back: {p}"
        );
    }

    /// A bulk sender to a receiver that stops reading now and then, over
    /// `windows` windows: 40 at the link's rate (`rate` of the stretch's
    /// index), 20 silent, then a restart whose first window carries payload
    /// from its middle on (half the rate over the window, the rate over its
    /// second half); in the silence, 10 windows in, a lone busy window of
    /// `blip` Mbit/s (0: none). Returns each window's phase in its 60, the
    /// link's rate, and what was published for it.
    fn stalls(
        threshold: f64,
        windows: usize,
        rate: impl Fn(usize) -> f64,
        blip: f64,
    ) -> Vec<(usize, f64, f64)> {
        let mut o = Online::new(without_the_past(), threshold);
        let mut published = Vec::with_capacity(windows);
        for t in 0..windows {
            let (phase, rate) = (t % 60, rate(t / 60));
            let (a, active) = match phase {
                0 => (0.5 * rate, 0.5),
                1..40 => (rate, 1.0),
                50 if blip > 0.0 => (blip, 0.5),
                _ => (0.0, 1.0),
            };
            o.observe(a);
            // The model expects a slow ramp after silence, as on the lab's traces.
            let model = if phase < 5 { 0.6 * a } else { a };
            let (p, _) = o.issue(
                [model, a, 0.5 * a, 0.5 * a],
                0.5,
                a,
                a == 0.0,
                false,
                Shape {
                    active,
                    tail_mbps: None,
                    acked_mbps: None,
                },
            );
            published.push((phase, rate, p));
        }
        published
    }

    /// [`stalls`] on a 50 Mbit/s link, 3,000 windows: what was published for
    /// each restart's second window, and for the window after each blip,
    /// from window 1,000 on.
    fn restarts_at_50(blip: f64) -> (Vec<f64>, Vec<f64>) {
        let run = stalls(20.0, 3000, |_| 50.0, blip);
        let after = |phase| {
            run.iter()
                .skip(1001)
                .filter(|w| w.0 == phase)
                .map(|w| w.2)
                .collect()
        };
        let (second, after_blip): (Vec<f64>, Vec<f64>) = (after(0), after(50));
        assert_eq!(second.len(), 33, "restarts scored");
        (second, after_blip)
    }

    #[test]
    fn a_sender_released_by_its_receiver_is_forecast_back_at_its_level() {
        let (second, _) = restarts_at_50(0.0);
        assert!(
            second.iter().all(|p| (p - 50.0).abs() < 2.0),
            "the level, not the partial window's 25 nor the model's ramp: {second:?}"
        );
        // A probe into the zero window (a few bytes) in the silence is no
        // resumption: nothing is forecast after it, and the level stays.
        let (second, after_probe) = restarts_at_50(0.02);
        assert!(after_probe.iter().all(|p| *p < 0.1), "{after_probe:?}");
        assert!(second.iter().all(|p| (p - 50.0).abs() < 2.0), "{second:?}");
        // A chunk a slow reader let through (one window, then silence again)
        // is no return to the level either, and says the next restart may not
        // be one: persistence's, not the level's.
        let (second, after_chunk) = restarts_at_50(10.0);
        assert!(
            after_chunk.iter().all(|p| *p <= 10.0 + 1e-9),
            "{after_chunk:?}"
        );
        assert!(second.iter().all(|p| *p < 30.0), "{second:?}");
    }

    #[test]
    fn a_sender_back_on_a_slower_path_is_forecast_at_the_rate_it_restarted_at() {
        // Stalls as above, but the link alternates between 50 and 20 Mbit/s
        // from one busy stretch to the next; each restart's first window
        // carries payload from its middle on. After a 50 stretch the level
        // says 50 while the sender restarts at 20 (10 over the window): the
        // expert is right only if it is capped at that rate (uncapped it
        // loses its weight and persistence's 10 is published).
        let after_slowdown: Vec<f64> =
            stalls(5.0, 6000, |k| if k % 2 == 0 { 50.0 } else { 20.0 }, 0.0)
                .into_iter()
                .skip(2001)
                .filter(|w| w.0 == 0 && w.1 == 20.0)
                .map(|w| w.2)
                .collect();
        assert_eq!(
            after_slowdown.len(),
            33,
            "restarts onto the slower path scored"
        );
        assert!(
            after_slowdown.iter().all(|p| (p - 20.0).abs() < 3.0),
            "the rate the restart ran at: {after_slowdown:?}"
        );
    }

    #[test]
    fn the_first_windows_of_a_burst_learn_apart_from_its_steady_middle() {
        // Bursts of 12 to 30 windows at 100 +- 2 Mbit/s after 20 silent
        // ones. The model knows the level (better than persistence in the
        // middle) but expects a slow ramp (90) for the second and third
        // windows of a burst; the smoothers still average the silence in.
        // Persistence is within 4 from the second window on.
        let mut o = Online::new(
            OnlineConfig {
                guard_windows: 0,
                ..OnlineConfig::default()
            },
            20.0,
        );
        let mut early = Vec::new();
        let mut t = 0;
        for k in 0..150 {
            let len = [15, 25, 20, 30, 12][k % 5];
            for phase in 0..len + 20 {
                let a = if phase < len {
                    100.0 + if t % 2 == 0 { 2.0 } else { -2.0 }
                } else {
                    0.0
                };
                o.observe(a);
                let model = match phase {
                    0 => a,
                    1..3 => 90.0,
                    p if p < len => 100.0,
                    _ => 0.0,
                };
                let (p, _) = o.issue(
                    [model, a, 0.3 * a, 0.4 * a],
                    0.1,
                    a,
                    a == 0.0,
                    false,
                    Shape::WHOLE,
                );
                if k > 75 && (1..3).contains(&phase) {
                    early.push(p);
                }
                t += 1;
            }
        }
        assert!(
            early.iter().all(|p| (p - 100.0).abs() < 6.0),
            "persistence early in a burst, not the model's ramp nor the smoothers: {:?} {:?}",
            o.weights(),
            &early[..6]
        );
    }

    #[test]
    fn a_restart_after_silence_learns_apart_from_steady_traffic() {
        // Bursts of 10 busy windows at 100 Mbit/s after 10 silent ones. On the
        // first busy window the model says 20 (a blip) and is wrong; on the
        // others it is right. Persistence is wrong only after the first.
        let mut o = Online::new(
            OnlineConfig {
                guard_windows: 0,
                ..without_the_past()
            },
            20.0,
        );
        let mut last = 0.0;
        for t in 0..2000 {
            let a = if t % 20 < 10 { 0.0 } else { 100.0 };
            o.observe(a);
            let first = last == 0.0 && a > 0.0;
            let model = if first { 20.0 } else { a };
            o.issue(
                [model, a, 0.5 * a, 0.5 * a],
                0.1,
                a,
                a == 0.0,
                false,
                Shape::WHOLE,
            );
            last = a;
        }
        let [steady, _, restart, ..] = o.weights();
        // Persistence, and the burst expert that says the same until a
        // burst has reached the size of the last ones.
        assert!(
            restart[1] + restart[4] + restart[5] > 0.99,
            "persistence after a restart: {restart:?}"
        );
        // Steady: model and persistence tie (both are right inside a burst and
        // wrong at its end); the burst expert knows where the bursts end (of
        // the weight the forecast uses: the ACK clock sleeps here).
        assert!(
            (steady[0] - steady[1]).abs() < 1e-9 && steady[4] / (1.0 - steady[ACK]) > 0.9,
            "the burst expert when steady: {steady:?}"
        );
    }

    #[test]
    fn a_rate_that_turned_within_the_window_is_forecast_at_its_new_level() {
        // A link that alternates between 80 and 20 Mbit/s every 30 windows,
        // the step 40 % into a window: that window runs at 44 or 56 overall
        // and at the new rate over its last fifth. The experts the caller
        // gives follow the window (the model and persistence) or lag (the
        // smoothers); only the tail saw where the rate went.
        let mut o = Online::new(OnlineConfig::default(), 10.0);
        let mut after_turn = Vec::new();
        let mut steady = Vec::new();
        let level = |t: usize| {
            if (t / 30).is_multiple_of(2) {
                80.0
            } else {
                20.0
            }
        };
        for t in 1..3000 {
            let (now, before) = (level(t), level(t - 1));
            let (a, tail) = if now != before {
                (0.4 * before + 0.6 * now, now)
            } else {
                // Steady: the last fifth a little off the whole, as a real
                // window's is.
                (now, now * if t % 2 == 0 { 1.1 } else { 0.9 })
            };
            o.observe(a);
            let lagging = 0.5 * (a + 50.0);
            let (p, _) = o.issue(
                [a, a, lagging, lagging],
                0.1,
                a,
                false,
                false,
                Shape {
                    active: 1.0,
                    tail_mbps: Some(tail),
                    acked_mbps: None,
                },
            );
            if t > 2000 {
                if now != before {
                    after_turn.push((p, level(t + 1)));
                } else if level(t + 1) == now {
                    steady.push((p, now));
                }
            }
        }
        assert_eq!(
            (after_turn.len(), steady.len()),
            (33, 932),
            "windows scored"
        );
        // After the window that caught the step: close to the new rate
        // (persistence says 44 or 56, 24 or 36 off).
        assert!(
            after_turn.iter().all(|(p, next)| (p - next).abs() < 5.0),
            "{after_turn:?}"
        );
        // In steady windows a last fifth within 25 % of the whole is no turn.
        assert!(
            steady.iter().all(|(p, next)| (p - next).abs() < 1e-6),
            "{:?}",
            &steady[..5]
        );
    }

    #[test]
    fn a_sender_sends_what_the_acks_of_the_last_window_let_out() {
        // Seen from the senders: a link whose delivery rate wanders (a random
        // factor each window, pulled towards 40 Mbit/s) and senders that send
        // in each window what the last one's ACKs reported delivered. The ACK
        // clock knows the next window; the other experts do not.
        let run = |with_acks: bool| {
            let mut o = Online::new(without_the_past(), 10.0);
            let mut x = 12345u64;
            let (mut sent, mut delivered) = (40.0, 40.0);
            let (mut err, mut persistence_err) = (0.0, 0.0);
            let mut issued: Option<f64> = None;
            for t in 0..3000 {
                let u = uniform(&mut x);
                let before = sent;
                sent = delivered;
                delivered = (delivered * (0.7 + 0.7 * u)).clamp(5.0, 150.0) * 0.9 + 4.0;
                o.observe(sent);
                if let Some(p) = issued.filter(|_| t > 2000) {
                    err += (p - sent).abs();
                    persistence_err += (before - sent).abs();
                }
                let shape = Shape {
                    active: 1.0,
                    tail_mbps: Some(sent),
                    acked_mbps: with_acks.then_some(delivered),
                };
                issued = Some(o.issue([sent; GIVEN], 0.1, sent, false, false, shape).0);
            }
            (err / persistence_err, o.weights())
        };
        let (with, w) = run(true);
        let (without, _) = run(false);
        assert!(with < 0.05, "MASE {with} with the ACK clock");
        assert!((without - 1.0).abs() < 1e-9, "MASE {without} without it");
        // Learnt in steady windows; never in the windows after silence or
        // restarts, where the first ACKs of a burst lag what it sends.
        assert!(w[0][ACK] > 0.9, "{:?}", w[0]);
        assert_eq!((w[AFTER_SILENCE][ACK], w[RESTART][ACK]), (0.0, 0.0));
    }

    #[test]
    fn a_cycle_the_stream_went_through_before_is_forecast_from_its_past() {
        // A BBR sender's gain cycle, one round trip a window: 1.25 times its
        // rate, then 0.75, then six at the rate (40 Mbit/s), each window
        // within 1 % at random. Persistence misses three windows in eight;
        // nothing but the analog expert knows what comes after a probe.
        let run = |cfg: OnlineConfig| {
            let mut o = Online::new(cfg, 10.0);
            let (mut err, mut persistence_err, mut last) = (0.0, 0.0, 40.0);
            let mut issued: Option<f64> = None;
            let mut x = 99u64;
            for t in 0..3000 {
                let u = uniform(&mut x);
                let gain = [1.25, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0][t % 8];
                let actual = 40.0 * gain * (1.0 + 0.02 * (u - 0.5));
                o.observe(actual);
                if let Some(p) = issued.filter(|_| t > 1500) {
                    err += (p - actual).abs();
                    persistence_err += (last - actual).abs();
                }
                issued = Some(
                    o.issue([actual; GIVEN], 0.1, actual, false, false, Shape::WHOLE)
                        .0,
                );
                last = actual;
            }
            (err / persistence_err, o.weights())
        };
        let (with, w) = run(OnlineConfig::default());
        let (without, _) = run(without_the_past());
        assert!(with < 0.3, "MASE {with} with the analog expert");
        assert!(without > 0.9, "MASE {without} without the stream's past");
        assert!(w[0][ANALOG] > 0.5, "{:?}", w[0]);
    }

    #[test]
    fn a_flow_that_wobbles_around_its_link_rate_is_forecast_at_its_level() {
        // A link at 50 Mbit/s, then 100 from window 1000: each window up to
        // 5 % off the rate, at random. Persistence forecasts each wobble to
        // last; the level does not, and starts again when the rate steps.
        let run = |cfg: OnlineConfig| {
            let mut o = Online::new(cfg, 10.0);
            let (mut err, mut persistence_err, mut last) = (0.0, 0.0, None::<f64>);
            let mut issued: Option<f64> = None;
            let mut x = 12345u64;
            for t in 0..2000 {
                let u = uniform(&mut x);
                let rate = if t < 1000 { 50.0 } else { 100.0 };
                let wobble = 1.0 + 0.1 * (u - 0.5);
                let actual = rate * wobble;
                o.observe(actual);
                if let (Some(p), Some(l)) = (issued, last)
                    && t > 200
                {
                    err += (p - actual).abs();
                    persistence_err += (l - actual).abs();
                }
                issued = Some(
                    o.issue([actual; GIVEN], 0.1, actual, false, false, Shape::WHOLE)
                        .0,
                );
                let level = o.pending.as_ref().map(|p| p.experts[LEVEL]);
                if t == 1000 {
                    // The first window at the new rate is a level of its own.
                    assert_eq!(level, Some(100.0 * wobble));
                }
                if t == 1001 {
                    assert!(level.is_some_and(|l| (l - 100.0).abs() < 1.0), "{level:?}");
                }
                last = Some(actual);
            }
            (err / persistence_err, o.weights())
        };
        // The level expert alone among the stage's own (the analog ones,
        // which could also smooth white wobbles their way, left out).
        let mut level_only = without_the_past();
        level_only.prior[LEVEL] = OnlineConfig::default().prior[LEVEL];
        let (mase, w) = run(level_only);
        assert!(mase < 0.85, "MASE {mase} with the level expert");
        assert!(w[0][LEVEL] > 0.5, "{:?}", w[0]);
        // Not in restarts or turns, where the rate is still moving.
        assert_eq!(
            (w[RESTART][LEVEL], w[FALLING][LEVEL], w[RISING][LEVEL]),
            (0.0, 0.0, 0.0)
        );
        // Every other expert here says persistence.
        let (without, _) = run(without_the_past());
        assert!((without - 1.0).abs() < 1e-9, "MASE {without} without it");
        // The shipped defaults keep the level's gain.
        let (default, w) = run(OnlineConfig::default());
        assert!(default < 0.85, "MASE {default} with the defaults");
        assert!(w[0][LEVEL] > 0.5, "{:?}", w[0]);
    }

    #[test]
    fn the_probability_learns_where_a_turned_window_was_heading() {
        // A link between 30 and 10 Mbit/s (threshold 20), the step 70 % into
        // a window: the window that caught a fall runs at 24 (over the
        // threshold) and the next is at 10; one that caught a rise runs at
        // 16 and the next at 30. The model's probability says nothing.
        let mut o = Online::new(OnlineConfig::default(), 20.0);
        let level = |t: usize| {
            if (t / 40).is_multiple_of(2) {
                30.0
            } else {
                10.0
            }
        };
        let (mut falls, mut rises) = (Vec::new(), Vec::new());
        for t in 1..4000 {
            let (now, before) = (level(t), level(t - 1));
            let a = if now != before {
                0.7 * before + 0.3 * now
            } else {
                now
            };
            o.observe(a);
            let shape = Shape {
                active: 1.0,
                tail_mbps: Some(now),
                acked_mbps: None,
            };
            let (_, prob) = o.issue([a; 4], 0.5, a, false, false, shape);
            if t > 3000 && now < before {
                falls.push(prob);
            } else if t > 3000 && now > before {
                rises.push(prob);
            }
        }
        assert_eq!((falls.len(), rises.len()), (12, 12), "turns scored");
        assert!(falls.iter().all(|p| *p > 0.7), "{falls:?}");
        assert!(rises.iter().all(|p| *p < 0.3), "{rises:?}");
    }

    #[test]
    fn no_phantom_traffic_after_silence() {
        let mut o = Online::new(OnlineConfig::default(), 20.0);
        let mut published = 1.0;
        for _ in 0..200 {
            o.observe(0.0);
            (published, _) = o.issue([0.08, 0.0, 0.0, 0.0], 0.99, 0.0, true, false, Shape::WHOLE);
        }
        assert_eq!(published, 0.0);
        // Regression: the shipped trees forecast 6.4e-7 Mbit/s on an idle
        // link, and that was published; no window can carry that.
        let mut o = Online::new(OnlineConfig::default(), 20.0);
        o.observe(0.0);
        let (published, _) = o.issue(
            [6.4e-7, 0.0, 0.0, 0.0],
            0.99,
            0.0,
            true,
            false,
            Shape::WHOLE,
        );
        assert_eq!(published, 0.0);
    }

    #[test]
    fn after_silence_the_median_is_published() {
        let cfg = OnlineConfig {
            floor_mbps: 0.0032,
            ..OnlineConfig::default()
        };
        // Idle stretches (15 to 25 silent windows, each gap longer than the
        // last until 25, then one burst): after a silent window the published
        // forecast is 0 even though the model says 2 Mbit/s and holds some
        // weight. (Gaps of one length would have the burst expert forecast
        // each burst on time.)
        let mut o = Online::new(cfg, 20.0);
        let mut after_silence = Vec::new();
        let mut last = 0.0;
        let (mut gap_left, mut bursts) = (15, 0);
        for _ in 0..2000 {
            let actual = if gap_left == 0 {
                bursts += 1;
                gap_left = 15 + bursts % 11;
                5.0
            } else {
                gap_left -= 1;
                0.0
            };
            o.observe(actual);
            let (p, _) = o.issue(
                [2.0, actual, 0.3, 0.2],
                0.9,
                actual,
                actual == 0.0,
                false,
                Shape::WHOLE,
            );
            if last == 0.0 && actual == 0.0 {
                after_silence.push(p);
            }
            last = actual;
        }
        assert!(after_silence.iter().skip(100).all(|p| *p == 0.0));
        assert!(o.silence_stays() > 0.8);
        // Silence that is mostly followed by traffic (every other window): the
        // combination is published, not 0.
        let mut o = Online::new(cfg, 20.0);
        let (mut after_silent, mut after_busy) = (0.0, 0.0);
        for t in 0..400 {
            let actual = if t % 2 == 0 { 0.0 } else { 4.0 };
            o.observe(actual);
            let p = o
                .issue(
                    [4.0, actual, 2.0, 2.0],
                    0.9,
                    actual,
                    actual == 0.0,
                    false,
                    Shape::WHOLE,
                )
                .0;
            if actual == 0.0 {
                after_silent = p;
            } else {
                after_busy = p;
            }
        }
        assert!(
            o.silence_stays() < 0.1 && after_silent > 3.0,
            "{} {after_silent}",
            o.silence_stays()
        );
        // Every burst is one window of 4: after it, the burst expert's 0.
        assert!(after_busy < 0.1, "{after_busy}");
    }

    #[test]
    fn the_skill_scores_what_was_published() {
        // Publishing a forecast twice the actual: MASE 2 against a persistence
        // that errs by the actual's change (1 Mbit/s every window).
        let mut o = Online::new(OnlineConfig::default(), 20.0);
        for t in 0..100 {
            let actual = 10.0 + (t % 2) as f64;
            o.observe(actual);
            let next = 10.0 + ((t + 1) % 2) as f64;
            o.issue([actual; 4], 0.1, actual, false, false, Shape::WHOLE);
            o.publish_instead(2.0 * next, 0.1);
        }
        let m = o.skill().mase_total.unwrap();
        assert!(
            (m - 10.5).abs() < 0.6,
            "published errs by ~10.5, persistence by 1: {m}"
        );
    }

    #[test]
    fn the_probability_learns_the_labels() {
        let mut o = Online::new(OnlineConfig::default(), 20.0);
        let mut prob = 0.0;
        // The model says 0.6, but the next window is always above the threshold.
        for _ in 0..2000 {
            o.observe(50.0);
            (_, prob) = o.issue([50.0; 4], 0.6, 50.0, false, false, Shape::WHOLE);
        }
        assert!(prob < 0.1, "{prob}");
        assert!(o.skill().brier_recent.unwrap() < 0.05);
    }
}
