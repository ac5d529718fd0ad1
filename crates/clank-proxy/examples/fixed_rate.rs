//! A fixed-rate HTTP/1.1 load generator for the proxy benchmark (`benches/proxy/run.sh`):
//! `fixed_rate ADDR PATH RATE SECONDS CONNECTIONS` sends RATE requests/s in total over
//! CONNECTIONS keep-alive connections (each on its own schedule) and prints latency
//! percentiles in microseconds. Latency runs from the request write to the last body byte,
//! measured with a monotonic clock at µs resolution (hey's CSV only has 100 µs).
//!
//! Raw tokio I/O on purpose: the generator shares a core with the backend, so it must cost
//! less than the thing it measures. Responses need a Content-Length (every proxy and the
//! backend in the benchmark send one).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, path, rate, secs, conns] = args.as_slice() else {
        return Err("usage: fixed_rate ADDR PATH RATE SECONDS CONNECTIONS".into());
    };
    let addr: SocketAddr = addr.parse()?;
    if !addr.ip().is_loopback() {
        return Err("loopback targets only".into());
    }
    let rate: f64 = rate.parse()?;
    let secs: f64 = secs.parse()?;
    let conns: usize = conns.parse()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(addr, path.clone(), rate, secs, conns))
}

async fn run(
    addr: SocketAddr,
    path: String,
    rate: f64,
    secs: f64,
    conns: usize,
) -> Result<(), Error> {
    let per_conn = Duration::from_secs_f64(conns as f64 / rate);
    let total = Duration::from_secs_f64(secs);
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..conns {
        let path = path.clone();
        // Stagger the connections so the requests are spread evenly over each period.
        let offset = per_conn.mul_f64(i as f64 / conns as f64);
        tasks.spawn(async move {
            let mut stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let request = format!("GET {path} HTTP/1.1\r\nHost: bench.local\r\n\r\n");
            let mut buf = vec![0u8; 64 * 1024];
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut k = 0u32;
            loop {
                let due = start + offset + per_conn * k;
                if due.duration_since(start) >= total {
                    break;
                }
                tokio::time::sleep_until(due).await;
                let sent = Instant::now();
                stream.write_all(request.as_bytes()).await?;
                match read_response(&mut stream, &mut buf).await? {
                    200 => lat.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX)),
                    _ => errors += 1,
                }
                k += 1;
            }
            Ok::<_, Error>((lat, errors))
        });
    }
    let mut all = Vec::new();
    let mut errors = 0;
    while let Some(r) = tasks.join_next().await {
        let (lat, e) = r??;
        all.extend(lat);
        errors += e;
    }
    all.sort_unstable();
    let pct = |p: f64| {
        let i = ((all.len() as f64 * p).ceil() as usize).clamp(1, all.len().max(1)) - 1;
        all.get(i).copied().unwrap_or(0)
    };
    println!(
        "requests {} errors {} p50 {} p90 {} p99 {} p999 {} max {}",
        all.len(),
        errors,
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(0.999),
        all.last().copied().unwrap_or(0)
    );
    Ok(())
}

/// Read one response; returns its status. The body is read by Content-Length and dropped.
async fn read_response(stream: &mut TcpStream, buf: &mut [u8]) -> Result<u16, Error> {
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
