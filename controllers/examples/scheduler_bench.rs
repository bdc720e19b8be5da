//! Scheduler benchmark (not a test).
//!
//! `core` mode: the scheduling core alone (cache + filters + scores) over simulated nodes in memory —
//! pods/s decided and p99 per-pod decision latency. `e2e` mode: rkube's apiserver in-process, simulated Node
//! objects, pending pods created through the API, the real scheduler binding them through pods/binding —
//! pods/s bound and p99 latency from the pod's creation to its binding being visible in a watch; plus a
//! Deployment scaled 0→N with the controller manager running, timed until every pod is bound.
//!
//! cargo run --release -p rkube-controllers --example scheduler_bench -- core 5000 10000
//! cargo run --release -p rkube-controllers --example scheduler_bench -- e2e 5000 10000
//! cargo run --release -p rkube-controllers --example scheduler_bench -- deploy 100 1000

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use rkube_controllers::scheduler::{Scheduler, SchedulerConfig};
use serde_json::json;

fn node(i: usize) -> Node {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": format!("node-{i}"), "labels": {"kubernetes.io/hostname": format!("node-{i}"), "zone": format!("z{}", i % 3)}},
        "status": {
            "allocatable": {"cpu": "32", "memory": "128Gi", "pods": "110"},
            "capacity": {"cpu": "32", "memory": "128Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}]
        }
    }))
    .expect("node json")
}

fn pod(i: usize, owner: usize) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("p-{i}"), "namespace": "default", "labels": {"app": format!("a{owner}")},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("rs-{owner}"), "uid": format!("uid-{owner}"), "controller": true}]},
        "spec": {"containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}
    }))
    .expect("pod json")
}

/// Upstream scheduler_perf's floor for SchedulingBasic 5000 nodes / 10000 pods (pods/s), and our target.
const UPSTREAM_FLOOR: f64 = 680.0;
const TARGET: f64 = 1000.0;

fn ratios(throughput: f64) -> String {
    format!("ratio to upstream floor {UPSTREAM_FLOOR:.0}: {:.2}x, to our target {TARGET:.0}: {:.2}x", throughput / UPSTREAM_FLOOR, throughput / TARGET)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

fn core(nodes: usize, pods: usize) {
    let mut s = Scheduler::new(SchedulerConfig::default());
    let now = tokio::time::Instant::now();
    for i in 0..nodes {
        s.on_node(&node(i), now);
    }
    for i in 0..pods {
        s.on_pod(pod(i, i % 50), now);
    }
    let mut lat = Vec::with_capacity(pods);
    let start = Instant::now();
    let mut bound = 0;
    loop {
        let t = Instant::now();
        match s.schedule_next(now) {
            Some(Ok(_)) => bound += 1,
            Some(Err((_, msg))) => panic!("unschedulable in benchmark: {msg}"),
            None => break,
        }
        lat.push(t.elapsed());
    }
    let total = start.elapsed();
    lat.sort();
    let tput = bound as f64 / total.as_secs_f64();
    println!(
        "core nodes={nodes} pods={bound} time={:.3}s throughput={tput:.0} pods/s p50={:?} p99={:?}; {}",
        total.as_secs_f64(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        ratios(tput)
    );
}

async fn start_server() -> (rkube_apiserver::ApiServer, Client) {
    let store = Arc::new(rkube_apiserver::memory_store::MemoryStore::new());
    let server = rkube_apiserver::ApiServer::start(store, rkube_apiserver::ServerConfig::new("127.0.0.1:0".parse().expect("addr")))
        .await
        .expect("start apiserver");
    let client = Client::try_from(kube::Config::new(server.url().parse().expect("url"))).expect("client");
    (server, client)
}

async fn create_nodes(client: &Client, n: usize) {
    let api: Api<Node> = Api::all(client.clone());
    let stream = futures::stream::iter(0..n).map(|i| {
        let api = api.clone();
        async move {
            let nd = node(i);
            let created = api.create(&PostParams::default(), &nd).await.expect("create node");
            let st = json!({"status": nd.status});
            api.patch_status(&created.name_any(), &PatchParams::default(), &Patch::Merge(&st)).await.expect("node status");
        }
    });
    stream.buffer_unordered(32).collect::<Vec<_>>().await;
}

/// Watch pods and record when each first appears and when it is first seen bound.
fn track(client: &Client, ns: &str) -> tokio::sync::mpsc::UnboundedReceiver<(String, bool, Instant)> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    tokio::spawn(async move {
        let mut s = watcher(api, watcher::Config::default()).boxed();
        while let Some(ev) = s.next().await {
            if let Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) = ev {
                let bound = p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some();
                if tx.send((p.name_any(), bound, Instant::now())).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

async fn e2e(nodes: usize, pods: usize) {
    let (_server, client) = start_server().await;
    let t = Instant::now();
    create_nodes(&client, nodes).await;
    eprintln!("created {nodes} nodes in {:.1}s", t.elapsed().as_secs_f64());
    let mut seen = track(&client, "default");
    let sched_client = client.clone();
    let sched = tokio::spawn(async move {
        let cfg = SchedulerConfig { record_scheduled_events: false, ..Default::default() };
        let _ = rkube_controllers::run_scheduler(sched_client, cfg).await;
    });
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let start = Instant::now();
    let creator = {
        let api = api.clone();
        tokio::spawn(async move {
            futures::stream::iter(0..pods)
                .map(|i| {
                    let api = api.clone();
                    async move {
                        let mut p = pod(i, i % 50);
                        p.metadata.owner_references = None;
                        api.create(&PostParams::default(), &p).await.expect("create pod");
                    }
                })
                .buffer_unordered(32)
                .collect::<Vec<_>>()
                .await;
        })
    };
    let mut first_seen: HashMap<String, Instant> = HashMap::new();
    let mut lat = Vec::with_capacity(pods);
    let mut first_bind: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    while lat.len() < pods && Instant::now() < deadline {
        let Some((name, bound, at)) = seen.recv().await else { break };
        if bound {
            if let Some(t0) = first_seen.remove(&name) {
                first_bind.get_or_insert(at);
                lat.push(at - t0);
            }
        } else {
            first_seen.entry(name).or_insert(at);
        }
    }
    let total = start.elapsed();
    let _ = creator.await;
    sched.abort();
    lat.sort();
    let bind_window = first_bind.map(|f| total - (f - start)).unwrap_or(total);
    let tput = lat.len() as f64 / total.as_secs_f64();
    println!(
        "e2e nodes={nodes} pods={} total={:.2}s throughput={tput:.0} pods/s (creation included) p50={:?} p99={:?} (creation→bound seen in watch); binding window {:.2}s; {}",
        lat.len(),
        total.as_secs_f64(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        bind_window.as_secs_f64(),
        ratios(tput),
    );
}

async fn deploy(nodes: usize, replicas: usize) {
    let (_server, client) = start_server().await;
    create_nodes(&client, nodes).await;
    let c1 = client.clone();
    let ctl = tokio::spawn(async move {
        let _ = rkube_controllers::run_all(c1, rkube_controllers::Config::default()).await;
    });
    let c2 = client.clone();
    let sched = tokio::spawn(async move {
        let cfg = SchedulerConfig { record_scheduled_events: false, ..Default::default() };
        let _ = rkube_controllers::run_scheduler(c2, cfg).await;
    });
    let mut seen = track(&client, "default");
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "scale", "namespace": "default"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "scale"}},
                 "template": {"metadata": {"labels": {"app": "scale"}}, "spec": {"containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}}
    }))
    .expect("deployment json");
    let dapi: Api<Deployment> = Api::namespaced(client.clone(), "default");
    dapi.create(&PostParams::default(), &d).await.expect("create deployment");
    // scale only once the controllers have acted on the 0-replica Deployment (observedGeneration caught up)
    let settle = Instant::now() + Duration::from_secs(60);
    loop {
        let d = dapi.get("scale").await.expect("get deployment");
        let observed = d.status.as_ref().and_then(|s| s.observed_generation);
        if observed.is_some() && observed >= d.metadata.generation {
            break;
        }
        assert!(Instant::now() < settle, "deployment controller never observed the Deployment");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let start = Instant::now();
    dapi.patch("scale", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"replicas": replicas}}))).await.expect("scale");
    let mut bound = std::collections::HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    while bound.len() < replicas && Instant::now() < deadline {
        let Some((name, is_bound, _)) = seen.recv().await else { break };
        if is_bound {
            bound.insert(name);
        }
    }
    println!("deploy nodes={nodes} replicas={} scale-up 0→{replicas} all bound in {:.2}s", bound.len(), start.elapsed().as_secs_f64());
    ctl.abort();
    sched.abort();
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("core");
    let a: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let b: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(10000);
    match mode {
        "core" => core(a, b),
        "e2e" => e2e(a, b).await,
        "deploy" => deploy(a, b).await,
        other => eprintln!("unknown mode {other}: use core|e2e|deploy"),
    }
}
