//! TLS to the control plane with a pinned certificate: the agent accepts exactly the
//! certificate whose SHA-256 it was given with its join token, whatever its names or issuer,
//! and still checks the handshake signatures. A different certificate (a man in the middle)
//! fails the handshake before the credential is ever sent.

use std::sync::Arc;

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};

#[derive(Debug)]
struct Pinned {
    sha256: Vec<u8>,
    provider: Arc<CryptoProvider>,
}

/// Parse `sha256:<64 hex>`.
pub fn parse_fingerprint(s: &str) -> Result<Vec<u8>, String> {
    let hex_part = s
        .trim()
        .strip_prefix("sha256:")
        .ok_or_else(|| format!("fingerprint `{s}` must look like sha256:<64 hex digits>"))?;
    let bytes = hex::decode(hex_part).map_err(|e| format!("fingerprint `{s}`: {e}"))?;
    if bytes.len() != 32 {
        return Err(format!("fingerprint `{s}`: a SHA-256 is 32 bytes"));
    }
    Ok(bytes)
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = Sha256::digest(end_entity.as_ref());
        if got.as_slice() == self.sha256.as_slice() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the control plane's certificate fingerprint is sha256:{}, not the pinned one",
                hex::encode(got)
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A client config trusting only the pinned certificate, speaking HTTP/2 (ALPN `h2`).
pub fn client_config(fingerprint: &str) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Pinned {
        sha256: parse_fingerprint(fingerprint)?,
        provider: provider.clone(),
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Connect a tonic channel to `host:port` over TLS with the pinned certificate.
pub async fn connect(
    authority: &str,
    fingerprint: &str,
    endpoint: tonic::transport::Endpoint,
) -> Result<tonic::transport::Channel, String> {
    let config = client_config(fingerprint)?;
    let target = authority.to_owned();
    let authority = authority.to_owned();
    let connector = tower::service_fn(move |_uri: http::Uri| {
        let config = config.clone();
        let authority = authority.clone();
        async move {
            let tcp = tokio::net::TcpStream::connect(&authority).await?;
            tcp.set_nodelay(true)?;
            let host = authority
                .rsplit_once(':')
                .map_or(authority.as_str(), |(h, _)| h)
                .trim_matches(|c| c == '[' || c == ']')
                .to_owned();
            // The name only travels as SNI: the pin, not the name, is what is verified.
            let name = ServerName::try_from(host)
                .unwrap_or_else(|_| ServerName::try_from("localhost").expect("valid name"));
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
        }
    });
    endpoint
        .connect_with_connector(connector)
        .await
        .map_err(|e| match std::error::Error::source(&e) {
            Some(cause) => format!("connect over TLS to {target}: {e}: {cause}"),
            None => format!("connect over TLS to {target}: {e}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_must_be_a_sha256() {
        assert!(parse_fingerprint(&format!("sha256:{}", "ab".repeat(32))).is_ok());
        assert!(parse_fingerprint("sha256:abcd").is_err());
        assert!(parse_fingerprint(&"ab".repeat(32)).is_err());
        assert!(parse_fingerprint("sha256:zz").is_err());
    }
}
