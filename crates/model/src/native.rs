//! The boosted-trees model evaluated natively, at every batch size.
//!
//! A traced GBT module spends its time in tensor operations: at batch 1 some
//! 110 of them (about 90 for the window statistics, 20 for the ensembles):
//! p50 222-387 us, p99 441-600 us for a 15x9 input on this machine (four
//! runs of `cargo bench -p netforecast-model --bench model`, 2026-12-03); at
//! batch 1,000 in chunks of 64, about 60 us a sequence over
//! `[B, trees x depth]` intermediates. Walking the same trees in plain Rust
//! costs 18-31 us a sequence (p50) at batch 1, 32 and 1,000 in those runs. `trees.bin` beside the module
//! holds the trees (written by `netforecast train`, or for an older directory
//! by `scripts/gbt-trees-from-pt.py`); their inputs are computed here by
//! [`row_features`] with the f32 operations of the tensor code the module was
//! traced from ([`crate::train::gbt_features`]), in the same order, so the
//! trees read the same bits (tested on every sequence of the committed corpus).
//! Only the sum over the trees rounds differently: one row's trees are added
//! in order here, in libtorch's cascade there (about 1e-6 relative).
//!
//! The native evaluator is only an accelerator of the TorchScript module, never
//! a model of its own: [`crate::torch::TorchModel::load`] runs both on a probe
//! batch and uses it only when every output agrees (to float rounding). Each
//! row's answer depends on that row alone, so a batched replay gives the bits
//! of one window at a time.
//!
//! `trees.bin`, little-endian: `NFGBT1\0\0`, u32 ensembles (2), then for each
//! ensemble u32 depth, u32 trees, f32 base, u32 feature `[trees x depth]`, f32
//! threshold `[trees x depth]`, f32 leaf `[trees x 2^depth]`. The first
//! ensemble adds to the last window's throughput (then at least 0); the second
//! is the congestion logit.

use crate::gbt::Gbt;
use crate::torch::{LOOKBACK, N_FEATURES};
use crate::train::{BIF, BIF_GRAD, DELAY, IAT_MEAN, IAT_STD, SILENT, THR};
use std::path::Path;

/// The file beside the module.
pub const TREES_FILE: &str = "trees.bin";

/// Columns of [`row_features`]: the inputs of the trees.
pub const ROW_FEATURES: usize = 37;

/// ATen's `clamp_min` on f32: NaN and -0 pass through.
fn clamp_min(x: f32, lo: f32) -> f32 {
    if x < lo { lo } else { x }
}

/// ATen's `clamp` on f32 (the lower bound first; NaN passes through).
fn clamp(x: f32, lo: f32, hi: f32) -> f32 {
    let m = clamp_min(x, lo);
    if m > hi { hi } else { m }
}

/// ATen's `minimum` on f32: NaN if either is.
fn minimum(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else if b < a {
        b
    } else {
        a
    }
}

/// Whether libtorch's CPU sum of a row of 15 contiguous f32 adds the tail
/// past a first vector of eight lanes first, then the lanes in order (AVX2
/// and the generic kernels), or all 15 in order (vectors of 16: AVX-512).
/// Asked of libtorch once, with a row whose two orders give 7 and 0.
fn sum_tail_first() -> bool {
    static ORDER: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ORDER.get_or_init(|| {
        let big = 16_777_216f32; // 2^24: adding 1 to it is lost
        let mut v = [0f32; LOOKBACK];
        v[0] = big;
        v[1..8].fill(1.0);
        v[8] = -big;
        let _g = tch::no_grad_guard();
        let s = tch::Tensor::from_slice(&v)
            .reshape([1, LOOKBACK as i64])
            .sum_dim_intlist(&[1i64][..], false, None::<tch::Kind>)
            .double_value(&[0]);
        s != 0.0
    })
}

/// A sum over the 15 history windows in the order libtorch's CPU sum takes
/// ([`sum_tail_first`]), so the result has its bits.
fn sum15(v: &[f32; LOOKBACK], tail_first: bool) -> f32 {
    let mut acc = 0f32;
    if tail_first {
        for x in v[8..].iter().chain(&v[..8]) {
            acc += x;
        }
    } else {
        for x in v {
            acc += x;
        }
    }
    acc
}

/// The trees' inputs of one sequence (`LOOKBACK * N_FEATURES` values, oldest
/// window first): what [`crate::train::gbt_features`] computes for a batch,
/// with the same f32 operations in the same order, so the same bits (the
/// tests hold it to that on the probe batch and on lab windows), without the
/// ~90 tensor operations, each dispatched apart, that the traced features are.
pub fn row_features(seq: &[f32], window_s: f64) -> [f32; ROW_FEATURES] {
    let x = |j: usize, k: usize| seq[j * N_FEATURES + k];
    let l = LOOKBACK;
    let h: [f32; LOOKBACK] = std::array::from_fn(|j| clamp_min(x(j, THR), 0.0));
    let b = h[l - 1];
    let rtt = |j: usize| x(j, DELAY) * 1000.0;
    let mut f = [0f32; ROW_FEATURES];
    // engineered(): 14 + 1 + 1 + 4 + 5 + 1 + 5 + 1 + 1 = 33 columns.
    for j in 0..l - 1 {
        f[j] = h[j] - b;
    }
    f[14] = b;
    let rtt_last = rtt(l - 1);
    f[15] = rtt_last;
    for i in 0..4 {
        f[16 + i] = rtt(l - 5 + i) - rtt_last;
    }
    for i in 0..5 {
        f[20 + i] = x(l - 5 + i, BIF_GRAD) / 1e4;
    }
    f[25] = x(l - 1, BIF) / 1e4;
    for i in 0..5 {
        f[26 + i] = x(l - 5 + i, IAT_MEAN) * 1000.0;
    }
    f[31] = x(l - 1, IAT_STD) * 1000.0;
    f[32] = x(l - 1, SILENT);
    // ack_clock(): four forecasts, each minus the last throughput.
    let lf = l as f32;
    let tail_first = sum_tail_first();
    let rtt0 = clamp_min(x(l - 1, DELAY), 0.0);
    let r = clamp(rtt0 / window_s as f32, 0.0, lf);
    let at = |p: f32| -> f32 {
        let pc = clamp(p, 0.0, lf - 1.0);
        let terms: [f32; LOOKBACK] = std::array::from_fn(|j| {
            let w = clamp_min(-(pc - j as f32).abs() + 1.0, 0.0);
            h[j] * w
        });
        sum15(&terms, tail_first)
    };
    let lag1 = at(-r + lf);
    let lag2 = at(-(r * 2.0) + lf);
    let rr = clamp(r, 1.0, lf);
    let terms: [f32; LOOKBACK] = std::array::from_fn(|j| {
        let cover = clamp((j as f32 + rr) + (1.0 - lf), 0.0, 1.0) / rr;
        h[j] * cover
    });
    let rtt_mean = sum15(&terms, tail_first);
    let peak = h.iter().fold(f32::NEG_INFINITY, |m, v| {
        if v.is_nan() || m.is_nan() {
            f32::NAN
        } else {
            m.max(*v)
        }
    });
    let ceiling = peak * 4.0 + 1.0;
    let allowed = minimum(
        clamp_min(x(l - 1, BIF), 0.0) * (8e-6f64 as f32) / clamp_min(rtt0, 1e-3f64 as f32),
        ceiling,
    );
    let allowed = if rtt0 > 0.0 { allowed } else { b };
    f[33] = lag1 - b;
    f[34] = lag2 - b;
    f[35] = rtt_mean - b;
    f[36] = allowed - b;
    f
}

/// The two ensembles of a GBT model directory.
pub struct NativeGbt {
    regressor: Gbt,
    classifier: Gbt,
    window_s: f64,
}

/// Reads little-endian values off a byte slice.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if self.0.len() < n {
            return Err("it ends early".into());
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().unwrap_or_default(),
        ))
    }
    fn f32s(&mut self, n: usize) -> Result<Vec<f32>, String> {
        Ok(self
            .take(n * 4)?
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

/// `trees.bin` of a throughput and a congestion ensemble.
pub fn encode(regressor: &Gbt, classifier: &Gbt) -> Vec<u8> {
    let mut b = b"NFGBT1\0\0".to_vec();
    b.extend(2u32.to_le_bytes());
    for g in [regressor, classifier] {
        b.extend((g.depth as u32).to_le_bytes());
        b.extend((g.trees() as u32).to_le_bytes());
        b.extend(g.base.to_le_bytes());
        b.extend(g.feature.iter().flat_map(|f| (*f as u32).to_le_bytes()));
        b.extend(g.threshold.iter().flat_map(|t| t.to_le_bytes()));
        b.extend(g.leaf.iter().flat_map(|l| l.to_le_bytes()));
    }
    b
}

impl NativeGbt {
    /// The trees of `dir`, if it has `trees.bin`, for windows of `window_s`.
    pub fn load(dir: &Path, window_s: f64) -> Option<Result<Self, String>> {
        let bytes = std::fs::read(dir.join(TREES_FILE)).ok()?;
        Some(Self::parse(&bytes, window_s))
    }

    fn parse(bytes: &[u8], window_s: f64) -> Result<Self, String> {
        let mut r = Reader(bytes);
        if r.take(8)? != b"NFGBT1\0\0" {
            return Err("it does not start with NFGBT1".into());
        }
        if r.u32()? != 2 {
            return Err("it does not hold two ensembles".into());
        }
        let mut ens = Vec::with_capacity(2);
        for _ in 0..2 {
            let depth = r.u32()? as usize;
            let trees = r.u32()? as usize;
            if !(1..=10).contains(&depth) || trees > 100_000 {
                return Err(format!("{trees} trees of depth {depth}"));
            }
            let base = f32::from_le_bytes(r.take(4)?.try_into().unwrap_or_default());
            let feature: Vec<i64> = (0..trees * depth)
                .map(|_| r.u32().map(i64::from))
                .collect::<Result<_, _>>()?;
            if feature.iter().any(|f| *f as usize >= ROW_FEATURES) {
                return Err(format!(
                    "a tree reads a feature beyond the {ROW_FEATURES} there are"
                ));
            }
            let threshold = r.f32s(trees * depth)?;
            let leaf = r.f32s(trees << depth)?;
            ens.push(Gbt {
                depth,
                base,
                feature,
                threshold,
                leaf,
            });
        }
        if !r.0.is_empty() {
            return Err("it has bytes after the trees".into());
        }
        let classifier = ens.pop().unwrap_or_default();
        let regressor = ens.pop().unwrap_or_default();
        Ok(NativeGbt {
            regressor,
            classifier,
            window_s,
        })
    }

    /// (throughput, congestion probability) of each of the `n` sequences of
    /// `seqs` (`[n, 15, 9]` row-major). Each row's answer depends on that
    /// row alone, whatever the batch: its trees are summed in their order.
    pub fn forward(&self, seqs: &[f32], n: usize) -> Vec<(f32, f32)> {
        let rows: Vec<[f32; ROW_FEATURES]> = seqs
            .chunks_exact(LOOKBACK * N_FEATURES)
            .take(n)
            .map(|seq| row_features(seq, self.window_s))
            .collect();
        let change = self.regressor.leaf_sums(&rows);
        let logit = self.classifier.leaf_sums(&rows);
        rows.iter()
            .zip(change.iter().zip(&logit))
            .map(|(f, (c, z))| {
                // The last window's throughput, at least 0, is column 14.
                let thr = clamp_min(f[14] + (self.regressor.base + c), 0.0);
                let z = self.classifier.base + z;
                (thr, 1.0 / (1.0 + (-z).exp()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::forecast::WindowWidth;
    use tch::Tensor;

    /// `row_features` gives the tensor code's bits on every sequence.
    fn assert_same_bits(seqs: &[f32], window_s: f64) {
        let bad = differing(seqs, window_s);
        let n = seqs.len() / (LOOKBACK * N_FEATURES);
        assert!(
            bad.is_empty(),
            "window {window_s}: {} of {n} x {ROW_FEATURES} differ, first {:?}",
            bad.len(),
            &bad[..bad.len().min(5)]
        );
    }

    /// Rows where `row_features` and the tensor code differ in any bit.
    fn differing(seqs: &[f32], window_s: f64) -> Vec<(usize, usize, f32, f32)> {
        let stride = LOOKBACK * N_FEATURES;
        let n = seqs.len() / stride;
        let mut bad = Vec::new();
        for start in (0..n).step_by(4096) {
            let m = (n - start).min(4096);
            let chunk = &seqs[start * stride..(start + m) * stride];
            let x =
                Tensor::from_slice(chunk).reshape([m as i64, LOOKBACK as i64, N_FEATURES as i64]);
            let want: Vec<f32> = {
                let _g = tch::no_grad_guard();
                let f = crate::train::gbt_features(&x, &crate::train::positions(), window_s);
                assert_eq!(f.size()[1], ROW_FEATURES as i64);
                Vec::try_from(f.reshape([-1])).unwrap()
            };
            for (i, seq) in chunk.chunks_exact(stride).enumerate() {
                let got = row_features(seq, window_s);
                for (k, (g, w)) in got.iter().zip(&want[i * ROW_FEATURES..]).enumerate() {
                    if g.to_bits() != w.to_bits() && !(g.is_nan() && w.is_nan()) {
                        bad.push((start + i, k, *g, *w));
                    }
                }
            }
        }
        bad
    }

    #[test]
    fn row_features_have_the_tensor_codes_bits_on_the_probe_and_edges() {
        let probe = crate::torch::probe_batch(2048);
        let mut seqs: Vec<f32> = Vec::try_from(probe.reshape([-1])).unwrap();
        // Edges: no RTT, an RTT of a fraction of a window, of exactly 1, 2
        // and 7.5 windows, beyond the history; silence; negatives; -0; huge
        // bytes in flight against a tiny RTT (the ceiling).
        let stride = LOOKBACK * N_FEATURES;
        let base = seqs[..stride].to_vec();
        for rtt in [
            0.0, -0.0, 0.01, 0.05, 0.1, 0.375, 0.75, 0.76, 5.0, -1.0, 1e-4,
        ] {
            for (thr, bif) in [(0.0, 0.0), (-3.0, 1e9), (17.3, 1.5e5), (250.0, -5.0)] {
                let mut s = base.clone();
                for j in 0..LOOKBACK {
                    s[j * N_FEATURES + 1] = rtt;
                    s[j * N_FEATURES + 5] = thr * (j as f32 + 1.0) / 7.0;
                }
                s[(LOOKBACK - 1) * N_FEATURES + 2] = bif;
                seqs.extend(s);
            }
        }
        for w in [0.05, 0.01, 0.1, 0.25] {
            assert_same_bits(&seqs, w);
        }
    }

    /// Every sequence of the committed corpus's features, bit for bit: the
    /// windows the shipped trees were fitted on and the 3-flow traces added
    /// after them (model_files/README.md "Corpus").
    #[test]
    fn row_features_have_the_tensor_codes_bits_on_the_corpus() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/corpus/features");
        let width = WindowWidth::from_ms(50).unwrap();
        let mut seqs = Vec::new();
        let mut files = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let c = engine::csv::read_features_csv(&e.unwrap().path(), width).unwrap();
            files += 1;
            for seg in &c.segments {
                for t in LOOKBACK..=seg.len() {
                    for row in &seg[t - LOOKBACK..t] {
                        seqs.extend_from_slice(row);
                    }
                }
            }
        }
        let n = seqs.len() / (LOOKBACK * N_FEATURES);
        assert!(files >= 50 && n > 100_000, "{files} files, {n} sequences");
        assert_same_bits(&seqs, 0.05);
    }

    /// The shipped trees on 300 probe sequences: one batch gives each row's
    /// answer alone to the bit (the tree blocks keep every row's order), and
    /// the plain walk of [`Gbt::predict_row`] to float rounding.
    #[test]
    fn a_batch_gives_each_rows_answer_alone() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../model_files");
        let bytes = std::fs::read(dir.join(TREES_FILE)).unwrap();
        let native = NativeGbt::parse(&bytes, 0.05).unwrap();
        let probe = crate::torch::probe_batch(300);
        let seqs: Vec<f32> = Vec::try_from(probe.reshape([-1])).unwrap();
        let all = native.forward(&seqs, 300);
        let stride = LOOKBACK * N_FEATURES;
        for (i, seq) in seqs.chunks_exact(stride).enumerate() {
            let one = native.forward(seq, 1)[0];
            assert_eq!(one.0.to_bits(), all[i].0.to_bits(), "{i}");
            assert_eq!(one.1.to_bits(), all[i].1.to_bits(), "{i}");
            let f = row_features(seq, 0.05);
            let thr = (f[14] + native.regressor.predict_row(&f)).max(0.0);
            let p = 1.0 / (1.0 + (-native.classifier.predict_row(&f)).exp());
            assert!(
                (thr - one.0).abs() <= 1e-5 * thr.max(1.0),
                "{i}: {thr} vs {}",
                one.0
            );
            assert!((p - one.1).abs() <= 1e-6, "{i}: {p} vs {}", one.1);
        }
        assert!(all.iter().any(|(t, _)| *t > 1.0), "the probe has traffic");
    }

    #[test]
    fn a_damaged_file_is_refused_with_why() {
        let e = |b: &[u8]| NativeGbt::parse(b, 0.05).err().unwrap_or_default();
        assert!(e(b"NOPE").contains("ends early"));
        assert!(e(b"NFGBT2\0\0\x02\0\0\0").contains("NFGBT1"));
        let mut b = b"NFGBT1\0\0\x02\0\0\0".to_vec();
        b.extend(6u32.to_le_bytes());
        b.extend(1u32.to_le_bytes());
        b.extend(0f32.to_le_bytes());
        b.extend([40u32, 0, 0, 0, 0, 0].iter().flat_map(|v| v.to_le_bytes()));
        assert!(e(&b).contains("beyond the 37"), "{}", e(&b));
    }
}
