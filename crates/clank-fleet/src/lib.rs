//! The control plane's side of remote servers.
//!
//! A server is registered with a one-time join token; its agent dials out, exchanges the token
//! for a long-lived credential ([`identity`]), then holds one gRPC session ([`session`]).
//! Each server has a **desired state**: every network, volume and workload it should hold,
//! numbered by a generation and persisted (sealed: workload environments carry decrypted
//! secrets). The engine never sends commands; [`AgentRuntime`] edits the desired state and
//! waits until the agent reports having applied that generation, so re-delivery and restarts
//! of either side converge instead of duplicating work.
//!
//! Sessions are fenced by a lease epoch: every accepted session gets a higher one, the
//! previous session of the same server is cut, and the agent refuses instructions from an
//! older epoch or after its lease lapsed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use base64::Engine as _;
use clank_core::Timestamp;
use clank_core::error::{Error, Result, RuntimeFailure};
use clank_core::id::{ServerId, WorkspaceId};
use clank_core::model::{Server, ServerKind, ServerStatus, ServerUsage};
use clank_core::proxy::Proxy;
use clank_core::runtime::{Placement, Runtime};
use clank_core::secret::{Keyring, SecretAad};
use clank_core::store::catalog::{Catalog, Page};
use clank_proto::v1;
use prost::Message as _;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

mod commit;
pub mod identity;
mod images;
mod release;
mod remote;
mod session;
mod terminal;
pub mod tls;

use identity::{AgentIdentity, CREDENTIAL_PREFIX, JOIN_PREFIX};
pub use remote::{AgentProxy, AgentRuntime};
pub use session::FleetService;

/// Timings of the agent protocol.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// How long an agent may act on a lease without a renewal (renewed every third of it).
    pub lease_ttl: Duration,
    /// A session with no message (heartbeat) for this long is dropped as disconnected.
    pub heartbeat_timeout: Duration,
    /// How long a desired-state change may take to be applied and reported by the agent.
    pub apply_timeout: Duration,
    /// How long a call (inspect, exec, probe, proxy) may take.
    pub call_timeout: Duration,
    /// How long a join token stays valid.
    pub join_token_ttl: Duration,
    /// How often the server record is written from heartbeats (live values are in memory).
    pub persist_heartbeat_every: Duration,
    /// The agent endpoint's certificate fingerprint, handed out with join tokens for agents
    /// to pin (`None`: the endpoint is plain HTTP/2 behind something that secures it).
    pub endpoint_fingerprint: Option<String>,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            lease_ttl: Duration::from_secs(15),
            heartbeat_timeout: Duration::from_secs(30),
            apply_timeout: Duration::from_secs(120),
            call_timeout: Duration::from_secs(30),
            join_token_ttl: Duration::from_secs(3600),
            persist_heartbeat_every: Duration::from_secs(30),
            endpoint_fingerprint: None,
        }
    }
}

pub use clank_api::servers::{ServerView, UpdateOutcome};

/// An agent binary offered to every agent.
#[derive(Debug, Clone)]
pub(crate) struct Release {
    pub(crate) version: String,
    pub(crate) sha256: String,
    pub(crate) binary: Arc<Vec<u8>>,
    /// Ed25519 over `clank_proto::release_message(version, sha256, size)`.
    pub(crate) signature: Vec<u8>,
}

/// Everything a server should hold. Compared whole: an edit that changes nothing is not a
/// new generation.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Desired {
    pub(crate) generation: u64,
    pub(crate) networks: BTreeMap<String, HashMap<String, String>>,
    pub(crate) volumes: BTreeMap<String, HashMap<String, String>>,
    pub(crate) workloads: BTreeMap<String, v1::DesiredWorkload>,
}

impl Desired {
    pub(crate) fn to_proto(&self, epoch: u64) -> v1::DesiredState {
        v1::DesiredState {
            epoch,
            generation: self.generation,
            networks: self
                .networks
                .iter()
                .map(|(name, labels)| v1::Network {
                    name: name.clone(),
                    labels: labels.clone(),
                })
                .collect(),
            volumes: self
                .volumes
                .iter()
                .map(|(name, labels)| v1::Volume {
                    name: name.clone(),
                    labels: labels.clone(),
                })
                .collect(),
            workloads: self.workloads.values().cloned().collect(),
        }
    }

    /// The whole state as the message a session sends.
    pub(crate) fn message(&self, epoch: u64) -> v1::ControlMessage {
        v1::ControlMessage {
            body: Some(v1::control_message::Body::Desired(self.to_proto(epoch))),
        }
    }

    fn from_proto(p: v1::DesiredState) -> Self {
        Desired {
            generation: p.generation,
            networks: p.networks.into_iter().map(|n| (n.name, n.labels)).collect(),
            volumes: p.volumes.into_iter().map(|v| (v.name, v.labels)).collect(),
            workloads: p
                .workloads
                .into_iter()
                .filter_map(|w| Some((w.spec.as_ref()?.name.clone(), w)))
                .collect(),
        }
    }
}

/// What the agent last reported for its current session.
#[derive(Debug, Clone, Default)]
pub(crate) struct Observation {
    pub(crate) epoch: u64,
    pub(crate) generation: u64,
    pub(crate) workloads: Vec<v1::WorkloadStatus>,
    pub(crate) errors: Vec<v1::WorkloadError>,
}

/// A live session: where to send control messages, and the calls awaiting replies.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub(crate) epoch: u64,
    pub(crate) tx: mpsc::Sender<std::result::Result<v1::ControlMessage, tonic::Status>>,
    pub(crate) calls: Arc<Calls>,
}

#[derive(Debug, Default)]
pub(crate) struct Calls {
    next: AtomicU64,
    pub(crate) pending: StdMutex<HashMap<u64, mpsc::UnboundedSender<v1::reply::Result>>>,
    /// The bounded routes of terminal calls (see [`terminal`]).
    pub(crate) terminals: terminal::Routes,
}

#[derive(Debug, Default)]
pub(crate) struct LiveInfo {
    pub(crate) session: Option<Session>,
    pub(crate) usage: Option<ServerUsage>,
    pub(crate) last_seen: Option<Timestamp>,
    pub(crate) last_persisted: Option<Timestamp>,
    pub(crate) agent_version: Option<String>,
    pub(crate) binary_sha256: Option<String>,
    pub(crate) update: Option<UpdateOutcome>,
    /// `Hello.features` of the connected agent.
    pub(crate) features: Vec<String>,
}

/// One server's in-memory state.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) id: ServerId,
    /// Loaded on first use; the lock is held across the store write and the send, so
    /// generations reach the agent in order.
    pub(crate) desired: tokio::sync::Mutex<Option<Desired>>,
    pub(crate) live: StdMutex<LiveInfo>,
    pub(crate) observed: watch::Sender<Observation>,
}

impl Slot {
    pub(crate) fn session(&self) -> Option<Session> {
        lock(&self.live).session.clone()
    }
}

pub(crate) fn lock<T>(m: &StdMutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The control plane's registry of remote servers. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Fleet {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) catalog: Catalog,
    pub(crate) keyring: Keyring,
    pub(crate) config: FleetConfig,
    pub(crate) slots: StdMutex<HashMap<ServerId, Arc<Slot>>>,
    /// Servers that may run workloads (enrolled or awaiting enrollment, not revoked).
    pub(crate) placeable: StdMutex<HashSet<ServerId>>,
    pub(crate) release: StdMutex<Option<Release>>,
    /// Signs every release offered; agents learn its public key at enrollment.
    pub(crate) release_key: release::ReleaseSigner,
    /// Set by [`Fleet::close`]: sessions end and new ones are refused.
    pub(crate) closing: watch::Sender<bool>,
    /// The control plane's own images, sent to agents whose engine lacks one.
    pub(crate) images: StdMutex<Option<Arc<dyn clank_core::runtime::ImageStore>>>,
    /// Image transfers offered to agents and not fetched yet or in progress.
    pub(crate) transfers: images::Transfers,
    /// Writes of identity records (desired states, lease epochs), grouped into shared
    /// transactions when they arrive together (a fleet-wide change).
    pub(crate) identities: commit::GroupCommit<AgentIdentity>,
    /// Writes of server records (status, heartbeats), grouped likewise.
    pub(crate) servers: commit::GroupCommit<Server>,
}

fn unavailable(server: ServerId, what: &str) -> Error {
    Error::runtime(
        RuntimeFailure::EngineUnavailable,
        format!("server {server}: {what}"),
    )
}

impl Fleet {
    /// Open the registry over the platform's catalog and keyring.
    pub async fn open(catalog: Catalog, keyring: Keyring, config: FleetConfig) -> Result<Fleet> {
        let mut placeable = HashSet::new();
        let mut page = Page::first(500);
        loop {
            let listing = catalog.list::<Server>(page.clone()).await?;
            for s in &listing.items {
                if matches!(s.kind, ServerKind::Agent { .. }) && s.status != ServerStatus::Revoked {
                    placeable.insert(s.id);
                }
            }
            match listing.next {
                Some(next) => page.after = Some(next),
                None => break,
            }
        }
        let release_key = release::ReleaseSigner::load_or_create(&catalog, &keyring).await?;
        let identities = commit::GroupCommit::start(&catalog);
        let servers = commit::GroupCommit::start(&catalog);
        let fleet = Fleet {
            inner: Arc::new(Inner {
                identities,
                servers,
                catalog,
                keyring,
                config,
                slots: StdMutex::new(HashMap::new()),
                placeable: StdMutex::new(placeable.clone()),
                release: StdMutex::new(None),
                release_key,
                closing: watch::Sender::new(false),
                images: StdMutex::new(None),
                transfers: images::Transfers::default(),
            }),
        };
        // Nothing is connected right after a start, whatever the records said at the crash.
        // All queued at once: written in a few shared transactions, not one per server.
        let writes: Vec<_> = placeable
            .into_iter()
            .map(|id| fleet.persist_status(id, ServerStatus::Disconnected))
            .collect();
        for w in writes {
            w.await?;
        }
        Ok(fleet)
    }

    /// End every session (agents reconnect to the next control plane) and refuse new ones:
    /// the first step of a graceful shutdown.
    pub async fn close(&self) {
        self.inner.closing.send_replace(true);
        let slots: Vec<Arc<Slot>> = lock(&self.inner.slots).values().cloned().collect();
        for slot in slots {
            let session = lock(&slot.live).session.take();
            if let Some(s) = session {
                lock(&s.calls.pending).clear();
                let _ =
                    s.tx.send(Err(tonic::Status::unavailable(
                        "the control plane is shutting down",
                    )))
                    .await;
            }
        }
    }

    /// Send images from `store` (the control plane's engine) to agents whose engine lacks
    /// them: a git-built or locally loaded image exists nowhere else.
    pub fn export_images_from(&self, store: Arc<dyn clank_core::runtime::ImageStore>) {
        *lock(&self.inner.images) = Some(store);
    }

    pub fn config(&self) -> &FleetConfig {
        &self.inner.config
    }

    /// The public half of the agent-release signing key (Ed25519, 32 bytes), which agents
    /// learn at enrollment and check every offered release against.
    pub fn release_public_key(&self) -> &[u8] {
        self.inner.release_key.public_key()
    }

    /// The engine's view: each server's runtime and proxy.
    pub fn placement(&self) -> Arc<dyn Placement> {
        Arc::new(self.clone())
    }

    /// The gRPC service agents connect to.
    pub fn service(&self) -> FleetService {
        FleetService::new(self.clone())
    }

    pub(crate) fn slot(&self, id: ServerId) -> Arc<Slot> {
        lock(&self.inner.slots)
            .entry(id)
            .or_insert_with(|| {
                Arc::new(Slot {
                    id,
                    desired: tokio::sync::Mutex::new(None),
                    live: StdMutex::new(LiveInfo::default()),
                    observed: watch::Sender::new(Observation::default()),
                })
            })
            .clone()
    }

    /// Register a remote server in `workspace`; returns it and its one-time join token
    /// (shown once: only its hash is kept).
    pub async fn create_server(
        &self,
        workspace: WorkspaceId,
        name: &str,
    ) -> Result<(Server, String)> {
        clank_core::validate::validate_slug("name", name)?;
        let now = Timestamp::now();
        let server = Server {
            id: ServerId::new(),
            workspace_id: workspace,
            name: name.to_owned(),
            kind: ServerKind::Agent {
                identity: None,
                agent_version: None,
            },
            status: ServerStatus::AwaitingEnrollment,
            last_heartbeat: None,
            usage: None,
            created_at: now,
        };
        let token = identity::new_token(JOIN_PREFIX);
        let ident = AgentIdentity {
            server_id: server.id,
            workspace_id: workspace,
            join_hash: Some(identity::token_hash(&token)),
            join_expires_at: now.saturating_add(self.inner.config.join_token_ttl),
            credential_hash: None,
            epoch: 0,
            generation: 0,
            desired: None,
        };
        let mut batch = clank_core::store::catalog::Batch::new();
        batch.create(&server)?.create(&ident)?;
        self.inner.catalog.commit(batch).await?;
        lock(&self.inner.placeable).insert(server.id);
        info!(server = %server.id, name, "Registered a remote server; awaiting enrollment.");
        Ok((server, token))
    }

    /// A fresh join token for `server` (re-enrollment, e.g. a reinstalled machine). The old
    /// credential keeps working until the new token is used.
    pub async fn new_join_token(&self, server: ServerId) -> Result<String> {
        let record = self
            .inner
            .catalog
            .require::<Server>(&server.to_string())
            .await?;
        if record.status == ServerStatus::Revoked {
            return Err(Error::Conflict(format!(
                "server `{}` is revoked; register a new server instead",
                record.name
            )));
        }
        let token = identity::new_token(JOIN_PREFIX);
        let expires = Timestamp::now().saturating_add(self.inner.config.join_token_ttl);
        self.update_identity(server, |i| {
            i.join_hash = Some(identity::token_hash(&token));
            i.join_expires_at = expires;
            Ok(())
        })
        .await?;
        Ok(token)
    }

    /// Cut a server off: its credential and any join token stop working, its session is
    /// closed, and nothing is placed on it any more. Its workloads keep running there.
    pub async fn revoke(&self, server: ServerId) -> Result<Server> {
        self.update_identity(server, |i| {
            i.credential_hash = None;
            i.join_hash = None;
            Ok(())
        })
        .await?;
        lock(&self.inner.placeable).remove(&server);
        let slot = self.slot(server);
        let session = lock(&slot.live).session.take();
        if let Some(s) = session {
            let _ =
                s.tx.send(Err(tonic::Status::permission_denied(
                    "this server's credential was revoked",
                )))
                .await;
        }
        warn!(server = %server, "Revoked a remote server's credential.");
        self.persist_status(server, ServerStatus::Revoked).await?;
        Ok(self
            .inner
            .catalog
            .require::<Server>(&server.to_string())
            .await?
            .value)
    }

    /// Servers of a workspace with their live state.
    pub async fn servers(&self, workspace: WorkspaceId) -> Result<Vec<ServerView>> {
        let listing = self
            .inner
            .catalog
            .find::<Server>("workspace", &workspace.to_string(), Page::all())
            .await?;
        let mut out = Vec::with_capacity(listing.items.len());
        for s in listing.items {
            out.push(self.view(s.value).await?);
        }
        Ok(out)
    }

    /// One server with its live state.
    pub async fn server(&self, id: ServerId) -> Result<ServerView> {
        let s = self
            .inner
            .catalog
            .require::<Server>(&id.to_string())
            .await?;
        self.view(s.value).await
    }

    async fn view(&self, mut server: Server) -> Result<ServerView> {
        let slot = self.slot(server.id);
        let ident = self
            .inner
            .catalog
            .get::<AgentIdentity>(&server.id.to_string())
            .await?;
        let (connected, binary, update) = {
            let live = lock(&slot.live);
            if let Some(u) = live.usage {
                server.usage = Some(u);
            }
            if live.last_seen.is_some() {
                server.last_heartbeat = live.last_seen;
            }
            (
                live.session.is_some(),
                live.binary_sha256.clone(),
                live.update.clone(),
            )
        };
        let observed = slot.observed.borrow().clone();
        Ok(ServerView {
            server,
            connected,
            agent_binary_sha256: binary,
            desired_generation: ident.as_ref().map_or(0, |i| i.generation),
            applied_generation: observed.generation,
            lease_epoch: ident.as_ref().map_or(0, |i| i.epoch),
            workloads: observed.workloads.len(),
            last_update: update,
        })
    }

    /// Offer `binary` (version `version`) to every agent, signed with the release key;
    /// connected ones verify the signature, fetch it, verify its SHA-256, swap themselves and
    /// restart. Returns the checksum.
    pub async fn offer_update(&self, version: &str, binary: Vec<u8>) -> Result<String> {
        use sha2::Digest;
        if version.is_empty() || version.len() > 64 {
            return Err(clank_core::InvalidInput::new(
                "version",
                "length",
                "must be 1 to 64 characters",
            )
            .into());
        }
        if binary.is_empty() {
            return Err(clank_core::InvalidInput::new("binary", "non_empty", "is empty").into());
        }
        let sha256 = hex::encode(sha2::Sha256::digest(&binary));
        let signature = self
            .inner
            .release_key
            .sign(version, &sha256, binary.len() as u64)?;
        let release = Release {
            version: version.to_owned(),
            sha256: sha256.clone(),
            binary: Arc::new(binary),
            signature,
        };
        *lock(&self.inner.release) = Some(release.clone());
        let slots: Vec<Arc<Slot>> = lock(&self.inner.slots).values().cloned().collect();
        for slot in slots {
            let session = slot.session();
            let running = lock(&slot.live).binary_sha256.clone();
            if let Some(s) = session
                && running.as_deref() != Some(sha256.as_str())
            {
                let _ = s.tx.send(Ok(offer_message(&release))).await;
            }
        }
        info!(version, sha256 = %sha256, "Offered an agent update.");
        Ok(sha256)
    }

    // ---- Desired state --------------------------------------------------------------------

    async fn load_desired(&self, server: ServerId) -> Result<Desired> {
        let ident = self
            .inner
            .catalog
            .require::<AgentIdentity>(&server.to_string())
            .await?;
        let Some(sealed) = &ident.desired else {
            return Ok(Desired {
                generation: ident.generation,
                ..Desired::default()
            });
        };
        let text = self.inner.keyring.open(sealed, &desired_aad(server))?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.expose())
            .map_err(|e| corrupt(server, e))?;
        let proto = v1::DesiredState::decode(bytes.as_slice()).map_err(|e| corrupt(server, e))?;
        Ok(Desired::from_proto(proto))
    }

    /// Seal `d` and write it to the server's identity record, in the transaction of whatever
    /// other servers' changes are queued with it (see [`commit`]).
    async fn persist_desired(&self, server: ServerId, d: &Desired) -> Result<()> {
        let bytes = d.to_proto(0).encode_to_vec();
        let text = base64::engine::general_purpose::STANDARD.encode(bytes);
        let sealed = self.inner.keyring.seal(&text, &desired_aad(server))?;
        let generation = d.generation;
        // What the record grows by: the sealed text, base64'd again in the JSON (~4/3 of
        // it), counted generously so a group stays well under `commit::MAX_BYTES`.
        let weight = 512 + 4 * text.len();
        self.modify_identity(server, weight, move |i| {
            i.generation = generation;
            i.desired = Some(sealed.clone());
            Ok(())
        })
        .await
        .map(drop)
    }

    /// The server's desired state in `slot` (its locked `desired`), read from the store the
    /// first time.
    async fn loaded<'a>(
        &self,
        slot: &'a mut Option<Desired>,
        server: ServerId,
    ) -> Result<&'a mut Desired> {
        if slot.is_none() {
            *slot = Some(self.load_desired(server).await?);
        }
        slot.as_mut()
            .ok_or_else(|| Error::Internal("desired state not loaded".into()))
    }

    /// Change server `server`'s desired state with `edit`, persist it, and send it to the
    /// agent if one is connected. Returns the generation holding the change.
    pub(crate) async fn edit_desired(
        &self,
        server: ServerId,
        edit: impl FnOnce(&mut Desired),
    ) -> Result<u64> {
        let slot = self.slot(server);
        let mut guard = slot.desired.lock().await;
        let current = self.loaded(&mut guard, server).await?;
        let mut next = current.clone();
        edit(&mut next);
        if next == *current {
            return Ok(current.generation);
        }
        next.generation = current.generation + 1;
        self.persist_desired(server, &next).await?;
        *current = next;
        if let Some(s) = slot.session() {
            let _ = s.tx.send(Ok(current.message(s.epoch))).await;
        }
        Ok(current.generation)
    }

    /// Wait until the agent reports generation `generation` applied.
    pub(crate) async fn wait_applied(
        &self,
        server: ServerId,
        generation: u64,
    ) -> Result<Observation> {
        let slot = self.slot(server);
        let mut rx = slot.observed.subscribe();
        let wait = rx.wait_for(|o| o.generation >= generation);
        match tokio::time::timeout(self.inner.config.apply_timeout, wait).await {
            Ok(Ok(o)) => Ok(o.clone()),
            Ok(Err(_)) => Err(unavailable(server, "the fleet is shutting down")),
            Err(_) => Err(Error::runtime(
                RuntimeFailure::Timeout,
                format!(
                    "server {server}: the agent did not report generation {generation} applied \
                     within {:?}",
                    self.inner.config.apply_timeout
                ),
            )),
        }
    }

    /// Send the whole desired state to a session that just started. An agent that applied a
    /// newer generation than this control plane knows (a restored backup) gets the current
    /// state under a generation above its own, so it applies it.
    pub(crate) async fn send_desired(
        &self,
        slot: &Slot,
        session: &Session,
        agent_generation: u64,
    ) -> Result<()> {
        let mut guard = slot.desired.lock().await;
        let current = self.loaded(&mut guard, slot.id).await?;
        if agent_generation > current.generation {
            current.generation = agent_generation + 1;
            self.persist_desired(slot.id, current).await?;
        }
        session
            .tx
            .send(Ok(current.message(session.epoch)))
            .await
            .map_err(|_| unavailable(slot.id, "the session closed"))
    }

    // ---- Calls ----------------------------------------------------------------------------

    /// Send a call to the server's agent; replies arrive on the returned channel (one, or
    /// many ending in `end` for log streams).
    pub(crate) async fn call(
        &self,
        server: ServerId,
        method: v1::call::Method,
    ) -> Result<(u64, mpsc::UnboundedReceiver<v1::reply::Result>)> {
        let slot = self.slot(server);
        let session = slot
            .session()
            .ok_or_else(|| unavailable(server, "the agent is not connected"))?;
        let id = session.calls.next.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = mpsc::unbounded_channel();
        // A cancel is answered by the end of the call it cancels, never by a reply of its own.
        if !matches!(method, v1::call::Method::Cancel(_)) {
            lock(&session.calls.pending).insert(id, tx);
        }
        let msg = v1::ControlMessage {
            body: Some(v1::control_message::Body::Call(v1::Call {
                call_id: id,
                method: Some(method),
            })),
        };
        if session.tx.send(Ok(msg)).await.is_err() {
            lock(&session.calls.pending).remove(&id);
            return Err(unavailable(server, "the agent's session closed"));
        }
        Ok((id, rx))
    }

    /// A call answered by one reply.
    pub(crate) async fn call_once(
        &self,
        server: ServerId,
        method: v1::call::Method,
        timeout: Duration,
    ) -> Result<v1::reply::Result> {
        let (id, mut rx) = self.call(server, method).await?;
        let reply = tokio::time::timeout(timeout, rx.recv()).await;
        let slot = self.slot(server);
        if let Some(s) = slot.session() {
            lock(&s.calls.pending).remove(&id);
        }
        match reply {
            Ok(Some(v1::reply::Result::Error(e))) => Err(e.into()),
            Ok(Some(r)) => Ok(r),
            Ok(None) => Err(unavailable(
                server,
                "the agent disconnected before answering",
            )),
            Err(_) => Err(Error::runtime(
                RuntimeFailure::Timeout,
                format!("server {server}: the agent did not answer within {timeout:?}"),
            )),
        }
    }

    // ---- Records --------------------------------------------------------------------------

    /// Edit the identity record in a transaction of its own: for edits that change a token
    /// or credential hash (unique values, whose clash must fail this edit alone).
    pub(crate) async fn update_identity(
        &self,
        server: ServerId,
        edit: impl FnMut(&mut AgentIdentity) -> Result<()>,
    ) -> Result<AgentIdentity> {
        self.inner.catalog.modify(&server.to_string(), edit).await
    }

    /// Edit the identity record in the transaction of the edits queued with it; `weight` is
    /// about how many bytes it adds. The edit is queued on the call (see
    /// [`commit::GroupCommit::modify`]); it must not change a unique value.
    pub(crate) fn modify_identity(
        &self,
        server: ServerId,
        weight: usize,
        edit: impl FnMut(&mut AgentIdentity) -> Result<()> + Send + 'static,
    ) -> impl std::future::Future<Output = Result<AgentIdentity>> + Send + 'static {
        self.inner
            .identities
            .modify(server.to_string(), weight, edit)
    }

    /// Edit the server record, in the transaction of the server edits queued with it. Queued
    /// on the call.
    pub(crate) fn update_server(
        &self,
        server: ServerId,
        mut edit: impl FnMut(&mut Server) + Send + 'static,
    ) -> impl std::future::Future<Output = Result<()>> + Send + 'static {
        let write = self
            .inner
            .servers
            .modify(server.to_string(), 512, move |s| {
                edit(s);
                Ok(())
            });
        async move { write.await.map(drop) }
    }

    pub(crate) fn persist_status(
        &self,
        server: ServerId,
        status: ServerStatus,
    ) -> impl std::future::Future<Output = Result<()>> + Send + 'static {
        self.update_server(server, move |s| {
            // Revoked is final; a session ending after a revoke does not undo it.
            if s.status != ServerStatus::Revoked {
                s.status = status;
            }
        })
    }

    /// The credential's identity, or why it is refused.
    pub(crate) async fn authenticate(
        &self,
        credential: &str,
    ) -> std::result::Result<AgentIdentity, tonic::Status> {
        if !credential.starts_with(CREDENTIAL_PREFIX) {
            return Err(tonic::Status::unauthenticated("not an agent credential"));
        }
        let hash = identity::token_hash(credential);
        match self
            .inner
            .catalog
            .lookup::<AgentIdentity>("credential", &hash)
            .await
        {
            // The record is read after its index entry: a revoke or re-enrollment in between
            // leaves a record that no longer holds this credential.
            Ok(Some(i)) if i.value.credential_hash.as_deref() == Some(hash.as_str()) => Ok(i.value),
            Ok(_) => Err(tonic::Status::unauthenticated(
                "unknown or revoked agent credential",
            )),
            Err(e) => Err(tonic::Status::unavailable(e.to_string())),
        }
    }
}

pub(crate) fn offer_message(r: &Release) -> v1::ControlMessage {
    v1::ControlMessage {
        body: Some(v1::control_message::Body::Update(v1::UpdateOffer {
            version: r.version.clone(),
            sha256: r.sha256.clone(),
            size: r.binary.len() as u64,
            signature: r.signature.clone(),
        })),
    }
}

fn desired_aad(server: ServerId) -> SecretAad {
    SecretAad::new("agent-desired-state", server.to_string())
}

fn corrupt(server: ServerId, e: impl std::fmt::Display) -> Error {
    Error::Corrupt {
        key: format!("agent_identity/{server}"),
        reason: format!("desired state: {e}"),
    }
}

impl Placement for Fleet {
    fn remote(&self, id: ServerId) -> Result<(Arc<dyn Runtime>, Arc<dyn Proxy>)> {
        if !lock(&self.inner.placeable).contains(&id) {
            return Err(Error::not_found("server", id));
        }
        Ok((
            Arc::new(AgentRuntime::new(self.clone(), id)),
            Arc::new(clank_core::proxy::CalledProxy(AgentProxy::new(
                self.clone(),
                id,
            ))),
        ))
    }

    fn connected(&self) -> Vec<ServerId> {
        lock(&self.inner.slots)
            .values()
            .filter(|s| s.session().is_some())
            .map(|s| s.id)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use clank_core::secret::KeyId;

    use super::commit::testing::TestStore;
    use super::*;

    async fn fleet_over(store: Arc<TestStore>, keyring: &Keyring) -> Fleet {
        Fleet::open(Catalog::new(store), keyring.clone(), FleetConfig::default())
            .await
            .unwrap()
    }

    fn keyring() -> Keyring {
        Keyring::new(KeyId::new("k1").unwrap(), Keyring::generate_key().unwrap())
    }

    /// `n` servers of `ws` registered (`s-0`, `s-1`, …): their ids.
    async fn servers(fleet: &Fleet, ws: WorkspaceId, n: usize) -> Vec<ServerId> {
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            ids.push(
                fleet
                    .create_server(ws, &format!("s-{i}"))
                    .await
                    .unwrap()
                    .0
                    .id,
            );
        }
        ids
    }

    /// A fleet-wide change, made concurrently through each server's runtime as the engine
    /// does, is written for every server (in shared transactions), with generations in order,
    /// and read back by a control plane opened afresh on the same store.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_desired_changes_are_persisted_in_shared_commits() {
        let store = Arc::new(TestStore::new());
        let ring = keyring();
        let fleet = fleet_over(store.clone(), &ring).await;
        let ws = WorkspaceId::new();
        let ids = servers(&fleet, ws, 300).await;
        let commits_before = store.sizes().len();
        let placement = fleet.placement();
        for round in 0..3 {
            let mut set = tokio::task::JoinSet::new();
            for id in &ids {
                let (runtime, _) = placement.remote(*id).unwrap();
                set.spawn(async move {
                    let labels = BTreeMap::from([("round".to_owned(), round.to_string())]);
                    runtime
                        .ensure_network(&format!("net-{round}"), &labels)
                        .await
                });
            }
            while let Some(done) = set.join_next().await {
                done.unwrap().unwrap();
            }
        }
        let commits = store.sizes().len() - commits_before;
        assert!(
            commits < 3 * ids.len(),
            "{commits} commits for {} changes",
            3 * ids.len()
        );

        let reopened = fleet_over(store.clone(), &ring).await;
        for id in &ids {
            assert_eq!(reopened.server(*id).await.unwrap().desired_generation, 3);
            let desired = reopened.load_desired(*id).await.unwrap();
            assert_eq!(desired.generation, 3);
            let names: Vec<&String> = desired.networks.keys().collect();
            assert_eq!(names, ["net-0", "net-1", "net-2"]);
        }
    }

    /// A lone change is written at once (no batching window: the paused clock would jump
    /// over any sleep), in a transaction of its own.
    #[tokio::test(start_paused = true)]
    async fn a_lone_desired_change_is_not_delayed() {
        let store = Arc::new(TestStore::new());
        let fleet = fleet_over(store.clone(), &keyring()).await;
        let (server, _) = fleet.create_server(WorkspaceId::new(), "s").await.unwrap();
        let before = store.sizes().len();
        let t0 = tokio::time::Instant::now();
        let generation = fleet
            .edit_desired(server.id, |d| {
                d.networks.insert("n".into(), HashMap::new());
            })
            .await
            .unwrap();
        assert_eq!(t0.elapsed(), Duration::ZERO);
        assert_eq!(generation, 1);
        assert_eq!(store.sizes()[before..], [1]);
    }

    /// When the shared transaction fails, each change in it fails (the in-memory state keeps
    /// the previous generation), and the next change of the same server is written.
    #[tokio::test]
    async fn a_failed_shared_commit_fails_each_change_and_the_next_ones_are_written() {
        let store = Arc::new(TestStore::new());
        let ring = keyring();
        let fleet = fleet_over(store.clone(), &ring).await;
        let ws = WorkspaceId::new();
        let ids = servers(&fleet, ws, 4).await;
        let base = *store.entered.borrow();
        store.close_gate();
        store.fail.lock().unwrap().insert(base + 2);
        let edit = |fleet: &Fleet, id: ServerId, name: &'static str| {
            let fleet = fleet.clone();
            tokio::spawn(async move {
                fleet
                    .edit_desired(id, |d| {
                        d.networks.insert(name.into(), HashMap::new());
                    })
                    .await
            })
        };
        let first = edit(&fleet, ids[0], "a");
        store.wait_entered(base + 1).await;
        let group: Vec<_> = ids[1..].iter().map(|id| edit(&fleet, *id, "a")).collect();
        // Each change queues its write (one thread: the spawned changes run while this
        // yields) before the held commit is let through.
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        store.open(100);
        assert_eq!(first.await.unwrap().unwrap(), 1);
        for g in group {
            let err = g.await.unwrap().unwrap_err();
            assert!(err.to_string().contains("injected"), "{err}");
        }
        assert_eq!(store.sizes()[base..], [1, 3]);
        for id in &ids[1..] {
            assert_eq!(edit(&fleet, *id, "b").await.unwrap().unwrap(), 1);
        }
        let reopened = fleet_over(store.clone(), &ring).await;
        for (i, id) in ids.iter().enumerate() {
            let d = reopened.load_desired(*id).await.unwrap();
            let expected = if i == 0 { ["a"] } else { ["b"] };
            assert_eq!(
                d.networks.keys().collect::<Vec<_>>(),
                expected,
                "server {i}"
            );
        }
    }
}
