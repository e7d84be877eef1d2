//! The boosted-trees model evaluated natively for large batches.
//!
//! A traced GBT module spends its time in tensor ops over `[B, trees x depth]`
//! (select, compare, weigh, sum, take): about 60 us a sequence at batch 1,000
//! in chunks of 64, which caps a daemon at some 16,000 forecasts a second.
//! Walking the same trees in plain Rust costs a fifth of that. `trees.bin`
//! beside the module holds the trees (written by `netforecast train`, or for
//! an older directory by `scripts/gbt-trees-from-pt.py`); the inputs of the
//! trees are computed by the same tensor code the module was traced from
//! ([`crate::train::gbt_features`]), so both read identical numbers.
//!
//! The native evaluator is only an accelerator of the TorchScript module, never
//! a model of its own: [`crate::torch::TorchModel::load`] runs both on a probe
//! batch and uses it only when every output agrees (to float rounding).
//!
//! `trees.bin`, little-endian: `NFGBT1\0\0`, u32 ensembles (2), then for each
//! ensemble u32 depth, u32 trees, f32 base, u32 feature `[trees x depth]`, f32
//! threshold `[trees x depth]`, f32 leaf `[trees x 2^depth]`. The first
//! ensemble adds to the last window's throughput (then at least 0); the second
//! is the congestion logit.

use crate::gbt::Gbt;
use std::path::Path;
use tch::Tensor;

/// The file beside the module.
pub const TREES_FILE: &str = "trees.bin";

/// The two ensembles of a GBT model directory.
pub struct NativeGbt {
    regressor: Gbt,
    classifier: Gbt,
    window_s: f64,
    features: usize,
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
    /// The trees of `dir`, if it has `trees.bin`; inputs of `features`
    /// columns, windows of `window_s`.
    pub fn load(dir: &Path, window_s: f64, features: usize) -> Option<Result<Self, String>> {
        let bytes = std::fs::read(dir.join(TREES_FILE)).ok()?;
        Some(Self::parse(&bytes, window_s, features))
    }

    fn parse(bytes: &[u8], window_s: f64, features: usize) -> Result<Self, String> {
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
            if feature.iter().any(|f| *f as usize >= features) {
                return Err(format!(
                    "a tree reads a feature beyond the {features} there are"
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
            features,
        })
    }

    /// (throughput, congestion probability) of each sequence of `x` `[B, 15, 9]`.
    pub fn forward(&self, x: &Tensor) -> Result<Vec<(f32, f32)>, String> {
        let _g = tch::no_grad_guard();
        let f = crate::train::gbt_features(x, &crate::train::positions(), self.window_s);
        let last = crate::train::last_throughput(x);
        let f = Vec::<f32>::try_from(f.reshape([-1])).map_err(|e| e.to_string())?;
        let last = Vec::<f32>::try_from(last).map_err(|e| e.to_string())?;
        let nf = self.features;
        if f.len() != last.len() * nf {
            return Err(format!(
                "{} tree inputs for {} sequences of {nf}",
                f.len(),
                last.len()
            ));
        }
        Ok(f.chunks_exact(nf)
            .zip(&last)
            .map(|(row, last)| {
                let thr = (last + self.regressor.predict_row(row)).max(0.0);
                let z = self.classifier.predict_row(row);
                (thr, 1.0 / (1.0 + (-z).exp()))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_file_is_refused_with_why() {
        let e = |b: &[u8]| NativeGbt::parse(b, 0.05, 37).err().unwrap_or_default();
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
