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
use clank_fleet::Fleet;
use clank_fleet::{AgentProxy, AgentRuntime};
use clank_testkit::proxy::ProxyFixture;
use clank_testkit::runtime::{Fixture, TestApp};
use common::{FleetEndpoint, docker_with_testapp, free_addr};
use tokio_util::sync::CancellationToken;

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
        let endpoint = FleetEndpoint::start(dir.path()).await;
        let (server, join_token) = endpoint
            .fleet
            .create_server(WorkspaceId::new(), "contract")
            .await
            .unwrap();
        let proxy_listen = free_addr();
        let child = endpoint.spawn_agent(
            dir.path(),
            &join_token,
            &["--proxy-listen".to_owned(), proxy_listen.to_string()],
        );
        let remote = Remote {
            fleet: endpoint.fleet,
            server: server.id,
            stop: endpoint.stop,
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
