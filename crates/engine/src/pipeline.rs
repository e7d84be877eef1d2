//! The per-packet engine shared by `extract`, `replay` and the daemon: frame ->
//! [`PacketSummary`] -> TCP analysis -> window features, with every packet either
//! counted or skipped for a named reason.
//!
//! Owns the counters of one capture. Does not read files, sockets or clocks; the
//! caller passes frames and, in live mode, the time.

use crate::capture::{self, PacketSummary, SkipReason};
use crate::flow::{Analysis, FlowConfig, FlowStats, FlowTable};
use crate::forecast::WindowWidth;
use crate::window::{PacketFacts, WindowAggregator, WindowRow, WindowStats};

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
        emit: &mut impl FnMut(WindowRow),
    ) -> Option<(PacketSummary, Analysis)> {
        self.counters.frames += 1;
        let Some(ts_ns) = ts_ns else {
            self.counters.skip(SkipReason::NoTimestamp);
            return None;
        };
        match capture::parse_frame(linktype, data, orig_len, ts_ns) {
            Ok(p) => Some((p, self.packet(&p, emit))),
            Err(r) => {
                self.counters.skip(r);
                None
            }
        }
    }

    /// A frame the BPF filter rejected.
    pub fn filtered(&mut self) {
        self.counters.frames += 1;
        self.counters.filtered += 1;
    }

    /// Account one parsed packet (benches and tests feed these directly).
    pub fn packet(&mut self, p: &PacketSummary, emit: &mut impl FnMut(WindowRow)) -> Analysis {
        let c = &mut self.counters;
        c.counted += 1;
        c.counted_bytes += p.frame_len_bytes as u64;
        if c.counted.is_multiple_of(self.expire_every) {
            self.flows.expire(p.ts_ns);
        }
        let a = self.flows.process(p);
        c.rtt_samples += a.ack_rtt_ns.is_some() as u64;
        c.bif_samples += a.bytes_in_flight.is_some() as u64;
        self.windows.push(
            &PacketFacts {
                ts_ns: p.ts_ns,
                frame_len_bytes: p.frame_len_bytes,
                ack_rtt_ns: a.ack_rtt_ns,
                bytes_in_flight: a.bytes_in_flight,
                direction_id: a.direction_id,
            },
            emit,
        );
        a
    }

    /// Live mode: open the grid at `now_ns` before any packet arrives.
    pub fn start_at(&mut self, now_ns: i64) {
        self.windows.start_at(now_ns);
    }

    /// Live mode: close windows that ended before `now_ns` (already minus grace).
    pub fn advance_to(&mut self, now_ns: i64, emit: &mut impl FnMut(WindowRow)) {
        self.windows.advance_to(now_ns, emit);
        self.flows.expire(now_ns);
    }

    /// End of input: close the open window.
    pub fn finish(&mut self, emit: &mut impl FnMut(WindowRow)) {
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
