//! The watch cache: one backend watch over every key, fanned out to any number of watchers.
//!
//! A feeder task reads the backend's watch from the revision the cache started at and appends each event to a
//! bounded ring of recent events, then bumps a `tokio::sync::watch` revision. Watchers hold no buffer and no
//! task of their own: each is a stream that remembers the last revision it delivered, wakes when the ring's head
//! moves, and copies the events after its position that match its prefix. So 1,000 watchers cost 1,000 small
//! structs plus one backend watch, and a slow watcher never slows the others; one that falls so far behind that
//! its position leaves the ring gets `Compacted` (the API answers 410 Gone and the client re-lists).
//!
//! A watch from a revision older than the ring is passed to the backend (which replays its own history or says
//! `Compacted`). Reads and writes go straight to the backend: the cache only serves watches.
//!
//! It must not reorder events or skip any: the ring holds every event with revision in `(floor, head]`.

use std::collections::VecDeque;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;

use super::{KeyValue, ListOptions, ListResult, Revision, StorageError, Store, WatchEvent, WatchStream};

/// Events kept in memory by default.
pub const DEFAULT_CAPACITY: usize = 10_000;
/// Bytes of keys and values the ring holds at most by default, whatever the event count: big objects (pods with
/// long statuses) must not make the cache the apiserver's largest user of memory.
pub const DEFAULT_MAX_BYTES: usize = 24 << 20;
/// Most events a watcher copies out of the ring per lock.
const BATCH: usize = 256;
/// A watcher whose prefix sees no events is told the revision it has reached (`Progress`, a Kubernetes
/// bookmark) at most this often, so a client that reconnects resumes from a recent revision instead of
/// getting 410 Gone after compaction.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

struct Ring {
    events: VecDeque<Arc<WatchEvent>>,
    /// Every event with a revision in `(floor, head]` is in `events`.
    floor: Revision,
    head: Revision,
    capacity: usize,
    max_bytes: usize,
    /// Bytes of keys and values in `events`.
    bytes: usize,
}

/// The memory an event holds on to, roughly: keys and values.
fn event_bytes(ev: &WatchEvent) -> usize {
    let kv = |kv: &KeyValue| kv.key.len() + kv.value.len() + 64;
    match ev {
        WatchEvent::Put { kv: k, prev } => kv(k) + prev.as_ref().map(kv).unwrap_or(0),
        WatchEvent::Delete { prev, .. } => kv(prev),
        WatchEvent::Progress { .. } => 0,
    }
}

impl Ring {
    fn new(start: Revision, capacity: usize, max_bytes: usize) -> Ring {
        Ring { events: VecDeque::new(), floor: start, head: start, capacity: capacity.max(1), max_bytes, bytes: 0 }
    }

    fn pop_front(&mut self) -> Option<Arc<WatchEvent>> {
        let old = self.events.pop_front()?;
        self.bytes -= event_bytes(&old);
        Some(old)
    }

    fn push(&mut self, ev: WatchEvent) {
        let rev = ev.revision();
        if rev <= self.head {
            return;
        }
        if !matches!(ev, WatchEvent::Progress { .. }) {
            let size = event_bytes(&ev);
            while !self.events.is_empty() && (self.events.len() >= self.capacity || self.bytes + size > self.max_bytes) {
                if let Some(old) = self.pop_front() {
                    self.floor = old.revision();
                }
            }
            self.bytes += size;
            self.events.push_back(Arc::new(ev));
        }
        self.head = rev;
    }

    /// Forgets everything at and below `rev`.
    fn raise_floor(&mut self, rev: Revision) {
        while self.events.front().map(|e| e.revision() <= rev).unwrap_or(false) {
            self.pop_front();
        }
        if rev > self.floor {
            self.floor = rev.min(self.head);
        }
    }

    /// Starts over at `rev` after the feed broke off: watchers behind it get `Compacted`.
    fn reset(&mut self, rev: Revision) {
        self.events.clear();
        self.bytes = 0;
        self.floor = rev;
        self.head = rev;
    }
}

struct Shared {
    ring: RwLock<Ring>,
    head: watch::Sender<Revision>,
}

impl Shared {
    fn ring(&self) -> std::sync::RwLockReadGuard<'_, Ring> {
        self.ring.read().unwrap_or_else(|p| p.into_inner())
    }
    fn ring_mut(&self) -> std::sync::RwLockWriteGuard<'_, Ring> {
        self.ring.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// A `Store` that serves watches from memory and passes everything else to `inner`.
pub struct WatchCache {
    inner: Arc<dyn Store>,
    shared: Arc<Shared>,
    feeder: tokio::task::AbortHandle,
}

impl Drop for WatchCache {
    fn drop(&mut self) {
        self.feeder.abort();
    }
}

impl WatchCache {
    /// Starts a cache over `inner` holding the last `DEFAULT_CAPACITY` events. Needs a tokio runtime.
    pub async fn new(inner: Arc<dyn Store>) -> Result<Arc<WatchCache>, StorageError> {
        Self::with_capacity(inner, DEFAULT_CAPACITY).await
    }

    /// Starts a cache over `inner` holding the last `capacity` events (and at most `DEFAULT_MAX_BYTES`).
    pub async fn with_capacity(inner: Arc<dyn Store>, capacity: usize) -> Result<Arc<WatchCache>, StorageError> {
        Self::with_limits(inner, capacity, DEFAULT_MAX_BYTES).await
    }

    /// Starts a cache over `inner` holding the last `capacity` events, at most `max_bytes` of keys and values.
    pub async fn with_limits(
        inner: Arc<dyn Store>,
        capacity: usize,
        max_bytes: usize,
    ) -> Result<Arc<WatchCache>, StorageError> {
        let start = inner.current_revision().await?;
        let stream = inner.watch("", start).await?;
        let shared = Arc::new(Shared {
            ring: RwLock::new(Ring::new(start, capacity, max_bytes)),
            head: watch::channel(start).0,
        });
        let feeder = tokio::spawn(feed(inner.clone(), shared.clone(), stream)).abort_handle();
        Ok(Arc::new(WatchCache { inner, shared, feeder }))
    }

    /// The store this cache fronts.
    pub fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }

    /// The newest revision the cache has seen from the backend.
    pub fn head(&self) -> Revision {
        self.shared.ring().head
    }

    /// Waits until the cache has seen revision `rev` (or `timeout` passes); true if it has.
    pub async fn wait_for(&self, rev: Revision, timeout: Duration) -> bool {
        let mut rx = self.shared.head.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|h| *h >= rev)).await.map(|r| r.is_ok()).unwrap_or(false)
    }
}

/// Copies the backend's event stream into the ring, re-watching if the stream breaks.
async fn feed(inner: Arc<dyn Store>, shared: Arc<Shared>, mut stream: WatchStream) {
    use futures::StreamExt;
    let mut backoff = Duration::from_millis(50);
    loop {
        while let Some(item) = stream.next().await {
            match item {
                Ok(ev) => {
                    let head = {
                        let mut ring = shared.ring_mut();
                        ring.push(ev);
                        ring.head
                    };
                    shared.head.send_replace(head);
                    backoff = Duration::from_millis(50);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "watch cache feed broke off");
                    break;
                }
            }
        }
        // The stream ended or failed: watch again from where we were; if that history is gone, start over and
        // let watchers that were behind get `Compacted`.
        loop {
            let head = shared.ring().head;
            match inner.watch("", head).await {
                Ok(s) => {
                    stream = s;
                    break;
                }
                Err(StorageError::Compacted { .. }) => match inner.current_revision().await {
                    Ok(cur) => {
                        tracing::warn!(from = head, to = cur, "watch cache lost history; watchers behind must re-list");
                        shared.ring_mut().reset(cur);
                        shared.head.send_replace(cur);
                    }
                    Err(e) => tracing::warn!(error = %e, "watch cache cannot read the current revision"),
                },
                Err(e) => tracing::warn!(error = %e, "watch cache cannot re-watch the backend"),
            }
            // Back off before retrying a failing backend (not a readiness wait).
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}

struct Watcher {
    shared: Arc<Shared>,
    rx: watch::Receiver<Revision>,
    prefix: String,
    pos: Revision,
    pending: VecDeque<WatchEvent>,
    done: bool,
    /// The revision the client last heard about (an event or a progress notification), and when.
    told: Revision,
    told_at: tokio::time::Instant,
}

impl Watcher {
    /// A progress notification if the watcher has moved on silently for a while.
    fn progress(&mut self) -> Option<WatchEvent> {
        if self.pos > self.told && self.told_at.elapsed() >= PROGRESS_EVERY {
            self.told = self.pos;
            self.told_at = tokio::time::Instant::now();
            return Some(WatchEvent::Progress { revision: self.pos });
        }
        None
    }

    /// Copies matching events after `pos` out of the ring; Err if `pos` fell out of it.
    fn fill(&mut self) -> Result<(), StorageError> {
        let ring = self.shared.ring();
        if self.pos < ring.floor {
            return Err(StorageError::Compacted { requested: self.pos, compacted: ring.floor });
        }
        let start = ring.events.partition_point(|e| e.revision() <= self.pos);
        let mut scanned_to = None;
        for ev in ring.events.range(start..) {
            scanned_to = Some(ev.revision());
            let key = match &**ev {
                WatchEvent::Put { kv, .. } => &kv.key,
                WatchEvent::Delete { prev, .. } => &prev.key,
                WatchEvent::Progress { .. } => continue,
            };
            if key.starts_with(&self.prefix) {
                self.pending.push_back((**ev).clone());
                if self.pending.len() >= BATCH {
                    break;
                }
            }
        }
        match scanned_to {
            Some(r) if self.pending.len() >= BATCH => self.pos = r,
            _ => self.pos = self.pos.max(ring.head),
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Store for WatchCache {
    async fn current_revision(&self) -> Result<Revision, StorageError> {
        self.inner.current_revision().await
    }
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StorageError> {
        self.inner.get(key).await
    }
    async fn list(&self, opts: ListOptions) -> Result<ListResult, StorageError> {
        self.inner.list(opts).await
    }
    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue, StorageError> {
        self.inner.create(key, value).await
    }
    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<KeyValue, StorageError> {
        self.inner.update(key, value, expected).await
    }
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(KeyValue, Revision), StorageError> {
        self.inner.delete(key, expected).await
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StorageError> {
        let after = after.max(0);
        let floor = self.shared.ring().floor;
        if after < floor {
            tracing::debug!(after, floor, prefix, "watch older than the cache: served by the backend");
            return self.inner.watch(prefix, after).await;
        }
        let w = Watcher {
            shared: self.shared.clone(),
            rx: self.shared.head.subscribe(),
            prefix: prefix.to_string(),
            pos: after,
            pending: VecDeque::new(),
            done: false,
            told: after,
            told_at: tokio::time::Instant::now(),
        };
        let stream = futures::stream::unfold(w, |mut w| async move {
            loop {
                if w.done {
                    return None;
                }
                if let Some(ev) = w.pending.pop_front() {
                    w.told = ev.revision();
                    w.told_at = tokio::time::Instant::now();
                    return Some((Ok(ev), w));
                }
                w.rx.borrow_and_update();
                if let Err(e) = w.fill() {
                    w.done = true;
                    return Some((Err(e), w));
                }
                if !w.pending.is_empty() {
                    continue;
                }
                if let Some(p) = w.progress() {
                    return Some((Ok(p), w));
                }
                // Wake on the next event, or in time to send a progress notification if the watcher has
                // moved on without one.
                let wait = if w.pos > w.told {
                    PROGRESS_EVERY.saturating_sub(w.told_at.elapsed())
                } else {
                    Duration::from_secs(3600)
                };
                if let Ok(Err(_)) = tokio::time::timeout(wait, w.rx.changed()).await {
                    return None; // the cache is gone
                }
            }
        });
        Ok(Box::pin(stream))
    }

    async fn compact(&self, revision: Revision) -> Result<(), StorageError> {
        self.inner.compact(revision).await?;
        self.shared.ring_mut().raise_floor(revision);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(rev: Revision) -> WatchEvent {
        WatchEvent::Put {
            kv: KeyValue { key: format!("/k/{rev}"), value: Bytes::new(), create_revision: rev, mod_revision: rev },
            prev: None,
        }
    }

    #[test]
    fn ring_evicts_oldest_and_raises_floor() {
        let mut ring = Ring::new(0, 3, usize::MAX);
        for r in 1..=5 {
            ring.push(put(r));
        }
        assert_eq!(ring.events.len(), 3);
        assert_eq!((ring.floor, ring.head), (2, 5));
        ring.push(put(4));
        assert_eq!(ring.head, 5, "old or duplicate events are ignored");
        ring.raise_floor(4);
        assert_eq!((ring.floor, ring.events.len()), (4, 1));
        assert_eq!(ring.bytes, event_bytes(&put(5)));
    }

    #[test]
    fn ring_is_bounded_by_bytes() {
        let big = |rev: Revision| WatchEvent::Put {
            kv: KeyValue { key: "/k".into(), value: Bytes::from(vec![0u8; 1000]), create_revision: 1, mod_revision: rev },
            prev: None,
        };
        let one = event_bytes(&big(1));
        let mut ring = Ring::new(0, 1000, 3 * one);
        for r in 1..=10 {
            ring.push(big(r));
        }
        assert_eq!(ring.events.len(), 3, "byte budget, not the event count, bounds the ring");
        assert_eq!((ring.floor, ring.head, ring.bytes), (7, 10, 3 * one));
        // An event bigger than the whole budget still goes in, alone.
        let mut small = Ring::new(0, 1000, 10);
        small.push(big(1));
        small.push(big(2));
        assert_eq!((small.events.len(), small.floor), (1, 1));
    }
}
