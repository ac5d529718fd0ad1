//! Workload logs: files the process writes itself, a sidecar of timestamps, and the readers
//! behind [`Runtime::logs`](clank_core::runtime::Runtime::logs).
//!
//! The process's stdout and stderr are opened straight onto `stdout.log` / `stderr.log` (in
//! append mode) rather than piped through the control plane: a pipe would close when the
//! control plane stops, and the workload would die of SIGPIPE on its next write, defeating
//! adoption after a restart. The price is that the file holds raw output without times.
//!
//! Times therefore live in a sidecar, `<stream>.times`. While a runtime supervises the
//! workload it watches the logs (inotify, plus a slow poll as a safety net) and, whenever one
//! grew, appends `<size> <unix millis> <seq>`: "bytes before `size` had been written by
//! then". A line is dated by the first record at or past its end. `seq` comes from one
//! process-wide counter, so records of stdout and stderr made in the same millisecond still
//! say which growth was seen first; that is what interleaves the two streams in the order
//! they were written. Output written while no runtime watched (between a control plane
//! stopping and the next spawn) gets a `<size> -` record: its time is unknown, and it is
//! reported without one rather than with a wrong one.

use std::collections::VecDeque;
use std::io::{ErrorKind, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clank_core::runtime::{LogLine, LogStream, LogStreamBox};
use clank_core::{Result, Timestamp};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::layout::{Layout, io_error};

/// How often a supervisor checks the logs for growth the watch missed (or all growth, where
/// inotify is unavailable), and how often a follower looks for new lines.
pub(crate) const POLL: Duration = Duration::from_millis(100);

pub(crate) const STREAMS: [LogStream; 2] = [LogStream::Stdout, LogStream::Stderr];

/// Orders stamps made in the same millisecond (see the module docs).
static SEQ: AtomicU64 = AtomicU64::new(0);

/// When some log output had been written: a time, and a tie-breaker for equal times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Stamp {
    at: Timestamp,
    seq: u64,
}

/// Open the log files a new process writes to (created if missing, appended to otherwise,
/// so output of earlier runs and restarts stays readable).
pub(crate) fn open_for_child(
    layout: &Layout,
    name: &str,
) -> Result<(std::fs::File, std::fs::File)> {
    let open = |stream| {
        let path = layout.log_path(name, stream);
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io_error("open", &path, &e))
    };
    Ok((open(LogStream::Stdout)?, open(LogStream::Stderr)?))
}

/// Records when log output appeared, for one supervised workload.
#[derive(Debug)]
pub(crate) struct Stamper {
    files: Vec<StampedFile>,
}

#[derive(Debug)]
struct StampedFile {
    stream: LogStream,
    log: PathBuf,
    times: PathBuf,
    /// Log size already covered by a record.
    covered: u64,
}

impl Stamper {
    /// Start stamping; output nobody stamped so far is recorded as of unknown time.
    pub(crate) fn new(layout: &Layout, name: &str) -> Stamper {
        let files = STREAMS
            .into_iter()
            .map(|stream| {
                let mut file = StampedFile {
                    stream,
                    log: layout.log_path(name, stream),
                    times: layout.times_path(name, stream),
                    covered: 0,
                };
                file.covered = Times::load(&file.times).covered();
                file.record(None);
                file
            })
            .collect();
        Stamper { files }
    }

    /// Record that whatever the logs hold now was written by now.
    pub(crate) fn stamp(&mut self) {
        for stream in STREAMS {
            self.stamp_stream(stream);
        }
    }

    /// Record the growth of one stream (the one a write was just seen on).
    pub(crate) fn stamp_stream(&mut self, stream: LogStream) {
        let stamp = Stamp {
            at: Timestamp::now(),
            seq: SEQ.fetch_add(1, Ordering::Relaxed),
        };
        for file in self.files.iter_mut().filter(|f| f.stream == stream) {
            file.record(Some(stamp));
        }
    }
}

impl StampedFile {
    fn record(&mut self, stamp: Option<Stamp>) {
        let Ok(len) = std::fs::metadata(&self.log).map(|m| m.len()) else {
            return;
        };
        if len < self.covered {
            // Someone truncated the log; start over rather than never stamping again.
            self.covered = 0;
            let _ = std::fs::remove_file(&self.times);
        }
        if len == self.covered {
            return;
        }
        let line = match stamp {
            Some(s) => format!("{len} {} {}\n", s.at.as_millis(), s.seq),
            None => format!("{len} -\n"),
        };
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.times)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        match written {
            Ok(()) => self.covered = len,
            // The workload was removed under us; nothing left to stamp.
            Err(e) => {
                tracing::debug!(path = %self.times.display(), error = %e, "Cannot stamp log.")
            }
        }
    }
}

/// The parsed sidecar: `(size, stamp)` records in increasing size.
#[derive(Debug, Default)]
struct Times(Vec<(u64, Option<Stamp>)>);

impl Times {
    fn load(path: &Path) -> Times {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        Times::parse(&text)
    }

    /// Unterminated or unparseable lines (a torn last write after a crash) are skipped.
    fn parse(text: &str) -> Times {
        let mut records: Vec<(u64, Option<Stamp>)> = Vec::new();
        for line in text.split_inclusive('\n') {
            let Some(line) = line.strip_suffix('\n') else {
                continue;
            };
            let Some(record) = Times::parse_record(line) else {
                continue;
            };
            if records.last().is_none_or(|(last, _)| record.0 > *last) {
                records.push(record);
            }
        }
        Times(records)
    }

    fn parse_record(line: &str) -> Option<(u64, Option<Stamp>)> {
        let mut parts = line.split(' ');
        let size = parts.next()?.parse().ok()?;
        let stamp = match (parts.next()?, parts.next(), parts.next()) {
            ("-", None, None) => None,
            (ms, Some(seq), None) => Some(Stamp {
                at: Timestamp::from_millis(ms.parse().ok()?),
                seq: seq.parse().ok()?,
            }),
            _ => return None,
        };
        Some((size, stamp))
    }

    fn covered(&self) -> u64 {
        self.0.last().map_or(0, |(size, _)| *size)
    }

    /// When the byte range ending at `end` had been written.
    fn at(&self, end: u64) -> Option<Stamp> {
        let i = self.0.partition_point(|(size, _)| *size < end);
        self.0.get(i).and_then(|(_, stamp)| *stamp)
    }
}

/// A line with the stamp that orders it against the other stream's lines.
#[derive(Debug)]
struct Dated {
    line: LogLine,
    stamp: Option<Stamp>,
}

/// Split `bytes` (which start at file offset `base`) into lines. Returns the lines and how
/// many bytes they consumed; an unterminated last line is included only if `partial`.
fn split_lines(
    bytes: &[u8],
    base: u64,
    stream: LogStream,
    stamp_of: impl Fn(u64) -> Option<Stamp>,
    partial: bool,
) -> (Vec<Dated>, usize) {
    let mut lines = Vec::new();
    let mut start = 0;
    let make = |text: &[u8], end: usize| {
        let stamp = stamp_of(base + end as u64);
        Dated {
            line: LogLine {
                stream,
                line: String::from_utf8_lossy(text.strip_suffix(b"\r").unwrap_or(text))
                    .into_owned(),
                at: stamp.map(|s| s.at),
            },
            stamp,
        }
    };
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'\n' {
            lines.push(make(&bytes[start..i], i + 1));
            start = i + 1;
        }
    }
    let mut consumed = start;
    if partial && start < bytes.len() {
        lines.push(make(&bytes[start..], bytes.len()));
        consumed = bytes.len();
    }
    (lines, consumed)
}

/// Read a log's content up to its current size: all of it, or enough of the end to hold the
/// last `tail` complete lines. Returns the offset the bytes start at.
async fn read_log(path: &Path, tail: Option<usize>) -> Result<(u64, Vec<u8>)> {
    const CHUNK: u64 = 64 * 1024;
    let fail = |e: std::io::Error| io_error("read", path, &e);
    let mut file = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok((0, Vec::new())),
        Err(e) => return Err(fail(e)),
    };
    let len = file.metadata().await.map_err(fail)?.len();
    let mut start = len;
    let mut buf = Vec::new();
    let mut newlines = 0;
    // Read backwards chunk by chunk until the buffer holds more line ends than lines wanted,
    // so that its first, possibly cut, line can be dropped.
    while start > 0 && tail.is_none_or(|n| newlines <= n) {
        let from = start.saturating_sub(CHUNK);
        let mut chunk = vec![0; usize::try_from(start - from).unwrap_or(0)];
        file.seek(SeekFrom::Start(from)).await.map_err(fail)?;
        file.read_exact(&mut chunk).await.map_err(fail)?;
        newlines += chunk.iter().filter(|b| **b == b'\n').count();
        chunk.extend_from_slice(&buf);
        buf = chunk;
        start = from;
    }
    if start > 0 {
        if let Some(i) = buf.iter().position(|b| *b == b'\n') {
            buf.drain(..=i);
            start += i as u64 + 1;
        }
    }
    Ok((start, buf))
}

/// Interleave two streams' lines in stamp order; undated lines go first, as they predate
/// the supervision that dates the others.
fn merge(a: Vec<Dated>, b: Vec<Dated>) -> Vec<LogLine> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    loop {
        let take_a = match (a.peek(), b.peek()) {
            // `None < Some(_)`, so undated lines sort first.
            (Some(x), Some(y)) => x.stamp <= y.stamp,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return out,
        };
        out.extend(if take_a { a.next() } else { b.next() }.map(|d| d.line));
    }
}

/// Where a follower continues reading one stream.
#[derive(Debug)]
struct Cursor {
    stream: LogStream,
    path: PathBuf,
    offset: u64,
}

/// The log history (optionally only its last `tail` lines), and cursors after it for a
/// follower. When `follow` is set, an unterminated last line is left for the follower to
/// read whole. Output past the last time record is dated `recent`.
async fn history(
    layout: &Layout,
    name: &str,
    tail: Option<usize>,
    follow: bool,
    recent: Option<Timestamp>,
) -> Result<(Vec<LogLine>, Vec<Cursor>)> {
    let mut per_stream = Vec::new();
    let mut cursors = Vec::new();
    for stream in STREAMS {
        let path = layout.log_path(name, stream);
        let times = Times::load(&layout.times_path(name, stream));
        let (base, bytes) = read_log(&path, tail).await?;
        let covered = times.covered();
        // Newer than every record: sorts after every dated line.
        let recent = recent.map(|at| Stamp { at, seq: u64::MAX });
        let stamp_of = |end| {
            if end > covered { recent } else { times.at(end) }
        };
        let (mut lines, consumed) = split_lines(&bytes, base, stream, stamp_of, !follow);
        if let Some(n) = tail {
            lines.drain(..lines.len().saturating_sub(n));
        }
        per_stream.push(lines);
        cursors.push(Cursor {
            stream,
            path,
            offset: base + consumed as u64,
        });
    }
    let stderr = per_stream.pop().unwrap_or_default();
    let stdout = per_stream.pop().unwrap_or_default();
    let mut lines = merge(stdout, stderr);
    if let Some(n) = tail {
        lines.drain(..lines.len().saturating_sub(n));
    }
    Ok((lines, cursors))
}

/// The stream `Runtime::logs` returns. With `follow`, it keeps reading new lines (dated when
/// seen) until `is_live` says the workload is no longer running, then reads what is left.
pub(crate) async fn stream(
    layout: &Layout,
    name: &str,
    tail: Option<usize>,
    follow: bool,
    recent: Option<Timestamp>,
    is_live: impl Fn() -> bool + Send + 'static,
) -> Result<LogStreamBox> {
    let (lines, cursors) = history(layout, name, tail, follow, recent).await?;
    if !follow {
        return Ok(Box::pin(futures_util::stream::iter(
            lines.into_iter().map(Ok),
        )));
    }
    let state = Follow {
        pending: lines.into(),
        cursors,
        is_live,
        finished: false,
    };
    Ok(Box::pin(futures_util::stream::unfold(state, Follow::next)))
}

struct Follow<F> {
    pending: VecDeque<LogLine>,
    cursors: Vec<Cursor>,
    is_live: F,
    finished: bool,
}

impl<F: Fn() -> bool> Follow<F> {
    async fn next(mut self) -> Option<(Result<LogLine>, Self)> {
        loop {
            if let Some(line) = self.pending.pop_front() {
                return Some((Ok(line), self));
            }
            if self.finished {
                return None;
            }
            // Ask before reading: whatever the process wrote before it ended is then read by
            // this pass, and nothing is lost between the last read and the end.
            let live = (self.is_live)();
            for cursor in &mut self.cursors {
                match cursor.read_new(!live).await {
                    Ok(lines) => self.pending.extend(lines),
                    Err(e) => {
                        self.finished = true;
                        return Some((Err(e), self));
                    }
                }
            }
            if !live {
                self.finished = true;
            } else if self.pending.is_empty() {
                tokio::time::sleep(POLL).await;
            }
        }
    }
}

impl Cursor {
    /// Complete lines written since the last read (and the unterminated rest if `last`).
    async fn read_new(&mut self, last: bool) -> Result<Vec<LogLine>> {
        let fail = |e: std::io::Error| io_error("read", &self.path, &e);
        let mut file = match tokio::fs::File::open(&self.path).await {
            Ok(f) => f,
            // Removed with its workload: nothing more will come.
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(fail(e)),
        };
        let len = file.metadata().await.map_err(fail)?.len();
        if len < self.offset {
            self.offset = 0;
        }
        if len == self.offset {
            return Ok(Vec::new());
        }
        let mut bytes = vec![0; usize::try_from(len - self.offset).unwrap_or(0)];
        file.seek(SeekFrom::Start(self.offset))
            .await
            .map_err(fail)?;
        file.read_exact(&mut bytes).await.map_err(fail)?;
        let seen = Some(Stamp {
            at: Timestamp::now(),
            seq: 0,
        });
        let (lines, consumed) = split_lines(&bytes, self.offset, self.stream, |_| seen, last);
        self.offset += consumed as u64;
        Ok(lines.into_iter().map(|d| d.line).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(ms: i64, seq: u64) -> Option<Stamp> {
        Some(Stamp {
            at: Timestamp(ms),
            seq,
        })
    }

    #[test]
    fn a_line_is_dated_by_the_first_record_at_or_past_its_end() {
        let times = Times::parse("6 -\n12 1000 1\ngarbage\n20 2000 2\n15 9 3\n30 3000 4");
        assert_eq!(times.at(6), None);
        assert_eq!(times.at(7), stamp(1000, 1));
        assert_eq!(times.at(12), stamp(1000, 1));
        assert_eq!(times.at(20), stamp(2000, 2));
        assert_eq!(times.at(21), None, "the torn last record is ignored");
        assert_eq!(times.covered(), 20);
    }

    #[test]
    fn lines_split_on_newlines_and_a_partial_tail_only_when_asked() {
        let stamp_of = |end: u64| stamp(i64::try_from(end).unwrap(), 0);
        let (lines, consumed) = split_lines(b"a\r\nbc\nd", 10, LogStream::Stdout, stamp_of, false);
        assert_eq!(
            lines
                .iter()
                .map(|l| l.line.line.as_str())
                .collect::<Vec<_>>(),
            ["a", "bc"]
        );
        assert_eq!(lines[1].line.at, Some(Timestamp(16)));
        assert_eq!(consumed, 6);
        let (lines, consumed) = split_lines(b"a\nd", 0, LogStream::Stdout, stamp_of, true);
        assert_eq!(lines.len(), 2);
        assert_eq!(consumed, 3);
    }

    #[test]
    fn streams_interleave_in_stamp_order_with_undated_lines_first() {
        let line = |stream, stamp: Option<Stamp>, text: &str| Dated {
            line: LogLine {
                stream,
                line: text.into(),
                at: stamp.map(|s| s.at),
            },
            stamp,
        };
        let out = merge(
            vec![
                line(LogStream::Stdout, stamp(1, 0), "o1"),
                line(LogStream::Stdout, stamp(5, 7), "o5-late"),
            ],
            vec![
                line(LogStream::Stderr, None, "e?"),
                line(LogStream::Stderr, stamp(3, 1), "e3"),
                line(LogStream::Stderr, stamp(5, 6), "e5-early"),
            ],
        );
        let texts: Vec<_> = out.iter().map(|l| l.line.as_str()).collect();
        assert_eq!(texts, ["e?", "o1", "e3", "e5-early", "o5-late"]);
    }

    #[tokio::test]
    async fn tail_reads_only_the_end_of_a_long_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stdout.log");
        let body: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, &body).unwrap();
        let (start, bytes) = read_log(&path, Some(3)).await.unwrap();
        assert!(start > 0 && bytes.len() < body.len());
        let text = String::from_utf8(bytes).unwrap();
        assert!(
            text.starts_with("line "),
            "starts on a line boundary: {text:.20}"
        );
        assert!(text.ends_with("line 19997\nline 19998\nline 19999\n"));
        let (start, all) = read_log(&path, None).await.unwrap();
        assert_eq!((start, all.len()), (0, body.len()));
    }
}
