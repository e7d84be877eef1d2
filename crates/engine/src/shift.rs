//! Is this input like the training data? A feature-distribution distance
//! between the last minute of windows and the training windows.
//!
//! Training fits, per feature, decile cut points over all training windows and
//! the share of training windows in each bin (ties, as in the 0/1 silent flag,
//! make some bins empty: the expected shares come from the data, not 0.1). The
//! distance of a span of windows is the total-variation distance between its
//! bin shares and the training shares, averaged over the nine features: 0 for a
//! span distributed like the training data, 1 for one that falls entirely in
//! bins the training data never used. The threshold is the largest distance
//! any span of the training captures themselves showed, so "beyond it" means
//! unlike anything the model was fitted on.

use crate::forecast::N_FEATURES;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Bins per feature.
pub const BINS: usize = 10;
/// Windows in one span: a minute of 50 ms windows.
pub const DEFAULT_SPAN: usize = 1200;

/// What the model's training data looked like (stored in model.json).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputReference {
    /// Per feature, the `BINS - 1` ascending cut points (FEATURES.md order).
    pub edges: Vec<Vec<f32>>,
    /// Per feature, the share of training windows in each bin.
    pub expected: Vec<Vec<f64>>,
    /// Windows per span.
    pub span: usize,
    /// The largest distance of a span of the training captures.
    pub threshold: f64,
}

fn bin(edges: &[f32], v: f32) -> usize {
    // The first bin whose upper cut point is above v (NaN goes to the last bin).
    edges.partition_point(|e| *e <= v)
}

impl InputReference {
    /// Fit on captures (each a list of contiguous segments of feature rows).
    /// `None` when there are fewer windows than one span.
    pub fn fit(captures: &[&[Vec<[f32; N_FEATURES]>]], span: usize) -> Option<InputReference> {
        let rows: Vec<&[f32; N_FEATURES]> =
            captures.iter().flat_map(|c| c.iter().flatten()).collect();
        if rows.len() < span || span == 0 {
            return None;
        }
        let mut edges = Vec::with_capacity(N_FEATURES);
        let mut expected = Vec::with_capacity(N_FEATURES);
        for k in 0..N_FEATURES {
            let mut v: Vec<f32> = rows
                .iter()
                .map(|r| r[k])
                .filter(|x| x.is_finite())
                .collect();
            v.sort_by(|a, b| a.total_cmp(b));
            let e: Vec<f32> = (1..BINS)
                .map(|i| {
                    v.get((v.len() * i / BINS).min(v.len().saturating_sub(1)))
                        .copied()
                        .unwrap_or(0.0)
                })
                .collect();
            let mut counts = [0u64; BINS];
            for r in &rows {
                counts[bin(&e, r[k])] += 1;
            }
            expected.push(
                counts
                    .iter()
                    .map(|&c| c as f64 / rows.len() as f64)
                    .collect(),
            );
            edges.push(e);
        }
        let mut r = InputReference {
            edges,
            expected,
            span,
            threshold: 0.0,
        };
        // The training captures' own spans, a span apart (a capture shorter
        // than a span contributes nothing: the monitor waits for a full one).
        let mut worst = 0.0f64;
        for c in captures {
            let mut m = ShiftMonitor::new(r.clone());
            for seg in c.iter() {
                for (i, row) in seg.iter().enumerate() {
                    if let Some(d) = m.push(row)
                        && (i + 1) % span == 0
                    {
                        worst = worst.max(d);
                    }
                }
            }
        }
        r.threshold = worst;
        Some(r)
    }
}

/// The running distance of the last `span` windows of one stream.
#[derive(Clone, Debug)]
pub struct ShiftMonitor {
    reference: InputReference,
    ring: VecDeque<[u8; N_FEATURES]>,
    counts: [[u32; BINS]; N_FEATURES],
    /// Distance of the last full span, if there has been one.
    pub distance: Option<f64>,
    /// Largest distance seen.
    pub max: f64,
    /// Windows whose span was beyond the threshold.
    pub windows_over: u64,
    /// Windows with a full span behind them.
    pub windows_scored: u64,
}

impl ShiftMonitor {
    /// A monitor against `reference`.
    pub fn new(reference: InputReference) -> Self {
        ShiftMonitor {
            ring: VecDeque::with_capacity(reference.span + 1),
            reference,
            counts: [[0; BINS]; N_FEATURES],
            distance: None,
            max: 0.0,
            windows_over: 0,
            windows_scored: 0,
        }
    }

    /// The reference it compares with.
    pub fn reference(&self) -> &InputReference {
        &self.reference
    }

    /// Add a window; the distance once a full span is in.
    pub fn push(&mut self, f: &[f32; N_FEATURES]) -> Option<f64> {
        let mut b = [0u8; N_FEATURES];
        for k in 0..N_FEATURES {
            b[k] = bin(&self.reference.edges[k], f[k]) as u8;
            self.counts[k][b[k] as usize] += 1;
        }
        self.ring.push_back(b);
        if self.ring.len() > self.reference.span
            && let Some(old) = self.ring.pop_front()
        {
            for (counts, b) in self.counts.iter_mut().zip(old) {
                counts[b as usize] -= 1;
            }
        }
        if self.ring.len() < self.reference.span {
            return None;
        }
        let n = self.ring.len() as f64;
        let mut d = 0.0;
        for k in 0..N_FEATURES {
            let tv: f64 = (0..BINS)
                .map(|i| (self.counts[k][i] as f64 / n - self.reference.expected[k][i]).abs())
                .sum();
            d += 0.5 * tv;
        }
        d /= N_FEATURES as f64;
        self.distance = Some(d);
        self.max = self.max.max(d);
        self.windows_scored += 1;
        if d > self.reference.threshold {
            self.windows_over += 1;
        }
        Some(d)
    }

    /// Whether the last full span was beyond what training showed.
    pub fn beyond(&self) -> bool {
        self.distance.is_some_and(|d| d > self.reference.threshold)
    }

    /// Forget the windows (a new stream); the counters stay.
    pub fn clear(&mut self) {
        self.ring.clear();
        self.counts = [[0; BINS]; N_FEATURES];
        self.distance = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn capture(seed: u64, n: usize, scale: f32) -> Vec<Vec<[f32; N_FEATURES]>> {
        let mut r = Rng::new(seed);
        vec![
            (0..n)
                .map(|_| {
                    let mut f = [0f32; N_FEATURES];
                    for (k, v) in f.iter_mut().enumerate().take(8) {
                        *v = scale * (k as f32 + 1.0) * r.f64() as f32;
                    }
                    f[8] = if r.f64() < 0.2 { 1.0 } else { 0.0 };
                    f
                })
                .collect(),
        ]
    }

    #[test]
    fn like_data_stays_under_the_threshold_and_unlike_data_goes_over() {
        let train: Vec<_> = (0..4).map(|s| capture(s, 3000, 1.0)).collect();
        let refs: Vec<&[Vec<[f32; N_FEATURES]>]> = train.iter().map(|c| c.as_slice()).collect();
        let r = InputReference::fit(&refs, 600).unwrap();
        assert!(r.threshold > 0.0 && r.threshold < 0.1, "{}", r.threshold);
        for e in &r.expected {
            assert!((e.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        }
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<InputReference>(&json).unwrap(), r);

        let mut like = ShiftMonitor::new(r.clone());
        for row in &capture(9, 3000, 1.0)[0] {
            like.push(row);
        }
        assert!(
            like.max < 2.0 * r.threshold,
            "{} vs {}",
            like.max,
            r.threshold
        );
        assert_eq!(like.windows_scored, 3000 - 600 + 1);

        let mut unlike = ShiftMonitor::new(r.clone());
        for (i, row) in capture(9, 1000, 10.0)[0].iter().enumerate() {
            let d = unlike.push(row);
            assert_eq!(d.is_some(), i + 1 >= 600);
        }
        assert!(unlike.beyond() && unlike.max > 0.5, "{}", unlike.max);
        assert_eq!(unlike.windows_over, unlike.windows_scored);
        unlike.clear();
        assert!(!unlike.beyond());
    }

    #[test]
    fn too_little_data_gives_no_reference() {
        let c = capture(1, 100, 1.0);
        assert!(InputReference::fit(&[c.as_slice()], 600).is_none());
        // NaN and infinite values land in a bin instead of panicking.
        let train = capture(2, 2000, 1.0);
        let r = InputReference::fit(&[train.as_slice()], 500).unwrap();
        let mut m = ShiftMonitor::new(r);
        for _ in 0..600 {
            m.push(&[f32::NAN, f32::INFINITY, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        }
        assert!(m.distance.unwrap().is_finite());
    }
}
