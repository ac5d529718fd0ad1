//! `clank._native`: the private native half of the Python package. It holds a
//! [`clank_platform::Platform`] (with its deploy engine running on a shared tokio runtime) and
//! answers JSON requests ([`clank_platform::Request`], `clank-api`'s) either as asyncio
//! awaitables or by blocking with the GIL released; the public API is the Python package
//! `clank`.
//!
//! Every platform error leaves through [`error::to_py_err`], the one mapping from
//! `ErrorKind` to the exception classes defined in `clank/errors.py` (and a closed platform
//! through [`error::handle_err`]: `Closed`, code `closed`).

// PyO3's `#[pymodule]`/`#[pyclass]`/`#[pymethods]` expand to `unsafe` FFI glue (CPython's C
// API). Our own code has no `unsafe` block; this crate root is the only place it is allowed.
#![allow(unsafe_code)]

mod complete;
mod error;

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use clank_platform::{
    ConnectOptions, EmbeddedOptions, HandleError, HandleSubscription, PlatformHandle,
    WorkloadLogLine, WorkloadSelector,
};
use pyo3::prelude::*;

use crate::error::{handle_err, to_py_err};

fn runtime() -> &'static tokio::runtime::Runtime {
    pyo3_async_runtimes::tokio::get_runtime()
}

/// How often a blocking call looks for a signal (Ctrl-C) while it waits.
const SIGNAL_SLICE: Duration = Duration::from_millis(50);

/// Run `fut` on the shared runtime and block this thread (GIL released) until it is done, in
/// slices: between them the interpreter's signal handlers run, so Ctrl-C raises
/// `KeyboardInterrupt` here (on the main thread) and cancels `fut` (dropped at its next await).
fn block_on<T: Send + 'static>(
    py: Python<'_>,
    fut: impl Future<Output = PyResult<T>> + Send + 'static,
) -> PyResult<T> {
    let (tx, rx) = mpsc::sync_channel::<PyResult<T>>(1);
    let task = runtime().spawn(async move {
        let _ = tx.send(fut.await);
    });
    let mut rx = rx;
    loop {
        // (`Receiver` is not `Sync`: it moves into the GIL-free closure and back.)
        let (received, back) = py.detach(move || (rx.recv_timeout(SIGNAL_SLICE), rx));
        rx = back;
        match received {
            Ok(result) => return result,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Err(interrupted) = py.check_signals() {
                    task.abort();
                    return Err(interrupted);
                }
            }
            // The task ended without an answer: it panicked.
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(pyo3::exceptions::PyRuntimeError::new_err(
                    "clank: a native call panicked (a bug: please report it)",
                ));
            }
        }
    }
}

/// How long (µs) a store read of an embedded platform may hold the calling thread (the event
/// loop's, GIL released) before its answer is handed to an awaitable instead: such a read
/// (address parse, a few indexed lookups) takes tens of µs, and answering it in place spares
/// the cross-thread wake-up of the event loop (`call_soon_threadsafe` through its self-pipe),
/// which costs more than the read.
/// Default 1 ms; [`set_read_budget`] changes it (0: every read is answered through an awaitable, as
/// every other call; the tests and `benches/bindings.sh` compare both ways).
static READ_BUDGET_US: AtomicU64 = AtomicU64::new(1_000);

/// Set how long (seconds) a store read may be waited for in place before an awaitable answers
/// it instead (default 0.001; 0: always an awaitable). For tests and benchmarks.
#[pyfunction]
fn set_read_budget(seconds: f64) -> PyResult<()> {
    let budget = Duration::try_from_secs_f64(seconds)
        .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
    READ_BUDGET_US.store(
        u64::try_from(budget.as_micros()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
    Ok(())
}

/// Answer a store read in place when it finishes within the read budget (the answer as `str`,
/// or its exception raised), else as an awaitable (cancelling it aborts the read). In place,
/// the read is polled on this thread (GIL released), as a Rust caller's `block_on` would: no
/// hop to a runtime worker and back; past the budget, the same read, partly done, moves to the
/// shared runtime and completes an awaitable.
fn call_store_read<'py>(
    py: Python<'py>,
    handle: PlatformHandle,
    request: String,
) -> PyResult<Bound<'py, PyAny>> {
    let mut read: Pin<Box<dyn Future<Output = Result<String, HandleError>> + Send>> =
        Box::pin(async move { handle.execute_json(&request).await });
    let budget = Duration::from_micros(READ_BUDGET_US.load(Ordering::Relaxed));
    let (read, ready) = py.detach(move || {
        // (tokio's timer ticks in ms: the budget is over after 1–2 ms.)
        let ready = (!budget.is_zero())
            .then(|| {
                runtime()
                    .block_on(async { tokio::time::timeout(budget, &mut read).await })
                    .ok()
            })
            .flatten();
        (read, ready)
    });
    match ready {
        Some(Ok(answer)) => Ok(pyo3::types::PyString::new(py, &answer).into_any()),
        Some(Err(e)) => Err(handle_err(e)),
        None => complete::future_into_py(py, read),
    }
}

/// An open platform whose deploy engine runs until [`NativePlatform::close`]; every call after
/// it raises `clank.errors.Closed`.
#[pyclass(frozen, module = "clank._native")]
struct NativePlatform {
    handle: PlatformHandle,
}

impl std::fmt::Debug for NativePlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativePlatform").finish_non_exhaustive()
    }
}

/// Open the embedded platform and start its engine (inside the shared runtime).
async fn open_platform(data_dir: String, runtime_name: String) -> PyResult<NativePlatform> {
    let mut options = EmbeddedOptions::new(data_dir);
    options.runtime = runtime_name.parse().map_err(to_py_err)?;
    let handle = PlatformHandle::open(options).await.map_err(to_py_err)?;
    Ok(NativePlatform { handle })
}

/// Open a platform on the embedded defaults (awaitable).
#[pyfunction]
fn open(py: Python<'_>, data_dir: String, runtime: String) -> PyResult<Bound<'_, PyAny>> {
    pyo3_async_runtimes::tokio::future_into_py(py, open_platform(data_dir, runtime))
}

/// Open a platform on the embedded defaults, blocking (GIL released; Ctrl-C interrupts).
#[pyfunction]
fn open_blocking(py: Python<'_>, data_dir: String, runtime: String) -> PyResult<NativePlatform> {
    block_on(py, open_platform(data_dir, runtime))
}

/// Connect to a running daemon (inside the shared runtime).
async fn connect_platform(
    url: String,
    token: String,
    timeout_s: f64,
    retries: u32,
    workspace: Option<String>,
    ca_cert: Option<PathBuf>,
) -> PyResult<NativePlatform> {
    let mut options =
        ConnectOptions::from_secs(timeout_s, retries, workspace).map_err(to_py_err)?;
    options.ca_cert = ca_cert;
    let handle = PlatformHandle::connect(&url, &token, options)
        .await
        .map_err(to_py_err)?;
    Ok(NativePlatform { handle })
}

/// Connect to a running daemon with an API token (awaitable); `ca_cert`: a PEM CA file to
/// trust for an `https://` daemon, beside the system's roots.
#[pyfunction]
#[pyo3(signature = (url, token, timeout_s, retries, workspace=None, ca_cert=None))]
fn connect(
    py: Python<'_>,
    url: String,
    token: String,
    timeout_s: f64,
    retries: u32,
    workspace: Option<String>,
    ca_cert: Option<PathBuf>,
) -> PyResult<Bound<'_, PyAny>> {
    pyo3_async_runtimes::tokio::future_into_py(
        py,
        connect_platform(url, token, timeout_s, retries, workspace, ca_cert),
    )
}

/// Connect to a running daemon, blocking (GIL released; Ctrl-C interrupts).
#[pyfunction]
#[pyo3(signature = (url, token, timeout_s, retries, workspace=None, ca_cert=None))]
fn connect_blocking(
    py: Python<'_>,
    url: String,
    token: String,
    timeout_s: f64,
    retries: u32,
    workspace: Option<String>,
    ca_cert: Option<PathBuf>,
) -> PyResult<NativePlatform> {
    block_on(
        py,
        connect_platform(url, token, timeout_s, retries, workspace, ca_cert),
    )
}

#[pymethods]
impl NativePlatform {
    /// The runtime running workloads: `docker` or `process` (what `auto` chose).
    #[getter]
    fn runtime(&self) -> String {
        self.handle.runtime().to_owned()
    }

    /// Whether `close` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// Answer a JSON request: the JSON answer itself when it is ready at once (a store read of
    /// an embedded platform, see [`call_store_read`]), else an awaitable of it.
    fn call<'py>(&self, py: Python<'py>, request: String) -> PyResult<Bound<'py, PyAny>> {
        let handle = self.handle.clone();
        if handle.answers_in_place(&request) {
            return call_store_read(py, handle, request);
        }
        complete::future_into_py(py, async move { handle.execute_json(&request).await })
    }

    /// Answer a JSON request, blocking with the GIL released (Ctrl-C interrupts).
    fn call_blocking(&self, py: Python<'_>, request: String) -> PyResult<String> {
        let handle = self.handle.clone();
        block_on(py, async move {
            handle.execute_json(&request).await.map_err(handle_err)
        })
    }

    /// Follow events from now on, of one service (address) or of all.
    #[pyo3(signature = (service=None))]
    fn subscribe(&self, service: Option<&str>) -> PyResult<EventSubscription> {
        let stream = self.handle.subscribe(service).map_err(handle_err)?;
        Ok(EventSubscription { stream })
    }

    /// Follow a service's output: the last `tail` lines (default 100) of each workload
    /// `process`/`replica` pick, then new lines as they come. A refusal is the first `next`'s
    /// error.
    #[pyo3(signature = (service, tail=None, process=None, replica=None))]
    fn follow_logs(
        &self,
        service: &str,
        tail: Option<usize>,
        process: Option<String>,
        replica: Option<u32>,
    ) -> PyResult<LogSubscription> {
        let stream = self
            .handle
            .follow_logs(service, WorkloadSelector { process, replica }, tail)
            .map_err(handle_err)?;
        Ok(LogSubscription { stream })
    }

    /// Stop the deploy engine and release the data directory before returning (workloads keep
    /// running; a later `open` adopts them); later calls raise `Closed`. Idempotent. Blocks
    /// (GIL released) until done: a few seconds at most.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let handle = self.handle.clone();
        py.detach(|| runtime().block_on(handle.close()))
            .map_err(to_py_err)
    }
}

/// A live event subscription; each event is a JSON object.
#[pyclass(frozen, module = "clank._native")]
struct EventSubscription {
    stream: HandleSubscription,
}

impl std::fmt::Debug for EventSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSubscription").finish_non_exhaustive()
    }
}

/// The next item (an event, a log line: `what`) as JSON; `None` when the subscription is
/// closed (also while waiting) or its stream ended.
async fn next_item<T: serde::Serialize + Send + 'static>(
    stream: HandleSubscription<T>,
    timeout: Option<Duration>,
    what: &'static str,
) -> PyResult<Option<String>> {
    let next = async { stream.next().await.map_err(handle_err) };
    let item = match timeout {
        Some(t) => tokio::time::timeout(t, next).await.map_err(|_| {
            pyo3::exceptions::PyTimeoutError::new_err(format!(
                "no {what} within {:.1} s",
                t.as_secs_f64()
            ))
        })??,
        None => next.await?,
    };
    item.map(|e| serde_json::to_string(&e))
        .transpose()
        .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))
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
        let fut = next_item(self.stream.clone(), timeout, "event");
        pyo3_async_runtimes::tokio::future_into_py(py, fut)
    }

    /// The next event (JSON), blocking with the GIL released (Ctrl-C interrupts); `None` once
    /// closed.
    #[pyo3(signature = (timeout=None))]
    fn next_blocking(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<String>> {
        let timeout = timeout_arg(timeout)?;
        block_on(py, next_item(self.stream.clone(), timeout, "event"))
    }

    /// Stop following: pending and later `next` calls return `None`.
    fn close(&self) {
        self.stream.close();
    }
}

/// A followed service's output; each line is a JSON object (`process`, `replica`, `stream`,
/// `line`, `at`), as `logs` answers them.
#[pyclass(frozen, module = "clank._native")]
struct LogSubscription {
    stream: HandleSubscription<WorkloadLogLine>,
}

impl std::fmt::Debug for LogSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogSubscription").finish_non_exhaustive()
    }
}

#[pymethods]
impl LogSubscription {
    /// Awaitable of the next line (JSON), or `None` once closed or ended.
    #[pyo3(signature = (timeout=None))]
    fn next<'py>(&self, py: Python<'py>, timeout: Option<f64>) -> PyResult<Bound<'py, PyAny>> {
        let timeout = timeout_arg(timeout)?;
        let fut = next_item(self.stream.clone(), timeout, "log line");
        pyo3_async_runtimes::tokio::future_into_py(py, fut)
    }

    /// The next line (JSON), blocking with the GIL released (Ctrl-C interrupts); `None` once
    /// closed or ended.
    #[pyo3(signature = (timeout=None))]
    fn next_blocking(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<String>> {
        let timeout = timeout_arg(timeout)?;
        block_on(py, next_item(self.stream.clone(), timeout, "log line"))
    }

    /// Stop following (the stream, and a daemon's HTTP request, end): pending and later
    /// `next` calls return `None`.
    fn close(&self) {
        self.stream.close();
    }
}

#[pymodule]
#[pyo3(name = "_native")]
fn clank_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(open, m)?)?;
    m.add_function(wrap_pyfunction!(open_blocking, m)?)?;
    m.add_function(wrap_pyfunction!(connect, m)?)?;
    m.add_function(wrap_pyfunction!(connect_blocking, m)?)?;
    m.add_function(wrap_pyfunction!(set_read_budget, m)?)?;
    m.add_class::<NativePlatform>()?;
    m.add_class::<EventSubscription>()?;
    m.add_class::<LogSubscription>()?;
    Ok(())
}
