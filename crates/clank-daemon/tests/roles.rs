//! The role matrix on every endpoint of the real daemon (in-process, real Docker Engine): each
//! of Owner, Admin, Developer and Viewer calls every endpoint, and each call is allowed or
//! refused (403 `forbidden`) exactly as `Role::allows` says, never a 5xx.

mod common;

use common::{SVC, on_docker, service_with_project};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn endpoints() -> Vec<(Method, String, Option<Value>, clank_core::model::Permission)> {
    use clank_core::model::Permission::*;
    let ws = "/v1/workspaces/acme";
    let p = format!("{ws}/projects/shop");
    let e = format!("{p}/environments/production");
    let cfg = json!({"changes": [{"key": "X", "value": "1"}]});
    vec![
        (Method::GET, format!("{ws}/projects"), None, Read),
        (
            Method::POST,
            format!("{ws}/projects"),
            Some(json!({"name": "Other"})),
            ManageProjects,
        ),
        (Method::GET, p.clone(), None, Read),
        (Method::GET, format!("{p}/environments"), None, Read),
        (
            Method::POST,
            format!("{p}/environments"),
            Some(json!({"name": "staging"})),
            ManageProjects,
        ),
        (Method::GET, format!("{ws}/config"), None, Read),
        (
            Method::PATCH,
            format!("{ws}/config"),
            Some(cfg.clone()),
            ManageTeamSettings,
        ),
        (
            Method::PATCH,
            format!("{p}/config"),
            Some(cfg.clone()),
            ManageProjects,
        ),
        (
            Method::PATCH,
            format!("{e}/config"),
            Some(cfg.clone()),
            ManageProjects,
        ),
        (Method::GET, format!("{e}/services"), None, Read),
        (
            Method::POST,
            format!("{e}/services"),
            Some(
                json!({"slug": "api", "source": {"type": "docker_image", "image": "clank-testapp:latest"}}),
            ),
            ManageServices,
        ),
        (Method::GET, SVC.into(), None, Read),
        (
            Method::PATCH,
            SVC.into(),
            Some(json!({"name": "Web"})),
            ManageServices,
        ),
        // Stopped and started again at once, so the calls after them find it running.
        (Method::POST, format!("{SVC}/stop"), None, ManageServices),
        (Method::POST, format!("{SVC}/start"), None, ManageServices),
        (Method::GET, format!("{SVC}/config"), None, Read),
        (
            Method::PATCH,
            format!("{SVC}/config"),
            Some(cfg),
            ManageServices,
        ),
        (Method::GET, format!("{SVC}/config/resolved"), None, Read),
        (Method::GET, format!("{SVC}/logs?tail=1"), None, Read),
        (Method::GET, format!("{SVC}/builds?limit=5"), None, Read),
        (Method::GET, format!("{SVC}/builds/1"), None, Read),
        (Method::GET, format!("{SVC}/webhook"), None, Read),
        (
            Method::POST,
            format!("{SVC}/exec"),
            Some(json!({"command": ["/bin/busybox", "true"]})),
            Deploy,
        ),
        (Method::GET, format!("{SVC}/deployments"), None, Read),
        (
            Method::POST,
            format!("{SVC}/deployments/1/cancel"),
            Some(json!({})),
            Deploy,
        ),
        (
            Method::POST,
            format!("{SVC}/deployments/1/rollback"),
            Some(json!({})),
            Deploy,
        ),
        (Method::GET, format!("{ws}/members"), None, Read),
        (
            Method::POST,
            format!("{ws}/webhook-secret"),
            None,
            ManageTeamSettings,
        ),
        (Method::GET, format!("{e}/services?limit=1"), None, Read),
        (
            Method::POST,
            format!("{ws}/members"),
            Some(json!({"name": "New", "email": "new-{role}@example.com", "role": "viewer"})),
            ManageMembers,
        ),
        (Method::GET, format!("{ws}/tokens"), None, Read),
        (
            Method::GET,
            format!("{ws}/tokens?all=true"),
            None,
            ManageMembers,
        ),
        (
            Method::PATCH,
            format!("{ws}/members/target@example.com"),
            Some(json!({"role": "viewer"})),
            ManageMembers,
        ),
        (
            Method::DELETE,
            format!("{ws}/members/target@example.com"),
            None,
            ManageMembers,
        ),
        (Method::GET, format!("{ws}/audit"), None, ReadAudit),
        (Method::GET, format!("{ws}/audit?limit=5"), None, ReadAudit),
        (Method::GET, format!("{ws}/servers"), None, Read),
        (
            Method::POST,
            format!("{ws}/servers"),
            Some(json!({"name": "srv-{role}"})),
            ManageServers,
        ),
        (Method::GET, format!("{ws}/servers/edge"), None, Read),
        (
            Method::POST,
            format!("{ws}/servers/edge/join-token"),
            None,
            ManageServers,
        ),
        (
            Method::POST,
            format!("{ws}/servers/edge/revoke"),
            None,
            ManageServers,
        ),
        (
            Method::PUT,
            format!("{ws}/agent-release?version=1"),
            None,
            OwnWorkspace,
        ),
        // Teams: team `core` exists; changes need ManageTeamSettings, reads Read.
        (Method::GET, format!("{ws}/teams"), None, Read),
        (
            Method::POST,
            format!("{ws}/teams"),
            Some(json!({"name": "team-{role}"})),
            ManageTeamSettings,
        ),
        (Method::GET, format!("{ws}/teams/core"), None, Read),
        (Method::GET, format!("{ws}/teams/core/members"), None, Read),
        (
            Method::POST,
            format!("{ws}/teams/core/members"),
            Some(json!({"member": "viewer@example.com"})),
            ManageTeamSettings,
        ),
        (
            Method::POST,
            format!("{ws}/teams/core/projects"),
            Some(json!({"project": "shop"})),
            ManageTeamSettings,
        ),
        (Method::GET, format!("{ws}/teams/core/config"), None, Read),
        (
            Method::PATCH,
            format!("{ws}/teams/core/config"),
            Some(json!({"changes": [{"key": "X", "value": "1"}]})),
            ManageTeamSettings,
        ),
        // Environments: clone, promotion plans, previews; `qa` exists.
        (
            Method::POST,
            format!("{e}/clone"),
            Some(json!({"name": "copy-{role}"})),
            ManageProjects,
        ),
        (
            Method::POST,
            format!("{ws}/promotions"),
            Some(json!({"source": "shop/production/web", "target": "qa"})),
            Deploy,
        ),
        (
            Method::GET,
            format!("{ws}/plans/0190f3a1-0000-7000-8000-000000000000"),
            None,
            Read,
        ),
        (
            Method::POST,
            format!("{ws}/plans/0190f3a1-0000-7000-8000-000000000000/apply"),
            None,
            Deploy,
        ),
        (Method::GET, format!("{p}/declaration"), None, Read),
        (
            Method::POST,
            format!("{ws}/declarations"),
            Some(json!({"declaration": {"project": "shop", "name": "Shop"}})),
            ManageServices,
        ),
        (Method::GET, format!("{p}/previews"), None, Read),
        (
            Method::PUT,
            format!("{p}/previews"),
            Some(json!({"enabled": true, "base_environment": "production"})),
            ManageProjects,
        ),
        (
            Method::GET,
            format!("{p}/previews/environments"),
            None,
            Read,
        ),
        // Deleted and restored at once, so the calls after them find them.
        (Method::DELETE, SVC.into(), None, ManageServices),
        (Method::POST, format!("{SVC}/restore"), None, ManageServices),
        // `api` (created above by each role allowed to) purged with its volumes: Admin only.
        (
            Method::DELETE,
            format!("{e}/services/api?purge=true&volumes=true"),
            None,
            ManageProjects,
        ),
        (
            Method::DELETE,
            format!("{p}/environments/qa"),
            None,
            ManageProjects,
        ),
        (
            Method::POST,
            format!("{p}/environments/qa/restore"),
            None,
            ManageProjects,
        ),
        (Method::DELETE, p.clone(), None, ManageProjects),
        (Method::POST, format!("{p}/restore"), None, ManageProjects),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_matrix_is_enforced_on_every_endpoint() {
    use clank_core::model::Role;
    let Some(d) = on_docker(false).await else {
        return;
    };
    let owner = d.init().await;
    service_with_project(&d, &owner).await;
    d.ok(
        &owner,
        Method::POST,
        "/v1/workspaces/acme/servers",
        Some(json!({"name": "edge"})),
    )
    .await;
    d.ok(
        &owner,
        Method::POST,
        "/v1/workspaces/acme/teams",
        Some(json!({"name": "core"})),
    )
    .await;
    d.ok(
        &owner,
        Method::POST,
        "/v1/workspaces/acme/projects/shop/environments",
        Some(json!({"name": "qa"})),
    )
    .await;
    // The member the member endpoints act on (removed by the first role allowed to).
    d.ok(
        &owner,
        Method::POST,
        "/v1/workspaces/acme/members",
        Some(json!({"name": "target", "email": "target@example.com", "role": "developer"})),
    )
    .await;
    let mut tokens = vec![(Role::Owner, owner.clone())];
    for (role, name) in [
        (Role::Admin, "admin"),
        (Role::Developer, "developer"),
        (Role::Viewer, "viewer"),
    ] {
        let v = d
            .ok(
                &owner,
                Method::POST,
                "/v1/workspaces/acme/members",
                Some(json!({"name": name, "email": format!("{name}@example.com"), "role": name})),
            )
            .await;
        tokens.push((role, v["token"].as_str().unwrap().to_owned()));
    }
    // Viewer and Developer first, so the destructive calls of Admin/Owner come last.
    tokens.reverse();
    let mut checked = 0;
    for (role, token) in &tokens {
        for (method, path, body, needs) in endpoints() {
            let body = body.map(|b| {
                serde_json::from_str::<Value>(
                    &b.to_string()
                        .replace("{role}", &format!("{role:?}").to_lowercase()),
                )
                .unwrap()
            });
            let (status, v) = d.call(Some(token), method.clone(), &path, body).await;
            if role.allows(needs) {
                assert_ne!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{role:?} {method} {path} should be allowed: {v}"
                );
                assert_ne!(
                    status,
                    StatusCode::UNAUTHORIZED,
                    "{role:?} {method} {path}: {v}"
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{role:?} {method} {path} must be refused: {v}"
                );
                assert_eq!(v["code"], "forbidden");
            }
            assert!(
                status.as_u16() < 500,
                "{role:?} {method} {path} → {status}: {v}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 4 * endpoints().len());
    // Only an Owner may create another Owner.
    let admin = &tokens.iter().find(|(r, _)| *r == Role::Admin).unwrap().1;
    let (s, _) = d
        .call(
            Some(admin),
            Method::POST,
            "/v1/workspaces/acme/members",
            Some(json!({"name": "x", "email": "x@example.com", "role": "owner"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    d.stop_whatever_the_outcome().await;
}
