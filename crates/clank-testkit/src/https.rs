//! HTTPS in front of a test server: a private CA (the throwaway material of `tls`) and a TLS
//! terminator on loopback that forwards each connection to the server in the clear, as a
//! reverse proxy with an ACME certificate would stand in front of a daemon.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A private CA's certificate file (PEM, `dir/ca.pem`) and a server configuration for
/// `127.0.0.1` and `localhost` whose certificate it signed.
pub fn private_ca(dir: &Path) -> (PathBuf, Arc<rustls::ServerConfig>) {
    crate::tls::make_ca_and_leaf(
        dir,
        "Clank test CA",
        "127.0.0.1",
        "DNS:localhost,IP:127.0.0.1",
    );
    let certs = CertificateDer::pem_file_iter(dir.join("leaf.pem"))
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .expect("the leaf certificate reads back");
    let key = PrivateKeyDer::from_pem_file(dir.join("leaf.key")).expect("the leaf key reads back");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default TLS versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("the leaf and its key match");
    (dir.join("ca.pem"), Arc::new(config))
}

/// Serve TLS on a loopback port, each connection forwarded to `backend` in the clear; its
/// address.
pub async fn tls_terminator(backend: SocketAddr, config: Arc<rustls::ServerConfig>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("its address");
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake here.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    addr
}
