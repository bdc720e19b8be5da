//! The storage conformance suite against every backend, bare and behind the watch cache.

use std::sync::Arc;

use rkube_apiserver::storage::{self, conformance, Store, WatchCache};

fn embedded() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = storage::open_embedded(dir.path().join("state.redb")).expect("open embedded store");
    (dir, store)
}

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
