//! Make the server's runtime hold the desired state. Idempotent by workload name, so a
//! re-delivered or re-applied state never duplicates a container:
//!
//! - desired and absent: start it (the runtime's start is idempotent by name);
//! - desired, present but only created (the agent died between create and start): start it;
//! - desired stopped and running: stop it;
//! - present and not desired: stop and remove it;
//! - exited workloads are left to their restart policy and to the control plane.
//!
//! Every mutating step first checks the lease: with the lease lapsed or superseded by a
//! newer epoch the pass stops, so a partitioned agent never acts on old instructions.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clank_core::error::Error;
use clank_core::runtime::{OwnerFilter, WorkloadId, WorkloadSpec, WorkloadState, WorkloadStatus};
use clank_proto::v1::{self, agent_message::Body as Up};
use tracing::{debug, info, warn};

use crate::Shared;

/// Apply the newest desired state whenever it changes, and again every resync interval.
pub(crate) async fn run(shared: Arc<Shared>) {
    let mut rx = shared.desired.subscribe();
    loop {
        let desired = rx.borrow_and_update().clone();
        if let Some(d) = desired {
            match apply(&shared, &d).await {
                Ok(report) => shared.send_up(Up::Observed(report)).await,
                Err(e) => debug!(error = %e, "Reconcile pass stopped."),
            }
        }
        tokio::select! {
            r = rx.changed() => if r.is_err() { return },
            () = tokio::time::sleep(shared.config.resync_interval) => {}
            () = shared.stop.cancelled() => return,
        }
    }
}

/// Fencing: act only under a valid lease of the desired state's epoch.
fn fenced(shared: &Shared, d: &v1::DesiredState) -> Result<(), String> {
    match shared.valid_lease() {
        Some(epoch) if epoch == d.epoch => Ok(()),
        Some(epoch) => Err(format!(
            "desired state of epoch {} superseded by epoch {epoch}",
            d.epoch
        )),
        None => Err("the lease lapsed; waiting for the control plane".into()),
    }
}

/// One pass; returns what the runtime holds afterwards.
pub(crate) async fn apply(shared: &Shared, d: &v1::DesiredState) -> Result<v1::Observed, String> {
    let runtime = &shared.runtime;
    let mut errors: Vec<v1::WorkloadError> = Vec::new();
    let err = |name: &str, e: &Error| v1::WorkloadError {
        name: name.to_owned(),
        kind: clank_proto::failure_code(
            e.runtime_failure()
                .unwrap_or(clank_core::RuntimeFailure::Other),
        )
        .to_owned(),
        message: e.to_string(),
    };
    let to_map = |l: &HashMap<String, String>| -> BTreeMap<String, String> {
        l.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    };
    for n in &d.networks {
        fenced(shared, d)?;
        if let Err(e) = runtime.ensure_network(&n.name, &to_map(&n.labels)).await {
            errors.push(err(&n.name, &e));
        }
    }
    for v in &d.volumes {
        fenced(shared, d)?;
        if let Err(e) = runtime.ensure_volume(&v.name, &to_map(&v.labels)).await {
            errors.push(err(&v.name, &e));
        }
    }
    let present: HashMap<String, WorkloadStatus> = runtime
        .list(&OwnerFilter::default())
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|w| (w.name.clone(), w))
        .collect();
    let mut wanted = std::collections::HashSet::new();
    for w in &d.workloads {
        let Some(spec) = &w.spec else { continue };
        wanted.insert(spec.name.clone());
        let spec = match WorkloadSpec::try_from(spec) {
            Ok(s) => s,
            Err(e) => {
                errors.push(err(&spec.name, &e));
                continue;
            }
        };
        let current = present.get(&spec.name);
        fenced(shared, d)?;
        let result = match (w.running, current.map(|c| &c.state)) {
            (true, None | Some(WorkloadState::Created)) => {
                info!(workload = %spec.name, "Starting workload.");
                runtime.start(&spec).await.map(drop)
            }
            (false, Some(WorkloadState::Running { .. } | WorkloadState::Restarting)) => {
                info!(workload = %spec.name, "Stopping workload.");
                runtime
                    .stop(
                        &WorkloadId(spec.name.clone()),
                        Duration::from_millis(w.stop_grace_ms.into()),
                    )
                    .await
            }
            _ => Ok(()),
        };
        if let Err(e) = result {
            warn!(workload = %spec.name, error = %e, "Could not apply workload.");
            errors.push(err(&spec.name, &e));
        }
    }
    for (name, w) in &present {
        if wanted.contains(name) {
            continue;
        }
        fenced(shared, d)?;
        info!(workload = %name, "Removing workload no longer desired.");
        let id = WorkloadId(name.clone());
        let result = match w.state {
            WorkloadState::Running { .. } | WorkloadState::Restarting => runtime
                .stop(&id, Duration::from_secs(10))
                .await
                .and(runtime.remove(&id).await),
            _ => runtime.remove(&id).await,
        };
        if let Err(e) = result {
            errors.push(err(name, &e));
        }
    }
    let workloads = runtime
        .list(&OwnerFilter::default())
        .await
        .map_err(|e| e.to_string())?;
    shared
        .applied_generation
        .fetch_max(d.generation, Ordering::Relaxed);
    Ok(v1::Observed {
        epoch: d.epoch,
        generation: d.generation,
        workloads: workloads.iter().map(v1::WorkloadStatus::from).collect(),
        errors,
    })
}
