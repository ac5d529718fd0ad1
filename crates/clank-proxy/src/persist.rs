//! The route table on disk: one JSON document, replaced atomically (write a temporary file,
//! fsync, rename) so a crash leaves either the old or the new table, never half of one.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use clank_core::id::ServiceId;
use clank_core::proxy::Route;

use crate::ProxyError;

#[derive(serde::Serialize, serde::Deserialize)]
struct StateFile {
    version: u32,
    routes: Vec<Route>,
}

/// The routes in `path`; none if the file does not exist yet.
pub(crate) fn load(path: &Path) -> Result<BTreeMap<ServiceId, Route>, ProxyError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => {
            return Err(ProxyError::State {
                path: path.to_owned(),
                message: e.to_string(),
            });
        }
    };
    let state: StateFile = serde_json::from_slice(&bytes).map_err(|e| ProxyError::State {
        path: path.to_owned(),
        message: format!("not a route table: {e}"),
    })?;
    if state.version != 1 {
        return Err(ProxyError::State {
            path: path.to_owned(),
            message: format!("unknown version {}", state.version),
        });
    }
    Ok(state.routes.into_iter().map(|r| (r.service, r)).collect())
}

pub(crate) async fn save(
    path: PathBuf,
    routes: BTreeMap<ServiceId, Route>,
) -> Result<(), ProxyError> {
    // File I/O and fsync block: keep them off the runtime's worker threads.
    let result = tokio::task::spawn_blocking(move || write_atomically(&path, routes)).await;
    match result {
        Ok(r) => r,
        Err(e) => Err(ProxyError::Io(std::io::Error::other(e))),
    }
}

fn write_atomically(path: &Path, routes: BTreeMap<ServiceId, Route>) -> Result<(), ProxyError> {
    let err = |e: std::io::Error| ProxyError::State {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let state = StateFile {
        version: 1,
        routes: routes.into_values().collect(),
    };
    let json = serde_json::to_vec_pretty(&state).map_err(|e| ProxyError::State {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = std::fs::File::create(&tmp).map_err(err)?;
    file.write_all(&json).map_err(err)?;
    file.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)?;
    // The rename is durable only once the directory entry is.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}
