//! Secrets encrypted at rest: XChaCha20-Poly1305 under a rotatable keyring, bound to their row.
//!
//! Three rules shape this module:
//! - Every ciphertext carries the id of the key that sealed it, so keys can be rotated: add a new
//!   active key, [`Keyring::reseal`] old rows at leisure, then remove the old key.
//! - The row's identity (scope + variable name) is the AEAD's associated data ([`SecretAad`]),
//!   so a ciphertext copied onto another row or renamed variable fails to open instead of
//!   silently serving one service's password to another.
//! - Plaintext lives only in [`SecretString`], whose `Debug`, `Display` and `Serialize` all print
//!   [`MASK`]; reading it takes an explicit [`SecretString::expose`]. Error messages never
//!   contain plaintext or key material.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::rand_core::RngCore as _;
use chacha20poly1305::aead::{Aead as _, OsRng, Payload};
use chacha20poly1305::{KeyInit as _, XChaCha20Poly1305, XNonce};
use zeroize::{Zeroize as _, Zeroizing};

use crate::error::{Error, InvalidInput, Result};

/// What every API response, log line and view shows instead of a secret value.
pub const MASK: &str = "********";

/// Bytes in a [`SecretKey`] (XChaCha20-Poly1305 uses 256-bit keys).
pub const KEY_LEN: usize = 32;

/// Bytes in a nonce. XChaCha's 192-bit nonce is why we can pick nonces at random per seal without
/// tracking counters: the collision probability stays negligible for any realistic row count.
pub const NONCE_LEN: usize = 24;

/// Bytes of the Poly1305 tag appended to every ciphertext.
const TAG_LEN: usize = 16;

// ---------------------------------------------------------------------------------------------
// SecretString

/// A plaintext secret in memory. It is wiped on drop and cannot leak through formatting or
/// serialization: `Debug`, `Display` and `Serialize` all produce [`MASK`].
///
/// There is deliberately no `Deserialize`: a masked value read back would silently replace the
/// real secret with `********`. Inputs arrive as `String` and are wrapped with
/// [`SecretString::new`].
#[derive(Clone)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        SecretString(Zeroizing::new(value.into()))
    }

    /// The plaintext. Named so that every read of a secret is easy to find in review.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Equality compares the plaintexts (so specs holding secrets can be compared in tests and
/// reconcilers). It is not constant-time: never use it to check a credential.
impl PartialEq for SecretString {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for SecretString {}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        SecretString::new(value)
    }
}

impl From<&str> for SecretString {
    fn from(value: &str) -> Self {
        SecretString::new(value)
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl serde::Serialize for SecretString {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(MASK)
    }
}

// ---------------------------------------------------------------------------------------------
// Keys

/// A 256-bit encryption key, wiped from memory on drop.
#[derive(Clone)]
pub struct SecretKey(Zeroizing<[u8; KEY_LEN]>);

impl SecretKey {
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        SecretKey(Zeroizing::new(bytes))
    }

    /// A fresh random key from the operating system's CSPRNG.
    pub fn generate() -> Result<Self> {
        let mut key = SecretKey(Zeroizing::new([0u8; KEY_LEN]));
        OsRng
            .try_fill_bytes(key.0.as_mut_slice())
            .map_err(|e| Error::Secret(format!("the OS random generator failed: {e}")))?;
        Ok(key)
    }

    /// Decode standard base64 (44 characters with padding). The error never echoes the input.
    pub fn from_base64(encoded: &str) -> Result<Self> {
        let decoded = Zeroizing::new(
            BASE64
                .decode(encoded.trim())
                .map_err(|_| Error::Secret("key material is not valid base64".into()))?,
        );
        let bytes: [u8; KEY_LEN] = decoded.as_slice().try_into().map_err(|_| {
            Error::Secret(format!(
                "key material must decode to {KEY_LEN} bytes, got {}",
                decoded.len()
            ))
        })?;
        Ok(SecretKey::from_bytes(bytes))
    }

    /// Standard base64, wrapped so the encoded key cannot be logged by accident either.
    pub fn to_base64(&self) -> SecretString {
        SecretString::new(BASE64.encode(self.0.as_slice()))
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.0.as_slice().into())
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({MASK})")
    }
}

/// The name of a key in a [`Keyring`], stored next to every ciphertext: `[a-z0-9-]{1,32}`.
///
/// The charset keeps ids safe inside the keyring's text form, file names and log lines.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct KeyId(String);

impl KeyId {
    pub const MAX_LEN: usize = 32;

    pub fn new(id: impl Into<String>) -> Result<Self, InvalidInput> {
        let id = id.into();
        if id.is_empty() || id.len() > Self::MAX_LEN {
            return Err(InvalidInput::new(
                "key_id",
                "length",
                format!(
                    "key id `{}` must be 1 to {} characters",
                    id.escape_debug(),
                    Self::MAX_LEN
                ),
            ));
        }
        if !id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(InvalidInput::new(
                "key_id",
                "charset",
                format!(
                    "key id `{}` may only contain a-z, 0-9 and `-`",
                    id.escape_debug()
                ),
            ));
        }
        Ok(KeyId(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for KeyId {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KeyId::new(s)
    }
}

impl TryFrom<String> for KeyId {
    type Error = InvalidInput;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        KeyId::new(s)
    }
}

impl From<KeyId> for String {
    fn from(id: KeyId) -> String {
        id.0
    }
}

// ---------------------------------------------------------------------------------------------
// Associated data

/// The identity of the row a secret belongs to, authenticated (not encrypted) with it.
///
/// Built from the scope's stable string form (`service:<uuid>`) and the variable name. Opening
/// with any other scope or name fails, so ciphertexts cannot be moved between rows.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SecretAad {
    scope: String,
    key: String,
}

impl SecretAad {
    pub fn new(scope: impl Into<String>, key: impl Into<String>) -> Self {
        SecretAad {
            scope: scope.into(),
            key: key.into(),
        }
    }

    pub fn scope(&self) -> &str {
        &self.scope
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// Length-prefixed so no two (scope, key) pairs encode alike (`a:b`+`c` vs `a`+`b:c`), with a
    /// versioned domain tag so a future layout cannot collide with this one.
    fn to_bytes(&self) -> Vec<u8> {
        const DOMAIN: &[u8] = b"clank-secret-v1\0";
        let mut out = Vec::with_capacity(DOMAIN.len() + 8 + self.scope.len() + self.key.len());
        out.extend_from_slice(DOMAIN);
        for part in [&self.scope, &self.key] {
            out.extend_from_slice(&(part.len() as u64).to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
        out
    }
}

impl fmt::Display for SecretAad {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` at {}", self.key, self.scope)
    }
}

// ---------------------------------------------------------------------------------------------
// Sealed secrets

/// A secret as stored: which key sealed it, the random nonce and the ciphertext (with tag).
///
/// Serializes to JSON as `{"key_id": "k1", "nonce": "<base64>", "ciphertext": "<base64>"}`.
/// `Debug` shows the key id and ciphertext length only.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "SealedRepr", into = "SealedRepr")]
pub struct SealedSecret {
    key_id: KeyId,
    nonce: [u8; NONCE_LEN],
    ciphertext: Vec<u8>,
}

impl SealedSecret {
    /// The key this secret was sealed under; rotation jobs look for ids that are not active.
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }
}

impl fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedSecret")
            .field("key_id", &self.key_id)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

/// The storage form of [`SealedSecret`]; base64 keeps binary out of JSON.
#[derive(serde::Serialize, serde::Deserialize)]
struct SealedRepr {
    key_id: KeyId,
    nonce: String,
    ciphertext: String,
}

impl From<SealedSecret> for SealedRepr {
    fn from(s: SealedSecret) -> Self {
        SealedRepr {
            key_id: s.key_id,
            nonce: BASE64.encode(s.nonce),
            ciphertext: BASE64.encode(&s.ciphertext),
        }
    }
}

impl TryFrom<SealedRepr> for SealedSecret {
    type Error = String;
    fn try_from(r: SealedRepr) -> Result<Self, String> {
        let nonce = BASE64
            .decode(&r.nonce)
            .map_err(|_| "sealed secret nonce is not valid base64".to_owned())?;
        let nonce: [u8; NONCE_LEN] = nonce.as_slice().try_into().map_err(|_| {
            format!(
                "sealed secret nonce must be {NONCE_LEN} bytes, got {}",
                nonce.len()
            )
        })?;
        let ciphertext = BASE64
            .decode(&r.ciphertext)
            .map_err(|_| "sealed secret ciphertext is not valid base64".to_owned())?;
        if ciphertext.len() < TAG_LEN {
            return Err(format!(
                "sealed secret ciphertext is {} bytes, shorter than its {TAG_LEN}-byte tag",
                ciphertext.len()
            ));
        }
        Ok(SealedSecret {
            key_id: r.key_id,
            nonce,
            ciphertext,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Keyring

/// All keys that may have sealed a stored secret, and which one seals new ones.
///
/// Rotation: [`add_key`](Keyring::add_key) a new key, [`set_active`](Keyring::set_active) it,
/// [`reseal`](Keyring::reseal) every row still on an old key (including deployment snapshots,
/// or rollbacks to them will fail), then [`remove_key`](Keyring::remove_key) the old one.
///
/// Text form (kept by the daemon in a 0600 file): `k1:<base64>,k2:<base64>;active=k2`.
/// There is deliberately no `Display`/`Serialize`: use [`Keyring::export`], which returns a
/// [`SecretString`].
#[derive(Clone)]
pub struct Keyring {
    active: KeyId,
    keys: BTreeMap<KeyId, SecretKey>,
}

impl Keyring {
    /// A keyring holding one key, which is active.
    pub fn new(id: KeyId, key: SecretKey) -> Self {
        let mut keys = BTreeMap::new();
        keys.insert(id.clone(), key);
        Keyring { active: id, keys }
    }

    /// A fresh random key, for a new keyring or a rotation.
    pub fn generate_key() -> Result<SecretKey> {
        SecretKey::generate()
    }

    /// Add a key without activating it. Refuses to replace an existing id: replacing key material
    /// under a used id would make every secret sealed with the old material unreadable.
    pub fn add_key(&mut self, id: KeyId, key: SecretKey) -> Result<()> {
        if self.keys.contains_key(&id) {
            return Err(Error::Conflict(format!(
                "key `{id}` is already in the keyring; pick a new id for new key material"
            )));
        }
        self.keys.insert(id, key);
        Ok(())
    }

    /// Make `id` the key new secrets are sealed with.
    pub fn set_active(&mut self, id: &KeyId) -> Result<()> {
        if !self.keys.contains_key(id) {
            return Err(self.unknown_key(id));
        }
        self.active = id.clone();
        Ok(())
    }

    /// Remove a retired key. Secrets still sealed with it can no longer be opened, so reseal
    /// them first. The active key cannot be removed.
    pub fn remove_key(&mut self, id: &KeyId) -> Result<SecretKey> {
        if *id == self.active {
            return Err(Error::Conflict(format!(
                "key `{id}` is the active key; activate another key before removing it"
            )));
        }
        self.keys.remove(id).ok_or_else(|| self.unknown_key(id))
    }

    pub fn active(&self) -> &KeyId {
        &self.active
    }

    pub fn contains(&self, id: &KeyId) -> bool {
        self.keys.contains_key(id)
    }

    /// Key ids in sorted order.
    pub fn key_ids(&self) -> impl Iterator<Item = &KeyId> {
        self.keys.keys()
    }

    /// Encrypt `plaintext` for the row named by `aad`, under the active key, with a fresh random
    /// nonce (so sealing the same value twice gives different ciphertexts).
    pub fn seal(&self, plaintext: &str, aad: &SecretAad) -> Result<SealedSecret> {
        let key = self
            .keys
            .get(&self.active)
            .ok_or_else(|| self.unknown_key(&self.active))?;
        let mut nonce = [0u8; NONCE_LEN];
        OsRng
            .try_fill_bytes(&mut nonce)
            .map_err(|e| Error::Secret(format!("the OS random generator failed: {e}")))?;
        let aad_bytes = aad.to_bytes();
        let ciphertext = key
            .cipher()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: &aad_bytes,
                },
            )
            .map_err(|_| Error::Secret(format!("could not seal {aad}")))?;
        Ok(SealedSecret {
            key_id: self.active.clone(),
            nonce,
            ciphertext,
        })
    }

    /// Decrypt a secret sealed for the row named by `aad`. Fails if the key is gone, the
    /// ciphertext was altered, or it belongs to another row.
    pub fn open(&self, sealed: &SealedSecret, aad: &SecretAad) -> Result<SecretString> {
        let key = self.keys.get(&sealed.key_id).ok_or_else(|| {
            Error::Secret(format!(
                "cannot open {aad}: it is sealed with key `{}`, which is not in the keyring \
                 (keys: {})",
                sealed.key_id,
                self.key_list()
            ))
        })?;
        let aad_bytes = aad.to_bytes();
        let plaintext = key
            .cipher()
            .decrypt(
                XNonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: &aad_bytes,
                },
            )
            .map_err(|_| {
                // AEAD failures are deliberately indistinguishable; list the usual causes.
                Error::Secret(format!(
                    "cannot open {aad} with key `{}`: authentication failed (the ciphertext was \
                     altered, belongs to another scope or variable, or the key material changed)",
                    sealed.key_id
                ))
            })?;
        match String::from_utf8(plaintext) {
            Ok(s) => Ok(SecretString::new(s)),
            Err(e) => {
                e.into_bytes().zeroize();
                Err(Error::Secret(format!("secret {aad} is not valid UTF-8")))
            }
        }
    }

    /// Re-encrypt under the active key (rotation). Always produces a fresh nonce; use
    /// [`Keyring::is_current`] to skip rows that are already on the active key.
    pub fn reseal(&self, sealed: &SealedSecret, aad: &SecretAad) -> Result<SealedSecret> {
        let plaintext = self.open(sealed, aad)?;
        self.seal(plaintext.expose(), aad)
    }

    /// Whether `sealed` is already under the active key (no reseal needed).
    pub fn is_current(&self, sealed: &SealedSecret) -> bool {
        sealed.key_id == self.active
    }

    /// Parse the text form `k1:<base64>,k2:<base64>;active=k2`. Whitespace around separators
    /// (including a trailing newline) is ignored. Errors name key ids, never key material.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |msg: String| Error::Secret(format!("keyring: {msg}"));
        let (keys_part, active_part) = text.trim().rsplit_once(';').ok_or_else(|| {
            bad("expected `<id>:<base64>,...;active=<id>` (missing `;active=`)".into())
        })?;
        let active = active_part
            .trim()
            .strip_prefix("active=")
            .ok_or_else(|| bad("expected `active=<id>` after the last `;`".into()))?;
        let active = KeyId::new(active.trim()).map_err(|e| bad(e.message))?;

        let mut keys = BTreeMap::new();
        for (i, entry) in keys_part.split(',').enumerate() {
            let (id, material) = entry
                .trim()
                .split_once(':')
                .ok_or_else(|| bad(format!("entry {} is not `<id>:<base64>`", i + 1)))?;
            let id = KeyId::new(id.trim()).map_err(|e| bad(e.message))?;
            let key = SecretKey::from_base64(material)
                .map_err(|e| bad(format!("key `{id}`: {}", secret_message(e))))?;
            if keys.insert(id.clone(), key).is_some() {
                return Err(bad(format!("key `{id}` appears twice")));
            }
        }
        if !keys.contains_key(&active) {
            return Err(bad(format!("active key `{active}` is not among the keys")));
        }
        Ok(Keyring { active, keys })
    }

    /// The text form [`Keyring::parse`] reads, wrapped because it contains every key.
    pub fn export(&self) -> SecretString {
        let mut out = String::new();
        for (i, (id, key)) in self.keys.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(id.as_str());
            out.push(':');
            out.push_str(key.to_base64().expose());
        }
        out.push_str(";active=");
        out.push_str(self.active.as_str());
        SecretString::new(out)
    }

    fn unknown_key(&self, id: &KeyId) -> Error {
        Error::Secret(format!(
            "key `{id}` is not in the keyring (keys: {})",
            self.key_list()
        ))
    }

    fn key_list(&self) -> String {
        self.keys
            .keys()
            .map(KeyId::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl FromStr for Keyring {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Keyring::parse(s)
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("active", &self.active)
            .field("keys", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The message of a `Secret` error without its `secret: ` prefix, for nesting.
fn secret_message(e: Error) -> String {
    match e {
        Error::Secret(msg) => msg,
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAINTEXT: &str = "postgres://app:hunter2-very-secret@db/app";

    fn key_id(s: &str) -> KeyId {
        KeyId::new(s).unwrap()
    }

    fn keyring() -> Keyring {
        Keyring::new(key_id("k1"), SecretKey::from_bytes([7; KEY_LEN]))
    }

    fn aad() -> SecretAad {
        SecretAad::new(
            "service:0190a6a4-0000-7000-8000-000000000001",
            "DATABASE_URL",
        )
    }

    fn err_text(r: Result<impl fmt::Debug>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn seal_then_open_round_trips_the_plaintext() {
        let ring = keyring();
        let sealed = ring.seal(PLAINTEXT, &aad()).unwrap();
        assert_eq!(sealed.key_id(), &key_id("k1"));
        assert_eq!(ring.open(&sealed, &aad()).unwrap().expose(), PLAINTEXT);
    }

    #[test]
    fn empty_and_unicode_values_round_trip() {
        let ring = keyring();
        for value in ["", "pässwörd 🔑"] {
            let sealed = ring.seal(value, &aad()).unwrap();
            assert_eq!(ring.open(&sealed, &aad()).unwrap().expose(), value);
        }
    }

    #[test]
    fn sealing_twice_uses_fresh_nonces() {
        let ring = keyring();
        let a = ring.seal(PLAINTEXT, &aad()).unwrap();
        let b = ring.seal(PLAINTEXT, &aad()).unwrap();
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
    }

    #[test]
    fn ciphertext_copied_to_another_row_fails_to_open() {
        let ring = keyring();
        let sealed = ring.seal(PLAINTEXT, &aad()).unwrap();
        let other_row = SecretAad::new(
            "service:0190a6a4-0000-7000-8000-000000000002",
            "DATABASE_URL",
        );
        let msg = err_text(ring.open(&sealed, &other_row));
        assert!(msg.contains("authentication failed"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
    }

    #[test]
    fn ciphertext_moved_to_another_variable_name_fails_to_open() {
        let ring = keyring();
        let sealed = ring.seal(PLAINTEXT, &aad()).unwrap();
        let other_key = SecretAad::new(aad().scope(), "REDIS_URL");
        assert!(ring.open(&sealed, &other_key).is_err());
    }

    #[test]
    fn aad_encoding_does_not_confuse_scope_and_key_boundaries() {
        let ring = keyring();
        let sealed = ring.seal(PLAINTEXT, &SecretAad::new("a:b", "c")).unwrap();
        assert!(ring.open(&sealed, &SecretAad::new("a", "b:c")).is_err());
        assert!(ring.open(&sealed, &SecretAad::new("a:", "bc")).is_err());
    }

    #[test]
    fn tampered_ciphertext_or_nonce_fails_to_open() {
        let ring = keyring();
        let sealed = ring.seal(PLAINTEXT, &aad()).unwrap();

        let mut flipped = sealed.clone();
        flipped.ciphertext[0] ^= 1;
        assert!(ring.open(&flipped, &aad()).is_err());

        let mut truncated = sealed.clone();
        truncated.ciphertext.pop();
        assert!(ring.open(&truncated, &aad()).is_err());

        let mut renonced = sealed;
        renonced.nonce[0] ^= 1;
        assert!(ring.open(&renonced, &aad()).is_err());
    }

    #[test]
    fn same_key_id_with_other_key_material_fails_to_open() {
        let sealed = keyring().seal(PLAINTEXT, &aad()).unwrap();
        let impostor = Keyring::new(key_id("k1"), SecretKey::from_bytes([8; KEY_LEN]));
        assert!(impostor.open(&sealed, &aad()).is_err());
    }

    #[test]
    fn old_ciphertext_still_opens_after_a_new_active_key_is_added() {
        let mut ring = keyring();
        let old = ring.seal(PLAINTEXT, &aad()).unwrap();
        ring.add_key(key_id("k2"), Keyring::generate_key().unwrap())
            .unwrap();
        ring.set_active(&key_id("k2")).unwrap();

        assert_eq!(ring.open(&old, &aad()).unwrap().expose(), PLAINTEXT);
        assert_eq!(ring.seal("new", &aad()).unwrap().key_id(), &key_id("k2"));
    }

    #[test]
    fn reseal_moves_a_secret_to_the_active_key() {
        let mut ring = keyring();
        let old = ring.seal(PLAINTEXT, &aad()).unwrap();
        ring.add_key(key_id("k2"), SecretKey::generate().unwrap())
            .unwrap();
        ring.set_active(&key_id("k2")).unwrap();
        assert!(!ring.is_current(&old));

        let resealed = ring.reseal(&old, &aad()).unwrap();
        assert_eq!(resealed.key_id(), &key_id("k2"));
        assert!(ring.is_current(&resealed));

        ring.remove_key(&key_id("k1")).unwrap();
        assert_eq!(ring.open(&resealed, &aad()).unwrap().expose(), PLAINTEXT);
    }

    #[test]
    fn removing_the_old_key_makes_unresealed_secrets_fail_naming_the_key() {
        let mut ring = keyring();
        let old = ring.seal(PLAINTEXT, &aad()).unwrap();
        ring.add_key(key_id("k2"), SecretKey::generate().unwrap())
            .unwrap();
        ring.set_active(&key_id("k2")).unwrap();
        ring.remove_key(&key_id("k1")).unwrap();

        let err = ring.open(&old, &aad()).unwrap_err();
        assert!(matches!(err, Error::Secret(_)));
        let msg = err.to_string();
        assert!(msg.contains("key `k1`"), "{msg}");
        assert!(msg.contains("DATABASE_URL"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
        assert!(ring.reseal(&old, &aad()).is_err());
    }

    #[test]
    fn keyring_refuses_to_remove_the_active_key_or_reuse_an_id() {
        let mut ring = keyring();
        assert!(matches!(
            ring.remove_key(&key_id("k1")),
            Err(Error::Conflict(_))
        ));
        let dup = ring.add_key(key_id("k1"), SecretKey::from_bytes([9; KEY_LEN]));
        assert!(matches!(dup, Err(Error::Conflict(_))));
        // The original material is still in place.
        let sealed = ring.seal(PLAINTEXT, &aad()).unwrap();
        assert!(keyring().open(&sealed, &aad()).is_ok());
    }

    #[test]
    fn activating_an_unknown_key_names_it() {
        let msg = err_text(keyring().set_active(&key_id("k9")));
        assert!(msg.contains("`k9`"), "{msg}");
    }

    #[test]
    fn key_ids_accept_only_short_lowercase_names() {
        for ok in ["k1", "2026-11", "a", &"x".repeat(32)] {
            assert!(KeyId::new(ok).is_ok(), "{ok}");
        }
        assert_eq!(KeyId::new("").unwrap_err().rule, "length");
        assert_eq!(KeyId::new("x".repeat(33)).unwrap_err().rule, "length");
        for bad in ["K1", "k_1", "k 1", "k:1", "k,1", "ké"] {
            assert_eq!(KeyId::new(bad).unwrap_err().rule, "charset", "{bad}");
        }
        assert!(serde_json::from_str::<KeyId>("\"K1\"").is_err());
    }

    #[test]
    fn keyring_text_form_round_trips() {
        let mut ring = keyring();
        let under_k1 = ring.seal(PLAINTEXT, &aad()).unwrap();
        ring.add_key(key_id("k2"), SecretKey::generate().unwrap())
            .unwrap();
        ring.set_active(&key_id("k2")).unwrap();
        let under_k2 = ring.seal(PLAINTEXT, &aad()).unwrap();

        let text = ring.export();
        assert!(text.expose().ends_with(";active=k2"), "{}", text.expose());
        // Files usually end with a newline.
        let parsed = Keyring::parse(&format!("{}\n", text.expose())).unwrap();
        assert_eq!(parsed.active(), &key_id("k2"));
        assert_eq!(
            parsed.key_ids().map(KeyId::as_str).collect::<Vec<_>>(),
            ["k1", "k2"]
        );
        assert_eq!(parsed.open(&under_k1, &aad()).unwrap().expose(), PLAINTEXT);
        assert_eq!(parsed.open(&under_k2, &aad()).unwrap().expose(), PLAINTEXT);
    }

    #[test]
    fn keyring_text_form_rejects_malformed_input_without_echoing_key_material() {
        let k = BASE64.encode([1u8; KEY_LEN]);
        let cases = [
            (format!("k1:{k}"), "missing `;active=`"),
            (format!("k1:{k};active=k2"), "`k2` is not among"),
            (format!("k1:{k},k1:{k};active=k1"), "`k1` appears twice"),
            ("k1:c2hvcnQ=;active=k1".to_owned(), "key `k1`"),
            ("k1:not-base64!!;active=k1".to_owned(), "not valid base64"),
            (format!("K1:{k};active=K1"), "may only contain"),
            (format!("k1{k};active=k1"), "entry 1"),
        ];
        for (text, expected) in cases {
            let msg = err_text(Keyring::parse(&text));
            assert!(msg.contains(expected), "{text}: {msg}");
            assert!(!msg.contains(&k) && !msg.contains("c2hvcnQ"), "{msg}");
        }
    }

    #[test]
    fn secret_string_never_formats_or_serializes_its_value() {
        let s = SecretString::new(PLAINTEXT);
        for shown in [
            format!("{s:?}"),
            format!("{s}"),
            format!("{s:#?}"),
            serde_json::to_string(&s).unwrap(),
            format!("{:?}", Some(s.clone())),
        ] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains(MASK), "{shown}");
        }
        assert_eq!(s.expose(), PLAINTEXT);
    }

    #[test]
    fn sealed_secret_debug_and_json_never_contain_the_plaintext() {
        let ring = keyring();
        let sealed = ring.seal(PLAINTEXT, &aad()).unwrap();
        let debug = format!("{sealed:?}");
        assert!(debug.contains("k1"), "{debug}");
        assert!(!debug.contains("hunter2"), "{debug}");
        let ciphertext_b64 = BASE64.encode(&sealed.ciphertext);
        assert!(
            !debug.contains(&ciphertext_b64),
            "debug leaks ciphertext: {debug}"
        );
        assert!(
            !debug.contains(&format!("{:?}", sealed.ciphertext)),
            "{debug}"
        );

        let json = serde_json::to_string(&sealed).unwrap();
        assert!(!json.contains("hunter2"), "{json}");
        let back: SealedSecret = serde_json::from_str(&json).unwrap();
        assert_eq!(back, sealed);
        assert_eq!(ring.open(&back, &aad()).unwrap().expose(), PLAINTEXT);
    }

    #[test]
    fn sealed_secret_json_with_bad_fields_is_rejected() {
        let nonce = BASE64.encode([0u8; NONCE_LEN]);
        let tag = BASE64.encode([0u8; TAG_LEN]);
        let short_nonce = BASE64.encode([0u8; 12]);
        for json in [
            format!(r#"{{"key_id":"k1","nonce":"{short_nonce}","ciphertext":"{tag}"}}"#),
            format!(r#"{{"key_id":"k1","nonce":"{nonce}","ciphertext":"AAAA"}}"#),
            format!(r#"{{"key_id":"k1","nonce":"???","ciphertext":"{tag}"}}"#),
            format!(r#"{{"key_id":"K!","nonce":"{nonce}","ciphertext":"{tag}"}}"#),
        ] {
            assert!(
                serde_json::from_str::<SealedSecret>(&json).is_err(),
                "{json}"
            );
        }
    }

    #[test]
    fn key_material_never_appears_in_debug() {
        let ring = keyring();
        let debug = format!("{ring:?} {:?}", SecretKey::from_bytes([7; KEY_LEN]));
        assert!(debug.contains("SecretKey(********)"), "{debug}");
        assert!(!debug.contains(&BASE64.encode([7u8; KEY_LEN])), "{debug}");
        assert!(!debug.contains("7, 7"), "{debug}");
        assert!(debug.contains("k1"), "{debug}");
    }
}
