//! Apiserver benchmark client (not a test): `bench URL SERVER_PID`. Run by `bench/apiserver.sh`, which starts
//! the server. Measures pod creates/s and p50/p99 latency at 16 and 64 concurrent clients (10,000 pods in
//! all), the time to list 10,000 pods (whole and in pages of 500), watch fan-out (1,000 watchers, time for one
//! event to reach all), and the server's RSS at rest with the 10,000 pods stored.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;

fn pod(name: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "bench", "labels": {"app": "bench", "shard": name.len().to_string()}},
        "spec": {"containers": [{"name": "main", "image": "busybox:1.36", "command": ["sleep", "3600"],
                  "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}
    }))
    .unwrap_or_default()
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// CPU time (user + system) the process has used, in seconds.
fn cpu_secs(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at state; utime and stime are 14th and 15th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Linux reports them in clock ticks of 1/100 s (USER_HZ).
    (ticks(11) + ticks(12)) / 100.0
}

fn rss_mib(pid: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

async fn creates(http: &reqwest::Client, url: &str, clients: usize, total: usize, offset: usize) -> (f64, Duration, Duration, usize) {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let http = http.clone();
        let next = next.clone();
        let url = format!("{url}/api/v1/namespaces/bench/pods");
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut failed = 0;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let body = pod(&format!("p-{}", offset + i));
                let t = Instant::now();
                match http.post(&url).header("Content-Type", "application/json").body(body).send().await {
                    Ok(r) if r.status().as_u16() == 201 => {
                        let _ = r.bytes().await;
                        lat.push(t.elapsed());
                    }
                    _ => failed += 1,
                }
            }
            (lat, failed)
        }));
    }
    let mut all = Vec::new();
    let mut failed = 0;
    for t in tasks {
        if let Ok((l, f)) = t.await {
            all.extend(l);
            failed += f;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    all.sort();
    (all.len() as f64 / secs, pct(&all, 0.5), pct(&all, 0.99), failed)
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "http://127.0.0.1:6443".into());
    let pid = args.next().unwrap_or_default();
    let http = reqwest::Client::builder().pool_max_idle_per_host(2048).build().expect("http client");
    let ns = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}});
    let _ = http.post(format!("{url}/api/v1/namespaces")).json(&ns).send().await;

    println!("rss_mib_empty {:.1}", rss_mib(&pid));
    for (clients, total, offset) in [(16usize, 4000usize, 0usize), (64, 6000, 4000)] {
        let cpu_before = cpu_secs(&pid);
        let (rate, p50, p99, failed) = creates(&http, &url, clients, total, offset).await;
        let server_cpu_us = (cpu_secs(&pid) - cpu_before) * 1e6 / total as f64;
        println!(
            "create_pods clients={clients} n={total} creates_per_s={rate:.0} p50_ms={:.2} p99_ms={:.2} failed={failed} server_cpu_us_per_create={server_cpu_us:.0}",
            p50.as_secs_f64() * 1000.0,
            p99.as_secs_f64() * 1000.0
        );
    }

    let t = Instant::now();
    let body = http.get(format!("{url}/api/v1/namespaces/bench/pods")).send().await.expect("list").bytes().await.expect("body");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    println!(
        "list_pods items={} bytes={} ms={:.0}",
        v["items"].as_array().map(Vec::len).unwrap_or(0),
        body.len(),
        t.elapsed().as_secs_f64() * 1000.0
    );
    let t = Instant::now();
    let mut cont = String::new();
    let mut n = 0;
    loop {
        let page: serde_json::Value = http
            .get(format!("{url}/api/v1/namespaces/bench/pods?limit=500&continue={cont}"))
            .send()
            .await
            .expect("page")
            .json()
            .await
            .unwrap_or_default();
        n += page["items"].as_array().map(Vec::len).unwrap_or(0);
        match page["metadata"]["continue"].as_str() {
            Some(c) if !c.is_empty() => cont = c.to_string(),
            _ => break,
        }
    }
    println!("list_pods_paged_500 items={n} ms={:.0}", t.elapsed().as_secs_f64() * 1000.0);

    // Settle, then RSS at rest with 10,000 pods stored.
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!("rss_mib_10000_pods {:.1}", rss_mib(&pid));

    // Watch fan-out: 1,000 watchers from the current revision, one event.
    let rv = http
        .get(format!("{url}/api/v1/namespaces/bench/pods?limit=1"))
        .send()
        .await
        .expect("rv")
        .json::<serde_json::Value>()
        .await
        .unwrap_or_default()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_string();
    let watchers = 1000;
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(watchers);
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<Instant>(watchers);
    for _ in 0..watchers {
        let client = reqwest::Client::new();
        let u = format!("{url}/api/v1/namespaces/bench/pods?watch=true&resourceVersion={rv}&fieldSelector=metadata.name%3Dfanout");
        let ready = ready_tx.clone();
        let done = done_tx.clone();
        tokio::spawn(async move {
            let Ok(resp) = client.get(&u).send().await else { return };
            let _ = ready.send(()).await;
            let mut s = resp.bytes_stream();
            while let Some(Ok(chunk)) = s.next().await {
                if chunk.windows(5).any(|w| w == b"ADDED") {
                    let _ = done.send(Instant::now()).await;
                    break;
                }
            }
        });
    }
    for _ in 0..watchers {
        let _ = ready_rx.recv().await;
    }
    println!("rss_mib_1000_watchers {:.1}", rss_mib(&pid));
    let t = Instant::now();
    let _ = http
        .post(format!("{url}/api/v1/namespaces/bench/pods"))
        .header("Content-Type", "application/json")
        .body(pod("fanout"))
        .send()
        .await;
    let mut last = t;
    let mut got = 0;
    while got < watchers {
        match tokio::time::timeout(Duration::from_secs(30), done_rx.recv()).await {
            Ok(Some(at)) => {
                got += 1;
                last = last.max(at);
            }
            _ => break,
        }
    }
    println!("watch_fanout watchers={watchers} received={got} ms_to_all={:.1}", (last - t).as_secs_f64() * 1000.0);
}
