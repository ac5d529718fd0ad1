//! Signing in — with an email and password (the instance's `init` can set one up) or with an
//! API token (checked exactly as the REST API checks a bearer token) — and out again.
//!
//! A right password opens the session on a token made for it (`dashboard sign-in`, the user's
//! role in their first workspace, expiring with the session): from there on a password session
//! is a token session, checked on every page, and revocable like any token. Wrong passwords and
//! unknown emails get one answer, after the same Argon2 work (`Platform::password_sign_in`),
//! and failures are limited per client and per email ([`Limiter`], bounded memory); a password
//! is never logged, echoed into the form or kept.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use clank_core::Timestamp;
use maud::{Markup, html};

use super::layout::page;
use super::session::{
    COOKIE, Form, LIFETIME, Posted, SIGNIN_COOKIE, Signed, cookie, over_tls, random_token,
    same_origin, same_secret, set_cookie,
};
use super::{UiState, html as html_response, see_other};
use crate::api::auth::{hash_token, mint_token, principal_for_hash};
use crate::api::error::ApiError;

/// How long a sign-in form's token stays valid.
const SIGNIN_FORM_LIFETIME: Duration = Duration::from_secs(3600);

/// Failed password sign-ins allowed per email in a [`WINDOW`]; the next ones are refused
/// (429, right password or not) until the window ends.
pub(crate) const MAX_FAILURES_PER_EMAIL: u32 = 5;
/// Failed sign-ins (password or token) allowed per client address in a [`WINDOW`].
pub(crate) const MAX_FAILURES_PER_CLIENT: u32 = 20;
/// The window failures are counted in, from the first.
pub(crate) const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Clients and emails counted at most; beyond it, the oldest counts are forgotten.
pub(crate) const MAX_COUNTED: usize = 10_000;

/// Failed sign-ins per key (`client:{ip}`, `email:{email}`), each counted in a window from
/// its first failure. Bounded: expired counts go first, then the oldest.
#[derive(Debug)]
pub(crate) struct Limiter {
    counts: Mutex<HashMap<String, Failures>>,
    window: Duration,
    capacity: usize,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    since: Instant,
}

impl Default for Limiter {
    fn default() -> Self {
        Limiter::new(WINDOW, MAX_COUNTED)
    }
}

impl Limiter {
    pub(crate) fn new(window: Duration, capacity: usize) -> Self {
        Limiter {
            counts: Mutex::default(),
            window,
            capacity: capacity.max(1),
        }
    }

    /// How long until the first of `keys` that reached its limit may try again, if any did.
    fn blocked(&self, keys: &[(&str, u32)], now: Instant) -> Option<Duration> {
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        keys.iter()
            .filter_map(|(key, max)| {
                let f = counts.get(*key)?;
                let end = f.since + self.window;
                (f.count >= *max && end > now).then(|| end - now)
            })
            .max()
    }

    /// One more failure for each of `keys`.
    fn failed(&self, keys: &[&str], now: Instant) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        for key in keys {
            if !counts.contains_key(*key) && counts.len() >= self.capacity {
                let window = self.window;
                counts.retain(|_, f| f.since + window > now);
                while counts.len() >= self.capacity {
                    let Some(oldest) = counts
                        .iter()
                        .min_by_key(|(_, f)| f.since)
                        .map(|(k, _)| k.clone())
                    else {
                        break;
                    };
                    counts.remove(&oldest);
                }
            }
            let f = counts.entry((*key).to_owned()).or_insert(Failures {
                count: 0,
                since: now,
            });
            if f.since + self.window <= now {
                *f = Failures {
                    count: 0,
                    since: now,
                };
            }
            f.count = f.count.saturating_add(1);
        }
    }

    /// A sign-in succeeded: the email's count starts over (the client's stays).
    fn succeeded(&self, key: &str) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.remove(key);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// The client a sign-in is counted against: the connection's address, or behind a proxy on
/// this machine (a loopback peer) the address that proxy says it forwarded for.
fn client_key(peer: Option<SocketAddr>, headers: &HeaderMap) -> String {
    let peer_ip = peer.map(|p| p.ip());
    let forwarded = peer_ip
        .filter(IpAddr::is_loopback)
        .and_then(|_| headers.get("x-forwarded-for"))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(|v| v.trim().parse::<IpAddr>().ok());
    match forwarded.or(peer_ip) {
        Some(ip) => format!("client:{ip}"),
        None => "client:unknown".to_owned(),
    }
}

/// `GET /ui`: the workspace of whoever is signed in, or the sign-in form.
pub(crate) async fn home(signed: Result<Signed, Response>) -> Response {
    match signed {
        Ok(s) => see_other(&format!("/ui/workspaces/{}", s.principal.workspace.slug)),
        Err(_) => see_other("/ui/signin"),
    }
}

/// What a refused sign-in shows: which field (`email`, `password`, `token`, or `form` for
/// the whole page) and the message, and the email as sent (never the password or token).
#[derive(Debug, Default)]
struct Sent {
    email: String,
    /// The workspace a password sign-in asks for (`?workspace=` on the workspaces page's
    /// links), kept across a refusal.
    workspace: Option<String>,
    error: Option<(&'static str, String)>,
}

impl Sent {
    fn refused(email: &str, field: &'static str, message: impl Into<String>) -> Sent {
        Sent {
            email: email.to_owned(),
            workspace: None,
            error: Some((field, message.into())),
        }
    }

    fn in_workspace(mut self, workspace: Option<&str>) -> Sent {
        self.workspace = workspace.map(str::to_owned);
        self
    }
}

/// The workspace a sign-in form names, when it is a workspace slug at all.
fn asked_workspace(value: Option<&str>) -> Option<&str> {
    value.filter(|ws| clank_core::validate::validate_workspace_slug("workspace", ws).is_ok())
}

/// One labelled input with its error (if the refusal names it) next to it.
fn field(
    sent: &Sent,
    name: &'static str,
    label: &str,
    kind: &str,
    value: &str,
    autocomplete: &str,
) -> Markup {
    let error = sent
        .error
        .as_ref()
        .filter(|(f, _)| *f == name)
        .map(|(_, m)| m.as_str());
    let error_id = format!("{name}-error");
    html! {
        label for=(name) { (label) }
        input type=(kind) id=(name) name=(name) value=(value) required
            autocomplete=(autocomplete) spellcheck="false"
            aria-invalid=[error.map(|_| "true")]
            aria-describedby=[error.map(|_| error_id.clone())];
        @if let Some(message) = error {
            p.error id=(error_id) role="alert" { (message) }
        }
    }
}

/// The sign-in page: email and password, or an API token; a fresh double-submit token in its
/// own cookie (there is no session to hold one yet), and a refusal next to its field.
fn form_page(headers: &HeaderMap, status: StatusCode, sent: &Sent) -> Response {
    let token = random_token();
    let form_error = sent
        .error
        .as_ref()
        .filter(|(f, _)| *f == "form")
        .map(|(_, m)| m.as_str());
    let body: Markup = html! {
        h1 { "Sign in" }
        @if let Some(message) = form_error {
            p.error role="alert" { (message) }
        }
        section aria-labelledby="with-password" {
            h2 id="with-password" { "With your email and password" }
            @if let Some(ws) = &sent.workspace {
                p { "Into workspace " code { (ws) } " (you must be a member of it)." }
            } @else {
                p.muted { "If the instance gave you one (" code { "clank init --password-stdin" } ")." }
            }
            form method="post" action="/ui/signin" {
                input type="hidden" name="csrf" value=(token);
                input type="hidden" name="method" value="password";
                @if let Some(ws) = &sent.workspace { input type="hidden" name="workspace" value=(ws); }
                (field(sent, "email", "Email", "email", &sent.email, "username"))
                (field(sent, "password", "Password", "password", "", "current-password"))
                div.actions { button.primary type="submit" { "Sign in" } }
            }
        }
        section aria-labelledby="with-token" {
            h2 id="with-token" { "With an API token" }
            p.muted {
                "Use an API token of your workspace (" code { "clank token create" } ", or the one "
                code { "clank init" } " printed). The dashboard can do what the token's role may."
            }
            form method="post" action="/ui/signin" {
                input type="hidden" name="csrf" value=(token);
                input type="hidden" name="method" value="token";
                (field(sent, "token", "API token", "password", "", "current-password"))
                div.actions { button.primary type="submit" { "Sign in" } }
            }
        }
    };
    let mut response = html_response(status, page("Sign in", None, &[], body));
    let cookie = set_cookie(
        SIGNIN_COOKIE,
        &token,
        SIGNIN_FORM_LIFETIME,
        over_tls(headers),
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

/// `GET /ui/signin[?workspace=<slug>]`: a password sign-in into that workspace.
pub(crate) async fn form(headers: HeaderMap, Query(query): Query<FormQuery>) -> Response {
    let sent = Sent::default().in_workspace(asked_workspace(query.workspace.as_deref()));
    form_page(&headers, StatusCode::OK, &sent)
}

#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct FormQuery {
    workspace: Option<String>,
}

/// Too many failures: when to try again, in words.
fn too_many(wait: Duration) -> String {
    let minutes = wait.as_secs().div_ceil(60).max(1);
    format!(
        "too many failed sign-ins: try again in {minutes} minute{}",
        if minutes == 1 { "" } else { "s" }
    )
}

/// `POST /ui/signin`: a password is checked by the platform, a token as a bearer token is; a
/// session is opened for the token (the one the password sign-in made, or the one given).
pub(crate) async fn sign_in(
    State(st): State<UiState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    let expected = cookie(&headers, SIGNIN_COOKIE).unwrap_or_default();
    if !same_origin(&headers) || !same_secret(form.get("csrf").unwrap_or(""), &expected) {
        let sent = Sent::refused(
            "",
            "form",
            "this form expired or was not sent from this page: try again",
        );
        return form_page(&headers, StatusCode::FORBIDDEN, &sent);
    }
    let client = client_key(peer.map(|Extension(ConnectInfo(p))| p), &headers);
    let by_password = match form.get("method") {
        Some(m) => m == "password",
        None => form.get("email").is_some() || form.get("password").is_some(),
    };
    let now = Instant::now();
    let opened = if by_password {
        password_sign_in(&st, &form, &client, now).await
    } else {
        token_sign_in(&st, &form, &client, now).await
    };
    let (hash, minted, workspace) = match opened {
        Ok(opened) => opened,
        Err((status, sent)) => return form_page(&headers, status, &sent),
    };
    let id = st.sessions.open_with(hash, minted, Timestamp::now());
    let secure = over_tls(&headers);
    let mut response = see_other(&format!("/ui/workspaces/{workspace}"));
    for c in [
        set_cookie(COOKIE, &id, LIFETIME, secure),
        set_cookie(SIGNIN_COOKIE, "", Duration::ZERO, secure),
    ] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

/// A session's token hash, whether it was made for it, and the workspace's slug; or the page
/// to answer with.
type Opened = Result<(String, bool, String), (StatusCode, Sent)>;

async fn token_sign_in(st: &UiState, form: &Form, client: &str, now: Instant) -> Opened {
    if let Some(wait) = st
        .signins
        .blocked(&[(client, MAX_FAILURES_PER_CLIENT)], now)
    {
        let sent = Sent::refused("", "token", too_many(wait));
        return Err((StatusCode::TOO_MANY_REQUESTS, sent));
    }
    let token = form.get("token").map(str::trim).unwrap_or("");
    if token.is_empty() {
        let sent = Sent::refused("", "token", "enter a token");
        return Err((StatusCode::UNPROCESSABLE_ENTITY, sent));
    }
    let hash = hash_token(token);
    match principal_for_hash(st.app.platform.catalog(), &hash).await {
        Ok(p) => Ok((hash, false, p.workspace.slug)),
        Err(e) => {
            if e.status() == StatusCode::UNAUTHORIZED {
                st.signins.failed(&[client], now);
            }
            let sent = Sent::refused("", "token", e.body().message.clone());
            Err((e.status(), sent))
        }
    }
}

async fn password_sign_in(st: &UiState, form: &Form, client: &str, now: Instant) -> Opened {
    let workspace = asked_workspace(form.get("workspace"));
    password_sign_in_to(st, form, workspace, client, now)
        .await
        .map_err(|(status, sent)| (status, sent.in_workspace(workspace)))
}

async fn password_sign_in_to(
    st: &UiState,
    form: &Form,
    workspace: Option<&str>,
    client: &str,
    now: Instant,
) -> Opened {
    let email = form.get("email").map(str::trim).unwrap_or("");
    let password = form.get("password").unwrap_or("");
    let missing = if email.is_empty() {
        Some(("email", "enter your email"))
    } else if password.is_empty() {
        Some(("password", "enter your password"))
    } else {
        None
    };
    if let Some((field, message)) = missing {
        let sent = Sent::refused(email, field, message);
        return Err((StatusCode::UNPROCESSABLE_ENTITY, sent));
    }
    // Not an email at all: said as the API says it, next to the field (it names no account).
    if let Err(e) = clank_platform::identity::validate_email(email) {
        let e = ApiError::from(e);
        let sent = Sent::refused(email, "email", e.body().message.clone());
        return Err((e.status(), sent));
    }
    let email_key = format!("email:{}", email.to_lowercase());
    let limits = [
        (client, MAX_FAILURES_PER_CLIENT),
        (email_key.as_str(), MAX_FAILURES_PER_EMAIL),
    ];
    if let Some(wait) = st.signins.blocked(&limits, now) {
        let sent = Sent::refused(email, "password", too_many(wait));
        return Err((StatusCode::TOO_MANY_REQUESTS, sent));
    }
    let (_token, digest) = mint_token();
    let hash = digest.hash.clone();
    match st
        .app
        .platform
        .password_sign_in(email, password, workspace, digest, LIFETIME)
        .await
    {
        Ok(signed_in) => {
            st.signins.succeeded(&email_key);
            Ok((hash, true, signed_in.workspace.slug))
        }
        Err(e) => {
            let e = ApiError::from(e);
            if e.status() == StatusCode::UNAUTHORIZED {
                st.signins.failed(&[client, &email_key], now);
            }
            let sent = Sent::refused(email, "password", e.body().message.clone());
            Err((e.status(), sent))
        }
    }
}

/// `POST /ui/signout`: the session ends here and in the browser; a password session's own
/// token is revoked with it.
pub(crate) async fn sign_out(
    State(st): State<UiState>,
    headers: HeaderMap,
    posted: Posted,
) -> Response {
    let signed = &posted.signed;
    st.sessions.close(&signed.session);
    if signed.minted {
        let p = &signed.principal;
        if let Err(e) = st
            .app
            .platform
            .revoke_token(p.caller(), &p.token.to_string())
            .await
        {
            tracing::warn!(error = %e, token = %p.token, "Could not revoke a signed-out session's token.");
        }
    }
    let mut response = see_other("/ui/signin");
    let c = set_cookie(COOKIE, "", Duration::ZERO, over_tls(&headers));
    if let Ok(v) = HeaderValue::from_str(&c) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_block_a_key_at_its_limit_until_the_window_ends() {
        let l = Limiter::new(Duration::from_secs(60), 100);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.blocked(&[("email:a", 3)], t0).is_none());
            l.failed(&["email:a"], t0);
        }
        let wait = l.blocked(&[("email:a", 3)], t0).expect("blocked");
        assert_eq!(wait, Duration::from_secs(60));
        assert!(
            l.blocked(&[("email:b", 3)], t0).is_none(),
            "others unaffected"
        );
        let later = t0 + Duration::from_secs(60);
        assert!(l.blocked(&[("email:a", 3)], later).is_none());
        // A new window starts with the next failure.
        l.failed(&["email:a"], later);
        assert!(l.blocked(&[("email:a", 3)], later).is_none());
        l.succeeded("email:a");
        assert_eq!(l.len(), 0);
    }

    #[test]
    fn the_counts_are_bounded_and_the_oldest_go_first() {
        let l = Limiter::new(Duration::from_secs(60), 2);
        let t0 = Instant::now();
        l.failed(&["a"], t0);
        l.failed(&["b"], t0 + Duration::from_secs(1));
        l.failed(&["c"], t0 + Duration::from_secs(2));
        assert_eq!(l.len(), 2);
        assert!(l.blocked(&[("a", 1)], t0).is_none(), "forgotten");
        assert!(l.blocked(&[("c", 1)], t0).is_some());
    }

    #[test]
    fn the_client_is_the_peer_or_what_a_local_proxy_forwarded_for() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 10.0.0.7"),
        );
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let remote: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        assert_eq!(client_key(Some(local), &h), "client:10.0.0.7");
        assert_eq!(client_key(Some(remote), &h), "client:192.0.2.1");
        assert_eq!(
            client_key(Some(local), &HeaderMap::new()),
            "client:127.0.0.1"
        );
        assert_eq!(client_key(None, &h), "client:unknown");
    }
}
