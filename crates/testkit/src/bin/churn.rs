//! Writes a pcap of N short TCP flows that churn through the flow table: each
//! flow is a SYN and one 100-byte data segment from its own (address, port),
//! 10 us apart, so at any time only the newest flows are active.
//!
//! `cargo run --release -p netforecast-testkit --bin churn -- OUT.pcap N`

use engine::pcapfile::PcapWriter;
use std::io::BufWriter;

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
            frame.clear();
            frame.extend_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00]);
            frame.extend_from_slice(&[0x45, 0]);
            frame.extend_from_slice(&((40 + len) as u16).to_be_bytes());
            frame.extend_from_slice(&[0, 1, 0x40, 0, 64, 6, 0, 0]);
            frame.extend_from_slice(&src);
            frame.extend_from_slice(&[198, 18, 0, 1]);
            frame.extend_from_slice(&(1024 + (i % 60000) as u16).to_be_bytes());
            frame.extend_from_slice(&80u16.to_be_bytes());
            frame.extend_from_slice(&seq.to_be_bytes());
            frame.extend_from_slice(&0u32.to_be_bytes());
            frame.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
            frame.extend(std::iter::repeat_n(0x61u8, len));
            w.write(t, &frame, frame.len() as u32).expect("write");
            t += 10_000;
        }
    }
    eprintln!("churn: {n} flows, {} packets in {out}", 2 * n as u64);
}
