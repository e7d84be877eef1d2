//! Where packets come from, and the clock: the inputs the pipeline is given
//! rather than opens itself, so a test can drive it.
//!
//! - [`PacketSource`]: frames one at a time. [`FileSource`] reads a capture file
//!   (optionally filtered by BPF and paced by its timestamps); [`LiveSource`]
//!   captures through libpcap (immediate mode, an explicit kernel buffer, a
//!   non-blocking read polled every few ms, a kernel BPF filter, drop counters).
//! - [`Clock`]: wall time for live sources, whose windows close on the clock
//!   ([`SystemClock`]; [`ManualClock`] in tests).
//!
//! Owns pcap handles, file readers and the wall clock; does not own parsing or
//! windows (the engine does).

use engine::pcapfile::{CaptureFile, FileError};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Wall time, in nanoseconds since the Unix epoch; shared by the stages.
pub trait Clock: Send + Sync {
    /// Now, ns since the epoch.
    fn now_ns(&self) -> i64;
}

/// The system's real-time clock.
#[derive(Copy, Clone, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ns(&self) -> i64 {
        now_ns()
    }
}

/// A clock that moves only when told: tests drive live-mode code with it.
#[derive(Clone, Debug, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock showing `ns`.
    pub fn new(ns: i64) -> Self {
        ManualClock(Arc::new(AtomicI64::new(ns)))
    }
    /// Set the time (it may only move forward; an earlier time is ignored).
    pub fn set(&self, ns: i64) {
        self.0.fetch_max(ns, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now_ns(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One step of a source.
#[derive(Debug)]
pub enum Next<'a> {
    /// A frame to account.
    Frame {
        /// Link-layer type of the frame (pcap LINKTYPE_*).
        linktype: u32,
        /// The captured bytes.
        data: &'a [u8],
        /// The frame's length on the wire.
        orig_len: u32,
        /// Capture time, ns since the epoch (`None`: the record had no valid time).
        ts_ns: Option<i64>,
    },
    /// A frame the user's BPF filter rejected (still a frame of the file).
    Filtered,
    /// Nothing arrived for a while (live); time may have passed.
    Idle,
    /// The input is exhausted.
    End,
}

/// Errors of a source.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A capture file could not be read.
    #[error(transparent)]
    File(#[from] FileError),
    /// Live capture failed.
    #[error(transparent)]
    Live(#[from] LiveError),
    /// The user's filter does not compile for a link type in the file.
    #[error("invalid filter {filter:?} for link type {linktype}: {detail}")]
    Filter {
        /// The filter expression.
        filter: String,
        /// The link type it was compiled for.
        linktype: u32,
        /// What libpcap said.
        detail: String,
    },
}

/// What a file reader noticed about its file.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct FileNotes {
    /// The file ends inside a record at this byte offset.
    pub cut_short_at: Option<u64>,
    /// Records whose sub-second field was out of range.
    pub invalid_timestamps: u64,
}

/// Frames from somewhere: a file, an interface, a test.
pub trait PacketSource: Send {
    /// A name for summaries (the path, or `live IF`).
    fn name(&self) -> String;
    /// True when windows close on the clock (live capture), false when they close
    /// only as packet time moves (files, as fast as they can be read).
    fn is_live(&self) -> bool;
    /// The next frame, or what happened instead.
    fn next(&mut self) -> Result<Next<'_>, SourceError>;
    /// The kernel's counters, for live sources.
    fn kernel_stats(&mut self) -> Result<Option<KernelStats>, SourceError> {
        Ok(None)
    }
    /// What the file reader noticed, for file sources.
    fn notes(&self) -> FileNotes {
        FileNotes::default()
    }
    /// Whether frames may be read and parsed ahead of the engine on another
    /// thread: only a file read as fast as it can be (a paced file's frames
    /// are due at their times, a live source's when the kernel has them).
    fn reads_ahead(&self) -> bool {
        false
    }
}

/// BPF programs per link type, compiled on first use (files only; live capture
/// filters in the kernel).
struct FileFilter {
    expr: String,
    programs: HashMap<u32, pcap::BpfProgram>,
}

impl FileFilter {
    fn matches(&mut self, linktype: u32, data: &[u8]) -> Result<bool, SourceError> {
        if !self.programs.contains_key(&linktype) {
            let err = |e: pcap::Error| SourceError::Filter {
                filter: self.expr.clone(),
                linktype,
                detail: e.to_string(),
            };
            let dead = pcap::Capture::dead(pcap::Linktype(linktype as i32)).map_err(err)?;
            let prog = dead.compile(&self.expr, true).map_err(err)?;
            self.programs.insert(linktype, prog);
        }
        Ok(self.programs.get(&linktype).is_some_and(|p| p.filter(data)))
    }
}

/// A capture file as a source: as fast as it can be read, or paced by its
/// timestamps (`replay --realtime`).
pub struct FileSource {
    path: PathBuf,
    file: CaptureFile,
    filter: Option<FileFilter>,
    /// Pacing: released no faster than the timestamps, from this instant.
    pace: Option<Instant>,
    first_ts: Option<i64>,
    /// A regular file (all there to read), not standard input, a pipe or a FIFO.
    regular: bool,
}

impl FileSource {
    /// Open `path`; `filter` is a BPF expression applied per link type.
    pub fn open(path: &Path, filter: Option<&str>) -> Result<Self, SourceError> {
        Ok(FileSource {
            path: path.to_owned(),
            file: CaptureFile::open(path)?,
            filter: filter.map(|f| FileFilter {
                expr: f.to_owned(),
                programs: HashMap::new(),
            }),
            pace: None,
            first_ts: None,
            regular: path != Path::new("-") && std::fs::metadata(path).is_ok_and(|m| m.is_file()),
        })
    }

    /// Release records no faster than their timestamps, from now on.
    pub fn paced(mut self) -> Self {
        self.pace = Some(Instant::now());
        self
    }
}

impl FileSource {
    #[cold]
    fn next_paced_or_filtered(&mut self) -> Result<Next<'_>, SourceError> {
        let Some(rec) = self.file.next_record()? else {
            return Ok(Next::End);
        };
        if let (Some(t0), Some(ts)) = (self.pace, rec.ts_ns) {
            let base = *self.first_ts.get_or_insert(ts);
            let due = std::time::Duration::from_nanos((ts - base).max(0) as u64);
            let now = t0.elapsed();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        if let Some(f) = self.filter.as_mut()
            && !f.matches(rec.linktype, rec.data)?
        {
            return Ok(Next::Filtered);
        }
        Ok(Next::Frame {
            linktype: rec.linktype,
            data: rec.data,
            orig_len: rec.orig_len,
            ts_ns: rec.ts_ns,
        })
    }
}

impl PacketSource for FileSource {
    fn name(&self) -> String {
        self.path.display().to_string()
    }

    fn is_live(&self) -> bool {
        false
    }

    #[inline(always)]
    fn next(&mut self) -> Result<Next<'_>, SourceError> {
        if self.pace.is_none() && self.filter.is_none() {
            // The common case, kept short: every record as it is.
            return Ok(match self.file.next_record()? {
                Some(rec) => Next::Frame {
                    linktype: rec.linktype,
                    data: rec.data,
                    orig_len: rec.orig_len,
                    ts_ns: rec.ts_ns,
                },
                None => Next::End,
            });
        }
        self.next_paced_or_filtered()
    }

    fn reads_ahead(&self) -> bool {
        // A pipe's frames come when its writer has them (`tcpdump -w - |
        // netforecast extract -`): a batch would hold them back.
        self.pace.is_none() && self.regular
    }

    fn notes(&self) -> FileNotes {
        FileNotes {
            cut_short_at: self.file.notes.cut_short_at,
            invalid_timestamps: self.file.notes.invalid_timestamps,
        }
    }
}

/// Live capture settings.
#[derive(Clone, Debug)]
pub struct LiveConfig {
    /// The interface.
    pub iface: String,
    /// BPF filter compiled into the kernel (default `tcp`).
    pub filter: String,
    /// Bytes kept per packet: headers with options fit in 128; 256 leaves room
    /// for tunnels and IPv6 extension headers.
    pub snaplen: i32,
    /// Kernel ring buffer, bytes. 64 MiB rides out ~50 ms stalls at 10 Gbit/s.
    pub buffer_bytes: i32,
    /// Read timeout, ms: bounds how late a window can close when traffic stops.
    pub timeout_ms: i32,
    /// Delay after a window's end before it is closed, for packets in delivery.
    pub grace_ns: i64,
    /// Promiscuous mode.
    pub promisc: bool,
}

impl LiveConfig {
    /// The defaults for `iface`.
    pub fn new(iface: &str) -> Self {
        LiveConfig {
            iface: iface.to_owned(),
            filter: "tcp".into(),
            snaplen: 256,
            buffer_bytes: 64 << 20,
            timeout_ms: 5,
            grace_ns: 5_000_000,
            promisc: false,
        }
    }
}

/// Errors of live capture.
#[allow(missing_docs)]
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error(
        "no permission to capture on {iface}: run as root or grant the binaries cap_net_raw (sudo setcap cap_net_raw,cap_net_admin=eip FILE, for both netforecast and netforecast-ml)"
    )]
    Permission { iface: String },
    #[error("no interface named {iface}: list interfaces with `ip link`")]
    NoSuchInterface { iface: String },
    #[error("cannot open {iface} for capture: {detail}")]
    Open { iface: String, detail: String },
    #[error("invalid capture filter {filter:?}: {detail}")]
    Filter { filter: String, detail: String },
    #[error("capture on {iface} failed: {detail} (did the interface go away?)")]
    Read { iface: String, detail: String },
}

/// Kernel counters from `pcap_stats` at the end of a live run.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct KernelStats {
    /// Packets the kernel handed to the capture.
    pub received: u64,
    /// Packets dropped because the capture buffer was full.
    pub dropped: u64,
    /// Packets the interface dropped.
    pub if_dropped: u64,
    /// The interface is down (its operstate), as last seen.
    #[serde(skip)]
    pub link_down: bool,
}

fn classify_open_error(iface: &str, e: pcap::Error) -> LiveError {
    let detail = e.to_string();
    let lower = detail.to_lowercase();
    if lower.contains("permission") || lower.contains("not permitted") {
        LiveError::Permission {
            iface: iface.into(),
        }
    } else if lower.contains("no such device") || lower.contains("doesn't exist") {
        LiveError::NoSuchInterface {
            iface: iface.into(),
        }
    } else {
        LiveError::Open {
            iface: iface.into(),
            detail,
        }
    }
}

/// Wall clock in nanoseconds since the Unix epoch.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// An open live capture, as a source.
pub struct LiveSource {
    cap: pcap::Capture<pcap::Active>,
    /// The capture's fd, polled while idle.
    fd: std::os::unix::io::RawFd,
    /// Since when the interface has been down, if it is.
    down_since: Option<std::time::Instant>,
    cfg: LiveConfig,
    linktype: u32,
}

impl LiveSource {
    /// Open the interface (needs root or cap_net_raw).
    pub fn open(cfg: &LiveConfig) -> Result<Self, LiveError> {
        let inactive = pcap::Capture::from_device(cfg.iface.as_str())
            .map_err(|e| classify_open_error(&cfg.iface, e))?;
        let mut cap = inactive
            .immediate_mode(true)
            .buffer_size(cfg.buffer_bytes)
            .snaplen(cfg.snaplen)
            .timeout(cfg.timeout_ms)
            .promisc(cfg.promisc)
            .precision(pcap::Precision::Nano)
            .open()
            .map_err(|e| classify_open_error(&cfg.iface, e))?;
        if !cfg.filter.is_empty() {
            cap.filter(&cfg.filter, true)
                .map_err(|e| LiveError::Filter {
                    filter: cfg.filter.clone(),
                    detail: e.to_string(),
                })?;
        }
        // libpcap's own read timeout does not fire on an idle TPACKET_V3 ring
        // (poll blocks forever), so read non-blocking and poll the fd ourselves.
        let cap = cap
            .setnonblock()
            .map_err(|e| classify_open_error(&cfg.iface, e))?;
        let linktype = cap.get_datalink().0 as u32;
        use std::os::unix::io::AsRawFd;
        Ok(LiveSource {
            fd: cap.as_raw_fd(),
            down_since: None,
            cap,
            cfg: cfg.clone(),
            linktype,
        })
    }

    /// The interface's link type.
    pub fn linktype(&self) -> u32 {
        self.linktype
    }

    /// Delay after a window's end before it is closed.
    pub fn grace_ns(&self) -> i64 {
        self.cfg.grace_ns
    }

    /// The kernel's counters now.
    pub fn stats(&mut self) -> Result<KernelStats, LiveError> {
        let s = self.cap.stats().map_err(|e| LiveError::Read {
            iface: self.cfg.iface.clone(),
            detail: e.to_string(),
        })?;
        Ok(KernelStats {
            received: s.received as u64,
            dropped: s.dropped as u64,
            if_dropped: s.if_dropped as u64,
            link_down: self.down_since.is_some(),
        })
    }
}

impl PacketSource for LiveSource {
    fn name(&self) -> String {
        live_name(&self.cfg.iface)
    }

    fn is_live(&self) -> bool {
        true
    }

    fn next(&mut self) -> Result<Next<'_>, SourceError> {
        match self.cap.next_packet() {
            Ok(p) => {
                let h = p.header;
                // With nanosecond precision tv_usec carries nanoseconds.
                let ts = h.ts.tv_sec * 1_000_000_000 + h.ts.tv_usec;
                Ok(Next::Frame {
                    linktype: self.linktype,
                    data: p.data,
                    orig_len: h.len,
                    ts_ns: Some(ts),
                })
            }
            Err(pcap::Error::TimeoutExpired) => {
                wait_readable(self.fd, self.cfg.timeout_ms);
                Ok(Next::Idle)
            }
            Err(e) => Err(LiveError::Read {
                iface: self.cfg.iface.clone(),
                detail: e.to_string(),
            }
            .into()),
        }
    }

    fn kernel_stats(&mut self) -> Result<Option<KernelStats>, SourceError> {
        let mut k = self.stats()?;
        k.link_down = self.check_link();
        Ok(Some(k))
    }
}

impl LiveSource {
    /// Whether the interface is down now; says so once when it goes down and
    /// once when it comes back (capture goes on throughout, as tcpdump's does,
    /// and the windows of the outage are silent).
    fn check_link(&mut self) -> bool {
        let state = std::fs::read_to_string(format!("/sys/class/net/{}/operstate", self.cfg.iface))
            .unwrap_or_default();
        let down = matches!(state.trim(), "down" | "lowerlayerdown" | "notpresent");
        match (self.down_since, down) {
            (None, true) => {
                tracing::warn!(
                    "interface {} is down: capture goes on and its windows are silent until it is back",
                    self.cfg.iface
                );
                self.down_since = Some(std::time::Instant::now());
            }
            (Some(t), false) => {
                tracing::info!(
                    "interface {} is up again after {:.1} s",
                    self.cfg.iface,
                    t.elapsed().as_secs_f64()
                );
                self.down_since = None;
            }
            _ => {}
        }
        down
    }
}

/// Sleep until `fd` is readable or `timeout_ms` passes.
fn wait_readable(fd: std::os::unix::io::RawFd, timeout_ms: i32) {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    unsafe {
        libc::poll(&mut pfd, 1, timeout_ms);
    }
}

/// A live capture's stream name: `live IF`.
pub fn live_name(iface: &str) -> String {
    format!("live {iface}")
}

/// The interface of a live stream's name (`live IF`, `live IF host ADDR`);
/// None for a file's.
pub fn iface_of(name: &str) -> Option<&str> {
    name.strip_prefix("live ")
        .map(|rest| rest.split(' ').next().unwrap_or(rest))
}

/// A stream's kind and key from its name: (`iface`, `eth0`) for `live eth0`,
/// (`host`, `10.0.0.1`) for `live eth0 host 10.0.0.1`, (`flow`,
/// `10.0.0.1:443-10.0.0.2:40000`) for a flow's, (`capture`, the name) for a
/// file.
pub fn kind_and_key(name: &str) -> (&'static str, &str) {
    match name.strip_prefix("live ") {
        Some(rest) => match (rest.split_once(" host "), rest.split_once(" flow ")) {
            (Some((_, host)), _) => ("host", host),
            (_, Some((_, flow))) => ("flow", flow),
            _ => ("iface", rest),
        },
        None => ("capture", name),
    }
}

#[cfg(test)]
mod name_tests {
    use super::*;

    #[test]
    fn stream_names_give_their_interface_kind_and_key() {
        assert_eq!(iface_of("live eth0"), Some("eth0"));
        assert_eq!(iface_of("live eth0 host 10.0.0.1"), Some("eth0"));
        assert_eq!(iface_of("/tmp/a.pcap"), None);
        assert_eq!(kind_and_key("live eth0"), ("iface", "eth0"));
        assert_eq!(kind_and_key("live eth0 host fe80::1"), ("host", "fe80::1"));
        assert_eq!(kind_and_key("a.pcap"), ("capture", "a.pcap"));
        assert_eq!(
            kind_and_key("live eth0 flow 10.0.0.1:443-10.0.0.2:40000"),
            ("flow", "10.0.0.1:443-10.0.0.2:40000")
        );
        assert_eq!(iface_of("live eth0 flow [::1]:1-[::1]:2"), Some("eth0"));
    }
}
