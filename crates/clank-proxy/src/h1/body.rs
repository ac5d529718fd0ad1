//! Bodies: strict `chunked` decoding, the request body pumped up while the upstream is
//! awaited, the response body forwarded by its framing, and upgraded tunnels.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::admission::Shared;
use crate::table::TargetState;
use crate::tunnel::splice;

use super::parse::Framing;
use super::pool::Upstream;
use super::{READ_CHUNK, UPSTREAM_BUF, fill, write_two};

/// While waiting on the upstream, up to this much of what the client sends next (a pipelined
/// request) is read ahead; reading is how a client that went away is noticed.
const READ_AHEAD: usize = 64 * 1024;

/// Incremental `chunked` decoding (RFC 9112 §7.1): finds where a chunked body ends, counts its
/// data, and optionally hands the data out (to re-frame it for an HTTP/1.0 client).
///
/// Strict on purpose: every line ends in CRLF (a bare LF or CR is an error), extensions and
/// trailers hold no control characters, and an extension is at most 4 KiB. A proxy that is
/// more lenient than the server behind it can be made to disagree with it about where a body
/// ends, which is how requests are smuggled past it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Chunked {
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

#[derive(Debug)]
pub(super) enum PumpError {
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
pub(super) struct Pump {
    framing: Framing,
    /// `Length`: bytes still to send.
    left: u64,
    chunked: Chunked,
    /// `Chunked`: data bytes so far, against `max`.
    total: u64,
    max: u64,
    /// The whole body went up.
    pub(super) done: bool,
    /// It will not: the client or the upstream stopped, or the limit tripped.
    pub(super) stopped: bool,
    /// The client half-closed (or left) after its request.
    pub(super) client_eof: bool,
}

/// What [`Pump::client_side`] saw.
#[derive(Debug)]
pub(super) enum ClientEvent {
    /// A piece of the body went up.
    Sent,
    /// Bytes of a next request were read ahead.
    Read,
    Eof,
}

impl Pump {
    pub(super) fn new(framing: Framing, max: u64) -> Pump {
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

    pub(super) fn wants_to_run(&self) -> bool {
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
    pub(super) fn commit(&mut self, sent: &[u8]) {
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
    pub(super) async fn client_side<R, W>(
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
pub(super) struct Outgoing<'a> {
    pub(super) head: &'a [u8],
    pub(super) framing: Framing,
    /// Chunked from the upstream, decoded for an HTTP/1.0 client.
    pub(super) decode: bool,
}

/// Whether the whole response body is already in `buf` (forwarding it needs no more reads).
pub(super) fn body_buffered(framing: Framing, buf: &[u8]) -> bool {
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
pub(super) async fn forward_body<S: AsyncWrite + Unpin, R: AsyncRead + Unpin>(
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
pub(super) async fn tunnel<S: AsyncRead + AsyncWrite + Unpin>(
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
}
