//! A fleet of routers (issue 16): each of HOSTS simulated routers sends a
//! point per 50 ms window in real time for SECONDS, the points of real lab
//! captures (the committed `tests/data` captures, replayed once through the
//! pipeline with the shipped model) under its own host tag, written by the
//! product's writer straight to an InfluxDB-protocol server at URL, or with
//! `--kafka BROKERS TOPIC` through Kafka (the product's Kafka sink) and a relay
//! to the server. Prints one JSON report: points made and written, the
//! ingestion lag (p50/p99/max: the slowest router's newest point in the
//! server, from its window's end, asked every 250 ms) and every router's
//! points counted back from the server.
//!
//! `cargo bench -p netforecast --bench fleet -- HOSTS SECONDS URL [--kafka BROKERS TOPIC]`
//! (the server: VictoriaMetrics with `-search.latencyOffset=0s`;
//! `tests/system/fleet.py` starts one and runs this).

use engine::forecast::{SequenceModel, WindowWidth};
use engine::pipeline::EngineConfig;
use service::config::{InfluxConfig, KafkaConfig};
use service::fleet::{FleetConfig, simulate};
use service::replay::Replay;
use service::shutdown::Shutdown;
use service::sinks::influx::point_for;
use service::sinks::memory::MemorySink;
use std::path::PathBuf;
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let kafka_at = args.iter().position(|a| a == "--kafka");
    let pos: Vec<&String> = args[..kafka_at.unwrap_or(args.len())].iter().collect();
    let hosts: usize = pos.first().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let secs: u64 = pos.get(1).and_then(|a| a.parse().ok()).unwrap_or(30);
    let Some(url) = pos.get(2) else {
        eprintln!("fleet bench: give HOSTS SECONDS URL [--kafka BROKERS TOPIC]; skipped");
        return;
    };
    let kafka = kafka_at.map(|i| KafkaConfig {
        brokers: args.get(i + 1).cloned().unwrap_or_default(),
        topic: args
            .get(i + 2)
            .cloned()
            .unwrap_or_else(|| "netforecast".into()),
        ..KafkaConfig::default()
    });
    let width = WindowWidth::DEFAULT;
    let dir = model::torch::default_model_dir();
    let model = match model::torch::TorchModel::load(&dir, width) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("fleet bench: {e}; skipped");
            return;
        }
    };
    let version = model.version().to_owned();
    // The points of each committed capture, once.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data");
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&root)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    inputs.retain(|p| {
        let n = p.to_string_lossy();
        n.ends_with(".pcap") || n.ends_with(".pcap.gz")
    });
    inputs.sort();
    let (sink, rx) = MemorySink::new();
    let replayed = Replay {
        inputs: inputs.clone(),
        filter: None,
        realtime: false,
        engine: EngineConfig {
            window: width,
            ..EngineConfig::default()
        },
        model,
        model_dir: dir.display().to_string(),
        out: None,
        report: None,
        plot: None,
        html: None,
        events_truth: None,
        events: Default::default(),
        print: false,
        shutdown: Shutdown::new(),
        extra_sinks: vec![Box::new(sink)],
        model_only: false,
        batch: 64,
        band: false,
        classes: None,
    }
    .run();
    if let Err(e) = replayed {
        eprintln!("fleet bench: replaying {inputs:?}: {e}");
        std::process::exit(1);
    }
    let mut templates: Vec<Vec<service::sinks::influx::Point>> = vec![Vec::new(); inputs.len()];
    for s in rx.try_iter() {
        if s.at_target.is_some() || s.issued.is_some() {
            templates[s.stream.min(inputs.len() - 1)].push(point_for(&s, 0));
        }
    }
    eprintln!(
        "fleet bench: {} captures, {} points to replay; {hosts} routers for {secs} s into {url}{}",
        inputs.len(),
        templates.iter().map(Vec::len).sum::<usize>(),
        kafka
            .as_ref()
            .map(|k| format!(" through Kafka {} topic {}", k.brokers, k.topic))
            .unwrap_or_default()
    );
    let cfg = FleetConfig {
        hosts,
        duration: Duration::from_secs(secs),
        window: Duration::from_millis(50),
        influx: InfluxConfig {
            url: url.to_string(),
            org: "fleet".into(),
            bucket: "fleet".into(),
            batch_points: 5000,
            batch_age_ms: 250,
            buffer_points: 2_000_000,
            ..InfluxConfig::default()
        },
        kafka,
        model: version,
    };
    match simulate(
        &cfg,
        &templates,
        &Shutdown::on_signals(Duration::from_secs(70)),
    ) {
        Ok(r) => println!("{}", serde_json::to_string(&r).unwrap_or_default()),
        Err(e) => {
            eprintln!("fleet bench: {e}");
            std::process::exit(1);
        }
    }
}
