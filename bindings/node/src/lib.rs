//! The private native half of the Node package: a [`clank_platform::Platform`] (its deploy
//! engine running on napi's tokio runtime) answering JSON requests
//! ([`clank_platform::Request`], `clank-api`'s) as Promises. `index.js` is the public API; it
//! turns the encoded errors made by [`to_js_err`] into `ClankError` subclasses with `code` and
//! `field`.

// napi-rs's `#[napi]` expands to `unsafe` FFI glue (Node-API calls). Our own code has no
// `unsafe` block; this crate root is the only place it is allowed.
#![allow(unsafe_code)]

use clank_core::Error;
use clank_platform::{
    ConnectOptions, EmbeddedOptions, HandleError, HandleSubscription, PlatformHandle,
    WorkloadLogLine, WorkloadSelector,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi_derive::napi;

/// Prefix of an encoded platform error's message; `index.js` decodes what follows (JSON
/// `{code, field, message}`). Async functions can only reject with napi's fixed status codes,
/// so the error kind travels in the message.
const ERROR_MARKER: &str = "clank-error:";

/// The one mapping of platform errors for Node: kind code, field and message, encoded.
fn to_js_err(e: Error) -> napi::Error {
    encoded(e.kind().code(), e.field(), &e.to_string())
}

/// An error of a call through the platform handle: code `closed` once the platform is closed
/// (`Closed` in `index.js`, as in Python), else the platform error's.
fn handle_err(e: HandleError) -> napi::Error {
    match e {
        HandleError::Closed => encoded("closed", None, HandleError::CLOSED_MESSAGE),
        HandleError::Platform(e) => to_js_err(e),
    }
}

fn encoded(code: &str, field: Option<&str>, message: &str) -> napi::Error {
    let payload = serde_json::json!({
        "code": code,
        "field": field,
        "message": message,
    });
    napi::Error::new(Status::GenericFailure, format!("{ERROR_MARKER}{payload}"))
}

/// How long (µs) a store read of an embedded platform may hold the calling thread (Node's main
/// thread) before its answer is handed to a Promise instead: such a read (address parse, a few
/// indexed lookups) takes tens of µs, and answering it in place spares the thread-safe
/// function's hop back to Node's loop, which costs about as much as the read.
/// Default 1 ms; [`set_read_budget`] changes it (0: every read is answered through a Promise, as
/// every other call; the tests and `benches/bindings.sh` compare both ways).
static READ_BUDGET_US: AtomicU64 = AtomicU64::new(1_000);

/// Set how long (µs) a store read may be waited for in place before a Promise answers it
/// instead (default 1000; 0: always a Promise). For tests and benchmarks.
#[napi]
pub fn set_read_budget(micros: u32) {
    READ_BUDGET_US.store(u64::from(micros), Ordering::Relaxed);
}

/// Answer a store read in place when it finishes within the read budget, else as a Promise.
/// In place, the read is polled on this thread, as a Rust caller's `block_on` would: no hop to
/// a runtime worker and back; past the budget, the same read, partly done, moves to napi's
/// runtime and resolves a Promise.
fn call_store_read<'env>(
    env: &'env Env,
    handle: PlatformHandle,
    request: String,
) -> napi::Result<Either<String, PromiseRaw<'env, String>>> {
    let mut read = Box::pin(async move { handle.execute_json(&request).await.map_err(handle_err) });
    let budget = Duration::from_micros(READ_BUDGET_US.load(Ordering::Relaxed));
    if !budget.is_zero() {
        // (tokio's timer ticks in ms: the budget is over after 1–2 ms.)
        if let Ok(answer) = napi::bindgen_prelude::block_on(async {
            napi::tokio::time::timeout(budget, &mut read).await
        }) {
            return answer.map(Either::A);
        }
    }
    env.spawn_future(read).map(Either::B)
}

/// An open platform whose deploy engine runs until `close()`; every call after it rejects
/// with code `closed`.
#[napi]
pub struct NativePlatform {
    handle: PlatformHandle,
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
    let handle = PlatformHandle::open(options).await.map_err(to_js_err)?;
    Ok(NativePlatform { handle })
}

/// Connect to a running daemon with an API token; `timeout_s` bounds each call, `retries`
/// the attempts of a call that failed on the way, `workspace` what short addresses mean
/// (default: the token's), `ca_cert` a PEM CA file to trust for an `https://` daemon beside
/// the system's roots.
#[napi]
pub async fn connect(
    url: String,
    token: String,
    timeout_s: f64,
    retries: u32,
    workspace: Option<String>,
    ca_cert: Option<String>,
) -> napi::Result<NativePlatform> {
    let mut options =
        ConnectOptions::from_secs(timeout_s, retries, workspace).map_err(to_js_err)?;
    options.ca_cert = ca_cert.map(Into::into);
    let handle = PlatformHandle::connect(&url, &token, options)
        .await
        .map_err(to_js_err)?;
    Ok(NativePlatform { handle })
}

#[napi]
impl NativePlatform {
    /// The runtime running workloads: `docker` or `process`.
    #[napi(getter)]
    pub fn runtime(&self) -> String {
        self.handle.runtime().to_owned()
    }

    /// Whether `close()` was called.
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// Answer a JSON request: the JSON answer itself when it is ready at once (a store read of
    /// an embedded platform, see [`call_store_read`]; its error thrown), else a Promise of it.
    #[napi(ts_return_type = "string | Promise<string>")]
    pub fn call<'env>(
        &self,
        env: &'env Env,
        request: String,
    ) -> napi::Result<Either<String, PromiseRaw<'env, String>>> {
        let handle = self.handle.clone();
        if handle.answers_in_place(&request) {
            return call_store_read(env, handle, request);
        }
        env.spawn_future(async move { handle.execute_json(&request).await.map_err(handle_err) })
            .map(Either::B)
    }

    /// Follow events from now on, of one service (address) or of all.
    #[napi]
    pub fn subscribe(&self, service: Option<String>) -> napi::Result<EventSubscription> {
        let stream = self
            .handle
            .subscribe(service.as_deref())
            .map_err(handle_err)?;
        Ok(EventSubscription { stream })
    }

    /// Follow a service's output: the last `tail` lines (default 100) of each workload
    /// `process`/`replica` pick, then new lines as they come. A refusal is the first
    /// `next()`'s rejection.
    #[napi]
    pub fn follow_logs(
        &self,
        service: String,
        tail: Option<u32>,
        process: Option<String>,
        replica: Option<u32>,
    ) -> napi::Result<LogSubscription> {
        let stream = self
            .handle
            .follow_logs(
                &service,
                WorkloadSelector { process, replica },
                tail.map(|t| t as usize),
            )
            .map_err(handle_err)?;
        Ok(LogSubscription { stream })
    }

    /// Stop the deploy engine and release the data directory before resolving (idempotent);
    /// running workloads keep running, later calls reject with code `closed`.
    #[napi]
    pub async fn close(&self) -> napi::Result<()> {
        self.handle.close().await.map_err(to_js_err)
    }
}

/// A live event subscription; each event is a JSON object.
#[napi]
pub struct EventSubscription {
    stream: HandleSubscription,
}

impl std::fmt::Debug for EventSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSubscription").finish_non_exhaustive()
    }
}

#[napi]
impl EventSubscription {
    /// The next event (JSON), or `null` once closed (also while waiting); rejects with code
    /// `closed` once the platform is.
    #[napi]
    pub async fn next(&self) -> napi::Result<Option<String>> {
        next_json(&self.stream).await
    }

    /// Stop following: pending and later `next()` calls resolve to `null`.
    #[napi]
    pub fn close(&self) {
        self.stream.close();
    }
}

/// The next item of `stream` as JSON, `None` once closed or ended.
async fn next_json<T: serde::Serialize + Send + 'static>(
    stream: &HandleSubscription<T>,
) -> napi::Result<Option<String>> {
    match stream.next().await.map_err(handle_err)? {
        Some(e) => serde_json::to_string(&e)
            .map(Some)
            .map_err(|e| napi::Error::from_reason(e.to_string())),
        None => Ok(None),
    }
}

/// A followed service's output; each line is a JSON object (`process`, `replica`, `stream`,
/// `line`, `at`), as `logs` answers them.
#[napi]
pub struct LogSubscription {
    stream: HandleSubscription<WorkloadLogLine>,
}

impl std::fmt::Debug for LogSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogSubscription").finish_non_exhaustive()
    }
}

#[napi]
impl LogSubscription {
    /// The next line (JSON), or `null` once closed (also while waiting) or ended; rejects with
    /// code `closed` once the platform is.
    #[napi]
    pub async fn next(&self) -> napi::Result<Option<String>> {
        next_json(&self.stream).await
    }

    /// Stop following (the stream, and a daemon's HTTP request, end): pending and later
    /// `next()` calls resolve to `null`.
    #[napi]
    pub fn close(&self) {
        self.stream.close();
    }
}
