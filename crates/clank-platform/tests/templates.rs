//! Stacks from templates on the real Docker Engine, with images built from Debian's packages by
//! `scripts/images/{postgres,mariadb,redis,wordpress}.sh` passed as image overrides: the
//! PostgreSQL, Redis and MariaDB templates answer with their generated password (and refuse a
//! client without it), PostgreSQL keeps its rows across a redeploy and an upgrade (never two
//! servers on its volume, the password unchanged), and the WordPress stack starts its MariaDB
//! companion first and serves its installer. Prints the time from create to ACTIVE for each
//! stack and the database's stop-first redeploy gap.
//!
//! Bad inputs are proven on fakes (no Docker needed): each names its field and creates nothing.
//!
//! Fails (never skips) without a Docker Engine in CI; building an image needs Debian's mirror.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clank_api::{NewStack, StackUpgrade, StackView};
use clank_core::address::{EnvironmentAddress, ServiceAddress};
use clank_core::deploy::DeploymentStatus;
use clank_core::runtime::{ExecOutput, OwnerFilter, Runtime, WorkloadState};
use clank_core::secret::{KeyId, Keyring};
use clank_core::store::memory::MemoryStore;
use clank_core::{Error, ErrorKind};
use clank_docker::DockerRuntime;
use clank_engine::EngineConfig;
use clank_platform::{EngineTask, Platform, WorkloadSelector};
use clank_testkit::cleanup::block_on_aside;
use clank_testkit::runtime::skip_or_fail;
use clank_testkit::service_images;

fn keyring() -> Keyring {
    Keyring::new(KeyId::new("k1").unwrap(), Keyring::generate_key().unwrap())
}

/// A platform on Docker (memory store) in a project of its own, removing every container,
/// network and volume of that project when dropped.
struct World {
    platform: Platform,
    engine: Option<EngineTask>,
    runtime: Arc<DockerRuntime>,
    project: String,
}

impl World {
    async fn new(templates: Option<clank_templates::Catalog>) -> Option<World> {
        let runtime = match DockerRuntime::connect().await {
            Ok(r) => Arc::new(r),
            Err(e) => return skip_or_fail("a Docker Engine", &e.to_string()),
        };
        let config = EngineConfig {
            stop_grace: Duration::from_secs(10),
            probe_timeout: Duration::from_secs(3),
            ..EngineConfig::default()
        };
        let mut builder =
            Platform::builder(Arc::new(MemoryStore::new()), runtime.clone(), keyring())
                .engine_config(config);
        if let Some(t) = templates {
            builder = builder.templates(Arc::new(t));
        }
        let platform = builder.build().await.unwrap();
        let engine = platform.spawn_engine();
        let project = format!("tpl{}", &uuid_hex()[..10]);
        platform.ensure_default_workspace().await.unwrap();
        platform
            .create_project("default", "Templates", Some(&project))
            .await
            .unwrap();
        Some(World {
            platform,
            engine: Some(engine),
            runtime,
            project,
        })
    }

    fn env(&self) -> EnvironmentAddress {
        self.platform.parse_environment(&self.project).unwrap()
    }

    fn addr(&self, service: &str) -> ServiceAddress {
        self.platform
            .parse_service(&format!("{}/{service}", self.project))
            .unwrap()
    }

    async fn create(&self, template: &str, name: &str, images: &[(&str, &str)]) -> StackView {
        self.platform
            .create_stack(
                &self.env(),
                NewStack {
                    template: template.into(),
                    name: Some(name.into()),
                    images: images
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                    ..NewStack::default()
                },
            )
            .await
            .unwrap_or_else(|e| panic!("create stack {name} from {template}: {e}"))
    }

    /// Create stack `name` from `template` and wait until it is ACTIVE (`within`): the view
    /// `create_stack` returned, and how long create → ACTIVE took.
    async fn create_active(
        &self,
        template: &str,
        name: &str,
        images: &[(&str, &str)],
        within: Duration,
    ) -> (StackView, StackView, Duration) {
        let began = Instant::now();
        let created = self.create(template, name, images).await;
        let active = self.wait_stack_active(name, within).await;
        (created, active, began.elapsed())
    }

    /// Wait until every service of the stack has an ACTIVE deployment; fails on a terminal one.
    async fn wait_stack_active(&self, name: &str, within: Duration) -> StackView {
        let began = Instant::now();
        loop {
            let s = self.platform.stack(&self.env(), name).await.unwrap();
            if s.services.iter().all(|x| x.active) {
                return s;
            }
            for x in &s.services {
                if let Some(d) = &x.deployment {
                    assert!(
                        !d.status.is_terminal(),
                        "{} #{} ended {} ({:?}); deploy log:\n{}",
                        x.service,
                        d.number,
                        d.status,
                        d.reason,
                        self.log(&x.service, d.number).await
                    );
                }
            }
            assert!(
                began.elapsed() < within,
                "stack {name} not ACTIVE within {within:?}: {s:#?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn log(&self, service: &str, number: u64) -> String {
        self.platform
            .deploy_log(&self.addr(service), number)
            .await
            .map(|l| {
                l.iter()
                    .map(|e| format!("{e:?}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    }

    /// `sh -c script` in the service's running container.
    async fn sh(&self, service: &str, script: &str) -> ExecOutput {
        self.platform
            .exec(
                &self.addr(service),
                &WorkloadSelector::default(),
                vec!["sh".into(), "-c".into(), script.into()],
                Duration::from_secs(60),
            )
            .await
            .unwrap_or_else(|e| panic!("exec in {service}: {e}"))
    }

    /// Like [`World::sh`], retried until it exits 0 (a server accepting connections a moment
    /// after its port opened), up to `within`.
    async fn sh_ok(&self, service: &str, script: &str, within: Duration) -> ExecOutput {
        let began = Instant::now();
        loop {
            let out = self.sh(service, script).await;
            if out.exit_code == Some(0) {
                return out;
            }
            assert!(
                began.elapsed() < within,
                "`{script}` in {service} kept failing: {out:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Deploy `service` again and wait for ACTIVE, never seeing two of its containers run at
    /// once (it owns its data directory); returns the stop-first gap (DEPLOYING entered →
    /// ACTIVE).
    async fn redeploy(&self, service: &str) -> Duration {
        let addr = self.addr(service);
        let id = self.platform.service(&addr).await.unwrap().id;
        let d = self
            .platform
            .deploy(&addr, clank_core::model::Trigger::Manual { by: None })
            .await
            .unwrap();
        self.wait_active_one_at_a_time(service, id, d.number).await
    }

    /// Wait for deployment `number` of `service` to be ACTIVE, sampling how many of its
    /// containers run at once: never more than one. Returns the gap (DEPLOYING → ACTIVE).
    async fn wait_active_one_at_a_time(
        &self,
        service: &str,
        id: clank_core::id::ServiceId,
        number: u64,
    ) -> Duration {
        let addr = self.addr(service);
        let filter = OwnerFilter {
            service: Some(id),
            ..OwnerFilter::default()
        };
        let mut most = 0;
        let began = Instant::now();
        loop {
            let running = self
                .runtime
                .list(&filter)
                .await
                .unwrap()
                .iter()
                .filter(|w| matches!(w.state, WorkloadState::Running { .. }))
                .count();
            most = most.max(running);
            let d = self.platform.deployment(&addr, number).await.unwrap();
            if d.status == DeploymentStatus::Active {
                let at = |s: DeploymentStatus| {
                    d.history.iter().find(|h| h.to == s).map(|h| h.at).unwrap()
                };
                assert_eq!(
                    most, 1,
                    "never two servers of {service} on its data directory"
                );
                return at(DeploymentStatus::Active).since(at(DeploymentStatus::Deploying));
            }
            assert!(
                !d.status.is_terminal(),
                "{service} #{number} ended {} ({:?}):\n{}",
                d.status,
                d.reason,
                self.log(service, number).await
            );
            assert!(
                began.elapsed() < Duration::from_secs(300),
                "redeploy too slow"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for World {
    /// Remove the project's containers, network and volumes, even after a panic.
    fn drop(&mut self) {
        drop(self.engine.take());
        let project = self.project.clone();
        block_on_aside(async move {
            let Ok(runtime) = DockerRuntime::connect().await else {
                return;
            };
            let docker = runtime.client().clone();
            // Containers of this project: their names carry the project slug.
            let containers = docker
                .list_containers(Some(
                    bollard::query_parameters::ListContainersOptionsBuilder::default()
                        .all(true)
                        .build(),
                ))
                .await
                .unwrap_or_default();
            for c in containers {
                let ours = c
                    .names
                    .unwrap_or_default()
                    .iter()
                    .any(|n| n.contains(&project));
                if let (true, Some(id)) = (ours, c.id) {
                    let _ = docker
                        .remove_container(
                            &id,
                            Some(
                                bollard::query_parameters::RemoveContainerOptionsBuilder::default()
                                    .force(true)
                                    .build(),
                            ),
                        )
                        .await;
                }
            }
            clank_testkit::testapp::docker::remove_networks_of_project(&docker, &project).await;
            // Tags this test made (`…-next-<project>`), also after a panic.
            if let Ok(images) = docker
                .list_images(None::<bollard::query_parameters::ListImagesOptions>)
                .await
            {
                for tag in images.into_iter().flat_map(|i| i.repo_tags) {
                    if tag.contains(&project) {
                        let _ = docker
                            .remove_image(
                                &tag,
                                None::<bollard::query_parameters::RemoveImageOptions>,
                                None,
                            )
                            .await;
                    }
                }
            }
            if let Ok(volumes) = docker
                .list_volumes(None::<bollard::query_parameters::ListVolumesOptions>)
                .await
            {
                for v in volumes.volumes.unwrap_or_default() {
                    if v.name.contains(&project) {
                        let _ = docker
                            .remove_volume(
                                &v.name,
                                None::<bollard::query_parameters::RemoveVolumeOptions>,
                            )
                            .await;
                    }
                }
            }
        });
    }
}

fn uuid_hex() -> String {
    clank_core::id::StackId::new()
        .as_uuid()
        .simple()
        .to_string()
        .chars()
        .rev()
        .collect()
}

fn stdout(o: &ExecOutput) -> String {
    o.stdout.trim().to_owned()
}

const PSQL_TCP: &str = "PGPASSWORD=\"$POSTGRES_PASSWORD\" psql -h 127.0.0.1 -U \"$POSTGRES_USER\" -d \"$POSTGRES_DB\" -qAt -v ON_ERROR_STOP=1";

#[tokio::test]
async fn postgres_stack_keeps_its_rows_and_password_across_a_redeploy_and_an_upgrade() {
    let pg = service_images::build("postgres");
    let Some(w) = World::new(None).await else {
        return;
    };
    // The catalog's next version of the template runs another tag of the same image (one per
    // run: concurrent runs each remove their own).
    let next_tag = format!("{pg}-next-{}", w.project);
    let tagged = std::process::Command::new("docker")
        .args(["tag", &pg, &next_tag])
        .status();
    assert!(tagged.unwrap().success());

    let (created, _, to_active) = w
        .create_active("postgres", "db", &[("db", &pg)], Duration::from_secs(300))
        .await;
    assert_eq!(created.services[0].image, pg);

    // The stored secret is what the server was initialised with: a TCP login with it works,
    // one without it is refused.
    w.sh_ok(
        "db",
        &format!("{PSQL_TCP} -c 'create table t (v text)' -c \"insert into t values ('kept')\""),
        Duration::from_secs(60),
    )
    .await;
    let refused = w
        .sh("db", "PGPASSWORD=wrong psql -h 127.0.0.1 -U \"$POSTGRES_USER\" -d \"$POSTGRES_DB\" -c 'select 1'")
        .await;
    assert_ne!(refused.exit_code, Some(0), "a wrong password is refused");
    let password_before = stdout(&w.sh("db", "printf %s \"$POSTGRES_PASSWORD\"").await);
    assert_eq!(password_before.len(), 48, "24 random bytes, hex");

    let gap = w.redeploy("db").await;
    let rows = w
        .sh_ok(
            "db",
            &format!("{PSQL_TCP} -c 'select v from t'"),
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(stdout(&rows), "kept");

    // Upgrade: the preview lists the image change; nothing applies without its plan id.
    let dir = tempfile::tempdir().unwrap();
    let builtin = clank_templates::BUILTIN
        .iter()
        .find(|(f, _)| *f == "postgres.toml")
        .unwrap()
        .1;
    let next = builtin
        .replace("version = \"16.4\"", "version = \"16.5\"")
        .replace(
            "image = \"postgres:16.4\"",
            &format!("image = \"{next_tag}\""),
        );
    std::fs::write(dir.path().join("postgres.toml"), next).unwrap();
    let catalog = clank_templates::Catalog::load(Some(dir.path())).unwrap();
    let upgraded = w.platform.clone().with_templates(Arc::new(catalog));
    let preview = upgraded
        .upgrade_stack(&w.env(), "db", StackUpgrade::default())
        .await
        .unwrap();
    assert!(!preview.applied);
    assert_eq!(
        preview.changes,
        [format!("~ db: image {pg} -> {next_tag}")],
        "{preview:#?}"
    );
    let wrong = upgraded
        .upgrade_stack(
            &w.env(),
            "db",
            StackUpgrade {
                to: None,
                apply: Some("0000".into()),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(wrong.kind(), ErrorKind::Conflict);
    let still = w.platform.stack(&w.env(), "db").await.unwrap();
    assert_eq!(
        (still.version.as_str(), still.services[0].image.as_str()),
        ("16.4", pg.as_str())
    );

    let id = w.platform.service(&w.addr("db")).await.unwrap().id;
    let applied = upgraded
        .upgrade_stack(
            &w.env(),
            "db",
            StackUpgrade {
                to: Some("16.5".into()),
                apply: Some(preview.plan_id.clone()),
            },
        )
        .await
        .unwrap();
    assert!(applied.applied);
    let after = applied.result.unwrap();
    assert_eq!(after.version, "16.5");
    let number = after.services[0].deployment.as_ref().unwrap().number;
    let upgrade_gap = w.wait_active_one_at_a_time("db", id, number).await;
    let rows = w
        .sh_ok(
            "db",
            &format!("{PSQL_TCP} -c 'select v from t'"),
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(stdout(&rows), "kept", "the row survived the upgrade");
    let password_after = stdout(&w.sh("db", "printf %s \"$POSTGRES_PASSWORD\"").await);
    assert_eq!(
        password_after, password_before,
        "the password was not regenerated"
    );
    // Applying the same plan again is refused: the stack changed.
    let again = upgraded
        .upgrade_stack(
            &w.env(),
            "db",
            StackUpgrade {
                to: None,
                apply: Some(preview.plan_id),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(again.kind(), ErrorKind::Conflict);

    eprintln!(
        "MEASURED postgres: create -> ACTIVE {:.1} s; redeploy gap (stop-first, DEPLOYING -> ACTIVE) {:.1} s; upgrade gap {:.1} s",
        to_active.as_secs_f64(),
        gap.as_secs_f64(),
        upgrade_gap.as_secs_f64()
    );
}

#[tokio::test]
async fn redis_stack_answers_with_its_generated_password_and_refuses_without_it() {
    let redis = service_images::build("redis");
    let Some(w) = World::new(None).await else {
        return;
    };
    let (_, _, to_active) = w
        .create_active(
            "redis",
            "cache",
            &[("cache", &redis)],
            Duration::from_secs(300),
        )
        .await;
    let pong = w
        .sh_ok(
            "cache",
            "redis-cli --no-auth-warning -a \"$REDIS_PASSWORD\" ping",
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(stdout(&pong), "PONG");
    let anonymous = w.sh("cache", "redis-cli ping").await;
    let text = format!("{}{}", anonymous.stdout, anonymous.stderr);
    assert!(
        text.contains("NOAUTH"),
        "an unauthenticated call is refused: {text}"
    );
    let gap = w.redeploy("cache").await;
    eprintln!(
        "MEASURED redis: create -> ACTIVE {:.1} s; redeploy gap (stop-first) {:.1} s",
        to_active.as_secs_f64(),
        gap.as_secs_f64()
    );
}

const MARIADB_APP: &str = "mariadb -h 127.0.0.1 -u\"$MARIADB_USER\" -p\"$MARIADB_PASSWORD\" \"$MARIADB_DATABASE\" -N -e 'select 41+1'";

#[tokio::test]
async fn mariadb_stack_answers_with_its_generated_password_and_refuses_without_it() {
    let mariadb = service_images::build("mariadb");
    let Some(w) = World::new(None).await else {
        return;
    };
    let (_, _, to_active) = w
        .create_active(
            "mariadb",
            "sql",
            &[("db", &mariadb)],
            Duration::from_secs(300),
        )
        .await;
    let answer = w.sh_ok("sql", MARIADB_APP, Duration::from_secs(60)).await;
    assert_eq!(stdout(&answer), "42");
    let anonymous = w
        .sh(
            "sql",
            "mariadb -h 127.0.0.1 -u\"$MARIADB_USER\" -N -e 'select 1'",
        )
        .await;
    assert_ne!(anonymous.exit_code, Some(0), "no password: refused");
    let gap = w.redeploy("sql").await;
    w.sh_ok("sql", MARIADB_APP, Duration::from_secs(60)).await;
    eprintln!(
        "MEASURED mariadb: create -> ACTIVE {:.1} s; redeploy gap (stop-first) {:.1} s",
        to_active.as_secs_f64(),
        gap.as_secs_f64()
    );
}

#[tokio::test]
async fn wordpress_stack_starts_its_database_first_and_serves_the_installer() {
    let mariadb = service_images::build("mariadb");
    let wordpress = service_images::build("wordpress");
    let Some(w) = World::new(None).await else {
        return;
    };
    let images = [("db", mariadb.as_str()), ("app", wordpress.as_str())];
    let (created, s, to_active) = w
        .create_active("wordpress", "blog", &images, Duration::from_secs(600))
        .await;
    let slugs: Vec<&str> = created
        .services
        .iter()
        .map(|s| s.service.as_str())
        .collect();
    assert_eq!(slugs, ["blog-db", "blog"]);

    let db = s.services[0].deployment.as_ref().unwrap();
    let app = s.services[1].deployment.as_ref().unwrap();
    let db_active = db
        .history
        .iter()
        .find(|h| h.to == DeploymentStatus::Active)
        .unwrap()
        .at;
    let app_left_pending = app
        .history
        .iter()
        .find(|h| h.from == Some(DeploymentStatus::Pending))
        .unwrap()
        .at;
    assert!(
        app_left_pending >= db_active,
        "the app left PENDING at {app_left_pending}, before its database was ACTIVE at {db_active}"
    );
    let waited = app
        .history
        .iter()
        .any(|h| h.reason.as_deref() == Some("waiting for blog-db to be ACTIVE"))
        || app_left_pending.since(app.created_at) > Duration::from_millis(500);
    assert!(
        waited,
        "the app waited for its database: {:#?}",
        app.history
    );

    // The installer, through the app's published port (this harness runs no proxy).
    let endpoints = w
        .platform
        .endpoints(&w.addr("blog"), app.number)
        .await
        .unwrap();
    let addr = *endpoints.first().expect("the app publishes its port");
    let page = clank_testkit::http::get(addr, "/wp-admin/install.php", Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("WordPress") && page.body.contains("install"),
        "the installer page: {}",
        &page.body[..page.body.len().min(500)]
    );
    let gap = w.redeploy("blog-db").await;
    eprintln!(
        "MEASURED wordpress (+ mariadb): create -> ACTIVE {:.1} s; database redeploy gap (stop-first) {:.1} s",
        to_active.as_secs_f64(),
        gap.as_secs_f64()
    );
}

// ---- Bad inputs (fakes: no Docker needed) ---------------------------------------------------

async fn fake_platform() -> Platform {
    let journal = clank_testkit::fakes::Journal::default();
    let runtime = Arc::new(clank_testkit::fakes::FakeRuntime::new(journal));
    let p = Platform::builder(Arc::new(MemoryStore::new()), runtime, keyring())
        .build()
        .await
        .unwrap();
    p.ensure_default_workspace().await.unwrap();
    p.create_project("default", "Shop", Some("shop"))
        .await
        .unwrap();
    p
}

fn field_of(e: &Error) -> String {
    e.field().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn bad_inputs_name_their_field_and_create_nothing() {
    let p = fake_platform().await;
    let env = p.parse_environment("shop").unwrap();
    let new = |template: &str| NewStack {
        template: template.into(),
        ..NewStack::default()
    };
    let cases: Vec<(NewStack, &str)> = vec![
        (new("no-such-template"), "template"),
        (
            NewStack {
                inputs: BTreeMap::from([("nope".to_owned(), "1".to_owned())]),
                ..new("postgres")
            },
            "inputs.nope",
        ),
        (
            NewStack {
                inputs: BTreeMap::from([("password".to_owned(), "mine".to_owned())]),
                ..new("postgres")
            },
            "inputs.password",
        ),
        (
            NewStack {
                images: BTreeMap::from([("db".to_owned(), "Not An Image!".to_owned())]),
                ..new("postgres")
            },
            "images.db",
        ),
        (
            NewStack {
                images: BTreeMap::from([("web".to_owned(), "nginx:1.27".to_owned())]),
                ..new("postgres")
            },
            "images.web",
        ),
        (
            NewStack {
                name: Some("Bad Name".into()),
                ..new("postgres")
            },
            "name",
        ),
    ];
    for (stack, field) in cases {
        let e = p.create_stack(&env, stack.clone()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid, "{stack:?}: {e}");
        assert_eq!(field_of(&e), field, "{stack:?}: {e}");
    }
    assert!(p.list_services(&env).await.unwrap().is_empty());
    assert!(p.stacks(&env).await.unwrap().is_empty());

    // A companion's slug already taken: refused naming `name`, and nothing of the stack
    // (not even its app service) is created.
    p.create_service(
        &env,
        clank_api::ServiceSpec::new(
            "blog-db",
            clank_core::model::ServiceSource::DockerImage {
                image: "mariadb:11.4".parse().unwrap(),
                credentials_secret: None,
            },
        ),
    )
    .await
    .unwrap();
    let e = p
        .create_stack(
            &env,
            NewStack {
                name: Some("blog".into()),
                ..new("wordpress")
            },
        )
        .await
        .unwrap_err();
    assert_eq!(field_of(&e), "name", "{e}");
    assert!(e.to_string().contains("blog-db"), "{e}");
    let services = p.list_services(&env).await.unwrap();
    assert_eq!(services.len(), 1, "only the service that was there");
    assert!(p.stacks(&env).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_stack_records_its_services_and_keeps_generated_secrets_sealed() {
    let p = fake_platform().await;
    let env = p.parse_environment("shop").unwrap();
    let s = p
        .create_stack(
            &env,
            NewStack {
                template: "wordpress".into(),
                name: Some("blog".into()),
                domain: Some("blog.example.com".into()),
                ..NewStack::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(s.version, "6.6");
    let slugs: Vec<&str> = s.services.iter().map(|x| x.service.as_str()).collect();
    assert_eq!(slugs, ["blog-db", "blog"]);
    assert!(
        s.services.iter().all(|x| x.deployment.is_some()),
        "both deployed"
    );
    let app = p
        .service(&p.parse_service("shop/blog").unwrap())
        .await
        .unwrap();
    assert_eq!(app.depends_on, ["blog-db"]);
    assert!(app.endpoint.is_some());
    let db = p
        .service(&p.parse_service("shop/blog-db").unwrap())
        .await
        .unwrap();
    assert!(
        db.endpoint.is_none() && !db.settings.is_public,
        "companions are never exposed"
    );
    let config = p
        .config(&clank_platform::ConfigTarget::Service(
            p.parse_service("shop/blog").unwrap(),
        ))
        .await
        .unwrap();
    let text = serde_json::to_string(&config).unwrap();
    let pw = config
        .iter()
        .find(|v| v.key == "WORDPRESS_DB_PASSWORD")
        .unwrap();
    assert!(pw.secret, "{text}");
    // The same stack again is refused (its slug is taken).
    let e = p
        .create_stack(
            &env,
            NewStack {
                template: "wordpress".into(),
                name: Some("blog".into()),
                ..NewStack::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(field_of(&e), "name");
    // No upgrade without a plan id, and the current catalog's plan is empty.
    let preview = p
        .upgrade_stack(&env, "blog", StackUpgrade::default())
        .await
        .unwrap();
    assert!(preview.changes.is_empty(), "{preview:#?}");
}
