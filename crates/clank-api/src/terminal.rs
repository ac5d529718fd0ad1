//! Interactive exec (`clank exec -it`) over a WebSocket on
//! `GET …/services/{s}/terminal`: the client's first message is a [`TerminalStart`] (JSON
//! text); then binary messages carry the terminal's bytes both ways, and JSON text messages
//! carry control: [`TerminalControl`] from the client, [`TerminalNotice`] from the daemon,
//! the last of which is the exit code (or the error that ended the session).

use clank_core::runtime::TerminalSize;

use crate::ErrorBody;

/// What to run, on which workload, on what size of terminal.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TerminalStart {
    /// Program and arguments (an argument vector; no shell unless you name one).
    pub command: Vec<String>,
    pub size: TerminalSize,
    /// Only this process type's workloads (`web`, `worker`, ...); the first one picked runs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<String>,
    /// Only this replica (from 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<u32>,
}

impl std::fmt::Debug for TerminalStart {
    /// The program only: arguments may carry credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TerminalStart")
            .field("program", &self.command.first())
            .field("size", &self.size)
            .field("process", &self.process)
            .field("replica", &self.replica)
            .finish()
    }
}

/// A control message from the client.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TerminalControl {
    /// The client's terminal changed size.
    Resize(TerminalSize),
}

/// A notice from the daemon.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TerminalNotice {
    /// The command runs; terminal bytes follow.
    Started,
    /// The command ended with this code (`null` when the runtime cannot tell); the daemon
    /// closes the socket next.
    Exited(Option<i64>),
    /// The session could not start or broke; the daemon closes the socket next.
    Error(ErrorBody),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_back_and_a_start_never_prints_its_arguments() {
        let start: TerminalStart = serde_json::from_str(
            r#"{"command": ["psql", "postgres://u:pw-visible-nowhere@db"], "size": {"rows": 24, "cols": 80}}"#,
        )
        .unwrap();
        assert!(!format!("{start:?}").contains("pw-visible-nowhere"));
        let resize: TerminalControl =
            serde_json::from_str(r#"{"resize": {"rows": 30, "cols": 100}}"#).unwrap();
        assert_eq!(
            resize,
            TerminalControl::Resize(TerminalSize {
                rows: 30,
                cols: 100
            })
        );
        assert_eq!(
            serde_json::to_string(&TerminalNotice::Exited(Some(3))).unwrap(),
            r#"{"exited":3}"#
        );
    }
}
