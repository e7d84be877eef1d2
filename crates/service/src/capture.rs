//! The capture stage: a [`PacketSource`] through the engine into window rows.
//!
//! One loop for files and live capture. Live sources close windows on the
//! [`Clock`] (checked on idle and every 64 packets under load), so silent
//! windows appear on time; files close them as packet time moves and flush the
//! open window at the end. Owns one capture's [`Engine`] and its summary; does
//! not own where rows go (the caller's `emit`) or the clock (passed in).

use crate::shutdown::Shutdown;
use crate::source::{Clock, FileNotes, KernelStats, Next, PacketSource, SourceError};
use engine::capture::{PacketSummary, SkipReason, parse_frame};
use engine::flow::Analysis;
use engine::flow::flow_hash;
use engine::pipeline::{Counters, Engine, EngineConfig};
use engine::window::{PacketFacts, RowSink, WindowRow};
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
            "{}: {} frames read, {} counted ({} bytes), {} skipped{}, {} filtered\n  windows {} ({} silent), late packets {}, time jumps {}\n  flows {} (peak {}, ended idle {} / closed {} / over cap {}, port reuse {}), ACK RTT samples {}, bytes-in-flight samples {}\n  retransmissions {}, duplicate ACKs {}, zero-window advertisements {}\n  {:.3} s, {:.0} packets/s",
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
            c.retransmissions,
            c.duplicate_acks,
            c.zero_windows,
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

/// Frames as the reader thread hands them over, in file order.
#[derive(Copy, Clone)]
enum Ahead {
    /// A counted frame and its flow's hash ([`engine::flow::flow_hash`]).
    Packet(PacketSummary, u32),
    /// A frame that does not count, and why.
    Skipped(SkipReason),
    /// A frame the user's BPF filter rejected.
    Filtered,
}

/// Frames per hand-over: about 250 KB, some 0.2 ms of the engine's work, so
/// the channel's cost is spread thin and a stop is noticed within a batch.
const AHEAD_BATCH: usize = 2048;

/// Frames parsed before they are copied on to the batch (about 3.5 KB).
const STAGED: usize = 32;

/// How many frames ahead a flow lookup is prefetched: far enough for a
/// memory load (~100 ns) to land, near enough to stay in the cache.
const PREFETCH_AHEAD: usize = 8;

/// A sink that counts the rows it passes on.
struct Counted<S> {
    rows: u64,
    sink: S,
}

impl<S: RowSink> RowSink for Counted<S> {
    #[inline]
    fn row(&mut self, r: WindowRow) {
        self.rows += 1;
        self.sink.row(r)
    }

    fn silent_run(&mut self, first: WindowRow, n: u64, width_ns: i64) {
        self.rows += n;
        self.sink.silent_run(first, n, width_ns)
    }
}

/// Read and parse `source` on a scoped thread, ahead of the engine here;
/// `None` when the thread could not start (the caller then reads inline).
/// A read error comes after every frame before it was accounted, as inline.
fn read_ahead<S: PacketSource + ?Sized, O: CaptureObserver + ?Sized>(
    source: &mut S,
    engine: &mut Engine,
    shutdown: &Shutdown,
    observer: &mut O,
    on_row: &mut impl RowSink,
) -> Option<Result<(), SourceError>> {
    let (tx, rx) = crossbeam_channel::bounded::<Vec<Ahead>>(4);
    // Emptied batches go back to the reader, so steady state allocates nothing.
    let (spare_tx, spare_rx) = crossbeam_channel::bounded::<Vec<Ahead>>(6);
    std::thread::scope(|scope| {
        let reader = std::thread::Builder::new()
            .name("read-ahead".into())
            .spawn_scoped(scope, move || -> Result<(), SourceError> {
                // Frames are parsed into this small buffer, which stays in the
                // L1 cache, and copied on to the batch in runs: parsed straight
                // into the batch (memory the cache does not hold), the stores
                // queued behind each other and the parsing ran at a fraction of
                // its speed, by how the stack happened to align (2.4 M packets:
                // 0.15 s or 0.41 s between builds).
                let mut staged: Vec<Ahead> = Vec::with_capacity(STAGED);
                loop {
                    let mut batch = spare_rx
                        .try_recv()
                        .unwrap_or_else(|_| Vec::with_capacity(AHEAD_BATCH));
                    let mut stop = Ok(false);
                    while batch.len() + staged.len() < AHEAD_BATCH {
                        if staged.len() == STAGED {
                            batch.extend_from_slice(&staged);
                            staged.clear();
                        }
                        match source.next() {
                            Ok(Next::Frame {
                                linktype,
                                data,
                                orig_len,
                                ts_ns,
                            }) => staged.push(
                                match ts_ns.map(|ts| parse_frame(linktype, data, orig_len, ts)) {
                                    Some(Ok(p)) => Ahead::Packet(p, flow_hash(&p.ends)),
                                    Some(Err(r)) => Ahead::Skipped(r),
                                    None => Ahead::Skipped(SkipReason::NoTimestamp),
                                },
                            ),
                            Ok(Next::Filtered) => staged.push(Ahead::Filtered),
                            // A file is never idle; nothing to account.
                            Ok(Next::Idle) => {}
                            Ok(Next::End) => {
                                stop = Ok(true);
                                break;
                            }
                            Err(e) => {
                                stop = Err(e);
                                break;
                            }
                        }
                    }
                    batch.extend_from_slice(&staged);
                    staged.clear();
                    // The engine's side hung up (a stop): nothing more to read.
                    if !batch.is_empty() && tx.send(batch).is_err() {
                        return Ok(());
                    }
                    if stop? {
                        return Ok(());
                    }
                }
            })
            .ok()?;
        let mut frame_no = 0u64;
        for mut batch in rx.iter() {
            for i in 0..batch.len() {
                // The flow lookup of a packet a few ahead starts loading now.
                if let Some(Ahead::Packet(_, hash)) = batch.get(i + PREFETCH_AHEAD) {
                    engine.prefetch(*hash);
                }
                frame_no += 1;
                match &batch[i] {
                    Ahead::Packet(p, hash) => {
                        let a = engine.frame_hashed(p, *hash, on_row);
                        observer.packet(frame_no, p, &a);
                        observer.counted(p, engine.last_facts());
                    }
                    Ahead::Skipped(r) => engine.skipped(*r),
                    Ahead::Filtered => engine.filtered(),
                }
            }
            batch.clear();
            let _ = spare_tx.try_send(batch);
            if shutdown.is_set() {
                break;
            }
        }
        drop(rx);
        Some(match reader.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        })
    })
}

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
    emit: impl RowSink,
) -> Result<CaptureSummary, SourceError> {
    let start = Instant::now();
    let live = source.is_live();
    let mut engine = Engine::new(cfg);
    let mut on_row = Counted {
        rows: 0,
        sink: emit,
    };
    if live {
        engine.start_at(clock.now_ns());
    }
    // A file read as fast as it can be is read and parsed on a second thread
    // (unless it cannot start): the engine's thread then only analyses.
    let ran_ahead = !live
        && source.reads_ahead()
        && match read_ahead(source, &mut engine, shutdown, observer, &mut on_row) {
            Some(r) => {
                r?;
                true
            }
            None => false,
        };
    if !ran_ahead {
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
                    if let Some((p, a)) = engine.frame(linktype, data, orig_len, ts_ns, &mut on_row)
                    {
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
    }
    let kernel = if live {
        engine.advance_to(clock.now_ns() - grace_ns, &mut on_row);
        source.kernel_stats()?
    } else {
        engine.finish(&mut on_row);
        None
    };
    let counters = engine.counters();
    let rows = on_row.rows;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{FileSource, ManualClock};
    use engine::capture::PacketSummary;
    use std::io::Read;
    use std::path::Path;

    /// A file source that says it cannot be read ahead: the inline loop.
    struct Inline(FileSource);
    impl PacketSource for Inline {
        fn name(&self) -> String {
            self.0.name()
        }
        fn is_live(&self) -> bool {
            false
        }
        fn next(&mut self) -> Result<Next<'_>, SourceError> {
            self.0.next()
        }
        fn notes(&self) -> FileNotes {
            self.0.notes()
        }
    }

    #[derive(Default)]
    struct Seen {
        packets: Vec<(u64, i64, Option<u32>)>,
        counted: u64,
    }
    impl CaptureObserver for Seen {
        fn packet(&mut self, frame: u64, p: &PacketSummary, a: &Analysis) {
            self.packets.push((frame, p.ts_ns, a.bytes_in_flight));
        }
        fn counted(&mut self, _p: &PacketSummary, _f: &PacketFacts) {
            self.counted += 1;
        }
    }

    type Run = (Result<CaptureSummary, String>, Vec<WindowRow>, Seen);

    fn run(source: &mut dyn PacketSource, stop_after_rows: Option<usize>) -> Run {
        let shutdown = Shutdown::new();
        let mut rows = Vec::new();
        let mut seen = Seen::default();
        let r = run_capture(
            source,
            EngineConfig::default(),
            &ManualClock::new(0),
            0,
            &shutdown,
            &mut seen,
            |row| {
                rows.push(row);
                if stop_after_rows.is_some_and(|n| rows.len() >= n) {
                    shutdown.trigger();
                }
            },
        )
        .map(|mut s| {
            s.elapsed_s = 0.0;
            s
        })
        .map_err(|e| e.to_string());
        (r, rows, seen)
    }

    /// The committed cellular capture, inflated (29 k records).
    fn cellular_pcap() -> Vec<u8> {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/lab-cellular-s3.pcap.gz");
        let mut b = Vec::new();
        flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
            .read_to_end(&mut b)
            .unwrap();
        b
    }

    fn both(bytes: &[u8], filter: Option<&str>, stop: Option<usize>) -> (Run, Run) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.pcap");
        std::fs::write(&p, bytes).unwrap();
        let mut ahead = FileSource::open(&p, filter).unwrap();
        assert!(ahead.reads_ahead());
        let a = run(&mut ahead, stop);
        let mut inline = Inline(FileSource::open(&p, filter).unwrap());
        let b = run(&mut inline, stop);
        (a, b)
    }

    fn assert_same(a: &Run, b: &Run) {
        assert_eq!(
            a.0.as_ref().map(|s| s.counters.clone()),
            b.0.as_ref().map(|s| s.counters.clone())
        );
        assert_eq!(a.0.as_ref().map(|s| s.rows), b.0.as_ref().map(|s| s.rows));
        assert_eq!(a.0.as_ref().err(), b.0.as_ref().err());
        assert_eq!(a.1, b.1);
        assert_eq!(a.2.packets, b.2.packets);
        assert_eq!(a.2.counted, b.2.counted);
    }

    #[test]
    fn reading_ahead_gives_what_reading_inline_gives() {
        let bytes = cellular_pcap();
        let (a, b) = both(&bytes, None, None);
        let s = a.0.as_ref().unwrap();
        assert!(
            s.counters.counted > 10 * AHEAD_BATCH as u64,
            "{}",
            s.counters.counted
        );
        assert!(a.1.len() > 300);
        assert_same(&a, &b);
        // A filter: the rejected frames keep their numbers in the count.
        let (a, b) = both(&bytes, Some("tcp src port 5201"), None);
        let s = a.0.as_ref().unwrap();
        assert!(
            s.counters.filtered > 1000 && s.counters.counted > 1000,
            "{s:?}"
        );
        assert_same(&a, &b);
    }

    #[test]
    fn a_damaged_record_comes_after_every_frame_before_it() {
        let mut bytes = cellular_pcap();
        // Walk to record 5,000 and claim 4 GB captured there.
        let mut at = 24;
        for _ in 0..5_000 {
            let incl = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
            at += 16 + incl;
        }
        bytes[at + 8..at + 12].copy_from_slice(&u32::MAX.to_le_bytes());
        let (a, b) = both(&bytes, None, None);
        let e = a.0.as_ref().unwrap_err();
        assert!(e.contains("captured bytes"), "{e}");
        assert_eq!(a.2.packets.len(), 5_000);
        assert_eq!(a.2.packets.last().unwrap().0, 5_000);
        assert_same(&a, &b);
    }

    /// A FIFO's frames are handed on as they come, not held for a batch: the
    /// first window closes while the writer still holds the pipe open.
    #[test]
    fn a_pipe_is_not_read_ahead() {
        use std::io::Write;
        let bytes = cellular_pcap();
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("f");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let writer = {
            let fifo = fifo.clone();
            // The header and the first 200 records, then wait for the reader
            // to have seen a window before closing.
            let mut at = 24;
            for _ in 0..200 {
                at += 16 + u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
            }
            let head = bytes[..at].to_vec();
            std::thread::spawn(move || {
                let mut f = std::fs::OpenOptions::new().write(true).open(fifo).unwrap();
                f.write_all(&head).unwrap();
                f.flush().unwrap();
                // Whether the reader saw a window before the pipe closed.
                rx.recv_timeout(std::time::Duration::from_secs(5)).is_ok()
            })
        };
        let mut source = FileSource::open(&fifo, None).unwrap();
        assert!(!source.reads_ahead());
        let shutdown = Shutdown::new();
        let mut tx = Some(tx);
        run_capture(
            &mut source,
            EngineConfig::default(),
            &ManualClock::new(0),
            0,
            &shutdown,
            &mut NoObserver,
            |_row| {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(());
                }
            },
        )
        .unwrap();
        assert!(
            writer.join().unwrap(),
            "no window before the writer hung up"
        );
    }

    #[test]
    fn a_stop_while_reading_ahead_ends_the_run_early() {
        let bytes = cellular_pcap();
        let (a, _) = both(&bytes, None, None);
        let all = a.2.packets.len();
        let (a, _) = both(&bytes, None, Some(20));
        let s = a.0.as_ref().unwrap();
        // Stopped within a batch of the 20th window (one more batch may be
        // in hand), long before the end.
        assert!(a.1.len() >= 20 && a.1.len() < 100, "{}", a.1.len());
        assert!(
            a.2.packets.len() < all / 2,
            "{} of {all}",
            a.2.packets.len()
        );
        assert_eq!(s.counters.counted as usize, a.2.packets.len());
    }
}
