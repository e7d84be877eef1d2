//! TCP sequence analysis: ACK RTT and bytes in flight per packet, as Wireshark
//! computes `tcp.analysis.ack_rtt` and `tcp.analysis.bytes_in_flight`
//! (FEATURES.md "ACK RTT and bytes in flight"; `epan/dissectors/packet-tcp.c`,
//! `tcp_analyze_sequence_number`, tshark 4.0).
//!
//! Owns the flow table: bidirectional flows keyed by the 5-tuple in either order,
//! a per-direction list of unacknowledged segments, idle and close expiry, a cap
//! with longest-idle-first eviction and a global budget of remembered segments, so
//! memory stays bounded whatever the input. Does not own windows or time grids.
//!
//! Where tshark and FEATURES.md differ, tshark wins because it is the oracle:
//! bytes in flight is valid from a direction's first segment (tshark initialises
//! `valid_bif` to 1), and an RTT of exactly zero is not a sample (tshark prints
//! `ack_rtt` only when it is non-zero).

use crate::capture::{Endpoints, PacketSummary, SackBlocks, tcp_flags as F};
use crate::flowindex::{FlowIndex, advise_huge_pages, hash_key, prefetch_all};
use crate::seglist::{Seg, SegList, seq_gt};

/// Wireshark's `TCP_MAX_UNACKED_SEGMENTS`: a direction remembers at most this many.
pub const MAX_UNACKED_PER_DIRECTION: usize = 10_000;
/// tshark reports bytes in flight only below this (larger means wrapped arithmetic).
const BIF_SANITY_LIMIT: u32 = 2_000_000_000;

/// Limits of the flow table. Defaults keep memory under ~150 MB in the worst case.
#[derive(Copy, Clone, Debug)]
pub struct FlowConfig {
    /// Most flows tracked at once; beyond it the longest-idle flow is evicted.
    pub max_flows: usize,
    /// A flow with no packet for this long is forgotten. Long enough for a
    /// zero-window stall (tens of seconds) so it costs no sample.
    pub idle_timeout_ns: i64,
    /// A flow closed by RST or FIN from both sides is kept this long for the final
    /// ACKs and retransmitted FINs.
    pub close_linger_ns: i64,
    /// Total unacknowledged segments remembered over all flows (16 bytes each).
    pub max_segments_total: usize,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            max_flows: 262_144,
            idle_timeout_ns: 300 * 1_000_000_000,
            close_linger_ns: 10 * 1_000_000_000,
            max_segments_total: 4_000_000,
        }
    }
}

/// What the analysis says about one packet.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Analysis {
    /// ACK RTT sample in nanoseconds (can be negative when timestamps go backwards).
    pub ack_rtt_ns: Option<i64>,
    /// Bytes in flight after this data segment.
    pub bytes_in_flight: Option<u32>,
    /// Identity of the sending direction: unique per flow lifetime and direction.
    pub direction_id: u64,
    /// Wireshark's expert flags for this segment ([`flags`]).
    pub flags: u8,
    /// Queueing delay of a data segment, ms (see [`OneWay`]), once its
    /// direction's timestamp clock is known to tick at 1 kHz.
    pub queue_delay_ms: Option<u32>,
    /// Bytes an ACK newly reports arrived at its sender: its cumulative ACK's
    /// advance past the highest byte its direction reported before, and the
    /// bytes of its SACK blocks past that. Counts what a loss recovery still
    /// delivers (SACKed, not yet cumulatively acknowledged) once; the holes
    /// are not counted (neither when a SACK passes them nor when the
    /// cumulative ACK later covers them and the data SACKed).
    pub reported_bytes: u32,
}

/// [`Analysis::flags`]: what tshark's sequence analysis says of a segment.
pub mod flags {
    /// Data (or SYN/FIN) that does not advance the sequence: any of
    /// `tcp.analysis.retransmission`, `fast_retransmission`,
    /// `spurious_retransmission` and `out_of_order` (which of them depends on
    /// timing heuristics; together they are "sent again or out of order").
    pub const RETRANSMISSION: u8 = 1;
    /// `tcp.analysis.duplicate_ack`.
    pub const DUPLICATE_ACK: u8 = 2;
    /// `tcp.analysis.zero_window`.
    pub const ZERO_WINDOW: u8 = 4;
    /// A pure ACK: no data, no SYN, FIN or RST.
    pub const PURE_ACK: u8 = 8;
    /// A pure ACK advertising a zero window or under an eighth of the largest
    /// window its direction advertised: the receiving application is not
    /// keeping up, and its window, not the path, limits the sender.
    pub const SMALL_WINDOW: u8 = 16;
}

/// Flow-table counters, reported in summaries and metrics.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct FlowStats {
    /// Flows seen.
    pub flows_created: u64,
    /// Flows in the table now.
    pub flows_active: u64,
    /// Most flows in the table at once.
    pub flows_peak: u64,
    /// Flows forgotten after the idle timeout.
    pub evicted_idle: u64,
    /// Flows forgotten after RST or both FINs.
    pub evicted_closed: u64,
    /// Flows evicted because the table was full.
    pub evicted_cap: u64,
    /// Flows restarted by a new SYN on the same ports.
    pub port_reuse_restarts: u64,
    /// Segments not remembered because a direction already held 10,000.
    pub segments_over_direction_cap: u64,
    /// Segments not remembered because the global budget was used up.
    pub segments_over_budget: u64,
    /// Segments remembered for analysis.
    pub segments_remembered: u64,
}

#[derive(Debug, Default)]
struct Dir {
    base_seq: Option<u32>,
    nextseq: u32,
    maxseqtobeacked: u32,
    window: u16,
    /// The largest window field this direction advertised after its SYN (raw:
    /// the scale is fixed by then, so ratios of raw fields are ratios of windows).
    max_window: u16,
    valid_bif: bool,
    segs: SegList,
    /// SACK blocks of this direction's latest packet (reset on every packet).
    sack: SackBlocks,
    fin_seen: bool,
    /// The ACK number of this direction's latest packet (Wireshark's `lastack`).
    lastack: u32,
    /// This direction's latest packet was a keep-alive.
    keepalive: bool,
    owd: OneWay,
    /// The highest byte this direction's ACKs and SACK blocks reported
    /// arrived (see [`Analysis::reported_bytes`]).
    reported_hi: Option<u32>,
}

/// The one-way delay of a direction's data segments as the capture sees it:
/// capture time minus the sender's timestamp (TSval). The clocks' offset is
/// unknown but constant, so the delay over the least seen is the time spent
/// queued between the sender and the capture point: downstream of a
/// bottleneck, a backlog standing there. Used only once the sender's clock is
/// seen ticking at 1 kHz (as Linux's does) within a fifth over its first
/// `OWD_CLOCK_SPAN_MS`; other clocks give nothing. 12 bytes: a million flows
/// carry two each.
#[derive(Debug, Default)]
struct OneWay {
    /// The first sample's capture ms (wrapping) minus its TSval.
    offset0: u32,
    /// The first sample's capture ms (wrapping), for the clock check (its
    /// TSval is `t0 - offset0`); then when the least last rose.
    t0: u32,
    /// The least capture ms minus TSval so far, relative to `offset0`.
    min_rel: i16,
    clock: Clock,
}

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
enum Clock {
    #[default]
    Unseen,
    Checking,
    Millisecond,
    Other,
}

/// Capture time over which a sender's timestamp clock is checked, ms.
const OWD_CLOCK_SPAN_MS: u32 = 5_000;
/// The least one-way delay rises a millisecond this often (clock skew).
const OWD_RAISE_EVERY_MS: u32 = 10_000;

impl OneWay {
    fn sample(&mut self, ts_ns: i64, tsval: u32) -> Option<u32> {
        // Wrapping ms: only differences over seconds are taken.
        let ms = ts_ns.div_euclid(1_000_000) as u32;
        let offset = ms.wrapping_sub(tsval);
        match self.clock {
            Clock::Unseen => {
                (self.offset0, self.t0) = (offset, ms);
                self.clock = Clock::Checking;
            }
            Clock::Checking => {
                let elapsed = ms.wrapping_sub(self.t0);
                if (OWD_CLOCK_SPAN_MS..u32::MAX / 2).contains(&elapsed) {
                    let v0 = self.t0.wrapping_sub(self.offset0);
                    let rate = f64::from(tsval.wrapping_sub(v0) as i32) / f64::from(elapsed);
                    self.clock = if (0.8..=1.2).contains(&rate) {
                        Clock::Millisecond
                    } else {
                        Clock::Other
                    };
                }
            }
            Clock::Millisecond => {
                // The least rises a millisecond every 10 s: a capture clock
                // running up to 100 ppm faster than the sender's does not
                // read as a queue growing for as long as the flow lives.
                if ms.wrapping_sub(self.t0) >= OWD_RAISE_EVERY_MS {
                    self.t0 = ms;
                    self.min_rel = self.min_rel.saturating_add(1);
                }
            }
            Clock::Other => {}
        }
        if self.clock == Clock::Other {
            return None;
        }
        // Relative to the first sample, within +-32 s (a queue of more is
        // not one; it saturates).
        let rel = offset.wrapping_sub(self.offset0) as i32;
        let rel = rel.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
        self.min_rel = self.min_rel.min(rel);
        (self.clock == Clock::Millisecond)
            .then(|| (i32::from(rel) - i32::from(self.min_rel)) as u32)
    }
}

impl Dir {
    /// [`Analysis::reported_bytes`] of packet `p` sent by this direction.
    fn reported(&mut self, p: &PacketSummary) -> u32 {
        if p.flags & F::ACK == 0 || p.flags & F::RST != 0 {
            return 0;
        }
        let Some(mut hi) = self.reported_hi else {
            self.reported_hi = Some(p.ack);
            return 0;
        };
        let mut bytes = 0u32;
        if seq_gt(p.ack, hi) {
            bytes = p.ack.wrapping_sub(hi);
            hi = p.ack;
        }
        // The SACK blocks past the highest byte reported, lowest first;
        // the gaps below them (lost, or still on their way) are not counted.
        let n = usize::from(p.sack.n).min(3);
        let mut blocks = [(0u32, 0u32); 3];
        for (i, b) in blocks.iter_mut().enumerate().take(n) {
            *b = (p.sack.left[i], p.sack.right[i]);
        }
        let blocks = &mut blocks[..n];
        blocks.sort_unstable_by_key(|&(l, _)| l.wrapping_sub(hi));
        for &(l, r) in blocks.iter() {
            if seq_gt(r, hi) && !seq_gt(l, r) {
                let from = if seq_gt(l, hi) { l } else { hi };
                bytes = bytes.wrapping_add(r.wrapping_sub(from));
                hi = r;
            }
        }
        self.reported_hi = Some(hi);
        bytes
    }

    fn new() -> Self {
        Dir {
            valid_bif: true,
            ..Default::default()
        }
    }
}

#[derive(Debug)]
struct Flow {
    key: Endpoints,
    /// `hash_key(&key)`, where the index files it.
    hash: u32,
    dirs: [Dir; 2],
    serial: u64,
    last_seen_ns: i64,
    closed: bool,
    // Intrusive LRU list over slots: most recent at the head.
    prev: u32,
    next: u32,
}

const NIL: u32 = u32::MAX;

/// Flows at which the slots are given room for the cap at once.
const SLOTS_BEFORE_RESERVE: usize = 4096;

/// The flow table and the analysis.
pub struct FlowTable {
    cfg: FlowConfig,
    index: FlowIndex,
    slots: Vec<Option<Flow>>,
    free: Vec<u32>,
    head: u32,
    tail: u32,
    next_serial: u64,
    segments_total: usize,
    last_acked: u32,
    /// Counters.
    pub stats: FlowStats,
}

/// The hash the flow table files a packet's flow under (both directions
/// alike): pure, so a reader thread can compute it ahead of the table.
#[inline]
pub fn flow_hash(ends: &Endpoints) -> u32 {
    hash_key(ends)
}

/// Canonical key: the lower (address, port) first; `dir` says which side sent.
fn canonical(e: &Endpoints) -> (Endpoints, usize) {
    if (e.src, e.sport) <= (e.dst, e.dport) {
        (*e, 0)
    } else {
        (
            Endpoints {
                src: e.dst,
                dst: e.src,
                sport: e.dport,
                dport: e.sport,
                v6: e.v6,
            },
            1,
        )
    }
}

impl FlowTable {
    /// An empty table with these limits.
    pub fn new(cfg: FlowConfig) -> Self {
        FlowTable {
            cfg,
            index: FlowIndex::new(),
            slots: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            next_serial: 0,
            segments_total: 0,
            last_acked: 0,
            stats: FlowStats::default(),
        }
    }

    /// Segments remembered as unacknowledged, over every flow.
    pub fn unacked_segments(&self) -> usize {
        self.segments_total
    }

    /// Remembered segments the last packet's ACK number acknowledged (TCP
    /// progress; kept here rather than in [`Analysis`], whose size is on the
    /// per-packet path).
    pub fn last_acked(&self) -> u32 {
        self.last_acked
    }

    /// Flows in the table.
    pub fn active_flows(&self) -> usize {
        self.index.len()
    }

    fn unlink(&mut self, i: u32) {
        let (p, n) = {
            let f = self.slots[i as usize]
                .as_ref()
                .expect("linked slot holds a flow");
            (f.prev, f.next)
        };
        if p != NIL {
            if let Some(pf) = self.slots[p as usize].as_mut() {
                pf.next = n;
            }
        } else {
            self.head = n;
        }
        if n != NIL {
            if let Some(nf) = self.slots[n as usize].as_mut() {
                nf.prev = p;
            }
        } else {
            self.tail = p;
        }
    }

    fn push_front(&mut self, i: u32) {
        let old = self.head;
        if let Some(f) = self.slots[i as usize].as_mut() {
            f.prev = NIL;
            f.next = old;
        }
        if old != NIL {
            if let Some(of) = self.slots[old as usize].as_mut() {
                of.prev = i;
            }
        } else {
            self.tail = i;
        }
        self.head = i;
    }

    fn remove(&mut self, i: u32) {
        self.unlink(i);
        if let Some(f) = self.slots[i as usize].take() {
            self.index.remove(f.hash, i);
            self.segments_total -= f.dirs[0].segs.len() + f.dirs[1].segs.len();
        }
        self.free.push(i);
        self.stats.flows_active = self.index.len() as u64;
    }

    /// Forget flows idle past their timeout at packet time `now_ns`.
    pub fn expire(&mut self, now_ns: i64) {
        while self.tail != NIL {
            let Some(f) = self.slots[self.tail as usize].as_ref() else {
                break;
            };
            let idle = now_ns.saturating_sub(f.last_seen_ns);
            // The tail is the longest idle; closed flows may sit further up, and
            // are collected when they reach the tail or when the table is full.
            if idle > self.cfg.idle_timeout_ns || (f.closed && idle > self.cfg.close_linger_ns) {
                if f.closed {
                    self.stats.evicted_closed += 1;
                } else {
                    self.stats.evicted_idle += 1;
                }
                let t = self.tail;
                self.remove(t);
            } else {
                break;
            }
        }
    }

    fn new_flow(&mut self, key: Endpoints, hash: u32, now_ns: i64) -> u32 {
        if self.index.len() >= self.cfg.max_flows && self.tail != NIL {
            self.stats.evicted_cap += 1;
            let t = self.tail;
            self.remove(t);
            // At the cap the next new flow evicts the new tail: start loading
            // what that eviction reads now (each a cache miss at a million
            // flows): the tail's index bucket, all of its slot (dropped, then
            // reused for the new flow), and the slot before it (relinked).
            // Without the two slots the churn capture took a median
            // 0.39-0.42 s against 0.34-0.38 s (11 runs each, twice).
            if let Some(f) = self.slots.get(self.tail as usize).and_then(Option::as_ref) {
                self.index.prefetch(f.hash);
                let prev = f.prev;
                prefetch_all(&self.slots[self.tail as usize]);
                if let Some(p) = self.slots.get(prev as usize) {
                    prefetch_all(p);
                }
            }
        }
        let serial = self.next_serial;
        self.next_serial += 1;
        let flow = Flow {
            key,
            hash,
            dirs: [Dir::new(), Dir::new()],
            serial,
            last_seen_ns: now_ns,
            closed: false,
            prev: NIL,
            next: NIL,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(flow);
                i
            }
            None => {
                if self.slots.len() == SLOTS_BEFORE_RESERVE {
                    // Past a few thousand flows, room for the cap at once, in
                    // huge pages (untouched room costs no memory).
                    let cap = self.cfg.max_flows.clamp(self.slots.len() + 1, 1 << 22);
                    let mut room = Vec::with_capacity(cap);
                    advise_huge_pages(&room);
                    room.append(&mut self.slots);
                    self.slots = room;
                }
                self.slots.push(Some(flow));
                (self.slots.len() - 1) as u32
            }
        };
        self.index.insert(hash, i);
        self.push_front(i);
        self.stats.flows_created += 1;
        self.stats.flows_active = self.index.len() as u64;
        self.stats.flows_peak = self.stats.flows_peak.max(self.stats.flows_active);
        i
    }

    /// Start loading what [`FlowTable::process_hashed`] reads first for a
    /// packet whose [`flow_hash`] is `hash` (call a few packets ahead; a
    /// hint, results do not change).
    #[inline]
    pub fn prefetch(&self, hash: u32) {
        self.index.prefetch(hash);
    }

    /// Analyse one packet. Call in capture order.
    #[inline]
    pub fn process(&mut self, p: &PacketSummary) -> Analysis {
        self.process_hashed(p, flow_hash(&p.ends))
    }

    /// [`FlowTable::process`] with the packet's [`flow_hash`] computed
    /// already (by a thread that parses ahead).
    pub fn process_hashed(&mut self, p: &PacketSummary, hash: u32) -> Analysis {
        let (key, d) = canonical(&p.ends);
        debug_assert_eq!(hash, hash_key(&key));
        let slots = &self.slots;
        let mut found = self.index.find(hash, |i| {
            slots[i as usize].as_ref().is_some_and(|f| f.key == key)
        });
        if let Some(i) = found {
            // Expiry is decided here too, so results do not depend on how often
            // `expire` runs.
            if let Some(f) = self.slots[i as usize].as_ref() {
                let idle = p.ts_ns.saturating_sub(f.last_seen_ns);
                if idle > self.cfg.idle_timeout_ns || (f.closed && idle > self.cfg.close_linger_ns)
                {
                    if f.closed {
                        self.stats.evicted_closed += 1;
                    } else {
                        self.stats.evicted_idle += 1;
                    }
                    self.remove(i);
                    found = None;
                }
            }
        }
        let i = match found {
            Some(i) => {
                if i != self.head {
                    self.unlink(i);
                    self.push_front(i);
                }
                i
            }
            None => self.new_flow(key, hash, p.ts_ns),
        };
        let syn = p.flags & F::SYN != 0;
        let ackf = p.flags & F::ACK != 0;
        // A SYN with a new ISN on a known 5-tuple is a new connection (tshark:
        // "TCP port numbers reused"); a SYN with the same ISN is a retransmission.
        let restart = {
            let f = self.slots[i as usize]
                .as_ref()
                .expect("indexed slot holds a flow");
            syn && !ackf && f.dirs[d].base_seq.is_some_and(|b| b != p.seq)
        };
        if restart {
            let f = self.slots[i as usize]
                .as_mut()
                .expect("indexed slot holds a flow");
            let freed = f.dirs[0].segs.len() + f.dirs[1].segs.len();
            f.dirs = [Dir::new(), Dir::new()];
            f.closed = false;
            f.serial = self.next_serial;
            self.next_serial += 1;
            self.segments_total -= freed;
            self.stats.port_reuse_restarts += 1;
        }
        let budget_left = self
            .cfg
            .max_segments_total
            .saturating_sub(self.segments_total);
        let f = self.slots[i as usize]
            .as_mut()
            .expect("indexed slot holds a flow");
        f.last_seen_ns = p.ts_ns;
        let serial = f.serial;
        let (fwd, rev) = if d == 0 {
            let (a, b) = f.dirs.split_at_mut(1);
            (&mut a[0], &mut b[0])
        } else {
            let (a, b) = f.dirs.split_at_mut(1);
            (&mut b[0], &mut a[0])
        };
        if syn && !ackf && fwd.base_seq == Some(p.seq) {
            // Retransmitted SYN: tshark restores nextseq (issue 17616).
            fwd.nextseq = fwd.maxseqtobeacked;
        }
        if syn && ackf && fwd.base_seq.is_some_and(|b| b != p.seq) {
            fwd.base_seq = Some(p.seq);
        }
        let (out, added, removed) = analyze(fwd, rev, p, budget_left);
        let reported_bytes = fwd.reported(p);
        let queue_delay_ms = match p.tsval {
            Some(v) if p.payload_len_bytes > 0 => fwd.owd.sample(p.ts_ns, v),
            _ => None,
        };
        if p.flags & F::FIN != 0 {
            fwd.fin_seen = true;
        }
        let closing = p.flags & F::RST != 0 || (fwd.fin_seen && rev.fin_seen);
        if closing {
            f.closed = true;
        }
        self.segments_total = self.segments_total + added - removed;
        self.last_acked = removed as u32;
        match added {
            1 => self.stats.segments_remembered += 1,
            _ if p.payload_len_bytes > 0 || p.flags & (F::SYN | F::FIN) != 0 => {
                if budget_left == 0 {
                    self.stats.segments_over_budget += 1;
                } else {
                    self.stats.segments_over_direction_cap += 1;
                }
            }
            _ => {}
        }
        if p.options_cut {
            return Analysis {
                direction_id: serial * 2 + d as u64,
                flags: out.flags,
                reported_bytes,
                ..Analysis::default()
            };
        }
        Analysis {
            direction_id: serial * 2 + d as u64,
            queue_delay_ms,
            reported_bytes,
            ..out
        }
    }
}

/// `tcp_analyze_sequence_number`, reduced to the state that affects ACK RTT and
/// bytes in flight. Returns the analysis and how many segments were added/removed.
fn analyze(
    fwd: &mut Dir,
    rev: &mut Dir,
    p: &PacketSummary,
    budget_left: usize,
) -> (Analysis, usize, usize) {
    let (seq, ack, seglen) = (p.seq, p.ack, p.payload_len_bytes);
    let syn_fin = p.flags & (F::SYN | F::FIN) != 0;
    if fwd.base_seq.is_none() {
        fwd.base_seq = Some(if p.flags & F::SYN != 0 {
            seq
        } else {
            seq.wrapping_sub(1)
        });
    }
    if rev.base_seq.is_none() && p.flags & F::ACK != 0 {
        rev.base_seq = Some(ack.wrapping_sub(1));
    }
    if p.flags & F::ACK != 0 {
        rev.valid_bif = true;
    }
    // Zero window probe: one byte at the next expected sequence into a zero window.
    let zwp = seglen == 1 && seq == fwd.nextseq && rev.window == 0;
    // The expert flags, in the order of `tcp_analyze_sequence_number`, all
    // against this direction's state before this packet. The window compared
    // is the raw field: a direction's scale only changes with its SYN, which
    // no duplicate ACK is.
    let plain = p.flags & (F::SYN | F::FIN | F::RST) == 0;
    let keepalive = seglen <= 1 && seq == fwd.nextseq.wrapping_sub(1) && plain;
    let mut flags = 0;
    if !zwp {
        if p.window == 0 && plain {
            flags |= flags::ZERO_WINDOW;
        }
        // Not a keep-alive ACK (repeating the ACK of a peer's keep-alive).
        if seglen == 0
            && p.window != 0
            && p.window == fwd.window
            && seq == fwd.nextseq
            && ack == fwd.lastack
            && plain
            && !rev.keepalive
        {
            flags |= flags::DUPLICATE_ACK;
        }
    }
    if plain && seglen == 0 && p.flags & F::ACK != 0 {
        flags |= flags::PURE_ACK;
        if p.window == 0 || u32::from(p.window) * 8 < u32::from(fwd.max_window) {
            flags |= flags::SMALL_WINDOW;
        }
    }
    if plain {
        fwd.max_window = fwd.max_window.max(p.window);
    }
    if (seglen > 0 || syn_fin)
        && fwd.nextseq != 0
        && seq_gt(fwd.nextseq, seq)
        && !keepalive
        // Not when it adds data from one before the next sequence (after a
        // possible zero window probe).
        && !(seglen > 1 && fwd.nextseq.wrapping_sub(1) == seq)
    {
        flags |= flags::RETRANSMISSION;
    }
    if !zwp && fwd.nextseq != 0 && seq_gt(seq, fwd.nextseq) && p.flags & F::RST == 0 {
        // A segment was not captured: bytes in flight is unknown until the peer ACKs.
        fwd.valid_bif = false;
    }
    // "ACKed unseen segment" moves the peer's max-seq-to-be-acked back.
    if rev.maxseqtobeacked != 0
        && seq_gt(ack, rev.maxseqtobeacked)
        && p.flags & F::ACK != 0
        && rev.maxseqtobeacked > rev.nextseq
    {
        rev.maxseqtobeacked = rev.nextseq;
    }

    let mut nextseq = seq.wrapping_add(seglen);
    let mut added = 0;
    if (seglen > 0 || syn_fin) && fwd.segs.len() < MAX_UNACKED_PER_DIRECTION && budget_left > 0 {
        if syn_fin {
            nextseq = nextseq.wrapping_add(1);
        }
        fwd.segs.push(Seg {
            seq,
            nextseq,
            ts_ns: p.ts_ns,
        });
        added = 1;
    }
    if (seq_gt(nextseq, fwd.nextseq) || fwd.nextseq == 0) && !zwp {
        fwd.nextseq = nextseq;
    }
    if (seq == fwd.maxseqtobeacked || fwd.maxseqtobeacked == 0) && !zwp {
        fwd.maxseqtobeacked = fwd.nextseq;
    }
    fwd.window = p.window;
    fwd.lastack = ack;
    fwd.keepalive = keepalive;

    // The ACK number is applied whether or not the ACK flag is set, as tshark does.
    let (rtt, removed) = rev.segs.ack(ack, p.ts_ns);
    let ack_rtt_ns = rtt.filter(|r| *r != 0);

    let mut bytes_in_flight = None;
    if seglen != 0
        && fwd.valid_bif
        && let Some(span) = fwd.segs.span(fwd.base_seq.unwrap_or(0))
    {
        let in_flight = span.wrapping_sub(if rev.sack.n > 0 {
            rev.sack.covered_bytes()
        } else {
            0
        });
        if in_flight > 0 && in_flight < BIF_SANITY_LIMIT {
            let v = in_flight - u32::from(syn_fin);
            if v != 0 {
                bytes_in_flight = Some(v);
            }
        }
    }
    fwd.sack = p.sack;
    (
        Analysis {
            ack_rtt_ns,
            bytes_in_flight,
            direction_id: 0,
            flags,
            queue_delay_ms: None,
            reported_bytes: 0,
        },
        added,
        removed,
    )
}

/// A segment between two fixed hosts, for the engine's unit tests.
#[cfg(test)]
pub(crate) fn test_segment(
    from_a: bool,
    ts_ns: i64,
    (seq, ack, flags): (u32, u32, u16),
    len: u32,
    window: u16,
) -> PacketSummary {
    const A: [u8; 16] = [10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    const B: [u8; 16] = [10, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let (src, dst, sport, dport) = if from_a {
        (A, B, 4000, 80)
    } else {
        (B, A, 80, 4000)
    };
    PacketSummary {
        ts_ns,
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
        window,
        payload_len_bytes: len,
        sack: SackBlocks::default(),
        options_cut: false,
        tsval: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(from_a: bool, ts_ns: i64, seq: u32, ack: u32, flags: u16, len: u32) -> PacketSummary {
        test_segment(from_a, ts_ns, (seq, ack, flags), len, 1000)
    }

    const MS: i64 = 1_000_000;

    #[test]
    fn handshake_and_data_give_rtt_and_bif() {
        let mut t = FlowTable::new(FlowConfig::default());
        let a = t.process(&pkt(true, 0, 100, 0, F::SYN, 0));
        assert_eq!(a.ack_rtt_ns, None);
        let b = t.process(&pkt(false, 10 * MS, 500, 101, F::SYN | F::ACK, 0));
        assert_eq!(b.ack_rtt_ns, Some(10 * MS));
        let c = t.process(&pkt(true, 20 * MS, 101, 501, F::ACK, 0));
        assert_eq!(c.ack_rtt_ns, Some(10 * MS));
        let d1 = t.process(&pkt(true, 21 * MS, 101, 501, F::ACK, 1000));
        assert_eq!(d1.bytes_in_flight, Some(1000));
        let d2 = t.process(&pkt(true, 22 * MS, 1101, 501, F::ACK, 1000));
        assert_eq!(d2.bytes_in_flight, Some(2000));
        // Partial ACK: trims, no sample.
        let e = t.process(&pkt(false, 30 * MS, 501, 601, F::ACK, 0));
        assert_eq!(e.ack_rtt_ns, None);
        let d3 = t.process(&pkt(true, 31 * MS, 2101, 501, F::ACK, 1000));
        assert_eq!(d3.bytes_in_flight, Some(2500));
        let g = t.process(&pkt(false, 40 * MS, 501, 3101, F::ACK, 0));
        assert_eq!(g.ack_rtt_ns, Some(9 * MS));
        assert_eq!(t.segments_total, 0);
    }

    #[test]
    fn retransmission_oldest_send_wins() {
        let mut t = FlowTable::new(FlowConfig::default());
        t.process(&pkt(true, 0, 1, 1, F::ACK, 100));
        t.process(&pkt(true, 5 * MS, 1, 1, F::ACK, 100));
        let r = t.process(&pkt(false, 12 * MS, 1, 101, F::ACK, 0));
        assert_eq!(r.ack_rtt_ns, Some(12 * MS));
    }

    /// tshark's expert flags on a short exchange (the oracle checks them
    /// packet by packet on real captures; this pins the rules).
    #[test]
    fn retransmissions_duplicate_acks_and_zero_windows_are_flagged_as_tshark_does() {
        use super::flags::{DUPLICATE_ACK as DUP, RETRANSMISSION as RTX, ZERO_WINDOW as ZW};
        let mut t = FlowTable::new(FlowConfig::default());
        let w = |from_a, ms, seq, ack, len, win| {
            test_segment(from_a, ms * MS, (seq, ack, F::ACK), len, win)
        };
        let mut f = |p: PacketSummary| t.process(&p).flags & (RTX | DUP | ZW);
        assert_eq!(f(w(true, 0, 1, 1, 100, 1000)), 0, "new data");
        assert_eq!(f(w(true, 1, 101, 1, 100, 1000)), 0);
        assert_eq!(f(w(false, 2, 1, 101, 0, 1000)), 0, "an ACK that moves");
        assert_eq!(
            f(w(false, 3, 1, 101, 0, 1000)),
            DUP,
            "the same ACK, window and seq"
        );
        assert_eq!(f(w(false, 4, 1, 101, 0, 1000)), DUP);
        assert_eq!(f(w(false, 5, 1, 101, 0, 2000)), 0, "a window update is not");
        assert_eq!(
            f(w(true, 6, 101, 1, 100, 1000)),
            RTX,
            "data below the next sequence"
        );
        assert_eq!(
            f(w(true, 7, 200, 1, 1, 1000)),
            0,
            "a keep-alive is not sent again"
        );
        assert_eq!(f(w(false, 8, 1, 201, 0, 0)), ZW, "a zero window");
        assert_eq!(
            f(w(false, 9, 1, 201, 0, 0)),
            ZW,
            "zero windows are no duplicate ACKs"
        );
        let syn = |ms| test_segment(true, ms * MS, (5000, 0, F::SYN), 0, 1000);
        let mut u = FlowTable::new(FlowConfig::default());
        assert_eq!(u.process(&syn(0)).flags, 0);
        assert_eq!(u.process(&syn(1000)).flags, RTX, "a SYN sent again");
    }

    /// A pure ACK's window is small when it is zero or under an eighth of the
    /// largest its direction advertised after the SYN (raw fields).
    #[test]
    fn pure_acks_and_small_windows() {
        use super::flags::{PURE_ACK as PURE, SMALL_WINDOW as SMALL};
        let mut t = FlowTable::new(FlowConfig::default());
        let mut f = |from_a, ms, (seq, ack, fl), len, win| {
            t.process(&test_segment(from_a, ms * MS, (seq, ack, fl), len, win))
                .flags
                & (PURE | SMALL)
        };
        assert_eq!(f(true, 0, (0, 0, F::SYN), 0, 64000), 0, "a SYN");
        assert_eq!(
            f(false, 1, (0, 1, F::SYN | F::ACK), 0, 65000),
            0,
            "a SYN-ACK: its window is not scaled, and not the largest"
        );
        assert_eq!(
            f(true, 2, (1, 1, F::ACK), 0, 500),
            PURE,
            "the handshake's ACK"
        );
        assert_eq!(f(true, 3, (1, 1, F::ACK), 1000, 500), 0, "data");
        assert_eq!(
            f(false, 4, (1, 1001, F::ACK), 0, 800),
            PURE,
            "the largest so far"
        );
        assert_eq!(
            f(false, 5, (1, 1001, F::ACK), 0, 100),
            PURE,
            "an eighth is not small"
        );
        assert_eq!(
            f(false, 6, (1, 1001, F::ACK), 0, 99),
            PURE | SMALL,
            "under an eighth"
        );
        assert_eq!(f(false, 7, (1, 1001, F::ACK), 0, 0), PURE | SMALL, "zero");
        assert_eq!(f(false, 8, (1, 1001, F::ACK | F::FIN), 0, 0), 0, "a FIN");
        let mut u = FlowTable::new(FlowConfig::default());
        let zero = test_segment(false, 0, (1, 1, F::ACK), 0, 0);
        assert_eq!(
            u.process(&zero).flags & (PURE | SMALL),
            PURE | SMALL,
            "a zero window, with no larger seen"
        );
    }

    #[test]
    fn capture_gap_disables_bif_until_peer_acks() {
        let mut t = FlowTable::new(FlowConfig::default());
        t.process(&pkt(true, 0, 1, 1, F::ACK, 100));
        let gap = t.process(&pkt(true, MS, 301, 1, F::ACK, 100));
        assert_eq!(gap.bytes_in_flight, None);
        t.process(&pkt(false, 2 * MS, 1, 101, F::ACK, 0));
        let after = t.process(&pkt(true, 3 * MS, 401, 1, F::ACK, 100));
        assert_eq!(after.bytes_in_flight, Some(200));
    }

    #[test]
    fn sequence_wrap_is_serial() {
        let mut t = FlowTable::new(FlowConfig::default());
        let s = u32::MAX - 49;
        t.process(&pkt(true, 0, s, 1, F::ACK, 100));
        let r = t.process(&pkt(false, MS, 1, s.wrapping_add(100), F::ACK, 0));
        assert_eq!(r.ack_rtt_ns, Some(MS));
    }

    #[test]
    fn sack_blocks_reduce_bif() {
        let mut t = FlowTable::new(FlowConfig::default());
        t.process(&pkt(true, 0, 1, 1, F::ACK, 100));
        t.process(&pkt(true, 1, 101, 1, F::ACK, 100));
        let mut s = pkt(false, 2, 1, 1, F::ACK, 0);
        s.sack = SackBlocks {
            n: 1,
            left: [101, 0, 0],
            right: [201, 0, 0],
        };
        t.process(&s);
        let d = t.process(&pkt(true, 3, 201, 1, F::ACK, 100));
        assert_eq!(d.bytes_in_flight, Some(200));
    }

    #[test]
    fn table_cap_evicts_longest_idle() {
        let mut t = FlowTable::new(FlowConfig {
            max_flows: 2,
            ..Default::default()
        });
        let mut p = pkt(true, 0, 1, 1, F::ACK, 10);
        t.process(&p);
        p.ends.sport = 4001;
        p.ts_ns = 1;
        t.process(&p);
        p.ends.sport = 4000;
        p.ts_ns = 2;
        t.process(&p); // refreshes the first flow
        p.ends.sport = 4002;
        p.ts_ns = 3;
        t.process(&p);
        assert_eq!(t.stats.evicted_cap, 1);
        assert_eq!(t.active_flows(), 2);
        let mut probe = p;
        probe.ends.sport = 4000;
        let key = canonical(&probe.ends).0;
        let slots = &t.slots;
        assert!(
            t.index
                .find(hash_key(&key), |i| slots[i as usize]
                    .as_ref()
                    .is_some_and(|f| f.key == key))
                .is_some()
        );
    }

    /// Past `SLOTS_BEFORE_RESERVE` flows the slots move to room for the cap:
    /// every flow is still found, in the same slot, with its state.
    #[test]
    fn flows_survive_the_move_to_reserved_room() {
        let n = SLOTS_BEFORE_RESERVE as u16 + 1500;
        let mut t = FlowTable::new(FlowConfig {
            max_flows: SLOTS_BEFORE_RESERVE + 1000,
            ..Default::default()
        });
        let mut p = pkt(true, 0, 1, 1, F::ACK, 100);
        for k in 0..n {
            p.ends.sport = 1000 + k;
            p.ts_ns = i64::from(k);
            t.process(&p);
        }
        assert_eq!(t.stats.evicted_cap, 500);
        assert_eq!(t.active_flows(), SLOTS_BEFORE_RESERVE + 1000);
        // The first 500 are gone; each later flow's ACK of its 100 bytes
        // finds its segment (an RTT sample), so its state moved with it.
        for k in [500, 501, SLOTS_BEFORE_RESERVE as u16, n - 1] {
            let mut ack = pkt(false, i64::from(n) + 10, 1, 101, F::ACK, 0);
            ack.ends.dport = 1000 + k;
            let r = t.process(&ack);
            assert_eq!(
                r.ack_rtt_ns,
                Some(i64::from(n) + 10 - i64::from(k)),
                "flow {k}"
            );
        }
    }

    #[test]
    fn idle_flows_expire() {
        let mut t = FlowTable::new(FlowConfig::default());
        t.process(&pkt(true, 0, 1, 1, F::ACK, 10));
        t.expire(301 * 1_000_000_000);
        assert_eq!(t.active_flows(), 0);
        assert_eq!(t.stats.evicted_idle, 1);
        assert_eq!(t.segments_total, 0);
    }

    #[test]
    fn the_senders_timestamps_give_the_queueing_delay_once_their_clock_is_known() {
        // A sender whose timestamp clock ticks at `hz` and starts near the
        // top of the 32-bit range (it wraps), one segment every 10 ms; its
        // data waits 30 ms more on its way from 8 s on.
        let delays = |hz: i64| {
            let mut t = FlowTable::new(FlowConfig::default());
            let mut out = Vec::new();
            for k in 0..950i64 {
                let sent_ms = k * 10;
                let queued = if sent_ms >= 8_000 { 30 } else { 0 };
                let mut p = pkt(
                    true,
                    (sent_ms + 2 + queued) * MS,
                    1 + 100 * k as u32,
                    1,
                    F::ACK,
                    100,
                );
                p.tsval = Some(u32::MAX - 1_000 + (sent_ms * hz / 1_000) as u32);
                out.push(t.process(&p).queue_delay_ms);
            }
            out
        };
        let d = delays(1_000);
        // Unknown until the clock has been seen ticking for 5 s.
        assert!(d[..500].iter().all(|q| q.is_none()), "{:?}", &d[..500]);
        assert!(d[500..800].iter().all(|q| *q == Some(0)));
        assert!(d[800..].iter().all(|q| *q == Some(30)));
        // A capture clock 80 ppm fast, over ten minutes: 48 ms of drift,
        // not a queue.
        let mut t = FlowTable::new(FlowConfig::default());
        let mut last = None;
        for k in 0..6_000i64 {
            let sent_ms = k * 100;
            let seen_ns = (sent_ms + 2) * MS + sent_ms * 80;
            let mut p = pkt(true, seen_ns, 1 + 100 * k as u32, 1, F::ACK, 100);
            p.tsval = Some(sent_ms as u32);
            last = t.process(&p).queue_delay_ms;
        }
        assert!(last.is_some_and(|q| q <= 2), "{last:?}");
        // A 100 Hz clock (or a segment without timestamps) gives nothing.
        assert!(delays(100).iter().all(|q| q.is_none()));
        let a = FlowTable::new(FlowConfig::default()).process(&pkt(true, 0, 1, 1, F::ACK, 100));
        assert_eq!(a.queue_delay_ms, None);
    }

    #[test]
    fn acks_and_sacks_report_each_arrived_byte_once() {
        let mut t = FlowTable::new(FlowConfig::default());
        // A sends 9 segments of 1000 bytes from 1; the second is lost.
        for k in 0..9u32 {
            t.process(&pkt(true, i64::from(k) * MS, 1 + 1000 * k, 1, F::ACK, 1000));
        }
        let ack = |t: &mut FlowTable, at: i64, ack: u32, sack: &[(u32, u32)]| {
            let mut p = pkt(false, at * MS, 1, ack, F::ACK, 0);
            for (i, (l, r)) in sack.iter().enumerate() {
                p.sack.left[i] = *l;
                p.sack.right[i] = *r;
            }
            p.sack.n = sack.len() as u8;
            t.process(&p).reported_bytes
        };
        // B's first ACK is where its reports start from.
        assert_eq!(ack(&mut t, 10, 1, &[]), 0);
        assert_eq!(ack(&mut t, 11, 1001, &[]), 1000);
        // Duplicate ACKs: the SACKs report the third, fourth and fifth, not
        // the hole below them.
        assert_eq!(ack(&mut t, 12, 1001, &[(2001, 3001)]), 1000);
        assert_eq!(ack(&mut t, 13, 1001, &[(2001, 4001)]), 1000);
        assert_eq!(ack(&mut t, 14, 1001, &[(2001, 5001)]), 1000);
        // An older duplicate reports nothing new; a block past another
        // hole counts its own bytes, and blocks come in any order.
        assert_eq!(ack(&mut t, 15, 1001, &[(2001, 4001)]), 0);
        assert_eq!(
            ack(
                &mut t,
                16,
                1001,
                &[(7001, 8001), (2001, 5001), (6001, 6501)]
            ),
            1500
        );
        // The retransmission fills the hole: the cumulative ACK jumps over
        // what the SACKs reported, nothing new; then new data.
        t.process(&pkt(true, 17 * MS, 1001, 1, F::ACK, 1000));
        assert_eq!(ack(&mut t, 20, 5001, &[(6001, 6501), (7001, 8001)]), 0);
        assert_eq!(ack(&mut t, 22, 9001, &[]), 1000);
        // A's own ACKs (of B's nothing) report nothing.
        assert_eq!(
            t.process(&pkt(true, 21 * MS, 5001, 1, F::ACK, 0))
                .reported_bytes,
            0
        );
    }
}
