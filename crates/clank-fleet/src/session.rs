//! The gRPC service agents dial: enrollment, the session stream, update downloads.

use std::pin::Pin;
use std::sync::Arc;

use clank_core::Timestamp;
use clank_core::id::ServerId;
use clank_core::model::{ServerKind, ServerStatus, ServerUsage};
use clank_proto::v1::{self, agent_message::Body as Up, control_message::Body as Down};
use futures_util::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, info, warn};

use crate::identity::{self, CREDENTIAL_PREFIX};
use crate::{Calls, Fleet, Observation, Session, Slot, UpdateOutcome, lock};

/// Bytes per update chunk.
const CHUNK: usize = 256 * 1024;

/// The `AgentControl` gRPC service.
#[derive(Debug, Clone)]
pub struct FleetService {
    fleet: Fleet,
}

impl FleetService {
    pub(crate) fn new(fleet: Fleet) -> Self {
        FleetService { fleet }
    }

    /// The tonic server for this service, with the protocol's message limits.
    pub fn into_server(self) -> clank_proto::AgentControlServer<FleetService> {
        clank_proto::AgentControlServer::new(self)
            .max_decoding_message_size(clank_proto::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(clank_proto::MAX_MESSAGE_BYTES)
    }

    /// Serve agents on `listener` until `shutdown` resolves (HTTP/2 keepalive on), over TLS
    /// with `tls` (agents pin its fingerprint) or plain HTTP/2 without.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        tls: Option<&crate::tls::EndpointTls>,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> Result<(), tonic::transport::Error> {
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = tls {
            let identity = tonic::transport::Identity::from_pem(&tls.cert_pem, &tls.key_pem);
            builder =
                builder.tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))?;
        }
        builder
            .http2_keepalive_interval(Some(std::time::Duration::from_secs(20)))
            .http2_keepalive_timeout(Some(std::time::Duration::from_secs(10)))
            .tcp_nodelay(true)
            // An agent opens a handful of streams (session, update and image downloads): a
            // bound on what one connection may hold open at once.
            .max_concurrent_streams(MAX_STREAMS_PER_AGENT)
            .add_service(AgentEndpoint::new(self))
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
    }

    /// The identity behind the request's credential, checked against the server it claims.
    async fn authenticate<T>(
        &self,
        request: &Request<T>,
    ) -> Result<crate::identity::AgentIdentity, Status> {
        let meta = request.metadata();
        let credential = meta
            .get(clank_proto::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| Status::unauthenticated("missing `authorization: Bearer` credential"))?;
        let ident = self.fleet.authenticate(credential).await.inspect_err(|e| {
            warn!(peer = ?request.remote_addr(), reason = %e.message(), "Refused an agent.");
        })?;
        let claimed = meta
            .get(clank_proto::SERVER_HEADER)
            .and_then(|v| v.to_str().ok());
        if claimed != Some(ident.server_id.to_string().as_str()) {
            warn!(
                server = %ident.server_id,
                claimed = ?claimed,
                peer = ?request.remote_addr(),
                "Refused an agent presenting another server's identity."
            );
            return Err(Status::permission_denied(
                "the credential does not belong to the server this agent claims to be",
            ));
        }
        Ok(ident)
    }
}

/// Streams one agent connection may have open at once.
const MAX_STREAMS_PER_AGENT: u32 = 32;

/// Initial (and growth step of) the session stream's encode and decode buffers. Tonic's default
/// is 8 KiB each, allocated up front for every RPC and held for its life: 16 KiB of each
/// ~70 KiB agent session. Session messages (heartbeats, leases, acknowledgements) are well
/// under 1 KiB; larger ones (a desired state, a call's reply) grow the buffer to fit, as before.
const SESSION_BUFFER_BYTES: usize = 1024;

/// The session stream's prost codec, with [`SESSION_BUFFER_BYTES`] buffers.
#[derive(Debug, Clone, Copy, Default)]
struct SessionCodec;

#[derive(Debug, Clone, Copy, Default)]
struct SessionEncoder;

#[derive(Debug, Clone, Copy, Default)]
struct SessionDecoder;

fn session_buffers() -> tonic::codec::BufferSettings {
    // The yield threshold (how much of ready messages is batched into one write) as tonic's
    // default: it only matters when many messages are queued.
    tonic::codec::BufferSettings::new(SESSION_BUFFER_BYTES, 32 * 1024)
}

impl tonic::codec::Codec for SessionCodec {
    type Encode = v1::ControlMessage;
    type Decode = v1::AgentMessage;
    type Encoder = SessionEncoder;
    type Decoder = SessionDecoder;

    fn encoder(&mut self) -> SessionEncoder {
        SessionEncoder
    }

    fn decoder(&mut self) -> SessionDecoder {
        SessionDecoder
    }
}

impl tonic::codec::Encoder for SessionEncoder {
    type Item = v1::ControlMessage;
    type Error = Status;

    fn encode(
        &mut self,
        item: v1::ControlMessage,
        buf: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), Status> {
        // The buffer grows as needed (`EncodeBuf` reserves), so this cannot run out of space.
        prost::Message::encode(&item, buf).map_err(|e| Status::internal(e.to_string()))
    }

    fn buffer_settings(&self) -> tonic::codec::BufferSettings {
        session_buffers()
    }
}

impl tonic::codec::Decoder for SessionDecoder {
    type Item = v1::AgentMessage;
    type Error = Status;

    fn decode(
        &mut self,
        buf: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<v1::AgentMessage>, Status> {
        <v1::AgentMessage as prost::Message>::decode(buf)
            .map(Some)
            .map_err(|e| Status::internal(e.to_string()))
    }

    fn buffer_settings(&self) -> tonic::codec::BufferSettings {
        session_buffers()
    }
}

/// The `AgentControl` service as served: the session stream through [`SessionCodec`], every
/// other method through the generated server (tonic's default buffers: enrollment and
/// downloads are short-lived).
#[derive(Debug, Clone)]
struct AgentEndpoint {
    service: FleetService,
    rest: clank_proto::AgentControlServer<FleetService>,
}

impl AgentEndpoint {
    const SESSION_PATH: &'static str = "/clank.agent.v1.AgentControl/Session";

    fn new(service: FleetService) -> Self {
        AgentEndpoint {
            rest: service.clone().into_server(),
            service,
        }
    }
}

impl tonic::server::NamedService for AgentEndpoint {
    const NAME: &'static str =
        <clank_proto::AgentControlServer<FleetService> as tonic::server::NamedService>::NAME;
}

/// The session method as a tonic streaming service.
struct SessionMethod(FleetService);

impl tonic::server::StreamingService<v1::AgentMessage> for SessionMethod {
    type Response = v1::ControlMessage;
    type ResponseStream = DownStream;
    type Future = tonic::codegen::BoxFuture<Response<DownStream>, Status>;

    fn call(&mut self, request: Request<Streaming<v1::AgentMessage>>) -> Self::Future {
        let service = self.0.clone();
        Box::pin(async move {
            <FleetService as clank_proto::AgentControl>::session(&service, request).await
        })
    }
}

impl tonic::codegen::Service<tonic::codegen::http::Request<tonic::body::Body>> for AgentEndpoint {
    type Response = tonic::codegen::http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = tonic::codegen::BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: tonic::codegen::http::Request<tonic::body::Body>) -> Self::Future {
        if request.uri().path() != Self::SESSION_PATH {
            return tonic::codegen::Service::call(&mut self.rest, request);
        }
        let method = SessionMethod(self.service.clone());
        Box::pin(async move {
            // The limits `into_server` sets; no compression, as the generated server's default.
            let mut grpc = tonic::server::Grpc::new(SessionCodec).apply_max_message_size_config(
                Some(clank_proto::MAX_MESSAGE_BYTES),
                Some(clank_proto::MAX_MESSAGE_BYTES),
            );
            Ok(grpc.streaming(method, request).await)
        })
    }
}

type DownStream = Pin<Box<dyn Stream<Item = Result<v1::ControlMessage, Status>> + Send>>;
type ChunkStream = Pin<Box<dyn Stream<Item = Result<v1::UpdateChunk, Status>> + Send>>;
type ImageStream = Pin<Box<dyn Stream<Item = Result<v1::ImageChunk, Status>> + Send>>;

fn lease(epoch: u64, server: ServerId, ttl: std::time::Duration) -> v1::ControlMessage {
    v1::ControlMessage {
        body: Some(Down::Lease(v1::Lease {
            epoch,
            ttl_ms: u32::try_from(ttl.as_millis()).unwrap_or(u32::MAX),
            server_id: server.to_string(),
        })),
    }
}

#[tonic::async_trait]
impl clank_proto::AgentControl for FleetService {
    async fn enroll(
        &self,
        request: Request<v1::EnrollRequest>,
    ) -> Result<Response<v1::EnrollResponse>, Status> {
        let peer = request.remote_addr();
        let req = request.into_inner();
        let refuse = |why: &str| {
            warn!(peer = ?peer, hostname = %req.hostname, reason = why, "Refused an enrollment.");
            Status::unauthenticated(format!("join token refused: {why}"))
        };
        let hash = identity::token_hash(&req.join_token);
        let cat = &self.fleet.inner.catalog;
        let Some(ident) = cat
            .lookup::<crate::identity::AgentIdentity>("join", &hash)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?
        else {
            return Err(refuse("unknown, already used or revoked"));
        };
        // The lookup reads the token's index entry, then the record: another enrollment can
        // redeem the token in between, and the record read is then the one it wrote. The
        // write below is conditioned on this read, so it must still hold the token.
        if ident.join_hash.as_deref() != Some(hash.as_str()) {
            return Err(refuse("already used"));
        }
        let server = ident.server_id;
        if Timestamp::now() > ident.join_expires_at {
            return Err(refuse("expired"));
        }
        let credential = identity::new_token(CREDENTIAL_PREFIX);
        let cred_hash = identity::token_hash(&credential);
        // Conditional on the record as read: two agents racing with one token, one wins.
        let mut new = ident.value.clone();
        new.join_hash = None;
        new.credential_hash = Some(cred_hash.clone());
        if cat.update(&ident, &new).await.is_err() {
            return Err(refuse("already used"));
        }
        let version = req.agent_version.clone();
        self.fleet
            .update_server(server, move |s| {
                s.kind = ServerKind::Agent {
                    identity: Some(identity::fingerprint(&cred_hash)),
                    agent_version: Some(version.clone()),
                };
                if s.status == ServerStatus::AwaitingEnrollment {
                    s.status = ServerStatus::Disconnected;
                }
            })
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        info!(server = %server, hostname = %req.hostname, "Agent enrolled.");
        Ok(Response::new(v1::EnrollResponse {
            server_id: server.to_string(),
            credential,
            release_public_key: self.fleet.inner.release_key.public_key().to_vec(),
        }))
    }

    type SessionStream = DownStream;

    async fn session(
        &self,
        request: Request<Streaming<v1::AgentMessage>>,
    ) -> Result<Response<DownStream>, Status> {
        if *self.fleet.inner.closing.borrow() {
            return Err(Status::unavailable("the control plane is shutting down"));
        }
        let ident = self.authenticate(&request).await?;
        let server = ident.server_id;
        let credential_hash = ident.credential_hash.clone();
        let fleet = self.fleet.clone();
        let config = fleet.inner.config.clone();
        let mut inbound = request.into_inner();
        let first = tokio::time::timeout(config.heartbeat_timeout, inbound.message()).await;
        let hello = match first {
            Ok(Ok(Some(v1::AgentMessage {
                body: Some(Up::Hello(h)),
            }))) => h,
            _ => return Err(Status::invalid_argument("a session starts with Hello")),
        };
        let (tx, rx) = mpsc::channel(256);
        if hello.probe {
            // A new binary checking it can connect: a lease at the current epoch, nothing
            // else, and the live session is left alone.
            let _ = tx
                .send(Ok(lease(ident.epoch, server, config.lease_ttl)))
                .await;
            info!(server = %server, version = %hello.agent_version, "Agent update probe connected.");
            return Ok(Response::new(Box::pin(ReceiverStream::new(rx))));
        }
        let ident = fleet
            .modify_identity(server, 512, |i| {
                i.epoch += 1;
                Ok(())
            })
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        // Revoked (or re-enrolled) between authentication and now: the credential is gone.
        if ident.credential_hash.is_none() || ident.credential_hash != credential_hash {
            return Err(Status::unauthenticated(
                "unknown or revoked agent credential",
            ));
        }
        let epoch = ident.epoch;
        let session = Session {
            epoch,
            tx: tx.clone(),
            calls: Arc::new(Calls::default()),
        };
        let slot = fleet.slot(server);
        let previous = {
            let mut live = lock(&slot.live);
            live.agent_version = Some(hello.agent_version.clone());
            live.binary_sha256 = Some(hello.binary_sha256.clone());
            live.features = hello.features.clone();
            live.last_seen = Some(Timestamp::now());
            live.session.replace(session.clone())
        };
        if let Some(old) = previous {
            info!(server = %server, old_epoch = old.epoch, epoch, "A newer session supersedes the previous one.");
            let _ = old
                .tx
                .send(Err(Status::aborted(
                    "superseded by a newer session of this server",
                )))
                .await;
        }
        slot.observed.send_modify(|o| {
            o.epoch = epoch;
        });
        let _ = tx.send(Ok(lease(epoch, server, config.lease_ttl))).await;
        fleet
            .send_desired(&slot, &session, hello.applied_generation)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let release = lock(&fleet.inner.release).clone();
        if let Some(r) = release
            && r.sha256 != hello.binary_sha256
        {
            let _ = tx.send(Ok(crate::offer_message(&r))).await;
        }
        let version = hello.agent_version.clone();
        fleet
            .update_server(server, move |s| {
                if s.status != ServerStatus::Revoked {
                    s.status = ServerStatus::Connected;
                }
                if let ServerKind::Agent { agent_version, .. } = &mut s.kind {
                    *agent_version = Some(version.clone());
                }
                s.last_heartbeat = Some(Timestamp::now());
            })
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        info!(server = %server, epoch, version = %hello.agent_version, "Agent connected.");

        // Lease renewals, until the session is replaced or closed.
        let renew_slot = slot.clone();
        let renew_tx = tx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(config.lease_ttl / 3);
            tick.tick().await;
            loop {
                tick.tick().await;
                let current = renew_slot.session().is_some_and(|s| s.epoch == epoch);
                if !current
                    || renew_tx
                        .send(Ok(lease(epoch, server, config.lease_ttl)))
                        .await
                        .is_err()
                {
                    break;
                }
            }
        });
        // Everything the agent sends, until it goes quiet or away.
        drop(tx);
        let mut closing = fleet.inner.closing.subscribe();
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    next = tokio::time::timeout(config.heartbeat_timeout, inbound.message()) => next,
                    _ = closing.wait_for(|c| *c) => break,
                };
                match next {
                    Ok(Ok(Some(msg))) => handle(&fleet, &slot, &session, msg).await,
                    Ok(Ok(None)) => break,
                    Ok(Err(e)) => {
                        debug!(server = %server, error = %e, "Agent session ended with an error.");
                        break;
                    }
                    Err(_) => {
                        warn!(server = %server, "No heartbeat within {:?}; dropping the session.", config.heartbeat_timeout);
                        break;
                    }
                }
            }
            // The agent ends this session's terminals with it; so does this side.
            crate::terminal::end_all(&session.calls);
            detach(&fleet, &slot, epoch).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type FetchUpdateStream = ChunkStream;

    async fn fetch_update(
        &self,
        request: Request<v1::FetchUpdateRequest>,
    ) -> Result<Response<ChunkStream>, Status> {
        self.authenticate(&request).await?;
        let want = request.into_inner().sha256;
        let release = lock(&self.fleet.inner.release).clone();
        let Some(release) = release.filter(|r| r.sha256 == want) else {
            return Err(Status::not_found(
                "no agent release with that checksum is offered",
            ));
        };
        let chunks: Vec<Result<v1::UpdateChunk, Status>> = release
            .binary
            .chunks(CHUNK)
            .map(|c| Ok(v1::UpdateChunk { data: c.to_vec() }))
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks))))
    }

    type FetchImageStream = ImageStream;

    async fn fetch_image(
        &self,
        request: Request<v1::FetchImageRequest>,
    ) -> Result<Response<ImageStream>, Status> {
        let ident = self.authenticate(&request).await?;
        let transfer = request.into_inner().transfer;
        let stream = crate::images::serve(&self.fleet, ident.server_id, transfer).await?;
        Ok(Response::new(stream))
    }
}

/// One message from the agent of the session with `session.epoch`.
async fn handle(fleet: &Fleet, slot: &Arc<Slot>, session: &Session, msg: v1::AgentMessage) {
    let now = Timestamp::now();
    let current = {
        let mut live = lock(&slot.live);
        let current = live
            .session
            .as_ref()
            .is_some_and(|s| s.epoch == session.epoch);
        if current {
            live.last_seen = Some(now);
        }
        current
    };
    // A superseded session's reports are stale: only replies to its own calls still count.
    match msg.body {
        Some(Up::Heartbeat(h)) if current => {
            let usage = ServerUsage {
                cpu_percent: h.cpu_percent,
                memory_used_bytes: h.memory_used_bytes,
                memory_total_bytes: h.memory_total_bytes,
                disk_used_bytes: h.disk_used_bytes,
                disk_total_bytes: h.disk_total_bytes,
            };
            let persist = {
                let mut live = lock(&slot.live);
                live.usage = Some(usage);
                let due = live
                    .last_persisted
                    .is_none_or(|t| now.since(t) >= fleet.inner.config.persist_heartbeat_every);
                if due {
                    live.last_persisted = Some(now);
                }
                due
            };
            if persist {
                let _ = fleet
                    .update_server(slot.id, move |s| {
                        s.usage = Some(usage);
                        s.last_heartbeat = Some(now);
                    })
                    .await;
            }
        }
        Some(Up::Observed(o)) if current && o.epoch == session.epoch => {
            slot.observed.send_replace(Observation {
                epoch: o.epoch,
                generation: o.generation,
                workloads: o.workloads,
                errors: o.errors,
            });
        }
        Some(Up::Reply(r)) => {
            let Some(result) = r.result else { return };
            let Some(result) = crate::terminal::deliver(&session.calls, r.call_id, result) else {
                return;
            };
            let mut pending = lock(&session.calls.pending);
            let more = matches!(
                result,
                v1::reply::Result::LogLine(_) | v1::reply::Result::Progress(_)
            );
            if let Some(tx) = pending.get(&r.call_id) {
                let _ = tx.send(result);
            }
            if !more {
                pending.remove(&r.call_id);
            }
        }
        Some(Up::UpdateResult(u)) => {
            info!(server = %slot.id, version = %u.version, ok = u.ok, message = %u.message, "Agent update result.");
            lock(&slot.live).update = Some(UpdateOutcome {
                version: u.version,
                ok: u.ok,
                message: u.message,
            });
        }
        _ => {}
    }
}

/// The session with `epoch` ended: if it is still the server's current one, the server is
/// disconnected and its pending calls fail.
async fn detach(fleet: &Fleet, slot: &Arc<Slot>, epoch: u64) {
    let ended = {
        let mut live = lock(&slot.live);
        if live.session.as_ref().is_some_and(|s| s.epoch == epoch) {
            live.session.take()
        } else {
            None
        }
    };
    if let Some(s) = ended {
        lock(&s.calls.pending).clear();
        info!(server = %slot.id, epoch, "Agent disconnected.");
        let _ = fleet
            .persist_status(slot.id, ServerStatus::Disconnected)
            .await;
    }
}
