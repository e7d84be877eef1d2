//! Gradient-boosted oblivious decision trees with an L1 loss, trained in plain
//! Rust and exported as tensor operations (so the model is still one TorchScript
//! module with the MODEL.md signature).
//!
//! Oblivious: every node of a level splits on the same feature and threshold,
//! so a tree of depth `d` is `d` comparisons whose bits index one of `2^d`
//! leaves. That is what makes the export a handful of batched tensor ops
//! (gather, compare, weighted sum, take) instead of a loop over nodes.
//!
//! L1 boosting: each tree is fitted (least squares) to the sign of the current
//! residuals, and each leaf then takes the median residual of its rows, shrunk
//! by the learning rate. Splits are searched on per-feature quantile bins.

use engine::rng::Rng;
use tch::{Kind, Tensor};

/// What the trees minimise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    /// Absolute error; leaves take the median residual.
    L1,
    /// Log-loss on 0/1 targets; the ensemble is a logit, leaves take a Newton step.
    Logistic,
}

#[derive(Clone, Debug)]
pub struct GbtConfig {
    pub loss: Loss,
    pub max_trees: usize,
    pub depth: usize,
    pub learning_rate: f64,
    /// Quantile bins per feature for the split search (at most 255).
    pub bins: usize,
    /// Share of training rows each tree sees.
    pub subsample: f64,
    /// A split side with fewer rows than this (and more than none) does not count.
    pub min_leaf: usize,
    /// Stop after this many trees without a better validation MAE.
    pub patience: usize,
    /// Keep every tree fitted (max_trees of them) instead of cutting back to
    /// the best validation score.
    pub keep_all: bool,
    pub seed: u64,
}

impl Default for GbtConfig {
    fn default() -> Self {
        GbtConfig {
            loss: Loss::L1,
            max_trees: 3000,
            depth: 6,
            learning_rate: 0.05,
            bins: 64,
            subsample: 0.8,
            min_leaf: 20,
            patience: 150,
            keep_all: false,
            seed: 1,
        }
    }
}

/// Trees per block of [`Gbt::leaf_sums`].
const TREE_BLOCK: usize = 128;

/// A trained ensemble: `predict(x) = base + sum over trees of leaf[tree, index(x)]`
/// where bit `l` of the index is `x[feature[tree, l]] > threshold[tree, l]`.
#[derive(Clone, Debug, Default)]
pub struct Gbt {
    pub depth: usize,
    pub base: f32,
    /// `[trees * depth]` feature of each level.
    pub feature: Vec<i64>,
    /// `[trees * depth]` threshold of each level.
    pub threshold: Vec<f32>,
    /// `[trees * 2^depth]` leaf values.
    pub leaf: Vec<f32>,
}

impl Gbt {
    pub fn trees(&self) -> usize {
        self.feature.len() / self.depth.max(1)
    }

    fn leaf_index(&self, t: usize, row: &[f32]) -> usize {
        let d = self.depth;
        (0..d).fold(0, |acc, l| {
            let k = t * d + l;
            acc | (((row[self.feature[k] as usize] > self.threshold[k]) as usize) << l)
        })
    }

    pub fn predict_row(&self, row: &[f32]) -> f32 {
        let n_leaves = 1usize << self.depth;
        self.base
            + (0..self.trees())
                .map(|t| self.leaf[t * n_leaves + self.leaf_index(t, row)])
                .sum::<f32>()
    }

    /// Each row's sum of its leaves (without the base), tree 0 first as in
    /// [`Gbt::predict_row`], the trees taken [`TREE_BLOCK`] at a time over
    /// every row: a large batch then reads each tree from the cache instead
    /// of all of them (1.2 MB for the shipped model) once per row.
    pub fn leaf_sums<R: AsRef<[f32]>>(&self, rows: &[R]) -> Vec<f32> {
        let n_leaves = 1usize << self.depth;
        let trees = self.trees();
        let mut acc = vec![0f32; rows.len()];
        for first in (0..trees).step_by(TREE_BLOCK) {
            let block = first..(first + TREE_BLOCK).min(trees);
            for (row, a) in rows.iter().zip(acc.iter_mut()) {
                for t in block.clone() {
                    *a += self.leaf[t * n_leaves + self.leaf_index(t, row.as_ref())];
                }
            }
        }
        acc
    }

    /// The ensemble as constant tensors, for [`Compiled::forward`].
    pub fn compile(&self) -> Compiled {
        let t = self.trees() as i64;
        let d = self.depth as i64;
        let n_leaves = 1i64 << d;
        let pow2: Vec<f32> = (0..d).map(|l| (1u32 << l) as f32).collect();
        let offsets: Vec<i64> = (0..t).map(|i| i * n_leaves).collect();
        Compiled {
            trees: t,
            depth: d,
            base: self.base as f64,
            feature: Tensor::from_slice(&self.feature),
            threshold: Tensor::from_slice(&self.threshold).reshape([t, d]),
            leaf: Tensor::from_slice(&self.leaf),
            pow2: Tensor::from_slice(&pow2),
            offsets: Tensor::from_slice(&offsets),
        }
    }
}

/// A [`Gbt`] as tensors. They are made once, outside any trace: tensors
/// created from Rust data while tracing do not survive into the module intact.
pub struct Compiled {
    trees: i64,
    depth: i64,
    base: f64,
    feature: Tensor,
    threshold: Tensor,
    leaf: Tensor,
    pow2: Tensor,
    offsets: Tensor,
}

impl Compiled {
    pub fn trees(&self) -> usize {
        self.trees as usize
    }

    /// The ensemble back as plain vectors (for `trees.bin`).
    pub fn gbt(&self) -> Gbt {
        Gbt {
            depth: self.depth as usize,
            base: self.base as f32,
            feature: Vec::try_from(&self.feature).unwrap_or_default(),
            threshold: Vec::try_from(self.threshold.reshape([-1])).unwrap_or_default(),
            leaf: Vec::try_from(&self.leaf).unwrap_or_default(),
        }
    }

    /// The ensemble on a `[B, features]` tensor, as batched tensor ops that
    /// trace into TorchScript with a dynamic batch size. `[B]`.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        if self.trees == 0 {
            return x.select(1, 0).zeros_like() + self.base;
        }
        // [B, T, D] comparisons -> [B, T] leaf index -> [B, T] values.
        let chosen = x
            .index_select(1, &self.feature)
            .reshape([-1, self.trees, self.depth]);
        let bits = chosen.gt_tensor(&self.threshold).to_kind(Kind::Float);
        let index = (bits * &self.pow2).sum_dim_intlist(&[2i64][..], false, None::<Kind>);
        let index = index.to_kind(Kind::Int64) + &self.offsets;
        self.leaf
            .take(&index)
            .sum_dim_intlist(&[1i64][..], false, None::<Kind>)
            + self.base
    }
}

/// Per-feature split thresholds: distinct quantiles of (a sample of) the column.
fn bin_edges(x: &[f32], nf: usize, bins: usize) -> Vec<Vec<f32>> {
    let n = x.len() / nf;
    let step = (n / 50_000).max(1);
    (0..nf)
        .map(|f| {
            let mut v: Vec<f32> = (0..n).step_by(step).map(|i| x[i * nf + f]).collect();
            v.sort_by(|a, b| a.total_cmp(b));
            let mut edges: Vec<f32> = (1..bins).map(|k| v[(v.len() - 1) * k / bins]).collect();
            edges.dedup();
            // A threshold equal to the largest value would split nothing.
            if edges.last() == v.last() {
                edges.pop();
            }
            edges
        })
        .collect()
}

fn median(v: &mut [f32]) -> f32 {
    if v.is_empty() {
        return 0.0;
    }
    let mid = v.len() / 2;
    let (_, m, _) = v.select_nth_unstable_by(mid, |a, b| a.total_cmp(b));
    *m
}

fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

/// Validation loss of one row: absolute error, or log-loss of a logit.
fn row_loss(loss: Loss, y: f32, pred: f32) -> f64 {
    match loss {
        Loss::L1 => (y - pred).abs() as f64,
        Loss::Logistic => {
            let p = (sigmoid(pred) as f64).clamp(1e-7, 1.0 - 1e-7);
            if y > 0.5 { -p.ln() } else { -(1.0 - p).ln() }
        }
    }
}

/// Fit on row-major `x` (`nf` columns) against `y`, early-stopping on
/// (`xv`, `yv`). `report(trees, validation loss, best so far)` is called every
/// 25 trees. Returns the ensemble cut at its best validation loss (MAE, or
/// mean log-loss).
pub fn fit(
    x: &[f32],
    y: &[f32],
    xv: &[f32],
    yv: &[f32],
    nf: usize,
    cfg: &GbtConfig,
    mut report: impl FnMut(usize, f64, bool),
) -> Gbt {
    let n = y.len();
    let nv = yv.len();
    let depth = cfg.depth.clamp(1, 10);
    let n_leaves = 1usize << depth;
    let edges = bin_edges(x, nf, cfg.bins.clamp(2, 256));
    let nb = edges.iter().map(|e| e.len() + 1).max().unwrap_or(1);
    // Bin of each value: the number of edges below it; "x > edge k" <=> bin > k.
    let bins: Vec<u8> = (0..n * nf)
        .map(|i| edges[i % nf].partition_point(|e| *e < x[i]) as u8)
        .collect();
    let base = match cfg.loss {
        Loss::L1 => median(&mut y.to_vec()),
        Loss::Logistic => {
            let p = (y.iter().map(|v| *v as f64).sum::<f64>() / n.max(1) as f64)
                .clamp(1e-4, 1.0 - 1e-4);
            (p / (1.0 - p)).ln() as f32
        }
    };
    let mut model = Gbt {
        depth,
        base,
        ..Default::default()
    };
    let mut pred = vec![base; n];
    let mut pred_v = vec![base; nv];
    let mut rng = Rng::new(cfg.seed ^ 0x6B7);
    let mut best = (f64::INFINITY, 0usize);
    let mut rows: Vec<usize> = Vec::with_capacity(n);
    let mut leaf_of = vec![0usize; n];
    let mut hist_s = vec![0f64; n_leaves * nf * nb];
    let mut hist_n = vec![0u32; n_leaves * nf * nb];
    for tree in 1..=cfg.max_trees {
        rows.clear();
        rows.extend((0..n).filter(|_| rng.f64() < cfg.subsample));
        let grad: Vec<f64> = (0..n)
            .map(|i| match cfg.loss {
                Loss::L1 => {
                    let r = y[i] - pred[i];
                    if r > 0.0 {
                        1.0
                    } else if r < 0.0 {
                        -1.0
                    } else {
                        0.0
                    }
                }
                Loss::Logistic => (y[i] - sigmoid(pred[i])) as f64,
            })
            .collect();
        for &i in &rows {
            leaf_of[i] = 0;
        }
        let mut levels: Vec<(usize, usize)> = Vec::with_capacity(depth);
        for level in 0..depth {
            let leaves = 1usize << level;
            let used = leaves * nf * nb;
            hist_s[..used].fill(0.0);
            hist_n[..used].fill(0);
            for &i in &rows {
                let base_idx = leaf_of[i] * nf * nb;
                let g = grad[i];
                for f in 0..nf {
                    let k = base_idx + f * nb + bins[i * nf + f] as usize;
                    hist_s[k] += g;
                    hist_n[k] += 1;
                }
            }
            let mut choice: Option<(f64, usize, usize)> = None;
            for (f, fe) in edges.iter().enumerate() {
                let n_edges = fe.len();
                // Running left sums per leaf while the split point moves right.
                let mut left_s = vec![0f64; leaves];
                let mut left_n = vec![0u32; leaves];
                let tot: Vec<(f64, u32)> = (0..leaves)
                    .map(|lf| {
                        let h = (lf * nf + f) * nb;
                        (
                            hist_s[h..h + nb].iter().sum(),
                            hist_n[h..h + nb].iter().sum(),
                        )
                    })
                    .collect();
                for k in 0..n_edges {
                    let mut gain = 0.0;
                    for lf in 0..leaves {
                        let h = (lf * nf + f) * nb + k;
                        left_s[lf] += hist_s[h];
                        left_n[lf] += hist_n[h];
                        let (ts, tn) = tot[lf];
                        let (ls, ln) = (left_s[lf], left_n[lf]);
                        let (rs, rn) = (ts - ls, tn - ln);
                        let small = |c: u32| c > 0 && (c as usize) < cfg.min_leaf;
                        if ln == 0 || rn == 0 || small(ln) || small(rn) {
                            if tn > 0 {
                                gain += ts * ts / tn as f64;
                            }
                        } else {
                            gain += ls * ls / ln as f64 + rs * rs / rn as f64;
                        }
                    }
                    if choice.is_none_or(|c| gain > c.0) {
                        choice = Some((gain, f, k));
                    }
                }
            }
            let Some((_, f, k)) = choice else { break };
            levels.push((f, k));
            for &i in &rows {
                if bins[i * nf + f] as usize > k {
                    leaf_of[i] |= 1 << level;
                }
            }
        }
        if levels.len() < depth {
            break; // nothing left to split on
        }
        // Leaf values, shrunk by the learning rate: the median residual of the
        // leaf's rows (L1), or a Newton step on the log-loss (capped).
        let lr = cfg.learning_rate as f32;
        let values: Vec<f32> = match cfg.loss {
            Loss::L1 => {
                let mut per_leaf: Vec<Vec<f32>> = vec![Vec::new(); n_leaves];
                for &i in &rows {
                    per_leaf[leaf_of[i]].push(y[i] - pred[i]);
                }
                per_leaf
                    .iter_mut()
                    .map(|v| {
                        if v.len() < cfg.min_leaf {
                            0.0
                        } else {
                            median(v) * lr
                        }
                    })
                    .collect()
            }
            Loss::Logistic => {
                let mut g = vec![0f64; n_leaves];
                let mut h = vec![0f64; n_leaves];
                let mut c = vec![0usize; n_leaves];
                for &i in &rows {
                    let p = sigmoid(pred[i]) as f64;
                    g[leaf_of[i]] += grad[i];
                    h[leaf_of[i]] += p * (1.0 - p);
                    c[leaf_of[i]] += 1;
                }
                (0..n_leaves)
                    .map(|l| {
                        if c[l] < cfg.min_leaf {
                            0.0
                        } else {
                            ((g[l] / (h[l] + 1e-6)).clamp(-4.0, 4.0) as f32) * lr
                        }
                    })
                    .collect()
            }
        };
        for &(f, k) in &levels {
            model.feature.push(f as i64);
            model.threshold.push(edges[f][k]);
        }
        model.leaf.extend_from_slice(&values);
        let t = model.trees() - 1;
        for i in 0..n {
            pred[i] += values[model.leaf_index(t, &x[i * nf..(i + 1) * nf])];
        }
        let mut mae = 0.0;
        for i in 0..nv {
            pred_v[i] += values[model.leaf_index(t, &xv[i * nf..(i + 1) * nf])];
            mae += row_loss(cfg.loss, yv[i], pred_v[i]);
        }
        let mae = mae / nv.max(1) as f64;
        let better = mae < best.0;
        if better {
            best = (mae, tree);
        }
        if tree % 25 == 0 {
            report(tree, mae, better);
        }
        if tree - best.1 >= cfg.patience {
            break;
        }
    }
    let keep = if cfg.keep_all { model.trees() } else { best.1 };
    model.feature.truncate(keep * depth);
    model.threshold.truncate(keep * depth);
    model.leaf.truncate(keep * n_leaves);
    model
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
        let mut r = Rng::new(seed);
        let mut x = Vec::new();
        let mut y = Vec::new();
        for _ in 0..n {
            let a = r.f64() as f32;
            let b = r.f64() as f32;
            let c = r.f64() as f32;
            x.extend_from_slice(&[a, b, c]);
            // A step in a, a slope in b, nothing from c, heavy-tailed noise.
            let noise = (r.normal() * 0.05) as f32 * if r.f64() < 0.05 { 20.0 } else { 1.0 };
            y.push(if a > 0.5 { 3.0 } else { 0.0 } + 2.0 * b + noise);
        }
        (x, y)
    }

    #[test]
    fn learns_a_step_and_a_slope_and_matches_its_tensor_form() {
        let (x, y) = data(4000, 1);
        let (xv, yv) = data(1000, 2);
        let cfg = GbtConfig {
            max_trees: 400,
            depth: 4,
            learning_rate: 0.1,
            ..Default::default()
        };
        let m = fit(&x, &y, &xv, &yv, 3, &cfg, |_, _, _| {});
        assert!(m.trees() > 10, "{} trees", m.trees());
        let mae: f64 = (0..yv.len())
            .map(|i| (yv[i] - m.predict_row(&xv[i * 3..i * 3 + 3])).abs() as f64)
            .sum::<f64>()
            / yv.len() as f64;
        // The noise alone has a MAE of about 0.06; the target spans 0-5.
        assert!(mae < 0.12, "validation MAE {mae}");
        // c never matters: an oblivious tree must still split on something at
        // every level, but c should be chosen far less than either real input.
        let count = |k: i64| m.feature.iter().filter(|f| **f == k).count();
        let (on_a, on_b, on_c) = (count(0), count(1), count(2));
        assert!(
            on_c < on_a.min(on_b),
            "splits on a {on_a}, b {on_b}, noise {on_c}"
        );
        let c = m.compile();
        let t = c.forward(&Tensor::from_slice(&xv).reshape([-1, 3]));
        let v: Vec<f32> = Vec::try_from(t).unwrap();
        for i in 0..yv.len() {
            let a = m.predict_row(&xv[i * 3..i * 3 + 3]);
            assert!((v[i] - a).abs() < 1e-4, "row {i}: tensor {} row {a}", v[i]);
        }
        // Traced at batch 3, run at another batch size: same numbers.
        let example = Tensor::from_slice(&xv[..9]).reshape([3, 3]);
        let traced = tch::CModule::create_by_tracing("T", "forward", &[example], &mut |i| {
            vec![c.forward(&i[0])]
        })
        .unwrap();
        let all = Tensor::from_slice(&xv).reshape([-1, 3]);
        let t = traced.forward_ts(&[&all]).unwrap();
        let diff = (t - c.forward(&all)).abs().max().double_value(&[]);
        assert!(diff < 1e-4, "traced differs by {diff}");
    }
}
