//! The storage conformance suite against every backend, bare and behind the watch cache.

use std::sync::Arc;

use rkube_apiserver::storage::{self, conformance, Store, WatchCache};

mod storage_common;
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
