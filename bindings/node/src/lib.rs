//! The private native half of the Node package: a [`clank_platform::Platform`] (its deploy
//! engine running on napi's tokio runtime) answering JSON requests
//! ([`clank_platform::Request`], `clank-api`'s) as Promises. `index.js` is the public API; it
//! turns the encoded errors made by [`to_js_err`] into `ClankError` subclasses with `code` and
//! `field`.

// napi-rs's `#[napi]` expands to `unsafe` FFI glue (Node-API calls). Our own code has no
// `unsafe` block; this crate root is the only place it is allowed.
#![allow(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use clank_core::Error;
use clank_platform::{EmbeddedOptions, EngineTask, Platform, Subscription};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use tokio::sync::watch;

/// Prefix of an encoded platform error's message; `index.js` decodes what follows (JSON
/// `{code, field, message}`). Async functions can only reject with napi's fixed status codes,
/// so the error kind travels in the message.
const ERROR_MARKER: &str = "clank-error:";

/// The one mapping of platform errors for Node: kind code, field and message, encoded.
fn to_js_err(e: Error) -> napi::Error {
    let payload = serde_json::json!({
        "code": e.kind().code(),
        "field": e.field(),
        "message": e.to_string(),
    });
    napi::Error::new(Status::GenericFailure, format!("{ERROR_MARKER}{payload}"))
}

/// How long `close` waits for the engine loop to return.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// An open platform whose deploy engine runs until `close()`.
#[napi]
pub struct NativePlatform {
    platform: Platform,
    engine: EngineTask,
}

impl std::fmt::Debug for NativePlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativePlatform").finish_non_exhaustive()
    }
}

/// Open a platform on the embedded defaults (`runtime`: `auto`, `docker` or `process`).
#[napi]
pub async fn open(data_dir: String, runtime: String) -> napi::Result<NativePlatform> {
    let mut options = EmbeddedOptions::new(data_dir);
    options.runtime = runtime.parse().map_err(to_js_err)?;
    let platform = Platform::open(options).await.map_err(to_js_err)?;
    // Short addresses (`project/service`) name the default workspace: make sure it exists.
    platform
        .ensure_default_workspace()
        .await
        .map_err(to_js_err)?;
    let engine = platform.spawn_engine();
    Ok(NativePlatform { platform, engine })
}

#[napi]
impl NativePlatform {
    /// The runtime running workloads: `docker` or `process`.
    #[napi(getter)]
    pub fn runtime(&self) -> String {
        self.platform.engine().runtime().name()
    }

    /// Answer a JSON request with the JSON answer.
    #[napi]
    pub async fn call(&self, request: String) -> napi::Result<String> {
        self.platform
            .execute_json(&request)
            .await
            .map_err(to_js_err)
    }

    /// Follow events from now on, of one service (address) or of all.
    #[napi]
    pub fn subscribe(&self, service: Option<String>) -> EventSubscription {
        EventSubscription {
            stream: Arc::new(tokio::sync::Mutex::new(
                self.platform.subscribe(service.as_deref()),
            )),
            closed: Arc::new(watch::channel(false).0),
        }
    }

    /// Stop the deploy engine (idempotent); running workloads keep running.
    #[napi]
    pub async fn close(&self) -> napi::Result<()> {
        self.engine.stop(STOP_TIMEOUT).await.map_err(to_js_err)
    }
}

/// A live event subscription; each event is a JSON object.
#[napi]
pub struct EventSubscription {
    stream: Arc<tokio::sync::Mutex<Subscription>>,
    closed: Arc<watch::Sender<bool>>,
}

impl std::fmt::Debug for EventSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSubscription").finish_non_exhaustive()
    }
}

#[napi]
impl EventSubscription {
    /// The next event (JSON), or `null` once closed (also while waiting).
    #[napi]
    pub async fn next(&self) -> napi::Result<Option<String>> {
        let mut closed = self.closed.subscribe();
        let stream = self.stream.clone();
        let next = async move { stream.lock().await.next().await };
        tokio::select! {
            _ = closed.wait_for(|c| *c) => Ok(None),
            event = next => match event.map_err(to_js_err)? {
                Some(e) => serde_json::to_string(&e)
                    .map(Some)
                    .map_err(|e| napi::Error::from_reason(e.to_string())),
                None => Ok(None),
            },
        }
    }

    /// Stop following: pending and later `next()` calls resolve to `null`.
    #[napi]
    pub fn close(&self) {
        self.closed.send_replace(true);
    }
}
