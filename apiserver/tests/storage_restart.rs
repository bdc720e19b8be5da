//! Restart safety: kill -9 in the middle of a write storm loses no acknowledged write.
//!
//! Embedded: the process holding the store is killed. This test binary re-executes itself as the writer (the
//! `writer_child` test, which does nothing unless `RKUBE_STORAGE_WRITER_DB` is set), reads each acknowledged key
//! from the child's stdout, SIGKILLs it mid-storm, reopens the file and checks every acknowledged key.
//! etcd: etcd itself is killed mid-storm, restarted on the same data dir, and every acknowledged key checked.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rkube_apiserver::storage::{self, Revision, Store};
use rkube_testsupport::{poll_until, ChildGuard};

mod storage_common;
use storage_common::Etcd;

const WRITER_ENV: &str = "RKUBE_STORAGE_WRITER_DB";
const WRITERS: usize = 32;

/// Creates keys from `WRITERS` concurrent tasks until `stop` says so, calling `ack` after each acknowledged one.
async fn storm(store: Arc<dyn Store>, stop: impl Fn() -> bool + Send + Sync + 'static, ack: impl Fn(&str, Revision) + Send + Sync + 'static) {
    let stop = Arc::new(stop);
    let ack = Arc::new(ack);
    let mut tasks = Vec::new();
    for t in 0..WRITERS {
        let (store, stop, ack) = (store.clone(), stop.clone(), ack.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop() {
                let key = format!("/registry/storm/{t}-{n}");
                if let Ok(kv) = store.create(&key, format!("value-{t}-{n}").into()).await {
                    ack(&key, kv.mod_revision);
                }
                n += 1;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// The writer process for `embedded_kill9_loses_no_acknowledged_write`; a no-op when run as a normal test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_child() {
    let Ok(path) = std::env::var(WRITER_ENV) else { return };
    let store = storage::open_embedded(&path).expect("child opens the store");
    println!("READY");
    // Bounded so an orphaned child cannot write forever if the parent dies first.
    let deadline = Instant::now() + Duration::from_secs(60);
    storm(store, move || Instant::now() > deadline, |key, rev| println!("ACK {key} {rev}")).await;
}

async fn check_acked(store: &Arc<dyn Store>, acked: &HashMap<String, Revision>) {
    for (key, rev) in acked {
        let kv = store.get(key).await.expect("get").unwrap_or_else(|| panic!("acknowledged key {key} (revision {rev}) was lost"));
        assert_eq!(kv.mod_revision, *rev, "{key} has the acknowledged revision");
        let (t, n) = key.trim_start_matches("/registry/storm/").split_once('-').expect("key shape");
        assert_eq!(kv.value, bytes::Bytes::from(format!("value-{t}-{n}")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_kill9_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.redb");
    let exe = std::env::current_exe().expect("test binary path");
    let mut child = Command::new(exe)
        .args(["writer_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(WRITER_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start writer child");
    let stdout = child.stdout.take().expect("child stdout");
    let mut guard = ChildGuard::new(child, "storage writer child");
    let pid = guard.pid();

    // Read acknowledgements on a thread; the test waits on their count.
    let acked: Arc<Mutex<HashMap<String, Revision>>> = Default::default();
    let reader = {
        let acked = acked.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("ACK ") {
                    if let Some((key, rev)) = rest.split_once(' ') {
                        let rev: Revision = rev.parse().expect("revision");
                        acked.lock().expect("lock").insert(key.to_string(), rev);
                    }
                }
            }
        })
    };
    poll_until("2,000 acknowledged writes", Duration::from_secs(60), || {
        assert!(guard.is_running(), "writer child exited early");
        (acked.lock().expect("lock").len() >= 2000).then_some(())
    });
    let status = Command::new("kill").args(["-KILL", &pid.to_string()]).status().expect("kill -9");
    assert!(status.success());
    poll_until("writer child to die", Duration::from_secs(10), || (!guard.is_running()).then_some(()));
    reader.join().expect("reader thread");
    drop(guard);

    let acked = acked.lock().expect("lock").clone();
    assert!(acked.len() >= 2000);
    let store = storage::open_embedded(&path).expect("reopen after kill -9");
    check_acked(&store, &acked).await;
    let max = acked.values().copied().max().unwrap_or(0);
    assert!(store.current_revision().await.expect("revision") >= max);
    eprintln!("embedded: {} acknowledged writes, all present after kill -9", acked.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_kill9_loses_no_acknowledged_write() {
    let mut etcd = Etcd::start();
    let store = etcd.store("/rkube").await;
    let acked: Arc<Mutex<HashMap<String, Revision>>> = Default::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (acked, stop) = (acked.clone(), stop.clone());
        tokio::spawn(storm(
            store.clone(),
            move || stop.load(std::sync::atomic::Ordering::Relaxed),
            move |key, rev| {
                acked.lock().expect("lock").insert(key.to_string(), rev);
            },
        ))
    };
    let counted = acked.clone();
    tokio::task::spawn_blocking(move || {
        poll_until("1,000 acknowledged writes", Duration::from_secs(60), || {
            (counted.lock().expect("lock").len() >= 1000).then_some(())
        })
    })
    .await
    .expect("wait");
    etcd.kill9();
    // Writes in flight now fail; stop the storm and keep what was acknowledged before the kill.
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let acked_snapshot = acked.lock().expect("lock").clone();
    etcd.restart();
    writer.await.expect("writer");
    let store = etcd.store("/rkube").await;
    check_acked(&store, &acked_snapshot).await;
    // Writes acknowledged between the kill and the stop (none should succeed against a dead etcd) also hold.
    let all = acked.lock().expect("lock").clone();
    check_acked(&store, &all).await;
    eprintln!("etcd: {} acknowledged writes, all present after kill -9 of etcd", acked_snapshot.len());
}
