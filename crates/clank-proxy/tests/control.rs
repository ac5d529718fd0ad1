//! The control socket a daemon drives a proxy process through: every `Proxy` operation
//! round-trips over it (cutover, route, hold and release included), the socket file is
//! owner-only, and a second proxy cannot take the socket of one that answers.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use clank_core::id::ServiceId;
use clank_core::proxy::{CalledProxy, Proxy};
use clank_proxy::{ControlSocket, ProxyConfig, bind_control, serve_control};
use common::*;
use http::StatusCode;

#[tokio::test]
async fn every_proxy_call_round_trips_over_the_owner_only_control_socket() {
    let backend = backend("b").await;
    let p = start_proxy(ProxyConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy/control.sock");
    let listener = bind_control(&path).await.unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "socket mode {mode:o}");
    let dir_mode = std::fs::metadata(path.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700, "directory mode {dir_mode:o}");
    tokio::spawn(serve_control(p.proxy.clone(), listener, p.stop.clone()));

    let socket = ControlSocket::new(&path);
    assert!(socket.ping(Duration::from_secs(1)).await);
    // Another proxy cannot take over a socket that answers.
    assert!(bind_control(&path).await.is_err());

    let remote = CalledProxy(socket);
    let service = ServiceId::new();
    let route = route(service, "app.test", vec![backend.addr]);
    let report = remote
        .cutover(&cutover(route.clone(), Duration::from_secs(1)))
        .await
        .unwrap();
    assert_eq!(report.previous, None);
    assert_eq!(remote.route(service).await.unwrap(), Some(route.clone()));
    let (status, _, body) = get_once(p.addr, "app.test", "/").await.unwrap();
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"b"[..]));

    // Held: a request waits until released, then reaches the target.
    remote
        .hold(service, Duration::from_millis(100))
        .await
        .unwrap();
    let addr = p.addr;
    let held = tokio::spawn(async move { get_once(addr, "app.test", "/").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!held.is_finished(), "a held request was answered");
    remote.release(service).await.unwrap();
    let (status, _, _) = held.await.unwrap().unwrap();
    assert_eq!(status, StatusCode::OK);

    // A refused gate comes back as the error the engine reacts to, the route untouched.
    let mut bad = route.clone();
    bad.target.addrs = vec!["127.0.0.1:9".parse().unwrap()];
    bad.target.deployment = clank_core::id::DeploymentId::new();
    let err = remote
        .cutover(&cutover(bad, Duration::from_secs(1)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            clank_core::Error::Conflict(_) | clank_core::Error::Runtime { .. }
        ),
        "{err:?}"
    );
    assert_eq!(remote.route(service).await.unwrap(), Some(route));
    remote.remove_route(service).await.unwrap();
    assert_eq!(remote.route(service).await.unwrap(), None);
    p.stop.cancel();
}
