//! `rkube trace pod` on `rkube up` with the real kubectl, as root (issue 17, docs/trace.md):
//! - a Deployment's pod: its steps in the order the pod lived them, from the Deployment's create request, the
//!   deployment and replicaset controllers (which one, from which object), the scheduler's choice, the kubelet's
//!   sandbox (with the pod's IP as kubectl shows it), containers, to Ready; the trace id is the pod's
//!   `rkube.io/traceparent`; the kubelet's records answer through the apiserver's node proxy too;
//! - a pod that fits no node: the scheduler's step says why, with the node the filters removed; once the pod is
//!   deleted its trace is still shown;
//! - a missing pod: exit 1, a message naming it, nothing on stdout.
//!
//! Needs the binaries: `cargo build --release -p rkube -p rkube-kubelet -p rkube-runtime -p rkube-cni --bins`.

mod up_support;

use std::process::Command;
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
