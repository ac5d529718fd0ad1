//! Self-update: the control plane offers a binary with its SHA-256, size and version, signed
//! (Ed25519) by the release key the agent learned at enrollment. The agent verifies that
//! signature before downloading anything — a checksum from the session alone proves nothing
//! about who built the binary — then downloads it next to its own executable, verifies the
//! checksum against the signed one, runs it once with `--check` (it must
//! reach the control plane with this server's identity), then keeps the running binary as
//! `<exe>.prev`, renames the new one over `<exe>` (atomic on one filesystem), and restarts
//! into it. The new process confirms the update on its first lease; if it cannot connect
//! within `update_rollback_after`, it puts `<exe>.prev` back and restarts into that.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clank_proto::v1::{self, agent_message::Body as Up};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tracing::{error, info, warn};

use crate::{Shared, lock};

/// Largest binary accepted.
const MAX_BINARY: u64 = 512 * 1024 * 1024;
/// How long the `--check` run of a new binary may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// Check `offer` against the release key learned at enrollment (`None`: enrolled before
/// releases were signed). `Err` says why it is refused; nothing is downloaded then.
pub fn verify_offer(key: Option<&[u8]>, offer: &v1::UpdateOffer) -> Result<(), String> {
    use ring::signature::{ED25519, UnparsedPublicKey};
    let key = key.ok_or_else(|| {
        "this agent has no release signing key (it enrolled before agent releases were \
         signed), so it installs no update; re-enroll it: `clank server join-token <name>`, \
         then restart the agent once with `--join-token <token>`"
            .to_owned()
    })?;
    let message = clank_proto::release_message(&offer.version, &offer.sha256, offer.size)
        .map_err(|e| format!("malformed offer: {e}"))?;
    if offer.signature.is_empty() {
        return Err(
            "the offer is not signed; only releases signed by the key learned at \
                    enrollment are installed"
                .into(),
        );
    }
    UnparsedPublicKey::new(&ED25519, key)
        .verify(&message, &offer.signature)
        .map_err(|_| {
            "bad signature: the offer's version, checksum and size are not signed by the \
             release key learned at enrollment (altered, or signed by another key); not \
             downloaded"
                .to_owned()
        })
}

/// SHA-256 (hex) of the running executable.
pub fn own_sha256() -> Result<String, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let bytes = std::fs::read(&exe).map_err(|e| format!("read {}: {e}", exe.display()))?;
    Ok(hex::encode(Sha256::digest(bytes)))
}

fn prev_path(exe: &Path) -> PathBuf {
    let mut p = exe.as_os_str().to_owned();
    p.push(".prev");
    PathBuf::from(p)
}

fn new_path(exe: &Path) -> PathBuf {
    let mut p = exe.as_os_str().to_owned();
    p.push(".new");
    PathBuf::from(p)
}

pub(crate) fn start(shared: Arc<Shared>, offer: v1::UpdateOffer) {
    // Already running it, or already refused it (it is offered again at every reconnect).
    if offer.sha256 == shared.binary_sha256 || lock(&shared.refused_updates).contains(&offer.sha256)
    {
        return;
    }
    tokio::spawn(async move {
        let version = offer.version.clone();
        let outcome = install(&shared, &offer).await;
        let (ok, message) = match &outcome {
            Ok(path) => (
                true,
                format!("installed; restarting into {}", path.display()),
            ),
            Err(e) => (false, e.clone()),
        };
        if ok {
            info!(version = %version, "Agent update installed; restarting.");
        } else {
            warn!(version = %version, reason = %message, "Agent update refused.");
            lock(&shared.refused_updates).insert(offer.sha256.clone());
        }
        shared
            .send_up(Up::UpdateResult(v1::UpdateResult {
                version,
                ok,
                message,
            }))
            .await;
        if let Ok(path) = outcome {
            // Let the result reach the control plane before the session goes; the session
            // loop sees the restart request at its next heartbeat tick.
            tokio::time::sleep(Duration::from_millis(300)).await;
            *lock(&shared.restart) = Some(path);
        }
    });
}

async fn install(shared: &Shared, offer: &v1::UpdateOffer) -> Result<PathBuf, String> {
    verify_offer(shared.release_key.as_deref(), offer)?;
    if offer.size > MAX_BINARY {
        return Err(format!(
            "the offered binary is {} bytes; the limit is {MAX_BINARY}",
            offer.size
        ));
    }
    let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
    let staged = new_path(&exe);
    download(shared, offer, &staged).await.inspect_err(|_| {
        let _ = std::fs::remove_file(&staged);
    })?;
    // The new binary must reach the control plane as this server before it replaces us.
    let check = tokio::process::Command::new(&staged)
        .arg("--check")
        .arg("--control-plane")
        .arg(&shared.config.control_plane)
        .arg("--state-dir")
        .arg(shared.state.path())
        .kill_on_drop(true)
        .output();
    let checked = match tokio::time::timeout(CHECK_TIMEOUT, check).await {
        Ok(Ok(out)) if out.status.success() => Ok(()),
        Ok(Ok(out)) => Err(format!(
            "the new binary failed its connection check ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(Err(e)) => Err(format!("the new binary does not run: {e}")),
        Err(_) => Err(format!(
            "the new binary's connection check took over {CHECK_TIMEOUT:?}"
        )),
    };
    if let Err(e) = checked {
        let _ = std::fs::remove_file(&staged);
        return Err(e);
    }
    let prev = prev_path(&exe);
    let _ = std::fs::remove_file(&prev);
    std::fs::hard_link(&exe, &prev)
        .or_else(|_| std::fs::copy(&exe, &prev).map(drop))
        .map_err(|e| format!("keep the running binary as {}: {e}", prev.display()))?;
    shared.state.mark_update_pending(&offer.version)?;
    std::fs::rename(&staged, &exe).map_err(|e| format!("swap in the new binary: {e}"))?;
    Ok(exe)
}

async fn download(shared: &Shared, offer: &v1::UpdateOffer, to: &Path) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let channel = shared.channel().await?;
    let req = crate::authorize(
        tonic::Request::new(v1::FetchUpdateRequest {
            sha256: offer.sha256.clone(),
        }),
        &shared.server_id,
        &shared.credential,
    )?;
    let mut chunks = crate::client(channel)
        .fetch_update(req)
        .await
        .map_err(|s| format!("download: {}", s.message()))?
        .into_inner();
    let _ = std::fs::remove_file(to);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o755)
        .open(to)
        .map_err(|e| format!("create {}: {e}", to.display()))?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|s| format!("download: {}", s.message()))?;
        size += chunk.data.len() as u64;
        if size > MAX_BINARY {
            return Err("the download exceeds the size limit".into());
        }
        hasher.update(&chunk.data);
        file.write_all(&chunk.data)
            .map_err(|e| format!("write {}: {e}", to.display()))?;
    }
    if size != offer.size {
        return Err(format!(
            "size mismatch: offered {} bytes, downloaded {size}; not installed",
            offer.size
        ));
    }
    file.sync_all()
        .map_err(|e| format!("sync {}: {e}", to.display()))?;
    let got = hex::encode(hasher.finalize());
    if got != offer.sha256 {
        return Err(format!(
            "checksum mismatch: offered {}, downloaded {got}; not installed",
            offer.sha256
        ));
    }
    Ok(())
}

/// The first lease after an update proves the new binary: drop the rollback copy.
pub(crate) fn confirm(shared: &Shared) {
    if let Ok(Some(version)) = shared.state.pending_update() {
        shared.state.clear_update_pending();
        if let Ok(exe) = std::env::current_exe() {
            let _ = std::fs::remove_file(prev_path(&exe));
        }
        info!(version = %version.trim(), "Agent update confirmed.");
    }
}

/// After an update, roll back unless a lease arrives in time.
pub(crate) fn watch_rollback(shared: Arc<Shared>, version: String) {
    tokio::spawn(async move {
        tokio::time::sleep(shared.config.update_rollback_after).await;
        if !matches!(shared.state.pending_update(), Ok(Some(_))) {
            return;
        }
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let prev = prev_path(&exe);
        error!(version = %version.trim(), "The updated agent did not connect in time; rolling back.");
        if let Err(e) = std::fs::rename(&prev, &exe) {
            error!(error = %e, "Rollback failed: cannot restore {}", prev.display());
            return;
        }
        shared.state.clear_update_pending();
        *lock(&shared.restart) = Some(exe);
        shared.stop.cancel();
    });
}

/// `--check`: connect as this server with a probe Hello and wait for a lease.
pub async fn check(control_plane: &str, state: &crate::StateDir) -> Result<(), String> {
    let id = state
        .identity()?
        .ok_or_else(|| "this server is not enrolled".to_owned())?;
    let channel = crate::connect(control_plane, state.fingerprint()?.as_deref()).await?;
    let hello = v1::AgentMessage {
        body: Some(Up::Hello(v1::Hello {
            agent_version: crate::VERSION.to_owned(),
            binary_sha256: own_sha256().unwrap_or_default(),
            last_epoch: state.epoch()?,
            applied_generation: 0,
            probe: true,
            features: crate::FEATURES.iter().map(|f| (*f).to_owned()).collect(),
        })),
    };
    let req = crate::authorize(
        tonic::Request::new(tokio_stream::iter(vec![hello])),
        &id.server_id,
        &id.credential,
    )?;
    let mut down = crate::client(channel)
        .session(req)
        .await
        .map_err(|s| format!("refused: {}", s.message()))?
        .into_inner();
    match tokio::time::timeout(CHECK_TIMEOUT, down.message()).await {
        Ok(Ok(Some(v1::ControlMessage {
            body: Some(v1::control_message::Body::Lease(_)),
        }))) => Ok(()),
        other => Err(format!("no lease: {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use ring::signature::{Ed25519KeyPair, KeyPair as _};

    use super::*;

    fn keypair() -> Ed25519KeyPair {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
    }

    fn signed(pair: &Ed25519KeyPair, version: &str, sha256: &str, size: u64) -> v1::UpdateOffer {
        let message = clank_proto::release_message(version, sha256, size).unwrap();
        v1::UpdateOffer {
            version: version.into(),
            sha256: sha256.into(),
            size,
            signature: pair.sign(&message).as_ref().to_vec(),
        }
    }

    #[test]
    fn an_offer_signed_by_the_enrolled_key_verifies() {
        let pair = keypair();
        let offer = signed(&pair, "1.2.0", &"ab".repeat(32), 1000);
        assert_eq!(
            verify_offer(Some(pair.public_key().as_ref()), &offer),
            Ok(())
        );
    }

    #[test]
    fn an_offer_altered_after_signing_is_refused() {
        let pair = keypair();
        let key = pair.public_key().as_ref().to_vec();
        let good = signed(&pair, "1.2.0", &"ab".repeat(32), 1000);
        let altered = [
            v1::UpdateOffer {
                version: "1.2.1".into(),
                ..good.clone()
            },
            v1::UpdateOffer {
                sha256: "cd".repeat(32),
                ..good.clone()
            },
            v1::UpdateOffer {
                size: 1001,
                ..good.clone()
            },
        ];
        for offer in altered {
            let err = verify_offer(Some(&key), &offer).unwrap_err();
            assert!(err.starts_with("bad signature"), "{offer:?}: {err}");
        }
    }

    #[test]
    fn an_offer_signed_by_another_key_or_unsigned_is_refused() {
        let enrolled = keypair();
        let key = enrolled.public_key().as_ref().to_vec();
        let other = signed(&keypair(), "1.2.0", &"ab".repeat(32), 1000);
        assert!(
            verify_offer(Some(&key), &other)
                .unwrap_err()
                .starts_with("bad signature")
        );
        let unsigned = v1::UpdateOffer {
            signature: Vec::new(),
            ..other
        };
        assert!(
            verify_offer(Some(&key), &unsigned)
                .unwrap_err()
                .contains("not signed")
        );
    }

    #[test]
    fn an_agent_without_a_release_key_refuses_and_says_to_re_enroll() {
        let pair = keypair();
        let offer = signed(&pair, "1.2.0", &"ab".repeat(32), 1000);
        let err = verify_offer(None, &offer).unwrap_err();
        assert!(err.contains("re-enroll"), "{err}");
    }

    #[test]
    fn a_malformed_offer_is_refused_before_any_signature_check() {
        let pair = keypair();
        let key = pair.public_key().as_ref().to_vec();
        let mut offer = signed(&pair, "1.2.0", &"ab".repeat(32), 1000);
        offer.sha256 = "AB".repeat(32);
        assert!(
            verify_offer(Some(&key), &offer)
                .unwrap_err()
                .starts_with("malformed offer")
        );
    }
}
