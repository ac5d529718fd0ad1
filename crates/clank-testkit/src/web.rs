//! reqwest clients for tests that speak to a daemon, a proxy or a workload over HTTP.
//!
//! The workspace builds reqwest with rustls but without a crypto provider of its own (its
//! default would add aws-lc-rs beside the workspace's one provider, ring): a reqwest client
//! can only be built once a process default is installed. These install ring first (once per
//! process, whoever else installs it) and then build as `reqwest::Client::new()` /
//! `reqwest::Client::builder()` would.

/// Ring as the process's default rustls provider, if no provider is installed yet.
pub fn install_crypto_provider() {
    // An `Err` means a default is installed already: the workspace has only ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// `reqwest::Client::new()`, with the provider installed.
pub fn client() -> reqwest::Client {
    builder()
        .build()
        .expect("a reqwest client with default settings builds")
}

/// `reqwest::Client::builder()`, with the provider installed.
pub fn builder() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder()
}
