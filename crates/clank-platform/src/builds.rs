//! Builds as users see them: a service's builds (newest first, paged like deployments), one
//! build with the tail of its log, and the link between a deployment and the build it runs.
//! Deployment numbers and build numbers differ (a failed build still takes a number, a
//! rollback needs none), so each view names the other.

use clank_core::address::ServiceAddress;
use clank_core::model::{Artifact, Build, Deployment};
use clank_core::store::catalog::Page;
use clank_core::{Error, Result};

use crate::Platform;
use clank_api::{BuildLogView, BuildView, DeploymentView};

/// At most this many lines of a build's log in its view (the newest ones).
pub const BUILD_LOG_LINES: usize = 2_000;
/// Longer lines are cut to this many bytes (on a character boundary).
const BUILD_LOG_LINE_BYTES: usize = 4_096;

impl Platform {
    /// The build whose image `d` runs: its own, or for a rollback (or promotion) the build
    /// that made the image it copied. `None` for image services.
    pub async fn build_of(&self, d: &Deployment) -> Result<Option<Build>> {
        if let Some(id) = d.state.build_id {
            return Ok(self
                .catalog
                .get::<Build>(&id.to_string())
                .await?
                .map(|b| b.value));
        }
        // Only images a build tagged (`clank/…`) can have come from a build.
        let Some(image) = d.state.image.as_ref().or(match &d.snapshot.artifact {
            Artifact::Image { image } => Some(image),
            Artifact::Build { .. } => None,
        }) else {
            return Ok(None);
        };
        if !image.to_string().starts_with("clank/") {
            return Ok(None);
        }
        Ok(self
            .catalog
            .builds_of(d.service_id, Page::all())
            .await?
            .items
            .into_iter()
            .map(|b| b.value)
            .find(|b| b.image.as_ref() == Some(image)))
    }

    /// A deployment as users see it, with the build it runs.
    pub async fn deployment_view(&self, d: &Deployment) -> Result<DeploymentView> {
        let build = self.build_of(d).await?;
        Ok(DeploymentView::from(d).with_build(build.as_ref()))
    }

    /// A service's builds, newest first; `before` continues from a build number (exclusive).
    pub async fn builds(
        &self,
        addr: &ServiceAddress,
        limit: usize,
        before: Option<u64>,
    ) -> Result<Vec<BuildView>> {
        let service = self.service(addr).await?;
        let mut page = Page::newest(limit.clamp(1, 500));
        if let Some(n) = before {
            // Index sort keys are the zero-padded number (see the catalog's key layout).
            page.after = Some(format!("idx/build/service/{}/{n:020}", service.id));
        }
        let listing = self.catalog.builds_of(service.id, page).await?;
        let mut older = None;
        let mut out = Vec::with_capacity(listing.items.len());
        for b in &listing.items {
            let d = self.deployment_of_build(b, &mut older).await?;
            out.push(BuildView::new(b, d.as_ref()));
        }
        Ok(out)
    }

    /// Build `v{number}` of a service with the newest [`BUILD_LOG_LINES`] lines of its log.
    pub async fn build(&self, addr: &ServiceAddress, number: u64) -> Result<BuildView> {
        let service = self.service(addr).await?;
        let b = self
            .catalog
            .lookup::<Build>("number", &format!("{}:{number}", service.id))
            .await?
            .ok_or_else(|| Error::not_found("build", format!("{addr} v{number}")))?;
        let d = self.deployment_of_build(&b, &mut None).await?;
        let mut view = BuildView::new(&b, d.as_ref());
        let log = match &d {
            Some(d) => self.engine.deploy_log(d.id).await?,
            None => Vec::new(),
        };
        view.log = Some(build_log(
            log.iter().map(|e| e.message.as_str()),
            b.number,
            BUILD_LOG_LINES,
        ));
        Ok(view)
    }

    /// The deployment `b` was built for. Builds recorded before they named it are found by
    /// the deployments' `build_id` (the service's deployments read once, into `older`).
    async fn deployment_of_build(
        &self,
        b: &Build,
        older: &mut Option<Vec<Deployment>>,
    ) -> Result<Option<Deployment>> {
        if let Some(id) = b.deployment_id {
            return Ok(self
                .catalog
                .get::<Deployment>(&id.to_string())
                .await?
                .map(|d| d.value));
        }
        if older.is_none() {
            let all = self
                .catalog
                .deployments_of(b.service_id, Page::all())
                .await?;
            *older = Some(all.items.into_iter().map(|d| d.value).collect());
        }
        Ok(older
            .iter()
            .flatten()
            .find(|d| d.state.build_id == Some(b.id))
            .cloned())
    }
}

/// Build `number`'s lines of a deploy log (the engine writes them as `build v{n}: …`,
/// `build v{n} started: …`, `build v{n} failed …`), the newest `max` of them.
fn build_log<'a>(messages: impl Iterator<Item = &'a str>, number: u64, max: usize) -> BuildLogView {
    let prefix = format!("build v{number}");
    let mut lines: Vec<String> = messages
        .filter(|m| {
            m.strip_prefix(&prefix)
                .is_some_and(|rest| rest.starts_with(':') || rest.starts_with(' '))
        })
        .map(|m| {
            let mut end = m.len().min(BUILD_LOG_LINE_BYTES);
            while !m.is_char_boundary(end) {
                end -= 1;
            }
            m[..end].to_owned()
        })
        .collect();
    let truncated = lines.len() > max;
    if truncated {
        lines.drain(..lines.len() - max);
    }
    BuildLogView { lines, truncated }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_log_keeps_its_own_lines_only_and_the_newest_when_long() {
        let log = [
            "PENDING → BUILDING",
            "build v1 started: repo at `main`",
            "build v1: Step 1/2",
            "build v12: not this one",
            "build v1: Step 2/2",
            "build v1 succeeded in 1.0 s",
            "BUILDING → DEPLOYING",
        ];
        let all = build_log(log.into_iter(), 1, 10);
        assert_eq!(
            all.lines,
            [
                "build v1 started: repo at `main`",
                "build v1: Step 1/2",
                "build v1: Step 2/2",
                "build v1 succeeded in 1.0 s"
            ]
        );
        assert!(!all.truncated);
        let tail = build_log(log.into_iter(), 1, 2);
        assert_eq!(
            tail.lines,
            ["build v1: Step 2/2", "build v1 succeeded in 1.0 s"]
        );
        assert!(tail.truncated);
    }

    #[test]
    fn a_long_build_log_line_is_cut_on_a_character_boundary() {
        let long = format!("build v1: {}", "é".repeat(BUILD_LOG_LINE_BYTES));
        let cut = build_log([long.as_str()].into_iter(), 1, 10);
        assert!(cut.lines[0].len() <= BUILD_LOG_LINE_BYTES);
        assert!(cut.lines[0].starts_with("build v1: é"));
    }
}
