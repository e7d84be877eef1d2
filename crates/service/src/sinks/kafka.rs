//! The Kafka sink: every point the InfluxDB sink would write (windows with a
//! forecast, event starts and ends), one message each, to one topic, through
//! librdkafka (the `rdkafka` crate, librdkafka built in).
//!
//! - Value: the point as InfluxDB line protocol (what Telegraf's Kafka
//!   consumer reads) or as JSON (`measurement`, `tags`, `fields`, `time_ms`).
//! - Key: `host/iface/stream_kind/stream`, so one stream's points stay on one
//!   partition, in order. The message timestamp is the point's.
//! - Delivery: an idempotent producer with `acks=all` and no delivery timeout:
//!   a broker that goes away and comes back gets every point once, in order
//!   (the broker drops the retried copies by producer id and sequence). Points
//!   wait in the producer's queue, bounded by `buffer_points`; beyond it new
//!   points are dropped and counted. At shutdown what the brokers have not
//!   acknowledged by the deadline is counted as unsent.
//!
//! Every point is in exactly one of: delivered, failed (refused for good),
//! dropped (queue full, unsent at shutdown, unencodable) or still queued:
//! `netforecast_kafka_points{result}` and `netforecast_kafka_queue_points`.

use super::influx::{LineEncoder, Point, Tagger};
use super::prometheus::Metrics;
use super::{Sink, SinkError};
use crate::config::{KafkaConfig, KafkaFormat};
use crate::diag::{RateLimit, warn_every};
use crate::forecast::Scored;
use rdkafka::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

static QUEUE_FULL: RateLimit = RateLimit::every(30);
static BROKER_ERROR: RateLimit = RateLimit::every(30);
static REFUSED: RateLimit = RateLimit::every(30);
static LIBRARY_SAYS: RateLimit = RateLimit::every(30);

/// What the producer's thread reports: deliveries, failures, the last error.
#[derive(Default)]
pub struct Reports {
    delivered: AtomicU64,
    failed: AtomicU64,
    purged: AtomicU64,
    /// The last client-level error (a broker down), cleared by a delivery.
    trouble: Mutex<Option<String>>,
}

impl ClientContext for Reports {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical => {
                tracing::error!("Kafka: {fac}: {message}")
            }
            // A broker that is down says so on every reconnect; `error` below
            // already reports it, so these are kept to one line in 30 s.
            RDKafkaLogLevel::Error | RDKafkaLogLevel::Warning => {
                warn_every(&LIBRARY_SAYS, format_args!("Kafka: {fac}: {message}"))
            }
            _ => tracing::debug!("Kafka: {fac}: {message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        warn_every(
            &BROKER_ERROR,
            format_args!("Kafka: {reason} ({error}); points wait in the producer's queue"),
        );
        if let Ok(mut t) = self.trouble.lock() {
            *t = Some(format!("{reason} ({error})"));
        }
    }
}

impl ProducerContext for Reports {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut t) = self.trouble.lock() {
                    *t = None;
                }
            }
            Err((
                KafkaError::MessageProduction(
                    RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight,
                ),
                _,
            )) => {
                self.purged.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, m)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                warn_every(
                    &REFUSED,
                    format_args!(
                        "Kafka refused a point for good: {e} (key {}, {} bytes)",
                        String::from_utf8_lossy(m.key().unwrap_or_default()),
                        m.payload_len()
                    ),
                );
            }
        }
    }
}

/// The sink's counts (what the producer's thread counts is in [`Reports`]).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct KafkaStats {
    /// Points handed to the sink.
    pub made: u64,
    /// Acknowledged by the brokers.
    pub delivered: u64,
    /// Refused for good (too large, not authorised, a fatal producer error).
    pub failed: u64,
    /// Dropped because the producer's queue held `buffer_points` already.
    pub dropped_queue_full: u64,
    /// Still unacknowledged at the shutdown deadline.
    pub dropped_shutdown: u64,
    /// Could not be encoded.
    pub unencodable: u64,
}

impl KafkaStats {
    /// Points made and not yet delivered, failed or dropped: in the producer's queue.
    pub fn queued(&self) -> u64 {
        self.made.saturating_sub(
            self.delivered
                + self.failed
                + self.dropped_queue_full
                + self.dropped_shutdown
                + self.unencodable,
        )
    }
}

/// Errors of the Kafka sink.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot set up the Kafka producer for {brokers}: {detail}; check KAFKA_BROKERS and the [kafka] table"
)]
pub struct KafkaSetupError {
    brokers: String,
    detail: String,
}

/// Points to a Kafka topic.
pub struct KafkaSink {
    cfg: KafkaConfig,
    client_id: String,
    producer: ThreadedProducer<Reports>,
    encoder: LineEncoder,
    tagger: Tagger,
    metrics: Arc<Metrics>,
    made: u64,
    dropped_queue_full: u64,
    unencodable: u64,
    /// Counts of producers replaced after a fatal error.
    retired: KafkaStats,
    dropped_shutdown: u64,
}

fn producer(cfg: &KafkaConfig, client_id: &str) -> Result<ThreadedProducer<Reports>, String> {
    ClientConfig::new()
        .set("bootstrap.servers", &cfg.brokers)
        .set("client.id", client_id)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        // No delivery timeout: a point waits for the brokers as long as the
        // queue has room (an idempotent producer that timed a message out
        // could not keep the order of what follows).
        .set("message.timeout.ms", "0")
        .set(
            "queue.buffering.max.messages",
            cfg.buffer_points.to_string(),
        )
        .set("queue.buffering.max.kbytes", "2097151")
        .set("linger.ms", cfg.linger_ms.to_string())
        .set("compression.type", &cfg.compression)
        .set("reconnect.backoff.ms", "100")
        .set("reconnect.backoff.max.ms", "2000")
        .set_log_level(RDKafkaLogLevel::Warning)
        .create_with_context(Reports::default())
        .map_err(|e| e.to_string())
}

impl KafkaSink {
    /// A producer for `cfg`; points tagged host, iface and model like the
    /// InfluxDB sink's. Connects in the background: a broker that is not up
    /// yet is waited for, its points queued.
    pub fn new(
        cfg: &KafkaConfig,
        host: &str,
        iface: &str,
        model: &str,
        metrics: Arc<Metrics>,
    ) -> Result<Self, KafkaSetupError> {
        let client_id = format!("netforecast-{host}");
        let producer = producer(cfg, &client_id).map_err(|detail| KafkaSetupError {
            brokers: cfg.brokers.clone(),
            detail,
        })?;
        metrics.set_kafka_failing(None);
        Ok(KafkaSink {
            cfg: cfg.clone(),
            client_id,
            producer,
            encoder: LineEncoder::new("traffic_prediction", host, iface, model)
                .with_fields(&cfg.fields),
            tagger: Tagger::default(),
            metrics,
            made: 0,
            dropped_queue_full: 0,
            unencodable: 0,
            retired: KafkaStats::default(),
            dropped_shutdown: 0,
        })
    }

    /// Where every point is now.
    pub fn stats(&self) -> KafkaStats {
        let r = self.producer.context();
        KafkaStats {
            made: self.made,
            delivered: self.retired.delivered + r.delivered.load(Ordering::Relaxed),
            failed: self.retired.failed + r.failed.load(Ordering::Relaxed),
            dropped_queue_full: self.dropped_queue_full,
            dropped_shutdown: self.dropped_shutdown + r.purged.load(Ordering::Relaxed),
            unencodable: self.unencodable,
        }
    }

    /// The message key of a point.
    pub fn key(&self, p: &Point) -> String {
        let tags = self.encoder.tags(p);
        let tag = |k: &str| tags.iter().find(|(n, _)| *n == k).map_or("", |(_, v)| *v);
        format!(
            "{}/{}/{}/{}",
            tag("host"),
            tag("iface"),
            tag("stream_kind"),
            tag("stream")
        )
    }

    /// The message value of a point.
    pub fn value(&self, p: &Point) -> Result<Vec<u8>, String> {
        match self.cfg.format {
            KafkaFormat::Line => self.encoder.encode(p).map_err(|e| e.to_string()),
            KafkaFormat::Json => {
                let tags: serde_json::Map<String, serde_json::Value> = self
                    .encoder
                    .tags(p)
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.into()))
                    .collect();
                let mut fields: serde_json::Map<String, serde_json::Value> = p
                    .fields
                    .iter()
                    .filter(|(k, v)| v.is_finite() && self.encoder.writes(p, k))
                    .map(|(k, v)| ((*k).to_owned(), (*v).into()))
                    .collect();
                if let Some(e) = &p.event {
                    fields.insert("text".into(), e.text.as_str().into());
                }
                serde_json::to_vec(&serde_json::json!({
                    "measurement": self.encoder.measurement(p),
                    "tags": tags,
                    "fields": fields,
                    "time_ms": p.ts_ms,
                }))
                .map_err(|e| e.to_string())
            }
        }
    }

    /// Produce one point (the sink's windows and events come this way).
    pub fn produce(&mut self, p: &Point) {
        self.made += 1;
        let value = match self.value(p) {
            Ok(v) => v,
            Err(e) => {
                self.unencodable += 1;
                tracing::error!("Kafka: cannot encode a point: {e}");
                return;
            }
        };
        let key = self.key(p);
        let record = BaseRecord::to(&self.cfg.topic)
            .key(&key)
            .payload(&value)
            .timestamp(p.ts_ms);
        match self.producer.send(record) {
            Ok(()) => {}
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                self.dropped_queue_full += 1;
                warn_every(
                    &QUEUE_FULL,
                    format_args!(
                        "Kafka: {} points wait for the brokers (kafka.buffer_points); new points are dropped until they take some",
                        self.cfg.buffer_points
                    ),
                );
            }
            Err((e, _)) => {
                self.retired.failed += 1;
                warn_every(&REFUSED, format_args!("Kafka refused a point: {e}"));
            }
        }
    }

    /// A producer in a fatal state (an idempotence error) takes no more
    /// points: its queue is given up (counted failed) and a new one starts.
    fn recover(&mut self) {
        let Some((code, why)) = self.producer.client().fatal_error() else {
            return;
        };
        tracing::error!(
            "Kafka: the producer failed for good ({code:?}: {why}); its unacknowledged points are lost, a new producer takes over"
        );
        match producer(&self.cfg, &self.client_id) {
            Ok(fresh) => {
                let old = std::mem::replace(&mut self.producer, fresh);
                old.purge(rdkafka::producer::PurgeConfig::default().queue().inflight());
                let _ = old.flush(Duration::from_secs(1));
                let r = old.context();
                self.retired.delivered += r.delivered.load(Ordering::Relaxed);
                // A dead producer's purged points are failures, not shutdown.
                self.retired.failed +=
                    r.failed.load(Ordering::Relaxed) + r.purged.load(Ordering::Relaxed);
            }
            Err(e) => tracing::error!("Kafka: cannot start a new producer: {e}"),
        }
    }

    fn publish(&self) {
        let s = self.stats();
        let m = &self.metrics;
        for (result, n) in [
            ("made", s.made),
            ("delivered", s.delivered),
            ("failed", s.failed),
            ("dropped_queue_full", s.dropped_queue_full),
            ("dropped_shutdown", s.dropped_shutdown),
            ("unencodable", s.unencodable),
        ] {
            m.kafka_points.with_label_values(&[result]).set(n as i64);
        }
        let queued = s.queued();
        m.kafka_queue.set(queued as i64);
        let trouble = self
            .producer
            .context()
            .trouble
            .lock()
            .ok()
            .and_then(|t| t.clone());
        m.set_kafka_failing(trouble.filter(|_| queued > 0));
    }
}

impl Sink for KafkaSink {
    fn begin(&mut self, index: usize, name: &str) -> Result<(), SinkError> {
        self.tagger.begin(index, name);
        Ok(())
    }

    fn end(
        &mut self,
        index: usize,
        _summary: &crate::capture::CaptureSummary,
    ) -> Result<(), SinkError> {
        self.tagger.end(index);
        Ok(())
    }

    fn events(&mut self, changes: &[crate::events::Change]) -> Result<(), SinkError> {
        for c in changes {
            let p = self.tagger.event_point(c);
            self.produce(&p);
        }
        Ok(())
    }

    fn window(&mut self, s: &Scored) -> Result<(), SinkError> {
        if s.at_target.is_none() && s.issued.is_none() {
            return Ok(());
        }
        let p = self.tagger.window_point(s, self.metrics.kernel_drops.get());
        self.produce(&p);
        Ok(())
    }

    fn tick(&mut self) -> Result<(), SinkError> {
        self.recover();
        self.publish();
        Ok(())
    }

    fn finish(&mut self, deadline: Instant) -> Result<(), SinkError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if self.producer.flush(left).is_err() {
            let unsent = self.stats().queued();
            tracing::error!(
                "Kafka: {unsent} points still unacknowledged at the shutdown deadline are dropped"
            );
            self.producer
                .purge(rdkafka::producer::PurgeConfig::default().queue().inflight());
            let _ = self.producer.flush(Duration::from_secs(1));
        }
        self.publish();
        let s = self.stats();
        tracing::info!(
            "Kafka: {} points made, {} delivered, {} failed, {} dropped (queue full), {} unsent at shutdown, {} unencodable",
            s.made,
            s.delivered,
            s.failed,
            s.dropped_queue_full,
            s.dropped_shutdown,
            s.unencodable
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(format: KafkaFormat) -> KafkaSink {
        let cfg = KafkaConfig {
            // Nothing listens there: the producer only queues.
            brokers: "127.0.0.1:1".into(),
            format,
            ..KafkaConfig::default()
        };
        KafkaSink::new(&cfg, "r1", "eth0", "m1", Metrics::new()).unwrap()
    }

    fn point() -> Point {
        Point {
            ts_ms: 1_700_000_000_050,
            fields: vec![("actual_mbps", 12.5), ("predicted_mbps", f64::NAN)],
            iface: Some("eth1".into()),
            stream: Some(("host", "10.0.0.1".into())),
            ..Point::default()
        }
    }

    #[test]
    fn a_point_is_keyed_by_its_stream_and_encoded_as_line_protocol_or_json() {
        let k = sink(KafkaFormat::Line);
        let p = point();
        assert_eq!(k.key(&p), "r1/eth1/host/10.0.0.1");
        let line = String::from_utf8(k.value(&p).unwrap()).unwrap();
        assert_eq!(
            line,
            "traffic_prediction,host=r1,iface=eth1,model=m1,stream=10.0.0.1,stream_kind=host actual_mbps=12.5 1700000000050\n"
        );
        let j = sink(KafkaFormat::Json);
        let v: serde_json::Value = serde_json::from_slice(&j.value(&p).unwrap()).unwrap();
        assert_eq!(v["measurement"], "traffic_prediction");
        assert_eq!(v["tags"]["stream"], "10.0.0.1");
        assert_eq!(v["tags"]["iface"], "eth1");
        assert_eq!(v["fields"]["actual_mbps"], 12.5);
        assert!(
            v["fields"].get("predicted_mbps").is_none(),
            "NaN is left out"
        );
        assert_eq!(v["time_ms"], 1_700_000_000_050i64);
    }

    #[test]
    fn a_field_list_leaves_the_other_fields_out_in_either_format() {
        let mut p = point();
        p.fields.push(("congestion_prob", 0.5));
        for format in [KafkaFormat::Line, KafkaFormat::Json] {
            let cfg = KafkaConfig {
                brokers: "127.0.0.1:1".into(),
                format,
                fields: vec!["congestion_prob".into()],
                ..KafkaConfig::default()
            };
            let k = KafkaSink::new(&cfg, "r1", "eth0", "m1", Metrics::new()).unwrap();
            let v = String::from_utf8(k.value(&p).unwrap()).unwrap();
            assert!(v.contains("congestion_prob"), "{v}");
            assert!(!v.contains("actual_mbps"), "{v}");
        }
    }

    #[test]
    fn with_no_broker_points_queue_and_are_counted_unsent_at_the_deadline() {
        let cfg = KafkaConfig {
            brokers: "127.0.0.1:1".into(),
            buffer_points: 5,
            ..KafkaConfig::default()
        };
        let metrics = Metrics::new();
        let mut k = KafkaSink::new(&cfg, "r1", "eth0", "m1", Arc::clone(&metrics)).unwrap();
        for _ in 0..8 {
            k.produce(&point());
        }
        k.tick().unwrap();
        assert_eq!(metrics.kafka_queue.get(), 5);
        k.finish(Instant::now() + Duration::from_millis(200))
            .unwrap();
        let s = k.stats();
        assert_eq!(
            (
                s.made,
                s.delivered,
                s.dropped_queue_full,
                s.dropped_shutdown
            ),
            (8, 0, 3, 5)
        );
        assert_eq!(
            metrics
                .kafka_points
                .with_label_values(&["dropped_shutdown"])
                .get(),
            5
        );
    }
}
