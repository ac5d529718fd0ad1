//! The typed layer over a [`Store`]: records, secondary indexes and uniqueness, written
//! atomically with compare-and-swap.
//!
//! Key layout (all UTF-8, `/`-separated, index values percent-escaped):
//!
//! | key                                              | value            |
//! |--------------------------------------------------|------------------|
//! | `rec/{table}/{id}`                               | the record, JSON |
//! | `idx/{table}/{index}/{value}/{sort}/{id}`        | empty            |
//! | `uniq/{table}/{constraint}/{value}`              | the id           |
//!
//! A record and all its index and unique keys change in one transaction conditioned on the
//! record's version, so indexes never disagree with records, and two writers racing on one
//! record (or on one unique name) cannot both win.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Condition, Entry, Revision, Scan, Store, Txn};
use crate::config::{ConfigLayer, Scope};
use crate::deploy::{self, DeploymentStatus};
use crate::error::{Error, Result};
use crate::id::{AuditEventId, EnvironmentId, ProjectId, ServiceId, WorkspaceId};
use crate::model::{
    ApiToken, AuditEvent, Build, CanvasLayout, Deployment, Endpoint, Environment, Instance, Member,
    PreviewSettings, Project, Server, Service, Stack, Team, User, Workspace,
};
use crate::time::Timestamp;

/// One secondary index entry of a record: find records by `value`, ordered by `sort`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub index: &'static str,
    pub value: String,
    pub sort: String,
}

impl IndexEntry {
    pub fn new(index: &'static str, value: impl ToString, sort: impl ToString) -> Self {
        IndexEntry {
            index,
            value: value.to_string(),
            sort: sort.to_string(),
        }
    }
}

/// A type the catalog can persist.
pub trait Record: Serialize + DeserializeOwned + Send + Sync {
    /// Table name in keys; also the noun in error messages.
    const TABLE: &'static str;
    fn id_string(&self) -> String;
    fn indexes(&self) -> Vec<IndexEntry> {
        Vec::new()
    }
    /// Unique constraints as `(constraint, value)`: no two records may share one.
    fn unique(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
    /// Refuse updates that change what must never change (ids, snapshots, numbers).
    fn check_update(_old: &Self, _new: &Self) -> Result<()> {
        Ok(())
    }
}

/// A record as read, with the version to condition the next write on.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    pub value: T,
    pub version: Revision,
}

impl<T> std::ops::Deref for Versioned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

/// A page of results and the cursor to fetch the next one.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing<T> {
    pub items: Vec<Versioned<T>>,
    /// Pass as [`Page::after`] to continue; `None` when this was the last page.
    pub next: Option<String>,
}

/// Paging and order of a list request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    pub limit: Option<usize>,
    pub after: Option<String>,
    pub reverse: bool,
}

impl Page {
    pub fn first(limit: usize) -> Self {
        Page {
            limit: Some(limit),
            ..Page::default()
        }
    }

    pub fn newest(limit: usize) -> Self {
        Page {
            limit: Some(limit),
            after: None,
            reverse: true,
        }
    }

    pub fn all() -> Self {
        Page::default()
    }
}

fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for ch in value.chars() {
        match ch {
            '%' => out.push_str("%25"),
            '/' => out.push_str("%2F"),
            c => out.push(c),
        }
    }
    out
}

fn record_key<T: Record>(id: &str) -> String {
    format!("rec/{}/{}", T::TABLE, escape(id))
}

fn index_prefix<T: Record>(index: &str, value: &str) -> String {
    format!("idx/{}/{index}/{}/", T::TABLE, escape(value))
}

fn index_key<T: Record>(e: &IndexEntry, id: &str) -> String {
    format!(
        "{}{}/{}",
        index_prefix::<T>(e.index, &e.value),
        escape(&e.sort),
        escape(id)
    )
}

/// Records read per page by [`Catalog::backfill_unique`].
const BACKFILL_PAGE: usize = 256;

/// A unique value that two records hold: written before the constraint existed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniqueClash {
    pub table: &'static str,
    pub constraint: &'static str,
    pub value: String,
    /// The record the unique entry names (it keeps the value).
    pub holder: String,
    /// The record that holds the value too.
    pub other: String,
}

/// Reads of a unique entry and its record before a value that keeps moving counts as not held.
const LOOKUP_ATTEMPTS: usize = 3;

fn unique_key<T: Record>(constraint: &str, value: &str) -> String {
    format!("uniq/{}/{constraint}/{}", T::TABLE, escape(value))
}

fn encode<T: Record>(rec: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(rec).map_err(|e| Error::Internal(format!("encode {}: {e}", T::TABLE)))
}

fn decode<T: Record>(entry: Entry) -> Result<Versioned<T>> {
    let value = serde_json::from_slice(&entry.value).map_err(|e| Error::Corrupt {
        key: entry.key.clone(),
        reason: e.to_string(),
    })?;
    Ok(Versioned {
        value,
        version: entry.version,
    })
}

/// Writes to several records, committed all-or-nothing by [`Catalog::commit`].
#[derive(Debug, Default)]
pub struct Batch {
    txn: Txn,
}

impl Batch {
    pub fn new() -> Self {
        Batch::default()
    }

    /// Insert a new record; fails at commit if the id or a unique value is taken.
    pub fn create<T: Record>(&mut self, rec: &T) -> Result<&mut Self> {
        let id = rec.id_string();
        let key = record_key::<T>(&id);
        self.txn.conditions.push(Condition::Absent(key.clone()));
        self.txn.ops.push(super::Op::Put {
            key,
            value: encode(rec)?,
        });
        for e in rec.indexes() {
            self.put_empty(index_key::<T>(&e, &id));
        }
        for (c, v) in rec.unique() {
            let key = unique_key::<T>(c, &v);
            self.txn.conditions.push(Condition::Absent(key.clone()));
            self.txn.ops.push(super::Op::Put {
                key,
                value: id.clone().into_bytes(),
            });
        }
        Ok(self)
    }

    /// Replace `old` (as read) with `new`; fails at commit if the record changed since.
    pub fn update<T: Record>(&mut self, old: &Versioned<T>, new: &T) -> Result<&mut Self> {
        let id = old.value.id_string();
        if new.id_string() != id {
            return Err(Error::Internal(format!("{} id cannot change", T::TABLE)));
        }
        T::check_update(&old.value, new)?;
        let key = record_key::<T>(&id);
        self.txn
            .conditions
            .push(Condition::Version(key.clone(), old.version));
        self.txn.ops.push(super::Op::Put {
            key,
            value: encode(new)?,
        });
        let (old_idx, new_idx) = (old.value.indexes(), new.indexes());
        for e in old_idx.iter().filter(|e| !new_idx.contains(e)) {
            self.txn.ops.push(super::Op::Delete {
                key: index_key::<T>(e, &id),
            });
        }
        for e in new_idx.iter().filter(|e| !old_idx.contains(e)) {
            self.put_empty(index_key::<T>(e, &id));
        }
        let (old_u, new_u) = (old.value.unique(), new.unique());
        for (c, v) in old_u.iter().filter(|u| !new_u.contains(u)) {
            self.txn.ops.push(super::Op::Delete {
                key: unique_key::<T>(c, v),
            });
        }
        for (c, v) in new_u.iter().filter(|u| !old_u.contains(u)) {
            let key = unique_key::<T>(c, v);
            self.txn.conditions.push(Condition::Absent(key.clone()));
            self.txn.ops.push(super::Op::Put {
                key,
                value: id.clone().into_bytes(),
            });
        }
        Ok(self)
    }

    /// Remove `old` (as read) with its index and unique keys.
    pub fn delete<T: Record>(&mut self, old: &Versioned<T>) -> &mut Self {
        let id = old.value.id_string();
        let key = record_key::<T>(&id);
        self.txn
            .conditions
            .push(Condition::Version(key.clone(), old.version));
        self.txn.ops.push(super::Op::Delete { key });
        for e in old.value.indexes() {
            self.txn.ops.push(super::Op::Delete {
                key: index_key::<T>(&e, &id),
            });
        }
        for (c, v) in old.value.unique() {
            self.txn.ops.push(super::Op::Delete {
                key: unique_key::<T>(c, &v),
            });
        }
        self
    }

    /// Commit only if record `id` of `T` is still at `revision` (`None`: still absent), writing
    /// nothing to it: a read the batch's writes were decided on.
    pub fn expect<T: Record>(&mut self, id: &str, revision: Option<Revision>) -> &mut Self {
        let key = record_key::<T>(id);
        self.txn.conditions.push(match revision {
            Some(version) => Condition::Version(key, version),
            None => Condition::Absent(key),
        });
        self
    }

    fn put_empty(&mut self, key: String) {
        self.txn.ops.push(super::Op::Put { key, value: vec![] });
    }

    pub fn is_empty(&self) -> bool {
        self.txn.ops.is_empty()
    }
}

/// Typed access to every record of the platform over any [`Store`].
#[derive(Clone)]
pub struct Catalog {
    store: Arc<dyn Store>,
}

impl fmt::Debug for Catalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Catalog")
            .field("store", &self.store)
            .finish()
    }
}

impl Catalog {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Catalog { store }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub async fn get<T: Record>(&self, id: &str) -> Result<Option<Versioned<T>>> {
        match self.store.get(&record_key::<T>(id)).await? {
            Some(entry) => decode(entry).map(Some),
            None => Ok(None),
        }
    }

    /// Several records by id, each answer in the order asked (one store read for all).
    pub async fn get_many<T: Record>(&self, ids: &[String]) -> Result<Vec<Option<Versioned<T>>>> {
        let keys: Vec<String> = ids.iter().map(|id| record_key::<T>(id)).collect();
        self.store
            .get_many(&keys)
            .await?
            .into_iter()
            .map(|e| e.map(decode).transpose())
            .collect()
    }

    /// Several records of `T` by id, each decoded as `V` (a part of `T`: the fields it
    /// names, the rest skipped), in the order asked, in one store read.
    pub async fn get_many_as<T: Record, V: DeserializeOwned>(
        &self,
        ids: &[String],
    ) -> Result<Vec<Option<V>>> {
        let keys: Vec<String> = ids.iter().map(|id| record_key::<T>(id)).collect();
        self.store
            .get_many(&keys)
            .await?
            .into_iter()
            .map(|e| {
                e.map(|e| {
                    serde_json::from_slice(&e.value).map_err(|err| Error::Corrupt {
                        key: e.key.clone(),
                        reason: err.to_string(),
                    })
                })
                .transpose()
            })
            .collect()
    }

    /// The ids of the records holding each of `values` under a unique constraint of `T`, in
    /// the order asked, in one store read. Unlike [`Catalog::lookup`] the records are not
    /// read: a caller reading them checks they still hold the value.
    pub async fn unique_ids<T: Record>(
        &self,
        constraint: &str,
        values: &[String],
    ) -> Result<Vec<Option<String>>> {
        let keys: Vec<String> = values
            .iter()
            .map(|v| unique_key::<T>(constraint, v))
            .collect();
        self.store
            .get_many(&keys)
            .await?
            .into_iter()
            .map(|e| {
                e.map(|e| {
                    String::from_utf8(e.value).map_err(|_| Error::Corrupt {
                        key: e.key.clone(),
                        reason: "unique entry is not UTF-8".into(),
                    })
                })
                .transpose()
            })
            .collect()
    }

    /// Like [`Catalog::get`], but a missing record is a `NotFound` error naming it.
    pub async fn require<T: Record>(&self, id: &str) -> Result<Versioned<T>> {
        self.get(id)
            .await?
            .ok_or_else(|| Error::not_found(T::TABLE, id))
    }

    /// All records of a table in id order (ids are time-ordered: creation order).
    pub async fn list<T: Record>(&self, page: Page) -> Result<Listing<T>> {
        let prefix = format!("rec/{}/", T::TABLE);
        let entries = self.scan_page(&prefix, &page).await?;
        let next = next_cursor(&entries, &page);
        let items = entries.into_iter().map(decode).collect::<Result<_>>()?;
        Ok(Listing { items, next })
    }

    /// Records whose `index` has `value`, ordered by the index's sort key.
    pub async fn find<T: Record>(
        &self,
        index: &str,
        value: &str,
        page: Page,
    ) -> Result<Listing<T>> {
        let prefix = index_prefix::<T>(index, value);
        let entries = self.scan_page(&prefix, &page).await?;
        let next = next_cursor(&entries, &page);
        let ids: Vec<String> = entries
            .iter()
            .map(|e| unescape(e.key.rsplit('/').next().unwrap_or_default()))
            .collect();
        // The records in one store read (the index scan was another).
        let records = self.get_many::<T>(&ids).await?;
        let mut items = Vec::with_capacity(entries.len());
        for ((e, id), rec) in entries.iter().zip(&ids).zip(records) {
            // Index and record are written in one transaction, so a dangling entry means
            // corruption, not a race.
            let rec = rec.ok_or_else(|| Error::Corrupt {
                key: e.key.clone(),
                reason: format!("index entry points at missing {} `{id}`", T::TABLE),
            })?;
            items.push(rec);
        }
        Ok(Listing { items, next })
    }

    /// The record holding `value` under a unique constraint, if any.
    ///
    /// The unique entry and the record are two reads: a writer may release or move the value
    /// between them. The record returned still holds `value` (checked on the record read), so
    /// a caller that writes conditioned on its version acts on a record that held the value at
    /// that version; after [`LOOKUP_ATTEMPTS`] reads that keep racing, the value counts as
    /// not held.
    pub async fn lookup<T: Record>(
        &self,
        constraint: &str,
        value: &str,
    ) -> Result<Option<Versioned<T>>> {
        let key = unique_key::<T>(constraint, value);
        for _ in 0..LOOKUP_ATTEMPTS {
            let Some(e) = self.store.get(&key).await? else {
                return Ok(None);
            };
            let id = String::from_utf8(e.value).map_err(|_| Error::Corrupt {
                key: e.key.clone(),
                reason: "unique entry is not UTF-8".into(),
            })?;
            if let Some(rec) = self.get::<T>(&id).await?
                && rec
                    .value
                    .unique()
                    .iter()
                    .any(|(c, v)| *c == constraint && v == value)
            {
                return Ok(Some(rec));
            }
        }
        Ok(None)
    }

    /// Write the unique entries that records of `T` should hold but do not: records stored
    /// before a constraint existed (an upgrade added it). Each entry is written only while it is
    /// still absent and the record unchanged, so a concurrent writer's own entries win. A value
    /// another record already holds is returned as a [`UniqueClash`] (neither record is
    /// changed: which one keeps it is the operator's call); a stale entry whose record no longer
    /// holds the value is taken over.
    pub async fn backfill_unique<T: Record>(&self) -> Result<Vec<UniqueClash>> {
        let mut clashes = Vec::new();
        let mut page = Page::first(BACKFILL_PAGE);
        loop {
            let listing = self.list::<T>(page.clone()).await?;
            for rec in &listing.items {
                let id = rec.value.id_string();
                for (constraint, value) in rec.value.unique() {
                    let key = unique_key::<T>(constraint, &value);
                    let mut txn =
                        Txn::new().when(Condition::Version(record_key::<T>(&id), rec.version));
                    match self.store.get(&key).await? {
                        Some(e) if e.value == id.as_bytes() => continue,
                        Some(e) => {
                            let holder = String::from_utf8_lossy(&e.value).into_owned();
                            if self.lookup::<T>(constraint, &value).await?.is_some() {
                                clashes.push(UniqueClash {
                                    table: T::TABLE,
                                    constraint,
                                    value,
                                    holder,
                                    other: id.clone(),
                                });
                                continue;
                            }
                            txn = txn.when(Condition::Version(key.clone(), e.version));
                        }
                        None => txn = txn.when(Condition::Absent(key.clone())),
                    }
                    match self
                        .store
                        .commit(txn.put(key, id.clone().into_bytes()))
                        .await
                    {
                        // The record or the entry moved on meanwhile: their writer keeps them right.
                        Ok(_) | Err(Error::WriteConflict { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            match listing.next {
                Some(next) => page.after = Some(next),
                None => return Ok(clashes),
            }
        }
    }

    /// Commit a batch. A lost race on a record is `WriteConflict` (re-read and retry); a taken
    /// unique value is a `Conflict` naming it.
    pub async fn commit(&self, batch: Batch) -> Result<Revision> {
        match self.store.commit(batch.txn).await {
            Err(Error::WriteConflict { key }) if key.starts_with("uniq/") => {
                let mut parts = key.splitn(4, '/').skip(1);
                let (table, constraint, value) = (
                    parts.next().unwrap_or_default(),
                    parts.next().unwrap_or_default(),
                    unescape(parts.next().unwrap_or_default()),
                );
                let shown = value.rsplit(':').next().unwrap_or_default();
                if let Some(holder) = self.deleted_holder(&key, table).await {
                    return Err(Error::Conflict(format!(
                        "{constraint} `{shown}` belongs to the deleted {table} `{holder}`; \
                         restore it, or purge it to free the {constraint}"
                    )));
                }
                let message = if (table, constraint) == ("service", "volume") {
                    format!(
                        "volume `{shown}` is already mounted by another service of this \
                         workspace; a volume has one writer unless every service mounting it \
                         marks it `shared: true`, so give this service a volume of its own"
                    )
                } else {
                    format!("a {table} with {constraint} `{shown}` already exists")
                };
                Err(Error::Conflict(message))
            }
            other => other,
        }
    }

    /// The slug of the soft-deleted record holding unique entry `key` of `table`, if it is
    /// one (a deleted service, environment or project keeps its slug and domains so it can
    /// be restored); `None` when it is live or cannot be read.
    async fn deleted_holder(&self, key: &str, table: &str) -> Option<String> {
        let entry = self.store.get(key).await.ok()??;
        let id = String::from_utf8(entry.value).ok()?;
        match table {
            "service" => {
                let s = self.get::<Service>(&id).await.ok()??.value;
                s.is_deleted().then_some(s.slug)
            }
            "environment" => {
                let e = self.get::<Environment>(&id).await.ok()??.value;
                e.is_deleted().then_some(e.name)
            }
            "project" => {
                let p = self.get::<Project>(&id).await.ok()??.value;
                p.is_deleted().then_some(p.slug)
            }
            _ => None,
        }
    }

    pub async fn create<T: Record>(&self, rec: &T) -> Result<Revision> {
        let mut b = Batch::new();
        b.create(rec)?;
        self.commit(b).await
    }

    pub async fn update<T: Record>(&self, old: &Versioned<T>, new: &T) -> Result<Revision> {
        let mut b = Batch::new();
        b.update(old, new)?;
        self.commit(b).await
    }

    /// Read record `id`, apply `edit`, and write it conditioned on the version read, again
    /// from the read when another writer won the race. No write when `edit` changes nothing.
    /// Returns the record as stored.
    pub async fn modify<T: Record + Clone + PartialEq>(
        &self,
        id: &str,
        mut edit: impl FnMut(&mut T) -> Result<()>,
    ) -> Result<T> {
        loop {
            let old = self.require::<T>(id).await?;
            let mut new = old.value.clone();
            edit(&mut new)?;
            if new == old.value {
                return Ok(new);
            }
            match self.update(&old, &new).await {
                Ok(_) => return Ok(new),
                Err(Error::WriteConflict { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    async fn scan_page(&self, prefix: &str, page: &Page) -> Result<Vec<Entry>> {
        let mut scan = Scan::prefix(prefix);
        scan.limit = page.limit.unwrap_or(usize::MAX);
        scan.reverse = page.reverse;
        if let Some(after) = &page.after {
            if !after.starts_with(prefix) {
                return Err(crate::InvalidInput::new(
                    "after",
                    "cursor",
                    "the page cursor does not belong to this listing",
                )
                .into());
            }
            scan.after = Some(after.clone());
        }
        self.store.scan(scan).await
    }

    // ---- Domain operations used by every interface -------------------------------------

    /// A project together with its default `production` environment, in one write.
    pub async fn create_project(&self, project: &Project, now: Timestamp) -> Result<Environment> {
        let env = Environment::new(project.id, Environment::DEFAULT, now)?;
        let mut b = Batch::new();
        b.create(project)?.create(&env)?;
        self.commit(b).await?;
        Ok(env)
    }

    /// Record a new PENDING deployment and bump the service's deployment counter in the same
    /// write, so numbers are unique and gapless even under concurrent requests.
    pub async fn create_deployment(
        &self,
        service: &Versioned<Service>,
        deployment: &Deployment,
    ) -> Result<Revision> {
        if deployment.number != service.next_deployment_number
            || deployment.service_id != service.id
        {
            return Err(Error::Conflict(format!(
                "deployment #{} was prepared from a stale view of service `{}`",
                deployment.number, service.slug
            )));
        }
        let mut next = service.value.clone();
        next.next_deployment_number += 1;
        let mut b = Batch::new();
        b.update(service, &next)?.create(deployment)?;
        self.commit(b).await
    }

    /// Record a rollback: the new PENDING deployment, the service's desired state set back to
    /// `restored` (with its deployment counter bumped) and its own config layer set back to
    /// `layer`, all in one write, so the next deploy cannot see half of it. `current_layer` is
    /// the service's layer as read (`None` if it has none).
    pub async fn create_rollback(
        &self,
        service: &Versioned<Service>,
        restored: &Service,
        deployment: &Deployment,
        current_layer: Option<&Versioned<ConfigLayer>>,
        layer: &ConfigLayer,
    ) -> Result<Revision> {
        if deployment.number != service.next_deployment_number
            || deployment.service_id != service.id
            || restored.id != service.id
            || layer.scope != Scope::Service(service.id)
        {
            return Err(Error::Conflict(format!(
                "rollback #{} was prepared from a stale view of service `{}`",
                deployment.number, service.slug
            )));
        }
        let mut next = restored.clone();
        next.next_deployment_number = service.next_deployment_number + 1;
        let mut b = Batch::new();
        b.update(service, &next)?.create(deployment)?;
        match current_layer {
            Some(current) if current.value != *layer => {
                b.update(current, layer)?;
            }
            Some(_) => {}
            None if layer.vars.is_empty() => {}
            None => {
                b.create(layer)?;
            }
        }
        self.commit(b).await
    }

    /// Record a new build and bump the service's build counter in the same write, so build
    /// numbers (v1, v2, …) are unique and gapless per service, like deployment numbers.
    pub async fn create_build(
        &self,
        service: &Versioned<Service>,
        build: &Build,
    ) -> Result<Revision> {
        if build.number != service.next_build_number || build.service_id != service.id {
            return Err(Error::Conflict(format!(
                "build v{} was prepared from a stale view of service `{}`",
                build.number, service.slug
            )));
        }
        let mut next = service.value.clone();
        next.next_build_number += 1;
        let mut b = Batch::new();
        b.update(service, &next)?.create(build)?;
        self.commit(b).await
    }

    /// A service's builds, newest first (or oldest first with `page.reverse = false`).
    pub async fn builds_of(&self, service: ServiceId, page: Page) -> Result<Listing<Build>> {
        self.find("service", &service.to_string(), page).await
    }

    /// A service's deployments, newest first (or oldest first with `page.reverse = false`).
    pub async fn deployments_of(
        &self,
        service: ServiceId,
        page: Page,
    ) -> Result<Listing<Deployment>> {
        self.find("service", &service.to_string(), page).await
    }

    /// The service's deployments that are in progress or ACTIVE, oldest first.
    pub async fn live_deployments_of(
        &self,
        service: ServiceId,
    ) -> Result<Vec<Versioned<Deployment>>> {
        Ok(self
            .find("service_live", &service.to_string(), Page::all())
            .await?
            .items)
    }

    pub async fn deployments_with_status(
        &self,
        status: DeploymentStatus,
        page: Page,
    ) -> Result<Listing<Deployment>> {
        self.find("status", status.as_str(), page).await
    }

    pub async fn services_in_project(
        &self,
        project: ProjectId,
        page: Page,
    ) -> Result<Listing<Service>> {
        self.find("project", &project.to_string(), page).await
    }

    pub async fn services_in_environment(
        &self,
        env: EnvironmentId,
        page: Page,
    ) -> Result<Listing<Service>> {
        self.find("environment", &env.to_string(), page).await
    }

    pub async fn projects_in(&self, ws: WorkspaceId, page: Page) -> Result<Listing<Project>> {
        self.find("workspace", &ws.to_string(), page).await
    }

    /// Persist a cutover: `next` ACTIVE, `previous` SUPERSEDED, the service's pointer moved —
    /// one conditional write, so at most one deployment of a service is ever ACTIVE.
    pub async fn activate(
        &self,
        service: &Versioned<Service>,
        next: &Versioned<Deployment>,
        previous: Option<&Versioned<Deployment>>,
        now: Timestamp,
    ) -> Result<Revision> {
        let mut s = service.value.clone();
        let mut n = next.value.clone();
        let mut p = previous.map(|p| p.value.clone());
        deploy::activate(&mut s, &mut n, p.as_mut(), now)?;
        let mut b = Batch::new();
        b.update(service, &s)?.update(next, &n)?;
        if let (Some(old), Some(new)) = (previous, &p) {
            b.update(old, new)?;
        }
        self.commit(b).await
    }

    /// Persist a change of a deployment's state (never its snapshot).
    pub async fn save_deployment(
        &self,
        old: &Versioned<Deployment>,
        new: &Deployment,
    ) -> Result<Revision> {
        self.update(old, new).await
    }

    /// Append an event to the audit log.
    pub async fn record_audit(&self, event: &AuditEvent) -> Result<Revision> {
        self.create(event).await
    }

    /// A workspace's audit log, newest first: at most `limit` events older than `before`
    /// (an event id, exclusive). One reverse scan of the time-ordered index.
    pub async fn audit_events(
        &self,
        ws: WorkspaceId,
        limit: usize,
        before: Option<AuditEventId>,
    ) -> Result<Vec<AuditEvent>> {
        let mut page = Page::newest(limit);
        page.after = before.map(|id| {
            let id = id.to_string();
            index_key::<AuditEvent>(&IndexEntry::new("workspace", ws, &id), &id)
        });
        let l = self
            .find::<AuditEvent>("workspace", &ws.to_string(), page)
            .await?;
        Ok(l.items.into_iter().map(|v| v.value).collect())
    }

    pub async fn config_layer(&self, scope: Scope) -> Result<Option<Versioned<ConfigLayer>>> {
        self.get(&scope.to_string()).await
    }
}

fn next_cursor(entries: &[Entry], page: &Page) -> Option<String> {
    match page.limit {
        Some(limit) if entries.len() == limit => entries.last().map(|e| e.key.clone()),
        _ => None,
    }
}

fn unescape(s: &str) -> String {
    s.replace("%2F", "/").replace("%25", "%")
}

// ---- Record impls: the tables, their indexes and unique constraints -----------------------

impl Record for Instance {
    const TABLE: &'static str = "instance";
    fn id_string(&self) -> String {
        Instance::ID.to_owned()
    }
    /// The singleton's id doubles as a unique value, so a second `create` is a `Conflict`.
    fn unique(&self) -> Vec<(&'static str, String)> {
        vec![("id", Instance::ID.to_owned())]
    }
}

impl Record for Workspace {
    const TABLE: &'static str = "workspace";
    fn id_string(&self) -> String {
        self.id.to_string()
    }
    fn unique(&self) -> Vec<(&'static str, String)> {
        vec![("slug", self.slug.clone())]
    }
}

impl Record for User {
    const TABLE: &'static str = "user";
    fn id_string(&self) -> String {
        self.id.to_string()
    }
    fn unique(&self) -> Vec<(&'static str, String)> {
        vec![("email", self.email.to_lowercase())]
    }
}

impl Record for Member {
    const TABLE: &'static str = "member";
    fn id_string(&self) -> String {
        format!("{}:{}", self.workspace_id, self.user_id)
    }
    fn indexes(&self) -> Vec<IndexEntry> {
        vec![
            IndexEntry::new("workspace", self.workspace_id, self.user_id),
            IndexEntry::new("user", self.user_id, self.workspace_id),
        ]
    }
}

impl Record for Team {
    const TABLE: &'static str = "team";
    fn id_string(&self) -> String {
        self.id.to_string()
    }
    fn indexes(&self) -> Vec<IndexEntry> {
        vec![IndexEntry::new("workspace", self.workspace_id, self.id)]
    }
    fn unique(&self) -> Vec<(&'static str, String)> {
        vec![("slug", format!("{}:{}", self.workspace_id, self.slug))]
    }
}

impl Record for Project {
    const TABLE: &'static str = "project";
    fn id_string(&self) -> String {
        self.id.to_string()
    }
    fn indexes(&self) -> Vec<IndexEntry> {
        vec![IndexEntry::new("workspace", self.workspace_id, self.id)]
    }
    /// Slugs stay taken after a soft delete: volumes and networks are named after them.
    fn unique(&self) -> Vec<(&'static str, String)> {
        vec![("slug", format!("{}:{}", self.workspace_id, self.slug))]
    }
    fn check_update(old: &Self, new: &Self) -> Result<()> {
        immutable("project", "slug", &old.slug, &new.slug)
    }
}

impl Record for Environment {
    const TABLE: &'static str = "environment";
    fn id_string(&self) -> String {
        self.id.to_string()
    }
    fn indexes(&self) -> Vec<IndexEntry> {
        vec![IndexEntry::new("project", self.project_id, &self.name)]
    }
    fn unique(&self) -> Vec<(&'static str, String)> {
        vec![("name", format!("{}:{}", self.project_id, self.name))]
    }
}

/// One per project, keyed by the project's id.
impl Record for PreviewSettings {
    const TABLE: &'static str = "preview_settings";
    fn id_string(&self) -> String {
        self.project_id.to_string()
    }
    fn indexes(&self) -> Vec<IndexEntry> {
        vec![IndexEntry::new(
            "workspace",
            self.workspace_id,
            self.project_id,
        )]
    }
}

/// One per user and project (`{user}:{project}`): a dashboard preference.
impl Record for CanvasLayout {
    const TABLE: &'static str = "canvas_layout";
    fn id_string(&self) -> String {
        CanvasLayout::key(self.user_id, self.project_id)
    }
    fn indexes(&self) -> Vec<IndexEntry> {
        vec![IndexEntry::new(
            "project",
            self.project_id,
            CanvasLayout::key(self.user_id, self.project_id),
        )]
    }
}

impl Record for Service {
    const TABLE: &'static str = "service";
    fn id_string(&self) -> String {
        self.id.to_string()
    }
    fn indexes(&self) -> Vec<IndexEntry> {
        let mut v = vec![
            IndexEntry::new("project", self.project_id, self.id),
            IndexEntry::new("environment", self.environment_id, &self.slug),
        ];
        if let Some(server) = self.server_id {
            v.push(IndexEntry::new("server", server, self.id));
        }
        v
    }
    /// Domains are unique across the instance, whatever the workspace: a name one tenant
    /// routes can never be claimed (and served) by another.
    fn unique(&self) -> Vec<(&'static str, String)> {
        let mut v = vec![("slug", format!("{}:{}", self.environment_id, self.slug))];
        if let Some(endpoint) = &self.endpoint {
            let mut names: Vec<String> = endpoint
                .routed_domains()
                .iter()
                .map(|d| d.to_ascii_lowercase())
                .collect();
            if let Endpoint::CloudflareTunnel { hostname, .. } = endpoint {
                names.push(hostname.to_ascii_lowercase());
            }
            names.sort();
            names.dedup();
            v.extend(names.into_iter().map(|d| ("domain", d)));
        }
        // A volume not marked `shared` has one writer: one service of the workspace (whatever
        // its environment) may mount it. A cloned environment gets its own volumes.
        let mut volumes: Vec<&str> = self
            .volumes
            .iter()
            .filter(|v| !v.shared)
            .map(|v| v.name.as_str())
            .collect();
        volumes.sort_unstable();
        volumes.dedup();
        v.extend(
            volumes
                .into_iter()
                .map(|name| ("volume", format!("{}:{name}", self.workspace_id))),
        );
        v
    }
    fn check_update(old: &Self, new: &Self) -> Result<()> {
        immutable("service", "slug", &old.slug, &new.slug)?;
        if new.next_deployment_number < old.next_deployment_number
            || new.next_build_number < old.next_build_number
        {
            return Err(Error::Internal(
                "service counters never go backwards".into(),
            ));
        }
        Ok(())
    }
}

impl Record for Stack {
    const TABLE: &'static str = "stack";
    fn id_string(&self) -> String {
        self.id.to_string()
    }
    fn indexes(&self) -> Vec<IndexEntry> {
        vec![IndexEntry::new(
            "environment",
            self.environment_id,
            &self.slug,
        )]
    }
    fn unique(&self) -> Vec<(&'static str, String)> {
        vec![("slug", format!("{}:{}", self.environment_id, self.slug))]
    }
    fn check_update(old: &Self, new: &Self) -> Result<()> {
        immutable("stack", "slug", &old.slug, &new.slug)
    }
}

/// Zero-padded so lexical key order is numeric order.
fn sortable(n: u64) -> String {
    format!("{n:020}")
}

impl Record for Deployment {
    const TABLE: &'static str = "deployment";
    fn id_string(&self) -> String {
        self.id.to_string()
    }
    fn indexes(&self) -> Vec<IndexEntry> {
        let mut v = vec![
            IndexEntry::new("service", self.service_id, sortable(self.number)),
            IndexEntry::new("status", self.state.status.as_str(), self.id),
        ];
        // What a reconcile pass of the service must look at: in-progress and ACTIVE ones.
        if !self.state.status.is_terminal() {
            v.push(IndexEntry::new(
                "service_live",
                self.service_id,
                sortable(self.number),
            ));
        }
        v
    }
    fn unique(&self) -> Vec<(&'static str, String)> {
        vec![("number", format!("{}:{}", self.service_id, self.number))]
    }
    /// Invariant 1 of DESIGN.md §3: a deployment is immutable once created; only its state moves.
    fn check_update(old: &Self, new: &Self) -> Result<()> {
        if old.snapshot != new.snapshot
            || old.number != new.number
            || old.service_id != new.service_id
            || old.trigger != new.trigger
            || old.created_at != new.created_at
        {
            return Err(Error::Conflict(format!(
                "deployment #{} is immutable: only its status may change",
                old.number
            )));
        }
        Ok(())
    }
}

impl Record for Build {
    const TABLE: &'static str = "build";
    fn id_string(&self) -> String {
        self.id.to_string()
    }
    fn indexes(&self) -> Vec<IndexEntry> {
        vec![IndexEntry::new(
            "service",
            self.service_id,
            sortable(self.number),
        )]
    }
    fn unique(&self) -> Vec<(&'static str, String)> {
        vec![("number", format!("{}:{}", self.service_id, self.number))]
    }
}

impl Record for Server {
    const TABLE: &'static str = "server";
    fn id_string(&self) -> String {
        self.id.to_string()
    }
    fn indexes(&self) -> Vec<IndexEntry> {
        vec![IndexEntry::new("workspace", self.workspace_id, self.id)]
    }
    fn unique(&self) -> Vec<(&'static str, String)> {
        vec![("name", format!("{}:{}", self.workspace_id, self.name))]
    }
}

impl Record for ApiToken {
    const TABLE: &'static str = "token";
    fn id_string(&self) -> String {
        self.id.to_string()
    }
    fn indexes(&self) -> Vec<IndexEntry> {
        vec![
            IndexEntry::new("workspace", self.workspace_id, self.id),
            IndexEntry::new("user", self.user_id, self.id),
        ]
    }
    fn unique(&self) -> Vec<(&'static str, String)> {
        vec![("hash", self.hash.clone())]
    }
}

/// Audit events are append-only: indexed by workspace in id (= time) order, never updated.
impl Record for AuditEvent {
    const TABLE: &'static str = "audit";
    fn id_string(&self) -> String {
        self.id.to_string()
    }
    fn indexes(&self) -> Vec<IndexEntry> {
        vec![IndexEntry::new("workspace", self.workspace_id, self.id)]
    }
    fn check_update(_old: &Self, _new: &Self) -> Result<()> {
        Err(Error::Conflict("audit events are immutable".into()))
    }
}

impl Record for ConfigLayer {
    const TABLE: &'static str = "config";
    fn id_string(&self) -> String {
        self.scope.to_string()
    }
}

fn immutable(what: &str, field: &'static str, old: &str, new: &str) -> Result<()> {
    if old == new {
        Ok(())
    } else {
        Err(crate::InvalidInput::new(
            field,
            "immutable",
            format!("a {what}'s {field} cannot change (it names containers, volumes and networks)"),
        )
        .into())
    }
}

#[cfg(test)]
mod tests;
