//! Reads a Kafka topic from its first offset on every partition and says what
//! is there, as one JSON object: messages, distinct messages (key and value),
//! duplicates, messages per partition and per `stream_kind`, the partition
//! each key's messages were in (`per_key`; a key found in two is listed in
//! `keys_split`), and points of `traffic_prediction` whose timestamp goes
//! back within their key (an order the producer must keep).
//!
//! Stops when `--expect N` messages have been read and nothing more came for
//! `--idle S` seconds (default 3), or after `--timeout S` (default 60).
//!
//! `--dump FILE` also writes every message's value there, one after another
//! (line protocol ends each with a newline).
//!
//! `kafka-census BROKERS TOPIC [--expect N] [--idle S] [--timeout S] [--dump FILE]`

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn usage(why: &str) -> ExitCode {
    eprintln!(
        "kafka-census: {why}; usage: kafka-census BROKERS TOPIC [--expect N] [--idle S] [--timeout S] [--dump FILE]"
    );
    ExitCode::from(2)
}

/// The value of `tag` in a line of line protocol (tags hold no escaped commas here).
fn tag<'a>(line: &'a str, tag: &str) -> Option<&'a str> {
    let head = line.split(' ').next()?;
    head.split(',')
        .skip(1)
        .find_map(|kv| kv.strip_prefix(tag)?.strip_prefix('='))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        return usage("give the brokers and the topic");
    }
    let (brokers, topic) = (&args[0], &args[1]);
    let (mut expect, mut idle, mut timeout) = (0u64, 3.0f64, 60.0f64);
    let mut dump: Option<std::io::BufWriter<std::fs::File>> = None;
    let mut it = args[2..].iter();
    while let Some(flag) = it.next() {
        let Some(v) = it.next() else {
            return usage(&format!("{flag} needs a value"));
        };
        let ok = match flag.as_str() {
            "--expect" => v.parse().map(|v| expect = v).is_ok(),
            "--idle" => v.parse().map(|v| idle = v).is_ok(),
            "--timeout" => v.parse().map(|v| timeout = v).is_ok(),
            "--dump" => match std::fs::File::create(v) {
                Ok(f) => {
                    dump = Some(std::io::BufWriter::new(f));
                    true
                }
                Err(e) => {
                    eprintln!("kafka-census: cannot create {v}: {e}");
                    return ExitCode::FAILURE;
                }
            },
            _ => return usage(&format!("unknown option {flag}")),
        };
        if !ok {
            return usage(&format!("{flag} {v} is not a number"));
        }
    }
    let consumer: BaseConsumer = match ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("kafka-census-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kafka-census: cannot make a consumer for {brokers}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(timeout);
    // Every partition of the topic, from its first offset.
    let partitions = loop {
        match consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            Ok(m) => {
                let n = m
                    .topics()
                    .iter()
                    .find(|t| t.name() == topic)
                    .map_or(0, |t| t.partitions().len());
                if n > 0 {
                    break n;
                }
            }
            Err(e) if Instant::now() > deadline => {
                eprintln!("kafka-census: no metadata for {topic} from {brokers}: {e}");
                return ExitCode::FAILURE;
            }
            Err(_) => {}
        }
        if Instant::now() > deadline {
            eprintln!("kafka-census: topic {topic} has no partitions at {brokers}");
            return ExitCode::FAILURE;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        if let Err(e) = tpl.add_partition_offset(topic, p as i32, Offset::Beginning) {
            eprintln!("kafka-census: {e}");
            return ExitCode::FAILURE;
        }
    }
    if let Err(e) = consumer.assign(&tpl) {
        eprintln!("kafka-census: cannot assign {topic}'s partitions: {e}");
        return ExitCode::FAILURE;
    }
    let mut messages = 0u64;
    let mut seen: HashSet<(Vec<u8>, Vec<u8>)> = HashSet::new();
    let mut per_partition: BTreeMap<i32, u64> = BTreeMap::new();
    let mut per_kind: BTreeMap<String, u64> = BTreeMap::new();
    let mut per_key: BTreeMap<String, i32> = BTreeMap::new();
    let mut keys_split: BTreeSet<String> = BTreeSet::new();
    let mut last_ts: HashMap<Vec<u8>, i64> = HashMap::new();
    let mut reordered = 0u64;
    let mut errors = 0u64;
    let mut last_new = Instant::now();
    loop {
        let now = Instant::now();
        if now > deadline
            || (messages >= expect && now.duration_since(last_new).as_secs_f64() >= idle)
        {
            break;
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(e)) => {
                errors += 1;
                if errors <= 5 {
                    eprintln!("kafka-census: {e}");
                }
            }
            Some(Ok(m)) => {
                last_new = Instant::now();
                messages += 1;
                *per_partition.entry(m.partition()).or_default() += 1;
                let key = m.key().unwrap_or_default().to_vec();
                let shown = String::from_utf8_lossy(&key).into_owned();
                if *per_key.entry(shown.clone()).or_insert(m.partition()) != m.partition() {
                    keys_split.insert(shown);
                }
                let value = m.payload().unwrap_or_default().to_vec();
                let line = String::from_utf8_lossy(&value);
                let kind = tag(&line, "stream_kind").unwrap_or("(none)").to_owned();
                *per_kind.entry(kind).or_default() += 1;
                if line.starts_with("traffic_prediction,") {
                    let ts: i64 = line
                        .trim_end()
                        .rsplit(' ')
                        .next()
                        .and_then(|t| t.parse().ok())
                        .unwrap_or(i64::MIN);
                    let prev = last_ts.insert(key.clone(), ts);
                    if prev.is_some_and(|p| p >= ts) {
                        reordered += 1;
                    }
                }
                if let Some(d) = dump.as_mut()
                    && let Err(e) = std::io::Write::write_all(d, &value)
                {
                    eprintln!("kafka-census: cannot write the dump: {e}");
                    return ExitCode::FAILURE;
                }
                seen.insert((key, value));
            }
        }
    }
    if let Some(Err(e)) = dump.as_mut().map(std::io::Write::flush) {
        eprintln!("kafka-census: cannot write the dump: {e}");
        return ExitCode::FAILURE;
    }
    let out = serde_json::json!({
        "messages": messages,
        "distinct": seen.len(),
        "duplicates": messages - seen.len() as u64,
        "reordered": reordered,
        "partitions": partitions,
        "per_partition": per_partition,
        "per_stream_kind": per_kind,
        "per_key": per_key,
        "keys_split": keys_split,
        "errors": errors,
        "seconds": start.elapsed().as_secs_f64(),
    });
    println!("{out}");
    ExitCode::SUCCESS
}
