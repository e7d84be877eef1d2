//! The predictions CSV (INTERFACE.md "Files"): `window_start,actual_mbps,
//! predicted_mbps,congestion_prob`, one row per window that has a forecast, on
//! the row of the window it predicts. [`PredictionsCsv`] writes one file (or
//! standard output) for replay; [`RotatingCsv`] is the daemon's local log,
//! rotated by size, whose rows count as written only once flushed.

use super::prometheus::Metrics;
use super::{Sink, SinkError as Error};
use crate::diag::{RateLimit, warn_every};
use crate::forecast::Scored;
use engine::csv::{CsvFile, SinkError, format_epoch_ns};
use engine::forecast::Forecast;
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Header of the predictions CSV (INTERFACE.md).
pub const PREDICTIONS_HEADER: &str = "window_start,actual_mbps,predicted_mbps,congestion_prob";

/// The column a daemon capturing on several interfaces adds: the window's
/// interface.
pub const IFACE_COLUMN: &str = ",iface";

/// The columns `--band` adds after the header's: the forecast's band.
pub const BAND_COLUMNS: &str = ",lower_mbps,upper_mbps";

/// Append the band's two fields (empty until the stream has one) before the
/// newline of a predictions line.
pub fn append_band(band: Option<(f64, f64)>, out: &mut String) {
    if out.ends_with('\n') {
        out.pop();
    }
    match band {
        Some((lo, hi)) => {
            let _ = writeln!(out, ",{lo},{hi}");
        }
        None => out.push_str(",,\n"),
    }
}

/// Append one predictions line (with newline).
pub fn format_prediction_row(start_ns: i64, actual_mbps: f64, f: &Forecast, out: &mut String) {
    format_epoch_ns(start_ns, out);
    let _ = writeln!(
        out,
        ",{},{},{}",
        actual_mbps, f.throughput_mbps, f.congestion_prob
    );
}

/// The predictions CSV of `replay`: one file or standard output; any write
/// error ends the run.
pub struct PredictionsCsv {
    file: CsvFile,
    line: String,
    /// Add the band columns.
    band: bool,
}

impl PredictionsCsv {
    /// Create `path` (`-`: standard output) and write the header.
    pub fn create(path: &Path) -> Result<Self, SinkError> {
        Self::create_with_band(path, false)
    }

    /// [`Self::create`], with the band columns when `band`.
    pub fn create_with_band(path: &Path, band: bool) -> Result<Self, SinkError> {
        let header = if band {
            format!("{PREDICTIONS_HEADER}{BAND_COLUMNS}")
        } else {
            PREDICTIONS_HEADER.to_string()
        };
        Ok(PredictionsCsv {
            file: CsvFile::create(path, &header)?,
            line: String::with_capacity(128),
            band,
        })
    }
}

impl Sink for PredictionsCsv {
    fn window(&mut self, s: &Scored) -> Result<(), Error> {
        if let Some(f) = &s.published_at_target {
            self.line.clear();
            format_prediction_row(s.row.start_ns, s.row.throughput_mbps, f, &mut self.line);
            if self.band {
                append_band(s.band_at_target, &mut self.line);
            }
            self.file.write_line(&self.line)?;
        }
        Ok(())
    }

    fn finish(&mut self, _deadline: Instant) -> Result<(), Error> {
        Ok(self.file.flush()?)
    }
}

/// The daemon's predictions CSV as a sink: rotated by size, flushed every
/// second; a write error is said once and the lost rows counted, forecasting
/// goes on.
pub struct DaemonCsv {
    csv: RotatingCsv,
    metrics: Arc<Metrics>,
    line: String,
    last_flush: Instant,
    /// SIGHUP: reopen the file when the count moves (logrotate moved it away).
    hangups: Option<(crate::shutdown::Shutdown, u64)>,
    /// Each stream's interface, by stream number, when the file has the
    /// `iface` column.
    ifaces: Option<std::collections::HashMap<usize, String>>,
    /// Host and flow streams: the file is the interfaces' log, their rows are
    /// not in it.
    hosts: std::collections::HashSet<usize>,
    /// Rows on disk.
    pub rows: u64,
    /// Rows that could not be written.
    pub errors: u64,
}

impl DaemonCsv {
    /// Open (append to) `path`, rotating beyond `max_mib`, keeping `keep` old
    /// files; with an `iface` column after the others when `per_iface` (a
    /// daemon on several interfaces). A file whose header is not the one
    /// these rows need is rotated away first.
    pub fn open(
        path: &Path,
        max_mib: u64,
        keep: u32,
        per_iface: bool,
        metrics: Arc<Metrics>,
    ) -> Result<Self, SinkError> {
        let header = if per_iface {
            format!("{PREDICTIONS_HEADER}{IFACE_COLUMN}")
        } else {
            PREDICTIONS_HEADER.to_owned()
        };
        Ok(DaemonCsv {
            csv: RotatingCsv::open(path, max_mib, keep, header)?,
            metrics,
            line: String::with_capacity(128),
            last_flush: Instant::now(),
            hangups: None,
            ifaces: per_iface.then(std::collections::HashMap::new),
            hosts: std::collections::HashSet::new(),
            rows: 0,
            errors: 0,
        })
    }

    /// Reopen the file (by name) after each SIGHUP that `shutdown` records.
    pub fn reopen_on_hangup(mut self, shutdown: crate::shutdown::Shutdown) -> Self {
        let seen = shutdown.hangups();
        self.hangups = Some((shutdown, seen));
        self
    }
}

impl Sink for DaemonCsv {
    fn end(
        &mut self,
        index: usize,
        _summary: &crate::capture::CaptureSummary,
    ) -> Result<(), Error> {
        self.hosts.remove(&index);
        if let Some(ifaces) = &mut self.ifaces {
            ifaces.remove(&index);
        }
        Ok(())
    }

    fn begin(&mut self, index: usize, name: &str) -> Result<(), Error> {
        if matches!(crate::source::kind_and_key(name).0, "host" | "flow") {
            self.hosts.insert(index);
            return Ok(());
        }
        if let Some(ifaces) = &mut self.ifaces {
            let iface = crate::source::iface_of(name).unwrap_or(name);
            ifaces.insert(index, iface.to_owned());
        }
        Ok(())
    }

    fn window(&mut self, s: &Scored) -> Result<(), Error> {
        if self.hosts.contains(&s.stream) {
            return Ok(());
        }
        if let Some(f) = &s.published_at_target {
            self.line.clear();
            format_prediction_row(s.row.start_ns, s.row.throughput_mbps, f, &mut self.line);
            if let Some(ifaces) = &self.ifaces {
                self.line.pop();
                self.line.push(',');
                // Interface names are letters, digits and a few marks: no quoting.
                self.line
                    .push_str(ifaces.get(&s.stream).map_or("", String::as_str));
                self.line.push('\n');
            }
            if let Err(e) = self.csv.write(&self.line) {
                let lost = std::mem::take(&mut self.csv.pending);
                csv_failed(&e, lost, &mut self.errors, &self.metrics);
            }
        }
        Ok(())
    }

    fn tick(&mut self) -> Result<(), Error> {
        if let Some((sd, seen)) = &mut self.hangups {
            let now = sd.hangups();
            if now != *seen {
                *seen = now;
                commit_csv(
                    &mut self.csv,
                    &self.metrics,
                    &mut self.rows,
                    &mut self.errors,
                );
                self.csv.file = None;
                if let Err(e) = self.csv.reopen() {
                    csv_failed(&e, 0, &mut self.errors, &self.metrics);
                }
            }
        }
        if self.last_flush.elapsed() > Duration::from_secs(1) {
            commit_csv(
                &mut self.csv,
                &self.metrics,
                &mut self.rows,
                &mut self.errors,
            );
            self.last_flush = Instant::now();
        }
        Ok(())
    }

    fn finish(&mut self, _deadline: Instant) -> Result<(), Error> {
        commit_csv(
            &mut self.csv,
            &self.metrics,
            &mut self.rows,
            &mut self.errors,
        );
        Ok(())
    }
}

/// Predictions CSV with size-based rotation (`F`, `F.1` .. `F.keep`).
struct RotatingCsv {
    path: PathBuf,
    header: String,
    max_bytes: u64,
    keep: u32,
    file: Option<std::io::BufWriter<std::fs::File>>,
    bytes: u64,
    /// Rows in the buffer, not yet on disk.
    pending: u64,
}

impl RotatingCsv {
    fn open(path: &Path, max_mib: u64, keep: u32, header: String) -> Result<Self, SinkError> {
        let mut c = RotatingCsv {
            path: path.to_owned(),
            header,
            max_bytes: max_mib.max(1) << 20,
            keep,
            file: None,
            bytes: 0,
            pending: 0,
        };
        // Rows of another layout (a run on one interface, then on several)
        // start a new file rather than join the old one.
        let first = std::fs::File::open(path).ok().and_then(|f| {
            use std::io::BufRead;
            std::io::BufReader::new(f)
                .lines()
                .next()
                .and_then(Result::ok)
        });
        if first.is_some_and(|h| h != c.header) {
            c.rotate();
        }
        c.reopen()?;
        Ok(c)
    }

    /// `F` -> `F.1` -> ... -> `F.keep` (the oldest dropped).
    fn rotate(&mut self) {
        self.file = None;
        for i in (1..self.keep).rev() {
            let _ = std::fs::rename(self.rotated(i), self.rotated(i + 1));
        }
        if self.keep > 0 {
            let _ = std::fs::rename(&self.path, self.rotated(1));
        } else {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    fn reopen(&mut self) -> Result<(), SinkError> {
        let exists = self.path.exists();
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|source| SinkError::Create {
                path: self.path.clone(),
                source,
            })?;
        self.bytes = f.metadata().map(|m| m.len()).unwrap_or(0);
        let mut w = std::io::BufWriter::new(f);
        if !exists || self.bytes == 0 {
            let h = format!("{}\n", self.header);
            w.write_all(h.as_bytes()).map_err(|e| self.err(e))?;
            self.bytes += h.len() as u64;
        }
        self.file = Some(w);
        Ok(())
    }

    fn err(&self, source: std::io::Error) -> SinkError {
        SinkError::Write {
            what: self.path.display().to_string(),
            source,
        }
    }

    /// Buffer one row. Rows count as written only when a flush succeeds; an
    /// error here or in [`RotatingCsv::flush`] loses the buffered rows, which the
    /// caller counts.
    fn write(&mut self, line: &str) -> Result<(), SinkError> {
        if self.bytes + line.len() as u64 > self.max_bytes {
            self.flush()?;
            self.rotate();
            self.reopen()?;
        }
        if self.file.is_none() {
            // A reopen failed earlier (SIGHUP into a full or vanished directory): try again.
            self.reopen()?;
        }
        let r = match self.file.as_mut() {
            Some(f) => f.write_all(line.as_bytes()),
            None => Err(std::io::Error::other("file not open")),
        };
        self.pending += 1;
        if let Err(e) = r {
            self.discard_buffer();
            return Err(self.err(e));
        }
        self.bytes += line.len() as u64;
        Ok(())
    }

    /// Drop what the buffer holds (after a failed write it would only fail again).
    fn discard_buffer(&mut self) {
        if let Some(w) = self.file.take() {
            let (f, _lost) = w.into_parts();
            self.file = Some(std::io::BufWriter::new(f));
        }
    }

    fn rotated(&self, i: u32) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{i}"));
        PathBuf::from(p)
    }

    /// Write the buffer out: Ok(rows now on disk) or Err((error, rows lost)).
    fn commit(&mut self) -> Result<u64, (SinkError, u64)> {
        let r = match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        };
        let n = std::mem::take(&mut self.pending);
        match r {
            Ok(()) => Ok(n),
            Err(e) => {
                self.discard_buffer();
                Err((self.err(e), n))
            }
        }
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.commit().map(|_| ()).map_err(|(e, _)| e)
    }
}

/// Count rows the CSV lost and say so at most once a minute (a full disk
/// would otherwise print every second); the count goes to Prometheus.
fn csv_failed(e: &SinkError, lost: u64, errors: &mut u64, m: &Metrics) {
    static SAID: RateLimit = RateLimit::every(60);
    warn_every(
        &SAID,
        format_args!("{e}; forecasts continue, rows that cannot be written are counted"),
    );
    *errors += lost.max(1);
    m.csv_errors.inc_by(lost.max(1));
}

/// Flush the CSV's buffer and count its rows as written or lost.
fn commit_csv(c: &mut RotatingCsv, m: &Metrics, rows: &mut u64, errors: &mut u64) {
    match c.commit() {
        Ok(n) => {
            *rows += n;
            m.csv_rows.inc_by(n);
        }
        Err((e, lost)) => csv_failed(&e, lost, errors, m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rotates_by_size_and_keeps_the_header() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.csv");
        let mut c = RotatingCsv::open(&p, 1, 2, PREDICTIONS_HEADER.into()).unwrap();
        let line = format!("{}\n", "x".repeat(1000));
        for _ in 0..3000 {
            c.write(&line).unwrap();
        }
        c.flush().unwrap();
        for f in [p.clone(), c.rotated(1), c.rotated(2)] {
            let text = std::fs::read_to_string(&f).unwrap();
            assert!(text.starts_with(PREDICTIONS_HEADER), "{}", f.display());
            assert!(text.len() <= 1 << 20);
        }
        assert!(!c.rotated(3).exists(), "keeps only 2 old files");
    }
}
