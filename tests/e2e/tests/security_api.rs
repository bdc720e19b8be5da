//! The API server half of issue 12, attack by attack: each test performs what the probe did and asserts the
//! refusal, and that nothing was stored or left open.
//!
//! - one query for authorization and the handler: a user allowed one named Secret cannot list them all with a
//!   second `fieldSelector`; a user without `watch` gets no stream by any spelling;
//! - `nodes/proxy` to a Node whose address is the apiserver's own is refused, and the apiserver's kubelet
//!   client identity reads nothing on the API if it ever got there;
//! - idle, half-sent and handshake-less connections are closed; one client address cannot hold more than its
//!   share of connections while others are served;
//! - the plain-HTTP API refuses a browser's cross-site POST (and rebound names), and every listener refuses
//!   media types the API does not speak with upstream's 415;
//! - the data dir, the store and every key are private to their owner, and a loose data dir is tightened.

mod common;
mod up_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rkube_apiserver::connections::ConnectionLimits;
use rkube_apiserver::server::{open_backend, Backend, OpenedStore};
use rkube_apiserver::tls::Pki;
use rkube_apiserver::{ApiServer, ServerConfig};
use rkube_testsupport::{poll_until, unique_name, ChildGuard};
use serde_json::{json, Value};

/// An in-process apiserver on the embedded store in a temp dir, configured by the test; stopped on drop.
struct Server {
    /// Holds the store, PKI and kubeconfig until the server is dropped.
    _dir: tempfile::TempDir,
    url: String,
    port: u16,
    kubeconfig: PathBuf,
    rt: tokio::runtime::Runtime,
    server: Option<ApiServer>,
    store: Option<OpenedStore>,
}

impl Server {
    fn start(tls: bool, adjust: impl FnOnce(&mut ServerConfig, &Path)) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        let port = rkube_testsupport::registry::free_port();
        let data = dir.path().to_path_buf();
        let (server, store) = rt.block_on(async move {
            let opened = open_backend(&Backend::Embedded(data.join("state.redb"))).await.expect("open store");
            let mut config = ServerConfig::new(format!("127.0.0.1:{port}").parse().expect("addr"));
            if tls {
                config.tls_dir = Some(data.join("pki"));
            }
            adjust(&mut config, &data);
            let server = ApiServer::start(opened.store.clone(), config).await.expect("start apiserver");
            (server, opened)
        });
        let kubeconfig = dir.path().join("kubeconfig");
        server.write_kubeconfig(&kubeconfig).expect("kubeconfig");
        Server { url: server.url(), port, kubeconfig, _dir: dir, rt, server: Some(server), store: Some(store) }
    }

    fn pki(&self) -> &Pki {
        self.server.as_ref().and_then(|s| s.pki()).expect("a TLS server")
    }

    fn admin(&self) -> reqwest::Client {
        match self.server.as_ref().and_then(|s| s.pki()) {
            Some(pki) => identity_client(pki, &pki.admin_cert, &pki.admin_key),
            None => reqwest::Client::new(),
        }
    }

    /// A client with a certificate for `user` from the cluster CA.
    fn user(&self, user: &str) -> reqwest::Client {
        let pair = rkube_apiserver::tls::issue_user(self.pki(), user, &[]).expect("issue user certificate");
        identity_client(self.pki(), &pair.cert, &pair.key)
    }

    /// Sends a request; the answer's status, body (up to the first line of a stream) and whether it ended.
    fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        self.rt.block_on(async move {
            let mut resp = req.send().await.expect("request");
            let code = resp.status().as_u16();
            let mut body = Vec::new();
            let ended = loop {
                match tokio::time::timeout(Duration::from_secs(10), resp.chunk()).await {
                    Ok(Ok(Some(c))) => {
                        body.extend_from_slice(&c);
                        if body.contains(&b'\n') {
                            break false;
                        }
                    }
                    Ok(Ok(None)) | Ok(Err(_)) => break true,
                    Err(_) => break false,
                }
            };
            Answer { code, body: String::from_utf8_lossy(&body).into_owned(), ended }
        })
    }

    fn get(&self, client: &reqwest::Client, path: &str) -> Answer {
        self.send(client.get(format!("{}{path}", self.url)))
    }

    fn post(&self, client: &reqwest::Client, path: &str, body: &Value) -> Answer {
        self.send(client.post(format!("{}{path}", self.url)).header("content-type", "application/json").body(body.to_string()))
    }

    fn kubectl(&self, v: &str, args: &[&str]) -> std::process::Output {
        Command::new(common::kubectl_bin(v))
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run kubectl")
    }

    fn kubectl_ok(&self, v: &str, args: &[&str]) -> String {
        let out = self.kubectl(v, args);
        assert!(out.status.success(), "kubectl.{v} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            self.rt.block_on(s.shutdown());
        }
        let store = self.store.take();
        self.rt.block_on(async move { drop(store) });
    }
}

#[derive(Debug)]
struct Answer {
    code: u16,
    body: String,
    ended: bool,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// A complete Status answer with this code.
    fn assert_status(&self, code: u16, what: &str) -> Value {
        assert!(self.ended, "{what}: the answer is a stream: {self:?}");
        assert_eq!(self.code, code, "{what}: {self:?}");
        let st = self.json();
        assert_eq!(st["kind"], "Status", "{what}: {self:?}");
        st
    }
}

fn identity_client(pki: &Pki, cert: &str, key: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_cert.as_bytes()).expect("CA"))
        .identity(reqwest::Identity::from_pem(format!("{cert}\n{key}").as_bytes()).expect("identity"))
        .build()
        .expect("client")
}

fn create_ns(s: &Server, admin: &reqwest::Client, ns: &str) {
    let a = s.post(admin, "/api/v1/namespaces", &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}));
    assert_eq!(a.code, 201, "{a:?}");
}

#[test]
fn authorization_and_the_handler_read_one_parsed_query() {
    let s = Server::start(true, |_, _| {});
    let admin = s.admin();
    let ns = unique_name("query");
    create_ns(&s, &admin, &ns);
    let secrets = format!("/api/v1/namespaces/{ns}/secrets");
    for (name, value) in [("allowed", "allowed-value"), ("other", "other-value")] {
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": {"k": value}});
        assert_eq!(s.post(&admin, &secrets, &secret).code, 201);
    }
    let configmaps = format!("/api/v1/namespaces/{ns}/configmaps");
    assert_eq!(s.post(&admin, &configmaps, &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}})).code, 201);
    let rbac = format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}");
    let role = |name: &str, rules: Value| json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": name}, "rules": rules});
    let bind = |name: &str, user: &str| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": format!("{name}-{user}")},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]})
    };
    let one_secret = role("one-secret", json!([{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["allowed"], "verbs": ["get", "list"]}]));
    let read_cms = role("read-cms", json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]));
    let watch_cms = role("watch-cms", json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}]));
    for r in [one_secret, read_cms, watch_cms] {
        assert_eq!(s.post(&admin, &format!("{rbac}/roles"), &r).code, 201);
    }
    for (r, u) in [("one-secret", "alice"), ("read-cms", "alice"), ("watch-cms", "bob")] {
        assert_eq!(s.post(&admin, &format!("{rbac}/rolebindings"), &bind(r, u)).code, 201);
    }
    let alice = s.user("alice");

    // the narrowed list resourceNames allow, to show the rule is what is tested
    let a = s.get(&alice, &format!("{secrets}?fieldSelector=metadata.name%3Dallowed"));
    assert_eq!(a.code, 200, "{a:?}");
    let names: Vec<String> = a.json()["items"].as_array().expect("items").iter().map(|i| i["metadata"]["name"].as_str().unwrap_or_default().to_string()).collect();
    assert_eq!(names, ["allowed"]);
    // the attack and its variants: a second fieldSelector is refused before either reader picks one
    for q in [
        "fieldSelector=metadata.name%3Dallowed&fieldSelector=",
        "fieldSelector=&fieldSelector=metadata.name%3Dallowed",
        "fieldSelector=metadata.name%3Dallowed&fieldSelector=metadata.name%3Dother",
        // the second copy's name spelled with an escape is the same parameter
        "fieldSelector=metadata.name%3Dallowed&field%53elector=",
    ] {
        let a = s.get(&alice, &format!("{secrets}?{q}"));
        let st = a.assert_status(400, q);
        assert!(st["message"].as_str().unwrap_or_default().contains("\"fieldSelector\" is given 2 times"), "{q}: {st}");
        assert!(!a.body.contains("b3RoZXItdmFsdWU="), "{q}: the other secret leaked: {}", a.body);
    }
    // and what was never allowed stays closed
    for path in [
        secrets.clone(),
        format!("{secrets}/other"),
        format!("{secrets}?fieldSelector=metadata.name%3Dother"),
        format!("{secrets}?fieldSelector=metadata.name!%3Dallowed"),
        // a ';' does not separate parameters: this is one selector whose name is not "allowed"
        format!("{secrets}?fieldSelector=metadata.name%3Dallowed;fieldSelector="),
        format!("{secrets}/allowed/../other"),
        format!("/api/v1/watch/namespaces/{ns}/secrets/allowed"),
    ] {
        let a = s.get(&alice, &path);
        assert!(a.ended && matches!(a.code, 403 | 404), "{path}: {a:?}");
        assert!(!a.body.contains("b3RoZXItdmFsdWU="), "{path}: {}", a.body);
    }
    // a named selector narrows what the handler returns the same way: both names required, none matches
    let a = s.get(&alice, &format!("{secrets}?fieldSelector=metadata.name%3Dallowed,metadata.name%3Dother"));
    assert_eq!((a.code, a.json()["items"].as_array().map(Vec::len)), (200, Some(0)), "{a:?}");

    // no watch for alice by any spelling: each is a watch to authorization and handler alike, or refused
    for q in ["watch", "watch=", "watch=1", "watch=true", "watch=True", "watch=TRUE", "watch=t", "watch=yes", "watch=0&watch=1", "watch=1&watch=0", "watch=false&watch=true"] {
        let a = s.get(&alice, &format!("{configmaps}?{q}"));
        assert!(a.ended && (a.code == 403 || a.code == 400), "{q}: alice got {a:?}");
        assert!(!a.body.contains("\"type\":\"ADDED\""), "{q}: a watch event: {}", a.body);
    }
    s.get(&alice, &format!("/api/v1/watch/namespaces/{ns}/configmaps")).assert_status(403, "legacy /watch/ path");
    for q in ["watch=false", "watch=0", "watch=FALSE"] {
        let a = s.get(&alice, &format!("{configmaps}?{q}"));
        assert_eq!((a.code, a.json()["kind"].as_str()), (200, Some("ConfigMapList")), "{q}: a list: {a:?}");
    }
    // bob may watch: a bare `?watch` is a stream for the handler too, as upstream
    let bob = s.user("bob");
    for q in ["watch", "watch=True"] {
        let a = s.get(&bob, &format!("{configmaps}?{q}"));
        assert!(a.code == 200 && !a.ended && a.body.starts_with("{\"type\":\"ADDED\""), "{q}: bob's watch: {a:?}");
    }
}

#[test]
fn nodes_proxy_does_not_reach_the_apiserver_itself() {
    // as `rkube server --tls`: kubelets are reached over HTTPS with the apiserver's kubelet client certificate
    let s = Server::start(true, |config, data| {
        let pki = rkube_apiserver::tls::ensure_pki(&data.join("pki"), &[]).expect("pki");
        let client = rkube_apiserver::tls::issue_kubelet_client(&pki).expect("kubelet client certificate");
        config.kubelet_client = Some(rkube_apiserver::node_proxy::KubeletClientTls { ca_pem: None, cert_pem: client.cert, key_pem: client.key });
    });
    let admin = s.admin();
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "crown-jewels"}, "stringData": {"k": "jewels-value"}});
    assert_eq!(s.post(&admin, "/api/v1/namespaces/default/secrets", &secret).code, 201);
    // nodes whose "kubelet" is the apiserver's own address, loopback elsewhere, and the cloud metadata address
    for (node, ip, port) in [("self", "127.0.0.1", s.port), ("loop", "127.0.0.2", s.port), ("meta", "169.254.169.254", 80)] {
        assert_eq!(s.post(&admin, "/api/v1/nodes", &json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}})).code, 201);
        let status = json!({"status": {"addresses": [{"type": "InternalIP", "address": ip}], "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}});
        let a = s.send(
            admin.patch(format!("{}/api/v1/nodes/{node}/status", s.url)).header("content-type", "application/merge-patch+json").body(status.to_string()),
        );
        assert_eq!(a.code, 200, "{a:?}");
    }
    let cr = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "node-proxy"},
                    "rules": [{"apiGroups": [""], "resources": ["nodes/proxy"], "verbs": ["get"]}]});
    assert_eq!(s.post(&admin, "/apis/rbac.authorization.k8s.io/v1/clusterroles", &cr).code, 201);
    let crb = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "mallory-node-proxy"},
                     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "node-proxy"},
                     "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "mallory"}]});
    assert_eq!(s.post(&admin, "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", &crb).code, 201);
    let mallory = s.user("mallory");
    s.get(&mallory, "/api/v1/namespaces/default/secrets").assert_status(403, "mallory lists secrets");
    // the attack: upstream's 400 "address not allowed", before any connection is made
    for node in ["self", "loop", "meta"] {
        let path = format!("/api/v1/nodes/{node}/proxy/api/v1/namespaces/default/secrets");
        let a = s.get(&mallory, &path);
        let st = a.assert_status(400, &path);
        assert_eq!(st["message"], "address not allowed", "{path}");
        assert!(!a.body.contains("jewels") && !a.body.contains("crown"), "{path}: {}", a.body);
    }
    // and if a request ever got to the apiserver with the kubelet client certificate, it reads nothing there:
    // that user holds the kubelet API (system:kubelet-api-admin), not system:masters
    let client = rkube_apiserver::tls::issue_kubelet_client(s.pki()).expect("kubelet client certificate");
    let kubelet_client = identity_client(s.pki(), &client.cert, &client.key);
    let a = s.get(&kubelet_client, "/api/v1/namespaces/default/secrets");
    let st = a.assert_status(403, "the kubelet client lists secrets");
    assert!(
        st["message"].as_str().unwrap_or_default().contains("User \"kube-apiserver-kubelet-client\" cannot list resource \"secrets\""),
        "{st}"
    );
    assert!(!a.body.contains("jewels"));
    assert_eq!(s.get(&kubelet_client, "/api/v1/nodes/self").code, 200, "it may read nodes, as upstream's system:kubelet-api-admin");
    s.get(&kubelet_client, "/api/v1/namespaces/default/pods").assert_status(403, "the kubelet client lists pods");
    let review = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                        "spec": {"resourceAttributes": {"verb": "get", "resource": "nodes", "subresource": "proxy", "name": "self"}}});
    let a = s.post(&kubelet_client, "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", &review);
    assert_eq!((a.code, &a.json()["status"]["allowed"]), (201, &json!(true)), "{a:?}");
}

/// Reads from `c` until the peer closes it; panics if it is still open after `deadline` (the limit under
/// test is a second or two; without it the connection stays open forever).
fn wait_closed(c: &mut TcpStream, what: &str, deadline: Duration) -> Vec<u8> {
    c.set_read_timeout(Some(Duration::from_millis(200))).expect("read timeout");
    let until = std::time::Instant::now() + deadline;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                assert!(std::time::Instant::now() < until, "{what}: the server kept the connection open for {deadline:?}");
            }
            Err(_) => return got,
        }
    }
}

fn connect(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port)).expect("connect")
}

/// One HTTP/1.1 request on `c` (kept alive); the status code of the answer, read to its end (Content-Length).
fn request(c: &mut TcpStream, port: u16, path: &str) -> u16 {
    write!(c, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").expect("send");
    c.set_read_timeout(Some(Duration::from_secs(20))).expect("read timeout");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match c.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return 0,
        }
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let len: usize = head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    let mut body = vec![0u8; len];
    c.read_exact(&mut body).expect("body");
    head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

fn short_limits(max: usize) -> ConnectionLimits {
    ConnectionLimits {
        tls_handshake_timeout: Duration::from_secs(1),
        request_header_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(2),
        request_body_timeout: Duration::from_secs(1),
        max_connections_per_client: max,
    }
}

#[test]
fn idle_half_sent_and_handshakeless_connections_are_closed() {
    let limit = Duration::from_secs(20);
    // TLS: a client that never starts the handshake
    let tls = Server::start(true, |c, _| c.limits = short_limits(64));
    let mut c = connect(tls.port);
    assert!(wait_closed(&mut c, "no TLS handshake", limit).is_empty());

    let s = Server::start(false, |c, _| c.limits = short_limits(64));
    // nothing sent at all; half a request head; a finished request on an idle keep-alive connection
    let mut silent = connect(s.port);
    let mut half = connect(s.port);
    half.write_all(b"GET /version HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ").expect("half a head");
    let mut idle = connect(s.port);
    assert_eq!(request(&mut idle, s.port, "/version"), 200);
    assert!(wait_closed(&mut silent, "no request", limit).is_empty());
    assert!(wait_closed(&mut half, "half a request head", limit).is_empty());
    assert!(wait_closed(&mut idle, "idle keep-alive", limit).is_empty());
    // half a body: upstream's 504 once the body timeout passes, and nothing created
    let mut slow = connect(s.port);
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "half-a-body"}}).to_string();
    write!(slow, "POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}", s.port, body.len(), &body[..10])
        .expect("half a body");
    let answer = String::from_utf8_lossy(&wait_closed(&mut slow, "half a request body", limit)).into_owned();
    assert!(answer.starts_with("HTTP/1.1 504") && answer.contains("request did not complete within requested timeout"), "{answer}");
    s.get(&s.admin(), "/api/v1/namespaces/default/configmaps/half-a-body").assert_status(404, "not created");

    // a request in flight is not cut by either timeout: a watch opened now still delivers an event made after
    // both have passed several times over
    let admin = s.admin();
    let url = format!("{}/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=0&timeoutSeconds=60", s.url);
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let watch = s.rt.spawn(async move {
        let mut resp = admin.get(url).send().await.expect("watch");
        let mut buf = Vec::new();
        while let Ok(Some(c)) = resp.chunk().await {
            buf.extend_from_slice(&c);
            while let Some(i) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=i).collect();
                let _ = tx.send(String::from_utf8_lossy(&line).into_owned());
            }
        }
    });
    let mut probe = connect(s.port);
    assert_eq!(request(&mut probe, s.port, "/version"), 200);
    assert!(wait_closed(&mut probe, "idle probe while the watch runs", limit).is_empty(), "the idle timeout has passed");
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "after-the-timeouts"}});
    assert_eq!(s.post(&reqwest::Client::new(), "/api/v1/namespaces/default/configmaps", &cm).code, 201);
    let line = poll_until("the watch event after the timeouts", limit, || rx.try_recv().ok().filter(|l| l.contains("after-the-timeouts")));
    assert!(line.contains("\"ADDED\""), "{line}");
    watch.abort();
}

#[test]
fn one_client_address_cannot_take_every_connection() {
    // long timeouts: a connection closed here was closed by the cap
    let s = Server::start(false, |c, _| {
        c.limits = ConnectionLimits { max_connections_per_client: 3, request_header_timeout: Duration::from_secs(300), idle_timeout: Duration::from_secs(300), ..Default::default() }
    });
    let mut held: Vec<TcpStream> = (0..3).map(|_| connect(s.port)).collect();
    for c in &mut held {
        assert_eq!(request(c, s.port, "/version"), 200, "within the cap");
    }
    let mut over = connect(s.port);
    let _ = over.write_all(format!("GET /version HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n", s.port).as_bytes());
    assert!(wait_closed(&mut over, "a 4th connection from 127.0.0.1", Duration::from_secs(20)).is_empty(), "no answer beyond the cap");
    // another client address is served meanwhile
    let other = s.rt.block_on(async {
        let sock = tokio::net::TcpSocket::new_v4().expect("socket");
        sock.bind("127.0.0.2:0".parse().expect("addr")).expect("bind 127.0.0.2");
        sock.connect(format!("127.0.0.1:{}", s.port).parse().expect("addr")).await.expect("connect from 127.0.0.2")
    });
    let mut other = other.into_std().expect("std stream");
    other.set_nonblocking(false).expect("blocking");
    assert_eq!(request(&mut other, s.port, "/version"), 200, "127.0.0.2 is another client");
    // the slot frees when a connection ends
    drop(held.pop());
    poll_until("a connection from 127.0.0.1 once one closed", Duration::from_secs(20), || {
        let mut c = connect(s.port);
        (request(&mut c, s.port, "/version") == 200).then_some(())
    });
}

/// Sends `head` + `body` on a new connection (Connection: close); the status code and body.
fn raw(port: u16, head: &str, body: &str) -> (u16, String) {
    let mut c = connect(port);
    write!(c, "{head}Content-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).expect("send");
    let got = wait_closed(&mut c, "a Connection: close request", Duration::from_secs(20));
    let text = String::from_utf8_lossy(&got).into_owned();
    let code = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (code, body)
}

const UNSUPPORTED: &str =
    "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf";

#[test]
fn plain_http_refuses_cross_site_browsers_and_every_listener_unknown_media_types() {
    let s = Server::start(false, |_, _| {});
    let port = s.port;
    let cm = |name: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}).to_string();
    let post = |extra: &str| format!("POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\n{extra}");
    let host = format!("Host: 127.0.0.1:{port}\r\n");
    // the probe's attack: a page on another site posts JSON as text/plain (a "simple" cross-site request)
    let (code, body) = raw(port, &post(&format!("{host}Origin: http://evil.example\r\nContent-Type: text/plain\r\n")), &cm("csrf-text"));
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("cross-origin request from \\\"http://evil.example\\\" refused"), "{body}");
    // the same without a content type (fetch with a Blob body), or from another port of this host
    for (name, extra) in [
        ("csrf-blob", format!("{host}Origin: http://evil.example\r\n")),
        ("csrf-port", format!("{host}Origin: http://127.0.0.1:8080\r\nContent-Type: application/json\r\n")),
        ("csrf-null", format!("{host}Origin: null\r\n")),
        ("csrf-fetch", format!("{host}Sec-Fetch-Site: cross-site\r\nContent-Type: application/json\r\n")),
        // DNS rebinding: the attacker's name now points here, so the page is "same origin"
        ("csrf-rebind", format!("Host: rebind.evil.example:{port}\r\nOrigin: http://rebind.evil.example:{port}\r\nContent-Type: application/json\r\n")),
    ] {
        let (code, body) = raw(port, &post(&extra), &cm(name));
        assert_eq!(code, 403, "{name}: {body}");
    }
    // a WebSocket exec from another site is refused before anything else
    let (code, _) = raw(
        port,
        &format!("GET /api/v1/namespaces/default/pods/p/exec?command=id&stdout=1 HTTP/1.1\r\n{host}Origin: http://evil.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"),
        "",
    );
    assert_eq!(code, 403);
    // media types the API does not speak: upstream's 415, from anyone
    for (name, ct) in [("ct-text", "text/plain"), ("ct-form", "application/x-www-form-urlencoded"), ("ct-multipart", "multipart/form-data; boundary=x"), ("ct-any", "*/*")] {
        let (code, body) = raw(port, &post(&format!("{host}Content-Type: {ct}\r\n")), &cm(name));
        assert_eq!(code, 415, "{ct}: {body}");
        let st: Value = serde_json::from_str(&body).expect("Status");
        assert_eq!((st["reason"].as_str(), st["message"].as_str()), (Some("UnsupportedMediaType"), Some(UNSUPPORTED)), "{ct}");
    }
    let (code, body) = raw(port, &format!("PATCH /api/v1/namespaces/default/configmaps/x HTTP/1.1\r\n{host}Content-Type: application/json\r\n"), "{}");
    assert_eq!(code, 415, "{body}");
    assert!(body.contains("accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml"), "{body}");
    // nothing was created
    let list = s.get(&reqwest::Client::new(), "/api/v1/namespaces/default/configmaps").json();
    let names: Vec<&str> = list["items"].as_array().expect("items").iter().filter_map(|i| i["metadata"]["name"].as_str()).collect();
    assert!(names.iter().all(|n| !n.starts_with("csrf") && !n.starts_with("ct-")), "created by a refused request: {names:?}");
    // same-origin and non-browser clients are served: the page's own origin, IPs, localhost
    let (code, body) = raw(port, &post(&format!("{host}Origin: http://127.0.0.1:{port}\r\nContent-Type: application/json\r\n")), &cm("same-origin"));
    assert_eq!(code, 201, "{body}");
    let (code, body) = raw(port, &post(&format!("Host: localhost:{port}\r\nContent-Type: application/json; charset=utf-8\r\n")), &cm("by-localhost"));
    assert_eq!(code, 201, "{body}");
    // kubectl works as before, old and new
    for v in common::KUBECTLS {
        let name = unique_name("kubectl");
        s.kubectl_ok(v, &["create", "configmap", &name, "--from-literal", "a=b"]);
        s.kubectl_ok(v, &["label", "configmap", &name, "x=y"]);
        let got = s.kubectl_ok(v, &["get", "configmap", &name, "-o", "jsonpath={.metadata.labels.x}"]);
        assert_eq!(got, "y", "kubectl.{v}");
        s.kubectl_ok(v, &["delete", "configmap", &name]);
    }

    // HTTPS refuses the media types too (upstream does so everywhere), and stores nothing
    let t = Server::start(true, |_, _| {});
    let a = t.send(t.admin().post(format!("{}/api/v1/namespaces/default/configmaps", t.url)).header("content-type", "text/plain").body(cm("tls-text")));
    let st = a.assert_status(415, "text/plain over HTTPS");
    assert_eq!(st["message"], UNSUPPORTED);
    t.get(&t.admin(), "/api/v1/namespaces/default/configmaps/tls-text").assert_status(404, "not created");
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o7777
}

fn chmod(p: &Path, m: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).expect("chmod");
}

/// Every file under `dir` that holds a private key or credentials (PEM keys, kubeconfigs with client keys,
/// the store and its log).
fn secret_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir").map(|e| e.expect("entry")) {
            let p = e.path();
            if e.file_type().expect("type").is_dir() {
                stack.push(p);
                continue;
            }
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let text = std::fs::read(&p).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
            if name.starts_with("state.redb") || text.contains("PRIVATE KEY") || text.contains("client-key-data") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// `rkube server --tls` on `data`, its log in `log`; returns once it says it is up.
fn rkube_server(data: &Path, port: u16, log: &Path) -> ChildGuard {
    up_support::start_rkube_server(data, port, &["--tls"], log)
}

#[test]
fn data_dir_store_and_keys_are_private_and_loose_modes_are_tightened() {
    rkube_testsupport::require_root(); // chown to another user
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let log = tmp.path().join("server.log");
    let port = rkube_testsupport::registry::free_port();
    let check = |when: &str| {
        assert_eq!(mode(&data), 0o700, "{when}: data dir");
        assert_eq!(mode(&data.join("pki")), 0o700, "{when}: pki dir");
        let secrets = secret_files(&data);
        for want in ["state.redb", "state.redb-wal", "kubeconfig", "pki/ca.key", "pki/apiserver.key", "pki/admin.key", "pki/sa.key"] {
            assert!(secrets.contains(&data.join(want)), "{when}: {want} is among the secret files {secrets:?}");
        }
        for f in &secrets {
            assert_eq!(mode(f), 0o600, "{when}: {}", f.display());
        }
    };
    let server = rkube_server(&data, port, &log);
    check("first start");
    drop(server);

    // an older rkube's modes: a 0755 data dir and pki, a 0644 store, log, keys and kubeconfig
    chmod(&data, 0o755);
    chmod(&data.join("pki"), 0o755);
    for f in ["state.redb", "state.redb-wal", "kubeconfig", "pki/ca.key", "pki/sa.key", "pki/admin.key"] {
        chmod(&data.join(f), 0o644);
    }
    let server = rkube_server(&data, port, &log);
    check("restart on loose modes");
    let text = std::fs::read_to_string(&log).expect("log");
    for f in ["state.redb", "state.redb-wal", "pki/ca.key", "pki/sa.key", "pki/admin.key"] {
        let line = text.lines().find(|l| l.contains(&format!("{}", data.join(f).display())) && l.contains("removed their access"));
        assert!(line.is_some_and(|l| l.contains("0644") && l.contains("0600")), "no warning for {f}: {text}");
    }
    assert!(text.lines().any(|l| l.contains("removed their access") && l.contains("0755") && l.contains("0700")), "no warning for the dirs: {text}");
    drop(server);

    // a store owned by another user is refused, not used
    std::os::unix::fs::chown(data.join("state.redb"), Some(65534), None).expect("chown");
    let err = std::fs::File::create(&log).expect("log file");
    let mut child = Command::new(up_support::bin("rkube"))
        .args(["server", "--tls", "--data-dir"])
        .arg(&data)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .expect("start rkube server");
    let status = poll_until("rkube server to refuse the store", Duration::from_secs(60), || child.try_wait().expect("wait"));
    assert!(!status.success());
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(text.contains("is owned by uid 65534, not by this process"), "{text}");
    assert_eq!(mode(&data.join("state.redb")), 0o600, "left as it was");

    // user credentials from `rkube kubeconfig` are private too
    std::os::unix::fs::chown(data.join("state.redb"), Some(0), None).expect("chown back");
    let alice = tmp.path().join("alice.kubeconfig");
    let out = Command::new(up_support::bin("rkube"))
        .args(["kubeconfig", "--data-dir"])
        .arg(&data)
        .args(["--user", "alice", "-o"])
        .arg(&alice)
        .output()
        .expect("rkube kubeconfig");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(mode(&alice), 0o600);
}
