//! One daemon pipeline with many streams (issue 16): a synthetic live
//! interface whose traffic comes from H hosts at real time, host streams for
//! all of them (`top_hosts` = H), the shipped TorchScript model, the live
//! policy. Prints what a tick costs and whether the model keeps up: forecasts
//! and skipped forecasts per second, windows dropped, and each model call's
//! size and time (p50/p99), over the last part of the run.
//!
//! `cargo bench -p netforecast --bench streams -- [HOSTS] [SECONDS]`
//! (defaults 1000 and 20; needs libtorch, `scripts/setup-libtorch.sh`).

use engine::forecast::{PredictError, SequenceModel, WindowWidth};
use engine::pipeline::EngineConfig;
use service::pipeline::{Pipeline, Policy, SourceOpener};
use service::shutdown::Shutdown;
use service::sinks::prometheus::Metrics;
use service::source::{Clock, KernelStats, Next, PacketSource, SourceError, SystemClock};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Data segments of `hosts` senders to one server, `pps_per_host` each,
/// stamped with the wall clock as they are due.
struct Synth {
    hosts: u32,
    pps: f64,
    t0_ns: i64,
    sent: u64,
    seq: Vec<u32>,
    frame: Vec<u8>,
}

impl PacketSource for Synth {
    fn name(&self) -> String {
        service::source::live_name("synth0")
    }
    fn is_live(&self) -> bool {
        true
    }
    fn next(&mut self) -> Result<Next<'_>, SourceError> {
        let now = SystemClock.now_ns();
        let due = ((now - self.t0_ns) as f64 / 1e9 * self.pps) as u64;
        if self.sent >= due {
            std::thread::sleep(Duration::from_micros(200));
            return Ok(Next::Idle);
        }
        let h = (self.sent % u64::from(self.hosts)) as u32;
        self.sent += 1;
        let len = 1000;
        testkit::tcp4_frame(
            &testkit::Tcp4 {
                src: ([10, (h >> 16) as u8, (h >> 8) as u8, h as u8], 40000),
                dst: ([10, 255, 255, 1], 443),
                seq: self.seq[h as usize],
                ack: 1,
                flags: 0x18,
                len,
            },
            &mut self.frame,
        );
        self.seq[h as usize] = self.seq[h as usize].wrapping_add(len as u32);
        let orig_len = self.frame.len() as u32;
        self.frame.truncate(54);
        Ok(Next::Frame {
            linktype: 1,
            data: &self.frame,
            orig_len,
            ts_ns: Some(now),
        })
    }
    fn kernel_stats(&mut self) -> Result<Option<KernelStats>, SourceError> {
        Ok(Some(KernelStats::default()))
    }
}

/// The model, timing each call.
struct Timed<M> {
    inner: M,
    calls: Arc<Mutex<Vec<(Instant, usize, Duration)>>>,
}

impl<M: SequenceModel> SequenceModel for Timed<M> {
    fn forward(&mut self, seqs: &[f32], n: usize) -> Result<Vec<(f64, f64)>, PredictError> {
        let t = Instant::now();
        let out = self.inner.forward(seqs, n);
        if let Ok(mut c) = self.calls.lock() {
            c.push((t, n, t.elapsed()));
        }
        out
    }
    fn version(&self) -> &str {
        self.inner.version()
    }
    fn threshold_mbps(&self) -> f64 {
        self.inner.threshold_mbps()
    }
}

fn pct(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(((v.len() as f64 - 1.0) * q).round() as usize)
        .copied()
        .unwrap_or(f64::NAN)
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let hosts: u32 = args.first().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let secs: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(20);
    let width = WindowWidth::DEFAULT;
    let dir = model::torch::default_model_dir();
    let model = match model::torch::TorchModel::load(&dir, width) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("streams bench: {e}; skipped");
            return;
        }
    };
    let version = model.version().to_owned();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let metrics = Metrics::new();
    let shutdown = Shutdown::new();
    // 20 kB/s per host: above the 12.5 kB/s a host needs to become a stream.
    let pps = f64::from(hosts) * 20.0;
    let source = Synth {
        hosts,
        pps,
        t0_ns: SystemClock.now_ns(),
        sent: 0,
        seq: vec![1; hosts as usize],
        frame: Vec::new(),
    };
    let pipeline = Pipeline {
        sources: vec![
            Box::new(move || Ok(Box::new(source) as Box<dyn PacketSource>)) as SourceOpener,
        ],
        concurrent: true,
        top_hosts: hosts as usize,
        top_flows: 0,
        engine: EngineConfig::default(),
        clock: Arc::new(SystemClock),
        grace_ns: 5_000_000,
        model: Timed {
            inner: model,
            calls: Arc::clone(&calls),
        },
        sinks: Vec::new(),
        metrics: Arc::clone(&metrics),
        shutdown: shutdown.clone(),
        policy: Policy::LIVE,
        flush_deadline: Duration::from_secs(5),
        online: Some(service::online::OnlineConfig::default()),
        events: Default::default(),
        batch: 1,
    };
    let run = std::thread::spawn(move || pipeline.run());
    // Hosts join within a few seconds and forecast 15 windows later: measure
    // the second half.
    std::thread::sleep(Duration::from_secs(secs / 2));
    let t_from = Instant::now();
    let (f0, s0, d0) = (
        metrics.forecasts.get(),
        metrics.forecasts_skipped.get(),
        metrics.windows_dropped.get(),
    );
    std::thread::sleep(Duration::from_secs(secs - secs / 2));
    let el = t_from.elapsed().as_secs_f64();
    let (f1, s1, d1) = (
        metrics.forecasts.get(),
        metrics.forecasts_skipped.get(),
        metrics.windows_dropped.get(),
    );
    shutdown.trigger();
    let summary = run.join().expect("pipeline thread").expect("pipeline");
    let calls = calls.lock().unwrap().clone();
    let measured: Vec<_> = calls.iter().filter(|c| c.0 >= t_from).collect();
    let mut n: Vec<f64> = measured.iter().map(|c| c.1 as f64).collect();
    let mut ms: Vec<f64> = measured.iter().map(|c| c.2.as_secs_f64() * 1e3).collect();
    let busy: f64 = ms.iter().sum::<f64>() / 1e3 / el;
    println!(
        "streams bench: {hosts} hosts + the interface, {pps:.0} packets/s, model {version}, {:.1} s measured",
        el
    );
    println!(
        "  forecasts {:.0}/s, skipped {:.0}/s (of {:.0}/s wanted), windows dropped {} (whole run {}), kernel drops 0",
        (f1 - f0) as f64 / el,
        (s1 - s0) as f64 / el,
        ((f1 - f0) + (s1 - s0)) as f64 / el,
        d1 - d0,
        summary.windows_dropped
    );
    println!(
        "  model calls {:.1}/s, sequences per call p50 {:.0} max {:.0}, call time p50 {:.2} ms p99 {:.2} ms, model busy {:.0} % of one core",
        measured.len() as f64 / el,
        pct(&mut n, 0.5),
        pct(&mut n, 1.0),
        pct(&mut ms.clone(), 0.5),
        pct(&mut ms, 0.99),
        busy * 100.0
    );
}
