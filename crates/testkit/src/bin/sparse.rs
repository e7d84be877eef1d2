//! Writes a pcap of a quiet link over hours: one TCP connection that exchanges
//! a 200-byte request and a 1,400-byte response every `gap` seconds, and a
//! 1 MB download (700 segments, every other one ACKed) every ten minutes, at
//! snap length 96. Almost every 50 ms window is silent, so the cost is the
//! windows, not the packets.
//!
//! `cargo run --release -p netforecast-testkit --bin sparse -- OUT.pcap HOURS [GAP_S]`

use engine::pcapfile::PcapWriter;
use std::io::BufWriter;
use testkit::{Tcp4, tcp4_frame};

struct Conn {
    frame: Vec<u8>,
    seq: [u32; 2],
}

impl Conn {
    /// One Ethernet/IPv4/TCP frame from side `d` (0: client) with `len` bytes.
    fn frame(&mut self, d: usize, flags: u8, len: usize) -> &[u8] {
        let (a, b) = ([10, 0, 0, 1], [198, 18, 0, 1]);
        let (src, dst, sport, dport) = if d == 0 {
            (a, b, 40000u16, 443u16)
        } else {
            (b, a, 443, 40000)
        };
        let seg = Tcp4 {
            src: (src, sport),
            dst: (dst, dport),
            seq: self.seq[d],
            ack: self.seq[1 - d],
            flags,
            len,
        };
        tcp4_frame(&seg, &mut self.frame);
        self.seq[d] = self.seq[d].wrapping_add(len as u32);
        &self.frame
    }
}

const SNAP: u32 = 96;

fn main() {
    let mut args = std::env::args().skip(1);
    let out = args.next().unwrap_or_else(|| "target/sparse.pcap".into());
    let hours: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(12.0);
    let gap_s: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let f = std::fs::File::create(&out).expect("create output");
    // Headers only (snap length 96), as hours of a link are usually kept.
    let mut w = PcapWriter::new(BufWriter::with_capacity(1 << 20, f), 1, SNAP).expect("header");
    let mut c = Conn {
        frame: Vec::with_capacity(1500),
        seq: [1_000, 5_000_000],
    };
    let t0 = 1_700_000_000_000_000_000i64;
    let end = t0 + (hours * 3600e9) as i64;
    let step = (gap_s * 1e9) as i64;
    let rtt = 20_000_000i64;
    let mut packets = 0u64;
    let mut t = t0;
    let mut next_download = t0 + 600_000_000_000;
    let mut put = |w: &mut PcapWriter<_>, t: i64, frame: &[u8]| {
        let cut = &frame[..frame.len().min(SNAP as usize)];
        w.write(t, cut, frame.len() as u32).expect("write");
        packets += 1;
    };
    while t < end {
        put(&mut w, t, c.frame(0, 0x18, 200));
        put(&mut w, t + rtt, c.frame(1, 0x18, 1400));
        put(&mut w, t + rtt + 100_000, c.frame(0, 0x10, 0));
        if t >= next_download {
            next_download += 600_000_000_000;
            // 1 MB in 700 segments at about 100 Mbit/s, every other one ACKed
            // a round trip later; written in time order.
            let mut burst: Vec<(i64, Vec<u8>)> = Vec::with_capacity(1050);
            let mut u = t + 2 * rtt;
            for k in 0..700 {
                burst.push((u, c.frame(1, 0x10, 1400).to_vec()));
                if k % 2 == 1 {
                    burst.push((u + rtt, c.frame(0, 0x10, 0).to_vec()));
                }
                u += 112_000;
            }
            burst.sort_by_key(|(t, _)| *t);
            for (t, f) in &burst {
                put(&mut w, *t, f);
            }
        }
        t += step;
    }
    eprintln!("sparse: {hours} h, {packets} packets in {out}");
}
