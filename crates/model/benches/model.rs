//! Inference latency of the shipped model (model_files/; NETFORECAST_MODEL=DIR
//! for another): batch 1 through the 15-window ring as the daemon calls it,
//! `forward` at batch 1, 32 and 1000, and the TorchScript module alone at the
//! same sizes; p50/p99 printed (criterion reports means).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use engine::forecast::WindowWidth;
use engine::window::WindowRow;
use model::torch::{LOOKBACK, N_FEATURES, default_model_dir, load_predictor};
use std::hint::black_box;
use std::time::Instant;
use tch::Tensor;

fn row(k: i64) -> WindowRow {
    WindowRow {
        start_ns: k * 50_000_000,
        size_bytes: 100_000 + (k as u64 % 7) * 3000,
        delay_s: 0.04,
        bif_bytes: 60_000,
        iat_mean_s: 0.0005,
        iat_std_s: 0.0002,
        throughput_mbps: 16.0 + (k % 7) as f64,
        delay_grad_s: 0.0,
        bif_grad_bytes: 0,
        is_silent: false,
        packets: 70,
        tcp: Default::default(),
    }
}

/// (p50, p99, max) of latencies, sorting them.
fn percentiles(lat: &mut [f64]) -> (f64, f64, f64) {
    lat.sort_by(|a, b| a.total_cmp(b));
    let n = lat.len();
    (lat[n / 2], lat[n * 99 / 100], lat[n - 1])
}

fn benches(c: &mut Criterion) {
    // NETFORECAST_MODEL=DIR benches another model directory.
    let dir = std::env::var_os("NETFORECAST_MODEL")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(default_model_dir);
    let mut f = match load_predictor(&dir, WindowWidth::from_ms(50).unwrap()) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("model bench skipped: {e}");
            return;
        }
    };
    for k in 0..LOOKBACK as i64 {
        let _ = f.push(&row(k));
    }
    // Percentiles, which criterion does not report.
    let mut lat = Vec::with_capacity(20_000);
    for k in 0..20_000i64 {
        let t = Instant::now();
        black_box(f.push(&row(LOOKBACK as i64 + k)).ok());
        lat.push(t.elapsed().as_nanos() as f64 / 1e3);
    }
    let (p50, p99, max) = percentiles(&mut lat);
    eprintln!(
        "model {}: batch-1 forecast through the ring: p50 {p50:.1} us, p99 {p99:.1} us, max {max:.1} us (20,000 calls)",
        f.model().meta.model_version,
    );
    let version = f.model().meta.model_version.clone();
    let native = f.model().native();
    eprintln!(
        "model {version}: {}",
        if native {
            "trees walked natively (trees.bin agrees with the module)"
        } else {
            "no native trees: every call goes through the TorchScript module"
        }
    );
    // What the pipeline, a fleet and /predict call: `forward` at batch 1, 32
    // and 1000 (the native walk when the model has trees.bin), and beside
    // it one call of the TorchScript module alone at the same sizes, which
    // is what a model without trees.bin gets.
    let seqs = |n: usize| -> Vec<f32> {
        (0..n * LOOKBACK * N_FEATURES)
            .map(|i| ((i * 7919) % 2000) as f32 / 100.0)
            .collect()
    };
    for (n, calls) in [(1usize, 20_000usize), (32, 2_000), (1000, 200)] {
        let x = seqs(n);
        let mut lat = Vec::with_capacity(calls);
        for _ in 0..calls {
            let t = Instant::now();
            black_box(f.forward(&x, n).ok());
            lat.push(t.elapsed().as_nanos() as f64 / 1e3);
        }
        let (p50, p99, _) = percentiles(&mut lat);
        eprintln!(
            "model {version}: forward of {n}: p50 {p50:.1} us, p99 {p99:.1} us ({calls} calls), {:.2} us per sequence at p50, {:.0} sequences/s",
            p50 / n as f64,
            n as f64 / (p50 / 1e6)
        );
        let x = Tensor::from_slice(&x).reshape([n as i64, LOOKBACK as i64, N_FEATURES as i64]);
        let calls = calls.min(2_000);
        let mut lat = Vec::with_capacity(calls);
        for _ in 0..calls {
            let t = Instant::now();
            black_box(f.model().run(&x).ok());
            lat.push(t.elapsed().as_nanos() as f64 / 1e3);
        }
        let (p50, p99, _) = percentiles(&mut lat);
        eprintln!(
            "model {version}: the TorchScript module alone at batch {n}: p50 {p50:.1} us, p99 {p99:.1} us ({calls} calls), {:.1} us per sequence at p50",
            p50 / n as f64
        );
    }
    let mut g = c.benchmark_group("inference");
    let mut k = 100_000i64;
    g.bench_function("batch1_ring_push", |b| {
        b.iter(|| {
            k += 1;
            black_box(f.push(&row(k)).ok())
        })
    });
    for n in [32usize, 1000] {
        let x = seqs(n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("forward{n}"), |b| {
            b.iter(|| black_box(f.forward(&x, n).ok()))
        });
    }
    let x = Tensor::from_slice(&seqs(1)).reshape([1, LOOKBACK as i64, N_FEATURES as i64]);
    g.bench_function("module_batch1", |b| {
        b.iter(|| black_box(f.model().run(&x).ok()))
    });
    g.finish();
}

criterion_group!(model, benches);
criterion_main!(model);
