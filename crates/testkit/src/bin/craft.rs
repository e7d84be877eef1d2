//! Writes one small pcap per TCP edge case into a directory, for the tshark
//! oracle (scripts/oracle.py) and the tests: retransmission, partial ACK, SACK,
//! capture gap, sequence wrap, SYN/FIN/RST, zero window, timestamps going
//! backwards, port reuse, IPv6, keep-alive, SACK cut by the snap length.
//!
//! `cargo run --release -p netforecast-testkit --bin craft -- OUTDIR`
//!
//! Frames are built by hand (Ethernet, IPv4 or IPv6, TCP with options) so any
//! option layout can be made; tshark does not check checksums by default.

use engine::pcapfile::PcapWriter;
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

const MS: i64 = 1_000_000;
const T0: i64 = 1_700_000_000 * 1_000_000_000;

const SYN: u8 = 0x02;
const FIN: u8 = 0x01;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

struct Conn {
    w: PcapWriter<BufWriter<File>>,
    v6: bool,
    a_port: u16,
    b_port: u16,
    snaplen: usize,
}

struct Seg<'a> {
    t_ms: f64,
    from_a: bool,
    seq: u32,
    ack: u32,
    flags: u8,
    len: u32,
    win: u16,
    sack: &'a [(u32, u32)],
}

fn seg(t_ms: f64, from_a: bool, seq: u32, ack: u32, flags: u8, len: u32) -> Seg<'static> {
    Seg {
        t_ms,
        from_a,
        seq,
        ack,
        flags,
        len,
        win: 65535,
        sack: &[],
    }
}

impl Conn {
    fn new(dir: &Path, name: &str, v6: bool) -> Conn {
        let f = File::create(dir.join(name)).expect("create output file");
        Conn {
            w: PcapWriter::new(BufWriter::new(f), 1, 65535).expect("write header"),
            v6,
            a_port: 40000,
            b_port: 5201,
            snaplen: 65535,
        }
    }

    fn put(&mut self, s: &Seg) {
        let mut opts: Vec<u8> = Vec::new();
        if !s.sack.is_empty() {
            opts.extend_from_slice(&[1, 1, 5, (2 + 8 * s.sack.len()) as u8]);
            for (l, r) in s.sack {
                opts.extend_from_slice(&l.to_be_bytes());
                opts.extend_from_slice(&r.to_be_bytes());
            }
        }
        while !opts.len().is_multiple_of(4) {
            opts.push(1);
        }
        let mut tcp = Vec::new();
        let (sp, dp) = if s.from_a {
            (self.a_port, self.b_port)
        } else {
            (self.b_port, self.a_port)
        };
        tcp.extend_from_slice(&sp.to_be_bytes());
        tcp.extend_from_slice(&dp.to_be_bytes());
        tcp.extend_from_slice(&s.seq.to_be_bytes());
        tcp.extend_from_slice(&s.ack.to_be_bytes());
        tcp.push((((20 + opts.len()) / 4) as u8) << 4);
        tcp.push(s.flags);
        tcp.extend_from_slice(&s.win.to_be_bytes());
        tcp.extend_from_slice(&[0, 0, 0, 0]);
        tcp.extend_from_slice(&opts);
        tcp.extend(std::iter::repeat_n(0x61u8, s.len as usize));
        let mut f = vec![
            2,
            0,
            0,
            0,
            0,
            if s.from_a { 1 } else { 2 },
            2,
            0,
            0,
            0,
            0,
            if s.from_a { 2 } else { 1 },
        ];
        let (a, b) = if s.from_a { (1u8, 2u8) } else { (2, 1) };
        if self.v6 {
            f.extend_from_slice(&[0x86, 0xDD]);
            f.extend_from_slice(&[0x60, 0, 0, 0]);
            f.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
            f.extend_from_slice(&[6, 64]);
            let mut src = [0u8; 16];
            src[0] = 0xfd;
            src[15] = a;
            let mut dst = src;
            dst[15] = b;
            f.extend_from_slice(&src);
            f.extend_from_slice(&dst);
        } else {
            f.extend_from_slice(&[0x08, 0x00]);
            f.extend_from_slice(&[0x45, 0]);
            f.extend_from_slice(&((20 + tcp.len()) as u16).to_be_bytes());
            f.extend_from_slice(&[0, 1, 0x40, 0, 64, 6, 0, 0]);
            f.extend_from_slice(&[198, 18, 0, a]);
            f.extend_from_slice(&[198, 18, 0, b]);
        }
        f.extend_from_slice(&tcp);
        let ts = T0 + (s.t_ms * MS as f64) as i64;
        let cap = f.len().min(self.snaplen);
        self.w
            .write(ts, &f[..cap], f.len() as u32)
            .expect("write record");
    }

    fn all(&mut self, segs: &[Seg]) {
        for s in segs {
            self.put(s);
        }
    }

    /// Three-way handshake from ISNs `ia` (A) and `ib` (B) starting at `t`.
    fn handshake(&mut self, t: f64, ia: u32, ib: u32) {
        self.all(&[
            seg(t, true, ia, 0, SYN, 0),
            seg(t + 10.0, false, ib, ia.wrapping_add(1), SYN | ACK, 0),
            seg(
                t + 20.0,
                true,
                ia.wrapping_add(1),
                ib.wrapping_add(1),
                ACK,
                0,
            ),
        ]);
    }
}

/// A bulk transfer A->B of `n` segments of `mss`, ACK every second segment after
/// `rtt` ms, starting at `t`; returns A's next sequence number.
#[allow(clippy::too_many_arguments)] // a fixture generator: every knob of one case is an argument
fn bulk(
    c: &mut Conn,
    t: f64,
    seq0: u32,
    bseq: u32,
    n: u32,
    mss: u32,
    gap_ms: f64,
    rtt: f64,
) -> u32 {
    let mut segs = Vec::new();
    for i in 0..n {
        let ts = t + i as f64 * gap_ms;
        segs.push((ts, true, seq0.wrapping_add(i * mss), i));
        if i % 2 == 1 {
            segs.push((ts + rtt, false, seq0.wrapping_add((i + 1) * mss), i));
        }
    }
    segs.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    for (ts, from_a, num, _) in segs {
        if from_a {
            c.put(&seg(ts, true, num, bseq, ACK | PSH, mss));
        } else {
            c.put(&seg(ts, false, bseq, num, ACK, 0));
        }
    }
    seq0.wrapping_add(n * mss)
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/crafted".into());
    let dir = Path::new(&dir);
    std::fs::create_dir_all(dir).expect("create output directory");
    let (ia, ib) = (1000u32, 5000u32);

    // Retransmission after a timeout, then a duplicate (spurious) retransmission.
    let mut c = Conn::new(dir, "retransmission.pcap", false);
    c.handshake(0.0, ia, ib);
    let s = ia + 1;
    c.all(&[
        seg(30.0, true, s, ib + 1, ACK, 1000),
        seg(31.0, true, s + 1000, ib + 1, ACK, 1000),
        seg(60.0, false, ib + 1, s + 1000, ACK, 0),
        seg(250.0, true, s + 1000, ib + 1, ACK, 1000),
        seg(262.0, false, ib + 1, s + 2000, ACK, 0),
        seg(300.0, true, s + 1000, ib + 1, ACK, 1000),
        seg(310.0, false, ib + 1, s + 2000, ACK, 0),
    ]);
    bulk(&mut c, 320.0, s + 2000, ib + 1, 40, 1448, 1.0, 12.0);

    // Partial ACKs: the receiver acknowledges half a segment at a time.
    let mut c = Conn::new(dir, "partial-ack.pcap", false);
    c.handshake(0.0, ia, ib);
    c.all(&[
        seg(30.0, true, s, ib + 1, ACK, 2000),
        seg(30.5, true, s + 2000, ib + 1, ACK, 2000),
        seg(40.0, false, ib + 1, s + 1000, ACK, 0),
        seg(41.0, true, s + 4000, ib + 1, ACK, 500),
        seg(45.0, false, ib + 1, s + 3000, ACK, 0),
        seg(50.0, false, ib + 1, s + 4000, ACK, 0),
        seg(51.0, true, s + 4500, ib + 1, ACK, 500),
        seg(60.0, false, ib + 1, s + 5000, ACK, 0),
    ]);

    // Loss with SACK: one, two, three and four blocks (tshark keeps three).
    let mut c = Conn::new(dir, "sack.pcap", false);
    c.handshake(0.0, ia, ib);
    let m = 1000u32;
    let mut v = Vec::new();
    for i in 0..10 {
        v.push(seg(30.0 + i as f64, true, s + i * m, ib + 1, ACK, m));
    }
    c.all(&v);
    let sa = |k: u32| s + k * m;
    c.all(&[
        Seg {
            sack: &[(sa(2), sa(3))],
            ..seg(45.0, false, ib + 1, sa(1), ACK, 0)
        },
        seg(45.5, true, sa(10), ib + 1, ACK, m),
        Seg {
            sack: &[(sa(4), sa(5)), (sa(2), sa(3))],
            ..seg(46.0, false, ib + 1, sa(1), ACK, 0)
        },
        seg(46.5, true, sa(11), ib + 1, ACK, m),
        Seg {
            sack: &[(sa(6), sa(7)), (sa(4), sa(5)), (sa(2), sa(3))],
            ..seg(47.0, false, ib + 1, sa(1), ACK, 0)
        },
        seg(47.5, true, sa(12), ib + 1, ACK, m),
        Seg {
            sack: &[
                (sa(8), sa(9)),
                (sa(6), sa(7)),
                (sa(4), sa(5)),
                (sa(2), sa(3)),
            ],
            ..seg(48.0, false, ib + 1, sa(1), ACK, 0)
        },
        seg(48.5, true, sa(13), ib + 1, ACK, m),
        seg(60.0, true, sa(1), ib + 1, ACK, m),
        Seg {
            sack: &[(sa(4), sa(14))],
            ..seg(70.0, false, ib + 1, sa(3), ACK, 0)
        },
        seg(71.0, true, sa(3), ib + 1, ACK, m),
        seg(80.0, false, ib + 1, sa(14), ACK, 0),
        seg(81.0, true, sa(14), ib + 1, ACK, m),
    ]);

    // Capture gap: a segment the capture never saw, later ACKed.
    let mut c = Conn::new(dir, "capture-gap.pcap", false);
    c.handshake(0.0, ia, ib);
    c.all(&[
        seg(30.0, true, s, ib + 1, ACK, 1000),
        seg(31.0, true, s + 2000, ib + 1, ACK, 1000),
        seg(32.0, true, s + 3000, ib + 1, ACK, 1000),
        seg(40.0, false, ib + 1, s + 1000, ACK, 0),
        seg(41.0, true, s + 4000, ib + 1, ACK, 1000),
        seg(45.0, false, ib + 1, s + 5000, ACK, 0),
        seg(46.0, true, s + 5000, ib + 1, ACK, 1000),
        seg(55.0, false, ib + 1, s + 6000, ACK, 0),
    ]);

    // Sequence numbers wrapping past 2^32 in both directions.
    let mut c = Conn::new(dir, "seq-wrap.pcap", false);
    let (wa, wb) = (u32::MAX - 20_000, u32::MAX - 5);
    c.handshake(0.0, wa, wb);
    bulk(
        &mut c,
        30.0,
        wa.wrapping_add(1),
        wb.wrapping_add(1),
        60,
        1448,
        0.5,
        8.0,
    );

    // SYN retransmitted, data on FIN, FIN from both sides, then a RST.
    let mut c = Conn::new(dir, "syn-fin-rst.pcap", false);
    c.all(&[
        seg(0.0, true, ia, 0, SYN, 0),
        seg(1000.0, true, ia, 0, SYN, 0),
    ]);
    c.all(&[
        seg(1010.0, false, ib, ia + 1, SYN | ACK, 0),
        seg(1020.0, true, ia + 1, ib + 1, ACK, 0),
        seg(1030.0, true, ia + 1, ib + 1, ACK | PSH, 300),
        seg(1040.0, false, ib + 1, ia + 301, ACK | PSH, 700),
        seg(1041.0, true, ia + 301, ib + 701, ACK | FIN, 100),
        seg(1050.0, false, ib + 701, ia + 402, ACK | FIN, 0),
        seg(1060.0, true, ia + 402, ib + 702, ACK, 0),
        seg(1070.0, true, ia + 402, ib + 702, RST, 0),
    ]);

    // Zero window: the receiver closes its window, the sender probes, then reopens.
    let mut c = Conn::new(dir, "zero-window.pcap", false);
    c.handshake(0.0, ia, ib);
    c.all(&[
        seg(30.0, true, s, ib + 1, ACK, 1000),
        seg(31.0, true, s + 1000, ib + 1, ACK, 1000),
        Seg {
            win: 0,
            ..seg(40.0, false, ib + 1, s + 2000, ACK, 0)
        },
        seg(240.0, true, s + 2000, ib + 1, ACK, 1),
        Seg {
            win: 0,
            ..seg(250.0, false, ib + 1, s + 2000, ACK, 0)
        },
        seg(650.0, true, s + 2000, ib + 1, ACK, 1),
        Seg {
            win: 0,
            ..seg(660.0, false, ib + 1, s + 2000, ACK, 0)
        },
        Seg {
            win: 30000,
            ..seg(900.0, false, ib + 1, s + 2000, ACK, 0)
        },
        seg(905.0, true, s + 2000, ib + 1, ACK, 1000),
        seg(906.0, true, s + 3000, ib + 1, ACK, 1000),
        seg(915.0, false, ib + 1, s + 4000, ACK, 0),
    ]);

    // Timestamps going backwards a little (late packets) and repeating.
    let mut c = Conn::new(dir, "time-backwards.pcap", false);
    c.handshake(0.0, ia, ib);
    c.all(&[
        seg(30.0, true, s, ib + 1, ACK, 1000),
        seg(52.0, true, s + 1000, ib + 1, ACK, 1000),
        seg(49.0, false, ib + 1, s + 1000, ACK, 0),
        seg(49.0, true, s + 2000, ib + 1, ACK, 1000),
        seg(120.0, false, ib + 1, s + 3000, ACK, 0),
        seg(80.0, true, s + 3000, ib + 1, ACK, 1000),
        seg(130.0, false, ib + 1, s + 4000, ACK, 0),
    ]);

    // The same 5-tuple reused by a new connection with a new ISN.
    let mut c = Conn::new(dir, "port-reuse.pcap", false);
    c.handshake(0.0, ia, ib);
    bulk(&mut c, 30.0, s, ib + 1, 10, 1000, 1.0, 5.0);
    c.handshake(100.0, 900_000, 700_000);
    bulk(&mut c, 130.0, 900_001, 700_001, 10, 1000, 1.0, 7.0);

    // IPv6 bulk transfer.
    let mut c = Conn::new(dir, "ipv6.pcap", true);
    c.handshake(0.0, ia, ib);
    bulk(&mut c, 30.0, s, ib + 1, 200, 1428, 0.2, 20.0);

    // Keep-alives on an idle connection.
    let mut c = Conn::new(dir, "keepalive.pcap", false);
    c.handshake(0.0, ia, ib);
    c.all(&[
        seg(30.0, true, s, ib + 1, ACK, 100),
        seg(40.0, false, ib + 1, s + 100, ACK, 0),
        seg(1040.0, true, s + 99, ib + 1, ACK, 1),
        seg(1050.0, false, ib + 1, s + 100, ACK, 0),
        seg(2050.0, true, s + 99, ib + 1, ACK, 0),
        seg(2060.0, false, ib + 1, s + 100, ACK, 0),
    ]);

    // SACK options cut by a 70-byte snap length: only the first block is captured.
    let mut c = Conn::new(dir, "sack-snaplen.pcap", false);
    c.snaplen = 70;
    c.handshake(0.0, ia, ib);
    let mut v = Vec::new();
    for i in 0..6 {
        v.push(seg(30.0 + i as f64, true, s + i * m, ib + 1, ACK, m));
    }
    c.all(&v);
    c.all(&[
        Seg {
            sack: &[(sa(4), sa(5)), (sa(2), sa(3))],
            ..seg(45.0, false, ib + 1, sa(1), ACK, 0)
        },
        seg(46.0, true, sa(6), ib + 1, ACK, m),
        seg(50.0, false, ib + 1, sa(7), ACK, 0),
    ]);
    eprintln!("crafted captures written to {}", dir.display());
}
