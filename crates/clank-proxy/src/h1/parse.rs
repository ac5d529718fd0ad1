//! Heads: parsed in place by `httparse` into ranges of the read buffer, the framing and
//! connection headers they declare, and the heads the proxy writes itself.

use std::mem::MaybeUninit;
use std::ops::Range;
use std::time::Duration;

use http::StatusCode;

use crate::admission::{HOP_BY_HOP, Local};

/// Headers per message, as hyper allows; more is a 431 (request) or a 502 (response).
const MAX_HEADERS: usize = 100;

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    Empty,
    Length(u64),
    Chunked,
    /// Response only: the body ends when the upstream closes.
    UntilClose,
}

/// A parsed head as ranges into the buffer it was parsed from, so it borrows nothing and its
/// vector is reused from request to request.
#[derive(Debug, Default)]
pub(super) struct Head {
    pub(super) len: usize,
    /// Request: the method. Response: the reason phrase.
    pub(super) first: Range<usize>,
    /// Request: the target.
    pub(super) target: Range<usize>,
    pub(super) status: u16,
    pub(super) minor: u8,
    pub(super) headers: Vec<(Range<usize>, Range<usize>)>,
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

pub(super) fn parse_request(buf: &[u8], head: &mut Head) -> Result<bool, Local> {
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

pub(super) fn parse_response(buf: &[u8], head: &mut Head) -> Result<bool, &'static str> {
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
pub(super) fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|b| *b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// The value of a `Content-Length` header (possibly a list of equal values); `None` if invalid.
pub(super) fn parse_length(value: &[u8], prior: Option<u64>) -> Option<u64> {
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
pub(super) fn is_hop_by_hop(name: &[u8]) -> bool {
    HOP_BY_HOP
        .iter()
        .any(|n| n.as_str().as_bytes().eq_ignore_ascii_case(name))
}

/// What the connection-level headers of one message say.
#[derive(Debug, Default)]
pub(super) struct Connection {
    pub(super) close: bool,
    pub(super) keep_alive: bool,
    pub(super) upgrade: bool,
    /// Other tokens: names of more hop-by-hop headers to drop.
    named: Vec<Range<usize>>,
}

impl Connection {
    pub(super) fn read(buf: &[u8], head: &Head) -> Connection {
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

    pub(super) fn names(&self, buf: &[u8], name: &[u8]) -> bool {
        self.named
            .iter()
            .any(|r| buf[r.clone()].eq_ignore_ascii_case(name))
    }
}

pub(super) fn push_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

pub(super) fn push_number(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// A response the proxy makes itself, serialised.
pub(super) fn local_response(out: &mut Vec<u8>, local: &Local, close: bool, head_only: bool) {
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

pub(super) fn strip_scheme(target: &[u8]) -> Option<&[u8]> {
    for scheme in [&b"http://"[..], b"https://"] {
        if target.len() > scheme.len() && target[..scheme.len()].eq_ignore_ascii_case(scheme) {
            return Some(&target[scheme.len()..]);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

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
