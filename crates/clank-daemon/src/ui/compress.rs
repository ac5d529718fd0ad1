//! The dashboard's HTML pages gzipped when the browser accepts it: a project of a thousand
//! services is several hundred kilobytes of repetitive markup and a few dozen gzipped.
//!
//! Compressing a page that holds a secret (the CSRF token) next to text an attacker chose can
//! leak the secret by its compressed size (BREACH), but only to someone who can make the
//! victim's browser load such pages signed in and watch their size: the session cookie is
//! `SameSite=Strict`, so no other site's request carries it, and a sign-in page has no session.

use std::io::Write as _;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Smaller pages go as they are: a packet either way.
const MIN_SIZE: usize = 1400;

/// Whether `Accept-Encoding` allows gzip (named, or `*`, without `q=0`).
pub(crate) fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

/// Middleware: a `text/html` answer of some size, not already encoded, gzipped for a client
/// that accepts it (`Vary: Accept-Encoding` either way).
pub(crate) async fn gzip_html(req: Request, next: Next) -> Response {
    let accepts = accepts_gzip(req.headers());
    compress(accepts, next.run(req).await).await
}

async fn compress(accepts: bool, mut response: Response) -> Response {
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if !is_html {
        return response;
    }
    response
        .headers_mut()
        .append(header::VARY, HeaderValue::from_static("accept-encoding"));
    if !accepts || response.headers().contains_key(header::CONTENT_ENCODING) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // Pages are rendered whole into a string: this only takes what is already there.
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if bytes.len() < MIN_SIZE {
        return Response::from_parts(parts, Body::from(bytes));
    }
    let mut gz = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 4),
        // The fastest level: a 500 KB page in a couple of milliseconds, still ~10× smaller.
        flate2::Compression::fast(),
    );
    let compressed = gz.write_all(&bytes).and_then(|()| gz.finish());
    match compressed {
        Ok(compressed) => {
            parts.headers.remove(header::CONTENT_LENGTH);
            parts
                .headers
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            Response::from_parts(parts, Body::from(compressed))
        }
        Err(_) => Response::from_parts(parts, Body::from(bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(v));
        h
    }

    #[test]
    fn gzip_is_accepted_when_named_or_starred_and_not_refused() {
        assert!(accepts_gzip(&accept("gzip, deflate, br, zstd")));
        assert!(accepts_gzip(&accept("br;q=1.0, GZIP;q=0.5")));
        assert!(accepts_gzip(&accept("*")));
        assert!(!accepts_gzip(&accept("gzip;q=0")));
        assert!(!accepts_gzip(&accept("br, identity")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[tokio::test]
    async fn a_large_page_is_gzipped_for_a_browser_that_accepts_it_and_not_otherwise() {
        let page =
            || super::super::html(StatusCode::OK, maud::PreEscaped("<p>row</p>".repeat(1000)));
        let plain = compress(false, page()).await;
        assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
        assert_eq!(plain.headers()[header::VARY], "accept-encoding");
        let plain = axum::body::to_bytes(plain.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(plain.len(), 10_000);

        let zipped = compress(true, page()).await;
        assert_eq!(zipped.headers()[header::CONTENT_ENCODING], "gzip");
        let zipped = axum::body::to_bytes(zipped.into_body(), usize::MAX)
            .await
            .unwrap();
        assert!(zipped.len() < 1000, "{}", zipped.len());
        let mut out = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&zipped[..]), &mut out)
            .unwrap();
        assert_eq!(out.len(), 10_000);

        // Small pages and anything not HTML go as they are.
        let small = compress(
            true,
            super::super::html(StatusCode::OK, maud::html! { p { "x" } }),
        )
        .await;
        assert!(small.headers().get(header::CONTENT_ENCODING).is_none());
        let json = compress(true, (StatusCode::OK, "{}".repeat(2000)).into_response()).await;
        assert!(json.headers().get(header::CONTENT_ENCODING).is_none());
    }
}
