//! The storage conformance suite: behaviour every `Store` must have, run against each backend (and each backend
//! behind the watch cache) by `apiserver/tests/storage.rs`.
//!
//! Test code only: it lives under `tests/` so no release build of the library carries it.
//!
//! Each check takes the store and a key prefix of its own, so checks can share a backend (one etcd) without
//! seeing each other's keys; revisions are global, so no check assumes it is the only writer. The checks panic
//! with a message saying what a backend got wrong; they are test code and belong to no production path.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;

use rkube_apiserver::storage::{ListOptions, Revision, StorageError, Store, WatchEvent, WatchStream};

/// How long a watch may take to deliver an event before the check fails.
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// The next event that is not a progress notification; panics after `EVENT_TIMEOUT`.
pub async fn next_event(stream: &mut WatchStream) -> Result<WatchEvent, StorageError> {
    loop {
        match tokio::time::timeout(EVENT_TIMEOUT, stream.next()).await {
            Ok(Some(Ok(WatchEvent::Progress { .. }))) => continue,
            Ok(Some(r)) => return r,
            Ok(None) => panic!("watch stream ended"),
            Err(_) => panic!("no watch event within {EVENT_TIMEOUT:?}"),
        }
    }
}

/// Runs every check, compaction last (it forgets history other checks may still read).
pub async fn run_all(store: Arc<dyn Store>, base: &str) {
    create_get_delete(store.clone(), &format!("{base}/cgd")).await;
    update_conflict(store.clone(), &format!("{base}/upd")).await;
    list_prefix_limit_continue(store.clone(), &format!("{base}/list")).await;
    list_at_past_revision(store.clone(), &format!("{base}/past")).await;
    large_list(store.clone(), &format!("{base}/large")).await;
    watch_from_revision(store.clone(), &format!("{base}/watch")).await;
    watch_live_and_prefix(store.clone(), &format!("{base}/live")).await;
    compaction(store.clone(), &format!("{base}/compact")).await;
}

/// Create, get, duplicate create, delete, delete of a missing key; revisions increase.
pub async fn create_get_delete(store: Arc<dyn Store>, base: &str) {
    let key = format!("{base}/a");
    let before = store.current_revision().await.expect("current revision");
    assert!(store.get(&key).await.expect("get missing").is_none(), "a fresh key must not exist");
    let kv = store.create(&key, b("one")).await.expect("create");
    assert!(kv.mod_revision > before, "create must raise the revision ({} !> {before})", kv.mod_revision);
    assert_eq!(kv.create_revision, kv.mod_revision);
    assert!(store.current_revision().await.expect("current revision") >= kv.mod_revision);
    let got = store.get(&key).await.expect("get").expect("created key exists");
    assert_eq!(got, kv);
    assert_eq!(got.value, b("one"));
    match store.create(&key, b("two")).await {
        Err(StorageError::AlreadyExists { key: k }) => assert_eq!(k, key),
        other => panic!("second create must fail AlreadyExists, got {other:?}"),
    }
    let (prev, del_rev) = store.delete(&key, None).await.expect("delete");
    assert_eq!(prev, kv, "delete returns the deleted value");
    assert!(del_rev > kv.mod_revision);
    assert!(store.get(&key).await.expect("get deleted").is_none());
    assert!(matches!(store.delete(&key, None).await, Err(StorageError::NotFound { .. })));
    // A key can be created again after a delete, with a new create revision.
    let again = store.create(&key, b("three")).await.expect("re-create");
    assert!(again.create_revision > del_rev);
    store.delete(&key, Some(again.mod_revision)).await.expect("delete with the right revision");
}

/// Optimistic concurrency on update and delete.
pub async fn update_conflict(store: Arc<dyn Store>, base: &str) {
    let key = format!("{base}/a");
    assert!(matches!(store.update(&key, b("x"), 1).await, Err(StorageError::NotFound { .. })));
    let kv = store.create(&key, b("v1")).await.expect("create");
    let kv2 = store.update(&key, b("v2"), kv.mod_revision).await.expect("update with current revision");
    assert!(kv2.mod_revision > kv.mod_revision);
    assert_eq!(kv2.create_revision, kv.create_revision, "update keeps the create revision");
    match store.update(&key, b("v3"), kv.mod_revision).await {
        Err(StorageError::Conflict { key: k, expected, current }) => {
            assert_eq!((k.as_str(), expected, current), (key.as_str(), kv.mod_revision, kv2.mod_revision));
        }
        other => panic!("stale update must fail Conflict, got {other:?}"),
    }
    assert_eq!(store.get(&key).await.expect("get").expect("exists").value, b("v2"), "failed update changed nothing");
    assert!(matches!(store.delete(&key, Some(kv.mod_revision)).await, Err(StorageError::Conflict { .. })));
    assert!(store.get(&key).await.expect("get").is_some(), "failed delete deleted nothing");

    // Many concurrent updates from the same revision: exactly one wins.
    let mut tasks = Vec::new();
    for n in 0..8 {
        let (store, key) = (store.clone(), key.clone());
        let expected = kv2.mod_revision;
        tasks.push(tokio::spawn(async move { store.update(&key, b(&format!("racer{n}")), expected).await }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.expect("join") {
            Ok(_) => wins += 1,
            Err(StorageError::Conflict { .. }) => {}
            Err(e) => panic!("racing update failed with {e}"),
        }
    }
    assert_eq!(wins, 1, "exactly one of the racing updates wins");
    store.delete(&key, None).await.expect("delete");
}

/// Lists under a prefix only, sorted by key, paged by limit and start_after at one revision.
pub async fn list_prefix_limit_continue(store: Arc<dyn Store>, base: &str) {
    let mut want = Vec::new();
    for n in 0..25 {
        let key = format!("{base}/ns/obj-{n:03}");
        store.create(&key, b(&n.to_string())).await.expect("create");
        want.push(key);
    }
    // Neighbours that a prefix must not match.
    store.create(&format!("{base}/nsx"), b("other")).await.expect("create neighbour");
    store.create(&format!("{base}/n"), b("other")).await.expect("create neighbour");

    let prefix = format!("{base}/ns/");
    let all = store.list(ListOptions { prefix: prefix.clone(), ..Default::default() }).await.expect("list");
    let keys: Vec<_> = all.items.iter().map(|kv| kv.key.clone()).collect();
    assert_eq!(keys, want, "list returns exactly the prefix's keys, sorted");
    assert!(!all.more);
    assert!(all.revision >= all.items.iter().map(|kv| kv.mod_revision).max().unwrap_or(0));

    // Page through 10 at a time at the first page's revision while someone writes more.
    let mut got = Vec::new();
    let mut start_after = None;
    let mut revision = None;
    let mut pages = 0;
    loop {
        let page = store
            .list(ListOptions { prefix: prefix.clone(), start_after: start_after.clone(), limit: Some(10), revision })
            .await
            .expect("list page");
        pages += 1;
        if revision.is_none() {
            revision = Some(page.revision);
            // A write between pages must not show up in later pages.
            store.create(&format!("{base}/ns/obj-999"), b("late")).await.expect("create late");
            let first = &want[0];
            let cur = store.get(first).await.expect("get").expect("exists");
            store.update(first, b("changed"), cur.mod_revision).await.expect("update");
        } else {
            assert_eq!(Some(page.revision), revision, "every page is read at the first page's revision");
        }
        assert!(page.items.len() <= 10);
        got.extend(page.items.iter().map(|kv| kv.key.clone()));
        if !page.more {
            break;
        }
        start_after = page.items.last().map(|kv| kv.key.clone());
    }
    assert_eq!(pages, 3);
    assert_eq!(got, want, "pages join up to the list at that revision");

    let latest = store.list(ListOptions { prefix: prefix.clone(), limit: Some(1), ..Default::default() }).await.expect("list");
    assert!(latest.more);
    assert_eq!(latest.items[0].value, b("changed"));
    let empty = store
        .list(ListOptions { prefix: format!("{base}/nothing-here/"), ..Default::default() })
        .await
        .expect("list empty");
    assert!(empty.items.is_empty() && !empty.more);
    let future = store.current_revision().await.expect("current") + 1000;
    assert!(matches!(
        store.list(ListOptions { prefix, revision: Some(future), ..Default::default() }).await,
        Err(StorageError::FutureRevision { .. })
    ));
}

/// Lists larger than a backend's internal chunk (2,500 keys): whole, and in pages bigger than a chunk.
pub async fn large_list(store: Arc<dyn Store>, base: &str) {
    const N: usize = 2500;
    let mut tasks = Vec::new();
    for t in 0..16 {
        let (store, base) = (store.clone(), base.to_string());
        tasks.push(tokio::spawn(async move {
            let mut n = t;
            while n < N {
                store.create(&format!("{base}/k{n:05}"), b(&"v".repeat(100))).await.expect("create");
                n += 16;
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
    let all = store.list(ListOptions { prefix: format!("{base}/"), ..Default::default() }).await.expect("list");
    assert_eq!(all.items.len(), N);
    assert!(!all.more);
    assert!(all.items.windows(2).all(|w| w[0].key < w[1].key), "sorted by key");
    let p1 = store
        .list(ListOptions { prefix: format!("{base}/"), limit: Some(1500), ..Default::default() })
        .await
        .expect("page 1");
    assert_eq!((p1.items.len(), p1.more), (1500, true));
    let p2 = store
        .list(ListOptions {
            prefix: format!("{base}/"),
            limit: Some(1500),
            start_after: p1.items.last().map(|kv| kv.key.clone()),
            revision: Some(p1.revision),
        })
        .await
        .expect("page 2");
    assert_eq!((p2.items.len(), p2.more), (N - 1500, false));
    assert_eq!(p2.items[0].key, format!("{base}/k01500"));
}

/// A list at a past revision sees the values of then, including keys deleted since.
pub async fn list_at_past_revision(store: Arc<dyn Store>, base: &str) {
    let a = store.create(&format!("{base}/a"), b("a1")).await.expect("create a");
    let bb = store.create(&format!("{base}/b"), b("b1")).await.expect("create b");
    let then = bb.mod_revision;
    store.update(&format!("{base}/a"), b("a2"), a.mod_revision).await.expect("update a");
    store.delete(&format!("{base}/b"), None).await.expect("delete b");
    store.create(&format!("{base}/c"), b("c1")).await.expect("create c");
    let old = store
        .list(ListOptions { prefix: format!("{base}/"), revision: Some(then), ..Default::default() })
        .await
        .expect("list at past revision");
    assert_eq!(old.revision, then);
    let pairs: Vec<_> = old.items.iter().map(|kv| (kv.key.clone(), kv.value.clone(), kv.mod_revision)).collect();
    assert_eq!(
        pairs,
        vec![(format!("{base}/a"), b("a1"), a.mod_revision), (format!("{base}/b"), b("b1"), bb.mod_revision)]
    );
    let page = store
        .list(ListOptions {
            prefix: format!("{base}/"),
            revision: Some(then),
            start_after: Some(format!("{base}/a")),
            limit: Some(1),
        })
        .await
        .expect("page at past revision");
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].key, format!("{base}/b"));
    let now = store.list(ListOptions { prefix: format!("{base}/"), ..Default::default() }).await.expect("list");
    let keys: Vec<_> = now.items.iter().map(|kv| (kv.key.clone(), kv.value.clone())).collect();
    assert_eq!(keys, vec![(format!("{base}/a"), b("a2")), (format!("{base}/c"), b("c1"))]);
}

/// A watch from a past revision replays what happened since, with previous values, then continues live.
pub async fn watch_from_revision(store: Arc<dyn Store>, base: &str) {
    let key = format!("{base}/a");
    let kv1 = store.create(&key, b("1")).await.expect("create");
    let kv2 = store.update(&key, b("2"), kv1.mod_revision).await.expect("update");
    let (_, del) = store.delete(&key, None).await.expect("delete");

    let mut w = store.watch(&format!("{base}/"), kv1.mod_revision - 1).await.expect("watch");
    match next_event(&mut w).await.expect("event 1") {
        WatchEvent::Put { kv, prev } => {
            assert_eq!(kv, kv1);
            assert_eq!(prev, None, "a create has no previous value");
        }
        other => panic!("expected the create, got {other:?}"),
    }
    match next_event(&mut w).await.expect("event 2") {
        WatchEvent::Put { kv, prev } => {
            assert_eq!(kv, kv2);
            assert_eq!(prev.as_ref(), Some(&kv1), "an update carries the previous value");
        }
        other => panic!("expected the update, got {other:?}"),
    }
    match next_event(&mut w).await.expect("event 3") {
        WatchEvent::Delete { prev, revision } => {
            assert_eq!(prev, kv2);
            assert_eq!(revision, del);
        }
        other => panic!("expected the delete, got {other:?}"),
    }
    // Then live.
    let kv3 = store.create(&key, b("3")).await.expect("create again");
    match next_event(&mut w).await.expect("event 4") {
        WatchEvent::Put { kv, .. } => assert_eq!(kv, kv3),
        other => panic!("expected the live create, got {other:?}"),
    }
    // From the middle: only what came after.
    let mut w2 = store.watch(&format!("{base}/"), kv2.mod_revision).await.expect("watch from middle");
    assert!(matches!(next_event(&mut w2).await.expect("event"), WatchEvent::Delete { revision, .. } if revision == del));
    store.delete(&key, None).await.expect("delete");
}

/// Live events in revision order, filtered by prefix, to many watchers at once.
pub async fn watch_live_and_prefix(store: Arc<dyn Store>, base: &str) {
    let start = store.current_revision().await.expect("current revision");
    let mut watchers = Vec::new();
    for _ in 0..20 {
        watchers.push(store.watch(&format!("{base}/in/"), start).await.expect("watch"));
    }
    let mut want: Vec<Revision> = Vec::new();
    for n in 0..30 {
        // Interleave keys outside the prefix, which must not be delivered.
        store.create(&format!("{base}/out/{n}"), b("x")).await.expect("create outside");
        let kv = store.create(&format!("{base}/in/{n}"), b("y")).await.expect("create inside");
        want.push(kv.mod_revision);
    }
    for w in watchers.iter_mut() {
        let mut got = Vec::new();
        while got.len() < want.len() {
            let ev = next_event(w).await.expect("event");
            match &ev {
                WatchEvent::Put { kv, .. } => assert!(kv.key.starts_with(&format!("{base}/in/")), "{} leaked", kv.key),
                other => panic!("unexpected {other:?}"),
            }
            got.push(ev.revision());
        }
        assert_eq!(got, want, "every watcher sees every matching event once, in order");
    }
}

/// After compaction, reads and watches below the compaction point fail `Compacted`; above it they work.
pub async fn compaction(store: Arc<dyn Store>, base: &str) {
    let key = format!("{base}/a");
    let mut kv = store.create(&key, b("0")).await.expect("create");
    let first = kv.mod_revision;
    for n in 1..5 {
        kv = store.update(&key, b(&n.to_string()), kv.mod_revision).await.expect("update");
    }
    let keep = store.create(&format!("{base}/b"), b("kept")).await.expect("create b");
    let point = keep.mod_revision;
    store.compact(point).await.expect("compact");
    store.compact(point).await.expect("compacting again to the same revision is a no-op");

    match store.list(ListOptions { prefix: format!("{base}/"), revision: Some(first), ..Default::default() }).await {
        Err(StorageError::Compacted { requested, .. }) => assert_eq!(requested, first),
        other => panic!("list below the compaction point must fail Compacted, got {other:?}"),
    }
    match store.watch(&format!("{base}/"), first).await {
        Err(StorageError::Compacted { .. }) => {}
        Ok(mut w) => match tokio::time::timeout(EVENT_TIMEOUT, w.next()).await {
            Ok(Some(Err(StorageError::Compacted { .. }))) => {}
            other => panic!("watch below the compaction point must fail Compacted, got {other:?}"),
        },
        Err(e) => panic!("watch below the compaction point must fail Compacted, got {e}"),
    }
    // The compaction point itself is still readable: the latest version of each key at that revision.
    let at = store
        .list(ListOptions { prefix: format!("{base}/"), revision: Some(point), ..Default::default() })
        .await
        .expect("list at the compaction point");
    let vals: Vec<_> = at.items.iter().map(|kv| kv.value.clone()).collect();
    assert_eq!(vals, vec![b("4"), b("kept")]);
    // Watching from the compaction point works and sees later writes.
    let mut w = store.watch(&format!("{base}/"), point).await.expect("watch from the compaction point");
    let next = store.update(&key, b("5"), kv.mod_revision).await.expect("update after compaction");
    match next_event(&mut w).await.expect("event") {
        WatchEvent::Put { kv: got, prev } => {
            assert_eq!(got, next);
            assert_eq!(prev.map(|p| p.value), Some(b("4")), "the previous value survives compaction");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(store.get(&key).await.expect("get").expect("exists").value, b("5"));
}

/// Two stores on one shared backend (two apiservers on one etcd) see each other's writes, in gets and watches,
/// and their optimistic concurrency holds across them.
pub async fn shared_backend(a: Arc<dyn Store>, b2: Arc<dyn Store>, base: &str) {
    let start = b2.current_revision().await.expect("current revision");
    let mut wb = b2.watch(&format!("{base}/"), start).await.expect("watch on b");
    let kv = a.create(&format!("{base}/x"), b("from-a")).await.expect("create on a");
    match next_event(&mut wb).await.expect("event on b") {
        WatchEvent::Put { kv: got, .. } => assert_eq!(got, kv, "b's watch sees a's write"),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(b2.get(&kv.key).await.expect("get on b"), Some(kv.clone()));
    let kv2 = b2.update(&kv.key, b("from-b"), kv.mod_revision).await.expect("update on b");
    assert!(matches!(a.update(&kv.key, b("stale"), kv.mod_revision).await, Err(StorageError::Conflict { .. })));
    assert_eq!(a.get(&kv.key).await.expect("get on a").map(|k| k.value), Some(b("from-b")));
    assert!(matches!(a.create(&kv.key, b("dup")).await, Err(StorageError::AlreadyExists { .. })));
    a.delete(&kv.key, Some(kv2.mod_revision)).await.expect("delete on a");
    let mut got_delete = false;
    while !got_delete {
        match next_event(&mut wb).await.expect("event on b") {
            WatchEvent::Put { kv, .. } => assert_eq!(kv, kv2),
            WatchEvent::Delete { prev, .. } => {
                assert_eq!(prev, kv2);
                got_delete = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
