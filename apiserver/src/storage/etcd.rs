//! The etcd v3 backend, for clusters that outgrow one machine: several apiservers share one etcd, each sees the
//! others' writes through etcd watches, and etcd's own revision is the resourceVersion.
//!
//! Every key lives under a configured prefix (so one etcd can hold several clusters or test runs); the prefix is
//! added on the way in and stripped on the way out. Conditional writes are single etcd transactions comparing
//! `create_revision` (create) or `mod_revision` (update/delete), so optimistic concurrency holds across
//! apiservers. This module must not cache: the watch cache sits in front of it.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions, PutOptions, Txn, TxnOp,
    TxnOpResponse, WatchOptions,
};

use super::embedded::prefix_end;
use super::{KeyValue, ListOptions, ListResult, Revision, StorageError, Store, WatchEvent, WatchStream};

const BACKEND: &str = "etcd";
/// Most keys one etcd range request returns; larger lists are read in chunks at one revision.
const LIST_CHUNK: usize = 1000;
/// Largest gRPC response we accept (etcd's own request limit is 1.5 MiB per value).
const MAX_MESSAGE: usize = 64 << 20;

fn backend_err(what: &str, e: impl std::fmt::Display) -> StorageError {
    StorageError::Backend { backend: BACKEND, message: format!("{what}: {e}") }
}

/// A store in etcd under one key prefix.
pub struct EtcdStore {
    client: Client,
    prefix: String,
    /// The highest compaction point this process has seen (etcd does not report it on failed reads).
    compacted: Arc<AtomicI64>,
}

impl EtcdStore {
    /// Connects to `endpoints` (`http://host:port`) and keeps every key under `prefix` (e.g. `/rkube`).
    pub async fn connect(endpoints: &[String], prefix: &str) -> Result<EtcdStore, StorageError> {
        let opts = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
        let client = Client::connect(endpoints, Some(opts))
            .await
            .map_err(|e| backend_err(&format!("connect to {}", endpoints.join(",")), e))?;
        let store = EtcdStore { client, prefix: prefix.trim_end_matches('/').to_string(), compacted: Default::default() };
        // Fail now, not at the first request, if etcd is not there.
        store.current_revision().await?;
        tracing::info!(endpoints = %endpoints.join(","), prefix = %store.prefix, "connected to etcd");
        Ok(store)
    }

    fn kv_client(&self) -> etcd_client::KvClient {
        self.client.kv_client().max_decoding_message_size(MAX_MESSAGE)
    }

    fn full(&self, key: &str) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.prefix.len() + key.len());
        v.extend_from_slice(self.prefix.as_bytes());
        v.extend_from_slice(key.as_bytes());
        v
    }

    fn kv(&self, kv: &etcd_client::KeyValue) -> Result<KeyValue, StorageError> {
        decode_kv(&self.prefix, kv)
    }

    /// Maps an etcd error for a read at `requested`.
    async fn read_err(&self, what: &str, requested: Revision, e: etcd_client::Error) -> StorageError {
        let msg = e.to_string();
        if msg.contains("required revision has been compacted") {
            let compacted = self.compacted.load(Ordering::Relaxed).max(requested + 1);
            return StorageError::Compacted { requested, compacted };
        }
        if msg.contains("future revision") {
            let current = self.current_revision().await.unwrap_or(0);
            return StorageError::FutureRevision { requested, current };
        }
        backend_err(what, msg)
    }

    /// The current value of `key` from a failed transaction's `or_else` get.
    fn current_from(&self, ops: &[TxnOpResponse]) -> Result<Option<KeyValue>, StorageError> {
        for op in ops {
            if let TxnOpResponse::Get(r) = op {
                return r.kvs().first().map(|kv| self.kv(kv)).transpose();
            }
        }
        Ok(None)
    }
}

/// An etcd key-value as ours: the store's `prefix` stripped from the key.
fn decode_kv(prefix: &str, kv: &etcd_client::KeyValue) -> Result<KeyValue, StorageError> {
    let key = kv
        .key()
        .strip_prefix(prefix.as_bytes())
        .ok_or_else(|| backend_err("decode key", "key outside this store's prefix"))?;
    Ok(KeyValue {
        key: String::from_utf8(key.to_vec()).map_err(|e| backend_err("decode key", e))?,
        value: Bytes::copy_from_slice(kv.value()),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
    })
}

fn header_rev(h: Option<&etcd_client::ResponseHeader>) -> Result<Revision, StorageError> {
    h.map(|h| h.revision()).ok_or_else(|| backend_err("read response", "no header"))
}

#[async_trait::async_trait]
impl Store for EtcdStore {
    async fn current_revision(&self) -> Result<Revision, StorageError> {
        let mut kv = self.kv_client();
        let resp = kv
            .get(self.full("/"), Some(GetOptions::new().with_count_only()))
            .await
            .map_err(|e| backend_err("read revision", e))?;
        header_rev(resp.header())
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StorageError> {
        let mut kv = self.kv_client();
        let resp = kv.get(self.full(key), None).await.map_err(|e| backend_err(&format!("get {key}"), e))?;
        resp.kvs().first().map(|k| self.kv(k)).transpose()
    }

    async fn list(&self, opts: ListOptions) -> Result<ListResult, StorageError> {
        let full_prefix = self.full(&opts.prefix);
        let mut lo = full_prefix.clone();
        if let Some(after) = &opts.start_after {
            let mut a = self.full(after);
            a.push(0);
            if a > lo {
                lo = a;
            }
        }
        let hi = prefix_end(&full_prefix).unwrap_or_else(|| vec![0]);
        let mut revision = opts.revision.filter(|&r| r > 0);
        let limit = opts.limit.filter(|&l| l > 0);
        let mut items = Vec::new();
        let mut more = false;
        // An unlimited list is read in chunks at one revision, so no single response outgrows gRPC's limits.
        loop {
            if hi != [0] && lo >= hi {
                break;
            }
            let want = limit.map(|l| l - items.len()).unwrap_or(LIST_CHUNK).min(LIST_CHUNK);
            let mut get = GetOptions::new().with_range(hi.clone()).with_limit(i64::try_from(want).unwrap_or(i64::MAX));
            if let Some(r) = revision {
                get = get.with_revision(r);
            }
            let resp = match self.kv_client().get(lo.clone(), Some(get)).await {
                Ok(r) => r,
                Err(e) => return Err(self.read_err(&format!("list {}", opts.prefix), revision.unwrap_or(0), e).await),
            };
            if revision.is_none() {
                revision = Some(header_rev(resp.header())?);
            }
            for k in resp.kvs() {
                items.push(self.kv(k)?);
            }
            if !resp.more() {
                break;
            }
            if limit.map(|l| items.len() >= l).unwrap_or(false) {
                more = true;
                break;
            }
            match resp.kvs().last() {
                Some(last) => {
                    lo = last.key().to_vec();
                    lo.push(0);
                }
                None => break,
            }
        }
        let revision = match revision {
            Some(r) => r,
            None => self.current_revision().await?,
        };
        Ok(ListResult { items, revision, more })
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue, StorageError> {
        let k = self.full(key);
        let txn = Txn::new()
            .when([Compare::create_revision(k.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(k.clone(), value.to_vec(), None)])
            .or_else([TxnOp::get(k, None)]);
        let resp = self.kv_client().txn(txn).await.map_err(|e| backend_err(&format!("create {key}"), e))?;
        if !resp.succeeded() {
            return Err(StorageError::AlreadyExists { key: key.to_string() });
        }
        let rev = header_rev(resp.header())?;
        Ok(KeyValue { key: key.to_string(), value, create_revision: rev, mod_revision: rev })
    }

    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<KeyValue, StorageError> {
        let k = self.full(key);
        let txn = Txn::new()
            .when([
                Compare::version(k.clone(), CompareOp::Greater, 0),
                Compare::mod_revision(k.clone(), CompareOp::Equal, expected),
            ])
            .and_then([TxnOp::put(k.clone(), value.to_vec(), Some(PutOptions::new().with_prev_key()))])
            .or_else([TxnOp::get(k, None)]);
        let resp = self.kv_client().txn(txn).await.map_err(|e| backend_err(&format!("update {key}"), e))?;
        let ops = resp.op_responses();
        if !resp.succeeded() {
            return match self.current_from(&ops)? {
                None => Err(StorageError::NotFound { key: key.to_string() }),
                Some(cur) => Err(StorageError::Conflict { key: key.to_string(), expected, current: cur.mod_revision }),
            };
        }
        let rev = header_rev(resp.header())?;
        let create = ops
            .iter()
            .find_map(|op| match op {
                TxnOpResponse::Put(p) => p.prev_key().map(|kv| kv.create_revision()),
                _ => None,
            })
            .ok_or_else(|| backend_err(&format!("update {key}"), "no previous value in the put response"))?;
        Ok(KeyValue { key: key.to_string(), value, create_revision: create, mod_revision: rev })
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(KeyValue, Revision), StorageError> {
        let k = self.full(key);
        let mut when = vec![Compare::version(k.clone(), CompareOp::Greater, 0)];
        if let Some(exp) = expected {
            when.push(Compare::mod_revision(k.clone(), CompareOp::Equal, exp));
        }
        let txn = Txn::new()
            .when(when)
            .and_then([TxnOp::delete(k.clone(), Some(DeleteOptions::new().with_prev_key()))])
            .or_else([TxnOp::get(k, None)]);
        let resp = self.kv_client().txn(txn).await.map_err(|e| backend_err(&format!("delete {key}"), e))?;
        let ops = resp.op_responses();
        if !resp.succeeded() {
            return match (self.current_from(&ops)?, expected) {
                (None, _) => Err(StorageError::NotFound { key: key.to_string() }),
                (Some(cur), Some(exp)) => {
                    Err(StorageError::Conflict { key: key.to_string(), expected: exp, current: cur.mod_revision })
                }
                (Some(_), None) => Err(backend_err(&format!("delete {key}"), "transaction failed with no precondition")),
            };
        }
        let rev = header_rev(resp.header())?;
        let prev = ops
            .iter()
            .find_map(|op| match op {
                TxnOpResponse::Delete(d) => d.prev_kvs().first().map(|kv| self.kv(kv)),
                _ => None,
            })
            .ok_or_else(|| backend_err(&format!("delete {key}"), "no previous value in the delete response"))??;
        Ok((prev, rev))
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StorageError> {
        let after = after.max(0);
        let full_prefix = self.full(prefix);
        let hi = prefix_end(&full_prefix).unwrap_or_else(|| vec![0]);
        let opts = WatchOptions::new()
            .with_range(hi)
            .with_start_revision(after + 1)
            .with_prev_key()
            .with_progress_notify();
        let mut wc = self.client.watch_client().max_decoding_message_size(MAX_MESSAGE);
        let mut stream =
            wc.watch(full_prefix, Some(opts)).await.map_err(|e| backend_err(&format!("watch {prefix}"), e))?;
        // The first response says whether the watch was created or refused (compacted history).
        let first = stream.message().await.map_err(|e| backend_err(&format!("watch {prefix}"), e))?;
        let Some(first) = first else {
            return Err(backend_err(&format!("watch {prefix}"), "etcd closed the watch"));
        };
        let me = EtcdDecoder { prefix: self.prefix.clone(), compacted: self.compacted.clone() };
        if let Some(refused) = me.refused(&first, after) {
            return Err(refused);
        }
        struct St {
            stream: etcd_client::WatchStream,
            pending: std::collections::VecDeque<Result<WatchEvent, StorageError>>,
            me: EtcdDecoder,
            after: Revision,
            done: bool,
        }
        let mut st = St { stream, pending: Default::default(), me, after, done: false };
        st.pending.extend(st.me.decode(&first, after));
        let s = futures::stream::unfold(st, |mut st| async move {
            loop {
                if let Some(ev) = st.pending.pop_front() {
                    if ev.is_err() {
                        st.done = true;
                    }
                    return Some((ev, st));
                }
                if st.done {
                    return None;
                }
                match st.stream.message().await {
                    Ok(Some(resp)) => {
                        let evs = st.me.decode(&resp, st.after);
                        st.pending.extend(evs);
                    }
                    Ok(None) => return None,
                    Err(e) => {
                        st.done = true;
                        return Some((Err(backend_err("watch", e)), st));
                    }
                }
            }
        });
        Ok(Box::pin(s))
    }

    async fn compact(&self, revision: Revision) -> Result<(), StorageError> {
        let mut kv = self.kv_client();
        match kv.compact(revision, None).await {
            Ok(_) => {
                self.compacted.fetch_max(revision, Ordering::Relaxed);
                Ok(())
            }
            // Another apiserver (or an earlier call) already compacted past it: nothing to do.
            Err(e) if e.to_string().contains("required revision has been compacted") => Ok(()),
            Err(e) => Err(self.read_err("compact", revision, e).await),
        }
    }
}

/// Turns etcd watch responses into our events.
struct EtcdDecoder {
    prefix: String,
    compacted: Arc<AtomicI64>,
}

impl EtcdDecoder {
    fn kv(&self, kv: &etcd_client::KeyValue) -> Result<KeyValue, StorageError> {
        decode_kv(&self.prefix, kv)
    }

    /// The error a response ending the watch stands for: history compacted past `after`, or cancelled by etcd.
    fn refused(&self, resp: &etcd_client::WatchResponse, after: Revision) -> Option<StorageError> {
        let compacted = resp.compact_revision();
        if compacted > 0 {
            self.compacted.fetch_max(compacted, Ordering::Relaxed);
            return Some(StorageError::Compacted { requested: after, compacted });
        }
        resp.canceled().then(|| backend_err("watch", format!("canceled by etcd: {}", resp.cancel_reason())))
    }

    fn decode(&self, resp: &etcd_client::WatchResponse, after: Revision) -> Vec<Result<WatchEvent, StorageError>> {
        if let Some(refused) = self.refused(resp, after) {
            return vec![Err(refused)];
        }
        let mut out = Vec::with_capacity(resp.events().len());
        for ev in resp.events() {
            let Some(kv) = ev.kv() else { continue };
            let prev = match ev.prev_kv().map(|p| self.kv(p)).transpose() {
                Ok(p) => p,
                Err(e) => {
                    out.push(Err(e));
                    return out;
                }
            };
            match ev.event_type() {
                EventType::Put => match self.kv(kv) {
                    Ok(kv) => out.push(Ok(WatchEvent::Put { kv, prev })),
                    Err(e) => out.push(Err(e)),
                },
                EventType::Delete => {
                    let revision = kv.mod_revision();
                    // etcd omits prev_kv when the previous version was compacted; keep the key at least.
                    let prev = match prev {
                        Some(p) => Ok(p),
                        None => self.kv(kv).map(|k| KeyValue { value: Bytes::new(), ..k }),
                    };
                    match prev {
                        Ok(prev) => out.push(Ok(WatchEvent::Delete { prev, revision })),
                        Err(e) => out.push(Err(e)),
                    }
                }
            }
        }
        if out.is_empty() && !resp.created() {
            if let Some(h) = resp.header() {
                out.push(Ok(WatchEvent::Progress { revision: h.revision() }));
            }
        }
        out
    }
}
