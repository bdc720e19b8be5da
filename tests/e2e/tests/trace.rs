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

const FOLLOWED: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: trfollow
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", "exec sleep 3600"]
    readinessProbe:
      exec: {command: ["true"]}
      periodSeconds: 1
"#;

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
    let mut f = Following::start(&up, &["pod", "trfollow", "--follow"]);
    poll_until("rkube trace --follow waiting for the pod", Duration::from_secs(20), || {
        f.err().contains("pod default/trfollow does not exist yet; waiting up to 60 s").then_some(())
    });
    assert!(up.kubectl_try(&["get", "pod", "trfollow"]).is_none(), "the pod must not exist before following starts");
    up.kubectl_ok(&["apply", "-f", "-"], Some(FOLLOWED));
    let code = f.wait(Duration::from_secs(90));
    let (out, err) = (f.out(), f.err());
    assert_eq!(code, 0, "ends by itself with 0 once Ready: stdout: {out} stderr: {err}");
    assert!(err.contains("pod default/trfollow is Ready"), "{err}");
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
