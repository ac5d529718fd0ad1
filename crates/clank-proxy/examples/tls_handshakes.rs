//! New-TLS-connection load generator for the proxy benchmark (`benches/proxy/protocols.sh`):
//! `tls_handshakes ADDR PATH full|resumed CONNECTIONS SECONDS` runs CONNECTIONS loops, each
//! opening a new TCP + TLS 1.3 connection (SNI `localhost`, ALPN `http/1.1`), sending one
//! `GET PATH` with `Connection: close`, reading the response by its Content-Length and
//! dropping the connection, back to back, for SECONDS. Prints handshakes/s, the share that
//! actually resumed, and connect-to-last-byte latency percentiles in microseconds.
//!
//! `full` disables resumption; `resumed` gives each loop its own session cache, so every
//! connection after a loop's first offers a ticket from that loop's previous connection
//! (TLS 1.3 PSK with (EC)DHE, what browsers do).
//!
//! rustls on `ring` (the workspace's provider). The generator shares the cores with the
//! servers it measures, so it skips what only a real client needs: the certificate chain and
//! the handshake signature are not verified (loopback benchmark only).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, HandshakeKind, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, path, mode, conns, secs] = args.as_slice() else {
        return Err("usage: tls_handshakes ADDR PATH full|resumed CONNECTIONS SECONDS".into());
    };
    let addr: SocketAddr = addr.parse()?;
    if !addr.ip().is_loopback() {
        return Err("loopback targets only".into());
    }
    let resume = match mode.as_str() {
        "full" => false,
        "resumed" => true,
        _ => return Err("mode is `full` or `resumed`".into()),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(
        addr,
        path.clone(),
        resume,
        conns.parse()?,
        Duration::from_secs_f64(secs.parse()?),
    ))
}

#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn config(resume: bool) -> Result<Arc<ClientConfig>, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    if !resume {
        config.resumption = rustls::client::Resumption::disabled();
    }
    Ok(Arc::new(config))
}

async fn run(
    addr: SocketAddr,
    path: String,
    resume: bool,
    conns: usize,
    total: Duration,
) -> Result<(), Error> {
    let start = Instant::now();
    let request = Arc::new(format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    ));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..conns {
        // One session cache per loop: its next connection resumes its previous one.
        let connector = TlsConnector::from(config(resume)?);
        let request = request.clone();
        tasks.spawn(async move {
            let name = ServerName::try_from("localhost")?;
            let mut buf = vec![0u8; 64 * 1024];
            let mut lat: Vec<u32> = Vec::new();
            let mut resumed = 0u64;
            let mut errors = 0u64;
            while start.elapsed() < total {
                let began = Instant::now();
                let tcp = TcpStream::connect(addr).await?;
                tcp.set_nodelay(true)?;
                let mut tls = match connector.connect(name.clone(), tcp).await {
                    Ok(t) => t,
                    Err(e) => {
                        if errors == 0 {
                            eprintln!("tls_handshakes: handshake failed: {e}");
                        }
                        errors += 1;
                        continue;
                    }
                };
                tls.write_all(request.as_bytes()).await?;
                match read_response(&mut tls, &mut buf).await {
                    Ok(200) => {
                        lat.push(u32::try_from(began.elapsed().as_micros()).unwrap_or(u32::MAX));
                        if tls.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed) {
                            resumed += 1;
                        }
                    }
                    Ok(status) => errors += u64::from(status != 200),
                    Err(e) => {
                        if errors == 0 {
                            eprintln!("tls_handshakes: response failed: {e}");
                        }
                        errors += 1;
                    }
                }
            }
            Ok::<_, Error>((lat, resumed, errors))
        });
    }
    let (mut all, mut resumed, mut errors) = (Vec::new(), 0, 0);
    while let Some(r) = tasks.join_next().await {
        let (lat, res, err) = r??;
        all.extend(lat);
        resumed += res;
        errors += err;
    }
    let secs = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| {
        let i = ((all.len() as f64 * p).ceil() as usize).clamp(1, all.len().max(1)) - 1;
        all.get(i).copied().unwrap_or(0)
    };
    println!(
        "handshakes {} per_s {:.0} resumed_pct {:.1} errors {} p50 {} p99 {}",
        all.len(),
        all.len() as f64 / secs,
        100.0 * resumed as f64 / all.len().max(1) as f64,
        errors,
        pct(0.50),
        pct(0.99),
    );
    Ok(())
}

/// Read one response; returns its status. The body is read by Content-Length and dropped.
async fn read_response<S: AsyncReadExt + Unpin>(
    stream: &mut S,
    buf: &mut [u8],
) -> Result<u16, Error> {
    let mut filled = 0;
    let head_end = loop {
        let n = stream.read(&mut buf[filled..]).await?;
        if n == 0 {
            return Err("connection closed".into());
        }
        filled += n;
        if let Some(i) = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if filled == buf.len() {
            return Err("response head too large".into());
        }
    };
    let head = std::str::from_utf8(&buf[..head_end])?;
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("bad status line")?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .ok_or("no content-length")?;
    let mut remaining = (head_end + length).saturating_sub(filled);
    while remaining > 0 {
        let cap = buf.len();
        let n = stream.read(&mut buf[..remaining.min(cap)]).await?;
        if n == 0 {
            return Err("connection closed mid-body".into());
        }
        remaining -= n;
    }
    Ok(status)
}
