//! What the control plane keeps about each agent: the hash of its one-time join token and of
//! its long-lived credential, the lease epoch, and the server's desired state (sealed, since
//! workload environments hold decrypted secrets).
//!
//! Tokens are 32 random bytes, shown once; only their SHA-256 is stored, and lookups go
//! through unique indexes on the hashes, so a token is checked without ever being stored.

use base64::Engine as _;
use clank_core::Timestamp;
use clank_core::id::{ServerId, WorkspaceId};
use clank_core::secret::SealedSecret;
use clank_core::store::catalog::Record;
use sha2::{Digest, Sha256};

/// Prefix of join tokens (`clank-join-...`), so a leaked one is recognisable.
pub const JOIN_PREFIX: &str = "clank-join-";
/// Prefix of agent credentials.
pub const CREDENTIAL_PREFIX: &str = "clank-agent-";

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct AgentIdentity {
    pub(crate) server_id: ServerId,
    pub(crate) workspace_id: WorkspaceId,
    /// SHA-256 of the unused join token; `None` once used (tokens are one-time).
    pub(crate) join_hash: Option<String>,
    pub(crate) join_expires_at: Timestamp,
    /// SHA-256 of the credential the agent holds; `None` before enrollment or after revoke.
    pub(crate) credential_hash: Option<String>,
    /// The lease epoch of the newest session; every accepted session increments it.
    pub(crate) epoch: u64,
    /// Generation of the desired state below.
    pub(crate) generation: u64,
    /// The desired state (protobuf, base64) sealed with the platform keyring.
    pub(crate) desired: Option<SealedSecret>,
}

impl Record for AgentIdentity {
    const TABLE: &'static str = "agent_identity";

    fn id_string(&self) -> String {
        self.server_id.to_string()
    }

    fn unique(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(h) = &self.join_hash {
            out.push(("join", h.clone()));
        }
        if let Some(h) = &self.credential_hash {
            out.push(("credential", h.clone()));
        }
        out
    }
}

/// A fresh random token with `prefix`.
/// 256 bits from the thread's CSPRNG (ChaCha, seeded by the OS).
pub(crate) fn new_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// The stored form of a token.
pub(crate) fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A short public fingerprint of a credential (`sha256:0123abcd...`), shown per server.
pub(crate) fn fingerprint(credential_hash: &str) -> String {
    format!(
        "sha256:{}",
        &credential_hash[..16.min(credential_hash.len())]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_prefixed_and_hashed_not_stored() {
        let a = new_token(JOIN_PREFIX);
        let b = new_token(JOIN_PREFIX);
        assert_ne!(a, b);
        assert!(a.starts_with(JOIN_PREFIX));
        assert!(a.len() > JOIN_PREFIX.len() + 40, "256 bits of randomness");
        let h = token_hash(&a);
        assert_eq!(h.len(), 64);
        assert!(!h.contains(&a[JOIN_PREFIX.len()..]));
        assert_eq!(h, token_hash(&a));
        assert!(fingerprint(&h).starts_with("sha256:"));
    }
}
