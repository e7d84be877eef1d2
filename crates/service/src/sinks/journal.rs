//! The InfluxDB writer's queue on disk, so an outage followed by a crash or a
//! SIGKILL loses at most the last second of points (Telegraf's and vector's disk
//! buffers are the references).
//!
//! Append-only segment files `NNNNNNNN.lp` of line protocol, one point a line,
//! in a state directory, and a `cursor` file naming the first point not yet
//! written to the server. The writer appends every point it queues, syncs about
//! once a second and whenever a batch goes out, and moves the cursor when a
//! batch is acknowledged or points are dropped. At start the points from the
//! cursor on are queued again. Segments wholly before the cursor are deleted.
//! A point acknowledged but not yet past the cursor when the process died is
//! sent again (a duplicate is better than a loss).

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};

/// A segment is closed and a new one started beyond this size.
const SEGMENT_BYTES: u64 = 4 << 20;

/// Where one point ends in the journal.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// Segment number.
    pub segment: u64,
    /// Byte offset just after the point's line.
    pub offset: u64,
}

/// Points left unsent by an earlier run, oldest first, each with where it ends.
pub type Unsent = Vec<(Vec<u8>, Position)>;

/// The queue's journal in `dir`.
pub struct Journal {
    dir: PathBuf,
    file: File,
    at: Position,
    dirty: bool,
}

fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:08}.lp"))
}

fn segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut v: Vec<u64> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_suffix(".lp")?.parse().ok()
        })
        .collect();
    v.sort_unstable();
    Ok(v)
}

fn read_cursor(dir: &Path) -> Position {
    std::fs::read_to_string(dir.join("cursor"))
        .ok()
        .and_then(|s| {
            let (a, b) = s.trim().split_once(' ')?;
            Some(Position {
                segment: a.parse().ok()?,
                offset: b.parse().ok()?,
            })
        })
        .unwrap_or_default()
}

impl Journal {
    /// Open (or create) the journal in `dir`; returns it with the points still
    /// unsent from an earlier run, oldest first, each with where it ends.
    pub fn open(dir: &Path) -> io::Result<(Self, Unsent)> {
        std::fs::create_dir_all(dir)?;
        let cursor = read_cursor(dir);
        let mut pending = Vec::new();
        let segs = segments(dir)?;
        for &n in segs.iter().filter(|n| **n >= cursor.segment) {
            let f = File::open(segment_path(dir, n))?;
            let mut r = io::BufReader::new(f);
            let mut offset = 0u64;
            let mut line = Vec::new();
            loop {
                line.clear();
                let k = r.read_until(b'\n', &mut line)?;
                if k == 0 {
                    break;
                }
                offset += k as u64;
                // A torn last line (killed mid-write) is not a point.
                if !line.ends_with(b"\n") {
                    break;
                }
                let end = Position { segment: n, offset };
                if end > cursor {
                    pending.push((line.clone(), end));
                }
            }
        }
        let next = segs.last().map_or(0, |n| n + 1);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(segment_path(dir, next))?;
        let j = Journal {
            dir: dir.to_owned(),
            file,
            at: Position {
                segment: next,
                offset: 0,
            },
            dirty: false,
        };
        Ok((j, pending))
    }

    /// Append one encoded point; where it ends.
    pub fn append(&mut self, line: &[u8]) -> io::Result<Position> {
        if self.at.offset >= SEGMENT_BYTES {
            self.sync()?;
            let next = self.at.segment + 1;
            self.file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(segment_path(&self.dir, next))?;
            self.at = Position {
                segment: next,
                offset: 0,
            };
        }
        self.file.write_all(line)?;
        self.at.offset += line.len() as u64;
        self.dirty = true;
        Ok(self.at)
    }

    /// Make what was appended durable.
    pub fn sync(&mut self) -> io::Result<()> {
        if self.dirty {
            self.file.sync_data()?;
            self.dirty = false;
        }
        Ok(())
    }

    /// Everything up to `done` is written or dropped: move the cursor there and
    /// delete the segments wholly before it.
    pub fn advance(&mut self, done: Position) -> io::Result<()> {
        let tmp = self.dir.join("cursor.tmp");
        {
            let mut f = File::create(&tmp)?;
            writeln!(f, "{} {}", done.segment, done.offset)?;
            f.sync_data()?;
        }
        std::fs::rename(&tmp, self.dir.join("cursor"))?;
        for n in segments(&self.dir)?
            .into_iter()
            .filter(|n| *n < done.segment)
        {
            let _ = std::fs::remove_file(segment_path(&self.dir, n));
        }
        Ok(())
    }

    /// Bytes held in the journal's segments.
    pub fn bytes(&self) -> u64 {
        segments(&self.dir)
            .unwrap_or_default()
            .iter()
            .filter_map(|n| std::fs::metadata(segment_path(&self.dir, *n)).ok())
            .map(|m| m.len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsent_points_come_back_after_a_restart_and_sent_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, pending) = Journal::open(dir.path()).unwrap();
        assert!(pending.is_empty());
        let ends: Vec<Position> = (0..5)
            .map(|i| j.append(format!("m x={i} {i}\n").as_bytes()).unwrap())
            .collect();
        j.sync().unwrap();
        j.advance(ends[1]).unwrap(); // the first two were written
        drop(j);
        let (mut j, pending) = Journal::open(dir.path()).unwrap();
        let lines: Vec<String> = pending
            .iter()
            .map(|(l, _)| String::from_utf8(l.clone()).unwrap())
            .collect();
        assert_eq!(lines, ["m x=2 2\n", "m x=3 3\n", "m x=4 4\n"]);
        // A torn line at the end (killed mid-write) is left out.
        j.append(b"m x=5 5\n").unwrap();
        j.file.write_all(b"m x=6").unwrap();
        j.sync().unwrap();
        drop(j);
        let (_, pending) = Journal::open(dir.path()).unwrap();
        assert_eq!(pending.len(), 4);
    }

    #[test]
    fn written_segments_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(dir.path()).unwrap();
        let line = vec![b'x'; 1 << 20];
        let mut last = Position::default();
        let mut l = line.clone();
        l.push(b'\n');
        for _ in 0..10 {
            last = j.append(&l).unwrap();
        }
        assert!(segments(dir.path()).unwrap().len() >= 2);
        j.advance(last).unwrap();
        assert_eq!(segments(dir.path()).unwrap().len(), 1);
        let (_, pending) = Journal::open(dir.path()).unwrap();
        assert!(pending.is_empty());
    }
}
