//! The forecasting model at run time (MODEL.md): load a TorchScript module and
//! its `model.json`, check them against the running configuration, keep the ring
//! of the last 15 windows and forecast the next window.
//!
//! Owns the tch module, which is not `Sync`: one thread (the inference thread)
//! owns a [`Forecaster`]. libtorch runs on one thread on purpose: a batch-1
//! forecast (LSTM or trees) is slower with a thread pool on a 2-core box. Training is in
//! [`crate::train`].

use crate::window::{FEATURE_NAMES, WindowRow};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use tch::{CModule, Kind, Tensor};

/// Windows of history per forecast (FEATURES.md "Forecast target").
pub const LOOKBACK: usize = 15;
pub const N_FEATURES: usize = 9;
pub const MODULE_FILE: &str = "netforecast.pt";
pub const META_FILE: &str = "model.json";

/// `model.json` (MODEL.md): what the module expects and where it came from.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelMeta {
    pub feature_names: Vec<String>,
    pub window_ms: u32,
    pub lookback: usize,
    pub threshold_mbps: f64,
    /// Short identifier written with every forecast (e.g. to InfluxDB).
    #[serde(default)]
    pub model_version: String,
    #[serde(default)]
    pub architecture: serde_json::Value,
    #[serde(default)]
    pub training: serde_json::Value,
    #[serde(default)]
    pub validation: serde_json::Value,
    #[serde(default)]
    pub libtorch_version: String,
    #[serde(default)]
    pub created: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(
        "no model at {path}: expected {MODULE_FILE} and {META_FILE} there; give --model DIR or run `netforecast train`"
    )]
    NotFound { path: PathBuf },
    #[error("cannot read {path}: {detail}")]
    Meta { path: PathBuf, detail: String },
    #[error(
        "the model at {path} does not fit this run: {what} is {found} in model.json but {expected} here; retrain or use a matching --window-ms"
    )]
    Mismatch {
        path: PathBuf,
        what: &'static str,
        expected: String,
        found: String,
    },
    #[error("cannot load the TorchScript module {path}: {detail}")]
    Load { path: PathBuf, detail: String },
    #[error(
        "the module {path} does not have the netforecast signature (float32 [B,15,9] -> [B,2]): {detail}"
    )]
    Signature { path: PathBuf, detail: String },
    #[error("inference failed: {0}")]
    Inference(String),
}

/// One forecast for the window after the last one pushed.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Forecast {
    /// Start of the window this forecast is for (`t+1`), ns since the epoch.
    pub target_start_ns: i64,
    pub throughput_mbps: f64,
    pub congestion_prob: f64,
}

/// The default model directory: `model_files/` in the working directory, else in
/// the checkout the binary was built from, else two levels above the binary's
/// directory (`target/release/` inside a checkout).
pub fn default_model_dir() -> PathBuf {
    let cwd = PathBuf::from("model_files");
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("../model_files");
    let beside_exe = std::env::current_exe().ok().and_then(|e| {
        e.parent()?
            .parent()?
            .parent()
            .map(|d| d.join("model_files"))
    });
    [Some(cwd.clone()), Some(checkout), beside_exe]
        .into_iter()
        .flatten()
        .find(|d| d.join(MODULE_FILE).exists())
        .unwrap_or(cwd)
}

/// Read and check `model.json` against the running window width.
pub fn read_meta(dir: &Path, window_ms: u32) -> Result<ModelMeta, ModelError> {
    let meta_path = dir.join(META_FILE);
    if !dir.join(MODULE_FILE).exists() || !meta_path.exists() {
        return Err(ModelError::NotFound {
            path: dir.to_owned(),
        });
    }
    let text = std::fs::read_to_string(&meta_path).map_err(|e| ModelError::Meta {
        path: meta_path.clone(),
        detail: e.to_string(),
    })?;
    let meta: ModelMeta = serde_json::from_str(&text).map_err(|e| ModelError::Meta {
        path: meta_path.clone(),
        detail: e.to_string(),
    })?;
    let names: Vec<String> = FEATURE_NAMES.iter().map(|s| s.to_string()).collect();
    let mismatch = |what, expected: String, found: String| ModelError::Mismatch {
        path: meta_path.clone(),
        what,
        expected,
        found,
    };
    if meta.feature_names != names {
        let mut sorted_meta = meta.feature_names.clone();
        sorted_meta.sort();
        let mut sorted_ours = names.clone();
        sorted_ours.sort();
        let what = if sorted_meta == sorted_ours {
            "the feature order"
        } else {
            "the feature names"
        };
        return Err(mismatch(
            what,
            names.join(","),
            meta.feature_names.join(","),
        ));
    }
    if meta.window_ms != window_ms {
        return Err(mismatch(
            "window_ms",
            window_ms.to_string(),
            meta.window_ms.to_string(),
        ));
    }
    if meta.lookback != LOOKBACK {
        return Err(mismatch(
            "lookback",
            LOOKBACK.to_string(),
            meta.lookback.to_string(),
        ));
    }
    if !(meta.threshold_mbps.is_finite() && meta.threshold_mbps > 0.0) {
        return Err(mismatch(
            "threshold_mbps",
            "a positive number".into(),
            meta.threshold_mbps.to_string(),
        ));
    }
    Ok(meta)
}

/// A loaded module plus its ring of recent windows.
pub struct Forecaster {
    module: CModule,
    pub meta: ModelMeta,
    ring: VecDeque<[f32; N_FEATURES]>,
    window_ns: i64,
    /// Feature values that were NaN or infinite and were replaced by 0.
    pub nonfinite_features: u64,
}

impl Forecaster {
    /// Load `dir` (MODEL.md layout) and check it fits a run with `window_ms`.
    pub fn load(dir: &Path, window_ms: u32) -> Result<Self, ModelError> {
        let meta = read_meta(dir, window_ms)?;
        let path = dir.join(MODULE_FILE);
        tch::set_num_threads(1);
        let module = CModule::load(&path).map_err(|e| ModelError::Load {
            path: path.clone(),
            detail: first_line(&e.to_string()),
        })?;
        let f = Forecaster {
            module,
            meta,
            ring: VecDeque::with_capacity(LOOKBACK),
            window_ns: window_ms as i64 * 1_000_000,
            nonfinite_features: 0,
        };
        // Prove the signature on a zero batch of two before the first real window.
        let out = f.run(&Tensor::zeros(
            [2, LOOKBACK as i64, N_FEATURES as i64],
            (Kind::Float, tch::Device::Cpu),
        ));
        match out {
            Ok(t) if t.size() == [2, 2] && t.kind() == Kind::Float => Ok(f),
            Ok(t) => Err(ModelError::Signature {
                path,
                detail: format!("output is {:?} {:?}", t.kind(), t.size()),
            }),
            Err(e) => Err(ModelError::Signature {
                path,
                detail: e.to_string(),
            }),
        }
    }

    /// Forward a batch `[B, 15, 9]` -> `[B, 2]`, fallibly.
    pub fn run(&self, x: &Tensor) -> Result<Tensor, ModelError> {
        let _guard = tch::no_grad_guard();
        self.module
            .forward_ts(&[x])
            .map_err(|e| ModelError::Inference(first_line(&e.to_string())))
    }

    /// Forget the history (a new capture starts).
    pub fn reset(&mut self) {
        self.ring.clear();
    }

    /// Add window `t`; once 15 windows are known, forecast window `t+1`.
    pub fn push(&mut self, row: &WindowRow) -> Result<Option<Forecast>, ModelError> {
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
            return Ok(None);
        }
        let flat: Vec<f32> = self.ring.iter().flatten().copied().collect();
        let x = Tensor::from_slice(&flat).reshape([1, LOOKBACK as i64, N_FEATURES as i64]);
        let out = self.run(&x)?;
        let vals: Vec<f32> = Vec::<f32>::try_from(out.reshape([-1]))
            .map_err(|e| ModelError::Inference(e.to_string()))?;
        let (thr, prob) = (vals[0] as f64, vals[1] as f64);
        Ok(Some(Forecast {
            target_start_ns: row.start_ns + self.window_ns,
            throughput_mbps: if thr.is_finite() { thr.max(0.0) } else { 0.0 },
            congestion_prob: if prob.is_finite() {
                prob.clamp(0.0, 1.0)
            } else {
                0.5
            },
        }))
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").trim().to_owned()
}
