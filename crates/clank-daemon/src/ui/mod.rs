//! The dashboard under `/ui`, on the API's listener: server-rendered HTML (maud escapes every
//! value it prints) with one small script for live status, signed in with an API token turned
//! into a session cookie. Every page reads through the platform operations the REST handlers
//! call, with the same `Principal` and role checks; what a page changes goes through
//! `api::dashboard` (the REST handlers themselves, or their checks and audit event).
//!
//! Every response carries a strict Content-Security-Policy (no inline script or style, nothing
//! from another origin), `nosniff` and no referrer; every POST needs the session's CSRF token
//! and a same-origin request.

mod assets;
mod audit;
mod canvas;
mod environments;
mod layout;
mod projects;
mod servers;
mod services;
mod session;
mod settings;
mod signin;
mod templates;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use maud::Markup;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{And, DefaultPredicate, Predicate as _, SizeAbove};

use crate::api::AppState;
use crate::api::error::ApiError;

pub(crate) use session::Sessions;

/// What every dashboard handler is given: the API's state and the signed-in sessions.
#[derive(Debug, Clone)]
pub(crate) struct UiState {
    app: AppState,
    sessions: Arc<Sessions>,
    /// Failed sign-ins, per client and per email.
    signins: Arc<signin::Limiter>,
}

/// The policy of every dashboard response: this origin's files only, no inline code, no
/// framing, forms posting only here.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// Forms are small: a token, a config variable.
const FORM_LIMIT: usize = 64 * 1024;

/// The dashboard's routes, under `/ui`.
pub(crate) fn router(app: AppState) -> Router {
    let state = UiState {
        app,
        sessions: Arc::new(Sessions::default()),
        signins: Arc::new(signin::Limiter::default()),
    };
    const SERVICE: &str = "/ui/workspaces/{ws}/projects/{p}/environments/{e}/services/{s}";
    Router::new()
        .route("/ui", get(signin::home))
        .route("/ui/", get(signin::home))
        .route("/ui/signin", get(signin::form).post(signin::sign_in))
        .route("/ui/signout", post(signin::sign_out))
        .route("/ui/assets/{file}", get(assets::serve))
        .route("/ui/workspaces/{ws}", get(projects::workspace))
        .route("/ui/workspaces/{ws}/projects/{p}", get(projects::project))
        .route(
            "/ui/workspaces/{ws}/projects/{p}/canvas",
            post(canvas::place),
        )
        .route(
            "/ui/workspaces/{ws}/projects/{p}/environments/{e}/services",
            post(projects::create_service),
        )
        .route("/ui/workspaces/{ws}/servers", get(servers::servers))
        .route("/ui/workspaces/{ws}/audit", get(audit::audit))
        .route("/ui/workspaces/{ws}/templates", get(templates::catalog))
        .route(
            "/ui/workspaces/{ws}/templates/{name}",
            get(templates::template),
        )
        .route(
            "/ui/workspaces/{ws}/templates/{name}/stacks",
            post(templates::deploy),
        )
        .route("/ui/workspaces/{ws}/plans/{id}", get(environments::plan))
        .route(
            "/ui/workspaces/{ws}/plans/{id}/apply",
            post(environments::apply),
        )
        .route(
            "/ui/workspaces/{ws}/projects/{p}/environments",
            get(environments::environments),
        )
        .route(
            "/ui/workspaces/{ws}/projects/{p}/environments/{e}/clone",
            post(environments::clone),
        )
        .route(
            "/ui/workspaces/{ws}/projects/{p}/promotions",
            post(environments::promote),
        )
        .route(SERVICE, get(services::service))
        .route(&format!("{SERVICE}/deployments"), post(services::deploy))
        .route(&format!("{SERVICE}/config"), post(services::set_config))
        .route(&format!("{SERVICE}/settings"), post(settings::save))
        .route(
            &format!("{SERVICE}/deployments/{{n}}"),
            get(services::deployment),
        )
        .route(
            &format!("{SERVICE}/deployments/{{n}}/events"),
            get(services::events),
        )
        .route(
            &format!("{SERVICE}/deployments/{{n}}/rollback"),
            post(services::rollback),
        )
        .route(
            &format!("{SERVICE}/deployments/{{n}}/cancel"),
            post(services::cancel),
        )
        .route(
            &format!("{SERVICE}/deployments/{{n}}/log"),
            get(services::deploy_log),
        )
        .route(&format!("{SERVICE}/logs"), get(services::logs))
        // Under `/ui` even a wrong address gets a page with the headers above.
        .route("/ui/{*rest}", any(not_found))
        .layer(axum::middleware::map_response(secure_headers))
        .layer(page_compression())
        .layer(DefaultBodyLimit::max(FORM_LIMIT))
        .with_state(state)
}

/// Pages (and assets) gzipped at the fastest level when the browser accepts it: a project of
/// a thousand services is a few hundred kilobytes of repetitive markup and a few dozen
/// gzipped. Event streams and small answers go as they are (tower-http's default predicate).
///
/// Compressing a page that holds a secret (the CSRF token) next to text an attacker chose can
/// leak the secret by its compressed size (BREACH), but only to someone who can make the
/// victim's browser load such pages signed in and watch their size: the session cookie is
/// `SameSite=Strict`, so no other site's request carries it.
fn page_compression() -> CompressionLayer<And<DefaultPredicate, SizeAbove>> {
    CompressionLayer::new()
        .quality(tower_http::CompressionLevel::Fastest)
        .compress_when(DefaultPredicate::new().and(SizeAbove::new(1400)))
}

async fn not_found() -> Failure {
    Failure(ApiError::not_found(
        "there is no such page in the dashboard",
    ))
}

/// The headers every dashboard response carries, whatever produced it.
async fn secure_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let fixed = [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        // Not `no-referrer`: under it a browser sends `Origin: null` with a form's POST, and
        // the origin check refuses every form. `same-origin` gives other sites nothing.
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// An HTML page: never cached (pages hold CSRF tokens and workspace data).
pub(crate) fn html(status: StatusCode, markup: Markup) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    (status, headers, markup.into_string()).into_response()
}

/// `303 See Other` to `to` (after a form, so a reload never posts it again).
pub(crate) fn see_other(to: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

/// A failure shown as a page: the API's status and message (an internal error's message is
/// already the API's generic one).
#[derive(Debug)]
pub(crate) struct Failure(ApiError);

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure(e)
    }
}

impl From<clank_core::Error> for Failure {
    fn from(e: clank_core::Error) -> Self {
        Failure(e.into())
    }
}

impl From<clank_core::InvalidInput> for Failure {
    fn from(e: clank_core::InvalidInput) -> Self {
        Failure(e.into())
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        html(self.0.status(), layout::failure(&self.0))
    }
}

pub(crate) type UiResult<T> = Result<T, Failure>;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_response_gets_the_policy_even_an_error() {
        let response = secure_headers(StatusCode::NOT_FOUND.into_response()).await;
        let h = response.headers();
        assert_eq!(h[header::CONTENT_SECURITY_POLICY], CONTENT_SECURITY_POLICY);
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[header::REFERRER_POLICY], "same-origin");
    }

    #[test]
    fn the_policy_allows_no_inline_code_and_nothing_from_elsewhere() {
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe"));
        assert!(!CONTENT_SECURITY_POLICY.contains('*'));
        assert!(CONTENT_SECURITY_POLICY.starts_with("default-src 'none'"));
        assert!(CONTENT_SECURITY_POLICY.contains("frame-ancestors 'none'"));
    }

    #[test]
    fn a_page_is_never_cached_and_says_it_is_html() {
        let r = html(StatusCode::OK, maud::html! { p { "x" } });
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
    }
}
