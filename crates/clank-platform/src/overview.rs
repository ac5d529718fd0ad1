//! What the dashboard's project page shows of an environment: each service with its newest
//! and ACTIVE deployments and its resolved config (for the connections between cards), read
//! in a fixed number of store reads whatever the number of services — the per-service
//! operations ([`Platform::deployments`], [`Platform::resolved_config`]) each resolve the
//! address and read on their own, which at a thousand services is tens of thousands of reads.

use std::collections::BTreeMap;

use clank_core::Result;
use clank_core::address::EnvironmentAddress;
use clank_core::config::{self, ConfigLayer, ResolvedVarView, Scope};
use clank_core::deploy::DeploymentStatus;
use clank_core::id::{DeploymentId, ServiceId};
use clank_core::image::ImageRef;
use clank_core::model::{Deployment, Service};
use clank_core::store::catalog::Page;

use crate::Platform;

/// What a card shows of a deployment: read from its record without decoding its snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentHead {
    pub id: DeploymentId,
    pub number: u64,
    pub status: DeploymentStatus,
    /// The image actually run, once known.
    pub image: Option<ImageRef>,
}

/// The fields of a stored deployment a [`DeploymentHead`] needs (serde skips the rest).
#[derive(serde::Deserialize)]
struct StoredHead {
    id: DeploymentId,
    service_id: ServiceId,
    number: u64,
    state: StoredState,
}

#[derive(serde::Deserialize)]
struct StoredState {
    status: DeploymentStatus,
    #[serde(default)]
    image: Option<ImageRef>,
}

impl From<StoredHead> for DeploymentHead {
    fn from(d: StoredHead) -> Self {
        DeploymentHead {
            id: d.id,
            number: d.number,
            status: d.state.status,
            image: d.state.image,
        }
    }
}

impl From<&Deployment> for DeploymentHead {
    fn from(d: &Deployment) -> Self {
        DeploymentHead {
            id: d.id,
            number: d.number,
            status: d.state.status,
            image: d.state.image.clone(),
        }
    }
}

/// One service of an environment as its card shows it.
#[derive(Debug, Clone)]
pub struct ServiceCard {
    pub service: Service,
    /// Its newest deployment.
    pub latest: Option<DeploymentHead>,
    /// Its ACTIVE deployment (the one `service.active_deployment` names), also when it is
    /// the newest.
    pub active: Option<DeploymentHead>,
    /// Its config as the cascade resolves it now, secrets masked (as
    /// [`Platform::resolved_config`] answers).
    pub config: Vec<ResolvedVarView>,
}

/// A page of an environment's service cards.
#[derive(Debug, Clone)]
pub struct ServiceCards {
    pub cards: Vec<ServiceCard>,
    /// Pass as [`Page::after`] for the next page; `None` on the last one.
    pub next: Option<String>,
}

impl Platform {
    /// One `page` of the environment's services (in slug order; deleted ones left out, so a
    /// page may come out shorter) as cards: the services, their newest deployments (by
    /// number: numbers are gapless), their ACTIVE ones and their service config layers are
    /// each one batched read. The config is read only when the page holds at most
    /// `config_up_to` services (else each card's `config` is empty): a page showing more as a
    /// plain list has no use for it.
    pub async fn service_cards(
        &self,
        env: &EnvironmentAddress,
        page: Page,
        config_up_to: usize,
    ) -> Result<ServiceCards> {
        let (project, environment) = self.environment(env).await?;
        let cat = &self.catalog;
        let listing = cat.services_in_environment(environment.id, page).await?;
        let next = listing.next;
        let services: Vec<Service> = listing
            .items
            .into_iter()
            .map(|v| v.value)
            .filter(|s| !s.is_deleted())
            .collect();

        // The newest deployment of each: its number is the counter's last, a unique key.
        let numbers: Vec<String> = services
            .iter()
            .map(|s| format!("{}:{}", s.id, s.next_deployment_number.saturating_sub(1)))
            .collect();
        let ids = cat.unique_ids::<Deployment>("number", &numbers).await?;
        let wanted: Vec<String> = ids.iter().flatten().cloned().collect();
        let mut heads = cat
            .get_many_as::<Deployment, StoredHead>(&wanted)
            .await?
            .into_iter();
        let mut latest: Vec<Option<DeploymentHead>> = Vec::with_capacity(services.len());
        for (s, id) in services.iter().zip(&ids) {
            let head = match id {
                Some(_) => heads.next().flatten(),
                None => None,
            };
            // Still this service's newest (the entry and the record are two reads).
            let head =
                head.filter(|h| h.service_id == s.id && h.number + 1 == s.next_deployment_number);
            latest.push(head.map(DeploymentHead::from));
        }
        // A newest number with no record (never expected): the index says which is newest.
        for (s, slot) in services.iter().zip(latest.iter_mut()) {
            if slot.is_none() && s.next_deployment_number > 1 {
                *slot = cat
                    .deployments_of(s.id, Page::newest(1))
                    .await?
                    .items
                    .first()
                    .map(|d| DeploymentHead::from(&d.value));
            }
        }

        let active_ids: Vec<String> = services
            .iter()
            .zip(&latest)
            .filter_map(|(s, l)| {
                let id = s.active_deployment?;
                (l.as_ref().map(|d| d.id) != Some(id)).then(|| id.to_string())
            })
            .collect();
        let older_active: BTreeMap<DeploymentId, DeploymentHead> = cat
            .get_many_as::<Deployment, StoredHead>(&active_ids)
            .await?
            .into_iter()
            .flatten()
            .map(|d| (d.id, DeploymentHead::from(d)))
            .collect();
        let active_of = |service: &Service, latest: Option<&DeploymentHead>| match (
            service.active_deployment,
            latest,
        ) {
            (Some(id), Some(l)) if l.id == id => Some(l.clone()),
            (Some(id), _) => older_active.get(&id).cloned(),
            (None, _) => None,
        };

        if services.len() > config_up_to {
            let cards = services
                .into_iter()
                .zip(latest)
                .map(|(service, latest)| ServiceCard {
                    active: active_of(&service, latest.as_ref()),
                    service,
                    latest,
                    config: Vec::new(),
                })
                .collect();
            return Ok(ServiceCards { cards, next });
        }

        // The cascade: workspace, team, project, environment (shared), then each service's.
        let mut shared = vec![Scope::Workspace(project.workspace_id)];
        if let Some(team) = project.team_id {
            shared.push(Scope::Team(team));
        }
        shared.push(Scope::Project(project.id));
        shared.push(Scope::Environment(environment.id));
        let shared: Vec<String> = shared.iter().map(ToString::to_string).collect();
        let shared_layers: Vec<ConfigLayer> = cat
            .get_many::<ConfigLayer>(&shared)
            .await?
            .into_iter()
            .flatten()
            .map(|l| l.value)
            .collect();
        let own: Vec<String> = services
            .iter()
            .map(|s| Scope::Service(s.id).to_string())
            .collect();
        let own_layers = cat.get_many::<ConfigLayer>(&own).await?;

        let mut cards = Vec::with_capacity(services.len());
        for ((service, latest), own) in services.into_iter().zip(latest).zip(own_layers) {
            let mut layers = shared_layers.clone();
            layers.extend(own.map(|l| l.value));
            let config = config::resolve(&layers)?.view();
            cards.push(ServiceCard {
                active: active_of(&service, latest.as_ref()),
                service,
                latest,
                config,
            });
        }
        Ok(ServiceCards { cards, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_reads_a_stored_deployment_without_its_snapshot() {
        let source = clank_core::model::ServiceSource::DockerImage {
            image: ImageRef::parse("nginx:1.27").unwrap(),
            credentials_secret: None,
        };
        let (ws, p, e) = Default::default();
        let service = Service::new(ws, p, e, "web", source, clank_core::Timestamp(0)).unwrap();
        let mut d = Deployment::new(
            &service,
            Default::default(),
            clank_core::model::Trigger::Manual { by: None },
            clank_core::Timestamp(0),
        );
        d.state.status = DeploymentStatus::Failed;
        d.state.image = Some(ImageRef::parse("nginx:1.27").unwrap());
        let stored: StoredHead = serde_json::from_slice(&serde_json::to_vec(&d).unwrap()).unwrap();
        assert_eq!(stored.service_id, service.id);
        assert_eq!(DeploymentHead::from(stored), DeploymentHead::from(&d));
    }
}
