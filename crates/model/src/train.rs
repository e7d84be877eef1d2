//! `netforecast train`: a forecaster trained in Rust and exported as a
//! TorchScript module with the MODEL.md signature. `--arch lstm` (default) and
//! `linear` are tch networks; `gbt` is boosted trees ([`crate::gbt`]) whose
//! forward is written in tensor ops so it traces the same way.
//!
//! Data: features CSVs (`netforecast extract`), one capture per file. Sequences
//! of 15 windows never cross a capture or a gap in the grid. The validation
//! split is by capture, never by window. Robust scaling (median/IQR per feature,
//! fitted on training windows) is part of the exported module, so the file is
//! the whole model. Every architecture forecasts relative to the last window's
//! throughput (a gate with a head start on persistence, or trees that add a
//! change to it), so training starts from the persistence forecast and has to
//! earn every improvement over it.

use crate::gbt::{self, GbtConfig, Loss};
use crate::torch::{LOOKBACK, META_FILE, MODULE_FILE, ModelMeta, N_FEATURES};
use engine::csv::{FeaturesCapture as Capture, ReadError, read_features_csv};
use engine::eval::{Baselines, Forecasts, Scoreboard};
use engine::forecast::WindowWidth;
use engine::window::FEATURE_NAMES;
use std::io::IsTerminal;
use std::path::PathBuf;
use tch::nn::{self, Module, OptimizerConfig, RNN};
use tch::{Device, Kind, Tensor};

/// Indices of the features (FEATURES.md order) the models read by name:
/// `delay` (mean ACK RTT), `bif`, `iat_mean`, `iat_std`, `throughput_mbps`,
/// `bif_grad` and `is_silent`.
pub(crate) const DELAY: usize = 1;
pub(crate) const BIF: usize = 2;
pub(crate) const IAT_MEAN: usize = 3;
pub(crate) const IAT_STD: usize = 4;
pub(crate) const THR: usize = engine::window::THROUGHPUT_FEATURE;
pub(crate) const BIF_GRAD: usize = 7;
pub(crate) const SILENT: usize = 8;

#[derive(Clone, Debug)]
pub struct TrainConfig {
    pub inputs: Vec<PathBuf>,
    pub out: PathBuf,
    pub window: WindowWidth,
    pub threshold_mbps: f64,
    /// `lstm` (default) or `linear` (a linear map of the scaled 15x9 window, the
    /// simpler model the LSTM must beat to be shipped).
    pub arch: String,
    pub hidden: i64,
    pub layers: i64,
    /// Windows per LSTM step (1, 3 or 5): the LSTM reads the 15 windows as
    /// 15 / stride steps of stride windows each (fewer steps: faster inference).
    pub lstm_stride: i64,
    /// AdamW weight decay.
    pub weight_decay: f64,
    pub epochs: usize,
    pub patience: usize,
    /// Boosted trees (`--arch gbt`): most trees, depth, learning rate.
    pub trees: usize,
    pub depth: usize,
    pub gbt_lr: f64,
    pub batch: usize,
    pub lr: f64,
    pub seed: u64,
    /// Share of captures held out for validation when `val` is empty.
    pub val_frac: f64,
    /// Captures used for validation (their file names or paths), if given.
    pub val: Vec<PathBuf>,
    /// The command line, written into the model's README.
    pub command: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Features(#[from] ReadError),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Data(String),
    #[error("libtorch: {0}")]
    Torch(String),
    #[error("cannot write {path}: {detail}")]
    Write { path: PathBuf, detail: String },
}

fn torch<T>(r: Result<T, tch::TchError>) -> Result<T, TrainError> {
    r.map_err(|e| TrainError::Torch(e.to_string().lines().next().unwrap_or("").to_owned()))
}

/// Sequences of one set of captures, with the baselines' forecasts beside them.
#[derive(Default)]
struct Dataset {
    x: Vec<f32>,
    y: Vec<f32>,
    baselines: Forecasts,
    windows: usize,
}

impl Dataset {
    fn len(&self) -> usize {
        self.y.len()
    }

    fn add(&mut self, c: &Capture) {
        for seg in &c.segments {
            self.windows += seg.len();
            let mut base = Baselines::default();
            for t in 0..seg.len() {
                base.push(seg[t][THR] as f64);
                if t + 1 < LOOKBACK || t + 1 >= seg.len() {
                    continue;
                }
                for row in &seg[t + 1 - LOOKBACK..=t] {
                    self.x.extend_from_slice(row);
                }
                let target = seg[t + 1][THR];
                self.y.push(target);
                let (p, m, e) = base.forecast().unwrap_or((0.0, 0.0, 0.0));
                self.baselines.actual.push(target as f64);
                self.baselines.persistence.push(p);
                self.baselines.mean.push(m);
                self.baselines.ewma.push(e);
            }
        }
    }

    fn batch(&self, idx: &[usize]) -> (Tensor, Tensor) {
        let mut xb = Vec::with_capacity(idx.len() * LOOKBACK * N_FEATURES);
        let mut yb = Vec::with_capacity(idx.len());
        for &i in idx {
            xb.extend_from_slice(
                &self.x[i * LOOKBACK * N_FEATURES..(i + 1) * LOOKBACK * N_FEATURES],
            );
            yb.push(self.y[i]);
        }
        (
            Tensor::from_slice(&xb).reshape([idx.len() as i64, LOOKBACK as i64, N_FEATURES as i64]),
            Tensor::from_slice(&yb),
        )
    }
}

/// Per-feature multiplier before the log: seconds become milliseconds so the
/// log sees useful magnitudes; bytes and Mbit/s stay as they are.
const LOG_MULT: [f32; N_FEATURES] = [1.0, 1000.0, 1.0, 1000.0, 1000.0, 1.0, 1000.0, 1.0, 1.0];
/// Features that get the signed log (all but the 0/1 silent flag): rates span
/// 1-300 Mbit/s, so the network sees relative changes, not absolute ones.
const LOG_MASK: [f32; N_FEATURES] = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0];

/// `sign(x) * ln(1 + |x| * mult)` where the mask says so (the formula the
/// exported module applies, here in f32 for fitting the scaling).
fn transform_row(r: &[f32; N_FEATURES]) -> [f32; N_FEATURES] {
    let mut o = *r;
    for k in 0..N_FEATURES {
        if LOG_MASK[k] > 0.0 {
            o[k] = r[k].signum() * (r[k].abs() * LOG_MULT[k]).ln_1p();
        }
    }
    o
}

/// Median and interquartile range of each transformed feature over the
/// training windows.
fn robust_scaling(train: &[Capture]) -> ([f32; N_FEATURES], [f32; N_FEATURES]) {
    let mut med = [0f32; N_FEATURES];
    let mut iqr = [1f32; N_FEATURES];
    for k in 0..N_FEATURES {
        let mut v: Vec<f32> = train
            .iter()
            .flat_map(|c| {
                c.segments
                    .iter()
                    .flatten()
                    .map(move |r| transform_row(r)[k])
            })
            .collect();
        if v.is_empty() {
            continue;
        }
        v.sort_by(|a, b| a.total_cmp(b));
        let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
        med[k] = q(0.5);
        let spread = q(0.75) - q(0.25);
        // A constant feature (or a 0/1 flag that is mostly 0) would divide by 0:
        // fall back to its standard deviation, then to 1.
        iqr[k] = if spread > 0.0 {
            spread
        } else {
            let m = v.iter().sum::<f32>() / v.len() as f32;
            let sd = (v.iter().map(|x| (x - m) * (x - m)).sum::<f32>() / v.len() as f32).sqrt();
            if sd > 0.0 { sd } else { 1.0 }
        };
    }
    (med, iqr)
}

/// Naive forecasts that are fixed linear maps of the throughput history:
/// persistence, means of the last 2, 3, 5, 10 and 15 windows, EWMA(0.3) and a
/// one-step linear trend.
const N_FIXED: i64 = 8;
/// All forecasts the network weighs: the fixed ones plus four that follow the
/// ACK clock (see [`Net::ack_clock`]).
const N_CAND: i64 = N_FIXED + 4;

/// Row-major [15, N_CAND] weights of the naive forecasts over the history
/// (window 0 oldest): persistence, means of the last 2/3/5/10/15, EWMA, trend.
fn candidate_matrix() -> Vec<f32> {
    let l = LOOKBACK;
    let n = N_FIXED as usize;
    let mut w = vec![0f32; l * n];
    let mut set = |j: usize, c: usize, v: f32| w[j * n + c] = v;
    set(l - 1, 0, 1.0);
    for (c, k) in [(1, 2usize), (2, 3), (3, 5), (4, 10), (5, 15)] {
        for j in l - k..l {
            set(j, c, 1.0 / k as f32);
        }
    }
    let a = engine::eval::EWMA_ALPHA as f32;
    for j in 0..l {
        // The EWMA started at the oldest window carries its leftover weight there.
        let v = if j == 0 {
            (1.0 - a).powi(l as i32 - 1)
        } else {
            a * (1.0 - a).powi((l - 1 - j) as i32)
        };
        set(j, 6, v);
    }
    set(l - 1, 7, 2.0);
    set(l - 2, 7, -1.0);
    w
}

/// Statistics of the window that the trees read directly, [B, 33]: the
/// throughput of each earlier window minus the last (Mbit/s, 14), the last
/// throughput, the last mean ACK RTT (ms) and the four before it minus it, the
/// last five bytes-in-flight changes (10 kB), the last bytes in flight, the last
/// five mean inter-arrival times (ms), the last one's standard deviation and
/// silent flag. Differences against the last window in the feature's own unit
/// are what separates a step from noise across rates that span 1-300 Mbit/s.
fn engineered(x: &Tensor) -> Tensor {
    let l = LOOKBACK as i64;
    let h = x.select(2, THR as i64).clamp_min(0.0);
    let b = h.narrow(1, l - 1, 1);
    let rtt = x.select(2, DELAY as i64) * 1000.0;
    let rtt_last = rtt.narrow(1, l - 1, 1);
    let last = |k: usize, n: i64| x.select(2, k as i64).narrow(1, l - n, n);
    Tensor::cat(
        &[
            (&h - &b).narrow(1, 0, l - 1),
            b.shallow_clone(),
            rtt_last.shallow_clone(),
            rtt.narrow(1, l - 5, 4) - &rtt_last,
            last(BIF_GRAD, 5) / 1e4,
            last(BIF, 1) / 1e4,
            last(IAT_MEAN, 5) * 1000.0,
            last(IAT_STD, 1) * 1000.0,
            last(SILENT, 1),
        ],
        1,
    )
}

/// The network: scaling, a stacked LSTM (or nothing, for `linear`), and a head
/// with softmax weights over [`N_CAND`] naive forecasts, a relative residual and
/// the congestion logit. Stable periods can lean on the means, volatile ones on
/// persistence; the weights are the network's to learn.
struct Net {
    lstm: Option<nn::LSTM>,
    /// `lstm-gbt`: a one-layer LSTM written out step by step (the same cell
    /// as `nn::lstm`; at batch 1 over a few steps it runs in a fraction of the
    /// time of libtorch's fused RNN, whose fixed cost dominates there). Its
    /// presence also means the trees' forecast is one more candidate, their
    /// logit the start of the congestion logit, and their window statistics go
    /// into the head (see [`Net::combined`]).
    cell: Option<Cell>,
    /// The fitted trees inside the exported module (`lstm-gbt`).
    trees: Option<GbtNet>,
    head: nn::Linear,
    med: Tensor,
    iqr: Tensor,
    log_mult: Tensor,
    log_mask: Tensor,
    /// [15, N_FIXED]: column i turns the throughput history into forecast i.
    cand_w: Tensor,
    /// [15]: 0, 1, ... 14, the position of each history window.
    pos: Tensor,
    window_s: f64,
    hidden: i64,
    layers: i64,
    stride: i64,
}

impl Net {
    fn new(
        vs: &nn::Path,
        cfg: &TrainConfig,
        med: &[f32; N_FEATURES],
        iqr: &[f32; N_FEATURES],
    ) -> Net {
        let (arch, hidden, layers, stride) =
            (cfg.arch.as_str(), cfg.hidden, cfg.layers, cfg.lstm_stride);
        let window_s = cfg.window.secs_f64();
        let rnn = nn::RNNConfig {
            num_layers: layers,
            batch_first: true,
            train: false,
            ..Default::default()
        };
        let linear = arch == "linear";
        let combined = arch == "lstm-gbt";
        Net {
            lstm: (!linear && !combined)
                .then(|| nn::lstm(vs / "lstm", N_FEATURES as i64 * stride, hidden, rnn)),
            cell: combined.then(|| Cell::new(&(vs / "cell"), N_FEATURES as i64 * stride, hidden)),
            trees: None,
            head: nn::linear(
                vs / "head",
                if linear {
                    (LOOKBACK * N_FEATURES) as i64
                } else if combined {
                    hidden + N_GBT_FEATURES
                } else {
                    hidden
                },
                if combined { N_CAND + 3 } else { N_CAND + 2 },
                Default::default(),
            ),
            med: Tensor::from_slice(med),
            iqr: Tensor::from_slice(iqr),
            log_mult: Tensor::from_slice(&LOG_MULT),
            log_mask: Tensor::from_slice(&LOG_MASK),
            cand_w: Tensor::from_slice(&candidate_matrix()).reshape([LOOKBACK as i64, N_FIXED]),
            pos: positions(),
            window_s,
            hidden,
            layers,
            stride,
        }
    }

    /// `lstm-gbt`: the LSTM works with the trees.
    fn combined(&self) -> bool {
        self.cell.is_some()
    }

    /// (throughput forecast in Mbit/s before clamping, congestion logit), each [B].
    /// `tree`: the trees' (throughput, logit) for these sequences (`lstm-gbt`).
    fn forward(
        &self,
        x: &Tensor,
        tree: Option<(&Tensor, &Tensor)>,
        feats: Option<&Tensor>,
    ) -> (Tensor, Tensor) {
        let logged: Tensor = x.sign() * (x.abs() * &self.log_mult).log1p();
        let keep: Tensor = self.log_mask.ones_like() - &self.log_mask;
        let xt: Tensor = &logged * &self.log_mask + x * keep;
        let xs: Tensor = (xt - &self.med) / &self.iqr;
        let stats = self.combined().then(|| match feats {
            Some(f) => f.shallow_clone(),
            None => gbt_features(x, &self.pos, self.window_s),
        });
        let o = if let Some(cell) = &self.cell {
            let steps = LOOKBACK as i64 / self.stride;
            let xl = xs.reshape([-1, steps, N_FEATURES as i64 * self.stride]);
            let last = cell.last_hidden(&xl);
            // The trees' window statistics, signed-log compressed.
            let f = stats.as_ref().expect("computed above for lstm-gbt");
            let f = f.sign() * f.abs().log1p();
            self.head.forward(&Tensor::cat(&[last, f], 1))
        } else {
            match &self.lstm {
                Some(lstm) => {
                    // The zero state is made from the input so a traced module keeps a
                    // dynamic batch size (a constant zero state bakes in the traced B).
                    let z = xs
                        .select(1, 0)
                        .narrow(1, 0, 1)
                        .zeros_like()
                        .repeat([1, self.hidden]);
                    let h0 = Tensor::stack(
                        &(0..self.layers)
                            .map(|_| z.shallow_clone())
                            .collect::<Vec<_>>(),
                        0,
                    );
                    let c0 = h0.zeros_like();
                    // stride windows per step: [B, 15, 9] -> [B, 15 / stride, 9 * stride].
                    let steps = LOOKBACK as i64 / self.stride;
                    let xl = xs.reshape([-1, steps, N_FEATURES as i64 * self.stride]);
                    let (out, _) = lstm.seq_init(&xl, &nn::LSTMState((h0, c0)));
                    self.head.forward(&out.select(1, steps - 1))
                }
                None => self.head.forward(&xs.flatten(1, 2)),
            }
        };
        // The fixed naive forecasts are linear in the throughput history: one
        // matmul with a constant [15, 8] matrix (clamped at 0 for the trend).
        let h = x.select(2, THR as i64).clamp_min(0.0);
        let fixed = h.matmul(&self.cand_w).clamp_min(0.0);
        // The ACK-clock forecasts: with the trees' statistics at hand they are
        // their last four columns plus the last throughput (computed once).
        let ack = match &stats {
            Some(f) => f.narrow(1, N_GBT_FEATURES - 4, 4) + h.narrow(1, LOOKBACK as i64 - 1, 1),
            None => ack_clock(x, &h, &self.pos, self.window_s),
        };
        let mut parts = vec![fixed, ack];
        let n_cand = if self.combined() { N_CAND + 1 } else { N_CAND };
        let mut tree_logit = None;
        if self.combined() {
            let (t_thr, t_logit) = tree.expect("lstm-gbt needs the trees' outputs");
            parts.push(t_thr.clamp_min(0.0).unsqueeze(1));
            tree_logit = Some(t_logit.shallow_clone());
        }
        let cands = Tensor::cat(&parts, 1);
        let gates = o.narrow(1, 0, n_cand).softmax(1, None::<Kind>);
        let mix = (cands * gates).sum_dim_intlist(&[1i64][..], false, None::<Kind>);
        // A relative residual on top of the mix (0 = the mix itself).
        let thr = (mix.log1p() + o.select(1, n_cand)).expm1();
        let logit = o.select(1, n_cand + 1);
        let logit = match tree_logit {
            Some(t) => logit + t,
            None => logit,
        };
        (thr, logit)
    }

    /// The MODEL.md output: [B, 2] = (throughput >= 0, probability below threshold).
    fn export_forward(&self, x: &Tensor) -> Tensor {
        let (thr, logit) = match &self.trees {
            Some(g) => {
                // The statistics once, for the trees and the head.
                let f = gbt_features(x, &self.pos, self.window_s);
                let (t, l) = g.outputs_from(x, &f);
                self.forward(x, Some((&t, &l)), Some(&f))
            }
            None => self.forward(x, None, None),
        };
        Tensor::stack(&[thr.relu(), logit.sigmoid()], 1)
    }
}

/// One LSTM layer, gates in the order input, forget, output, cell.
struct Cell {
    /// [I, 4H]
    w_ih: Tensor,
    /// [H, 4H]
    w_hh: Tensor,
    /// [4H]
    b: Tensor,
    hidden: i64,
}

impl Cell {
    fn new(vs: &nn::Path, input: i64, hidden: i64) -> Cell {
        // PyTorch's LSTM initialisation: uniform in +-1/sqrt(hidden).
        let k = 1.0 / (hidden as f64).sqrt();
        let init = nn::Init::Uniform { lo: -k, up: k };
        Cell {
            w_ih: vs.var("w_ih", &[input, 4 * hidden], init),
            w_hh: vs.var("w_hh", &[hidden, 4 * hidden], init),
            b: vs.var("b", &[4 * hidden], init),
            hidden,
        }
    }

    /// The hidden state after the last step of `x` [B, S, I], from a zero state.
    fn last_hidden(&self, x: &Tensor) -> Tensor {
        let hd = self.hidden;
        let pre = x.matmul(&self.w_ih) + &self.b;
        let steps = x.size()[1];
        let mut h: Option<Tensor> = None;
        let mut c: Option<Tensor> = None;
        for t in 0..steps {
            let g = pre.select(1, t);
            let g = match &h {
                Some(h) => g + h.matmul(&self.w_hh),
                None => g,
            };
            let sig = g.narrow(1, 0, 3 * hd).sigmoid();
            let cand = g.narrow(1, 3 * hd, hd).tanh();
            let (i, f, o) = (
                sig.narrow(1, 0, hd),
                sig.narrow(1, hd, hd),
                sig.narrow(1, 2 * hd, hd),
            );
            let c_new = match &c {
                Some(c) => f * c + i * cand,
                None => i * cand,
            };
            h = Some(o * c_new.tanh());
            c = Some(c_new);
        }
        h.expect("at least one step")
    }
}

/// Inputs of the trees: [`gbt_features`] columns.
const N_GBT_FEATURES: i64 = 37;

/// Forecasts that follow the ACK clock, [B, 4]. A window-limited sender
/// sends what the ACKs of the data it sent one round trip earlier release,
/// so the window one RTT before the target (and two RTTs) repeat, the mean
/// over the last RTT is the window's rate, and bytes in flight over the RTT
/// is the rate the window allows. The RTT is the last window's mean ACK RTT
/// in windows, `r`; the history is read at fractional positions by linear
/// interpolation (weights `max(0, 1 - |j - p|)`), so everything stays a
/// traced tensor expression and `r < 1` or no RTT yet falls back to the
/// last window.
fn ack_clock(x: &Tensor, h: &Tensor, pos: &Tensor, window_s: f64) -> Tensor {
    let l = LOOKBACK as f64;
    let last = x.select(1, LOOKBACK as i64 - 1);
    let rtt = last.select(1, DELAY as i64).clamp_min(0.0);
    let r = (&rtt / window_s).clamp(0.0, l).unsqueeze(1);
    let at = |p: Tensor| -> Tensor {
        let w = (p.clamp(0.0, l - 1.0) - pos)
            .abs()
            .neg()
            .g_add_scalar(1.0)
            .relu();
        (h * w).sum_dim_intlist(&[1i64][..], false, None::<Kind>)
    };
    let lag1 = at(r.neg().g_add_scalar(l));
    let lag2 = at((&r * 2.0).neg().g_add_scalar(l));
    // Window j covers [j, j + 1); the last round trip covers [15 - r, 15).
    let rr = r.clamp(1.0, l);
    let cover = (pos + &rr).g_add_scalar(1.0 - l).clamp(0.0, 1.0) / &rr;
    let rtt_mean = (h * cover).sum_dim_intlist(&[1i64][..], false, None::<Kind>);
    let persistence = h.select(1, LOOKBACK as i64 - 1);
    let ceiling = h.amax(&[1i64][..], false) * 4.0 + 1.0;
    let allowed =
        (last.select(1, BIF as i64).clamp_min(0.0) * 8e-6 / rtt.clamp_min(1e-3)).minimum(&ceiling);
    let allowed = allowed.where_self(&rtt.gt(0.0), &persistence);
    Tensor::stack(&[lag1, lag2, rtt_mean, allowed], 1)
}

/// The last window's throughput (Mbit/s, at least 0), [B].
pub(crate) fn last_throughput(x: &Tensor) -> Tensor {
    x.select(1, LOOKBACK as i64 - 1)
        .select(1, THR as i64)
        .clamp_min(0.0)
}

/// Positions 0, 1, ... 14 of the history windows, for [`ack_clock`].
pub(crate) fn positions() -> Tensor {
    Tensor::from_slice(&(0..LOOKBACK).map(|j| j as f32).collect::<Vec<_>>())
}

/// Inputs of the boosted trees, [B, 37]: the window statistics of
/// [`engineered`] and the four ACK-clock forecasts minus the last throughput.
pub(crate) fn gbt_features(x: &Tensor, pos: &Tensor, window_s: f64) -> Tensor {
    let h = x.select(2, THR as i64).clamp_min(0.0);
    let b = h.narrow(1, LOOKBACK as i64 - 1, 1);
    Tensor::cat(&[engineered(x), ack_clock(x, &h, pos, window_s) - &b], 1)
}

/// The boosted-trees forecaster: the last window's throughput plus the change
/// the L1 trees predict (Mbit/s, at least 0), and the congestion probability
/// from a second ensemble fitted to the label with the log-loss.
struct GbtNet {
    regressor: gbt::Compiled,
    classifier: gbt::Compiled,
    pos: Tensor,
    window_s: f64,
}

impl GbtNet {
    /// (throughput, congestion logit), each [B].
    fn outputs(&self, x: &Tensor) -> (Tensor, Tensor) {
        self.outputs_from(x, &gbt_features(x, &self.pos, self.window_s))
    }

    /// [`GbtNet::outputs`] from statistics already computed.
    fn outputs_from(&self, x: &Tensor, f: &Tensor) -> (Tensor, Tensor) {
        let thr = (last_throughput(x) + self.regressor.forward(f)).relu();
        (thr, self.classifier.forward(f))
    }

    /// Both outputs for every sequence of `ds`, as a [N, 2] row-major vector.
    fn outputs_all(&self, ds: &Dataset) -> Vec<f32> {
        let _g = tch::no_grad_guard();
        let mut out = Vec::with_capacity(ds.len() * 2);
        let idx: Vec<usize> = (0..ds.len()).collect();
        for chunk in idx.chunks(4096) {
            let (xb, _) = ds.batch(chunk);
            let (t, l) = self.outputs(&xb);
            out.extend(
                Vec::<f32>::try_from(Tensor::stack(&[t, l], 1).reshape([-1])).unwrap_or_default(),
            );
        }
        out
    }

    fn export_forward(&self, x: &Tensor) -> Tensor {
        let f = gbt_features(x, &self.pos, self.window_s);
        let last = last_throughput(x);
        let thr = (last + self.regressor.forward(&f)).relu();
        let prob = self.classifier.forward(&f).sigmoid();
        Tensor::stack(&[thr, prob], 1)
    }
}

/// Features, change of throughput and congestion label (0/1) of each sequence.
fn gbt_rows(
    ds: &Dataset,
    pos: &Tensor,
    window_s: f64,
    threshold: f64,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let _g = tch::no_grad_guard();
    let mut x = Vec::new();
    let mut change = Vec::with_capacity(ds.len());
    let idx: Vec<usize> = (0..ds.len()).collect();
    for chunk in idx.chunks(4096) {
        let (xb, yb) = ds.batch(chunk);
        let f = gbt_features(&xb, pos, window_s);
        x.extend(Vec::<f32>::try_from(f.reshape([-1])).unwrap_or_default());
        let last = last_throughput(&xb);
        change.extend(Vec::<f32>::try_from(yb - last).unwrap_or_default());
    }
    let label =
        ds.y.iter()
            .map(|v| if (*v as f64) < threshold { 1.0 } else { 0.0 })
            .collect();
    (x, change, label)
}

/// Fit the trees; `fixed`: exactly this many (throughput, congestion) trees,
/// with no early stopping (the fold trees of `lstm-gbt` match the final ones).
fn train_gbt(
    cfg: &TrainConfig,
    tr: &Dataset,
    va: &Dataset,
    fixed: Option<(usize, usize)>,
) -> GbtNet {
    let window_s = cfg.window.secs_f64();
    let pos = positions();
    let (x, y, label) = gbt_rows(tr, &pos, window_s, cfg.threshold_mbps);
    let (xv, yv, label_v) = gbt_rows(va, &pos, window_s, cfg.threshold_mbps);
    let nf = x.len() / y.len().max(1);
    let gcfg = GbtConfig {
        max_trees: fixed.map_or(cfg.trees, |f| f.0.max(1)),
        depth: cfg.depth,
        learning_rate: cfg.gbt_lr,
        seed: cfg.seed,
        patience: if fixed.is_some() { usize::MAX } else { 150 },
        keep_all: fixed.is_some(),
        ..Default::default()
    };
    let persistence_mae = yv.iter().map(|v| v.abs() as f64).sum::<f64>() / yv.len().max(1) as f64;
    // Progress: one updating line with a bar on a terminal, a line every 250
    // trees otherwise; the best validation score so far is marked with *.
    let tty = std::io::stderr().is_terminal();
    let progress = |what: &str, t: usize, score: String, better: bool| {
        let max = cfg.trees.max(1);
        let filled = (t * 20 / max).min(20);
        let bar = format!("[{}{}]", "#".repeat(filled), "-".repeat(20 - filled));
        let mark = if better { "*" } else { " " };
        if tty {
            eprint!("\r{what} trees {t:>5}/{max} {bar} validation {score}{mark}   ");
        } else if t.is_multiple_of(250) {
            tracing::info!("{what} trees {t:>5}/{max} validation {score}{mark}");
        }
    };
    let regressor = gbt::fit(&x, &y, &xv, &yv, nf, &gcfg, |t, mae, better| {
        let score = format!("MAE {mae:.3} Mbit/s (MASE {:.3})", mae / persistence_mae);
        progress("throughput", t, score, better)
    });
    if tty {
        eprintln!();
    }
    let ccfg = GbtConfig {
        loss: Loss::Logistic,
        max_trees: fixed.map_or(cfg.trees, |f| f.1.max(1)),
        ..gcfg.clone()
    };
    let classifier = gbt::fit(&x, &label, &xv, &label_v, nf, &ccfg, |t, ll, better| {
        progress("congestion", t, format!("log-loss {ll:.4}"), better)
    });
    if tty {
        eprintln!();
    }
    tracing::info!(
        "{} throughput trees, {} congestion trees (depth {}), kept at their best validation score",
        regressor.trees(),
        classifier.trees(),
        regressor.depth
    );
    GbtNet {
        regressor: regressor.compile(),
        classifier: classifier.compile(),
        pos,
        window_s,
    }
}

/// Result of a training run.
pub struct TrainSummary {
    pub val_scores: Scoreboard,
}

fn date_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (y, m, d) = engine::csv::civil_from_days(secs.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
}

fn predict_all(forecast: &dyn Fn(&Tensor) -> Tensor, ds: &Dataset) -> (Vec<f64>, Vec<f64>) {
    let _g = tch::no_grad_guard();
    let mut thr = Vec::with_capacity(ds.len());
    let mut prob = Vec::with_capacity(ds.len());
    let idx: Vec<usize> = (0..ds.len()).collect();
    for chunk in idx.chunks(2048) {
        let (xb, _) = ds.batch(chunk);
        let out = forecast(&xb);
        let v: Vec<f32> = Vec::try_from(out.reshape([-1])).unwrap_or_default();
        for pair in v.chunks(2) {
            thr.push(pair[0] as f64);
            prob.push(pair[1] as f64);
        }
    }
    (thr, prob)
}

/// `lstm-gbt`: out-of-fold tree outputs for the training sequences (two folds
/// by capture: each fold's sequences get the outputs of trees fitted on the
/// other fold) and the final trees fitted on all training captures.
fn stacked_trees(
    cfg: &TrainConfig,
    train_caps: &[Capture],
    tr: &Dataset,
    va: &Dataset,
) -> (Vec<f32>, GbtNet) {
    // `tr` was built capture by capture in order: find each capture's sequences.
    let mut fold_of = Vec::with_capacity(tr.len());
    let mut sets = [Dataset::default(), Dataset::default()];
    for (i, c) in train_caps.iter().enumerate() {
        let before = sets[i % 2].len();
        sets[i % 2].add(c);
        fold_of.extend(std::iter::repeat_n(i % 2, sets[i % 2].len() - before));
    }
    // The final trees first: the fold trees are fitted to the same counts, so
    // the outputs the LSTM learns from are as strong as the ones it will get.
    tracing::info!("lstm-gbt: final trees on all training captures");
    let last = train_gbt(cfg, tr, va, None);
    let n = (last.regressor.trees(), last.classifier.trees());
    tracing::info!("lstm-gbt: trees for fold 1 of 2");
    let a = train_gbt(cfg, &sets[0], va, Some(n)).outputs_all(&sets[1]);
    tracing::info!("lstm-gbt: trees for fold 2 of 2");
    let b = train_gbt(cfg, &sets[1], va, Some(n)).outputs_all(&sets[0]);
    // Put them back in `tr`'s order: fold-0 sequences take the fold-1 trees' outputs.
    let (mut ia, mut ib) = (0, 0);
    let mut oof = Vec::with_capacity(tr.len() * 2);
    for f in fold_of {
        if f == 0 {
            oof.extend_from_slice(&b[2 * ib..2 * ib + 2]);
            ib += 1;
        } else {
            oof.extend_from_slice(&a[2 * ia..2 * ia + 2]);
            ia += 1;
        }
    }
    (oof, last)
}

/// Train the LSTM (or the linear map) with early stopping on the validation
/// captures; returns the network at its best epoch (frozen), its store, the
/// epochs run and the best epoch.
fn train_nn(
    cfg: &TrainConfig,
    tr: &Dataset,
    va: &Dataset,
    med: &[f32; N_FEATURES],
    iqr: &[f32; N_FEATURES],
    trees: Option<(Vec<f32>, GbtNet)>,
) -> Result<(Net, nn::VarStore, usize, usize), TrainError> {
    let mut vs = nn::VarStore::new(Device::Cpu);
    let make = |p: &nn::Path| Net::new(p, cfg, med, iqr);
    let mut net = make(&vs.root());
    // `lstm-gbt`: the trees' out-of-fold outputs for the training sequences
    // (each from trees that never saw that capture), the final trees inside.
    let tree_tr = match trees {
        Some((oof, g)) => {
            net.trees = Some(g);
            Some(oof)
        }
        None => None,
    };
    // Start near persistence: its gate gets a head start, so training begins at
    // the strongest naive forecast and has to earn every departure from it.
    let combined = net.combined();
    if let Some(bs) = net.head.bs.as_ref() {
        tch::no_grad(|| {
            if combined {
                // lstm-gbt starts at the trees' forecast and logit, with small head
                // weights: the statistics it also reads span orders of magnitude.
                let _ = bs.narrow(0, N_CAND, 1).fill_(5.0);
                let _ = net.head.ws.g_mul_scalar_(0.1);
            } else {
                let _ = bs.narrow(0, 0, 1).fill_(2.0);
            }
        });
    }
    let mut best_vs = nn::VarStore::new(Device::Cpu);
    let best_net = make(&best_vs.root());
    let mut opt = torch(
        nn::AdamW {
            wd: cfg.weight_decay,
            ..Default::default()
        }
        .build(&vs, cfg.lr),
    )?;
    let thr_iqr = iqr[THR] as f64;
    let persistence_mae = engine::eval::mae(&va.baselines.actual, &va.baselines.persistence);
    let mut rng = engine::rng::Rng::new(cfg.seed ^ 0x5EED);
    let mut best = (f64::INFINITY, 0usize);
    let tty = std::io::stderr().is_terminal();
    let mut epochs_run = 0;
    for epoch in 1..=cfg.epochs {
        epochs_run = epoch;
        let mut order: Vec<usize> = (0..tr.len()).collect();
        rng.shuffle(&mut order);
        let mut loss_sum = 0.0;
        let nb = order.len().div_ceil(cfg.batch);
        for (bi, chunk) in order.chunks(cfg.batch).enumerate() {
            let (xb, yb) = tr.batch(chunk);
            let tree = tree_tr.as_ref().map(|o| {
                let t: Vec<f32> = chunk.iter().map(|&i| o[2 * i]).collect();
                let l: Vec<f32> = chunk.iter().map(|&i| o[2 * i + 1]).collect();
                (Tensor::from_slice(&t), Tensor::from_slice(&l))
            });
            let (thr, logit) = net.forward(&xb, tree.as_ref().map(|(t, l)| (t, l)), None);
            let label = yb.lt(cfg.threshold_mbps).to_kind(Kind::Float);
            let l_reg = ((&thr - &yb).abs() / thr_iqr).mean(Kind::Float);
            let l_cls = logit.binary_cross_entropy_with_logits::<Tensor>(
                &label,
                None,
                None,
                tch::Reduction::Mean,
            );
            let loss = l_reg + l_cls * 0.5;
            opt.backward_step(&loss);
            loss_sum += loss.double_value(&[]);
            if tty && bi % 16 == 0 {
                let filled = (bi + 1) * 20 / nb;
                eprint!(
                    "\repoch {epoch:>3}/{} [{}{}] loss {:.4}   ",
                    cfg.epochs,
                    "#".repeat(filled),
                    "-".repeat(20 - filled),
                    loss_sum / (bi + 1) as f64
                );
            }
        }
        let (pred, _) = predict_all(&|x: &Tensor| net.export_forward(x), va);
        let val_mae = engine::eval::mae(&va.baselines.actual, &pred);
        let mark = if val_mae < best.0 { "*" } else { " " };
        eprintln!(
            "{}epoch {epoch:>3}/{} loss {:.4}  validation MAE {:.3} Mbit/s (MASE {:.3}){mark}",
            if tty { "\r" } else { "" },
            cfg.epochs,
            loss_sum / nb as f64,
            val_mae,
            val_mae / persistence_mae
        );
        if val_mae < best.0 {
            best = (val_mae, epoch);
            torch(best_vs.copy(&vs))?;
        } else if epoch - best.1 >= cfg.patience {
            tracing::info!("no improvement for {} epochs; stopping early", cfg.patience);
            break;
        }
    }
    torch(vs.copy(&best_vs))?;
    drop(best_net);
    vs.freeze();
    Ok((net, vs, epochs_run, best.1))
}

/// A trained forecaster (the MODEL.md forward), how it was fitted, what it is.
type Trained = (
    Box<dyn Fn(&Tensor) -> Tensor>,
    serde_json::Value,
    serde_json::Value,
);

/// libtorch's random generator is global to the process: two trainings at once
/// would interleave its draws and neither would be reproducible.
static TRAINING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Train, export and write the MODEL.md directory.
pub fn train(cfg: &TrainConfig) -> Result<TrainSummary, TrainError> {
    if !["lstm", "linear", "gbt", "lstm-gbt"].contains(&cfg.arch.as_str()) {
        return Err(TrainError::Usage(format!(
            "unknown --arch {:?}: use lstm, lstm-gbt, linear or gbt",
            cfg.arch
        )));
    }
    if cfg.arch == "lstm-gbt" && cfg.layers != 1 {
        return Err(TrainError::Usage(
            "--arch lstm-gbt has one LSTM layer: give --layers 1".into(),
        ));
    }
    if ![1, 3, 5, 15].contains(&cfg.lstm_stride) {
        return Err(TrainError::Usage(format!(
            "--lstm-stride {} does not divide the 15 windows: use 1, 3, 5 or 15",
            cfg.lstm_stride
        )));
    }
    let _one_at_a_time = TRAINING.lock().unwrap_or_else(|p| p.into_inner());
    tch::set_num_threads(1);
    tch::manual_seed(cfg.seed as i64);
    let mut caps = Vec::new();
    for p in &cfg.inputs {
        caps.push((p.clone(), read_features_csv(p, cfg.window)?));
    }
    if caps.len() < 2 {
        return Err(TrainError::Data(
            "give at least two captures (one features CSV each): validation is split by capture"
                .into(),
        ));
    }
    // Validation captures: the named ones, or a seeded choice of val_frac of them.
    let is_val: Vec<bool> = if !cfg.val.is_empty() {
        caps.iter()
            .map(|(p, c)| {
                cfg.val
                    .iter()
                    .any(|v| v == p || v.file_name().is_some_and(|n| n.to_string_lossy() == c.name))
            })
            .collect()
    } else {
        let mut order: Vec<usize> = (0..caps.len()).collect();
        engine::rng::Rng::new(cfg.seed).shuffle(&mut order);
        let n_val = ((caps.len() as f64 * cfg.val_frac).round() as usize).clamp(1, caps.len() - 1);
        let mut v = vec![false; caps.len()];
        for &i in &order[..n_val] {
            v[i] = true;
        }
        v
    };
    let train_caps: Vec<Capture> = caps
        .iter()
        .zip(&is_val)
        .filter(|(_, v)| !**v)
        .map(|((_, c), _)| c.clone())
        .collect();
    let val_caps: Vec<Capture> = caps
        .iter()
        .zip(&is_val)
        .filter(|(_, v)| **v)
        .map(|((_, c), _)| c.clone())
        .collect();
    if train_caps.is_empty() || val_caps.is_empty() {
        return Err(TrainError::Data(
            "the validation split left no training or no validation capture".into(),
        ));
    }
    let mut tr = Dataset::default();
    train_caps.iter().for_each(|c| tr.add(c));
    let mut va = Dataset::default();
    val_caps.iter().for_each(|c| va.add(c));
    if tr.len() < 64 || va.len() == 0 {
        return Err(TrainError::Data(format!(
            "too little data: {} training and {} validation sequences of 16 windows",
            tr.len(),
            va.len()
        )));
    }
    let (med, iqr) = robust_scaling(&train_caps);
    tracing::info!(
        "{} training captures ({} windows, {} sequences), {} validation captures ({} windows, {} sequences)",
        train_caps.len(),
        tr.windows,
        tr.len(),
        val_caps.len(),
        va.windows,
        va.len()
    );

    let mut trees_bin: Option<Vec<u8>> = None;
    let (forecast, fitted, arch_json): Trained = match cfg.arch.as_str() {
        "lstm" | "linear" | "lstm-gbt" => {
            let trees = if cfg.arch == "lstm-gbt" {
                Some(stacked_trees(cfg, &train_caps, &tr, &va))
            } else {
                None
            };
            let (net, vs, epochs_run, best_epoch) = train_nn(cfg, &tr, &va, &med, &iqr, trees)?;
            let arch = serde_json::json!({
                "type": cfg.arch,
                "layers": if cfg.arch != "linear" { cfg.layers } else { 0 },
                "hidden": if cfg.arch != "linear" { cfg.hidden } else { 0 },
                "lstm_steps": if cfg.arch != "linear" { 15 / cfg.lstm_stride } else { 0 },
                "windows_per_step": if cfg.arch != "linear" { cfg.lstm_stride } else { 0 },
                "trees": if cfg.arch == "lstm-gbt" { "the gbt ensembles (see `--arch gbt`) run inside the module: their throughput forecast is a 13th candidate, their congestion logit is added to the head's, their 37 window statistics (signed log) join the LSTM's last hidden state at the head; trained on out-of-fold tree outputs (two folds by capture), exported with trees fitted on all training captures" } else { "" },
                "weight_decay": cfg.weight_decay,
                "input": "float32 [B, 15, 9], raw features in FEATURES.md order, oldest window first",
                "output": "float32 [B, 2]: throughput_mbps of the next window (>= 0), probability it is below threshold_mbps",
                "input_transform": {"kind": "sign(x) * ln(1 + |x| * mult) where mask = 1", "mult": LOG_MULT, "mask": LOG_MASK},
                "throughput_head": "softmax weights over 12 naive forecasts of the window history (persistence, means of the last 2/3/5/10/15, EWMA 0.3, linear trend; and on the ACK clock, with the last window's mean ACK RTT: the window one RTT and two RTTs before the target, the mean over the last RTT, bytes in flight / RTT), then expm1(log1p(mix) + r)",
                "scaling": {"kind": "median/IQR per transformed feature, fitted on training windows", "median": med, "iqr": iqr},
                "loss": "L1 on the scaled throughput + 0.5 * binary cross-entropy on the label",
            });
            let fitted = serde_json::json!({"epochs_run": epochs_run, "best_epoch": best_epoch,
                    "batch": cfg.batch, "learning_rate": cfg.lr});
            (
                Box::new(move |x: &Tensor| {
                    let _keep = &vs;
                    net.export_forward(x)
                }),
                fitted,
                arch,
            )
        }
        "gbt" => {
            let g = train_gbt(cfg, &tr, &va, None);
            trees_bin = Some(crate::native::encode(
                &g.regressor.gbt(),
                &g.classifier.gbt(),
            ));
            let arch = serde_json::json!({
                "type": "gbt",
                "trees": {"throughput": g.regressor.trees(), "congestion": g.classifier.trees()},
                "depth": cfg.depth,
                "input": "float32 [B, 15, 9], raw features in FEATURES.md order, oldest window first",
                "output": "float32 [B, 2]: throughput_mbps of the next window (>= 0), probability it is below threshold_mbps",
                "features": "37: each earlier window's throughput minus the last (14), the last throughput, the last mean ACK RTT (ms) and the four before it minus it, the last five bif_grad (10 kB), the last bif (10 kB), the last five iat_mean (ms), the last iat_std (ms) and is_silent, and four ACK-clock forecasts minus the last throughput (the window one and two RTTs before the target, the mean over the last RTT, bif / RTT)",
                "throughput": "last window's throughput + sum of oblivious trees (L1 gradient boosting, median leaves), at least 0",
                "congestion_prob": "sigmoid of a second ensemble of oblivious trees fitted to the label with the log-loss (Newton leaves)",
            });
            let fitted = serde_json::json!({"throughput_trees": g.regressor.trees(),
                    "congestion_trees": g.classifier.trees(), "learning_rate": cfg.gbt_lr,
                    "depth": cfg.depth, "max_trees": cfg.trees});
            (
                Box::new(move |x: &Tensor| g.export_forward(x)),
                fitted,
                arch,
            )
        }
        other => {
            return Err(TrainError::Data(format!(
                "unknown --arch {other:?}: use lstm, lstm-gbt, linear or gbt"
            )));
        }
    };

    let (pred, prob) = predict_all(&*forecast, &va);
    let mut f = va.baselines.clone();
    f.model = pred;
    f.model_prob = prob;
    let scores = Scoreboard::compute(&f, cfg.threshold_mbps);
    eprintln!(
        "\nvalidation ({} sequences from {} held-out captures):\n{}",
        va.len(),
        val_caps.len(),
        scores.table()
    );

    // Export and prove the export: the module must give the same numbers as the
    // network at several batch sizes, not just the traced one.
    std::fs::create_dir_all(&cfg.out).map_err(|e| TrainError::Write {
        path: cfg.out.clone(),
        detail: e.to_string(),
    })?;
    let example = va.batch(&[0, 1, 2]).0;
    let module = torch(tch::CModule::create_by_tracing(
        "NetForecast",
        "forward",
        &[example],
        &mut |inp| vec![forecast(&inp[0])],
    ))?;
    let module_path = cfg.out.join(MODULE_FILE);
    torch(module.save(&module_path))?;
    // The trees for the native batch evaluator (a GBT only; never a stale one).
    let trees_path = cfg.out.join(crate::native::TREES_FILE);
    let wrote = match &trees_bin {
        Some(b) => std::fs::write(&trees_path, b),
        None => match std::fs::remove_file(&trees_path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            r => r,
        },
    };
    wrote.map_err(|e| TrainError::Write {
        path: trees_path,
        detail: e.to_string(),
    })?;
    let loaded = torch(tch::CModule::load(&module_path))?;
    for b in [3usize, 1, 7, 1000] {
        let idx: Vec<usize> = if b == 3 {
            vec![0, 1, 2]
        } else {
            (0..b).map(|i| i % va.len()).collect()
        };
        let (xb, _) = va.batch(&idx);
        let _g = tch::no_grad_guard();
        let a = forecast(&xb);
        let m = torch(loaded.forward_ts(&[&xb]))?;
        let diff = (a - &m).abs().max().double_value(&[]);
        if m.size() != [b as i64, 2] || diff > 1e-4 {
            return Err(TrainError::Torch(format!(
                "the exported module disagrees with the network at batch {b}: shape {:?}, max difference {diff}",
                m.size()
            )));
        }
    }

    let version = match cfg.arch.as_str() {
        "lstm" | "lstm-gbt" => format!(
            "{}{}x{}-{}-s{}",
            cfg.arch,
            cfg.layers,
            cfg.hidden,
            date_utc(),
            cfg.seed
        ),
        arch => format!("{arch}-{}-s{}", date_utc(), cfg.seed),
    };
    let meta = ModelMeta {
        feature_names: FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
        window_ms: cfg.window.ms(),
        lookback: LOOKBACK,
        threshold_mbps: cfg.threshold_mbps,
        model_version: version.clone(),
        architecture: arch_json,
        training: serde_json::json!({
            "captures": train_caps.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
            "windows": tr.windows,
            "sequences": tr.len(),
            "fit": fitted,
            "seed": cfg.seed,
            "how_made": "features extracted by `netforecast extract` from traffic-lab captures (scripts/lab/make-corpus.sh)",
        }),
        validation: serde_json::json!({
            "captures": val_caps.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
            "sequences": va.len(),
            "metrics": scores,
        }),
        libtorch_version: "2.13.0".into(),
        created: date_utc(),
        input_reference: {
            let segs: Vec<&[Vec<[f32; N_FEATURES]>]> =
                train_caps.iter().map(|c| c.segments.as_slice()).collect();
            engine::shift::InputReference::fit(&segs, engine::shift::DEFAULT_SPAN)
        },
    };
    let meta_path = cfg.out.join(META_FILE);
    std::fs::write(
        &meta_path,
        serde_json::to_string_pretty(&meta).unwrap_or_default() + "\n",
    )
    .map_err(|e| TrainError::Write {
        path: meta_path.clone(),
        detail: e.to_string(),
    })?;
    let readme = format!(
        "# Model {version}\n\nTrained by netforecast on {} with:\n\n```sh\n{}\n```\n\n\
         {} training captures ({} sequences), {} validation captures ({} sequences); fit: {}.\n\n\
         Validation (captures kept out of training and used only for early stopping):\n\n```\n{}\n```\n",
        date_utc(),
        cfg.command,
        train_caps.len(),
        tr.len(),
        val_caps.len(),
        va.len(),
        fitted,
        scores.table()
    );
    let readme_path = cfg.out.join("README.md");
    std::fs::write(&readme_path, readme).map_err(|e| TrainError::Write {
        path: readme_path,
        detail: e.to_string(),
    })?;
    tracing::info!("wrote {} ({version})", cfg.out.display());
    Ok(TrainSummary { val_scores: scores })
}
