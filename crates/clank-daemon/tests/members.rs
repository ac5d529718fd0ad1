//! Offboarding over HTTP on the real daemon: removing a member takes their tokens with them,
//! Admins manage everyone but Owners, Owners see and revoke every token, the last Owner stays,
//! token hashes are never returned, and every call lands in the audit log.

mod common;

use clank_daemon::ApiLimits;
use common::{Daemon, WS};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn ids(tokens: &Value) -> Vec<String> {
    tokens
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The id of `token`'s own first listed token.
async fn own_token_id(d: &Daemon, token: &str) -> String {
    let mine = d
        .ok(token, Method::GET, &format!("{WS}/tokens"), None)
        .await;
    ids(&mine).remove(0)
}

async fn audit_actions(d: &Daemon, owner: &str) -> Vec<(String, String, String)> {
    let v = d
        .ok(owner, Method::GET, &format!("{WS}/audit?limit=200"), None)
        .await;
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["target"].as_str().unwrap().to_owned(),
                e["outcome"]["result"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_member_deletes_their_tokens_so_their_next_request_is_401() {
    let d = Daemon::start(ApiLimits::default()).await;
    let owner = d.init().await;
    let (dev_id, dev) = d.member(&owner, "dev", "developer").await;
    let extra = d
        .ok(
            &dev,
            Method::POST,
            &format!("{WS}/tokens"),
            Some(json!({"name": "laptop"})),
        )
        .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    for t in [&dev, &extra] {
        d.ok(t, Method::GET, &format!("{WS}/projects"), None).await;
    }
    let members = d
        .ok(&owner, Method::GET, &format!("{WS}/members"), None)
        .await;
    assert!(
        members
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["email"] == "dev@example.com" && m["role"] == "developer"),
        "members are listed with their email: {members}"
    );

    let removed = d
        .ok(
            &owner,
            Method::DELETE,
            &format!("{WS}/members/{dev_id}"),
            None,
        )
        .await;
    assert_eq!(removed["tokens_deleted"], 2, "{removed}");
    assert_eq!(removed["email"], "dev@example.com");
    for t in [&dev, &extra] {
        let (s, v) = d
            .call(Some(t), Method::GET, &format!("{WS}/projects"), None)
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    }
    let all = d
        .ok(&owner, Method::GET, &format!("{WS}/tokens?all=true"), None)
        .await;
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .all(|t| t["user"] != dev_id.as_str()),
        "their tokens are gone, not just revoked: {all}"
    );
    let (s, _) = d
        .call(
            Some(&owner),
            Method::DELETE,
            &format!("{WS}/members/{dev_id}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // The email can be invited again, and a member can be named by email.
    d.member(&owner, "dev", "viewer").await;
    let removed = d
        .ok(
            &owner,
            Method::DELETE,
            &format!("{WS}/members/dev@example.com"),
            None,
        )
        .await;
    assert_eq!(removed["role"], "viewer");
    let audit = audit_actions(&d, &owner).await;
    assert!(
        audit.contains(&(
            "member.remove".into(),
            format!("acme/members/{dev_id}"),
            "succeeded".into()
        )),
        "{audit:?}"
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_cannot_remove_an_owner_revoke_an_owners_token_or_change_an_owners_role() {
    let d = Daemon::start(ApiLimits::default()).await;
    let owner = d.init().await;
    let owner_id = d.ok(&owner, Method::GET, "/v1/whoami", None).await["user"]
        .as_str()
        .unwrap()
        .to_owned();
    let owner_token = own_token_id(&d, &owner).await;
    let (_, admin) = d.member(&owner, "adm", "admin").await;
    let (dev_id, dev) = d.member(&owner, "dev", "developer").await;

    let refused: Vec<(Method, String, Option<Value>)> = vec![
        (Method::DELETE, format!("{WS}/members/{owner_id}"), None),
        (
            Method::PATCH,
            format!("{WS}/members/{owner_id}"),
            Some(json!({"role": "viewer"})),
        ),
        (
            Method::PATCH,
            format!("{WS}/members/{dev_id}"),
            Some(json!({"role": "owner"})),
        ),
        (Method::DELETE, format!("{WS}/tokens/{owner_token}"), None),
    ];
    for (method, path, body) in refused {
        let (s, v) = d.call(Some(&admin), method.clone(), &path, body).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{method} {path}: {v}");
        assert_eq!(v["code"], "forbidden");
        assert!(
            v["message"].as_str().unwrap().contains("Owner"),
            "says why: {v}"
        );
    }
    // Nothing changed: the Owner and their token are as they were.
    let who = d.ok(&owner, Method::GET, "/v1/whoami", None).await;
    assert_eq!(who["role"], "owner");

    // The Admin's view of every token leaves the Owner's out; the rest they manage.
    let all = d
        .ok(&admin, Method::GET, &format!("{WS}/tokens?all=true"), None)
        .await;
    assert!(!ids(&all).contains(&owner_token), "{all}");
    let dev_token = own_token_id(&d, &dev).await;
    assert!(ids(&all).contains(&dev_token), "{all}");
    let (s, _) = d
        .call(
            Some(&admin),
            Method::PATCH,
            &format!("{WS}/members/{dev_id}"),
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = d
        .call(
            Some(&dev),
            Method::POST,
            &format!("{WS}/projects"),
            Some(json!({"name": "X"})),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "a demotion applies to existing tokens: {v}"
    );
    let (s, _) = d
        .call(
            Some(&admin),
            Method::DELETE,
            &format!("{WS}/tokens/{dev_token}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = d.call(Some(&dev), Method::GET, "/v1/whoami", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = d
        .call(
            Some(&admin),
            Method::DELETE,
            &format!("{WS}/members/{dev_id}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    let audit = audit_actions(&d, &owner).await;
    assert!(
        audit.contains(&(
            "member.remove".into(),
            format!("acme/members/{owner_id}"),
            "denied".into()
        )),
        "{audit:?}"
    );
    assert!(
        audit.contains(&(
            "token.revoke".into(),
            format!("acme/tokens/{owner_token}"),
            "denied".into()
        )),
        "{audit:?}"
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_lists_every_token_without_hashes_and_revokes_another_members() {
    let d = Daemon::start(ApiLimits::default()).await;
    let owner = d.init().await;
    let (admin_id, admin) = d.member(&owner, "adm", "admin").await;
    let (_, viewer) = d.member(&owner, "vic", "viewer").await;
    let (_, dev) = d.member(&owner, "dev", "developer").await;
    let admin_token = own_token_id(&d, &admin).await;

    let (status, text) = {
        let resp = d
            .request(Some(&owner), Method::GET, &format!("{WS}/tokens?all=true"))
            .send()
            .await
            .unwrap();
        (resp.status(), resp.text().await.unwrap())
    };
    assert_eq!(status, StatusCode::OK, "{text}");
    let all: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        all.as_array().unwrap().len(),
        4,
        "one token per member: {all}"
    );
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == admin_token.as_str() && t["user"] == admin_id.as_str()),
        "{all}"
    );
    assert!(
        !text.contains("hash"),
        "token hashes never leave the daemon: {text}"
    );
    // Only those who manage members see everyone's tokens.
    for t in [&viewer, &dev] {
        let (s, _) = d
            .call(Some(t), Method::GET, &format!("{WS}/tokens?all=true"), None)
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let mine = d.ok(t, Method::GET, &format!("{WS}/tokens"), None).await;
        assert_eq!(mine.as_array().unwrap().len(), 1, "{mine}");
    }

    let (s, _) = d
        .call(
            Some(&owner),
            Method::DELETE,
            &format!("{WS}/tokens/{admin_token}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = d.call(Some(&admin), Method::GET, "/v1/whoami", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let all = d
        .ok(&owner, Method::GET, &format!("{WS}/tokens?all=true"), None)
        .await;
    let revoked = all
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == admin_token.as_str())
        .unwrap();
    assert_eq!(revoked["revoked"], true);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_owner_can_be_neither_removed_nor_demoted() {
    let d = Daemon::start(ApiLimits::default()).await;
    let owner = d.init().await;
    let owner_id = d.ok(&owner, Method::GET, "/v1/whoami", None).await["user"]
        .as_str()
        .unwrap()
        .to_owned();
    let me = format!("{WS}/members/{owner_id}");
    for (method, body) in [
        (Method::DELETE, None),
        (Method::PATCH, Some(json!({"role": "admin"}))),
    ] {
        let (s, v) = d.call(Some(&owner), method.clone(), &me, body).await;
        assert_eq!(s, StatusCode::CONFLICT, "{method}: {v}");
        assert_eq!(v["code"], "last_owner");
        assert!(v["message"].as_str().unwrap().contains("last Owner"), "{v}");
    }
    // With a second Owner the first may step down, and then the second is the last.
    let (second_id, second) = d.member(&owner, "bea", "owner").await;
    let v = d
        .ok(&owner, Method::PATCH, &me, Some(json!({"role": "admin"})))
        .await;
    assert_eq!(v["role"], "admin");
    let (s, v) = d
        .call(
            Some(&second),
            Method::DELETE,
            &format!("{WS}/members/{second_id}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    let v = d.ok(&second, Method::DELETE, &me, None).await;
    assert_eq!(v["role"], "admin");
    let (s, _) = d.call(Some(&owner), Method::GET, "/v1/whoami", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    d.stop().await;
}
