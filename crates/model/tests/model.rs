//! The model stage: training exports a module that any batch size can run,
//! the loader refuses what does not fit, and bad values never reach the model.

use engine::csv::FEATURES_HEADER;
use engine::forecast::{SequenceModel, WindowWidth};
use engine::rng::Rng;
use engine::window::WindowRow;
use model::torch::{Forecaster, LOOKBACK, META_FILE, ModelError, N_FEATURES, load_predictor};
use model::train::{TrainConfig, TrainError, train};
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

/// A features CSV with a throughput that wanders between 5 and 40 Mbit/s.
fn synthetic_capture(dir: &Path, name: &str, seed: u64, n: usize) -> PathBuf {
    let mut thr: f64 = 20.0;
    write_capture(dir, name, seed, n, 0.02, |_, r| {
        thr = (thr + r.normal() * 2.0).clamp(5.0, 40.0);
        thr
    })
}

/// Write `n` windows whose throughput is `thr(k, rng)` and whose ACK RTT is
/// `rtt_s` (plus up to 10 ms).
fn write_capture(
    dir: &Path,
    name: &str,
    seed: u64,
    n: usize,
    rtt_s: f64,
    mut thr_of: impl FnMut(usize, &mut Rng) -> f64,
) -> PathBuf {
    let mut r = Rng::new(seed);
    let mut s = format!("{FEATURES_HEADER}\n");
    for k in 0..n {
        let thr = thr_of(k, &mut r);
        let size = (thr * 1e6 * 0.05 / 8.0).round();
        s += &format!(
            "{}.{:09},{},{},{},{},{},{},0,0,0\n",
            1_700_000_000 + (k / 20),
            (k % 20) * 50_000_000,
            size,
            rtt_s + r.f64() * 0.01,
            (size * 0.8).round(),
            0.0005,
            0.0001,
            size * 8.0 / 0.05 / 1e6
        );
    }
    let p = dir.join(name);
    std::fs::write(&p, s).unwrap();
    p
}

fn train_tiny(dir: &Path) -> PathBuf {
    train_tiny_arch(dir, "lstm")
}

fn train_tiny_arch(dir: &Path, arch: &str) -> PathBuf {
    let inputs: Vec<PathBuf> = (0..4)
        .map(|i| synthetic_capture(dir, &format!("c{i}.csv"), i, 400))
        .collect();
    let out = dir.join("model");
    train(&tiny_config(inputs, &out, arch)).expect("training succeeds");
    out
}

fn tiny_config(inputs: Vec<PathBuf>, out: &Path, arch: &str) -> TrainConfig {
    TrainConfig {
        inputs,
        out: out.to_owned(),
        window: WindowWidth::DEFAULT,
        threshold_mbps: 20.0,
        arch: arch.into(),
        hidden: 16,
        layers: if arch == "lstm-gbt" { 1 } else { 2 },
        lstm_stride: if arch == "lstm-gbt" { 5 } else { 1 },
        weight_decay: 1e-4,
        epochs: 3,
        patience: 3,
        trees: 60,
        depth: 4,
        gbt_lr: 0.1,
        batch: 64,
        lr: 1e-3,
        seed: 7,
        val_frac: 0.25,
        val: Vec::new(),
        command: "test".into(),
    }
}

fn row(start_ns: i64, v: f64) -> WindowRow {
    WindowRow {
        start_ns,
        size_bytes: 100_000,
        delay_s: v,
        bif_bytes: 50_000,
        iat_mean_s: 0.0005,
        iat_std_s: 0.0001,
        throughput_mbps: 16.0,
        delay_grad_s: 0.0,
        bif_grad_bytes: 0,
        is_silent: false,
        packets: 70,
        tcp: Default::default(),
    }
}

/// Run a random batch of `b` sequences; the output must be [b, 2] with a
/// throughput >= 0 and a probability in [0, 1]. Returns input and output.
fn run_checked(f: &Forecaster, b: i64) -> (Tensor, Tensor) {
    // Not Tensor::rand: libtorch's generator is global, and drawing from it here
    // while another test trains would change that training's initial weights.
    let mut r = Rng::new(b as u64);
    let v: Vec<f32> = (0..b as usize * LOOKBACK * N_FEATURES)
        .map(|_| (r.f64() * 30.0) as f32)
        .collect();
    let x = Tensor::from_slice(&v).reshape([b, LOOKBACK as i64, N_FEATURES as i64]);
    let out = f.model().run(&x).expect("runs");
    assert_eq!(out.size(), [b, 2], "batch {b}");
    let p = out.select(1, 1);
    assert!(p.min().double_value(&[]) >= 0.0 && p.max().double_value(&[]) <= 1.0);
    assert!(out.select(1, 0).min().double_value(&[]) >= 0.0);
    (x, out)
}

/// Two models trained with the same seed on the same data give the same
/// output at batch 1, 7 and 1000 (each run checked by [`run_checked`]).
fn same_at_every_batch_size(fa: &Forecaster, fb: &Forecaster) {
    for n in [1i64, 7, 1000] {
        let (x, out) = run_checked(fa, n);
        let d = (out - fb.model().run(&x).unwrap())
            .abs()
            .max()
            .double_value(&[]);
        assert_eq!(d, 0.0, "same seed, same data, same model (batch {n})");
    }
}

#[test]
fn trained_module_runs_any_batch_size_and_the_loader_checks_model_json() {
    let dir = tempfile::tempdir().unwrap();
    let model = train_tiny(dir.path());

    let mut f = load_predictor(&model, WindowWidth::from_ms(50).unwrap()).expect("loads");
    for b in [1i64, 7, 1000] {
        let _ = run_checked(&f, b);
    }

    // The ring: no forecast before 15 windows, then one per window, at t+1.
    let w = 50_000_000;
    for k in 0..LOOKBACK as i64 - 1 {
        assert!(f.push(&row(k * w, 0.03)).unwrap().is_none());
    }
    let fc = f
        .push(&row(14 * w, 0.03))
        .unwrap()
        .expect("a forecast after 15 windows");
    assert_eq!(fc.target_start_ns, 15 * w);
    // NaN and infinity are replaced before the model and counted.
    let fc = f.push(&row(15 * w, f64::NAN)).unwrap().unwrap();
    assert!(fc.throughput_mbps.is_finite() && fc.congestion_prob.is_finite());
    let fc = f.push(&row(16 * w, f64::INFINITY)).unwrap().unwrap();
    assert!(fc.throughput_mbps.is_finite());
    assert_eq!(f.nonfinite_features, 2);

    // A window width the model was not trained for is refused, naming it.
    match load_predictor(&model, WindowWidth::from_ms(100).unwrap()) {
        Err(ModelError::Mismatch { what, .. }) => assert_eq!(what, "window_ms"),
        other => panic!("expected a window_ms mismatch, got {:?}", other.err()),
    }
    // Feature order and lookback mismatches are refused too.
    let meta_path = model.join(META_FILE);
    let orig = std::fs::read_to_string(&meta_path).unwrap();
    std::fs::write(
        &meta_path,
        orig.replacen("\"size\",\n    \"delay\"", "\"delay\",\n    \"size\"", 1),
    )
    .unwrap();
    match load_predictor(&model, WindowWidth::from_ms(50).unwrap()) {
        Err(e @ ModelError::Mismatch { .. }) => {
            assert!(e.to_string().contains("feature order"), "{e}")
        }
        other => panic!("expected a feature order mismatch, got {:?}", other.err()),
    }
    std::fs::write(
        &meta_path,
        orig.replace("\"lookback\": 15", "\"lookback\": 20"),
    )
    .unwrap();
    match load_predictor(&model, WindowWidth::from_ms(50).unwrap()) {
        Err(ModelError::Mismatch { what, .. }) => assert_eq!(what, "lookback"),
        other => panic!("expected a lookback mismatch, got {:?}", other.err()),
    }
    std::fs::write(&meta_path, &orig).unwrap();

    // A module with another signature is a clear error, not a crash.
    let bad = tch::CModule::create_by_tracing(
        "Bad",
        "forward",
        &[Tensor::zeros([2, 15, 9], (Kind::Float, tch::Device::Cpu))],
        &mut |x| vec![x[0].sum_dim_intlist(&[1i64][..], false, Kind::Float)],
    )
    .unwrap();
    bad.save(model.join("netforecast.pt")).unwrap();
    match load_predictor(&model, WindowWidth::from_ms(50).unwrap()) {
        Err(e @ ModelError::Signature { .. }) => assert!(e.to_string().contains("[B,15,9]"), "{e}"),
        other => panic!("expected a signature error, got {:?}", other.err()),
    }
    // A corrupt file is a load error.
    std::fs::write(model.join("netforecast.pt"), b"not a module").unwrap();
    assert!(matches!(
        load_predictor(&model, WindowWidth::from_ms(50).unwrap()),
        Err(ModelError::Load { .. })
    ));
}

#[test]
fn missing_model_names_the_path() {
    match load_predictor(
        Path::new("/nonexistent/model"),
        WindowWidth::from_ms(50).unwrap(),
    ) {
        Err(e @ ModelError::NotFound { .. }) => {
            assert!(e.to_string().contains("/nonexistent/model"))
        }
        other => panic!("expected NotFound, got {:?}", other.err()),
    }
}

#[test]
fn training_is_reproducible_with_a_fixed_seed() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let ma = train_tiny(a.path());
    let mb = train_tiny(b.path());
    let fa = load_predictor(&ma, WindowWidth::from_ms(50).unwrap()).unwrap();
    let fb = load_predictor(&mb, WindowWidth::from_ms(50).unwrap()).unwrap();
    let x = Tensor::ones([3, 15, 9], (Kind::Float, tch::Device::Cpu)) * 12.0;
    let d = (fa.model().run(&x).unwrap() - fb.model().run(&x).unwrap())
        .abs()
        .max()
        .double_value(&[]);
    assert_eq!(d, 0.0, "same seed, same data, same model");
}

#[test]
fn boosted_trees_export_runs_any_batch_size_and_is_reproducible() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let ma = train_tiny_arch(a.path(), "gbt");
    let mb = train_tiny_arch(b.path(), "gbt");
    let meta = std::fs::read_to_string(ma.join(META_FILE)).unwrap();
    assert!(meta.contains("\"type\": \"gbt\""), "{meta}");
    let mut fa = load_predictor(&ma, WindowWidth::from_ms(50).unwrap()).expect("loads");
    let fb = load_predictor(&mb, WindowWidth::from_ms(50).unwrap()).expect("loads");
    same_at_every_batch_size(&fa, &fb);
    // The ring works the same for any module behind the interface.
    let w = 50_000_000;
    for k in 0..LOOKBACK as i64 - 1 {
        assert!(fa.push(&row(k * w, 0.03)).unwrap().is_none());
    }
    let fc = fa.push(&row(14 * w, 0.03)).unwrap().expect("a forecast");
    assert!(fc.throughput_mbps >= 0.0 && (0.0..=1.0).contains(&fc.congestion_prob));
    // The trees go beside the module and are walked natively, for every
    // batch size, with the module's answers.
    assert!(ma.join(model::native::TREES_FILE).exists());
    let mut m = model::torch::TorchModel::load(&ma, WindowWidth::from_ms(50).unwrap()).unwrap();
    assert!(m.native(), "the trees agree with the module");
    assert!(m.batch_invariant());
    let (x, out) = run_checked(&fa, 40);
    let seqs: Vec<f32> = Vec::try_from(x.reshape([-1])).unwrap();
    let native = m.forward(&seqs, 40).unwrap();
    let module: Vec<f32> = Vec::try_from(out.reshape([-1])).unwrap();
    for (i, (t, p)) in native.iter().enumerate() {
        let (mt, mp) = (f64::from(module[2 * i]), f64::from(module[2 * i + 1]));
        assert!(
            (t - mt).abs() <= 1e-4 * mt.abs().max(1.0),
            "{i}: {t} vs {mt}"
        );
        assert!((p - mp).abs() <= 1e-6, "{i}: {p} vs {mp}");
    }
    // Trees that read well but are not the module's (the throughput base
    // moved by 0.01 Mbit/s) fail the probe and the module answers alone.
    let good = std::fs::read(ma.join(model::native::TREES_FILE)).unwrap();
    let mut moved = good.clone();
    let base = f32::from_le_bytes(moved[20..24].try_into().unwrap()) + 0.01;
    moved[20..24].copy_from_slice(&base.to_le_bytes());
    std::fs::write(ma.join(model::native::TREES_FILE), &moved).unwrap();
    let m = model::torch::TorchModel::load(&ma, WindowWidth::from_ms(50).unwrap()).unwrap();
    assert!(!m.native() && !m.batch_invariant());
    std::fs::write(ma.join(model::native::TREES_FILE), &good).unwrap();
    let m = model::torch::TorchModel::load(&ma, WindowWidth::from_ms(50).unwrap()).unwrap();
    assert!(m.native(), "the same bytes back");
    // Damaged trees are refused and the module answers alone.
    std::fs::write(ma.join(model::native::TREES_FILE), b"NFGBT1\0\0").unwrap();
    let m = model::torch::TorchModel::load(&ma, WindowWidth::from_ms(50).unwrap()).unwrap();
    assert!(!m.native() && !m.batch_invariant());
}

#[test]
fn lstm_with_trees_exports_one_module_for_any_batch_size() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let ma = train_tiny_arch(a.path(), "lstm-gbt");
    let mb = train_tiny_arch(b.path(), "lstm-gbt");
    let meta = std::fs::read_to_string(ma.join(META_FILE)).unwrap();
    assert!(
        meta.contains("\"type\": \"lstm-gbt\"") && meta.contains("\"lstm_steps\": 3"),
        "{meta}"
    );
    assert!(
        meta.contains("\"input_reference\""),
        "the shift reference is written"
    );
    let fa = load_predictor(&ma, WindowWidth::from_ms(50).unwrap()).expect("loads");
    let fb = load_predictor(&mb, WindowWidth::from_ms(50).unwrap()).expect("loads");
    same_at_every_batch_size(&fa, &fb);
    // Only one layer, and a stride that divides the 15 windows.
    let dir = tempfile::tempdir().unwrap();
    let inputs: Vec<PathBuf> = (0..4)
        .map(|i| synthetic_capture(dir.path(), &format!("c{i}.csv"), i, 200))
        .collect();
    let mut cfg = tiny_config(inputs.clone(), &dir.path().join("m"), "lstm-gbt");
    cfg.layers = 2;
    assert!(matches!(train(&cfg), Err(TrainError::Usage(_))));
    let mut cfg = tiny_config(inputs, &dir.path().join("m"), "lstm-gbt");
    cfg.lstm_stride = 4;
    assert!(matches!(train(&cfg), Err(TrainError::Usage(_))));
}

#[test]
fn boosted_trees_learn_what_persistence_cannot() {
    // A window-limited sender with a 150 ms RTT (3 windows) repeats what it sent
    // one RTT earlier: throughput cycles through three levels, with noise.
    // Persistence is wrong at almost every window; the ACK-clock inputs and the
    // differences against the last window make it learnable.
    let dir = tempfile::tempdir().unwrap();
    let inputs: Vec<PathBuf> = (0..6)
        .map(|i| {
            let levels = [10.0 + 5.0 * i as f64, 40.0, 25.0 + 2.0 * i as f64];
            write_capture(
                dir.path(),
                &format!("p{i}.csv"),
                i,
                600,
                0.15,
                move |k, r| levels[k % 3] + r.normal() * 0.5,
            )
        })
        .collect();
    let out = dir.path().join("model");
    let mut cfg = tiny_config(inputs, &out, "gbt");
    cfg.trees = 300;
    let s = train(&cfg).expect("training succeeds");
    let m = &s.val_scores.model;
    assert!(
        m.mase < 0.3,
        "validation MASE {} (persistence is 1)",
        m.mase
    );
    assert!(
        m.roc_auc >= s.val_scores.persistence.roc_auc,
        "ROC-AUC {} vs persistence {}",
        m.roc_auc,
        s.val_scores.persistence.roc_auc
    );
}
