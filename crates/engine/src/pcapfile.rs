//! Capture files: pcap and pcapng, plain or gzip, either byte order, micro- or
//! nanosecond timestamps, several interfaces and link types in one pcapng.
//!
//! libpcap refuses a pcapng whose interfaces have different link types ("an
//! interface has a type 0 different from the type of the first interface"), which
//! real multi-interface captures have, so files are read here. Live capture uses
//! libpcap through the `pcap` crate ([`crate::live`]).
//!
//! Timestamps are converted the way Wireshark's wiretap does, so tshark stays an
//! oracle even for broken files: a pcap microsecond field of 1,000,000 or more is
//! multiplied by 1000 in 32-bit arithmetic and added to the seconds.
//!
//! Owns bytes-to-records only; no parsing of what is inside a frame.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// A record larger than this is corruption, not a packet (BIG TCP frames are
/// ~200 KB, the largest snap length libpcap allows is 256 KiB).
const MAX_RECORD_BYTES: usize = 16 * 1024 * 1024;
/// Read buffer: large enough that refills are rare, small enough to stay in L2/L3.
const READ_CHUNK: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
/// Errors reading a capture file.
pub enum FileError {
    /// The file cannot be opened.
    #[error("cannot open {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// Reading failed.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// Neither pcap nor pcapng.
    #[error(
        "{path} is not a pcap or pcapng capture (first bytes {magic}); give a file written by tcpdump, tshark or dumpcap"
    )]
    UnknownFormat {
        /// The file.
        path: PathBuf,
        /// Its first bytes, in hex.
        magic: String,
    },
    /// A structure in the file is broken.
    #[error("{path} is corrupt at byte {offset}: {detail}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where, in bytes from the start.
        offset: u64,
        /// What is wrong.
        detail: String,
    },
}

/// One record, borrowed from the reader's buffer until the next call.
#[derive(Debug)]
pub struct Record<'a> {
    /// Nanoseconds since the Unix epoch; `None` for pcapng simple packet blocks.
    pub ts_ns: Option<i64>,
    /// Link-layer type.
    pub linktype: u32,
    /// Length on the wire.
    pub orig_len: u32,
    /// The captured bytes.
    pub data: &'a [u8],
    /// Interface index inside the file (0 for classic pcap).
    pub interface: u32,
}

/// What the reader noticed that is not an error but must not pass silently.
#[derive(Debug, Default, Clone)]
pub struct ReaderNotes {
    /// The file ended inside a record: that record was not delivered.
    pub cut_short_at: Option<u64>,
    /// Records with a microsecond/nanosecond field out of range.
    pub invalid_timestamps: u64,
    /// pcapng blocks of kinds that carry no packets for us (statistics, names, ...).
    pub other_blocks: u64,
}

#[derive(Copy, Clone, Debug, PartialEq)]
enum Format {
    Pcap {
        swapped: bool,
        nanos: bool,
        linktype: u32,
    },
    Pcapng {
        big_endian: bool,
    },
}

#[derive(Clone, Debug)]
struct Interface {
    linktype: u32,
    snaplen: u32,
    /// Timestamp units per second.
    units_per_s: u64,
    offset_s: i64,
}

/// Streaming reader over one capture file.
pub struct CaptureFile {
    path: PathBuf,
    src: Box<dyn Read + Send>,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    /// File offset of `buf[0]` (of the decompressed stream for gzip).
    base: u64,
    eof: bool,
    format: Format,
    interfaces: Vec<Interface>,
    /// What the reader noticed (a cut, bad timestamps).
    pub notes: ReaderNotes,
}

impl std::fmt::Debug for CaptureFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureFile")
            .field("path", &self.path)
            .field("format", &self.format)
            .finish()
    }
}

const PCAP_MAGIC_US: u32 = 0xA1B2_C3D4;
const PCAP_MAGIC_NS: u32 = 0xA1B2_3C4D;
const PCAPNG_SHB: u32 = 0x0A0D_0D0A;
const PCAPNG_BOM: u32 = 0x1A2B_3C4D;

impl CaptureFile {
    /// Open a file; gzip is detected by its magic bytes, not by the name.
    pub fn open(path: &Path) -> Result<Self, FileError> {
        // `-` is standard input. Everything is opened once; a regular file's first
        // bytes are peeked in place (pread), a pipe's are read and put back in
        // front, so pipes and FIFOs (`cat F | netforecast extract -`) work too.
        let open_err = |source| FileError::Open {
            path: path.to_owned(),
            source,
        };
        let read_err = |source| FileError::Read {
            path: path.to_owned(),
            source,
        };
        let mut magic = [0u8; 2];
        let (f, n): (Box<dyn Read + Send>, usize) = if path == Path::new("-") {
            let mut f = io::stdin();
            let n = read_full(&mut f, &mut magic).map_err(read_err)?;
            (Box::new(io::Cursor::new(magic[..n].to_vec()).chain(f)), n)
        } else {
            let mut f = File::open(path).map_err(open_err)?;
            use std::os::unix::fs::FileExt;
            match f.read_at(&mut magic, 0) {
                // Reads stay aligned as they were: the file is read from its start.
                Ok(n) if n == 2 || f.metadata().is_ok_and(|m| m.len() == n as u64) => {
                    (Box::new(f), n)
                }
                _ => {
                    let n = read_full(&mut f, &mut magic).map_err(read_err)?;
                    (Box::new(io::Cursor::new(magic[..n].to_vec()).chain(f)), n)
                }
            }
        };
        let src: Box<dyn Read + Send> = if n == 2 && magic == [0x1F, 0x8B] {
            Box::new(
                InflateAhead::spawn(Box::new(flate2::read::MultiGzDecoder::new(
                    io::BufReader::with_capacity(1 << 16, f),
                )))
                .map_err(read_err)?,
            )
        } else {
            f
        };
        Self::from_reader(path, src)
    }

    /// Whether `path` can be opened twice to the same effect (a regular file),
    /// so it may be checked before the real read; pipes, FIFOs and `-` may not.
    pub fn can_check_first(path: &Path) -> bool {
        path != Path::new("-") && std::fs::metadata(path).map(|m| m.is_file()).unwrap_or(true)
    }

    /// Read from any byte stream (tests, pipes). `path` names it in errors.
    pub fn from_reader(path: &Path, src: Box<dyn Read + Send>) -> Result<Self, FileError> {
        let mut cf = CaptureFile {
            path: path.to_owned(),
            src,
            buf: vec![0; READ_CHUNK],
            pos: 0,
            end: 0,
            base: 0,
            eof: false,
            format: Format::Pcapng { big_endian: false },
            interfaces: Vec::new(),
            notes: ReaderNotes::default(),
        };
        cf.fill(24)?;
        let avail = cf.end - cf.pos;
        if avail < 4 {
            return Err(cf.unknown_format());
        }
        let m_le = u32::from_le_bytes(cf.buf[0..4].try_into().unwrap_or([0; 4]));
        let m_be = u32::from_be_bytes(cf.buf[0..4].try_into().unwrap_or([0; 4]));
        let pcap = [(m_le, false), (m_be, true)]
            .into_iter()
            .find(|(m, _)| *m == PCAP_MAGIC_US || *m == PCAP_MAGIC_NS);
        if let Some((m, be)) = pcap {
            if avail < 24 {
                return Err(cf.corrupt(0, "pcap file header is cut short"));
            }
            let rd = |b: &[u8]| -> u32 {
                let a: [u8; 4] = b.try_into().unwrap_or([0; 4]);
                if be {
                    u32::from_be_bytes(a)
                } else {
                    u32::from_le_bytes(a)
                }
            };
            // Link type in the low 16 bits; the upper bits carry FCS information.
            let linktype = rd(&cf.buf[20..24]) & 0xFFFF;
            cf.format = Format::Pcap {
                swapped: be,
                nanos: m == PCAP_MAGIC_NS,
                linktype,
            };
            cf.pos = 24;
            return Ok(cf);
        }
        if m_le == PCAPNG_SHB {
            // The section header is read as the first block.
            cf.format = Format::Pcapng { big_endian: false };
            cf.read_shb()?;
            return Ok(cf);
        }
        if matches!(m_le, 1..=6) || matches!(m_be, 1..=6) {
            return Err(cf.corrupt(
                0,
                "it starts with a pcapng block but no section header: the file is a fragment or was cut at the start",
            ));
        }
        Err(cf.unknown_format())
    }

    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Link types of the interfaces seen so far (one for classic pcap).
    pub fn linktypes(&self) -> Vec<u32> {
        match self.format {
            Format::Pcap { linktype, .. } => vec![linktype],
            Format::Pcapng { .. } => self.interfaces.iter().map(|i| i.linktype).collect(),
        }
    }

    fn unknown_format(&self) -> FileError {
        let n = (self.end - self.pos).min(8);
        let magic = self.buf[self.pos..self.pos + n]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" ");
        FileError::UnknownFormat {
            path: self.path.clone(),
            magic: if magic.is_empty() {
                "none: the file is empty".into()
            } else {
                magic
            },
        }
    }

    fn corrupt(&self, at: usize, detail: impl Into<String>) -> FileError {
        FileError::Corrupt {
            path: self.path.clone(),
            offset: self.base + at as u64,
            detail: detail.into(),
        }
    }

    /// Make at least `n` bytes available from `pos`, unless the file ends first.
    fn fill(&mut self, n: usize) -> Result<(), FileError> {
        if self.end - self.pos >= n || self.eof {
            return Ok(());
        }
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.base += self.pos as u64;
            self.end -= self.pos;
            self.pos = 0;
        }
        if self.buf.len() < n {
            self.buf.resize(n.next_power_of_two(), 0);
        }
        while self.end < n {
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(k) => self.end += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if e.kind() == io::ErrorKind::InvalidInput
                        || e.kind() == io::ErrorKind::InvalidData =>
                {
                    // flate2 reports a damaged gzip stream this way.
                    return Err(self.corrupt(self.end, format!("compressed data is damaged: {e}")));
                }
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    self.eof = true;
                    break;
                }
                Err(source) => {
                    return Err(FileError::Read {
                        path: self.path.clone(),
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    /// Next record, or `None` at the end of the file. A record cut short by the
    /// end of the file ends the stream and is noted in [`ReaderNotes::cut_short_at`].
    #[inline]
    pub fn next_record(&mut self) -> Result<Option<Record<'_>>, FileError> {
        match self.format {
            Format::Pcap {
                swapped,
                nanos,
                linktype,
            } => self.next_pcap(swapped, nanos, linktype),
            Format::Pcapng { .. } => self.next_pcapng(),
        }
    }

    fn next_pcap(
        &mut self,
        swapped: bool,
        nanos: bool,
        linktype: u32,
    ) -> Result<Option<Record<'_>>, FileError> {
        self.fill(16)?;
        let avail = self.end - self.pos;
        if avail == 0 {
            return Ok(None);
        }
        if avail < 16 {
            self.notes.cut_short_at = Some(self.base + self.pos as u64);
            return Ok(None);
        }
        let h = &self.buf[self.pos..self.pos + 16];
        let rd = |i: usize| -> u32 {
            let a = [h[i], h[i + 1], h[i + 2], h[i + 3]];
            if swapped {
                u32::from_be_bytes(a)
            } else {
                u32::from_le_bytes(a)
            }
        };
        let (sec, frac, incl, orig) = (rd(0), rd(4), rd(8) as usize, rd(12));
        if incl > MAX_RECORD_BYTES {
            return Err(self.corrupt(
                self.pos + 8,
                format!("record claims {incl} captured bytes (more than {MAX_RECORD_BYTES})"),
            ));
        }
        self.fill(16 + incl)?;
        if self.end - self.pos < 16 + incl {
            self.notes.cut_short_at = Some(self.base + self.pos as u64);
            return Ok(None);
        }
        let frac_ns = if nanos {
            if frac >= 1_000_000_000 {
                self.notes.invalid_timestamps += 1;
            }
            frac
        } else {
            if frac >= 1_000_000 {
                self.notes.invalid_timestamps += 1;
            }
            // wiretap multiplies in 32 bits; keep its result so tshark agrees.
            frac.wrapping_mul(1000)
        };
        let ts_ns = sec as i64 * 1_000_000_000 + frac_ns as i64;
        let start = self.pos + 16;
        self.pos = start + incl;
        Ok(Some(Record {
            ts_ns: Some(ts_ns),
            linktype,
            orig_len: orig.max(incl as u32),
            data: &self.buf[start..start + incl],
            interface: 0,
        }))
    }

    fn rd32(&self, at: usize) -> u32 {
        let a = [
            self.buf[at],
            self.buf[at + 1],
            self.buf[at + 2],
            self.buf[at + 3],
        ];
        match self.format {
            Format::Pcapng { big_endian: true } => u32::from_be_bytes(a),
            _ => u32::from_le_bytes(a),
        }
    }

    fn rd16(&self, at: usize) -> u16 {
        let a = [self.buf[at], self.buf[at + 1]];
        match self.format {
            Format::Pcapng { big_endian: true } => u16::from_be_bytes(a),
            _ => u16::from_le_bytes(a),
        }
    }

    /// Read a section header block at `pos`; sets the byte order for the section.
    fn read_shb(&mut self) -> Result<(), FileError> {
        self.fill(28)?;
        if self.end - self.pos < 28 {
            return Err(self.corrupt(self.pos, "pcapng section header is cut short"));
        }
        let bom = &self.buf[self.pos + 8..self.pos + 12];
        let big_endian = if u32::from_le_bytes(bom.try_into().unwrap_or([0; 4])) == PCAPNG_BOM {
            false
        } else if u32::from_be_bytes(bom.try_into().unwrap_or([0; 4])) == PCAPNG_BOM {
            true
        } else {
            return Err(self.corrupt(self.pos + 8, "pcapng byte-order magic is wrong"));
        };
        self.format = Format::Pcapng { big_endian };
        let len = self.rd32(self.pos + 4) as usize;
        if !(28..=MAX_RECORD_BYTES).contains(&len) || !len.is_multiple_of(4) {
            return Err(self.corrupt(
                self.pos + 4,
                format!("section header length {len} is invalid"),
            ));
        }
        self.fill(len)?;
        if self.end - self.pos < len {
            return Err(self.corrupt(self.pos, "pcapng section header is cut short"));
        }
        self.interfaces.clear();
        self.pos += len;
        Ok(())
    }

    fn next_pcapng(&mut self) -> Result<Option<Record<'_>>, FileError> {
        loop {
            self.fill(12)?;
            let avail = self.end - self.pos;
            if avail == 0 {
                return Ok(None);
            }
            if avail < 12 {
                self.notes.cut_short_at = Some(self.base + self.pos as u64);
                return Ok(None);
            }
            let raw_type = u32::from_le_bytes(
                self.buf[self.pos..self.pos + 4]
                    .try_into()
                    .unwrap_or([0; 4]),
            );
            if raw_type == PCAPNG_SHB {
                self.read_shb()?;
                continue;
            }
            let btype = self.rd32(self.pos);
            let len = self.rd32(self.pos + 4) as usize;
            if len < 12 || !len.is_multiple_of(4) || len > MAX_RECORD_BYTES {
                return Err(self.corrupt(self.pos + 4, format!("block length {len} is invalid")));
            }
            self.fill(len)?;
            if self.end - self.pos < len {
                self.notes.cut_short_at = Some(self.base + self.pos as u64);
                return Ok(None);
            }
            let b = self.pos;
            if self.rd32(b + len - 4) as usize != len {
                return Err(self.corrupt(
                    b + len - 4,
                    "block trailer length does not match its header",
                ));
            }
            self.pos += len;
            match btype {
                // Interface description block.
                1 => {
                    if len < 20 {
                        return Err(self.corrupt(b, "interface block is too short"));
                    }
                    let linktype = self.rd16(b + 8) as u32;
                    let snaplen = self.rd32(b + 12);
                    let mut iface = Interface {
                        linktype,
                        snaplen,
                        units_per_s: 1_000_000,
                        offset_s: 0,
                    };
                    self.read_idb_options(b + 16, b + len - 4, &mut iface);
                    self.interfaces.push(iface);
                }
                // Enhanced packet block.
                6 => {
                    if len < 32 {
                        return Err(self.corrupt(b, "enhanced packet block is too short"));
                    }
                    let ifid = self.rd32(b + 8);
                    let ts = ((self.rd32(b + 12) as u64) << 32) | self.rd32(b + 16) as u64;
                    let cap = self.rd32(b + 20) as usize;
                    let orig = self.rd32(b + 24);
                    return self.packet(b, len, ifid, Some(ts), 28, cap, orig);
                }
                // Obsolete packet block.
                2 => {
                    if len < 32 {
                        return Err(self.corrupt(b, "packet block is too short"));
                    }
                    let ifid = self.rd16(b + 8) as u32;
                    let ts = ((self.rd32(b + 12) as u64) << 32) | self.rd32(b + 16) as u64;
                    let cap = self.rd32(b + 20) as usize;
                    let orig = self.rd32(b + 24);
                    return self.packet(b, len, ifid, Some(ts), 28, cap, orig);
                }
                // Simple packet block: no timestamp, interface 0.
                3 => {
                    if len < 16 {
                        return Err(self.corrupt(b, "simple packet block is too short"));
                    }
                    let orig = self.rd32(b + 8);
                    let snap = self.interfaces.first().map(|i| i.snaplen).unwrap_or(0);
                    let mut cap = (len - 16).min(orig as usize);
                    if snap > 0 {
                        cap = cap.min(snap as usize);
                    }
                    return self.packet(b, len, 0, None, 12, cap, orig);
                }
                _ => self.notes.other_blocks += 1,
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn packet(
        &mut self,
        b: usize,
        len: usize,
        ifid: u32,
        ts: Option<u64>,
        data_off: usize,
        cap: usize,
        orig: u32,
    ) -> Result<Option<Record<'_>>, FileError> {
        if data_off + cap + 4 > len {
            return Err(self.corrupt(
                b,
                format!(
                    "packet claims {cap} captured bytes but its block holds {}",
                    len - data_off - 4
                ),
            ));
        }
        let Some(iface) = self.interfaces.get(ifid as usize) else {
            return Err(self.corrupt(
                b,
                format!("packet names interface {ifid}, which was never described"),
            ));
        };
        let ts_ns = ts.map(|t| {
            let ns = (t as u128 * 1_000_000_000) / iface.units_per_s as u128;
            (ns as i64).wrapping_add(iface.offset_s.wrapping_mul(1_000_000_000))
        });
        Ok(Some(Record {
            ts_ns,
            linktype: iface.linktype,
            orig_len: orig.max(cap as u32),
            data: &self.buf[b + data_off..b + data_off + cap],
            interface: ifid,
        }))
    }

    fn read_idb_options(&self, mut at: usize, end: usize, iface: &mut Interface) {
        while at + 4 <= end {
            let code = self.rd16(at);
            let olen = self.rd16(at + 2) as usize;
            let val = at + 4;
            if code == 0 || val + olen > end {
                break;
            }
            match (code, olen) {
                // if_tsresol: power of 10, or of 2 when the high bit is set.
                (9, 1) => {
                    let v = self.buf[val];
                    let units = if v & 0x80 != 0 {
                        1u64.checked_shl((v & 0x7F) as u32)
                    } else {
                        10u64.checked_pow(v as u32)
                    };
                    if let Some(u) = units.filter(|u| *u > 0) {
                        iface.units_per_s = u;
                    }
                }
                // if_tsoffset: seconds added to every timestamp.
                (14, 8) => {
                    let lo = self.rd32(val) as u64;
                    let hi = self.rd32(val + 4) as u64;
                    let v = match self.format {
                        Format::Pcapng { big_endian: true } => (lo << 32) | hi,
                        _ => (hi << 32) | lo,
                    };
                    iface.offset_s = v as i64;
                }
                _ => {}
            }
            at = val + olen.div_ceil(4) * 4;
        }
    }
}

/// Inflates a gzip stream on its own thread, a few chunks ahead of the parser,
/// so decompression and TCP analysis overlap on two cores instead of adding up.
/// Bytes come out in order; an error comes out after every byte read before it.
struct InflateAhead {
    rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
    done: bool,
}

/// Bytes per chunk handed from the inflating thread.
const INFLATE_CHUNK: usize = 1 << 18;

impl InflateAhead {
    /// `src` read on a thread of its own.
    fn spawn(mut src: Box<dyn Read + Send>) -> io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<io::Result<Vec<u8>>>(4);
        std::thread::Builder::new()
            .name("inflate".into())
            .spawn(move || {
                loop {
                    let mut buf = vec![0u8; INFLATE_CHUNK];
                    let (n, failed) = fill(&mut src, &mut buf);
                    buf.truncate(n);
                    // The reader went away (it stopped early): stop inflating.
                    if n > 0 && tx.send(Ok(buf)).is_err() {
                        return;
                    }
                    if let Some(e) = failed {
                        let _ = tx.send(Err(e));
                        return;
                    }
                    if n < INFLATE_CHUNK {
                        return;
                    }
                }
            })?;
        Ok(InflateAhead {
            rx,
            cur: Vec::new(),
            pos: 0,
            done: false,
        })
    }
}

impl Read for InflateAhead {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(b)) => {
                    self.cur = b;
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => {
                    self.done = true;
                    return Ok(0);
                }
            }
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Read until `buf` is full or the stream ends; the bytes read, and the error
/// that stopped it early, if one did.
fn fill(r: &mut impl Read, buf: &mut [u8]) -> (usize, Option<io::Error>) {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (n, Some(e)),
        }
    }
    (n, None)
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    match fill(r, buf) {
        (n, None) => Ok(n),
        (_, Some(e)) => Err(e),
    }
}

/// Writes classic pcap files (nanosecond magic). Used for the project's own
/// fixtures and tests; small and dependency-free.
pub struct PcapWriter<W: io::Write> {
    out: W,
}

impl<W: io::Write> PcapWriter<W> {
    /// Write the file header.
    pub fn new(mut out: W, linktype: u32, snaplen: u32) -> io::Result<Self> {
        out.write_all(&PCAP_MAGIC_NS.to_le_bytes())?;
        out.write_all(&2u16.to_le_bytes())?;
        out.write_all(&4u16.to_le_bytes())?;
        out.write_all(&0i32.to_le_bytes())?;
        out.write_all(&0u32.to_le_bytes())?;
        out.write_all(&snaplen.to_le_bytes())?;
        out.write_all(&linktype.to_le_bytes())?;
        Ok(PcapWriter { out })
    }

    /// Write one record; `ts_ns` must be non-negative.
    pub fn write(&mut self, ts_ns: i64, data: &[u8], orig_len: u32) -> io::Result<()> {
        let sec = (ts_ns.div_euclid(1_000_000_000)) as u32;
        let ns = (ts_ns.rem_euclid(1_000_000_000)) as u32;
        self.out.write_all(&sec.to_le_bytes())?;
        self.out.write_all(&ns.to_le_bytes())?;
        self.out.write_all(&(data.len() as u32).to_le_bytes())?;
        self.out.write_all(&orig_len.to_le_bytes())?;
        self.out.write_all(data)
    }

    /// The underlying writer.
    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(bytes: Vec<u8>) -> Result<CaptureFile, FileError> {
        CaptureFile::from_reader(Path::new("mem"), Box::new(io::Cursor::new(bytes)))
    }

    #[test]
    fn pcap_roundtrip_nanoseconds() {
        let mut w = PcapWriter::new(Vec::new(), 1, 65535).unwrap();
        w.write(1_700_000_000_123_456_789, &[1, 2, 3], 60).unwrap();
        w.write(1_700_000_001_000_000_000, &[4], 4).unwrap();
        let mut r = reader(w.into_inner()).unwrap();
        let a = r.next_record().unwrap().unwrap();
        assert_eq!(a.ts_ns, Some(1_700_000_000_123_456_789));
        assert_eq!(a.orig_len, 60);
        assert_eq!(a.data, &[1, 2, 3]);
        assert!(r.next_record().unwrap().is_some());
        assert!(r.next_record().unwrap().is_none());
        assert!(r.notes.cut_short_at.is_none());
    }

    #[test]
    fn gzip_is_inflated_ahead_in_order_and_damage_is_reported_after_the_good_part() {
        use std::io::Write as _;
        // 40,000 records of 100 bytes: about 4.6 MB, many inflate chunks.
        let mut w = PcapWriter::new(Vec::new(), 1, 65535).unwrap();
        for i in 0..40_000u32 {
            let mut d = [0u8; 100];
            d[..4].copy_from_slice(&i.to_le_bytes());
            w.write(i as i64 * 1000, &d, 100).unwrap();
        }
        let plain = w.into_inner();
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&plain).unwrap();
        let gz = e.finish().unwrap();
        let dir = std::env::temp_dir().join(format!("nf-inflate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.pcap.gz");
        std::fs::write(&path, &gz).unwrap();
        let mut r = CaptureFile::open(&path).unwrap();
        let mut i = 0u32;
        while let Some(rec) = r.next_record().unwrap() {
            assert_eq!(rec.data[..4], i.to_le_bytes(), "record {i} in order");
            i += 1;
        }
        assert_eq!(i, 40_000);
        // Damage in the middle of the compressed stream: the records before it
        // come out, then one clear error (not a silent end).
        let mut bad = gz.clone();
        let mid = bad.len() / 2;
        for b in &mut bad[mid..mid + 64] {
            *b ^= 0x5A;
        }
        std::fs::write(&path, &bad).unwrap();
        let mut r = CaptureFile::open(&path).unwrap();
        let mut good = 0;
        let err = loop {
            match r.next_record() {
                Ok(Some(_)) => good += 1,
                Ok(None) => panic!("damage went unnoticed after {good} records"),
                Err(e) => break e,
            }
        };
        assert!(good > 1000, "{good}");
        assert!(
            err.to_string().contains("damaged") || err.to_string().contains("corrupt"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn record_cut_short_is_noted_not_delivered() {
        let mut w = PcapWriter::new(Vec::new(), 1, 65535).unwrap();
        w.write(5, &[1; 40], 40).unwrap();
        w.write(6, &[1; 40], 40).unwrap();
        let mut b = w.into_inner();
        b.truncate(b.len() - 3);
        let mut r = reader(b).unwrap();
        assert!(r.next_record().unwrap().is_some());
        assert!(r.next_record().unwrap().is_none());
        assert_eq!(r.notes.cut_short_at, Some(24 + 56));
    }

    #[test]
    fn garbage_is_an_unknown_format() {
        assert!(matches!(
            reader(b"hello world, not a capture".to_vec()),
            Err(FileError::UnknownFormat { .. })
        ));
        assert!(matches!(
            reader(Vec::new()),
            Err(FileError::UnknownFormat { .. })
        ));
    }

    /// A big-endian pcapng section with two interfaces of different link types,
    /// the second with nanosecond resolution.
    #[test]
    fn pcapng_big_endian_two_link_types_nanoseconds() {
        fn block(t: u32, body: &[u8]) -> Vec<u8> {
            let len = (12 + body.len()) as u32;
            let mut b = t.to_be_bytes().to_vec();
            b.extend_from_slice(&len.to_be_bytes());
            b.extend_from_slice(body);
            b.extend_from_slice(&len.to_be_bytes());
            b
        }
        let mut f = block(
            PCAPNG_SHB,
            &[
                0x1A, 0x2B, 0x3C, 0x4D, 0, 1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            ],
        );
        f.extend(block(1, &[0, 1, 0, 0, 0, 0, 0, 0]));
        // if_tsresol = 9 (nanoseconds), then end of options.
        f.extend(block(
            1,
            &[0, 113, 0, 0, 0, 0, 0, 0, 0, 9, 0, 1, 9, 0, 0, 0, 0, 0, 0, 0],
        ));
        let epb = |ifid: u32, ts: u64| {
            let mut b = ifid.to_be_bytes().to_vec();
            b.extend_from_slice(&((ts >> 32) as u32).to_be_bytes());
            b.extend_from_slice(&(ts as u32).to_be_bytes());
            b.extend_from_slice(&4u32.to_be_bytes());
            b.extend_from_slice(&60u32.to_be_bytes());
            b.extend_from_slice(&[1, 2, 3, 4]);
            block(6, &b)
        };
        f.extend(epb(0, 1_700_000_000_000_001));
        f.extend(epb(1, 1_700_000_000_000_000_007));
        let mut r = reader(f).unwrap();
        let a = r.next_record().unwrap().unwrap();
        assert_eq!(
            (a.linktype, a.ts_ns, a.orig_len),
            (1, Some(1_700_000_000_000_001_000), 60)
        );
        let b = r.next_record().unwrap().unwrap();
        assert_eq!(
            (b.linktype, b.ts_ns, b.interface),
            (113, Some(1_700_000_000_000_000_007), 1)
        );
        assert!(r.next_record().unwrap().is_none());
    }

    #[test]
    fn absurd_record_length_is_corrupt() {
        let mut b = PcapWriter::new(Vec::new(), 1, 65535).unwrap().into_inner();
        b.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0]);
        let mut r = reader(b).unwrap();
        assert!(matches!(r.next_record(), Err(FileError::Corrupt { .. })));
    }
}
