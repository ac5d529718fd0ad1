//! Docker's multiplexed log frames as [`LogLine`]s: one per line, per stream, with the
//! timestamp Docker recorded when the line was written.
//!
//! Frames do not follow lines: a long line arrives in several frames (each with its own
//! timestamp prefix), and a frame may hold several lines. So each stream keeps a buffer of the
//! line in progress; the timestamp of a line is the one at its start.

use std::collections::VecDeque;

use bollard::container::LogOutput;
use clank_core::Result;
use clank_core::Timestamp;
use clank_core::runtime::{LogLine, LogStream, LogStreamBox};
use futures_util::{Stream, StreamExt};

use crate::error::{Subject, engine_error};

/// Splits timestamped frames into lines.
#[derive(Debug, Default)]
pub(crate) struct LineSplitter {
    stdout: Partial,
    stderr: Partial,
}

#[derive(Debug, Default)]
struct Partial {
    text: String,
    at: Option<Timestamp>,
    /// True while `text` holds the start of a line that has not ended.
    open: bool,
}

impl LineSplitter {
    /// Feed one frame (as Docker sends it with `timestamps=true`); returns completed lines.
    pub(crate) fn push(&mut self, stream: LogStream, frame: &[u8]) -> Vec<LogLine> {
        let partial = match stream {
            LogStream::Stdout => &mut self.stdout,
            LogStream::Stderr => &mut self.stderr,
        };
        let text = String::from_utf8_lossy(frame);
        // Docker prefixes every log *message* (not every frame line) with its timestamp; a
        // message ends at a newline or at 16 KiB.
        let (at, mut rest) = split_timestamp(&text);
        if !partial.open {
            partial.at = at;
        }
        let mut lines = Vec::new();
        loop {
            match rest.find('\n') {
                Some(end) => {
                    partial.text.push_str(rest[..end].trim_end_matches('\r'));
                    lines.push(LogLine {
                        stream,
                        line: std::mem::take(&mut partial.text),
                        at: partial.at,
                    });
                    partial.open = false;
                    rest = &rest[end + 1..];
                    if rest.is_empty() {
                        break;
                    }
                    // Another message in the same frame carries its own timestamp.
                    let (at, after) = split_timestamp(rest);
                    partial.at = at;
                    rest = after;
                }
                None => {
                    partial.text.push_str(rest);
                    partial.open = !partial.text.is_empty();
                    break;
                }
            }
        }
        lines
    }

    /// The unterminated last line of each stream, once the log has ended.
    pub(crate) fn finish(&mut self) -> Vec<LogLine> {
        [
            (LogStream::Stdout, &mut self.stdout),
            (LogStream::Stderr, &mut self.stderr),
        ]
        .into_iter()
        .filter(|(_, p)| !p.text.is_empty())
        .map(|(stream, p)| {
            p.open = false;
            LogLine {
                stream,
                line: std::mem::take(&mut p.text),
                at: p.at,
            }
        })
        .collect()
    }
}

/// `"2024-05-01T12:34:56.123456789Z rest"` → (the time, `"rest"`); text without a leading
/// timestamp is returned whole.
fn split_timestamp(text: &str) -> (Option<Timestamp>, &str) {
    match text.split_once(' ') {
        Some((head, rest)) => match Timestamp::parse_rfc3339(head) {
            Some(at) => (Some(at), rest),
            None => (None, text),
        },
        None => (None, text),
    }
}

/// Turn bollard's frame stream into a stream of lines.
pub(crate) fn into_lines<S>(frames: S, container: String) -> LogStreamBox
where
    S: Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send + 'static,
{
    struct State<S> {
        frames: std::pin::Pin<Box<S>>,
        splitter: LineSplitter,
        ready: VecDeque<LogLine>,
        done: bool,
        container: String,
    }
    let state = State {
        frames: Box::pin(frames),
        splitter: LineSplitter::default(),
        ready: VecDeque::new(),
        done: false,
        container,
    };
    Box::pin(futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(line) = st.ready.pop_front() {
                return Some((Ok(line), st));
            }
            if st.done {
                return None;
            }
            match st.frames.next().await {
                Some(Ok(LogOutput::StdOut { message })) => {
                    st.ready
                        .extend(st.splitter.push(LogStream::Stdout, &message));
                }
                Some(Ok(LogOutput::StdErr { message })) => {
                    st.ready
                        .extend(st.splitter.push(LogStream::Stderr, &message));
                }
                // A TTY container writes one stream, which Docker calls the console.
                Some(Ok(LogOutput::Console { message })) => {
                    st.ready
                        .extend(st.splitter.push(LogStream::Stdout, &message));
                }
                Some(Ok(LogOutput::StdIn { .. })) => {}
                Some(Err(e)) => {
                    st.done = true;
                    let err = engine_error(e, Subject::Container, &st.container);
                    return Some((Err(err), st));
                }
                None => {
                    st.done = true;
                    st.ready.extend(st.splitter.finish());
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(lines: &[LogLine]) -> Vec<&str> {
        lines.iter().map(|l| l.line.as_str()).collect()
    }

    #[test]
    fn one_message_per_frame_becomes_one_line_with_its_time() {
        let mut s = LineSplitter::default();
        let lines = s.push(
            LogStream::Stdout,
            b"2024-05-01T12:34:56.123456789Z testapp listening on 8080\n",
        );
        assert_eq!(texts(&lines), ["testapp listening on 8080"]);
        assert_eq!(lines[0].at, Some(Timestamp(1_714_566_896_123)));
        assert_eq!(lines[0].stream, LogStream::Stdout);
        assert!(s.finish().is_empty());
    }

    #[test]
    fn a_long_line_split_over_frames_is_joined_and_keeps_its_first_time() {
        let mut s = LineSplitter::default();
        assert!(
            s.push(LogStream::Stderr, b"2024-05-01T12:34:56Z first half, ")
                .is_empty()
        );
        let lines = s.push(LogStream::Stderr, b"2024-05-01T12:34:57Z second half\r\n");
        assert_eq!(texts(&lines), ["first half, second half"]);
        assert_eq!(lines[0].at, Some(Timestamp(1_714_566_896_000)));
    }

    #[test]
    fn several_messages_in_one_frame_and_an_unterminated_tail() {
        let mut s = LineSplitter::default();
        let lines = s.push(
            LogStream::Stdout,
            b"2024-05-01T12:34:56Z a\n2024-05-01T12:34:57Z b\n2024-05-01T12:34:58Z c",
        );
        assert_eq!(texts(&lines), ["a", "b"]);
        assert_eq!(lines[1].at, Some(Timestamp(1_714_566_897_000)));
        let out_line = s.push(LogStream::Stdout, b"");
        assert!(out_line.is_empty());
        let rest = s.finish();
        assert_eq!(texts(&rest), ["c"]);
        assert_eq!(rest[0].at, Some(Timestamp(1_714_566_898_000)));
    }

    #[test]
    fn streams_are_buffered_separately_and_empty_lines_kept() {
        let mut s = LineSplitter::default();
        assert!(
            s.push(LogStream::Stdout, b"2024-05-01T12:34:56Z out ")
                .is_empty()
        );
        let err = s.push(LogStream::Stderr, b"2024-05-01T12:34:56Z err\n");
        assert_eq!(texts(&err), ["err"]);
        let out = s.push(LogStream::Stdout, b"2024-05-01T12:34:56Z done\n");
        assert_eq!(texts(&out), ["out done"]);
        let empty = s.push(LogStream::Stdout, b"2024-05-01T12:34:56Z \n");
        assert_eq!(texts(&empty), [""]);
    }
}
