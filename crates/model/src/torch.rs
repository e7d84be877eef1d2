//! The forecasting model at run time (MODEL.md): load a TorchScript module and
//! its `model.json`, check them against the running configuration, and run it as
//! the engine's [`SequenceModel`] (the engine's [`Predictor`] keeps the ring of
//! the last 15 windows).
//!
//! Owns the tch module, which is `Send` but not `Sync`: one thread (the
//! inference thread) owns a [`Forecaster`]. libtorch runs on one thread on purpose: a batch-1
//! forecast (LSTM or trees) is slower with a thread pool on a 2-core box. Training is in
//! [`crate::train`].

pub use engine::forecast::{Forecast, LOOKBACK, N_FEATURES};
use engine::forecast::{PredictError, Predictor, SequenceModel, WindowWidth};
use engine::window::FEATURE_NAMES;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tch::{CModule, Kind, Tensor};

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
    /// What the training windows looked like, for the input-shift warning
    /// (absent in models trained before it existed: no warning then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_reference: Option<engine::shift::InputReference>,
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

/// The default model directory: `model_files/` in the working directory, else
/// `share/netforecast/model_files` of the prefix the binary is installed in
/// (`scripts/install.sh`), else in the checkout the binary was built from, else
/// two levels above the binary's directory (`target/release/` in a checkout).
pub fn default_model_dir() -> PathBuf {
    let cwd = PathBuf::from("model_files");
    let installed = std::env::current_exe().ok().and_then(|e| {
        e.parent()?
            .parent()
            .map(|d| d.join("share/netforecast/model_files"))
    });
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../model_files");
    let beside_exe = std::env::current_exe().ok().and_then(|e| {
        e.parent()?
            .parent()?
            .parent()
            .map(|d| d.join("model_files"))
    });
    [Some(cwd.clone()), installed, Some(checkout), beside_exe]
        .into_iter()
        .flatten()
        .find(|d| d.join(MODULE_FILE).exists())
        .unwrap_or(cwd)
}

/// Read and check `model.json` against the running window width.
pub fn read_meta(dir: &Path, width: WindowWidth) -> Result<ModelMeta, ModelError> {
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
    if meta.window_ms != width.ms() {
        return Err(mismatch(
            "window_ms",
            width.ms().to_string(),
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

/// Most sequences in one call of the module.
pub const CHUNK: usize = 64;

/// A loaded TorchScript module and its `model.json`: a [`SequenceModel`].
pub struct TorchModel {
    module: CModule,
    /// What the module expects and where it came from.
    pub meta: ModelMeta,
    /// The trees walked natively for every window (a GBT directory with
    /// `trees.bin` that agrees with the module on the probe batch).
    native: Option<crate::native::NativeGbt>,
}

/// The shipped kind of forecaster: the TorchScript model behind the engine's
/// 15-window [`Predictor`].
pub type Forecaster = Predictor<TorchModel>;

/// Load the model directory `dir` and wrap it in a [`Predictor`] for `width`.
pub fn load_predictor(dir: &Path, width: WindowWidth) -> Result<Forecaster, ModelError> {
    Ok(Predictor::new(TorchModel::load(dir, width)?, width))
}

impl TorchModel {
    /// Load `dir` (MODEL.md layout) and check it fits a run with `width`.
    pub fn load(dir: &Path, width: WindowWidth) -> Result<Self, ModelError> {
        let meta = read_meta(dir, width)?;
        let path = dir.join(MODULE_FILE);
        tch::set_num_threads(1);
        let module = CModule::load(&path).map_err(|e| ModelError::Load {
            path: path.clone(),
            detail: first_line(&e.to_string()),
        })?;
        let mut m = TorchModel {
            module,
            meta,
            native: None,
        };
        // Prove the signature on a zero batch of two before the first real window.
        let out = m.run(&Tensor::zeros(
            [2, LOOKBACK as i64, N_FEATURES as i64],
            (Kind::Float, tch::Device::Cpu),
        ));
        match out {
            Ok(t) if t.size() == [2, 2] && t.kind() == Kind::Float => {
                m.native = m.check_native(dir);
                Ok(m)
            }
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

    /// The native trees of `dir`, if it has them and they give the module's
    /// answers on a probe batch; a warning says why not when it has them.
    fn check_native(&self, dir: &Path) -> Option<crate::native::NativeGbt> {
        let native =
            match crate::native::NativeGbt::load(dir, f64::from(self.meta.window_ms) / 1000.0)? {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(
                        "{}: {e}; every window goes through the TorchScript module",
                        dir.join(crate::native::TREES_FILE).display()
                    );
                    return None;
                }
            };
        let probe = probe_batch(PROBE);
        // In chunks, as `forward` calls the module for a large batch.
        let mut want: Vec<f32> = Vec::with_capacity(2 * PROBE);
        for chunk in probe.split(CHUNK as i64, 0) {
            let t = self.run(&chunk).ok()?;
            want.extend(Vec::<f32>::try_from(t.reshape([-1])).ok()?);
        }
        let seqs = Vec::<f32>::try_from(probe.reshape([-1])).ok()?;
        let got = native.forward(&seqs, PROBE);
        let worst = got
            .iter()
            .zip(want.chunks_exact(2))
            .map(|((t, p), w)| {
                let dt = (t - w[0]).abs() / (1e-3 + 1e-5 * w[0].abs());
                let dp = (p - w[1]).abs() / 1e-5;
                dt.max(dp)
            })
            .fold(
                0f32,
                |m, d| if d.is_nan() { f32::INFINITY } else { m.max(d) },
            );
        if worst > 1.0 {
            tracing::warn!(
                "{} does not give the module's answers ({worst:.1}x the rounding allowed); every window goes through the TorchScript module",
                dir.join(crate::native::TREES_FILE).display()
            );
            return None;
        }
        Some(native)
    }

    /// Whether the trees are walked natively (checked at load).
    pub fn native(&self) -> bool {
        self.native.is_some()
    }

    /// Forward a batch `[B, 15, 9]` -> `[B, 2]`, fallibly.
    pub fn run(&self, x: &Tensor) -> Result<Tensor, ModelError> {
        let _guard = tch::no_grad_guard();
        // Without the graph executor's profiling runs and re-optimisation a
        // run starts about 50 ms sooner (replay of a 412 k-packet capture,
        // 16 interleaved runs: median 0.45 s against 0.51 s); later calls
        // cost the same within noise and give the same bits
        // (benches/README.md). The switch is per thread: set on every call.
        tch::jit::set_graph_executor_optimize(false);
        self.module
            .forward_ts(&[x])
            .map_err(|e| ModelError::Inference(first_line(&e.to_string())))
    }
}

impl SequenceModel for TorchModel {
    fn forward(&mut self, seqs: &[f32], n: usize) -> Result<Vec<(f64, f64)>, PredictError> {
        let stride = LOOKBACK * N_FEATURES;
        if let Some(native) = &self.native {
            return Ok(native
                .forward(&seqs[..n * stride], n)
                .into_iter()
                .map(|(t, p)| (f64::from(t), f64::from(p)))
                .collect());
        }
        // Large batches go in chunks: per sequence, a batch of 32-64 costs a
        // third of a batch of 1,000, whose intermediates leave the cache
        // (benches/README.md "Inference").
        let mut out = Vec::with_capacity(n);
        for chunk in seqs[..n * stride].chunks(CHUNK * stride) {
            let b = chunk.len() / stride;
            let x =
                Tensor::from_slice(chunk).reshape([b as i64, LOOKBACK as i64, N_FEATURES as i64]);
            let y = self.run(&x).map_err(|e| PredictError(e.to_string()))?;
            let vals: Vec<f32> =
                Vec::<f32>::try_from(y.reshape([-1])).map_err(|e| PredictError(e.to_string()))?;
            out.extend(vals.chunks_exact(2).map(|p| (p[0] as f64, p[1] as f64)));
        }
        Ok(out)
    }

    fn version(&self) -> &str {
        &self.meta.model_version
    }

    fn threshold_mbps(&self) -> f64 {
        self.meta.threshold_mbps
    }

    fn input_reference(&self) -> Option<&engine::shift::InputReference> {
        self.meta.input_reference.as_ref()
    }

    fn batch_invariant(&self) -> bool {
        // The native walk answers each window from its own row.
        self.native.is_some()
    }
}

/// Sequences in the probe batch.
const PROBE: usize = 64;

/// `n` sequences that look like traffic (busy, idle and between, with RTTs,
/// bytes in flight and gaps), for checking the native trees against the module.
pub(crate) fn probe_batch(n: usize) -> Tensor {
    let mut r = engine::rng::Rng::new(0x7EE5);
    let mut v = Vec::with_capacity(n * LOOKBACK * N_FEATURES);
    for _ in 0..n {
        let level = r.f64() * 120.0;
        let silent = r.f64() < 0.1;
        for _ in 0..LOOKBACK {
            let thr = if silent && r.f64() < 0.7 {
                0.0
            } else {
                (level * (0.5 + r.f64())).max(0.0)
            };
            let size = thr * 1e6 / 8.0 * 0.05;
            v.extend(
                [
                    size,
                    r.f64() * 0.2,
                    r.f64() * 2e6,
                    r.f64() * 0.01,
                    r.f64() * 0.01,
                    thr,
                    (r.f64() - 0.5) * 0.02,
                    (r.f64() - 0.5) * 2e5,
                    f64::from(u8::from(thr == 0.0)),
                ]
                .map(|x| x as f32),
            );
        }
    }
    Tensor::from_slice(&v).reshape([n as i64, LOOKBACK as i64, N_FEATURES as i64])
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").trim().to_owned()
}
