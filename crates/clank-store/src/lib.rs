//! Persistent stores for Clank: [`RedbStore`] (the embedded default) and, behind the `sled`
//! feature, [`SledStore`]. Both implement [`clank_core::store::Store`] and pass the shared
//! contract suite in `clank-testkit`.

mod dictionary;
mod encoding;
pub mod redb_store;
#[cfg(feature = "sled")]
pub mod sled_store;

pub use redb_store::{RedbStore, Space};
#[cfg(feature = "sled")]
pub use sled_store::SledStore;
