//! WebSocket echo backend and load generator for the proxy benchmark
//! (`benches/proxy/protocols.sh`):
//!
//! - `ws_echo server ADDR` echoes every binary/text frame back (unmasked, as a server must).
//! - `ws_echo client ADDR PATH SIZE CONNECTIONS SECONDS` opens CONNECTIONS WebSockets
//!   (`Host: ws.local`; through a proxy or straight to the server), each sending one SIZE-byte
//!   binary message and waiting for its echo, back to back, for SECONDS; prints messages/s
//!   (round trips) and round-trip latency percentiles in microseconds.
//!
//! Raw tokio I/O on purpose, like `fixed_rate`: the generator and the echo server share the
//! cores with the proxies under test, so they must cost less than what they measure. The
//! handshake always uses RFC 6455's sample key (the server answers only that key, with the
//! RFC's accept value), so no SHA-1 is needed; the client masks with a fixed key and sends a
//! pre-masked payload. Loopback only.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type Error = Box<dyn std::error::Error + Send + Sync>;

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match args.as_slice() {
        [mode, addr] if mode == "server" => rt.block_on(server(loopback(addr)?)),
        [mode, addr, path, size, conns, secs] if mode == "client" => rt.block_on(client(
            loopback(addr)?,
            path.clone(),
            parse_size(size)?,
            conns.parse()?,
            Duration::from_secs_f64(secs.parse()?),
        )),
        _ => Err(
            "usage: ws_echo server ADDR | ws_echo client ADDR PATH SIZE CONNECTIONS SECONDS \
                  (SIZE: bytes, or with a k/m suffix)"
                .into(),
        ),
    }
}

fn loopback(addr: &str) -> Result<SocketAddr, Error> {
    let addr: SocketAddr = addr.parse()?;
    if !addr.ip().is_loopback() {
        return Err("loopback addresses only".into());
    }
    Ok(addr)
}

fn parse_size(s: &str) -> Result<usize, Error> {
    let lower = s.to_ascii_lowercase();
    Ok(if let Some(k) = lower.strip_suffix('k') {
        k.parse::<usize>()? * 1024
    } else if let Some(m) = lower.strip_suffix('m') {
        m.parse::<usize>()? * 1024 * 1024
    } else {
        lower.parse()?
    })
}

/// Read an HTTP head (up to the blank line) into `buf`; returns it and any bytes behind it.
async fn read_head(stream: &mut TcpStream) -> Result<(String, Vec<u8>), Error> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err("connection closed before the head ended".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(i + 4);
            return Ok((String::from_utf8(buf)?, rest));
        }
        if buf.len() > 16 * 1024 {
            return Err("head too large".into());
        }
    }
}

/// A frame header: FIN + binary opcode, the payload length, and the mask key if given.
fn frame_header(len: usize, mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut h = vec![0x82];
    let m = if mask.is_some() { 0x80 } else { 0 };
    if len < 126 {
        h.push(m | len as u8);
    } else if len <= 0xffff {
        h.push(m | 126);
        h.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        h.push(m | 127);
        h.extend_from_slice(&(len as u64).to_be_bytes());
    }
    if let Some(k) = mask {
        h.extend_from_slice(&k);
    }
    h
}

/// Reads frames from a stream with a carry-over buffer.
struct Reader {
    stream: TcpStream,
    pending: Vec<u8>,
}

impl Reader {
    async fn fill(&mut self, buf: &mut [u8]) -> Result<(), Error> {
        let take = buf.len().min(self.pending.len());
        buf[..take].copy_from_slice(&self.pending[..take]);
        self.pending.drain(..take);
        if take < buf.len() {
            self.stream.read_exact(&mut buf[take..]).await?;
        }
        Ok(())
    }

    /// One frame: (opcode, mask key, payload length); the payload is read into `payload`.
    async fn frame(&mut self, payload: &mut Vec<u8>) -> Result<(u8, Option<[u8; 4]>), Error> {
        let mut h = [0u8; 2];
        self.fill(&mut h).await?;
        let opcode = h[0] & 0x0f;
        let masked = h[1] & 0x80 != 0;
        let len = match h[1] & 0x7f {
            126 => {
                let mut b = [0u8; 2];
                self.fill(&mut b).await?;
                u16::from_be_bytes(b) as usize
            }
            127 => {
                let mut b = [0u8; 8];
                self.fill(&mut b).await?;
                usize::try_from(u64::from_be_bytes(b))?
            }
            n => n as usize,
        };
        let mask = if masked {
            let mut k = [0u8; 4];
            self.fill(&mut k).await?;
            Some(k)
        } else {
            None
        };
        payload.resize(len, 0);
        self.fill(payload).await?;
        Ok((opcode, mask))
    }
}

fn apply_mask(data: &mut [u8], key: [u8; 4]) {
    let word = u32::from_ne_bytes(key);
    let mut chunks = data.chunks_exact_mut(4);
    for c in &mut chunks {
        let v = u32::from_ne_bytes([c[0], c[1], c[2], c[3]]) ^ word;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= key[i];
    }
}

async fn server(addr: SocketAddr) -> Result<(), Error> {
    let listener = TcpListener::bind(addr).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            if let Err(e) = serve(stream).await {
                eprintln!("ws_echo server: {e}");
            }
        });
    }
}

async fn serve(mut stream: TcpStream) -> Result<(), Error> {
    stream.set_nodelay(true)?;
    let (head, rest) = read_head(&mut stream).await?;
    let key_ok = head.lines().any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("sec-websocket-key") && v.trim() == KEY
        })
    });
    if !key_ok {
        stream
            .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
            .await?;
        return Ok(());
    }
    let reply = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {ACCEPT}\r\n\r\n"
    );
    stream.write_all(reply.as_bytes()).await?;
    let mut reader = Reader {
        stream,
        pending: rest,
    };
    let mut payload = Vec::new();
    loop {
        let (opcode, mask) = match reader.frame(&mut payload).await {
            Ok(f) => f,
            // The client hangs up at the end of its run.
            Err(_) => return Ok(()),
        };
        if opcode == 0x8 {
            return Ok(());
        }
        if let Some(k) = mask {
            apply_mask(&mut payload, k);
        }
        let header = frame_header(payload.len(), None);
        reader.stream.write_all(&header).await?;
        reader.stream.write_all(&payload).await?;
    }
}

async fn client(
    addr: SocketAddr,
    path: String,
    size: usize,
    conns: usize,
    total: Duration,
) -> Result<(), Error> {
    // One pre-masked message, shared: frame header + masked payload in one buffer.
    let mut message = frame_header(size, Some(MASK));
    let mut body = vec![b'w'; size];
    apply_mask(&mut body, MASK);
    message.extend_from_slice(&body);
    let message = std::sync::Arc::new(message);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..conns {
        let path = path.clone();
        let message = message.clone();
        tasks.spawn(async move {
            let mut stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let request = format!(
                "GET {path} HTTP/1.1\r\nHost: ws.local\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\n\
                 Sec-WebSocket-Version: 13\r\n\r\n"
            );
            stream.write_all(request.as_bytes()).await?;
            let (head, rest) = read_head(&mut stream).await?;
            if !head.starts_with("HTTP/1.1 101") {
                return Err(format!("no upgrade: {}", head.lines().next().unwrap_or("")).into());
            }
            let mut reader = Reader {
                stream,
                pending: rest,
            };
            let mut payload = Vec::with_capacity(size);
            let mut lat: Vec<u32> = Vec::new();
            while start.elapsed() < total {
                let sent = Instant::now();
                reader.stream.write_all(&message).await?;
                reader.frame(&mut payload).await?;
                if payload.len() != size {
                    return Err(format!("echo of {} bytes, sent {size}", payload.len()).into());
                }
                lat.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX));
            }
            let _ = reader.stream.write_all(&[0x88, 0x80, 0, 0, 0, 0]).await;
            Ok::<_, Error>(lat)
        });
    }
    let mut all = Vec::new();
    while let Some(r) = tasks.join_next().await {
        all.extend(r??);
    }
    let secs = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| {
        let i = ((all.len() as f64 * p).ceil() as usize).clamp(1, all.len().max(1)) - 1;
        all.get(i).copied().unwrap_or(0)
    };
    println!(
        "messages {} per_s {:.0} p50 {} p90 {} p99 {} max {}",
        all.len(),
        all.len() as f64 / secs,
        pct(0.50),
        pct(0.90),
        pct(0.99),
        all.last().copied().unwrap_or(0)
    );
    Ok(())
}
