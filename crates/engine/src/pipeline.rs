//! The per-packet engine shared by `extract`, `replay` and the daemon: frame ->
//! [`PacketSummary`] -> TCP analysis -> window features, with every packet either
//! counted or skipped for a named reason.
//!
//! Owns the counters of one capture. Does not read files, sockets or clocks; the
//! caller passes frames and, in live mode, the time.

use crate::capture::{self, PacketSummary, SkipReason, tcp_flags};
use crate::flow::{Analysis, FlowConfig, FlowStats, FlowTable, flags, flow_hash};
use crate::forecast::WindowWidth;
use crate::window::{PacketFacts, RowSink, WindowAggregator, WindowStats};

/// Settings of the engine (FEATURES.md windows plus flow-table limits).
#[derive(Copy, Clone, Debug)]
pub struct EngineConfig {
    /// Width of the time grid's windows.
    pub window: WindowWidth,
    /// Gaps longer than this are not filled with silent windows; the grid restarts.
    pub max_silent_gap_ns: i64,
    /// Flow-table limits.
    pub flow: FlowConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            window: WindowWidth::DEFAULT,
            max_silent_gap_ns: 600 * 1_000_000_000,
            flow: FlowConfig::default(),
        }
    }
}

/// Everything counted about one capture.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Counters {
    /// Frames handed to the engine.
    pub frames: u64,
    /// Frames rejected by the user's BPF filter.
    pub filtered: u64,
    /// TCP segments that entered the windows.
    pub counted: u64,
    /// Frames not counted, by reason (index = position in [`SkipReason::ALL`]).
    #[serde(serialize_with = "skips_by_name")]
    pub skipped: [u64; SkipReason::ALL.len()],
    /// Bytes of counted segments (frame lengths).
    pub counted_bytes: u64,
    /// ACK RTT samples.
    pub rtt_samples: u64,
    /// Bytes-in-flight samples.
    pub bif_samples: u64,
    /// Segments sent again or out of order (see [`flags::RETRANSMISSION`]).
    pub retransmissions: u64,
    /// Duplicate ACKs.
    pub duplicate_acks: u64,
    /// Zero-window advertisements.
    pub zero_windows: u64,
    /// Flow-table counters.
    pub flow: FlowStats,
    /// Window counters.
    pub window: WindowStats,
}

fn skips_by_name<S: serde::Serializer>(
    v: &[u64; SkipReason::ALL.len()],
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(v.len()))?;
    for r in SkipReason::ALL {
        m.serialize_entry(r.name(), &v[r as usize])?;
    }
    m.end()
}

impl Counters {
    /// Frames skipped for any reason.
    pub fn skipped_total(&self) -> u64 {
        self.skipped.iter().sum()
    }

    /// Count one skip.
    pub fn skip(&mut self, r: SkipReason) {
        self.skipped[r as usize] += 1;
    }

    /// `(name, count)` for every reason with a non-zero count.
    pub fn skipped_by_reason(&self) -> Vec<(&'static str, u64)> {
        SkipReason::ALL
            .iter()
            .filter(|r| self.skipped[**r as usize] > 0)
            .map(|r| (r.name(), self.skipped[*r as usize]))
            .collect()
    }
}

/// Frames in, window rows out.
pub struct Engine {
    flows: FlowTable,
    windows: WindowAggregator,
    /// What the last counted packet contributed to its window.
    last: PacketFacts,
    counters: Counters,
    /// Expire idle flows every this many packets (cheap, but not per packet).
    expire_every: u64,
}

impl Engine {
    /// A fresh engine.
    pub fn new(cfg: EngineConfig) -> Self {
        Engine {
            flows: FlowTable::new(cfg.flow),
            windows: WindowAggregator::new(cfg.window.ns(), cfg.max_silent_gap_ns),
            last: PacketFacts::default(),
            counters: Counters::default(),
            expire_every: 1024,
        }
    }

    /// Parse and account one frame; returns the packet and its analysis when it
    /// was counted.
    pub fn frame(
        &mut self,
        linktype: u32,
        data: &[u8],
        orig_len: u32,
        ts_ns: Option<i64>,
        emit: &mut impl RowSink,
    ) -> Option<(PacketSummary, Analysis)> {
        let parsed = match ts_ns {
            Some(ts_ns) => capture::parse_frame(linktype, data, orig_len, ts_ns),
            None => Err(SkipReason::NoTimestamp),
        };
        self.parsed(parsed, emit)
    }

    /// Account one frame parsed elsewhere ([`capture::parse_frame`], or
    /// [`SkipReason::NoTimestamp`] for a record without a valid time): what
    /// [`Engine::frame`] does after parsing, for a reader that parses ahead on
    /// another thread.
    #[inline]
    pub fn parsed(
        &mut self,
        parsed: Result<PacketSummary, SkipReason>,
        emit: &mut impl RowSink,
    ) -> Option<(PacketSummary, Analysis)> {
        match parsed {
            Ok(p) => Some((p, self.frame_hashed(&p, flow_hash(&p.ends), emit))),
            Err(r) => {
                self.skipped(r);
                None
            }
        }
    }

    /// A hint that a packet of flow hash `hash` ([`crate::flow::flow_hash`])
    /// will be accounted soon: its flow's lookup starts loading.
    #[inline]
    pub fn prefetch(&self, hash: u32) {
        self.flows.prefetch(hash);
    }

    /// A frame the BPF filter rejected.
    pub fn filtered(&mut self) {
        self.counters.frames += 1;
        self.counters.filtered += 1;
    }

    /// Account one parsed packet (benches and tests feed these directly).
    pub fn packet(&mut self, p: &PacketSummary, emit: &mut impl RowSink) -> Analysis {
        self.packet_hashed(p, flow_hash(&p.ends), emit)
    }

    /// A frame parsed and its flow hashed elsewhere: counted like
    /// [`Engine::parsed`] does, with the packet's [`flow_hash`] given.
    #[inline]
    pub fn frame_hashed(
        &mut self,
        p: &PacketSummary,
        hash: u32,
        emit: &mut impl RowSink,
    ) -> Analysis {
        self.counters.frames += 1;
        self.packet_hashed(p, hash, emit)
    }

    /// A frame the reader could not count (see [`Engine::parsed`]).
    pub fn skipped(&mut self, r: SkipReason) {
        self.counters.frames += 1;
        self.counters.skip(r);
    }

    #[inline]
    fn packet_hashed(&mut self, p: &PacketSummary, hash: u32, emit: &mut impl RowSink) -> Analysis {
        let c = &mut self.counters;
        c.counted += 1;
        c.counted_bytes += p.frame_len_bytes as u64;
        if c.counted.is_multiple_of(self.expire_every) {
            self.flows.expire(p.ts_ns);
        }
        let a = self.flows.process_hashed(p, hash);
        c.rtt_samples += a.ack_rtt_ns.is_some() as u64;
        c.bif_samples += a.bytes_in_flight.is_some() as u64;
        c.retransmissions += u64::from(a.flags & flags::RETRANSMISSION != 0);
        c.duplicate_acks += u64::from(a.flags & flags::DUPLICATE_ACK != 0);
        c.zero_windows += u64::from(a.flags & flags::ZERO_WINDOW != 0);
        self.last = PacketFacts {
            ts_ns: p.ts_ns,
            frame_len_bytes: p.frame_len_bytes,
            ack_rtt_ns: a.ack_rtt_ns,
            bytes_in_flight: a.bytes_in_flight,
            direction_id: a.direction_id,
            data: p.payload_len_bytes > 0 || p.flags & (tcp_flags::SYN | tcp_flags::FIN) != 0,
            payload_bytes: p.payload_len_bytes,
            acked_segments: self.flows.last_acked(),
            zero_window: a.flags & flags::ZERO_WINDOW != 0,
            retransmission: a.flags & flags::RETRANSMISSION != 0,
            duplicate_ack: a.flags & flags::DUPLICATE_ACK != 0,
            unacked_segments: self.flows.unacked_segments() as u64,
            queue_delay_ms: a.queue_delay_ms,
            reported_bytes: a.reported_bytes,
            pure_ack: a.flags & flags::PURE_ACK != 0,
            small_window: a.flags & flags::SMALL_WINDOW != 0,
        };
        self.windows.push(&self.last, emit);
        a
    }

    /// What the last counted packet contributed to its window (for windows of
    /// part of the traffic: a host's, a flow's).
    pub fn last_facts(&self) -> &PacketFacts {
        &self.last
    }

    /// Live mode: open the grid at `now_ns` before any packet arrives.
    pub fn start_at(&mut self, now_ns: i64) {
        self.windows.start_at(now_ns);
    }

    /// Live mode: close windows that ended before `now_ns` (already minus grace).
    pub fn advance_to(&mut self, now_ns: i64, emit: &mut impl RowSink) {
        self.windows.advance_to(now_ns, emit);
        self.flows.expire(now_ns);
    }

    /// End of input: close the open window.
    pub fn finish(&mut self, emit: &mut impl RowSink) {
        self.windows.finish(emit);
    }

    /// Counters so far, with flow and window statistics folded in.
    pub fn counters(&self) -> Counters {
        let mut c = self.counters.clone();
        c.flow = self.flows.stats;
        c.window = self.windows.stats;
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::tcp_flags as F;
    use crate::window::{TcpProgress, WindowRow};

    const MS: i64 = 1_000_000;

    fn pkt(
        from_a: bool,
        t: i64,
        seq: u32,
        ack: u32,
        flags: u16,
        len: u32,
        win: u16,
    ) -> PacketSummary {
        crate::flow::test_segment(from_a, t, (seq, ack, flags), len, win)
    }

    /// Each window counts data segments, segments acknowledged, zero-window
    /// advertisements, and carries the unacknowledged count through silence.
    #[test]
    fn windows_count_tcp_progress() {
        let mut e = Engine::new(EngineConfig::default());
        let mut rows = Vec::new();
        let mut emit = |r: WindowRow| rows.push(r);
        let base = 1_000 * 50 * MS;
        e.packet(&pkt(true, base, 100, 0, F::SYN, 0, 1000), &mut emit);
        e.packet(
            &pkt(false, base + MS, 500, 101, F::SYN | F::ACK, 0, 1000),
            &mut emit,
        );
        e.packet(
            &pkt(true, base + 2 * MS, 101, 501, F::ACK, 0, 1000),
            &mut emit,
        );
        for k in 0..3u32 {
            e.packet(
                &pkt(
                    true,
                    base + (3 + k as i64) * MS,
                    101 + 1000 * k,
                    501,
                    F::ACK,
                    1000,
                    1000,
                ),
                &mut emit,
            );
        }
        // Window 2: the receiver acknowledges two segments and closes its window.
        e.packet(
            &pkt(false, base + 55 * MS, 501, 2101, F::ACK, 0, 0),
            &mut emit,
        );
        // Window 3: a zero-window probe; window 4 silent; window 5: the rest acked.
        e.packet(
            &pkt(true, base + 110 * MS, 3101, 501, F::ACK, 1, 1000),
            &mut emit,
        );
        e.packet(
            &pkt(false, base + 120 * MS, 501, 2101, F::ACK, 0, 0),
            &mut emit,
        );
        e.packet(
            &pkt(false, base + 260 * MS, 501, 3101, F::ACK, 0, 1000),
            &mut emit,
        );
        e.finish(&mut emit);
        let t: Vec<TcpProgress> = rows.iter().map(|r| r.tcp).collect();
        let p = |d, a, z, u| TcpProgress {
            data_segments: d,
            acked_segments: a,
            zero_window_segments: z,
            unacked_segments: u,
            ..TcpProgress::default()
        };
        assert_eq!(
            t[0],
            TcpProgress {
                pure_acks: 1,
                payload_bytes: 3000,
                first_payload_ns: Some(3 * MS),
                ..p(5, 2, 0, 3)
            },
            "SYN, SYN-ACK and three segments (3000 bytes of payload, none in SYN or SYN-ACK); SYN and SYN-ACK acked; the handshake's ACK"
        );
        assert_eq!(
            t[1],
            TcpProgress {
                reported_bytes: 2000,
                pure_acks: 1,
                small_window_acks: 1,
                ..p(0, 2, 1, 1)
            },
            "two acked (their 2000 bytes reported arrived), a zero window"
        );
        assert_eq!(
            t[2],
            TcpProgress {
                pure_acks: 1,
                small_window_acks: 1,
                payload_bytes: 1,
                first_payload_ns: Some(10 * MS),
                ..p(1, 0, 1, 2)
            },
            "the probe is remembered, the window still zero"
        );
        assert_eq!(t[3], p(0, 0, 0, 2), "silent: the unacked count carries");
        assert_eq!(t[4], p(0, 0, 0, 2), "silent");
        assert_eq!((t[5].acked_segments, t[5].reported_bytes), (1, 1000));
        assert_eq!(
            (t[5].pure_acks, t[5].small_window_acks),
            (1, 0),
            "the window open again"
        );
    }
}
