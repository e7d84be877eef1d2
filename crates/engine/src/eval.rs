//! Forecast evaluation: error metrics, the naive baselines every forecast is
//! judged against, and the congestion-label scores (INTERFACE.md "Report JSON").
//!
//! Owns numbers about forecasts; does not own models or plots' drawing.
//! At 50 ms "next window = this window" is already strong, so every number the
//! model gets is printed next to the baselines' on the same windows.

use serde::{Deserialize, Serialize};

/// Smoothing of the EWMA baseline: weight of the newest window.
pub const EWMA_ALPHA: f64 = 0.3;
/// Windows averaged by the mean baseline (the model's lookback).
pub const MEAN_WINDOWS: usize = 15;

/// Metrics of one forecaster on one set of windows.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Coefficient of determination.
    pub r2: f64,
    /// Mean absolute error, Mbit/s.
    pub mae_mbps: f64,
    /// Root mean squared error, Mbit/s.
    pub rmse_mbps: f64,
    /// MAE over the persistence forecast's MAE on the same windows.
    pub mase: f64,
    /// Area under the ROC curve of the probability for "below the threshold".
    pub roc_auc: f64,
    /// Area under the precision-recall curve.
    pub pr_auc: f64,
    /// Share of windows whose actual throughput is below the threshold.
    pub prevalence: f64,
    /// Why a metric above is null (undefined on these windows), one line each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub undefined: Vec<String>,
}

/// Forecasts of every forecaster for the same target windows.
#[derive(Clone, Debug, Default)]
pub struct Forecasts {
    /// Actual throughput, Mbit/s.
    pub actual: Vec<f64>,
    /// The model's forecasts.
    pub model: Vec<f64>,
    /// The model's probabilities.
    pub model_prob: Vec<f64>,
    /// Persistence forecasts.
    pub persistence: Vec<f64>,
    /// Mean-of-the-last-15 forecasts.
    pub mean: Vec<f64>,
    /// EWMA forecasts.
    pub ewma: Vec<f64>,
    /// The published forecasts (the online combination).
    pub published: Vec<f64>,
    /// The published probabilities (recalibrated online).
    pub published_prob: Vec<f64>,
}

impl Forecasts {
    /// Append another set (pooling captures).
    pub fn extend(&mut self, o: &Forecasts) {
        self.actual.extend_from_slice(&o.actual);
        self.model.extend_from_slice(&o.model);
        self.model_prob.extend_from_slice(&o.model_prob);
        self.persistence.extend_from_slice(&o.persistence);
        self.mean.extend_from_slice(&o.mean);
        self.ewma.extend_from_slice(&o.ewma);
        self.published.extend_from_slice(&o.published);
        self.published_prob.extend_from_slice(&o.published_prob);
    }
}

/// Keeps the baselines' state for one capture; feed each window's actual.
#[derive(Clone, Debug, Default)]
pub struct Baselines {
    recent: std::collections::VecDeque<f64>,
    ewma: Option<f64>,
}

impl Baselines {
    /// Record window `t`'s actual throughput; afterwards [`Baselines::forecast`]
    /// gives the baselines' forecasts for `t+1`.
    pub fn push(&mut self, mbps: f64) {
        self.recent.push_back(mbps);
        if self.recent.len() > MEAN_WINDOWS {
            self.recent.pop_front();
        }
        self.ewma = Some(match self.ewma {
            None => mbps,
            Some(e) => EWMA_ALPHA * mbps + (1.0 - EWMA_ALPHA) * e,
        });
    }

    /// (persistence, mean of the last 15, EWMA) for the next window.
    pub fn forecast(&self) -> Option<(f64, f64, f64)> {
        let last = *self.recent.back()?;
        let mean = self.recent.iter().sum::<f64>() / self.recent.len() as f64;
        Some((last, mean, self.ewma.unwrap_or(last)))
    }
}

/// Mean absolute error (NaN when empty).
pub fn mae(a: &[f64], p: &[f64]) -> f64 {
    if a.is_empty() {
        return f64::NAN;
    }
    a.iter().zip(p).map(|(x, y)| (x - y).abs()).sum::<f64>() / a.len() as f64
}

/// Root mean squared error (NaN when empty).
pub fn rmse(a: &[f64], p: &[f64]) -> f64 {
    if a.is_empty() {
        return f64::NAN;
    }
    (a.iter().zip(p).map(|(x, y)| (x - y) * (x - y)).sum::<f64>() / a.len() as f64).sqrt()
}

/// Coefficient of determination against the mean of the actuals.
pub fn r2(a: &[f64], p: &[f64]) -> f64 {
    if a.is_empty() {
        return f64::NAN;
    }
    let m = a.iter().sum::<f64>() / a.len() as f64;
    let ss_tot: f64 = a.iter().map(|x| (x - m) * (x - m)).sum();
    let ss_res: f64 = a.iter().zip(p).map(|(x, y)| (x - y) * (x - y)).sum();
    if ss_tot == 0.0 {
        f64::NAN
    } else {
        1.0 - ss_res / ss_tot
    }
}

/// ROC-AUC of `score` for the positive `label`s (Mann-Whitney, ties count half).
pub fn roc_auc(label: &[bool], score: &[f64]) -> f64 {
    let pos = label.iter().filter(|l| **l).count();
    let neg = label.len() - pos;
    if pos == 0 || neg == 0 {
        return f64::NAN;
    }
    let mut idx: Vec<usize> = (0..score.len()).collect();
    idx.sort_by(|a, b| score[*a].total_cmp(&score[*b]));
    // Average ranks over ties.
    let mut rank_sum_pos = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && score[idx[j + 1]] == score[idx[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        for k in &idx[i..=j] {
            if label[*k] {
                rank_sum_pos += avg_rank;
            }
        }
        i = j + 1;
    }
    (rank_sum_pos - (pos * (pos + 1)) as f64 / 2.0) / (pos as f64 * neg as f64)
}

/// Area under the precision-recall curve as average precision (ties grouped).
/// Undefined (NaN) with one class only: with every window positive any
/// score reaches 1, which says nothing.
pub fn pr_auc(label: &[bool], score: &[f64]) -> f64 {
    let pos = label.iter().filter(|l| **l).count();
    if pos == 0 || pos == label.len() {
        return f64::NAN;
    }
    let mut idx: Vec<usize> = (0..score.len()).collect();
    idx.sort_by(|a, b| score[*b].total_cmp(&score[*a]));
    let (mut tp, mut fp, mut ap, mut prev_recall) = (0usize, 0usize, 0.0, 0.0);
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && score[idx[j + 1]] == score[idx[i]] {
            j += 1;
        }
        for k in &idx[i..=j] {
            if label[*k] {
                tp += 1;
            } else {
                fp += 1;
            }
        }
        let recall = tp as f64 / pos as f64;
        let precision = tp as f64 / (tp + fp) as f64;
        ap += (recall - prev_recall) * precision;
        prev_recall = recall;
        i = j + 1;
    }
    ap
}

/// Metrics of a throughput forecast `p` (and a congestion score: probability for
/// the model; for baselines, lower forecast throughput means more likely below).
pub fn metrics(
    actual: &[f64],
    p: &[f64],
    score: Option<&[f64]>,
    persistence_mae: f64,
    threshold_mbps: f64,
) -> Metrics {
    let label: Vec<bool> = actual.iter().map(|a| *a < threshold_mbps).collect();
    let neg: Vec<f64>;
    let s = match score {
        Some(s) => s,
        None => {
            neg = p.iter().map(|x| -x).collect();
            &neg
        }
    };
    let m = mae(actual, p);
    let mut out = Metrics {
        r2: r2(actual, p),
        mae_mbps: m,
        rmse_mbps: rmse(actual, p),
        mase: m / persistence_mae,
        roc_auc: roc_auc(&label, s),
        pr_auc: pr_auc(&label, s),
        prevalence: label.iter().filter(|l| **l).count() as f64 / label.len().max(1) as f64,
        undefined: Vec::new(),
    };
    if actual.is_empty() {
        out.undefined
            .push("every metric: no window was scored".into());
        return out;
    }
    if !out.r2.is_finite() {
        out.undefined
            .push("r2: the actual throughput is the same in every window".into());
    }
    if !out.mase.is_finite() {
        out.undefined
            .push("mase: persistence made no error on these windows".into());
    }
    if !out.roc_auc.is_finite() || !out.pr_auc.is_finite() {
        out.undefined.push(format!(
            "roc_auc, pr_auc: every window is {} the threshold (one class only)",
            if out.prevalence > 0.5 {
                "below"
            } else {
                "at or above"
            }
        ));
    }
    out
}

/// `v` with `prec` decimals, or `n/a` where it is undefined (NaN or
/// infinite): printed tables never show NaN.
pub fn shown(v: f64, prec: usize) -> String {
    if v.is_finite() {
        format!("{v:.prec$}")
    } else {
        "n/a".to_owned()
    }
}

/// One bin of a reliability table.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityBin {
    /// Lower edge of the probability bin.
    pub lo: f64,
    /// Upper edge.
    pub hi: f64,
    /// Forecasts in the bin.
    pub count: usize,
    /// Their mean probability (None when empty).
    pub mean_prob: Option<f64>,
    /// The share of them whose window was below the threshold (None when empty).
    pub observed: Option<f64>,
}

/// How well a probability matches what happened.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Mean squared error of the probability.
    pub brier: f64,
    /// Mean negative log-likelihood (probabilities clamped to 1e-6).
    pub log_loss: f64,
    /// Expected calibration error over 10 equal-width bins.
    pub ece: f64,
    /// The 10 bins.
    pub bins: Vec<ReliabilityBin>,
}

/// Brier score, log loss, ECE and the 10-bin reliability table.
pub fn calibration(label: &[bool], prob: &[f64]) -> Calibration {
    let n = label.len().min(prob.len());
    if n == 0 {
        return Calibration {
            brier: f64::NAN,
            log_loss: f64::NAN,
            ece: f64::NAN,
            bins: Vec::new(),
        };
    }
    let y = |i: usize| if label[i] { 1.0 } else { 0.0 };
    let brier = (0..n).map(|i| (prob[i] - y(i)).powi(2)).sum::<f64>() / n as f64;
    let log_loss = (0..n)
        .map(|i| {
            let p = prob[i].clamp(1e-6, 1.0 - 1e-6);
            if label[i] { -p.ln() } else { -(1.0 - p).ln() }
        })
        .sum::<f64>()
        / n as f64;
    let mut sums = [(0usize, 0.0f64, 0.0f64); 10];
    for (i, p) in prob.iter().take(n).enumerate() {
        let b = ((p * 10.0) as usize).min(9);
        sums[b].0 += 1;
        sums[b].1 += p;
        sums[b].2 += y(i);
    }
    let mut ece = 0.0;
    let bins = sums
        .iter()
        .enumerate()
        .map(|(k, (c, p, o))| {
            if *c > 0 {
                ece += (*c as f64 / n as f64) * (p / *c as f64 - o / *c as f64).abs();
            }
            ReliabilityBin {
                lo: k as f64 / 10.0,
                hi: (k + 1) as f64 / 10.0,
                count: *c,
                mean_prob: (*c > 0).then(|| p / *c as f64),
                observed: (*c > 0).then(|| o / *c as f64),
            }
        })
        .collect();
    Calibration {
        brier,
        log_loss,
        ece,
        bins,
    }
}

/// Model and baselines, scored on the same windows.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Scoreboard {
    /// The published forecast's metrics (the online combination), when scored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<Metrics>,
    /// The model's metrics.
    pub model: Metrics,
    /// Persistence's.
    pub persistence: Metrics,
    /// The mean of the last 15's.
    pub mean_last_15: Metrics,
    /// EWMA's.
    pub ewma: Metrics,
}

impl Scoreboard {
    /// Score every forecaster against the threshold.
    pub fn compute(f: &Forecasts, threshold_mbps: f64) -> Scoreboard {
        let pm = mae(&f.actual, &f.persistence);
        Scoreboard {
            published: (!f.actual.is_empty() && f.published.len() == f.actual.len()).then(|| {
                metrics(
                    &f.actual,
                    &f.published,
                    Some(&f.published_prob),
                    pm,
                    threshold_mbps,
                )
            }),
            model: metrics(&f.actual, &f.model, Some(&f.model_prob), pm, threshold_mbps),
            persistence: metrics(&f.actual, &f.persistence, None, pm, threshold_mbps),
            mean_last_15: metrics(&f.actual, &f.mean, None, pm, threshold_mbps),
            ewma: metrics(&f.actual, &f.ewma, None, pm, threshold_mbps),
        }
    }

    /// The table printed after `replay` and `train`.
    pub fn table(&self) -> String {
        let mut s = format!(
            "{:<16} {:>8} {:>9} {:>10} {:>7} {:>8} {:>7}\n",
            "forecaster", "R2", "MAE Mb/s", "RMSE Mb/s", "MASE", "ROC-AUC", "PR-AUC"
        );
        let published = self.published.as_ref().map(|m| ("published", m));
        for (name, m) in published.into_iter().chain([
            ("model", &self.model),
            ("persistence", &self.persistence),
            ("mean of last 15", &self.mean_last_15),
            ("EWMA 0.3", &self.ewma),
        ]) {
            s += &format!(
                "{:<16} {:>8} {:>9} {:>10} {:>7} {:>8} {:>7}\n",
                name,
                shown(m.r2, 4),
                shown(m.mae_mbps, 3),
                shown(m.rmse_mbps, 3),
                shown(m.mase, 3),
                shown(m.roc_auc, 4),
                shown(m.pr_auc, 4)
            );
        }
        s += &format!(
            "congestion prevalence (actual below threshold): {:.3}",
            self.model.prevalence
        );
        // Why a column says n/a: every reason depends on the windows alone
        // (the actuals, their classes, persistence's error), never on the
        // forecast, so the model's reasons are every forecaster's.
        for w in &self.model.undefined {
            s += &format!("\nn/a: {w}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undefined_metrics_are_null_with_a_reason() {
        // Every window above the threshold, persistence perfect.
        let a = [30.0, 30.0, 30.0];
        let m = metrics(&a, &[31.0, 30.0, 29.0], Some(&[0.1, 0.2, 0.3]), 0.0, 20.0);
        assert!(m.roc_auc.is_nan() && m.pr_auc.is_nan() && !m.mase.is_finite());
        let json = serde_json::to_value(&m).unwrap();
        assert!(
            json["roc_auc"].is_null() && json["mase"].is_null(),
            "{json}"
        );
        let why = m.undefined.join("; ");
        assert!(
            why.contains("one class only") && why.contains("persistence made no error"),
            "{why}"
        );
        assert!(why.contains("r2"), "{why}");
        // Every window below: average precision would be 1 for any score.
        let below = metrics(
            &[1.0, 2.0, 3.0],
            &[1.0, 2.0, 2.0],
            Some(&[0.9, 0.1, 0.5]),
            1.0,
            20.0,
        );
        assert!(below.roc_auc.is_nan() && below.pr_auc.is_nan());
        assert!(below.undefined.join("; ").contains("every window is below"));
        assert_eq!(shown(below.pr_auc, 4), "n/a");
        assert_eq!(shown(0.12345, 3), "0.123");
        // A well-defined case says nothing.
        let ok = metrics(&[10.0, 30.0], &[12.0, 28.0], Some(&[0.9, 0.1]), 1.0, 20.0);
        assert!(ok.undefined.is_empty());
        assert!(!serde_json::to_string(&ok).unwrap().contains("undefined"));
    }

    #[test]
    fn auc_known_values() {
        let l = [true, true, false, false];
        assert_eq!(roc_auc(&l, &[0.9, 0.8, 0.2, 0.1]), 1.0);
        assert_eq!(roc_auc(&l, &[0.1, 0.2, 0.8, 0.9]), 0.0);
        assert_eq!(roc_auc(&l, &[0.5, 0.5, 0.5, 0.5]), 0.5);
        assert_eq!(pr_auc(&l, &[0.9, 0.8, 0.2, 0.1]), 1.0);
        // Ranking pos, neg, pos, neg: AP = (1/2)*1 + (1/2)*(2/3).
        let l2 = [true, false, true, false];
        assert!((pr_auc(&l2, &[0.9, 0.8, 0.7, 0.1]) - (0.5 + 1.0 / 3.0)).abs() < 1e-12);
    }

    #[test]
    fn errors_and_r2() {
        let a = [1.0, 2.0, 3.0];
        assert_eq!(mae(&a, &[1.0, 2.0, 4.0]), 1.0 / 3.0);
        assert_eq!(r2(&a, &a), 1.0);
        assert_eq!(r2(&a, &[2.0, 2.0, 2.0]), 0.0);
        assert!((rmse(&a, &[1.0, 2.0, 5.0]) - (4.0f64 / 3.0).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn baselines_follow_their_definitions() {
        let mut b = Baselines::default();
        assert!(b.forecast().is_none());
        b.push(10.0);
        b.push(20.0);
        let (p, m, e) = b.forecast().unwrap();
        assert_eq!(p, 20.0);
        assert_eq!(m, 15.0);
        assert!((e - (0.3 * 20.0 + 0.7 * 10.0)).abs() < 1e-12);
        for _ in 0..20 {
            b.push(1.0);
        }
        assert_eq!(b.forecast().unwrap().1, 1.0);
    }
}
