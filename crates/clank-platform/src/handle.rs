//! A platform as the Python and Node bindings hold it ([`PlatformHandle`]): embedded (open
//! with its engine running) or a running daemon reached over its REST API
//! ([`PlatformHandle::connect`], a `clank_client::Client`), answering the same requests either
//! way, until [`PlatformHandle::close`]; from then on every call fails with
//! [`HandleError::Closed`], and an embedded platform's data directory (the store's database and
//! its lock) is released when `close` returns, not when the host language's garbage collector
//! gets to it.
//!
//! What a binding iterates, [`HandleSubscription`]s, are events ([`PlatformHandle::subscribe`])
//! or a service's output as it comes ([`PlatformHandle::follow_logs`]); closing the handle ends
//! them all.

use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use clank_core::{Error, Result};
use clank_engine::Event;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, watch};

use crate::{
    EmbeddedOptions, EngineTask, Platform, Subscription, WorkloadLogLine, WorkloadSelector,
};

/// Log lines of an embedded platform read ahead of a follower that is not reading; beyond it
/// the reading waits (backpressure: the workloads' logs keep what was not read yet), nothing
/// is dropped. (A daemon's are buffered alike: `clank_client::LogFollow`.)
const LOG_BUFFER: usize = 256;
/// Lines of history a log follow starts with, unless told (the CLI's `--tail` default), and
/// the most it may ask for (the daemon's limit).
const DEFAULT_LOG_TAIL: usize = 100;
const MAX_LOG_TAIL: usize = 10_000;

/// How long `close` waits for the engine loop to return.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long calls already running when `close` is called may take to finish before they are
/// cancelled (and fail with [`HandleError::Closed`]).
const IN_FLIGHT_GRACE: Duration = Duration::from_secs(2);
/// How long `close` waits for what still holds the store (engine tasks being aborted, blocking
/// store calls of cancelled requests) to let go of it.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a call through a [`PlatformHandle`] failed.
#[derive(Debug)]
pub enum HandleError {
    /// The handle was closed (before or during the call).
    Closed,
    /// The platform's own error.
    Platform(Error),
}

impl HandleError {
    /// The message of [`HandleError::Closed`], the same in every binding.
    pub const CLOSED_MESSAGE: &'static str = "platform is closed";
}

impl std::fmt::Display for HandleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandleError::Closed => f.write_str(Self::CLOSED_MESSAGE),
            HandleError::Platform(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for HandleError {}

impl From<Error> for HandleError {
    fn from(e: Error) -> Self {
        HandleError::Platform(e)
    }
}

/// An open platform, embedded with its engine or remote; cheap to clone (clones share one
/// state).
#[derive(Clone)]
pub struct PlatformHandle {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None` once closed.
    live: RwLock<Option<Arc<Live>>>,
    /// Set by `close` once the grace period of running calls is over: cancels them.
    cancel: watch::Sender<bool>,
    /// What `auto` chose (`docker` or `process`), or `remote`.
    runtime: String,
    /// The redb store's file, when that is the store: `close` returns once it can be opened.
    redb_file: Option<std::path::PathBuf>,
}

struct Live {
    backend: Backend,
    /// What `close` ends: every subscription still held.
    subscriptions: Mutex<Vec<Weak<dyn Ends>>>,
}

/// Where requests go.
enum Backend {
    Embedded {
        platform: Platform,
        engine: EngineTask,
        /// Where log follows read their streams (the runtime the platform was opened on).
        runtime: tokio::runtime::Handle,
    },
    /// A running daemon.
    Remote(clank_client::Client),
}

/// What a subscription reads, item by item; `next` is cancel-safe.
trait Feed<T>: Send {
    fn next(&mut self) -> BoxFuture<'_, Result<Option<T>>>;
}

/// Events of either backend.
enum Events {
    Embedded(Box<Subscription>),
    Remote(clank_client::Subscription),
}

impl Feed<Event> for Events {
    fn next(&mut self) -> BoxFuture<'_, Result<Option<Event>>> {
        Box::pin(async move {
            match self {
                Events::Embedded(s) => s.next().await,
                Events::Remote(s) => s.next().await,
            }
        })
    }
}

/// A service's log lines, of either backend: read by a task into a bounded buffer that waits
/// for a slow reader; dropping this ends the task (and a daemon's HTTP stream with it).
enum LogLines {
    Embedded {
        lines: mpsc::Receiver<Result<WorkloadLogLine>>,
        task: tokio::task::JoinHandle<()>,
    },
    Remote(clank_client::LogFollow),
}

impl Drop for LogLines {
    fn drop(&mut self) {
        if let LogLines::Embedded { task, .. } = self {
            task.abort();
        }
    }
}

impl LogLines {
    /// Follow `service`'s output on the embedded `platform`: its stream is opened and read by
    /// a task on `runtime`; a refusal is the first line's error.
    fn embedded(
        platform: Platform,
        service: String,
        selector: WorkloadSelector,
        tail: usize,
        runtime: &tokio::runtime::Handle,
    ) -> LogLines {
        let (tx, lines) = mpsc::channel(LOG_BUFFER);
        let task = runtime.spawn(async move {
            let opened = async {
                let addr = platform.parse_service(&service)?;
                platform.logs(&addr, &selector, true, Some(tail)).await
            };
            let mut stream = match opened.await {
                Ok(s) => s,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            while let Some(item) = stream.next().await {
                let last = item.is_err();
                // Waits while the buffer is full: a slow reader slows the reading.
                if tx.send(item).await.is_err() || last {
                    return;
                }
            }
        });
        LogLines::Embedded { lines, task }
    }
}

impl Feed<WorkloadLogLine> for LogLines {
    fn next(&mut self) -> BoxFuture<'_, Result<Option<WorkloadLogLine>>> {
        Box::pin(async move {
            match self {
                LogLines::Embedded { lines, .. } => lines.recv().await.transpose(),
                LogLines::Remote(f) => f.next().await,
            }
        })
    }
}

impl std::fmt::Debug for PlatformHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlatformHandle")
            .field("runtime", &self.inner.runtime)
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

impl PlatformHandle {
    /// Open the embedded platform, make sure the default workspace exists (short addresses
    /// name it) and start the engine on the current tokio runtime.
    pub async fn open(options: EmbeddedOptions) -> Result<PlatformHandle> {
        let redb_file = (options.store == crate::StoreChoice::Redb)
            .then(|| options.data_dir.join("clank.redb"));
        let platform = Platform::open(options).await?;
        platform.ensure_default_workspace().await?;
        let engine = platform.spawn_engine();
        let runtime = platform.engine().runtime().name();
        Ok(Self::holding(
            Backend::Embedded {
                platform,
                engine,
                runtime: tokio::runtime::Handle::current(),
            },
            runtime,
            redb_file,
        ))
    }

    /// Connect to the daemon at `url` with an API token (see [`clank_client::Client`]): the
    /// same requests, answered by the daemon under the token's role; short addresses mean the
    /// token's workspace. Fails here when the daemon is unreachable or refuses the token.
    pub async fn connect(
        url: &str,
        token: &str,
        options: clank_client::ConnectOptions,
    ) -> Result<PlatformHandle> {
        let client = clank_client::Client::connect(url, token, options).await?;
        Ok(Self::holding(
            Backend::Remote(client),
            "remote".into(),
            None,
        ))
    }

    fn holding(backend: Backend, runtime: String, redb_file: Option<std::path::PathBuf>) -> Self {
        PlatformHandle {
            inner: Arc::new(Inner {
                live: RwLock::new(Some(Arc::new(Live {
                    backend,
                    subscriptions: Mutex::new(Vec::new()),
                }))),
                cancel: watch::channel(false).0,
                runtime,
                redb_file,
            }),
        }
    }

    /// The runtime running workloads: `docker` or `process`; `remote` for a daemon (still
    /// answered once closed).
    pub fn runtime(&self) -> &str {
        &self.inner.runtime
    }

    /// Whether JSON `request` is answered by this process's own store, in microseconds: an
    /// embedded platform's store read (`clank_api::ops::STORE_READS`). A binding may then wait
    /// for it in place instead of through an awaitable.
    pub fn answers_in_place(&self, request: &str) -> bool {
        self.inner.runtime != "remote" && clank_api::ops::is_store_read(request)
    }

    pub fn is_closed(&self) -> bool {
        self.inner
            .live
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
    }

    fn live(&self) -> std::result::Result<Arc<Live>, HandleError> {
        self.inner
            .live
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(HandleError::Closed)
    }

    /// [`Platform::execute_json`], failing with [`HandleError::Closed`] once closed (a call
    /// running when `close` is called gets a short grace period to finish, then is cancelled).
    pub async fn execute_json(&self, request: &str) -> std::result::Result<String, HandleError> {
        let live = self.live()?;
        let mut cancel = self.inner.cancel.subscribe();
        tokio::select! {
            biased;
            _ = cancel.wait_for(|c| *c) => Err(HandleError::Closed),
            answer = async {
                match &live.backend {
                    Backend::Embedded { platform, .. } => platform.execute_json(request).await,
                    Backend::Remote(client) => client.execute_json(request).await,
                }
            } => Ok(answer?),
        }
    }

    /// Follow events from now on, of one service (address) or of all; see
    /// [`Platform::subscribe`]. Once the handle is closed, `next` fails with `Closed`.
    pub fn subscribe(
        &self,
        service: Option<&str>,
    ) -> std::result::Result<HandleSubscription, HandleError> {
        let live = self.live()?;
        let events = match &live.backend {
            Backend::Embedded { platform, .. } => {
                Events::Embedded(Box::new(platform.subscribe(service)))
            }
            Backend::Remote(client) => Events::Remote(client.subscribe(service)),
        };
        Ok(Self::register(&live, Box::new(events)))
    }

    /// Follow a service's output (`clank logs -f`): the last `tail` lines of each workload
    /// `selector` picks (default 100, at most 10 000), then new lines as they come; see
    /// [`Platform::logs`]. The stream opens at once; a refusal (bad address, no such service,
    /// nothing running) is the first `next`'s error. A reader that falls behind slows the
    /// reading (a bounded buffer, nothing dropped). `next` answers `None` once the workloads'
    /// streams end (or the daemon's, when remote), and fails with `Closed` once the handle is
    /// closed; the subscription's `close` (or dropping it) ends the stream, a daemon's HTTP
    /// request with it.
    pub fn follow_logs(
        &self,
        service: &str,
        selector: WorkloadSelector,
        tail: Option<usize>,
    ) -> std::result::Result<HandleSubscription<WorkloadLogLine>, HandleError> {
        let live = self.live()?;
        let tail = tail.unwrap_or(DEFAULT_LOG_TAIL).min(MAX_LOG_TAIL);
        let lines = match &live.backend {
            Backend::Embedded {
                platform, runtime, ..
            } => LogLines::embedded(
                platform.clone(),
                service.to_owned(),
                selector,
                tail,
                runtime,
            ),
            Backend::Remote(client) => LogLines::Remote(client.follow_logs(
                service,
                Some(tail),
                selector.process.as_deref(),
                selector.replica,
            )),
        };
        Ok(Self::register(&live, Box::new(lines)))
    }

    /// A subscription reading `feed`, ended by `close`.
    fn register<T: Send + 'static>(live: &Live, feed: Box<dyn Feed<T>>) -> HandleSubscription<T> {
        let state = Arc::new(SubState {
            stream: tokio::sync::Mutex::new(Some(feed)),
            ending: watch::channel(Ending::Open).0,
        });
        let mut subs = live.subscriptions.lock().unwrap_or_else(|p| p.into_inner());
        subs.retain(|w| w.strong_count() > 0);
        subs.push(Arc::downgrade(&state) as Weak<dyn Ends>);
        HandleSubscription { state }
    }

    /// Close: later calls fail with [`HandleError::Closed`], subscriptions end (their `next`
    /// fails with `Closed`), the engine stops (workloads keep running; the next open adopts
    /// them), running calls get a short grace period, and the store is released before this
    /// returns. Idempotent: closing a closed handle does nothing.
    pub async fn close(&self) -> Result<()> {
        let taken = self
            .inner
            .live
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let Some(live) = taken else {
            return Ok(());
        };
        let subs: Vec<Arc<dyn Ends>> = live
            .subscriptions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .filter_map(|w| w.upgrade())
            .collect();
        for sub in subs {
            sub.end(Ending::PlatformClosed).await;
        }
        let (stopped, store) = match &live.backend {
            Backend::Embedded {
                platform, engine, ..
            } => (
                engine.stop(STOP_TIMEOUT).await,
                Some(Arc::downgrade(platform.catalog().store())),
            ),
            // Nothing of a daemon's is held here: only calls in flight to let finish.
            Backend::Remote(_) => (Ok(()), None),
        };
        // Calls running now hold `live`: let them finish, then cancel the rest.
        if !until(|| Arc::strong_count(&live) == 1, IN_FLIGHT_GRACE).await {
            self.inner.cancel.send_replace(true);
            until(|| Arc::strong_count(&live) == 1, IN_FLIGHT_GRACE).await;
        }
        drop(live);
        let Some(store) = store else {
            return stopped;
        };
        let deadline = tokio::time::Instant::now() + RELEASE_TIMEOUT;
        let mut released = until(|| store.strong_count() == 0, RELEASE_TIMEOUT).await;
        // A store call of a cancelled request may still be running on the blocking pool, holding
        // the database: done when the file opens again.
        if released && let Some(file) = &self.inner.redb_file {
            released = redb_released(file, deadline).await;
        }
        if !released {
            stopped?;
            return Err(Error::Internal(format!(
                "the platform is closed but its store was still in use {:.0} s later \
                 (a build or a call that ignored cancellation)",
                RELEASE_TIMEOUT.as_secs_f64()
            )));
        }
        stopped
    }
}

/// Whether the redb database `file` can be opened (and is closed again) before `deadline`.
async fn redb_released(file: &std::path::Path, deadline: tokio::time::Instant) -> bool {
    loop {
        let path = file.to_owned();
        let opened =
            tokio::task::spawn_blocking(move || clank_store::RedbStore::open(path).map(drop)).await;
        if matches!(opened, Ok(Ok(()))) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Poll `done` until it holds or `limit` passes; whether it held.
async fn until(done: impl Fn() -> bool, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Open,
    /// The subscription's own `close`: `next` answers `None`.
    Closed,
    /// The handle was closed: `next` fails with `Closed`.
    PlatformClosed,
}

struct SubState<T> {
    /// `None` once ended (the subscription holds a platform clone: dropped then).
    stream: tokio::sync::Mutex<Option<Box<dyn Feed<T>>>>,
    ending: watch::Sender<Ending>,
}

/// A subscription as `close` ends it, whatever it yields.
trait Ends: Send + Sync {
    fn end(&self, how: Ending) -> BoxFuture<'_, ()>;
}

impl<T: Send + 'static> Ends for SubState<T> {
    fn end(&self, how: Ending) -> BoxFuture<'_, ()> {
        Box::pin(SubState::end(self, how))
    }
}

impl<T> SubState<T> {
    async fn end(&self, how: Ending) {
        self.ending.send_if_modified(|e| {
            let change = *e == Ending::Open;
            if change {
                *e = how;
            }
            change
        });
        // A pending `next` sees the ending and lets go of the stream.
        self.stream.lock().await.take();
    }

    fn ended(&self, e: Ending) -> std::result::Result<Option<T>, HandleError> {
        match e {
            Ending::PlatformClosed => Err(HandleError::Closed),
            _ => Ok(None),
        }
    }
}

/// What a [`PlatformHandle`] streams: its events from the moment of
/// [`PlatformHandle::subscribe`], or a service's log lines ([`PlatformHandle::follow_logs`]).
/// Clones share one stream.
pub struct HandleSubscription<T = Event> {
    state: Arc<SubState<T>>,
}

impl<T> Clone for HandleSubscription<T> {
    fn clone(&self) -> Self {
        HandleSubscription {
            state: Arc::clone(&self.state),
        }
    }
}

impl<T> std::fmt::Debug for HandleSubscription<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandleSubscription")
            .field("ending", &*self.state.ending.borrow())
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> HandleSubscription<T> {
    /// The next item; `None` once this subscription is closed (also while waiting) or its
    /// stream ended (the engine is gone; the followed workloads are); [`HandleError::Closed`]
    /// once the handle is closed. Cancel-safe.
    pub async fn next(&self) -> std::result::Result<Option<T>, HandleError> {
        let state = &self.state;
        let mut ending = state.ending.subscribe();
        let current = *ending.borrow_and_update();
        if current != Ending::Open {
            return state.ended(current);
        }
        let ended = async {
            match ending.wait_for(|e| *e != Ending::Open).await {
                Ok(e) => *e,
                Err(_) => Ending::Closed,
            }
        };
        let next = async {
            let mut stream = state.stream.lock().await;
            match stream.as_mut() {
                Some(s) => s.next().await.map_err(HandleError::Platform),
                // Taken by an ending.
                None => state.ended(*state.ending.borrow()),
            }
        };
        tokio::select! {
            biased;
            e = ended => state.ended(e),
            event = next => event,
        }
    }

    /// Stop following: pending and later `next` calls answer `None`.
    pub fn close(&self) {
        self.state.ending.send_if_modified(|e| {
            let change = *e == Ending::Open;
            if change {
                *e = Ending::Closed;
            }
            change
        });
        // The stream (and its platform clone) goes with the last `next` or `end`; take it now
        // if nobody is reading.
        if let Ok(mut stream) = self.state.stream.try_lock() {
            stream.take();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RuntimeChoice;

    fn options(dir: &std::path::Path) -> EmbeddedOptions {
        let mut options = EmbeddedOptions::new(dir.join("data"));
        options.runtime = RuntimeChoice::Process;
        options
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn close_fails_every_later_call_and_releases_the_data_directory_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let handle = PlatformHandle::open(options(dir.path())).await.unwrap();
        let events = handle.subscribe(None).unwrap();
        let pending = tokio::spawn({
            let events = events.clone();
            async move { events.next().await }
        });
        let listed = handle
            .execute_json(r#"{"op": "list_workspaces"}"#)
            .await
            .unwrap();
        assert!(listed.contains("default"), "{listed}");
        // The store is this platform's: a second one cannot open it.
        assert!(PlatformHandle::open(options(dir.path())).await.is_err());

        handle.close().await.unwrap();
        assert!(handle.is_closed());
        assert!(matches!(
            handle.execute_json(r#"{"op": "list_workspaces"}"#).await,
            Err(HandleError::Closed)
        ));
        assert!(matches!(handle.subscribe(None), Err(HandleError::Closed)));
        assert!(matches!(pending.await.unwrap(), Err(HandleError::Closed)));
        assert!(matches!(events.next().await, Err(HandleError::Closed)));
        handle.close().await.unwrap();

        // Released now, not when the handle is dropped.
        let again = PlatformHandle::open(options(dir.path())).await.unwrap();
        again.close().await.unwrap();
        drop(handle);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_log_follow_reports_a_refusal_first_and_ends_with_the_handle() {
        let dir = tempfile::tempdir().unwrap();
        let handle = PlatformHandle::open(options(dir.path())).await.unwrap();
        let refused = handle
            .follow_logs("shop/web", WorkloadSelector::default(), Some(5))
            .unwrap();
        match refused.next().await {
            Err(HandleError::Platform(e)) => {
                assert_eq!(e.kind(), clank_core::ErrorKind::NotFound, "{e}");
            }
            other => panic!("expected NotFound, got {other:?}"),
        }
        // Closed by itself: `None` from then on.
        let closed = handle
            .follow_logs("shop/web", WorkloadSelector::default(), None)
            .unwrap();
        closed.close();
        assert!(matches!(closed.next().await, Ok(None)));

        let open = handle
            .follow_logs("shop/web", WorkloadSelector::default(), None)
            .unwrap();
        handle.close().await.unwrap();
        assert!(matches!(open.next().await, Err(HandleError::Closed)));
        assert!(matches!(
            handle.follow_logs("shop/web", WorkloadSelector::default(), None),
            Err(HandleError::Closed)
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_call_running_at_close_is_cancelled_after_the_grace_period() {
        let dir = tempfile::tempdir().unwrap();
        let handle = PlatformHandle::open(options(dir.path())).await.unwrap();
        let call = |request: serde_json::Value| {
            let handle = handle.clone();
            async move { handle.execute_json(&request.to_string()).await }
        };
        call(serde_json::json!({"op": "create_project", "name": "Shop", "slug": "shop"}))
            .await
            .unwrap();
        for (slug, depends_on) in [("db", vec![]), ("api", vec!["db"])] {
            call(
                serde_json::json!({"op": "create_service", "environment": "shop", "spec": {
                    "slug": slug, "depends_on": depends_on,
                    "source": {"type": "docker_image", "image": "busybox:1"},
                }}),
            )
            .await
            .unwrap();
        }
        // `db` is never deployed, so `api`'s deployment waits in PENDING.
        call(serde_json::json!({"op": "deploy", "service": "shop/api"}))
            .await
            .unwrap();
        let wait = tokio::spawn(call(serde_json::json!(
            {"op": "wait", "service": "shop/api", "number": 1, "timeout_s": 600.0}
        )));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = tokio::time::Instant::now();
        handle.close().await.unwrap();
        assert!(started.elapsed() < IN_FLIGHT_GRACE + Duration::from_secs(3));
        assert!(matches!(wait.await.unwrap(), Err(HandleError::Closed)));
        PlatformHandle::open(options(dir.path()))
            .await
            .unwrap()
            .close()
            .await
            .unwrap();
    }
}
