//! A client of a running Clank daemon: the platform's operations ([`Request`], the JSON the
//! bindings send) made as REST calls, answering what the embedded platform's `execute`
//! answers, with the same error kinds, messages and `field`s (from the daemon's error body).
//! The Python and Node bindings' `connect(url, token)` is this; `open(dir)` embeds the
//! platform instead, and a script works on either.
//!
//! ```no_run
//! # async fn demo() -> clank_core::Result<()> {
//! let client = clank_client::Client::connect(
//!     "http://127.0.0.1:7070",
//!     "clank_…",
//!     clank_client::ConnectOptions::default(),
//! )
//! .await?;
//! let services = client
//!     .execute_json(r#"{"op": "list_services", "environment": "shop/production"}"#)
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! Short addresses (`shop/web`) mean the token's workspace (or
//! [`ConnectOptions::workspace`]) and environment `production`. Calls have a deadline
//! ([`ConnectOptions::timeout`], a [`Timeout`](clank_core::ErrorKind::Timeout) error past it);
//! a call that failed on the way is tried again only where that cannot do anything twice.
//!
//! `https://` URLs are verified against the system's CA roots, plus the CA certificate file
//! of [`ConnectOptions::ca_cert`] for a daemon with a private CA ([`tls`]); a certificate that
//! is not trusted fails the connect with the verifier's reason and that advice.

mod events;
mod http;
mod ops;
pub mod tls;

use clank_api::system::WhoAmI;
use clank_core::address::{AddressDefaults, ServiceAddress};
use clank_core::{Error, Result};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use reqwest::Method;
use tokio::sync::oneshot;

pub use events::{LogFollow, Streamed, Subscription};
pub use http::ConnectOptions;

/// A connection to one daemon with one token. Cheap to clone; safe from many tasks.
#[derive(Debug, Clone)]
pub struct Client {
    http: http::Http,
    /// What short addresses mean: the workspace, environment `production`.
    defaults: AddressDefaults,
    /// The token's workspace, role and user, as the daemon said at connect.
    whoami: WhoAmI,
    /// Where subscriptions read their streams.
    runtime: tokio::runtime::Handle,
    /// Subscriptions still opening: a call made after `subscribe` waits for them, so the
    /// events it causes are never missed (as with the embedded platform).
    opening: Arc<Mutex<Vec<oneshot::Receiver<()>>>>,
}

/// Longest a call waits for earlier subscriptions to open.
const OPENING_WAIT: Duration = Duration::from_secs(10);

impl Client {
    /// Connect to the daemon at `url` (`http://host:port` or `https://host`) with an API token: asks the daemon
    /// who the token is, so a wrong URL or token fails here, with what to do about it.
    /// Must be called on a tokio runtime, which later subscriptions use.
    pub async fn connect(url: &str, token: &str, options: ConnectOptions) -> Result<Client> {
        let http = http::Http::new(url, token, options)?;
        let whoami: WhoAmI = {
            let value = http
                .call(
                    Method::GET,
                    http.url(&["whoami"]),
                    None,
                    http.options.timeout,
                )
                .await
                .map_err(|e| match e.kind() {
                    clank_core::ErrorKind::Unauthorized => Error::Reported {
                        kind: e.kind(),
                        message: format!(
                            "the daemon at {} does not accept this token ({e}); `clank token \
                             create` makes one, `clank init` prints the first",
                            http.base()
                        ),
                        field: Some("token".into()),
                    },
                    _ => e,
                })?;
            serde_json::from_value(value).map_err(|e| {
                http::error(
                    clank_core::ErrorKind::Internal,
                    format!(
                        "{} is not a Clank daemon of this version (GET /v1/whoami: {e})",
                        http.base()
                    ),
                )
            })?
        };
        let workspace = http
            .options
            .workspace
            .clone()
            .unwrap_or_else(|| whoami.workspace.clone());
        Ok(Client {
            http,
            defaults: AddressDefaults {
                workspace,
                environment: "production".into(),
            },
            whoami,
            runtime: tokio::runtime::Handle::current(),
            opening: Arc::default(),
        })
    }

    /// Who the token speaks for.
    pub fn whoami(&self) -> &WhoAmI {
        &self.whoami
    }

    /// The daemon's URL.
    pub fn url(&self) -> &str {
        self.http.base()
    }

    /// [`Client::execute`] from and to JSON text: what the bindings call. A malformed request
    /// is `InvalidInput` naming the offending field's path (`clank_api::request_from_json`).
    pub async fn execute_json(&self, request: &str) -> Result<String> {
        let request = clank_api::request_from_json(request)?;
        Ok(self.execute(request).await?.to_string())
    }

    /// Follow deployment events from now on, of one service (by address) or of every service
    /// of the workspace. The stream opens at once; a refusal (no such service) is the first
    /// [`Streamed::next`]'s error.
    pub fn subscribe(&self, service: Option<&str>) -> Subscription {
        let mut url = self
            .http
            .url(&["workspaces", &self.defaults.workspace, "events"]);
        if let Some(service) = service {
            url.query_pairs_mut().append_pair("service", service);
        }
        let (opened, opening) = oneshot::channel();
        let mut pending = self.opening.lock().unwrap_or_else(PoisonError::into_inner);
        // Those that opened (or gave up) since the last call: never a list without end.
        pending.retain_mut(|r| matches!(r.try_recv(), Err(oneshot::error::TryRecvError::Empty)));
        pending.push(opening);
        drop(pending);
        Subscription::start(self.http.clone(), url, &self.runtime, opened)
    }

    /// Follow a service's output (`clank logs -f`): the last `tail` lines of each selected
    /// workload (default 100, at most 10 000), then new lines as they come, until the daemon
    /// ends the stream. A refusal (bad address, no such service or process type) is the first
    /// [`Streamed::next`]'s error.
    pub fn follow_logs(
        &self,
        service: &str,
        tail: Option<usize>,
        process: Option<&str>,
        replica: Option<u32>,
    ) -> LogFollow {
        let url = ServiceAddress::parse(service, &self.defaults)
            .map_err(Error::from)
            .map(|addr| {
                let [ws, p, e, s] = addr.segments();
                let mut url = self.http.url(&[
                    "workspaces",
                    ws,
                    "projects",
                    p,
                    "environments",
                    e,
                    "services",
                    s,
                    "logs",
                ]);
                let mut query = url.query_pairs_mut();
                query
                    .append_pair("follow", "true")
                    .append_pair("tail", &tail.unwrap_or(100).min(10_000).to_string());
                if let Some(process) = process {
                    query.append_pair("process", process);
                }
                if let Some(replica) = replica {
                    query.append_pair("replica", &replica.to_string());
                }
                drop(query);
                url
            });
        LogFollow::start(self.http.clone(), url, &self.runtime)
    }

    /// Wait (bounded) until every subscription made so far has opened.
    async fn subscriptions_open(&self) {
        let opening =
            std::mem::take(&mut *self.opening.lock().unwrap_or_else(PoisonError::into_inner));
        if opening.is_empty() {
            return;
        }
        let all = futures_util::future::join_all(opening);
        let _ = tokio::time::timeout(OPENING_WAIT, all).await;
    }
}
