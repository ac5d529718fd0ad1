//! TLS termination with rustls on the `ring` provider (the one provider for the whole
//! workspace: aws-lc-rs costs minutes of C build, and two providers make rustls panic).
//! Certificates are selected by SNI from an in-memory store (exact name, then one-label
//! wildcard); ALPN offers `h2` and `http/1.1`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::ProxyError;
use crate::table::normalise_host;

/// A certificate the user brings (PEM files), served for `domains`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsCertificate {
    /// Names (or `*.example.com` wildcards) this certificate is served for.
    pub domains: Vec<String>,
    /// The chain, leaf first.
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The SNI-indexed certificates; cheap to read on every handshake, replaced per name.
#[derive(Debug, Default)]
pub(crate) struct CertStore {
    by_name: RwLock<HashMap<String, Arc<CertifiedKey>>>,
    /// TLS-ALPN-01 challenge certificates by name, served only to `acme-tls/1` handshakes.
    alpn_challenges: RwLock<HashMap<String, Arc<CertifiedKey>>>,
}

/// The ALPN protocol of TLS-ALPN-01 validation handshakes (RFC 8737).
pub(crate) const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

impl CertStore {
    pub(crate) fn insert(&self, domains: &[String], key: Arc<CertifiedKey>) {
        let mut map = match self.by_name.write() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        for d in domains {
            map.insert(normalise_host(d).into_owned(), key.clone());
        }
    }

    pub(crate) fn remove(&self, domain: &str) -> bool {
        let mut map = match self.by_name.write() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        map.remove(normalise_host(domain).as_ref()).is_some()
    }

    pub(crate) fn set_alpn_challenge(&self, domain: &str, key: Option<Arc<CertifiedKey>>) -> bool {
        let mut map = match self.alpn_challenges.write() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        match key {
            Some(k) => map.insert(normalise_host(domain).into_owned(), k).is_some(),
            None => map.remove(normalise_host(domain).as_ref()).is_some(),
        }
    }

    pub(crate) fn names(&self) -> Vec<String> {
        let map = match self.by_name.read() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        let mut names: Vec<String> = map.keys().cloned().collect();
        names.sort();
        names
    }

    fn lookup(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let map = match self.by_name.read() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        let name = normalise_host(name);
        if let Some(k) = map.get(name.as_ref()) {
            return Some(k.clone());
        }
        // `*.example.com` covers exactly one label: `a.example.com`, not `a.b.example.com`.
        let (_, parent) = name.split_once('.')?;
        map.get(&format!("*.{parent}")).cloned()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let acme = hello
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN));
        if acme {
            // A validation handshake gets the challenge certificate or nothing (RFC 8737 §3).
            let name = normalise_host(hello.server_name()?);
            let map = match self.alpn_challenges.read() {
                Ok(m) => m,
                Err(p) => p.into_inner(),
            };
            return map.get(name.as_ref()).cloned();
        }
        // No SNI (an IP literal or an old client): nothing to select by, the handshake fails.
        hello.server_name().and_then(|n| self.lookup(n))
    }
}

/// Parse a PEM chain and key into a signing-ready certificate.
pub(crate) fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<CertifiedKey>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("certificate PEM: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate in the PEM".into());
    }
    let key =
        PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| format!("private key PEM: {e}"))?;
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("private key: {e}"))?;
    Ok(Arc::new(CertifiedKey::new(certs, signing)))
}

/// The self-signed TLS-ALPN-01 certificate for `domain` carrying the `acmeIdentifier`
/// extension (the SHA-256 digest of the key authorization), RFC 8737 §3.
pub(crate) fn alpn_challenge_key(domain: &str, digest: &[u8]) -> Result<Arc<CertifiedKey>, String> {
    let mut params = rcgen::CertificateParams::new(vec![domain.to_owned()])
        .map_err(|e| format!("challenge certificate: {e}"))?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let key = rcgen::KeyPair::generate().map_err(|e| format!("challenge key: {e}"))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("challenge certificate: {e}"))?;
    let der = PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let signing = provider()
        .key_provider
        .load_private_key(der)
        .map_err(|e| format!("challenge key: {e}"))?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signing,
    )))
}

pub(crate) fn load_files(c: &TlsCertificate) -> Result<Arc<CertifiedKey>, ProxyError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|e| ProxyError::Config(format!("{}: {e}", p.display())))
    };
    certified_key(&read(&c.cert_file)?, &read(&c.key_file)?)
        .map_err(|e| ProxyError::Config(format!("{}: {e}", c.cert_file.display())))
}

pub(crate) fn server_config(
    store: Arc<CertStore>,
) -> Result<Arc<rustls::ServerConfig>, ProxyError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ProxyError::Config(format!("TLS: {e}")))?
        .with_no_client_auth()
        .with_cert_resolver(store);
    // `acme-tls/1` last: only validation clients offer it, and they get no HTTP.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec(), ACME_TLS_ALPN.to_vec()];
    Ok(Arc::new(config))
}
