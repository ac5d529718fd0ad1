//! Deployment events (a `Stream` anyone can follow) and the persisted per-deployment log.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};

use clank_core::id::DeploymentId;
use clank_core::store::{Scan, Store, Txn};
use clank_core::{Error, Result};
use futures_util::{Stream, StreamExt};
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;

pub use clank_api::{Event, EventKind};

/// Events as they happen. A follower that falls more than the buffer behind skips the lost
/// events (the deploy log in the store keeps the full record).
pub type EventStream = Pin<Box<dyn Stream<Item = Event> + Send>>;

#[derive(Debug)]
pub struct EventBus {
    tx: broadcast::Sender<Event>,
}

impl EventBus {
    pub fn new(capacity: usize) -> Self {
        EventBus {
            tx: broadcast::channel(capacity).0,
        }
    }

    pub fn publish(&self, event: Event) {
        // No subscribers is fine: events are also in the deploy log.
        let _ = self.tx.send(event);
    }

    pub fn subscribe(&self) -> EventStream {
        Box::pin(BroadcastStream::new(self.tx.subscribe()).filter_map(|r| async move { r.ok() }))
    }
}

/// One persisted line of a deployment's log: the API's type, stored as it is shown.
pub use clank_api::LogEntry;

/// The deploy log in the store: `log/deployment/{id}/{millis}-{seq}` → JSON entry.
#[derive(Debug, Default)]
pub struct DeployLog {
    seq: AtomicU64,
}

impl DeployLog {
    fn prefix(deployment: DeploymentId) -> String {
        format!("log/deployment/{deployment}/")
    }

    /// Append entries in one durable write.
    pub async fn append(
        &self,
        store: &dyn Store,
        deployment: DeploymentId,
        entries: &[LogEntry],
    ) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut txn = Txn::new();
        for e in entries {
            let seq = self.seq.fetch_add(1, Ordering::Relaxed);
            let key = format!(
                "{}{:015}-{seq:010}",
                Self::prefix(deployment),
                e.at.as_millis()
            );
            let value = serde_json::to_vec(e).map_err(|e| Error::Internal(e.to_string()))?;
            txn = txn.put(key, value);
        }
        store.commit(txn).await.map(|_| ())
    }

    pub async fn read(store: &dyn Store, deployment: DeploymentId) -> Result<Vec<LogEntry>> {
        let entries = store.scan(Scan::prefix(Self::prefix(deployment))).await?;
        entries
            .into_iter()
            .map(|e| {
                serde_json::from_slice(&e.value).map_err(|err| Error::Corrupt {
                    key: e.key.clone(),
                    reason: err.to_string(),
                })
            })
            .collect()
    }
}
