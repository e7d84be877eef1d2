//! The capture stage: a [`PacketSource`] through the engine into window rows.
//!
//! One loop for files and live capture. Live sources close windows on the
//! [`Clock`] (checked on idle and every 64 packets under load), so silent
//! windows appear on time; files close them as packet time moves and flush the
//! open window at the end. Owns one capture's [`Engine`] and its summary; does
//! not own where rows go (the caller's `emit`) or the clock (passed in).

use crate::shutdown::Shutdown;
use crate::source::{Clock, FileNotes, KernelStats, Next, PacketSource, SourceError};
use engine::capture::PacketSummary;
use engine::flow::Analysis;
use engine::pipeline::{Counters, Engine, EngineConfig};
use engine::window::{PacketFacts, WindowRow};
use std::time::Instant;

/// Reading the clock costs ~20 ns; under load it is read once per this many packets.
const CLOCK_EVERY: u32 = 64;

/// The result of one capture (a file, or a live run).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct CaptureSummary {
    /// The path, or `live IF`.
    pub name: String,
    /// The engine's counters.
    pub counters: Counters,
    /// Window rows handed on.
    pub rows: u64,
    /// Wall time the capture took, s.
    pub elapsed_s: f64,
    /// The file ends inside a record at this byte offset.
    pub cut_short_at: Option<u64>,
    /// Records whose sub-second field was out of range.
    pub invalid_timestamps: u64,
    /// Kernel counters (live only).
    pub kernel: Option<KernelStats>,
    /// Rows dropped because the next stage fell behind (live only).
    pub rows_dropped: u64,
}

impl CaptureSummary {
    /// Multi-line human summary for standard error.
    pub fn render(&self) -> String {
        let c = &self.counters;
        let skipped = c.skipped_by_reason();
        let reasons = if skipped.is_empty() {
            String::new()
        } else {
            format!(
                " ({})",
                skipped
                    .iter()
                    .map(|(n, k)| format!("{n} {k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let pps = if self.elapsed_s > 0.0 {
            c.frames as f64 / self.elapsed_s
        } else {
            0.0
        };
        let mut s = format!(
            "{}: {} frames read, {} counted ({} bytes), {} skipped{}, {} filtered\n  windows {} ({} silent), late packets {}, time jumps {}\n  flows {} (peak {}, ended idle {} / closed {} / over cap {}, port reuse {}), ACK RTT samples {}, bytes-in-flight samples {}\n  {:.3} s, {:.0} packets/s",
            self.name,
            c.frames,
            c.counted,
            c.counted_bytes,
            c.skipped_total(),
            reasons,
            c.filtered,
            c.window.windows,
            c.window.silent_windows,
            c.window.late_packets,
            c.window.time_jumps,
            c.flow.flows_created,
            c.flow.flows_peak,
            c.flow.evicted_idle,
            c.flow.evicted_closed,
            c.flow.evicted_cap,
            c.flow.port_reuse_restarts,
            c.rtt_samples,
            c.bif_samples,
            self.elapsed_s,
            pps
        );
        if c.flow.segments_over_budget + c.flow.segments_over_direction_cap > 0 {
            s += &format!(
                "\n  unacked segments not remembered: {} over the per-direction cap, {} over the memory budget",
                c.flow.segments_over_direction_cap, c.flow.segments_over_budget
            );
        }
        if self.invalid_timestamps > 0 {
            s += &format!(
                "\n  records with an out-of-range sub-second timestamp field: {}",
                self.invalid_timestamps
            );
        }
        if let Some(at) = self.cut_short_at {
            s += &format!(
                "\n  warning: the file ends inside a record at byte {at}; everything before it was read"
            );
        }
        if let Some(k) = self.kernel {
            s += &format!(
                "\n  kernel: received {}, dropped {} (buffer full), dropped by interface {}",
                k.received, k.dropped, k.if_dropped
            );
        }
        if self.rows_dropped > 0 {
            s += &format!(
                "\n  rows dropped because the writer fell behind: {}",
                self.rows_dropped
            );
        }
        s
    }
}

/// What the capture stage calls besides `emit`.
pub trait CaptureObserver {
    /// Every counted packet with its analysis and frame number (from 1, over all
    /// records of the source, as tshark numbers them). For `extract --packets-out`.
    fn packet(&mut self, _frame: u64, _p: &PacketSummary, _a: &Analysis) {}
    /// About once a second (live): the engine's counters and the kernel's.
    fn tick(&mut self, _counters: &Counters, _kernel: Option<KernelStats>) {}
    /// Every counted packet and what it contributed to its window (for
    /// windows of part of the traffic).
    fn counted(&mut self, _p: &PacketSummary, _f: &PacketFacts) {}
    /// Live: windows that ended before `now_ns` (the clock minus the grace)
    /// close.
    fn advance(&mut self, _now_ns: i64) {}
    /// The capture ended.
    fn finish(&mut self) {}
}

/// Observes nothing.
pub struct NoObserver;
impl CaptureObserver for NoObserver {}

/// Run `source` through a fresh engine until it ends or `shutdown` is set; every
/// closed window goes to `emit`. The window open when a live capture stops is
/// partial and is not emitted.
///
/// Generic over the source, the observer and `emit` so the per-packet loop has
/// no indirect calls for a concrete source (extract's files).
pub fn run_capture<S: PacketSource + ?Sized, O: CaptureObserver + ?Sized>(
    source: &mut S,
    cfg: EngineConfig,
    clock: &dyn Clock,
    grace_ns: i64,
    shutdown: &Shutdown,
    observer: &mut O,
    mut emit: impl FnMut(WindowRow),
) -> Result<CaptureSummary, SourceError> {
    let start = Instant::now();
    let live = source.is_live();
    let mut engine = Engine::new(cfg);
    let mut rows = 0u64;
    let mut on_row = |r: WindowRow| {
        rows += 1;
        emit(r)
    };
    if live {
        engine.start_at(clock.now_ns());
    }
    let mut last_tick = clock.now_ns();
    let mut since_clock = 0u32;
    let mut frame_no = 0u64;
    loop {
        // The flag is read every 64 frames (and whenever a live source is idle,
        // below): a paced file is then at most 64 packets late to stop.
        if frame_no.is_multiple_of(64) && shutdown.is_set() {
            break;
        }
        match source.next()? {
            Next::Frame {
                linktype,
                data,
                orig_len,
                ts_ns,
            } => {
                frame_no += 1;
                if let Some((p, a)) = engine.frame(linktype, data, orig_len, ts_ns, &mut on_row) {
                    observer.packet(frame_no, &p, &a);
                    observer.counted(&p, engine.last_facts());
                }
                since_clock += 1;
                if !live || since_clock < CLOCK_EVERY {
                    continue;
                }
            }
            Next::Filtered => {
                frame_no += 1;
                engine.filtered();
                continue;
            }
            Next::Idle => {
                if shutdown.is_set() {
                    break;
                }
            }
            Next::End => break,
        }
        if live {
            since_clock = 0;
            let now = clock.now_ns();
            engine.advance_to(now - grace_ns, &mut on_row);
            observer.advance(now - grace_ns);
            if now - last_tick >= 1_000_000_000 {
                last_tick = now;
                let k = source.kernel_stats()?;
                observer.tick(&engine.counters(), k);
            }
        }
    }
    let kernel = if live {
        engine.advance_to(clock.now_ns() - grace_ns, &mut on_row);
        source.kernel_stats()?
    } else {
        engine.finish(&mut on_row);
        None
    };
    let counters = engine.counters();
    observer.tick(&counters, kernel);
    observer.finish();
    let FileNotes {
        cut_short_at,
        invalid_timestamps,
    } = source.notes();
    Ok(CaptureSummary {
        name: source.name(),
        counters,
        rows,
        elapsed_s: start.elapsed().as_secs_f64(),
        cut_short_at,
        invalid_timestamps,
        kernel,
        rows_dropped: 0,
    })
}
