//! Images reaching remote servers. Before a deployment's workloads start on a server, its
//! agent is asked (an `EnsureImage` call) to make the image present: already there with the
//! id the control plane holds, else pulled from its registry (with the service's
//! credentials, sent over the session), else received from the control plane's own engine
//! (a git-built or locally loaded image exists nowhere else). A transfer is offered with the
//! call and fetched by the agent on its own `FetchImage` stream: the archive the engine
//! exports, in [`IMAGE_CHUNK_BYTES`] chunks, a few in memory at a time (HTTP/2 flow control
//! holds the exporter back), cut at the deadline. The agent loads the archive and checks the
//! image id against the one sent; an archive cut short loads nothing.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use clank_core::error::{Error, Result, RuntimeFailure};
use clank_core::id::ServerId;
use clank_core::image::ImageRef;
use clank_core::model::Server;
use clank_core::runtime::{PullProgress, RegistryAuth};
use clank_proto::v1::{self, call::Method, reply::Result as R};
use clank_proto::{FEATURE_IMAGE_TRANSFER, IMAGE_CHUNK_BYTES};
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::Status;
use tracing::{info, warn};

use crate::{Fleet, lock, unavailable};

/// How often a transfer's progress (bytes sent) is written to the deploy log.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Chunks exported ahead of what the transport has taken.
const CHUNKS_AHEAD: usize = 2;

pub(crate) type ImageStream = Pin<Box<dyn Stream<Item = Result<v1::ImageChunk, Status>> + Send>>;

/// Transfers offered to agents, by id.
#[derive(Debug, Default)]
pub(crate) struct Transfers {
    next: AtomicU64,
    open: StdMutex<HashMap<u64, Transfer>>,
}

#[derive(Debug)]
struct Transfer {
    server: ServerId,
    image: ImageRef,
    deadline: Instant,
    sent: Arc<AtomicU64>,
    /// A transfer is fetched once.
    fetched: bool,
}

/// An offered transfer, withdrawn when dropped (the call ended, however it ended).
struct Offer<'a> {
    transfers: &'a Transfers,
    id: u64,
    sent: Arc<AtomicU64>,
}

impl Transfers {
    fn offer(&self, server: ServerId, image: &ImageRef, deadline: Instant) -> Offer<'_> {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let sent = Arc::new(AtomicU64::new(0));
        lock(&self.open).insert(
            id,
            Transfer {
                server,
                image: image.clone(),
                deadline,
                sent: sent.clone(),
                fetched: false,
            },
        );
        Offer {
            transfers: self,
            id,
            sent,
        }
    }
}

impl Drop for Offer<'_> {
    fn drop(&mut self) {
        lock(&self.transfers.open).remove(&self.id);
    }
}

/// The `FetchImage` stream of transfer `id` for `server`'s agent.
pub(crate) async fn serve(
    fleet: &Fleet,
    server: ServerId,
    id: u64,
) -> std::result::Result<ImageStream, Status> {
    let (image, deadline, sent) = {
        let mut open = lock(&fleet.inner.transfers.open);
        match open.get_mut(&id) {
            Some(t) if t.server == server && !t.fetched => {
                t.fetched = true;
                (t.image.clone(), t.deadline, t.sent.clone())
            }
            _ => {
                return Err(Status::not_found(format!(
                    "no image transfer {id} is offered to this server"
                )));
            }
        }
    };
    let store = lock(&fleet.inner.images)
        .clone()
        .ok_or_else(|| Status::failed_precondition("the control plane has no image store"))?;
    let archive = store
        .export(&image)
        .await
        .map_err(|e| Status::unavailable(format!("exporting image `{image}`: {e}")))?;
    let (tx, rx) = mpsc::channel(CHUNKS_AHEAD);
    tokio::spawn(pump(archive, tx, deadline, sent, image));
    Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
}

/// Re-chunk the exported archive into the transfer's stream until it ends, the agent goes
/// away or the deadline passes. The last chunk says `end`; a cut stream never does.
async fn pump(
    mut archive: clank_core::runtime::ImageArchive,
    tx: mpsc::Sender<std::result::Result<v1::ImageChunk, Status>>,
    deadline: Instant,
    sent: Arc<AtomicU64>,
    image: ImageRef,
) {
    let send = |data: Vec<u8>, end: bool| {
        let (tx, sent) = (&tx, &sent);
        async move {
            let n = data.len() as u64;
            tx.send(Ok(v1::ImageChunk { data, end })).await.ok()?;
            sent.fetch_add(n, Ordering::Relaxed);
            Some(())
        }
    };
    let copy = async {
        let mut chunk = Vec::with_capacity(IMAGE_CHUNK_BYTES);
        while let Some(piece) = archive.next().await {
            let piece = piece?;
            let mut rest = piece.as_slice();
            while !rest.is_empty() {
                let take = (IMAGE_CHUNK_BYTES - chunk.len()).min(rest.len());
                chunk.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
                if chunk.len() == IMAGE_CHUNK_BYTES {
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(IMAGE_CHUNK_BYTES));
                    if send(full, false).await.is_none() {
                        return Ok(());
                    }
                }
            }
        }
        send(chunk, true).await;
        Ok::<(), Error>(())
    };
    let failure = match tokio::time::timeout_at(deadline, copy).await {
        Ok(Ok(())) => return,
        Ok(Err(e)) => Status::unavailable(format!(
            "exporting image `{image}` on the control plane failed: {e}"
        )),
        Err(_) => Status::deadline_exceeded(format!(
            "the transfer of image `{image}` ran out of time after {} sent",
            mib(sent.load(Ordering::Relaxed))
        )),
    };
    // Best effort: a stream ending without `end` already tells the agent it was cut.
    let _ = tx.try_send(Err(failure));
}

/// `12.3 MiB`.
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// The server's name for messages (its id when the record cannot be read).
async fn server_name(fleet: &Fleet, server: ServerId) -> String {
    match fleet.inner.catalog.get::<Server>(&server.to_string()).await {
        Ok(Some(s)) => format!("`{}`", s.name),
        _ => server.to_string(),
    }
}

/// Make `image` present on `server`'s engine within `within` (see the module docs). Returns
/// its registry digest there, else its id.
pub(crate) async fn ensure(
    fleet: &Fleet,
    server: ServerId,
    image: &ImageRef,
    auth: Option<&RegistryAuth>,
    within: Duration,
    progress: PullProgress<'_>,
) -> Result<Option<String>> {
    let started = Instant::now();
    let slot = fleet.slot(server);
    let (connected, features, version) = {
        let live = lock(&slot.live);
        (
            live.session.is_some(),
            live.features.clone(),
            live.agent_version.clone(),
        )
    };
    if !connected {
        return Err(unavailable(server, "the agent is not connected"));
    }
    let store = lock(&fleet.inner.images).clone();
    let local = match &store {
        Some(store) => store.find(image).await?,
        None => None,
    };
    let name = server_name(fleet, server).await;
    if !features.iter().any(|f| f == FEATURE_IMAGE_TRANSFER) {
        if local.is_some() && image.registry().is_none() {
            return Err(Error::runtime(
                RuntimeFailure::Unsupported,
                format!(
                    "server {name}: its agent (version {}) is too old to receive images, and \
                     image `{image}` is only on the control plane; update the agent (`clank \
                     server release --version <version> <clank-agent binary>`) or push the image \
                     to a registry",
                    version.as_deref().unwrap_or("unknown")
                ),
            ));
        }
        // Older agents pull in their own start, as they always did.
        return Ok(None);
    }
    // The agent answers (its own reason) before the control plane gives up on it.
    let agent_within = within.saturating_sub(Duration::from_secs(2).min(within / 5));
    let offer = local.as_ref().map(|_| {
        fleet
            .inner
            .transfers
            .offer(server, image, started + agent_within)
    });
    let call = v1::EnsureImage {
        image: image.to_string(),
        image_id: local.as_ref().map(|l| l.id.clone()).unwrap_or_default(),
        credentials: auth.map(v1::RegistryCredentials::from),
        // A registry image is pulled there (no bytes through the control plane); an image
        // the control plane lacks can only come from its registry.
        pull: image.registry().is_some() || local.is_none(),
        transfer: offer.as_ref().map_or(0, |o| o.id),
        size: local.as_ref().map_or(0, |l| l.size),
        within_ms: u32::try_from(agent_within.as_millis()).unwrap_or(u32::MAX),
    };
    let size = call.size;
    let (call_id, mut rx) = fleet.call(server, Method::Image(call)).await?;
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    let mut reported = 0;
    let outcome = loop {
        tokio::select! {
            reply = rx.recv() => match reply {
                Some(R::Progress(line)) => progress(format!("server {name}: {line}")),
                Some(R::Image(ready)) => break Ok(ready),
                Some(R::Error(e)) => break Err(Error::from(e)),
                Some(other) => break Err(Error::runtime(
                    RuntimeFailure::Other,
                    format!("the agent answered with an unexpected reply: {other:?}"),
                )),
                None => break Err(unavailable(
                    server,
                    &format!("the agent disconnected before image `{image}` was on the server"),
                )),
            },
            _ = tick.tick() => {
                let sent = offer.as_ref().map_or(0, |o| o.sent.load(Ordering::Relaxed));
                if sent > reported {
                    reported = sent;
                    progress(format!(
                        "sending image `{image}` to server {name}: {} of ~{}",
                        mib(sent),
                        mib(size)
                    ));
                }
            }
            () = tokio::time::sleep_until(started + within) => {
                break Err(Error::runtime(
                    RuntimeFailure::Timeout,
                    format!(
                        "image `{image}` was not on server {name} within {within:?} (the agent \
                         did not answer)"
                    ),
                ));
            }
        }
    };
    if let Some(s) = slot.session() {
        lock(&s.calls.pending).remove(&call_id);
    }
    let ready = match outcome {
        Ok(ready) => ready,
        Err(e) => {
            // Whatever the agent still does for this call stops (its load is abandoned).
            let _ = fleet.call(server, Method::Cancel(call_id)).await;
            warn!(server = %server, image = %image, error = %e, "Image did not reach the server.");
            return Err(e);
        }
    };
    let line = match v1::image_ready::How::try_from(ready.how) {
        Ok(v1::image_ready::How::Received) => {
            if local.as_ref().is_some_and(|l| l.id != ready.id) {
                return Err(Error::runtime(
                    RuntimeFailure::Other,
                    format!(
                        "server {name} loaded image `{image}` as {}, not as the control plane's \
                         {}",
                        ready.id,
                        local.as_ref().map_or("", |l| l.id.as_str())
                    ),
                ));
            }
            format!(
                "sent image `{image}` to server {name}: {} in {:.1} s, loaded there as {}",
                mib(ready.received_bytes),
                started.elapsed().as_secs_f64(),
                ready.id
            )
        }
        Ok(v1::image_ready::How::Pulled) => format!(
            "server {name} pulled image `{image}` from its registry ({})",
            ready.id
        ),
        _ => format!("image `{image}` is already on server {name} ({})", ready.id),
    };
    info!(server = %server, image = %image, id = %ready.id, how = ready.how, "Image on the server.");
    progress(line);
    Ok(Some(if ready.repo_digest.is_empty() {
        ready.id
    } else {
        ready.repo_digest
    }))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use clank_core::id::WorkspaceId;
    use clank_core::runtime::{ImageArchive, ImageStore, LocalImage};
    use clank_core::secret::{KeyId, Keyring};
    use clank_core::store::catalog::Catalog;
    use clank_core::store::memory::MemoryStore;

    use super::*;
    use crate::{FleetConfig, Session};

    /// The control plane's engine holding one image, whatever its name.
    #[derive(Debug)]
    struct OneImage;

    #[async_trait::async_trait]
    impl ImageStore for OneImage {
        async fn find(&self, _image: &ImageRef) -> Result<Option<LocalImage>> {
            Ok(Some(LocalImage {
                id: format!("sha256:{}", "a".repeat(64)),
                size: 1 << 20,
                repo_digest: None,
            }))
        }
        async fn export(&self, _image: &ImageRef) -> Result<ImageArchive> {
            Err(Error::Internal("not exported in this test".into()))
        }
        async fn import(&self, _archive: ImageArchive) -> Result<()> {
            Err(Error::Internal("not imported in this test".into()))
        }
        async fn remove(&self, _id: &str) -> Result<()> {
            Ok(())
        }
        async fn tag(&self, _id: &str, _image: &ImageRef) -> Result<bool> {
            Ok(false)
        }
    }

    #[tokio::test]
    async fn an_agent_too_old_to_receive_images_is_named_with_the_way_to_update_it() {
        let keyring = Keyring::new(KeyId::new("k1").unwrap(), Keyring::generate_key().unwrap());
        let catalog = Catalog::new(Arc::new(MemoryStore::new()));
        let fleet = Fleet::open(catalog, keyring, FleetConfig::default())
            .await
            .unwrap();
        fleet.export_images_from(Arc::new(OneImage));
        let (server, _join) = fleet
            .create_server(WorkspaceId::new(), "old-box")
            .await
            .unwrap();
        // Connected, with the Hello of an agent from before `features`.
        let (tx, _rx) = mpsc::channel(4);
        {
            let slot = fleet.slot(server.id);
            let mut live = lock(&slot.live);
            live.session = Some(Session {
                epoch: 1,
                tx,
                calls: Arc::default(),
            });
            live.agent_version = Some("0.0.9".into());
        }
        let lines = Mutex::new(Vec::new());
        let progress = |line: String| lines.lock().unwrap().push(line);
        let built: ImageRef = "clank/0123456789ab-shop-api:v3".parse().unwrap();
        let err = ensure(
            &fleet,
            server.id,
            &built,
            None,
            Duration::from_secs(5),
            &progress,
        )
        .await
        .unwrap_err();
        assert_eq!(err.runtime_failure(), Some(RuntimeFailure::Unsupported));
        let message = err.to_string();
        for part in [
            "server `old-box`",
            "version 0.0.9",
            "too old to receive images",
            "clank server release",
        ] {
            assert!(message.contains(part), "{part:?} missing from: {message}");
        }
        // An image its registry serves still deploys there: the old agent pulls it itself.
        let hosted: ImageRef = "ghcr.io/acme/api:1.2".parse().unwrap();
        let pinned = ensure(
            &fleet,
            server.id,
            &hosted,
            None,
            Duration::from_secs(5),
            &progress,
        )
        .await
        .unwrap();
        assert_eq!(pinned, None);
        assert!(lines.lock().unwrap().is_empty(), "nothing was sent");
    }
}
