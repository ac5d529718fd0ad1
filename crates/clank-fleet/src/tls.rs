//! The agent endpoint's TLS identity: a self-signed certificate made at first start and kept
//! in the data directory. Agents pin its SHA-256 fingerprint (given with the join token), so
//! no CA, DNS name or public certificate is needed, and a man in the middle cannot present
//! another certificate to steal the credential.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use clank_core::error::{Error, Result};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use sha2::{Digest, Sha256};

/// The endpoint's certificate and key (PEM) and the fingerprint agents pin.
#[derive(Clone)]
pub struct EndpointTls {
    pub cert_pem: String,
    pub key_pem: String,
    /// `sha256:<hex of the DER certificate>`.
    pub fingerprint: String,
}

impl std::fmt::Debug for EndpointTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointTls")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

fn io(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::StoreUnavailable(format!("{what} `{}`: {e}", path.display()))
}

/// `sha256:<hex>` of the first certificate in `pem`.
pub fn fingerprint_of_pem(pem: &str) -> Result<String> {
    let der = CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| Error::Internal(format!("agent endpoint certificate: {e}")))?;
    Ok(format!("sha256:{}", hex::encode(Sha256::digest(&der))))
}

impl EndpointTls {
    /// Read `agent-endpoint.crt`/`.key` from `dir`, or make them (names: the certificate's
    /// subject alternative names, informative only since agents pin the fingerprint).
    pub fn load_or_create(dir: &Path, names: &[String]) -> Result<EndpointTls> {
        let cert_path = dir.join("agent-endpoint.crt");
        let key_path = dir.join("agent-endpoint.key");
        if cert_path.exists() && key_path.exists() {
            let cert_pem =
                std::fs::read_to_string(&cert_path).map_err(|e| io("read", &cert_path, e))?;
            let key_pem =
                std::fs::read_to_string(&key_path).map_err(|e| io("read", &key_path, e))?;
            let fingerprint = fingerprint_of_pem(&cert_pem)?;
            return Ok(EndpointTls {
                cert_pem,
                key_pem,
                fingerprint,
            });
        }
        let key = rcgen::KeyPair::generate()
            .map_err(|e| Error::Internal(format!("agent endpoint key: {e}")))?;
        let params = rcgen::CertificateParams::new(names.to_vec())
            .map_err(|e| Error::Internal(format!("agent endpoint certificate: {e}")))?;
        let cert = params
            .self_signed(&key)
            .map_err(|e| Error::Internal(format!("agent endpoint certificate: {e}")))?;
        let cert_pem = cert.pem();
        let key_pem = key.serialize_pem();
        for (path, text, mode) in [(&key_path, &key_pem, 0o600), (&cert_path, &cert_pem, 0o644)] {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(path)
                .map_err(|e| io("create", path, e))?;
            f.write_all(text.as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(|e| io("write", path, e))?;
        }
        let fingerprint = fingerprint_of_pem(&cert_pem)?;
        Ok(EndpointTls {
            cert_pem,
            key_pem,
            fingerprint,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_identity_is_made_once_and_its_fingerprint_is_stable() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["localhost".to_owned()];
        let first = EndpointTls::load_or_create(dir.path(), &names).unwrap();
        let again = EndpointTls::load_or_create(dir.path(), &names).unwrap();
        assert_eq!(first.fingerprint, again.fingerprint);
        assert_eq!(
            first.fingerprint,
            fingerprint_of_pem(&first.cert_pem).unwrap()
        );
        assert!(first.fingerprint.starts_with("sha256:") && first.fingerprint.len() == 71);
        let mode = std::fs::metadata(dir.path().join("agent-endpoint.key"))
            .unwrap()
            .permissions();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.mode() & 0o077, 0, "the key is owner-only");
        assert!(!format!("{first:?}").contains("PRIVATE KEY"));
    }
}
