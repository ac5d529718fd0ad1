//! Stored plans: a promotion planned and shown first, applied later only by its id, and only
//! while nothing it read has changed (its fingerprint) and before it expires.

use crate::error::{Error, Result};
use crate::id::{DeploymentId, EnvironmentId, PlanId, ServiceId, WorkspaceId};
use crate::store::Revision;
use crate::store::catalog::{IndexEntry, Record};
use crate::time::Timestamp;

/// How long a plan can be applied after it was made.
pub const PLAN_TTL_MS: i64 = 30 * 60 * 1000;

/// One record a plan read, with the revision it read (`None`: it did not exist).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReadRevision {
    /// What it is, for the message when it changed: `deployment shop/staging/api#4`,
    /// `config environment:…`, `service shop/production/api`.
    pub what: String,
    /// Its catalog key: `service:<id>`, `deployment:<id>`, `config:<scope>`,
    /// `service-slug:<environment>:<slug>` (a service the plan creates).
    pub key: String,
    pub revision: Option<Revision>,
}

/// One service a promotion moves.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PromotionStep {
    pub source_service: ServiceId,
    /// The source's ACTIVE deployment the target will run.
    pub source_deployment: DeploymentId,
    /// The target service; `None`: created by the apply.
    pub target_service: Option<ServiceId>,
    /// The target service's slug (the source's).
    pub slug: String,
    /// Nothing to do for this service.
    pub unchanged: bool,
}

/// A planned promotion, stored until applied or expired.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PromotionPlan {
    pub id: PlanId,
    pub workspace_id: WorkspaceId,
    pub target_environment: EnvironmentId,
    pub source: String,
    pub target: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub steps: Vec<PromotionStep>,
    /// Every record the plan read, with its revision: applying re-reads them all.
    pub fingerprint: Vec<ReadRevision>,
    /// The plan as shown (`clank_api::plans::PlanView` as JSON), so reading it back shows
    /// exactly what was planned.
    pub view: String,
    pub applied_at: Option<Timestamp>,
}

impl PromotionPlan {
    /// Refuses an expired or applied plan, with what to do instead.
    pub fn check_applicable(&self, now: Timestamp) -> Result<()> {
        if let Some(at) = self.applied_at {
            return Err(Error::Conflict(format!(
                "plan {} was already applied at {}; plan the promotion again",
                self.id, at
            )));
        }
        if now >= self.expires_at {
            return Err(Error::Conflict(format!(
                "plan {} expired at {}; plan the promotion again",
                self.id, self.expires_at
            )));
        }
        Ok(())
    }

    /// The fingerprint entries whose revision is no longer what the plan read, given the
    /// current revision of each key (same order as `fingerprint`).
    pub fn changed_since<'a>(&'a self, now: &[Option<Revision>]) -> Vec<&'a ReadRevision> {
        self.fingerprint
            .iter()
            .zip(now)
            .filter(|(read, current)| read.revision != **current)
            .map(|(read, _)| read)
            .collect()
    }
}

impl Record for PromotionPlan {
    const TABLE: &'static str = "plan";
    fn id_string(&self) -> String {
        self.id.to_string()
    }
    fn indexes(&self) -> Vec<IndexEntry> {
        vec![IndexEntry::new("workspace", self.workspace_id, self.id)]
    }
    fn check_update(old: &Self, new: &Self) -> Result<()> {
        if old.fingerprint != new.fingerprint || old.steps != new.steps || old.view != new.view {
            return Err(Error::Internal(
                "a stored plan never changes except to record its apply".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> PromotionPlan {
        PromotionPlan {
            id: PlanId::new(),
            workspace_id: WorkspaceId::new(),
            target_environment: EnvironmentId::new(),
            source: "ws/shop/staging".into(),
            target: "ws/shop/production".into(),
            created_at: Timestamp(1_000),
            expires_at: Timestamp(1_000 + PLAN_TTL_MS),
            steps: vec![],
            fingerprint: vec![
                ReadRevision {
                    what: "service a".into(),
                    key: "service:a".into(),
                    revision: Some(3),
                },
                ReadRevision {
                    what: "config b".into(),
                    key: "config:b".into(),
                    revision: None,
                },
            ],
            view: "{}".into(),
            applied_at: None,
        }
    }

    #[test]
    fn a_plan_applies_only_before_it_expires_and_once() {
        let mut p = plan();
        assert!(p.check_applicable(Timestamp(2_000)).is_ok());
        let late = p
            .check_applicable(Timestamp(1_000 + PLAN_TTL_MS))
            .unwrap_err();
        assert!(late.to_string().contains("expired"), "{late}");
        p.applied_at = Some(Timestamp(1_500));
        let again = p.check_applicable(Timestamp(2_000)).unwrap_err();
        assert!(again.to_string().contains("already applied"), "{again}");
    }

    #[test]
    fn changed_since_names_every_record_whose_revision_moved_or_appeared() {
        let p = plan();
        assert!(p.changed_since(&[Some(3), None]).is_empty());
        let changed = p.changed_since(&[Some(4), Some(1)]);
        assert_eq!(
            changed.iter().map(|r| r.what.as_str()).collect::<Vec<_>>(),
            ["service a", "config b"]
        );
    }

    #[test]
    fn a_promotion_runs_the_sources_version_with_the_targets_config_endpoint_and_volumes() {
        use crate::config::ResolvedConfig;
        use crate::id::ProjectId;
        use crate::model::{Deployment, Endpoint, Service, ServiceSource, Trigger, VolumeMount};
        let ws = WorkspaceId::new();
        let project = ProjectId::new();
        let image = |i: &str| ServiceSource::DockerImage {
            image: i.parse().unwrap(),
            credentials_secret: None,
        };
        let mut staging = Service::new(
            ws,
            project,
            EnvironmentId::new(),
            "api",
            image("app:2"),
            Timestamp(0),
        )
        .unwrap();
        staging.settings.memory_limit_mb = 256;
        let mut production = Service::new(
            ws,
            project,
            EnvironmentId::new(),
            "api",
            image("app:1"),
            Timestamp(0),
        )
        .unwrap();
        production.endpoint = Some(Endpoint::LanOnly {
            domains: vec!["api.lan".into()],
        });
        production.volumes = vec![VolumeMount {
            name: "api-production".into(),
            mount_path: "/data".into(),
            shared: false,
        }];
        let source = Deployment::new(
            &staging,
            ResolvedConfig::default(),
            Trigger::Manual { by: None },
            Timestamp(0),
        );
        let target_config = ResolvedConfig::default();
        let ada = crate::id::UserId::new();
        let promoted = Deployment::promotion_of(
            &production,
            &source,
            target_config.clone(),
            Some(ada),
            Timestamp(5),
        )
        .unwrap();
        assert_eq!(promoted.service_id, production.id);
        assert_eq!(promoted.number, production.next_deployment_number);
        assert_eq!(promoted.snapshot.artifact, source.snapshot.artifact);
        assert_eq!(promoted.snapshot.settings.memory_limit_mb, 256);
        assert_eq!(promoted.snapshot.endpoint, production.endpoint);
        assert_eq!(promoted.snapshot.volumes, production.volumes);
        assert_eq!(promoted.snapshot.config, target_config);
        assert!(
            matches!(promoted.trigger, Trigger::PromotionFrom { deployment, .. } if deployment == source.id)
        );
        assert_eq!(
            promoted.trigger.by(),
            Some(ada),
            "who applied it is recorded"
        );
        let mut pulled = source.clone();
        let digest = format!("sha256:{}", "ab".repeat(32));
        pulled.state.image_digest = Some(digest.clone());
        let pinned = Deployment::promotion_of(
            &production,
            &pulled,
            ResolvedConfig::default(),
            None,
            Timestamp(5),
        )
        .unwrap();
        match &pinned.snapshot.artifact {
            crate::model::Artifact::Image { image } => {
                assert_eq!(
                    image.digest(),
                    Some(digest.as_str()),
                    "pinned to the pulled digest"
                );
            }
            other => panic!("an image: {other:?}"),
        }
        let (desired, fields) = source.snapshot.promote_onto(&production);
        assert_eq!(fields, ["image", "settings"]);
        assert_eq!(
            desired.endpoint, production.endpoint,
            "the target keeps its endpoint"
        );
        assert_eq!(desired.volumes, production.volumes, "and its volumes");
        // The target's desired state keeps the digest too: its next plain deploy runs what was
        // promoted even if the tag moved.
        let (desired, _) = pulled
            .promotion_snapshot()
            .unwrap()
            .promote_onto(&production);
        match &desired.source {
            ServiceSource::DockerImage { image, .. } => {
                assert_eq!(image.digest(), Some(digest.as_str()));
            }
            other => panic!("an image source: {other:?}"),
        }
    }
}
