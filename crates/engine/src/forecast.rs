//! The forecasting vocabulary every package shares: the window width, a
//! [`Forecast`], the [`SequenceModel`] a model package implements, and the
//! [`Predictor`] that feeds it the last 15 windows (FEATURES.md "Forecast
//! target", MODEL.md "Signature").
//!
//! Owns the history ring, the treatment of non-finite inputs and the clamping of
//! outputs, so every model (TorchScript, a test double, a baseline) is fed and
//! read the same way. Does not own any model's arithmetic.

use crate::window::WindowRow;
use std::collections::VecDeque;

/// Windows of history per forecast (FEATURES.md "Forecast target").
pub const LOOKBACK: usize = 15;
/// Features per window, in [`crate::window::FEATURE_NAMES`] order.
pub const N_FEATURES: usize = 9;

/// The width of one window of the time grid. Carried as nanoseconds; the
/// command line and `model.json` speak milliseconds.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct WindowWidth {
    ns: i64,
}

impl WindowWidth {
    /// The default: 50 ms (FEATURES.md).
    pub const DEFAULT: WindowWidth = WindowWidth { ns: 50_000_000 };
    /// Longest width accepted: one hour.
    pub const MAX_MS: u32 = 3_600_000;

    /// A width of `ms` milliseconds; `None` unless 1 ..= [`Self::MAX_MS`].
    pub fn from_ms(ms: u32) -> Option<Self> {
        (1..=Self::MAX_MS).contains(&ms).then_some(WindowWidth {
            ns: ms as i64 * 1_000_000,
        })
    }

    /// Width in nanoseconds.
    pub fn ns(self) -> i64 {
        self.ns
    }

    /// Width in whole milliseconds (every width is made from milliseconds).
    pub fn ms(self) -> u32 {
        (self.ns / 1_000_000) as u32
    }

    /// Width in seconds.
    pub fn secs_f64(self) -> f64 {
        self.ns as f64 / 1e9
    }
}

impl Default for WindowWidth {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl std::fmt::Display for WindowWidth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ms", self.ms())
    }
}

/// One forecast for the window after the last one pushed.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Forecast {
    /// Start of the window this forecast is for (`t+1`), ns since the epoch.
    pub target_start_ns: i64,
    /// Forecast throughput of the target window, Mbit/s (>= 0).
    pub throughput_mbps: f64,
    /// Probability the target window is below the congestion threshold.
    pub congestion_prob: f64,
}

/// A model failed to produce a forecast.
#[derive(Debug, thiserror::Error)]
#[error("inference failed: {0}")]
pub struct PredictError(pub String);

/// What a forecasting model computes: for each sequence of [`LOOKBACK`] windows
/// of [`N_FEATURES`] features, the next window's throughput (Mbit/s) and the
/// probability it falls below the threshold. The TorchScript module is one; a
/// test can use anything.
pub trait SequenceModel {
    /// `seqs` holds `n` sequences of `LOOKBACK * N_FEATURES` values, row-major
    /// (MODEL.md `[B, 15, 9]`); returns `n` pairs (throughput, probability).
    fn forward(&mut self, seqs: &[f32], n: usize) -> Result<Vec<(f64, f64)>, PredictError>;
    /// Short identifier written with every forecast.
    fn version(&self) -> &str;
    /// The congestion threshold the probability refers to, Mbit/s.
    fn threshold_mbps(&self) -> f64;
    /// What the training data looked like, if the model says (for the
    /// input-shift warning).
    fn input_reference(&self) -> Option<&crate::shift::InputReference> {
        None
    }
    /// Each sequence's output has the same bits whatever else is in the batch.
    /// Only such models get several windows per call in replay; libtorch's
    /// reductions and matrix products are not (their vectorisation follows the
    /// batch shape: the shipped trees' probability moves by one f32 ulp for
    /// some sequences at batch 32), so a TorchScript module runs one window
    /// at a time unless its trees are walked natively.
    fn batch_invariant(&self) -> bool {
        false
    }
}

impl<M: SequenceModel + ?Sized> SequenceModel for Box<M> {
    fn forward(&mut self, seqs: &[f32], n: usize) -> Result<Vec<(f64, f64)>, PredictError> {
        (**self).forward(seqs, n)
    }
    fn version(&self) -> &str {
        (**self).version()
    }
    fn threshold_mbps(&self) -> f64 {
        (**self).threshold_mbps()
    }
    fn input_reference(&self) -> Option<&crate::shift::InputReference> {
        (**self).input_reference()
    }
    fn batch_invariant(&self) -> bool {
        (**self).batch_invariant()
    }
}

/// Feeds a [`SequenceModel`] the last [`LOOKBACK`] windows of one stream.
pub struct Predictor<M> {
    model: M,
    ring: VecDeque<[f32; N_FEATURES]>,
    width: WindowWidth,
    flat: Vec<f32>,
    /// Feature values that were NaN or infinite and were replaced by 0.
    pub nonfinite_features: u64,
}

impl<M: SequenceModel> Predictor<M> {
    /// A predictor for a stream of windows `width` wide.
    pub fn new(model: M, width: WindowWidth) -> Self {
        Predictor {
            model,
            ring: VecDeque::with_capacity(LOOKBACK),
            width,
            flat: Vec::with_capacity(LOOKBACK * N_FEATURES),
            nonfinite_features: 0,
        }
    }

    /// The model.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// Forget the history (a new capture starts, or the grid restarted).
    pub fn reset(&mut self) {
        self.ring.clear();
    }

    /// Add window `t`; once [`LOOKBACK`] windows are known, forecast window `t+1`.
    pub fn push(&mut self, row: &WindowRow) -> Result<Option<Forecast>, PredictError> {
        let mut flat = std::mem::take(&mut self.flat);
        flat.clear();
        let staged = self.stage(row, &mut flat);
        let out = if staged {
            self.forward(&flat, 1).map(|o| o.first().copied())
        } else {
            Ok(None)
        };
        self.flat = flat;
        match out? {
            Some(o) => Ok(Some(self.finish(row, o))),
            None if staged => Err(PredictError("the model returned no forecast".into())),
            None => Ok(None),
        }
    }

    /// Add window `t` to the history without calling the model: once
    /// [`LOOKBACK`] windows are known, append the sequence that forecasts
    /// `t+1` to `batch` and return true. Several streams (or several windows of
    /// one replayed stream) then share one [`Predictor::forward`] call, whose
    /// outputs [`Predictor::finish`] turns into forecasts identical to
    /// [`Predictor::push`]'s.
    pub fn stage(&mut self, row: &WindowRow, batch: &mut Vec<f32>) -> bool {
        let mut v = [0f32; N_FEATURES];
        for (o, x) in v.iter_mut().zip(row.features()) {
            *o = if x.is_finite() {
                x as f32
            } else {
                self.nonfinite_features += 1;
                0.0
            };
        }
        if self.ring.len() == LOOKBACK {
            self.ring.pop_front();
        }
        self.ring.push_back(v);
        if self.ring.len() < LOOKBACK {
            return false;
        }
        batch.extend(self.ring.iter().flatten());
        true
    }

    /// Run the model on `n` staged sequences; exactly `n` outputs or an error.
    pub fn forward(&mut self, batch: &[f32], n: usize) -> Result<Vec<(f64, f64)>, PredictError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let out = self.model.forward(batch, n)?;
        if out.len() != n {
            return Err(PredictError(format!(
                "the model returned {} forecasts for {n} sequences",
                out.len()
            )));
        }
        Ok(out)
    }

    /// The forecast for the window after `row` from the model's raw output:
    /// negative or non-finite throughput becomes 0, the probability is clamped
    /// (0.5 when non-finite).
    pub fn finish(&self, row: &WindowRow, (thr, prob): (f64, f64)) -> Forecast {
        Forecast {
            target_start_ns: row.start_ns + self.width.ns(),
            throughput_mbps: if thr.is_finite() { thr.max(0.0) } else { 0.0 },
            congestion_prob: if prob.is_finite() {
                prob.clamp(0.0, 1.0)
            } else {
                0.5
            },
        }
    }
}

/// The persistence forecast (next = this window) as a model: the baseline every
/// forecast is judged against, and the trivial model of the service's tests.
/// The probability is 1 when the last window is below the threshold, else 0.
#[derive(Clone, Debug)]
pub struct Persistence {
    /// Threshold for the probability, Mbit/s.
    pub threshold_mbps: f64,
}

impl SequenceModel for Persistence {
    fn forward(&mut self, seqs: &[f32], n: usize) -> Result<Vec<(f64, f64)>, PredictError> {
        let thr_col = crate::window::THROUGHPUT_FEATURE;
        let stride = LOOKBACK * N_FEATURES;
        Ok((0..n)
            .map(|i| {
                let last = seqs
                    .get(i * stride + (LOOKBACK - 1) * N_FEATURES + thr_col)
                    .copied()
                    .unwrap_or(0.0) as f64;
                (last, if last < self.threshold_mbps { 1.0 } else { 0.0 })
            })
            .collect())
    }
    fn batch_invariant(&self) -> bool {
        true
    }
    fn version(&self) -> &str {
        "persistence"
    }
    fn threshold_mbps(&self) -> f64 {
        self.threshold_mbps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(start_ns: i64, mbps: f64) -> WindowRow {
        WindowRow {
            start_ns,
            size_bytes: 0,
            delay_s: 0.0,
            bif_bytes: 0,
            iat_mean_s: 0.0,
            iat_std_s: f64::NAN,
            throughput_mbps: mbps,
            delay_grad_s: 0.0,
            bif_grad_bytes: 0,
            is_silent: false,
            packets: 1,
            tcp: Default::default(),
        }
    }

    #[test]
    fn width_round_trips_milliseconds_and_refuses_zero() {
        let w = WindowWidth::from_ms(50).unwrap();
        assert_eq!((w.ns(), w.ms(), w.secs_f64()), (50_000_000, 50, 0.05));
        assert!(WindowWidth::from_ms(0).is_none());
        assert!(WindowWidth::from_ms(WindowWidth::MAX_MS + 1).is_none());
    }

    #[test]
    fn predictor_waits_for_the_lookback_and_targets_the_next_window() {
        let w = WindowWidth::DEFAULT;
        let mut p = Predictor::new(
            Persistence {
                threshold_mbps: 20.0,
            },
            w,
        );
        for i in 0..LOOKBACK as i64 - 1 {
            assert!(p.push(&row(i * w.ns(), 5.0)).unwrap().is_none());
        }
        let f = p.push(&row(14 * w.ns(), 30.0)).unwrap().unwrap();
        assert_eq!(f.target_start_ns, 15 * w.ns());
        assert_eq!((f.throughput_mbps, f.congestion_prob), (30.0, 0.0));
        // The NaN iat_std of every row was replaced and counted.
        assert_eq!(p.nonfinite_features, LOOKBACK as u64);
        p.reset();
        assert!(p.push(&row(15 * w.ns(), 1.0)).unwrap().is_none());
    }
}
