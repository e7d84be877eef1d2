//! The unacknowledged segments of one TCP direction, with Wireshark's results at
//! a cost per packet that does not grow with the list.
//!
//! Wireshark (`tcp_analyze_sequence_number`) walks the whole list on every ACK
//! (to drop acknowledged segments, trim partly acknowledged ones and find the RTT
//! sample) and on every data segment (bytes in flight: the largest relative
//! end minus the smallest relative start). With a retransmission in a list of
//! thousands of segments that is thousands of visits per packet. Here:
//!
//! - `Monotone`: every segment starts at or after the previous one's end and
//!   the list spans less than half the sequence space, the common case. A
//!   deque; ACKs pop from the front, the span is front and back. An ACK number
//!   half the sequence space from part of the list takes the walk.
//! - `Indexed`: any order. Segments sit in a slab, linked in insertion order, and
//!   in two min-queues by their unwrapped (64-bit) end and start (a deque for
//!   what arrives in order, a heap for retransmissions). An ACK pops the
//!   acknowledged ends and trims the few segments that straddle it; the span is
//!   the smallest start and the largest end (kept as a number: only an ACK past
//!   everything removes it). O(log n) per segment touched. While the list
//!   straddles the point where the relative numbers wrap (one flight in every
//!   4 GB of a connection) the span walks the list.
//! - `Walk`: Wireshark's own walk, kept for lists whose sequence numbers spread
//!   over half the sequence space or more (only crafted or corrupt input), where
//!   serial comparisons and 64-bit order disagree.
//!
//! The list goes back to `Monotone` once it is in order again and has seen at
//! least as many operations as it holds segments, so conversions cost O(1)
//! amortised. `tests` checks every mode against the plain walk on random
//! operation sequences.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// One remembered segment: sequence numbers `[seq, nextseq)` and when it was sent.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Seg {
    pub seq: u32,
    pub nextseq: u32,
    pub ts_ns: i64,
}

pub(crate) fn seq_gt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

pub(crate) fn seq_le(a: u32, b: u32) -> bool {
    !seq_gt(a, b)
}

/// `b` does not start at or after `a`'s end: the pair breaks serial order.
fn out_of_order(a: &Seg, b: &Seg) -> bool {
    !seq_gt(b.seq, a.nextseq.wrapping_sub(1))
}

/// From `front`'s start to `back`'s end, in sequence numbers (a monotone list).
fn width(front: &Seg, back: &Seg) -> u64 {
    u64::from(back.nextseq.wrapping_sub(front.seq))
}

/// How far `s`'s end lies beyond `end`, for `s` starting at or after `end`.
fn forward(end: u32, s: &Seg) -> u64 {
    u64::from(s.seq.wrapping_sub(end)) + u64::from(s.nextseq.wrapping_sub(s.seq))
}

/// Half the sequence space: the `Indexed` mode holds lists narrower than this.
const HALF: i64 = 1 << 31;

/// The unwrapped value of `x` nearest to `r`.
fn unwrap_near(r: i64, x: u32) -> i64 {
    r + i64::from(x.wrapping_sub(r as u32) as i32)
}

/// Unacknowledged segments of one direction.
#[derive(Debug)]
pub(crate) enum SegList {
    Monotone(VecDeque<Seg>),
    Patched(Box<Patched>),
    Indexed(Box<Indexed>),
    Walk(VecDeque<Seg>),
}

impl Default for SegList {
    fn default() -> Self {
        SegList::Monotone(VecDeque::new())
    }
}

impl SegList {
    pub fn len(&self) -> usize {
        match self {
            SegList::Monotone(q) | SegList::Walk(q) => q.len(),
            SegList::Patched(x) => x.main.len() + x.side.len(),
            SegList::Indexed(x) => x.len(),
        }
    }

    pub fn push(&mut self, s: Seg) {
        match self {
            SegList::Monotone(q) => {
                if fits_after(q, &s) {
                    q.push_back(s);
                } else {
                    let main = std::mem::take(q);
                    let pushed = main.len() as u64;
                    *self = SegList::Patched(Box::new(Patched {
                        main,
                        pushed,
                        side: vec![(s, pushed)],
                    }));
                }
            }
            SegList::Patched(x) => {
                if !x.push(s) {
                    let mut all = x.in_order();
                    all.push_back(s);
                    *self = SegList::from_unordered(all);
                }
            }
            SegList::Indexed(x) => {
                if !x.push(s) {
                    let mut all = x.in_order();
                    all.push_back(s);
                    *self = SegList::from_unordered(all);
                }
            }
            SegList::Walk(q) => q.push_back(s),
        }
    }

    /// Apply an ACK number: returns (RTT of the oldest segment ending exactly
    /// there, segments removed). Partly acknowledged segments are trimmed.
    pub fn ack(&mut self, ack: u32, now_ns: i64) -> (Option<i64>, usize) {
        match self {
            SegList::Monotone(q) => {
                if ack_near(q, ack) {
                    return ack_monotone(q, ack, now_ns);
                }
                // An ACK number half the sequence space away from part of the
                // list (a SYN's or RST's zero, corrupt input): serial order is
                // not transitive that far, so only the walk is exact.
                let done = ack_walk(q, ack, now_ns);
                let q = std::mem::take(q);
                *self = SegList::from_unordered(q);
                done
            }
            SegList::Patched(x) => {
                if ack_near(&x.main, ack) {
                    let done = x.ack(ack, now_ns);
                    if x.side.is_empty() {
                        *self = SegList::Monotone(std::mem::take(&mut x.main));
                    }
                    return done;
                }
                let mut q = x.in_order();
                let done = ack_walk(&mut q, ack, now_ns);
                *self = SegList::from_unordered(q);
                done
            }
            SegList::Indexed(x) => match x.ack(ack, now_ns) {
                Some(done) => {
                    if x.len() == 0 || (x.violations == 0 && x.ops >= x.len()) {
                        *self = SegList::Monotone(x.in_order());
                    }
                    done
                }
                None => {
                    let mut q = x.in_order();
                    let done = ack_walk(&mut q, ack, now_ns);
                    *self = SegList::from_unordered(q);
                    done
                }
            },
            SegList::Walk(q) => {
                let done = ack_walk(q, ack, now_ns);
                let q = std::mem::take(q);
                *self = SegList::from_unordered(q);
                done
            }
        }
    }

    /// Wireshark's bytes-in-flight span: max(nextseq - base) - min(seq - base),
    /// both as unsigned 32-bit values relative to the direction's base sequence.
    pub fn span(&mut self, base: u32) -> Option<u32> {
        match self {
            SegList::Monotone(q) => {
                if let Ok(bounds) = deque_bounds(q, base) {
                    return bounds.map(|(first, last)| last - first);
                }
                // The relative numbers wrap inside the list (a connection past
                // 4 GB, or data before the base): index it once.
                let q = std::mem::take(q);
                let (list, span) = match Indexed::build(&q) {
                    Some(mut x) => {
                        let span = x.span(base);
                        (SegList::Indexed(Box::new(x)), span)
                    }
                    None => {
                        let span = span_walk(&q, base);
                        (SegList::Walk(q), span)
                    }
                };
                *self = list;
                span
            }
            SegList::Patched(x) => match x.span(base) {
                Ok(span) => span,
                Err(()) => {
                    *self = SegList::indexed_or_walk(x.in_order());
                    self.span(base)
                }
            },
            SegList::Indexed(x) => x.span(base),
            SegList::Walk(q) => span_walk(q, base),
        }
    }

    /// The best representation for segments in insertion order.
    fn from_unordered(q: VecDeque<Seg>) -> SegList {
        let mut w = q.front().map_or(0, |f| width(f, f));
        let in_order = q.iter().zip(q.iter().skip(1)).all(|(a, b)| {
            w += forward(a.nextseq, b);
            !out_of_order(a, b)
        });
        if in_order && w < HALF as u64 {
            SegList::Monotone(q)
        } else {
            SegList::indexed_or_walk(q)
        }
    }

    fn indexed_or_walk(q: VecDeque<Seg>) -> SegList {
        match Indexed::build(&q) {
            Some(x) => SegList::Indexed(Box::new(x)),
            None => SegList::Walk(q),
        }
    }
}

/// `s` may follow the monotone deque `q`: it starts at or after the last
/// one's end and the deque stays narrower than half the sequence space.
fn fits_after(q: &VecDeque<Seg>, s: &Seg) -> bool {
    match (q.front(), q.back()) {
        (Some(front), Some(last)) => {
            !out_of_order(last, s) && width(front, last) + forward(last.nextseq, s) < HALF as u64
        }
        _ => true,
    }
}

/// The smallest start and largest end of the monotone deque `q` relative to
/// `base` (None when empty), or Err when the relative numbers wrap inside it.
fn deque_bounds(q: &VecDeque<Seg>, base: u32) -> Result<Option<(u32, u32)>, ()> {
    let (Some(front), Some(back)) = (q.front(), q.back()) else {
        return Ok(None);
    };
    let first = front.seq.wrapping_sub(base);
    let last = back.nextseq.wrapping_sub(base);
    if first <= last && front.nextseq.wrapping_sub(base) >= first {
        Ok(Some((first, last)))
    } else {
        Err(())
    }
}

/// What Wireshark's walk does with one segment for an ACK number.
enum Walked {
    /// It ends exactly there: removed, and its send time is a sample.
    Exact,
    /// It stays (trimmed when the ACK falls inside it).
    Stays,
    /// It was acknowledged before: removed.
    Goes,
}

fn walk_one(s: &mut Seg, ack: u32) -> Walked {
    if s.nextseq == ack {
        Walked::Exact
    } else if seq_gt(ack, s.seq) && seq_le(ack, s.nextseq) {
        // Partial ACK: trim, no sample (tshark 4.0).
        s.seq = ack;
        Walked::Stays
    } else if seq_gt(s.nextseq, ack) {
        Walked::Stays
    } else {
        Walked::Goes
    }
}

/// Every segment of `q` is less than half the sequence space from `ack`.
fn ack_near(q: &VecDeque<Seg>, ack: u32) -> bool {
    let (Some(front), Some(back)) = (q.front(), q.back()) else {
        return true;
    };
    // Unwrapped, with the front's start at 0.
    let end = i64::from(back.nextseq.wrapping_sub(front.seq));
    let a = unwrap_near(end, ack.wrapping_sub(front.seq));
    a < HALF && end - a < HALF
}

fn ack_monotone(q: &mut VecDeque<Seg>, ack: u32, now_ns: i64) -> (Option<i64>, usize) {
    let (hit, removed) = ack_front(q, ack);
    (hit.map(|(ts, _)| now_ns - ts), removed)
}

/// [`ack_monotone`]'s work: the send time and the position (from the front,
/// before the ACK) of the segment ending exactly at `ack`, and how many went.
fn ack_front(q: &mut VecDeque<Seg>, ack: u32) -> (Option<(i64, usize)>, usize) {
    let before = q.len();
    let mut hit = None;
    // Entries ending at or before `ack` are all at the front.
    while let Some(front) = q.front_mut() {
        match walk_one(front, ack) {
            Walked::Exact => hit = hit.or(Some((front.ts_ns, before - q.len()))),
            Walked::Stays => break,
            Walked::Goes => {}
        }
        q.pop_front();
    }
    (hit, before - q.len())
}

/// Wireshark's walk, oldest first: the first exact match is the oldest send.
fn ack_walk(q: &mut VecDeque<Seg>, ack: u32, now_ns: i64) -> (Option<i64>, usize) {
    let before = q.len();
    let mut rtt = None;
    q.retain_mut(|s| match walk_one(s, ack) {
        Walked::Exact => {
            rtt = rtt.or(Some(now_ns - s.ts_ns));
            false
        }
        Walked::Stays => true,
        Walked::Goes => false,
    });
    (rtt, before - q.len())
}

fn span_walk(q: &VecDeque<Seg>, base: u32) -> Option<u32> {
    let front = q.front()?;
    let mut first = front.seq.wrapping_sub(base);
    let mut last = front.nextseq.wrapping_sub(base);
    for s in q {
        last = last.max(s.nextseq.wrapping_sub(base));
        first = first.min(s.seq.wrapping_sub(base));
    }
    Some(last.wrapping_sub(first))
}

/// Out-of-order segments a `Patched` list walks before it is indexed. A
/// connection losing 1 % of 400 segments a round trip has a handful.
const SIDE_MAX: usize = 16;

/// A monotone deque and the few segments that did not fit it.
#[derive(Debug)]
pub(crate) struct Patched {
    main: VecDeque<Seg>,
    /// Pushes to `main` so far: its front is push number `pushed - main.len()`.
    pushed: u64,
    /// The rest in insertion order, each with `pushed` when it came: newer
    /// than `main`'s pushes numbered below that, older than the others.
    side: Vec<(Seg, u64)>,
}

impl Patched {
    /// Append `s`; false when the side is full (nothing changed then).
    fn push(&mut self, s: Seg) -> bool {
        if fits_after(&self.main, &s) {
            self.main.push_back(s);
            self.pushed += 1;
        } else if self.side.len() < SIDE_MAX {
            self.side.push((s, self.pushed));
        } else {
            return false;
        }
        true
    }

    /// Wireshark's ACK over both parts, for an `ack` near all of `main`.
    fn ack(&mut self, ack: u32, now_ns: i64) -> (Option<i64>, usize) {
        let first = self.pushed - self.main.len() as u64;
        let (hit, removed) = ack_front(&mut self.main, ack);
        let mut side_hit = None;
        let before = self.side.len();
        self.side.retain_mut(|(s, after)| match walk_one(s, ack) {
            Walked::Exact => {
                side_hit = side_hit.or(Some((s.ts_ns, *after)));
                false
            }
            Walked::Stays => true,
            Walked::Goes => false,
        });
        // The oldest send among the exact matches gives the sample: a side
        // segment is older than `main`'s push number `first + pos` when it
        // came before that push.
        let ts = match (hit, side_hit) {
            (Some((m, pos)), Some((t, after))) => {
                Some(if after <= first + pos as u64 { t } else { m })
            }
            (Some((m, _)), None) => Some(m),
            (None, side) => side.map(|(t, _)| t),
        };
        (ts.map(|t| now_ns - t), removed + before - self.side.len())
    }

    /// Wireshark's span, or Err when `main`'s relative numbers wrap.
    fn span(&self, base: u32) -> Result<Option<u32>, ()> {
        let mut bounds = deque_bounds(&self.main, base)?;
        for (s, _) in &self.side {
            let (lo, hi) = (s.seq.wrapping_sub(base), s.nextseq.wrapping_sub(base));
            bounds = Some(bounds.map_or((lo, hi), |(f, l)| (f.min(lo), l.max(hi))));
        }
        Ok(bounds.map(|(first, last)| last.wrapping_sub(first)))
    }

    /// The segments in insertion order.
    fn in_order(&self) -> VecDeque<Seg> {
        let first = self.pushed - self.main.len() as u64;
        let mut q = VecDeque::with_capacity(self.main.len() + self.side.len());
        let mut side = self.side.iter().peekable();
        for (k, m) in self.main.iter().enumerate() {
            while let Some((s, _)) = side.next_if(|(_, after)| *after <= first + k as u64) {
                q.push_back(*s);
            }
            q.push_back(*m);
        }
        q.extend(side.map(|(s, _)| *s));
        q
    }
}

const NIL: u32 = u32::MAX;
/// The id of a free slot.
const DEAD: u64 = u64::MAX;

#[derive(Debug, Clone, Copy)]
struct Ent {
    seg: Seg,
    /// Unwrapped `seg.seq` and `seg.nextseq`.
    lo: i64,
    hi: i64,
    /// Insertion number, `DEAD` when the slot is free.
    id: u64,
    /// Insertion-order neighbours (slots).
    prev: u32,
    next: u32,
}

/// A record: (unwrapped number, insertion number, slot), smallest first.
/// Records go stale when their segment is removed or trimmed and are dropped
/// when they come first.
type Rec = (i64, u64, u32);

/// A min-queue for records that mostly arrive in order (new data ends and
/// starts grow): those go to a deque in O(1), the rest (retransmissions,
/// trimmed starts) to a heap.
#[derive(Debug, Default)]
struct MinQueue {
    run: VecDeque<Rec>,
    rest: BinaryHeap<Reverse<Rec>>,
}

impl MinQueue {
    fn push(&mut self, r: Rec) {
        if self.run.back().is_none_or(|b| *b <= r) {
            self.run.push_back(r);
        } else {
            self.rest.push(Reverse(r));
        }
    }

    fn peek(&self) -> Option<Rec> {
        match (self.run.front(), self.rest.peek()) {
            (Some(a), Some(Reverse(b))) => Some(*a.min(b)),
            (Some(a), None) => Some(*a),
            (None, Some(Reverse(b))) => Some(*b),
            (None, None) => None,
        }
    }

    fn pop(&mut self) {
        match (self.run.front(), self.rest.peek()) {
            (Some(a), Some(Reverse(b))) if b < a => {
                self.rest.pop();
            }
            (Some(_), _) => {
                self.run.pop_front();
            }
            (None, _) => {
                self.rest.pop();
            }
        }
    }
}

/// Segments in any order, in two min-queues by unwrapped end and start.
#[derive(Debug)]
pub(crate) struct Indexed {
    ents: Vec<Ent>,
    free: Vec<u32>,
    /// Oldest and newest slot.
    head: u32,
    tail: u32,
    live: usize,
    by_end: MinQueue,
    by_start: MinQueue,
    /// The largest end. An ACK removes every segment ending at or before it,
    /// so the largest goes only when all go.
    max_end: i64,
    /// At most the smallest start: the smallest pushed since the last exact
    /// look. Trims and removals only raise the true smallest, so a width
    /// check against this one that passes is exact without the queue.
    lo_floor: i64,
    next_id: u64,
    /// Adjacent (insertion order) pairs that break serial order.
    violations: usize,
    /// Operations since this index was built.
    ops: usize,
}

impl Indexed {
    /// Index `q` (insertion order), or None when it spreads over half the
    /// sequence space or more.
    fn build(q: &VecDeque<Seg>) -> Option<Indexed> {
        let mut x = Indexed {
            ents: Vec::with_capacity(q.len()),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            live: 0,
            by_end: MinQueue::default(),
            by_start: MinQueue::default(),
            max_end: i64::MIN,
            lo_floor: i64::MAX,
            next_id: 0,
            violations: 0,
            ops: 0,
        };
        for s in q {
            if !x.push(*s) {
                return None;
            }
        }
        x.ops = 0;
        Some(x)
    }

    fn len(&self) -> usize {
        self.live
    }

    /// The smallest unwrapped start, dropping stale records on the way.
    fn min_start(&mut self) -> Option<i64> {
        while let Some((lo, id, i)) = self.by_start.peek() {
            let e = &self.ents[i as usize];
            if e.id == id && e.lo == lo {
                return Some(lo);
            }
            self.by_start.pop();
        }
        None
    }

    /// Smallest unwrapped start and largest unwrapped end.
    fn bounds(&mut self) -> Option<(i64, i64)> {
        let min = self.min_start()?;
        self.lo_floor = min;
        Some((min, self.max_end))
    }

    /// Whether every segment and `[lo, hi]` lie within less than half the
    /// sequence space: the cheap bound first, the exact one when it fails.
    fn narrow(&mut self, lo: i64, hi: i64) -> bool {
        if self.live == 0 {
            return hi - lo < HALF;
        }
        let max = self.max_end.max(hi);
        if max - self.lo_floor.min(lo) < HALF {
            return true;
        }
        match self.bounds() {
            Some((min, _)) => max - min.min(lo) < HALF,
            None => hi - lo < HALF,
        }
    }

    /// Append `s`; false (and nothing changed) when the list would get too wide.
    fn push(&mut self, s: Seg) -> bool {
        let r = if self.tail == NIL {
            // Far from zero so unwrapped numbers never go negative.
            1 << 40
        } else {
            self.ents[self.tail as usize].lo
        };
        let lo = unwrap_near(r, s.seq);
        let hi = lo + i64::from(s.nextseq.wrapping_sub(s.seq));
        if !self.narrow(lo, hi) {
            return false;
        }
        let id = self.next_id;
        self.next_id += 1;
        let e = Ent {
            seg: s,
            lo,
            hi,
            id,
            prev: self.tail,
            next: NIL,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.ents[i as usize] = e;
                i
            }
            None => {
                self.ents.push(e);
                (self.ents.len() - 1) as u32
            }
        };
        if self.tail != NIL {
            let t = &mut self.ents[self.tail as usize];
            t.next = i;
            if out_of_order(&t.seg, &s) {
                self.violations += 1;
            }
        } else {
            self.head = i;
        }
        self.tail = i;
        self.live += 1;
        self.max_end = self.max_end.max(hi);
        self.lo_floor = self.lo_floor.min(lo);
        self.by_end.push((hi, id, i));
        self.by_start.push((lo, id, i));
        self.ops += 1;
        true
    }

    fn pair_breaks(&self, a: u32, b: u32) -> bool {
        a != NIL && b != NIL && out_of_order(&self.ents[a as usize].seg, &self.ents[b as usize].seg)
    }

    fn remove(&mut self, i: u32) {
        let e = self.ents[i as usize];
        self.violations -= usize::from(self.pair_breaks(e.prev, i));
        self.violations -= usize::from(self.pair_breaks(i, e.next));
        self.violations += usize::from(self.pair_breaks(e.prev, e.next));
        if e.prev != NIL {
            self.ents[e.prev as usize].next = e.next;
        } else {
            self.head = e.next;
        }
        if e.next != NIL {
            self.ents[e.next as usize].prev = e.prev;
        } else {
            self.tail = e.prev;
        }
        self.ents[i as usize].id = DEAD;
        self.free.push(i);
        self.live -= 1;
        if self.live == 0 {
            self.max_end = i64::MIN;
            self.lo_floor = i64::MAX;
        }
    }

    /// None when `ack` is half the sequence space or more from some segment
    /// (serial comparisons would not follow 64-bit order).
    fn ack(&mut self, ack: u32, now_ns: i64) -> Option<(Option<i64>, usize)> {
        if self.live == 0 {
            return None;
        }
        let a = unwrap_near(self.max_end, ack);
        if !self.narrow(a, a) {
            return None;
        }
        self.ops += 1;
        let mut rtt = None;
        let mut removed = 0;
        // Ends in order, and by insertion among equal ends: the first live one
        // ending exactly at the ACK is the oldest send, which gives the sample.
        while let Some((hi, id, i)) = self.by_end.peek() {
            if hi > a {
                break;
            }
            self.by_end.pop();
            if self.ents[i as usize].id != id {
                continue;
            }
            if hi == a && rtt.is_none() {
                rtt = Some(now_ns - self.ents[i as usize].seg.ts_ns);
            }
            self.remove(i);
            removed += 1;
        }
        // What is left ends after the ACK; those starting before it are trimmed.
        while let Some((lo, id, i)) = self.by_start.peek() {
            if lo >= a {
                break;
            }
            self.by_start.pop();
            let e = &self.ents[i as usize];
            if e.id != id || e.lo != lo {
                continue;
            }
            let prev = e.prev;
            self.violations -= usize::from(self.pair_breaks(prev, i));
            let e = &mut self.ents[i as usize];
            e.seg.seq = ack;
            e.lo = a;
            self.violations += usize::from(self.pair_breaks(prev, i));
            self.by_start.push((a, id, i));
        }
        Some((rtt, removed))
    }

    fn span(&mut self, base: u32) -> Option<u32> {
        let (min, max) = self.bounds()?;
        let rel = |x: i64| (x as u32).wrapping_sub(base);
        // The relative numbers wrap to 0 at `w`; the list is narrower than the
        // sequence space, so at most one such point falls inside it.
        let w = min + i64::from(base.wrapping_sub(min as u32));
        if w == min || w > max {
            return Some(rel(max).wrapping_sub(rel(min)));
        }
        // The list straddles the wrap point: a connection crossing 4 GB (for
        // one flight), or a retransmission from before the base. Walk.
        let (mut first, mut last) = (None::<u32>, None::<u32>);
        let mut i = self.head;
        while i != NIL {
            let e = &self.ents[i as usize];
            if e.lo >= w {
                first = Some(first.map_or(rel(e.lo), |f| f.min(rel(e.lo))));
            }
            if e.hi < w {
                last = Some(last.map_or(rel(e.hi), |l| l.max(rel(e.hi))));
            }
            i = e.next;
        }
        Some(
            last.unwrap_or(rel(max))
                .wrapping_sub(first.unwrap_or(rel(min))),
        )
    }

    /// The segments in insertion order.
    fn in_order(&self) -> VecDeque<Seg> {
        let mut q = VecDeque::with_capacity(self.len());
        let mut i = self.head;
        while i != NIL {
            let e = &self.ents[i as usize];
            q.push_back(e.seg);
            i = e.next;
        }
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Wireshark's list as the previous implementation kept it: every ACK and
    /// every span walks all of it.
    #[derive(Default)]
    struct Walked(VecDeque<Seg>);

    impl Walked {
        fn ack(&mut self, ack: u32, now: i64) -> (Option<i64>, usize) {
            ack_walk(&mut self.0, ack, now)
        }
        fn span(&self, base: u32) -> Option<u32> {
            span_walk(&self.0, base)
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// Send at the sender's next sequence (offset back for retransmissions).
        Send {
            back: u32,
            len: u32,
        },
        /// ACK at an offset from the lowest unacknowledged byte.
        Ack {
            ahead: i64,
        },
        /// An ACK number anywhere.
        WildAck(u32),
        Span,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (prop_oneof![8 => Just(0u32), 2 => 0u32..20_000, 1 => any::<u32>()], 1u32..3000)
                .prop_map(|(back, len)| Op::Send { back, len }),
            4 => (-3000i64..20_000).prop_map(|ahead| Op::Ack { ahead }),
            1 => any::<u32>().prop_map(Op::WildAck),
            3 => Just(Op::Span),
        ]
    }

    fn run(start: u32, base_off: u32, ops: &[Op]) {
        let mut fast = SegList::default();
        let mut slow = Walked::default();
        let mut next = start;
        let mut low = start;
        let base = start.wrapping_sub(base_off);
        for (t, op) in ops.iter().enumerate() {
            let now = t as i64 * 1000;
            match *op {
                Op::Send { back, len } => {
                    let seq = next.wrapping_sub(back);
                    let s = Seg {
                        seq,
                        nextseq: seq.wrapping_add(len),
                        ts_ns: now,
                    };
                    if back == 0 {
                        next = next.wrapping_add(len);
                    }
                    fast.push(s);
                    slow.0.push_back(s);
                }
                Op::Ack { ahead } => {
                    let a = low.wrapping_add(ahead as u32);
                    if seq_gt(a, low) && seq_le(a, next) {
                        low = a;
                    }
                    assert_eq!(fast.ack(a, now), slow.ack(a, now), "ack {a} at op {t}");
                }
                Op::WildAck(a) => {
                    assert_eq!(fast.ack(a, now), slow.ack(a, now), "wild ack {a} at op {t}")
                }
                Op::Span => {}
            }
            assert_eq!(fast.len(), slow.0.len());
            assert_eq!(fast.span(base), slow.span(base), "span at op {t}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn every_mode_matches_the_walk(
            start in prop_oneof![any::<u32>(), (u32::MAX - 50_000)..=u32::MAX],
            base_off in prop_oneof![Just(1u32), 0u32..100_000, any::<u32>()],
            ops in proptest::collection::vec(op(), 1..300),
        ) {
            run(start, base_off, &ops);
        }
    }

    /// A monotone list of 100 segments of 100 bytes from 1000, sent at 0..100.
    fn hundred_in_order() -> SegList {
        let mut l = SegList::default();
        for k in 0..100u32 {
            l.push(Seg {
                seq: 1000 + k * 100,
                nextseq: 1100 + k * 100,
                ts_ns: i64::from(k),
            });
        }
        l
    }

    #[test]
    fn a_retransmission_patches_the_list_and_the_ack_past_it_restores_order() {
        let mut l = hundred_in_order();
        assert!(matches!(l, SegList::Monotone(_)));
        l.push(Seg {
            seq: 1000,
            nextseq: 1100,
            ts_ns: 500,
        });
        assert!(matches!(l, SegList::Patched(_)), "{l:?}");
        // New data after the retransmission stays in the deque.
        l.push(Seg {
            seq: 11_000,
            nextseq: 11_100,
            ts_ns: 501,
        });
        assert_eq!(l.len(), 102);
        assert_eq!(l.span(999), Some(11_100 - 1_000));
        // The oldest send of [1000, 1100) gives the sample, and with the
        // retransmission gone the list is a plain deque again.
        assert_eq!(l.ack(1100, 1000), (Some(1000), 2));
        assert!(matches!(l, SegList::Monotone(_)), "{l:?}");
        assert_eq!(l.span(999), Some(11_100 - 1_100));
    }

    #[test]
    fn a_retransmission_newer_than_part_of_the_deque_loses_to_the_older_send() {
        let mut l = SegList::default();
        let seg = |seq: u32, ts_ns: i64| Seg {
            seq,
            nextseq: seq + 100,
            ts_ns,
        };
        l.push(seg(1000, 1));
        l.push(seg(1100, 2));
        // A retransmission of the first, then more data, then a second copy
        // of the second segment: the deque's [1100, 1200) is older than it.
        l.push(seg(1000, 3));
        l.push(seg(1200, 4));
        l.push(seg(1100, 5));
        assert!(matches!(l, SegList::Patched(_)), "{l:?}");
        assert_eq!(l.ack(1100, 10), (Some(9), 2));
        assert_eq!(l.ack(1200, 10), (Some(8), 2));
        assert!(matches!(l, SegList::Monotone(_)), "{l:?}");
    }

    #[test]
    fn more_retransmissions_than_the_side_holds_index_the_list() {
        let mut l = hundred_in_order();
        for k in 0..=SIDE_MAX as u32 {
            l.push(Seg {
                seq: 1000 + k * 100,
                nextseq: 1100 + k * 100,
                ts_ns: 1000,
            });
        }
        assert!(matches!(l, SegList::Indexed(_)), "{l:?}");
        assert_eq!(l.len(), 100 + SIDE_MAX + 1);
        // In order again; back to the deque once the index has paid for itself.
        assert_eq!(l.ack(1100, 2000), (Some(2000), 2));
        for k in 0..200u32 {
            l.ack(1100 + 100 * (SIDE_MAX as u32 + 1) + k, 2000);
        }
        assert!(matches!(l, SegList::Monotone(_)), "{l:?}");
    }

    #[test]
    fn wrapped_relative_numbers_move_a_monotone_list_to_the_index() {
        let mut l = SegList::default();
        let base = 100u32;
        for k in 0..10u32 {
            let seq = base.wrapping_sub(500).wrapping_add(k * 100);
            l.push(Seg {
                seq,
                nextseq: seq.wrapping_add(100),
                ts_ns: 0,
            });
        }
        let mut w = Walked::default();
        if let SegList::Monotone(q) = &l {
            w.0 = q.clone();
        }
        assert_eq!(l.span(base), w.span(base));
        assert!(matches!(l, SegList::Indexed(_)));
    }
}
