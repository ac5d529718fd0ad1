//! The HTTP client of the daemon's REST API, and where the CLI keeps its context.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use clank_api::ErrorBody;
use futures_util::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A failed call, with the daemon's error body when there is one.
#[derive(Debug)]
pub(crate) struct CliError {
    pub(crate) message: String,
    /// Exit code: 2 usage/input, 3 auth, 4 not found, 1 otherwise.
    pub(crate) code: u8,
    /// A refused input as the daemon named it: its `field`, message and status, so a command
    /// can say which of its flags it was ([`CliError::flags`]).
    refused: Option<Refused>,
}

#[derive(Debug, Clone)]
struct Refused {
    field: String,
    message: String,
    status: u16,
}

impl CliError {
    pub(crate) fn new(message: impl Into<String>, code: u8) -> Self {
        CliError {
            message: message.into(),
            code,
            refused: None,
        }
    }

    /// The daemon's field of a refused input (`source.image`, `volumes[0].mount_path`).
    #[cfg(test)]
    pub(crate) fn field(&self) -> Option<&str> {
        self.refused.as_ref().map(|r| r.field.as_str())
    }

    /// Name the command's flag for the field the daemon refused, when `flag_of` knows one:
    /// `--image: ... (field `source.image`) [422]`.
    pub(crate) fn flags(mut self, flag_of: impl Fn(&str) -> Option<&'static str>) -> Self {
        if let Some(r) = &self.refused
            && let Some(flag) = flag_of(&r.field)
        {
            self.message = format!("{flag}: {} (field `{}`) [{}]", r.message, r.field, r.status);
        }
        self
    }
}
impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Saved by `clank init` / `clank login`; flags and `CLANK_URL`/`CLANK_TOKEN` override it.
/// The file also keeps the CA certificate this invocation trusts (`ca_cert`, see [`trust`]).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Context {
    pub(crate) url: Option<String>,
    pub(crate) token: Option<String>,
    pub(crate) workspace: Option<String>,
}

/// The context file: the [`Context`] and the CA certificate file trusted with its URL.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct ContextFile {
    #[serde(flatten)]
    context: Context,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ca_cert: Option<PathBuf>,
}

/// What this invocation's HTTPS trusts: one reqwest client (the system's roots plus the CA
/// certificate file of `--ca-cert`/`CLANK_CA_CERT` or of the context), and that file.
#[derive(Debug)]
struct Trust {
    http: reqwest::Client,
    ca_cert: Option<PathBuf>,
}

static TRUST: OnceLock<Trust> = OnceLock::new();

/// Trust `ca_cert` (a PEM file of CA certificates) on top of the system's roots for every call
/// of this invocation, and save it with the context (`clank init`/`clank login`). Once, before
/// the first [`Client`]; a file that cannot be read or is not PEM is a usage error, naming
/// where it came from (`saved`: the context, else `--ca-cert`/`CLANK_CA_CERT`).
pub(crate) fn trust(ca_cert: Option<PathBuf>, saved: bool) -> Result<(), CliError> {
    // Saved absolute: later commands run from other directories.
    let ca_cert = ca_cert.map(|p| std::path::absolute(&p).unwrap_or(p));
    let http = http_client(ca_cert.as_deref()).map_err(|e| {
        let message = if saved {
            format!(
                "the CA certificate saved in {}: {e}; give another with --ca-cert FILE (or \
                 CLANK_CA_CERT), `clank login` saves it",
                Context::path().display()
            )
        } else {
            format!("--ca-cert: {e}")
        };
        CliError::new(message, 2)
    })?;
    let _ = TRUST.set(Trust { http, ca_cert });
    Ok(())
}

/// The HTTP(S) client of every call: clank-client's TLS configuration (ring, system roots,
/// `ca_cert`) with this CLI's timeouts.
fn http_client(ca_cert: Option<&Path>) -> clank_core::Result<reqwest::Client> {
    clank_client::tls::client_builder(ca_cert)?
        .connect_timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| clank_core::Error::Reported {
            kind: clank_core::ErrorKind::Internal,
            message: format!("HTTP client: {e}"),
            field: None,
        })
}

/// This invocation's trust ([`trust`], else the system's roots alone).
fn trusted() -> &'static Trust {
    TRUST.get_or_init(|| Trust {
        // Without a CA file nothing is read: only a broken TLS library fails here.
        http: http_client(None).unwrap_or_else(|e| panic!("the HTTP client: {e}")),
        ca_cert: None,
    })
}

impl Context {
    pub(crate) fn path() -> PathBuf {
        if let Ok(p) = std::env::var("CLANK_CONFIG") {
            return PathBuf::from(p);
        }
        let home = std::env::var("HOME").unwrap_or_else(|_| ".".into());
        PathBuf::from(home).join(".config/clank/context.json")
    }

    fn read() -> ContextFile {
        std::fs::read_to_string(Self::path())
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    pub(crate) fn load() -> Context {
        Self::read().context
    }

    /// The CA certificate file saved with the context's URL.
    pub(crate) fn saved_ca_cert() -> Option<PathBuf> {
        Self::read().ca_cert
    }

    /// Saved owner-only: it holds a token.
    pub(crate) fn save(&self) -> Result<(), CliError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = Self::path();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| CliError::new(format!("create {}: {e}", dir.display()), 1))?;
        }
        let file = ContextFile {
            context: self.clone(),
            ca_cert: trusted().ca_cert.clone(),
        };
        let text =
            serde_json::to_string_pretty(&file).map_err(|e| CliError::new(e.to_string(), 1))?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| CliError::new(format!("write {}: {e}", path.display()), 1))?;
        f.write_all(text.as_bytes())
            .map_err(|e| CliError::new(format!("write {}: {e}", path.display()), 1))
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Client {
    http: reqwest::Client,
    pub(crate) url: String,
    token: Option<String>,
}

impl Client {
    /// A client of `url` trusting what [`trust`] said.
    pub(crate) fn new(url: String, token: Option<String>) -> Self {
        Client {
            http: trusted().http.clone(),
            url: url.trim_end_matches('/').to_owned(),
            token,
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.url));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// Send, and read the answer as `T`: a success body that does not parse is an error saying
    /// so (never a default), a failure body the daemon's [`ErrorBody`].
    async fn send<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(&str, reqwest::Body)>,
    ) -> Result<T, CliError> {
        let mut r = self.request(method.clone(), path);
        if let Some((content_type, body)) = body {
            r = r.header("content-type", content_type).body(body);
        }
        let resp = r.send().await.map_err(|e| self.unreachable(&e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| {
            CliError::new(
                format!(
                    "the daemon at {} answered {method} {path} ({status}) but the body broke off: {e}",
                    self.url
                ),
                1,
            )
        })?;
        self.answer(&method, path, status, &bytes)
    }

    /// The answer's body as `T`, or the refusal it carries.
    fn answer<T: DeserializeOwned>(
        &self,
        method: &reqwest::Method,
        path: &str,
        status: reqwest::StatusCode,
        bytes: &[u8],
    ) -> Result<T, CliError> {
        if !status.is_success() {
            return Err(self.refusal(method, path, status, bytes));
        }
        // No content (204, or an empty body) reads as JSON `null`: `()` or `None`.
        let body: &[u8] = if bytes.is_empty() { b"null" } else { bytes };
        serde_json::from_slice(body).map_err(|e| self.not_understood(method, path, &e))
    }

    /// A call that failed in the TLS handshake, as what to do about it (`--ca-cert`, or
    /// `http://` for a daemon without TLS); `None` for any other failure.
    pub(crate) fn tls_refused(&self, e: &(dyn std::error::Error + 'static)) -> Option<CliError> {
        let tls = clank_client::tls::TlsFailure::of(e)?;
        Some(CliError::new(
            tls.advice(
                &self.url,
                "`--ca-cert FILE` (or CLANK_CA_CERT=FILE; `clank login` saves it with the URL)",
            ),
            1,
        ))
    }

    /// The rustls configuration of this invocation's HTTPS ([`trust`]): for connections
    /// reqwest does not make (`exec -it`'s WebSocket).
    pub(crate) fn tls_config(&self) -> Result<rustls::ClientConfig, CliError> {
        clank_client::tls::client_config(trusted().ca_cert.as_deref())
            .map_err(|e| CliError::new(format!("--ca-cert: {e}"), 2))
    }

    /// The daemon does not answer: what went wrong underneath (connection refused, no such
    /// host), and the two ways out — start it, or point the CLI at where it runs.
    fn unreachable(&self, e: &reqwest::Error) -> CliError {
        if let Some(refused) = self.tls_refused(e) {
            return refused;
        }
        let mut cause: &dyn std::error::Error = e;
        while let Some(next) = cause.source() {
            cause = next;
        }
        let why = if std::ptr::addr_eq(cause, e) {
            e.to_string()
        } else {
            format!("{e}: {cause}")
        };
        CliError::new(
            format!(
                "cannot reach the daemon at {} ({why}).\n\
                 Is it running? Start it with `clank-daemon` (or `sudo systemctl start \
                 clank-daemon` where it is installed as a service).\n\
                 Running elsewhere? Give its URL with `--url http://HOST:PORT` (or \
                 https://HOST behind TLS) or `CLANK_URL=…`; `clank init`/`clank login` save it.",
                self.url
            ),
            1,
        )
    }

    /// A body that does not parse into the type this CLI expects: most likely a daemon of
    /// another version.
    fn not_understood(
        &self,
        method: &reqwest::Method,
        path: &str,
        e: &serde_json::Error,
    ) -> CliError {
        CliError::new(
            format!(
                "the daemon at {} answered {method} {path} with a body this clank (version {}) \
                 does not understand: {e}; are the CLI and daemon the same version?",
                self.url,
                env!("CARGO_PKG_VERSION"),
            ),
            1,
        )
    }

    /// The token calls carry, for a connection made without this client (the terminal
    /// WebSocket).
    pub(crate) fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// A refusal answered outside this client (the terminal WebSocket's handshake), read like
    /// every other.
    pub(crate) fn refused(&self, method: &str, path: &str, status: u16, body: &[u8]) -> CliError {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
        let status =
            reqwest::StatusCode::from_u16(status).unwrap_or(reqwest::StatusCode::BAD_GATEWAY);
        self.refusal(&method, path, status, body)
    }

    /// The daemon's error answer as a CLI error: its message and field, the exit code by class
    /// (2 bad input, 3 auth, 4 not found, 1 anything else).
    fn refusal(
        &self,
        method: &reqwest::Method,
        path: &str,
        status: reqwest::StatusCode,
        body: &[u8],
    ) -> CliError {
        let code = match status.as_u16() {
            400 | 413 | 422 => 2,
            401 | 403 => 3,
            404 => 4,
            _ => 1,
        };
        let mut refused = None;
        let message = match serde_json::from_slice::<ErrorBody>(body) {
            Ok(ErrorBody { message, field, .. }) => {
                let shown = match &field {
                    Some(f) => format!("{message} (field `{f}`)"),
                    None => message.clone(),
                };
                if let Some(field) = field {
                    refused = Some(Refused {
                        field,
                        message,
                        status: status.as_u16(),
                    });
                }
                format!("{shown}{}", self.what_to_do(status))
            }
            // Not the daemon's error shape: a proxy in between, or another program.
            Err(_) => {
                let text = String::from_utf8_lossy(body);
                let text = text.trim();
                let shown: String = text.chars().take(200).collect();
                format!(
                    "the daemon at {} refused {method} {path} without a Clank error body{}",
                    self.url,
                    if shown.is_empty() {
                        String::new()
                    } else {
                        format!(": {shown}")
                    }
                )
            }
        };
        let mut e = CliError::new(format!("{message} [{}]", status.as_u16()), code);
        e.refused = refused;
        e
    }

    /// What to do about a refusal of the caller (401, 403): how to get a token, or a role.
    fn what_to_do(&self, status: reqwest::StatusCode) -> String {
        match status.as_u16() {
            401 if self.token.is_none() => "\nNo API token: on a fresh daemon `clank init` \
                creates the first workspace and saves its Owner's token; otherwise `clank login \
                --token <token>` (a token an Owner or Admin made with `clank token create` or \
                `clank member add`), or set CLANK_TOKEN."
                .to_owned(),
            401 => "\nThe token was refused: `clank login --token <token>` saves a valid one \
                (an Owner or Admin makes one with `clank token create` or `clank member add`); \
                CLANK_TOKEN or --token override the saved one."
                .to_owned(),
            403 => "\nAn Owner or Admin can give you the role it needs: `clank member set-role \
                <email> <role>`."
                .to_owned(),
            _ => String::new(),
        }
    }

    pub(crate) async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, CliError> {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub(crate) async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, CliError> {
        self.send(reqwest::Method::POST, path, Some((JSON, json_body(body)?)))
            .await
    }

    /// POST an action that takes no body (deploy, cancel, rotate).
    pub(crate) async fn post_empty<T: DeserializeOwned>(&self, path: &str) -> Result<T, CliError> {
        self.send(reqwest::Method::POST, path, None).await
    }

    pub(crate) async fn patch<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, CliError> {
        self.send(reqwest::Method::PATCH, path, Some((JSON, json_body(body)?)))
            .await
    }

    pub(crate) async fn put<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, CliError> {
        self.send(reqwest::Method::PUT, path, Some((JSON, json_body(body)?)))
            .await
    }

    /// PUT a binary body (`application/octet-stream`).
    pub(crate) async fn put_bytes<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Vec<u8>,
    ) -> Result<T, CliError> {
        self.send(
            reqwest::Method::PUT,
            path,
            Some(("application/octet-stream", body.into())),
        )
        .await
    }

    pub(crate) async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, CliError> {
        self.send(reqwest::Method::DELETE, path, None).await
    }

    /// Follow a Server-Sent Events stream, calling `on_event(name, data)` per event with the
    /// event's raw data; an error the callback returns ends the stream with it.
    pub(crate) async fn sse(
        &self,
        path: &str,
        mut on_event: impl FnMut(&str, &str) -> Result<(), CliError>,
    ) -> Result<(), CliError> {
        let resp = self
            .request(reqwest::Method::GET, path)
            .header("accept", "text/event-stream")
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.bytes().await.unwrap_or_default();
            return Err(self.refusal(&reqwest::Method::GET, path, status, &body));
        }
        let mut stream = resp.bytes_stream();
        let mut buf = String::new();
        let (mut name, mut data) = (String::new(), String::new());
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| CliError::new(format!("event stream broke: {e}"), 1))?;
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(pos) = buf.find('\n') {
                let line: String = buf.drain(..=pos).collect();
                let line = line.trim_end_matches(['\r', '\n']);
                if line.is_empty() {
                    if !data.is_empty() {
                        on_event(&name, &data)?;
                    }
                    name.clear();
                    data.clear();
                } else if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
        }
        Ok(())
    }

    /// An event's data as `T`, or the error saying this CLI does not understand it.
    pub(crate) fn event<T: DeserializeOwned>(
        &self,
        path: &str,
        name: &str,
        data: &str,
    ) -> Result<T, CliError> {
        serde_json::from_str(data).map_err(|e| {
            CliError::new(
                format!(
                    "the daemon at {} sent a `{name}` event on GET {path} this clank (version {}) \
                     does not understand: {e}; are the CLI and daemon the same version?",
                    self.url,
                    env!("CARGO_PKG_VERSION"),
                ),
                1,
            )
        })
    }
}

const JSON: &str = "application/json";

fn json_body<B: Serialize>(body: &B) -> Result<reqwest::Body, CliError> {
    serde_json::to_vec(body)
        .map(reqwest::Body::from)
        .map_err(|e| CliError::new(format!("cannot encode the request: {e}"), 1))
}

#[cfg(test)]
mod tests {
    use clank_api::system::WhoAmI;
    use reqwest::{Method, StatusCode};

    use super::*;

    fn client() -> Client {
        Client::new("http://127.0.0.1:7070/".into(), None)
    }

    #[test]
    fn an_answer_of_another_shape_is_an_error_naming_the_call_and_versions() {
        let err = client()
            .answer::<WhoAmI>(
                &Method::GET,
                "/v1/whoami",
                StatusCode::OK,
                br#"{"workspace": "acme"}"#,
            )
            .unwrap_err();
        assert_eq!(err.code, 1);
        for part in [
            "the daemon at http://127.0.0.1:7070 answered GET /v1/whoami",
            "does not understand",
            "missing field",
            env!("CARGO_PKG_VERSION"),
            "same version",
        ] {
            assert!(err.message.contains(part), "{part}: {}", err.message);
        }
    }

    #[test]
    fn an_error_body_gives_its_message_field_and_exit_code() {
        let err = client()
            .answer::<()>(
                &Method::POST,
                "/v1/workspaces/acme/projects",
                StatusCode::UNPROCESSABLE_ENTITY,
                br#"{"code": "invalid_input", "message": "bad slug", "field": "slug"}"#,
            )
            .unwrap_err();
        assert_eq!(err.message, "bad slug (field `slug`) [422]");
        assert_eq!(err.code, 2);
        let err = client()
            .answer::<()>(
                &Method::GET,
                "/v1/x",
                StatusCode::NOT_FOUND,
                br#"{"code": "not_found", "message": "no such service"}"#,
            )
            .unwrap_err();
        assert_eq!(
            (err.message.as_str(), err.code),
            ("no such service [404]", 4)
        );
    }

    #[test]
    fn a_refusal_without_a_clank_error_body_says_so_with_the_body() {
        let err = client()
            .answer::<()>(
                &Method::GET,
                "/v1/whoami",
                StatusCode::BAD_GATEWAY,
                b"<html>502 Bad Gateway</html>",
            )
            .unwrap_err();
        assert!(
            err.message
                .contains("without a Clank error body: <html>502 Bad Gateway</html>")
                && err.message.ends_with("[502]"),
            "{}",
            err.message
        );
        assert_eq!(err.code, 1);
    }

    #[test]
    fn a_refused_field_names_the_flag_when_the_command_knows_it() {
        let body = br#"{"code": "invalid", "message": "`Bad!` is not a valid image reference: it has upper-case letters", "field": "source.image"}"#;
        let err = client()
            .answer::<()>(
                &Method::POST,
                "/v1/x",
                StatusCode::UNPROCESSABLE_ENTITY,
                body,
            )
            .unwrap_err();
        assert_eq!(err.field(), Some("source.image"));
        let err = err.flags(|f| (f == "source.image").then_some("--image"));
        assert_eq!(
            err.message,
            "--image: `Bad!` is not a valid image reference: it has upper-case letters \
             (field `source.image`) [422]"
        );
        assert_eq!(err.code, 2);
        let unknown = client()
            .answer::<()>(
                &Method::POST,
                "/v1/x",
                StatusCode::UNPROCESSABLE_ENTITY,
                body,
            )
            .unwrap_err()
            .flags(|_| None);
        assert!(unknown.message.starts_with("`Bad!`"), "{}", unknown.message);
    }

    #[test]
    fn auth_refusals_say_how_to_get_a_token_or_a_role() {
        let missing =
            br#"{"code": "unauthorized", "message": "missing `Authorization: Bearer <token>`"}"#;
        let err = client()
            .answer::<()>(
                &Method::GET,
                "/v1/whoami",
                StatusCode::UNAUTHORIZED,
                missing,
            )
            .unwrap_err();
        assert_eq!(err.code, 3);
        for part in ["clank init", "clank login --token", "CLANK_TOKEN", "[401]"] {
            assert!(err.message.contains(part), "{part}: {}", err.message);
        }
        let with_token = Client::new("http://127.0.0.1:7070".into(), Some("t".into()));
        let err = with_token
            .answer::<()>(
                &Method::GET,
                "/v1/whoami",
                StatusCode::UNAUTHORIZED,
                missing,
            )
            .unwrap_err();
        assert!(
            err.message.contains("token was refused") && err.message.contains("clank login"),
            "{}",
            err.message
        );
        let forbidden = br#"{"code": "forbidden", "message": "your role (Viewer) does not allow Deploy; it needs the Developer role or above"}"#;
        let err = client()
            .answer::<()>(&Method::POST, "/v1/x", StatusCode::FORBIDDEN, forbidden)
            .unwrap_err();
        assert_eq!(err.code, 3);
        for part in ["Developer role", "clank member set-role"] {
            assert!(err.message.contains(part), "{part}: {}", err.message);
        }
    }

    #[tokio::test]
    async fn an_unreachable_daemon_says_how_to_start_it_and_how_to_point_at_it() {
        // Nothing listens on the discard port of loopback.
        let err = Client::new("http://127.0.0.1:9".into(), None)
            .get::<()>("/v1/whoami")
            .await
            .unwrap_err();
        assert_eq!(err.code, 1);
        for part in [
            "cannot reach the daemon at http://127.0.0.1:9",
            "`clank-daemon`",
            "--url",
            "CLANK_URL",
        ] {
            assert!(err.message.contains(part), "{part}: {}", err.message);
        }
        assert!(
            err.message.to_lowercase().contains("refused"),
            "the underlying cause: {}",
            err.message
        );
    }

    #[test]
    fn no_content_reads_as_unit() {
        client()
            .answer::<()>(&Method::DELETE, "/v1/x", StatusCode::NO_CONTENT, b"")
            .unwrap();
    }
}
