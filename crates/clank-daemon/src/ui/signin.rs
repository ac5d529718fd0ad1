//! Signing in with an API token (checked exactly as the REST API checks a bearer token) and
//! out again.

use axum::body::Bytes;
use axum::extract::State;
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
use crate::api::auth::{hash_token, principal_for_hash};

/// How long a sign-in form's token stays valid.
const SIGNIN_FORM_LIFETIME: std::time::Duration = std::time::Duration::from_secs(3600);

/// `GET /ui`: the workspace of whoever is signed in, or the sign-in form.
pub(crate) async fn home(signed: Result<Signed, Response>) -> Response {
    match signed {
        Ok(s) => see_other(&format!("/ui/workspaces/{}", s.principal.workspace.slug)),
        Err(_) => see_other("/ui/signin"),
    }
}

/// The sign-in form, with a fresh double-submit token in its own cookie (there is no session
/// to hold one yet), and `error` next to the token field.
fn form_page(headers: &HeaderMap, status: StatusCode, error: Option<&str>) -> Response {
    let token = random_token();
    let body: Markup = html! {
        h1 { "Sign in" }
        p.muted {
            "Use an API token of your workspace (" code { "clank token create" } ", or the one "
            code { "clank init" } " printed). The dashboard can do what the token's role may."
        }
        form method="post" action="/ui/signin" {
            input type="hidden" name="csrf" value=(token);
            label for="token" { "API token" }
            input type="password" id="token" name="token" required autocomplete="current-password"
                autofocus aria-invalid=[error.map(|_| "true")]
                aria-describedby=[error.map(|_| "token-error")];
            @if let Some(message) = error {
                p.error id="token-error" role="alert" { (message) }
            }
            div.actions { button.primary type="submit" { "Sign in" } }
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

/// `GET /ui/signin`.
pub(crate) async fn form(headers: HeaderMap) -> Response {
    form_page(&headers, StatusCode::OK, None)
}

/// `POST /ui/signin`: the token is checked as a bearer token is; a session is opened for it.
pub(crate) async fn sign_in(
    State(st): State<UiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    let expected = cookie(&headers, SIGNIN_COOKIE).unwrap_or_default();
    if !same_origin(&headers) || !same_secret(form.get("csrf").unwrap_or(""), &expected) {
        return form_page(
            &headers,
            StatusCode::FORBIDDEN,
            Some("this form expired or was not sent from this page: try again"),
        );
    }
    let token = form.get("token").map(str::trim).unwrap_or("");
    if token.is_empty() {
        return form_page(
            &headers,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("enter a token"),
        );
    }
    let hash = hash_token(token);
    let principal = match principal_for_hash(st.app.platform.catalog(), &hash).await {
        Ok(p) => p,
        Err(e) => return form_page(&headers, e.status(), Some(&e.body().message)),
    };
    let id = st.sessions.open(hash, Timestamp::now());
    let secure = over_tls(&headers);
    let mut response = see_other(&format!("/ui/workspaces/{}", principal.workspace.slug));
    for c in [
        set_cookie(COOKIE, &id, LIFETIME, secure),
        set_cookie(SIGNIN_COOKIE, "", std::time::Duration::ZERO, secure),
    ] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

/// `POST /ui/signout`: the session ends here and in the browser.
pub(crate) async fn sign_out(
    State(st): State<UiState>,
    headers: HeaderMap,
    posted: Posted,
) -> Response {
    st.sessions.close(&posted.signed.session);
    let mut response = see_other("/ui/signin");
    let c = set_cookie(COOKIE, "", std::time::Duration::ZERO, over_tls(&headers));
    if let Ok(v) = HeaderValue::from_str(&c) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response.into_response()
}
