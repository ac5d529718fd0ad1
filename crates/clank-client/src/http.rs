//! One call to the daemon: the URL made from path segments (each percent-encoded, so a name
//! can never change the path), the bearer token, a deadline, retries where repeating the call
//! cannot do anything twice, and the daemon's error body turned back into the platform's
//! error kinds.

use std::path::PathBuf;
use std::time::Duration;

use clank_api::ErrorBody;
use clank_core::{Error, ErrorKind, Result};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

/// How calls are made.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Longest wait for one answer (default 30 s); [`Request::Wait`](clank_api::Request::Wait)
    /// waits its own `timeout_s` on top.
    pub timeout: Duration,
    /// How often a call that failed on the way is tried again (default 2): reads and
    /// idempotent writes (`GET`, `PUT`, `DELETE`) after a broken connection or a 502/503/504,
    /// every call when the connection was refused (nothing was sent).
    pub retries: u32,
    /// The workspace short addresses mean (default: the token's).
    pub workspace: Option<String>,
    /// A CA certificate file (PEM) to trust for an `https://` daemon, on top of the system's
    /// roots: for a daemon whose certificate a private CA signed (default: none).
    pub ca_cert: Option<PathBuf>,
}

impl ConnectOptions {
    /// Options from a binding's arguments: `timeout_s` a positive number of seconds.
    pub fn from_secs(timeout_s: f64, retries: u32, workspace: Option<String>) -> Result<Self> {
        let timeout = Duration::try_from_secs_f64(timeout_s)
            .ok()
            .filter(|t| !t.is_zero())
            .ok_or_else(|| {
                Error::Invalid(clank_core::InvalidInput::new(
                    "timeout",
                    "range",
                    format!("a call's timeout is a positive number of seconds, not {timeout_s}"),
                ))
            })?;
        Ok(ConnectOptions {
            timeout,
            retries,
            workspace,
            ca_cert: None,
        })
    }
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            timeout: Duration::from_secs(30),
            retries: 2,
            workspace: None,
            ca_cert: None,
        }
    }
}

/// The daemon's address and the token calls carry.
#[derive(Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
    base: Url,
    token: String,
    pub(crate) options: ConnectOptions,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("Http")
            .field("base", &self.base.as_str())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// An error of the client's own making, of `kind`.
pub(crate) fn error(kind: ErrorKind, message: impl Into<String>) -> Error {
    Error::Reported {
        kind,
        message: message.into(),
        field: None,
    }
}

/// The kind an HTTP status means when the body does not name one.
fn kind_of(status: StatusCode) -> ErrorKind {
    match status.as_u16() {
        400 | 413 | 415 | 422 => ErrorKind::Invalid,
        401 => ErrorKind::Unauthorized,
        403 => ErrorKind::Forbidden,
        404 => ErrorKind::NotFound,
        409 | 412 => ErrorKind::Conflict,
        408 | 504 => ErrorKind::Timeout,
        429 | 502 | 503 => ErrorKind::Unavailable,
        _ => ErrorKind::Internal,
    }
}

fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::PUT | Method::DELETE | Method::HEAD
    )
}

impl Http {
    pub(crate) fn new(url: &str, token: &str, options: ConnectOptions) -> Result<Http> {
        let invalid =
            |why: String| Error::Invalid(clank_core::InvalidInput::new("url", "format", why));
        let mut base = Url::parse(url.trim()).map_err(|e| {
            invalid(format!(
                "`{url}` is not a URL ({e}); e.g. http://127.0.0.1:7070"
            ))
        })?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid(format!(
                "`{url}`: a daemon is reached with http:// or https://, not {}://",
                base.scheme()
            )));
        }
        if base.cannot_be_a_base() || base.query().is_some() || base.fragment().is_some() {
            return Err(invalid(format!("`{url}` is not a daemon's base URL")));
        }
        // Segments are pushed onto the base's own path (a daemon behind a path prefix).
        if let Ok(mut segments) = base.path_segments_mut() {
            segments.pop_if_empty();
        }
        if token.trim().is_empty() {
            return Err(Error::Invalid(clank_core::InvalidInput::new(
                "token",
                "required",
                "a token is required: `clank init` prints the first one, `clank token create` \
                 makes more",
            )));
        }
        let client = crate::tls::client_builder(options.ca_cert.as_deref())?
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| error(ErrorKind::Internal, format!("HTTP client: {e}")))?;
        Ok(Http {
            client,
            base,
            token: token.trim().to_owned(),
            options,
        })
    }

    /// The daemon's URL, for messages.
    pub(crate) fn base(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// The URL of `segments` under `/v1`, each percent-encoded.
    pub(crate) fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.push("v1").extend(segments);
        }
        url
    }

    /// Call and read the answer as JSON (`null` for no content).
    pub(crate) async fn call(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<Value> {
        let mut attempt = 0;
        loop {
            match self.once(method.clone(), url.clone(), body, timeout).await {
                Err(Failure::Retryable { error, sent }) if attempt < self.options.retries => {
                    if sent && !idempotent(&method) {
                        return Err(error);
                    }
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100 << attempt.min(6))).await;
                }
                Err(Failure::Retryable { error, .. } | Failure::Final(error)) => return Err(error),
                Ok(v) => return Ok(v),
            }
        }
    }

    /// A request with the token, for a stream the caller reads itself.
    pub(crate) fn request(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        self.client.request(method, url).bearer_auth(&self.token)
    }

    async fn once(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
        timeout: Duration,
    ) -> std::result::Result<Value, Failure> {
        let what = format!("{method} {}", url.path());
        let mut request = self.request(method, url).timeout(timeout);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return Err(self.transport(&what, &e, timeout)),
        };
        let status = response.status();
        let bytes = match response.bytes().await {
            Ok(b) => b,
            Err(e) => return Err(self.transport(&what, &e, timeout)),
        };
        if status.is_success() {
            let text: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
            return serde_json::from_slice(text).map_err(|e| {
                Failure::Final(error(
                    ErrorKind::Internal,
                    format!(
                        "the daemon at {} answered {what} with a body this client does not \
                         understand ({e}); are the client and daemon the same version?",
                        self.base()
                    ),
                ))
            });
        }
        let refused = self.refusal(&what, status, &bytes);
        if matches!(status.as_u16(), 502..=504) {
            Err(Failure::Retryable {
                error: refused,
                sent: true,
            })
        } else {
            Err(Failure::Final(refused))
        }
    }

    /// The daemon's error answer as the platform's error: its kind (from `code`, else the
    /// status), message and field.
    pub(crate) fn refusal(&self, what: &str, status: StatusCode, body: &[u8]) -> Error {
        match serde_json::from_slice::<ErrorBody>(body) {
            Ok(ErrorBody {
                code,
                message,
                field,
            }) => Error::Reported {
                kind: ErrorKind::from_code(&code).unwrap_or_else(|| kind_of(status)),
                message,
                field,
            },
            Err(_) => {
                let text = String::from_utf8_lossy(body);
                let shown: String = text.trim().chars().take(200).collect();
                error(
                    kind_of(status),
                    format!(
                        "the daemon at {} refused {what} ({status}) without a Clank error body{}",
                        self.base(),
                        if shown.is_empty() {
                            String::new()
                        } else {
                            format!(": {shown}")
                        }
                    ),
                )
            }
        }
    }

    /// A call that failed on the way: refused connections and resets may be tried again.
    fn transport(&self, what: &str, e: &reqwest::Error, timeout: Duration) -> Failure {
        if e.is_timeout() {
            return Failure::Final(error(
                ErrorKind::Timeout,
                format!(
                    "the daemon at {} did not answer {what} within {:.0} s",
                    self.base(),
                    timeout.as_secs_f64()
                ),
            ));
        }
        if let Some(tls) = crate::tls::TlsFailure::of(e) {
            // Trying again cannot help: the client's trust (or the URL) has to change.
            return Failure::Final(Error::Reported {
                kind: ErrorKind::Unavailable,
                message: format!(
                    "{} ({what})",
                    tls.advice(
                        self.base(),
                        "the `ca_cert` connect option (the CLI's `--ca-cert FILE`)"
                    )
                ),
                field: matches!(tls, crate::tls::TlsFailure::Untrusted(_))
                    .then(|| "ca_cert".to_owned()),
            });
        }
        let error = error(
            ErrorKind::Unavailable,
            format!(
                "cannot reach the Clank daemon at {} ({what}): {}; is `clank-daemon` running \
                 there and listening on that address?",
                self.base(),
                chain(e)
            ),
        );
        Failure::Retryable {
            error,
            sent: !e.is_connect(),
        }
    }
}

/// An error with its causes, `: `-separated (reqwest's own message stops at the first).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

enum Failure {
    /// Worth another try; `sent` when the daemon may have received the call.
    Retryable {
        error: Error,
        sent: bool,
    },
    Final(Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(url: &str) -> Http {
        Http::new(url, "secret-token", ConnectOptions::default()).unwrap()
    }

    #[test]
    fn names_in_paths_are_percent_encoded_and_cannot_climb() {
        let h = http("http://127.0.0.1:7070/");
        let url = h.url(&["workspaces", "acme", "projects", "../x?y#z"]);
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:7070/v1/workspaces/acme/projects/..%2Fx%3Fy%23z"
        );
        let prefixed = http("http://127.0.0.1:7070/clank");
        assert_eq!(
            prefixed.url(&["whoami"]).as_str(),
            "http://127.0.0.1:7070/clank/v1/whoami"
        );
    }

    #[test]
    fn a_bad_url_or_missing_token_names_its_field() {
        for (url, token, field) in [
            ("not a url", "t", "url"),
            ("ftp://example.invalid", "t", "url"),
            ("ws://127.0.0.1:7070", "t", "url"),
            ("http://127.0.0.1:7070", " ", "token"),
        ] {
            let e = Http::new(url, token, ConnectOptions::default()).unwrap_err();
            assert_eq!(
                (e.kind(), e.field()),
                (ErrorKind::Invalid, Some(field)),
                "{e}"
            );
        }
    }

    #[test]
    fn https_is_accepted_like_http() {
        let h = http("https://clank.example.com/");
        assert_eq!(
            h.url(&["whoami"]).as_str(),
            "https://clank.example.com/v1/whoami"
        );
    }

    #[test]
    fn the_token_is_never_in_debug_output() {
        assert!(!format!("{:?}", http("http://127.0.0.1:1")).contains("secret-token"));
    }

    #[test]
    fn an_error_body_keeps_its_kind_message_and_field_and_a_foreign_one_says_so() {
        let h = http("http://127.0.0.1:7070");
        let e = h.refusal(
            "POST /v1/x",
            StatusCode::UNPROCESSABLE_ENTITY,
            br#"{"code":"invalid","message":"bad port","field":"settings.port"}"#,
        );
        assert_eq!(
            (e.kind(), e.field(), e.to_string().as_str()),
            (ErrorKind::Invalid, Some("settings.port"), "bad port")
        );
        let e = h.refusal(
            "GET /v1/x",
            StatusCode::TOO_MANY_REQUESTS,
            br#"{"code":"too_many_streams","message":"full"}"#,
        );
        assert_eq!(
            e.kind(),
            ErrorKind::Unavailable,
            "by status when the code is not a kind"
        );
        let e = h.refusal(
            "GET /v1/x",
            StatusCode::BAD_GATEWAY,
            b"<html>bad gateway</html>",
        );
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(
            e.to_string().contains("without a Clank error body: <html>"),
            "{e}"
        );
    }
}
