//! Storage benchmark: pod creates at 16 and 64 concurrent writers (creates/s, p50, p99), a list of 10,000 objects
//! (whole and in pages of 500), watch fan-out to 1,000 watchers through the watch cache, and RSS with 10,000 pods
//! stored, on the embedded store and on etcd. Run by `bench/storage.sh`; prints one line per figure.
//!
//! etcd figures need Debian's etcd-server (`etcd` on PATH); the benchmark starts its own etcd on free 127.0.0.1
//! ports with its data in a temp dir, and kills it by PID when done.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use rkube_apiserver::storage::{self, ListOptions, Store, WatchCache, WatchEvent};
use rkube_testsupport::{poll_until, registry::free_port, ChildGuard};

/// A pod object of realistic size (~1.6 KB of JSON), as the API server would store it.
fn pod(ns: &str, name: &str) -> Bytes {
    let labels: String = (0..6).map(|i| format!("\"label-{i}\":\"value-{i}-{name}\",")).collect();
    Bytes::from(format!(
        concat!(
            "{{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{{\"name\":\"{name}\",\"namespace\":\"{ns}\",",
            "\"uid\":\"00000000-0000-4000-8000-{name:0>12}\",\"labels\":{{{labels}\"app\":\"bench\"}},",
            "\"creationTimestamp\":\"2026-01-01T00:00:00Z\"}},\"spec\":{{\"containers\":[{{\"name\":\"main\",",
            "\"image\":\"registry.local/busybox:1.36\",\"command\":[\"sh\",\"-c\",\"while true; do sleep 3600; done\"],",
            "\"resources\":{{\"requests\":{{\"cpu\":\"10m\",\"memory\":\"16Mi\"}},\"limits\":{{\"cpu\":\"100m\",",
            "\"memory\":\"64Mi\"}}}},\"env\":[{{\"name\":\"A\",\"value\":\"1\"}},{{\"name\":\"B\",\"value\":\"2\"}}],",
            "\"terminationMessagePath\":\"/dev/termination-log\",\"imagePullPolicy\":\"IfNotPresent\"}}],",
            "\"restartPolicy\":\"Always\",\"terminationGracePeriodSeconds\":30,\"dnsPolicy\":\"ClusterFirst\",",
            "\"schedulerName\":\"default-scheduler\",\"enableServiceLinks\":true,\"tolerations\":[{{\"key\":",
            "\"node.kubernetes.io/not-ready\",\"operator\":\"Exists\",\"effect\":\"NoExecute\",",
            "\"tolerationSeconds\":300}}]}},\"status\":{{\"phase\":\"Pending\",\"qosClass\":\"Burstable\"}}}}"
        ),
        ns = ns,
        name = name,
        labels = labels
    ))
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2}ms", d.as_secs_f64() * 1e3)
}

/// `total` creates from `writers` concurrent tasks; prints creates/s, p50, p99.
async fn creates(backend: &str, store: &Arc<dyn Store>, writers: usize, total: usize, tag: &str) {
    let per = total / writers;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        let tag = tag.to_string();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per);
            for n in 0..per {
                let name = format!("{tag}-{w}-{n}");
                let key = format!("/registry/pods/bench/{name}");
                let value = pod("bench", &name);
                let t = Instant::now();
                store.create(&key, value).await.expect("create");
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut lat = Vec::with_capacity(total);
    for t in tasks {
        lat.extend(t.await.expect("writer task"));
    }
    let elapsed = start.elapsed();
    lat.sort();
    println!(
        "{backend:8} creates  writers={writers:3} n={:6}  {:8.0} creates/s  p50={}  p99={}  max={}",
        lat.len(),
        lat.len() as f64 / elapsed.as_secs_f64(),
        ms(pct(&lat, 0.5)),
        ms(pct(&lat, 0.99)),
        ms(lat.last().copied().unwrap_or_default())
    );
}

/// Fills the store to `count` pods under /registry/pods/list/ with 64 writers.
async fn fill(store: &Arc<dyn Store>, count: usize) {
    let writers = 64;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = w;
            while n < count {
                let name = format!("pod-{n:05}");
                store.create(&format!("/registry/pods/list/{name}"), pod("list", &name)).await.expect("fill");
                n += writers;
            }
        }));
    }
    for t in tasks {
        t.await.expect("fill task");
    }
}

async fn lists(backend: &str, store: &Arc<dyn Store>, count: usize) {
    let prefix = "/registry/pods/list/".to_string();
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        let l = store.list(ListOptions { prefix: prefix.clone(), ..Default::default() }).await.expect("list");
        best = best.min(t.elapsed());
        assert_eq!(l.items.len(), count);
    }
    println!("{backend:8} list     {count} objects in one response: {} (best of 5)", ms(best));
    let t = Instant::now();
    let mut start_after = None;
    let mut revision = None;
    let mut n = 0;
    loop {
        let page = store
            .list(ListOptions { prefix: prefix.clone(), start_after: start_after.clone(), limit: Some(500), revision })
            .await
            .expect("list page");
        n += page.items.len();
        revision = Some(page.revision);
        if !page.more {
            break;
        }
        start_after = page.items.last().map(|kv| kv.key.clone());
    }
    assert_eq!(n, count);
    println!("{backend:8} list     {count} objects in pages of 500 at one revision: {}", ms(t.elapsed()));
}

/// 1,000 watchers on the pod prefix through one watch cache; one writer makes `events` updates.
async fn fanout(backend: &str, inner: Arc<dyn Store>, watchers: usize, events: usize) {
    let cache: Arc<dyn Store> = WatchCache::new(inner).await.expect("watch cache");
    let from = cache.current_revision().await.expect("revision");
    let mut tasks = Vec::new();
    let t0 = Instant::now();
    for _ in 0..watchers {
        let mut w = cache.watch("/registry/pods/fan/", from).await.expect("watch");
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::with_capacity(events);
            while got.len() < events {
                match w.next().await {
                    Some(Ok(WatchEvent::Progress { .. })) => {}
                    Some(Ok(ev)) => got.push((ev.revision(), Instant::now())),
                    Some(Err(e)) => panic!("watch error: {e}"),
                    None => panic!("watch ended"),
                }
            }
            got
        }));
    }
    let setup = t0.elapsed();
    let rss_watchers = rss_mib();
    let start = Instant::now();
    let mut sent = std::collections::HashMap::new();
    let mut kv = cache.create("/registry/pods/fan/p", pod("fan", "p")).await.expect("create");
    sent.insert(kv.mod_revision, start);
    for _ in 1..events {
        let t = Instant::now();
        kv = cache.update("/registry/pods/fan/p", pod("fan", "p"), kv.mod_revision).await.expect("update");
        sent.insert(kv.mod_revision, t);
    }
    let mut lat = Vec::with_capacity(watchers * events);
    for t in tasks {
        for (rev, at) in t.await.expect("watcher") {
            lat.push(at.duration_since(sent[&rev]));
        }
    }
    let elapsed = start.elapsed();
    lat.sort();
    println!(
        "{backend:8} fan-out  {watchers} watchers x {events} events = {} deliveries in {} ({:.0}/s); write->delivery p50={} p99={}; {} to open the watches; RSS with watchers {:.1} MiB",
        lat.len(),
        ms(elapsed),
        lat.len() as f64 / elapsed.as_secs_f64(),
        ms(pct(&lat, 0.5)),
        ms(pct(&lat, 0.99)),
        ms(setup),
        rss_watchers
    );
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

async fn run(backend: &str, store: Arc<dyn Store>, creates_total: usize) {
    creates(backend, &store, 16, creates_total, "c16").await;
    creates(backend, &store, 64, creates_total, "c64").await;
    fill(&store, 10_000).await;
    lists(backend, &store, 10_000).await;
    println!("{backend:8} rss      {:.1} MiB (benchmark process, store holding {} pods)", rss_mib(), 10_000 + 2 * creates_total);
    fanout(backend, store, 1000, 200).await;
}

struct Etcd {
    endpoint: String,
    _child: ChildGuard,
    _dir: tempfile::TempDir,
}

fn start_etcd() -> Option<Etcd> {
    let bin = ["/usr/bin/etcd", "/usr/local/bin/etcd"].into_iter().find(|p| std::path::Path::new(p).exists())?;
    let dir = tempfile::tempdir().expect("tempdir");
    let (client, peer) = (free_port(), free_port());
    let child = std::process::Command::new(bin)
        .args(["--name", "bench", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--listen-client-urls", &format!("http://127.0.0.1:{client}")])
        .args(["--advertise-client-urls", &format!("http://127.0.0.1:{client}")])
        .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
        .args(["--initial-advertise-peer-urls", &format!("http://127.0.0.1:{peer}")])
        .args(["--initial-cluster", &format!("bench=http://127.0.0.1:{peer}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start etcd");
    let child = ChildGuard::new(child, "etcd");
    poll_until("etcd to accept connections", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", client)).ok()
    });
    Some(Etcd { endpoint: format!("http://127.0.0.1:{client}"), _child: child, _dir: dir })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let only = |name: &str| !args.iter().any(|a| a == "--embedded" || a == "--etcd") || args.iter().any(|a| a == name);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    println!("storage benchmark: {} cores", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    if only("--embedded") {
        let dir = tempfile::tempdir_in(std::env::var("RKUBE_BENCH_DIR").unwrap_or_else(|_| "/var/tmp".into()))
            .expect("tempdir");
        rt.block_on(async {
            let store = storage::open_embedded(dir.path().join("state.redb")).expect("open embedded");
            run("embedded", store, 6400).await;
        });
        let size = std::fs::metadata(dir.path().join("state.redb")).map(|m| m.len()).unwrap_or(0);
        println!("embedded file    {:.1} MiB", size as f64 / (1 << 20) as f64);
    }
    if only("--etcd") {
        match start_etcd() {
            Some(etcd) => rt.block_on(async {
                let store = storage::open_etcd(std::slice::from_ref(&etcd.endpoint), "/bench").await.expect("connect etcd");
                run("etcd", store, 3200).await;
            }),
            None => println!("etcd     skipped: etcd is not installed (apt-get install -y etcd-server)"),
        }
    }
}
