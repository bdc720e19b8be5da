//! A small in-memory MVCC `Store` for tests and development: every version of every key is kept (until
//! compacted) so lists can be read at a past revision, and watches replay history then follow live changes.
//! Not durable; the real backends live in `storage`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::broadcast;

use crate::storage::{KeyValue, ListOptions, ListResult, Revision, StorageError, Store, WatchEvent, WatchStream};

#[derive(Default)]
struct Inner {
    /// key -> versions in revision order; `None` value marks a delete.
    versions: BTreeMap<String, Vec<(Revision, Option<KeyValue>)>>,
    /// Every event in revision order (for watch replay).
    history: Vec<WatchEvent>,
    revision: Revision,
    compacted: Revision,
}

/// The in-memory store.
pub struct MemoryStore {
    inner: Mutex<Inner>,
    events: broadcast::Sender<WatchEvent>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store at revision 0.
    pub fn new() -> MemoryStore {
        let (events, _) = broadcast::channel(65536);
        MemoryStore { inner: Mutex::new(Inner::default()), events }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>, StorageError> {
        self.inner.lock().map_err(|_| StorageError::Backend { backend: "memory", message: "lock poisoned".into() })
    }
}

impl Inner {
    fn current(&self, key: &str) -> Option<&KeyValue> {
        self.versions.get(key).and_then(|v| v.last()).and_then(|(_, kv)| kv.as_ref())
    }

    fn at(&self, key: &str, rev: Revision) -> Option<&KeyValue> {
        self.versions
            .get(key)
            .and_then(|v| v.iter().rev().find(|(r, _)| *r <= rev))
            .and_then(|(_, kv)| kv.as_ref())
    }
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn current_revision(&self) -> Result<Revision, StorageError> {
        Ok(self.lock()?.revision)
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StorageError> {
        Ok(self.lock()?.current(key).cloned())
    }

    async fn list(&self, opts: ListOptions) -> Result<ListResult, StorageError> {
        let inner = self.lock()?;
        let rev = opts.revision.unwrap_or(inner.revision);
        if rev < inner.compacted {
            return Err(StorageError::Compacted { requested: rev, compacted: inner.compacted });
        }
        if rev > inner.revision {
            return Err(StorageError::FutureRevision { requested: rev, current: inner.revision });
        }
        let mut items = Vec::new();
        let mut more = false;
        let start = opts.start_after.clone().unwrap_or_default();
        for (k, _) in inner.versions.range(opts.prefix.clone()..) {
            if !k.starts_with(&opts.prefix) {
                break;
            }
            if opts.start_after.is_some() && k.as_str() <= start.as_str() {
                continue;
            }
            if let Some(kv) = inner.at(k, rev) {
                if opts.limit.is_some_and(|l| items.len() >= l) {
                    more = true;
                    break;
                }
                items.push(kv.clone());
            }
        }
        Ok(ListResult { items, revision: rev, more })
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue, StorageError> {
        let mut inner = self.lock()?;
        if inner.current(key).is_some() {
            return Err(StorageError::AlreadyExists { key: key.into() });
        }
        inner.revision += 1;
        let rev = inner.revision;
        let kv = KeyValue { key: key.into(), value, create_revision: rev, mod_revision: rev };
        inner.versions.entry(key.into()).or_default().push((rev, Some(kv.clone())));
        let ev = WatchEvent::Put { kv: kv.clone(), prev: None };
        inner.history.push(ev.clone());
        let _ = self.events.send(ev);
        Ok(kv)
    }

    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<KeyValue, StorageError> {
        let mut inner = self.lock()?;
        let Some(prev) = inner.current(key).cloned() else {
            return Err(StorageError::NotFound { key: key.into() });
        };
        if prev.mod_revision != expected {
            return Err(StorageError::Conflict { key: key.into(), expected, current: prev.mod_revision });
        }
        inner.revision += 1;
        let rev = inner.revision;
        let kv = KeyValue { key: key.into(), value, create_revision: prev.create_revision, mod_revision: rev };
        inner.versions.entry(key.into()).or_default().push((rev, Some(kv.clone())));
        let ev = WatchEvent::Put { kv: kv.clone(), prev: Some(prev) };
        inner.history.push(ev.clone());
        let _ = self.events.send(ev);
        Ok(kv)
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(KeyValue, Revision), StorageError> {
        let mut inner = self.lock()?;
        let Some(prev) = inner.current(key).cloned() else {
            return Err(StorageError::NotFound { key: key.into() });
        };
        if let Some(e) = expected {
            if prev.mod_revision != e {
                return Err(StorageError::Conflict { key: key.into(), expected: e, current: prev.mod_revision });
            }
        }
        inner.revision += 1;
        let rev = inner.revision;
        inner.versions.entry(key.into()).or_default().push((rev, None));
        let ev = WatchEvent::Delete { prev: prev.clone(), revision: rev };
        inner.history.push(ev.clone());
        let _ = self.events.send(ev);
        Ok((prev, rev))
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StorageError> {
        let (replay, rx) = {
            let inner = self.lock()?;
            if after < inner.compacted {
                return Err(StorageError::Compacted { requested: after, compacted: inner.compacted });
            }
            let rx = self.events.subscribe();
            let replay: Vec<WatchEvent> = inner.history.iter().filter(|e| e.revision() > after).cloned().collect();
            (replay, rx)
        };
        let last = replay.last().map(|e| e.revision()).unwrap_or(after);
        let p1 = prefix.to_string();
        let p2 = prefix.to_string();
        let key_of = |e: &WatchEvent| -> Option<String> {
            match e {
                WatchEvent::Put { kv, .. } => Some(kv.key.clone()),
                WatchEvent::Delete { prev, .. } => Some(prev.key.clone()),
                WatchEvent::Progress { .. } => None,
            }
        };
        let head = futures::stream::iter(replay.into_iter().filter(move |e| key_of(e).is_none_or(|k| k.starts_with(&p1))).map(Ok));
        let live = futures::stream::unfold(rx, |mut rx| async move {
            match rx.recv().await {
                Ok(ev) => Some((Ok(ev), rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    Some((Err(StorageError::Backend { backend: "memory", message: "watcher fell behind".into() }), rx))
                }
                Err(broadcast::error::RecvError::Closed) => None,
            }
        })
        .filter(move |e: &Result<WatchEvent, StorageError>| {
            let keep = match e {
                Ok(ev) => ev.revision() > last && key_of(ev).is_none_or(|k| k.starts_with(&p2)),
                Err(_) => true,
            };
            futures::future::ready(keep)
        });
        Ok(Box::pin(head.chain(live)))
    }

    async fn compact(&self, revision: Revision) -> Result<(), StorageError> {
        let mut inner = self.lock()?;
        inner.compacted = inner.compacted.max(revision);
        let c = inner.compacted;
        inner.history.retain(|e| e.revision() > c);
        for versions in inner.versions.values_mut() {
            // Keep the newest version at or below the compaction point (still visible), drop older ones.
            let keep_from = versions.iter().rposition(|(r, _)| *r <= c).unwrap_or(0);
            versions.drain(..keep_from);
        }
        inner.versions.retain(|_, v| !(v.len() == 1 && v[0].1.is_none() && v[0].0 <= c));
        Ok(())
    }
}
