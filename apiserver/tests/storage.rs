//! The storage conformance suite against every backend, bare and behind the watch cache.

use std::sync::Arc;

use rkube_apiserver::storage::{self, Store, WatchCache};

mod storage_common;
mod storage_conformance;
use storage_conformance as conformance;
use storage_common::{embedded, Etcd};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_conformance() {
    let (_dir, store) = embedded();
    conformance::run_all(store, "/registry/t").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_behind_watch_cache_conformance() {
    let (_dir, store) = embedded();
    let cached: Arc<dyn Store> = WatchCache::new(store).await.expect("watch cache");
    conformance::run_all(cached, "/registry/t").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_reopen_keeps_data_and_revision() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.redb");
    let (kv, rev) = {
        let store = storage::open_embedded(&path).expect("open");
        let kv = store.create("/registry/pods/default/a", "x".into()).await.expect("create");
        store.create("/registry/pods/default/b", "y".into()).await.expect("create");
        store.delete("/registry/pods/default/b", None).await.expect("delete");
        (kv, store.current_revision().await.expect("revision"))
    };
    // The writer thread lets go of the file once its last handle is dropped; reopening must wait for that,
    // so poll the open rather than sleeping.
    let store = rkube_testsupport::poll_until("embedded store to reopen", std::time::Duration::from_secs(10), || {
        storage::open_embedded(&path).ok()
    });
    assert_eq!(store.current_revision().await.expect("revision"), rev, "the revision survives a reopen");
    assert_eq!(store.get(&kv.key).await.expect("get"), Some(kv));
    assert_eq!(store.get("/registry/pods/default/b").await.expect("get"), None);
    let next = store.create("/registry/pods/default/c", "z".into()).await.expect("create after reopen");
    assert_eq!(next.mod_revision, rev + 1, "revisions continue where they left off");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_conformance() {
    let etcd = Etcd::start();
    conformance::run_all(etcd.store("/rkube").await, "/registry/t").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_behind_watch_cache_conformance() {
    let etcd = Etcd::start();
    let cached: Arc<dyn Store> = WatchCache::new(etcd.store("/rkube").await).await.expect("watch cache");
    conformance::run_all(cached, "/registry/t").await;
}

/// Two apiservers (each with its own client and watch cache) on one etcd.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_two_apiservers_see_each_others_writes() {
    let etcd = Etcd::start();
    let a: Arc<dyn Store> = WatchCache::new(etcd.store("/rkube").await).await.expect("cache a");
    let b: Arc<dyn Store> = WatchCache::new(etcd.store("/rkube").await).await.expect("cache b");
    conformance::shared_backend(a.clone(), b.clone(), "/registry/shared").await;
    conformance::shared_backend(b, a, "/registry/shared2").await;
}

/// Two prefixes in one etcd are two separate stores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_prefixes_isolate_stores() {
    let etcd = Etcd::start();
    let a = etcd.store("/cluster-a").await;
    let b = etcd.store("/cluster-b").await;
    a.create("/registry/pods/default/x", "a".into()).await.expect("create in a");
    assert_eq!(b.get("/registry/pods/default/x").await.expect("get in b"), None);
    let listed = b.list(storage::ListOptions { prefix: "/registry/".into(), ..Default::default() }).await.expect("list b");
    assert!(listed.items.is_empty(), "b sees none of a's keys");
    let got = a.get("/registry/pods/default/x").await.expect("get in a").expect("exists");
    assert_eq!(got.key, "/registry/pods/default/x", "keys come back without the store prefix");
}

/// 1,000 watchers on one cache all get every event, in order, from one backend watch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_cache_fans_out_to_1000_watchers() {
    use futures::StreamExt;
    let (_dir, store) = embedded();
    let cache: Arc<dyn Store> = WatchCache::new(store).await.expect("watch cache");
    let from = cache.current_revision().await.expect("revision");
    let mut watchers = Vec::new();
    for _ in 0..1000 {
        watchers.push(cache.watch("/registry/pods/", from).await.expect("watch"));
    }
    let mut want = Vec::new();
    for n in 0..20 {
        want.push(cache.create(&format!("/registry/pods/default/p{n}"), "x".into()).await.expect("create").mod_revision);
    }
    let tasks: Vec<_> = watchers
        .into_iter()
        .map(|mut w| {
            tokio::spawn(async move {
                let mut got = Vec::new();
                while got.len() < 20 {
                    let ev = tokio::time::timeout(std::time::Duration::from_secs(20), w.next())
                        .await
                        .expect("event within 20s")
                        .expect("stream open")
                        .expect("event");
                    got.push(ev.revision());
                }
                got
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.expect("watcher"), want);
    }
}

/// A watcher that stops reading falls out of the ring and gets `Compacted` (410) instead of holding memory or
/// slowing anyone else; a watch older than the ring is served by the backend's own history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_cache_slow_watchers_and_old_revisions() {
    use futures::StreamExt;
    use rkube_apiserver::storage::StorageError;
    let (_dir, store) = embedded();
    let early = store.create("/registry/pods/default/early", "x".into()).await.expect("create");
    let cache = WatchCache::with_capacity(store.clone(), 10).await.expect("watch cache");
    let cached: Arc<dyn Store> = cache.clone();
    let from = cached.current_revision().await.expect("revision");
    let mut slow = cached.watch("/registry/", from).await.expect("slow watch");
    let mut last = 0;
    for n in 0..50 {
        last = cached.create(&format!("/registry/pods/default/p{n}"), "x".into()).await.expect("create").mod_revision;
    }
    assert!(cache.wait_for(last, std::time::Duration::from_secs(10)).await, "cache saw every write");
    match slow.next().await {
        Some(Err(StorageError::Compacted { requested, .. })) => assert_eq!(requested, from),
        other => panic!("a watcher left behind by the ring must get Compacted, got {other:?}"),
    }
    // A watch from before the cache started is replayed by the embedded store's history.
    let mut old = cached.watch("/registry/", early.mod_revision - 1).await.expect("old watch");
    let first = conformance::next_event(&mut old).await.expect("event");
    assert_eq!(first.revision(), early.mod_revision);
    // A recent revision is served from the ring.
    let mut recent = cached.watch("/registry/", last - 1).await.expect("recent watch");
    assert_eq!(conformance::next_event(&mut recent).await.expect("event").revision(), last);
}

/// The compactor forgets old revisions on its own: reads below the compaction point become `Compacted`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_compaction_makes_old_revisions_gone() {
    use rkube_apiserver::storage::{CompactionPolicy, ListOptions, StorageError};
    let (_dir, store) = embedded();
    let first = store.create("/registry/pods/default/a", "x".into()).await.expect("create");
    for n in 0..20 {
        store.create(&format!("/registry/pods/default/b{n}"), "x".into()).await.expect("create");
    }
    let policy = CompactionPolicy {
        interval: std::time::Duration::from_millis(20),
        retention: std::time::Duration::ZERO,
        keep_revisions: 5,
    };
    let compactor = storage::compaction::spawn(store.clone(), policy);
    let s = store.clone();
    let rt = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        rkube_testsupport::poll_until("compaction past the first write", std::time::Duration::from_secs(10), || {
            let r = rt.block_on(s.list(ListOptions {
                prefix: "/registry/".into(),
                revision: Some(first.mod_revision),
                ..Default::default()
            }));
            matches!(r, Err(StorageError::Compacted { .. })).then_some(())
        })
    })
    .await
    .expect("poll");
    compactor.abort();
    let cur = store.current_revision().await.expect("revision");
    // keep_revisions holds: the last 5 revisions are still readable.
    let l = store
        .list(ListOptions { prefix: "/registry/".into(), revision: Some(cur - 5), ..Default::default() })
        .await
        .expect("recent revisions stay readable");
    assert_eq!(l.items.len(), 21 - 5);
}

/// A watcher whose prefix is quiet while others change is told how far it has got (a bookmark), so it can
/// resume from a recent revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_cache_sends_progress_to_quiet_watchers() {
    use futures::StreamExt;
    use rkube_apiserver::storage::WatchEvent;
    let (_dir, store) = embedded();
    let cache: Arc<dyn Store> = WatchCache::new(store).await.expect("watch cache");
    let from = cache.current_revision().await.expect("revision");
    let mut nodes = cache.watch("/registry/nodes/", from).await.expect("watch");
    let mut last = 0;
    for n in 0..5 {
        last = cache.create(&format!("/registry/pods/default/p{n}"), "x".into()).await.expect("create").mod_revision;
    }
    match tokio::time::timeout(std::time::Duration::from_secs(20), nodes.next()).await {
        Ok(Some(Ok(WatchEvent::Progress { revision }))) => assert_eq!(revision, last),
        other => panic!("expected a progress notification at {last}, got {other:?}"),
    }
}

/// When etcd restarts, the watch cache re-watches from the last revision it saw: watchers miss nothing and need
/// not reconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_watch_cache_survives_etcd_restart() {
    use rkube_apiserver::storage::WatchEvent;
    let mut etcd = Etcd::start();
    let cache: Arc<dyn Store> = WatchCache::new(etcd.store("/rkube").await).await.expect("watch cache");
    let from = cache.current_revision().await.expect("revision");
    let mut w = cache.watch("/registry/pods/", from).await.expect("watch");
    let before = cache.create("/registry/pods/default/before", "x".into()).await.expect("create before restart");
    assert_eq!(conformance::next_event(&mut w).await.expect("event").revision(), before.mod_revision);

    etcd.restart();
    // The client reconnects on its own; retry the first write against a deadline until it does.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let after = loop {
        match cache.create("/registry/pods/default/after", "y".into()).await {
            Ok(kv) => break kv,
            Err(rkube_apiserver::storage::StorageError::AlreadyExists { .. }) => {
                break cache.get("/registry/pods/default/after").await.expect("get").expect("exists")
            }
            Err(e) if std::time::Instant::now() < deadline => {
                eprintln!("etcd not back yet: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => panic!("etcd did not come back: {e}"),
        }
    };
    match conformance::next_event(&mut w).await.expect("event after restart") {
        WatchEvent::Put { kv, .. } => assert_eq!(kv, after),
        other => panic!("unexpected {other:?}"),
    }
}

/// A compaction spanning many chunks runs alongside writes: writes keep succeeding, the latest state is intact,
/// and every revision below the target is gone afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_large_compaction_interleaves_with_writes() {
    use rkube_apiserver::storage::{ListOptions, StorageError};
    let (_dir, store) = embedded();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..400 {
                let key = format!("/registry/pods/default/p{t}-{n}");
                let kv = store.create(&key, "v1".into()).await.expect("create");
                store.update(&key, "v2".into(), kv.mod_revision).await.expect("update");
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
    let target = store.current_revision().await.expect("revision");
    assert_eq!(target, 6400);
    let compaction = {
        let store = store.clone();
        tokio::spawn(async move { store.compact(target).await })
    };
    for n in 0..200 {
        store.create(&format!("/registry/pods/other/q{n}"), "w".into()).await.expect("create during compaction");
    }
    compaction.await.expect("join").expect("compaction");
    match store.list(ListOptions { prefix: "/registry/".into(), revision: Some(target - 1), ..Default::default() }).await {
        Err(StorageError::Compacted { compacted, .. }) => assert_eq!(compacted, target),
        other => panic!("expected Compacted, got {:?}", other.map(|l| l.items.len())),
    }
    let at = store
        .list(ListOptions { prefix: "/registry/pods/default/".into(), revision: Some(target), ..Default::default() })
        .await
        .expect("list at the compaction point");
    assert_eq!(at.items.len(), 3200);
    assert!(at.items.iter().all(|kv| kv.value == "v2"), "the state at the compaction point is kept");
    let now = store.list(ListOptions { prefix: "/registry/".into(), ..Default::default() }).await.expect("list");
    assert_eq!(now.items.len(), 3400);
}
