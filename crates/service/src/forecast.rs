//! The forecast stage: each window goes to the predictor; the forecast made at
//! window `t` is matched to window `t+1` when it arrives, next to the naive
//! baselines' forecasts made at the same moment. A gap in the grid (a long
//! silence in a file, windows dropped live) restarts the history, so no forecast
//! is ever scored against a window it was not made for.
//!
//! Owns the matching and the resets, for replay and the daemon alike; does not
//! own the model's arithmetic (the [`SequenceModel`]) or any output.

use crate::band::{Band, BandConfig};
use crate::online::{Online, OnlineConfig, Shape, Skill};
use engine::eval::Baselines;
use engine::forecast::{Forecast, PredictError, Predictor, SequenceModel, WindowWidth};
use engine::shift::ShiftMonitor;
use engine::window::WindowRow;
use std::time::{Duration, Instant};

/// The naive forecasts for one window: (persistence, mean of the last 15, EWMA).
pub type BaselineForecasts = (f64, f64, f64);

/// One window with the forecasts that concern it.
#[derive(Clone, Debug, PartialEq)]
pub struct Scored {
    /// The stream the window belongs to (the pipeline's index: the capture's
    /// number in replay, the interface's in the daemon).
    pub stream: usize,
    /// The window (window `t`).
    pub row: WindowRow,
    /// The forecast made at `t-1` for this window, if there was one.
    pub at_target: Option<Forecast>,
    /// The baselines' forecasts made at `t-1` for this window (with `at_target`).
    pub baselines: Option<BaselineForecasts>,
    /// The forecast just issued for `t+1`.
    pub issued: Option<Forecast>,
    /// How long the model took to issue it.
    pub inference: Option<Duration>,
    /// The published forecast (the online combination, recalibrated) made at
    /// `t-1` for this window.
    pub published_at_target: Option<Forecast>,
    /// The published forecast just issued for `t+1`.
    pub published: Option<Forecast>,
    /// The band (Mbit/s, about the 10th and 90th percentile) of
    /// `published_at_target`, once the stream has residuals to fit it.
    pub band_at_target: Option<(f64, f64)>,
    /// The band of `published`.
    pub band: Option<(f64, f64)>,
    /// Rolling skill of the published forecast, once this window is scored.
    pub skill: Option<Skill>,
    /// (distance, threshold): how unlike the training data the last minute of
    /// windows is (`engine::shift`), once a minute is in and if the model says
    /// what its training data looked like.
    pub input_shift: Option<(f64, f64)>,
}

/// What a stream's stage needs to know of a model it does not call: the
/// pipeline's inference loop keeps the one real model and batches every
/// stream's sequences into one call ([`ForecastStage::stage_rows`],
/// [`ForecastStage::score_rows`]); each stream's stage holds these facts.
#[derive(Clone, Debug)]
pub struct ModelFacts {
    version: String,
    threshold_mbps: f64,
    reference: Option<engine::shift::InputReference>,
    batch_invariant: bool,
}

impl ModelFacts {
    /// The facts of `model`.
    pub fn of(model: &impl SequenceModel) -> Self {
        ModelFacts {
            version: model.version().to_owned(),
            threshold_mbps: model.threshold_mbps(),
            reference: model.input_reference().cloned(),
            batch_invariant: model.batch_invariant(),
        }
    }
}

impl SequenceModel for ModelFacts {
    fn forward(&mut self, _seqs: &[f32], _n: usize) -> Result<Vec<(f64, f64)>, PredictError> {
        Err(PredictError(
            "a stream's stage has no model of its own; the pipeline calls the model".into(),
        ))
    }
    fn version(&self) -> &str {
        &self.version
    }
    fn threshold_mbps(&self) -> f64 {
        self.threshold_mbps
    }
    fn input_reference(&self) -> Option<&engine::shift::InputReference> {
        self.reference.as_ref()
    }
    fn batch_invariant(&self) -> bool {
        self.batch_invariant
    }
}

/// Forecasts one stream of windows.
pub struct ForecastStage<M> {
    predictor: Predictor<M>,
    width: WindowWidth,
    base: Baselines,
    pending: Option<(Forecast, BaselineForecasts, Forecast)>,
    last_start: Option<i64>,
    online: Online,
    online_cfg: OnlineConfig,
    /// Publish the combination (true) or the raw model (false).
    combine: bool,
    /// The input-shift monitor, if the model has a reference.
    shift: Option<ShiftMonitor>,
    shift_warned: bool,
    /// Staged model inputs of the current batch.
    batch: Vec<f32>,
    band: Band,
}

impl<M: SequenceModel> ForecastStage<M> {
    /// A stage for windows `width` wide, forecasting with `model`.
    pub fn new(model: M, width: WindowWidth) -> Self {
        Self::with_online(model, width, Some(OnlineConfig::from_env()))
    }

    /// A stage whose online combination uses `online`; `None` publishes the raw
    /// model (still scored online: the skill then describes the raw model).
    pub fn with_online(model: M, width: WindowWidth, online: Option<OnlineConfig>) -> Self {
        let combine = online.is_some();
        let mut online = online.unwrap_or_default();
        online.floor_mbps = 0.5 * 40.0 * 8.0 / width.secs_f64() / 1e6;
        let threshold = model.threshold_mbps();
        let shift = model.input_reference().cloned().map(ShiftMonitor::new);
        ForecastStage {
            shift,
            shift_warned: false,
            batch: Vec::new(),
            band: Band::new(BandConfig::default()),
            predictor: Predictor::new(model, width),
            width,
            base: Baselines::default(),
            pending: None,
            last_start: None,
            online: Online::new(online, threshold),
            online_cfg: online,
            combine,
        }
    }

    /// The width of the windows.
    pub fn width(&self) -> WindowWidth {
        self.width
    }

    /// The online combination's state.
    pub fn online(&self) -> &Online {
        &self.online
    }

    /// The model.
    pub fn model(&self) -> &M {
        self.predictor.model()
    }

    /// Non-finite feature values the predictor replaced by 0 so far.
    pub fn nonfinite_features(&self) -> u64 {
        self.predictor.nonfinite_features
    }

    /// A new capture starts: nothing carries over.
    pub fn restart(&mut self) {
        self.gap();
        self.online = Online::new(self.online_cfg, self.predictor.model().threshold_mbps());
        self.band = Band::new(BandConfig::default());
        if let Some(m) = self.shift.as_mut() {
            m.clear();
        }
    }

    /// A gap in the grid: the history restarts; what the online stage learnt
    /// about this link stays.
    fn gap(&mut self) {
        self.predictor.reset();
        self.gap_after_staging();
    }

    /// [`Self::gap`] for the state that is not the predictor's history (which
    /// [`Self::step_batch`] stages ahead).
    fn gap_after_staging(&mut self) {
        self.base = Baselines::default();
        self.pending = None;
        self.last_start = None;
        self.online.gap();
        self.band.gap();
    }

    fn is_gap(&self, last: Option<i64>, row: &WindowRow) -> bool {
        last.is_some_and(|l| row.start_ns - l != self.width.ns())
    }

    /// Window `t`: score the forecast made for it and issue one for `t+1`.
    pub fn step(&mut self, row: WindowRow) -> Result<Scored, PredictError> {
        let (mut out, error) = self.step_batch(vec![row]);
        if let Some(e) = error {
            return Err(e);
        }
        out.pop()
            .ok_or_else(|| PredictError("a window was lost in the forecast stage".into()))
    }

    /// Consecutive windows of this stream at once, with one model call for all
    /// of their forecasts: the same results as [`Self::step`] on each in turn
    /// (the model sees the same sequences; only the batch size differs), at a
    /// fraction of the per-call cost. Replay uses it for what is queued; the
    /// reported inference time of each forecast is the call's time shared out.
    /// When the model fails, every window is still scored (without a new
    /// forecast) and the error comes back beside them.
    pub fn step_batch(&mut self, rows: Vec<WindowRow>) -> (Vec<Scored>, Option<PredictError>) {
        let mut batch = std::mem::take(&mut self.batch);
        batch.clear();
        let staged = self.stage_rows(&rows, &mut batch);
        let n = staged.iter().filter(|s| **s).count();
        let t = Instant::now();
        let outputs = self.predictor.forward(&batch, n);
        self.batch = batch;
        let inference = (n > 0).then(|| t.elapsed() / n as u32);
        let (mut outputs, error) = match outputs {
            Ok(o) => (o.into_iter(), None),
            Err(e) => (Vec::new().into_iter(), Some(e)),
        };
        (
            self.score_rows(rows, &staged, &mut outputs, inference),
            error,
        )
    }

    /// The first half of [`Self::step_batch`], for a caller that batches
    /// several streams into one model call: each row's sequence (once the
    /// history is long enough) appended to `batch`, with the same history resets
    /// the scoring makes; true where a row got one.
    pub fn stage_rows(&mut self, rows: &[WindowRow], batch: &mut Vec<f32>) -> Vec<bool> {
        // The model's inputs depend only on the windows, so they are staged
        // before any is scored.
        let mut last = self.last_start;
        rows.iter()
            .map(|row| {
                if self.is_gap(last, row) {
                    self.predictor.reset();
                }
                last = Some(row.start_ns);
                self.predictor.stage(row, batch)
            })
            .collect()
    }

    /// The second half: each row scored, with the model's output for its
    /// staged sequence taken from `outputs` in order (a row whose output is
    /// missing, after a failed call, is scored without a new forecast).
    pub fn score_rows(
        &mut self,
        rows: Vec<WindowRow>,
        staged: &[bool],
        outputs: &mut impl Iterator<Item = (f64, f64)>,
        inference: Option<Duration>,
    ) -> Vec<Scored> {
        rows.into_iter()
            .zip(staged)
            .map(|(row, staged)| {
                let issued = staged
                    .then(|| outputs.next())
                    .flatten()
                    .map(|o| self.predictor.finish(&row, o));
                self.score(row, issued, inference)
            })
            .collect()
    }

    /// The scoring and publishing of one window whose forecast (if any) the
    /// model has issued.
    fn score(
        &mut self,
        row: WindowRow,
        issued: Option<Forecast>,
        inference: Option<Duration>,
    ) -> Scored {
        if self.is_gap(self.last_start, &row) {
            // The grid restarted (a long gap, dropped windows): history does not carry over.
            self.gap_after_staging();
        }
        self.last_start = Some(row.start_ns);
        let input_shift = self.watch_shift(&row);
        let (at_target, baselines, published_at_target) = match self.pending.take() {
            Some((f, b, p)) if f.target_start_ns == row.start_ns => (Some(f), Some(b), Some(p)),
            _ => (None, None, None),
        };
        let skill = at_target.map(|_| self.online.observe(row.throughput_mbps));
        let band_at_target = at_target.and_then(|_| self.band.observe(row.throughput_mbps));
        self.base.push(row.throughput_mbps);
        let inference = issued.and(inference);
        let mut published = None;
        let mut band = None;
        if let Some(f) = issued {
            let b = self.base.forecast().unwrap_or_default();
            let (mbps, prob) = self.online.issue(
                [f.throughput_mbps, b.0, b.2, b.1],
                f.congestion_prob,
                row.throughput_mbps,
                row.is_silent,
                row.tcp.receiver_limited(),
                Shape {
                    active: row.tcp.active_fraction(self.width.ns()),
                    tail_mbps: Some(row.tcp.tail_mbps(self.width.ns())),
                    acked_mbps: row.tcp.ack_clock_mbps(row.throughput_mbps),
                },
            );
            let p = if self.combine {
                Forecast {
                    throughput_mbps: mbps,
                    congestion_prob: prob,
                    ..f
                }
            } else {
                self.online
                    .publish_instead(f.throughput_mbps, f.congestion_prob);
                f
            };
            published = Some(p);
            self.pending = Some((f, b, p));
            band = self.band.issue(p.throughput_mbps, row.is_silent);
        }
        Scored {
            stream: 0,
            row,
            at_target,
            baselines,
            issued,
            inference,
            published_at_target,
            published,
            band_at_target,
            band,
            skill,
            input_shift,
        }
    }

    /// The input-shift monitor (None: the model has no reference).
    pub fn shift(&self) -> Option<&ShiftMonitor> {
        self.shift.as_ref()
    }

    fn watch_shift(&mut self, row: &WindowRow) -> Option<(f64, f64)> {
        let m = self.shift.as_mut()?;
        let d = m.push(&row.features().map(|v| v as f32))?;
        let threshold = m.reference().threshold;
        if d > threshold && !self.shift_warned {
            self.shift_warned = true;
            tracing::warn!(
                "the input is unlike the model's training data: feature distance {d:.3} over the last {} windows, the training data showed at most {threshold:.3}; forecasts may be less reliable (the online skill scores say how much)",
                m.reference().span
            );
        }
        Some((d, threshold))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::forecast::{LOOKBACK, Persistence};

    fn row(i: i64, mbps: f64) -> WindowRow {
        WindowRow {
            start_ns: i * WindowWidth::DEFAULT.ns(),
            size_bytes: 0,
            delay_s: 0.0,
            bif_bytes: 0,
            iat_mean_s: 0.0,
            iat_std_s: 0.0,
            throughput_mbps: mbps,
            delay_grad_s: 0.0,
            bif_grad_bytes: 0,
            is_silent: false,
            packets: 1,
            tcp: Default::default(),
        }
    }

    fn stage() -> ForecastStage<Persistence> {
        ForecastStage::new(
            Persistence {
                threshold_mbps: 20.0,
            },
            WindowWidth::DEFAULT,
        )
    }

    #[test]
    fn a_forecast_lands_on_the_window_it_was_made_for() {
        let mut s = stage();
        let n = LOOKBACK as i64;
        for i in 0..n {
            let out = s.step(row(i, i as f64)).unwrap();
            assert!(out.at_target.is_none());
            assert_eq!(out.issued.is_some(), i == n - 1);
        }
        let out = s.step(row(n, 99.0)).unwrap();
        let f = out.at_target.unwrap();
        assert_eq!(f.target_start_ns, out.row.start_ns);
        assert_eq!(f.throughput_mbps, (n - 1) as f64);
        assert_eq!(out.baselines.unwrap().0, (n - 1) as f64);
    }

    #[test]
    fn a_gap_in_the_grid_restarts_the_history() {
        let mut s = stage();
        let n = LOOKBACK as i64;
        for i in 0..n {
            s.step(row(i, 1.0)).unwrap();
        }
        // One window missing: the pending forecast is not scored, history restarts.
        let out = s.step(row(n + 1, 1.0)).unwrap();
        assert!(out.at_target.is_none() && out.issued.is_none());
    }

    /// A model whose output depends on every value of every sequence and on
    /// where in the batch the sequence sits only through its own values.
    struct Weighted;

    impl SequenceModel for Weighted {
        fn forward(&mut self, seqs: &[f32], n: usize) -> Result<Vec<(f64, f64)>, PredictError> {
            Ok(seqs
                .chunks(seqs.len() / n.max(1))
                .map(|s| {
                    let v: f64 = s
                        .iter()
                        .enumerate()
                        .map(|(k, x)| f64::from(*x) * (k % 7 + 1) as f64)
                        .sum();
                    (v / 100.0 - 3.0, (v / 1000.0).sin())
                })
                .collect())
        }
        fn version(&self) -> &str {
            "weighted"
        }
        fn batch_invariant(&self) -> bool {
            true
        }
        fn threshold_mbps(&self) -> f64 {
            20.0
        }
    }

    #[test]
    fn batched_windows_get_the_forecasts_and_scores_of_one_at_a_time() {
        let mut rows = Vec::new();
        let mut rng = engine::rng::Rng::new(7);
        let mut i = 0i64;
        for k in 0..400 {
            // Grid gaps (a long silence, dropped windows) restart the history.
            i += if k % 97 == 96 { 5 } else { 1 };
            let mut r = row(i, rng.f64() * 40.0);
            r.delay_s = rng.f64() * 0.05;
            r.iat_std_s = if k % 13 == 0 { f64::NAN } else { rng.f64() };
            r.is_silent = k % 11 == 0;
            rows.push(r);
        }
        let one_by_one: Vec<Scored> = {
            let mut s = ForecastStage::new(Weighted, WindowWidth::DEFAULT);
            rows.iter().map(|r| s.step(*r).unwrap()).collect()
        };
        for sizes in [
            vec![64],
            vec![1, 2, 3, 5, 8, 13, 21],
            vec![400],
            vec![15, 1],
        ] {
            let mut s = ForecastStage::new(Weighted, WindowWidth::DEFAULT);
            let mut batched = Vec::new();
            let mut at = 0;
            for n in sizes.iter().cycle() {
                if at == rows.len() {
                    break;
                }
                let end = (at + n).min(rows.len());
                let (out, error) = s.step_batch(rows[at..end].to_vec());
                assert!(error.is_none());
                batched.extend(out);
                at = end;
            }
            assert_eq!(batched.len(), one_by_one.len());
            let issued = one_by_one.iter().filter(|s| s.issued.is_some()).count();
            assert!(issued > 300, "{issued} forecasts");
            for (a, b) in batched.iter().zip(&one_by_one) {
                let strip = |s: &Scored| Scored {
                    inference: None,
                    ..s.clone()
                };
                // Debug text, since NaN features make `==` false.
                assert_eq!(
                    format!("{:?}", strip(a)),
                    format!("{:?}", strip(b)),
                    "batch sizes {sizes:?}"
                );
                assert_eq!(a.inference.is_some(), b.issued.is_some());
            }
        }
    }

    /// Persistence that says its training data ran at 1-10 Mbit/s.
    struct Trained(engine::shift::InputReference);

    impl SequenceModel for Trained {
        fn forward(&mut self, seqs: &[f32], n: usize) -> Result<Vec<(f64, f64)>, PredictError> {
            Persistence {
                threshold_mbps: 20.0,
            }
            .forward(seqs, n)
        }
        fn version(&self) -> &str {
            "trained"
        }
        fn threshold_mbps(&self) -> f64 {
            20.0
        }
        fn input_reference(&self) -> Option<&engine::shift::InputReference> {
            Some(&self.0)
        }
    }

    #[test]
    fn input_unlike_the_training_data_is_flagged_after_a_full_span() {
        let feats = |mbps: f64| row(0, mbps).features().map(|v| v as f32);
        let train: Vec<Vec<[f32; engine::forecast::N_FEATURES]>> =
            vec![(0..400).map(|i| feats(1.0 + (i % 10) as f64)).collect()];
        let reference = engine::shift::InputReference::fit(&[train.as_slice()], 100).unwrap();
        let mut s = ForecastStage::new(Trained(reference), WindowWidth::DEFAULT);
        let mut i = 0;
        // Like the training data: judged after 100 windows, never beyond.
        for _ in 0..150 {
            let out = s.step(row(i, 1.0 + (i % 10) as f64)).unwrap();
            assert_eq!(out.input_shift.is_some(), i >= 99);
            if let Some((d, t)) = out.input_shift {
                assert!(d <= t + 1e-9, "{d} > {t}");
            }
            i += 1;
        }
        // A link ten times faster: beyond the threshold within a span.
        let mut beyond = false;
        for _ in 0..100 {
            let (d, t) = s.step(row(i, 100.0)).unwrap().input_shift.unwrap();
            beyond |= d > t;
            i += 1;
        }
        assert!(beyond && s.shift().unwrap().windows_over > 0);
        // A new capture forgets the windows (no verdict until a span is in).
        s.restart();
        assert!(s.step(row(0, 1.0)).unwrap().input_shift.is_none());
    }
}
