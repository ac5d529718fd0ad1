//! The pull step of `StartWorkload`: the deployment's images are put on the host before any
//! workload starts, from their registries (with the credentials its `registry_credentials`
//! config secret holds), bounded by what is left of the DEPLOYING deadline rather than a fixed
//! time, with the runtime's progress lines in the deploy log. The digest pulled is recorded on
//! the deployment (`state.image_digest`).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use clank_core::config::ConfigValue;
use clank_core::model::Deployment;
use clank_core::runtime::{RegistryAuth, Runtime, WorkloadSpec};
use clank_core::{Error, ImageRef, Result, RuntimeFailure};
use tokio::sync::mpsc;
use tracing::warn;

use super::{BUILD_LOG_BATCH, Engine};
use crate::events::{EventKind, LogEntry};

/// Taken off the time left before the deadline, so the pull's own reason ("did not finish
/// within …") is recorded before the planner fails the deployment for its deadline.
const PULL_DEADLINE_MARGIN: Duration = Duration::from_secs(1);

/// What the pull step ended with.
pub(super) enum Pulled {
    /// Every image is on the host.
    Ready,
    /// The deployment cannot run: why (for the deploy log and the planner).
    Refused(String),
}

impl Engine {
    /// Pull the images `specs` run that the host does not have. `Err` only for what is worth
    /// retrying (the engine unreachable); a refusal (credentials, missing tag, unreachable
    /// registry, deadline) is [`Pulled::Refused`].
    pub(super) async fn pull_images(
        &self,
        d: &Deployment,
        runtime: &Arc<dyn Runtime>,
        specs: &[WorkloadSpec],
    ) -> Result<Pulled> {
        if !runtime.capabilities().images {
            return Ok(Pulled::Ready);
        }
        let images: BTreeSet<String> = specs
            .iter()
            .filter_map(|s| s.image.as_ref().map(ToString::to_string))
            .collect();
        let auth = match &d.snapshot.registry_credentials {
            None => None,
            Some(key) => match self.registry_auth(d, key) {
                Ok(auth) => Some(auth),
                Err(reason) => return Ok(Pulled::Refused(reason)),
            },
        };
        for reference in images {
            let image: ImageRef = reference.parse()?;
            // The credentials are for the service's own image, not a connector's.
            let own = d.state.image.as_ref() == Some(&image);
            let auth = auth.as_ref().filter(|_| own);
            match self.pull_one(d, runtime, &image, auth).await {
                Ok(Some(digest)) if own => self.record_digest(d, digest).await,
                Ok(_) => {}
                Err(e) if e.runtime_failure() == Some(RuntimeFailure::EngineUnavailable) => {
                    return Err(e);
                }
                Err(e) => {
                    let why = match &d.snapshot.registry_credentials {
                        Some(key) if own && auth.is_some() => {
                            format!("{e}; the credentials came from the config secret `{key}`")
                        }
                        _ => e.to_string(),
                    };
                    return Ok(Pulled::Refused(why));
                }
            }
        }
        Ok(Pulled::Ready)
    }

    /// Pull one image, its progress lines written to the deploy log as they come (batched).
    async fn pull_one(
        &self,
        d: &Deployment,
        runtime: &Arc<dyn Runtime>,
        image: &ImageRef,
        auth: Option<&RegistryAuth>,
    ) -> Result<Option<String>> {
        let budget = Duration::from_secs(u64::from(d.snapshot.settings.deploy_timeout_s));
        let within = d
            .state
            .deadline
            .map_or(budget, |deadline| deadline.since(self.now()))
            .saturating_sub(PULL_DEADLINE_MARGIN);
        let (tx, rx) = mpsc::unbounded_channel::<String>();
        // The sender lives in the closure, dropped with this future: that ends the pump.
        let pull = async move {
            let progress = move |line: String| {
                let _ = tx.send(line);
            };
            runtime.pull(image, auth, within, &progress).await
        };
        let (result, ()) = tokio::join!(pull, self.pump_pull_log(d, rx));
        result
    }

    async fn pump_pull_log(&self, d: &Deployment, mut rx: mpsc::UnboundedReceiver<String>) {
        let mut lines = Vec::new();
        while rx.recv_many(&mut lines, 512).await > 0 {
            let at = self.now();
            let entries: Vec<LogEntry> = lines
                .drain(..)
                .map(|line| LogEntry { at, message: line })
                .collect();
            let store = self.inner.catalog.store();
            if let Err(err) = self.inner.log.append(store.as_ref(), d.id, &entries).await {
                warn!(deployment = %d.id, error = %err, "Could not persist pull progress lines.");
            }
            for e in entries {
                self.publish(d, EventKind::Log { message: e.message });
            }
            tokio::time::sleep(BUILD_LOG_BATCH).await;
        }
    }

    /// The registry credentials in the config secret `key` of the deployment's resolved
    /// config. `Err` is why the deployment cannot pull (never containing the value).
    fn registry_auth(
        &self,
        d: &Deployment,
        key: &str,
    ) -> std::result::Result<RegistryAuth, String> {
        let var = d.snapshot.config.get(key).ok_or_else(|| {
            format!(
                "the image's registry credentials_secret `{key}` is not set in the service's \
                 config; set it as a secret holding `username:token`"
            )
        })?;
        let value = match &var.value {
            ConfigValue::Secret(sealed) => self
                .inner
                .keyring
                .open(sealed, &var.source.aad(&var.key))
                .map_err(|e| {
                    format!("the registry credentials_secret `{key}` cannot be opened: {e}")
                })?,
            ConfigValue::Plain(_) => {
                return Err(format!(
                    "the registry credentials_secret `{key}` is a plain variable; store \
                     `username:token` as a secret"
                ));
            }
        };
        RegistryAuth::parse(key, &value)
    }

    /// Record the digest the deployment's image was pulled at (once; a write race retries).
    async fn record_digest(&self, d: &Deployment, digest: String) {
        let cat = &self.inner.catalog;
        let written: Result<bool> = async {
            loop {
                let current = cat.require::<Deployment>(&d.id.to_string()).await?;
                if current.state.image_digest.is_some() {
                    return Ok(false);
                }
                let mut next = current.value.clone();
                next.state.image_digest = Some(digest.clone());
                match cat.save_deployment(&current, &next).await {
                    Err(Error::WriteConflict { .. }) => continue,
                    Err(e) => return Err(e),
                    Ok(_) => return Ok(true),
                }
            }
        }
        .await;
        match written {
            Ok(true) => {
                self.note(d, format!("image pinned at digest {digest}"))
                    .await;
            }
            Ok(false) => {}
            Err(err) => {
                warn!(deployment = %d.id, error = %err, "Could not record the pulled image's digest.");
            }
        }
    }
}
