//! Automatic TLS: certificates ordered from an ACME CA (instant-acme on `ring`), challenges
//! answered by the proxy itself, everything persisted under a state directory.
//!
//! Layout of `AcmeConfig::state_dir` (files 0600):
//! - `account.json` — the account's credentials; created once, never re-created while it exists
//!   (a corrupt file is an error, not a new account).
//! - `certs/{domain}/cert.pem`, `key.pem` — the chain (leaf first) and its key, loaded into the
//!   proxy at start, so a restart never re-orders a valid certificate.
//! - `certs/{domain}/retry.json` — failures so far and the next attempt time, so backoff
//!   survives restarts.
//!
//! What to do for a name is decided by the pure [`next_action`] (renew in the last third of
//! the lifetime, wait out backoff); [`AcmeManager::ensure`] executes it with an injected `now`.
//! One certificate per name; at most one order in flight per name. badNonce is retried by
//! instant-acme (3 times per request) and again here by resuming the same order. A failure
//! backs off exponentially up to a cap, never earlier than a server's `Retry-After`; the old
//! certificate keeps serving meanwhile. Only names routed as `public_direct` with ACME TLS are
//! renewed by [`AcmeManager::run`], which the proxy wakes when its route table gains such a
//! name ([`crate::ClankProxy::route_changes`]), so a new domain is ordered within a second, not
//! at the next periodic check.
//!
//! HTTP-01 (default) or TLS-ALPN-01 ([`AcmeConfig::challenge`]), both answered by the proxy.
//! Not here yet: wildcard names (need DNS-01), ARI.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use clank_core::ErrorKind;
use clank_core::model::{Endpoint, TlsMode};
use clank_core::time::Timestamp;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, BodyWrapper, BytesResponse, ChallengeType,
    HttpClient, Identifier, NewAccount, NewOrder, Order, OrderStatus, RetryPolicy,
};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::ClankProxy;

const BAD_NONCE: &str = "urn:ietf:params:acme:error:badNonce";
/// Resumptions of one order after badNonce beyond instant-acme's own three tries per request.
const BAD_NONCE_RESUMES: u32 = 20;

/// Where and how to order certificates.
#[derive(Debug, Clone)]
pub struct AcmeConfig {
    /// The CA's directory URL (e.g. Let's Encrypt's, or pebble's `https://127.0.0.1:14000/dir`).
    pub directory_url: String,
    /// Contact URIs for the account (`mailto:ops@example.com`).
    pub contact: Vec<String>,
    /// Account, certificates and retry state live here.
    pub state_dir: PathBuf,
    /// Trust only this CA (PEM) for the ACME server's HTTPS, instead of the platform's roots:
    /// for private or test CAs.
    pub server_root: Option<PathBuf>,
    pub backoff: Backoff,
    /// How the CA validates control of a name; both are answered by this proxy.
    pub challenge: Challenge,
    /// The longest `run` sleeps between passes (it also wakes for the earliest due name, a
    /// finished order, and a newly routed name).
    pub check_interval: Duration,
}

impl AcmeConfig {
    pub fn new(directory_url: impl Into<String>, state_dir: impl Into<PathBuf>) -> Self {
        AcmeConfig {
            directory_url: directory_url.into(),
            contact: Vec::new(),
            state_dir: state_dir.into(),
            server_root: None,
            backoff: Backoff::default(),
            challenge: Challenge::Http01,
            check_interval: Duration::from_secs(3600),
        }
    }
}

/// The ACME challenge type to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Challenge {
    /// `GET /.well-known/acme-challenge/{token}` on the plain listener (port 80 in production).
    #[default]
    #[serde(rename = "http-01")]
    Http01,
    /// A handshake with ALPN `acme-tls/1` on the TLS listener (port 443 in production).
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
}

/// Exponential backoff after failed orders: `initial`, doubled per consecutive failure, capped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(60),
            max: Duration::from_secs(24 * 3600),
        }
    }
}

impl Backoff {
    /// The wait after the `failures`-th consecutive failure (1-based).
    pub fn delay(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(31);
        self.initial
            .checked_mul(1u32 << exp)
            .unwrap_or(self.max)
            .min(self.max)
    }
}

/// A certificate's lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: Timestamp,
    pub not_after: Timestamp,
}

impl Validity {
    /// Renewal starts when two thirds of the lifetime have passed.
    pub fn renew_at(&self) -> Timestamp {
        let life = (self.not_after.as_millis() - self.not_before.as_millis()).max(0);
        Timestamp::from_millis(self.not_before.as_millis() + life / 3 * 2)
    }
}

/// Persisted failure state of one name; the default is "no failure".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryState {
    pub failures: u32,
    /// Milliseconds since the Unix epoch; no attempt before then.
    pub next_attempt_ms: Option<i64>,
    pub last_error: Option<String>,
}

impl RetryState {
    /// The state after another failure at `now`: backoff doubled (capped), and never before
    /// the server's `Retry-After`.
    pub fn failed(
        &self,
        now: Timestamp,
        backoff: &Backoff,
        retry_after: Option<Timestamp>,
        error: String,
    ) -> RetryState {
        let failures = self.failures.saturating_add(1);
        let mut next = now.saturating_add(backoff.delay(failures));
        if let Some(ra) = retry_after {
            next = next.max(ra);
        }
        RetryState {
            failures,
            next_attempt_ms: Some(next.as_millis()),
            last_error: Some(error),
        }
    }
}

/// What is known about one name's certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertState {
    /// The stored certificate's lifetime, if there is one.
    pub validity: Option<Validity>,
    pub retry: RetryState,
}

/// What to do for a name now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Place an order (first certificate, or renewal is due).
    Order,
    /// Nothing to do before this time.
    WaitUntil(Timestamp),
}

/// The decision, pure: backoff first, then order if there is no certificate or it is in the
/// last third of its lifetime.
pub fn next_action(state: &CertState, now: Timestamp) -> Action {
    if let Some(next) = state.retry.next_attempt_ms.map(Timestamp::from_millis)
        && now < next
    {
        return Action::WaitUntil(next);
    }
    match state.validity {
        None => Action::Order,
        Some(v) if now >= v.renew_at() => Action::Order,
        Some(v) => Action::WaitUntil(v.renew_at()),
    }
}

/// What [`AcmeManager::ensure`] did for a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new certificate is stored and served.
    Issued(Validity),
    /// Nothing due before this time.
    Waiting(Timestamp),
    /// Another order for this name is in flight.
    InFlight,
    /// The order failed; the old certificate (if any) keeps serving.
    Failed {
        reason: String,
        next_attempt: Timestamp,
    },
}

/// Errors outside a single order (state directory, stored files).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AcmeError {
    #[error("ACME state {}: {message}", path.display())]
    State { path: PathBuf, message: String },
    #[error("ACME: {0}")]
    Acme(#[from] instant_acme::Error),
    #[error("domain `{0}` cannot be ordered over HTTP-01 (wildcard or not a DNS name)")]
    Domain(String),
}

impl AcmeError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            AcmeError::Domain(_) => ErrorKind::Invalid,
            AcmeError::Acme(_) => ErrorKind::Unavailable,
            AcmeError::State { .. } => ErrorKind::Internal,
        }
    }
}

fn state_err(path: &Path, e: impl std::fmt::Display) -> AcmeError {
    AcmeError::State {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

/// Orders, stores, loads and renews the proxy's certificates. Cheap to clone.
#[derive(Clone)]
pub struct AcmeManager {
    inner: Arc<Inner>,
}

struct Inner {
    proxy: ClankProxy,
    config: AcmeConfig,
    account: tokio::sync::OnceCell<Account>,
    in_flight: Mutex<HashSet<String>>,
    orders: AtomicU64,
    /// The last `Retry-After` the CA sent with a 429/503.
    retry_after: Arc<Mutex<Option<SystemTime>>>,
}

impl std::fmt::Debug for AcmeManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcmeManager")
            .field("directory_url", &self.inner.config.directory_url)
            .field("state_dir", &self.inner.config.state_dir)
            .field("orders", &self.orders_placed())
            .finish_non_exhaustive()
    }
}

impl AcmeManager {
    /// Creates the state directory and serves every stored certificate through `proxy`. Makes
    /// no network request: the account is loaded (or created) at the first order.
    pub fn new(proxy: ClankProxy, config: AcmeConfig) -> Result<Self, AcmeError> {
        let certs = config.state_dir.join("certs");
        fs::create_dir_all(&certs).map_err(|e| state_err(&certs, e))?;
        let manager = AcmeManager {
            inner: Arc::new(Inner {
                proxy,
                config,
                account: tokio::sync::OnceCell::new(),
                in_flight: Mutex::new(HashSet::new()),
                orders: AtomicU64::new(0),
                retry_after: Arc::new(Mutex::new(None)),
            }),
        };
        manager.load_certificates()?;
        Ok(manager)
    }

    /// Orders this manager has placed (restarts reusing stored certificates place none).
    pub fn orders_placed(&self) -> u64 {
        self.inner.orders.load(Ordering::Relaxed)
    }

    /// Names routed as `public_direct` with ACME TLS (what [`AcmeManager::run`] keeps
    /// certified), sorted, wildcards left out.
    pub fn routed_domains(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .inner
            .proxy
            .routes()
            .into_iter()
            .filter_map(|r| match r.endpoint {
                Some(Endpoint::PublicDirect {
                    domains,
                    tls: TlsMode::Acme,
                }) => Some(domains),
                _ => None,
            })
            .flatten()
            .filter(|d| orderable(d))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The stored state of `domain`.
    pub fn state(&self, domain: &str) -> Result<CertState, AcmeError> {
        let dir = self.domain_dir(domain)?;
        let validity = match fs::read(dir.join("cert.pem")) {
            Ok(pem) => Some(
                validity_of_pem(&pem)
                    .ok_or_else(|| state_err(&dir.join("cert.pem"), "unreadable certificate"))?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(state_err(&dir, e)),
        };
        let retry_path = dir.join("retry.json");
        let retry = match fs::read(&retry_path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| state_err(&retry_path, e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => RetryState::default(),
            Err(e) => return Err(state_err(&retry_path, e)),
        };
        Ok(CertState { validity, retry })
    }

    /// Does what [`next_action`] says for `domain` at `now`: order (HTTP-01 through the proxy),
    /// store and serve, or record the failure and back off.
    pub async fn ensure(&self, domain: &str, now: Timestamp) -> Result<Outcome, AcmeError> {
        let state = self.state(domain)?;
        if let Action::WaitUntil(t) = next_action(&state, now) {
            return Ok(Outcome::Waiting(t));
        }
        let Some(_slot) = InFlight::take(&self.inner.in_flight, domain) else {
            return Ok(Outcome::InFlight);
        };
        // An order that finished between the read above and taking the slot stored what this
        // one would order again: decide once more under the slot.
        let state = self.state(domain)?;
        if let Action::WaitUntil(t) = next_action(&state, now) {
            return Ok(Outcome::Waiting(t));
        }
        self.take_retry_after();
        let mut tokens = Vec::new();
        let result = self.order(domain, &mut tokens).await;
        for t in &tokens {
            match t {
                Answered::Http01(token) => self.inner.proxy.remove_acme_challenge(token),
                Answered::TlsAlpn01(name) => self.inner.proxy.remove_tls_alpn_challenge(name),
            };
        }
        let dir = self.domain_dir(domain)?;
        match result {
            Ok((chain, key)) => {
                let validity = validity_of_pem(chain.as_bytes()).ok_or_else(|| {
                    state_err(&dir, "the CA returned a certificate that does not parse")
                })?;
                self.inner
                    .proxy
                    .add_certificate(&[domain.to_owned()], chain.as_bytes(), key.as_bytes())
                    .map_err(|e| state_err(&dir, e))?;
                write_private(&dir.join("key.pem"), key.as_bytes())?;
                write_private(&dir.join("cert.pem"), chain.as_bytes())?;
                remove_if_exists(&dir.join("retry.json"))?;
                tracing::info!(
                    domain,
                    not_after = %validity.not_after,
                    "ACME certificate issued"
                );
                Ok(Outcome::Issued(validity))
            }
            Err(e) => {
                let retry_after = self.take_retry_after().map(timestamp_of);
                let reason = e.to_string();
                let retry = state.retry.failed(
                    now,
                    &self.inner.config.backoff,
                    retry_after,
                    reason.clone(),
                );
                let next_attempt = Timestamp::from_millis(retry.next_attempt_ms.unwrap_or(0));
                let json = serde_json::to_vec_pretty(&retry).map_err(|e| state_err(&dir, e))?;
                write_private(&dir.join("retry.json"), &json)?;
                tracing::warn!(
                    domain,
                    error = %reason,
                    failures = retry.failures,
                    next_attempt = %next_attempt,
                    "ACME order failed; the current certificate (if any) keeps serving"
                );
                Ok(Outcome::Failed {
                    reason,
                    next_attempt,
                })
            }
        }
    }

    /// Keeps every routed name certified until `shutdown`. A pass over
    /// [`AcmeManager::routed_domains`] starts an order for each name [`next_action`] says is
    /// due (at most [`MAX_CONCURRENT_ORDERS`] at once, never a second one for a name whose
    /// order is in flight); the next pass runs when an order finishes, when the route table
    /// gains a name (after the burst of changes settles), or when the earliest name is due
    /// (at most `check_interval` later). Names no longer routed are not renewed. Orders still
    /// running at `shutdown` are abandoned (the CA's pending order simply expires).
    pub async fn run(&self, shutdown: CancellationToken) {
        let mut changes = self.inner.proxy.route_changes();
        let mut runs = Runs::default();
        let mut wake = self.pass(&mut runs);
        loop {
            let sleep = wake.since(Timestamp::now()).max(Duration::from_millis(100));
            tokio::select! {
                () = shutdown.cancelled() => break,
                Some(done) = runs.orders.join_next_with_id() => {
                    self.finished(&mut runs, done);
                    wake = self.pass(&mut runs);
                }
                Ok(()) = changes.changed() => {
                    settle(&mut changes).await;
                    let routed = self.routed_domains();
                    if routed.iter().any(|d| !runs.seen.contains(d)) {
                        tracing::debug!("route table gained a name: ACME pass now");
                        wake = self.pass(&mut runs);
                    } else {
                        // Forget removed names, so routing one again counts as new.
                        runs.seen = routed.into_iter().collect();
                    }
                }
                () = tokio::time::sleep(sleep) => wake = self.pass(&mut runs),
            }
        }
        runs.orders.shutdown().await;
    }

    /// Starts the due orders; returns when the next pass is due at the latest.
    fn pass(&self, runs: &mut Runs) -> Timestamp {
        let now = Timestamp::now();
        let mut wake = now.saturating_add(self.inner.config.check_interval);
        let domains = self.routed_domains();
        runs.seen = domains.iter().cloned().collect();
        for domain in domains {
            if runs.running.values().any(|d| *d == domain) {
                continue; // Its completion starts the next pass.
            }
            if self.in_flight(&domain) {
                // Ordered by a direct `ensure` call: look again soon after it ends.
                wake = wake.min(now.saturating_add(Duration::from_secs(1)));
                continue;
            }
            if let Some(&(_, until)) = runs.held.get(&domain)
                && now < until
            {
                wake = wake.min(until);
                continue;
            }
            match self.state(&domain).map(|s| next_action(&s, now)) {
                Ok(Action::WaitUntil(t)) => wake = wake.min(t),
                Ok(Action::Order) if runs.running.len() < MAX_CONCURRENT_ORDERS => {
                    let manager = self.clone();
                    let name = domain.clone();
                    let task = runs.orders.spawn(async move {
                        let result = manager.ensure(&name, now).await;
                        (name, result)
                    });
                    runs.running.insert(task.id(), domain);
                }
                Ok(Action::Order) => {} // Waits for a free slot: a finishing order passes again.
                Err(e) => tracing::warn!(domain, error = %e, "ACME state unusable"),
            }
        }
        wake
    }

    /// Books a finished order. A name whose state could not be read or written is held back
    /// with the same backoff as a failed order (kept in memory: the disk is what failed).
    fn finished(
        &self,
        runs: &mut Runs,
        done: Result<(tokio::task::Id, Ordered), tokio::task::JoinError>,
    ) {
        let (domain, error) = match done {
            Ok((id, (domain, result))) => {
                runs.running.remove(&id);
                match result {
                    Ok(_) => {
                        runs.held.remove(&domain);
                        return;
                    }
                    Err(e) => (domain, e.to_string()),
                }
            }
            Err(e) => match runs.running.remove(&e.id()) {
                Some(domain) => (domain, e.to_string()),
                None => return,
            },
        };
        let failures = runs
            .held
            .get(&domain)
            .map_or(1, |(n, _)| n.saturating_add(1));
        let until = Timestamp::now().saturating_add(self.inner.config.backoff.delay(failures));
        tracing::warn!(domain, error, failures, next_attempt = %until, "ACME state unusable");
        runs.held.insert(domain, (failures, until));
    }

    fn in_flight(&self, domain: &str) -> bool {
        match self.inner.in_flight.lock() {
            Ok(g) => g.contains(domain),
            Err(p) => p.into_inner().contains(domain),
        }
    }

    fn load_certificates(&self) -> Result<(), AcmeError> {
        let certs = self.inner.config.state_dir.join("certs");
        let entries = fs::read_dir(&certs).map_err(|e| state_err(&certs, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| state_err(&certs, e))?;
            let Some(domain) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let dir = entry.path();
            let (Ok(cert), Ok(key)) = (
                fs::read(dir.join("cert.pem")),
                fs::read(dir.join("key.pem")),
            ) else {
                continue;
            };
            match self
                .inner
                .proxy
                .add_certificate(std::slice::from_ref(&domain), &cert, &key)
            {
                Ok(()) => tracing::info!(domain, "stored ACME certificate loaded"),
                Err(e) => {
                    tracing::warn!(domain, error = %e, "stored ACME certificate not loaded")
                }
            }
        }
        Ok(())
    }

    fn domain_dir(&self, domain: &str) -> Result<PathBuf, AcmeError> {
        if !orderable(domain) {
            return Err(AcmeError::Domain(domain.to_owned()));
        }
        let dir = self.inner.config.state_dir.join("certs").join(domain);
        fs::create_dir_all(&dir).map_err(|e| state_err(&dir, e))?;
        Ok(dir)
    }

    fn take_retry_after(&self) -> Option<SystemTime> {
        match self.inner.retry_after.lock() {
            Ok(mut g) => g.take(),
            Err(p) => p.into_inner().take(),
        }
    }

    async fn account(&self) -> Result<&Account, AcmeError> {
        self.inner
            .account
            .get_or_try_init(|| self.load_or_create_account())
            .await
    }

    async fn load_or_create_account(&self) -> Result<Account, AcmeError> {
        let config = &self.inner.config;
        let path = config.state_dir.join("account.json");
        let builder = || -> Result<_, AcmeError> {
            let http = RecordingClient::new(
                config.server_root.as_deref(),
                self.inner.retry_after.clone(),
            )?;
            Ok(Account::builder_with_http(Box::new(http)))
        };
        match fs::read(&path) {
            Ok(bytes) => {
                let creds: AccountCredentials =
                    serde_json::from_slice(&bytes).map_err(|e| state_err(&path, e))?;
                Ok(builder()?.from_credentials(creds).await?)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let contact: Vec<&str> = config.contact.iter().map(String::as_str).collect();
                let new_account = NewAccount {
                    contact: &contact,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                };
                // A request refused for its nonce created nothing: try again (instant-acme
                // already retried it three times).
                let mut retries = 0;
                let (account, creds) = loop {
                    match builder()?
                        .create(&new_account, config.directory_url.clone(), None)
                        .await
                    {
                        Err(e) if is_bad_nonce(&e) && retries < BAD_NONCE_RESUMES => retries += 1,
                        result => break result?,
                    }
                };
                let json = serde_json::to_vec(&creds).map_err(|e| state_err(&path, e))?;
                write_private(&path, &json)?;
                tracing::info!(account = account.id(), "ACME account created");
                Ok(account)
            }
            Err(e) => Err(state_err(&path, e)),
        }
    }

    /// One order to completion, resumed after badNonce. Returns (chain PEM, key PEM).
    async fn order(
        &self,
        domain: &str,
        tokens: &mut Vec<Answered>,
    ) -> Result<(String, String), AcmeError> {
        let account = self.account().await?;
        let mut progress = Progress::default();
        let mut resumes = 0;
        loop {
            match self.drive(account, domain, &mut progress, tokens).await {
                Ok(chain) => {
                    let key = progress.key_pem.ok_or(instant_acme::Error::Str(
                        "certificate issued without a key from this client",
                    ))?;
                    return Ok((chain, key));
                }
                Err(e) if is_bad_nonce(&e) && resumes < BAD_NONCE_RESUMES => {
                    resumes += 1;
                    tracing::debug!(domain, resumes, "badNonce: resuming the order");
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn drive(
        &self,
        account: &Account,
        domain: &str,
        progress: &mut Progress,
        tokens: &mut Vec<Answered>,
    ) -> Result<String, instant_acme::Error> {
        let policy = RetryPolicy::new().timeout(Duration::from_secs(60));
        let mut order = match &progress.order_url {
            Some(url) => account.order(url.clone()).await?,
            None => {
                let ids = [Identifier::Dns(domain.to_owned())];
                let order = account.new_order(&NewOrder::new(&ids)).await?;
                self.inner.orders.fetch_add(1, Ordering::Relaxed);
                progress.order_url = Some(order.url().to_owned());
                order
            }
        };
        loop {
            match order.state().status {
                OrderStatus::Pending => {
                    self.authorize(&mut order, tokens).await?;
                    order.poll_ready(&policy).await?;
                }
                OrderStatus::Ready => progress.key_pem = Some(order.finalize().await?),
                OrderStatus::Processing | OrderStatus::Valid => {
                    if progress.key_pem.is_none() {
                        return Err(instant_acme::Error::Str(
                            "order finalized without this client's key",
                        ));
                    }
                    return order.poll_certificate(&policy).await;
                }
                OrderStatus::Invalid => {
                    return Err(match order.state().error.clone() {
                        Some(p) => instant_acme::Error::Api(p),
                        None => instant_acme::Error::Str("order became invalid"),
                    });
                }
            }
        }
    }

    async fn authorize(
        &self,
        order: &mut Order,
        tokens: &mut Vec<Answered>,
    ) -> Result<(), instant_acme::Error> {
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz?;
            match authz.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => {
                    return Err(instant_acme::Error::Other(
                        format!("authorization is {other:?}").into(),
                    ));
                }
            }
            let name = authz.identifier().to_string();
            let kind = self.inner.config.challenge;
            let ty = match kind {
                Challenge::Http01 => ChallengeType::Http01,
                Challenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
            };
            let mut challenge = authz.challenge(ty.clone()).ok_or_else(|| {
                instant_acme::Error::Other(format!("the CA offered no {ty:?} challenge").into())
            })?;
            let key_authorization = challenge.key_authorization();
            match kind {
                Challenge::Http01 => {
                    let token = challenge.token.clone();
                    self.inner
                        .proxy
                        .set_acme_challenge(&token, key_authorization.as_str());
                    tokens.push(Answered::Http01(token));
                }
                Challenge::TlsAlpn01 => {
                    self.inner
                        .proxy
                        .set_tls_alpn_challenge(&name, key_authorization.digest().as_ref())
                        .map_err(|e| instant_acme::Error::Other(Box::new(e)))?;
                    tokens.push(Answered::TlsAlpn01(name));
                }
            }
            challenge.set_ready().await?;
        }
        Ok(())
    }
}

/// A challenge this proxy answers while an order runs.
enum Answered {
    Http01(String),
    TlsAlpn01(String),
}

/// Orders [`AcmeManager::run`] keeps going at once; more due names wait for a free slot.
pub const MAX_CONCURRENT_ORDERS: usize = 4;
/// A burst of route changes (a control plane restoring or deploying many services) makes one
/// pass: `run` waits until the table has been quiet this long...
const ROUTES_QUIET: Duration = Duration::from_millis(200);
/// ...but no longer than this after the first change.
const ROUTES_SETTLE_MAX: Duration = Duration::from_secs(2);

/// A name and what [`AcmeManager::ensure`] did for it.
type Ordered = (String, Result<Outcome, AcmeError>);

/// What [`AcmeManager::run`] keeps between passes.
#[derive(Default)]
struct Runs {
    orders: tokio::task::JoinSet<Ordered>,
    /// The name each running order is for.
    running: HashMap<tokio::task::Id, String>,
    /// The names routed at the last pass or route change.
    seen: HashSet<String>,
    /// Names whose state failed outside an order: consecutive failures, no pass before.
    held: HashMap<String, (u32, Timestamp)>,
}

/// Waits until the route table stops changing ([`ROUTES_QUIET`], at most [`ROUTES_SETTLE_MAX`]).
async fn settle(changes: &mut tokio::sync::watch::Receiver<u64>) {
    let deadline = tokio::time::Instant::now() + ROUTES_SETTLE_MAX;
    loop {
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(ROUTES_QUIET) => return,
            () = tokio::time::sleep_until(deadline) => return,
        }
    }
}

#[derive(Default)]
struct Progress {
    order_url: Option<String>,
    key_pem: Option<String>,
}

/// A name's in-flight slot, released on drop.
struct InFlight<'a> {
    set: &'a Mutex<HashSet<String>>,
    domain: String,
}

impl<'a> InFlight<'a> {
    fn take(set: &'a Mutex<HashSet<String>>, domain: &str) -> Option<Self> {
        let mut g = match set.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        g.insert(domain.to_owned()).then(|| InFlight {
            set,
            domain: domain.to_owned(),
        })
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut g = match self.set.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        g.remove(&self.domain);
    }
}

fn is_bad_nonce(e: &instant_acme::Error) -> bool {
    matches!(e, instant_acme::Error::Api(p) if p.r#type.as_deref() == Some(BAD_NONCE))
}

/// A DNS name HTTP-01 can validate and that is safe as a directory name.
fn orderable(domain: &str) -> bool {
    !domain.is_empty()
        && domain.len() <= 253
        && !domain.starts_with('.')
        && !domain.contains("..")
        && domain
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
}

fn timestamp_of(t: SystemTime) -> Timestamp {
    let ms = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Timestamp::from_millis(ms)
}

/// Writes `bytes` to `path` atomically (temp file, fsync, rename), owner-only.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), AcmeError> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| state_err(&tmp, e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| state_err(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| state_err(path, e))
}

fn remove_if_exists(path: &Path) -> Result<(), AcmeError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(state_err(path, e)),
        _ => Ok(()),
    }
}

/// instant-acme's HTTPS transport (hyper-rustls on ring), remembering the `Retry-After` of
/// 429/503 answers: instant-acme's errors drop the headers.
struct RecordingClient {
    inner: hyper_util::client::legacy::Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        BodyWrapper<Bytes>,
    >,
    retry_after: Arc<Mutex<Option<SystemTime>>>,
}

impl RecordingClient {
    fn new(
        root: Option<&Path>,
        retry_after: Arc<Mutex<Option<SystemTime>>>,
    ) -> Result<Self, AcmeError> {
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let builder = match root {
            Some(path) => {
                use rustls::pki_types::CertificateDer;
                use rustls::pki_types::pem::PemObject;
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_file_iter(path).map_err(|e| state_err(path, e))? {
                    roots
                        .add(cert.map_err(|e| state_err(path, e))?)
                        .map_err(|e| state_err(path, e))?;
                }
                let config = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
                    .with_safe_default_protocol_versions()
                    .map_err(|e| state_err(path, e))?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                builder.with_tls_config(config)
            }
            None => builder
                .try_with_platform_verifier()
                .map_err(|e| instant_acme::Error::Other(Box::new(e)))?,
        };
        let connector = builder.https_only().enable_http1().enable_http2().build();
        let inner =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(connector);
        Ok(RecordingClient { inner, retry_after })
    }
}

impl HttpClient for RecordingClient {
    fn request(
        &self,
        req: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let fut = HttpClient::request(&self.inner, req);
        let slot = self.retry_after.clone();
        Box::pin(async move {
            let rsp = fut.await?;
            let status = rsp.parts.status.as_u16();
            if (status == 429 || status == 503)
                && let Some(at) = rsp
                    .parts
                    .headers
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_retry_after)
            {
                match slot.lock() {
                    Ok(mut g) => *g = Some(at),
                    Err(p) => *p.into_inner() = Some(at),
                }
            }
            Ok(rsp)
        })
    }
}

/// `Retry-After: <seconds>` or an HTTP date.
fn parse_retry_after(value: &str) -> Option<SystemTime> {
    let value = value.trim();
    match value.parse::<u64>() {
        Ok(secs) => Some(clock_now() + Duration::from_secs(secs)),
        Err(_) => httpdate::parse_http_date(value).ok(),
    }
}

fn clock_now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(Timestamp::now().as_millis().max(0) as u64)
}

/// The validity of the first (leaf) certificate in a PEM chain.
pub fn validity_of_pem(pem: &[u8]) -> Option<Validity> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let leaf = CertificateDer::pem_slice_iter(pem).next()?.ok()?;
    validity_of_der(&leaf)
}

/// Reads `tbsCertificate.validity` from an X.509 DER certificate (a minimal DER walk: the
/// fields before it are skipped by their lengths).
fn validity_of_der(der: &[u8]) -> Option<Validity> {
    let (tag, cert, _) = tlv(der)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, mut tbs, _) = tlv(cert)?;
    if tag != 0x30 {
        return None;
    }
    if tbs.first() == Some(&0xa0) {
        tbs = tlv(tbs)?.2; // version
    }
    for _ in 0..3 {
        tbs = tlv(tbs)?.2; // serial, signature algorithm, issuer
    }
    let (tag, validity, _) = tlv(tbs)?;
    if tag != 0x30 {
        return None;
    }
    let (t1, nb, rest) = tlv(validity)?;
    let (t2, na, _) = tlv(rest)?;
    Some(Validity {
        not_before: asn1_time(t1, nb)?,
        not_after: asn1_time(t2, na)?,
    })
}

/// (tag, content, rest) of one DER element.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *input.first()?;
    let first = *input.get(1)? as usize;
    let (len, header) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for b in input.get(2..2 + n)? {
            len = (len << 8) | *b as usize;
        }
        (len, 2 + n)
    };
    let content = input.get(header..header.checked_add(len)?)?;
    Some((tag, content, &input[header + len..]))
}

/// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) as a timestamp.
fn asn1_time(tag: u8, s: &[u8]) -> Option<Timestamp> {
    let s = std::str::from_utf8(s).ok()?.strip_suffix('Z')?;
    let (year, rest) = match tag {
        0x17 => {
            let yy: i64 = s.get(..2)?.parse().ok()?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, s.get(2..)?)
        }
        0x18 => (s.get(..4)?.parse().ok()?, s.get(4..)?),
        _ => return None,
    };
    if rest.len() != 10 {
        return None;
    }
    let n = |i: usize| rest.get(i..i + 2)?.parse::<i64>().ok();
    let secs = clank_core::time::unix_seconds(year, n(0)?, n(2)?, n(4)?, n(6)?, n(8)?);
    Some(Timestamp::from_millis(secs * 1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_millis(s * 1000)
    }

    fn valid(from: i64, to: i64) -> CertState {
        CertState {
            validity: Some(Validity {
                not_before: ts(from),
                not_after: ts(to),
            }),
            retry: RetryState::default(),
        }
    }

    #[test]
    fn a_name_without_a_certificate_is_ordered() {
        assert_eq!(next_action(&CertState::default(), ts(5)), Action::Order);
    }

    #[test]
    fn a_valid_certificate_waits_for_the_last_third_of_its_lifetime() {
        let state = valid(0, 90);
        assert_eq!(next_action(&state, ts(10)), Action::WaitUntil(ts(60)));
        assert_eq!(next_action(&state, ts(59)), Action::WaitUntil(ts(60)));
        assert_eq!(next_action(&state, ts(60)), Action::Order);
        assert_eq!(next_action(&state, ts(200)), Action::Order);
    }

    #[test]
    fn backoff_defers_even_a_due_renewal_until_the_next_attempt() {
        let mut state = valid(0, 90);
        state.retry.next_attempt_ms = Some(ts(70).as_millis());
        assert_eq!(next_action(&state, ts(65)), Action::WaitUntil(ts(70)));
        assert_eq!(next_action(&state, ts(70)), Action::Order);
    }

    #[test]
    fn backoff_doubles_per_failure_up_to_the_cap() {
        let b = Backoff {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(60),
        };
        let delays: Vec<u64> = (1..=6).map(|f| b.delay(f).as_secs()).collect();
        assert_eq!(delays, [10, 20, 40, 60, 60, 60]);
        assert_eq!(b.delay(10_000), Duration::from_secs(60));
    }

    #[test]
    fn a_failure_honours_retry_after_when_it_is_later_than_the_backoff() {
        let b = Backoff {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(60),
        };
        let first = RetryState::default().failed(ts(100), &b, None, "boom".into());
        assert_eq!(first.failures, 1);
        assert_eq!(first.next_attempt_ms, Some(ts(110).as_millis()));
        let second = first.failed(ts(110), &b, Some(ts(500)), "rate limited".into());
        assert_eq!(second.failures, 2);
        assert_eq!(second.next_attempt_ms, Some(ts(500).as_millis()));
        assert_eq!(second.last_error.as_deref(), Some("rate limited"));
        let third = second.failed(ts(500), &b, Some(ts(501)), "x".into());
        assert_eq!(third.next_attempt_ms, Some(ts(540).as_millis()));
    }

    #[test]
    fn asn1_times_convert_to_unix_time() {
        assert_eq!(asn1_time(0x17, b"700101000000Z"), Some(ts(0)));
        assert_eq!(asn1_time(0x17, b"000301000000Z"), Some(ts(951_868_800)));
        assert_eq!(asn1_time(0x18, b"20261122015000Z"), Some(ts(1_795_312_200)));
        assert_eq!(asn1_time(0x17, b"garbage"), None);
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_an_http_date() {
        let at = parse_retry_after("120").unwrap();
        let from_now = at.duration_since(clock_now()).unwrap();
        assert!(from_now > Duration::from_secs(110) && from_now <= Duration::from_secs(120));
        let date = parse_retry_after("Sun, 22 Nov 2026 01:50:00 GMT").unwrap();
        assert_eq!(timestamp_of(date), ts(1_795_312_200));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn the_validity_of_a_pem_leaf_is_read() {
        // A self-signed P-256 certificate valid 2026-01-01T00:00:00Z to 2026-04-01T00:00:00Z.
        let pem = include_str!("../tests/data/acme-validity.pem");
        let v = validity_of_pem(pem.as_bytes()).unwrap();
        assert_eq!(v.not_before, ts(1_767_225_600));
        assert_eq!(v.not_after, ts(1_775_001_600));
        assert_eq!(validity_of_pem(b"not a pem"), None);
    }

    #[test]
    fn names_that_are_not_plain_dns_names_are_not_orderable() {
        assert!(orderable("shop.example.com"));
        assert!(!orderable("*.example.com"));
        assert!(!orderable("../etc"));
        assert!(!orderable("Shop.example.com"));
        assert!(!orderable(""));
    }
}
