//! One client connection: read a request head, admit it, exchange it with an upstream
//! (retrying a stale pooled connection once), answer, and keep the connection alive or close it.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use http::StatusCode;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::admission::{Admission, Listener, Local, Shared};
use crate::metrics::UpstreamError;
use crate::table::{InflightGuard, TargetState, normalise_host};

use super::body::{ClientEvent, Outgoing, Pump, PumpError, body_buffered, forward_body, tunnel};
use super::parse::{
    Connection, Framing, Head, is_hop_by_hop, local_response, parse_length, parse_request,
    parse_response, push_header, push_number, strip_scheme, tokens,
};
use super::pool::{Upstream, connect};
use super::{READ_CHUNK, UPSTREAM_BUF, fill, write_two};

/// A response head from an upstream may not be larger than this.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// After a response that ends the connection while the client may still be sending, keep
/// reading (and discarding) this long so the close does not reset the response away.
const LINGER: Duration = Duration::from_secs(2);

/// Why an upstream exchange failed before a response could be forwarded.
pub(super) enum Failed {
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
