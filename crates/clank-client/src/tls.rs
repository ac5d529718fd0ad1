//! HTTPS to the daemon: one rustls configuration on the workspace's one crypto provider (ring;
//! reqwest's own default would bring aws-lc-rs, and two providers make rustls panic), trusting
//! the system's CA roots plus, optionally, one more CA certificate file (PEM) for a daemon
//! whose certificate a private CA signed. The client library and the `clank` CLI both build
//! their HTTP client here, and both explain a certificate that is not trusted the same way.
//!
//! Plain `http://` needs none of this, but every reqwest client of the workspace needs a TLS
//! configuration to be built at all: [`client_builder`] is how to make one.

use std::path::Path;
use std::sync::Arc;

use clank_core::{Error, InvalidInput, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};

/// The workspace's one rustls crypto provider.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The CA certificates of a PEM file: at least one, or an error (field `ca_cert`) saying what
/// is wrong with the file.
pub fn read_ca_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let invalid =
        |rule: &'static str, why: String| Error::Invalid(InvalidInput::new("ca_cert", rule, why));
    let pem = std::fs::read(path).map_err(|e| {
        invalid(
            "readable",
            format!("cannot read the CA certificate {}: {e}", path.display()),
        )
    })?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| {
            invalid(
                "format",
                format!("{} is not a PEM certificate file: {e}", path.display()),
            )
        })?;
    if certs.is_empty() {
        return Err(invalid(
            "format",
            format!(
                "{} holds no certificate (expected a PEM `-----BEGIN CERTIFICATE-----` block)",
                path.display()
            ),
        ));
    }
    // Each must be a CA certificate rustls can trust (else it would be dropped silently).
    let mut store = rustls::RootCertStore::empty();
    for cert in &certs {
        store.add(cert.clone()).map_err(|e| {
            invalid(
                "format",
                format!(
                    "{} holds a certificate that cannot be trusted: {e}",
                    path.display()
                ),
            )
        })?;
    }
    Ok(certs)
}

/// The rustls client configuration of calls to the daemon: ring, TLS 1.2 and 1.3, HTTP/1.1,
/// the system's roots plus the CA certificates of `ca_cert` (a PEM file) when given.
pub fn client_config(ca_cert: Option<&Path>) -> Result<rustls::ClientConfig> {
    let extra = match ca_cert {
        Some(path) => read_ca_certs(path)?,
        None => Vec::new(),
    };
    let provider = provider();
    let verifier: Arc<dyn ServerCertVerifier> =
        match rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone()) {
            Ok(v) => Arc::new(v),
            // Only when the system has no CA store and no `ca_cert` was given (or it could
            // not be added): plain http:// still works, every certificate is refused saying so.
            Err(e) => Arc::new(NoRoots {
                reason: format!("no CA certificates to trust ({e})"),
                schemes: provider
                    .signature_verification_algorithms
                    .supported_schemes(),
            }),
        };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Reported {
            kind: clank_core::ErrorKind::Internal,
            message: format!("TLS configuration: {e}"),
            field: None,
        })?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A reqwest client builder speaking HTTPS through [`client_config`] (and plain HTTP): what
/// every reqwest client in the workspace should start from, since reqwest's own TLS default
/// has no crypto provider here.
pub fn client_builder(ca_cert: Option<&Path>) -> Result<reqwest::ClientBuilder> {
    Ok(reqwest::Client::builder().tls_backend_preconfigured(client_config(ca_cert)?))
}

/// What went wrong in a TLS handshake, when a call failed there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsFailure {
    /// The server's certificate was refused: the verifier's reason (unknown issuer, expired,
    /// not valid for this name, …).
    Untrusted(String),
    /// Any other handshake failure (e.g. the port does not speak TLS).
    Handshake(String),
}

impl TlsFailure {
    /// Find the TLS error among `e`'s causes.
    pub fn of(e: &(dyn std::error::Error + 'static)) -> Option<TlsFailure> {
        let tls = rustls_error(e)?;
        Some(match tls {
            rustls::Error::InvalidCertificate(_) => TlsFailure::Untrusted(tls.to_string()),
            _ => TlsFailure::Handshake(tls.to_string()),
        })
    }

    /// What to tell the user about reaching `url`; `ca_option` is how they give a CA
    /// certificate (the CLI's `--ca-cert FILE`, the library's `ca_cert` option).
    pub fn advice(&self, url: &str, ca_option: &str) -> String {
        match self {
            TlsFailure::Untrusted(why) => format!(
                "the daemon at {url} presented a TLS certificate this client does not trust \
                 ({why}). If a private CA signed it, trust that CA's certificate (PEM) with \
                 {ca_option}; a publicly issued certificate (e.g. ACME) needs the system's CA \
                 store (the `ca-certificates` package); and the URL's host must be a name the \
                 certificate was issued for"
            ),
            TlsFailure::Handshake(why) => format!(
                "the TLS handshake with the daemon at {url} failed ({why}); does that address \
                 serve HTTPS? A daemon without TLS is reached with http://"
            ),
        }
    }
}

/// The rustls error among `e` and its causes, looking inside the wrappers `source()` skips:
/// an `io::Error` (tokio-rustls returns the handshake's error in one) and a boxed error.
fn rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(tls) = e.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    let inner: Option<&(dyn std::error::Error + 'static)> = e
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
        .map(|inner| inner as _);
    inner
        .and_then(rustls_error)
        .or_else(|| e.source().and_then(rustls_error))
}

/// The verifier when there is nothing to trust: refuses every certificate, saying why.
#[derive(Debug)]
struct NoRoots {
    reason: String,
    schemes: Vec<SignatureScheme>,
}

impl NoRoots {
    fn refuse(&self) -> rustls::Error {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(
            std::io::Error::other(self.reason.clone()),
        ))))
    }
}

impl ServerCertVerifier for NoRoots {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Err(self.refuse())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        Err(self.refuse())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        Err(self.refuse())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_that_is_missing_or_not_pem_is_refused_naming_ca_cert() {
        let dir = std::env::temp_dir().join(format!("clank-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let garbage = dir.join("garbage.pem");
        std::fs::write(&garbage, "not a certificate\n").unwrap();
        for path in [dir.join("missing.pem"), garbage] {
            let e = client_config(Some(&path)).unwrap_err();
            assert_eq!(
                (e.kind(), e.field()),
                (clank_core::ErrorKind::Invalid, Some("ca_cert")),
                "{e}"
            );
            assert!(e.to_string().contains(&path.display().to_string()), "{e}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_plain_client_builds_without_a_process_default_provider() {
        // reqwest's `rustls-no-provider` panics at build() unless the config is preconfigured.
        client_builder(None).unwrap().build().unwrap();
    }
}
