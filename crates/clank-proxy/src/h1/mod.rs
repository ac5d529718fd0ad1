//! HTTP/1.x on the proxy's own connections: the request path for HTTP/1 clients, plain and TLS.
//!
//! A proxy mostly passes heads and bodies through, so this path does not build a request or a
//! response object at all: heads are parsed in place with `httparse` (ranges into the read
//! buffer), the upstream head is written straight from those ranges with the hop-by-hop and
//! forwarding headers rewritten, and bodies are copied by their framing (length, chunked, or
//! until close). One task serves a client connection *and* its upstream exchange, so a request
//! costs no channel hop to a separate connection task, no per-request allocation of a header
//! map, and the same four socket calls nginx makes. HTTP/2 clients go through hyper
//! ([`crate::h2`]); both paths share [`Shared::admit`] (routing, redirects, pause, limits).
//!
//! Framing follows RFC 9112 §6: a request with both `Transfer-Encoding` and `Content-Length`,
//! with a transfer coding other than a final `chunked`, or with conflicting lengths is refused
//! (400), which closes the request-smuggling doors a proxy would otherwise open.
//! `Expect: 100-continue` is answered by the proxy itself (as nginx does) and not forwarded.
//!
//! Files: `parse` (heads as ranges, framing, the heads the proxy writes), `conn` (one client
//! connection and its upstream exchanges), `pool` (upstream connections, idle ones kept per
//! address), `body` (chunked decoding, the request body pump, response bodies, tunnels).

mod body;
mod conn;
mod parse;
mod pool;

use std::io::{self, IoSlice};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub(crate) use conn::serve;
pub(crate) use pool::Pool;

/// What one read asks the kernel for, at least.
const READ_CHUNK: usize = 16 * 1024;
/// An upstream connection's read buffer: a head and a 16 KiB body arrive in one read.
const UPSTREAM_BUF: usize = 32 * 1024;

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
