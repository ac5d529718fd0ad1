//! The control plane's agent-release signing key (Ed25519).
//!
//! Agents install only binaries whose offer is signed by this key, and they learn its public
//! half at enrollment (`EnrollResponse.release_public_key`), never from a session. A publish
//! is signed here, so a checksum alone — which anyone able to speak for the control plane on
//! a session could send — is never enough.
//!
//! The key is made once, on the first start, and stored in the catalog sealed with the
//! platform keyring (like each server's desired state). The record is created conditionally
//! (absent → present), so two starts racing over one store keep one key: the loser reads the
//! winner's. Its public half is stored in the clear beside it, so enrollment keeps handing out
//! the right key even if the keyring no longer opens the private half; publishing then fails
//! with a message naming the record instead of silently signing with a new key no agent trusts.

use base64::Engine as _;
use clank_core::Timestamp;
use clank_core::error::{Error, Result};
use clank_core::secret::{Keyring, SealedSecret, SecretAad};
use clank_core::store::catalog::{Catalog, Record};
use ring::signature::{Ed25519KeyPair, KeyPair as _};

/// The one record's id.
const KEY_ID: &str = "current";

/// The stored key: the PKCS#8 document sealed, the public key in the clear (hex).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct ReleaseKeyRecord {
    id: String,
    public_key: String,
    /// The PKCS#8 v2 document (base64) sealed with the platform keyring.
    private_key: SealedSecret,
    created_at: Timestamp,
}

impl Record for ReleaseKeyRecord {
    const TABLE: &'static str = "agent_release_key";

    fn id_string(&self) -> String {
        self.id.clone()
    }

    fn check_update(old: &Self, new: &Self) -> Result<()> {
        // Agents pinned the public key at enrollment: a different one would strand them all.
        if old.public_key != new.public_key {
            return Err(Error::Conflict(
                "the agent release signing key cannot be replaced".into(),
            ));
        }
        Ok(())
    }
}

fn aad() -> SecretAad {
    SecretAad::new("agent-release-key", KEY_ID)
}

fn where_() -> String {
    format!("{}/{KEY_ID}", ReleaseKeyRecord::TABLE)
}

/// The release signing key as loaded: the public key always, the key pair when the keyring
/// opens it.
#[derive(Debug)]
pub(crate) struct ReleaseSigner {
    public_key: Vec<u8>,
    pair: std::result::Result<Ed25519KeyPair, String>,
}

impl ReleaseSigner {
    /// The stored key, made and stored first if there is none (conditionally: a concurrent
    /// start's key wins and is used instead).
    pub(crate) async fn load_or_create(
        catalog: &Catalog,
        keyring: &Keyring,
    ) -> Result<ReleaseSigner> {
        let record = match catalog.get::<ReleaseKeyRecord>(KEY_ID).await? {
            Some(r) => r.value,
            None => store_or_adopt(catalog, new_record(keyring)?).await?,
        };
        Self::from_record(&record, keyring)
    }

    fn from_record(record: &ReleaseKeyRecord, keyring: &Keyring) -> Result<ReleaseSigner> {
        let public_key = hex::decode(&record.public_key)
            .ok()
            .filter(|k| k.len() == 32)
            .ok_or_else(|| Error::Corrupt {
                key: where_(),
                reason: "the public key is not 32 bytes of hex".into(),
            })?;
        let pair = open_pair(record, keyring).and_then(|pair| {
            if pair.public_key().as_ref() == public_key.as_slice() {
                Ok(pair)
            } else {
                Err(format!(
                    "{}: the sealed key pair does not match the stored public key",
                    where_()
                ))
            }
        });
        if let Err(e) = &pair {
            tracing::error!(
                error = %e,
                "The agent release signing key cannot be used; publishing agent releases will fail."
            );
        }
        Ok(ReleaseSigner { public_key, pair })
    }

    /// The public key agents learn at enrollment (Ed25519, 32 bytes).
    pub(crate) fn public_key(&self) -> &[u8] {
        &self.public_key
    }

    /// The signature of an offer of `version` with checksum `sha256` and `size` bytes.
    pub(crate) fn sign(&self, version: &str, sha256: &str, size: u64) -> Result<Vec<u8>> {
        let message = clank_proto::release_message(version, sha256, size)
            .map_err(|e| clank_core::InvalidInput::new("version", "release", e))?;
        let pair = self.pair.as_ref().map_err(|e| {
            Error::Secret(format!(
                "cannot sign the agent release: {e}; restore the keyring key it was sealed \
                 with (agents trust only this key)"
            ))
        })?;
        Ok(pair.sign(&message).as_ref().to_vec())
    }
}

/// Store `fresh` unless a key is already stored (the create is conditional on the record
/// being absent); the key that is stored afterwards.
async fn store_or_adopt(catalog: &Catalog, fresh: ReleaseKeyRecord) -> Result<ReleaseKeyRecord> {
    match catalog.create(&fresh).await {
        Ok(_) => {
            tracing::info!(public_key = %fresh.public_key, "Made the agent release signing key.");
            Ok(fresh)
        }
        // Lost the race to another start: use the key that won.
        Err(create) => match catalog.get::<ReleaseKeyRecord>(KEY_ID).await? {
            Some(r) => Ok(r.value),
            None => Err(create),
        },
    }
}

fn new_record(keyring: &Keyring) -> Result<ReleaseKeyRecord> {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
        .map_err(|_| Error::Secret("the OS random generator failed".into()))?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
        .map_err(|e| Error::Secret(format!("a fresh Ed25519 key was rejected: {e}")))?;
    let encoded = base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref());
    Ok(ReleaseKeyRecord {
        id: KEY_ID.to_owned(),
        public_key: hex::encode(pair.public_key().as_ref()),
        private_key: keyring.seal(&encoded, &aad())?,
        created_at: Timestamp::now(),
    })
}

fn open_pair(
    record: &ReleaseKeyRecord,
    keyring: &Keyring,
) -> std::result::Result<Ed25519KeyPair, String> {
    let text = keyring
        .open(&record.private_key, &aad())
        .map_err(|e| format!("{}: {e}", where_()))?;
    let der = base64::engine::general_purpose::STANDARD
        .decode(text.expose())
        .map_err(|e| format!("{}: {e}", where_()))?;
    Ed25519KeyPair::from_pkcs8(&der).map_err(|e| format!("{}: {e}", where_()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use clank_core::secret::KeyId;
    use clank_core::store::memory::MemoryStore;
    use ring::signature::{ED25519, UnparsedPublicKey};

    use super::*;

    fn keyring() -> Keyring {
        Keyring::new(KeyId::new("k1").unwrap(), Keyring::generate_key().unwrap())
    }

    #[tokio::test]
    async fn a_start_that_loses_the_race_adopts_the_stored_key() {
        let catalog = Catalog::new(Arc::new(MemoryStore::new()));
        let ring = keyring();
        let winner = ReleaseSigner::load_or_create(&catalog, &ring)
            .await
            .unwrap();
        // The loser read "absent" before the winner wrote, and made a key of its own.
        let loser = new_record(&ring).unwrap();
        assert_ne!(hex::decode(&loser.public_key).unwrap(), winner.public_key());
        let kept = store_or_adopt(&catalog, loser).await.unwrap();
        assert_eq!(hex::decode(&kept.public_key).unwrap(), winner.public_key());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_key_is_made_once_and_concurrent_starts_keep_the_same_one() {
        let catalog = Catalog::new(Arc::new(MemoryStore::new()));
        let ring = keyring();
        let starts: Vec<_> = (0..8)
            .map(|_| {
                let (catalog, ring) = (catalog.clone(), ring.clone());
                tokio::spawn(async move { ReleaseSigner::load_or_create(&catalog, &ring).await })
            })
            .collect();
        let mut keys = std::collections::HashSet::new();
        for s in starts {
            keys.insert(s.await.unwrap().unwrap().public_key().to_vec());
        }
        assert_eq!(keys.len(), 1, "one key, whoever won the race");
        let again = ReleaseSigner::load_or_create(&catalog, &ring)
            .await
            .unwrap();
        assert!(keys.contains(again.public_key()), "a restart keeps the key");
        assert_eq!(again.public_key().len(), 32);
    }

    #[tokio::test]
    async fn signatures_verify_with_the_public_key_and_bind_every_field() {
        let catalog = Catalog::new(Arc::new(MemoryStore::new()));
        let signer = ReleaseSigner::load_or_create(&catalog, &keyring())
            .await
            .unwrap();
        let sha = "0f".repeat(32);
        let sig = signer.sign("1.0.0", &sha, 10).unwrap();
        let key = UnparsedPublicKey::new(&ED25519, signer.public_key());
        let msg = |v: &str, s: &str, n: u64| clank_proto::release_message(v, s, n).unwrap();
        assert!(key.verify(&msg("1.0.0", &sha, 10), &sig).is_ok());
        assert!(key.verify(&msg("1.0.1", &sha, 10), &sig).is_err());
        assert!(
            key.verify(&msg("1.0.0", &"1f".repeat(32), 10), &sig)
                .is_err()
        );
        assert!(key.verify(&msg("1.0.0", &sha, 11), &sig).is_err());
        assert!(signer.sign("bad\nversion", &sha, 10).is_err());
    }

    #[tokio::test]
    async fn a_key_sealed_under_another_keyring_keeps_its_public_half_but_cannot_sign() {
        let catalog = Catalog::new(Arc::new(MemoryStore::new()));
        let first = ReleaseSigner::load_or_create(&catalog, &keyring())
            .await
            .unwrap();
        let other = ReleaseSigner::load_or_create(&catalog, &keyring())
            .await
            .unwrap();
        assert_eq!(
            first.public_key(),
            other.public_key(),
            "never silently replaced"
        );
        let err = other.sign("1.0.0", &"0f".repeat(32), 1).unwrap_err();
        assert!(err.to_string().contains("restore the keyring key"), "{err}");
    }
}
