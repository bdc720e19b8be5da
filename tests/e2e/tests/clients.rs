//! Client libraries against rkube's apiserver: kube-rs's watcher keeps a reflector in sync across an apiserver
//! restart, and the Python `kubernetes` client lists and watches.

mod common;

use std::process::Command;
use std::time::Duration;

use common::TestServer;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::{reflector, watcher, WatchStreamExt};
use rkube_testsupport::poll_until;
use serde_json::json;

fn configmap(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}})).expect("configmap")
}

#[test]
fn kube_rs_reflector_stays_in_sync_across_restart() {
    let mut s = TestServer::start();
    let url = s.url.clone();
    let (reader, api) = s.runtime().block_on(async move {
        let config = kube::Config::new(url.parse().expect("url"));
        let client = kube::Client::try_from(config).expect("client");
        let api: Api<ConfigMap> = Api::namespaced(client, "default");
        for n in ["a", "b", "c"] {
            api.create(&PostParams::default(), &configmap(n)).await.expect("create");
        }
        let (reader, writer) = reflector::store();
        let stream = reflector(writer, watcher(api.clone(), watcher::Config::default()))
            .default_backoff()
            .applied_objects();
        tokio::spawn(async move {
            futures::pin_mut!(stream);
            while stream.next().await.is_some() {}
        });
        (reader, api)
    });
    let names = |r: &reflector::Store<ConfigMap>| {
        let mut n: Vec<String> = r.state().iter().filter_map(|c| c.metadata.name.clone()).collect();
        n.sort();
        n
    };
    poll_until("the reflector to list a, b, c", Duration::from_secs(20), || (names(&reader) == ["a", "b", "c"]).then_some(()));

    s.restart();
    s.runtime().block_on(async {
        api.create(&PostParams::default(), &configmap("d")).await.expect("create after restart");
        api.delete("a", &DeleteParams::default()).await.expect("delete after restart");
    });
    poll_until("the reflector to see the changes made after the restart", Duration::from_secs(60), || {
        (names(&reader) == ["b", "c", "d"]).then_some(())
    });
}

#[test]
fn kube_rs_streaming_list_watcher_gets_initial_events_then_changes() {
    let s = TestServer::start();
    let url = s.url.clone();
    let reader = s.runtime().block_on(async move {
        let client = kube::Client::try_from(kube::Config::new(url.parse().expect("url"))).expect("client");
        let api: Api<ConfigMap> = Api::namespaced(client, "default");
        for n in ["x", "y"] {
            api.create(&PostParams::default(), &configmap(n)).await.expect("create");
        }
        let (reader, writer) = reflector::store();
        // sendInitialEvents=true: the snapshot arrives as ADDED events ending with the initial-events-end bookmark.
        let stream = reflector(writer, watcher(api.clone(), watcher::Config::default().streaming_lists()))
            .default_backoff()
            .applied_objects();
        tokio::spawn(async move {
            futures::pin_mut!(stream);
            while stream.next().await.is_some() {}
        });
        let ready = reader.clone();
        ready.wait_until_ready().await.expect("initial events end");
        api.create(&PostParams::default(), &configmap("z")).await.expect("create");
        reader
    });
    poll_until("the streaming-list reflector to hold x, y, z", Duration::from_secs(20), || {
        let mut n: Vec<String> = reader.state().iter().filter_map(|c| c.metadata.name.clone()).collect();
        n.sort();
        (n == ["x", "y", "z"]).then_some(())
    });
}

/// Where the venv with the Python `kubernetes` client lives: made once per machine (CI starts clean and makes it
/// on the first run; `RKUBE_TEST_VENV` overrides the place).
fn venv_dir() -> std::path::PathBuf {
    std::env::var_os("RKUBE_TEST_VENV").map(Into::into).unwrap_or_else(|| "/var/cache/rkube-test/venv".into())
}

/// The venv's python, creating the venv and `pip install kubernetes` (from PyPI) the first time. A lock file
/// keeps two test processes from building it at once; a marker written last says the install finished.
fn python_with_kubernetes() -> std::path::PathBuf {
    let venv = venv_dir();
    let parent = venv.parent().expect("venv has a parent directory");
    std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("create {}: {e}", parent.display()));
    let lock = std::fs::File::create(parent.join(".venv.lock")).expect("venv lock file");
    lock.lock().expect("lock the venv");
    let python = venv.join("bin/python");
    let ready = venv.join(".rkube-installed");
    if !ready.exists() {
        let _ = std::fs::remove_dir_all(&venv);
        let st = Command::new("python3").args(["-m", "venv"]).arg(&venv).status().expect("python3 -m venv (apt-get install python3-venv)");
        assert!(st.success(), "python3 -m venv {} failed (is python3-venv installed?)", venv.display());
        let st = Command::new(venv.join("bin/pip")).args(["install", "--quiet", "kubernetes"]).status().expect("pip");
        assert!(st.success(), "pip install kubernetes into {} failed (needs PyPI)", venv.display());
        std::fs::write(&ready, "").expect("marker");
    }
    python
}

#[test]
fn python_client_lists_and_watches() {
    let s = TestServer::start();
    let python = python_with_kubernetes();
    let script = s.write(
        "client.py",
        r#"
import sys
from kubernetes import client, config, watch
config.load_kube_config(config_file=sys.argv[1])
v1 = client.CoreV1Api()
names = sorted(ns.metadata.name for ns in v1.list_namespace().items)
assert names == ["default", "kube-node-lease", "kube-public", "kube-system"], names
v1.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py", labels={"from": "python"}), data={"a": "b"}))
cms = v1.list_namespaced_config_map("default", label_selector="from=python")
assert [c.metadata.name for c in cms.items] == ["py"], cms
rv = cms.metadata.resource_version
v1.patch_namespaced_config_map("py", "default", {"data": {"a": "c"}})
w = watch.Watch()
seen = []
for ev in w.stream(v1.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=10):
    seen.append((ev["type"], ev["object"].metadata.name, ev["object"].data["a"]))
    break
assert seen == [("MODIFIED", "py", "c")], seen
apps = client.AppsV1Api()
apps.create_namespaced_deployment("default", {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "pyd"},
    "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}})
d = apps.read_namespaced_deployment("pyd", "default")
assert d.spec.replicas == 1 and d.spec.strategy.type == "RollingUpdate", d.spec
try:
    v1.read_namespaced_pod("missing", "default")
    raise SystemExit("expected 404")
except client.exceptions.ApiException as e:
    assert e.status == 404, e
print("ok")
"#,
    );
    let out = Command::new(python).arg(&script).arg(&s.kubeconfig).output().expect("run python");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok",
        "python client: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
