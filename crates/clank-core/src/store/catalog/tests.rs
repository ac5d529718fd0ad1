//! Catalog behaviour over the in-memory store (the contract suite in clank-testkit proves the
//! same primitives hold on redb and sled).

use std::sync::Arc;

use super::*;
use crate::config::ResolvedConfig;
use crate::model::{ServiceSource, Trigger};
use crate::store::memory::MemoryStore;

const T0: Timestamp = Timestamp(1_800_000_000_000);

fn catalog() -> Catalog {
    Catalog::new(Arc::new(MemoryStore::new()))
}

async fn service_in(cat: &Catalog) -> (Project, Environment, Versioned<Service>) {
    let ws = WorkspaceId::new();
    let project = Project::new(ws, "Shop", None, T0).unwrap();
    let env = cat.create_project(&project, T0).await.unwrap();
    let svc = Service::new(
        ws,
        project.id,
        env.id,
        "api",
        ServiceSource::DockerImage {
            image: "shop/api:1".parse().unwrap(),
            credentials_secret: None,
        },
        T0,
    )
    .unwrap();
    cat.create(&svc).await.unwrap();
    let svc = cat.require::<Service>(&svc.id.to_string()).await.unwrap();
    (project, env, svc)
}

async fn deploy(cat: &Catalog, service: ServiceId) -> Versioned<Deployment> {
    loop {
        let svc = cat.require::<Service>(&service.to_string()).await.unwrap();
        let d = Deployment::new(
            &svc,
            ResolvedConfig::default(),
            Trigger::Manual { by: None },
            T0,
        );
        match cat.create_deployment(&svc, &d).await {
            Ok(_) => return cat.require(&d.id.to_string()).await.unwrap(),
            Err(Error::WriteConflict { .. }) => continue,
            Err(e) => panic!("{e}"),
        }
    }
}

#[tokio::test]
async fn project_gets_a_production_environment_and_its_slug_is_unique_in_the_workspace() {
    let cat = catalog();
    let (project, env, _) = service_in(&cat).await;
    assert_eq!(env.name, "production");
    let dup = Project::new(project.workspace_id, "Another shop", Some("shop"), T0).unwrap();
    let err = cat.create_project(&dup, T0).await.unwrap_err();
    assert!(
        matches!(err, Error::Conflict(ref m) if m.contains("`shop`")),
        "{err}"
    );
    assert!(
        cat.get::<Project>(&dup.id.to_string())
            .await
            .unwrap()
            .is_none(),
        "refused write left nothing"
    );
    // The same slug in another workspace is fine.
    let other = Project::new(WorkspaceId::new(), "Shop", None, T0).unwrap();
    cat.create_project(&other, T0).await.unwrap();
}

#[tokio::test]
async fn deployments_list_newest_first_and_page_without_gaps() {
    let cat = catalog();
    let (_, _, svc) = service_in(&cat).await;
    for _ in 0..25 {
        deploy(&cat, svc.id).await;
    }
    let first = cat.deployments_of(svc.id, Page::newest(10)).await.unwrap();
    let numbers: Vec<u64> = first.items.iter().map(|d| d.number).collect();
    assert_eq!(numbers, (16..=25).rev().collect::<Vec<_>>());
    let mut seen = numbers;
    let mut page = Page::newest(10);
    page.after = first.next;
    while page.after.is_some() {
        let l = cat.deployments_of(svc.id, page.clone()).await.unwrap();
        seen.extend(l.items.iter().map(|d| d.number));
        page.after = l.next;
    }
    assert_eq!(seen, (1..=25).rev().collect::<Vec<_>>());
}

#[tokio::test]
async fn concurrent_deploy_requests_get_unique_gapless_numbers() {
    let cat = catalog();
    let (_, _, svc) = service_in(&cat).await;
    let service_id = svc.id;
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let cat = cat.clone();
            tokio::spawn(async move { deploy(&cat, service_id).await.number })
        })
        .collect();
    let mut numbers = Vec::new();
    for t in tasks {
        numbers.push(t.await.unwrap());
    }
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=16).collect::<Vec<_>>());
}

#[tokio::test]
async fn status_index_follows_transitions() {
    let cat = catalog();
    let (_, _, svc) = service_in(&cat).await;
    let d = deploy(&cat, svc.id).await;
    let mut next = d.value.clone();
    let settings = next.snapshot.settings.clone();
    next.state
        .transition(DeploymentStatus::Deploying, None, &settings, T0)
        .unwrap();
    cat.save_deployment(&d, &next).await.unwrap();
    let pending = cat
        .deployments_with_status(DeploymentStatus::Pending, Page::all())
        .await
        .unwrap();
    let deploying = cat
        .deployments_with_status(DeploymentStatus::Deploying, Page::all())
        .await
        .unwrap();
    assert!(pending.items.is_empty());
    assert_eq!(deploying.items.len(), 1);
    assert_eq!(cat.live_deployments_of(svc.id).await.unwrap().len(), 1);
    let live = cat.require::<Deployment>(&d.id.to_string()).await.unwrap();
    let mut failed = live.value.clone();
    failed
        .state
        .transition(DeploymentStatus::Failed, Some("x".into()), &settings, T0)
        .unwrap();
    cat.save_deployment(&live, &failed).await.unwrap();
    assert!(
        cat.live_deployments_of(svc.id).await.unwrap().is_empty(),
        "finished deployments leave the live index"
    );
}

#[tokio::test]
async fn deployment_snapshot_cannot_be_rewritten() {
    let cat = catalog();
    let (_, _, svc) = service_in(&cat).await;
    let d = deploy(&cat, svc.id).await;
    let mut tampered = d.value.clone();
    tampered.snapshot.settings.memory_limit_mb = 4096;
    let err = cat.save_deployment(&d, &tampered).await.unwrap_err();
    assert_eq!(err.kind(), crate::ErrorKind::Conflict);
    let stored = cat.require::<Deployment>(&d.id.to_string()).await.unwrap();
    assert_eq!(stored.value, d.value);
}

#[tokio::test]
async fn stale_write_loses_and_changes_nothing() {
    let cat = catalog();
    let (_, _, svc) = service_in(&cat).await;
    let mut a = svc.value.clone();
    a.name = "first".into();
    cat.update(&svc, &a).await.unwrap();
    let mut b = svc.value.clone();
    b.name = "second".into();
    assert!(matches!(
        cat.update(&svc, &b).await,
        Err(Error::WriteConflict { .. })
    ));
    assert_eq!(
        cat.require::<Service>(&svc.id.to_string())
            .await
            .unwrap()
            .name,
        "first"
    );
}

#[tokio::test]
async fn racing_cutovers_leave_exactly_one_active() {
    let cat = catalog();
    let (_, _, svc) = service_in(&cat).await;
    let mut ready = Vec::new();
    for _ in 0..2 {
        let d = deploy(&cat, svc.id).await;
        let mut n = d.value.clone();
        let settings = n.snapshot.settings.clone();
        n.state
            .transition(DeploymentStatus::Deploying, None, &settings, T0)
            .unwrap();
        n.state
            .transition(DeploymentStatus::HealthChecking, None, &settings, T0)
            .unwrap();
        cat.save_deployment(&d, &n).await.unwrap();
        ready.push(cat.require::<Deployment>(&d.id.to_string()).await.unwrap());
    }
    // Both read the service before either writes: only one may win.
    let svc = cat.require::<Service>(&svc.id.to_string()).await.unwrap();
    let r1 = cat.activate(&svc, &ready[0], None, T0).await;
    let r2 = cat.activate(&svc, &ready[1], None, T0).await;
    assert!(r1.is_ok() && r2.is_err());
    let active = cat
        .deployments_with_status(DeploymentStatus::Active, Page::all())
        .await
        .unwrap();
    assert_eq!(active.items.len(), 1);
    let svc = cat.require::<Service>(&svc.id.to_string()).await.unwrap();
    assert_eq!(svc.active_deployment, Some(ready[0].id));

    // The second cutover, done properly, supersedes the first.
    let first = cat
        .require::<Deployment>(&ready[0].id.to_string())
        .await
        .unwrap();
    cat.activate(&svc, &ready[1], Some(&first), T0)
        .await
        .unwrap();
    let superseded = cat
        .deployments_with_status(DeploymentStatus::Superseded, Page::all())
        .await
        .unwrap();
    assert_eq!(superseded.items[0].id, ready[0].id);
    let all: Vec<_> = cat
        .deployments_of(svc.id, Page::all())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|v| v.value)
        .collect();
    let svc = cat.require::<Service>(&svc.id.to_string()).await.unwrap();
    deploy::check_service_invariants(&svc, &all).unwrap();
}

#[tokio::test]
async fn index_values_with_slashes_cannot_escape_their_prefix() {
    let cat = catalog();
    let (_, _, svc) = service_in(&cat).await;
    // A crafted index value must not match another service's prefix.
    let listing = cat
        .find::<Deployment>("service", &format!("{}/0", svc.id), Page::all())
        .await
        .unwrap();
    assert!(listing.items.is_empty());
    assert!(
        cat.find::<Deployment>(
            "service",
            &svc.id.to_string(),
            Page {
                after: Some("rec/x".into()),
                ..Page::default()
            }
        )
        .await
        .is_err()
    );
}

#[tokio::test]
async fn builds_are_numbered_per_service_with_the_counter_bumped_in_the_same_write() {
    use crate::id::BuildId;
    use crate::model::{Build, BuildStatus};
    let cat = catalog();
    let (_, _, svc) = service_in(&cat).await;
    let build = |svc: &Service| Build {
        id: BuildId::new(),
        service_id: svc.id,
        deployment_id: None,
        number: svc.next_build_number,
        repo_url: "https://example.com/acme/shop.git".into(),
        git_ref: "main".into(),
        commit_sha: None,
        commit_subject: None,
        dockerfile: None,
        procfile: None,
        framework: None,
        image: None,
        status: BuildStatus::Running,
        failure: None,
        started_at: T0,
        finished_at: None,
    };
    let v1 = build(&svc);
    cat.create_build(&svc, &v1).await.unwrap();
    // A writer holding the old view of the service loses and writes nothing.
    let stale = build(&svc);
    assert!(cat.create_build(&svc, &stale).await.is_err());
    let svc = cat.require::<Service>(&svc.id.to_string()).await.unwrap();
    assert_eq!(svc.next_build_number, 2);
    let v2 = build(&svc);
    assert_eq!(v2.number, 2);
    cat.create_build(&svc, &v2).await.unwrap();
    let listed = cat.builds_of(svc.id, Page::newest(10)).await.unwrap();
    let numbers: Vec<u64> = listed.items.iter().map(|b| b.number).collect();
    assert_eq!(numbers, [2, 1]);
    assert_eq!(listed.items[1].version_label(), "v1");
}

#[tokio::test]
async fn audit_log_lists_newest_first_per_workspace_pages_by_id_and_is_immutable() {
    use crate::model::{Actor, AuditEvent, AuditOutcome};
    let cat = catalog();
    let (ws, other) = (WorkspaceId::new(), WorkspaceId::new());
    let event = |ws: WorkspaceId, action: &str| AuditEvent {
        id: AuditEventId::new(),
        at: T0,
        workspace_id: ws,
        actor: Actor::Webhook {
            provider: "github".into(),
        },
        action: action.into(),
        target: "acme/shop".into(),
        outcome: AuditOutcome::Succeeded,
        details: serde_json::Value::Null,
    };
    let mut written = Vec::new();
    for i in 0..5 {
        let e = event(ws, &format!("a.{i}"));
        cat.record_audit(&e).await.unwrap();
        cat.record_audit(&event(other, "elsewhere")).await.unwrap();
        written.push(e);
    }
    let actions = |l: Vec<AuditEvent>| l.into_iter().map(|e| e.action).collect::<Vec<_>>();
    let newest = cat.audit_events(ws, 3, None).await.unwrap();
    assert_eq!(actions(newest.clone()), ["a.4", "a.3", "a.2"]);
    let older = cat.audit_events(ws, 3, Some(newest[2].id)).await.unwrap();
    assert_eq!(actions(older), ["a.1", "a.0"]);

    let stored = cat
        .require::<AuditEvent>(&written[0].id.to_string())
        .await
        .unwrap();
    let mut changed = written[0].clone();
    changed.outcome = AuditOutcome::Denied;
    assert!(matches!(
        cat.update(&stored, &changed).await,
        Err(Error::Conflict(_))
    ));
}

#[tokio::test]
async fn modify_writes_only_a_change_and_a_refused_edit_writes_nothing() {
    let cat = catalog();
    let (_, _, svc) = service_in(&cat).await;
    let id = svc.id.to_string();
    let same: Service = cat.modify(&id, |_| Ok(())).await.unwrap();
    assert_eq!(same, svc.value);
    assert_eq!(
        cat.require::<Service>(&id).await.unwrap().version,
        svc.version,
        "an edit that changes nothing writes nothing"
    );
    let renamed: Service = cat
        .modify(&id, |s: &mut Service| {
            s.name = "Renamed".into();
            Ok(())
        })
        .await
        .unwrap();
    let stored = cat.require::<Service>(&id).await.unwrap();
    assert_eq!(stored.name, "Renamed");
    assert_eq!(stored.value, renamed);
    assert_ne!(stored.version, svc.version);
    let refused = cat
        .modify(&id, |s: &mut Service| {
            s.name = "Never".into();
            Err(crate::Error::Conflict("no".into()))
        })
        .await;
    assert!(refused.is_err());
    assert_eq!(cat.require::<Service>(&id).await.unwrap().name, "Renamed");
}

#[tokio::test]
async fn a_domain_routed_by_one_workspace_cannot_be_claimed_by_another() {
    let cat = catalog();
    let (_, _, a) = service_in(&cat).await;
    let (_, _, b) = service_in(&cat).await;
    assert_ne!(a.workspace_id, b.workspace_id);
    let public = |domain: &str| crate::model::Endpoint::PublicDirect {
        domains: vec![domain.to_owned()],
        tls: Default::default(),
    };
    let mut next = a.value.clone();
    next.endpoint = Some(public("shop.example.com"));
    cat.update(&a, &next).await.unwrap();
    // Tenant B, another spelling of the same name: refused, B unchanged.
    let mut claim = b.value.clone();
    claim.endpoint = Some(public("Shop.Example.com"));
    let err = cat.update(&b, &claim).await.unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
    assert!(err.to_string().contains("shop.example.com"), "{err}");
    assert!(
        !err.to_string().contains(&a.id.to_string()),
        "quotes the other tenant: {err}"
    );
    let b_now = cat.require::<Service>(&b.id.to_string()).await.unwrap();
    assert_eq!(b_now.endpoint, None);
    // Once A lets it go, B may take it.
    let a_now = cat.require::<Service>(&a.id.to_string()).await.unwrap();
    let mut release = a_now.value.clone();
    release.endpoint = None;
    cat.update(&a_now, &release).await.unwrap();
    cat.update(&b_now, &claim).await.unwrap();
}

#[tokio::test]
async fn a_volume_not_marked_shared_is_mounted_by_one_service_of_the_workspace() {
    let cat = catalog();
    let (project, _, a) = service_in(&cat).await;
    let staging = Environment::new(project.id, "staging", T0).unwrap();
    cat.create(&staging).await.unwrap();
    let mut b = a.value.clone();
    b.id = ServiceId::new();
    b.environment_id = staging.id;
    cat.create(&b).await.unwrap();
    let b = cat.require::<Service>(&b.id.to_string()).await.unwrap();
    let mount = |shared: bool| crate::model::VolumeMount {
        name: "shop-data".into(),
        mount_path: "/data".into(),
        shared,
    };
    let mut next = a.value.clone();
    next.volumes = vec![mount(false)];
    cat.update(&a, &next).await.unwrap();
    // Staging's copy of the service may not write production's data.
    let mut claim = b.value.clone();
    claim.volumes = vec![mount(false)];
    let err = cat.update(&b, &claim).await.unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
    assert!(err.to_string().contains("`shop-data`"), "{err}");
    assert!(err.to_string().contains("shared"), "{err}");
    // Another workspace's volume of that name is another volume.
    let (_, _, other) = service_in(&cat).await;
    let mut theirs = other.value.clone();
    theirs.volumes = vec![mount(false)];
    cat.update(&other, &theirs).await.unwrap();
    // Declared shared by the second mount, it is the app's call.
    claim.volumes = vec![mount(true)];
    cat.update(&b, &claim).await.unwrap();
}

#[tokio::test]
async fn lookup_never_returns_a_record_that_no_longer_holds_the_value() {
    // A unique entry read just before its record moved on (here: left pointing at a record
    // whose slug is now another) must not hand that record to a caller acting on the value.
    let store = Arc::new(MemoryStore::new());
    let cat = Catalog::new(store.clone());
    let ws = WorkspaceId::new();
    let project = Project::new(ws, "Shop", None, T0).unwrap();
    cat.create_project(&project, T0).await.unwrap();
    let value = format!("{ws}:old-shop");
    store
        .commit(Txn::new().put(
            unique_key::<Project>("slug", &value),
            project.id.to_string().into_bytes(),
        ))
        .await
        .unwrap();
    assert!(
        cat.lookup::<Project>("slug", &value)
            .await
            .unwrap()
            .is_none()
    );
    let held = format!("{ws}:shop");
    let found = cat.lookup::<Project>("slug", &held).await.unwrap().unwrap();
    assert_eq!(found.value.id, project.id);
}

#[tokio::test]
async fn backfill_writes_domains_of_services_stored_before_the_constraint_and_reports_clashes() {
    let store = Arc::new(MemoryStore::new());
    let cat = Catalog::new(store.clone());
    let (_, _, a) = service_in(&cat).await;
    let (_, _, b) = service_in(&cat).await;
    let (_, _, c) = service_in(&cat).await;
    // As an older version stored them: endpoints written without their unique entries, and
    // two tenants on one name.
    for (svc, domain) in [
        (&a, "shop.example.com"),
        (&b, "shop.example.com"),
        (&c, "c.example.com"),
    ] {
        let mut old = svc.value.clone();
        old.endpoint = Some(crate::model::Endpoint::PublicDirect {
            domains: vec![domain.to_owned()],
            tls: Default::default(),
        });
        store
            .commit(Txn::new().put(
                record_key::<Service>(&old.id.to_string()),
                encode(&old).unwrap(),
            ))
            .await
            .unwrap();
    }
    let clashes = cat.backfill_unique::<Service>().await.unwrap();
    assert_eq!(clashes.len(), 1, "{clashes:?}");
    assert_eq!(clashes[0].value, "shop.example.com");
    assert_eq!(clashes[0].holder, a.id.to_string());
    assert_eq!(clashes[0].other, b.id.to_string());
    for (domain, holder) in [("shop.example.com", a.id), ("c.example.com", c.id)] {
        let found = cat
            .lookup::<Service>("domain", domain)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.value.id, holder);
    }
    // Idempotent: a second pass writes nothing new and reports the same clash.
    assert_eq!(cat.backfill_unique::<Service>().await.unwrap(), clashes);
}
