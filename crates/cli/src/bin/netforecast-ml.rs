//! `netforecast-ml`: the same command line as `netforecast`, with the model
//! package linked in, so it runs replay, train and the daemon. `netforecast`
//! hands those commands over by exec.

use engine::forecast::WindowWidth;
use netforecast::settings::TrainCmd;
use netforecast::{Backend, BackendError, BoxedModel};
use std::path::{Path, PathBuf};

/// TorchScript models and training, from the model package.
struct Torch;

impl Backend for Torch {
    fn load(&self, dir: &Path, width: WindowWidth) -> Result<BoxedModel, BackendError> {
        Ok(Box::new(model::torch::TorchModel::load(dir, width)?))
    }

    fn default_model_dir(&self) -> PathBuf {
        model::torch::default_model_dir()
    }

    fn train(&self, t: &TrainCmd) -> Result<(), BackendError> {
        let cfg = model::train::TrainConfig {
            inputs: t.inputs.clone(),
            out: t.out.clone(),
            window: WindowWidth::from_ms(t.window_ms).unwrap_or_default(),
            threshold_mbps: t.threshold_mbps,
            arch: t.arch.clone(),
            hidden: t
                .hidden
                .unwrap_or(if t.arch == "lstm-gbt" { 32 } else { 64 }),
            layers: t.layers.unwrap_or(if t.arch == "lstm-gbt" { 1 } else { 2 }),
            lstm_stride: t
                .lstm_stride
                .unwrap_or(if t.arch == "lstm-gbt" { 5 } else { 1 }),
            weight_decay: t.weight_decay,
            epochs: t.epochs,
            patience: t.patience,
            trees: t.trees.max(1),
            depth: t.depth.clamp(1, 10),
            gbt_lr: t.gbt_lr,
            batch: t.batch.max(1),
            lr: t.lr,
            seed: t.seed,
            val_frac: t.val_frac,
            val: t.val.clone(),
            command: std::iter::once("netforecast".to_string())
                .chain(std::env::args().skip(1))
                .collect::<Vec<_>>()
                .join(" "),
        };
        model::train::train(&cfg)?;
        Ok(())
    }
}

fn main() {
    let code = netforecast::main_code(Some(&|s, quiet| {
        netforecast::run_with_backend(s, &Torch, quiet)
    }));
    // Every output is closed and every thread joined by now. Skip the exit
    // handlers: libtorch's static destructors deregister its operators and
    // free their tables (what perf shows at exit), 50-110 ms of every replay
    // here (measured with and without) for nothing a process exit does not do.
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: _exit ends the process at once; nothing after it runs.
    unsafe { libc::_exit(i32::from(code)) }
}
