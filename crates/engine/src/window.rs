//! The time grid and the nine window features (FEATURES.md "Windows" and "The
//! nine features").
//!
//! Window `k` covers `[k*W, (k+1)*W)` in Unix time. The aggregator never reads a
//! clock: replay drives it with packet timestamps, live capture additionally with
//! [`WindowAggregator::advance_to`], so silent windows come out of the same code in
//! both. Owns per-window sums and the carried-forward delay and bytes in flight;
//! does not own TCP analysis or output formats.

use rustc_hash::FxHashMap;

/// Feature names in model order (FEATURES.md).
pub const FEATURE_NAMES: [&str; 9] = [
    "size",
    "delay",
    "bif",
    "iat_mean",
    "iat_std",
    "throughput_mbps",
    "delay_grad",
    "bif_grad",
    "is_silent",
];

/// Position of `throughput_mbps` in [`FEATURE_NAMES`].
pub const THROUGHPUT_FEATURE: usize = 5;

/// Nanoseconds per second.
pub const NS_PER_S: i64 = 1_000_000_000;

/// One closed window: its start and the nine features.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct WindowRow {
    /// `k * W`, nanoseconds since the Unix epoch.
    pub start_ns: i64,
    /// Sum of original frame lengths, bytes.
    pub size_bytes: u64,
    /// Mean ACK RTT, seconds (carried forward when the window has none).
    pub delay_s: f64,
    /// Bytes in flight summed over sending directions (carried forward).
    pub bif_bytes: u64,
    /// Mean packet inter-arrival time, s.
    pub iat_mean_s: f64,
    /// Standard deviation of the inter-arrival times, s.
    pub iat_std_s: f64,
    /// Throughput, Mbit/s.
    pub throughput_mbps: f64,
    /// Change of `delay` since the previous window, s.
    pub delay_grad_s: f64,
    /// Change of `bif` since the previous window, bytes.
    pub bif_grad_bytes: i64,
    /// No packet in the window.
    pub is_silent: bool,
    /// Counted packets in the window (not a feature; for checks and summaries).
    pub packets: u64,
    /// Whether TCP makes progress (not features; for the link-stall events).
    pub tcp: TcpProgress,
}

/// [`TcpProgress::tail_bytes`] counts the window's last this-many-th.
pub const TAIL_PARTS: i64 = 5;
/// [`TcpProgress::ack_clock_mbps`] scales a window's throughput by at most
/// this (ACKs of a burst sent before the window, arriving in one where little
/// was sent, say little of the next).
pub const ACK_CLOCK_MAX: f64 = 4.0;

/// What a window says about TCP's progress, beyond the features.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct TcpProgress {
    /// Segments carrying data (or SYN/FIN) sent in the window.
    pub data_segments: u64,
    /// TCP payload bytes sent in the window (data, without SYN or FIN).
    pub payload_bytes: u64,
    /// Remembered segments a cumulative ACK in the window acknowledged.
    pub acked_segments: u64,
    /// Segments advertising a zero receive window (not SYN, FIN or RST; as
    /// Wireshark's `tcp.analysis.zero_window`).
    pub zero_window_segments: u64,
    /// Segments still unacknowledged over every flow at the window's last
    /// packet (carried forward when silent).
    pub unacked_segments: u64,
    /// Segments sent again or out of order (tshark's retransmission, fast
    /// and spurious retransmission and out-of-order flags together).
    pub retransmissions: u64,
    /// Duplicate ACKs (`tcp.analysis.duplicate_ack`).
    pub duplicate_acks: u64,
    /// Bytes the ACKs newly reported arrived, SACKed or acknowledged
    /// ([`crate::flow::Analysis::reported_bytes`]).
    pub reported_bytes: u64,
    /// Data segments with a queueing delay
    /// ([`crate::flow::Analysis::queue_delay_ms`]).
    pub queue_delay_samples: u64,
    /// The sum of those delays, ms.
    pub queue_delay_sum_ms: u64,
    /// Pure ACKs (no data, SYN, FIN or RST).
    pub pure_acks: u64,
    /// Pure ACKs advertising a zero window or under an eighth of the largest
    /// their direction advertised ([`crate::flow::flags::SMALL_WINDOW`]).
    pub small_window_acks: u64,
    /// Time from the window's start to its first segment with payload, ns
    /// (None without one): a transfer that began inside the window ran for
    /// only the rest of it.
    pub first_payload_ns: Option<i64>,
    /// Frame bytes in the window's last [`TAIL_PARTS`]th (its last 10 ms at
    /// 50 ms): where the rate was heading when the window closed.
    pub tail_bytes: u64,
}

impl TcpProgress {
    /// Whether the window's receivers held their senders back: most of its pure
    /// ACKs advertised a small window (a receiving application not keeping up;
    /// a pure ACK is what a receiver sends, so a stream of several flows counts
    /// as limited only when the limited ones send most of its ACKs).
    pub fn receiver_limited(&self) -> bool {
        self.small_window_acks * 2 > self.pure_acks
    }

    /// The part of a `width_ns` window from its first payload on (1 without
    /// payload).
    pub fn active_fraction(&self, width_ns: i64) -> f64 {
        self.first_payload_ns
            .map_or(1.0, |t| 1.0 - t as f64 / width_ns.max(1) as f64)
    }

    /// The rate over the window's last [`TAIL_PARTS`]th, Mbit/s.
    pub fn tail_mbps(&self, width_ns: i64) -> f64 {
        self.tail_bytes as f64 * 8.0 * TAIL_PARTS as f64 / width_ns.max(1) as f64 * 1e3
    }

    /// The throughput the window's ACKs clock out next, Mbit/s: its own
    /// (`throughput_mbps`), times the bytes its ACKs reported arrived over the
    /// payload it sent (at most [`ACK_CLOCK_MAX`] times). Seen from the
    /// senders, a window sends about what the ACKs of the last one let out:
    /// a link that slowed shows in the ACKs a window before it shows in what
    /// is sent. None without payload or reports.
    pub fn ack_clock_mbps(&self, throughput_mbps: f64) -> Option<f64> {
        (self.payload_bytes > 0 && self.reported_bytes > 0).then(|| {
            throughput_mbps
                * (self.reported_bytes as f64 / self.payload_bytes as f64).min(ACK_CLOCK_MAX)
        })
    }

    /// Mean queueing delay of the window's data segments, ms, when their
    /// senders' timestamps give one.
    pub fn queue_delay_ms(&self) -> Option<f64> {
        (self.queue_delay_samples > 0)
            .then(|| self.queue_delay_sum_ms as f64 / self.queue_delay_samples as f64)
    }
}

impl WindowRow {
    /// A silent window at `start_ns` carrying a delay, bytes in flight and
    /// unacknowledged segments forward (FEATURES.md: a window without packets
    /// repeats the last values).
    pub fn silent(start_ns: i64, delay_s: f64, bif_bytes: u64, unacked_segments: u64) -> Self {
        WindowRow {
            start_ns,
            size_bytes: 0,
            delay_s,
            bif_bytes,
            iat_mean_s: 0.0,
            iat_std_s: 0.0,
            throughput_mbps: 0.0,
            delay_grad_s: 0.0,
            bif_grad_bytes: 0,
            is_silent: true,
            packets: 0,
            tcp: TcpProgress {
                unacked_segments,
                ..TcpProgress::default()
            },
        }
    }

    /// The nine features in FEATURES.md order, as the model consumes them.
    pub fn features(&self) -> [f64; 9] {
        [
            self.size_bytes as f64,
            self.delay_s,
            self.bif_bytes as f64,
            self.iat_mean_s,
            self.iat_std_s,
            self.throughput_mbps,
            self.delay_grad_s,
            self.bif_grad_bytes as f64,
            if self.is_silent { 1.0 } else { 0.0 },
        ]
    }
}

/// Where closed windows go: a row at a time, or a run of silent windows that
/// carry the same values (hours of a quiet link) at once, where a consumer can
/// take a run cheaper than its rows. Every `FnMut(WindowRow)` is one, taking a
/// run row by row.
pub trait RowSink {
    /// One closed window.
    fn row(&mut self, r: WindowRow);

    /// `n` silent windows: `first`, then `n - 1` more `width_ns` apart, the
    /// same but for their start.
    fn silent_run(&mut self, first: WindowRow, n: u64, width_ns: i64) {
        let mut r = first;
        for _ in 0..n {
            self.row(r);
            r.start_ns += width_ns;
        }
    }
}

impl<F: FnMut(WindowRow)> RowSink for F {
    #[inline]
    fn row(&mut self, r: WindowRow) {
        self(r)
    }
}

/// Counters the aggregator keeps about time itself.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct WindowStats {
    /// Windows closed.
    pub windows: u64,
    /// Windows closed without a packet.
    pub silent_windows: u64,
    /// Packets older than the open window, folded into it.
    pub late_packets: u64,
    /// Jumps larger than the silent-gap limit: the grid restarted there.
    pub time_jumps: u64,
}

/// Sums for the open window.
#[derive(Default)]
struct Acc {
    packets: u64,
    size_bytes: u64,
    rtt_sum_ns: i128,
    rtt_n: u64,
    /// Last bytes-in-flight sample per sending direction.
    bif_last: FxHashMap<u64, u32>,
    last_ts_ns: i64,
    gaps: i128,
    gap_sum_ns: i128,
    gap_sumsq_ns2: i128,
    tcp: TcpProgress,
}

impl Acc {
    fn clear(&mut self) {
        self.packets = 0;
        self.size_bytes = 0;
        self.rtt_sum_ns = 0;
        self.rtt_n = 0;
        if !self.bif_last.is_empty() {
            self.bif_last.clear();
        }
        self.gaps = 0;
        self.gap_sum_ns = 0;
        self.gap_sumsq_ns2 = 0;
        self.tcp = TcpProgress::default();
    }
}

/// Turns timestamped packet facts into contiguous windows.
pub struct WindowAggregator {
    width_ns: i64,
    /// Gaps longer than this are not filled with silent windows (a clock jump or a
    /// capture paused for hours would otherwise emit millions of rows).
    max_silent_gap_ns: i64,
    /// Index `k` of the open window, once there is one.
    open: Option<i64>,
    acc: Acc,
    prev_delay_s: f64,
    prev_bif: u64,
    /// Unacknowledged segments after the last packet (carried into silent windows).
    prev_unacked: u64,
    emitted_any: bool,
    /// Counters.
    pub stats: WindowStats,
}

/// What one packet contributes to its window.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct PacketFacts {
    /// Capture time, ns since the epoch.
    pub ts_ns: i64,
    /// Frame length, bytes.
    pub frame_len_bytes: u32,
    /// ACK RTT sample, ns.
    pub ack_rtt_ns: Option<i64>,
    /// Bytes in flight after this segment.
    pub bytes_in_flight: Option<u32>,
    /// Sending direction.
    pub direction_id: u64,
    /// The segment carries data, SYN or FIN.
    pub data: bool,
    /// Its TCP payload, bytes.
    pub payload_bytes: u32,
    /// Remembered segments its ACK acknowledged.
    pub acked_segments: u32,
    /// It advertises a zero window.
    pub zero_window: bool,
    /// It is sent again or out of order (see [`crate::flow::flags`]).
    pub retransmission: bool,
    /// It is a duplicate ACK.
    pub duplicate_ack: bool,
    /// Unacknowledged segments over every flow after it.
    pub unacked_segments: u64,
    /// Queueing delay of a data segment, ms (when the sender's timestamps give it).
    pub queue_delay_ms: Option<u32>,
    /// Bytes its ACK newly reported arrived.
    pub reported_bytes: u32,
    /// It is a pure ACK ([`crate::flow::flags::PURE_ACK`]).
    pub pure_ack: bool,
    /// It is a pure ACK advertising a small window
    /// ([`crate::flow::flags::SMALL_WINDOW`]).
    pub small_window: bool,
}

impl WindowAggregator {
    /// A grid of windows `width_ns` wide; gaps over `max_silent_gap_ns` restart it.
    pub fn new(width_ns: i64, max_silent_gap_ns: i64) -> Self {
        assert!(width_ns > 0, "window width must be positive");
        WindowAggregator {
            width_ns,
            max_silent_gap_ns: max_silent_gap_ns.max(width_ns),
            open: None,
            acc: Acc::default(),
            prev_delay_s: 0.0,
            prev_bif: 0,
            prev_unacked: 0,
            emitted_any: false,
            stats: WindowStats::default(),
        }
    }

    /// Window width, ns.
    pub fn width_ns(&self) -> i64 {
        self.width_ns
    }

    /// Start of the open window, if any.
    pub fn open_window_start_ns(&self) -> Option<i64> {
        self.open.map(|k| k * self.width_ns)
    }

    /// Open the window holding `now_ns` if none is open (live capture calls this
    /// at start so silent windows are emitted before the first packet).
    pub fn start_at(&mut self, now_ns: i64) {
        if self.open.is_none() {
            self.open = Some(now_ns.div_euclid(self.width_ns));
        }
    }

    /// Add one packet; windows it closes are passed to `emit`.
    pub fn push(&mut self, f: &PacketFacts, emit: &mut impl RowSink) {
        let k = f.ts_ns.div_euclid(self.width_ns);
        match self.open {
            None => self.open = Some(k),
            Some(open) if k > open => {
                if (k - open).saturating_mul(self.width_ns) > self.max_silent_gap_ns {
                    self.close(emit);
                    self.stats.time_jumps += 1;
                    self.open = Some(k);
                } else {
                    // The open window, then the silent ones up to `k` as a run.
                    self.close(emit);
                    self.silent_run(open + 1, k - open - 1, emit);
                    self.open = Some(k);
                }
            }
            Some(open) if k < open => {
                if (open - k).saturating_mul(self.width_ns) > self.max_silent_gap_ns {
                    self.close(emit);
                    self.stats.time_jumps += 1;
                    self.open = Some(k);
                } else {
                    self.stats.late_packets += 1;
                }
            }
            Some(_) => {}
        }
        let a = &mut self.acc;
        if a.packets > 0 {
            let gap = (f.ts_ns - a.last_ts_ns) as i128;
            a.gaps += 1;
            a.gap_sum_ns += gap;
            a.gap_sumsq_ns2 += gap * gap;
        }
        a.last_ts_ns = f.ts_ns;
        a.packets += 1;
        a.size_bytes += f.frame_len_bytes as u64;
        if let Some(r) = f.ack_rtt_ns {
            a.rtt_sum_ns += r as i128;
            a.rtt_n += 1;
        }
        if let Some(b) = f.bytes_in_flight {
            a.bif_last.insert(f.direction_id, b);
        }
        let start = self.open.map_or(f.ts_ns, |k| k * self.width_ns);
        let into = (f.ts_ns - start).clamp(0, self.width_ns);
        if f.payload_bytes > 0 && a.tcp.first_payload_ns.is_none() {
            a.tcp.first_payload_ns = Some(into);
        }
        if into * TAIL_PARTS >= (TAIL_PARTS - 1) * self.width_ns {
            a.tcp.tail_bytes += f.frame_len_bytes as u64;
        }
        a.tcp.data_segments += u64::from(f.data);
        a.tcp.payload_bytes += u64::from(f.payload_bytes);
        a.tcp.acked_segments += u64::from(f.acked_segments);
        a.tcp.zero_window_segments += u64::from(f.zero_window);
        a.tcp.retransmissions += u64::from(f.retransmission);
        a.tcp.duplicate_acks += u64::from(f.duplicate_ack);
        a.tcp.reported_bytes += u64::from(f.reported_bytes);
        a.tcp.pure_acks += u64::from(f.pure_ack);
        a.tcp.small_window_acks += u64::from(f.small_window);
        if let Some(q) = f.queue_delay_ms {
            a.tcp.queue_delay_samples += 1;
            a.tcp.queue_delay_sum_ms += u64::from(q);
        }
        a.tcp.unacked_segments = f.unacked_segments;
        self.prev_unacked = f.unacked_segments;
    }

    /// Close every window that ends at or before `now_ns` (live: clock minus a
    /// grace for delivery). Silent windows are emitted too.
    pub fn advance_to(&mut self, now_ns: i64, emit: &mut impl RowSink) {
        while let Some(open) = self.open {
            if (open + 1).saturating_mul(self.width_ns) > now_ns {
                break;
            }
            let behind = now_ns - (open + 1) * self.width_ns;
            if behind > self.max_silent_gap_ns {
                // The clock jumped: restart the grid at `now` rather than fill.
                self.close(emit);
                self.stats.time_jumps += 1;
                self.open = Some(now_ns.div_euclid(self.width_ns));
                continue;
            }
            self.close(emit);
            self.open = Some(open + 1);
        }
    }

    /// Close the open window (end of input).
    pub fn finish(&mut self, emit: &mut impl RowSink) {
        if self.open.is_some() {
            self.close(emit);
            self.open = None;
        }
    }

    /// `n` silent windows from index `k` on, after a window was emitted:
    /// each carries the last one's delay, bytes in flight and unacknowledged
    /// segments.
    fn silent_run(&mut self, k: i64, n: i64, emit: &mut impl RowSink) {
        if n <= 0 {
            return;
        }
        debug_assert!(self.emitted_any && self.acc.packets == 0);
        self.stats.windows += n as u64;
        self.stats.silent_windows += n as u64;
        let first = WindowRow::silent(
            k * self.width_ns,
            self.prev_delay_s,
            self.prev_bif,
            self.prev_unacked,
        );
        emit.silent_run(first, n as u64, self.width_ns);
    }

    fn close(&mut self, emit: &mut impl RowSink) {
        let Some(k) = self.open else { return };
        if self.acc.packets == 0 && self.emitted_any {
            // A silent window after another window: everything carries over
            // (the common row of sparse captures; the same values as below).
            self.silent_run(k, 1, emit);
            return;
        }
        let a = &self.acc;
        let delay_s = if a.rtt_n > 0 {
            (a.rtt_sum_ns as f64 / a.rtt_n as f64) / NS_PER_S as f64
        } else {
            self.prev_delay_s
        };
        let bif = if a.bif_last.is_empty() {
            self.prev_bif
        } else {
            a.bif_last.values().map(|v| *v as u64).sum()
        };
        let (iat_mean_s, iat_std_s) = if a.gaps > 0 {
            let n = a.gaps;
            let mean = a.gap_sum_ns as f64 / n as f64 / NS_PER_S as f64;
            // Exact integer variance: (n*sum(g^2) - sum(g)^2) / n^2.
            let num = n * a.gap_sumsq_ns2 - a.gap_sum_ns * a.gap_sum_ns;
            let var_ns2 = num.max(0) as f64 / (n * n) as f64;
            (mean, var_ns2.sqrt() / NS_PER_S as f64)
        } else {
            (0.0, 0.0)
        };
        let width_s = self.width_ns as f64 / NS_PER_S as f64;
        let row = WindowRow {
            start_ns: k * self.width_ns,
            size_bytes: a.size_bytes,
            delay_s,
            bif_bytes: bif,
            iat_mean_s,
            iat_std_s,
            throughput_mbps: a.size_bytes as f64 * 8.0 / width_s / 1e6,
            delay_grad_s: if self.emitted_any {
                delay_s - self.prev_delay_s
            } else {
                0.0
            },
            bif_grad_bytes: if self.emitted_any {
                bif as i64 - self.prev_bif as i64
            } else {
                0
            },
            is_silent: a.packets == 0,
            packets: a.packets,
            tcp: TcpProgress {
                unacked_segments: self.prev_unacked,
                ..a.tcp
            },
        };
        self.prev_delay_s = delay_s;
        self.prev_bif = bif;
        self.emitted_any = true;
        self.stats.windows += 1;
        if row.is_silent {
            self.stats.silent_windows += 1;
        }
        self.acc.clear();
        emit.row(row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;

    fn facts(ts_ns: i64, len: u32) -> PacketFacts {
        PacketFacts {
            ts_ns,
            frame_len_bytes: len,
            ..Default::default()
        }
    }

    fn run(pkts: &[PacketFacts]) -> Vec<WindowRow> {
        let mut w = WindowAggregator::new(50 * MS, 600 * NS_PER_S);
        let mut out = Vec::new();
        for p in pkts {
            w.push(p, &mut |r| out.push(r));
        }
        w.finish(&mut |r| out.push(r));
        out
    }

    #[test]
    fn silent_windows_fill_gaps_on_the_epoch_grid() {
        let rows = run(&[
            facts(1_000 * NS_PER_S + 10 * MS, 100),
            facts(1_000 * NS_PER_S + 170 * MS, 60),
        ]);
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0].start_ns, 1_000 * NS_PER_S);
        assert!(rows[1].is_silent && rows[2].is_silent);
        assert_eq!(rows[3].start_ns, 1_000 * NS_PER_S + 150 * MS);
        assert_eq!(rows[0].throughput_mbps, 100.0 * 8.0 / 0.05 / 1e6);
    }

    #[test]
    fn the_first_payload_says_how_much_of_the_window_a_transfer_ran() {
        let t0 = 1_000 * NS_PER_S;
        let data = |ts_ns| PacketFacts {
            payload_bytes: 1448,
            data: true,
            ..facts(ts_ns, 1514)
        };
        // A pure ACK (the receiver's window update) first, then data from 30 ms
        // into the window; the next window's payload starts at its start.
        let rows = run(&[
            facts(t0 + 20 * MS, 66),
            data(t0 + 30 * MS),
            data(t0 + 50 * MS),
        ]);
        assert_eq!(rows[0].tcp.first_payload_ns, Some(30 * MS));
        assert!((rows[0].tcp.active_fraction(50 * MS) - 0.4).abs() < 1e-12);
        assert_eq!(rows[1].tcp.first_payload_ns, Some(0));
        // Without payload the whole window counts.
        let rows = run(&[facts(t0 + 20 * MS, 66)]);
        assert_eq!(rows[0].tcp.first_payload_ns, None);
        assert_eq!(rows[0].tcp.active_fraction(50 * MS), 1.0);
    }

    #[test]
    fn the_ack_clock_scales_the_throughput_by_what_the_acks_reported() {
        let t = |payload_bytes, reported_bytes| TcpProgress {
            payload_bytes,
            reported_bytes,
            ..TcpProgress::default()
        };
        // Half of what was sent reported delivered: half the rate next.
        assert_eq!(t(100_000, 50_000).ack_clock_mbps(40.0), Some(20.0));
        assert_eq!(t(100_000, 150_000).ack_clock_mbps(40.0), Some(60.0));
        // ACKs of an earlier burst in a window that sent little: capped.
        assert_eq!(t(1_000, 100_000).ack_clock_mbps(1.0), Some(ACK_CLOCK_MAX));
        // Nothing sent, or no reports (a capture of one direction): unknown.
        assert_eq!(t(0, 50_000).ack_clock_mbps(0.0), None);
        assert_eq!(t(100_000, 0).ack_clock_mbps(40.0), None);
    }

    #[test]
    fn the_last_fifth_of_a_window_says_where_its_rate_was_heading() {
        let t0 = 1_000 * NS_PER_S;
        // 1514-byte frames every 2 ms until 30 ms into the window, then one
        // every 10 ms: the last 10 ms (from 40 ms on, the frame at 40 ms
        // included) carry one frame; the frame at 39.999 ms is not in it.
        let mut at: Vec<i64> = (0..15).map(|k| t0 + k * 2 * MS).collect();
        at.extend([t0 + 40 * MS - 1, t0 + 40 * MS]);
        let rows = run(&at.iter().map(|t| facts(*t, 1514)).collect::<Vec<_>>());
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].tcp.tail_bytes, 1514);
        let tail = rows[0].tcp.tail_mbps(50 * MS);
        assert!((tail - 1514.0 * 8.0 / 0.010 / 1e6).abs() < 1e-9, "{tail}");
        // A frame on the next window's first nanosecond is that window's.
        let rows = run(&[facts(t0, 100), facts(t0 + 50 * MS, 100)]);
        assert_eq!((rows[0].tcp.tail_bytes, rows[1].tcp.tail_bytes), (0, 0));
        let rows = run(&[facts(t0 + 50 * MS - 1, 100)]);
        assert_eq!(rows[0].tcp.tail_bytes, 100);
    }

    /// Keeps what it was given: rows, and runs as (first row, n).
    #[derive(Default)]
    struct Runs {
        rows: Vec<WindowRow>,
        runs: Vec<(WindowRow, u64)>,
    }

    impl RowSink for Runs {
        fn row(&mut self, r: WindowRow) {
            self.rows.push(r);
        }

        fn silent_run(&mut self, first: WindowRow, n: u64, _width_ns: i64) {
            self.runs.push((first, n));
        }
    }

    #[test]
    fn a_gap_is_one_run_of_the_rows_a_closure_gets_one_by_one() {
        let mut a = facts(1_000 * NS_PER_S + 10 * MS, 100);
        a.bytes_in_flight = Some(5_000);
        a.ack_rtt_ns = Some(20 * MS);
        a.unacked_segments = 3;
        // Five hundred seconds of silence, then a packet.
        let pkts = [a, facts(1_500 * NS_PER_S + 20 * MS, 60)];
        let rows = run(&pkts);
        let mut w = WindowAggregator::new(50 * MS, 600 * NS_PER_S);
        let mut sink = Runs::default();
        for p in &pkts {
            w.push(p, &mut sink);
        }
        w.finish(&mut sink);
        let silent = 500 * 20 - 1;
        assert_eq!(rows.len(), silent + 2);
        assert_eq!(sink.rows.len(), 2);
        assert_eq!(sink.runs.len(), 1);
        let (first, n) = sink.runs[0];
        assert_eq!(n as usize, silent);
        // Expanded, the run is the closure's rows.
        let mut expanded = vec![sink.rows[0]];
        expanded.extend((0..n as i64).map(|i| WindowRow {
            start_ns: first.start_ns + i * 50 * MS,
            ..first
        }));
        expanded.push(sink.rows[1]);
        assert_eq!(expanded, rows);
        assert!(rows[1].is_silent && rows[1].bif_bytes == 5_000);
        assert_eq!(rows[1].tcp.unacked_segments, 3);
        assert_eq!(w.stats.windows, silent as u64 + 2);
        assert_eq!(w.stats.silent_windows, silent as u64);
    }

    #[test]
    fn iat_and_carry_forward() {
        let mut a = facts(0, 10);
        a.ack_rtt_ns = Some(4 * MS);
        a.bytes_in_flight = Some(1000);
        let mut b = facts(2 * MS, 10);
        b.ack_rtt_ns = Some(6 * MS);
        let c = facts(6 * MS, 10);
        let rows = run(&[a, b, c, facts(120 * MS, 1)]);
        assert_eq!(rows[0].delay_s, 0.005);
        assert_eq!(rows[0].iat_mean_s, 0.003);
        assert!((rows[0].iat_std_s - 0.001).abs() < 1e-15);
        assert_eq!(rows[0].bif_bytes, 1000);
        // Carried into the silent and the next window; gradients are zero then.
        assert_eq!(rows[1].delay_s, 0.005);
        assert_eq!(rows[2].bif_bytes, 1000);
        assert_eq!(rows[2].delay_grad_s, 0.0);
    }

    #[test]
    fn late_packets_fold_into_the_open_window() {
        let rows = run(&[facts(60 * MS, 10), facts(10 * MS, 20), facts(70 * MS, 5)]);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].size_bytes, 35);
    }

    #[test]
    fn huge_jumps_restart_the_grid() {
        let mut w = WindowAggregator::new(50 * MS, 10 * NS_PER_S);
        let mut out = Vec::new();
        w.push(&facts(0, 1), &mut |r| out.push(r));
        w.push(&facts(1_000 * NS_PER_S, 1), &mut |r| out.push(r));
        w.finish(&mut |r| out.push(r));
        assert_eq!(out.len(), 2);
        assert_eq!(w.stats.time_jumps, 1);
    }

    #[test]
    fn advance_to_emits_silent_windows_without_packets() {
        let mut w = WindowAggregator::new(50 * MS, 600 * NS_PER_S);
        let mut out = Vec::new();
        w.start_at(1_000 * MS + 1);
        w.advance_to(1_000 * MS + 149 * MS, &mut |r| out.push(r));
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|r| r.is_silent));
        assert_eq!(out[1].start_ns, 1_050 * MS);
    }
}
