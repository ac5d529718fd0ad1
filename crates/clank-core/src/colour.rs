//! Whether output may carry ANSI colour: only on a terminal, and never while `NO_COLOR` is set
//! to anything but the empty string (https://no-color.org). A log file, the journal or a pipe
//! gets plain text. Every binary (the CLI's output, the daemons' logs) asks here.

use std::ffi::OsStr;
use std::io::IsTerminal;

/// The decision from its inputs: is the stream a terminal, and `NO_COLOR`'s value.
pub fn wanted(terminal: bool, no_color: Option<&OsStr>) -> bool {
    terminal && no_color.is_none_or(OsStr::is_empty)
}

/// For `stream` (stdout, stderr), with this process's `NO_COLOR`.
pub fn on(stream: &impl IsTerminal) -> bool {
    wanted(
        stream.is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    )
}

#[cfg(test)]
mod tests {
    use super::wanted;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(wanted(true, None));
        assert!(
            wanted(true, Some("".as_ref())),
            "an empty NO_COLOR is unset"
        );
        assert!(!wanted(true, Some("1".as_ref())));
        assert!(!wanted(false, None), "a file or pipe gets no escape codes");
    }
}
