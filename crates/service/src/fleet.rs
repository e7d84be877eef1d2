//! A simulated fleet for the scale tests of issue 16: `hosts` routers, each
//! sending a point per window in real time, written by the product's own
//! writers: straight to an InfluxDB-protocol server ([`InfluxWriter`]), or to
//! Kafka ([`KafkaSink`]) with [`relay`] carrying the topic on to the server
//! (the part Telegraf plays in a real pipeline).
//!
//! Each router replays the points of a real capture (the caller replays lab
//! captures through the pipeline with the shipped model once and hands their
//! points over), from its own offset, tagged `host=fleet-NNNN`, stamped with
//! the current window. While it runs, a probe asks the server every second
//! for the oldest of the routers' newest points: how far the slowest router's
//! data trails the clock (the ingestion lag, counted from each window's end).
//! At the end every router's points are counted back from the server.

use crate::config::{InfluxConfig, KafkaConfig};
use crate::shutdown::Shutdown;
use crate::sinks::influx::{InfluxWriter, Point, WriterStats};
use crate::sinks::kafka::{KafkaSink, KafkaStats};
use crate::sinks::prometheus::Metrics;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The measurement every point goes to (the daemon's).
const MEASUREMENT: &str = "traffic_prediction";

/// What to simulate and where it goes.
#[derive(Clone, Debug)]
pub struct FleetConfig {
    /// Routers.
    pub hosts: usize,
    /// How long they send.
    pub duration: Duration,
    /// One point per router per window.
    pub window: Duration,
    /// Straight to this server (and its base URL is where the probe asks).
    pub influx: InfluxConfig,
    /// Through Kafka instead: the producer's settings (the relay reads the
    /// same topic and writes to `influx`).
    pub kafka: Option<KafkaConfig>,
    /// Direct runs: how many writers carry the routers' points, each its own
    /// share (router `h` goes through writer `h % writers`), each on its own
    /// thread and connection. A real fleet has a writer per router; one writer
    /// for a thousand sends one batch at a time, and a run then measures that
    /// connection's round trips (a slow batch holds up every router) rather
    /// than the server. Through Kafka the producer batches on its own: one.
    pub writers: usize,
    /// The model tag.
    pub model: String,
}

/// What happened (field names say what they count).
#[allow(missing_docs)]
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct FleetReport {
    pub hosts: usize,
    pub seconds: f64,
    pub windows: u64,
    /// When the last window ended (Unix ms): the moment to ask the
    /// dashboard's "last minute" queries as an operator watching would.
    pub last_window_end_ms: i64,
    pub points_made: u64,
    /// Ticks the generator started more than one window late.
    pub ticks_late: u64,
    /// Writers that carried the points (each a share of the routers).
    pub writers: usize,
    /// The fields each point carried (empty: every one).
    pub fields: Vec<String>,
    /// The writers to the server, summed (direct, or the relay's).
    pub writer: WriterStats,
    /// The Kafka producer, when the points went through Kafka.
    pub kafka: Option<KafkaCounts>,
    /// Messages the relay read from Kafka.
    pub relayed: u64,
    /// Through Kafka: from a window's end to its message reaching the relay
    /// (p50, p99, max; ms).
    pub kafka_lag_ms: Option<(f64, f64, f64)>,
    /// Lag samples (ms): the slowest router's newest point in the server,
    /// from its window's end to the probe's question.
    pub lag_samples: usize,
    pub lag_p50_ms: f64,
    pub lag_p99_ms: f64,
    pub lag_max_ms: f64,
    /// The five largest lag samples: (seconds into the run, ms), to tell a
    /// stall of the server from a writer falling behind.
    pub lag_worst: Vec<(f64, f64)>,
    /// Direct runs: how long the server took to take a batch (ms; p50, p99,
    /// max) and the five slowest (seconds into the run, ms).
    pub batch_ms: Option<(f64, f64, f64)>,
    pub batch_slowest: Vec<(f64, f64)>,
    /// Points read back per router: fewest, most, routers with other than
    /// `windows`.
    pub read_back_min: u64,
    pub read_back_max: u64,
    pub hosts_short: usize,
    pub hosts_read: usize,
}

/// The Kafka producer's counts.
#[allow(missing_docs)]
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct KafkaCounts {
    pub made: u64,
    pub delivered: u64,
    pub failed: u64,
    pub dropped: u64,
}

impl From<KafkaStats> for KafkaCounts {
    fn from(s: KafkaStats) -> Self {
        KafkaCounts {
            made: s.made,
            delivered: s.delivered,
            failed: s.failed,
            dropped: s.dropped_queue_full + s.dropped_shutdown + s.unencodable,
        }
    }
}

/// Errors of the simulation.
#[derive(Debug, thiserror::Error)]
#[error("fleet: {0}")]
pub struct FleetError(String);

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The name of router `h`.
pub fn host_name(h: usize) -> String {
    format!("fleet-{h:04}")
}

/// Where the points go: one writer on its own thread, fed a tick at a time.
// One of these exists per run: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Out {
    Direct(InfluxWriter, tokio::runtime::Runtime),
    Kafka(KafkaSink),
}

fn runtime() -> Result<tokio::runtime::Runtime, FleetError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| FleetError(e.to_string()))
}

/// Run the fleet. `templates`: the points of each replayed capture, in window
/// order (router `h` replays `templates[h % len]` from offset `h * 37`).
pub fn simulate(
    cfg: &FleetConfig,
    templates: &[Vec<Point>],
    shutdown: &Shutdown,
) -> Result<FleetReport, FleetError> {
    let templates: Vec<&Vec<Point>> = templates.iter().filter(|t| !t.is_empty()).collect();
    if templates.is_empty() || cfg.hosts == 0 {
        return Err(FleetError("no points to replay or no hosts".into()));
    }
    let window_ms = cfg.window.as_millis().max(1) as i64;
    let outs = match &cfg.kafka {
        None => (0..cfg.writers.clamp(1, cfg.hosts))
            .map(|_| {
                Ok(Out::Direct(
                    InfluxWriter::new(&cfg.influx, "fleet", "eth0", &cfg.model)
                        .map_err(|e| FleetError(e.to_string()))?,
                    runtime()?,
                ))
            })
            .collect::<Result<Vec<_>, FleetError>>()?,
        Some(k) => vec![Out::Kafka(
            KafkaSink::new(k, "fleet", "eth0", &cfg.model, Metrics::new())
                .map_err(|e| FleetError(e.to_string()))?,
        )],
    };
    // Each writer runs on a thread of its own, a tick's points at a time, so
    // a slow write never delays the next tick.
    let mut txs = Vec::with_capacity(outs.len());
    let mut writers = Vec::with_capacity(outs.len());
    for (i, out) in outs.into_iter().enumerate() {
        let (tx, rx) = crossbeam_channel::bounded::<Vec<Point>>(1200);
        txs.push(tx);
        writers.push(
            std::thread::Builder::new()
                .name(format!("fleet-writer-{i}"))
                .spawn(move || write(out, &rx))
                .map_err(|e| FleetError(e.to_string()))?,
        );
    }
    // The relay and the probe run beside the generator.
    let stop = Arc::new(AtomicBool::new(false));
    let expect = Arc::new(AtomicU64::new(u64::MAX));
    let relay = cfg.kafka.as_ref().map(|k| {
        let (k, influx) = (k.clone(), cfg.influx.clone());
        let (stop, expect) = (Arc::clone(&stop), Arc::clone(&expect));
        std::thread::Builder::new()
            .name("fleet-relay".into())
            .spawn(move || relay(&k, &influx, &stop, &expect, window_ms))
    });
    let probe = {
        let (url, hosts, stop) = (cfg.influx.url.clone(), cfg.hosts, Arc::clone(&stop));
        std::thread::Builder::new()
            .name("fleet-probe".into())
            .spawn(move || probe(&url, hosts, window_ms, &stop))
            .map_err(|e| FleetError(e.to_string()))?
    };
    let hosts: Vec<String> = (0..cfg.hosts).map(host_name).collect();
    let start = Instant::now();
    let t0_ms = now_ms().div_euclid(window_ms) * window_ms + window_ms;
    let windows = (cfg.duration.as_millis() as i64 / window_ms) as u64;
    let mut report = FleetReport {
        hosts: cfg.hosts,
        windows,
        fields: match &cfg.kafka {
            Some(k) => k.fields.clone(),
            None => cfg.influx.fields.clone(),
        },
        ..Default::default()
    };
    for k in 0..windows {
        if shutdown.is_set() {
            report.windows = k;
            break;
        }
        // Window k ends at t0 + (k+1) w: its point is made then.
        let due = t0_ms + (k as i64 + 1) * window_ms;
        let wait = due - now_ms();
        if wait > 0 {
            std::thread::sleep(Duration::from_millis(wait as u64));
        } else if -wait > window_ms {
            report.ticks_late += 1;
        }
        let ts = t0_ms + k as i64 * window_ms;
        let mut shares: Vec<Vec<Point>> = (0..txs.len())
            .map(|_| Vec::with_capacity(hosts.len() / txs.len() + 1))
            .collect();
        for (h, host) in hosts.iter().enumerate() {
            let t = templates[h % templates.len()];
            let mut p = t[(h * 37 + k as usize) % t.len()].clone();
            p.ts_ms = ts;
            p.host = Some(host.clone());
            p.iface = Some("eth0".into());
            p.stream = Some(("iface", "eth0".into()));
            p.event = None;
            shares[h % txs.len()].push(p);
        }
        for (tx, points) in txs.iter().zip(shares) {
            report.points_made += points.len() as u64;
            if tx.send(points).is_err() {
                return Err(FleetError("a writer stopped".into()));
            }
        }
    }
    report.writers = txs.len();
    drop(txs);
    report.last_window_end_ms = t0_ms + report.windows as i64 * window_ms;
    let mut batches = Vec::new();
    for w in writers {
        let (stats, kafka, b) = w
            .join()
            .map_err(|_| FleetError("a writer panicked".into()))?;
        report.writer += stats;
        report.kafka = report.kafka.take().or(kafka);
        batches.extend(b);
    }
    report.batch_ms = spread(batches.iter().map(|b| b.1).collect());
    report.batch_slowest = worst(&mut batches, t0_ms);
    report.seconds = start.elapsed().as_secs_f64();
    // The relay stops once it has carried every point (or at its deadline).
    if let Some(r) = relay {
        let r = r.map_err(|e| FleetError(e.to_string()))?;
        expect.store(report.points_made, Ordering::Relaxed);
        let (n, stats, kl) = r
            .join()
            .map_err(|_| FleetError("the relay panicked".into()))??;
        report.relayed = n;
        report.writer = stats;
        report.kafka_lag_ms = spread(kl);
    }
    // The probe ends once everything is read.
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let mut timed = probe
        .join()
        .map_err(|_| FleetError("the probe panicked".into()))?;
    report.lag_samples = timed.len();
    if let Some((p50, p99, max)) = spread(timed.iter().map(|t| t.1).collect()) {
        (report.lag_p50_ms, report.lag_p99_ms, report.lag_max_ms) = (p50, p99, max);
    }
    report.lag_worst = worst(&mut timed, t0_ms);
    read_back(&cfg.influx.url, &mut report, t0_ms)?;
    Ok(report)
}

/// Something timed during the run: (when, Unix ms; how long or how late, ms).
type Timed = (i64, f64);

/// The median, 99th percentile and largest of `v` (None when empty).
fn spread(mut v: Vec<f64>) -> Option<(f64, f64, f64)> {
    v.sort_by(f64::total_cmp);
    let q = |f: f64| v[((v.len() - 1) as f64 * f).round() as usize];
    let max = *v.last()?;
    Some((q(0.5), q(0.99), max))
}

/// The five largest of `v`, as (seconds after `t0_ms`, ms).
fn worst(v: &mut [Timed], t0_ms: i64) -> Vec<(f64, f64)> {
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    v.iter()
        .take(5)
        .map(|(at, ms)| ((at - t0_ms) as f64 / 1000.0, *ms))
        .collect()
}

/// Write each tick's points until the generator hangs up, then everything
/// still queued (up to 60 s).
fn write(
    mut out: Out,
    rx: &crossbeam_channel::Receiver<Vec<Point>>,
) -> (WriterStats, Option<KafkaCounts>, Vec<Timed>) {
    let mut batches = Vec::new();
    loop {
        let wait = match &out {
            Out::Direct(w, _) => w.next_due().map_or(Duration::from_millis(100), |d| {
                d.saturating_duration_since(Instant::now())
            }),
            Out::Kafka(_) => Duration::from_millis(100),
        };
        match rx.recv_timeout(wait) {
            Ok(points) => {
                for p in &points {
                    match &mut out {
                        Out::Direct(w, _) => {
                            let _ = w.push(p);
                        }
                        Out::Kafka(s) => s.produce(p),
                    }
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        }
        match &mut out {
            Out::Direct(w, rt) => loop {
                let (at, t) = (now_ms(), Instant::now());
                if !rt.block_on(w.flush_once(false)) {
                    break;
                }
                batches.push((at, t.elapsed().as_secs_f64() * 1000.0));
            },
            Out::Kafka(s) => {
                let _ = crate::sinks::Sink::tick(s);
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    match &mut out {
        Out::Direct(w, rt) => {
            w.hurry();
            while w.queued() > 0 && Instant::now() < deadline {
                if !rt.block_on(w.flush_once(true)) {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            (w.stats, None, batches)
        }
        Out::Kafka(s) => {
            let _ = crate::sinks::Sink::finish(s, deadline);
            (WriterStats::default(), Some(s.stats().into()), batches)
        }
    }
}

/// Carry the topic's messages (line protocol) to the server, batched, until
/// `expect` have gone, or 120 s after `stop`.
fn relay(
    k: &KafkaConfig,
    influx: &InfluxConfig,
    stop: &AtomicBool,
    expect: &AtomicU64,
    window_ms: i64,
) -> Result<(u64, WriterStats, Vec<f64>), FleetError> {
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &k.brokers)
        .set("group.id", "netforecast-fleet-relay")
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| FleetError(format!("relay: {e}")))?;
    // Every partition from its start (no group coordination needed).
    let partitions = consumer
        .fetch_metadata(Some(&k.topic), Duration::from_secs(10))
        .map_err(|e| FleetError(format!("relay: no metadata for {}: {e}", k.topic)))?
        .topics()
        .iter()
        .find(|t| t.name() == k.topic)
        .map_or(0, |t| t.partitions().len());
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(&k.topic, p as i32, rdkafka::Offset::Beginning)
            .map_err(|e| FleetError(format!("relay: {e}")))?;
    }
    consumer
        .assign(&tpl)
        .map_err(|e| FleetError(format!("relay: {e}")))?;
    let mut w = InfluxWriter::new(influx, "relay", "eth0", "relay")
        .map_err(|e| FleetError(e.to_string()))?;
    let rt = runtime()?;
    let mut n = 0u64;
    let mut lag = Vec::new();
    let mut give_up: Option<Instant> = None;
    loop {
        if n >= expect.load(Ordering::Relaxed) && w.queued() == 0 {
            break;
        }
        if stop.load(Ordering::Relaxed) && give_up.is_none() {
            give_up = Some(Instant::now() + Duration::from_secs(120));
        }
        if give_up.is_some_and(|g| Instant::now() > g) {
            break;
        }
        // Up to a batch of messages, then what is due goes out.
        for _ in 0..5000 {
            match consumer.poll(Duration::from_millis(if n == 0 { 100 } else { 5 })) {
                Some(Ok(m)) => {
                    // One message in 100 timed: window end to here.
                    if n.is_multiple_of(100)
                        && let Some(ts) = m.timestamp().to_millis()
                    {
                        lag.push((now_ms() - ts - window_ms) as f64);
                    }
                    if let Some(v) = m.payload() {
                        w.push_encoded(v.to_vec());
                        n += 1;
                    }
                }
                Some(Err(e)) => tracing::warn!("relay: {e}"),
                None => break,
            }
        }
        if n >= expect.load(Ordering::Relaxed) {
            w.hurry();
        }
        while rt.block_on(w.flush_once(false)) {}
    }
    Ok((n, w.stats, lag))
}

/// GET `url` and parse the answer as JSON.
async fn get_json(client: &reqwest::Client, url: &str) -> Option<serde_json::Value> {
    client.get(url).send().await.ok()?.json().await.ok()
}

fn query_url(base: &str, q: &str) -> String {
    let enc: String = q
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("{}/api/v1/query?query={enc}", base.trim_end_matches('/'))
}

/// How far back the probe's instant query looks for each router's newest
/// point. VictoriaMetrics looks back `step` (5 minutes unless given) and reads
/// every sample in it: with 1,000 routers at 20 points/s that is 6 million
/// samples a query late in a run, on the cores the server ingests with, which
/// is what the probe would then measure. A router with no point in the last
/// this many seconds counts as this far behind (at least): more than twice the
/// 2 s the fleet test allows.
const PROBE_LOOKBEHIND_S: i64 = 5;

/// How often the probe asks. Each question reads every router's samples of
/// the lookbehind; at 4 a second, two queries each (a count and a minimum),
/// the probe took about a third of what VictoriaMetrics spent on the run.
const PROBE_EVERY_MS: u64 = 1000;

/// Every [`PROBE_EVERY_MS`]: how old is the newest point of the router that is
/// furthest behind, counted from the end of its window. Starts once every
/// router has a point in the server.
fn probe(base: &str, hosts: usize, window_ms: i64, stop: &AtomicBool) -> Vec<Timed> {
    let Ok(rt) = runtime() else {
        return Vec::new();
    };
    let client = reqwest::Client::new();
    let sel = format!("{MEASUREMENT}_actual_mbps{{host=~\"fleet-.*\"}}");
    let url =
        query_url(base, &format!("timestamp({sel})")) + &format!("&step={PROBE_LOOKBEHIND_S}s");
    let mut lag = Vec::new();
    let mut all_in = false;
    while !stop.load(Ordering::Relaxed) {
        let asked = now_ms();
        let answer = rt.block_on(get_json(&client, &url));
        let newest = answer.as_ref().map(newest_per_router);
        if !all_in {
            all_in = newest.as_ref().is_some_and(|n| n.len() >= hosts);
        }
        if all_in {
            lag.push((asked, lag_of(asked, newest.as_deref(), hosts, window_ms)));
        }
        let spent = (now_ms() - asked).max(0) as u64;
        std::thread::sleep(Duration::from_millis(PROBE_EVERY_MS.saturating_sub(spent)));
    }
    lag
}

/// The newest point's time (Unix s) of each router in an answer to
/// `timestamp(...)`.
fn newest_per_router(j: &serde_json::Value) -> Vec<f64> {
    j["data"]["result"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter_map(|r| r["value"][1].as_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// One lag sample (ms) once every router has been seen: from the end of the
/// slowest router's newest window to `asked`. No answer, or a router missing
/// from it (no point in the lookbehind), counts as the lookbehind: the server
/// is at least that far behind, and a probe that skipped such moments would
/// miss exactly the worst of a run.
fn lag_of(asked: i64, newest: Option<&[f64]>, hosts: usize, window_ms: i64) -> f64 {
    let floor = (PROBE_LOOKBEHIND_S * 1000) as f64;
    match newest {
        Some(n) if n.len() >= hosts => {
            let oldest = n.iter().copied().fold(f64::INFINITY, f64::min);
            (asked - (oldest * 1000.0).round() as i64 - window_ms) as f64
        }
        _ => floor,
    }
}

/// Count every router's points in the server (after a flush).
fn read_back(base: &str, report: &mut FleetReport, t0_ms: i64) -> Result<(), FleetError> {
    let rt = runtime()?;
    let client = reqwest::Client::new();
    let base = base.trim_end_matches('/');
    rt.block_on(async {
        let _ = client
            .get(format!("{base}/internal/force_flush"))
            .send()
            .await;
    });
    std::thread::sleep(Duration::from_secs(2));
    let span_s = (now_ms() - t0_ms) / 1000 + 5;
    let q = query_url(
        base,
        &format!("count_over_time({MEASUREMENT}_actual_mbps{{host=~\"fleet-.*\"}}[{span_s}s])"),
    );
    let j = rt
        .block_on(get_json(&client, &q))
        .ok_or_else(|| FleetError(format!("no answer from {base} to the read-back query")))?;
    let rows = j["data"]["result"].as_array().cloned().unwrap_or_default();
    let counts: Vec<u64> = rows
        .iter()
        .filter_map(|r| r["value"][1].as_str()?.parse::<f64>().ok())
        .map(|c| c as u64)
        .collect();
    report.hosts_read = counts.len();
    report.read_back_min = counts.iter().copied().min().unwrap_or(0);
    report.read_back_max = counts.iter().copied().max().unwrap_or(0);
    report.hosts_short = counts.iter().filter(|c| **c != report.windows).count()
        + report.hosts.saturating_sub(counts.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_and_the_worst_samples_say_when_in_the_run() {
        assert_eq!(spread(Vec::new()), None);
        // 100 samples, shuffled: the 51st, the 99th and the largest.
        let v: Vec<f64> = (1..=100).map(|i| ((i * 37) % 100 + 1) as f64).collect();
        assert_eq!(spread(v), Some((51.0, 99.0, 100.0)));
        // A stall 12.5 s into a run that began at Unix ms 1,000,000.
        let mut timed = vec![(1_003_000, 900.0), (1_012_500, 7_000.0), (1_001_000, 800.0)];
        timed.extend((0..10).map(|k| (1_000_000 + k * 250, 100.0)));
        let w = worst(&mut timed, 1_000_000);
        assert_eq!(w.len(), 5);
        assert_eq!(&w[..3], &[(12.5, 7_000.0), (3.0, 900.0), (1.0, 800.0)]);
    }

    #[test]
    fn the_probe_counts_a_router_missing_or_no_answer_as_the_lookbehind() {
        let answer = serde_json::json!({"status": "success", "data": {"result": [
            {"metric": {"host": "fleet-0000"}, "value": [1000.5, "999.2"]},
            {"metric": {"host": "fleet-0001"}, "value": [1000.5, "998.95"]},
        ]}});
        let newest = newest_per_router(&answer);
        assert_eq!(newest, vec![999.2, 998.95]);
        // The slowest router's window began at 998.95 s and ended 50 ms later.
        assert_eq!(lag_of(1_000_500, Some(&newest), 2, 50), 1_500.0);
        // A third router with no point in the lookbehind, an empty answer
        // (every router behind) and no answer at all are at least 5 s.
        let floor = (PROBE_LOOKBEHIND_S * 1000) as f64;
        assert_eq!(lag_of(1_000_500, Some(&newest), 3, 50), floor);
        let empty = newest_per_router(&serde_json::json!({"data": {"result": []}}));
        assert_eq!(lag_of(1_000_500, Some(&empty), 2, 50), floor);
        assert_eq!(lag_of(1_000_500, None, 2, 50), floor);
    }
}
