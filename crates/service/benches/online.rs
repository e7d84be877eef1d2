//! Cost of the forecast stage around the model: matching, baselines, the online
//! combination and recalibration, per window (the persistence model stands in
//! for the network, so this is the stage's own cost).

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use engine::forecast::{Persistence, WindowWidth};
use engine::window::{TcpProgress, WindowRow};
use service::forecast::ForecastStage;
use service::online::{Online, OnlineConfig, Shape};

fn row(i: i64) -> WindowRow {
    let mbps = 20.0 + 10.0 * ((i as f64) * 0.1).sin();
    WindowRow {
        start_ns: i * WindowWidth::DEFAULT.ns(),
        size_bytes: (mbps * 6250.0) as u64,
        delay_s: 0.02,
        bif_bytes: 60_000,
        iat_mean_s: 0.0005,
        iat_std_s: 0.0002,
        throughput_mbps: mbps,
        delay_grad_s: 0.0,
        bif_grad_bytes: 0,
        is_silent: false,
        packets: 100,
        // Its bytes spread evenly: the last fifth carries a fifth (no turn);
        // its ACKs reported 90 % of its payload delivered (the ACK clock runs).
        tcp: TcpProgress {
            tail_bytes: (mbps * 6250.0) as u64 / 5,
            payload_bytes: (mbps * 6250.0) as u64,
            reported_bytes: (mbps * 6250.0 * 0.9) as u64,
            ..Default::default()
        },
    }
}

fn online(c: &mut Criterion) {
    let mut o = Online::new(OnlineConfig::default(), 20.0);
    let mut i = 0u64;
    c.bench_function("online: observe + issue, one window", |b| {
        b.iter(|| {
            i += 1;
            // Bursts of 9 busy windows between silent ones, so the burst-end
            // expert has volumes to compare with; the last fifth of every
            // third window turned (down, then up), so the turn contexts run.
            let silent = i.is_multiple_of(10);
            let a = if silent { 0.0 } else { 20.0 + (i % 17) as f64 };
            let tail = a * [1.0, 0.5, 1.6][(i % 3) as usize];
            let shape = Shape {
                active: 1.0,
                tail_mbps: Some(tail),
                acked_mbps: Some(a * 0.9),
            };
            o.observe(black_box(a));
            black_box(o.issue([a * 1.1, a, a * 0.9, a], 0.3, a, silent, false, shape))
        })
    });
    let mut stage = ForecastStage::new(
        Persistence {
            threshold_mbps: 20.0,
        },
        WindowWidth::DEFAULT,
    );
    let mut k = 0i64;
    c.bench_function("forecast stage with persistence, one window", |b| {
        b.iter(|| {
            k += 1;
            black_box(stage.step(row(k)).ok())
        })
    });
}

criterion_group!(benches, online);
criterion_main!(benches);
