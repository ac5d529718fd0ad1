//! Executing the planner's build commands: `StartBuild` records a numbered `Build` and runs
//! the engine's `ImageBuilder` in a task bounded by `build_timeout_s`, with its log streamed
//! in batches into the deploy log and the event stream; the result lands on the `Build`
//! record and in the in-memory map `observe` reads. `CancelBuild` aborts the task (which kills
//! git and disconnects the Docker build) and closes the `Build` record.
//!
//! Procfile process types: a build records the repository's Procfile; when workloads start,
//! every process type the service declares *without* a command of its own runs the Procfile's
//! command for that name (`sh -c 'exec …'` in the image). The snapshot stays untouched: the
//! commands are looked up on the deployment's build (or, for a rollback, the build that made
//! its image), so a rollback runs the same commands. Types only in the Procfile are not run
//! (zero replicas until the service declares them, as on Heroku).
//!
//! The Procfile's `release` type runs once per build, before the deployment leaves BUILDING
//! (so before any cutover): a one-off workload of the new image with the deployment's config,
//! network and volumes, its output in the build log. A non-zero exit fails the build, and so
//! the deployment, with the previous version untouched. A rollback (no build) does not re-run
//! it.

use std::sync::Arc;
use std::time::Duration;

use clank_core::builder::{BuildLog, BuildOutput, BuildProgress, BuildRequest, ImageBuilder};
use clank_core::config::ConfigValue;
use clank_core::id::{BuildId, WorkspaceId};
use clank_core::model::{
    Artifact, Build, BuildStatus, Deployment, Environment, ProcessSpec, Project, Service,
};
use clank_core::procfile::ProcfileEntry;
use clank_core::runtime::{
    LogOptions, OwnerFilter, PortBinding, RestartPolicy, WorkloadSpec, WorkloadState,
};
use clank_core::secret::SecretString;
use clank_core::store::catalog::Page;
use clank_core::{Error, ImageRef, Result, procfile};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::{BUILD_LOG_BATCH, BuildRun, Engine, lock};
use crate::events::{EventKind, LogEntry};
use crate::workloads::workload_specs;

/// How much earlier than the BUILDING deadline the engine stops a build itself.
const BUILD_TIMEOUT_MARGIN: Duration = Duration::from_secs(1);

/// The Procfile process type run once before cutover.
const RELEASE: &str = "release";

/// The image tag of build `number` of a service: `clank/{scope}-{project}-{service}:v{number}`,
/// `scope` being the workspace's (tenants name their projects and services freely, so two
/// workspaces' `shop/web` must never tag, and so replace, each other's images).
pub fn build_tag(
    workspace: WorkspaceId,
    project_slug: &str,
    service_slug: &str,
    number: u64,
) -> Result<ImageRef> {
    let scope = workspace.scope();
    Ok(format!("clank/{scope}-{project_slug}-{service_slug}:v{number}").parse()?)
}

impl Engine {
    pub(super) async fn start_build(&self, d: &Deployment) -> Result<()> {
        let Some(builder) = lock(&self.inner.builder).clone() else {
            return Ok(()); // `observe` fails the deployment with the reason.
        };
        if !d.needs_build()
            || matches!(
                lock(&self.inner.builds).get(&d.id),
                Some(BuildRun::Running { .. })
            )
        {
            return Ok(());
        }
        let Artifact::Build {
            repo_url,
            git_ref,
            commit,
            dockerfile_path,
            build_context,
            credentials_secret,
        } = &d.snapshot.artifact
        else {
            return Ok(());
        };
        if let Some(earlier) = d.state.build_id {
            // Only a restarted engine gets here with a build on record: that run is gone.
            self.close_build(
                earlier,
                BuildStatus::Failed,
                "interrupted: the control plane restarted during the build; a new build was started",
            )
            .await?;
        }
        // A release command an interrupted run left behind would be adopted by name.
        self.remove_release(d).await?;
        let cat = &self.inner.catalog;
        let project = cat.require::<Project>(&d.project_id.to_string()).await?;
        let now = self.now();
        let (build, service) = loop {
            let svc = cat.require::<Service>(&d.service_id.to_string()).await?;
            let build = Build {
                id: BuildId::new(),
                service_id: svc.id,
                deployment_id: Some(d.id),
                number: svc.next_build_number,
                repo_url: repo_url.clone(),
                git_ref: git_ref.clone(),
                commit_sha: None,
                commit_subject: None,
                dockerfile: None,
                procfile: None,
                framework: None,
                image: None,
                status: BuildStatus::Running,
                failure: None,
                started_at: now,
                finished_at: None,
            };
            match cat.create_build(&svc, &build).await {
                Err(Error::WriteConflict { .. }) => continue,
                Err(e) => return Err(e),
                Ok(_) => break (build, svc.value),
            }
        };
        loop {
            let current = cat.require::<Deployment>(&d.id.to_string()).await?;
            let mut next = current.value.clone();
            next.state.build_id = Some(build.id);
            match cat.save_deployment(&current, &next).await {
                Err(Error::WriteConflict { .. }) => continue,
                Err(e) => return Err(e),
                Ok(_) => break,
            }
        }
        let tag = match build_tag(
            service.workspace_id,
            &project.slug,
            &service.slug,
            build.number,
        ) {
            Ok(tag) => tag,
            Err(e) => {
                let reason = format!("cannot name the image of build v{}: {e}", build.number);
                return self.fail_before_start(d, &build, reason).await;
            }
        };
        let credentials = match credentials_secret {
            None => None,
            Some(key) => match self.repository_token(d, key) {
                Ok(token) => Some(token),
                Err(reason) => return self.fail_before_start(d, &build, reason).await,
            },
        };
        let settings = &d.snapshot.settings;
        let budget = Duration::from_secs(u64::from(settings.build_timeout_s));
        // The build gets what is left of the phase's stored deadline (all of it for a first
        // build), less a margin, so its own reason ("did not finish within build_timeout_s")
        // reaches the planner before the deadline does.
        let timeout = d
            .state
            .deadline
            .map_or(budget, |deadline| deadline.since(self.now()))
            .min(budget)
            .saturating_sub(BUILD_TIMEOUT_MARGIN);
        let request = BuildRequest {
            build: build.id,
            service: d.service_id,
            number: build.number,
            repo_url: repo_url.clone(),
            git_ref: git_ref.clone(),
            commit: commit.clone(),
            dockerfile_path: dockerfile_path.clone(),
            build_context: build_context.clone(),
            port: settings.port,
            tag: tag.clone(),
            build_args: Default::default(),
            publish_dir: settings.publish_dir.clone(),
            spa_fallback: settings.spa_fallback,
            credentials,
            timeout,
            memory_limit_mb: settings.memory_limit_mb,
        };
        self.note(
            d,
            format!(
                "build v{} started: {repo_url} at `{git_ref}`{} → {tag} (stopped after {:.0} s)",
                build.number,
                commit
                    .as_deref()
                    .map(|c| format!(" (commit {c})"))
                    .unwrap_or_default(),
                timeout.as_secs_f64()
            ),
        )
        .await;
        let engine = self.clone();
        let deployment = d.clone();
        let build_id = build.id;
        // Registered under the lock the task's completion takes, so it cannot finish first.
        let mut builds = lock(&self.inner.builds);
        let task = tokio::spawn(async move {
            engine
                .run_build(deployment, build, request, builder, timeout)
                .await;
        });
        builds.insert(
            d.id,
            BuildRun::Running {
                build: build_id,
                task: task.abort_handle(),
            },
        );
        Ok(())
    }

    /// The access token named by the source's `credentials_secret`, decrypted from the
    /// deployment's resolved config. `Err` is the reason the build cannot start.
    fn repository_token(
        &self,
        d: &Deployment,
        key: &str,
    ) -> std::result::Result<SecretString, String> {
        let var = d.snapshot.config.get(key).ok_or_else(|| {
            format!(
                "the repository's credentials_secret `{key}` is not set in the service's config; \
                 set it as a secret"
            )
        })?;
        match &var.value {
            ConfigValue::Secret(sealed) => self
                .inner
                .keyring
                .open(sealed, &var.source.aad(&var.key))
                .map_err(|e| {
                    format!("the repository's credentials_secret `{key}` cannot be opened: {e}")
                }),
            ConfigValue::Plain(_) => Err(format!(
                "the repository's credentials_secret `{key}` is a plain variable; store the token \
                 as a secret"
            )),
        }
    }

    /// A build that could not even start: record why, for the planner and on the record.
    async fn fail_before_start(&self, d: &Deployment, build: &Build, reason: String) -> Result<()> {
        self.close_build(build.id, BuildStatus::Failed, &reason)
            .await?;
        self.note(d, format!("build v{} failed: {reason}", build.number))
            .await;
        lock(&self.inner.builds).insert(d.id, BuildRun::Failed { reason });
        Ok(())
    }

    async fn run_build(
        self,
        d: Deployment,
        build: Build,
        request: BuildRequest,
        builder: Arc<dyn ImageBuilder>,
        timeout: Duration,
    ) {
        let started = Instant::now();
        let (tx, rx) = mpsc::unbounded_channel::<BuildProgress>();
        let release_log = tx.clone();
        let log: BuildLog = Box::new(move |progress| {
            let _ = tx.send(progress);
        });
        let (req, b, dep, engine) = (&request, &builder, &d, &self);
        // Dropping this future (timeout) drops both senders, which ends the log pump.
        let work = async move {
            tokio::time::timeout(timeout, async move {
                let out = b.build(req, log).await.map_err(|e| e.to_string())?;
                let entries = match out.procfile.as_deref().map(procfile::parse) {
                    Some(Err(e)) => return Err(format!("the image was built but its {e}")),
                    Some(Ok(entries)) => entries,
                    None => Vec::new(),
                };
                if let Some(release) = entries.iter().find(|e| e.name == RELEASE) {
                    engine
                        .run_release(dep, &out.image, release, &release_log)
                        .await?;
                }
                Ok(out)
            })
            .await
        };
        let (result, ()) = tokio::join!(work, self.pump_build_log(&d, &build, rx));
        if result.is_err() {
            // Timed out, perhaps mid-release: nothing of it may keep running.
            if let Err(e) = self.remove_release(&d).await {
                warn!(deployment = %d.id, error = %e, "Could not remove a release workload.");
            }
        }
        let outcome = match result {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(format!(
                "build v{} did not finish within build_timeout_s ({} s); it was stopped after {:.1} s",
                build.number,
                d.snapshot.settings.build_timeout_s,
                timeout.as_secs_f64()
            )),
        };
        self.finish_build(&d, &build, outcome, started.elapsed())
            .await;
    }

    /// Write build output to the deploy log and the events in batches, until the build ends.
    /// The checked-out commit goes on the `Build` at once, so the record says what was built
    /// even if the build fails afterwards.
    async fn pump_build_log(
        &self,
        d: &Deployment,
        build: &Build,
        mut rx: mpsc::UnboundedReceiver<BuildProgress>,
    ) {
        let number = build.number;
        let mut batch = Vec::new();
        let mut open = true;
        while open && rx.recv_many(&mut batch, 512).await > 0 {
            // Lines arriving within the batch interval go in one write; the build's end (the
            // channel closed) ends the wait at once, so it never waits for the log.
            let until = tokio::time::Instant::now() + BUILD_LOG_BATCH;
            while batch.len() < 512 {
                let room = 512 - batch.len();
                tokio::select! {
                    n = rx.recv_many(&mut batch, room) => {
                        if n == 0 {
                            open = false;
                            break;
                        }
                    }
                    () = tokio::time::sleep_until(until) => break,
                }
            }
            let at = self.now();
            let mut entries = Vec::with_capacity(batch.len());
            for progress in batch.drain(..) {
                match progress {
                    BuildProgress::Line(line) => entries.push(LogEntry {
                        at,
                        message: format!("build v{number}: {line}"),
                    }),
                    BuildProgress::CheckedOut { commit, subject } => {
                        self.record_build_commit(d, build, commit, subject).await;
                    }
                }
            }
            let store = self.inner.catalog.store();
            if let Err(err) = self.inner.log.append(store.as_ref(), d.id, &entries).await {
                warn!(deployment = %d.id, error = %err, "Could not persist build log lines.");
            }
            for e in entries {
                self.publish(d, EventKind::Log { message: e.message });
            }
        }
    }

    /// Put the commit the checkout resolved to, and its subject, on the `Build` (unless it
    /// already has one).
    async fn record_build_commit(
        &self,
        d: &Deployment,
        build: &Build,
        commit: String,
        subject: Option<String>,
    ) {
        let subject = subject
            .as_deref()
            .and_then(clank_core::model::commit_subject);
        let written = self
            .update_build(build.id, |b| {
                if b.commit_sha.is_none() {
                    b.commit_sha = Some(commit.clone());
                    b.commit_subject = subject.clone();
                }
            })
            .await;
        if let Err(err) = written {
            warn!(deployment = %d.id, build = %build.id, error = %err, "Could not record a build's commit.");
        }
    }

    async fn finish_build(
        &self,
        d: &Deployment,
        build: &Build,
        outcome: std::result::Result<BuildOutput, String>,
        took: Duration,
    ) {
        let n = build.number;
        let secs = took.as_secs_f64();
        let written = self
            .update_build(build.id, |b| {
                // Closed meanwhile (cancelled, or taken over by a restarted engine): keep that.
                if b.status != BuildStatus::Running {
                    return;
                }
                b.finished_at = Some(self.now());
                match &outcome {
                    Ok(out) => {
                        b.status = BuildStatus::Succeeded;
                        b.commit_sha = Some(out.commit_sha.clone());
                        b.dockerfile = Some(out.dockerfile.clone());
                        b.procfile = out.procfile.clone();
                        b.framework = out.framework.clone();
                        b.image = Some(out.image.clone());
                    }
                    Err(reason) => {
                        b.status = BuildStatus::Failed;
                        b.failure = Some(reason.clone());
                    }
                }
            })
            .await;
        if let Err(err) = written {
            // The planner still gets the result; only the record misses it.
            warn!(deployment = %d.id, build = %build.id, error = %err, "Could not record a build's result.");
        }
        let (run, message) = match outcome {
            Ok(out) => (
                BuildRun::Succeeded {
                    image: out.image.clone(),
                },
                format!(
                    "build v{n} succeeded in {secs:.1} s: {} from commit {}{}",
                    out.image,
                    out.commit_sha,
                    out.framework
                        .map(|f| format!(" (detected {f}, generated Dockerfile)"))
                        .unwrap_or_default()
                ),
            ),
            Err(reason) => (
                BuildRun::Failed {
                    reason: reason.clone(),
                },
                format!("build v{n} failed after {secs:.1} s: {reason}"),
            ),
        };
        self.note(d, message).await;
        {
            let mut builds = lock(&self.inner.builds);
            let ours = matches!(builds.get(&d.id), Some(BuildRun::Running { build: id, .. }) if *id == build.id);
            if ours {
                builds.insert(d.id, run);
            }
        }
        self.wake(d.service_id);
    }

    /// Remove the images of this service's builds that no retained deployment runs: the
    /// newest `image_retention` deployments (and the ACTIVE one) keep theirs, so rolling back
    /// to any of them always works. Images still in use are left alone.
    pub(super) async fn prune_images(&self, service: &Service) -> Result<()> {
        let Some(builder) = lock(&self.inner.builder).clone() else {
            return Ok(());
        };
        let cat = &self.inner.catalog;
        let retention = self.inner.config.image_retention.max(1);
        let recent = cat
            .deployments_of(service.id, Page::newest(retention))
            .await?;
        let mut keep: std::collections::BTreeSet<String> = recent
            .items
            .iter()
            .filter_map(|d| d.state.image.as_ref().map(ToString::to_string))
            .collect();
        if let Some(active) = service.active_deployment {
            if let Some(d) = cat.get::<Deployment>(&active.to_string()).await? {
                keep.extend(d.state.image.as_ref().map(ToString::to_string));
            }
        }
        for build in cat.builds_of(service.id, Page::all()).await?.items {
            let Some(image) = build
                .image
                .as_ref()
                .filter(|i| !keep.contains(&i.to_string()))
            else {
                continue;
            };
            match builder.remove_image(image).await {
                Ok(()) => debug!(image = %image, "Pruned an old build image."),
                Err(Error::Conflict(reason)) => {
                    debug!(image = %image, %reason, "Build image still in use; kept.")
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    pub(super) async fn cancel_build(&self, d: &Deployment) -> Result<()> {
        let running = match lock(&self.inner.builds).remove(&d.id) {
            Some(BuildRun::Running { build, task }) => {
                task.abort();
                Some(build)
            }
            _ => None,
        };
        self.remove_release(d).await?;
        let Some(build) = running.or(d.state.build_id) else {
            return Ok(());
        };
        let (status, reason) = if d.state.cancel.is_some() {
            (BuildStatus::Cancelled, "cancelled on request".to_owned())
        } else {
            (
                BuildStatus::Failed,
                format!(
                    "stopped: the deployment's BUILDING deadline passed (build_timeout_s = {} s)",
                    d.snapshot.settings.build_timeout_s
                ),
            )
        };
        if self.close_build(build, status, &reason).await? {
            self.note(d, format!("build {reason}")).await;
        }
        Ok(())
    }

    /// End a build still on record as running; `true` when it was.
    async fn close_build(&self, id: BuildId, status: BuildStatus, reason: &str) -> Result<bool> {
        let mut closed = false;
        self.update_build(id, |b| {
            if b.status == BuildStatus::Running {
                b.status = status;
                b.failure = Some(reason.to_owned());
                b.finished_at = Some(self.now());
                closed = true;
            }
        })
        .await?;
        Ok(closed)
    }

    /// Run the Procfile's `release` command once in a one-off workload of the new image;
    /// `Err` says why the release failed.
    async fn run_release(
        &self,
        d: &Deployment,
        image: &ImageRef,
        release: &ProcfileEntry,
        log: &mpsc::UnboundedSender<BuildProgress>,
    ) -> std::result::Result<(), String> {
        let cannot = |e: Error| format!("the release command could not run: {e}");
        let cat = &self.inner.catalog;
        let project = cat
            .require::<Project>(&d.project_id.to_string())
            .await
            .map_err(cannot)?;
        let environment = cat
            .require::<Environment>(&d.environment_id.to_string())
            .await
            .map_err(cannot)?;
        let service = cat
            .require::<Service>(&d.service_id.to_string())
            .await
            .map_err(cannot)?;
        // The deployment as it will run, with the release as its only process type.
        let mut one_off = d.clone();
        one_off.state.image = Some(image.clone());
        one_off.snapshot.processes = [(
            RELEASE.to_owned(),
            ProcessSpec {
                command: Some(release.argv()),
                replicas: 1,
            },
        )]
        .into();
        let user_env = d
            .snapshot
            .config
            .to_env(&self.inner.keyring)
            .map_err(cannot)?;
        let publish = PortBinding {
            host_ip: self.inner.config.publish_ip,
            host_port: None,
        };
        let mut spec = workload_specs(
            &project,
            &environment,
            &service,
            &one_off,
            &user_env,
            publish,
        )
        .map_err(cannot)?
        .into_iter()
        // Not the endpoint's connector, which a tunnel service's specs also hold.
        .find(|s| s.owner.process == RELEASE)
        .ok_or_else(|| "the release command has no workload".to_owned())?;
        spec.restart = RestartPolicy::Never;
        // It runs while the ACTIVE version still serves: volumes not declared `shared` stay
        // single-writer, so the release command does not get them.
        // (The spec's volumes are the snapshot's, in order, under their runtime names.)
        spec.volumes = std::mem::take(&mut spec.volumes)
            .into_iter()
            .zip(&d.snapshot.volumes)
            .filter(|(_, declared)| declared.shared)
            .map(|(mounted, _)| mounted)
            .collect();
        let runtime = &self
            .placed_on(d.snapshot.server_id)
            .map_err(cannot)?
            .runtime;
        let labels = clank_core::runtime::Owner::labels_for_project(d.workspace_id, d.project_id);
        runtime
            .ensure_network(&project.network_of(&environment), &labels)
            .await
            .map_err(cannot)?;
        let _ = log.send(BuildProgress::Line(format!(
            "release: running `{}`",
            release.command
        )));
        let started = runtime.start(&spec).await.map_err(cannot)?;
        if let Ok(mut lines) = runtime
            .logs(
                &started.id,
                LogOptions {
                    follow: true,
                    tail: None,
                },
            )
            .await
        {
            while let Some(Ok(line)) = lines.next().await {
                let _ = log.send(BuildProgress::Line(format!("release: {}", line.line)));
            }
        }
        let exit = loop {
            match runtime.inspect(&started.id).await.map_err(cannot)? {
                None => break Err("the release workload disappeared before it finished".to_owned()),
                Some(w) => match w.state {
                    WorkloadState::Exited {
                        code, oom_killed, ..
                    } => break Ok((code, oom_killed)),
                    _ => tokio::time::sleep(Duration::from_millis(100)).await,
                },
            }
        };
        let _ = runtime.remove(&started.id).await;
        match exit? {
            (Some(0), _) => {
                let _ = log.send(BuildProgress::Line(
                    "release: finished (exit code 0)".to_owned(),
                ));
                Ok(())
            }
            (_, true) => Err(format!(
                "the release command `{}` was killed for exceeding its memory limit (OOM)",
                release.command
            )),
            (code, false) => Err(format!(
                "the release command `{}` failed with exit code {}",
                release.command,
                code.map_or_else(|| "unknown".to_owned(), |c| c.to_string())
            )),
        }
    }

    /// Stop and remove the deployment's release workload, if any.
    async fn remove_release(&self, d: &Deployment) -> Result<()> {
        let runtime = &self.placed_on(d.snapshot.server_id)?.runtime;
        let filter = OwnerFilter {
            deployment: Some(d.id),
            ..OwnerFilter::default()
        };
        for w in runtime.list(&filter).await? {
            if w.owner.process == RELEASE {
                runtime.stop(&w.id, self.inner.config.stop_grace).await?;
                runtime.remove(&w.id).await?;
            }
        }
        Ok(())
    }

    /// Give workloads without a command of their own their Procfile command, if the build
    /// that made the deployment's image had a Procfile.
    pub(super) async fn apply_procfile(
        &self,
        d: &Deployment,
        mut specs: Vec<WorkloadSpec>,
    ) -> Result<Vec<WorkloadSpec>> {
        if specs.iter().all(|s| s.command.is_some()) {
            return Ok(specs);
        }
        let cat = &self.inner.catalog;
        let build = match d.state.build_id {
            Some(id) => cat.get::<Build>(&id.to_string()).await?.map(|b| b.value),
            None => match &d.state.image {
                Some(image) => cat
                    .builds_of(d.service_id, Page::all())
                    .await?
                    .items
                    .into_iter()
                    .map(|b| b.value)
                    .find(|b| b.image.as_ref() == Some(image)),
                None => None,
            },
        };
        let Some(text) = build.and_then(|b| b.procfile) else {
            return Ok(specs);
        };
        // Checked when the build finished; a Procfile that does not parse never gets here.
        let entries = procfile::parse(&text).unwrap_or_default();
        for spec in specs.iter_mut().filter(|s| s.command.is_none()) {
            if let Some(entry) = entries.iter().find(|e| e.name == spec.owner.process) {
                spec.command = Some(entry.argv());
            }
        }
        Ok(specs)
    }

    /// Read-modify-write a build record, retrying lost races. A missing record is left alone.
    async fn update_build(&self, id: BuildId, mut change: impl FnMut(&mut Build)) -> Result<()> {
        let cat = &self.inner.catalog;
        loop {
            let Some(current) = cat.get::<Build>(&id.to_string()).await? else {
                return Ok(());
            };
            let mut next = current.value.clone();
            change(&mut next);
            if next == current.value {
                return Ok(());
            }
            match cat.update(&current, &next).await {
                Err(Error::WriteConflict { .. }) => continue,
                other => return other.map(|_| ()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_tags_are_versioned_per_service_and_scoped_to_the_workspace() {
        let (a, b) = (WorkspaceId::new(), WorkspaceId::new());
        let tag = build_tag(a, "shop", "web", 3).unwrap().to_string();
        assert_eq!(tag, format!("clank/{}-shop-web:v3", a.scope()));
        assert_ne!(tag, build_tag(b, "shop", "web", 3).unwrap().to_string());
    }
}
