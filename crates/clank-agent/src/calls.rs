//! Calls from the control plane, answered from this server: workload listings, logs (with
//! follow and cancel), exec, health probes of locally published ports, stats, and the
//! server's proxy routes. Terminals (`ExecTerminal`) are [`crate::terminal`]'s.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use clank_core::Timestamp;
use clank_core::error::{Error, RuntimeFailure};
use clank_core::model::HealthCheck;
use clank_core::runtime::{
    ExecRequest, LogOptions, LogStream, OwnerFilter, WorkloadId, WorkloadStatus,
};
use clank_proto::ProxyCall;
use clank_proto::v1::{self, agent_message::Body as Up, call::Method, reply::Result as R};
use futures_util::StreamExt;

use crate::{Shared, lock};

/// Log follows in progress, by call id, so `cancel` can stop them.
#[derive(Debug, Default)]
pub(crate) struct Calls {
    follows: StdMutex<HashMap<u64, tokio::task::AbortHandle>>,
}

pub(crate) fn dispatch(shared: Arc<Shared>, call: v1::Call) {
    let id = call.call_id;
    let Some(method) = call.method else { return };
    if let Method::Cancel(target) = method {
        if let Some(h) = lock(&shared.calls.follows).remove(&target) {
            h.abort();
        }
        shared.terminals.cancel(target);
        return;
    }
    if let Method::Terminal(req) = method {
        crate::terminal::start(shared, id, req);
        return;
    }
    let task_shared = shared.clone();
    let task = tokio::spawn(async move {
        let shared = task_shared;
        let result = match method {
            Method::Logs(req) => logs(&shared, id, req).await,
            Method::Image(req) => crate::images::ensure(&shared, id, req).await,
            other => answer(&shared, other).await,
        };
        let result = result.unwrap_or_else(|e| R::Error(clank_proto::call_error(&e)));
        reply(&shared, id, result).await;
        lock(&shared.calls.follows).remove(&id);
    });
    lock(&shared.calls.follows).insert(id, task.abort_handle());
}

pub(crate) async fn reply(shared: &Shared, call_id: u64, result: R) {
    shared
        .send_up(Up::Reply(v1::Reply {
            call_id,
            result: Some(result),
        }))
        .await;
}

async fn find(shared: &Shared, name: &str) -> Result<WorkloadStatus, Error> {
    shared
        .runtime
        .list(&OwnerFilter::default())
        .await?
        .into_iter()
        .find(|w| w.name == name)
        .ok_or_else(|| {
            Error::runtime(
                RuntimeFailure::NotFound,
                format!("no workload `{name}` on this server"),
            )
        })
}

async fn answer(shared: &Shared, method: Method) -> Result<R, Error> {
    match method {
        Method::List(req) => {
            let all = shared.runtime.list(&OwnerFilter::default()).await?;
            let workloads = all
                .iter()
                .filter(|w| req.names.is_empty() || req.names.contains(&w.name))
                .map(v1::WorkloadStatus::from)
                .collect();
            Ok(R::Workloads(v1::WorkloadList { workloads }))
        }
        Method::Exec(req) => {
            let out = shared
                .runtime
                .exec(
                    &WorkloadId(req.name),
                    &ExecRequest {
                        command: req.command,
                        tty: false,
                        timeout: Duration::from_millis(req.timeout_ms.into()),
                    },
                )
                .await?;
            Ok(R::Exec(v1::ExecResult {
                exit_code: out.exit_code,
                stdout: out.stdout,
                stderr: out.stderr,
            }))
        }
        Method::Probe(req) => {
            let w = find(shared, &req.name).await?;
            let check = match req.kind.as_str() {
                "http" => HealthCheck::Http {
                    port: 0,
                    path: req.path,
                },
                "tcp" => HealthCheck::Tcp { port: 0 },
                other => {
                    return Err(Error::runtime(
                        RuntimeFailure::Unsupported,
                        format!("unknown probe kind `{other}`"),
                    ));
                }
            };
            let timeout = Duration::from_millis(req.timeout_ms.into());
            let o = clank_engine::health::probe(&check, &w, timeout, Timestamp::now()).await;
            Ok(R::Probe(v1::ProbeResult {
                healthy: o.healthy,
                detail: o.detail,
                answered: o.answered,
            }))
        }
        Method::Stats(name) => {
            let s = shared.runtime.stats(&WorkloadId(name)).await?;
            Ok(R::Stats(v1::WorkloadStats {
                cpu_percent: s.cpu_percent,
                memory_bytes: s.memory_bytes,
                memory_limit_bytes: s.memory_limit_bytes,
            }))
        }
        Method::ProxyJson(json) => proxy(shared, &json).await,
        Method::Logs(_) | Method::Image(_) | Method::Cancel(_) | Method::Terminal(_) => {
            Err(Error::Internal("dispatched elsewhere".into()))
        }
    }
}

async fn proxy(shared: &Shared, json: &str) -> Result<R, Error> {
    let call: ProxyCall = serde_json::from_str(json)
        .map_err(|e| Error::runtime(RuntimeFailure::Other, format!("malformed proxy call: {e}")))?;
    // A failure travels back as the reply's `Failed` (kind, runtime failure, message), as over
    // the proxy's control socket, so the control plane sees the error the proxy gave (a
    // refused cutover stays a conflict) rather than an internal call failure.
    let reply = call.apply(&*shared.proxy).await;
    serde_json::to_string(&reply)
        .map(R::ProxyJson)
        .map_err(|e| Error::Internal(e.to_string()))
}

/// Lines of recent history read to cover the gap between the control plane's "follow from now"
/// and this agent attaching to the workload.
const ATTACH_GAP_LINES: usize = 1000;

/// Stream log lines as replies; the final reply (`end`) is sent by the dispatcher.
async fn logs(shared: &Shared, id: u64, req: v1::LogsRequest) -> Result<R, Error> {
    let mut options = LogOptions {
        follow: req.follow,
        tail: req.tail.map(|t| usize::try_from(t).unwrap_or(usize::MAX)),
    };
    // "No history" means none before the control plane asked, not before this agent attached:
    // take the recent history too and drop, by the runtime's timestamps, what came earlier.
    let not_before = (req.not_before_unix_ms > 0 && req.follow && req.tail == Some(0))
        .then(|| Timestamp::from_millis(i64::try_from(req.not_before_unix_ms).unwrap_or(i64::MAX)));
    if not_before.is_some() {
        options.tail = Some(ATTACH_GAP_LINES);
    }
    let mut lines = shared.runtime.logs(&WorkloadId(req.name), options).await?;
    while let Some(line) = lines.next().await {
        let line = line?;
        if let (Some(t), Some(at)) = (not_before, line.at)
            && at < t
        {
            continue;
        }
        reply(
            shared,
            id,
            R::LogLine(v1::LogLine {
                stderr: line.stream == LogStream::Stderr,
                line: line.line,
                at_unix_ms: line.at.map_or(0, Timestamp::as_millis),
            }),
        )
        .await;
    }
    Ok(R::End(v1::Empty {}))
}
