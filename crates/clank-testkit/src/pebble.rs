//! Debian's `pebble` ACME test CA on loopback, with its `pebble-challtestsrv` as the DNS
//! server (every name resolves to 127.0.0.1), for end-to-end certificate tests.
//!
//! Pebble's own HTTPS listeners get a CA and a `localhost`/127.0.0.1 leaf made with the
//! `openssl` CLI ([`Pebble::ca_pem`] trusts them). The validator dials HTTP-01 at `http_port`
//! and TLS-ALPN-01 at `tls_port` on 127.0.0.1: the ports of the proxy under test. Without
//! pebble, [`Pebble::start`] skips loudly and panics when `CI` is set.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// How to run pebble.
#[derive(Debug, Clone, Copy)]
pub struct PebbleOptions {
    /// Where the validator dials HTTP-01 (the proxy's plain HTTP port).
    pub http_port: u16,
    /// Where the validator dials TLS-ALPN-01 (the proxy's TLS port).
    pub tls_port: u16,
    /// Issued certificates' validity (pebble's default when `None`).
    pub validity_secs: Option<u64>,
    /// Percentage of nonces pebble rejects (`badNonce` retries).
    pub nonce_reject_percent: u32,
}

/// A running pebble and challtestsrv; both are killed when this is dropped.
#[derive(Debug)]
pub struct Pebble {
    dir: tempfile::TempDir,
    _children: Vec<Child>,
    /// The ACME directory URL.
    pub directory_url: String,
    /// Pebble's management API (`/roots/0` is the root that signs issued chains).
    pub management: SocketAddr,
}

/// A free loopback TCP port (bound and released), never one this process was handed before:
/// the kernel may offer a released port again at once, and a test that asks for its proxy's
/// ports before starting pebble would otherwise see challtestsrv take one of them.
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        if HANDED_OUT
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(port)
        {
            return port;
        }
    }
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free loopback UDP port")
        .port()
}

/// Whether Debian's `pebble` and `pebble-challtestsrv` are on `PATH`.
pub fn installed() -> bool {
    ["pebble", "pebble-challtestsrv"].iter().all(|bin| {
        std::process::Command::new(bin)
            .arg("-h")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    })
}

/// A CA and a `localhost`/127.0.0.1 leaf it signed, for pebble's own HTTPS listeners.
fn pebble_tls(dir: &Path) {
    crate::tls::make_ca_and_leaf(
        dir,
        "clank test CA",
        "localhost",
        "DNS:localhost,IP:127.0.0.1",
    );
}

/// Whether something accepts connections on `addr` within about ten seconds.
pub(crate) async fn listening(addr: SocketAddr) -> bool {
    for _ in 0..200 {
        if TcpStream::connect(addr).await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn wait_for_tcp(addr: SocketAddr, what: &str) {
    assert!(
        listening(addr).await,
        "{what} did not start listening on {addr}"
    );
}

impl Pebble {
    /// Start challtestsrv and pebble; `None` (skip) without pebble outside CI.
    pub async fn start(options: PebbleOptions) -> Option<Pebble> {
        if !installed() {
            return crate::runtime::skip_or_fail(
                "pebble",
                "`pebble`/`pebble-challtestsrv` not on PATH (apt-get install pebble)",
            );
        }
        let dir = tempfile::tempdir().expect("tempdir");
        pebble_tls(dir.path());
        let dns = free_udp_port();
        let chall_mgmt = free_port();
        let log = |n: &str| std::fs::File::create(dir.path().join(n)).expect("log file");
        let chall = Command::new("pebble-challtestsrv")
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-management", &format!("127.0.0.1:{chall_mgmt}")])
            .stdout(log("challtestsrv.log"))
            .stderr(log("challtestsrv.err"))
            .kill_on_drop(true)
            .spawn()
            .expect("pebble-challtestsrv starts");
        wait_for_tcp(
            SocketAddr::from(([127, 0, 0, 1], chall_mgmt)),
            "challtestsrv",
        )
        .await;

        let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let management = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let validity = options
            .validity_secs
            .map(|v| format!(r#","certificateValidityPeriod":{v}"#))
            .unwrap_or_default();
        let config = format!(
            r#"{{"pebble":{{"listenAddress":"{listen}","managementListenAddress":"{management}","certificate":"{}","privateKey":"{}","httpPort":{},"tlsPort":{},"ocspResponderURL":"","externalAccountBindingRequired":false{validity}}}}}"#,
            dir.path().join("leaf.pem").display(),
            dir.path().join("leaf.key").display(),
            options.http_port,
            options.tls_port,
        );
        let config_path = dir.path().join("pebble.json");
        std::fs::write(&config_path, config).expect("write pebble.json");
        let pebble = Command::new("pebble")
            .arg("-config")
            .arg(&config_path)
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env(
                "PEBBLE_WFE_NONCEREJECT",
                options.nonce_reject_percent.to_string(),
            )
            .stdout(log("pebble.log"))
            .stderr(log("pebble.err"))
            .kill_on_drop(true)
            .spawn()
            .expect("pebble starts");
        wait_for_tcp(listen, "pebble").await;
        wait_for_tcp(management, "pebble management").await;
        Some(Pebble {
            directory_url: format!("https://{listen}/dir"),
            management,
            dir,
            _children: vec![chall, pebble],
        })
    }

    /// The CA of pebble's own HTTPS listeners (give it to the ACME client as its server root).
    pub fn ca_pem(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Both programs' output, for a failing test's message.
    pub fn logs(&self) -> String {
        let read = |n: &str| std::fs::read_to_string(self.dir.path().join(n)).unwrap_or_default();
        format!(
            "--- pebble.log\n{}\n--- challtestsrv.log\n{}",
            read("pebble.log"),
            read("challtestsrv.log")
        )
    }

    /// The root that signs pebble's issued chains (new at every start), as PEM, fetched from
    /// the management API with `curl`.
    pub fn issuing_root_pem(&self) -> String {
        let out = std::process::Command::new("curl")
            .args(["--silent", "--show-error", "--fail", "--cacert"])
            .arg(self.ca_pem())
            .arg(format!(
                "https://localhost:{}/roots/0",
                self.management.port()
            ))
            .output()
            .expect("curl runs");
        assert!(
            out.status.success(),
            "pebble's /roots/0: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("PEM is text")
    }
}
