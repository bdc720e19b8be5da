//! The storage interface every backend implements: a key-value store with one global, monotonically increasing
//! revision (etcd's model). A Kubernetes object's resourceVersion is the revision of its last write.
//!
//! Keys look like `/registry/<group>/<resource>/<namespace>/<name>` (cluster-scoped: no namespace segment).
//! Values are opaque bytes (the apiserver stores JSON). Backends: `embedded` (single file under the data dir)
//! and `etcd` (etcd v3). A watch cache sits in front of either so many watchers cost one backend watch.
//!
//! # Using it from the server
//!
//! ```no_run
//! # async fn demo() -> Result<(), rkube_apiserver::storage::StorageError> {
//! use rkube_apiserver::storage::{self, CompactionPolicy, Store, WatchCache};
//! // Single machine: one file under the data dir.
//! let backend = storage::open_embedded("/var/lib/rkube/apiserver/state.redb")?;
//! // Or several apiservers sharing one etcd (all keys live under the prefix):
//! # let _ = || async {
//! let backend = storage::open_etcd(&["http://127.0.0.1:2379".to_string()], "/rkube").await?;
//! # Ok::<_, storage::StorageError>(()) };
//! let store: std::sync::Arc<dyn Store> = WatchCache::new(backend).await?;
//! let _compactor = storage::compaction::spawn(store.clone(), CompactionPolicy::default());
//! # Ok(()) }
//! ```
//!
//! Errors map to HTTP as: `NotFound` 404, `AlreadyExists` 409, `Conflict` 409, `Compacted` 410 Gone,
//! `FutureRevision` 504 (Kubernetes' "Too large resource version"), `Backend` 500.

pub mod compaction;
pub mod embedded;
pub mod etcd;
pub mod wal;
pub mod watch_cache;

pub use compaction::CompactionPolicy;
pub use embedded::EmbeddedStore;
pub use etcd::EtcdStore;
pub use watch_cache::WatchCache;

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::Stream;

/// A global store revision. 0 means "none yet".
pub type Revision = i64;

/// One stored key with its revisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The full key (`/registry/core/pods/default/web`).
    pub key: String,
    /// The stored bytes (an object's JSON, or protobuf for the etcd backend's Kubernetes encoding).
    pub value: Bytes,
    /// Revision at which the key was created (stays the same across updates).
    pub create_revision: Revision,
    /// Revision of the last write to the key: this is the object's resourceVersion.
    pub mod_revision: Revision,
}

/// A page of a list, read at one consistent revision.
#[derive(Debug, Clone)]
pub struct ListResult {
    /// The keys of the page, in key order.
    pub items: Vec<KeyValue>,
    /// The revision the list was read at (the list's resourceVersion).
    pub revision: Revision,
    /// True if `limit` cut the list; continue after the last item's key at the same revision.
    pub more: bool,
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// Only keys starting with this prefix.
    pub prefix: String,
    /// Only keys strictly greater than this (for continue tokens).
    pub start_after: Option<String>,
    /// At most this many items.
    pub limit: Option<usize>,
    /// Read at this past revision (error `Compacted` if it is gone); `None` reads the latest.
    pub revision: Option<Revision>,
}

/// A change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// Key created (`prev` is None) or updated.
    Put {
        /// The key as written.
        kv: KeyValue,
        /// The key's value before the write, None for a create.
        prev: Option<KeyValue>,
    },
    /// Key deleted at `revision`; `prev` is the value it had.
    Delete {
        /// The key's last value.
        prev: KeyValue,
        /// The revision of the delete.
        revision: Revision,
    },
    /// No change for a while; the watcher has seen everything up to this revision.
    Progress {
        /// The revision the watcher is up to.
        revision: Revision,
    },
}

impl WatchEvent {
    /// The revision the event happened at (a put's mod_revision, a delete's or progress's revision).
    pub fn revision(&self) -> Revision {
        match self {
            WatchEvent::Put { kv, .. } => kv.mod_revision,
            WatchEvent::Delete { revision, .. } | WatchEvent::Progress { revision } => *revision,
        }
    }
}

/// The events of one watch, in revision order; an error ends it.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent, StorageError>> + Send>>;

/// Why a store operation failed; the API maps each to its Status (`status::ApiError::from_storage`).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A create of a key that exists.
    #[error("key {key} already exists")]
    AlreadyExists {
        /// The key.
        key: String,
    },
    /// A read, update or delete of a key that does not exist.
    #[error("key {key} not found")]
    NotFound {
        /// The key.
        key: String,
    },
    /// Optimistic concurrency: the caller's expected revision is not the key's current one.
    #[error("key {key} was modified: expected revision {expected}, current {current}")]
    Conflict {
        /// The key.
        key: String,
        /// The mod_revision the caller based its write on.
        expected: Revision,
        /// The key's mod_revision now.
        current: Revision,
    },
    /// The requested revision was compacted away (the API answers 410 Gone).
    #[error("revision {requested} has been compacted (oldest available is {compacted})")]
    Compacted {
        /// The revision asked for.
        requested: Revision,
        /// The revision history was compacted up to.
        compacted: Revision,
    },
    /// The requested revision is in the future.
    #[error("revision {requested} is newer than the store's current revision {current}")]
    FutureRevision {
        /// The revision asked for.
        requested: Revision,
        /// The store's latest revision.
        current: Revision,
    },
    /// The backend itself failed (a redb transaction, an etcd RPC).
    #[error("storage backend {backend}: {message}")]
    Backend {
        /// Which backend (`redb`, `etcd`...).
        backend: &'static str,
        /// What it said.
        message: String,
    },
}

/// The interface every backend implements. All writes are durable when they return Ok.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// The latest revision.
    async fn current_revision(&self) -> Result<Revision, StorageError>;
    /// The latest value of `key`, None when absent.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StorageError>;
    /// One page of keys under `opts.prefix`, read at one revision.
    async fn list(&self, opts: ListOptions) -> Result<ListResult, StorageError>;
    /// Creates `key`; `AlreadyExists` if present. Returns the new KeyValue.
    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue, StorageError>;
    /// Replaces `key` only if its mod_revision is `expected` (`Conflict` otherwise, `NotFound` if absent).
    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<KeyValue, StorageError>;
    /// Deletes `key` (only if its mod_revision is `expected`, when given). Returns the deleted value and the
    /// revision of the delete.
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(KeyValue, Revision), StorageError>;
    /// Every change under `prefix` with revision > `after`, in revision order, then live changes.
    /// `Compacted` if `after` is older than the compaction point.
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StorageError>;
    /// Forgets history at and below `revision` (deleted keys and old versions); reads below it fail `Compacted`.
    async fn compact(&self, revision: Revision) -> Result<(), StorageError>;
}

/// Opens (or creates) the embedded store in the file `path` (e.g. `<data-dir>/state.redb`).
pub fn open_embedded(path: impl AsRef<Path>) -> Result<Arc<dyn Store>, StorageError> {
    Ok(Arc::new(EmbeddedStore::open(path)?))
}

/// Connects to etcd at `endpoints` (`http://host:port`), keeping every key under `prefix` (e.g. `/rkube`).
pub async fn open_etcd(endpoints: &[String], prefix: &str) -> Result<Arc<dyn Store>, StorageError> {
    Ok(Arc::new(EtcdStore::connect(endpoints, prefix).await?))
}
