//! Git-push auto-deploy: one webhook secret per workspace (sealed like every other secret) and
//! the matching of a pushed repository and branch to the git services that follow it.

use clank_core::id::WorkspaceId;
use clank_core::model::{Environment, Project, Service, ServiceSource, Trigger, Workspace};
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

fn aad(ws: WorkspaceId) -> SecretAad {
    SecretAad::new(format!("workspace:{ws}"), "webhook_secret")
}

/// One deployment a push created.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PushDeployment {
    pub project: String,
    pub environment: String,
    pub service: String,
    pub number: u64,
    pub deployment: DeploymentView,
}

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
                let environment = self
                    .catalog
                    .get::<Environment>(&service.environment_id.to_string())
                    .await?
                    .map(|e| e.value.name)
                    .unwrap_or_default();
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
