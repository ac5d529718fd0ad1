//! `clank._native`: the private native half of the Python package. It holds a
//! [`clank_platform::Platform`] (with its deploy engine running on a shared tokio runtime) and
//! answers JSON requests ([`clank_platform::Request`], `clank-api`'s) either as asyncio
//! awaitables or by blocking with the GIL released; the public API is the Python package
//! `clank`.
//!
//! Every platform error leaves through [`error::to_py_err`], the one mapping from
//! `ErrorKind` to the exception classes defined in `clank/errors.py`.

// PyO3's `#[pymodule]`/`#[pyclass]`/`#[pymethods]` expand to `unsafe` FFI glue (CPython's C
// API). Our own code has no `unsafe` block; this crate root is the only place it is allowed.
#![allow(unsafe_code)]

mod error;

use std::sync::Arc;
use std::time::Duration;

use clank_platform::{EmbeddedOptions, EngineTask, Platform, Subscription};
use pyo3::prelude::*;
use tokio::sync::watch;

use crate::error::to_py_err;

fn runtime() -> &'static tokio::runtime::Runtime {
    pyo3_async_runtimes::tokio::get_runtime()
}

/// Run `fut` on the shared runtime, blocking this thread with the GIL released.
fn block_on<T: Send>(py: Python<'_>, fut: impl Future<Output = T> + Send) -> T {
    py.detach(|| runtime().block_on(fut))
}

/// An open platform whose deploy engine runs until [`NativePlatform::close`].
#[pyclass(frozen, module = "clank._native")]
struct NativePlatform {
    platform: Platform,
    engine: EngineTask,
}

impl std::fmt::Debug for NativePlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativePlatform").finish_non_exhaustive()
    }
}

/// How long `close` waits for the engine loop to return.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Open the embedded platform and start its engine (inside the shared runtime).
async fn open_platform(data_dir: String, runtime_name: String) -> PyResult<NativePlatform> {
    let mut options = EmbeddedOptions::new(data_dir);
    options.runtime = runtime_name.parse().map_err(to_py_err)?;
    let platform = Platform::open(options).await.map_err(to_py_err)?;
    // Short addresses (`project/service`) name the default workspace: make sure it exists.
    platform
        .ensure_default_workspace()
        .await
        .map_err(to_py_err)?;
    let engine = platform.spawn_engine();
    Ok(NativePlatform { platform, engine })
}

/// Open a platform on the embedded defaults (awaitable).
#[pyfunction]
fn open(py: Python<'_>, data_dir: String, runtime: String) -> PyResult<Bound<'_, PyAny>> {
    pyo3_async_runtimes::tokio::future_into_py(py, open_platform(data_dir, runtime))
}

/// Open a platform on the embedded defaults, blocking (GIL released).
#[pyfunction]
fn open_blocking(py: Python<'_>, data_dir: String, runtime: String) -> PyResult<NativePlatform> {
    block_on(py, open_platform(data_dir, runtime))
}

#[pymethods]
impl NativePlatform {
    /// The runtime running workloads: `docker` or `process` (what `auto` chose).
    #[getter]
    fn runtime(&self) -> String {
        self.platform.engine().runtime().name()
    }

    /// Answer a JSON request (awaitable of the JSON answer).
    fn call<'py>(&self, py: Python<'py>, request: String) -> PyResult<Bound<'py, PyAny>> {
        let platform = self.platform.clone();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            platform.execute_json(&request).await.map_err(to_py_err)
        })
    }

    /// Answer a JSON request, blocking with the GIL released.
    fn call_blocking(&self, py: Python<'_>, request: String) -> PyResult<String> {
        let platform = &self.platform;
        block_on(py, platform.execute_json(&request)).map_err(to_py_err)
    }

    /// Follow events from now on, of one service (address) or of all.
    #[pyo3(signature = (service=None))]
    fn subscribe(&self, service: Option<&str>) -> EventSubscription {
        EventSubscription::new(self.platform.subscribe(service))
    }

    /// Stop the deploy engine (workloads keep running; a later `open` adopts them).
    /// Idempotent. Blocks (GIL released) until the engine loop has returned.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        block_on(py, self.engine.stop(STOP_TIMEOUT)).map_err(to_py_err)
    }
}

type Shared = Arc<tokio::sync::Mutex<Subscription>>;

/// A live event subscription; each event is a JSON object.
#[pyclass(frozen, module = "clank._native")]
struct EventSubscription {
    stream: Shared,
    closed: Arc<watch::Sender<bool>>,
}

impl std::fmt::Debug for EventSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSubscription").finish_non_exhaustive()
    }
}

impl EventSubscription {
    fn new(stream: Subscription) -> Self {
        EventSubscription {
            stream: Arc::new(tokio::sync::Mutex::new(stream)),
            closed: Arc::new(watch::channel(false).0),
        }
    }
}

/// The next event as JSON; `None` when the subscription is closed (also while waiting).
async fn next_event(
    stream: Shared,
    closed: Arc<watch::Sender<bool>>,
    timeout: Option<Duration>,
) -> PyResult<Option<String>> {
    let mut closed = closed.subscribe();
    let next = async { stream.lock().await.next().await.map_err(to_py_err) };
    let bounded = async {
        match timeout {
            Some(t) => tokio::time::timeout(t, next).await.map_err(|_| {
                pyo3::exceptions::PyTimeoutError::new_err(format!(
                    "no event within {:.1} s",
                    t.as_secs_f64()
                ))
            }),
            None => Ok(next.await),
        }
        .and_then(|r| r)
    };
    tokio::select! {
        _ = closed.wait_for(|c| *c) => Ok(None),
        event = bounded => match event? {
            Some(e) => serde_json::to_string(&e)
                .map(Some)
                .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string())),
            None => Ok(None),
        },
    }
}

fn timeout_arg(timeout: Option<f64>) -> PyResult<Option<Duration>> {
    timeout
        .map(|t| {
            Duration::try_from_secs_f64(t).map_err(|_| {
                to_py_err(
                    clank_core::InvalidInput::new(
                        "timeout",
                        "range",
                        format!("timeout must be a non-negative number of seconds, not {t}"),
                    )
                    .into(),
                )
            })
        })
        .transpose()
}

#[pymethods]
impl EventSubscription {
    /// Awaitable of the next event (JSON), or `None` once closed.
    #[pyo3(signature = (timeout=None))]
    fn next<'py>(&self, py: Python<'py>, timeout: Option<f64>) -> PyResult<Bound<'py, PyAny>> {
        let timeout = timeout_arg(timeout)?;
        let fut = next_event(self.stream.clone(), self.closed.clone(), timeout);
        pyo3_async_runtimes::tokio::future_into_py(py, fut)
    }

    /// The next event (JSON), blocking with the GIL released; `None` once closed.
    #[pyo3(signature = (timeout=None))]
    fn next_blocking(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<String>> {
        let timeout = timeout_arg(timeout)?;
        let fut = next_event(self.stream.clone(), self.closed.clone(), timeout);
        block_on(py, fut)
    }

    /// Stop following: pending and later `next` calls return `None`.
    fn close(&self) {
        self.closed.send_replace(true);
    }
}

#[pymodule]
#[pyo3(name = "_native")]
fn clank_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(open, m)?)?;
    m.add_function(wrap_pyfunction!(open_blocking, m)?)?;
    m.add_class::<NativePlatform>()?;
    m.add_class::<EventSubscription>()?;
    Ok(())
}
