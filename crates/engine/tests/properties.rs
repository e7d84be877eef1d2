//! Property tests for the invariants in STYLE.md: the parser and the file reader
//! never panic; window bytes equal counted bytes; windows are contiguous; results
//! do not depend on how input is batched or on when live mode advances the clock.

use engine::capture::{Endpoints, PacketSummary, SackBlocks, linktype, parse_frame};
use engine::pcapfile::{CaptureFile, PcapWriter};
use engine::pipeline::{Engine, EngineConfig};
use engine::window::WindowRow;
use proptest::prelude::*;
use std::path::Path;

const W: i64 = 50_000_000;

fn arb_packet() -> impl Strategy<Value = (u8, bool, u32, u32, u16, u32, i64)> {
    // (flow, from_a, seq, ack, flags, payload, time step ns)
    (
        0u8..3,
        any::<bool>(),
        any::<u32>(),
        any::<u32>(),
        0u16..0x40,
        0u32..3000,
        0i64..120_000_000,
    )
}

fn packets(spec: &[(u8, bool, u32, u32, u16, u32, i64)]) -> Vec<PacketSummary> {
    let mut t = 1_700_000_000_000_000_000i64;
    spec.iter()
        .map(|&(flow, from_a, seq, ack, flags, len, step)| {
            t += step;
            let a = [10, 0, 0, 1 + flow, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            let b = [10, 0, 0, 200, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            let (src, dst, sport, dport) = if from_a {
                (a, b, 5000, 80)
            } else {
                (b, a, 80, 5000)
            };
            PacketSummary {
                ts_ns: t,
                frame_len_bytes: 54 + len,
                ends: Endpoints {
                    src,
                    dst,
                    sport,
                    dport,
                    v6: false,
                },
                seq,
                ack,
                flags,
                window: (seq % 3) as u16,
                payload_len_bytes: len,
                sack: SackBlocks::default(),
                options_cut: false,
                tsval: None,
            }
        })
        .collect()
}

fn run(pkts: &[PacketSummary], advance_every: Option<usize>) -> Vec<WindowRow> {
    let mut e = Engine::new(EngineConfig::default());
    let mut rows = Vec::new();
    for (i, p) in pkts.iter().enumerate() {
        if let Some(k) = advance_every
            && i % k == 0
        {
            // Live mode may advance to any time not after the next packet.
            e.advance_to(p.ts_ns, &mut |r| rows.push(r));
        }
        e.packet(p, &mut |r| rows.push(r));
    }
    e.finish(&mut |r| rows.push(r));
    rows
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn parser_never_panics(lt in prop::sample::select(vec![0u32, 1, 9, 12, 14, 50, 101, 108, 113, 228, 229, 276, 147]),
                           data in prop::collection::vec(any::<u8>(), 0..200),
                           extra in 0u32..100_000) {
        let _ = parse_frame(lt, &data, data.len() as u32 + extra, 0);
    }

    #[test]
    fn parser_never_panics_on_mutated_tcp(pos in 0usize..80, byte in any::<u8>(), cut in 0usize..90) {
        let mut f = Vec::new();
        etherparse::PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([1, 2, 3, 4], [5, 6, 7, 8], 64)
            .tcp(1, 2, 3, 4)
            .write(&mut f, &[9; 20])
            .unwrap();
        let p = pos % f.len();
        f[p] = byte;
        let c = cut.min(f.len());
        let _ = parse_frame(linktype::ETHERNET, &f[..c], f.len() as u32, 0);
    }

    #[test]
    fn reader_never_panics(data in prop::collection::vec(any::<u8>(), 0..400), magic in 0usize..3) {
        let mut bytes = match magic {
            0 => vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0],
            1 => vec![0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 28, 0, 0, 0],
            _ => Vec::new(),
        };
        bytes.extend_from_slice(&data);
        if let Ok(mut r) = CaptureFile::from_reader(Path::new("mem"), Box::new(std::io::Cursor::new(bytes))) {
            for _ in 0..1000 {
                match r.next_record() {
                    Ok(Some(rec)) => { let _ = parse_frame(rec.linktype, rec.data, rec.orig_len, 0); }
                    _ => break,
                }
            }
        }
    }

    #[test]
    fn window_bytes_equal_packet_bytes_and_windows_are_contiguous(spec in prop::collection::vec(arb_packet(), 1..300)) {
        let pkts = packets(&spec);
        let rows = run(&pkts, None);
        let total: u64 = pkts.iter().map(|p| p.frame_len_bytes as u64).sum();
        prop_assert_eq!(rows.iter().map(|r| r.size_bytes).sum::<u64>(), total);
        prop_assert_eq!(rows.iter().map(|r| r.packets).sum::<u64>(), pkts.len() as u64);
        for w in rows.windows(2) {
            prop_assert_eq!(w[1].start_ns - w[0].start_ns, W);
        }
        prop_assert_eq!(rows[0].start_ns, pkts[0].ts_ns.div_euclid(W) * W);
        for r in &rows {
            prop_assert_eq!(r.is_silent, r.packets == 0);
            prop_assert!(r.delay_s.is_finite() && r.iat_std_s >= 0.0);
        }
    }

    #[test]
    fn results_do_not_depend_on_batching_or_clock_advances(spec in prop::collection::vec(arb_packet(), 1..300), k in 1usize..17) {
        let pkts = packets(&spec);
        prop_assert_eq!(run(&pkts, None), run(&pkts, Some(k)));
    }
}

#[test]
fn reader_survives_truncation_at_every_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small.pcap");
    let mut w = PcapWriter::new(Vec::new(), 1, 65535).unwrap();
    for i in 0..6u32 {
        let mut f = Vec::new();
        etherparse::PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([1, 2, 3, 4], [5, 6, 7, 8], 64)
            .tcp(1, 2, i * 10, 4)
            .write(&mut f, &[9; 10])
            .unwrap();
        w.write(1_000_000_000 * i as i64, &f, f.len() as u32)
            .unwrap();
    }
    let full = w.into_inner();
    for cut in 0..full.len() {
        std::fs::write(&path, &full[..cut]).unwrap();
        match CaptureFile::open(&path) {
            Err(_) => assert!(cut < 24, "a complete header must open (cut at {cut})"),
            Ok(mut r) => {
                let mut n = 0;
                while let Ok(Some(_)) = r.next_record() {
                    n += 1;
                }
                assert!(n <= 6);
                let complete = (cut - 24) / (16 + 64);
                assert_eq!(n, complete, "cut at {cut}");
                assert_eq!(r.notes.cut_short_at.is_some(), (cut - 24) % 80 != 0);
            }
        }
    }
}

#[test]
fn a_million_flows_keep_memory_bounded() {
    let cfg = EngineConfig {
        flow: engine::flow::FlowConfig {
            max_flows: 50_000,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut e = Engine::new(cfg);
    let mut rows = 0u64;
    let t0 = 1_700_000_000_000_000_000i64;
    for i in 0..1_000_000u32 {
        let b = i.to_be_bytes();
        let p = PacketSummary {
            ts_ns: t0 + i as i64 * 1_000,
            frame_len_bytes: 74,
            ends: Endpoints {
                src: [10, b[1], b[2], b[3], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                dst: [198, 18, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                sport: 1024 + (i % 60000) as u16,
                dport: 80,
                v6: false,
            },
            seq: i,
            ack: 0,
            flags: 0x02,
            window: 100,
            payload_len_bytes: 0,
            sack: SackBlocks::default(),
            options_cut: false,
            tsval: None,
        };
        e.packet(&p, &mut |_| rows += 1);
    }
    let c = e.counters();
    assert_eq!(c.flow.flows_created, 1_000_000);
    assert!(c.flow.flows_peak <= 50_000, "peak {}", c.flow.flows_peak);
    assert_eq!(c.flow.evicted_cap, 1_000_000 - 50_000);
    assert_eq!(c.flow.flows_active, 50_000);
}
