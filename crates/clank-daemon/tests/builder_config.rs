//! The operator's `builder` settings on the real daemon: the allowed repository schemes and
//! hosts refuse a git service at create, naming the rule, and `publish_dir` is checked there
//! too; an unknown or invalid builder key stops the daemon before it serves, naming the key.

use std::time::Duration;

use clank_daemon::{BuilderConfig, DaemonConfig, RepositoryRules, Settings};
use reqwest::StatusCode;
use serde_json::{Value, json};

struct Running {
    base: String,
    http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Running {
    async fn start(builder: BuilderConfig) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let daemon = DaemonConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().join("data"),
            runtime: "process".into(),
            proxy: None,
            builder,
            ..DaemonConfig::default()
        };
        let listener = tokio::net::TcpListener::bind(daemon.listen).await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(clank_daemon::serve(
            Settings::from(daemon),
            listener,
            async move {
                let _ = stopped.await;
            },
        ));
        let http = clank_testkit::web::client();
        for _ in 0..200 {
            if http.get(format!("{base}/v1/health")).send().await.is_ok() {
                return Running {
                    base,
                    http,
                    stop: Some(stop),
                    _dir: dir,
                };
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("daemon did not come up");
    }

    async fn post(&self, token: Option<&str>, path: &str, body: Value) -> (StatusCode, Value) {
        let mut r = self.http.post(format!("{}{path}", self.base)).json(&body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[tokio::test]
async fn allowed_repository_schemes_and_hosts_refuse_git_services_at_create() {
    let d = Running::start(BuilderConfig {
        repositories: RepositoryRules {
            allowed_schemes: vec!["https".into()],
            allowed_hosts: vec!["git.example.com".into()],
        },
        ..BuilderConfig::default()
    })
    .await;
    let (s, v) = d
        .post(
            None,
            "/v1/init",
            json!({"workspace": "acme", "name": "Ada", "email": "ada@example.com"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let owner = v["token"].as_str().unwrap().to_owned();
    let (s, v) = d
        .post(
            Some(&owner),
            "/v1/workspaces/acme/projects",
            json!({"name": "Shop"}),
        )
        .await;
    assert!(s.is_success(), "{v}");
    let services = "/v1/workspaces/acme/projects/shop/environments/production/services";
    let git = |url: &str| json!({"type": "git", "repo_url": url, "branch": "main"});
    for (url, needle) in [
        ("ssh://git@git.example.com/acme/shop.git", "uses `ssh`"),
        (
            "https://github.com/acme/shop.git",
            "CLANK_BUILD_REPOSITORY_HOSTS",
        ),
        ("file:///srv/git/shop.git", "uses `file`"),
    ] {
        let (s, v) = d
            .post(
                Some(&owner),
                services,
                json!({"slug": "web", "source": git(url)}),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {v}");
        assert_eq!(v["field"], "source.repo_url", "{v}");
        assert!(v["message"].as_str().unwrap().contains(needle), "{v}");
    }
    let (s, v) = d
        .post(
            Some(&owner),
            services,
            json!({"slug": "web", "source": git("https://git.example.com/acme/shop.git"),
                   "settings": {"publish_dir": "../outside"}}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["field"], "settings.publish_dir", "{v}");
    let (s, v) = d
        .post(
            Some(&owner),
            services,
            json!({"slug": "web", "source": git("https://git.example.com/acme/shop.git"),
                   "settings": {"publish_dir": "public", "spa_fallback": true}}),
        )
        .await;
    assert!(s.is_success(), "{v}");
}

#[tokio::test]
async fn an_invalid_builder_setting_stops_the_daemon_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("clank.json");
    std::fs::write(
        &file,
        r#"{"builder": {"image_prefix": "registry.local:5000/library"}}"#,
    )
    .unwrap();
    // `load` applies CLANK_BUILD_* too; this test sets none.
    let err = Settings::load(Some(&file)).unwrap_err().to_string();
    assert!(err.contains("builder.image_prefix"), "{err}");
    std::fs::write(&file, r#"{"builder": {"base_images": {"rust": "rust:1"}}}"#).unwrap();
    let err = Settings::load(Some(&file)).unwrap_err().to_string();
    assert!(err.contains("builder.base_images.rust"), "{err}");
    std::fs::write(&file, r#"{"builder": {"max_builds": 3}}"#).unwrap();
    let err = Settings::load(Some(&file)).unwrap_err().to_string();
    assert!(err.contains("unknown field `max_builds`"), "{err}");
}
