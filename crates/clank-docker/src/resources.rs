//! Project networks and named volumes.
//!
//! Networks need care: Docker allows several networks with the same *name* (the API version
//! this engine speaks does not check duplicates, and bollard's request type no longer has the
//! old `CheckDuplicate` flag), and attaching by an ambiguous name fails. So `ensure_network`
//! looks before it creates, serialises creators inside this process with a per-name lock, and
//! after creating checks again: if another process created the same name concurrently, every
//! creator agrees on the oldest network (by creation time, then id) and removes its own if it
//! is not that one.
//!
//! Volumes are unique by name in Docker, and creating an existing one returns it, so
//! `ensure_volume` needs no such dance.
//!
//! An existing network or volume whose `clank.workspace` / `clank.project` labels differ from
//! the requested ones belongs to another project: reusing it would join the two projects (or
//! share their data), so that is a `NameConflict`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bollard::models::{Network, NetworkCreateRequest, VolumeCreateRequest};
use bollard::query_parameters::{ListNetworksOptions, RemoveVolumeOptions};
use clank_core::runtime::LABEL_PREFIX;
use clank_core::validate::validate_volume_name;
use clank_core::{Error, Result, RuntimeFailure};
use tracing::{info, warn};

use crate::error::{Subject, engine_error, status_of};
use crate::runtime::DockerRuntime;
use clank_core::time::parse_rfc3339_nanos;

/// Labels that say whose a network or volume is; a mismatch on any is a conflict.
const OWNER_KEYS: [&str; 2] = ["workspace", "project"];

fn with_managed(labels: &BTreeMap<String, String>) -> HashMap<String, String> {
    let mut all: HashMap<String, String> =
        labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    all.insert(format!("{LABEL_PREFIX}managed"), "true".to_owned());
    all
}

/// `NameConflict` if `existing` labels name another workspace or project than `wanted`.
fn check_owner(
    kind: &str,
    name: &str,
    existing: &HashMap<String, String>,
    wanted: &BTreeMap<String, String>,
) -> Result<()> {
    for key in OWNER_KEYS.map(|k| format!("{LABEL_PREFIX}{k}")) {
        let Some(want) = wanted.get(&key) else {
            continue;
        };
        // Never quote the other owner's labels: they may be another tenant's ids.
        let why = match existing.get(&key) {
            Some(have) if have == want => continue,
            Some(_) => "belongs to another owner",
            None => {
                "was not created by Clank for this owner (Clank never uses one it did not create)"
            }
        };
        return Err(Error::runtime(
            RuntimeFailure::NameConflict,
            format!(
                "{kind} `{name}` already exists on this Docker Engine and {why}; pick another name"
            ),
        ));
    }
    Ok(())
}

/// Networks named exactly `name` (the engine's `name` filter matches substrings), oldest
/// first.
async fn networks_named(rt: &DockerRuntime, name: &str) -> Result<Vec<Network>> {
    let options = ListNetworksOptions {
        filters: Some(HashMap::from([("name".to_owned(), vec![name.to_owned()])])),
    };
    let mut found: Vec<Network> = rt
        .client()
        .list_networks(Some(options))
        .await
        .map_err(|e| engine_error(e, Subject::Network, name))?
        .into_iter()
        .filter(|n| n.name.as_deref() == Some(name))
        .collect();
    found.sort_by_key(|n| {
        (
            n.created
                .as_deref()
                .and_then(parse_rfc3339_nanos)
                .unwrap_or(i128::MAX),
            n.id.clone().unwrap_or_default(),
        )
    });
    Ok(found)
}

/// How long apart two listings must agree before a creator picks the winner among same-named
/// networks, and how many listings it makes at most.
const NETWORK_SETTLE: Duration = Duration::from_millis(50);
const NETWORK_SETTLE_ROUNDS: usize = 20;

/// The networks named `name` once two listings `NETWORK_SETTLE` apart agree (or after
/// `NETWORK_SETTLE_ROUNDS`). Engines before API 1.44 let concurrent creates make several
/// networks of one name; a creator that listed at once could see only its own, keep it, and
/// leave a duplicate beside the one its racers keep. Listing until the set stops changing
/// lets every creator see the same set and agree on the same winner (oldest, then lowest id).
async fn settled_networks_named(rt: &DockerRuntime, name: &str) -> Result<Vec<Network>> {
    let ids =
        |found: &[Network]| -> Vec<Option<String>> { found.iter().map(|n| n.id.clone()).collect() };
    let mut found = networks_named(rt, name).await?;
    for _ in 0..NETWORK_SETTLE_ROUNDS {
        tokio::time::sleep(NETWORK_SETTLE).await;
        let again = networks_named(rt, name).await?;
        let stable = ids(&again) == ids(&found);
        found = again;
        if stable {
            break;
        }
    }
    Ok(found)
}

pub(crate) async fn ensure_network(
    rt: &DockerRuntime,
    name: &str,
    labels: &BTreeMap<String, String>,
) -> Result<()> {
    validate_volume_name("network", name)?;
    let lock = {
        let mut locks = rt
            .network_locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(locks.entry(name.to_owned()).or_default())
    };
    let _serialised = lock.lock().await;

    if let Some(existing) = networks_named(rt, name).await?.first() {
        return check_owner(
            "network",
            name,
            existing.labels.as_ref().unwrap_or(&HashMap::new()),
            labels,
        );
    }
    info!(network = %name, "Creating network.");
    let request = NetworkCreateRequest {
        name: name.to_owned(),
        driver: Some("bridge".to_owned()),
        labels: Some(with_managed(labels)),
        ..NetworkCreateRequest::default()
    };
    let mine = match rt.client().create_network(request).await {
        Ok(created) => Some(created.id),
        // Newer engines refuse duplicates themselves: someone else just created it.
        Err(e) if status_of(&e) == Some(409) => None,
        Err(e) => return Err(engine_error(e, Subject::Network, name)),
    };
    let all = match mine {
        Some(_) => settled_networks_named(rt, name).await?,
        None => networks_named(rt, name).await?,
    };
    let Some(winner) = all.first() else {
        return Err(Error::runtime(
            RuntimeFailure::Other,
            format!("network `{name}` vanished right after it was created"),
        ));
    };
    if let Some(mine) = mine {
        if winner.id.as_deref() != Some(mine.as_str()) {
            warn!(network = %name, "Another process created the same network; removing ours.");
            if let Err(e) = rt.client().remove_network(&mine).await {
                if status_of(&e) != Some(404) {
                    return Err(engine_error(e, Subject::Network, name));
                }
            }
        }
    }
    check_owner(
        "network",
        name,
        winner.labels.as_ref().unwrap_or(&HashMap::new()),
        labels,
    )
}

pub(crate) async fn remove_network(rt: &DockerRuntime, name: &str) -> Result<()> {
    validate_volume_name("network", name)?;
    // By id: if duplicates ever slipped through, removing by name would be ambiguous.
    for network in networks_named(rt, name).await? {
        let Some(id) = network.id else { continue };
        match rt.client().remove_network(&id).await {
            Ok(()) => {}
            Err(e) if status_of(&e) == Some(404) => {}
            Err(e) => {
                let mapped = engine_error(e, Subject::Network, name);
                return Err(Error::runtime(
                    mapped.runtime_failure().unwrap_or(RuntimeFailure::Other),
                    format!("{mapped} (are workloads still attached? remove them first)"),
                ));
            }
        }
    }
    Ok(())
}

pub(crate) async fn ensure_volume(
    rt: &DockerRuntime,
    name: &str,
    labels: &BTreeMap<String, String>,
) -> Result<()> {
    validate_volume_name("volume", name)?;
    match rt.client().inspect_volume(name).await {
        Ok(existing) => return check_owner("volume", name, &existing.labels, labels),
        Err(e) if status_of(&e) == Some(404) => {}
        Err(e) => return Err(engine_error(e, Subject::Volume, name)),
    }
    info!(volume = %name, "Creating volume.");
    let request = VolumeCreateRequest {
        name: Some(name.to_owned()),
        driver: Some("local".to_owned()),
        labels: Some(with_managed(labels)),
        ..VolumeCreateRequest::default()
    };
    // Creating an existing volume returns it: a concurrent creator is harmless, but its labels
    // may be another owner's.
    let volume = rt
        .client()
        .create_volume(request)
        .await
        .map_err(|e| engine_error(e, Subject::Volume, name))?;
    check_owner("volume", name, &volume.labels, labels)
}

pub(crate) async fn volume_belongs(
    rt: &DockerRuntime,
    name: &str,
    labels: &BTreeMap<String, String>,
) -> Result<bool> {
    if validate_volume_name("volume", name).is_err() {
        return Ok(false);
    }
    match rt.client().inspect_volume(name).await {
        Ok(existing) => Ok(check_owner("volume", name, &existing.labels, labels).is_ok()),
        Err(e) if status_of(&e) == Some(404) => Ok(false),
        Err(e) => Err(engine_error(e, Subject::Volume, name)),
    }
}

pub(crate) async fn remove_volume(rt: &DockerRuntime, name: &str) -> Result<()> {
    validate_volume_name("volume", name)?;
    match rt
        .client()
        .remove_volume(name, Some(RemoveVolumeOptions { force: false }))
        .await
    {
        Ok(()) => Ok(()),
        Err(e) if status_of(&e) == Some(404) => Ok(()),
        Err(e) => {
            let mapped = engine_error(e, Subject::Volume, name);
            Err(Error::runtime(
                mapped.runtime_failure().unwrap_or(RuntimeFailure::Other),
                format!("{mapped} (a workload using it must be removed first)"),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_owners_or_no_owners_labels_are_a_name_conflict_that_quotes_neither() {
        let wanted: BTreeMap<String, String> = [
            ("clank.workspace".to_owned(), "w1".to_owned()),
            ("clank.project".to_owned(), "p1".to_owned()),
        ]
        .into();
        let same: HashMap<String, String> = wanted.clone().into_iter().collect();
        assert!(check_owner("volume", "v", &same, &wanted).is_ok());
        // Created outside Clank (or by hand): never adopted into a tenant's service.
        let unlabelled = HashMap::new();
        let e = check_owner("volume", "v", &unlabelled, &wanted).unwrap_err();
        assert_eq!(e.runtime_failure(), Some(RuntimeFailure::NameConflict));
        assert!(e.to_string().contains("not created by Clank"), "{e}");
        let mut other = same.clone();
        other.insert("clank.workspace".to_owned(), "w2-secret-id".to_owned());
        let e = check_owner("volume", "v", &other, &wanted).unwrap_err();
        assert_eq!(e.runtime_failure(), Some(RuntimeFailure::NameConflict));
        assert!(e.to_string().contains("another owner"), "{e}");
        assert!(
            !e.to_string().contains("w2-secret-id"),
            "quotes the other tenant: {e}"
        );
    }
}
