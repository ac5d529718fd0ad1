//! The HTTP client of the daemon's REST API, and where the CLI keeps its context.

use std::path::PathBuf;

use futures_util::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A failed call, with the daemon's error body when there is one.
#[derive(Debug)]
pub(crate) struct CliError {
    pub(crate) message: String,
    /// Exit code: 2 usage/input, 3 auth, 4 not found, 1 otherwise.
    pub(crate) code: u8,
}

impl CliError {
    pub(crate) fn new(message: impl Into<String>, code: u8) -> Self {
        CliError {
            message: message.into(),
            code,
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Saved by `clank init` / `clank login`; flags and `CLANK_URL`/`CLANK_TOKEN` override it.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Context {
    pub(crate) url: Option<String>,
    pub(crate) token: Option<String>,
    pub(crate) workspace: Option<String>,
}

impl Context {
    pub(crate) fn path() -> PathBuf {
        if let Ok(p) = std::env::var("CLANK_CONFIG") {
            return PathBuf::from(p);
        }
        let home = std::env::var("HOME").unwrap_or_else(|_| ".".into());
        PathBuf::from(home).join(".config/clank/context.json")
    }

    pub(crate) fn load() -> Context {
        std::fs::read_to_string(Self::path())
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
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
        let text =
            serde_json::to_string_pretty(self).map_err(|e| CliError::new(e.to_string(), 1))?;
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
    pub(crate) fn new(url: String, token: Option<String>) -> Self {
        Client {
            http: reqwest::Client::new(),
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

    async fn send<T: DeserializeOwned>(&self, r: reqwest::RequestBuilder) -> Result<T, CliError> {
        let resp = r.send().await.map_err(|e| {
            CliError::new(format!("cannot reach the daemon at {}: {e}", self.url), 1)
        })?;
        let status = resp.status();
        let body: Value = if status == reqwest::StatusCode::NO_CONTENT {
            Value::Null
        } else {
            resp.json()
                .await
                .map_err(|e| CliError::new(format!("unreadable answer ({status}): {e}"), 1))?
        };
        if status.is_success() {
            return serde_json::from_value(body)
                .map_err(|e| CliError::new(format!("unexpected answer: {e}"), 1));
        }
        Err(refusal(status, &body))
    }

    pub(crate) async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, CliError> {
        self.send(self.request(reqwest::Method::GET, path)).await
    }

    pub(crate) async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, CliError> {
        self.send(self.request(reqwest::Method::POST, path).json(body))
            .await
    }

    pub(crate) async fn patch<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, CliError> {
        self.send(self.request(reqwest::Method::PATCH, path).json(body))
            .await
    }

    /// PUT a binary body (`application/octet-stream`).
    pub(crate) async fn put_bytes<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Vec<u8>,
    ) -> Result<T, CliError> {
        self.send(
            self.request(reqwest::Method::PUT, path)
                .header("content-type", "application/octet-stream")
                .body(body),
        )
        .await
    }

    pub(crate) async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, CliError> {
        self.send(self.request(reqwest::Method::DELETE, path)).await
    }

    /// Follow a Server-Sent Events stream, calling `on_event(name, data)` per event.
    pub(crate) async fn sse(
        &self,
        path: &str,
        mut on_event: impl FnMut(&str, Value),
    ) -> Result<(), CliError> {
        let resp = self
            .request(reqwest::Method::GET, path)
            .header("accept", "text/event-stream")
            .send()
            .await
            .map_err(|e| {
                CliError::new(format!("cannot reach the daemon at {}: {e}", self.url), 1)
            })?;
        if !resp.status().is_success() {
            let status = resp.status();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            return Err(refusal(status, &body));
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
                        let value =
                            serde_json::from_str(&data).unwrap_or(Value::String(data.clone()));
                        on_event(&name, value);
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
}

/// The daemon's error answer as a CLI error: its message and field, the exit code by class
/// (2 bad input, 3 auth, 4 not found, 1 anything else).
fn refusal(status: reqwest::StatusCode, body: &Value) -> CliError {
    let message = body["message"].as_str().unwrap_or("request failed");
    let field = body["field"]
        .as_str()
        .map(|f| format!(" (field `{f}`)"))
        .unwrap_or_default();
    let code = match status.as_u16() {
        400 | 413 | 422 => 2,
        401 | 403 => 3,
        404 => 4,
        _ => 1,
    };
    CliError::new(format!("{message}{field} [{}]", status.as_u16()), code)
}
