//! The running service: its output and commands run in it, across process types and replicas
//! of the ACTIVE deployment. A [`WorkloadSelector`] picks a process type and/or replica;
//! logs without one follow every workload (each line says which), exec without one goes to
//! `web` replica 0 (or the first process type's). A process type or replica the deployment
//! does not have is refused by name, listing what it has.

use std::sync::Arc;
use std::time::Duration;

use clank_core::address::ServiceAddress;
use clank_core::model::{Deployment, ProcessSpec};
use clank_core::runtime::{
    ExecOutput, ExecRequest, LogOptions, OwnerFilter, Runtime, TerminalSession, TerminalSize,
    WorkloadStatus,
};
use clank_core::{Error, InvalidInput, Result};
use futures_util::stream::{self, BoxStream, StreamExt};

use crate::Platform;

/// Which workloads of the ACTIVE deployment: a process type, a replica, both, or (default)
/// all of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkloadSelector {
    pub process: Option<String>,
    pub replica: Option<u32>,
}

pub use clank_api::services::WorkloadLogLine;

/// Lines of one or more workloads as they come.
pub type WorkloadLogStream = BoxStream<'static, Result<WorkloadLogLine>>;

type Selected = (Vec<WorkloadStatus>, Arc<dyn Runtime>);

impl Platform {
    /// The ACTIVE deployment's workloads `selector` picks, `web` first, then by process type
    /// and replica.
    async fn active_workloads(
        &self,
        addr: &ServiceAddress,
        selector: &WorkloadSelector,
    ) -> Result<Selected> {
        let service = self.service(addr).await?;
        let active = service.active_deployment.ok_or_else(|| {
            Error::Conflict(format!(
                "service `{addr}` has no ACTIVE deployment to read from"
            ))
        })?;
        let deployment = self
            .catalog
            .require::<Deployment>(&active.to_string())
            .await?;
        let runtime = self.engine.runtime_on(deployment.snapshot.server_id)?;
        let filter = OwnerFilter {
            deployment: Some(active),
            ..OwnerFilter::default()
        };
        let mut workloads = runtime.list(&filter).await?;
        workloads.sort_by(|a, b| {
            let key = |w: &WorkloadStatus| {
                (
                    w.owner.process != ProcessSpec::WEB,
                    w.owner.process.clone(),
                    w.owner.replica,
                )
            };
            key(a).cmp(&key(b))
        });
        check_selector(&deployment, &workloads, selector)?;
        workloads.retain(|w| {
            selector
                .process
                .as_ref()
                .is_none_or(|p| *p == w.owner.process)
                && selector.replica.is_none_or(|r| r == w.owner.replica)
        });
        if workloads.is_empty() {
            return Err(Error::not_found(
                "workload",
                format!(
                    "{addr} (ACTIVE deployment #{}{})",
                    deployment.number,
                    describe(selector)
                ),
            ));
        }
        Ok((workloads, runtime))
    }

    /// The running service's own output (stdout and stderr): the last `tail` lines of each
    /// selected workload and then, with `follow`, new lines as they come. Without `follow`
    /// the history of several workloads is merged in time order (the newest `tail` overall);
    /// followed streams interleave as lines arrive.
    pub async fn logs(
        &self,
        addr: &ServiceAddress,
        selector: &WorkloadSelector,
        follow: bool,
        tail: Option<usize>,
    ) -> Result<WorkloadLogStream> {
        let (workloads, runtime) = self.active_workloads(addr, selector).await?;
        let options = LogOptions { follow, tail };
        let mut streams = Vec::with_capacity(workloads.len());
        for w in &workloads {
            let (process, replica) = (w.owner.process.clone(), w.owner.replica);
            let lines = runtime.logs(&w.id, options).await?;
            streams.push(
                lines
                    .map(move |l| {
                        l.map(|line| WorkloadLogLine {
                            process: process.clone(),
                            replica,
                            line,
                        })
                    })
                    .boxed(),
            );
        }
        if follow || streams.len() == 1 {
            return Ok(stream::select_all(streams).boxed());
        }
        let mut history = Vec::new();
        for s in streams {
            history.extend(s.collect::<Vec<_>>().await);
        }
        Ok(stream::iter(merge_history(history, tail)).boxed())
    }

    /// Run a command (argument vector, no shell) in one workload of the running service:
    /// the selected one (`web` replica 0 when nothing is selected).
    /// The workload an exec of `command` runs in (the first `selector` picks), once the
    /// command is one: a program name, no NUL byte.
    async fn exec_target(
        &self,
        addr: &ServiceAddress,
        selector: &WorkloadSelector,
        command: &[String],
    ) -> Result<(WorkloadStatus, Arc<dyn Runtime>)> {
        if command.first().is_none_or(|c| c.is_empty()) {
            return Err(InvalidInput::new(
                "command",
                "empty",
                "a command needs at least a program name",
            )
            .into());
        }
        if command.iter().any(|a| a.contains('\0')) {
            return Err(InvalidInput::new(
                "command",
                "nul",
                "command arguments cannot contain NUL bytes",
            )
            .into());
        }
        let (mut workloads, runtime) = self.active_workloads(addr, selector).await?;
        if workloads.is_empty() {
            return Err(Error::not_found("workload", addr));
        }
        Ok((workloads.swap_remove(0), runtime))
    }

    /// Run `command` on a terminal of `size` in the service's running workload (the first
    /// `selector` picks), for `clank exec -it`.
    pub async fn exec_interactive(
        &self,
        addr: &ServiceAddress,
        selector: &WorkloadSelector,
        command: &[String],
        size: TerminalSize,
    ) -> Result<TerminalSession> {
        let size = size.check()?;
        let (w, runtime) = self.exec_target(addr, selector, command).await?;
        runtime.exec_interactive(&w.id, command, size).await
    }

    pub async fn exec(
        &self,
        addr: &ServiceAddress,
        selector: &WorkloadSelector,
        command: Vec<String>,
        timeout: Duration,
    ) -> Result<ExecOutput> {
        let (w, runtime) = self.exec_target(addr, selector, &command).await?;
        let request = ExecRequest {
            command,
            tty: false,
            timeout,
        };
        runtime.exec(&w.id, &request).await
    }
}

fn describe(selector: &WorkloadSelector) -> String {
    match (&selector.process, selector.replica) {
        (None, None) => String::new(),
        (Some(p), None) => format!(", process `{p}`"),
        (None, Some(r)) => format!(", replica {r}"),
        (Some(p), Some(r)) => format!(", process `{p}` replica {r}"),
    }
}

/// A process type or replica the deployment does not have is bad input, named with what it
/// has; one it has but that runs no workload right now is left to "not found".
fn check_selector(
    d: &Deployment,
    workloads: &[WorkloadStatus],
    selector: &WorkloadSelector,
) -> Result<()> {
    let mut known: Vec<String> = d.snapshot.processes.keys().cloned().collect();
    known.extend(workloads.iter().map(|w| w.owner.process.clone()));
    known.sort();
    known.dedup();
    if let Some(p) = &selector.process {
        if !known.contains(p) {
            return Err(InvalidInput::new(
                "process",
                "unknown",
                format!(
                    "deployment #{} has no process type `{p}`; it has: {}",
                    d.number,
                    known.join(", ")
                ),
            )
            .into());
        }
    }
    if let Some(r) = selector.replica {
        let replicas = match &selector.process {
            Some(p) => d.snapshot.processes.get(p).map(|s| s.replicas),
            None => d.snapshot.processes.values().map(|s| s.replicas).max(),
        }
        .unwrap_or_else(|| {
            workloads
                .iter()
                .filter(|w| {
                    selector
                        .process
                        .as_ref()
                        .is_none_or(|p| *p == w.owner.process)
                })
                .map(|w| w.owner.replica + 1)
                .max()
                .unwrap_or(0)
        });
        if r >= replicas {
            return Err(InvalidInput::new(
                "replica",
                "range",
                format!(
                    "replica {r} does not exist: {} runs {replicas} replica(s), numbered from 0",
                    selector
                        .process
                        .as_ref()
                        .map_or_else(|| "no process type".to_owned(), |p| format!("`{p}`"))
                ),
            )
            .into());
        }
    }
    Ok(())
}

/// Several workloads' histories as one, in time order (lines without a time keep their
/// place after the timed ones), the newest `tail` of them.
fn merge_history(
    lines: Vec<Result<WorkloadLogLine>>,
    tail: Option<usize>,
) -> Vec<Result<WorkloadLogLine>> {
    let (mut ok, errors): (Vec<_>, Vec<_>) = lines.into_iter().partition(Result::is_ok);
    ok.sort_by_key(|l| l.as_ref().ok().map(|l| (l.line.at.is_none(), l.line.at)));
    if let Some(tail) = tail {
        let skip = ok.len().saturating_sub(tail);
        ok.drain(..skip);
    }
    ok.extend(errors);
    ok
}

#[cfg(test)]
mod tests {
    use clank_core::Timestamp;
    use clank_core::runtime::{LogLine, LogStream};

    use super::*;

    fn line(process: &str, at: Option<i64>, text: &str) -> Result<WorkloadLogLine> {
        Ok(WorkloadLogLine {
            process: process.into(),
            replica: 0,
            line: LogLine {
                stream: LogStream::Stdout,
                line: text.into(),
                at: at.map(Timestamp::from_millis),
            },
        })
    }

    #[test]
    fn histories_of_several_workloads_merge_in_time_order_and_keep_the_newest() {
        let merged = merge_history(
            vec![
                line("web", Some(1), "a"),
                line("web", Some(4), "d"),
                line("worker", Some(2), "b"),
                line("worker", Some(3), "c"),
            ],
            Some(3),
        );
        let texts: Vec<String> = merged
            .into_iter()
            .map(|l| {
                format!(
                    "{}:{}",
                    l.as_ref().unwrap().workload(),
                    l.unwrap().line.line
                )
            })
            .collect();
        assert_eq!(texts, ["worker.0:b", "worker.0:c", "web.0:d"]);
    }
}
