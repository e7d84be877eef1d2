//! What the fixture generators share: a plain Ethernet/IPv4/TCP frame.

/// One TCP segment between two IPv4 endpoints.
pub struct Tcp4 {
    /// Source address and port.
    pub src: ([u8; 4], u16),
    /// Destination address and port.
    pub dst: ([u8; 4], u16),
    /// Sequence and acknowledgement numbers.
    pub seq: u32,
    pub ack: u32,
    /// TCP flags (0x02 SYN, 0x10 ACK, 0x18 PSH+ACK, ...).
    pub flags: u8,
    /// Payload bytes (filled with 'a').
    pub len: usize,
}

/// Replace `out` with the Ethernet/IPv4/TCP frame of `s` (no options; the
/// checksums are left 0, which tshark does not check by default).
pub fn tcp4_frame(s: &Tcp4, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00]);
    out.extend_from_slice(&[0x45, 0]);
    out.extend_from_slice(&((40 + s.len) as u16).to_be_bytes());
    out.extend_from_slice(&[0, 1, 0x40, 0, 64, 6, 0, 0]);
    out.extend_from_slice(&s.src.0);
    out.extend_from_slice(&s.dst.0);
    out.extend_from_slice(&s.src.1.to_be_bytes());
    out.extend_from_slice(&s.dst.1.to_be_bytes());
    out.extend_from_slice(&s.seq.to_be_bytes());
    out.extend_from_slice(&s.ack.to_be_bytes());
    out.extend_from_slice(&[0x50, s.flags, 0xff, 0xff, 0, 0, 0, 0]);
    out.extend(std::iter::repeat_n(0x61u8, s.len));
}
