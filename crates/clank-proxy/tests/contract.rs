//! The `Proxy` contract (clank-testkit's `proxy` suite) for our reverse proxy: in-process, as
//! the embedded daemon uses it, and behind its control socket (`CalledProxy<ControlSocket>`),
//! as the daemon drives the proxy process.

use std::sync::Arc;

use clank_core::proxy::{CalledProxy, Proxy};
use clank_proxy::{ClankProxy, ControlSocket, ProxyConfig, bind_control, serve_control};
use clank_testkit::proxy::ProxyFixture;
use tokio_util::sync::CancellationToken;

/// A `ClankProxy` serving on loopback, called directly.
struct InProcess {
    proxy: ClankProxy,
    stop: CancellationToken,
}

#[async_trait::async_trait]
impl ProxyFixture for InProcess {
    async fn proxy(&self) -> Arc<dyn Proxy> {
        Arc::new(self.proxy.clone())
    }

    async fn cleanup(&self) {
        self.stop.cancel();
    }
}

async fn serving() -> (ClankProxy, CancellationToken) {
    let proxy = ClankProxy::new(ProxyConfig::default()).expect("a proxy on defaults");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let stop = CancellationToken::new();
    let (p, s) = (proxy.clone(), stop.clone());
    tokio::spawn(async move { p.serve(listener, s).await });
    (proxy, stop)
}

async fn in_process() -> Option<InProcess> {
    let (proxy, stop) = serving().await;
    Some(InProcess { proxy, stop })
}

clank_testkit::proxy_contract_tests!(in_process_contract, in_process);

/// The same proxy reached only through its owner-only control socket.
struct OverControlSocket {
    socket: std::path::PathBuf,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
}

#[async_trait::async_trait]
impl ProxyFixture for OverControlSocket {
    async fn proxy(&self) -> Arc<dyn Proxy> {
        Arc::new(CalledProxy(ControlSocket::new(&self.socket)))
    }

    async fn cleanup(&self) {
        self.stop.cancel();
    }
}

async fn over_control_socket() -> Option<OverControlSocket> {
    let (proxy, stop) = serving().await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let socket = dir.path().join("proxy/control.sock");
    let listener = bind_control(&socket)
        .await
        .expect("bind the control socket");
    tokio::spawn(serve_control(proxy, listener, stop.clone()));
    Some(OverControlSocket {
        socket,
        stop,
        _dir: dir,
    })
}

clank_testkit::proxy_contract_tests!(control_socket_contract, over_control_socket);
