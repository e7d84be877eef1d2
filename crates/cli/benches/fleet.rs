//! A fleet of routers (issue 16): each of HOSTS simulated routers sends a
//! point per 50 ms window in real time for SECONDS, the points of real lab
//! captures (the committed `tests/data` captures, replayed once through the
//! pipeline with the shipped model) under its own host tag, written by the
//! product's writer straight to an InfluxDB-protocol server at URL, or with
//! `--kafka BROKERS TOPIC` through Kafka (the product's Kafka sink) and a relay
//! to the server. Prints one JSON report: points made and written, the
//! ingestion lag (p50/p99/max: the slowest router's newest point in the
//! server, from its window's end, asked every second) and every router's
//! points counted back from the server.
//!
//! Each point carries the fields the fleet dashboards draw ([`FLEET_FIELDS`]:
//! what `[influx] fields` is set to on a fleet's routers), or every field with
//! `--fields all` (25, each a series per router in VictoriaMetrics), or the
//! comma-separated names given.
//!
//! `cargo bench -p netforecast --bench fleet -- HOSTS SECONDS URL [--fields all|LIST] [--kafka BROKERS TOPIC]`
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

/// What the fleet dashboards draw (`deploy/grafana/dashboards/fleet*.json`:
/// actual, forecast, congestion risk, recent MASE) and the forecast's band.
const FLEET_FIELDS: &str = "actual_mbps,predicted_mbps,congestion_prob,predicted_lower_mbps,predicted_upper_mbps,mase_recent";

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let kafka_at = args.iter().position(|a| a == "--kafka");
    let fields_at = args.iter().position(|a| a == "--fields");
    let fields: Vec<String> = match fields_at.and_then(|i| args.get(i + 1)).map(String::as_str) {
        Some("all") => Vec::new(),
        Some(list) => list.split(',').map(str::to_owned).collect(),
        None => FLEET_FIELDS.split(',').map(str::to_owned).collect(),
    };
    let known: Vec<&str> = service::sinks::influx::point_field_names().collect();
    if let Some(f) = fields.iter().find(|f| !known.contains(&f.as_str())) {
        eprintln!(
            "fleet bench: {f:?} is not a field of a point; use all or some of {}",
            known.join(",")
        );
        std::process::exit(2);
    }
    let first_option = [kafka_at, fields_at].into_iter().flatten().min();
    let pos: Vec<&String> = args[..first_option.unwrap_or(args.len())].iter().collect();
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
        fields: fields.clone(),
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
            fields: fields.clone(),
            ..InfluxConfig::default()
        },
        kafka,
        writers: 4,
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
