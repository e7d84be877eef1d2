//! Frames to packet summaries: link types, IP and TCP header parsing.
//!
//! Owns the one place where raw bytes are read. Everything downstream sees a
//! [`PacketSummary`], a small `Copy` value. Does not own file formats
//! ([`crate::pcapfile`]), live handles ([`crate::live`]) or TCP state ([`crate::flow`]).
//!
//! Lengths follow FEATURES.md "Packets that count": a frame's byte count is the
//! record's original length, a segment's payload length comes from the IP header,
//! never from the captured bytes, because snap lengths are usually small.

use etherparse::{IpNumber, LaxIpSlice};

/// Link-layer header types we decode (pcap LINKTYPE_* values).
pub mod linktype {
    /// LINKTYPE_NULL: BSD loopback, host-order family.
    pub const NULL: u32 = 0;
    /// LINKTYPE_ETHERNET.
    pub const ETHERNET: u32 = 1;
    /// LINKTYPE_PPP.
    pub const PPP: u32 = 9;
    /// DLT_RAW on OpenBSD and some BSDs; tshark reads it as raw IP.
    pub const RAW_12: u32 = 12;
    /// DLT_RAW on some other BSDs; tshark reads it as raw IP.
    pub const RAW_14: u32 = 14;
    /// LINKTYPE_PPP_HDLC.
    pub const PPP_HDLC: u32 = 50;
    /// LINKTYPE_RAW: raw IPv4 or IPv6.
    pub const RAW: u32 = 101;
    /// LINKTYPE_LOOP: OpenBSD loopback, network-order family.
    pub const LOOP: u32 = 108;
    /// LINKTYPE_LINUX_SLL: Linux cooked capture v1.
    pub const LINUX_SLL: u32 = 113;
    /// LINKTYPE_IPV4.
    pub const IPV4: u32 = 228;
    /// LINKTYPE_IPV6.
    pub const IPV6: u32 = 229;
    /// LINKTYPE_LINUX_SLL2: Linux cooked capture v2.
    pub const LINUX_SLL2: u32 = 276;

    /// True when [`super::parse_frame`] understands this link type.
    pub fn is_supported(lt: u32) -> bool {
        matches!(
            lt,
            NULL | ETHERNET
                | PPP
                | RAW_12
                | RAW_14
                | PPP_HDLC
                | RAW
                | LOOP
                | LINUX_SLL
                | IPV4
                | IPV6
                | LINUX_SLL2
        )
    }
}

/// TCP flag bits as they sit in the low 12 bits of header bytes 12..14.
pub mod tcp_flags {
    /// FIN.
    pub const FIN: u16 = 0x001;
    /// SYN.
    pub const SYN: u16 = 0x002;
    /// RST.
    pub const RST: u16 = 0x004;
    /// PSH.
    pub const PSH: u16 = 0x008;
    /// ACK.
    pub const ACK: u16 = 0x010;
}

/// Why a frame did not become a counted packet. Counted per reason, never logged
/// per packet.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum SkipReason {
    /// Link type we do not decode.
    UnsupportedLinktype,
    /// Frame shorter than its link-layer header.
    TruncatedLink,
    /// Link layer carries something other than IPv4/IPv6 (ARP, LLDP, ...).
    NotIp,
    /// IP header missing, cut short, or inconsistent.
    BadIp,
    /// IP payload is not TCP (UDP, ICMP, ...).
    NotTcp,
    /// Non-first IP fragment or a fragmented first piece: no usable TCP length.
    IpFragment,
    /// Fewer than 20 bytes of TCP header captured.
    TruncatedTcpHeader,
    /// TCP data offset below 5 words or beyond the IP payload length.
    BadTcpHeader,
    /// Record timestamp unusable (no timestamp at all, as in pcapng simple packets).
    NoTimestamp,
    /// The record claims a wire length no frame has (over [`MAX_WIRE_LEN`]).
    ImplausibleLength,
}

/// Longest frame a capture can really hold: BIG TCP's 512 KiB GSO super-frames
/// with room to spare. A record claiming more (a corrupt or crafted length
/// field, up to 4 GiB) would count as thousands of Mbit/s.
pub const MAX_WIRE_LEN: u32 = 1 << 20;

impl SkipReason {
    /// Every reason, in counter order.
    pub const ALL: [SkipReason; 10] = [
        SkipReason::UnsupportedLinktype,
        SkipReason::TruncatedLink,
        SkipReason::NotIp,
        SkipReason::BadIp,
        SkipReason::NotTcp,
        SkipReason::IpFragment,
        SkipReason::TruncatedTcpHeader,
        SkipReason::BadTcpHeader,
        SkipReason::NoTimestamp,
        SkipReason::ImplausibleLength,
    ];

    /// Stable snake_case name used in summaries, reports and metrics.
    pub fn name(self) -> &'static str {
        match self {
            SkipReason::UnsupportedLinktype => "unsupported_linktype",
            SkipReason::TruncatedLink => "truncated_link_header",
            SkipReason::NotIp => "not_ip",
            SkipReason::BadIp => "bad_ip_header",
            SkipReason::NotTcp => "not_tcp",
            SkipReason::IpFragment => "ip_fragment",
            SkipReason::TruncatedTcpHeader => "truncated_tcp_header",
            SkipReason::BadTcpHeader => "bad_tcp_header",
            SkipReason::NoTimestamp => "no_timestamp",
            SkipReason::ImplausibleLength => "implausible_length",
        }
    }
}

/// Both endpoints of a TCP segment. IPv4 addresses sit in the first 4 bytes.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoints {
    /// Source address.
    pub src: [u8; 16],
    /// Destination address.
    pub dst: [u8; 16],
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// IPv6 (else IPv4).
    pub v6: bool,
}

/// Up to three SACK blocks, as Wireshark keeps them for bytes in flight
/// (`dissect_tcpopt_sack` stores blocks 1..3 of an option; a 4th is not kept).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct SackBlocks {
    /// Blocks kept (0 to 3).
    pub n: u8,
    /// Left edges.
    pub left: [u32; 3],
    /// Right edges.
    pub right: [u32; 3],
}

impl SackBlocks {
    /// Bytes covered by the kept blocks, with 32-bit wrapping like tshark.
    pub fn covered_bytes(&self) -> u32 {
        let mut sum = 0u32;
        for i in 0..self.n as usize {
            sum = sum.wrapping_add(self.right[i].wrapping_sub(self.left[i]));
        }
        sum
    }
}

/// One counted TCP segment, everything the later stages need and nothing more.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct PacketSummary {
    /// Capture timestamp, nanoseconds since the Unix epoch.
    pub ts_ns: i64,
    /// Original frame length in bytes (pcap `len`, tshark `frame.len`).
    pub frame_len_bytes: u32,
    /// Addresses and ports.
    pub ends: Endpoints,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number.
    pub ack: u32,
    /// Low 12 bits of TCP header bytes 12..14 (see [`tcp_flags`]).
    pub flags: u16,
    /// Raw (unscaled) window field.
    pub window: u16,
    /// TCP payload length from the IP header, not from captured bytes.
    pub payload_len_bytes: u32,
    /// SACK blocks of this segment.
    pub sack: SackBlocks,
    /// The snap length cut the TCP options where tshark's option dissector reads.
    /// tshark then aborts the frame after its sequence analysis and prints no
    /// `ack_rtt` or `bytes_in_flight` for it (the analysis state still advances).
    pub options_cut: bool,
    /// The sender's timestamp value (TSval of RFC 7323), when it sent one.
    pub tsval: Option<u32>,
}

/// Parse one frame. `orig_len` is the record's original length; `data` is what
/// was captured (often a prefix).
#[inline]
pub fn parse_frame(
    linktype: u32,
    data: &[u8],
    orig_len: u32,
    ts_ns: i64,
) -> Result<PacketSummary, SkipReason> {
    if orig_len > MAX_WIRE_LEN {
        return Err(SkipReason::ImplausibleLength);
    }
    let ip_off = link_payload_offset(linktype, data)?;
    // Bytes of the IP packet the wire carried, which may exceed what was captured.
    let ip_wire_len = (orig_len as usize)
        .saturating_sub(ip_off)
        .max(data.len() - ip_off);
    parse_ip(&data[ip_off..], ip_wire_len, orig_len, ts_ns)
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86DD;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88A8;
const ETHERTYPE_QINQ_OLD: u16 = 0x9100;
const ETHERTYPE_PPPOE_SESSION: u16 = 0x8864;
/// More stacked VLAN tags than this is not a frame anyone sends.
const MAX_VLAN_TAGS: usize = 8;

fn be16(d: &[u8], at: usize) -> Option<u16> {
    d.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]]))
}

/// Offset of the IP header inside the frame, or why there is none.
fn link_payload_offset(linktype: u32, d: &[u8]) -> Result<usize, SkipReason> {
    use linktype::*;
    match linktype {
        ETHERNET => {
            let mut et = be16(d, 12).ok_or(SkipReason::TruncatedLink)?;
            let mut off = 14;
            let mut tags = 0;
            while matches!(et, ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD) {
                tags += 1;
                if tags > MAX_VLAN_TAGS {
                    return Err(SkipReason::NotIp);
                }
                et = be16(d, off + 2).ok_or(SkipReason::TruncatedLink)?;
                off += 4;
            }
            ethertype_payload(et, d, off)
        }
        LINUX_SLL => {
            let et = be16(d, 14).ok_or(SkipReason::TruncatedLink)?;
            ethertype_payload(et, d, 16)
        }
        LINUX_SLL2 => {
            let et = be16(d, 0).ok_or(SkipReason::TruncatedLink)?;
            if d.len() < 20 {
                return Err(SkipReason::TruncatedLink);
            }
            ethertype_payload(et, d, 20)
        }
        RAW | RAW_12 | RAW_14 | IPV4 | IPV6 => Ok(0),
        NULL | LOOP => {
            let b = d.get(0..4).ok_or(SkipReason::TruncatedLink)?;
            let be = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            let le = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            // The family is in the capturing host's byte order for NULL; pick the
            // reading that is a small number.
            let family = if linktype == LOOP || be < 0x1_0000 {
                be
            } else {
                le
            };
            match family {
                // AF_INET everywhere; AF_INET6 on Linux, BSDs, Darwin, Windows.
                2 | 10 | 24 | 28 | 30 | 23 => Ok(4),
                _ => Err(SkipReason::NotIp),
            }
        }
        PPP | PPP_HDLC => ppp_payload(d, 0),
        _ => Err(SkipReason::UnsupportedLinktype),
    }
}

fn ethertype_payload(et: u16, d: &[u8], off: usize) -> Result<usize, SkipReason> {
    match et {
        ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => {
            if d.len() < off {
                Err(SkipReason::TruncatedLink)
            } else {
                Ok(off)
            }
        }
        // PPPoE session header is 6 bytes, then a 2-byte PPP protocol.
        ETHERTYPE_PPPOE_SESSION => ppp_payload(d, off + 6),
        _ => Err(SkipReason::NotIp),
    }
}

/// PPP: optional 0xFF 0x03 address/control, then a 1- or 2-byte protocol.
fn ppp_payload(d: &[u8], mut off: usize) -> Result<usize, SkipReason> {
    if d.get(off..off + 2) == Some(&[0xFF, 0x03]) {
        off += 2;
    }
    let first = *d.get(off).ok_or(SkipReason::TruncatedLink)?;
    let (proto, len) = if first & 1 == 1 {
        (first as u16, 1)
    } else {
        (be16(d, off).ok_or(SkipReason::TruncatedLink)?, 2)
    };
    match proto {
        0x0021 | 0x0057 => {
            if d.len() < off + len {
                Err(SkipReason::TruncatedLink)
            } else {
                Ok(off + len)
            }
        }
        _ => Err(SkipReason::NotIp),
    }
}

/// Parse IP and TCP. `ip` is the captured IP packet, `ip_wire_len` its length on
/// the wire as far as the frame tells.
fn parse_ip(
    ip: &[u8],
    ip_wire_len: usize,
    frame_len: u32,
    ts_ns: i64,
) -> Result<PacketSummary, SkipReason> {
    // The common packet, IPv4 with a 20-byte header, neither fragmented nor
    // sized 0 (TSO), read in place: the general path copies etherparse's
    // slice enum, whose unaligned fields made this function up to 8 times
    // slower depending on where the stack happened to sit (measured on a
    // reader thread). Everything else takes the general path; both give the
    // same summary (tested).
    if ip.len() >= 20
        && ip[0] == 0x45
        && ip[9] == 6
        && u16::from_be_bytes([ip[6], ip[7]]) & 0x3FFF == 0
    {
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        if total.min(ip_wire_len) >= 20 {
            let tcp_len = total.min(ip_wire_len).saturating_sub(20);
            let addrs = (v4_address(&ip[12..16]), v4_address(&ip[16..20]), false);
            return parse_tcp(
                &ip[20..total.min(ip.len())],
                tcp_len,
                addrs,
                frame_len,
                ts_ns,
            );
        }
    }
    parse_ip_general(ip, ip_wire_len, frame_len, ts_ns)
}

/// [`parse_ip`] for every IP packet, through etherparse's lax slicing.
#[inline(never)]
fn parse_ip_general(
    ip: &[u8],
    ip_wire_len: usize,
    frame_len: u32,
    ts_ns: i64,
) -> Result<PacketSummary, SkipReason> {
    let (sliced, _ext_err) = LaxIpSlice::from_slice(ip).map_err(|_| SkipReason::BadIp)?;
    let payload = sliced.payload();
    if payload.ip_number != IpNumber::TCP {
        return Err(SkipReason::NotTcp);
    }
    if payload.fragmented {
        return Err(SkipReason::IpFragment);
    }

    // Header bytes before the TCP segment (IP header plus any extension headers).
    let ip_headers_len = payload.payload.as_ptr() as usize - ip.as_ptr() as usize;
    // Length of the TCP segment per the IP header ("reported length" in tshark).
    let addrs;
    let tcp_len = match &sliced {
        LaxIpSlice::Ipv4(v4) => {
            let h = v4.header();
            addrs = (v4_address(&h.source()), v4_address(&h.destination()), false);
            let total = h.total_len() as usize;
            let ihl = h.slice().len();
            // Total length 0 is TSO/BIG TCP: the frame is the only length we have.
            let total = if total == 0 {
                ip_wire_len
            } else {
                total.min(ip_wire_len)
            };
            if total < ihl {
                return Err(SkipReason::BadIp);
            }
            total.saturating_sub(ip_headers_len)
        }
        LaxIpSlice::Ipv6(v6) => {
            let h = v6.header();
            addrs = (h.source(), h.destination(), true);
            let pl = h.payload_length() as usize;
            // Payload length 0 is a jumbogram / BIG TCP: use the frame.
            let total = if pl == 0 {
                ip_wire_len
            } else {
                (40 + pl).min(ip_wire_len)
            };
            total.saturating_sub(ip_headers_len)
        }
    };
    parse_tcp(payload.payload, tcp_len, addrs, frame_len, ts_ns)
}

/// An IPv4 address in the first 4 bytes of 16, the rest 0, built in a
/// register: 4-byte stores into a zeroed array read back 16 bytes at a time
/// defeat store forwarding.
#[inline(always)]
fn v4_address(b: &[u8]) -> [u8; 16] {
    let a = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    u128::from(a).to_le_bytes()
}

/// The TCP header `t` (as captured) of a segment `tcp_len` bytes long on the
/// wire, between the addresses `src` and `dst`.
#[inline]
fn parse_tcp(
    t: &[u8],
    tcp_len: usize,
    (src, dst, v6): ([u8; 16], [u8; 16], bool),
    frame_len: u32,
    ts_ns: i64,
) -> Result<PacketSummary, SkipReason> {
    if t.len() < 20 {
        return Err(SkipReason::TruncatedTcpHeader);
    }
    let sport = u16::from_be_bytes([t[0], t[1]]);
    let dport = u16::from_be_bytes([t[2], t[3]]);
    let seq = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
    let ack = u32::from_be_bytes([t[8], t[9], t[10], t[11]]);
    let hdr_len = ((t[12] >> 4) as usize) * 4;
    let flags = u16::from_be_bytes([t[12], t[13]]) & 0x0FFF;
    let window = u16::from_be_bytes([t[14], t[15]]);
    if hdr_len < 20 || tcp_len < hdr_len {
        return Err(SkipReason::BadTcpHeader);
    }
    let captured_hdr = &t[..hdr_len.min(t.len())];
    let (sack, options_cut, tsval) = parse_options(&captured_hdr[20..], hdr_len - 20);
    Ok(PacketSummary {
        ts_ns,
        frame_len_bytes: frame_len,
        // Whole, here: ports stored into a built struct and then copied
        // on 16 bytes at a time stalled store forwarding.
        ends: Endpoints {
            src,
            dst,
            sport,
            dport,
            v6,
        },
        seq,
        ack,
        flags,
        window,
        payload_len_bytes: (tcp_len - hdr_len) as u32,
        sack,
        options_cut,
        tsval,
    })
}

/// Walk the TCP options the way tshark's `tcp_dissect_options` does and keep the
/// SACK blocks of the last SACK option and the timestamp value. `opts` is the
/// captured part of the option area, `opt_area_len` its length per the data
/// offset. Returns the blocks, whether the walk needed a byte beyond the
/// capture (tshark throws there) and the TSval.
fn parse_options(opts: &[u8], opt_area_len: usize) -> (SackBlocks, bool, Option<u32>) {
    let mut out = SackBlocks::default();
    let mut tsval = None;
    let mut i = 0;
    while i < opt_area_len {
        let Some(&kind) = opts.get(i) else {
            return (out, true, tsval);
        };
        match kind {
            0 => break,
            1 => {
                i += 1;
                continue;
            }
            _ => {}
        }
        let Some(&len) = opts.get(i + 1) else {
            return (out, true, tsval);
        };
        let len = len as usize;
        if len < 2 || len > opt_area_len - i {
            break;
        }
        if kind == 5 {
            out = SackBlocks::default();
            let mut rem = len - 2;
            let mut at = i + 2;
            let mut n = 0u8;
            while rem > 0 {
                if rem < 8 {
                    break;
                }
                let (Some(l), Some(r)) = (opts.get(at..at + 4), opts.get(at + 4..at + 8)) else {
                    return (out, true, tsval);
                };
                n += 1;
                if n < 4 {
                    out.n = n;
                    out.left[n as usize - 1] = u32::from_be_bytes([l[0], l[1], l[2], l[3]]);
                    out.right[n as usize - 1] = u32::from_be_bytes([r[0], r[1], r[2], r[3]]);
                }
                rem -= 8;
                at += 8;
            }
        } else if opts.len() < i + len {
            // Other option dissectors read their whole option.
            return (out, true, tsval);
        } else if kind == 8 && len == 10 {
            let v = &opts[i + 2..i + 6];
            tsval = Some(u32::from_be_bytes([v[0], v[1], v[2], v[3]]));
        }
        i += len;
    }
    (out, false, tsval)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn tcp_frame(payload: &[u8], syn: bool) -> Vec<u8> {
        let mut b = PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(1234, 80, 1000, 65535)
            .ack(77);
        if syn {
            b = b.syn();
        }
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }

    #[test]
    fn the_ipv4_fast_path_gives_what_the_general_path_gives() {
        let ip = |payload: usize| {
            let mut f = tcp_frame(&vec![7; payload], false);
            f.drain(..14);
            f
        };
        let with = |mut f: Vec<u8>, at: usize, v: &[u8]| {
            f[at..at + v.len()].copy_from_slice(v);
            f
        };
        let mut padded = ip(0);
        padded.extend_from_slice(&[0; 6]);
        let cases: Vec<(&str, Vec<u8>, usize)> = vec![
            ("plain", ip(100), 140),
            ("no payload", ip(0), 40),
            ("ethernet padding", padded, 46),
            ("cut by the snap length", ip(1400)[..60].to_vec(), 1440),
            ("longer than the wire", ip(100), 100),
            ("wire shorter than a header", ip(100), 12),
            ("total 0 (TSO)", with(ip(100), 2, &[0, 0]), 140),
            ("total below the header", with(ip(100), 2, &[0, 12]), 140),
            ("more fragments", with(ip(100), 6, &[0x20, 0]), 140),
            ("fragment offset", with(ip(100), 6, &[0, 8]), 140),
            ("don't fragment", with(ip(100), 6, &[0x40, 0]), 140),
            ("udp", with(ip(100), 9, &[17]), 140),
            ("options", with(ip(100), 0, &[0x46]), 140),
            ("short tcp header", ip(0)[..30].to_vec(), 40),
        ];
        for (name, f, wire) in cases {
            assert_eq!(
                parse_ip(&f, wire, 1500, 9),
                parse_ip_general(&f, wire, 1500, 9),
                "{name}"
            );
        }
    }

    #[test]
    fn ethernet_ipv4_tcp_fields() {
        let f = tcp_frame(&[7; 100], false);
        let p = parse_frame(linktype::ETHERNET, &f, f.len() as u32, 5).unwrap();
        assert_eq!(p.payload_len_bytes, 100);
        assert_eq!(p.seq, 1000);
        assert_eq!(p.ack, 77);
        assert_eq!(p.flags & tcp_flags::ACK, tcp_flags::ACK);
        assert_eq!(p.ends.sport, 1234);
        assert_eq!(&p.ends.src[..4], &[10, 0, 0, 1]);
        assert_eq!(p.frame_len_bytes, f.len() as u32);
    }

    #[test]
    fn a_record_claiming_4_gb_is_a_counted_skip() {
        // Regression: such a record made a 687,195 Mbit/s window.
        let f = tcp_frame(&[7; 100], false);
        assert_eq!(
            parse_frame(linktype::ETHERNET, &f, u32::MAX, 0).unwrap_err(),
            SkipReason::ImplausibleLength
        );
        // A 512 KiB BIG TCP super-frame is still a frame.
        assert!(parse_frame(linktype::ETHERNET, &f, 512 * 1024, 0).is_ok());
    }

    #[test]
    fn payload_length_comes_from_ip_header_not_snaplen() {
        let f = tcp_frame(&[7; 1400], false);
        // Captured only the first 66 bytes, as `tcpdump -s 66` would.
        let p = parse_frame(linktype::ETHERNET, &f[..66], f.len() as u32, 0).unwrap();
        assert_eq!(p.payload_len_bytes, 1400);
        assert_eq!(p.frame_len_bytes, f.len() as u32);
    }

    #[test]
    fn ipv4_total_length_zero_uses_frame_length() {
        let mut f = tcp_frame(&[7; 500], false);
        f[16] = 0;
        f[17] = 0;
        let p = parse_frame(linktype::ETHERNET, &f, f.len() as u32, 0).unwrap();
        assert_eq!(p.payload_len_bytes, 500);
    }

    #[test]
    fn vlan_and_qinq_tags_are_skipped() {
        let f = tcp_frame(&[1; 10], false);
        let mut q = f[..12].to_vec();
        q.extend_from_slice(&[0x88, 0xA8, 0, 5, 0x81, 0x00, 0, 7]);
        q.extend_from_slice(&f[12..]);
        let p = parse_frame(linktype::ETHERNET, &q, q.len() as u32, 0).unwrap();
        assert_eq!(p.payload_len_bytes, 10);
    }

    #[test]
    fn truncated_tcp_header_is_a_counted_skip() {
        let f = tcp_frame(&[], false);
        let cut = &f[..14 + 20 + 10];
        assert_eq!(
            parse_frame(linktype::ETHERNET, cut, f.len() as u32, 0),
            Err(SkipReason::TruncatedTcpHeader)
        );
    }

    #[test]
    fn sll2_and_raw_ip() {
        let f = tcp_frame(&[3; 20], false);
        let ip = &f[14..];
        let p = parse_frame(linktype::RAW, ip, ip.len() as u32, 0).unwrap();
        assert_eq!(p.payload_len_bytes, 20);
        let mut sll2 = vec![
            0x08, 0x00, 0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        sll2.extend_from_slice(ip);
        let p = parse_frame(linktype::LINUX_SLL2, &sll2, sll2.len() as u32, 0).unwrap();
        assert_eq!(p.payload_len_bytes, 20);
    }

    #[test]
    fn sack_keeps_three_blocks_like_tshark() {
        // NOP NOP SACK with 4 blocks (34 bytes) = 36 bytes of options.
        let mut o = vec![1, 1, 5, 34];
        for i in 0..4u32 {
            o.extend_from_slice(&(100 * i).to_be_bytes());
            o.extend_from_slice(&(100 * i + 10 + i).to_be_bytes());
        }
        let (s, cut, _) = parse_options(&o, o.len());
        assert_eq!(s.n, 3);
        assert!(!cut);
        assert_eq!(s.covered_bytes(), 10 + 11 + 12);
        // Captured area ends inside the second block: only the first is kept.
        let (s, cut, _) = parse_options(&o[..16], o.len());
        assert_eq!(s.n, 1);
        assert!(cut);
    }

    #[test]
    fn the_timestamp_option_gives_the_senders_tsval() {
        // NOP NOP TS(val 0x01020304, ecr 9): as Linux sends it on data.
        let o = [1, 1, 8, 10, 1, 2, 3, 4, 0, 0, 0, 9];
        assert_eq!(
            parse_options(&o, o.len()),
            (SackBlocks::default(), false, Some(0x0102_0304))
        );
        // A cut timestamp is no value (and the cut is reported).
        assert_eq!(
            parse_options(&o[..8], o.len()),
            (SackBlocks::default(), true, None)
        );
        // A malformed length is skipped like tshark skips it.
        let o = [8, 6, 1, 2, 3, 4];
        assert_eq!(parse_options(&o, o.len()).2, None);
    }

    #[test]
    fn non_tcp_is_skipped() {
        let mut out = Vec::new();
        PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([1, 1, 1, 1], [2, 2, 2, 2], 9)
            .udp(1, 2)
            .write(&mut out, &[0; 4])
            .unwrap();
        assert_eq!(
            parse_frame(linktype::ETHERNET, &out, out.len() as u32, 0),
            Err(SkipReason::NotTcp)
        );
    }
}
