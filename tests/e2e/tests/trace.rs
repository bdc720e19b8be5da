//! `rkube trace pod` on `rkube up` with the real kubectl, as root (issue 17, docs/trace.md):
//! - a Deployment's pod: its steps in the order the pod lived them, from the Deployment's create request, the
//!   deployment and replicaset controllers (which one, from which object), the scheduler's choice, the kubelet's
//!   sandbox (with the pod's IP as kubectl shows it), containers, to Ready; the trace id is the pod's
//!   `rkube.io/traceparent`; the kubelet's records answer through the apiserver's node proxy too;
//! - a pod that fits no node: the scheduler's step says why, with the node the filters removed; once the pod is
//!   deleted its trace is still shown;
//! - a missing pod: exit 1, a message naming it, nothing on stdout;
//! - the pods of a DaemonSet, a StatefulSet and a Job: each in its owner's trace, with the controller's step
//!   (which controller, from which object) between the owner's create request and the pod's;
//! - `rkube trace pod X --follow` started before X exists: it says it waits, prints X's steps once each and in
//!   order as they come, and ends by itself when X is Ready; one for a pod never created ends after --timeout.
//!
//! Needs the binaries: `cargo build --release -p rkube -p rkube-kubelet -p rkube-runtime -p rkube-cni --bins`.

mod up_support;

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rkube_testsupport::poll_until;
use serde_json::Value;
use up_support::{bin, Up};

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: trweb
spec:
  replicas: 1
  selector: {matchLabels: {app: trweb}}
  template:
    metadata:
      labels: {app: trweb}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: app
        image: busybox:latest
        imagePullPolicy: IfNotPresent
        command: ["sh", "-c", "exec sleep 3600"]
        readinessProbe:
          exec: {command: ["true"]}
          periodSeconds: 1
"#;

const UNSCHEDULABLE: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: trnowhere
spec:
  nodeSelector: {rkube.io/no-such-label: "x"}
  containers:
  - name: app
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sleep", "3600"]
"#;

/// `rkube trace` with the cluster's kubeconfig: (exit code, stdout, stderr).
fn trace(up: &Up, args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(bin("rkube"));
    cmd.arg("trace").args(args).arg("--kubeconfig").arg(up.kubeconfig()).env("RKUBE_LOG", "warn");
    let out = rkube_testsupport::output_within(&mut cmd, None, Duration::from_secs(60), "rkube trace");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn trace_json(up: &Up, pod: &str) -> Value {
    let (code, out, err) = trace(up, &["pod", pod, "-o", "json"]);
    assert_eq!(code, 0, "rkube trace pod {pod}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("rkube trace -o json printed no JSON ({e}): {out}"))
}

fn steps(doc: &Value) -> Vec<Value> {
    doc["steps"].as_array().cloned().unwrap_or_default()
}

fn attr<'a>(s: &'a Value, k: &str) -> &'a str {
    s["attributes"][k].as_str().unwrap_or_default()
}

/// The index of the first step `pred` matches, or a failure listing the steps.
fn position(all: &[Value], what: &str, pred: impl Fn(&Value) -> bool) -> usize {
    all.iter().position(pred).unwrap_or_else(|| {
        let names: Vec<String> = all.iter().map(|s| format!("{} {} {}", s["component"], s["name"], s["attributes"])).collect();
        panic!("no step {what} in the trace:\n{}", names.join("\n"))
    })
}

#[test]
fn trace_tells_a_pods_story_and_refuses_a_missing_pod() {
    let up = Up::start();
    let node = up.kubectl(&["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"]).trim().to_string();

    // a missing pod: exit 1, a clear message, nothing on stdout
    let (code, out, err) = trace(&up, &["pod", "nope"]);
    assert_eq!(code, 1, "a missing pod exits 1: {out} {err}");
    assert!(out.is_empty(), "nothing printed for a missing pod: {out}");
    assert!(err.contains("pod default/nope not found"), "the message names the pod: {err}");

    // a Deployment's pod, to Ready
    up.kubectl_ok(&["apply", "-f", "-"], Some(DEPLOYMENT));
    let pod = poll_until("the Deployment's pod Ready", Duration::from_secs(90), || {
        let out = up.kubectl_try(&["get", "pods", "-l", "app=trweb", "-o", "json"])?;
        let list: Value = serde_json::from_str(&out).ok()?;
        let p = list["items"].as_array()?.first()?.clone();
        let ready = p["status"]["conditions"].as_array()?.iter().any(|c| c["type"] == "Ready" && c["status"] == "True");
        ready.then_some(p)
    });
    let name = pod["metadata"]["name"].as_str().expect("pod name").to_string();
    let key = format!("default/{name}");
    let ip = pod["status"]["podIP"].as_str().expect("pod IP").to_string();
    let rs = pod["metadata"]["ownerReferences"][0]["name"].as_str().expect("owner").to_string();
    let traceparent = pod["metadata"]["annotations"]["rkube.io/traceparent"].as_str().expect("the pod carries its trace context").to_string();
    // the status step that says Ready is recorded when the kubelet reports it, which kubectl saw above
    let doc = poll_until("the trace reaches Ready", Duration::from_secs(30), || {
        let d = trace_json(&up, &name);
        steps(&d).iter().any(|s| s["name"] == "status" && attr(s, "ready") == "True").then_some(d)
    });
    assert_eq!(doc["kind"], "PodTrace");
    assert_eq!(doc["exists"], true);
    assert_eq!(doc["node"], node.as_str());
    let trace_id = doc["traceId"].as_str().expect("trace id").to_string();
    assert_eq!(traceparent.split('-').nth(1), Some(trace_id.as_str()), "the trace is the pod's annotation's");
    let all = steps(&doc);
    let deploy_create = position(&all, "the Deployment's create request", |s| {
        s["name"] == "apiserver.create" && attr(s, "resource") == "deployments" && attr(s, "object") == "default/trweb"
    });
    let rs_create = position(&all, "the deployment controller creating the ReplicaSet", |s| {
        s["name"] == "controller.create" && attr(s, "controller") == "deployment" && attr(s, "object") == format!("default/{rs}")
    });
    let pod_create = position(&all, "the replicaset controller creating the pod", |s| {
        s["name"] == "controller.create"
            && attr(s, "controller") == "replicaset"
            && attr(s, "owner") == format!("ReplicaSet/default/{rs}")
            && attr(s, "pod") == key
    });
    let stored = position(&all, "the pod's create request stored", |s| s["name"] == "apiserver.create" && attr(s, "pod") == key);
    let scheduled = position(&all, "the scheduler's choice", |s| s["name"] == "scheduler.schedule" && attr(s, "node") == node);
    let bound = position(&all, "the bind", |s| s["name"] == "scheduler.bind" && attr(s, "node") == node);
    let saw = position(&all, "the kubelet seeing the pod", |s| s["name"] == "kubelet saw the pod" && s["component"] == "kubelet");
    let sandbox = position(&all, "the sandbox with the pod's IP", |s| s["name"] == "sandbox ready" && attr(s, "ip").contains(&ip));
    let started = position(&all, "the container started", |s| s["name"] == "Started" && attr(s, "container") == "app");
    let ready = position(&all, "Ready", |s| s["name"] == "status" && attr(s, "ready") == "True");
    let order = [deploy_create, rs_create, pod_create, stored, scheduled, bound, saw, sandbox, started, ready];
    assert!(order.windows(2).all(|w| w[0] < w[1]), "steps out of order {order:?}: {all:#?}");
    // the create span is the pod's request: it started inside the controller's and ends within it
    assert_eq!(all[stored]["parentId"], all[pod_create]["spanId"], "the apiserver's create span is the controller's child");
    // no other pod's steps (the ReplicaSet's trace is shared by its pods)
    assert!(all.iter().all(|s| { let p = attr(s, "pod"); p.is_empty() || p == key || p == name }), "another pod's steps: {all:#?}");

    // the human timeline tells the same story, one line a step
    let (code, text, err) = trace(&up, &["pod", &name]);
    assert_eq!(code, 0, "{err}");
    for want in [
        format!("request accepted and stored: create deployments default/trweb"),
        format!("replicaset controller created Pod {key} from ReplicaSet/default/{rs}"),
        format!("scheduler chose node {node}"),
        "kubelet saw the pod".to_string(),
    ] {
        assert!(text.contains(&want), "the timeline lacks {want:?}:\n{text}");
    }

    // the kubelet's records through the apiserver's node proxy, as kubectl reads them
    let raw = up.kubectl_ok(&["get", "--raw", &format!("/api/v1/nodes/{node}/proxy/debug/rkube/traces/{trace_id}")], None);
    let kubelet: Value = serde_json::from_str(&raw).expect("kubelet trace JSON");
    assert!(
        kubelet["records"].as_array().is_some_and(|r| r.iter().any(|s| s["name"] == "kubelet saw the pod")),
        "the kubelet serves its records: {raw}"
    );

    // a pod no node fits: the scheduler's step says why
    up.kubectl_ok(&["apply", "-f", "-"], Some(UNSCHEDULABLE));
    let doc = poll_until("the scheduler's failed attempt in the trace", Duration::from_secs(30), || {
        let d = trace_json(&up, "trnowhere");
        steps(&d).iter().any(|s| s["name"] == "scheduler.schedule" && !attr(s, "error").is_empty()).then_some(d)
    });
    let all = steps(&doc);
    let attempt = &all[position(&all, "the failed attempt", |s| s["name"] == "scheduler.schedule")];
    assert!(attempt["attributes"]["node"].is_null(), "no node chosen: {attempt}");
    assert!(attr(attempt, "error").starts_with("0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector"), "{attempt}");
    let filtered = position(&all, "the node the filters removed", |s| s["name"] == "filtered out" && attr(s, "node") == node);
    assert!(attr(&all[filtered], "reasons").contains("didn't match Pod's node affinity/selector"), "{}", all[filtered]);
    assert!(!all.iter().any(|s| s["component"] == "kubelet"), "no kubelet step for a pod never scheduled: {all:#?}");
    let (_, text, _) = trace(&up, &["pod", "trnowhere"]);
    assert!(text.contains("scheduler found no node: 0/1 nodes are available"), "{text}");

    // once deleted, its steps are still shown from what the apiserver keeps
    up.kubectl_ok(&["delete", "pod", "trnowhere", "--wait=true"], None);
    let gone = trace_json(&up, "trnowhere");
    assert_eq!(gone["exists"], false);
    assert_eq!(gone["traceId"], doc["traceId"]);
    assert!(steps(&gone).iter().any(|s| s["name"] == "scheduler.schedule"), "{gone}");
}

const WORKLOADS: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: trds
spec:
  selector: {matchLabels: {app: trds}}
  template:
    metadata:
      labels: {app: trds}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: app
        image: busybox:latest
        imagePullPolicy: Never
        command: ["sh", "-c", "exec sleep 3600"]
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: trss
spec:
  serviceName: trss
  replicas: 1
  selector: {matchLabels: {app: trss}}
  template:
    metadata:
      labels: {app: trss}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: app
        image: busybox:latest
        imagePullPolicy: Never
        command: ["sh", "-c", "exec sleep 3600"]
---
apiVersion: batch/v1
kind: Job
metadata:
  name: trjob
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: app
        image: busybox:latest
        imagePullPolicy: Never
        command: ["true"]
"#;

#[test]
fn daemonset_statefulset_and_job_pods_carry_their_owners_trace() {
    let up = Up::start();
    up.kubectl_ok(&["apply", "-f", "-"], Some(WORKLOADS));
    for (kind, resource, owner, label, controller) in [
        ("DaemonSet", "daemonsets", "trds", "app=trds", "daemonset"),
        ("StatefulSet", "statefulsets", "trss", "app=trss", "statefulset"),
        ("Job", "jobs", "trjob", "job-name=trjob", "job"),
    ] {
        let name = poll_until(&format!("the {kind}'s pod"), Duration::from_secs(60), || {
            let n = up.kubectl_try(&["get", "pods", "-l", label, "-o", "jsonpath={.items[0].metadata.name}"])?;
            (!n.trim().is_empty()).then(|| n.trim().to_string())
        });
        let key = format!("default/{name}");
        let owner_tp = up.kubectl(&["get", resource, owner, "-o", "jsonpath={.metadata.annotations.rkube\\.io/traceparent}"]);
        let owner_trace = owner_tp.split('-').nth(1).unwrap_or_else(|| panic!("{kind} {owner} has no trace context: {owner_tp:?}")).to_string();
        let doc = poll_until(&format!("the {kind} pod's trace with the kubelet's steps"), Duration::from_secs(30), || {
            let d = trace_json(&up, &name);
            steps(&d).iter().any(|s| s["name"] == "kubelet saw the pod").then_some(d)
        });
        assert_eq!(doc["traceId"], owner_trace.as_str(), "the {kind}'s pod is in its owner's trace");
        let all = steps(&doc);
        let owner_create = position(&all, &format!("the {kind}'s create request"), |s| {
            s["name"] == "apiserver.create" && attr(s, "resource") == resource && attr(s, "object") == format!("default/{owner}")
        });
        let by_controller = position(&all, &format!("the {controller} controller creating the pod"), |s| {
            s["name"] == "controller.create"
                && attr(s, "controller") == controller
                && attr(s, "owner") == format!("{kind}/default/{owner}")
                && attr(s, "kind") == "Pod"
                && attr(s, "pod") == key
        });
        let stored = position(&all, "the pod's create request stored", |s| s["name"] == "apiserver.create" && attr(s, "pod") == key);
        let saw = position(&all, "the kubelet seeing the pod", |s| s["name"] == "kubelet saw the pod");
        assert!(owner_create < by_controller && by_controller < stored && stored < saw, "{kind}: steps out of order: {all:#?}");
        assert_eq!(all[by_controller]["parentId"], all[owner_create]["spanId"], "{kind}: the controller's step is under the owner's create");
        assert_eq!(all[stored]["parentId"], all[by_controller]["spanId"], "{kind}: the pod's create request is the controller's");
        let (code, text, err) = trace(&up, &["pod", &name]);
        assert_eq!(code, 0, "{err}");
        let want = format!("{controller} controller created Pod {key} from {kind}/default/{owner}");
        assert!(text.contains(&want), "the timeline lacks {want:?}:\n{text}");
    }
}

/// A running `rkube trace ... --follow`: its stdout and stderr as they come; killed by its PID on drop.
struct Following {
    child: Child,
    out: Arc<Mutex<String>>,
    err: Arc<Mutex<String>>,
}

impl Following {
    fn start(up: &Up, args: &[&str]) -> Following {
        let mut child = Command::new(bin("rkube"))
            .arg("trace")
            .args(args)
            .arg("--kubeconfig")
            .arg(up.kubeconfig())
            .env("RKUBE_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start rkube trace --follow");
        let read = |pipe: Option<Box<dyn Read + Send>>| {
            let buf = Arc::new(Mutex::new(String::new()));
            let sink = buf.clone();
            std::thread::spawn(move || {
                let Some(mut pipe) = pipe else { return };
                let mut chunk = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    sink.lock().unwrap_or_else(|e| e.into_inner()).push_str(&String::from_utf8_lossy(&chunk[..n]));
                }
            });
            buf
        };
        let out = read(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
        let err = read(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
        Following { child, out, err }
    }

    fn out(&self) -> String {
        self.out.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn err(&self) -> String {
        self.err.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Its exit code once it ended by itself within `timeout`.
    fn wait(&mut self, timeout: Duration) -> i32 {
        let status = poll_until("rkube trace --follow to end by itself", timeout, || self.child.try_wait().ok().flatten());
        // the readers drain the pipes once the process is gone
        poll_until("rkube trace --follow's output read to its end", Duration::from_secs(5), || {
            (Arc::strong_count(&self.out) == 1 && Arc::strong_count(&self.err) == 1).then_some(())
        });
        status.code().unwrap_or(-1)
    }
}

impl Drop for Following {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A busybox pod that sleeps and turns Ready at its first probe, `delay` seconds after it starts (the followed
/// and the exported pods).
fn ready_pod(name: &str, delay: u32) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", "exec sleep 3600"]
    readinessProbe:
      exec: {{command: ["true"]}}
      initialDelaySeconds: {delay}
      periodSeconds: 1
"#
    )
}

#[test]
fn follow_streams_a_new_pods_steps_until_ready() {
    let up = Up::start();
    let node = up.kubectl(&["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"]).trim().to_string();

    // a pod never created: it waits --timeout, then says so; exit 1, nothing on stdout
    let mut never = Following::start(&up, &["pod", "trnever", "--follow", "--timeout", "1"]);
    assert_eq!(never.wait(Duration::from_secs(30)), 1, "stdout: {} stderr: {}", never.out(), never.err());
    assert!(never.out().is_empty(), "nothing on stdout: {}", never.out());
    assert!(never.err().contains("pod default/trnever was not created within 1 s"), "{}", never.err());

    // started before the pod exists
    let event_watches = metric(&up, EVENT_WATCHES);
    let mut f = Following::start(&up, &["pod", "trfollow", "--follow"]);
    poll_until("rkube trace --follow waiting for the pod", Duration::from_secs(20), || {
        f.err().contains("pod default/trfollow does not exist yet; waiting up to 60 s").then_some(())
    });
    assert!(up.kubectl_try(&["get", "pod", "trfollow"]).is_none(), "the pod must not exist before following starts");
    up.kubectl_ok(&["apply", "-f", "-"], Some(&ready_pod("trfollow", 3)));
    let code = f.wait(Duration::from_secs(90));
    let (out, err) = (f.out(), f.err());
    assert_eq!(code, 0, "ends by itself with 0 once Ready: stdout: {out} stderr: {err}");
    assert!(err.contains("pod default/trfollow is Ready"), "{err}");
    // it watched the pod's Events (as kubectl get -w), rather than reading them over and over
    // (the pod turns Ready 3 s after it starts, so the follower is waiting, its watches open, before it ends; the
    // apiserver counts a watch when it ends, which it sees a moment after the follower exits)
    poll_until("the apiserver counting rkube trace --follow's watch of the pod's events", Duration::from_secs(15), || {
        (metric(&up, EVENT_WATCHES) > event_watches).then_some(())
    });
    let ready = up.kubectl(&["get", "pod", "trfollow", "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"]);
    assert_eq!(ready.trim(), "True", "it ended when the pod was Ready");

    let lines: Vec<&str> = out.lines().collect();
    let tp = up.kubectl(&["get", "pod", "trfollow", "-o", "jsonpath={.metadata.annotations.rkube\\.io/traceparent}"]);
    let trace_id = tp.split('-').nth(1).expect("the pod's trace context");
    assert_eq!(lines.first().copied(), Some(format!("pod default/trfollow  trace {trace_id}").as_str()), "the header first: {out}");
    // each step once, in the order the pod lived them, as the whole trace tells them afterwards
    let find = |want: &str| -> usize {
        let at: Vec<usize> = lines.iter().enumerate().filter(|(_, l)| l.contains(want)).map(|(i, _)| i).collect();
        assert_eq!(at.len(), 1, "{want:?} printed once, not {} times:\n{out}", at.len());
        at[0]
    };
    let order = [
        find("request accepted and stored: create pods default/trfollow"),
        find(&format!("scheduler chose node {node}")),
        find(&format!("scheduler bound the pod to {node}")),
        find("kubelet saw the pod"),
        find("sandbox ready"),
        find("Started  (container=app"),
        find("status  (phase=Running, ready=True)"),
    ];
    assert!(order.windows(2).all(|w| w[0] < w[1]), "steps out of order {order:?}:\n{out}");
    let mut seen = std::collections::HashSet::new();
    for l in &lines[1..] {
        assert!(seen.insert(*l), "a step printed twice: {l}\n{out}");
    }
    // the steps followed are the steps the trace keeps (the same count, in the same order)
    let doc = trace_json(&up, "trfollow");
    let all = steps(&doc);
    let kept_before_ready = all.iter().position(|s| s["name"] == "status" && attr(s, "ready") == "True").expect("the Ready step");
    assert!(lines.len() - 1 >= kept_before_ready + 1, "every step up to Ready followed: {} lines for {} steps:\n{out}", lines.len() - 1, kept_before_ready + 1);
}

/// Benchmark (ignored; `bench/trace.sh` runs it with span recording on and off, `RKUBE_TRACING`, which the
/// `rkube up` it starts inherits): pod create -> Ready as a client sees it, `RKUBE_BENCH_PODS` pods (default 20)
/// one at a time, through kube-rs (no kubectl process in the time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with bench/trace.sh"]
async fn pod_startup_with_and_without_tracing() {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, PostParams};
    use kube::runtime::wait::await_condition;
    let n: usize = std::env::var("RKUBE_BENCH_PODS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let recording = rkube_trace_enabled();
    let up = tokio::task::spawn_blocking(Up::start).await.expect("rkube up");
    let kc = kube::config::Kubeconfig::read_from(up.kubeconfig()).expect("kubeconfig");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.expect("config");
    let pods: Api<Pod> = Api::namespaced(kube::Client::try_from(cfg).expect("client"), "default");
    let mut ms = Vec::new();
    for i in 0..n {
        let name = format!("trbench-{i}");
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": 0, "containers": [{
                "name": "c", "image": "busybox:latest", "imagePullPolicy": "Never", "command": ["sleep", "3600"]}]}
        }))
        .expect("pod");
        let t0 = std::time::Instant::now();
        pods.create(&PostParams::default(), &pod).await.expect("create");
        let ready = |p: Option<&Pod>| {
            p.and_then(|p| p.status.as_ref()?.conditions.as_ref()).is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        };
        tokio::time::timeout(Duration::from_secs(60), await_condition(pods.clone(), &name, ready))
            .await
            .expect("Ready within 60 s")
            .expect("watch");
        ms.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    // with recording on, the pods' traces are there; with it off, none is
    let traced = trace_json(&up, "trbench-0");
    assert_eq!(steps(&traced).iter().any(|s| s["name"] == "kubelet saw the pod"), recording, "recording {recording}: {traced}");
    ms.sort_by(|a, b| a.total_cmp(b));
    let p50 = ms[(ms.len() - 1) / 2];
    println!("pod startup, tracing {} (n={n}): p50 {p50:.1} ms, min {:.1} ms, max {:.1} ms", if recording { "on" } else { "off" }, ms[0], ms[ms.len() - 1]);
    tokio::task::spawn_blocking(move || drop(up)).await.expect("rkube down");
}

/// Whether the `rkube up` this test starts records spans: `RKUBE_TRACING` as `rkube_trace::enabled` reads it.
fn rkube_trace_enabled() -> bool {
    !matches!(std::env::var("RKUBE_TRACING").as_deref().map(str::trim), Ok("off" | "0" | "false"))
}

/// An OTLP/HTTP collector on 127.0.0.1: records the JSON body of every `POST /v1/traces` and answers 200.
/// Stopped (its port closed) on drop.
struct Collector {
    addr: std::net::SocketAddr,
    bodies: Arc<Mutex<Vec<Value>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Collector {
    fn start() -> Collector {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the collector");
        let addr = listener.local_addr().expect("collector address");
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (sink, stopped) = (bodies.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                let Ok(mut c) = conn else { continue };
                let _ = c.set_read_timeout(Some(Duration::from_secs(10)));
                let mut buf = Vec::new();
                let mut chunk = [0u8; 65536];
                let request = loop {
                    let Ok(n) = c.read(&mut chunk) else { break None };
                    if n == 0 {
                        break None;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    let len = head
                        .lines()
                        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").and_then(|v| v.trim().parse::<usize>().ok()))
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        break Some((head, buf[end + 4..end + 4 + len].to_vec()));
                    }
                };
                let Some((head, body)) = request else { continue };
                let ok = head.starts_with("POST /v1/traces HTTP/1.1") && head.to_ascii_lowercase().contains("content-type: application/json");
                match serde_json::from_slice::<Value>(&body) {
                    Ok(v) if ok => {
                        sink.lock().unwrap_or_else(|e| e.into_inner()).push(v);
                        let _ = c.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}");
                    }
                    _ => {
                        let _ = c.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
                    }
                }
            }
        });
        Collector { addr, bodies, stop, thread: Some(thread) }
    }

    /// Every span received: (service.name, the span).
    fn spans(&self) -> Vec<(String, Value)> {
        let bodies = self.bodies.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut out = Vec::new();
        for b in &bodies {
            for rs in b["resourceSpans"].as_array().into_iter().flatten() {
                let service = rs["resource"]["attributes"]
                    .as_array()
                    .and_then(|a| a.iter().find(|kv| kv["key"] == "service.name"))
                    .and_then(|kv| kv["value"]["stringValue"].as_str())
                    .unwrap_or_default()
                    .to_string();
                for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                    for s in ss["spans"].as_array().into_iter().flatten() {
                        out.push((service.clone(), s.clone()));
                    }
                }
            }
        }
        out
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // wake the accept loop; it sees the flag and returns, closing the port
        let _ = std::net::TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The first span named `name` from service `svc` (the caller polled for it).
fn otlp_span<'a>(spans: &'a [(String, Value)], svc: &str, name: &str) -> &'a Value {
    &spans.iter().find(|(v, s)| v == svc && s["name"] == name).unwrap_or_else(|| panic!("no {svc} span {name}: {spans:#?}")).1
}

/// A span attribute's string value (OTLP JSON: a list of key/value with AnyValue).
fn otlp_attr<'a>(span: &'a Value, key: &str) -> Option<&'a str> {
    span["attributes"].as_array()?.iter().find(|kv| kv["key"] == key)?["value"]["stringValue"].as_str()
}

/// The apiserver's count of watch requests on events (nothing in `rkube up` watches them but `rkube trace --follow`).
const EVENT_WATCHES: &str = "apiserver_request_total{verb=\"watch\",resource=\"events\",code=\"200\"}";

/// A counter's value on the apiserver's /metrics (0 when absent).
fn metric(up: &Up, name: &str) -> u64 {
    let text = up.kubectl(&["get", "--raw", "/metrics"]);
    text.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok())).unwrap_or(0)
}

#[test]
fn otlp_export_sends_a_pods_spans_to_a_collector_and_a_dead_collector_costs_nothing() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().expect("config dir");
    let config = dir.path().join("tracing.yaml");
    std::fs::write(
        &config,
        format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: TracingConfiguration\nendpoint: {}\nsamplingRatePerMillion: 1000000\n",
            collector.addr
        ),
    )
    .expect("write the tracing configuration");
    let up = Up::start_with(&["--tracing-config-file", config.to_str().expect("utf-8 path")]);
    up.kubectl_ok(&["apply", "-f", "-"], Some(&ready_pod("trotlp", 0)));
    poll_until("pod trotlp Ready", Duration::from_secs(60), || {
        let s = up.kubectl_try(&["get", "pod", "trotlp", "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"])?;
        (s.trim() == "True").then_some(())
    });
    let tp = up.kubectl(&["get", "pod", "trotlp", "-o", "jsonpath={.metadata.annotations.rkube\\.io/traceparent}"]);
    let mut parts = tp.trim().split('-').skip(1);
    let (trace_id, parent) = (parts.next().expect("trace id").to_string(), parts.next().expect("parent span id").to_string());
    // the kubelet's kubelet.pod span ends with the pod's worker: delete the pod to have it exported
    up.kubectl_ok(&["delete", "pod", "trotlp", "--wait=true"], None);
    let key = "default/trotlp";
    let spans = poll_until("the pod's spans from the apiserver, the scheduler and the kubelet at the collector", Duration::from_secs(60), || {
        let all: Vec<(String, Value)> = collector.spans().into_iter().filter(|(_, s)| s["traceId"] == trace_id.as_str()).collect();
        let has = |svc: &str, name: &str| all.iter().any(|(v, s)| v == svc && s["name"] == name && otlp_attr(s, "pod") == Some(key));
        (has("apiserver", "apiserver.create") && has("scheduler", "scheduler.schedule") && has("kubelet", "kubelet.pod")).then_some(all)
    });
    let find = |svc: &str, name: &str| otlp_span(&spans, svc, name);
    let create = find("apiserver", "apiserver.create");
    let schedule = find("scheduler", "scheduler.schedule");
    let kubelet = find("kubelet", "kubelet.pod");
    // one trace, the pod's annotation's: the create request is the parent both later components name
    assert_eq!(create["spanId"], parent.as_str(), "the annotation names the apiserver's create span: {create}");
    assert!(create.get("parentSpanId").is_none(), "the create request started the trace: {create}");
    assert_eq!(create["kind"], 2, "the request span is SPAN_KIND_SERVER");
    assert_eq!(schedule["parentSpanId"], create["spanId"], "{schedule}");
    assert_eq!(kubelet["parentSpanId"], create["spanId"], "{kubelet}");
    assert_eq!(otlp_attr(schedule, "node"), otlp_attr(kubelet, "node"), "scheduled where it ran");
    for s in [create, schedule, kubelet] {
        let start: u64 = s["startTimeUnixNano"].as_str().and_then(|v| v.parse().ok()).expect("start as a decimal string");
        let end: u64 = s["endTimeUnixNano"].as_str().and_then(|v| v.parse().ok()).expect("end as a decimal string");
        assert!(start > 1_600_000_000_000_000_000 && end >= start, "{s}");
        assert_eq!(s["spanId"].as_str().map(str::len), Some(16), "{s}");
    }
    // the kubelet's steps are the span's events, in the order they happened
    let events: Vec<&str> = kubelet["events"].as_array().expect("events").iter().filter_map(|e| e["name"].as_str()).collect();
    let at = |n: &str| events.iter().position(|e| *e == n).unwrap_or_else(|| panic!("no event {n:?} in kubelet.pod: {events:?}"));
    assert!(at("kubelet saw the pod") < at("sandbox ready") && at("sandbox ready") < at("Started"), "{events:?}");
    assert!(metric(&up, "rkube_trace_otlp_exported_spans_total") >= 3, "the exported spans are counted on /metrics");

    // the collector goes away: a new pod still starts, and what could not be sent is counted, not waited for
    drop(collector);
    let dropped_before = metric(&up, "rkube_trace_otlp_dropped_spans_total");
    up.kubectl_ok(&["apply", "-f", "-"], Some(&ready_pod("trotlp2", 0)));
    poll_until("pod trotlp2 Ready with the collector down", Duration::from_secs(60), || {
        let s = up.kubectl_try(&["get", "pod", "trotlp2", "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"])?;
        (s.trim() == "True").then_some(())
    });
    poll_until("the spans the dead collector could not take counted as dropped", Duration::from_secs(30), || {
        (metric(&up, "rkube_trace_otlp_dropped_spans_total") > dropped_before).then_some(())
    });
    // rkube trace needs no collector
    let doc = trace_json(&up, "trotlp2");
    assert!(steps(&doc).iter().any(|s| s["name"] == "kubelet saw the pod"), "{doc}");
}

const CRONJOB: &str = r#"
apiVersion: batch/v1
kind: CronJob
metadata:
  name: trcron
spec:
  schedule: "* * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          terminationGracePeriodSeconds: 1
          containers:
          - name: app
            image: busybox:latest
            imagePullPolicy: Never
            command: ["sh", "-c", "exec sleep 3600"]
"#;

#[test]
fn a_cronjobs_pod_carries_the_cronjobs_trace_through_its_job() {
    let up = Up::start();
    up.kubectl_ok(&["apply", "-f", "-"], Some(CRONJOB));
    // the controller runs a CronJob at its next scheduled time after status.lastScheduleTime (else its creation):
    // a lastScheduleTime two minutes back makes the last minute a missed run, started now, instead of waiting
    // up to a minute. The Job is still the cronjob controller's own, made by its reconcile.
    let date = Command::new("date").args(["-u", "-d", "2 minutes ago", "+%Y-%m-%dT%H:%M:%SZ"]).output().expect("date");
    let last = String::from_utf8_lossy(&date.stdout).trim().to_string();
    up.kubectl_ok(
        &["patch", "cronjob", "trcron", "--subresource=status", "--type=merge", "-p", &format!(r#"{{"status":{{"lastScheduleTime":"{last}"}}}}"#)],
        None,
    );
    let job = poll_until("the CronJob's Job", Duration::from_secs(60), || {
        let out = up.kubectl_try(&["get", "jobs", "-o", "json"])?;
        let list: Value = serde_json::from_str(&out).ok()?;
        list["items"].as_array()?.iter().find_map(|j| {
            let owned = j["metadata"]["ownerReferences"].as_array()?.iter().any(|o| o["kind"] == "CronJob" && o["name"] == "trcron");
            owned.then(|| j["metadata"]["name"].as_str().map(str::to_string)).flatten()
        })
    });
    let name = poll_until("the Job's pod", Duration::from_secs(60), || {
        let n = up.kubectl_try(&["get", "pods", "-l", &format!("job-name={job}"), "-o", "jsonpath={.items[0].metadata.name}"])?;
        (!n.trim().is_empty()).then(|| n.trim().to_string())
    });
    let key = format!("default/{name}");
    let cj_tp = up.kubectl(&["get", "cronjob", "trcron", "-o", "jsonpath={.metadata.annotations.rkube\\.io/traceparent}"]);
    let cj_trace = cj_tp.split('-').nth(1).unwrap_or_else(|| panic!("the CronJob has no trace context: {cj_tp:?}")).to_string();
    let doc = poll_until("the CronJob pod's trace with the kubelet's steps", Duration::from_secs(30), || {
        let d = trace_json(&up, &name);
        steps(&d).iter().any(|s| s["name"] == "kubelet saw the pod").then_some(d)
    });
    assert_eq!(doc["traceId"], cj_trace.as_str(), "the pod is in its CronJob's trace");
    let all = steps(&doc);
    let cj_create = position(&all, "the CronJob's create request", |s| {
        s["name"] == "apiserver.create" && attr(s, "resource") == "cronjobs" && attr(s, "object") == "default/trcron"
    });
    let job_by_cronjob = position(&all, "the cronjob controller creating the Job", |s| {
        s["name"] == "controller.create"
            && attr(s, "controller") == "cronjob"
            && attr(s, "owner") == "CronJob/default/trcron"
            && attr(s, "kind") == "Job"
            && attr(s, "object") == format!("default/{job}")
    });
    let job_create = position(&all, "the Job's create request", |s| {
        s["name"] == "apiserver.create" && attr(s, "resource") == "jobs" && attr(s, "object") == format!("default/{job}")
    });
    let pod_by_job = position(&all, "the job controller creating the pod", |s| {
        s["name"] == "controller.create" && attr(s, "controller") == "job" && attr(s, "owner") == format!("Job/default/{job}") && attr(s, "pod") == key
    });
    let stored = position(&all, "the pod's create request stored", |s| s["name"] == "apiserver.create" && attr(s, "pod") == key);
    let saw = position(&all, "the kubelet seeing the pod", |s| s["name"] == "kubelet saw the pod");
    let order = [cj_create, job_by_cronjob, job_create, pod_by_job, stored, saw];
    assert!(order.windows(2).all(|w| w[0] < w[1]), "steps out of order {order:?}: {all:#?}");
    // CronJob -> Job -> pod: each controller's step is under the span its owner's annotation names (the CronJob's
    // create request; for the Job, the cronjob controller's create), each create request under its controller's
    assert_eq!(all[job_by_cronjob]["parentId"], all[cj_create]["spanId"], "the cronjob controller's step is under the CronJob's create");
    assert_eq!(all[job_create]["parentId"], all[job_by_cronjob]["spanId"], "the Job's create request is the cronjob controller's");
    assert_eq!(all[pod_by_job]["parentId"], all[job_by_cronjob]["spanId"], "the job controller's step is under the Job's trace context");
    assert_eq!(all[stored]["parentId"], all[pod_by_job]["spanId"], "the pod's create request is the job controller's");
    let (code, text, err) = trace(&up, &["pod", &name]);
    assert_eq!(code, 0, "{err}");
    for want in [
        "request accepted and stored: create cronjobs default/trcron".to_string(),
        format!("cronjob controller created Job default/{job} from CronJob/default/trcron"),
        format!("job controller created Pod {key} from Job/default/{job}"),
    ] {
        assert!(text.contains(&want), "the timeline lacks {want:?}:\n{text}");
    }
}
