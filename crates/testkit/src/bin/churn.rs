//! Writes a pcap of N short TCP flows that churn through the flow table: each
//! flow is a SYN and one 100-byte data segment from its own (address, port),
//! 10 us apart, so at any time only the newest flows are active.
//!
//! `cargo run --release -p netforecast-testkit --bin churn -- OUT.pcap N`

use engine::pcapfile::PcapWriter;
use std::io::BufWriter;
use testkit::{Tcp4, tcp4_frame};

fn main() {
    let mut args = std::env::args().skip(1);
    let out = args.next().unwrap_or_else(|| "target/churn.pcap".into());
    let n: u32 = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let f = std::fs::File::create(&out).expect("create output");
    let mut w = PcapWriter::new(BufWriter::with_capacity(1 << 20, f), 1, 65535).expect("header");
    let mut t = 1_700_000_000_000_000_000i64;
    let mut frame = Vec::with_capacity(200);
    for i in 0..n {
        let b = i.to_be_bytes();
        let src = [10, b[1], b[2], b[3]];
        for (flags, seq, len) in [(0x02u8, 1000u32, 0usize), (0x18, 1001, 100)] {
            let seg = Tcp4 {
                src: (src, 1024 + (i % 60000) as u16),
                dst: ([198, 18, 0, 1], 80),
                seq,
                ack: 0,
                flags,
                len,
            };
            tcp4_frame(&seg, &mut frame);
            w.write(t, &frame, frame.len() as u32).expect("write");
            t += 10_000;
        }
    }
    eprintln!("churn: {n} flows, {} packets in {out}", 2 * n as u64);
}
