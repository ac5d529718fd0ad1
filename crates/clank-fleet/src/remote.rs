//! A remote server as the engine sees it: a [`Runtime`] that edits the server's desired state
//! and waits for the agent to report it applied, and a [`Proxy`] that drives the proxy
//! running next to the agent. Workloads are addressed by name (unique per server).

use std::collections::BTreeMap;
use std::time::Duration;

use clank_core::error::{Error, Result, RuntimeFailure};
use clank_core::id::ServerId;
use clank_core::image::ImageRef;
use clank_core::model::HealthCheck;
use clank_core::proxy::{ProxyCall, ProxyReply, ProxyTransport};
use clank_core::runtime::{
    ExecOutput, ExecRequest, LogLine, LogOptions, LogStream, LogStreamBox, OwnerFilter,
    ProbeResult, PullProgress, RegistryAuth, Runtime, RuntimeCapabilities, TerminalSession,
    TerminalSize, WorkloadId, WorkloadSpec, WorkloadStats, WorkloadStatus,
};
use clank_core::time::Timestamp;
use clank_proto::v1::{self, call::Method, reply::Result as R};

use crate::Fleet;

/// The runtime of one remote server.
#[derive(Debug, Clone)]
pub struct AgentRuntime {
    fleet: Fleet,
    server: ServerId,
}

impl AgentRuntime {
    pub fn new(fleet: Fleet, server: ServerId) -> Self {
        AgentRuntime { fleet, server }
    }

    fn connected(&self) -> bool {
        self.fleet.slot(self.server).session().is_some()
    }

    /// Apply `edit` to the desired state; when the agent is connected, wait until it has
    /// applied it. A disconnected agent converges when it reconnects.
    async fn converge(&self, edit: impl FnOnce(&mut crate::Desired)) -> Result<()> {
        let generation = self.fleet.edit_desired(self.server, edit).await?;
        if self.connected() {
            self.fleet.wait_applied(self.server, generation).await?;
        }
        Ok(())
    }

    async fn listing(&self, names: Vec<String>) -> Result<Vec<WorkloadStatus>> {
        let timeout = self.fleet.config().call_timeout;
        match self
            .fleet
            .call_once(
                self.server,
                Method::List(v1::ListWorkloads { names }),
                timeout,
            )
            .await?
        {
            R::Workloads(list) => list
                .workloads
                .iter()
                .map(WorkloadStatus::try_from)
                .collect(),
            other => Err(unexpected(&other)),
        }
    }
}

pub(crate) fn unexpected(r: &R) -> Error {
    Error::runtime(
        RuntimeFailure::Other,
        format!("the agent answered with an unexpected reply: {r:?}"),
    )
}

fn labels(l: &BTreeMap<String, String>) -> std::collections::HashMap<String, String> {
    l.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

#[async_trait::async_trait]
impl Runtime for AgentRuntime {
    fn name(&self) -> String {
        format!("agent:{}", self.server)
    }

    fn capabilities(&self) -> RuntimeCapabilities {
        // Agents run workloads through the server's Docker engine.
        RuntimeCapabilities {
            isolated_networks: true,
            resource_limits: true,
            images: true,
            // `ExecTerminal` calls (agents with the `terminals` feature).
            terminals: true,
        }
    }

    async fn ensure_network(&self, name: &str, l: &BTreeMap<String, String>) -> Result<()> {
        let (name, l) = (name.to_owned(), labels(l));
        self.converge(move |d| {
            d.networks.insert(name, l);
        })
        .await
    }

    async fn remove_network(&self, name: &str) -> Result<()> {
        self.converge(|d| {
            d.networks.remove(name);
        })
        .await
    }

    async fn ensure_volume(&self, name: &str, l: &BTreeMap<String, String>) -> Result<()> {
        let (name, l) = (name.to_owned(), labels(l));
        self.converge(move |d| {
            d.volumes.insert(name, l);
        })
        .await
    }

    async fn remove_volume(&self, name: &str) -> Result<()> {
        // Dropping a volume from the desired state keeps its data: the agent never deletes
        // volumes on its own, and deleting data is not something to do by reconciliation.
        Err(Error::runtime(
            RuntimeFailure::Unsupported,
            format!(
                "volume `{name}` lives on server {}: delete it there (`docker volume rm`)",
                self.server
            ),
        ))
    }

    /// The image already reached the server in `pull` (the engine pulls before it starts or
    /// stops anything); the agent falls back to a pull of its own when it applies the workload.
    async fn prepare(&self, _spec: &WorkloadSpec) -> Result<()> {
        Ok(())
    }

    /// Make the server's engine hold `image`: already there, pulled from its registry by the
    /// agent, or sent from the control plane's engine over the agent's connection.
    async fn pull(
        &self,
        image: &ImageRef,
        auth: Option<&RegistryAuth>,
        within: Duration,
        progress: PullProgress<'_>,
    ) -> Result<Option<String>> {
        crate::images::ensure(&self.fleet, self.server, image, auth, within, progress).await
    }

    async fn start(&self, spec: &WorkloadSpec) -> Result<WorkloadStatus> {
        if !self.connected() {
            return Err(Error::runtime(
                RuntimeFailure::EngineUnavailable,
                format!("server {}: the agent is not connected", self.server),
            ));
        }
        let name = spec.name.clone();
        let wire = v1::DesiredWorkload {
            spec: Some(v1::WorkloadSpec::from(spec)),
            running: true,
            stop_grace_ms: 0,
        };
        let owner = wire.spec.as_ref().map(|s| s.owner_labels.clone());
        // A name another owner's workload holds is refused, as on Docker: never overwritten.
        let mut taken = false;
        let generation = self
            .fleet
            .edit_desired(self.server, |d| {
                let holder = d
                    .workloads
                    .get(&name)
                    .map(|w| w.spec.as_ref().map(|s| &s.owner_labels));
                if holder.is_some_and(|labels| labels != owner.as_ref()) {
                    taken = true;
                } else {
                    d.workloads.insert(name.clone(), wire);
                }
            })
            .await?;
        if taken {
            return Err(Error::runtime(
                RuntimeFailure::NameConflict,
                format!(
                    "server {}: workload name `{name}` is taken by a workload of another owner",
                    self.server
                ),
            ));
        }
        let observed = self.fleet.wait_applied(self.server, generation).await?;
        if let Some(e) = observed.errors.iter().find(|e| e.name == name) {
            // A failed start leaves nothing behind: take it out of the desired state again.
            let err = Error::runtime(clank_proto::parse_failure(&e.kind), e.message.clone());
            self.fleet
                .edit_desired(self.server, |d| {
                    d.workloads.remove(&name);
                })
                .await?;
            return Err(err);
        }
        match observed.workloads.iter().find(|w| w.name == name) {
            Some(w) => WorkloadStatus::try_from(w),
            None => Err(Error::runtime(
                RuntimeFailure::StartFailed,
                format!(
                    "server {}: the agent applied generation {generation} but does not report \
                     workload `{name}`",
                    self.server
                ),
            )),
        }
    }

    async fn inspect(&self, id: &WorkloadId) -> Result<Option<WorkloadStatus>> {
        Ok(self.listing(vec![id.0.clone()]).await?.into_iter().next())
    }

    async fn stop(&self, id: &WorkloadId, grace: Duration) -> Result<()> {
        // The desired state is the server's whole truth: a workload not in it does not exist.
        let mut known = false;
        self.converge(|d| {
            if let Some(w) = d.workloads.get_mut(&id.0) {
                known = true;
                w.running = false;
                w.stop_grace_ms = u32::try_from(grace.as_millis()).unwrap_or(u32::MAX);
            }
        })
        .await?;
        if !known {
            return Err(Error::runtime(
                RuntimeFailure::NotFound,
                format!("server {}: no workload `{}`", self.server, id.0),
            ));
        }
        Ok(())
    }

    async fn remove(&self, id: &WorkloadId) -> Result<()> {
        self.converge(|d| {
            d.workloads.remove(&id.0);
        })
        .await
    }

    async fn list(&self, filter: &OwnerFilter) -> Result<Vec<WorkloadStatus>> {
        Ok(self
            .listing(Vec::new())
            .await?
            .into_iter()
            .filter(|w| filter.matches(&w.owner))
            .collect())
    }

    async fn logs(&self, id: &WorkloadId, options: LogOptions) -> Result<LogStreamBox> {
        // An unknown workload is an error of the call, not of the stream's first line (as on
        // Docker), and a follow of a quiet workload has no first line to wait for.
        if self.inspect(id).await?.is_none() {
            return Err(Error::runtime(
                RuntimeFailure::NotFound,
                format!("server {}: no workload `{}`", self.server, id.0),
            ));
        }
        let not_before = match (options.follow, options.tail) {
            (true, Some(0)) => u64::try_from(Timestamp::now().as_millis()).unwrap_or(0),
            _ => 0,
        };
        let request = v1::LogsRequest {
            name: id.0.clone(),
            follow: options.follow,
            tail: options.tail.map(|t| t as u64),
            not_before_unix_ms: not_before,
        };
        let (call, mut rx) = self.fleet.call(self.server, Method::Logs(request)).await?;
        let fleet = self.fleet.clone();
        let server = self.server;
        let stream = async_stream(move |tx| async move {
            while let Some(r) = rx.recv().await {
                let item = match r {
                    R::LogLine(l) => Ok(LogLine {
                        stream: if l.stderr {
                            LogStream::Stderr
                        } else {
                            LogStream::Stdout
                        },
                        line: l.line,
                        at: (l.at_unix_ms != 0).then(|| Timestamp::from_millis(l.at_unix_ms)),
                    }),
                    R::End(_) => break,
                    R::Error(e) => Err(e.into()),
                    other => Err(unexpected(&other)),
                };
                if tx.send(item).await.is_err() {
                    // The reader went away: stop the agent's follow and forget the call.
                    let _ = fleet.call(server, Method::Cancel(call)).await;
                    if let Some(s) = fleet.slot(server).session() {
                        crate::lock(&s.calls.pending).remove(&call);
                    }
                    break;
                }
            }
        });
        Ok(stream)
    }

    async fn exec(&self, id: &WorkloadId, request: &ExecRequest) -> Result<ExecOutput> {
        if request.tty {
            return Err(Error::runtime(
                RuntimeFailure::Unsupported,
                "a command on a terminal runs through `exec_interactive`, not `exec`",
            ));
        }
        let call = v1::ExecRequest {
            name: id.0.clone(),
            command: request.command.clone(),
            timeout_ms: u32::try_from(request.timeout.as_millis()).unwrap_or(u32::MAX),
        };
        let wait = request.timeout + self.fleet.config().call_timeout;
        match self
            .fleet
            .call_once(self.server, Method::Exec(call), wait)
            .await?
        {
            R::Exec(e) => Ok(ExecOutput {
                exit_code: e.exit_code,
                stdout: e.stdout,
                stderr: e.stderr,
            }),
            other => Err(unexpected(&other)),
        }
    }

    /// An `ExecTerminal` call: the agent runs the command on a terminal of its engine; output,
    /// keystrokes and resizes cross the session, windowed both ways (see [`crate::terminal`]).
    async fn exec_interactive(
        &self,
        id: &WorkloadId,
        command: &[String],
        size: TerminalSize,
    ) -> Result<TerminalSession> {
        crate::terminal::open(&self.fleet, self.server, id, command, size).await
    }

    async fn stats(&self, id: &WorkloadId) -> Result<WorkloadStats> {
        let timeout = self.fleet.config().call_timeout;
        match self
            .fleet
            .call_once(self.server, Method::Stats(id.0.clone()), timeout)
            .await?
        {
            R::Stats(s) => Ok(WorkloadStats {
                cpu_percent: s.cpu_percent,
                memory_bytes: s.memory_bytes,
                memory_limit_bytes: s.memory_limit_bytes,
            }),
            other => Err(unexpected(&other)),
        }
    }

    async fn probe(
        &self,
        workload: &WorkloadStatus,
        check: &HealthCheck,
        timeout: Duration,
    ) -> Result<Option<ProbeResult>> {
        let (kind, path) = match check {
            HealthCheck::Http { path, .. } => ("http", path.clone()),
            HealthCheck::Tcp { .. } => ("tcp", String::new()),
            // Judged from the workload's state, which the engine already has.
            HealthCheck::Running { .. } => return Ok(None),
        };
        let call = v1::ProbeRequest {
            name: workload.name.clone(),
            kind: kind.to_owned(),
            path,
            timeout_ms: u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX),
        };
        let wait = timeout + self.fleet.config().call_timeout;
        match self
            .fleet
            .call_once(self.server, Method::Probe(call), wait)
            .await?
        {
            R::Probe(p) => Ok(Some(ProbeResult {
                healthy: p.healthy,
                detail: format!("{} (on server {})", p.detail, self.server),
                answered: p.answered,
            })),
            other => Err(unexpected(&other)),
        }
    }
}

/// Log lines pushed by a task into a bounded channel, as a stream.
fn async_stream<F, Fut>(producer: F) -> LogStreamBox
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<LogLine>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    tokio::spawn(producer(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// The proxy on a remote server, driven through its agent.
#[derive(Debug, Clone)]
pub struct AgentProxy {
    fleet: Fleet,
    server: ServerId,
}

impl AgentProxy {
    pub fn new(fleet: Fleet, server: ServerId) -> Self {
        AgentProxy { fleet, server }
    }
}

/// Proxy calls travel as JSON in the agent protocol's `ProxyJson` call.
#[async_trait::async_trait]
impl ProxyTransport for AgentProxy {
    async fn send(&self, call: &ProxyCall, timeout: Duration) -> Result<ProxyReply> {
        let json = serde_json::to_string(call).map_err(|e| Error::Internal(e.to_string()))?;
        match self
            .fleet
            .call_once(self.server, Method::ProxyJson(json), timeout)
            .await?
        {
            R::ProxyJson(reply) => serde_json::from_str(&reply).map_err(|e| {
                Error::runtime(
                    RuntimeFailure::Other,
                    format!("malformed proxy reply from the agent: {e}"),
                )
            }),
            other => Err(unexpected(&other)),
        }
    }

    fn call_timeout(&self) -> Duration {
        self.fleet.config().call_timeout
    }
}
