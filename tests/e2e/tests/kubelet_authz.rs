//! Issue 12, the kubelet API: a user holding any certificate of the cluster CA (`rkube kubeconfig --user
//! alice`) called a kubelet's exec, logs, port-forward and run directly, with no RBAC at all. Now every request
//! is authenticated (client certificate, else a bearer token by TokenReview) and authorized by a
//! SubjectAccessReview on `nodes/proxy` (upstream's kubelet with `--authorization-mode=Webhook`):
//!
//! - alice, with a certificate and no grant, calls `/exec`, `/containerLogs`, `/portForward`, `/run` directly:
//!   403 with upstream's `Forbidden (user=alice, verb=.., resource=nodes, subresource=proxy)`, and her `/run`
//!   left nothing in the container;
//! - carol, bound to a ClusterRole with `get`/`create` on `nodes/proxy`, gets each of them (run prints, exec and
//!   port-forward upgrade, logs answer);
//! - no certificate: 401 `Unauthorized` on every path; a forged bearer token too; a service account's token is
//!   its account (403 without a grant, served with one);
//! - the admin certificate still gets in, and kubectl exec/logs/port-forward through the apiserver (its
//!   `kube-apiserver-kubelet-client` identity) still work;
//! - `system:auth-delegator` exists and lets its subject create the reviews the kubelet makes.
//!
//! Needs root and the binaries: `cargo build --release -p rkube-cli -p rkube-runtime --bins`.

mod node_cluster;
mod up_support;

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use node_cluster::{Cluster, Options};
use reqwest::Method;

const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", "mkdir -p /www && echo served > /www/index.html && httpd -p 8080 -h /www && i=0; while true; do echo tick $i; i=$((i+1)); sleep 1; done"]
"#;

/// `get`/`create` on `nodes/proxy`: the kubelet API's exec, attach, logs, port-forward and run.
const NODE_PROXY: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: kubelet-proxy-test
rules:
- apiGroups: [""]
  resources: ["nodes/proxy"]
  verbs: ["get", "create"]
"#;

const SPDY_EXEC: &[(&str, &str)] = &[("connection", "Upgrade"), ("upgrade", "SPDY/3.1"), ("x-stream-protocol-version", "v4.channel.k8s.io")];
const SPDY_FORWARD: &[(&str, &str)] = &[("connection", "Upgrade"), ("upgrade", "SPDY/3.1"), ("x-stream-protocol-version", "portforward.k8s.io")];

/// A client certificate and key (PEM) of a kubeconfig written by `rkube kubeconfig`.
fn identity_of(c: &Cluster, kubeconfig: &Path) -> String {
    let field = |f: &str| {
        let b64 = c.kubectl(&["--kubeconfig", kubeconfig.to_str().expect("utf8"), "config", "view", "--raw", "-o", &format!("jsonpath={{.users[0].user.{f}}}")]);
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64.trim()).expect("base64")).expect("pem")
    };
    format!("{}{}", field("client-certificate-data"), field("client-key-data"))
}

/// An HTTPS client that trusts the kubelet's own serving certificate, with `identity` (cert + key PEM) if any.
fn client(kubelet_crt: &str, identity: Option<&str>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(Duration::from_secs(20))
        .add_root_certificate(reqwest::Certificate::from_pem(kubelet_crt.as_bytes()).expect("kubelet certificate"));
    if let Some(id) = identity {
        b = b.identity(reqwest::Identity::from_pem(id.as_bytes()).expect("identity"));
    }
    b.build().expect("client")
}

struct Kubelet {
    rt: tokio::runtime::Runtime,
    base: String,
}

impl Kubelet {
    /// One request; (status, body). The body of a 101 is not read: the upgraded connection is dropped.
    fn call(&self, client: &reqwest::Client, method: Method, path: &str, headers: &[(&str, &str)], token: Option<&str>) -> (u16, String) {
        self.rt.block_on(async {
            let mut req = client.request(method.clone(), format!("{}{path}", self.base));
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let resp = req.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
            let code = resp.status().as_u16();
            if code == 101 {
                return (code, String::new());
            }
            (code, resp.text().await.unwrap_or_else(|e| panic!("{method} {path}: body: {e}")))
        })
    }
}

fn forbidden(user: &str, verb: &str) -> String {
    format!("Forbidden (user={user}, verb={verb}, resource=nodes, subresource=proxy)")
}

#[test]
fn kubelet_api_needs_a_subject_access_review_for_every_caller() {
    let c = Cluster::start(Options::default());
    c.kubectl_ok(&["apply", "-f", "-"], Some(POD));
    c.kubectl_ok(&["wait", "--for=condition=Ready", "pod/web", "--timeout=90s"], None);
    // Grants are in place before anyone calls the kubelet: a denial is reused for 30 s (upstream's
    // unauthorized TTL), so a user is either always granted here or never.
    c.kubectl_ok(&["apply", "-f", "-"], Some(NODE_PROXY));
    c.kubectl_ok(&["create", "clusterrolebinding", "carol-kubelet", "--clusterrole=kubelet-proxy-test", "--user=carol"], None);
    c.kubectl_ok(&["create", "serviceaccount", "scraper"], None);
    c.kubectl_ok(&["create", "serviceaccount", "runner"], None);
    c.kubectl_ok(&["create", "clusterrolebinding", "runner-kubelet", "--clusterrole=kubelet-proxy-test", "--serviceaccount=default:runner"], None);

    let kubelet_crt = std::fs::read_to_string(c.node_dir.path().join("pki/kubelet.crt")).expect("the kubelet's serving certificate");
    let alice = client(&kubelet_crt, Some(&identity_of(&c, &c.user_kubeconfig("alice"))));
    let carol = client(&kubelet_crt, Some(&identity_of(&c, &c.user_kubeconfig("carol"))));
    let pki = c.server_dir.path().join("pki");
    let admin_id = format!(
        "{}{}",
        std::fs::read_to_string(pki.join("admin.crt")).expect("admin.crt"),
        std::fs::read_to_string(pki.join("admin.key")).expect("admin.key")
    );
    let admin = client(&kubelet_crt, Some(&admin_id));
    let nobody = client(&kubelet_crt, None);
    let k = Kubelet {
        rt: tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime"),
        base: format!("https://{}:10250", c.net.node_ip),
    };

    let logs = "/containerLogs/default/web/c?tailLines=1";
    let exec = "/exec/default/web/c?command=echo&command=exec-ok&output=1";
    let forward = "/portForward/default/web";
    let run_ok = "/run/default/web/c?cmd=echo%20run-ok";
    let run_alice = "/run/default/web/c?cmd=touch%20/tmp/alice-was-here";

    // alice: a certificate of the cluster CA, no grant. The attack of the issue, refused with upstream's words.
    assert_eq!(k.call(&alice, Method::GET, logs, &[], None), (403, forbidden("alice", "get")), "alice reads logs");
    assert_eq!(k.call(&alice, Method::POST, exec, SPDY_EXEC, None), (403, forbidden("alice", "create")), "alice execs (SPDY)");
    assert_eq!(k.call(&alice, Method::GET, exec, &[], None), (403, forbidden("alice", "get")), "alice execs (GET, as a WebSocket would)");
    assert_eq!(k.call(&alice, Method::POST, forward, SPDY_FORWARD, None), (403, forbidden("alice", "create")), "alice port-forwards");
    assert_eq!(k.call(&alice, Method::POST, run_alice, &[], None), (403, forbidden("alice", "create")), "alice runs a command");
    assert_eq!(k.call(&alice, Method::POST, "/attach/default/web/c?output=1", SPDY_EXEC, None), (403, forbidden("alice", "create")));
    assert_eq!(k.call(&alice, Method::GET, "/healthz", &[], None), (403, forbidden("alice", "get")));
    // nothing ran for her
    let ls = c.kubectl_output(None, &["exec", "web", "--", "ls", "/tmp/alice-was-here"], None);
    assert!(!ls.status.success(), "alice's /run left no file: {}", String::from_utf8_lossy(&ls.stdout));

    // carol: the same kind of certificate, and get/create on nodes/proxy
    let (code, body) = k.call(&carol, Method::GET, logs, &[], None);
    assert!(code == 200 && body.starts_with("tick "), "carol reads logs: {code} {body}");
    assert_eq!(k.call(&carol, Method::POST, run_ok, &[], None), (200, "run-ok\n".to_string()), "carol runs a command");
    assert_eq!(k.call(&carol, Method::POST, exec, SPDY_EXEC, None).0, 101, "carol's exec is upgraded to SPDY");
    assert_eq!(k.call(&carol, Method::POST, forward, SPDY_FORWARD, None).0, 101, "carol's port-forward is upgraded to SPDY");
    assert_eq!(k.call(&carol, Method::GET, "/healthz", &[], None), (200, "ok".to_string()));
    // her grant is get and create only
    assert_eq!(k.call(&carol, Method::PUT, "/healthz", &[], None), (403, forbidden("carol", "update")));

    // no certificate: 401 on every path, known or not, and with a forged token
    for (method, path) in [(Method::GET, logs), (Method::POST, exec), (Method::POST, forward), (Method::POST, run_ok), (Method::GET, "/healthz"), (Method::GET, "/nope")] {
        assert_eq!(k.call(&nobody, method.clone(), path, &[], None), (401, "Unauthorized".to_string()), "{method} {path} without a certificate");
    }
    assert_eq!(k.call(&nobody, Method::GET, logs, &[], Some("forged.token.value")), (401, "Unauthorized".to_string()));
    // a service account's token is its account, by TokenReview: refused without a grant, served with one
    let scraper = c.kubectl(&["create", "token", "scraper"]).trim().to_string();
    assert_eq!(k.call(&nobody, Method::GET, logs, &[], Some(&scraper)), (403, forbidden("system:serviceaccount:default:scraper", "get")));
    let runner = c.kubectl(&["create", "token", "runner"]).trim().to_string();
    assert_eq!(k.call(&nobody, Method::POST, run_ok, &[], Some(&runner)), (200, "run-ok\n".to_string()), "a granted service account runs");
    // a certificate wins over a token: alice with runner's token is still alice
    assert_eq!(k.call(&alice, Method::POST, run_ok, &[], Some(&runner)), (403, forbidden("alice", "create")));

    // the admin certificate (system:masters) passes its review
    let (code, body) = k.call(&admin, Method::GET, logs, &[], None);
    assert!(code == 200 && body.starts_with("tick "), "admin reads logs directly: {code} {body}");

    // through the apiserver, as its kubelet client identity: kubectl exec, logs and port-forward still work
    assert_eq!(c.kubectl(&["exec", "web", "--", "echo", "via-apiserver"]).trim(), "via-apiserver");
    assert!(c.kubectl(&["logs", "web", "--tail=1"]).starts_with("tick "));
    let port = rkube_testsupport::registry::free_port();
    let child = std::process::Command::new("kubectl")
        .args(["--kubeconfig", c.kubeconfig.to_str().expect("utf8"), "port-forward", "pod/web", &format!("{port}:8080"), "--address", "127.0.0.1"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("kubectl port-forward");
    let mut pf = rkube_testsupport::ChildGuard::new(child, "kubectl port-forward");
    let served = rkube_testsupport::poll_until("kubectl port-forward to serve the pod's port", Duration::from_secs(30), || {
        assert!(pf.is_running(), "kubectl port-forward exited");
        let out = std::process::Command::new("curl").args(["-sS", "--max-time", "5", &format!("http://127.0.0.1:{port}/index.html")]).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    });
    assert_eq!(served, "served\n");

    // upstream's system:auth-delegator: what a kubelet under its own identity needs for these reviews
    c.kubectl_ok(&["create", "clusterrolebinding", "dave-delegator", "--clusterrole=system:auth-delegator", "--user=dave"], None);
    for (what, want) in [("subjectaccessreviews.authorization.k8s.io", "yes"), ("tokenreviews.authentication.k8s.io", "yes"), ("pods", "no")] {
        let out = c.kubectl_output(None, &["auth", "can-i", "create", what, "--as=dave"], None);
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), want, "dave may create {what}");
    }
}
