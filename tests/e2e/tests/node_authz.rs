//! The Node authorizer and the NodeRestriction admission (issue 15), against an in-process apiserver over HTTPS:
//! two kubelet credentials of the cluster CA, `system:node:node-a` and `system:node:node-b` in `system:nodes`
//! (what `rkube kubeconfig --node` issues), each with a pod bound to its node. Node A reaches for node B's
//! objects and gets upstream's 403, word for word:
//!
//! - a Secret and a ConfigMap used only by B's pod (the authorizer: "no relationship found between node ...");
//! - B's Node and its status (NodeRestriction: "is not allowed to modify node");
//! - the status of B's pod, and its delete ("can only update pod status for pods with spec.nodeName set to
//!   itself");
//! - B's Lease, read, updated and created under B's name;
//! - a service account token bound to B's pod, a pod that is not a mirror pod;
//!
//! while each of those on its own node succeeds, kubectl as node A prints the refusal, and a
//! SubjectAccessReview for node A answers with the same reason.
//!
//! Needs no root: `cargo test --release -p rkube-e2e --test node_authz`.

mod common;

use std::time::Duration;

use common::TestServer;
use rkube_apiserver::tls::Pki;
use serde_json::{json, Value};

struct Api<'a> {
    server: &'a TestServer,
    client: reqwest::Client,
}

impl Api<'_> {
    fn send(&self, method: reqwest::Method, path: &str, content_type: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.server.url);
        self.server.runtime().block_on(async {
            let mut req = self.client.request(method, url).timeout(Duration::from_secs(30));
            if let Some(b) = body {
                req = req.header("content-type", content_type).body(b.to_string());
            }
            let resp = req.send().await.expect("request");
            let code = resp.status().as_u16();
            let text = resp.text().await.expect("body");
            (code, serde_json::from_str(&text).unwrap_or(Value::String(text)))
        })
    }
    fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, "", None)
    }
    fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, "application/json", Some(body))
    }
    fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::PUT, path, "application/json", Some(body))
    }
    fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::PATCH, path, "application/merge-patch+json", Some(body))
    }
    fn delete(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::DELETE, path, "", None)
    }
}

fn client(pki: &Pki, cert: &str, key: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_cert.as_bytes()).expect("CA"))
        .identity(reqwest::Identity::from_pem(format!("{cert}\n{key}").as_bytes()).expect("identity"))
        .build()
        .expect("client")
}

/// The answer must be `code`; returns the body.
#[track_caller]
fn expect(what: &str, (code, body): (u16, Value), want: u16) -> Value {
    assert_eq!(code, want, "{what}: {body}");
    body
}

/// A 403 whose message is exactly `message`.
#[track_caller]
fn forbidden(what: &str, answer: (u16, Value), message: &str) {
    let body = expect(what, answer, 403);
    assert_eq!(body["kind"], "Status", "{what}: {body}");
    assert_eq!(body["reason"], "Forbidden", "{what}: {body}");
    assert_eq!(body["message"], message, "{what}");
}

fn pod(name: &str, node: &str, secret: &str, config_map: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
           "spec": {"nodeName": node,
                    "containers": [{"name": "c", "image": "busybox", "envFrom": [{"configMapRef": {"name": config_map}}]}],
                    "volumes": [{"name": "s", "secret": {"secretName": secret}}]}})
}

fn token_request(pod: &Value) -> Value {
    json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
           "spec": {"audiences": [], "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]}}})
}

#[test]
fn a_kubelet_reaches_only_its_own_nodes_objects() {
    let server = TestServer::start_tls();
    let pki = rkube_apiserver::tls::ensure_pki(&server.dir.path().join("pki"), &[]).expect("the server's PKI");
    let admin = Api { server: &server, client: client(&pki, &pki.admin_cert, &pki.admin_key) };
    let node_api = |name: &str| {
        let pair = rkube_apiserver::tls::issue_node(&pki, name).expect("node certificate");
        Api { server: &server, client: client(&pki, &pair.cert, &pair.key) }
    };
    let (a, b) = (node_api("node-a"), node_api("node-b"));

    // each kubelet registers its own Node; A may not register B's
    let node = |name: &str| json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}});
    forbidden("A registers B", a.post("/api/v1/nodes", node("node-b")), "nodes \"node-b\" is forbidden: node \"node-a\" is not allowed to modify node \"node-b\"");
    let node_a = expect("A registers itself", a.post("/api/v1/nodes", node("node-a")), 201);
    expect("B registers itself", b.post("/api/v1/nodes", node("node-b")), 201);
    let mut restricted = node("node-a");
    restricted["metadata"]["labels"]["node-restriction.kubernetes.io/pool"] = json!("secure");
    forbidden(
        "A gives itself a restricted label",
        a.put("/api/v1/nodes/node-a", restricted),
        "nodes \"node-a\" is forbidden: is not allowed to modify labels: node-restriction.kubernetes.io/pool",
    );

    // the admin's objects: B's pod uses secret-b and cm-b, A's pod secret-a and cm-a
    for n in ["a", "b"] {
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": format!("secret-{n}")}, "stringData": {"k": "v"}});
        expect("create a secret", admin.post("/api/v1/namespaces/default/secrets", secret), 201);
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cm-{n}")}, "data": {"k": "v"}});
        expect("create a configmap", admin.post("/api/v1/namespaces/default/configmaps", cm), 201);
    }
    let pod_a = expect("pod on A", admin.post("/api/v1/namespaces/default/pods", pod("pod-a", "node-a", "secret-a", "cm-a")), 201);
    let pod_b = expect("pod on B", admin.post("/api/v1/namespaces/default/pods", pod("pod-b", "node-b", "secret-b", "cm-b")), 201);

    // secrets and configmaps: only those of its own pods, one by name
    forbidden(
        "A reads B's secret",
        a.get("/api/v1/namespaces/default/secrets/secret-b"),
        "secrets \"secret-b\" is forbidden: User \"system:node:node-a\" cannot get resource \"secrets\" in API group \"\" in the namespace \"default\": no relationship found between node 'node-a' and this object",
    );
    forbidden(
        "A reads B's configmap",
        a.get("/api/v1/namespaces/default/configmaps/cm-b"),
        "configmaps \"cm-b\" is forbidden: User \"system:node:node-a\" cannot get resource \"configmaps\" in API group \"\" in the namespace \"default\": no relationship found between node 'node-a' and this object",
    );
    forbidden(
        "A lists every secret",
        a.get("/api/v1/namespaces/default/secrets"),
        "secrets is forbidden: User \"system:node:node-a\" cannot list resource \"secrets\" in API group \"\" in the namespace \"default\": No Object name found",
    );
    let own = expect("A reads its secret", a.get("/api/v1/namespaces/default/secrets/secret-a"), 200);
    assert_eq!(own["data"]["k"], "dg==");
    expect("B reads its secret", b.get("/api/v1/namespaces/default/secrets/secret-b"), 200);
    let listed = expect("A lists its secret by name", a.get("/api/v1/namespaces/default/secrets?fieldSelector=metadata.name%3Dsecret-a"), 200);
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1));
    expect("A reads its configmap", a.get("/api/v1/namespaces/default/configmaps/cm-a"), 200);

    // B's Node status; A's own
    let status = json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "ready"}]}});
    forbidden(
        "A updates B's node status",
        a.patch("/api/v1/nodes/node-b/status", status.clone()),
        "nodes \"node-b\" is forbidden: node \"node-a\" is not allowed to modify node \"node-b\"",
    );
    expect("A updates its node status", a.patch("/api/v1/nodes/node-a/status", status), 200);
    forbidden(
        "A taints itself away",
        a.patch("/api/v1/nodes/node-a", json!({"spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}})),
        "nodes \"node-a\" is forbidden: node \"node-a\" is not allowed to modify taints",
    );

    // pods: status and delete of its own only
    let pod_status = json!({"status": {"phase": "Running"}});
    forbidden(
        "A updates the status of B's pod",
        a.patch("/api/v1/namespaces/default/pods/pod-b/status", pod_status.clone()),
        "pods \"pod-b\" is forbidden: node \"node-a\" can only update pod status for pods with spec.nodeName set to itself",
    );
    let written = expect("A updates the status of its pod", a.patch("/api/v1/namespaces/default/pods/pod-a/status", pod_status), 200);
    assert_eq!(written["status"]["phase"], "Running");
    forbidden(
        "A deletes B's pod",
        a.delete("/api/v1/namespaces/default/pods/pod-b"),
        "pods \"pod-b\" is forbidden: node \"node-a\" can only delete pods with spec.nodeName set to itself",
    );
    // upstream's node rules hold no update of pods: the authorizer refuses before NodeRestriction would
    forbidden(
        "A relabels its pod",
        a.patch("/api/v1/namespaces/default/pods/pod-a", json!({"metadata": {"labels": {"app": "x"}}})),
        "pods \"pod-a\" is forbidden: User \"system:node:node-a\" cannot patch resource \"pods\" in API group \"\" in the namespace \"default\"",
    );

    // mirror pods only, bound to and owned by its own Node
    let mirror = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "static-a", "namespace": "default", "annotations": {"kubernetes.io/config.mirror": "h"},
                     "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": "node-a", "uid": node_a["metadata"]["uid"], "controller": true}]},
        "spec": {"nodeName": "node-a", "containers": [{"name": "c", "image": "busybox"}]}});
    let mut plain = mirror.clone();
    plain["metadata"]["annotations"] = json!({});
    forbidden(
        "A creates an ordinary pod",
        a.post("/api/v1/namespaces/default/pods", plain),
        "pods \"static-a\" is forbidden: pod does not have \"kubernetes.io/config.mirror\" annotation, node \"node-a\" can only create mirror pods",
    );
    let mut onto_b = mirror.clone();
    onto_b["spec"]["nodeName"] = json!("node-b");
    forbidden(
        "A creates a mirror pod on B",
        a.post("/api/v1/namespaces/default/pods", onto_b),
        "pods \"static-a\" is forbidden: node \"node-a\" can only create pods with spec.nodeName set to itself",
    );
    expect("A creates its mirror pod", a.post("/api/v1/namespaces/default/pods", mirror.clone()), 201);
    expect("A deletes its mirror pod", a.delete("/api/v1/namespaces/default/pods/static-a?gracePeriodSeconds=0"), 200);

    // leases: its own, in kube-node-lease
    let lease = |name: &str| json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": name, "namespace": "kube-node-lease"},
                                    "spec": {"holderIdentity": name, "leaseDurationSeconds": 40}});
    let leases = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases";
    forbidden(
        "A creates B's lease",
        a.post(leases, lease("node-b")),
        "leases.coordination.k8s.io \"node-b\" is forbidden: can only access node lease with the same name as the requesting node",
    );
    let b_lease = expect("B creates its lease", b.post(leases, lease("node-b")), 201);
    expect("A creates its lease", a.post(leases, lease("node-a")), 201);
    forbidden(
        "A reads B's lease",
        a.get(&format!("{leases}/node-b")),
        "leases.coordination.k8s.io \"node-b\" is forbidden: User \"system:node:node-a\" cannot get resource \"leases\" in API group \"coordination.k8s.io\" in the namespace \"kube-node-lease\": can only access node lease with the same name as the requesting node",
    );
    forbidden(
        "A renews B's lease",
        a.put(&format!("{leases}/node-b"), b_lease),
        "leases.coordination.k8s.io \"node-b\" is forbidden: User \"system:node:node-a\" cannot update resource \"leases\" in API group \"coordination.k8s.io\" in the namespace \"kube-node-lease\": can only access node lease with the same name as the requesting node",
    );
    expect("A renews its lease", a.patch(&format!("{leases}/node-a"), json!({"spec": {"leaseDurationSeconds": 40}})), 200);

    // service account tokens: bound to a pod on its own node
    // (no controllers run here to make the namespace's default account)
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}});
    expect("create the default service account", admin.post("/api/v1/namespaces/default/serviceaccounts", sa), 201);
    let token = "/api/v1/namespaces/default/serviceaccounts/default/token";
    forbidden(
        "A asks for a token bound to B's pod",
        a.post(token, token_request(&pod_b)),
        "serviceaccounts \"default\" is forbidden: node requested token bound to a pod scheduled on a different node",
    );
    let issued = expect("A asks for a token bound to its pod", a.post(token, token_request(&pod_a)), 201);
    assert!(issued["status"]["token"].as_str().is_some_and(|t| t.len() > 20), "{issued}");

    // nothing of B's changed: its pod is neither Running nor deleted, its node untainted
    let b_pod = expect("B's pod", admin.get("/api/v1/namespaces/default/pods/pod-b"), 200);
    assert_eq!(b_pod["status"]["phase"], "Pending");
    assert!(b_pod["metadata"]["deletionTimestamp"].is_null());

    // the same answers through the review API and kubectl
    let review = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": "system:node:node-a", "groups": ["system:nodes", "system:authenticated"],
                 "resourceAttributes": {"verb": "get", "resource": "secrets", "namespace": "default", "name": "secret-b"}}});
    let answered = expect("review", admin.post("/apis/authorization.k8s.io/v1/subjectaccessreviews", review.clone()), 201);
    assert_eq!(answered["status"]["allowed"], false);
    assert_eq!(answered["status"]["reason"], "no relationship found between node 'node-a' and this object");
    let mut own_review = review;
    own_review["spec"]["resourceAttributes"]["name"] = json!("secret-a");
    let answered = expect("review", admin.post("/apis/authorization.k8s.io/v1/subjectaccessreviews", own_review), 201);
    assert_eq!(answered["status"]["allowed"], true);

    let pair = rkube_apiserver::tls::issue_node(&pki, "node-a").expect("node certificate");
    let kubeconfig = server.dir.path().join("node-a.kubeconfig");
    let text = rkube_apiserver::kubeconfig::render_tls_user(&server.url, "rkube", "system:node:node-a", &pki.ca_cert, &pair.cert, &pair.key);
    std::fs::write(&kubeconfig, text).expect("write the node kubeconfig");
    for v in common::KUBECTLS {
        let mut cmd = std::process::Command::new(common::kubectl_bin(v));
        cmd.arg("--kubeconfig").arg(&kubeconfig).args(["get", "secret", "secret-b", "-n", "default"]);
        let out = rkube_testsupport::output_within(&mut cmd, None, common::KUBECTL_DEADLINE, "kubectl get secret as node-a");
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("Error from server (Forbidden): secrets \"secret-b\" is forbidden: User \"system:node:node-a\" cannot get resource \"secrets\" in API group \"\" in the namespace \"default\": no relationship found between node 'node-a' and this object"),
            "kubectl.{v}: {err}"
        );
        let mut cmd = std::process::Command::new(common::kubectl_bin(v));
        cmd.arg("--kubeconfig").arg(&kubeconfig).args(["get", "secret", "secret-a", "-n", "default", "-o", "name"]);
        let out = rkube_testsupport::output_within(&mut cmd, None, common::KUBECTL_DEADLINE, "kubectl get secret as node-a");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "secret/secret-a", "kubectl.{v}: {}", String::from_utf8_lossy(&out.stderr));
    }
}
