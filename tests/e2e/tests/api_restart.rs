//! Restart safety through the HTTP API: clients storm the apiserver with creates, something is killed with
//! SIGKILL mid-storm, and every create that was answered 201 is there afterwards with the resourceVersion it
//! was acknowledged at.
//!
//! - embedded store: the apiserver process itself is killed (this test binary re-executes itself as the server,
//!   the `apiserver_child` test, which does nothing unless `RKUBE_E2E_APISERVER_CHILD` is set), then a new
//!   server is started on the same data dir;
//! - etcd: etcd is killed and restarted on its data dir, and the same apiserver must serve again.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rkube_apiserver::server::{open_backend, Backend};
use rkube_apiserver::{ApiServer, ServerConfig};
use rkube_testsupport::registry::free_port;
use rkube_testsupport::{poll_until, ChildGuard};
use serde_json::json;

#[path = "../../../apiserver/tests/storage_common/mod.rs"]
mod storage_common;

const CHILD_ENV: &str = "RKUBE_E2E_APISERVER_CHILD";
const CLIENTS: usize = 32;
const CMS: &str = "/api/v1/namespaces/default/configmaps";

/// The server process for these tests; a no-op when run as a normal test. `RKUBE_E2E_APISERVER_CHILD` is
/// `PORT DATA_DIR` (embedded store) or `PORT DATA_DIR ETCD_ENDPOINT`.
#[test]
fn apiserver_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else { return };
    let parts: Vec<&str> = spec.split(' ').collect();
    let port: u16 = parts[0].parse().expect("port");
    let dir = std::path::PathBuf::from(parts[1]);
    let backend = match parts.get(2) {
        Some(etcd) => Backend::Etcd { endpoints: vec![etcd.to_string()], prefix: "/rkube".into() },
        None => Backend::Embedded(dir.join("state.redb")),
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async move {
        let opened = open_backend(&backend).await.expect("child opens the store");
        let addr = format!("127.0.0.1:{port}").parse().expect("addr");
        let _server = ApiServer::start(opened.store.clone(), ServerConfig::new(addr)).await.expect("child starts the apiserver");
        // Bounded so an orphaned child cannot serve forever if the parent dies first.
        tokio::time::sleep(Duration::from_secs(120)).await;
    });
}

/// Starts `apiserver_child` serving on `port` and waits for /readyz.
fn start_child(port: u16, dir: &std::path::Path, etcd: Option<&str>) -> ChildGuard {
    let spec = match etcd {
        Some(e) => format!("{port} {} {e}", dir.display()),
        None => format!("{port} {}", dir.display()),
    };
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("apiserver.log")).expect("child log");
    let child = Command::new(std::env::current_exe().expect("test binary path"))
        .args(["apiserver_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, spec)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start apiserver child");
    let mut guard = ChildGuard::new(child, "apiserver child");
    poll_until("the apiserver child to be ready", Duration::from_secs(30), || {
        assert!(guard.is_running(), "apiserver child exited: {}", std::fs::read_to_string(dir.join("apiserver.log")).unwrap_or_default());
        ready(port).then_some(())
    });
    guard
}

fn ready(port: u16) -> bool {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let r = reqwest::Client::new().get(format!("http://127.0.0.1:{port}/readyz")).timeout(Duration::from_secs(2)).send().await;
        matches!(r, Ok(r) if r.status().is_success())
    })
}

/// Acknowledged creates: name -> resourceVersion from the 201 answer.
type Acked = Arc<Mutex<HashMap<String, String>>>;

/// Creates ConfigMaps against `port` from `CLIENTS` tasks until `stop`, recording each 201.
fn storm(rt: &tokio::runtime::Runtime, port: u16, stop: Arc<AtomicBool>, acked: Acked) -> Vec<tokio::task::JoinHandle<()>> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("http client");
    (0..CLIENTS)
        .map(|t| {
            let (http, stop, acked) = (http.clone(), stop.clone(), acked.clone());
            rt.spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let name = format!("storm-{t}-{n}");
                    n += 1;
                    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"n": name}});
                    let Ok(resp) = http.post(format!("http://127.0.0.1:{port}{CMS}")).json(&body).send().await else {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    };
                    if resp.status().as_u16() != 201 {
                        continue;
                    }
                    // Only a complete 201 body is an acknowledgement the client could have acted on.
                    let Ok(obj) = resp.json::<serde_json::Value>().await else { continue };
                    let rv = obj["metadata"]["resourceVersion"].as_str().unwrap_or_default().to_string();
                    acked.lock().expect("lock").insert(name, rv);
                }
            })
        })
        .collect()
}

fn wait_for_acks(acked: &Acked, n: usize) {
    poll_until(&format!("{n} acknowledged creates"), Duration::from_secs(90), || (acked.lock().expect("lock").len() >= n).then_some(()));
}

/// Lists the ConfigMaps through the apiserver on `port` and checks every acknowledged one, then that a new
/// create still works.
fn check_acked(rt: &tokio::runtime::Runtime, port: u16, acked: &HashMap<String, String>) {
    rt.block_on(async {
        let http = reqwest::Client::new();
        let list: serde_json::Value = http
            .get(format!("http://127.0.0.1:{port}{CMS}"))
            .send()
            .await
            .expect("list after restart")
            .json()
            .await
            .expect("list body");
        let stored: HashMap<&str, (&str, &str)> = list["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|i| {
                Some((i["metadata"]["name"].as_str()?, (i["metadata"]["resourceVersion"].as_str()?, i["data"]["n"].as_str()?)))
            })
            .collect();
        for (name, rv) in acked {
            let (got_rv, data) = stored.get(name.as_str()).unwrap_or_else(|| panic!("acknowledged ConfigMap {name} (rv {rv}) was lost"));
            assert_eq!((got_rv, data), (&rv.as_str(), &name.as_str()), "{name} as acknowledged");
        }
        let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "after-restart"}});
        let resp = http.post(format!("http://127.0.0.1:{port}{CMS}")).json(&body).send().await.expect("create after restart");
        assert_eq!(resp.status().as_u16(), 201, "the apiserver serves writes again");
    });
}

#[test]
fn embedded_apiserver_kill9_loses_no_acknowledged_create() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let port = free_port();
    let mut server = start_child(port, dir.path(), None);
    let (stop, acked): (Arc<AtomicBool>, Acked) = Default::default();
    let tasks = storm(&rt, port, stop.clone(), acked.clone());
    wait_for_acks(&acked, 1000);
    let pid = server.pid().to_string();
    assert!(Command::new("kill").args(["-KILL", &pid]).status().expect("kill -9").success());
    poll_until("the apiserver child to die", Duration::from_secs(10), || (!server.is_running()).then_some(()));
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        rt.block_on(t).expect("storm task");
    }
    drop(server);
    let acked = acked.lock().expect("lock").clone();

    let port = free_port();
    let _server = start_child(port, dir.path(), None);
    check_acked(&rt, port, &acked);
    eprintln!("embedded: {} acknowledged creates, all present after kill -9 of the apiserver", acked.len());
}

#[test]
fn etcd_kill9_under_the_apiserver_loses_no_acknowledged_create() {
    let mut etcd = storage_common::Etcd::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let port = free_port();
    let _server = start_child(port, dir.path(), Some(&etcd.endpoint));
    let (stop, acked): (Arc<AtomicBool>, Acked) = Default::default();
    let tasks = storm(&rt, port, stop.clone(), acked.clone());
    wait_for_acks(&acked, 500);
    etcd.kill9();
    let at_kill = acked.lock().expect("lock").len();
    etcd.restart();
    // The same apiserver reconnects to the restarted etcd and keeps taking writes.
    let more = at_kill + 50;
    wait_for_acks(&acked, more);
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        rt.block_on(t).expect("storm task");
    }
    let acked = acked.lock().expect("lock").clone();
    check_acked(&rt, port, &acked);
    eprintln!("etcd: {} acknowledged creates ({at_kill} before the kill), all present after kill -9 of etcd", acked.len());
}
