//! Hot paths, in packets/s: frame parsing, TCP analysis, window aggregation and
//! the whole engine, on the committed real capture (tests/data).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use engine::capture::{PacketSummary, parse_frame};
use engine::flow::{FlowConfig, FlowTable};
use engine::pcapfile::CaptureFile;
use engine::pipeline::{Engine, EngineConfig};
use engine::window::{PacketFacts, WindowAggregator};
use std::hint::black_box;
use std::path::Path;

struct Frame {
    lt: u32,
    data: Vec<u8>,
    orig: u32,
    ts: i64,
}

fn load() -> Vec<Frame> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/netns-bulk-steps.pcap");
    let mut f = CaptureFile::open(&p).expect("committed sample capture");
    let mut out = Vec::new();
    while let Some(r) = f.next_record().expect("readable sample") {
        out.push(Frame {
            lt: r.linktype,
            data: r.data.to_vec(),
            orig: r.orig_len,
            ts: r.ts_ns.unwrap_or(0),
        });
    }
    out
}

fn benches(c: &mut Criterion) {
    let frames = load();
    let pkts: Vec<PacketSummary> = frames
        .iter()
        .filter_map(|f| parse_frame(f.lt, &f.data, f.orig, f.ts).ok())
        .collect();
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(frames.len() as u64));
    g.bench_function("parse", |b| {
        b.iter(|| {
            for f in &frames {
                black_box(parse_frame(f.lt, black_box(&f.data), f.orig, f.ts).ok());
            }
        })
    });
    g.bench_function("flow_analysis", |b| {
        b.iter(|| {
            let mut t = FlowTable::new(FlowConfig::default());
            for p in &pkts {
                black_box(t.process(p));
            }
        })
    });
    let facts: Vec<PacketFacts> = {
        let mut t = FlowTable::new(FlowConfig::default());
        pkts.iter()
            .map(|p| {
                let a = t.process(p);
                PacketFacts {
                    ts_ns: p.ts_ns,
                    frame_len_bytes: p.frame_len_bytes,
                    ack_rtt_ns: a.ack_rtt_ns,
                    bytes_in_flight: a.bytes_in_flight,
                    direction_id: a.direction_id,
                    data: p.payload_len_bytes > 0,
                    payload_bytes: p.payload_len_bytes,
                    acked_segments: t.last_acked(),
                    zero_window: a.flags & engine::flow::flags::ZERO_WINDOW != 0,
                    retransmission: a.flags & engine::flow::flags::RETRANSMISSION != 0,
                    duplicate_ack: a.flags & engine::flow::flags::DUPLICATE_ACK != 0,
                    unacked_segments: t.unacked_segments() as u64,
                    queue_delay_ms: a.queue_delay_ms,
                    reported_bytes: a.reported_bytes,
                    pure_ack: a.flags & engine::flow::flags::PURE_ACK != 0,
                    small_window: a.flags & engine::flow::flags::SMALL_WINDOW != 0,
                }
            })
            .collect()
    };
    g.bench_function("window_aggregation", |b| {
        b.iter(|| {
            let mut w = WindowAggregator::new(50_000_000, 600_000_000_000);
            let mut n = 0u64;
            for f in &facts {
                w.push(f, &mut |_| n += 1);
            }
            w.finish(&mut |_| n += 1);
            black_box(n)
        })
    });
    g.bench_function("engine_frames_to_windows", |b| {
        b.iter(|| {
            let mut e = Engine::new(EngineConfig::default());
            let mut n = 0u64;
            for f in &frames {
                e.frame(f.lt, &f.data, f.orig, Some(f.ts), &mut |_| n += 1);
            }
            e.finish(&mut |_| n += 1);
            black_box(n)
        })
    });
    g.finish();
}

criterion_group!(engine, benches);
criterion_main!(engine);
