//! The embedded backend: one redb file under the data dir, for single-machine clusters (the default).
//!
//! Why redb rather than SQLite-as-kine: it is pure Rust (no C toolchain, `forbid(unsafe_code)` stays meaningful
//! for our own code), a single file, ACID with copy-on-write B-trees whose readers see a snapshot without
//! blocking the writer, and its page cache is bounded (so RSS does not grow with the store). We need ordered
//! byte keys and range scans, nothing relational, so SQL buys nothing.
//!
//! Layout (all keys byte strings, revisions big-endian so they sort numerically):
//! - `latest`:  key → `[create_rev][mod_rev]`, the live keys (gets and lists at the current revision).
//! - `history`: `key \0 rev` → `[1][create_rev][value]` for a put or `[0]` for a delete; every version not yet
//!   compacted (lists at a past revision, and the `prev` of watch events).
//! - `log`:     rev → key, the revision stream watches replay.
//! - `meta`:    `rev` (current revision) and `compacted` (oldest readable revision).
//!
//! Writes go through one writer thread that takes every request queued while the previous commit was syncing
//! and commits them in one durable transaction (group commit): each caller is answered only after the fsync,
//! so an acknowledged write survives kill -9, yet 64 concurrent writers share one fsync instead of queuing for
//! 64. A failed precondition (exists, conflict) is answered without using a revision, as in etcd.
//!
//! This module must not know about Kubernetes objects: values are opaque bytes.

use std::collections::BTreeSet;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;

use bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::{oneshot, watch};

use super::wal::{self, Record, Wal};
use super::{KeyValue, ListOptions, ListResult, Revision, StorageError, Store, WatchEvent, WatchStream};

const LATEST: TableDefinition<&[u8], &[u8]> = TableDefinition::new("latest");
const HISTORY: TableDefinition<&[u8], &[u8]> = TableDefinition::new("history");
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

const META_REV: &str = "rev";
const META_COMPACTED: &str = "compacted";

/// Batches committed with only the write-ahead log flushed between two durable redb commits.
///
/// Measured, not guessed (alternating A/B runs of `bench/apiserver.sh`'s client, 64 clients): redb's non-durable
/// commits grow dearer the longer it has been since a durable one, so fewer checkpoints is not cheaper. p99 at
/// 16: 7.6-10.5 ms; at 64: 8.8-17.9 ms; at 256: 16-28 ms; a size-based checkpoint (one per 16 MiB of log):
/// 18-20 ms. 4 and 8 measured like 16, within the noise.
const CHECKPOINT_EVERY: u32 = 16;
/// Most requests one transaction commits together.
const MAX_BATCH: usize = 1024;
/// Most revisions one compaction transaction forgets; queued writes are served between chunks.
const COMPACT_CHUNK: u64 = 1_000;
/// Most log entries a watch reads per read transaction.
const WATCH_CHUNK: usize = 512;
/// redb's page cache: bounds memory use whatever the store's size (the OS page cache does the rest, outside RSS).
const CACHE_BYTES: usize = 16 << 20;

const BACKEND: &str = "embedded";

fn backend_err(what: &str, e: impl std::fmt::Display) -> StorageError {
    StorageError::Backend { backend: BACKEND, message: format!("{what}: {e}") }
}

fn u(rev: Revision) -> u64 {
    u64::try_from(rev).unwrap_or(0)
}

fn i(rev: u64) -> Revision {
    Revision::try_from(rev).unwrap_or(Revision::MAX)
}

fn hist_key(key: &[u8], rev: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(key.len() + 9);
    v.extend_from_slice(key);
    v.push(0);
    v.extend_from_slice(&rev.to_be_bytes());
    v
}

fn split_hist_key(k: &[u8]) -> Option<(&[u8], u64)> {
    if k.len() < 9 {
        return None;
    }
    let (head, rev) = k.split_at(k.len() - 8);
    let (key, nul) = head.split_at(head.len() - 1);
    if nul != [0] {
        return None;
    }
    Some((key, u64::from_be_bytes(rev.try_into().ok()?)))
}

/// The smallest byte string greater than every string starting with `prefix` (None: no upper bound).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut v = prefix.to_vec();
    while let Some(last) = v.pop() {
        if last < 0xff {
            v.push(last + 1);
            return Some(v);
        }
    }
    None
}

fn enc_latest(create: u64, modr: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&create.to_be_bytes());
    b[8..].copy_from_slice(&modr.to_be_bytes());
    b
}

fn dec_latest(b: &[u8]) -> Option<(u64, u64)> {
    if b.len() != 16 {
        return None;
    }
    Some((u64::from_be_bytes(b[..8].try_into().ok()?), u64::from_be_bytes(b[8..].try_into().ok()?)))
}

fn enc_put(create: u64, value: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(value.len() + 9);
    v.push(1);
    v.extend_from_slice(&create.to_be_bytes());
    v.extend_from_slice(value);
    v
}

/// A decoded history record: `Some((create_rev, value))` for a put, `None` for a delete.
fn dec_record(b: &[u8]) -> Result<Option<(u64, &[u8])>, StorageError> {
    match b.first() {
        Some(0) => Ok(None),
        Some(1) if b.len() >= 9 => {
            let create = u64::from_be_bytes(b[1..9].try_into().map_err(|e| backend_err("decode record", e))?);
            Ok(Some((create, &b[9..])))
        }
        _ => Err(backend_err("decode record", "corrupt history record")),
    }
}

fn key_string(k: &[u8]) -> Result<String, StorageError> {
    String::from_utf8(k.to_vec()).map_err(|e| backend_err("decode key", e))
}

fn check_key(key: &str) -> Result<(), StorageError> {
    if key.is_empty() || key.as_bytes().contains(&0) {
        return Err(StorageError::Backend { backend: BACKEND, message: format!("invalid key {key:?}: empty or contains NUL") });
    }
    Ok(())
}

/// A stored version as a `KeyValue`.
fn key_value(key: &[u8], create: u64, modr: u64, value: Bytes) -> Result<KeyValue, StorageError> {
    Ok(KeyValue { key: key_string(key)?, value, create_revision: i(create), mod_revision: i(modr) })
}

/// The version of `key` written at `rev`: `Some((create_rev, value))` for a put, `None` for a delete; an error if
/// history has no such version.
fn version_at<T: ReadableTable<&'static [u8], &'static [u8]>>(
    history: &T,
    key: &[u8],
    rev: u64,
) -> Result<Option<(u64, Bytes)>, StorageError> {
    let rec = history
        .get(hist_key(key, rev).as_slice())
        .map_err(|e| backend_err("read history", e))?
        .ok_or_else(|| backend_err("read history", format!("missing version {rev} of {}", String::from_utf8_lossy(key))))?;
    Ok(dec_record(rec.value())?.map(|(create, value)| (create, Bytes::copy_from_slice(value))))
}

/// The live version of `key`, last written at `modr` (which `latest` says is a put).
fn live_version<T: ReadableTable<&'static [u8], &'static [u8]>>(
    history: &T,
    key: &[u8],
    modr: u64,
) -> Result<(u64, Bytes), StorageError> {
    version_at(history, key, modr)?.ok_or_else(|| {
        backend_err("read history", format!("latest version {modr} of {} is a delete", String::from_utf8_lossy(key)))
    })
}

/// Range bounds from `lo` (inclusive) to `hi` (exclusive; None: no upper bound), or None when that is empty.
fn scan<'a>(lo: &'a [u8], hi: Option<&'a [u8]>) -> Option<(Bound<&'a [u8]>, Bound<&'a [u8]>)> {
    match hi {
        Some(hi) if lo >= hi => None,
        Some(hi) => Some((Bound::Included(lo), Bound::Excluded(hi))),
        None => Some((Bound::Included(lo), Bound::Unbounded)),
    }
}

/// (current revision, compacted revision) from the `meta` table.
fn meta_revisions<T: ReadableTable<&'static str, u64>>(meta: &T) -> Result<(u64, u64), StorageError> {
    let rev = meta.get(META_REV).map_err(|e| backend_err("read meta", e))?.map(|g| g.value()).unwrap_or(0);
    let comp = meta.get(META_COMPACTED).map_err(|e| backend_err("read meta", e))?.map(|g| g.value()).unwrap_or(0);
    Ok((rev, comp))
}

/// The four tables, opened for writing in one transaction.
struct Tables<'t> {
    latest: WTable<'t>,
    history: WTable<'t>,
    log: redb::Table<'t, u64, &'static [u8]>,
    meta: redb::Table<'t, &'static str, u64>,
}

impl<'t> Tables<'t> {
    fn open(txn: &'t redb::WriteTransaction) -> Result<Tables<'t>, StorageError> {
        Ok(Tables {
            latest: txn.open_table(LATEST).map_err(|e| backend_err("open latest", e))?,
            history: txn.open_table(HISTORY).map_err(|e| backend_err("open history", e))?,
            log: txn.open_table(LOG).map_err(|e| backend_err("open log", e))?,
            meta: txn.open_table(META).map_err(|e| backend_err("open meta", e))?,
        })
    }
}

type Reply<T> = oneshot::Sender<Result<T, StorageError>>;

enum Op {
    Create { key: String, value: Bytes, reply: Reply<KeyValue> },
    Update { key: String, value: Bytes, expected: Revision, reply: Reply<KeyValue> },
    Delete { key: String, expected: Option<Revision>, reply: Reply<(KeyValue, Revision)> },
    Compact { revision: Revision, reply: Reply<()> },
}

struct Shared {
    db: Database,
    path: PathBuf,
    /// The latest committed revision; watches wait on changes to it.
    committed: watch::Sender<Revision>,
}

/// The embedded store. Cheap to share behind an `Arc`; dropping the last handle stops the writer thread.
pub struct EmbeddedStore {
    shared: Arc<Shared>,
    ops: mpsc::Sender<Op>,
}

impl EmbeddedStore {
    /// Opens (or creates) the store in the file `path`, creating its parent directory.
    pub fn open(path: impl AsRef<Path>) -> Result<EmbeddedStore, StorageError> {
        let path = path.as_ref().to_path_buf();
        // every Secret is in these files: the directory 0700, the store and its log 0600, checked at each open
        // (looser modes are fixed with a warning; another owner is refused)
        if let Some(parent) = path.parent() {
            if !parent.as_os_str().is_empty() {
                crate::private_files::ensure_dir(parent).map_err(|e| backend_err("check the store's directory", e))?;
            }
        }
        crate::private_files::check_file(&wal_path(&path)).map_err(|e| backend_err("check the store's log", e))?;
        let file = crate::private_files::open(&path).map_err(|e| backend_err("open the store", e))?;
        let backend = redb::backends::FileBackend::new(file).map_err(|e| backend_err(&format!("open {}", path.display()), e))?;
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create_with_backend(backend)
            .map_err(|e| backend_err(&format!("open {}", path.display()), e))?;
        let (rev, compacted) = {
            let txn = db.begin_write().map_err(|e| backend_err("begin write", e))?;
            // Opening the tables creates them in a new file.
            let vals = meta_revisions(&Tables::open(&txn)?.meta)?;
            txn.commit().map_err(|e| backend_err("commit", e))?;
            vals
        };
        let wal_path = wal_path(&path);
        let (mut wal, records) =
            Wal::open(&wal_path).map_err(|e| backend_err(&format!("open {}", wal_path.display()), e))?;
        let rev = replay(&db, rev, &records)?;
        wal.reset().map_err(|e| backend_err(&format!("empty {}", wal_path.display()), e))?;
        tracing::info!(path = %path.display(), revision = rev, compacted, "opened embedded store");
        let (committed, _) = watch::channel(i(rev));
        let shared = Arc::new(Shared { db, path, committed });
        let (ops, rx) = mpsc::channel();
        let writer = Writer {
            shared: shared.clone(),
            rev,
            compacted,
            compact_waiters: Vec::new(),
            wal,
            since_checkpoint: 0,
            poisoned: None,
        };
        std::thread::Builder::new()
            .name("rkube-store-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| backend_err("spawn writer thread", e))?;
        Ok(EmbeddedStore { shared, ops })
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    async fn send<T>(&self, make: impl FnOnce(Reply<T>) -> Op) -> Result<T, StorageError> {
        let (tx, rx) = oneshot::channel();
        self.ops.send(make(tx)).map_err(|_| backend_err("submit write", "writer thread has stopped"))?;
        rx.await.map_err(|_| backend_err("await write", "writer thread dropped the request"))?
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Shared) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || f(&shared)).await.map_err(|e| backend_err("read task", e))?
    }
}

/// The write-ahead log next to the store file: `state.redb` → `state.redb-wal`.
fn wal_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push("-wal");
    PathBuf::from(p)
}

/// Applies the log's records newer than `rev` (redb's durable revision) in one durable commit; returns the new
/// revision. Stops at a gap: what follows was never acknowledged.
fn replay(db: &Database, rev: u64, records: &[Record]) -> Result<u64, StorageError> {
    let newer: Vec<&Record> = records.iter().filter(|r| r.rev() > rev).collect();
    if newer.is_empty() {
        return Ok(rev);
    }
    let txn = db.begin_write().map_err(|e| backend_err("begin write", e))?;
    let mut cur = rev;
    {
        let mut t = Tables::open(&txn)?;
        for r in newer {
            if r.rev() != cur + 1 {
                tracing::warn!(expected = cur + 1, found = r.rev(), "write-ahead log has a gap; ignoring the rest");
                break;
            }
            match r {
                Record::Put { rev, create, key, value } => record(&mut t, key, *rev, *create, value)?,
                Record::Delete { rev, key } => record_delete(&mut t, key, *rev)?,
            }
            cur = r.rev();
        }
        t.meta.insert(META_REV, cur).map_err(|e| backend_err("write meta", e))?;
    }
    txn.commit().map_err(|e| backend_err("commit replay", e))?;
    tracing::info!(from = rev, to = cur, "replayed the embedded store's write-ahead log");
    Ok(cur)
}

/// Reads the `meta` table in a read transaction: (current revision, compacted revision).
fn read_meta(txn: &redb::ReadTransaction) -> Result<(u64, u64), StorageError> {
    meta_revisions(&txn.open_table(META).map_err(|e| backend_err("open meta", e))?)
}

fn get_in(txn: &redb::ReadTransaction, key: &str) -> Result<Option<KeyValue>, StorageError> {
    let latest = txn.open_table(LATEST).map_err(|e| backend_err("open latest", e))?;
    let Some(ptr) = latest.get(key.as_bytes()).map_err(|e| backend_err("read latest", e))? else {
        return Ok(None);
    };
    let (create, modr) = dec_latest(ptr.value()).ok_or_else(|| backend_err("decode latest", "bad length"))?;
    let history = txn.open_table(HISTORY).map_err(|e| backend_err("open history", e))?;
    let (_, value) = live_version(&history, key.as_bytes(), modr)?;
    key_value(key.as_bytes(), create, modr, value).map(Some)
}

/// The version of `key` before revision `before` (None if absent, deleted or compacted away).
fn prev_version<T: ReadableTable<&'static [u8], &'static [u8]>>(
    history: &T,
    key: &[u8],
    before: u64,
) -> Result<Option<KeyValue>, StorageError> {
    let lo = hist_key(key, 0);
    let hi = hist_key(key, before);
    let mut range = history.range(lo.as_slice()..hi.as_slice()).map_err(|e| backend_err("read history", e))?;
    let Some(entry) = range.next_back() else { return Ok(None) };
    let (k, v) = entry.map_err(|e| backend_err("read history", e))?;
    let (_, rev) = split_hist_key(k.value()).ok_or_else(|| backend_err("decode history key", "bad key"))?;
    dec_record(v.value())?.map(|(create, value)| key_value(key, create, rev, Bytes::copy_from_slice(value))).transpose()
}

fn list_in(txn: &redb::ReadTransaction, opts: &ListOptions) -> Result<ListResult, StorageError> {
    let (cur, compacted) = read_meta(txn)?;
    let at = match opts.revision {
        None | Some(0) => cur,
        Some(r) if r < i(compacted) => {
            return Err(StorageError::Compacted { requested: r, compacted: i(compacted) });
        }
        Some(r) if r > i(cur) => return Err(StorageError::FutureRevision { requested: r, current: i(cur) }),
        Some(r) => u(r),
    };
    let limit = opts.limit.filter(|&l| l > 0).unwrap_or(usize::MAX);
    let prefix = opts.prefix.as_bytes();
    let hi = prefix_end(prefix);
    let mut items = Vec::new();
    let mut more = false;
    if at == cur {
        let mut lo = prefix.to_vec();
        if let Some(after) = &opts.start_after {
            let mut a = after.as_bytes().to_vec();
            a.push(0);
            if a > lo {
                lo = a;
            }
        }
        let latest = txn.open_table(LATEST).map_err(|e| backend_err("open latest", e))?;
        let history = txn.open_table(HISTORY).map_err(|e| backend_err("open history", e))?;
        if let Some(bounds) = scan(&lo, hi.as_deref()) {
            for entry in latest.range::<&[u8]>(bounds).map_err(|e| backend_err("list latest", e))? {
                let (k, v) = entry.map_err(|e| backend_err("list latest", e))?;
                if items.len() == limit {
                    more = true;
                    break;
                }
                let (create, modr) = dec_latest(v.value()).ok_or_else(|| backend_err("decode latest", "bad length"))?;
                let Some((_, value)) = version_at(&history, k.value(), modr)? else { continue };
                items.push(key_value(k.value(), create, modr, value)?);
            }
        }
    } else {
        // A past revision: walk every retained version, keeping per key the newest one at or below `at`.
        let mut lo = prefix.to_vec();
        if let Some(after) = &opts.start_after {
            // Past every version of `after` itself: its history keys are `after \0 <8 bytes>`.
            let mut a = after.as_bytes().to_vec();
            a.push(0);
            a.extend_from_slice(&[0xff; 9]);
            if a > lo {
                lo = a;
            }
        }
        let history = txn.open_table(HISTORY).map_err(|e| backend_err("open history", e))?;
        if let Some(bounds) = scan(&lo, hi.as_deref()) {
            let range = history.range::<&[u8]>(bounds);
            let mut current: Option<(Vec<u8>, Option<KeyValue>)> = None;
            let flush = |cur: Option<(Vec<u8>, Option<KeyValue>)>, items: &mut Vec<KeyValue>| {
                if let Some((_, Some(kv))) = cur {
                    items.push(kv);
                }
            };
            for entry in range.map_err(|e| backend_err("list history", e))? {
                let (k, v) = entry.map_err(|e| backend_err("list history", e))?;
                let (key, rev) = split_hist_key(k.value()).ok_or_else(|| backend_err("decode history key", "bad key"))?;
                if current.as_ref().map(|(ck, _)| ck.as_slice() != key).unwrap_or(true) {
                    flush(current.take(), &mut items);
                    if items.len() > limit {
                        break;
                    }
                    current = Some((key.to_vec(), None));
                }
                if rev <= at {
                    let kv = dec_record(v.value())?
                        .map(|(create, value)| key_value(key, create, rev, Bytes::copy_from_slice(value)))
                        .transpose()?;
                    if let Some(c) = current.as_mut() {
                        c.1 = kv;
                    }
                }
            }
            if items.len() <= limit {
                flush(current.take(), &mut items);
            }
        }
        if items.len() > limit {
            items.truncate(limit);
            more = true;
        }
    }
    Ok(ListResult { items, revision: i(at), more })
}

/// Reads up to `WATCH_CHUNK` events after `pos` under `prefix`; returns them and the last revision scanned.
fn read_events(shared: &Shared, prefix: &str, pos: u64) -> Result<(Vec<WatchEvent>, u64), StorageError> {
    let txn = shared.db.begin_read().map_err(|e| backend_err("begin read", e))?;
    let (_, compacted) = read_meta(&txn)?;
    if pos < compacted {
        return Err(StorageError::Compacted { requested: i(pos), compacted: i(compacted) });
    }
    let log = txn.open_table(LOG).map_err(|e| backend_err("open log", e))?;
    let history = txn.open_table(HISTORY).map_err(|e| backend_err("open history", e))?;
    let mut events = Vec::new();
    let mut last = pos;
    for entry in log.range(pos + 1..).map_err(|e| backend_err("read log", e))?.take(WATCH_CHUNK) {
        let (rev, key) = entry.map_err(|e| backend_err("read log", e))?;
        let rev = rev.value();
        last = rev;
        let key = key.value();
        if !key.starts_with(prefix.as_bytes()) {
            continue;
        }
        let prev = prev_version(&history, key, rev)?;
        match version_at(&history, key, rev)? {
            Some((create, value)) => events.push(WatchEvent::Put { kv: key_value(key, create, rev, value)?, prev }),
            None => match prev {
                Some(prev) => events.push(WatchEvent::Delete { prev, revision: i(rev) }),
                None => return Err(backend_err("read history", format!("delete at {rev} has no previous version"))),
            },
        }
    }
    Ok((events, last))
}

#[async_trait::async_trait]
impl Store for EmbeddedStore {
    async fn current_revision(&self) -> Result<Revision, StorageError> {
        Ok(*self.shared.committed.borrow())
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StorageError> {
        // A point read is two B-tree lookups, mostly from redb's cache: cheaper inline than a hop to the blocking
        // pool (which also spreads allocations over more malloc arenas, raising RSS).
        let txn = self.shared.db.begin_read().map_err(|e| backend_err("begin read", e))?;
        get_in(&txn, key)
    }

    async fn list(&self, opts: ListOptions) -> Result<ListResult, StorageError> {
        self.blocking(move |s| {
            let txn = s.db.begin_read().map_err(|e| backend_err("begin read", e))?;
            list_in(&txn, &opts)
        })
        .await
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue, StorageError> {
        check_key(key)?;
        self.send(|reply| Op::Create { key: key.to_string(), value, reply }).await
    }

    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<KeyValue, StorageError> {
        check_key(key)?;
        self.send(|reply| Op::Update { key: key.to_string(), value, expected, reply }).await
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(KeyValue, Revision), StorageError> {
        check_key(key)?;
        self.send(|reply| Op::Delete { key: key.to_string(), expected, reply }).await
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StorageError> {
        let after = after.max(0);
        let compacted = self
            .blocking(|s| {
                let txn = s.db.begin_read().map_err(|e| backend_err("begin read", e))?;
                read_meta(&txn).map(|(_, c)| c)
            })
            .await?;
        if after < i(compacted) {
            return Err(StorageError::Compacted { requested: after, compacted: i(compacted) });
        }
        let rx = self.shared.committed.subscribe();
        struct St {
            shared: Arc<Shared>,
            rx: watch::Receiver<Revision>,
            prefix: String,
            pos: u64,
            pending: std::collections::VecDeque<WatchEvent>,
            done: bool,
        }
        let st = St {
            shared: self.shared.clone(),
            rx,
            prefix: prefix.to_string(),
            pos: u(after),
            pending: Default::default(),
            done: false,
        };
        let stream = futures::stream::unfold(st, |mut st| async move {
            loop {
                if st.done {
                    return None;
                }
                if let Some(ev) = st.pending.pop_front() {
                    return Some((Ok(ev), st));
                }
                let committed = u(*st.rx.borrow_and_update());
                if committed > st.pos {
                    let (shared, prefix, pos) = (st.shared.clone(), st.prefix.clone(), st.pos);
                    let res = tokio::task::spawn_blocking(move || read_events(&shared, &prefix, pos))
                        .await
                        .map_err(|e| backend_err("watch task", e))
                        .and_then(|r| r);
                    match res {
                        Ok((events, last)) => {
                            st.pos = last.max(st.pos);
                            st.pending.extend(events);
                            continue;
                        }
                        Err(e) => {
                            st.done = true;
                            return Some((Err(e), st));
                        }
                    }
                }
                if st.rx.changed().await.is_err() {
                    return None;
                }
            }
        });
        Ok(Box::pin(stream))
    }

    async fn compact(&self, revision: Revision) -> Result<(), StorageError> {
        self.send(|reply| Op::Compact { revision, reply }).await
    }
}

/// Owns the write side of the database; runs on its own thread.
struct Writer {
    shared: Arc<Shared>,
    rev: u64,
    compacted: u64,
    /// Compactions asked for and not yet done: (target revision, reply).
    compact_waiters: Vec<(u64, Reply<()>)>,
    wal: Wal,
    /// Batches committed to redb without a flush since the last durable commit.
    since_checkpoint: u32,
    /// Set when the log and redb may disagree in this process: every later write fails until a reopen replays.
    poisoned: Option<String>,
}

/// A reply waiting for its transaction to commit.
enum Pending {
    Kv(Reply<KeyValue>, Result<KeyValue, StorageError>),
    Del(Reply<(KeyValue, Revision)>, Result<(KeyValue, Revision), StorageError>),
}

/// `e` again, for each of the callers a failed commit answers.
fn copy_err(e: &StorageError) -> StorageError {
    StorageError::Backend { backend: BACKEND, message: e.to_string() }
}

/// Sends `res`, or when the commit failed, the failure (a precondition's own error stays as it was).
fn answer<T>(reply: Reply<T>, res: Result<T, StorageError>, failed: Option<&StorageError>) {
    let _ = reply.send(match failed {
        Some(e) => res.and(Err(copy_err(e))),
        None => res,
    });
}

impl Pending {
    /// Answers the caller once its transaction committed (`failed` None) or failed.
    fn finish(self, failed: Option<&StorageError>) {
        match self {
            Pending::Kv(r, res) => answer(r, res, failed),
            Pending::Del(r, res) => answer(r, res, failed),
        }
    }
}

impl Op {
    /// Answers the request with `e` without running it.
    fn fail(self, e: &StorageError) {
        match self {
            Op::Create { reply, .. } | Op::Update { reply, .. } => answer(reply, Err(copy_err(e)), None),
            Op::Delete { reply, .. } => answer(reply, Err(copy_err(e)), None),
            Op::Compact { reply, .. } => answer(reply, Err(copy_err(e)), None),
        }
    }
}

type WTable<'t> = redb::Table<'t, &'static [u8], &'static [u8]>;

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Op>) {
        loop {
            // While a compaction is unfinished, serve queued writes between its chunks rather than waiting.
            let first = if self.compacting() {
                match rx.try_recv() {
                    Ok(op) => Some(op),
                    Err(mpsc::TryRecvError::Empty) => None,
                    Err(mpsc::TryRecvError::Disconnected) => break,
                }
            } else {
                match rx.recv() {
                    Ok(op) => Some(op),
                    Err(_) => break,
                }
            };
            if let Some(first) = first {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(op) => batch.push(op),
                        Err(_) => break,
                    }
                }
                let mut writes = Vec::with_capacity(batch.len());
                for op in batch {
                    match op {
                        Op::Compact { revision, reply } => self.request_compaction(revision, reply),
                        other => writes.push(other),
                    }
                }
                if !writes.is_empty() {
                    self.commit_writes(writes);
                }
            }
            if self.compacting() {
                self.compact_chunk();
            }
        }
        tracing::debug!(path = %self.shared.path.display(), "embedded store writer stopped");
    }

    fn compacting(&self) -> bool {
        !self.compact_waiters.is_empty()
    }

    /// Queues a compaction to `revision`, answered once the chunks up to it are committed.
    fn request_compaction(&mut self, revision: Revision, reply: Reply<()>) {
        let target = u(revision);
        if target > self.rev {
            let _ = reply.send(Err(StorageError::FutureRevision { requested: revision, current: i(self.rev) }));
        } else if target <= self.compacted {
            let _ = reply.send(Ok(()));
        } else {
            self.compact_waiters.push((target, reply));
        }
    }

    /// Compacts one chunk towards the highest requested revision and answers the requests it completes.
    fn compact_chunk(&mut self) {
        let target = self.compact_waiters.iter().map(|(t, _)| *t).max().unwrap_or(self.compacted);
        match self.compact_step(target) {
            Ok(()) => {
                let done = self.compacted;
                let (finished, waiting) = std::mem::take(&mut self.compact_waiters).into_iter().partition(|(t, _)| *t <= done);
                self.compact_waiters = waiting;
                let finished: Vec<(u64, Reply<()>)> = finished;
                for (_, reply) in finished {
                    let _ = reply.send(Ok(()));
                }
                if !self.compacting() {
                    tracing::debug!(path = %self.shared.path.display(), compacted = done, "compacted embedded store");
                }
            }
            Err(e) => {
                tracing::error!(path = %self.shared.path.display(), error = %e, "embedded store compaction failed");
                for (_, reply) in self.compact_waiters.drain(..) {
                    let _ = reply.send(Err(StorageError::Backend { backend: BACKEND, message: e.to_string() }));
                }
            }
        }
    }

    fn commit_writes(&mut self, ops: Vec<Op>) {
        if let Some(why) = &self.poisoned {
            let e = backend_err("write", format!("store needs a reopen after an earlier failure: {why}"));
            for op in ops {
                op.fail(&e);
            }
            return;
        }
        let start_rev = self.rev;
        let wal_start = self.wal.len();
        let mut pending = Vec::with_capacity(ops.len());
        let mut checkpoint = false;
        let result = (|| -> Result<(), StorageError> {
            let mut txn = self.shared.db.begin_write().map_err(|e| backend_err("begin write", e))?;
            let mut frames = Vec::new();
            {
                let mut t = Tables::open(&txn)?;
                let mut rev = self.rev;
                for op in ops {
                    match op {
                        Op::Create { key, value, reply } => {
                            let res = apply_create(&mut t, &mut rev, &key, &value)?;
                            if let Ok(kv) = &res {
                                wal::encode_put(&mut frames, u(kv.mod_revision), u(kv.create_revision), key.as_bytes(), &value);
                            }
                            pending.push(Pending::Kv(reply, res));
                        }
                        Op::Update { key, value, expected, reply } => {
                            let res = apply_update(&mut t, &mut rev, &key, &value, expected)?;
                            if let Ok(kv) = &res {
                                wal::encode_put(&mut frames, u(kv.mod_revision), u(kv.create_revision), key.as_bytes(), &value);
                            }
                            pending.push(Pending::Kv(reply, res));
                        }
                        Op::Delete { key, expected, reply } => {
                            let res = apply_delete(&mut t, &mut rev, &key, expected)?;
                            if let Ok((_, r)) = &res {
                                wal::encode_delete(&mut frames, u(*r), key.as_bytes());
                            }
                            pending.push(Pending::Del(reply, res));
                        }
                        compact @ Op::Compact { .. } => compact.fail(&backend_err("compact", "misrouted compaction")),
                    }
                }
                t.meta.insert(META_REV, rev).map_err(|e| backend_err("write meta", e))?;
                self.rev = rev;
            }
            if frames.is_empty() {
                // Nothing changed (every precondition failed): nothing to make durable.
                txn.abort().map_err(|e| backend_err("abort", e))?;
                return Ok(());
            }
            // Durable before visible: the log is flushed before redb publishes the batch to readers. Every
            // CHECKPOINT_EVERY batches redb commits durably itself and the log is emptied instead.
            checkpoint = self.since_checkpoint + 1 >= CHECKPOINT_EVERY;
            if !checkpoint {
                self.wal.append(&frames).map_err(|e| backend_err(&format!("append {}", self.wal.path().display()), e))?;
                txn.set_durability(redb::Durability::None).map_err(|e| backend_err("set durability", e))?;
            }
            txn.commit().map_err(|e| backend_err("commit", e))?;
            Ok(())
        })();
        match result {
            Ok(()) => {
                if checkpoint {
                    self.after_durable_commit();
                } else if self.rev != start_rev {
                    self.since_checkpoint += 1;
                }
                // Publish the revision before answering, so a caller sees at least its own write's revision.
                if self.rev != start_rev {
                    self.shared.committed.send_replace(i(self.rev));
                }
                for p in pending {
                    p.finish(None);
                }
            }
            Err(e) => {
                tracing::error!(path = %self.shared.path.display(), error = %e, "embedded store commit failed");
                self.rev = start_rev;
                // The log may hold all or part of a batch redb did not take (a failed flush still may have
                // written it): cut it off, or a replay would apply writes nobody was told succeeded.
                if let Err(te) = self.wal.truncate_to(wal_start) {
                    self.poisoned = Some(format!("{e}; then truncating the log: {te}"));
                }
                for p in pending {
                    p.finish(Some(&e));
                }
            }
        }
    }

    /// A durable redb commit holds everything the log held: empty it.
    fn after_durable_commit(&mut self) {
        self.since_checkpoint = 0;
        if let Err(e) = self.wal.reset() {
            // Harmless for correctness (a replay skips what redb already has) but the log keeps growing.
            tracing::warn!(path = %self.wal.path().display(), error = %e, "cannot empty the write-ahead log");
        }
    }

    /// Forgets history at and below the next `COMPACT_CHUNK` revisions towards `target`, in one transaction.
    fn compact_step(&mut self, target: u64) -> Result<(), StorageError> {
        if self.compacted < target {
            let upto = target.min(self.compacted + COMPACT_CHUNK);
            let txn = self.shared.db.begin_write().map_err(|e| backend_err("begin write", e))?;
            {
                let Tables { mut history, mut log, mut meta, .. } = Tables::open(&txn)?;
                let mut keys = BTreeSet::new();
                for entry in log.range(self.compacted + 1..=upto).map_err(|e| backend_err("read log", e))? {
                    let (_, key) = entry.map_err(|e| backend_err("read log", e))?;
                    keys.insert(key.value().to_vec());
                }
                for key in &keys {
                    let lo = hist_key(key, 0);
                    let hi = hist_key(key, upto);
                    let mut versions = Vec::new();
                    for entry in history.range(lo.as_slice()..=hi.as_slice()).map_err(|e| backend_err("read history", e))? {
                        let (k, v) = entry.map_err(|e| backend_err("read history", e))?;
                        versions.push((k.value().to_vec(), v.value().first() == Some(&1)));
                    }
                    // Keep the newest version at or below `upto` if it is a put: reads at `upto` still need it.
                    let keep_last = versions.last().map(|(_, put)| *put).unwrap_or(false);
                    let n = versions.len() - usize::from(keep_last);
                    for (k, _) in versions.into_iter().take(n) {
                        history.remove(k.as_slice()).map_err(|e| backend_err("compact history", e))?;
                    }
                }
                log.retain_in(self.compacted + 1..=upto, |_, _| false).map_err(|e| backend_err("compact log", e))?;
                meta.insert(META_COMPACTED, upto).map_err(|e| backend_err("write meta", e))?;
            }
            txn.commit().map_err(|e| backend_err("commit compaction", e))?;
            self.compacted = upto;
            self.after_durable_commit();
        }
        Ok(())
    }
}

type Step<T> = Result<Result<T, StorageError>, StorageError>;

fn read_ptr(latest: &WTable<'_>, key: &str) -> Result<Option<(u64, u64)>, StorageError> {
    match latest.get(key.as_bytes()).map_err(|e| backend_err("read latest", e))? {
        Some(g) => Ok(Some(dec_latest(g.value()).ok_or_else(|| backend_err("decode latest", "bad length"))?)),
        None => Ok(None),
    }
}

/// Writes a put of `key` at `rev` (created at `create`).
fn record(t: &mut Tables<'_>, key: &[u8], rev: u64, create: u64, value: &[u8]) -> Result<(), StorageError> {
    t.history.insert(hist_key(key, rev).as_slice(), enc_put(create, value).as_slice()).map_err(|e| backend_err("write history", e))?;
    t.latest.insert(key, enc_latest(create, rev).as_slice()).map_err(|e| backend_err("write latest", e))?;
    t.log.insert(rev, key).map_err(|e| backend_err("write log", e))?;
    Ok(())
}

/// Writes a delete of `key` at `rev`.
fn record_delete(t: &mut Tables<'_>, key: &[u8], rev: u64) -> Result<(), StorageError> {
    t.history.insert(hist_key(key, rev).as_slice(), [0u8].as_slice()).map_err(|e| backend_err("write history", e))?;
    t.latest.remove(key).map_err(|e| backend_err("write latest", e))?;
    t.log.insert(rev, key).map_err(|e| backend_err("write log", e))?;
    Ok(())
}

/// `key`'s live (create, mod) revisions, after checking it exists and, when `expected` is given, that it was last
/// written at `expected`. The inner error is the caller's (404, 409); the outer one the store's.
fn check_live(t: &Tables<'_>, key: &str, expected: Option<Revision>) -> Step<(u64, u64)> {
    let Some((create, modr)) = read_ptr(&t.latest, key)? else {
        return Ok(Err(StorageError::NotFound { key: key.to_string() }));
    };
    match expected {
        Some(exp) if modr != u(exp) => Ok(Err(StorageError::Conflict { key: key.to_string(), expected: exp, current: i(modr) })),
        _ => Ok(Ok((create, modr))),
    }
}

fn apply_create(t: &mut Tables<'_>, rev: &mut u64, key: &str, value: &Bytes) -> Step<KeyValue> {
    if read_ptr(&t.latest, key)?.is_some() {
        return Ok(Err(StorageError::AlreadyExists { key: key.to_string() }));
    }
    let r = *rev + 1;
    record(t, key.as_bytes(), r, r, value)?;
    *rev = r;
    Ok(Ok(KeyValue { key: key.to_string(), value: value.clone(), create_revision: i(r), mod_revision: i(r) }))
}

fn apply_update(t: &mut Tables<'_>, rev: &mut u64, key: &str, value: &Bytes, expected: Revision) -> Step<KeyValue> {
    let (create, _) = match check_live(t, key, Some(expected))? {
        Ok(revs) => revs,
        Err(e) => return Ok(Err(e)),
    };
    let r = *rev + 1;
    record(t, key.as_bytes(), r, create, value)?;
    *rev = r;
    Ok(Ok(KeyValue { key: key.to_string(), value: value.clone(), create_revision: i(create), mod_revision: i(r) }))
}

fn apply_delete(t: &mut Tables<'_>, rev: &mut u64, key: &str, expected: Option<Revision>) -> Step<(KeyValue, Revision)> {
    let (create, modr) = match check_live(t, key, expected)? {
        Ok(revs) => revs,
        Err(e) => return Ok(Err(e)),
    };
    let (_, value) = live_version(&t.history, key.as_bytes(), modr)?;
    let r = *rev + 1;
    record_delete(t, key.as_bytes(), r)?;
    *rev = r;
    let prev = KeyValue { key: key.to_string(), value, create_revision: i(create), mod_revision: i(modr) };
    Ok(Ok((prev, i(r))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_keys_sort_by_key_then_revision() {
        let a1 = hist_key(b"/a", 1);
        let a2 = hist_key(b"/a", 256);
        let ab = hist_key(b"/a/b", 0);
        assert!(a1 < a2 && a2 < ab);
        assert_eq!(split_hist_key(&a2), Some((&b"/a"[..], 256)));
    }

    /// Writes that reached the log but not a durable redb commit are replayed on open, up to a torn tail.
    #[tokio::test]
    async fn reopen_replays_the_write_ahead_log() {
        use futures::StreamExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.redb");
        {
            let store = EmbeddedStore::open(&path).expect("open");
            store.create("/a", Bytes::from_static(b"A1")).await.expect("create");
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let reopen = || loop {
            match EmbeddedStore::open(&path) {
                Ok(s) => return s,
                Err(e) if std::time::Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => panic!("reopen: {e}"),
            }
        };
        // Reopen once so the first write is in redb durably, then forge a log as a crash would leave it.
        drop(reopen());
        let mut frames = Vec::new();
        wal::encode_put(&mut frames, 2, 2, b"/b", b"B");
        wal::encode_put(&mut frames, 3, 1, b"/a", b"A2");
        wal::encode_delete(&mut frames, 4, b"/b");
        wal::encode_put(&mut frames, 5, 5, b"/c", b"C");
        let torn = frames.len();
        wal::encode_put(&mut frames, 6, 6, b"/d", b"D");
        frames.truncate(torn + 5);
        std::fs::write(wal_path(&path), &frames).expect("write log");

        let store = reopen();
        assert_eq!(store.current_revision().await.expect("revision"), 5, "replayed up to the torn frame");
        let a = store.get("/a").await.expect("get").expect("a exists");
        assert_eq!((a.value.as_ref(), a.create_revision, a.mod_revision), (&b"A2"[..], 1, 3));
        assert_eq!(store.get("/b").await.expect("get"), None);
        assert!(store.get("/c").await.expect("get").is_some());
        assert_eq!(store.get("/d").await.expect("get"), None, "a torn frame was never acknowledged");
        assert_eq!(std::fs::metadata(wal_path(&path)).expect("stat").len(), 0, "the log is emptied after replay");
        // The replayed history serves watches like any other.
        let mut w = store.watch("/", 1).await.expect("watch");
        let mut revs = Vec::new();
        for _ in 0..4 {
            revs.push(w.next().await.expect("open").expect("event").revision());
        }
        assert_eq!(revs, vec![2, 3, 4, 5]);
        let next = store.create("/e", Bytes::from_static(b"E")).await.expect("create after replay");
        assert_eq!(next.mod_revision, 6);
    }

    #[test]
    fn prefix_end_is_the_next_string() {
        assert_eq!(prefix_end(b"/a/"), Some(b"/a0".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b""), None);
    }
}
