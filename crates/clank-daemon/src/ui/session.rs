//! Dashboard sessions: a random id in an HttpOnly, SameSite=Strict cookie, mapped in memory
//! (bounded, expiring) to the *hash* of the API token it was opened with, so every page
//! re-checks the token the way the REST API does (a revoked token or a lowered role takes
//! effect on the next click). A password sign-in opens its session on a token made for it
//! (`dashboard sign-in`, expiring with the session, revoked at sign-out): the same checks, and
//! revocable like any token. Each session has a CSRF token every form carries; a POST needs it
//! (compared in constant time) and must come from this origin.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use clank_core::Timestamp;
use rand::RngCore;
use subtle::ConstantTimeEq;

use super::{Failure, UiState, see_other};
use crate::api::auth::{Principal, principal_for_hash};
use crate::api::error::ApiError;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "clank_session";
/// The sign-in form's own CSRF cookie (double submit: there is no session yet).
pub(crate) const SIGNIN_COOKIE: &str = "clank_signin";
/// How long a session lasts from sign-in.
pub(crate) const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at most; signing in beyond it ends the session closest to expiry.
pub(crate) const MAX_SESSIONS: usize = 10_000;

/// One signed-in browser.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The SHA-256 of the API token signed in with (never the token).
    token_hash: String,
    /// Every form of this session carries it.
    pub(crate) csrf: String,
    expires: Timestamp,
    /// Its token was made for it by a password sign-in, and is revoked when it ends.
    minted: bool,
}

/// The open sessions, by id.
#[derive(Debug)]
pub(crate) struct Sessions {
    open: Mutex<HashMap<String, Session>>,
    max: usize,
    lifetime: Duration,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions::new(MAX_SESSIONS, LIFETIME)
    }
}

impl Sessions {
    pub(crate) fn new(max: usize, lifetime: Duration) -> Self {
        Sessions {
            open: Mutex::default(),
            max: max.max(1),
            lifetime,
        }
    }

    /// A new session for the token whose hash is `token_hash`: its id (for the cookie).
    #[cfg(test)]
    pub(crate) fn open(&self, token_hash: String, now: Timestamp) -> String {
        self.open_with(token_hash, false, now)
    }

    /// [`Sessions::open`]; `minted` when the token was made for this session (a password
    /// sign-in), so signing out revokes it.
    pub(crate) fn open_with(&self, token_hash: String, minted: bool, now: Timestamp) -> String {
        let id = random_token();
        let session = Session {
            token_hash,
            csrf: random_token(),
            expires: now.saturating_add(self.lifetime),
            minted,
        };
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.len() >= self.max {
            open.retain(|_, s| s.expires > now);
        }
        while open.len() >= self.max {
            let Some(oldest) = open
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(id, _)| id.clone())
            else {
                break;
            };
            open.remove(&oldest);
        }
        open.insert(id.clone(), session);
        id
    }

    /// The session `id` names, unless it expired (then it is forgotten).
    pub(crate) fn get(&self, id: &str, now: Timestamp) -> Option<Session> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        match open.get(id) {
            Some(s) if s.expires > now => Some(s.clone()),
            Some(_) => {
                open.remove(id);
                None
            }
            None => None,
        }
    }

    pub(crate) fn close(&self, id: &str) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.remove(id);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// 256 random bits, base64url.
pub(crate) fn random_token() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether `given` is `expected`, in time independent of where they differ.
pub(crate) fn same_secret(given: &str, expected: &str) -> bool {
    !expected.is_empty() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// Whether the browser reached us over TLS: the daemon's listener is plain HTTP, so that is a
/// TLS-terminating proxy's `X-Forwarded-Proto: https` (or `Forwarded: proto=https`). A client
/// forging it only makes its own cookie `Secure`.
pub(crate) fn over_tls(headers: &HeaderMap) -> bool {
    let forwarded_proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    let forwarded = headers
        .get(header::FORWARDED)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split([';', ','])
                .any(|p| p.trim().eq_ignore_ascii_case("proto=https"))
        });
    forwarded_proto || forwarded
}

/// `Set-Cookie` for a cookie of the dashboard: HttpOnly, SameSite=Strict, only under `/ui`,
/// `Secure` behind TLS; `max_age` 0 removes it.
pub(crate) fn set_cookie(name: &str, value: &str, max_age: Duration, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}{}",
        max_age.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// Whether a POST comes from a page of this origin: a browser's `Sec-Fetch-Site` says
/// `same-origin`, and its `Origin` names the host the request was sent to. A client sending
/// neither (not a browser, or an old one) still needs the CSRF token.
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site")
        && !matches!(site, "same-origin" | "none")
    {
        return false;
    }
    let Some(origin) = text("origin") else {
        return true;
    };
    let Some((_, origin_host)) = origin.split_once("://") else {
        return false; // `null`: a sandboxed or privacy-stripped origin
    };
    let hosts = [text("x-forwarded-host"), text("host")];
    hosts
        .into_iter()
        .flatten()
        .any(|host| host.eq_ignore_ascii_case(origin_host))
}

/// A signed-in caller: the session and the `Principal` its token resolves to now.
#[derive(Debug, Clone)]
pub(crate) struct Signed {
    pub(crate) principal: Principal,
    pub(crate) session: String,
    pub(crate) csrf: String,
    /// Signed in with a password: the session's token is its own.
    pub(crate) minted: bool,
}

impl FromRequestParts<UiState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, st: &UiState) -> Result<Self, Response> {
        let not_signed_in = |method: &Method| {
            if method == Method::GET || method == Method::HEAD {
                see_other("/ui/signin")
            } else {
                Failure::from(ApiError::unauthorized(
                    "you are not signed in (or your session expired): sign in again",
                ))
                .into_response()
            }
        };
        let Some(id) = cookie(&parts.headers, COOKIE) else {
            return Err(not_signed_in(&parts.method));
        };
        let Some(session) = st.sessions.get(&id, Timestamp::now()) else {
            return Err(not_signed_in(&parts.method));
        };
        match principal_for_hash(st.app.platform.catalog(), &session.token_hash).await {
            Ok(principal) => Ok(Signed {
                principal,
                session: id,
                csrf: session.csrf,
                minted: session.minted,
            }),
            // The token was revoked, expired, or its user left: so does the session.
            Err(e) if e.status() == StatusCode::UNAUTHORIZED => {
                st.sessions.close(&id);
                Err(not_signed_in(&parts.method))
            }
            Err(e) => Err(Failure::from(e).into_response()),
        }
    }
}

/// A form's fields, in order.
#[derive(Debug, Default)]
pub(crate) struct Form(Vec<(String, String)>);

impl Form {
    pub(crate) fn parse(body: &[u8]) -> Form {
        Form(form_urlencoded::parse(body).into_owned().collect())
    }

    /// The first value of field `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A POSTed form of a signed-in caller, from this origin, with the session's CSRF token: the
/// only way a dashboard handler receives a form, so none can skip the checks.
#[derive(Debug)]
pub(crate) struct Posted {
    pub(crate) signed: Signed,
    pub(crate) form: Form,
}

/// Why a POST was refused before it reached its handler.
fn forged() -> Response {
    Failure::from(ApiError::forbidden(
        "this form was not sent from a page of this dashboard, or its security token is \
         missing or stale: reload the page and try again",
    ))
    .into_response()
}

impl FromRequest<UiState> for Posted {
    type Rejection = Response;

    async fn from_request(req: Request, st: &UiState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let signed = Signed::from_request_parts(&mut parts, st).await?;
        if !same_origin(&parts.headers) {
            return Err(forged());
        }
        let req = Request::from_parts(parts, body);
        let body = Bytes::from_request(req, st)
            .await
            .map_err(IntoResponse::into_response)?;
        let form = Form::parse(&body);
        if !same_secret(form.get("csrf").unwrap_or(""), &signed.csrf) {
            return Err(forged());
        }
        Ok(Posted { signed, form })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn a_session_expires_after_its_lifetime_and_is_forgotten() {
        let sessions = Sessions::new(10, Duration::from_secs(60));
        let t0 = Timestamp::from_millis(1_000_000);
        let id = sessions.open("hash".into(), t0);
        assert!(
            sessions
                .get(&id, t0.saturating_add(Duration::from_secs(59)))
                .is_some()
        );
        assert!(
            sessions
                .get(&id, t0.saturating_add(Duration::from_secs(60)))
                .is_none()
        );
        assert_eq!(sessions.len(), 0);
    }

    #[test]
    fn sessions_are_bounded_and_the_one_closest_to_expiry_goes_first() {
        let sessions = Sessions::new(2, Duration::from_secs(60));
        let t0 = Timestamp::from_millis(1_000_000);
        let first = sessions.open("a".into(), t0);
        let second = sessions.open("b".into(), t0.saturating_add(Duration::from_secs(1)));
        let third = sessions.open("c".into(), t0.saturating_add(Duration::from_secs(2)));
        assert_eq!(sessions.len(), 2);
        assert!(sessions.get(&first, t0).is_none());
        assert!(sessions.get(&second, t0).is_some());
        assert!(sessions.get(&third, t0).is_some());
    }

    #[test]
    fn each_session_has_its_own_unguessable_id_and_csrf_token() {
        let sessions = Sessions::default();
        let now = Timestamp::from_millis(1);
        let (a, b) = (
            sessions.open("h".into(), now),
            sessions.open("h".into(), now),
        );
        assert_ne!(a, b);
        assert_eq!(a.len(), 43, "256 bits in base64url");
        let (sa, sb) = (
            sessions.get(&a, now).unwrap(),
            sessions.get(&b, now).unwrap(),
        );
        assert_ne!(sa.csrf, sb.csrf);
        assert_ne!(sa.csrf, a);
        sessions.close(&a);
        assert!(sessions.get(&a, now).is_none());
    }

    #[test]
    fn a_secret_matches_only_itself_and_never_when_empty() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abd", "abc"));
        assert!(!same_secret("ab", "abc"));
        assert!(!same_secret("", ""));
    }

    #[test]
    fn the_cookie_is_http_only_strict_under_ui_and_secure_only_behind_tls() {
        let c = set_cookie(COOKIE, "v", LIFETIME, false);
        assert_eq!(
            c,
            "clank_session=v; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=43200"
        );
        assert!(set_cookie(COOKIE, "v", LIFETIME, true).ends_with("; Secure"));
        assert!(over_tls(&headers(&[("x-forwarded-proto", "https")])));
        assert!(over_tls(&headers(&[(
            "forwarded",
            "for=1.2.3.4;proto=https"
        )])));
        assert!(!over_tls(&headers(&[("x-forwarded-proto", "http")])));
        assert!(!over_tls(&HeaderMap::new()));
    }

    #[test]
    fn cookies_are_found_by_exact_name_among_several_headers() {
        let h = headers(&[
            ("cookie", "a=1; clank_session_x=2"),
            ("cookie", "clank_session=abc"),
        ]);
        assert_eq!(cookie(&h, COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&h, "missing"), None);
    }

    #[test]
    fn a_cross_site_post_is_refused_and_a_same_origin_one_passes() {
        let host = ("host", "dash.example:7070");
        assert!(same_origin(&headers(&[
            host,
            ("origin", "http://dash.example:7070"),
            ("sec-fetch-site", "same-origin"),
        ])));
        assert!(!same_origin(&headers(&[
            host,
            ("origin", "https://evil.example"),
        ])));
        assert!(!same_origin(&headers(&[
            host,
            ("sec-fetch-site", "cross-site")
        ])));
        assert!(!same_origin(&headers(&[
            host,
            ("sec-fetch-site", "same-site")
        ])));
        assert!(!same_origin(&headers(&[host, ("origin", "null")])));
        // No browser headers at all: the CSRF token alone decides.
        assert!(same_origin(&headers(&[host])));
    }

    #[test]
    fn a_form_gives_the_first_value_of_a_field_decoded() {
        let f = Form::parse(b"key=A%3DB&value=x+y&key=second");
        assert_eq!(f.get("key"), Some("A=B"));
        assert_eq!(f.get("value"), Some("x y"));
        assert_eq!(f.get("none"), None);
    }
}
