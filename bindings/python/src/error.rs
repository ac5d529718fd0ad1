//! The one mapping from platform errors to Python exceptions: `Error::kind()` picks the class
//! in `clank/errors.py` (`NotFound`, `Conflict`, `InvalidInput`, ...); the instance carries the
//! message, `code` (the kind's stable code) and `field` (for invalid input). A call on a
//! closed platform raises `Closed` (code `closed`), which is no platform error kind.

use clank_core::{Error, ErrorKind};
use clank_platform::HandleError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

/// The exception class for a kind, by its name in `clank.errors`.
fn class_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::NotFound => "NotFound",
        ErrorKind::Conflict => "Conflict",
        ErrorKind::Invalid => "InvalidInput",
        ErrorKind::Unauthorized => "Unauthorized",
        ErrorKind::Forbidden => "Forbidden",
        ErrorKind::Unavailable => "Unavailable",
        ErrorKind::Timeout => "Timeout",
        // `ErrorKind` is non-exhaustive: a kind added later is still a `ClankError`.
        _ => "Internal",
    }
}

static CLASSES: [PyOnceLock<Py<PyType>>; 9] = [const { PyOnceLock::new() }; 9];

/// The slot of `Closed`, after the kinds'.
const CLOSED_SLOT: usize = 8;

fn slot(kind: ErrorKind) -> usize {
    match kind {
        ErrorKind::NotFound => 0,
        ErrorKind::Conflict => 1,
        ErrorKind::Invalid => 2,
        ErrorKind::Unauthorized => 3,
        ErrorKind::Forbidden => 4,
        ErrorKind::Unavailable => 5,
        ErrorKind::Timeout => 6,
        _ => 7,
    }
}

/// Build the exception for a platform error (attaches to the interpreter briefly).
pub(crate) fn to_py_err(e: Error) -> PyErr {
    let kind = e.kind();
    let field = e.field().map(str::to_owned);
    instance(
        slot(kind),
        class_name(kind),
        e.to_string(),
        kind.code(),
        field,
    )
}

/// Build the exception for an error of a call through the platform handle: `Closed` once the
/// platform is closed, else the platform error's class.
pub(crate) fn handle_err(e: HandleError) -> PyErr {
    match e {
        HandleError::Closed => instance(
            CLOSED_SLOT,
            "Closed",
            HandleError::CLOSED_MESSAGE.to_owned(),
            "closed",
            None,
        ),
        HandleError::Platform(e) => to_py_err(e),
    }
}

fn instance(
    slot: usize,
    class_name: &str,
    message: String,
    code: &str,
    field: Option<String>,
) -> PyErr {
    Python::attach(|py| {
        let class = CLASSES[slot].import(py, "clank.errors", class_name);
        match class.and_then(|c| c.call1((message.clone(), code, field))) {
            Ok(instance) => PyErr::from_value(instance),
            // `clank.errors` missing means a broken install; still raise something useful.
            Err(import) => pyo3::exceptions::PyRuntimeError::new_err(format!(
                "{message} (and clank.errors is unusable: {import})"
            )),
        }
    })
}
