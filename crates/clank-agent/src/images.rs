//! `EnsureImage` calls: make an image present on this server's engine before the control
//! plane starts workloads from it. Already here (with the id the control plane holds, when
//! it holds one): nothing moves. Else pulled from its registry with the credentials the call
//! carries (never logged). Else received from the control plane: its `FetchImage` stream is
//! loaded as it arrives (never whole in memory), within the call's time; a stream cut short
//! (an error, the deadline, no closing `end` chunk) aborts the load, which keeps nothing; the
//! image loaded must have the id that was sent.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clank_core::error::{Error, RuntimeFailure};
use clank_core::image::ImageRef;
use clank_core::runtime::{ImageArchive, ImageStore, LocalImage, RegistryAuth};
use clank_proto::v1::{self, image_ready::How, reply::Result as R};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::Shared;

/// Answer an `EnsureImage` call: progress lines as `progress` replies, then the image.
pub(crate) async fn ensure(
    shared: &Arc<Shared>,
    call_id: u64,
    req: v1::EnsureImage,
) -> Result<R, Error> {
    let deadline = Instant::now() + Duration::from_millis(req.within_ms.into());
    let image: ImageRef = req.image.parse()?;
    let store = shared.runtime.image_store().ok_or_else(|| {
        Error::runtime(
            RuntimeFailure::Unsupported,
            "this server's runtime does not run images",
        )
    })?;
    let before = store.find(&image).await?;
    if let Some(found) = &before
        && (req.image_id.is_empty() || found.id == req.image_id)
    {
        return Ok(ready(found.clone(), How::Present, 0));
    }
    // The same image under another name (a rebuild the build cache answered): name it.
    if !req.image_id.is_empty()
        && store.tag(&req.image_id, &image).await?
        && let Some(found) = store.find(&image).await?
        && found.id == req.image_id
    {
        return Ok(ready(found, How::Present, 0));
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let forward = {
        let shared = shared.clone();
        tokio::spawn(async move {
            while let Some(line) = rx.recv().await {
                crate::calls::reply(&shared, call_id, R::Progress(line)).await;
            }
        })
    };
    let result = obtain(shared, &*store, &image, req, before, deadline, tx).await;
    // Every progress line goes up before the answer.
    let _ = forward.await;
    result
}

async fn obtain(
    shared: &Shared,
    store: &dyn ImageStore,
    image: &ImageRef,
    req: v1::EnsureImage,
    before: Option<LocalImage>,
    deadline: Instant,
    progress: mpsc::UnboundedSender<String>,
) -> Result<R, Error> {
    if req.pull {
        let auth = req.credentials.map(RegistryAuth::from);
        let left = deadline.saturating_duration_since(Instant::now());
        let report = |line: String| {
            let _ = progress.send(line);
        };
        match shared
            .runtime
            .pull(image, auth.as_ref(), left, &report)
            .await
        {
            Ok(_) => match store.find(image).await? {
                // The registry's copy, unless the control plane sends another one.
                Some(found)
                    if req.transfer == 0 || req.image_id.is_empty() || found.id == req.image_id =>
                {
                    return Ok(ready(found, How::Pulled, 0));
                }
                _ => {}
            },
            Err(e) if req.transfer == 0 => return Err(e),
            Err(e) => report(format!(
                "could not pull `{image}` here ({e}); receiving the control plane's copy"
            )),
        }
    }
    if req.transfer == 0 {
        return Err(Error::runtime(
            RuntimeFailure::ImageMissing,
            format!("image `{image}` is not on this server and the control plane has no copy"),
        ));
    }
    let _ = progress.send(format!("receiving image `{image}` from the control plane"));
    let received = Arc::new(AtomicU64::new(0));
    let load = receive(shared, store, req.transfer, received.clone());
    let loaded = tokio::time::timeout_at(deadline, load).await;
    let n = received.load(Ordering::Relaxed);
    match loaded {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            warn!(image = %image, received = n, error = %e, "An image transfer failed; nothing was loaded.");
            return Err(Error::runtime(
                e.runtime_failure().unwrap_or(RuntimeFailure::Other),
                format!(
                    "image `{image}` was not loaded ({} received): {e}",
                    bytes(n)
                ),
            ));
        }
        Err(_) => {
            warn!(image = %image, received = n, "An image transfer ran out of time; nothing was loaded.");
            return Err(Error::runtime(
                RuntimeFailure::Timeout,
                format!(
                    "image `{image}` did not arrive within the deployment's time ({} received); \
                     nothing was loaded",
                    bytes(n)
                ),
            ));
        }
    }
    match store.find(image).await? {
        Some(found) if req.image_id.is_empty() || found.id == req.image_id => {
            info!(image = %image, id = %found.id, received = n, "Loaded an image sent by the control plane.");
            Ok(ready(found, How::Received, n))
        }
        Some(found) => {
            // Not what was sent: take out what this load put there (never an older image
            // the load left under the name).
            if before.as_ref().is_none_or(|b| b.id != found.id)
                && let Err(e) = store.remove(&found.id).await
            {
                warn!(image = %image, id = %found.id, error = %e, "Could not remove a mismatched image.");
            }
            Err(Error::runtime(
                RuntimeFailure::Other,
                format!(
                    "the archive received loaded image `{image}` as {}, not as {} that was sent; \
                     it was removed",
                    found.id, req.image_id
                ),
            ))
        }
        None => Err(Error::runtime(
            RuntimeFailure::ImageMissing,
            format!(
                "the archive received ({}) did not hold image `{image}`",
                bytes(n)
            ),
        )),
    }
}

/// Fetch transfer `transfer` and load it as it arrives, counting bytes in `received`.
async fn receive(
    shared: &Shared,
    store: &dyn ImageStore,
    transfer: u64,
    received: Arc<AtomicU64>,
) -> Result<(), Error> {
    let failed = |e: String| Error::runtime(RuntimeFailure::Other, e);
    let channel = shared.channel().await.map_err(failed)?;
    let request = crate::authorize(
        tonic::Request::new(v1::FetchImageRequest { transfer }),
        &shared.server_id,
        &shared.credential,
    )
    .map_err(failed)?;
    let chunks = crate::client(channel)
        .fetch_image(request)
        .await
        .map_err(|s| {
            failed(format!(
                "the control plane refused the transfer: {}",
                s.message()
            ))
        })?
        .into_inner();
    store.import(archive(chunks, received)).await
}

/// The archive in `chunks`, counted in `received`. It ends after the chunk marked `end`;
/// anything else (an error, a stream that just stops) ends it in an error, which aborts the
/// load instead of handing the engine a truncated archive as if it were whole.
fn archive<S>(chunks: S, received: Arc<AtomicU64>) -> ImageArchive
where
    S: futures_util::Stream<Item = Result<v1::ImageChunk, tonic::Status>> + Send + Unpin + 'static,
{
    let cut = |why: String| Error::runtime(RuntimeFailure::Other, why);
    Box::pin(futures_util::stream::unfold(
        (chunks, false),
        move |(mut chunks, done)| {
            let received = received.clone();
            async move {
                if done {
                    return None;
                }
                let item = match chunks.next().await {
                    Some(Ok(chunk)) => {
                        received.fetch_add(chunk.data.len() as u64, Ordering::Relaxed);
                        let end = chunk.end;
                        return Some((Ok(chunk.data), (chunks, end)));
                    }
                    Some(Err(s)) => cut(format!(
                        "the control plane's stream failed: {}",
                        s.message()
                    )),
                    None => cut(
                        "the control plane's stream ended before the archive was complete".into(),
                    ),
                };
                Some((Err(item), (chunks, true)))
            }
        },
    ))
}

fn ready(found: LocalImage, how: How, received: u64) -> R {
    R::Image(v1::ImageReady {
        id: found.id,
        repo_digest: found.repo_digest.unwrap_or_default(),
        how: how.into(),
        received_bytes: received,
    })
}

/// `12.3 MiB`.
fn bytes(n: u64) -> String {
    format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(data: &[u8], end: bool) -> Result<v1::ImageChunk, tonic::Status> {
        Ok(v1::ImageChunk {
            data: data.to_vec(),
            end,
        })
    }

    async fn drain(
        items: Vec<Result<v1::ImageChunk, tonic::Status>>,
    ) -> (Vec<u8>, Option<String>, u64) {
        let received = Arc::new(AtomicU64::new(0));
        let mut stream = archive(futures_util::stream::iter(items), received.clone());
        let (mut bytes, mut error) = (Vec::new(), None);
        while let Some(item) = stream.next().await {
            match item {
                Ok(data) => bytes.extend(data),
                Err(e) => error = Some(e.to_string()),
            }
        }
        (bytes, error, received.load(Ordering::Relaxed))
    }

    #[tokio::test]
    async fn an_archive_ends_cleanly_only_after_the_chunk_marked_end() {
        let (bytes, error, n) = drain(vec![chunk(b"ab", false), chunk(b"c", true)]).await;
        assert_eq!((bytes.as_slice(), error, n), (&b"abc"[..], None, 3));
    }

    #[tokio::test]
    async fn a_stream_that_stops_without_end_or_fails_ends_the_archive_in_an_error() {
        let (_, error, n) = drain(vec![chunk(b"ab", false)]).await;
        assert!(
            error.is_some_and(|e| e.contains("ended before the archive was complete")),
            "a cut stream is never a whole archive"
        );
        assert_eq!(n, 2);
        let failed = vec![
            chunk(b"ab", false),
            Err(tonic::Status::deadline_exceeded("ran out of time")),
        ];
        let (_, error, _) = drain(failed).await;
        assert!(error.is_some_and(|e| e.contains("ran out of time")));
    }
}
