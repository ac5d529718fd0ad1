//! Enrollment against the real daemon (redb store, TLS agent endpoint, real gRPC over
//! loopback), without Docker: a one-time join token redeemed once under a race, and the
//! release signing key an agent learns at enrollment signing every published release.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use clank_proto::v1;
use common::{ControlPlane, free_addr};

impl ControlPlane {
    /// A gRPC client of the agent endpoint, pinned to `fingerprint`.
    async fn client(
        &self,
        fingerprint: &str,
    ) -> clank_proto::AgentControlClient<tonic::transport::Channel> {
        let channel = clank_agent::connect(&format!("https://{}", self.agents), Some(fingerprint))
            .await
            .unwrap();
        clank_proto::AgentControlClient::new(channel)
    }
}

/// The control plane on native processes, its REST API on any free port.
async fn start(data: &Path, agents: SocketAddr) -> ControlPlane {
    ControlPlane::start(data, "process", "127.0.0.1:0".parse().unwrap(), agents).await
}

fn enroll_request(token: &str, n: usize) -> v1::EnrollRequest {
    v1::EnrollRequest {
        join_token: token.to_owned(),
        hostname: format!("racer-{n}"),
        agent_version: "0.0.0-test".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_join_token_redeemed_by_sixteen_concurrent_enrollments_admits_exactly_one() {
    const RACERS: usize = 16;
    let data = tempfile::tempdir().unwrap();
    let mut cp = start(data.path(), free_addr()).await;
    let owner = cp.init().await;
    let (server_id, token, fingerprint) = cp.add_server(&owner, "raced").await;

    // Every racer has its own connection, made before the start line.
    let mut clients = Vec::new();
    for _ in 0..RACERS {
        clients.push(cp.client(&fingerprint).await);
    }
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(RACERS));
    let racers: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(n, mut client)| {
            let (start, token) = (start.clone(), token.clone());
            tokio::spawn(async move {
                start.wait().await;
                client.enroll(enroll_request(&token, n)).await
            })
        })
        .collect();
    let mut admitted = Vec::new();
    let mut refused = Vec::new();
    for r in racers {
        match r.await.unwrap() {
            Ok(resp) => admitted.push(resp.into_inner()),
            Err(status) => refused.push(status),
        }
    }
    assert_eq!(
        admitted.len(),
        1,
        "exactly one enrollment wins the token; admitted: {admitted:?}; refused: {:?}",
        refused
            .iter()
            .map(tonic::Status::message)
            .collect::<Vec<_>>()
    );
    assert_eq!(refused.len(), RACERS - 1);
    for s in &refused {
        assert_eq!(s.code(), tonic::Code::Unauthenticated, "{s:?}");
        assert!(
            s.message().starts_with("join token refused: ")
                && (s.message().contains("already used") || s.message().contains("unknown")),
            "a clear reason: {s:?}"
        );
    }
    let winner = &admitted[0];
    assert_eq!(winner.server_id, server_id);
    assert_eq!(winner.release_public_key.len(), 32);

    // The winner's credential opens a session; the token is spent for good.
    let mut client = cp.client(&fingerprint).await;
    let late = client.enroll(enroll_request(&token, RACERS)).await;
    assert_eq!(late.unwrap_err().code(), tonic::Code::Unauthenticated);
    let (_, mut down) = open_session(&mut client, winner, "").await;
    assert!(matches!(
        next(&mut down).await.body,
        Some(v1::control_message::Body::Lease(_))
    ));
    cp.shutdown().await;
}

/// A session as `enrolled`, with a Hello claiming binary `sha256`.
async fn open_session(
    client: &mut clank_proto::AgentControlClient<tonic::transport::Channel>,
    enrolled: &v1::EnrollResponse,
    sha256: &str,
) -> (
    tokio::sync::mpsc::Sender<v1::AgentMessage>,
    tonic::Streaming<v1::ControlMessage>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tx.send(v1::AgentMessage {
        body: Some(v1::agent_message::Body::Hello(v1::Hello {
            agent_version: "0.0.0-test".into(),
            binary_sha256: sha256.into(),
            last_epoch: 0,
            applied_generation: 0,
            probe: false,
            // An agent of before `features`: it receives no images.
            features: Vec::new(),
        })),
    })
    .await
    .unwrap();
    let mut req = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    req.metadata_mut().insert(
        clank_proto::AUTHORIZATION,
        format!("Bearer {}", enrolled.credential).parse().unwrap(),
    );
    req.metadata_mut().insert(
        clank_proto::SERVER_HEADER,
        enrolled.server_id.parse().unwrap(),
    );
    let down = client.session(req).await.unwrap().into_inner();
    (tx, down)
}

async fn next(down: &mut tonic::Streaming<v1::ControlMessage>) -> v1::ControlMessage {
    tokio::time::timeout(Duration::from_secs(10), down.message())
        .await
        .expect("a control message within 10 s")
        .unwrap()
        .expect("the session is open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releases_are_signed_by_the_key_handed_out_at_enrollment_which_survives_restarts() {
    let data = tempfile::tempdir().unwrap();
    let agents = free_addr();
    let mut cp = start(data.path(), agents).await;
    let owner = cp.init().await;
    let (_, token, fingerprint) = cp.add_server(&owner, "signed").await;
    let enrolled = cp
        .client(&fingerprint)
        .await
        .enroll(enroll_request(&token, 0))
        .await
        .unwrap()
        .into_inner();
    let key = enrolled.release_public_key.clone();
    assert_eq!(key.len(), 32, "an Ed25519 public key");

    // A restart keeps the key (agents pinned it), and hands the same one to the next server.
    cp.shutdown().await;
    let mut cp = start(data.path(), agents).await;
    let (_, token2, _) = cp.add_server(&owner, "signed-2").await;
    let second = cp
        .client(&fingerprint)
        .await
        .enroll(enroll_request(&token2, 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.release_public_key, key, "one key across restarts");

    // The operator publishes; the offer down the session carries a signature that verifies
    // with the key from enrollment, and fails once any signed field is altered.
    let binary = b"#!/bin/sh\nexit 0\n".to_vec();
    let resp = cp
        .http
        .put(cp.url("/v1/workspaces/acme/agent-release?version=3.1.4"))
        .bearer_auth(&owner)
        .header("content-type", "application/octet-stream")
        .body(binary.clone())
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
    let mut client = cp.client(&fingerprint).await;
    let (_tx, mut down) = open_session(&mut client, &enrolled, "").await;
    let offer = loop {
        if let Some(v1::control_message::Body::Update(offer)) = next(&mut down).await.body {
            break offer;
        }
    };
    assert_eq!(offer.version, "3.1.4");
    assert_eq!(offer.size, binary.len() as u64);
    assert_eq!(offer.signature.len(), 64, "an Ed25519 signature");
    assert_eq!(
        clank_agent::update::verify_offer(Some(&key), &offer),
        Ok(())
    );
    let altered = v1::UpdateOffer {
        version: "3.1.5".into(),
        ..offer.clone()
    };
    assert!(clank_agent::update::verify_offer(Some(&key), &altered).is_err());
    assert!(clank_agent::update::verify_offer(None, &offer).is_err());
    cp.shutdown().await;
}
