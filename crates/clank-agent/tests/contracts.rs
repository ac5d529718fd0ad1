//! The backend contracts for a remote server: the runtime contract against `AgentRuntime`
//! and the proxy contract against the agent's proxy (`CalledProxy<AgentProxy>`), each property
//! on a real control-plane fleet (in-memory store, TLS gRPC endpoint on loopback) and a real
//! `clank-agent` process enrolled with a join token, running workloads on the real Docker
//! engine and serving its own `clank-proxy`.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use clank_core::id::{ServerId, WorkspaceId};
use clank_core::proxy::{CalledProxy, Proxy};
use clank_core::runtime::{Runtime, WorkloadSpec};
use clank_core::secret::{KeyId, Keyring};
use clank_core::store::catalog::Catalog;
use clank_core::store::memory::MemoryStore;
use clank_fleet::{AgentProxy, AgentRuntime};
use clank_fleet::{Fleet, FleetConfig};
use clank_testkit::proxy::ProxyFixture;
use clank_testkit::runtime::{Fixture, TestApp};
use common::{docker_with_testapp, free_addr};
use tokio_util::sync::CancellationToken;

const AGENT: &str = env!("CARGO_BIN_EXE_clank-agent");

/// A fleet with one enrolled, connected agent.
struct Remote {
    fleet: Fleet,
    server: ServerId,
    stop: CancellationToken,
    agent: Mutex<Option<tokio::process::Child>>,
    dir: tempfile::TempDir,
}

impl Remote {
    /// `None` (skip) without a Docker engine, outside CI.
    async fn start() -> Option<Remote> {
        docker_with_testapp().await?;
        let dir = tempfile::tempdir().unwrap();
        let tls =
            clank_fleet::tls::EndpointTls::load_or_create(dir.path(), &["localhost".to_owned()])
                .unwrap();
        let keyring = Keyring::new(KeyId::new("k1").unwrap(), Keyring::generate_key().unwrap());
        let catalog = Catalog::new(Arc::new(MemoryStore::new()));
        let fleet = Fleet::open(
            catalog,
            keyring,
            FleetConfig {
                endpoint_fingerprint: Some(tls.fingerprint.clone()),
                ..FleetConfig::default()
            },
        )
        .await
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let (service, stopped, serving) = (fleet.service(), stop.clone(), fleet.clone());
        tokio::spawn(async move {
            let shutdown = async move {
                stopped.cancelled().await;
                serving.close().await;
            };
            if let Err(e) = service.serve(listener, Some(&tls), shutdown).await {
                eprintln!("the agent endpoint stopped: {e}");
            }
        });
        let (server, join_token) = fleet
            .create_server(WorkspaceId::new(), "contract")
            .await
            .unwrap();
        let fingerprint = std::fs::read_to_string(dir.path().join("agent-endpoint.crt")).unwrap();
        let fingerprint = clank_fleet::tls::fingerprint_of_pem(&fingerprint).unwrap();
        let proxy_listen = free_addr();
        let child = tokio::process::Command::new(AGENT)
            .arg("--control-plane")
            .arg(format!("https://{endpoint}"))
            .arg("--state-dir")
            .arg(dir.path().join("agent-state"))
            .arg("--fingerprint")
            .arg(&fingerprint)
            .arg("--proxy-listen")
            .arg(proxy_listen.to_string())
            .arg("--join-token")
            .arg(&join_token)
            .env("CLANK_AGENT_HEARTBEAT_S", "1")
            .env("CLANK_AGENT_BACKOFF_MAX_S", "1")
            .env("CLANK_LOG", "info,h2=warn,tower=warn,bollard=warn")
            .env_remove("CLANK_JOIN_TOKEN")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("agent.log")).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let remote = Remote {
            fleet,
            server: server.id,
            stop,
            agent: Mutex::new(Some(child)),
            dir,
        };
        for _ in 0..600 {
            if remote.fleet.server(remote.server).await.unwrap().connected {
                return Some(remote);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "the agent did not connect within 30 s; its log:\n{}",
            std::fs::read_to_string(remote.dir.path().join("agent.log")).unwrap_or_default()
        );
    }

    async fn stop(&self) {
        let child = self.agent.lock().unwrap().take();
        if let Some(mut child) = child {
            let _ = child.kill().await;
        }
        self.stop.cancel();
    }
}

// ---- the runtime contract against `AgentRuntime` -----------------------------------------------

struct AgentRuntimeFixture(Remote);

#[async_trait::async_trait]
impl Fixture for AgentRuntimeFixture {
    async fn connect(&self) -> clank_core::Result<Box<dyn Runtime>> {
        Ok(Box::new(AgentRuntime::new(
            self.0.fleet.clone(),
            self.0.server,
        )))
    }

    /// The test app as a container on the server's engine, as the Docker runtime runs it.
    fn app_spec(&self, app: &TestApp) -> WorkloadSpec {
        app.container_spec()
    }

    async fn cleanup(&self) {
        self.0.stop().await;
    }

    /// The stopped agent never applies the network's removal; the test removes it on the
    /// engine (under the server's scope, the name the agent gave it).
    async fn remove_kept_network(&self, name: &str) {
        if let Ok(docker) = clank_docker::DockerRuntime::connect().await {
            let found = docker
                .client()
                .list_networks(None::<bollard::query_parameters::ListNetworksOptions>)
                .await
                .unwrap_or_default();
            for n in found {
                let named = n
                    .name
                    .as_deref()
                    .is_some_and(|n| n == name || clank_core::runtime::unscoped_name(n) == name);
                if let (true, Some(id)) = (named, n.id) {
                    // The stopped agent's last containers may still be leaving the network.
                    for _ in 0..25 {
                        if docker.client().remove_network(&id).await.is_ok() {
                            break;
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    }
                }
            }
        }
    }

    /// The agent keeps volumes (it never deletes data); the test removes them on the engine.
    async fn remove_kept_volume(&self, name: &str) {
        let removed = match clank_docker::DockerRuntime::connect().await {
            Ok(docker) => docker.remove_volume(name).await,
            Err(e) => Err(e),
        };
        if let Err(e) = removed {
            eprintln!("cleanup: remove volume {name} on the engine: {e}");
        }
    }
}

async fn agent_runtime() -> Option<AgentRuntimeFixture> {
    Remote::start().await.map(AgentRuntimeFixture)
}

clank_testkit::runtime_contract_tests!(agent_runtime_contract, agent_runtime);

// ---- the proxy contract against the agent's proxy ----------------------------------------------

struct AgentProxyFixture(Remote);

#[async_trait::async_trait]
impl ProxyFixture for AgentProxyFixture {
    async fn proxy(&self) -> Arc<dyn Proxy> {
        Arc::new(CalledProxy(AgentProxy::new(
            self.0.fleet.clone(),
            self.0.server,
        )))
    }

    async fn cleanup(&self) {
        self.0.stop().await;
    }
}

async fn agent_proxy() -> Option<AgentProxyFixture> {
    Remote::start().await.map(AgentProxyFixture)
}

clank_testkit::proxy_contract_tests!(agent_proxy_contract, agent_proxy);
