//! HTTP/1.x on the proxy's own connections: the request path for HTTP/1 clients, plain and TLS.
//!
//! A proxy mostly passes heads and bodies through, so this path does not build a request or a
//! response object at all: heads are parsed in place with `httparse` (ranges into the read
//! buffer), the upstream head is written straight from those ranges with the hop-by-hop and
//! forwarding headers rewritten, and bodies are copied by their framing (length, chunked, or
//! until close). One task serves a client connection *and* its upstream exchange, so a request
//! costs no channel hop to a separate connection task, no per-request allocation of a header
//! map, and the same four socket calls nginx makes. HTTP/2 clients go through hyper
//! ([`crate::forward`]); both paths share [`Shared::admit`] (routing, redirects, pause, limits).
//!
//! Framing follows RFC 9112 §6: a request with both `Transfer-Encoding` and `Content-Length`,
//! with a transfer coding other than a final `chunked`, or with conflicting lengths is refused
//! (400), which closes the request-smuggling doors a proxy would otherwise open.
//! `Expect: 100-continue` is answered by the proxy itself (as nginx does) and not forwarded.

use std::collections::HashMap;
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use http::StatusCode;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::forward::{Admission, HOP_BY_HOP, Listener, Local, Shared, splice};
use crate::metrics::UpstreamError;
use crate::table::{InflightGuard, TargetState, normalise_host};

/// Headers per message, as hyper allows; more is a 431 (request) or a 502 (response).
const MAX_HEADERS: usize = 100;
/// What one read asks the kernel for, at least.
const READ_CHUNK: usize = 16 * 1024;
/// An upstream connection's read buffer: a head and a 16 KiB body arrive in one read.
const UPSTREAM_BUF: usize = 32 * 1024;
/// A response head from an upstream may not be larger than this.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// While waiting on the upstream, up to this much of what the client sends next (a pipelined
/// request) is read ahead; reading is how a client that went away is noticed.
const READ_AHEAD: usize = 64 * 1024;
/// After a response that ends the connection while the client may still be sending, keep
/// reading (and discarding) this long so the close does not reset the response away.
const LINGER: Duration = Duration::from_secs(2);

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    /// Response only: the body ends when the upstream closes.
    UntilClose,
}

/// A parsed head as ranges into the buffer it was parsed from, so it borrows nothing and its
/// vector is reused from request to request.
#[derive(Debug, Default)]
struct Head {
    len: usize,
    /// Request: the method. Response: the reason phrase.
    first: Range<usize>,
    /// Request: the target.
    target: Range<usize>,
    status: u16,
    minor: u8,
    headers: Vec<(Range<usize>, Range<usize>)>,
}

/// The range `part` occupies in `base` (empty when `part` is not inside it, as httparse's
/// empty strings may not be).
fn range_of(base: &[u8], part: &[u8]) -> Range<usize> {
    let start = (part.as_ptr() as usize).wrapping_sub(base.as_ptr() as usize);
    if part.is_empty() || start > base.len() || base.len() - start < part.len() {
        return 0..0;
    }
    start..start + part.len()
}

impl Head {
    fn set_headers(&mut self, buf: &[u8], headers: &[httparse::Header<'_>]) {
        self.headers.clear();
        self.headers.extend(
            headers
                .iter()
                .map(|h| (range_of(buf, h.name.as_bytes()), range_of(buf, h.value))),
        );
    }
}

fn parse_request(buf: &[u8], head: &mut Head) -> Result<bool, Local> {
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(buf, &mut headers) {
        Ok(httparse::Status::Complete(n)) => {
            head.len = n;
            head.first = range_of(buf, req.method.unwrap_or_default().as_bytes());
            head.target = range_of(buf, req.path.unwrap_or_default().as_bytes());
            head.minor = req.version.unwrap_or(1);
            head.set_headers(buf, req.headers);
            Ok(true)
        }
        Ok(httparse::Status::Partial) => Ok(false),
        Err(httparse::Error::TooManyHeaders) => Err(Local::text(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "too many request headers\n",
        )),
        Err(_) => Err(Local::text(StatusCode::BAD_REQUEST, "malformed request\n")),
    }
}

fn parse_response(buf: &[u8], head: &mut Head) -> Result<bool, &'static str> {
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut []);
    let mut config = httparse::ParserConfig::default();
    config.allow_spaces_after_header_name_in_responses(true);
    match config.parse_response_with_uninit_headers(&mut res, buf, &mut headers) {
        Ok(httparse::Status::Complete(n)) => {
            head.len = n;
            head.first = range_of(buf, res.reason.unwrap_or_default().as_bytes());
            head.status = res.code.unwrap_or(0);
            head.minor = res.version.unwrap_or(1);
            head.set_headers(buf, res.headers);
            Ok(true)
        }
        Ok(httparse::Status::Partial) => Ok(false),
        Err(_) => Err("malformed response head"),
    }
}

/// Comma-separated tokens of a header value, trimmed, empty ones skipped.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|b| *b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// The value of a `Content-Length` header (possibly a list of equal values); `None` if invalid.
fn parse_length(value: &[u8], prior: Option<u64>) -> Option<u64> {
    let mut found = prior;
    for t in tokens(value) {
        if t.is_empty() || t.len() > 19 || !t.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = t.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        if found.is_some_and(|f| f != n) {
            return None;
        }
        found = Some(n);
    }
    found
}

/// Headers that describe one hop (RFC 9110 §7.6.1): the list the HTTP/2 path strips too.
fn is_hop_by_hop(name: &[u8]) -> bool {
    HOP_BY_HOP
        .iter()
        .any(|n| n.as_str().as_bytes().eq_ignore_ascii_case(name))
}

/// What the connection-level headers of one message say.
#[derive(Debug, Default)]
struct Connection {
    close: bool,
    keep_alive: bool,
    upgrade: bool,
    /// Other tokens: names of more hop-by-hop headers to drop.
    named: Vec<Range<usize>>,
}

impl Connection {
    fn read(buf: &[u8], head: &Head) -> Connection {
        let mut c = Connection::default();
        for (n, v) in &head.headers {
            if !buf[n.clone()].eq_ignore_ascii_case(b"connection") {
                continue;
            }
            for t in tokens(&buf[v.clone()]) {
                if t.eq_ignore_ascii_case(b"close") {
                    c.close = true;
                } else if t.eq_ignore_ascii_case(b"keep-alive") {
                    c.keep_alive = true;
                } else if t.eq_ignore_ascii_case(b"upgrade") {
                    c.upgrade = true;
                } else {
                    c.named.push(range_of(buf, t));
                }
            }
        }
        c
    }

    fn names(&self, buf: &[u8], name: &[u8]) -> bool {
        self.named
            .iter()
            .any(|r| buf[r.clone()].eq_ignore_ascii_case(name))
    }
}

fn push_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn push_number(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// A response the proxy makes itself, serialised.
fn local_response(out: &mut Vec<u8>, local: &Local, close: bool, head_only: bool) {
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    push_number(out, u64::from(local.status.as_u16()));
    out.push(b' ');
    out.extend_from_slice(
        local
            .status
            .canonical_reason()
            .unwrap_or_default()
            .as_bytes(),
    );
    out.extend_from_slice(b"\r\ncontent-type: ");
    out.extend_from_slice(local.content_type.as_bytes());
    out.extend_from_slice(b"\r\ncontent-length: ");
    push_number(out, local.body.len() as u64);
    out.extend_from_slice(b"\r\ndate: ");
    let now = clank_core::time::Timestamp::now().as_millis();
    let now = std::time::UNIX_EPOCH + Duration::from_millis(u64::try_from(now).unwrap_or(0));
    out.extend_from_slice(httpdate::fmt_http_date(now).as_bytes());
    if let Some(location) = &local.location {
        out.extend_from_slice(b"\r\nlocation: ");
        out.extend_from_slice(location.as_bytes());
    }
    if close {
        out.extend_from_slice(b"\r\nconnection: close");
    }
    out.extend_from_slice(b"\r\n\r\n");
    if !head_only {
        out.extend_from_slice(&local.body);
    }
}

/// Incremental `chunked` decoding (RFC 9112 §7.1): finds where a chunked body ends, counts its
/// data, and optionally hands the data out (to re-frame it for an HTTP/1.0 client).
///
/// Strict on purpose: every line ends in CRLF (a bare LF or CR is an error), extensions and
/// trailers hold no control characters, and an extension is at most 4 KiB. A proxy that is
/// more lenient than the server behind it can be made to disagree with it about where a body
/// ends, which is how requests are smuggled past it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunked {
    Size {
        size: u64,
        digits: u8,
    },
    /// Whitespace after the size: only a `;` (an extension) may follow.
    SizeWs {
        size: u64,
    },
    Extension {
        size: u64,
        len: u16,
    },
    SizeLf {
        size: u64,
    },
    Data(u64),
    DataCr,
    DataLf,
    TrailerStart,
    TrailerLine,
    TrailerLf,
    EndLf,
    Done,
}

/// A byte allowed inside an extension or a trailer line.
fn is_line_byte(b: u8) -> bool {
    b == b'\t' || (b >= 0x20 && b != 0x7f)
}

impl Chunked {
    const START: Chunked = Chunked::Size { size: 0, digits: 0 };
    const MAX_EXTENSION: u16 = 4096;

    /// Consume from `input` up to the end of the body; `on_data` gets every data slice.
    /// Returns the bytes consumed (all of `input` unless the body ended inside it).
    fn advance(&mut self, input: &[u8], mut on_data: impl FnMut(&[u8])) -> Result<usize, ()> {
        let mut i = 0;
        while i < input.len() && *self != Chunked::Done {
            let b = input[i];
            *self = match *self {
                Chunked::Size { size, digits } => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        if digits >= 15 {
                            return Err(());
                        }
                        let d = u64::from(char::from(b).to_digit(16).ok_or(())?);
                        Chunked::Size {
                            size: size * 16 + d,
                            digits: digits + 1,
                        }
                    }
                    _ if digits == 0 => return Err(()),
                    b';' => Chunked::Extension { size, len: 0 },
                    b' ' | b'\t' => Chunked::SizeWs { size },
                    b'\r' => Chunked::SizeLf { size },
                    _ => return Err(()),
                },
                Chunked::SizeWs { size } => match b {
                    b' ' | b'\t' => Chunked::SizeWs { size },
                    b';' => Chunked::Extension { size, len: 0 },
                    _ => return Err(()),
                },
                Chunked::Extension { size, .. } if b == b'\r' => Chunked::SizeLf { size },
                Chunked::Extension { size, len }
                    if is_line_byte(b) && len < Self::MAX_EXTENSION =>
                {
                    Chunked::Extension { size, len: len + 1 }
                }
                Chunked::SizeLf { size } if b == b'\n' => Self::after_size(size),
                Chunked::Data(left) => {
                    let take = usize::try_from(left)
                        .unwrap_or(usize::MAX)
                        .min(input.len() - i);
                    on_data(&input[i..i + take]);
                    i += take;
                    let left = left - take as u64;
                    *self = if left == 0 {
                        Chunked::DataCr
                    } else {
                        Chunked::Data(left)
                    };
                    continue;
                }
                Chunked::DataCr if b == b'\r' => Chunked::DataLf,
                Chunked::DataLf if b == b'\n' => Self::START,
                Chunked::TrailerStart if b == b'\r' => Chunked::EndLf,
                Chunked::TrailerStart | Chunked::TrailerLine if is_line_byte(b) => {
                    Chunked::TrailerLine
                }
                Chunked::TrailerLine if b == b'\r' => Chunked::TrailerLf,
                Chunked::TrailerLf if b == b'\n' => Chunked::TrailerStart,
                Chunked::EndLf if b == b'\n' => Chunked::Done,
                _ => return Err(()),
            };
            i += 1;
        }
        Ok(i)
    }

    fn after_size(size: u64) -> Chunked {
        if size == 0 {
            Chunked::TrailerStart
        } else {
            Chunked::Data(size)
        }
    }
}

/// Write `a` then `b` with as few calls as the stream allows (one `writev` on TCP).
async fn write_two<W: AsyncWrite + Unpin>(w: &mut W, mut a: &[u8], mut b: &[u8]) -> io::Result<()> {
    while !a.is_empty() {
        let n = w
            .write_vectored(&[IoSlice::new(a), IoSlice::new(b)])
            .await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        if n < a.len() {
            a = &a[n..];
        } else {
            b = &b[n - a.len()..];
            a = &[];
        }
    }
    w.write_all(b).await
}

/// Read more into `buf` after making room for `room` bytes (an emptied buffer takes its
/// consumed space back without allocating); 0 means the peer closed.
async fn fill<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
    room: usize,
) -> io::Result<usize> {
    if buf.capacity() - buf.len() < room {
        buf.reserve(room);
    }
    r.read_buf(buf).await
}

/// One upstream connection with its read buffer.
#[derive(Debug)]
struct Upstream {
    stream: TcpStream,
    buf: BytesMut,
    /// Came from the pool: a failure before any response byte may be the upstream having
    /// closed it meanwhile, and an idempotent request whose body is here whole is then retried
    /// once on a new connection.
    reused: bool,
}

#[derive(Debug)]
struct Idle {
    stream: TcpStream,
    buf: BytesMut,
    since: Instant,
}

/// Idle keep-alive connections to upstream addresses, reused most-recently-idle first.
#[derive(Debug)]
pub(crate) struct Pool {
    idle: Mutex<HashMap<SocketAddr, Vec<Idle>>>,
    max_idle: usize,
    idle_timeout: Duration,
    sweeping: AtomicBool,
}

impl Pool {
    pub(crate) fn new(max_idle: usize, idle_timeout: Duration) -> Self {
        Pool {
            idle: Mutex::new(HashMap::new()),
            max_idle,
            idle_timeout,
            sweeping: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Vec<Idle>>> {
        match self.idle.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// An idle connection to `addr` that is still open. The check costs no system call when
    /// nothing arrived on the socket (tokio knows it is not readable); a closed one is dropped.
    fn checkout(&self, addr: SocketAddr) -> Option<Upstream> {
        let mut idle = self.lock();
        let list = idle.get_mut(&addr)?;
        while let Some(c) = list.pop() {
            if c.since.elapsed() >= self.idle_timeout {
                continue;
            }
            let mut probe = [0u8; 1];
            match c.stream.try_read(&mut probe) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Some(Upstream {
                        stream: c.stream,
                        buf: c.buf,
                        reused: true,
                    });
                }
                // Closed, reset, or bytes nobody asked for: not reusable.
                _ => continue,
            }
        }
        None
    }

    fn checkin(self: &Arc<Self>, addr: SocketAddr, up: Upstream) {
        if !up.buf.is_empty() || self.max_idle == 0 {
            return;
        }
        {
            let mut idle = self.lock();
            let list = idle.entry(addr).or_default();
            if list.len() >= self.max_idle {
                return;
            }
            list.push(Idle {
                stream: up.stream,
                buf: up.buf,
                since: Instant::now(),
            });
        }
        if !self.sweeping.swap(true, Ordering::AcqRel) {
            tokio::spawn(sweep(Arc::downgrade(self)));
        }
    }

    /// Close connections idle past the timeout; whether any are left.
    fn sweep_once(&self) -> bool {
        let mut idle = self.lock();
        idle.retain(|_, list| {
            list.retain(|c| c.since.elapsed() < self.idle_timeout);
            !list.is_empty()
        });
        !idle.is_empty()
    }
}

/// Runs while the pool holds connections: closes the ones idle too long (an address that is
/// no longer routed keeps none open), then ends; the next check-in starts it again.
async fn sweep(pool: Weak<Pool>) {
    loop {
        let Some(period) = pool
            .upgrade()
            .map(|p| (p.idle_timeout / 2).max(Duration::from_millis(50)))
        else {
            return;
        };
        tokio::time::sleep(period).await;
        let Some(pool) = pool.upgrade() else { return };
        if !pool.sweep_once() {
            pool.sweeping.store(false, Ordering::Release);
            // A check-in may have raced the flag: take the job back if so.
            if pool.sweep_once() && !pool.sweeping.swap(true, Ordering::AcqRel) {
                continue;
            }
            return;
        }
    }
}

/// Why an upstream exchange failed before a response could be forwarded.
enum Failed {
    /// The answer to send the client; the upstream error counted in the metrics, if any.
    Answer(Local, Option<UpstreamError>),
    /// A reused connection failed before any response byte: worth one retry.
    Stale,
    /// The client went away or broke the request body: nothing to answer.
    Client,
}

/// The request being proxied, as the exchange needs it.
struct Exchange<'a> {
    head: &'a [u8],
    framing: Framing,
    /// The request body went in whole with the head (or there is none): it can be re-sent.
    replayable: bool,
    head_request: bool,
    upgrade: bool,
}

/// One client connection.
struct Conn {
    shared: Arc<Shared>,
    peer: SocketAddr,
    peer_ip: String,
    trusted: bool,
    listener: Listener,
    buf: BytesMut,
    /// The upstream request head being written.
    out: Vec<u8>,
    /// The response head being written to the client.
    res_out: Vec<u8>,
    head: Head,
    /// The upstream's response head (its vector reused from request to request).
    res_head: Head,
    /// The listener's shutdown: an upgraded tunnel is closed by it.
    shutdown: CancellationToken,
}

/// Serve HTTP/1 requests on `io` until the client closes, an error ends the connection, or
/// `shutdown` is cancelled (the request in progress is finished first).
pub(crate) async fn serve<S>(
    shared: Arc<Shared>,
    mut io: S,
    peer: SocketAddr,
    listener: Listener,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let trusted = shared
        .config
        .trusted_peers
        .iter()
        .any(|n| n.contains(peer.ip()));
    let mut conn = Conn {
        shared,
        peer,
        peer_ip: peer.ip().to_canonical().to_string(),
        trusted,
        listener,
        buf: BytesMut::with_capacity(8 * 1024),
        out: Vec::with_capacity(1024),
        res_out: Vec::with_capacity(1024),
        head: Head::default(),
        res_head: Head::default(),
        shutdown: shutdown.clone(),
    };
    loop {
        match conn.read_head(&mut io, &shutdown).await {
            Ok(true) => {}
            Ok(false) => break,
            Err(Some(local)) => {
                conn.shared.metrics.record_status(local.status.as_u16());
                local_response(&mut conn.out, &local, true, false);
                if io.write_all(&conn.out).await.is_ok() {
                    linger(&mut io).await;
                }
                return;
            }
            Err(None) => break,
        }
        match conn.request(&mut io).await {
            Next::KeepAlive if !shutdown.is_cancelled() => {}
            Next::KeepAlive | Next::Close => break,
            Next::Linger => {
                linger(&mut io).await;
                return;
            }
            Next::Done => return,
        }
    }
    let _ = io.shutdown().await;
}

/// After a final response the client may still be sending (a refused body): half-close, then
/// read and discard for a moment so the kernel does not answer its bytes with a reset that
/// destroys the response before the client has read it.
async fn linger<S: AsyncRead + AsyncWrite + Unpin>(io: &mut S) {
    let _ = io.shutdown().await;
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(LINGER, async {
        let mut total = 0usize;
        while let Ok(n) = io.read(&mut sink).await {
            total += n;
            if n == 0 || total > 1 << 20 {
                break;
            }
        }
    })
    .await;
}

/// What to do with the client connection after a request.
enum Next {
    KeepAlive,
    Close,
    /// Close, but let the client's unread bytes drain first.
    Linger,
    /// Already closed or handed over (an upgraded tunnel ended).
    Done,
}

impl Conn {
    /// Wait for a complete request head. `Ok(false)`: the client closed (or went idle past the
    /// header timeout, or shutdown began) between requests. `Err(Some)`: answer and close.
    async fn read_head<S: AsyncRead + Unpin>(
        &mut self,
        io: &mut S,
        shutdown: &CancellationToken,
    ) -> Result<bool, Option<Local>> {
        let deadline = tokio::time::Instant::now() + self.shared.config.header_read_timeout;
        loop {
            if !self.buf.is_empty() {
                match parse_request(&self.buf, &mut self.head) {
                    Ok(true) => return Ok(true),
                    Ok(false) => {}
                    Err(local) => return Err(Some(local)),
                }
                if self.buf.len() >= self.shared.config.max_header_bytes {
                    return Err(Some(Local::text(
                        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                        "request head too large\n",
                    )));
                }
            }
            let idle = self.buf.is_empty();
            let read = tokio::select! {
                biased;
                r = fill(io, &mut self.buf, READ_CHUNK) => r,
                () = tokio::time::sleep_until(deadline) => return if idle { Ok(false) } else { Err(None) },
                () = shutdown.cancelled(), if idle => return Ok(false),
            };
            match read {
                Ok(0) if idle => return Ok(false),
                Ok(0) | Err(_) => return Err(None),
                Ok(_) => {}
            }
        }
    }

    /// Proxy the request whose head is in `self.head`.
    async fn request<S: AsyncRead + AsyncWrite + Unpin>(&mut self, io: &mut S) -> Next {
        let started = Instant::now();
        let head_len = self.head.len;
        let buf = self.buf.split_to(head_len).freeze();
        let head = std::mem::take(&mut self.head);
        let outcome = self.proxy(io, &buf, &head).await;
        self.head = head;
        let (status, upstream, next) = outcome;
        self.shared.metrics.record_status(status);
        if tracing::enabled!(target: "clank_proxy::access", tracing::Level::INFO) {
            let method = String::from_utf8_lossy(&buf[self.head.first.clone()]);
            let target = String::from_utf8_lossy(&buf[self.head.target.clone()]);
            let host = self
                .head
                .headers
                .iter()
                .find(|(n, _)| buf[n.clone()].eq_ignore_ascii_case(b"host"))
                .map(|(_, v)| String::from_utf8_lossy(&buf[v.clone()]).into_owned())
                .unwrap_or_default();
            tracing::info!(
                target: "clank_proxy::access",
                peer = %self.peer,
                %method,
                host = %host,
                path = %target.split('?').next().unwrap_or_default(),
                status,
                upstream = %upstream.map_or_else(|| "-".to_owned(), |a| a.to_string()),
                micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            );
        }
        next
    }

    /// Answer locally; returns the log triple.
    async fn answer<S: AsyncWrite + Unpin>(
        &mut self,
        io: &mut S,
        local: &Local,
        close: bool,
        head_request: bool,
        upstream: Option<SocketAddr>,
        body_pending: bool,
    ) -> (u16, Option<SocketAddr>, Next) {
        local_response(
            &mut self.res_out,
            local,
            close || body_pending,
            head_request,
        );
        let status = local.status.as_u16();
        if io.write_all(&self.res_out).await.is_err() || io.flush().await.is_err() {
            return (status, upstream, Next::Done);
        }
        let next = if body_pending {
            Next::Linger
        } else if close {
            Next::Close
        } else {
            Next::KeepAlive
        };
        (status, upstream, next)
    }

    async fn proxy<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut S,
        buf: &[u8],
        head: &Head,
    ) -> (u16, Option<SocketAddr>, Next) {
        let http10 = head.minor == 0;
        let method = &buf[head.first.clone()];
        let head_request = method == b"HEAD";
        let conn = Connection::read(buf, head);
        let client_close = conn.close || (http10 && !conn.keep_alive);

        // Framing and the headers routing needs, in one pass.
        let mut host: Option<&[u8]> = None;
        let mut hosts = 0;
        let mut length: Option<u64> = None;
        let mut bad_length = false;
        let mut transfer_encoding: Option<&[u8]> = None;
        let mut te_headers = 0;
        let mut expect_continue = false;
        let mut has_upgrade = false;
        for (n, v) in &head.headers {
            let name = &buf[n.clone()];
            let value = &buf[v.clone()];
            if name.eq_ignore_ascii_case(b"host") {
                host = Some(value);
                hosts += 1;
            } else if name.eq_ignore_ascii_case(b"content-length") {
                length = parse_length(value, length);
                bad_length |= length.is_none();
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                transfer_encoding = Some(value);
                te_headers += 1;
            } else if name.eq_ignore_ascii_case(b"expect") {
                expect_continue = value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
            } else if name.eq_ignore_ascii_case(b"upgrade") {
                has_upgrade = true;
            }
        }
        let bad = |text| Local::text(StatusCode::BAD_REQUEST, text);
        let framing = match (transfer_encoding, length) {
            _ if bad_length => Err(bad("invalid Content-Length\n")),
            (Some(_), Some(_)) => Err(bad("both Transfer-Encoding and Content-Length\n")),
            (Some(_), None) if http10 => Err(bad("Transfer-Encoding in an HTTP/1.0 request\n")),
            (Some(te), None) => {
                let mut codings = tokens(te);
                match (codings.next(), codings.next()) {
                    (Some(c), None) if te_headers == 1 && c.eq_ignore_ascii_case(b"chunked") => {
                        Ok(Framing::Chunked)
                    }
                    _ if tokens(te)
                        .last()
                        .is_some_and(|c| c.eq_ignore_ascii_case(b"chunked")) =>
                    {
                        Err(Local::text(
                            StatusCode::NOT_IMPLEMENTED,
                            "transfer codings other than chunked are not supported\n",
                        ))
                    }
                    _ => Err(bad("the final transfer coding is not chunked\n")),
                }
            }
            (None, None) => Ok(Framing::Empty),
            (None, Some(n)) => Ok(Framing::Length(n)),
        };
        let framing = match framing {
            Ok(f) => f,
            Err(local) => {
                return self
                    .answer(io, &local, true, head_request, None, true)
                    .await;
            }
        };
        // Client bytes of this request still unread: an early answer must close the connection.
        let body_pending =
            matches!(framing, Framing::Chunked) || matches!(framing, Framing::Length(n) if n > 0);
        let target = &buf[head.target.clone()];
        // Origin form `/path`, absolute form `http://host/path` (its authority is the host),
        // or `*` (OPTIONS). CONNECT has no business at a reverse proxy.
        let (path, authority) = if target.first() == Some(&b'/') || target == b"*" {
            (target, None)
        } else if let Some(rest) = strip_scheme(target) {
            let end = rest
                .iter()
                .position(|b| matches!(b, b'/' | b'?'))
                .unwrap_or(rest.len());
            let path: &[u8] = if end == rest.len() {
                b"/"
            } else {
                &rest[end..]
            };
            (path, Some(&rest[..end]))
        } else if method == b"CONNECT" {
            let local = Local::text(StatusCode::METHOD_NOT_ALLOWED, "CONNECT is not supported\n");
            return self
                .answer(io, &local, true, false, None, body_pending)
                .await;
        } else {
            let local = bad("bad request target\n");
            return self
                .answer(io, &local, true, head_request, None, body_pending)
                .await;
        };
        if hosts > 1 || (hosts == 0 && authority.is_none() && !http10) {
            let local = bad("a request needs exactly one Host header\n");
            return self
                .answer(io, &local, true, head_request, None, body_pending)
                .await;
        }
        let original_host = authority.or(host);
        let (Ok(path_str), Ok(host_str)) = (
            std::str::from_utf8(path),
            std::str::from_utf8(original_host.unwrap_or_default()),
        ) else {
            let local = bad("request target and Host must be ASCII\n");
            return self
                .answer(io, &local, true, head_request, None, body_pending)
                .await;
        };
        let routing_host = normalise_host(host_str);
        let declared = match framing {
            Framing::Length(n) => Some(n),
            _ => None,
        };
        let (guard, addr) = match self
            .shared
            .admit(&routing_host, path_str, self.listener, declared)
            .await
        {
            Admission::Local(local, upstream) => {
                let upstream = upstream.and_then(|a| a.as_str().parse().ok());
                return self
                    .answer(
                        io,
                        &local,
                        client_close,
                        head_request,
                        upstream,
                        body_pending,
                    )
                    .await;
            }
            Admission::Forward { guard, addr, .. } => (guard, addr),
        };
        let upgrade = conn.upgrade && has_upgrade;
        if expect_continue && body_pending && !http10 {
            // Answer `Expect` here: the body then streams through like any other.
            if io
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .is_err()
            {
                return (499, Some(addr), Next::Done);
            }
        }

        // The upstream request head, written straight from the client's.
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        out.extend_from_slice(method);
        out.push(b' ');
        if path.first() == Some(&b'?') {
            // `http://host?q` has an empty path: origin form needs its `/`.
            out.push(b'/');
        }
        out.extend_from_slice(path);
        out.extend_from_slice(b" HTTP/1.1\r\n");
        let mut prior_xff: Vec<&[u8]> = Vec::new();
        for (n, v) in &head.headers {
            let name = &buf[n.clone()];
            let value = &buf[v.clone()];
            if is_hop_by_hop(name)
                || name.eq_ignore_ascii_case(b"content-length")
                || (expect_continue && name.eq_ignore_ascii_case(b"expect"))
                || (!upgrade && name.eq_ignore_ascii_case(b"upgrade"))
                || (conn.names(buf, name) && !(upgrade && name.eq_ignore_ascii_case(b"upgrade")))
                // An absolute-form target's authority replaces Host (RFC 9112 §3.2.2).
                || (authority.is_some() && name.eq_ignore_ascii_case(b"host"))
            {
                continue;
            }
            if name.eq_ignore_ascii_case(b"x-forwarded-for") {
                if self.trusted && !value.trim_ascii().is_empty() {
                    prior_xff.push(value.trim_ascii());
                }
                continue;
            }
            if !self.trusted
                && (name.eq_ignore_ascii_case(b"x-forwarded-proto")
                    || name.eq_ignore_ascii_case(b"x-forwarded-host")
                    || name.eq_ignore_ascii_case(b"forwarded"))
            {
                continue;
            }
            push_header(&mut out, name, value);
        }
        if let Some(a) = authority {
            push_header(&mut out, b"host", a);
        }
        out.extend_from_slice(b"x-forwarded-for: ");
        for prior in &prior_xff {
            out.extend_from_slice(prior);
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(self.peer_ip.as_bytes());
        out.extend_from_slice(b"\r\n");
        let has = |wanted: &[u8]| {
            head.headers
                .iter()
                .any(|(n, _)| buf[n.clone()].eq_ignore_ascii_case(wanted))
        };
        if !(self.trusted && has(b"x-forwarded-proto")) {
            let proto: &[u8] = if self.listener == Listener::Tls {
                b"https"
            } else {
                b"http"
            };
            push_header(&mut out, b"x-forwarded-proto", proto);
        }
        if !(self.trusted && has(b"x-forwarded-host"))
            && let Some(h) = original_host
        {
            push_header(&mut out, b"x-forwarded-host", h);
        }
        match framing {
            Framing::Length(n) => {
                out.extend_from_slice(b"content-length: ");
                push_number(&mut out, n);
                out.extend_from_slice(b"\r\n");
            }
            Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
            Framing::Empty | Framing::UntilClose => {}
        }
        if upgrade {
            out.extend_from_slice(b"connection: upgrade\r\n");
        }
        out.extend_from_slice(b"\r\n");
        // A retry on a new connection may repeat a request the upstream already acted on:
        // only idempotent methods (RFC 9110 §9.2.2) whose body, if any, is here whole.
        let idempotent = matches!(
            method,
            b"GET" | b"HEAD" | b"OPTIONS" | b"TRACE" | b"PUT" | b"DELETE"
        );
        let replayable = idempotent
            && match framing {
                Framing::Empty => true,
                Framing::Length(n) => (self.buf.len() as u64) >= n,
                _ => false,
            };
        let exchange = Exchange {
            head: &out,
            framing,
            replayable,
            head_request,
            upgrade,
        };
        let result = self
            .exchange(io, addr, &exchange, guard, client_close, http10)
            .await;
        self.out = out;
        match result {
            Ok((status, next)) => (status, Some(addr), next),
            Err(Failed::Answer(local, kind)) => {
                if let Some(kind) = kind {
                    self.shared.metrics.record_upstream_error(kind);
                }
                self.answer(
                    io,
                    &local,
                    client_close,
                    head_request,
                    Some(addr),
                    body_pending,
                )
                .await
            }
            Err(Failed::Client | Failed::Stale) => (499, Some(addr), Next::Done),
        }
    }

    /// Send the request upstream (retrying once on a fresh connection if a reused one turned
    /// out closed), then forward the response. `Ok` = the response went to the client.
    async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut S,
        addr: SocketAddr,
        req: &Exchange<'_>,
        guard: InflightGuard,
        client_close: bool,
        http10: bool,
    ) -> Result<(u16, Next), Failed> {
        let shared = self.shared.clone();
        let target = guard.target.clone();
        let mut attempt = 0;
        loop {
            attempt += 1;
            // A retry dials anew: the other pooled connections may be just as stale.
            let pooled = if attempt == 1 {
                shared.upstreams.checkout(addr)
            } else {
                None
            };
            let mut up = match pooled {
                Some(up) => up,
                None => connect(addr, shared.config.connect_timeout).await?,
            };
            let mut pump = Pump::new(req.framing, shared.config.max_body_bytes);
            let sent = tokio::select! {
                biased;
                r = self.send_and_read_head(io, &mut up, req, &mut pump) => r,
                () = target.abandon.cancelled() => Err(Failed::Answer(
                    Local::text(StatusCode::GATEWAY_TIMEOUT, "drain timeout: request abandoned\n"),
                    Some(UpstreamError::Abandoned),
                )),
            };
            let res = match sent {
                Ok(r) => r,
                Err(Failed::Stale) if attempt == 1 && req.replayable => continue,
                Err(Failed::Stale) => {
                    return Err(Failed::Answer(
                        Local::text(StatusCode::BAD_GATEWAY, "bad response from upstream\n"),
                        Some(UpstreamError::Protocol),
                    ));
                }
                Err(e) => return Err(e),
            };
            return self
                .respond(
                    io,
                    up,
                    addr,
                    req,
                    res,
                    pump,
                    guard,
                    target,
                    client_close,
                    http10,
                )
                .await;
        }
    }

    /// Write the request head (and body) and read the response head, concurrently: an
    /// upstream may answer before it has read the whole body. Returns the final head (1xx
    /// interim responses other than 101 are skipped); `pump` tells how far the body got.
    /// `upstream_timeout` is an inactivity limit: every piece of body sent restarts it, so a
    /// long upload is not cut off, and the upstream has that long after the last piece.
    async fn send_and_read_head<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut S,
        up: &mut Upstream,
        req: &Exchange<'_>,
        pump: &mut Pump,
    ) -> Result<Head, Failed> {
        let reused = up.reused;
        // A body already buffered whole goes out with the head in one write.
        let inline = match req.framing {
            Framing::Length(n) if (self.buf.len() as u64) >= n => {
                usize::try_from(n).unwrap_or(usize::MAX)
            }
            _ => 0,
        };
        let (mut ur, mut uw) = up.stream.split();
        if let Err(e) = write_two(&mut uw, req.head, &self.buf[..inline]).await {
            return Err(upstream_io(e, reused, false));
        }
        // An inline body stays in the client buffer until the answer came: a retry re-sends it.
        if inline > 0 {
            pump.commit(&self.buf[..inline]);
        }
        let timeout = self.shared.config.upstream_timeout;
        let mut deadline = tokio::time::Instant::now() + timeout;
        let mut res = std::mem::take(&mut self.res_head);
        {
            let read_head = read_response_head(&mut ur, &mut up.buf, &mut res, reused);
            tokio::pin!(read_head);
            loop {
                tokio::select! {
                    biased;
                    r = pump.client_side(io, &mut self.buf, &mut uw) => match r {
                        Ok(ClientEvent::Sent) => deadline = tokio::time::Instant::now() + timeout,
                        // A half-closed client may still read the answer; `respond` limits
                        // how long a silent upstream may keep it waiting.
                        Ok(ClientEvent::Read | ClientEvent::Eof) => {}
                        Err(PumpError::TooLarge) => {
                            return Err(Failed::Answer(
                                Local::text(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n"),
                                None,
                            ));
                        }
                        Err(PumpError::Client) => return Err(Failed::Client),
                        // The upstream stopped taking the body; its answer may still come.
                        Err(PumpError::Upstream) => pump.stopped = true,
                    },
                    r = &mut read_head => {
                        r?;
                        break;
                    }
                    () = tokio::time::sleep_until(deadline) => {
                        return Err(Failed::Answer(
                            Local::text(StatusCode::GATEWAY_TIMEOUT, "upstream timed out\n"),
                            Some(UpstreamError::Timeout),
                        ));
                    }
                }
            }
        }
        self.buf.advance(inline);
        Ok(res)
    }

    /// Forward the response (head, then body by its framing), or set up the tunnel for a 101.
    #[allow(clippy::too_many_arguments)]
    async fn respond<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut S,
        mut up: Upstream,
        addr: SocketAddr,
        req: &Exchange<'_>,
        res: Head,
        mut pump: Pump,
        guard: InflightGuard,
        target: Arc<TargetState>,
        client_close: bool,
        http10: bool,
    ) -> Result<(u16, Next), Failed> {
        let protocol = || {
            Failed::Answer(
                Local::text(StatusCode::BAD_GATEWAY, "bad response from upstream\n"),
                Some(UpstreamError::Protocol),
            )
        };
        let status = res.status;
        let rbuf = &up.buf[..];
        let conn = Connection::read(rbuf, &res);
        let switching = status == 101;
        if switching && !req.upgrade {
            return Err(protocol());
        }
        let mut length = None;
        let mut bad_length = false;
        let mut chunked = false;
        let mut te = false;
        for (n, v) in &res.headers {
            let name = &rbuf[n.clone()];
            if name.eq_ignore_ascii_case(b"content-length") {
                length = parse_length(&rbuf[v.clone()], length);
                bad_length |= length.is_none();
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                te = true;
                chunked = tokens(&rbuf[v.clone()])
                    .last()
                    .is_some_and(|c| c.eq_ignore_ascii_case(b"chunked"));
            }
        }
        let framing = if req.head_request || status == 204 || status == 304 || switching {
            Framing::Empty
        } else if te {
            if chunked {
                Framing::Chunked
            } else {
                Framing::UntilClose
            }
        } else if bad_length {
            return Err(protocol());
        } else {
            length.map_or(Framing::UntilClose, Framing::Length)
        };
        let upstream_keeps = !conn.close && (res.minor == 1 || conn.keep_alive);
        // Re-chunking is for HTTP/1.1 clients only; an HTTP/1.0 one gets the data decoded.
        let decode = framing == Framing::Chunked && http10;
        // A body still streaming in when the head goes out: the connection cannot be kept, as
        // nobody knows yet whether the rest of it will be read.
        let close = client_close || !pump.done || framing == Framing::UntilClose || decode;

        let mut out = std::mem::take(&mut self.res_out);
        out.clear();
        out.extend_from_slice(b"HTTP/1.1 ");
        push_number(&mut out, u64::from(status));
        out.push(b' ');
        out.extend_from_slice(&rbuf[res.first.clone()]);
        out.extend_from_slice(b"\r\n");
        for (n, v) in &res.headers {
            let name = &rbuf[n.clone()];
            // The framing headers say how the body goes to the client: Transfer-Encoding only
            // for a body passed through coded, Content-Length never beside it. A `Connection`
            // header naming them cannot remove them (the body would lose its delimiting).
            let is_te = name.eq_ignore_ascii_case(b"transfer-encoding");
            let is_length = name.eq_ignore_ascii_case(b"content-length");
            let keep_te = is_te
                && ((framing == Framing::Chunked && !decode) || framing == Framing::UntilClose);
            if (is_hop_by_hop(name) && !keep_te)
                || (te && is_length)
                || (switching && name.eq_ignore_ascii_case(b"connection"))
                || (!switching && name.eq_ignore_ascii_case(b"upgrade"))
                || (conn.names(rbuf, name) && !is_te && !is_length)
            {
                continue;
            }
            push_header(&mut out, name, &rbuf[v.clone()]);
        }
        if switching {
            out.extend_from_slice(b"connection: upgrade\r\n");
        } else if close {
            out.extend_from_slice(b"connection: close\r\n");
        } else if http10 {
            out.extend_from_slice(b"connection: keep-alive\r\n");
        }
        out.extend_from_slice(b"\r\n");
        up.buf.advance(res.len);
        self.res_head = res;

        if switching {
            drop(guard);
            let written = io.write_all(&out).await;
            self.res_out = out;
            if written.is_err() {
                return Err(Failed::Client);
            }
            tunnel(io, &mut self.buf, up, target, &self.shared, &self.shutdown).await;
            return Ok((status, Next::Done));
        }
        let progress = AtomicU64::new(0);
        let outgoing = Outgoing {
            head: &out,
            framing,
            decode,
        };
        let (mut ur, mut uw) = up.stream.split();
        let result = if !pump.wants_to_run() && body_buffered(framing, &up.buf) {
            // The common case: the whole answer is here, nothing is left to wait for.
            forward_body(io, &mut ur, &mut up.buf, &outgoing, &target, &progress).await
        } else {
            // Full duplex: the rest of the request body streams up while the response streams
            // down (echo-style apps answer before the body has ended), and the client is
            // watched: a reset ends the exchange; after an EOF (a half-close, or gone), or
            // while the body is still owed, it lasts only while bytes keep moving, checked
            // every `upstream_timeout`.
            let timeout = self.shared.config.upstream_timeout;
            let (mut cr, mut cw) = tokio::io::split(&mut *io);
            let forward =
                forward_body(&mut cw, &mut ur, &mut up.buf, &outgoing, &target, &progress);
            tokio::pin!(forward);
            let check = tokio::time::sleep(timeout);
            tokio::pin!(check);
            let mut seen = 0;
            loop {
                tokio::select! {
                    biased;
                    r = &mut forward => break r,
                    r = pump.client_side(&mut cr, &mut self.buf, &mut uw) => match r {
                        Ok(ClientEvent::Eof) => {
                            seen = progress.load(Ordering::Relaxed);
                            check.as_mut().reset(tokio::time::Instant::now() + timeout);
                        }
                        Ok(ClientEvent::Sent) => {
                            progress.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(ClientEvent::Read) => {}
                        Err(PumpError::Upstream) => pump.stopped = true,
                        // The request broke after its answer began: end it all.
                        Err(PumpError::Client | PumpError::TooLarge) => break Err(()),
                    },
                    // Nothing moved either way for a whole `upstream_timeout` while the client
                    // is gone or owes the rest of its body: abandon it.
                    () = &mut check, if pump.client_eof || pump.wants_to_run() => {
                        let now = progress.load(Ordering::Relaxed);
                        if now == seen {
                            tracing::debug!("client gone and upstream silent: response abandoned");
                            break Err(());
                        }
                        seen = now;
                        check.as_mut().reset(tokio::time::Instant::now() + timeout);
                    }
                }
            }
        };
        self.res_out = out;
        drop(guard);
        match result {
            Ok(()) => {
                if upstream_keeps && pump.done && framing != Framing::UntilClose {
                    self.shared.upstreams.checkin(addr, up);
                }
                if io.flush().await.is_err() {
                    return Ok((status, Next::Done));
                }
                let next = if !pump.done {
                    Next::Linger
                } else if close {
                    Next::Close
                } else {
                    Next::KeepAlive
                };
                Ok((status, next))
            }
            // The head may be out already: the only honest signal left is closing.
            Err(()) => Ok((status, Next::Done)),
        }
    }
}

fn strip_scheme(target: &[u8]) -> Option<&[u8]> {
    for scheme in [&b"http://"[..], b"https://"] {
        if target.len() > scheme.len() && target[..scheme.len()].eq_ignore_ascii_case(scheme) {
            return Some(&target[scheme.len()..]);
        }
    }
    None
}

async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Upstream, Failed> {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            Ok(Upstream {
                stream,
                buf: BytesMut::with_capacity(UPSTREAM_BUF),
                reused: false,
            })
        }
        Ok(Err(e)) => {
            tracing::warn!(%addr, error = %e, "upstream connect failed");
            Err(Failed::Answer(
                Local::text(StatusCode::BAD_GATEWAY, "upstream unreachable\n"),
                Some(UpstreamError::Connect),
            ))
        }
        Err(_) => Err(Failed::Answer(
            Local::text(StatusCode::GATEWAY_TIMEOUT, "upstream connect timed out\n"),
            Some(UpstreamError::Timeout),
        )),
    }
}

/// An upstream I/O error before the response head: retryable on a reused connection that
/// had not produced a byte, a 502 otherwise.
fn upstream_io(e: io::Error, reused: bool, got_bytes: bool) -> Failed {
    if reused && !got_bytes {
        return Failed::Stale;
    }
    tracing::warn!(error = %e, "upstream exchange failed");
    Failed::Answer(
        Local::text(StatusCode::BAD_GATEWAY, "bad response from upstream\n"),
        Some(UpstreamError::Protocol),
    )
}

/// Read until a final response head is parsed into `res` (1xx interim heads other than 101
/// are skipped: `Expect` is answered by the proxy, and hints are optional).
async fn read_response_head<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
    res: &mut Head,
    reused: bool,
) -> Result<(), Failed> {
    let mut got_bytes = false;
    loop {
        if !buf.is_empty() {
            match parse_response(buf, res) {
                Ok(true) if (100..200).contains(&res.status) && res.status != 101 => {
                    buf.advance(res.len);
                    continue;
                }
                Ok(true) => return Ok(()),
                Ok(false) if buf.len() < MAX_RESPONSE_HEAD => {}
                Ok(false) | Err(_) => {
                    tracing::warn!("upstream sent a malformed or oversized response head");
                    return Err(Failed::Answer(
                        Local::text(StatusCode::BAD_GATEWAY, "bad response from upstream\n"),
                        Some(UpstreamError::Protocol),
                    ));
                }
            }
        }
        match fill(r, buf, UPSTREAM_BUF).await {
            Ok(0) => {
                return Err(upstream_io(
                    io::ErrorKind::UnexpectedEof.into(),
                    reused,
                    got_bytes,
                ));
            }
            Ok(_) => got_bytes = true,
            Err(e) => return Err(upstream_io(e, reused, got_bytes)),
        }
    }
}

#[derive(Debug)]
enum PumpError {
    /// The client closed or sent a malformed chunked body.
    Client,
    /// The body passed `max_body_bytes`.
    TooLarge,
    /// Writing to the upstream failed (it may have answered early and closed).
    Upstream,
}

/// The request body on its way up, its progress kept outside any future: [`Pump::step`] can be
/// dropped between two awaits and called again without losing or repeating a byte (each
/// write's count is committed before the next await, and reads only append to the buffer).
#[derive(Debug)]
struct Pump {
    framing: Framing,
    /// `Length`: bytes still to send.
    left: u64,
    chunked: Chunked,
    /// `Chunked`: data bytes so far, against `max`.
    total: u64,
    max: u64,
    /// The whole body went up.
    done: bool,
    /// It will not: the client or the upstream stopped, or the limit tripped.
    stopped: bool,
    /// The client half-closed (or left) after its request.
    client_eof: bool,
}

/// What [`Pump::client_side`] saw.
#[derive(Debug)]
enum ClientEvent {
    /// A piece of the body went up.
    Sent,
    /// Bytes of a next request were read ahead.
    Read,
    Eof,
}

impl Pump {
    fn new(framing: Framing, max: u64) -> Pump {
        Pump {
            framing,
            left: match framing {
                Framing::Length(n) => n,
                _ => 0,
            },
            chunked: Chunked::START,
            total: 0,
            max,
            done: matches!(
                framing,
                Framing::Empty | Framing::UntilClose | Framing::Length(0)
            ),
            stopped: false,
            client_eof: false,
        }
    }

    fn wants_to_run(&self) -> bool {
        !self.done && !self.stopped
    }

    /// How many bytes at the front of `buf` belong to the body, without committing them.
    fn sendable(&self, buf: &[u8]) -> Result<usize, PumpError> {
        match self.framing {
            Framing::Length(_) => Ok(usize::try_from(self.left)
                .unwrap_or(usize::MAX)
                .min(buf.len())),
            Framing::Chunked => {
                let mut state = self.chunked;
                let mut total = self.total;
                let n = state
                    .advance(buf, |d| total += d.len() as u64)
                    .map_err(|()| PumpError::Client)?;
                if total > self.max {
                    return Err(PumpError::TooLarge);
                }
                Ok(n)
            }
            Framing::Empty | Framing::UntilClose => Ok(0),
        }
    }

    /// Record `sent` (a prefix of what [`Pump::sendable`] allowed) as sent.
    fn commit(&mut self, sent: &[u8]) {
        match self.framing {
            Framing::Length(_) => {
                self.left -= sent.len() as u64;
                self.done = self.left == 0;
            }
            Framing::Chunked => {
                let total = &mut self.total;
                // Already validated by `sendable`: this cannot fail.
                let _ = self.chunked.advance(sent, |d| *total += d.len() as u64);
                self.done = self.chunked == Chunked::Done;
            }
            Framing::Empty | Framing::UntilClose => {}
        }
    }

    /// The next thing on the client side: a piece of body sent up or, once the body is
    /// through, bytes read ahead or the client's EOF. Cancel-safe; pending forever when there
    /// is nothing left to watch.
    async fn client_side<R, W>(
        &mut self,
        client: &mut R,
        buf: &mut BytesMut,
        up: &mut W,
    ) -> Result<ClientEvent, PumpError>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        if self.wants_to_run() {
            return self.step(client, buf, up).await.map(|()| ClientEvent::Sent);
        }
        if self.client_eof || buf.len() >= READ_AHEAD {
            return std::future::pending().await;
        }
        match fill(client, buf, READ_CHUNK).await {
            Ok(0) => {
                self.client_eof = true;
                Ok(ClientEvent::Eof)
            }
            Ok(_) => Ok(ClientEvent::Read),
            Err(_) => Err(PumpError::Client),
        }
    }

    /// Move the next body bytes from the client (its buffered ones first) to the upstream:
    /// returns after one write (callers loop while [`Pump::wants_to_run`]).
    async fn step<R, W>(
        &mut self,
        client: &mut R,
        buf: &mut BytesMut,
        up: &mut W,
    ) -> Result<(), PumpError>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        while !self.done {
            let n = self.sendable(buf)?;
            if n > 0 {
                let written = up.write(&buf[..n]).await.map_err(|_| PumpError::Upstream)?;
                if written == 0 {
                    return Err(PumpError::Upstream);
                }
                self.commit(&buf[..written]);
                buf.advance(written);
                return Ok(());
            }
            match fill(client, buf, READ_CHUNK).await {
                Ok(0) | Err(_) => return Err(PumpError::Client),
                Ok(_) => {}
            }
        }
        Ok(())
    }
}

/// The response as it goes to the client: its rewritten head and the body's framing.
#[derive(Debug, Clone, Copy)]
struct Outgoing<'a> {
    head: &'a [u8],
    framing: Framing,
    /// Chunked from the upstream, decoded for an HTTP/1.0 client.
    decode: bool,
}

/// Whether the whole response body is already in `buf` (forwarding it needs no more reads).
fn body_buffered(framing: Framing, buf: &[u8]) -> bool {
    match framing {
        Framing::Empty => true,
        Framing::Length(n) => buf.len() as u64 >= n,
        Framing::Chunked => {
            let mut state = Chunked::START;
            state.advance(buf, |_| {}).is_ok() && state == Chunked::Done
        }
        Framing::UntilClose => false,
    }
}

/// Send the response head and body to the client. `Err` = the exchange broke midway (the
/// client, the upstream, or the drain timeout): the client connection must be closed.
async fn forward_body<S: AsyncWrite + Unpin, R: AsyncRead + Unpin>(
    io: &mut S,
    ur: &mut R,
    ubuf: &mut BytesMut,
    outgoing: &Outgoing<'_>,
    target: &TargetState,
    progress: &AtomicU64,
) -> Result<(), ()> {
    let Outgoing {
        head,
        framing,
        decode,
    } = *outgoing;
    let mut head = Some(head);
    // Send what is ready, with the head the first time.
    async fn send<S: AsyncWrite + Unpin>(
        io: &mut S,
        head: &mut Option<&[u8]>,
        data: &[u8],
    ) -> Result<(), ()> {
        match head.take() {
            Some(h) => write_two(io, h, data).await.map_err(drop),
            None if data.is_empty() => Ok(()),
            None => io.write_all(data).await.map_err(drop),
        }
    }
    let mut state = Chunked::START;
    let mut decoded = Vec::new();
    let mut left = match framing {
        Framing::Length(n) => n,
        _ => u64::MAX,
    };
    loop {
        let (take, done) = match framing {
            Framing::Empty => (0, true),
            Framing::Length(_) => {
                let take = usize::try_from(left).unwrap_or(usize::MAX).min(ubuf.len());
                left -= take as u64;
                (take, left == 0)
            }
            Framing::Chunked => {
                decoded.clear();
                let consumed = state
                    .advance(ubuf, |d| {
                        if decode {
                            decoded.extend_from_slice(d);
                        }
                    })
                    .map_err(|()| tracing::warn!("upstream sent a malformed chunked body"))?;
                (consumed, state == Chunked::Done)
            }
            Framing::UntilClose => (ubuf.len(), false),
        };
        if decode {
            send(io, &mut head, &decoded).await?;
        } else {
            send(io, &mut head, &ubuf[..take]).await?;
        }
        progress.fetch_add(1, Ordering::Relaxed);
        ubuf.advance(take);
        if done {
            return Ok(());
        }
        let read = tokio::select! {
            biased;
            r = fill(ur, ubuf, UPSTREAM_BUF) => r,
            () = target.abandon.cancelled() => {
                tracing::info!(deployment = %target.deployment, "drain timeout: response cut off");
                return Err(());
            }
        };
        match read {
            Ok(0) if framing == Framing::UntilClose => {
                send(io, &mut head, &[]).await?;
                return Ok(());
            }
            Ok(0) | Err(_) => return Err(()),
            Ok(_) => {}
        }
    }
}

/// A WebSocket (or other upgraded) tunnel. Policy: tunnels are not in-flight requests (they
/// can live for hours, a drain cannot wait for them); when their target is retired they get a
/// grace period equal to the cutover's drain timeout, then both sides are closed.
async fn tunnel<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    client_buf: &mut BytesMut,
    mut up: Upstream,
    target: Arc<TargetState>,
    shared: &Shared,
    shutdown: &CancellationToken,
) {
    // Bytes either side sent right behind its head belong to the tunnel.
    if (!up.buf.is_empty() && io.write_all(&up.buf).await.is_err())
        || (!client_buf.is_empty() && up.stream.write_all(client_buf).await.is_err())
    {
        return;
    }
    client_buf.clear();
    splice(io, &mut up.stream, &target, &shared.metrics, Some(shutdown)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8], step: usize) -> Result<(Vec<u8>, usize), ()> {
        let mut state = Chunked::START;
        let mut data = Vec::new();
        let mut used = 0;
        for piece in input.chunks(step) {
            used += state.advance(piece, |d| data.extend_from_slice(d))?;
            if state == Chunked::Done {
                break;
            }
        }
        assert_eq!(state, Chunked::Done, "not finished");
        Ok((data, used))
    }

    #[test]
    fn chunked_bodies_decode_in_any_split_and_stop_at_their_end() {
        let body = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT";
        for step in [1, 2, 3, 7, body.len()] {
            let (data, used) = decode_all(body, step).unwrap();
            assert_eq!(data, b"Wikipedia in\r\n\r\nchunks.");
            assert_eq!(&body[used..], b"NEXT", "step {step}");
        }
    }

    #[test]
    fn chunked_rejects_bad_sizes_and_missing_crlf() {
        let mut s = Chunked::START;
        assert!(s.advance(b"zz\r\n", |_| {}).is_err());
        let mut s = Chunked::START;
        assert!(s.advance(b"\r\n", |_| {}).is_err(), "empty size");
        let mut s = Chunked::START;
        assert!(
            s.advance(b"3\r\nabcX", |_| {}).is_err(),
            "data not followed by CRLF"
        );
        let mut s = Chunked::START;
        assert!(
            s.advance(b"ffffffffffffffff0\r\n", |_| {}).is_err(),
            "size overflow"
        );
    }

    #[test]
    fn chunked_is_strict_about_line_ends_and_control_bytes() {
        for bad in [
            &b"5\nhello\r\n0\r\n\r\n"[..],
            b"5\r\nhello\n0\r\n\r\n",
            b"5\r\nhello\r\n0\r\nT: 1\n\r\n",
            b"5\r\nhello\r\n0\r\n\n",
            b"5;a\x01b\r\nhello\r\n0\r\n\r\n",
            b"5 6\r\nhello\r\n0\r\n\r\n",
            b"5 junk\r\nhello\r\n0\r\n\r\n",
            b"5\rhello",
        ] {
            let mut s = Chunked::START;
            assert!(
                s.advance(bad, |_| {}).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let mut long_ext = b"1;".to_vec();
        long_ext.extend(std::iter::repeat_n(b'x', 5000));
        let mut s = Chunked::START;
        assert!(s.advance(&long_ext, |_| {}).is_err());
    }

    #[test]
    fn content_length_lists_must_agree() {
        assert_eq!(parse_length(b"42", None), Some(42));
        assert_eq!(parse_length(b"42, 42", None), Some(42));
        assert_eq!(parse_length(b"42", Some(42)), Some(42));
        assert_eq!(parse_length(b"42, 43", None), None);
        assert_eq!(parse_length(b"42", Some(7)), None);
        assert_eq!(parse_length(b"-1", None), None);
        assert_eq!(parse_length(b"+1", None), None);
        assert_eq!(parse_length(b"99999999999999999999", None), None);
    }

    #[test]
    fn heads_parse_to_ranges_of_their_buffer() {
        let buf = b"GET /a?b=1 HTTP/1.0\r\nHost: x\r\nX-Empty:\r\n\r\nrest";
        let mut head = Head::default();
        assert!(parse_request(buf, &mut head).unwrap());
        assert_eq!(&buf[head.first.clone()], b"GET");
        assert_eq!(&buf[head.target.clone()], b"/a?b=1");
        assert_eq!(head.minor, 0);
        assert_eq!(&buf[head.len..], b"rest");
        let names: Vec<_> = head.headers.iter().map(|(n, _)| &buf[n.clone()]).collect();
        assert_eq!(names, [&b"Host"[..], b"X-Empty"]);
        assert_eq!(&buf[head.headers[1].1.clone()], b"");
        assert!(!parse_request(b"GET / HTTP/1.1\r\nHost:", &mut head).unwrap());
        assert!(parse_request(b"NOT HTTP\r\n\r\n", &mut head).is_err());
    }

    #[test]
    fn absolute_form_targets_lose_their_scheme() {
        assert_eq!(
            strip_scheme(b"http://a.example/x"),
            Some(&b"a.example/x"[..])
        );
        assert_eq!(strip_scheme(b"HTTPS://a.example"), Some(&b"a.example"[..]));
        assert_eq!(strip_scheme(b"/x"), None);
        assert_eq!(strip_scheme(b"http://"), None);
    }
}
