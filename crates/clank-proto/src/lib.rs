//! The gRPC contract between the Clank control plane and `clank-agent`
//! (`proto/clank/agent/v1/agent.proto`), and the conversions between its messages and the
//! `clank-core` runtime types both sides speak.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use clank_core::config::EnvValue;
use clank_core::error::{Error, Result, RuntimeFailure};
use clank_core::image::ImageRef;
use clank_core::model::VolumeMount;
use clank_core::runtime::{
    NetworkAttachment, Owner, RestartPolicy, WorkloadId, WorkloadSpec, WorkloadState,
    WorkloadStatus,
};
use clank_core::secret::SecretString;
use clank_core::time::Timestamp;

#[allow(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    clippy::all,
    clippy::pedantic
)]
pub mod v1 {
    tonic::include_proto!("clank.agent.v1");
}

pub use v1::agent_control_client::AgentControlClient;
pub use v1::agent_control_server::{AgentControl, AgentControlServer};

/// The metadata key carrying the agent's credential on `Session` and `FetchUpdate`.
pub const AUTHORIZATION: &str = "authorization";

/// Metadata naming the server an agent claims to be; must match its credential.
pub const SERVER_HEADER: &str = "x-clank-server";

/// Largest message either side accepts (a desired state of a big server, a log line).
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// The `Hello.features` entry of agents that answer `EnsureImage` calls (receive images the
/// control plane holds, pull with credentials it sends).
pub const FEATURE_IMAGE_TRANSFER: &str = "image_transfer";

/// The `Hello.features` entry of agents that answer `ExecTerminal` calls (interactive exec on
/// a terminal, `clank exec -it`).
pub const FEATURE_TERMINALS: &str = "terminals";

/// The most bytes in one `terminal_output` reply or `TerminalInput.data`: a keystroke's
/// latency is not held behind a large frame on the shared session stream.
pub const TERMINAL_CHUNK_BYTES: usize = 16 * 1024;

impl From<clank_core::runtime::TerminalSize> for v1::TerminalSize {
    fn from(s: clank_core::runtime::TerminalSize) -> Self {
        v1::TerminalSize {
            rows: s.rows.into(),
            cols: s.cols.into(),
        }
    }
}

impl From<v1::TerminalSize> for clank_core::runtime::TerminalSize {
    /// Out-of-range values saturate; `TerminalSize::check` then refuses them.
    fn from(s: v1::TerminalSize) -> Self {
        clank_core::runtime::TerminalSize {
            rows: u16::try_from(s.rows).unwrap_or(u16::MAX),
            cols: u16::try_from(s.cols).unwrap_or(u16::MAX),
        }
    }
}

/// Bytes per `ImageChunk`: large enough that framing costs nothing, small enough that a
/// transfer holds a few of them in memory at a time.
pub const IMAGE_CHUNK_BYTES: usize = 1024 * 1024;

impl std::fmt::Debug for v1::RegistryCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryCredentials")
            .field("username", &self.username)
            .field("password", &clank_core::secret::MASK)
            .finish()
    }
}

impl From<&clank_core::runtime::RegistryAuth> for v1::RegistryCredentials {
    fn from(a: &clank_core::runtime::RegistryAuth) -> Self {
        v1::RegistryCredentials {
            username: a.username.clone(),
            password: a.password.expose().to_owned(),
        }
    }
}

impl From<v1::RegistryCredentials> for clank_core::runtime::RegistryAuth {
    fn from(c: v1::RegistryCredentials) -> Self {
        clank_core::runtime::RegistryAuth {
            username: c.username,
            password: SecretString::new(c.password),
        }
    }
}

/// Domain separation of the agent-release signature: nothing else signed with the release
/// key can pass for an offer, and a future format changes the `v1` line.
const RELEASE_CONTEXT: &str = "clank-agent-release\nv1\n";

/// The exact bytes the release signing key signs for an agent binary (`UpdateOffer.signature`):
/// `clank-agent-release\nv1\n{version}\n{sha256}\n{size}`. Binds all three fields, so an offer
/// altered after signing no longer verifies.
///
/// Refused (so two different offers can never share one message): a version that is empty,
/// over 64 bytes or holds control characters, and a checksum that is not 64 lowercase hex
/// digits.
pub fn release_message(
    version: &str,
    sha256: &str,
    size: u64,
) -> std::result::Result<Vec<u8>, String> {
    if version.is_empty() || version.len() > 64 || version.chars().any(char::is_control) {
        return Err(format!(
            "release version {version:?}: must be 1 to 64 characters without control characters"
        ));
    }
    if sha256.len() != 64
        || !sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(format!(
            "release checksum {sha256:?}: must be 64 lowercase hex digits (SHA-256)"
        ));
    }
    Ok(format!("{RELEASE_CONTEXT}{version}\n{sha256}\n{size}").into_bytes())
}

/// A `RuntimeFailure` as its stable snake-case code.
pub fn failure_code(f: RuntimeFailure) -> &'static str {
    match f {
        RuntimeFailure::EngineUnavailable => "engine_unavailable",
        RuntimeFailure::ImageMissing => "image_missing",
        RuntimeFailure::PortInUse => "port_in_use",
        RuntimeFailure::NameConflict => "name_conflict",
        RuntimeFailure::NotFound => "not_found",
        RuntimeFailure::StartFailed => "start_failed",
        RuntimeFailure::Timeout => "timeout",
        RuntimeFailure::Unsupported => "unsupported",
        _ => "other",
    }
}

/// The `RuntimeFailure` of a code from [`failure_code`]; unknown codes are `Other`.
pub fn parse_failure(code: &str) -> RuntimeFailure {
    match code {
        "engine_unavailable" => RuntimeFailure::EngineUnavailable,
        "image_missing" => RuntimeFailure::ImageMissing,
        "port_in_use" => RuntimeFailure::PortInUse,
        "name_conflict" => RuntimeFailure::NameConflict,
        "not_found" => RuntimeFailure::NotFound,
        "start_failed" => RuntimeFailure::StartFailed,
        "timeout" => RuntimeFailure::Timeout,
        "unsupported" => RuntimeFailure::Unsupported,
        _ => RuntimeFailure::Other,
    }
}

/// An error as it crosses the wire: runtime failures keep their kind, the rest are `other`.
pub fn call_error(e: &Error) -> v1::CallError {
    v1::CallError {
        kind: failure_code(e.runtime_failure().unwrap_or(RuntimeFailure::Other)).to_owned(),
        message: e.to_string(),
    }
}

impl From<v1::CallError> for Error {
    fn from(e: v1::CallError) -> Self {
        Error::runtime(parse_failure(&e.kind), e.message)
    }
}

fn invalid(what: &str, detail: impl std::fmt::Display) -> Error {
    Error::runtime(
        RuntimeFailure::Other,
        format!("malformed agent message: {what}: {detail}"),
    )
}

fn labels(map: &std::collections::HashMap<String, String>) -> BTreeMap<String, String> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn owner_of(map: &std::collections::HashMap<String, String>) -> Result<Owner> {
    Owner::from_labels(&labels(map)).ok_or_else(|| invalid("owner labels", "missing or malformed"))
}

impl From<&WorkloadSpec> for v1::WorkloadSpec {
    fn from(s: &WorkloadSpec) -> Self {
        v1::WorkloadSpec {
            name: s.name.clone(),
            owner_labels: s.owner.labels().into_iter().collect(),
            image: s.image.as_ref().map(ToString::to_string),
            command: s
                .command
                .as_ref()
                .map(|args| v1::Argv { args: args.clone() }),
            env: s
                .env
                .iter()
                .map(|(k, v)| v1::EnvVar {
                    key: k.clone(),
                    value: v.expose().to_owned(),
                    secret: matches!(v, EnvValue::Secret(_)),
                })
                .collect(),
            working_dir: s.working_dir.clone(),
            port: s.port.map(u32::from),
            publish: s.publish.map(|p| v1::PortBinding {
                host_ip: p.host_ip.to_string(),
                host_port: p.host_port.map(u32::from),
            }),
            network: s.network.as_ref().map(|n| v1::NetworkAttachment {
                network: n.network.clone(),
                aliases: n.aliases.clone(),
            }),
            volumes: s
                .volumes
                .iter()
                .map(|v| v1::VolumeMount {
                    name: v.name.clone(),
                    mount_path: v.mount_path.clone(),
                    shared: v.shared,
                })
                .collect(),
            cpu_limit: s.cpu_limit,
            memory_limit_mb: s.memory_limit_mb,
            restart: Some(match s.restart {
                RestartPolicy::UnlessStopped => v1::RestartPolicy {
                    kind: v1::restart_policy::Kind::UnlessStopped.into(),
                    max_retries: 0,
                },
                RestartPolicy::Never => v1::RestartPolicy {
                    kind: v1::restart_policy::Kind::Never.into(),
                    max_retries: 0,
                },
                RestartPolicy::OnFailure { max_retries } => v1::RestartPolicy {
                    kind: v1::restart_policy::Kind::OnFailure.into(),
                    max_retries,
                },
            }),
        }
    }
}

fn port(what: &str, p: u32) -> Result<u16> {
    u16::try_from(p).map_err(|_| invalid(what, format!("{p} is not a port")))
}

impl TryFrom<&v1::WorkloadSpec> for WorkloadSpec {
    type Error = Error;

    fn try_from(s: &v1::WorkloadSpec) -> Result<Self> {
        let restart = s.restart.unwrap_or_default();
        Ok(WorkloadSpec {
            name: s.name.clone(),
            owner: owner_of(&s.owner_labels)?,
            image: s
                .image
                .as_deref()
                .map(ImageRef::parse)
                .transpose()
                .map_err(|e| invalid("image", e))?,
            command: s.command.as_ref().map(|a| a.args.clone()),
            env: s
                .env
                .iter()
                .map(|e| {
                    let value = if e.secret {
                        EnvValue::Secret(SecretString::new(e.value.clone()))
                    } else {
                        EnvValue::Plain(e.value.clone())
                    };
                    (e.key.clone(), value)
                })
                .collect(),
            working_dir: s.working_dir.clone(),
            port: s.port.map(|p| port("port", p)).transpose()?,
            publish: s
                .publish
                .as_ref()
                .map(|p| -> Result<_> {
                    Ok(clank_core::runtime::PortBinding {
                        host_ip: p.host_ip.parse().map_err(|e| invalid("host_ip", e))?,
                        host_port: p.host_port.map(|p| port("host_port", p)).transpose()?,
                    })
                })
                .transpose()?,
            network: s.network.as_ref().map(|n| NetworkAttachment {
                network: n.network.clone(),
                aliases: n.aliases.clone(),
            }),
            volumes: s
                .volumes
                .iter()
                .map(|v| VolumeMount {
                    name: v.name.clone(),
                    mount_path: v.mount_path.clone(),
                    shared: v.shared,
                })
                .collect(),
            cpu_limit: s.cpu_limit,
            memory_limit_mb: s.memory_limit_mb,
            restart: match restart.kind() {
                v1::restart_policy::Kind::UnlessStopped => RestartPolicy::UnlessStopped,
                v1::restart_policy::Kind::Never => RestartPolicy::Never,
                v1::restart_policy::Kind::OnFailure => RestartPolicy::OnFailure {
                    max_retries: restart.max_retries,
                },
            },
        })
    }
}

impl From<&WorkloadStatus> for v1::WorkloadStatus {
    fn from(w: &WorkloadStatus) -> Self {
        use v1::workload_status::State;
        let (state, at, exit_code, oom_killed) = match &w.state {
            WorkloadState::Created => (State::Created, 0, None, false),
            WorkloadState::Running { started_at } => {
                (State::Running, started_at.as_millis(), None, false)
            }
            WorkloadState::Restarting => (State::Restarting, 0, None, false),
            WorkloadState::Exited {
                code,
                oom_killed,
                finished_at,
            } => (
                State::Exited,
                finished_at.map_or(0, Timestamp::as_millis),
                *code,
                *oom_killed,
            ),
        };
        v1::WorkloadStatus {
            // Remote workloads are addressed by name: unique per server, stable across
            // container re-creation by the agent.
            name: w.name.clone(),
            owner_labels: w.owner.labels().into_iter().collect(),
            state: state.into(),
            at_unix_ms: at,
            exit_code,
            oom_killed,
            restart_count: w.restart_count,
            endpoint: w.endpoint.map(|e| e.to_string()),
        }
    }
}

impl TryFrom<&v1::WorkloadStatus> for WorkloadStatus {
    type Error = Error;

    fn try_from(w: &v1::WorkloadStatus) -> Result<Self> {
        use v1::workload_status::State;
        let at = (w.at_unix_ms != 0).then(|| Timestamp::from_millis(w.at_unix_ms));
        let state = match w.state() {
            State::Created => WorkloadState::Created,
            State::Running => WorkloadState::Running {
                started_at: at.unwrap_or(Timestamp::EPOCH),
            },
            State::Restarting => WorkloadState::Restarting,
            State::Exited => WorkloadState::Exited {
                code: w.exit_code,
                oom_killed: w.oom_killed,
                finished_at: at,
            },
        };
        Ok(WorkloadStatus {
            id: WorkloadId(w.name.clone()),
            name: w.name.clone(),
            owner: owner_of(&w.owner_labels)?,
            state,
            restart_count: w.restart_count,
            endpoint: w
                .endpoint
                .as_deref()
                .map(str::parse::<SocketAddr>)
                .transpose()
                .map_err(|e| invalid("endpoint", e))?,
        })
    }
}

/// Requests for a server's own proxy travel as JSON in `Call.proxy_json`: clank-core's
/// [`ProxyCall`] and [`ProxyReply`], shared with the daemon's local proxy control socket.
pub use clank_core::proxy::{ProxyCall, ProxyReply};

/// A duration in whole milliseconds, saturating.
pub fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clank_core::id::{DeploymentId, EnvironmentId, ProjectId, ServiceId, WorkspaceId};
    use clank_core::runtime::PortBinding;

    fn owner() -> Owner {
        Owner {
            workspace: WorkspaceId::new(),
            project: ProjectId::new(),
            environment: EnvironmentId::new(),
            service: ServiceId::new(),
            deployment: DeploymentId::new(),
            process: "web".into(),
            replica: 1,
        }
    }

    #[test]
    fn workload_spec_survives_the_wire_with_secrets_still_marked() {
        let spec = WorkloadSpec {
            name: "clank-shop--production--api--3--web--1".into(),
            owner: owner(),
            image: Some(ImageRef::parse("clank-testapp:latest").unwrap()),
            command: Some(vec![]),
            env: vec![
                ("PLAIN".into(), EnvValue::Plain("a".into())),
                (
                    "TOKEN".into(),
                    EnvValue::Secret(SecretString::new("s3cret")),
                ),
            ],
            working_dir: Some("/app".into()),
            port: Some(8080),
            publish: Some(PortBinding::loopback()),
            network: Some(NetworkAttachment {
                network: "clank-shop".into(),
                aliases: vec!["api".into()],
            }),
            volumes: vec![VolumeMount {
                name: "clank-shop-api-data".into(),
                mount_path: "/data".into(),
                shared: false,
            }],
            cpu_limit: 0.5,
            memory_limit_mb: 256,
            restart: RestartPolicy::OnFailure { max_retries: 3 },
        };
        let back = WorkloadSpec::try_from(&v1::WorkloadSpec::from(&spec)).unwrap();
        assert_eq!(back.name, spec.name);
        assert_eq!(back.owner, spec.owner);
        assert_eq!(back.image, spec.image);
        assert_eq!(
            back.command,
            Some(vec![]),
            "an empty argv is not the image's own"
        );
        assert_eq!(back.env, spec.env);
        assert_eq!(back.publish, spec.publish);
        assert_eq!(back.network, spec.network);
        assert_eq!(back.volumes, spec.volumes);
        assert_eq!(back.restart, spec.restart);
        assert_eq!((back.cpu_limit, back.memory_limit_mb), (0.5, 256));
        assert!(!format!("{back:?}").contains("s3cret"));
    }

    #[test]
    fn workload_status_round_trips_and_is_addressed_by_name() {
        let w = WorkloadStatus {
            id: WorkloadId("0123abcd".into()),
            name: "clank-a--b--c--1--web--0".into(),
            owner: owner(),
            state: WorkloadState::Exited {
                code: Some(137),
                oom_killed: true,
                finished_at: Some(Timestamp::from_millis(1_700_000_000_000)),
            },
            restart_count: 2,
            endpoint: Some("127.0.0.1:32768".parse().unwrap()),
        };
        let back = WorkloadStatus::try_from(&v1::WorkloadStatus::from(&w)).unwrap();
        assert_eq!(back.id, WorkloadId(w.name.clone()));
        assert_eq!(back.state, w.state);
        assert_eq!(back.endpoint, w.endpoint);
        assert_eq!(back.owner, w.owner);
    }

    #[test]
    fn malformed_messages_are_refused_not_trusted() {
        let mut spec = v1::WorkloadSpec::from(&WorkloadSpec {
            name: "x".into(),
            owner: owner(),
            image: None,
            command: None,
            env: vec![],
            working_dir: None,
            port: Some(80),
            publish: None,
            network: None,
            volumes: vec![],
            cpu_limit: 1.0,
            memory_limit_mb: 64,
            restart: RestartPolicy::Never,
        });
        spec.port = Some(70_000);
        assert!(WorkloadSpec::try_from(&spec).is_err());
        spec.port = Some(80);
        spec.owner_labels.clear();
        assert!(WorkloadSpec::try_from(&spec).is_err());
    }

    #[test]
    fn every_failure_code_parses_back_to_its_failure() {
        for f in [
            RuntimeFailure::EngineUnavailable,
            RuntimeFailure::ImageMissing,
            RuntimeFailure::PortInUse,
            RuntimeFailure::NameConflict,
            RuntimeFailure::NotFound,
            RuntimeFailure::StartFailed,
            RuntimeFailure::Timeout,
            RuntimeFailure::Unsupported,
            RuntimeFailure::Other,
        ] {
            assert_eq!(parse_failure(failure_code(f)), f);
        }
    }

    #[test]
    fn the_release_message_binds_version_checksum_and_size() {
        let sha = "ab".repeat(32);
        let m = release_message("1.2.3", &sha, 42).unwrap();
        assert_eq!(
            String::from_utf8(m.clone()).unwrap(),
            format!("clank-agent-release\nv1\n1.2.3\n{sha}\n42")
        );
        assert_ne!(m, release_message("1.2.4", &sha, 42).unwrap());
        assert_ne!(m, release_message("1.2.3", &"cd".repeat(32), 42).unwrap());
        assert_ne!(m, release_message("1.2.3", &sha, 43).unwrap());
    }

    #[test]
    fn the_release_message_refuses_fields_that_could_shift_between_lines() {
        let sha = "ab".repeat(32);
        // A version holding a newline could move text between the fields.
        assert!(release_message("1.0\nab", &sha, 1).is_err());
        assert!(release_message("", &sha, 1).is_err());
        assert!(release_message(&"v".repeat(65), &sha, 1).is_err());
        assert!(release_message("1.0", &format!("{}\n1", &sha[..62]), 1).is_err());
        assert!(release_message("1.0", &sha.to_uppercase(), 1).is_err());
        assert!(release_message("1.0", "abc", 1).is_err());
    }
}
