//! Awaitables of native calls, completed on their event loop in batches: each call is an
//! `asyncio.Future` of the running loop; the tokio task answering it queues the answer for that
//! loop and, only when the queue was empty, wakes the loop with one byte on a socket the loop
//! watches (`loop.add_reader`). The loop then completes every queued future at once. So the
//! tokio thread never takes the GIL, there is no hop through a blocking thread (as
//! `pyo3_async_runtimes::future_into_py` takes), and N calls finishing together cost one
//! wake-up. Cancelling the future (the Python task awaiting it) aborts the tokio task.

use std::cell::RefCell;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use clank_platform::HandleError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use crate::error::handle_err;
use crate::runtime;

/// What a call left for its future.
enum Outcome {
    Answer(Result<String, HandleError>),
    /// The task ended without an answer: it panicked (or was aborted, its future cancelled).
    Lost,
}

/// The completions queued for one event loop.
struct Completions {
    queue: Mutex<Vec<(Py<PyAny>, Outcome)>>,
    /// Set from the first queued completion until the loop drains the queue: later ones add
    /// no wake-up.
    woken: AtomicBool,
    /// Written (one byte) to wake the loop.
    wake: UnixStream,
    /// Watched by the loop (`add_reader`).
    watch: UnixStream,
}

impl Completions {
    fn push(&self, future: Py<PyAny>, outcome: Outcome) {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((future, outcome));
        if !self.woken.swap(true, Ordering::AcqRel) {
            // Non-blocking: a full buffer already holds a wake-up; a closed loop needs none.
            let _ = (&self.wake).write(&[1]);
        }
    }
}

/// The loop's reader callback: completes every queued future.
#[pyclass(frozen, module = "clank._native")]
struct Drain(Arc<Completions>);

#[pymethods]
impl Drain {
    fn __call__(&self, py: Python<'_>) -> PyResult<()> {
        let mut buf = [0u8; 64];
        loop {
            match (&self.0.watch).read(&mut buf) {
                Ok(n) if n == buf.len() => continue,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                _ => break,
            }
        }
        self.0.woken.store(false, Ordering::Release);
        let done = std::mem::take(&mut *self.0.queue.lock().unwrap_or_else(|p| p.into_inner()));
        for (future, outcome) in done {
            let future = future.bind(py);
            // Cancelled meanwhile: nobody waits for the answer.
            if future
                .call_method0(pyo3::intern!(py, "done"))?
                .is_truthy()?
            {
                continue;
            }
            match outcome {
                Outcome::Answer(Ok(answer)) => {
                    future.call_method1(pyo3::intern!(py, "set_result"), (answer,))?;
                }
                Outcome::Answer(Err(e)) => {
                    let e = handle_err(e).into_value(py);
                    future.call_method1(pyo3::intern!(py, "set_exception"), (e,))?;
                }
                Outcome::Lost => {
                    let e = pyo3::exceptions::PyRuntimeError::new_err(
                        "clank: a native call panicked (a bug: please report it)",
                    )
                    .into_value(py);
                    future.call_method1(pyo3::intern!(py, "set_exception"), (e,))?;
                }
            }
        }
        Ok(())
    }
}

/// The future's done callback: a cancelled future aborts its task.
#[pyclass(frozen, module = "clank._native")]
struct Canceller(tokio::task::AbortHandle);

#[pymethods]
impl Canceller {
    fn __call__(&self, future: &Bound<'_, PyAny>) -> PyResult<()> {
        if future
            .call_method0(pyo3::intern!(future.py(), "cancelled"))?
            .is_truthy()?
        {
            self.0.abort();
        }
        Ok(())
    }
}

/// Queues its future's outcome when dropped: the answer once set, else [`Outcome::Lost`].
struct Completer {
    future: Option<Py<PyAny>>,
    outcome: Option<Result<String, HandleError>>,
    completions: Arc<Completions>,
}

impl Drop for Completer {
    fn drop(&mut self) {
        if let Some(future) = self.future.take() {
            let outcome = self.outcome.take().map_or(Outcome::Lost, Outcome::Answer);
            self.completions.push(future, outcome);
        }
    }
}

/// A thread's current loop. Held (not weakly: it is compared by identity, and a freed loop's
/// address may come back as another loop's) until the thread calls from another loop; at the
/// thread's exit it is left to the interpreter, which may be finalized by then.
struct LoopRef(Option<Py<PyAny>>);

impl Drop for LoopRef {
    fn drop(&mut self) {
        std::mem::forget(self.0.take());
    }
}

thread_local! {
    /// The event loop this thread last called from, and its completions. (A thread runs one
    /// loop at a time; a new loop on it gets new completions.)
    static CURRENT: RefCell<(LoopRef, Option<Arc<Completions>>)> =
        const { RefCell::new((LoopRef(None), None)) };
}

static GET_RUNNING_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// The completions of the running loop, set up on its first call.
fn completions<'py>(py: Python<'py>, event_loop: &Bound<'py, PyAny>) -> PyResult<Arc<Completions>> {
    let known = CURRENT.with_borrow(|(l, c)| {
        l.0.as_ref()
            .is_some_and(|l| l.as_ptr() == event_loop.as_ptr())
            .then(|| c.clone())
            .flatten()
    });
    if let Some(c) = known {
        return Ok(c);
    }
    let (wake, watch) = UnixStream::pair()
        .and_then(|(a, b)| {
            a.set_nonblocking(true)?;
            b.set_nonblocking(true)?;
            Ok((a, b))
        })
        .map_err(|e| pyo3::exceptions::PyOSError::new_err(e.to_string()))?;
    let c = Arc::new(Completions {
        queue: Mutex::new(Vec::new()),
        woken: AtomicBool::new(false),
        wake,
        watch,
    });
    event_loop.call_method1(
        pyo3::intern!(py, "add_reader"),
        (c.watch.as_raw_fd(), Drain(Arc::clone(&c))),
    )?;
    let mut previous = CURRENT.replace((
        LoopRef(Some(event_loop.clone().unbind())),
        Some(Arc::clone(&c)),
    ));
    // The GIL is held here: the previous loop can go.
    drop(previous.0.0.take());
    Ok(c)
}

/// An `asyncio.Future` of the running loop answered by `fut`, which runs on the shared runtime.
pub(crate) fn future_into_py<F>(py: Python<'_>, fut: F) -> PyResult<Bound<'_, PyAny>>
where
    F: Future<Output = Result<String, HandleError>> + Send + 'static,
{
    let event_loop = GET_RUNNING_LOOP
        .import(py, "asyncio", "get_running_loop")?
        .call0()?;
    let completions = completions(py, &event_loop)?;
    let future = event_loop.call_method0(pyo3::intern!(py, "create_future"))?;
    let mut completer = Completer {
        future: Some(future.clone().unbind()),
        outcome: None,
        completions,
    };
    let task = runtime().spawn(async move {
        completer.outcome = Some(fut.await);
        drop(completer);
    });
    future.call_method1(
        pyo3::intern!(py, "add_done_callback"),
        (Canceller(task.abort_handle()),),
    )?;
    Ok(future)
}
