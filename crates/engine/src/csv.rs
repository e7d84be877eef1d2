//! The engine's files (INTERFACE.md "Files"): the features CSV in both
//! directions, the per-packet analysis CSV for the tshark oracle, exact epoch
//! timestamps, and a plain CSV writer (a file or standard output).
//!
//! Owns formatting, parsing and writing of these files. The predictions CSV
//! belongs to the service's CSV sink.

use crate::forecast::{N_FEATURES, WindowWidth};
use crate::window::{FEATURE_NAMES, NS_PER_S, WindowRow};
use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Header of the features CSV (INTERFACE.md), column order fixed.
pub const FEATURES_HEADER: &str =
    "window_start,size,delay,bif,iat_mean,iat_std,throughput_mbps,delay_grad,bif_grad,is_silent";

/// Errors writing a CSV file.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The file cannot be created.
    #[error("cannot create {path}: {source}; check the directory exists and is writable")]
    Create {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// Writing failed.
    #[error("cannot write {what}: {source}")]
    Write {
        /// The file, or "standard output".
        what: String,
        /// What the OS said.
        source: io::Error,
    },
}

/// `window_start` as Unix seconds with 9 decimals, exact (no float rounding).
pub fn format_epoch_ns(ns: i64, out: &mut String) {
    if ns < 0 {
        out.push('-');
    }
    let a = ns.unsigned_abs();
    push_u64(out, a / NS_PER_S as u64);
    push_frac(out, a % NS_PER_S as u64);
}

/// Two decimal digits of every number below 100.
const PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// `.` and the nine digits of `frac` nanoseconds.
fn push_frac(out: &mut String, frac: u64) {
    push_ascii(out, &frac_digits(frac));
}

/// `.` and the nine digits of `frac` nanoseconds.
fn frac_digits(frac: u64) -> [u8; 10] {
    let mut buf = [b'.', 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let mut f = frac as usize;
    for i in (0..4).rev() {
        let p = f % 100 * 2;
        buf[2 + i * 2] = PAIRS[p];
        buf[3 + i * 2] = PAIRS[p + 1];
        f /= 100;
    }
    buf[1] = b'0' + f as u8;
    buf
}

/// Append ASCII bytes (digits and punctuation) to `out`.
fn push_ascii(out: &mut String, bytes: &[u8]) {
    debug_assert!(bytes.is_ascii());
    // SAFETY: every caller passes ASCII digits and punctuation (PAIRS, b'0' +
    // a digit, b'.'), which are valid UTF-8 one byte at a time.
    unsafe { out.as_mut_vec() }.extend_from_slice(bytes);
}

/// Decimal digits of `v`, as `Display` writes them (without its machinery).
fn push_u64(out: &mut String, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    while v >= 100 {
        let p = (v % 100) as usize * 2;
        i -= 2;
        buf[i] = PAIRS[p];
        buf[i + 1] = PAIRS[p + 1];
        v /= 100;
    }
    if v >= 10 {
        let p = v as usize * 2;
        i -= 2;
        buf[i] = PAIRS[p];
        buf[i + 1] = PAIRS[p + 1];
    } else {
        i -= 1;
        buf[i] = b'0' + v as u8;
    }
    push_ascii(out, &buf[i..]);
}

fn push_i64(out: &mut String, v: i64) {
    if v < 0 {
        out.push('-');
    }
    push_u64(out, v.unsigned_abs());
}

/// `Display` of `v`; the zero of silent windows without the float formatter.
fn push_f64(out: &mut String, v: f64) {
    if v.to_bits() == 0 {
        out.push('0');
    } else {
        let _ = write!(out, "{v}");
    }
}

/// The proleptic Gregorian (year, month, day) of a day number counted from
/// 1970-01-01 (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m as u32, d as u32)
}

/// Time of day (UTC) of an epoch timestamp, `HH:MM:SS.mmm`, for status lines.
pub fn hms(ns: i64) -> String {
    let ms = ns.div_euclid(1_000_000);
    let s = ms.div_euclid(1000);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        (s / 3600) % 24,
        (s / 60) % 60,
        s % 60,
        ms % 1000
    )
}

/// Append one CSV line (with newline) for `r`.
pub fn format_features_row(r: &WindowRow, out: &mut String) {
    format_epoch_ns(r.start_ns, out);
    format_features_rest(r, out);
}

/// Everything of `r`'s line after `window_start`, newline included.
fn format_features_rest(r: &WindowRow, out: &mut String) {
    out.push(',');
    push_u64(out, r.size_bytes);
    out.push(',');
    push_f64(out, r.delay_s);
    out.push(',');
    push_u64(out, r.bif_bytes);
    for v in [r.iat_mean_s, r.iat_std_s, r.throughput_mbps, r.delay_grad_s] {
        out.push(',');
        push_f64(out, v);
    }
    out.push(',');
    push_i64(out, r.bif_grad_bytes);
    out.push_str(if r.is_silent { ",1\n" } else { ",0\n" });
}

/// Whether two rows' lines are the same after `window_start` (a run of silent
/// windows that carry the same delay and bytes in flight), bit for bit:
/// field by field, the cheap ones first (two 72-byte keys compared through
/// memcmp were 13 % of a sparse capture's engine thread).
pub fn same_after_start(a: &WindowRow, b: &WindowRow) -> bool {
    a.is_silent == b.is_silent
        && a.size_bytes == b.size_bytes
        && a.bif_bytes == b.bif_bytes
        && a.bif_grad_bytes == b.bif_grad_bytes
        && a.delay_s.to_bits() == b.delay_s.to_bits()
        && a.throughput_mbps.to_bits() == b.throughput_mbps.to_bits()
        && a.iat_mean_s.to_bits() == b.iat_mean_s.to_bits()
        && a.iat_std_s.to_bits() == b.iat_std_s.to_bits()
        && a.delay_grad_s.to_bits() == b.delay_grad_s.to_bits()
}

/// Header of the per-packet analysis CSV (`extract --packets-out`): one row per
/// counted packet, `frame` numbered from 1 over all records of the file as tshark
/// numbers them, empty fields where there is no sample.
/// The last three are tshark's expert flags as 0/1 (see [`crate::flow::flags`]).
pub const PACKETS_HEADER: &str = "frame,time_epoch,frame_len,payload_len,ack_rtt,bytes_in_flight,retransmission,duplicate_ack,zero_window";

/// Append one per-packet line (with newline).
pub fn format_packet_row(
    frame: u64,
    p: &crate::capture::PacketSummary,
    a: &crate::flow::Analysis,
    out: &mut String,
) {
    let _ = write!(out, "{frame},");
    format_epoch_ns(p.ts_ns, out);
    let _ = write!(out, ",{},{},", p.frame_len_bytes, p.payload_len_bytes);
    if let Some(r) = a.ack_rtt_ns {
        format_epoch_ns(r, out);
    }
    out.push(',');
    if let Some(b) = a.bytes_in_flight {
        let _ = write!(out, "{b}");
    }
    use crate::flow::flags;
    for f in [
        flags::RETRANSMISSION,
        flags::DUPLICATE_ACK,
        flags::ZERO_WINDOW,
    ] {
        out.push_str(if a.flags & f != 0 { ",1" } else { ",0" });
    }
    out.push('\n');
}

/// A plain line-oriented CSV file (or standard output) with a header.
pub struct CsvFile {
    /// The buffer outside the box, so a line is a copy into it, not a call
    /// through the box.
    out: io::BufWriter<Box<dyn Write + Send>>,
    what: String,
}

impl CsvFile {
    /// Create `path` (`-`: standard output) and write `header`.
    pub fn create(path: &Path, header: &str) -> Result<Self, SinkError> {
        let (out, what): (Box<dyn Write + Send>, String) = if path == Path::new("-") {
            (Box::new(io::stdout()), "standard output".into())
        } else {
            let f = std::fs::File::create(path).map_err(|source| SinkError::Create {
                path: path.to_owned(),
                source,
            })?;
            (Box::new(f), path.display().to_string())
        };
        let mut c = CsvFile {
            out: io::BufWriter::with_capacity(1 << 16, out),
            what,
        };
        c.write_line(&format!("{header}\n"))?;
        Ok(c)
    }

    /// Write one line (with its newline).
    pub fn write_line(&mut self, line: &str) -> Result<(), SinkError> {
        self.out
            .write_all(line.as_bytes())
            .map_err(|source| SinkError::Write {
                what: self.what.clone(),
                source,
            })
    }

    /// Write one line given in parts (the last ends with the newline).
    pub fn write_parts(&mut self, parts: &[&[u8]]) -> Result<(), SinkError> {
        parts
            .iter()
            .try_for_each(|p| self.out.write_all(p))
            .map_err(|source| SinkError::Write {
                what: self.what.clone(),
                source,
            })
    }

    /// Write out what is buffered.
    pub fn flush(&mut self) -> Result<(), SinkError> {
        self.out.flush().map_err(|source| SinkError::Write {
            what: self.what.clone(),
            source,
        })
    }
}

/// Writes the features CSV to a file or standard output.
pub struct FeaturesCsv {
    file: CsvFile,
    line: String,
    /// The previous row's line after `window_start`, and the row it says.
    rest: String,
    rest_of: Option<WindowRow>,
    /// The whole seconds of the previous row's start, and their digits (20
    /// windows of 50 ms share them).
    secs: Option<i64>,
    secs_text: String,
    /// Flush after every row (live streaming), not only at the end.
    flush_each: bool,
    /// Rows written.
    pub rows: u64,
}

impl FeaturesCsv {
    /// `path` "-" means standard output.
    pub fn create(path: &Path, flush_each: bool) -> Result<Self, SinkError> {
        Ok(FeaturesCsv {
            file: CsvFile::create(path, FEATURES_HEADER)?,
            line: String::with_capacity(256),
            rest: String::with_capacity(256),
            rest_of: None,
            secs: None,
            secs_text: String::with_capacity(24),
            flush_each,
            rows: 0,
        })
    }

    /// Write one window.
    pub fn write(&mut self, r: &WindowRow) -> Result<(), SinkError> {
        if !self.rest_of.is_some_and(|p| same_after_start(&p, r)) {
            self.rest.clear();
            format_features_rest(r, &mut self.rest);
            self.rest_of = Some(*r);
        }
        self.write_start(r.start_ns)
    }

    /// Write `n` rows: `r`, then `r` again at `step_ns` after the one before
    /// (a run of silent windows, from [`same_after_start`]).
    pub fn write_repeated(&mut self, r: &WindowRow, n: u32, step_ns: i64) -> Result<(), SinkError> {
        if n == 0 {
            return Ok(());
        }
        self.write(r)?;
        let mut start = r.start_ns;
        for _ in 1..n {
            start = start.wrapping_add(step_ns);
            self.write_start(start)?;
        }
        Ok(())
    }

    /// Write one row whose line after `window_start` is `self.rest`.
    fn write_start(&mut self, start_ns: i64) -> Result<(), SinkError> {
        if start_ns >= 0 {
            let secs = start_ns / NS_PER_S;
            if self.secs != Some(secs) {
                self.secs_text.clear();
                push_u64(&mut self.secs_text, secs as u64);
                self.secs = Some(secs);
            }
            // Straight into the file's buffer: a line assembled first was one
            // more copy of every row (a tenth of a sparse capture's time).
            let frac = frac_digits((start_ns % NS_PER_S) as u64);
            self.file
                .write_parts(&[self.secs_text.as_bytes(), &frac, self.rest.as_bytes()])?;
        } else {
            self.line.clear();
            format_epoch_ns(start_ns, &mut self.line);
            self.line.push_str(&self.rest);
            self.file.write_line(&self.line)?;
        }
        self.rows += 1;
        if self.flush_each {
            self.flush()?;
        }
        Ok(())
    }

    /// Write out what is buffered.
    pub fn flush(&mut self) -> Result<(), SinkError> {
        self.file.flush()
    }
}

/// Errors reading a features CSV.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be read.
    #[error("cannot read {path}: {detail}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        detail: String,
    },
    /// A line is not a features row.
    #[error("{path} line {line}: {detail}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Line number, from 1 (the header).
        line: usize,
        /// What is wrong with it.
        detail: String,
    },
}

/// One capture's windows, split into runs of contiguous windows.
#[derive(Clone, Debug)]
pub struct FeaturesCapture {
    /// File name of the CSV.
    pub name: String,
    /// Runs of contiguous windows, each window's nine features in FEATURES.md order.
    pub segments: Vec<Vec<[f32; N_FEATURES]>>,
}

/// Read a features CSV written by `extract` (the INTERFACE.md header is checked).
pub fn read_features_csv(path: &Path, width: WindowWidth) -> Result<FeaturesCapture, ReadError> {
    let read = || -> std::io::Result<String> {
        let mut f = std::fs::File::open(path)?;
        let mut text = String::new();
        // A committed corpus keeps its features gzip-compressed (`NAME.csv.gz`).
        if path.extension().is_some_and(|e| e == "gz") {
            std::io::Read::read_to_string(&mut flate2::read::MultiGzDecoder::new(f), &mut text)?;
        } else {
            std::io::Read::read_to_string(&mut f, &mut text)?;
        }
        Ok(text)
    };
    let text = read().map_err(|e| ReadError::Read {
        path: path.to_owned(),
        detail: e.to_string(),
    })?;
    let mut lines = text.lines();
    if lines.next().map(str::trim) != Some(FEATURES_HEADER) {
        return Err(ReadError::Parse {
            path: path.to_owned(),
            line: 1,
            detail: format!(
                "expected the features header {FEATURES_HEADER}; make it with `netforecast extract`"
            ),
        });
    }
    let w_ns = width.ns();
    let mut segments: Vec<Vec<[f32; N_FEATURES]>> = Vec::new();
    let mut last_start: Option<i64> = None;
    for (i, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut it = line.split(',');
        let start = it
            .next()
            .and_then(parse_epoch_ns)
            .ok_or_else(|| ReadError::Parse {
                path: path.to_owned(),
                line: i + 2,
                detail: "window_start is not seconds.nanoseconds".into(),
            })?;
        let mut v = [0f32; N_FEATURES];
        for (k, slot) in v.iter_mut().enumerate() {
            let x: f64 = it
                .next()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| ReadError::Parse {
                    path: path.to_owned(),
                    line: i + 2,
                    detail: format!(
                        "column {} ({}) is missing or not a number",
                        k + 2,
                        FEATURE_NAMES[k]
                    ),
                })?;
            if !x.is_finite() {
                return Err(ReadError::Parse {
                    path: path.to_owned(),
                    line: i + 2,
                    detail: format!("{} is {x}", FEATURE_NAMES[k]),
                });
            }
            *slot = x as f32;
        }
        if last_start.is_none_or(|l| start - l != w_ns) {
            segments.push(Vec::new());
        }
        last_start = Some(start);
        if let Some(s) = segments.last_mut() {
            s.push(v);
        }
    }
    Ok(FeaturesCapture {
        name: path
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        segments,
    })
}

/// Parse `window_start` (Unix seconds with up to 9 decimals) exactly.
pub fn parse_epoch_ns(s: &str) -> Option<i64> {
    let (a, b) = s.trim().split_once('.')?;
    let neg = a.starts_with('-');
    let secs: i64 = a.trim_start_matches('-').parse().ok()?;
    let frac = format!("{b:0<9}");
    let ns: i64 = frac.get(..9)?.parse().ok()?;
    let v = secs * 1_000_000_000 + ns;
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The line as `write!` formats it (the formatting before the fast paths).
    fn by_display(r: &WindowRow) -> String {
        let a = r.start_ns.unsigned_abs();
        format!(
            "{}{}.{:09},{},{},{},{},{},{},{},{},{}\n",
            if r.start_ns < 0 { "-" } else { "" },
            a / NS_PER_S as u64,
            a % NS_PER_S as u64,
            r.size_bytes,
            r.delay_s,
            r.bif_bytes,
            r.iat_mean_s,
            r.iat_std_s,
            r.throughput_mbps,
            r.delay_grad_s,
            r.bif_grad_bytes,
            r.is_silent as u8
        )
    }

    fn float() -> impl Strategy<Value = f64> {
        prop_oneof![
            Just(0.0),
            Just(-0.0),
            Just(f64::NAN),
            Just(f64::INFINITY),
            any::<f64>(),
            -1.0f64..1.0,
            0.0f64..1e4,
        ]
    }

    prop_compose! {
        fn window_row()(
            start_ns in any::<i64>(), size_bytes in any::<u64>(), delay_s in float(),
            bif_bytes in prop_oneof![Just(0u64), any::<u64>()], iat_mean_s in float(),
            iat_std_s in float(), throughput_mbps in float(), delay_grad_s in float(),
            bif_grad_bytes in any::<i64>(), is_silent in any::<bool>(),
        ) -> WindowRow {
            WindowRow {
                start_ns, size_bytes, delay_s, bif_bytes, iat_mean_s, iat_std_s,
                throughput_mbps, delay_grad_s, bif_grad_bytes, is_silent, packets: 0,
                tcp: Default::default(),
            }
        }
    }

    proptest! {
        #[test]
        fn rows_read_as_display_writes_them(r in window_row()) {
            let mut s = String::new();
            format_features_row(&r, &mut s);
            prop_assert_eq!(s, by_display(&r));
        }

        /// Through the file writer, whose repeated-row shortcut must not leak
        /// one row's fields into the next.
        #[test]
        fn the_file_has_every_line_as_display_writes_it(
            rows in proptest::collection::vec((window_row(), 0usize..4), 1..20)
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("f.csv");
            let mut f = FeaturesCsv::create(&path, false).unwrap();
            let mut want = format!("{FEATURES_HEADER}\n");
            for (mut r, repeat) in rows {
                for k in 0..=repeat {
                    // Silent windows: only the start moves.
                    r.start_ns = r.start_ns.wrapping_add(k as i64 * 50_000_000);
                    f.write(&r).unwrap();
                    want += &by_display(&r);
                }
            }
            f.flush().unwrap();
            prop_assert_eq!(std::fs::read_to_string(&path).unwrap(), want);
        }
    }

    proptest! {
        /// A run written at once reads as the same rows written one by one,
        /// before and after other rows.
        #[test]
        fn a_repeated_row_is_its_rows_one_by_one(
            before in window_row(), r in window_row(), after in window_row(),
            n in 0u32..40, step_ns in prop_oneof![Just(50_000_000i64), 1i64..1_000_000_000],
        ) {
            let dir = tempfile::tempdir().unwrap();
            let (a, b) = (dir.path().join("a.csv"), dir.path().join("b.csv"));
            let mut fa = FeaturesCsv::create(&a, false).unwrap();
            let mut fb = FeaturesCsv::create(&b, false).unwrap();
            fa.write(&before).unwrap();
            fb.write(&before).unwrap();
            fa.write_repeated(&r, n, step_ns).unwrap();
            let mut each = r;
            for _ in 0..n {
                fb.write(&each).unwrap();
                each.start_ns = each.start_ns.wrapping_add(step_ns);
            }
            fa.write(&after).unwrap();
            fb.write(&after).unwrap();
            fa.flush().unwrap();
            fb.flush().unwrap();
            let (ta, tb) = (std::fs::read_to_string(&a).unwrap(), std::fs::read_to_string(&b).unwrap());
            prop_assert_eq!(ta.lines().count(), n as usize + 3);
            prop_assert_eq!(ta, tb);
        }
    }

    #[test]
    fn same_after_start_looks_past_the_start_only() {
        let r = WindowRow::silent(1_000_000_000, 0.012, 3000, 0);
        let later = WindowRow {
            start_ns: 9_000_000_000,
            ..r
        };
        assert!(same_after_start(&r, &later));
        let other = WindowRow {
            bif_bytes: 2999,
            ..r
        };
        assert!(!same_after_start(&r, &other));
        // 0 and -0 compare equal as numbers but are written "0" and "-0".
        let zero = WindowRow { delay_s: 0.0, ..r };
        let negative_zero = WindowRow { delay_s: -0.0, ..r };
        assert!(!same_after_start(&zero, &negative_zero));
    }

    #[test]
    fn epoch_formatting_is_exact() {
        let mut s = String::new();
        format_epoch_ns(1_700_000_000_050_000_000, &mut s);
        assert_eq!(s, "1700000000.050000000");
        s.clear();
        format_epoch_ns(-50_000_000, &mut s);
        assert_eq!(s, "-0.050000000");
    }

    #[test]
    fn features_read_the_same_plain_and_gzipped() {
        use std::io::Write as _;
        let dir = std::env::temp_dir().join(format!("nf-csv-gz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut text = format!("{FEATURES_HEADER}\n");
        for i in 0..20 {
            text += &format!(
                "{}.{:09},1000,0.01,500,0.001,0,{}.5,0,0,0\n",
                1000 + i / 20,
                (i % 20) * 50_000_000,
                i
            );
        }
        let plain = dir.join("c.csv");
        std::fs::write(&plain, &text).unwrap();
        let gz = dir.join("c.csv.gz");
        let mut e = flate2::write::GzEncoder::new(
            std::fs::File::create(&gz).unwrap(),
            flate2::Compression::default(),
        );
        e.write_all(text.as_bytes()).unwrap();
        e.finish().unwrap();
        let w = WindowWidth::from_ms(50).unwrap();
        let a = read_features_csv(&plain, w).unwrap();
        let b = read_features_csv(&gz, w).unwrap();
        assert_eq!(a.segments, b.segments);
        assert_eq!(a.segments.iter().map(Vec::len).sum::<usize>(), 20);
        std::fs::write(&gz, b"\x1f\x8b not really gzip").unwrap();
        assert!(matches!(
            read_features_csv(&gz, w),
            Err(ReadError::Read { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
