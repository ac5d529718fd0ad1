//! A browser of the dashboard for the in-process tests (`ui.rs`, `ui_pages.rs`,
//! `ui_signin.rs`): it keeps the cookies the daemon sets and sends them back, posts forms as a
//! page of this origin would, and reads the CSRF token and security headers of an answer.
//! Redirects are not followed, so each answer can be checked.

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, SET_COOKIE};

use super::Daemon;

/// The policy every dashboard response carries.
pub(crate) const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                                 img-src 'self'; connect-src 'self'; form-action 'self'; \
                                 frame-ancestors 'none'; base-uri 'none'";

/// A browser of the dashboard: its cookies, sent back as a browser would (redirects are not
/// followed, so each answer can be checked).
pub(crate) struct Browser {
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
    pub(crate) cookies: Vec<(String, String)>,
}

/// An answer: status, headers, body.
pub(crate) struct Page {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

impl Page {
    pub(crate) fn location(&self) -> Option<&str> {
        self.headers.get("location").and_then(|v| v.to_str().ok())
    }

    /// The first form's CSRF token on the page.
    pub(crate) fn csrf(&self) -> String {
        let at = self
            .body
            .find(r#"name="csrf" value=""#)
            .unwrap_or_else(|| panic!("no CSRF field in {}", self.body));
        let rest = &self.body[at + r#"name="csrf" value=""#.len()..];
        rest[..rest.find('"').unwrap()].to_owned()
    }

    pub(crate) fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    /// The session cookie's attributes (everything after its value).
    pub(crate) fn session_flags(&self) -> String {
        let c = self
            .set_cookies()
            .into_iter()
            .find(|c| c.starts_with("clank_session="))
            .unwrap_or_else(|| panic!("no session cookie: {:?}", self.headers));
        c.split_once(';').unwrap().1.to_owned()
    }

    pub(crate) fn assert_secure_headers(&self, what: &str) {
        let h = |name: &str| {
            self.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_else(|| panic!("{what}: no {name}"))
                .to_owned()
        };
        assert_eq!(h("content-security-policy"), POLICY, "{what}");
        assert_eq!(h("x-content-type-options"), "nosniff", "{what}");
        assert_eq!(h("referrer-policy"), "same-origin", "{what}");
    }
}

impl Browser {
    pub(crate) fn new(daemon: &Daemon) -> Browser {
        Browser {
            http: clank_testkit::web::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: format!("http://{}", daemon.addr),
            cookies: Vec::new(),
        }
    }

    pub(crate) fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Keep what `Set-Cookie` says (a `Max-Age=0` removes).
    pub(crate) fn remember(&mut self, page: &Page) {
        for c in page.set_cookies() {
            let pair = c.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            self.cookies.retain(|(k, _)| k != name);
            if !c.contains("Max-Age=0") {
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
    }

    pub(crate) async fn send(&mut self, r: reqwest::RequestBuilder) -> Page {
        let r = if self.cookies.is_empty() {
            r
        } else {
            r.header("cookie", self.cookie_header())
        };
        let resp = r.send().await.unwrap();
        let page = Page {
            status: resp.status(),
            headers: resp.headers().clone(),
            body: resp.text().await.unwrap(),
        };
        self.remember(&page);
        page
    }

    pub(crate) async fn get(&mut self, path: &str) -> Page {
        let r = self.http.get(format!("{}{path}", self.base));
        self.send(r).await
    }

    /// A form posted as a browser on this page would: same origin, form-encoded.
    pub(crate) async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        self.post_with(path, fields, &[("origin", self.base.clone())])
            .await
    }

    pub(crate) async fn post_with(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
        headers: &[(&str, String)],
    ) -> Page {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let mut r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        for (k, v) in headers {
            r = r.header(*k, v);
        }
        self.send(r).await
    }

    /// Signed in with `token`: the sign-in page's answer.
    pub(crate) async fn sign_in(&mut self, token: &str) -> Page {
        let form = self.get("/ui/signin").await;
        assert_eq!(form.status, StatusCode::OK);
        let csrf = form.csrf();
        self.post("/ui/signin", &[("csrf", &csrf), ("token", token)])
            .await
    }

    /// The sign-in form's email-and-password half, sent.
    pub(crate) async fn sign_in_with_password(&mut self, email: &str, password: &str) -> Page {
        let form = self.get("/ui/signin").await;
        assert_eq!(form.status, StatusCode::OK);
        let csrf = form.csrf();
        self.post(
            "/ui/signin",
            &[
                ("csrf", &csrf),
                ("method", "password"),
                ("email", email),
                ("password", password),
            ],
        )
        .await
    }

    /// The sign-in form's token half, sent.
    pub(crate) async fn sign_in_with_token(&mut self, token: &str) -> Page {
        let form = self.get("/ui/signin").await;
        let csrf = form.csrf();
        self.post(
            "/ui/signin",
            &[("csrf", &csrf), ("method", "token"), ("token", token)],
        )
        .await
    }

    pub(crate) fn has_session(&self) -> bool {
        self.cookies.iter().any(|(k, _)| k == "clank_session")
    }
}
