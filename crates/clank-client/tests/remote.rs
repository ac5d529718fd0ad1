//! The client against a real daemon on loopback: the same requests answer the same shapes and
//! errors as the embedded platform; a bad token, an unreachable or silent daemon fail with
//! the kind and advice a script can act on; events follow a service.

use std::time::Duration;

use clank_client::{Client, ConnectOptions};
use clank_core::ErrorKind;
use clank_daemon::DaemonConfig;
use clank_platform::{EmbeddedOptions, Platform};
use serde_json::{Value, json};

/// A daemon served in-process (native runtime) with workspace `acme` and its Owner's token.
struct Daemon {
    url: String,
    token: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), clank_daemon::DaemonError>>,
}

impl Daemon {
    async fn start(dir: &std::path::Path) -> Daemon {
        let config = DaemonConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.join("data"),
            runtime: "process".into(),
            proxy: None,
            agent_listen: None,
            ..DaemonConfig::default()
        };
        let listener = tokio::net::TcpListener::bind(config.listen).await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(clank_daemon::serve(config, listener, async move {
            let _ = stopped.await;
        }));
        let http = clank_client::tls::client_builder(None)
            .unwrap()
            .build()
            .unwrap();
        let mut answer = None;
        for _ in 0..100 {
            if let Ok(r) = http
                .post(format!("{url}/v1/init"))
                .json(&json!({"workspace": "acme", "name": "Ada", "email": "ada@example.com"}))
                .send()
                .await
            {
                answer = Some(r.json::<Value>().await.unwrap());
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let token = answer.expect("the daemon answers")["token"]
            .as_str()
            .unwrap()
            .to_owned();
        Daemon {
            url,
            token,
            stop,
            task,
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

/// A value's shape: objects by key, arrays by their first item, leaves by JSON type.
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        Value::Array(a) => Value::Array(a.first().map(shape).into_iter().collect()),
        Value::String(_) => json!("string"),
        Value::Number(_) => json!("number"),
        Value::Bool(_) => json!("bool"),
        Value::Null => Value::Null,
    }
}

/// Requests a script makes, in order: each answers alike embedded and remote.
fn script() -> Vec<Value> {
    vec![
        json!({"op": "create_project", "name": "Shop"}),
        json!({"op": "get_project", "project": "shop"}),
        json!({"op": "list_projects"}),
        json!({"op": "create_environment", "project": "shop", "name": "staging"}),
        json!({"op": "list_environments", "project": "shop"}),
        json!({"op": "create_service", "environment": "shop/production", "spec": {
            "slug": "web",
            "source": {"type": "docker_image", "image": "example/web:1"},
            "settings": {"port": 8080},
        }}),
        json!({"op": "get_service", "service": "shop/web"}),
        json!({"op": "update_service", "service": "shop/web", "patch": {"settings": {"port": 8081}}}),
        json!({"op": "list_services", "environment": "shop/production"}),
        json!({"op": "set_config", "target": {"service": "shop/web"}, "changes": [
            {"key": "API_KEY", "value": "hunter2", "secret": true},
            {"key": "MODE", "value": "fast"},
        ]}),
        json!({"op": "get_config", "target": {"service": "shop/web"}}),
        json!({"op": "resolved_config", "service": "shop/web"}),
        json!({"op": "list_deployments", "service": "shop/web"}),
        json!({"op": "status", "service": "shop/web"}),
        json!({"op": "create_team", "name": "Ops"}),
        json!({"op": "list_teams"}),
        json!({"op": "get_team", "team": "ops"}),
        json!({"op": "assign_project", "project": "shop", "team": "ops"}),
        json!({"op": "assign_project", "project": "shop"}),
        json!({"op": "list_templates"}),
        json!({"op": "export_project", "project": "shop"}),
        json!({"op": "stop_service", "service": "shop/web"}),
        json!({"op": "delete_service", "service": "shop/web"}),
        json!({"op": "restore_service", "service": "shop/web"}),
    ]
}

/// Bad calls: each fails alike, with the same kind and field.
fn refusals() -> Vec<Value> {
    vec![
        json!({"op": "get_service", "service": "shop/nope"}),
        json!({"op": "get_project", "project": "a/b/c/d/e"}),
        json!({"op": "create_project", "name": "Shop"}),
        json!({"op": "update_service", "service": "shop/web", "patch": {"settings": {"port": 0}}}),
        json!({"op": "get_deployment", "service": "shop/web", "number": 99}),
        json!({"op": "wait", "service": "shop/web", "number": 1, "timeout_s": -1.0}),
        json!({"op": "list_servers"}),
        json!({"op": "get_server", "server": "nope"}),
        json!({"op": "list_audit", "limit": 0}),
        json!({"op": "logs", "service": "shop/web"}),
        json!({"op": "exec", "service": "shop/web", "exec": {"command": ["true"]}}),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scripted_request_answers_the_embedded_shape_and_errors_alike() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path()).await;
    let remote = Client::connect(&daemon.url, &daemon.token, ConnectOptions::default())
        .await
        .unwrap();
    assert_eq!(remote.whoami().workspace, "acme");
    let mut options = EmbeddedOptions::new(dir.path().join("embedded"));
    options.runtime = "process".parse().unwrap();
    let embedded = Platform::open(options).await.unwrap();
    embedded.ensure_default_workspace().await.unwrap();

    for request in script() {
        let text = request.to_string();
        let here = embedded.execute_json(&text).await;
        let there = remote.execute_json(&text).await;
        let (here, there) = match (here, there) {
            (Ok(h), Ok(t)) => (h, t),
            (h, t) => panic!("{text}\n embedded: {h:?}\n remote: {t:?}"),
        };
        let (here, there): (Value, Value) = (
            serde_json::from_str(&here).unwrap(),
            serde_json::from_str(&there).unwrap(),
        );
        assert_eq!(shape(&here), shape(&there), "{text}\n{here}\n{there}");
        assert!(
            !there.to_string().contains("hunter2"),
            "a secret is never shown: {there}"
        );
    }
    for request in refusals() {
        let text = request.to_string();
        let here = embedded.execute_json(&text).await.unwrap_err();
        let there = remote.execute_json(&text).await.unwrap_err();
        assert_eq!(
            (here.kind(), here.field()),
            (there.kind(), there.field()),
            "{text}\n embedded: {here}\n remote: {there}"
        );
    }
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_or_an_absent_daemon_fails_at_connect_saying_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path()).await;
    let e = Client::connect(&daemon.url, "clank_not-a-token", ConnectOptions::default())
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind(), e.field()),
        (ErrorKind::Unauthorized, Some("token"))
    );
    assert!(e.to_string().contains("clank token create"), "{e}");
    let url = daemon.url.clone();
    daemon.stop().await;
    let options = ConnectOptions {
        retries: 1,
        ..ConnectOptions::default()
    };
    let e = Client::connect(&url, "t", options).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.to_string().contains("is `clank-daemon` running"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_that_never_answers_is_a_timeout_after_the_configured_deadline() {
    // Accepts connections and reads, never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let _silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let options = ConnectOptions {
        timeout: Duration::from_millis(300),
        ..ConnectOptions::default()
    };
    let started = std::time::Instant::now();
    let e = Client::connect(&url, "t", options).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.to_string().contains("did not answer"), "{e}");
    // A GET is tried again (3 attempts with back-off), never forever.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_follows_one_service_and_refuses_an_unknown_one() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path()).await;
    let client = Client::connect(&daemon.url, &daemon.token, ConnectOptions::default())
        .await
        .unwrap();
    for r in [
        json!({"op": "create_project", "name": "Shop"}),
        json!({"op": "create_service", "environment": "shop/production", "spec": {
            "slug": "web", "source": {"type": "docker_image", "image": "example/web:1"}}}),
        json!({"op": "create_service", "environment": "shop/production", "spec": {
            "slug": "other", "source": {"type": "docker_image", "image": "example/web:1"}}}),
    ] {
        client.execute_json(&r.to_string()).await.unwrap();
    }
    let mut unknown = client.subscribe(Some("shop/nope"));
    let e = unknown.next().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");

    let mut events = client.subscribe(Some("shop/web"));
    // No pause: a call made after `subscribe` runs once the stream is open.
    for service in ["shop/other", "shop/web"] {
        let r = json!({"op": "deploy", "service": service});
        client.execute_json(&r.to_string()).await.unwrap();
    }
    let first = first_event_is_webs(&client, &mut events).await;
    assert_eq!(first.number, 1);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_tokens_and_the_audit_log_are_managed_remotely_and_refused_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path()).await;
    let client = Client::connect(&daemon.url, &daemon.token, ConnectOptions::default())
        .await
        .unwrap();
    let call = |r: Value| {
        let client = client.clone();
        async move {
            let text = client.execute_json(&r.to_string()).await?;
            Ok::<Value, clank_core::Error>(serde_json::from_str(&text).unwrap())
        }
    };
    let added = call(json!({"op": "add_member", "member": {
        "name": "Bob", "email": "bob@example.com", "role": "developer"}}))
    .await
    .unwrap();
    let bob_token = added["token"].as_str().unwrap().to_owned();
    let members = call(json!({"op": "list_members"})).await.unwrap();
    assert_eq!(members.as_array().unwrap().len(), 2, "{members}");
    call(json!({"op": "update_member", "member": "bob@example.com", "role": "viewer"}))
        .await
        .unwrap();

    // Bob, now a Viewer, may not manage members.
    let bob = Client::connect(&daemon.url, &bob_token, ConnectOptions::default())
        .await
        .unwrap();
    let e = bob
        .execute_json(
            &json!({"op": "add_member", "member": {
                "name": "Eve", "email": "eve@example.com", "role": "owner"}})
            .to_string(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Forbidden, "{e}");

    let created = call(json!({"op": "create_token", "token": {"name": "ci"}}))
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let tokens = call(json!({"op": "list_tokens"})).await.unwrap();
    assert!(tokens.to_string().contains(&id), "{tokens}");
    call(json!({"op": "revoke_token", "token": id}))
        .await
        .unwrap();
    let ci = created["token"].as_str().unwrap();
    let e = Client::connect(&daemon.url, ci, ConnectOptions::default())
        .await
        .unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::Unauthorized,
        "a revoked token is refused: {e}"
    );

    let audit = call(json!({"op": "list_audit", "limit": 50}))
        .await
        .unwrap();
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(
        actions.starts_with(&["token.revoke", "token.create"])
            && actions.contains(&"member.create"),
        "newest first: {actions:?}"
    );
    call(json!({"op": "remove_member", "member": "bob@example.com"}))
        .await
        .unwrap();

    let mut options = EmbeddedOptions::new(dir.path().join("embedded"));
    options.runtime = "process".parse().unwrap();
    let embedded = Platform::open(options).await.unwrap();
    let e = embedded
        .execute_json(&json!({"op": "list_members"}).to_string())
        .await
        .unwrap_err();
    assert_eq!((e.kind(), e.field()), (ErrorKind::Invalid, Some("op")));
    assert!(e.to_string().contains("connect"), "{e}");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_subscription_never_sees_another_workspaces_events() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path()).await;
    let acme = Client::connect(&daemon.url, &daemon.token, ConnectOptions::default())
        .await
        .unwrap();
    let other_token = clank_client::tls::client_builder(None)
        .unwrap()
        .build()
        .unwrap()
        .post(format!("{}/v1/workspaces", daemon.url))
        .bearer_auth(&daemon.token)
        .json(&json!({"workspace": "other", "name": "Mallory", "email": "m@example.com"}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = Client::connect(&daemon.url, &other_token, ConnectOptions::default())
        .await
        .unwrap();
    for client in [&acme, &other] {
        for r in [
            json!({"op": "create_project", "name": "Shop"}),
            json!({"op": "create_service", "environment": "shop/production", "spec": {
                "slug": "web", "source": {"type": "docker_image", "image": "example/web:1"}}}),
        ] {
            client.execute_json(&r.to_string()).await.unwrap();
        }
    }
    let mut events = acme.subscribe(None);
    let deploy = json!({"op": "deploy", "service": "shop/web"}).to_string();
    // Every event of the other workspace's deploy comes before acme's first.
    acme.execute_json(&json!({"op": "list_projects"}).to_string())
        .await
        .unwrap();
    other.execute_json(&deploy).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    acme.execute_json(&deploy).await.unwrap();
    first_event_is_webs(&acme, &mut events).await;
    daemon.stop().await;
}

/// The subscription's next event (within 10 s), asserted to be service `shop/web`'s.
async fn first_event_is_webs(
    client: &Client,
    events: &mut clank_client::Subscription,
) -> clank_api::Event {
    let web = client
        .execute_json(&json!({"op": "get_service", "service": "shop/web"}).to_string())
        .await
        .unwrap();
    let web_id = serde_json::from_str::<Value>(&web).unwrap()["id"].clone();
    let first = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("an event within 10 s")
        .unwrap()
        .expect("the stream is open");
    assert_eq!(serde_json::to_value(first.service).unwrap(), web_id);
    first
}
