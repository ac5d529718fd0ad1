//! Git-push auto-deploy: one webhook secret per workspace (sealed like every other secret) and
//! the matching of a pushed repository and branch to the git services that follow it.

use clank_core::id::WorkspaceId;
use clank_core::model::{
    Environment, EnvironmentKind, Project, Service, ServiceSource, Trigger, Workspace,
};
use clank_core::secret::{SealedSecret, SecretAad, SecretString};
use clank_core::store::catalog::{Page, Record};
use clank_core::{Error, Result, Timestamp};

use crate::{DeploymentView, Platform};

/// A workspace's webhook secret, sealed under the keyring with the workspace as associated data.
#[derive(Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WebhookSecret {
    pub workspace_id: WorkspaceId,
    pub sealed: SealedSecret,
    pub created_at: Timestamp,
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSecret")
            .field("workspace_id", &self.workspace_id)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

impl Record for WebhookSecret {
    const TABLE: &'static str = "webhook_secret";
    fn id_string(&self) -> String {
        self.workspace_id.to_string()
    }
}

/// How many delivery ids a workspace's ledger remembers (a forge redelivers within hours).
pub const REMEMBERED_DELIVERIES: usize = 1000;
/// How many repository branches a ledger tracks the newest pushed commit of.
pub const REMEMBERED_BRANCHES: usize = 1000;

/// What a workspace's push webhooks have already done, so a replayed or redelivered push
/// never deploys twice and an older push never replaces a newer commit.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct PushLedger {
    pub workspace_id: WorkspaceId,
    /// Delivery ids seen, oldest first, at most [`REMEMBERED_DELIVERIES`].
    pub deliveries: std::collections::VecDeque<String>,
    /// `repo#branch` (normalised repo URL) → the newest commit a push deployed.
    pub heads: std::collections::BTreeMap<String, PushHead>,
}

/// The newest commit pushed to a branch.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PushHead {
    pub commit: String,
    /// When the commit was made, as the signed payload says (absent if it did not say).
    pub committed_at: Option<Timestamp>,
    pub received_at: Timestamp,
}

impl Record for PushLedger {
    const TABLE: &'static str = "push_ledger";
    fn id_string(&self) -> String {
        self.workspace_id.to_string()
    }
}

/// A push as the webhook receiver read it (its signature already verified).
#[derive(Debug, Clone, PartialEq)]
pub struct Push<'a> {
    /// The forge's delivery id (`X-GitHub-Delivery`, ...), if it sent one.
    pub delivery: Option<&'a str>,
    pub repo_urls: &'a [String],
    pub branch: &'a str,
    pub commit: &'a str,
    pub committed_at: Option<Timestamp>,
}

/// Whether a push may deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushAdmission {
    Admitted,
    /// Refused, with the reason to answer (200, nothing deployed).
    Ignored(String),
}

/// Decide `push` against `ledger` and record it when admitted; pure.
pub fn admit_push(ledger: &mut PushLedger, push: &Push<'_>, now: Timestamp) -> PushAdmission {
    if let Some(id) = push.delivery {
        if ledger.deliveries.iter().any(|d| d == id) {
            return PushAdmission::Ignored(format!(
                "delivery `{id}` was received before; nothing deployed again"
            ));
        }
        ledger.deliveries.push_back(id.to_owned());
        while ledger.deliveries.len() > REMEMBERED_DELIVERIES {
            ledger.deliveries.pop_front();
        }
    }
    let Some(key) = ledger_key(push) else {
        return PushAdmission::Admitted;
    };
    if let Some(head) = ledger.heads.get(&key) {
        if head.commit == push.commit {
            return PushAdmission::Ignored(format!(
                "commit {} is already the newest pushed to `{}`; nothing deployed again",
                push.commit, push.branch
            ));
        }
        if let (Some(newest), Some(this)) = (head.committed_at, push.committed_at) {
            if this < newest {
                return PushAdmission::Ignored(format!(
                    "commit {} (made {this}) is older than {} (made {newest}), already pushed to \
                     `{}`: a push never replaces a newer commit; deploy it by hand to go back",
                    push.commit, head.commit, push.branch
                ));
            }
        }
    }
    ledger.heads.insert(
        key,
        PushHead {
            commit: push.commit.to_owned(),
            committed_at: push.committed_at,
            received_at: now,
        },
    );
    if ledger.heads.len() > REMEMBERED_BRANCHES {
        let oldest = ledger
            .heads
            .iter()
            .min_by_key(|(_, h)| h.received_at)
            .map(|(k, _)| k.clone());
        if let Some(k) = oldest {
            ledger.heads.remove(&k);
        }
    }
    PushAdmission::Admitted
}

/// `repo#branch` (the normalised first clone URL): a ledger's key for a push.
fn ledger_key(push: &Push<'_>) -> Option<String> {
    push.repo_urls
        .first()
        .map(|url| format!("{}#{}", normalize_repo_url(url), push.branch))
}

fn aad(ws: WorkspaceId) -> SecretAad {
    SecretAad::new(format!("workspace:{ws}"), "webhook_secret")
}

pub use clank_api::webhooks::PushDeployment;

/// A clone URL reduced to `host/path`, lowercase, without scheme, user, port, `.git` or
/// trailing slash, so `https://github.com/Acme/Shop.git`, `git@github.com:acme/shop` and
/// `ssh://git@github.com:22/acme/shop.git` compare equal.
pub fn normalize_repo_url(url: &str) -> String {
    let url = url.trim();
    let (rest, scp) = match url.split_once("://") {
        Some((_, rest)) => (rest, false),
        None => (url, true),
    };
    let (authority, path) = if scp {
        // scp-like `user@host:path`
        match rest.split_once(':') {
            Some((a, p)) => (a, p),
            None => ("", rest),
        }
    } else {
        match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        }
    };
    let host = authority.rsplit('@').next().unwrap_or(authority);
    let host = host.split(':').next().unwrap_or(host);
    let path = path.trim_matches('/');
    let path = path
        .strip_suffix(".git")
        .unwrap_or(path)
        .trim_end_matches('/');
    format!("{host}/{path}").to_lowercase()
}

impl Platform {
    /// Generate-and-store is the caller's: it gives the new secret, which replaces any earlier
    /// one (rotation). The plaintext is never stored.
    pub async fn set_webhook_secret(&self, workspace: &str, secret: &str) -> Result<()> {
        let ws = self.workspace(workspace).await?;
        let record = WebhookSecret {
            workspace_id: ws.id,
            sealed: self.keyring.seal(secret, &aad(ws.id))?,
            created_at: Timestamp::now(),
        };
        loop {
            let current = self
                .catalog
                .get::<WebhookSecret>(&ws.id.to_string())
                .await?;
            let written = match &current {
                Some(cur) => self.catalog.update(cur, &record).await,
                None => self.catalog.create(&record).await,
            };
            match written {
                Err(Error::WriteConflict { .. }) => continue,
                Err(e) => return Err(e),
                Ok(_) => return Ok(()),
            }
        }
    }

    /// One workspace's webhook secret, opened (to show to those who may manage it); `None`
    /// until one was created.
    pub async fn webhook_secret(&self, workspace: &str) -> Result<Option<SecretString>> {
        let ws = self.workspace(workspace).await?;
        match self
            .catalog
            .get::<WebhookSecret>(&ws.id.to_string())
            .await?
        {
            Some(rec) => Ok(Some(self.keyring.open(&rec.sealed, &aad(ws.id))?)),
            None => Ok(None),
        }
    }

    /// Every workspace's webhook secret, opened (for verifying a delivery's signature).
    pub async fn webhook_secrets(&self) -> Result<Vec<(Workspace, SecretString)>> {
        let mut out = Vec::new();
        for rec in self.catalog.list::<WebhookSecret>(Page::all()).await?.items {
            let Some(ws) = self
                .catalog
                .get::<Workspace>(&rec.workspace_id.to_string())
                .await?
            else {
                continue;
            };
            let secret = self.keyring.open(&rec.sealed, &aad(rec.workspace_id))?;
            out.push((ws.value, secret));
        }
        Ok(out)
    }

    /// Record `push` in the workspace's ledger (one conditional write, so concurrent replays
    /// admit at most one): [`admit_push`] decides.
    pub async fn admit_push(
        &self,
        workspace: WorkspaceId,
        push: &Push<'_>,
    ) -> Result<PushAdmission> {
        let id = workspace.to_string();
        if self.catalog.get::<PushLedger>(&id).await?.is_none() {
            let fresh = PushLedger {
                workspace_id: workspace,
                ..PushLedger::default()
            };
            match self.catalog.create(&fresh).await {
                // Another delivery created it first: edit theirs.
                Ok(_) | Err(Error::WriteConflict { .. } | Error::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let mut admission = PushAdmission::Admitted;
        self.catalog
            .modify::<PushLedger>(&id, |ledger| {
                admission = admit_push(ledger, push, Timestamp::now());
                Ok(())
            })
            .await?;
        Ok(admission)
    }

    /// Undo [`Platform::admit_push`] for a push whose deploy then failed, so the forge's
    /// redelivery is not ignored: its delivery id is forgotten and the branch's newest commit
    /// goes back to `previous` (what the ledger held before).
    pub async fn unadmit_push(
        &self,
        workspace: WorkspaceId,
        push: &Push<'_>,
        previous: Option<PushHead>,
    ) -> Result<()> {
        // A push without a repository (a pull-request event's delivery) only forgets its id.
        let key = ledger_key(push);
        let edited = self
            .catalog
            .modify::<PushLedger>(&workspace.to_string(), |ledger| {
                if let Some(id) = push.delivery {
                    ledger.deliveries.retain(|d| d != id);
                }
                let Some(key) = &key else {
                    return Ok(());
                };
                if ledger
                    .heads
                    .get(key)
                    .is_some_and(|h| h.commit == push.commit)
                {
                    match &previous {
                        Some(head) => ledger.heads.insert(key.clone(), head.clone()),
                        None => ledger.heads.remove(key),
                    };
                }
                Ok(())
            })
            .await;
        match edited {
            Ok(_) | Err(Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The newest commit the ledger holds for `push`'s repository and branch (to hand back to
    /// [`Platform::unadmit_push`]).
    pub async fn pushed_head(
        &self,
        workspace: WorkspaceId,
        push: &Push<'_>,
    ) -> Result<Option<PushHead>> {
        let Some(key) = ledger_key(push) else {
            return Ok(None);
        };
        Ok(self
            .catalog
            .get::<PushLedger>(&workspace.to_string())
            .await?
            .and_then(|l| l.value.heads.get(&key).cloned()))
    }

    /// Deploy every git service of `workspace` following `branch` of one of `repo_urls` with
    /// `auto_deploy` on, pinned to `commit`. Services in deleted projects are left alone.
    pub async fn deploy_push(
        &self,
        workspace: WorkspaceId,
        repo_urls: &[String],
        branch: &str,
        commit: &str,
    ) -> Result<Vec<PushDeployment>> {
        let wanted: Vec<String> = repo_urls.iter().map(|u| normalize_repo_url(u)).collect();
        let mut out = Vec::new();
        for project in self
            .catalog
            .projects_in(workspace, Page::all())
            .await?
            .items
        {
            if project.is_deleted() {
                continue;
            }
            let services = self
                .catalog
                .services_in_project(project.id, Page::all())
                .await?
                .items;
            for service in services {
                if !follows(&service, &wanted, branch) {
                    continue;
                }
                let env = self
                    .catalog
                    .get::<Environment>(&service.environment_id.to_string())
                    .await?;
                // A preview follows its pull request: the pull-request webhook's `synchronize`
                // redeploys it, so a push to its branch deploys nothing twice.
                if env
                    .as_ref()
                    .is_some_and(|e| matches!(e.kind, EnvironmentKind::Preview { .. }))
                {
                    continue;
                }
                let d = self
                    .engine
                    .deploy(
                        service.id,
                        Trigger::AutoDeploy {
                            commit: commit.to_owned(),
                            branch: branch.to_owned(),
                        },
                    )
                    .await?;
                let environment = env.map(|e| e.value.name).unwrap_or_default();
                out.push(PushDeployment {
                    project: project_slug(&project.value),
                    environment,
                    service: service.slug.clone(),
                    number: d.number,
                    deployment: DeploymentView::from(&d),
                });
            }
        }
        Ok(out)
    }
}

fn project_slug(p: &Project) -> String {
    p.slug.clone()
}

fn follows(service: &Service, wanted: &[String], branch: &str) -> bool {
    match &service.source {
        ServiceSource::Git {
            repo_url,
            branch: b,
            ..
        } => {
            service.settings.auto_deploy
                && b == branch
                && wanted.contains(&normalize_repo_url(repo_url))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::normalize_repo_url as n;
    use super::*;

    fn push<'a>(delivery: &'a str, urls: &'a [String], commit: &'a str, at: i64) -> Push<'a> {
        Push {
            delivery: Some(delivery),
            repo_urls: urls,
            branch: "main",
            commit,
            committed_at: Some(Timestamp(at)),
        }
    }

    #[test]
    fn a_replayed_delivery_a_repeated_commit_and_an_older_commit_deploy_nothing() {
        let urls = vec!["https://git.example.com/acme/shop.git".to_owned()];
        let mut ledger = PushLedger::default();
        let now = Timestamp(5_000);
        let admitted = |a: &PushAdmission| *a == PushAdmission::Admitted;
        let ignored_with = |a: &PushAdmission, text: &str| matches!(a, PushAdmission::Ignored(r) if r.contains(text));
        assert!(admitted(&admit_push(
            &mut ledger,
            &push("d1", &urls, "bbb", 2_000),
            now
        )));
        // The same delivery again (a forge's redelivery or a captured replay).
        let again = admit_push(&mut ledger, &push("d1", &urls, "bbb", 2_000), now);
        assert!(
            ignored_with(&again, "`d1` was received before"),
            "{again:?}"
        );
        // The same body under a fresh delivery id: the commit is already the newest.
        let same = admit_push(&mut ledger, &push("d2", &urls, "bbb", 2_000), now);
        assert!(ignored_with(&same, "already the newest"), "{same:?}");
        // An older commit's signed push, replayed: never replaces the newer one.
        let older = admit_push(&mut ledger, &push("d3", &urls, "aaa", 1_000), now);
        assert!(ignored_with(&older, "older than bbb"), "{older:?}");
        assert_eq!(ledger.heads.values().next().unwrap().commit, "bbb");
        // A newer commit deploys; another branch is tracked on its own.
        assert!(admitted(&admit_push(
            &mut ledger,
            &push("d4", &urls, "ccc", 3_000),
            now
        )));
        let mut other = push("d5", &urls, "aaa", 1_000);
        other.branch = "staging";
        assert!(admitted(&admit_push(&mut ledger, &other, now)));
    }

    #[test]
    fn the_ledger_stays_bounded() {
        let urls = vec!["https://git.example.com/acme/shop.git".to_owned()];
        let mut ledger = PushLedger::default();
        let extra = 50;
        for i in 0..(REMEMBERED_DELIVERIES as i64 + extra) {
            let (id, commit) = (format!("d{i}"), format!("{i:040x}"));
            admit_push(&mut ledger, &push(&id, &urls, &commit, i), Timestamp(i));
        }
        assert_eq!(ledger.deliveries.len(), REMEMBERED_DELIVERIES);
        assert_eq!(
            ledger.deliveries.front().map(String::as_str),
            Some(format!("d{extra}").as_str())
        );
        for b in 0..(REMEMBERED_BRANCHES + 10) {
            let mut p = push("x", &urls, "c", 1);
            p.delivery = None;
            let branch = format!("b{b}");
            p.branch = &branch;
            admit_push(&mut ledger, &p, Timestamp(i64::try_from(b).unwrap()));
        }
        assert_eq!(ledger.heads.len(), REMEMBERED_BRANCHES);
    }

    #[test]
    fn clone_url_variants_compare_equal() {
        let want = "github.com/acme/shop";
        for u in [
            "https://github.com/acme/shop.git",
            "https://github.com/Acme/Shop",
            "http://github.com/acme/shop/",
            "git@github.com:acme/shop.git",
            "ssh://git@github.com/acme/shop.git",
            "ssh://git@github.com:22/acme/shop",
            "git://github.com/acme/shop.git",
            "https://user:tok@github.com/acme/shop.git",
        ] {
            assert_eq!(n(u), want, "{u}");
        }
        assert_ne!(n("https://github.com/acme/shop2.git"), want);
        assert_ne!(n("https://gitlab.com/acme/shop.git"), want);
    }
}
