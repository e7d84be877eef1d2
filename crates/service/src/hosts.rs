//! Streams of part of an interface's traffic: the top K hosts, or the top K
//! flows, by bytes, each with its own windows from the same engine (the
//! packet's facts, ACK RTT and bytes in flight of its own flow, pushed to the
//! windows of the hosts at either end, or of its flow), its own forecast and
//! events downstream.
//!
//! Which: once a second every address's (or flow's) bytes feed a rate (an EWMA of
//! bytes per second, half-life one second). A host above [`MIN_RATE_BPS`]
//! joins while there is room; when the K streams are taken, a challenger
//! replaces the weakest only if its rate is [`SWAP_RATIO`] times the weakest's
//! and the weakest has been a stream for [`MIN_DWELL_S`] (so two hosts of about
//! the same rate do not flap). A stream below the floor for [`IDLE_RETIRE_S`]
//! is retired: its series stop.
//!
//! Owns the choice and the per-host windows; not the forecasts (the pipeline's
//! inference thread treats these streams like any other).

use engine::capture::PacketSummary;
use engine::window::{PacketFacts, WindowAggregator, WindowRow};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A host needs this rate (bytes/s; 0.1 Mbit/s) to become a stream.
pub const MIN_RATE_BPS: f64 = 12_500.0;
/// A challenger needs this many times the weakest stream's rate to take its place.
pub const SWAP_RATIO: f64 = 1.5;
/// A stream stays at least this long before a challenger can take its place.
pub const MIN_DWELL_S: u32 = 10;
/// A stream below [`MIN_RATE_BPS`] in each of this many seconds is retired.
pub const IDLE_RETIRE_S: u32 = 10;
/// Addresses whose bytes are counted at once (beyond it the slowest are forgotten).
pub const MAX_TRACKED: usize = 65_536;

/// What the host streams tell the pipeline.
#[derive(Debug)]
pub enum StreamEvent {
    /// Stream `index` named `name` begins.
    Begin(usize, String),
    /// A window of stream `index`.
    Window(usize, WindowRow),
    /// Stream `index` (named, with its window count) retired.
    End(usize, String, u64),
}

#[derive(Default)]
struct Rate {
    bytes: u64,
    ewma: f64,
}

struct Member {
    index: usize,
    /// Its first window starts here (the first boundary after it joined: no
    /// window holds only part of its traffic).
    from_ns: i64,
    name: String,
    windows: WindowAggregator,
    rows: u64,
    /// Seconds since it joined.
    age_s: u32,
    /// Seconds in a row below the floor.
    idle_s: u32,
}

/// What the streams are of.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Hosts: a frame counts for the addresses at both ends.
    Host,
    /// TCP connections: a frame counts for its own (both directions).
    Flow,
}

/// A host, or a connection (its two ends in order).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    /// An address.
    Host(IpAddr),
    /// The two ends, the smaller first.
    Flow(SocketAddr, SocketAddr),
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Key::Host(a) => write!(f, "host {a}"),
            Key::Flow(a, b) => write!(f, "flow {a}-{b}"),
        }
    }
}

/// The top-K host (or flow) streams of one interface.
pub struct TopStreams {
    iface: String,
    kind: Kind,
    k: usize,
    width_ns: i64,
    max_silent_gap_ns: i64,
    rates: HashMap<Key, Rate>,
    members: HashMap<Key, Member>,
    next_index: Arc<AtomicUsize>,
    /// The clock minus the grace at the last advance.
    now_ns: i64,
    /// The last packet's timestamp.
    last_ts_ns: i64,
}

fn addr(bytes: &[u8; 16], v6: bool) -> IpAddr {
    if v6 {
        IpAddr::from(*bytes)
    } else {
        IpAddr::from([bytes[0], bytes[1], bytes[2], bytes[3]])
    }
}

impl TopStreams {
    /// Up to `k` streams of `kind` of interface `iface`, windows `width_ns`
    /// wide; stream numbers come from `next_index` (shared by every capture).
    pub fn new(
        iface: &str,
        kind: Kind,
        k: usize,
        width_ns: i64,
        max_silent_gap_ns: i64,
        next_index: Arc<AtomicUsize>,
    ) -> Self {
        TopStreams {
            iface: iface.to_owned(),
            kind,
            k,
            width_ns,
            max_silent_gap_ns,
            rates: HashMap::new(),
            members: HashMap::new(),
            next_index,
            now_ns: 0,
            last_ts_ns: 0,
        }
    }

    /// The name of `key`'s stream on this interface (`live eth0 host
    /// 10.0.0.1`, `live eth0 flow 10.0.0.1:443-10.0.0.2:40000`).
    pub fn stream_name(&self, key: Key) -> String {
        format!("{} {key}", crate::source::live_name(&self.iface))
    }

    /// The hosts (flows) that are streams now.
    pub fn members(&self) -> Vec<Key> {
        self.members.keys().copied().collect()
    }

    /// One counted packet: its bytes count for both ends; its facts go to the
    /// windows of either end that is a stream.
    pub fn packet(&mut self, p: &PacketSummary, f: &PacketFacts, out: &mut dyn FnMut(StreamEvent)) {
        if self.k == 0 {
            return;
        }
        // Unacknowledged segments are counted over the interface's flows, not a
        // host's: a host's windows carry none (its link stalls show on the
        // interface's stream).
        let facts = PacketFacts {
            unacked_segments: 0,
            ..*f
        };
        self.last_ts_ns = self.last_ts_ns.max(f.ts_ns);
        let (src, dst) = (addr(&p.ends.src, p.ends.v6), addr(&p.ends.dst, p.ends.v6));
        let keys = match self.kind {
            Kind::Host => [Some(Key::Host(src)), Some(Key::Host(dst))],
            Kind::Flow => {
                let (a, b) = (
                    SocketAddr::new(src, p.ends.sport),
                    SocketAddr::new(dst, p.ends.dport),
                );
                [Some(Key::Flow(a.min(b), a.max(b))), None]
            }
        };
        for a in keys.into_iter().flatten() {
            self.rates.entry(a).or_default().bytes += u64::from(p.frame_len_bytes);
            if let Some(m) = self.members.get_mut(&a)
                && f.ts_ns >= m.from_ns
            {
                let index = m.index;
                let rows = &mut m.rows;
                m.windows.push(&facts, &mut |r| {
                    *rows += 1;
                    out(StreamEvent::Window(index, r))
                });
            }
        }
    }

    /// Windows that ended before `now_ns` close (silent ones too).
    pub fn advance(&mut self, now_ns: i64, out: &mut dyn FnMut(StreamEvent)) {
        self.now_ns = now_ns;
        for m in self.members.values_mut() {
            let (index, rows) = (m.index, &mut m.rows);
            m.windows.advance_to(now_ns, &mut |r| {
                *rows += 1;
                out(StreamEvent::Window(index, r))
            });
        }
    }

    /// Once a second: rates move, streams join, are replaced or retire.
    pub fn tick(&mut self, out: &mut dyn FnMut(StreamEvent)) {
        if self.k == 0 {
            return;
        }
        // Idle: under the floor in the second just ended (not by the rate,
        // which takes seconds to decay).
        for (a, m) in self.members.iter_mut() {
            m.age_s += 1;
            if self.rates.get(a).map_or(0, |r| r.bytes) < MIN_RATE_BPS as u64 {
                m.idle_s += 1;
            } else {
                m.idle_s = 0;
            }
        }
        for r in self.rates.values_mut() {
            r.ewma = 0.5 * r.ewma + 0.5 * r.bytes as f64;
            r.bytes = 0;
        }
        let members = &self.members;
        self.rates
            .retain(|a, r| r.ewma >= 1.0 || members.contains_key(a));
        if self.rates.len() > MAX_TRACKED {
            let mut v: Vec<f64> = self.rates.values().map(|r| r.ewma).collect();
            let cut = v.len() - MAX_TRACKED / 2;
            let (_, nth, _) = v.select_nth_unstable_by(cut, f64::total_cmp);
            let floor = *nth;
            self.rates
                .retain(|a, r| r.ewma > floor || members.contains_key(a));
        }
        let rate = |rates: &HashMap<Key, Rate>, a: &Key| rates.get(a).map_or(0.0, |r| r.ewma);
        // Retire the idle.
        let mut retired = Vec::new();
        for (a, m) in &self.members {
            if m.idle_s >= IDLE_RETIRE_S {
                retired.push(*a);
            }
        }
        for a in retired {
            self.retire(a, out);
        }
        // Challengers, fastest first.
        let mut challengers: Vec<(Key, f64)> = self
            .rates
            .iter()
            .filter(|(a, r)| r.ewma >= MIN_RATE_BPS && !self.members.contains_key(a))
            .map(|(a, r)| (*a, r.ewma))
            .collect();
        challengers.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
        for (a, r) in challengers {
            if self.members.len() >= self.k {
                let weakest = self
                    .members
                    .iter()
                    .filter(|(_, m)| m.age_s >= MIN_DWELL_S)
                    .map(|(b, _)| (*b, rate(&self.rates, b)))
                    .min_by(|x, y| x.1.total_cmp(&y.1).then(x.0.cmp(&y.0)));
                match weakest {
                    Some((b, rb)) if r > SWAP_RATIO * rb => self.retire(b, out),
                    // Nobody to replace (a faster challenger did not manage either).
                    _ => break,
                }
            }
            self.join(a, out);
        }
    }

    /// Every stream ends (the capture stopped).
    pub fn finish(&mut self, out: &mut dyn FnMut(StreamEvent)) {
        let all: Vec<Key> = self.members.keys().copied().collect();
        for a in all {
            self.retire(a, out);
        }
    }

    fn join(&mut self, a: Key, out: &mut dyn FnMut(StreamEvent)) {
        let index = self.next_index.fetch_add(1, Ordering::Relaxed);
        let name = self.stream_name(a);
        let mut windows = WindowAggregator::new(self.width_ns, self.max_silent_gap_ns);
        // The first whole window after the last packet seen or the clock.
        let from_ns =
            (self.now_ns.max(self.last_ts_ns).div_euclid(self.width_ns) + 1) * self.width_ns;
        if self.now_ns > 0 {
            windows.start_at(from_ns);
        }
        out(StreamEvent::Begin(index, name.clone()));
        self.members.insert(
            a,
            Member {
                index,
                from_ns,
                name,
                windows,
                rows: 0,
                age_s: 0,
                idle_s: 0,
            },
        );
    }

    fn retire(&mut self, a: Key, out: &mut dyn FnMut(StreamEvent)) {
        if let Some(m) = self.members.remove(&a) {
            // The open window is partial: not emitted, as at a live capture's end.
            out(StreamEvent::End(m.index, m.name, m.rows));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::capture::Endpoints;

    const W: i64 = 50_000_000;

    fn packet(src: u8, dst: u8, len: u32, ts_ns: i64) -> (PacketSummary, PacketFacts) {
        let mut ends = Endpoints::default();
        ends.src[..4].copy_from_slice(&[10, 0, 0, src]);
        ends.dst[..4].copy_from_slice(&[10, 0, 0, dst]);
        let p = PacketSummary {
            ts_ns,
            frame_len_bytes: len,
            ends,
            ..Default::default()
        };
        let f = PacketFacts {
            ts_ns,
            frame_len_bytes: len,
            ..Default::default()
        };
        (p, f)
    }

    /// Up to `k` streams of `kind` on eth0, 50 ms windows.
    fn streams(kind: Kind, k: usize) -> TopStreams {
        TopStreams::new(
            "eth0",
            kind,
            k,
            W,
            10_000_000_000,
            Arc::new(AtomicUsize::new(1)),
        )
    }

    fn host(n: u8) -> Key {
        Key::Host(IpAddr::from([10, 0, 0, n]))
    }

    /// Runs `secs` seconds in which host `i` (of `rates`) sends `rates[i]`
    /// bytes per second to host 100 in 20 packets; returns what came out.
    fn run(h: &mut TopStreams, t0: i64, secs: i64, rates: &[(u8, u32)]) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        for s in 0..secs {
            for i in 0..20 {
                let ts = t0 + s * 1_000_000_000 + i * W;
                for &(src, bytes_per_s) in rates {
                    let (p, f) = packet(src, 100, bytes_per_s / 20, ts);
                    h.packet(&p, &f, &mut |e| out.push(e));
                }
                h.advance(ts, &mut |e| out.push(e));
            }
            h.tick(&mut |e| out.push(e));
        }
        out
    }

    fn begun(out: &[StreamEvent]) -> Vec<String> {
        out.iter()
            .filter_map(|e| match e {
                StreamEvent::Begin(_, n) => Some(n.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_busiest_hosts_become_streams_and_their_windows_hold_only_their_bytes() {
        let mut h = streams(Kind::Host, 2);
        let t0 = 1_700_000_000_000_000_000;
        // Host 100 receives everything (the busiest), host 1 sends 1 MB/s,
        // host 2 0.2 MB/s, host 3 below the floor.
        let out = run(&mut h, t0, 3, &[(1, 1_000_000), (2, 200_000), (3, 4_000)]);
        let mut names = begun(&out);
        names.sort();
        assert_eq!(
            names,
            ["live eth0 host 10.0.0.1", "live eth0 host 10.0.0.100"]
        );
        let mut members = h.members();
        members.sort();
        assert_eq!(members, [host(1), host(100)]);
        // Once a stream, host 1's windows carry host 1's bytes: 1 MB/s is
        // 50,000 bytes per 50 ms window.
        let out = run(
            &mut h,
            t0 + 3_000_000_000,
            2,
            &[(1, 1_000_000), (2, 200_000)],
        );
        let idx1 = h.members[&host(1)].index;
        let sizes: Vec<u64> = out
            .iter()
            .filter_map(|e| match e {
                StreamEvent::Window(i, r) if *i == idx1 => Some(r.size_bytes),
                _ => None,
            })
            .collect();
        assert!(sizes.len() >= 30, "{}", sizes.len());
        assert!(sizes.iter().all(|s| *s == 50_000), "{sizes:?}");
    }

    #[test]
    fn near_equal_hosts_do_not_flap_and_a_much_faster_one_takes_the_weakest_place() {
        let mut h = streams(Kind::Host, 2);
        let t0 = 1_700_000_000_000_000_000;
        // 100 (the receiver) and 1 are streams; 2 alternates just above and
        // below 1's rate: no swap.
        let mut out = run(&mut h, t0, 12, &[(1, 500_000), (2, 100_000)]);
        for s in 0..20 {
            let (a, b) = if s % 2 == 0 {
                (520_000, 480_000)
            } else {
                (480_000, 520_000)
            };
            out.extend(run(
                &mut h,
                t0 + (12 + s) * 1_000_000_000,
                1,
                &[(1, a), (2, b)],
            ));
        }
        assert_eq!(begun(&out).len(), 2, "{:?}", begun(&out));
        assert!(!out.iter().any(|e| matches!(e, StreamEvent::End(..))));
        // Host 3 at four times host 1's rate replaces 1 (the weakest of the two).
        let out = run(
            &mut h,
            t0 + 40_000_000_000,
            3,
            &[(1, 500_000), (3, 2_000_000)],
        );
        assert_eq!(begun(&out), ["live eth0 host 10.0.0.3"]);
        assert!(
            out.iter()
                .any(|e| matches!(e, StreamEvent::End(_, n, _) if n == "live eth0 host 10.0.0.1"))
        );
        // Quiet hosts retire after IDLE_RETIRE_S.
        let out = run(&mut h, t0 + 50_000_000_000, IDLE_RETIRE_S as i64 + 3, &[]);
        let ended = out
            .iter()
            .filter(|e| matches!(e, StreamEvent::End(..)))
            .count();
        assert_eq!(ended, 2);
        assert!(h.members().is_empty());
    }

    #[test]
    fn flows_are_keyed_by_both_ends_in_either_direction() {
        let mut h = streams(Kind::Flow, 1);
        let t0 = 1_700_000_000_000_000_000;
        let mut out = Vec::new();
        let seg = |src: u8, sport: u16, dst: u8, dport: u16, len: u32, ts: i64| {
            let (mut p, f) = packet(src, dst, len, ts);
            p.ends.sport = sport;
            p.ends.dport = dport;
            (p, f)
        };
        for s in 0..4 {
            for i in 0..20 {
                let ts = t0 + s * 1_000_000_000 + i * W;
                // A bulk flow (data one way, ACKs the other) and a small one
                // between the same hosts.
                for (p, f) in [
                    seg(1, 40000, 2, 443, 50_000, ts),
                    seg(2, 443, 1, 40000, 66, ts),
                    seg(1, 40001, 2, 443, 2_000, ts),
                ] {
                    h.packet(&p, &f, &mut |e| out.push(e));
                }
                h.advance(ts, &mut |e| out.push(e));
            }
            h.tick(&mut |e| out.push(e));
        }
        assert_eq!(begun(&out), ["live eth0 flow 10.0.0.1:40000-10.0.0.2:443"]);
        let sizes: Vec<u64> = out
            .iter()
            .filter_map(|e| match e {
                StreamEvent::Window(_, r) if r.packets > 0 => Some(r.size_bytes),
                _ => None,
            })
            .collect();
        assert!(sizes.len() >= 10, "{}", sizes.len());
        assert!(
            sizes.iter().all(|s| *s == 50_066),
            "both directions, not the other flow: {sizes:?}"
        );
    }
}
