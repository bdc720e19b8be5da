//! Joining a node the kubeadm way, with the real kubectl: `rkube server` alone, `rkube token create
//! --print-join-command`, then `rkube join` with the token and the CA pin on a node whose address is on a veth
//! of the test's own. The node's CSR is auto-approved and signed (`kubectl get csr`: Approved,Issued, requested
//! by system:bootstrap:<id>), the node goes Ready under its own `system:node:<name>` certificate and runs a pod.
//! A DaemonSet made before the node joins gets its pod on it. A wrong pin fails with kubeadm's words and leaves
//! nothing (no data dir, no CSR); a deleted token is 401. With 20 s certificates (`--cluster-signing-duration`)
//! the node renews its own before each expires, through self-approved CSRs, and stays Ready without a restart.

mod up_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use rkube_testsupport::{poll_until, registry::free_port, require_command, require_root, unique_name, ChildGuard};
use up_support::{bin, import_busybox, kubectl_output_with, kubectl_try_with, kubectl_with, ForwardGuard, NodeNet};

struct Join {
    server_dir: tempfile::TempDir,
    node_dir: tempfile::TempDir,
    net: NodeNet,
    server: Option<ChildGuard>,
    node: Option<ChildGuard>,
    url: String,
    _forward: ForwardGuard,
}

impl Join {
    fn kubeconfig(&self) -> PathBuf {
        self.server_dir.path().join("kubeconfig")
    }

    fn rkube(&self, args: &[&str]) -> Output {
        let out = Command::new(bin("rkube")).args(args).stdin(Stdio::null()).output().expect("run rkube");
        eprintln!("rkube {args:?}: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr).lines().rev().take(5).collect::<Vec<_>>().join("\n"));
        out
    }

    fn print_logs(&self) {
        for f in [self.server_dir.path().join("server.log"), self.server_dir.path().join("join.log")] {
            if let Some(tail) = rkube_testsupport::log_tail(&f, 30) {
                eprintln!("{tail}");
            }
        }
    }
}

impl Drop for Join {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_logs();
        }
        self.node.take();
        let _ = Command::new(bin("rkube")).args(["down", "--data-dir"]).arg(self.node_dir.path()).stderr(Stdio::null()).status();
        self.server.take();
        self.net.remove_veth();
    }
}

fn start() -> Join {
    start_with(&[])
}

/// `rkube server` with more flags, answering kubectl.
fn start_with(server_args: &[&str]) -> Join {
    require_root();
    require_command("ip", "iproute2");
    require_command("nft", "nftables");
    require_command("kubectl", "kubectl");
    let port = free_port();
    let j = Join {
        server_dir: tempfile::tempdir().expect("server dir"),
        node_dir: tempfile::tempdir().expect("node dir"),
        net: NodeNet::new(),
        server: None,
        node: None,
        url: format!("https://127.0.0.1:{port}"),
        _forward: ForwardGuard::acquire(),
    };
    j.net.create_veth();
    import_busybox(j.node_dir.path());
    let log = std::fs::File::create(j.server_dir.path().join("server.log")).expect("server log");
    let child = Command::new(bin("rkube"))
        .args(["server", "--data-dir"])
        .arg(j.server_dir.path())
        .args(["--listen", &format!("127.0.0.1:{port}"), "--tls", "--cluster-dns", &j.net.cluster_dns])
        .args(j.net.server_args())
        .args(server_args)
        .env("RKUBE_LOG", "info,kube=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start rkube server");
    let mut j = j;
    let server = j.server.insert(ChildGuard::new(child, "rkube server"));
    let kubeconfig = j.server_dir.path().join("kubeconfig");
    poll_until("the server answers kubectl", Duration::from_secs(60), || {
        assert!(server.is_running(), "rkube server exited");
        if !kubeconfig.exists() {
            return None;
        }
        kubectl_output_with(&kubeconfig, &["get", "--raw", "/readyz", "--request-timeout=10s"], None).status.success().then_some(())
    });
    j
}

/// A raw GET with `token` as the bearer, no client certificate: kubectl's stdout or stderr.
fn get_with_token(url: &str, token: &str, path: &str) -> (bool, String) {
    let empty = tempfile::NamedTempFile::new().expect("empty kubeconfig");
    let out = kubectl_output_with(empty.path(), &["--server", url, "--insecure-skip-tls-verify", "--token", token, "get", "--raw", path], None);
    let text = if out.status.success() { String::from_utf8_lossy(&out.stdout) } else { String::from_utf8_lossy(&out.stderr) };
    (out.status.success(), text.into_owned())
}

/// `rkube token create --print-join-command`: (token, CA pin).
fn token_and_pin(j: &Join) -> (String, String) {
    let kc = j.kubeconfig().display().to_string();
    let out = j.rkube(&["token", "create", "--kubeconfig", &kc, "--print-join-command"]);
    assert!(out.status.success(), "rkube token create failed");
    let command = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let words: Vec<&str> = command.split_whitespace().collect();
    let after = |flag: &str| words.iter().position(|w| *w == flag).map(|i| words[i + 1].to_string()).unwrap_or_else(|| panic!("{flag} in {command:?}"));
    (after("--token"), after("--discovery-token-ca-cert-hash"))
}

/// `rkube join` of node `name` on the test's veth, waited for until Ready.
fn join_node(j: &mut Join, token: &str, pin: &str, name: &str) {
    let log = std::fs::File::create(j.server_dir.path().join("join.log")).expect("join log");
    let child = Command::new(bin("rkube"))
        .args(["join", "--server", &j.url, "--token", token, "--discovery-token-ca-cert-hash", pin, "--node-name", name, "--data-dir"])
        .arg(j.node_dir.path())
        .args(j.net.node_args())
        // this test is about joining, not about the host's free disk
        .args(["--eviction-hard", "memory.available<100Mi,nodefs.available<1%"])
        .env("RKUBE_LOG", "info,kube=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start rkube join");
    let kc = j.kubeconfig();
    let node = j.node.insert(ChildGuard::new(child, "rkube join"));
    poll_until("the joined node Ready", Duration::from_secs(90), || {
        assert!(node.is_running(), "rkube join exited");
        let s = kubectl_try_with(&kc, &["get", "node", name, "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"]);
        (s.as_deref() == Some("True")).then_some(())
    });
}

/// The client certificate in a kubeconfig, by openssl: (serial, notAfter in Unix seconds).
fn client_cert(kubeconfig: &Path) -> (String, u64) {
    use base64::Engine;
    let text = std::fs::read_to_string(kubeconfig).expect("read kubeconfig");
    let data = text.lines().find_map(|l| l.trim().strip_prefix("client-certificate-data:")).unwrap_or_else(|| panic!("no client certificate in {text}"));
    let pem = base64::engine::general_purpose::STANDARD.decode(data.trim().trim_matches('"')).expect("base64");
    let mut child = Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-enddate"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run openssl");
    std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), &pem).expect("write pem");
    let out = child.wait_with_output().expect("openssl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |k: &str| text.lines().find_map(|l| l.strip_prefix(k)).unwrap_or_else(|| panic!("{k} in {text}")).to_string();
    let end = Command::new("date").args(["-u", "-d", &field("notAfter="), "+%s"]).output().expect("date");
    let end: u64 = String::from_utf8_lossy(&end.stdout).trim().parse().expect("epoch seconds");
    (field("serial="), end)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs()
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).expect("stat").permissions().mode() & 0o777
}

#[test]
fn a_node_joins_with_a_token_and_the_ca_pin() {
    let mut j = start();
    let kc = j.kubeconfig();
    let kc_arg = kc.display().to_string();
    let out = j.rkube(&["token", "create", "--kubeconfig", &kc_arg, "--print-join-command", "--description", "e2e"]);
    assert!(out.status.success(), "rkube token create failed");
    let command = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let words: Vec<&str> = command.split_whitespace().collect();
    let after = |flag: &str| words.iter().position(|w| *w == flag).map(|i| words[i + 1].to_string()).unwrap_or_else(|| panic!("{flag} in {command:?}"));
    assert!(command.starts_with("rkube join --server "), "{command}");
    let (token, pin) = (after("--token"), after("--discovery-token-ca-cert-hash"));
    let id = token.split('.').next().expect("token id").to_string();
    assert_eq!(after("--server"), j.url);
    let listed = String::from_utf8_lossy(&j.rkube(&["token", "list", "--kubeconfig", &kc_arg]).stdout).into_owned();
    assert!(listed.contains(&token) && listed.contains("authentication,signing") && listed.contains("e2e"), "{listed}");

    // a wrong pin: kubeadm's error, nothing written, no CSR filed
    let wrong_dir = j.server_dir.path().join("wrong-node");
    let wrong_pin = format!("sha256:{}", "0".repeat(64));
    let out = j.rkube(&["join", "--server", &j.url, "--token", &token, "--discovery-token-ca-cert-hash", &wrong_pin, "--data-dir", &wrong_dir.display().to_string(), "--node-name", "wrong"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("cluster CA found in cluster-info ConfigMap is invalid: none of the public keys") && err.contains(&pin), "{err}");
    assert!(!wrong_dir.exists(), "a refused join leaves no data dir");
    assert_eq!(kubectl_with(&kc, &["get", "csr", "-o", "name"]).trim(), "", "a refused join files no CSR");

    // a DaemonSet made while the cluster has no node: the node that joins gets its pod
    let ds = "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: agent\nspec:\n  selector:\n    matchLabels: {app: agent}\n  template:\n    metadata:\n      labels: {app: agent}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - {name: c, image: \"busybox:latest\", imagePullPolicy: Never, command: [sleep, \"3600\"]}\n";
    up_support::kubectl_ok_with(&kc, &["apply", "-f", "-"], Some(ds));

    // the real join
    let node_name = unique_name("joined");
    join_node(&mut j, &token, &pin, &node_name);
    let csrs = kubectl_with(&kc, &["get", "csr"]);
    let row = csrs.lines().find(|l| l.starts_with("node-csr-")).unwrap_or_else(|| panic!("no node CSR in:\n{csrs}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[2..], ["kubernetes.io/kube-apiserver-client-kubelet", &format!("system:bootstrap:{id}"), "<none>", "Approved,Issued"], "{csrs}");
    let header: Vec<&str> = csrs.lines().next().expect("header").split_whitespace().collect();
    assert_eq!(header, ["NAME", "AGE", "SIGNERNAME", "REQUESTOR", "REQUESTEDDURATION", "CONDITION"]);
    let csr_name = cols[0];
    let reason = kubectl_with(&kc, &["get", "csr", csr_name, "-o", "jsonpath={.status.conditions[0].reason}/{.status.conditions[0].message}"]);
    assert_eq!(reason, "AutoApproved/Auto approving kubelet client certificate after SubjectAccessReview.");
    let conf = j.node_dir.path().join("kubelet.conf");
    assert_eq!(mode(&conf), 0o600);
    let whoami = kubectl_with(&conf, &["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"]);
    assert_eq!(whoami, format!("system:node:{node_name}"), "the node runs with its own credential, not the admin's");

    // it runs a pod
    let pod = "joined-pod";
    let manifest = format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {pod}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: busybox:latest\n    imagePullPolicy: Never\n    command: [\"sleep\", \"3600\"]\n");
    up_support::kubectl_ok_with(&kc, &["apply", "-f", "-"], Some(&manifest));
    poll_until("the pod Running on the joined node", Duration::from_secs(90), || {
        let s = kubectl_try_with(&kc, &["get", "pod", pod, "-o", "jsonpath={.spec.nodeName}/{.status.phase}"])?;
        (s == format!("{node_name}/Running")).then_some(())
    });
    poll_until("the DaemonSet's pod Running on the new node", Duration::from_secs(90), || {
        let s = kubectl_try_with(&kc, &["get", "pods", "-l", "app=agent", "-o", "jsonpath={range .items[*]}{.spec.nodeName}/{.status.phase} {end}"])?;
        (s.trim() == format!("{node_name}/Running")).then_some(())
    });

    // the token authenticates until deleted, then 401
    let csr_path = "/apis/certificates.k8s.io/v1/certificatesigningrequests";
    let (ok, text) = get_with_token(&j.url, &token, csr_path);
    assert!(ok, "a bootstrap token may list CSRs: {text}");
    assert!(j.rkube(&["token", "delete", "--kubeconfig", &kc_arg, &id]).status.success());
    let (ok, text) = get_with_token(&j.url, &token, csr_path);
    assert!(!ok && text.contains("Unauthorized"), "a deleted token is 401: {text}");
    let out = j.rkube(&["token", "delete", "--kubeconfig", &kc_arg, &id]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("not found"));
}

#[test]
fn an_expired_token_is_refused_and_cleaned_up() {
    let j = start();
    let kc = j.kubeconfig();
    // a token Secret already past its expiration, as kubeadm's format has it
    let token = "abcdef.0123456789abcdef";
    let secret = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: bootstrap-token-abcdef\n  namespace: kube-system\ntype: bootstrap.kubernetes.io/token\nstringData:\n  token-id: abcdef\n  token-secret: 0123456789abcdef\n  usage-bootstrap-authentication: \"true\"\n  expiration: \"2020-01-01T00:00:00Z\"\n";
    up_support::kubectl_ok_with(&kc, &["apply", "-f", "-"], Some(secret));
    let (ok, text) = get_with_token(&j.url, token, "/apis/certificates.k8s.io/v1/certificatesigningrequests");
    assert!(!ok && text.contains("Unauthorized"), "an expired token is 401: {text}");
    poll_until("the token cleaner deletes the expired token", Duration::from_secs(30), || {
        let out = kubectl_output_with(&kc, &["get", "secret", "-n", "kube-system", "bootstrap-token-abcdef"], None);
        (!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("NotFound")).then_some(())
    });
}

#[test]
fn the_node_certificate_is_rotated_before_it_expires() {
    // certificates of 20 s (upstream's --cluster-signing-duration is a year): the node's first one, from its
    // join, is renewed at 70-84 % of that, and each one after
    let mut j = start_with(&["--cluster-signing-duration", "20s"]);
    let kc = j.kubeconfig();
    let (token, pin) = token_and_pin(&j);
    let node_name = unique_name("rotates");
    join_node(&mut j, &token, &pin, &node_name);
    let pid = j.node.as_ref().map(|n| n.pid()).expect("the node runs");
    let conf = j.node_dir.path().join("kubelet.conf");
    let first = client_cert(&conf);
    assert!(first.1 <= unix_now() + 21, "the signer issued a 20 s certificate: notAfter {} at {}", first.1, unix_now());

    // two renewals, each written before the certificate it replaces expired
    let mut seen = vec![first.clone()];
    poll_until("two renewals of the node's certificate", Duration::from_secs(90), || {
        let now = unix_now();
        let cur = client_cert(&conf);
        let last = seen.last().expect("one").clone();
        if cur.0 != last.0 {
            assert!(now < last.1, "certificate {} replaced at {now}, before its notAfter {}", last.0, last.1);
            assert!(cur.1 > last.1, "the new certificate {} outlives the old: {} > {}", cur.0, cur.1, last.1);
            seen.push(cur);
        }
        (seen.len() >= 3).then_some(())
    });
    eprintln!("node certificates (serial, notAfter): {seen:?}");
    assert_eq!(j.node.as_mut().map(|n| (n.pid(), n.is_running())), Some((pid, true)), "the same kubelet process, never restarted");

    // each renewal: a CSR the node filed as itself, approved as a self renewal, issued
    let csrs = kubectl_with(&kc, &["get", "csr"]);
    eprintln!("{csrs}");
    let renewals: Vec<&str> = csrs.lines().filter(|l| l.contains(&format!("system:node:{node_name}")) && l.contains("Approved,Issued")).collect();
    assert!(renewals.len() >= 2, "a self-filed, approved, issued CSR per renewal: {csrs}");
    let csr = renewals[0].split_whitespace().next().expect("name");
    let msg = kubectl_with(&kc, &["get", "csr", csr, "-o", "jsonpath={.status.conditions[0].reason}/{.status.conditions[0].message}"]);
    assert_eq!(msg, "AutoApproved/Auto approving self kubelet client certificate after SubjectAccessReview.");

    // long after the first certificate expired the node still renews its Lease, Ready, and serves a new pod: its
    // connections made with that certificate were closed at the rotation, so it authenticates with the new ones
    let lease_after = poll_until("a Lease renewal well after the first certificate expired", Duration::from_secs(60), || {
        let renew = kubectl_try_with(&kc, &["get", "lease", "-n", "kube-node-lease", &node_name, "-o", "jsonpath={.spec.renewTime}"])?;
        let out = Command::new("date").args(["-u", "-d", renew.trim(), "+%s"]).output().ok()?;
        let t: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
        (t > first.1 + 5).then_some(t)
    });
    eprintln!("Lease renewed at {lease_after}, the first certificate expired at {}", first.1);
    let ready = kubectl_with(&kc, &["get", "node", &node_name, "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"]);
    assert_eq!(ready, "True");
    let whoami = kubectl_with(&conf, &["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"]);
    assert_eq!(whoami, format!("system:node:{node_name}"), "the rewritten kubelet.conf holds a valid certificate of the node");
    let manifest = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: after-rotation\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: busybox:latest\n    imagePullPolicy: Never\n    command: [\"sleep\", \"3600\"]\n";
    up_support::kubectl_ok_with(&kc, &["apply", "-f", "-"], Some(manifest));
    poll_until("a pod Running on the node after its certificate was rotated", Duration::from_secs(90), || {
        let s = kubectl_try_with(&kc, &["get", "pod", "after-rotation", "-o", "jsonpath={.spec.nodeName}/{.status.phase}"])?;
        (s == format!("{node_name}/Running")).then_some(())
    });
}

/// A CSR as `kubectl create -f -` takes it: `name`, the signer, the usages and the PEM request.
fn csr_manifest(name: &str, signer: &str, usages: &[&str], request_pem: &[u8]) -> String {
    use base64::Engine;
    let request = base64::engine::general_purpose::STANDARD.encode(request_pem);
    let usages = usages.iter().map(|u| format!("\"{u}\"")).collect::<Vec<_>>().join(", ");
    format!("apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata:\n  name: {name}\nspec:\n  signerName: {signer}\n  usages: [{usages}]\n  request: {request}\n")
}

/// `openssl req` for a new P-256 key: the PEM request for `subject` with `san` (openssl's subjectAltName syntax).
fn openssl_request(dir: &Path, what: &str, subject: &str, san: Option<&str>) -> Vec<u8> {
    let mut cmd = Command::new("openssl");
    cmd.args(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout"])
        .arg(dir.join(format!("{what}.key")))
        .args(["-subj", subject, "-out"])
        .arg(dir.join(format!("{what}.csr")));
    if let Some(san) = san {
        cmd.args(["-addext", &format!("subjectAltName={san}")]);
    }
    let out = cmd.output().expect("run openssl req");
    assert!(out.status.success(), "openssl req: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::read(dir.join(format!("{what}.csr"))).expect("read the request")
}

#[test]
fn a_kubelet_serving_csr_is_signed_only_once_an_administrator_approves_it() {
    // upstream's serverTLSBootstrap flow, from the cluster's side: a node files a kubernetes.io/kubelet-serving
    // CSR with its own credential; the controllers never approve it (upstream's csrapproving approves client
    // CSRs only); once an administrator runs `kubectl certificate approve`, the signer issues a server-auth
    // certificate carrying the request's names
    require_command("openssl", "openssl");
    let mut j = start();
    let kc = j.kubeconfig();
    let (token, pin) = token_and_pin(&j);
    let node = unique_name("serving");
    join_node(&mut j, &token, &pin, &node);
    let conf = j.node_dir.path().join("kubelet.conf");
    let node_ip = kubectl_with(&kc, &["get", "node", &node, "-o", "jsonpath={.status.addresses[?(@.type==\"InternalIP\")].address}"]);
    let dir = j.server_dir.path().to_path_buf();
    let subject = format!("/O=system:nodes/CN=system:node:{node}");

    let serving = format!("{node}-serving");
    let req = openssl_request(&dir, "serving", &subject, Some(&format!("DNS:{node},IP:{}", node_ip.trim())));
    let manifest = csr_manifest(&serving, "kubernetes.io/kubelet-serving", &["digital signature", "key encipherment", "server auth"], &req);
    up_support::kubectl_ok_with(&conf, &["create", "-f", "-"], Some(&manifest));
    // a client renewal filed after it by the same node: once the controllers approved that one they have seen the
    // serving request too, and left it pending
    let renewal = format!("{node}-client");
    let req = openssl_request(&dir, "client", &subject, None);
    let manifest = csr_manifest(&renewal, "kubernetes.io/kube-apiserver-client-kubelet", &["digital signature", "key encipherment", "client auth"], &req);
    up_support::kubectl_ok_with(&conf, &["create", "-f", "-"], Some(&manifest));
    poll_until("the node's client renewal auto-approved and issued", Duration::from_secs(30), || {
        let s = kubectl_try_with(&kc, &["get", "csr", &renewal, "-o", "jsonpath={.status.conditions[0].type}/{.status.certificate}"])?;
        (s.starts_with("Approved/") && s.len() > "Approved/".len()).then_some(())
    });
    let csrs = kubectl_with(&kc, &["get", "csr"]);
    eprintln!("{csrs}");
    let row = csrs.lines().find(|l| l.starts_with(&format!("{serving} "))).unwrap_or_else(|| panic!("{serving} in {csrs}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[2..], ["kubernetes.io/kubelet-serving", &format!("system:node:{node}"), "<none>", "Pending"], "filed by the node, not approved by the controllers: {csrs}");

    // an administrator approves: the signer issues it
    let out = kubectl_with(&kc, &["certificate", "approve", &serving]);
    assert!(out.contains("approved"), "{out}");
    let cert = poll_until("the serving certificate issued", Duration::from_secs(30), || {
        let s = kubectl_try_with(&kc, &["get", "csr", &serving, "-o", "jsonpath={.status.certificate}"])?;
        (!s.trim().is_empty()).then(|| s.trim().to_string())
    });
    let row = kubectl_with(&kc, &["get", "csr", &serving]);
    assert!(row.contains("Approved,Issued"), "{row}");
    let pem = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.decode(cert).expect("base64 certificate")
    };
    let crt = dir.join("serving.crt");
    std::fs::write(&crt, pem).expect("write certificate");
    let out = Command::new("openssl").args(["x509", "-noout", "-subject", "-nameopt", "RFC2253", "-ext", "extendedKeyUsage,subjectAltName", "-in"]).arg(&crt).output().expect("openssl x509");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{text}");
    assert!(text.contains(&format!("subject=CN=system:node:{node},O=system:nodes")), "{text}");
    assert!(text.contains("TLS Web Server Authentication") && !text.contains("TLS Web Client Authentication"), "server auth only: {text}");
    assert!(text.contains(&format!("DNS:{node}")) && text.contains(&format!("IP Address:{}", node_ip.trim())), "the request's names: {text}");
    // the certificate is for the key the node made, and chains to the cluster CA
    let pubkey = |args: &[&str], file: &Path| Command::new("openssl").args(args).arg(file).output().expect("openssl").stdout;
    assert_eq!(pubkey(&["x509", "-noout", "-pubkey", "-in"], &crt), pubkey(&["pkey", "-pubout", "-in"], &dir.join("serving.key")));
    let ca = j.server_dir.path().join("pki/ca.crt");
    let verified = Command::new("openssl").args(["verify", "-CAfile"]).arg(&ca).arg(&crt).output().expect("openssl verify");
    assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stderr));
}

/// The certificate a TLS server at `endpoint` presents, by openssl: (serial, issuer, subject, notAfter in Unix
/// seconds, PEM). No client certificate is sent: the kubelet completes the handshake without one.
fn served_cert(endpoint: &str) -> (String, String, String, u64, String) {
    let out = Command::new("openssl").args(["s_client", "-connect", endpoint]).stdin(Stdio::null()).output().expect("run openssl s_client");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let begin = text.find("-----BEGIN CERTIFICATE-----").unwrap_or_else(|| panic!("no certificate from {endpoint}: {}", String::from_utf8_lossy(&out.stderr)));
    let end = text[begin..].find("-----END CERTIFICATE-----").expect("end of the certificate") + begin + "-----END CERTIFICATE-----".len();
    let pem = format!("{}\n", &text[begin..end]);
    let mut child = Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-issuer", "-subject", "-enddate", "-nameopt", "RFC2253"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run openssl x509");
    std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), pem.as_bytes()).expect("write pem");
    let out = child.wait_with_output().expect("openssl x509");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |k: &str| text.lines().find_map(|l| l.strip_prefix(k)).unwrap_or_else(|| panic!("{k} in {text}")).to_string();
    let end = Command::new("date").args(["-u", "-d", &field("notAfter="), "+%s"]).output().expect("date");
    let end: u64 = String::from_utf8_lossy(&end.stdout).trim().parse().expect("epoch seconds");
    (field("serial="), field("issuer="), field("subject="), end, pem)
}

/// Whether `endpoint` presents a certificate that chains to `ca` and names `ip` (openssl's own checks).
fn verifies_for(endpoint: &str, ca: &Path, ip: &str) -> bool {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", endpoint, "-verify_return_error", "-verify_ip", ip, "-CAfile"])
        .arg(ca)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl s_client");
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Verify return code: 0 (ok)")
}

/// Node `node`'s kubelet-serving CSRs without a condition (Pending), by name.
fn pending_serving_csrs(kc: &Path, node: &str) -> Vec<String> {
    let rows = kubectl_with(kc, &["get", "csr", "-o", "jsonpath={range .items[*]}{.metadata.name} {.spec.signerName} {.spec.username} {.status.conditions[*].type}{\"\\n\"}{end}"]);
    rows.lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols.len() == 3 && cols[1] == "kubernetes.io/kubelet-serving" && cols[2] == format!("system:node:{node}")).then(|| cols[0].to_string())
        })
        .collect()
}

#[test]
fn a_joined_node_serves_a_certificate_of_the_cluster_once_an_administrator_approves_its_request() {
    // upstream's serverTLSBootstrap from the node's side: the kubelet files its kubernetes.io/kubelet-serving CSR
    // itself, serves its self-signed certificate until an administrator approves it (upstream refuses handshakes
    // instead; see rkube_kubelet::node::certs::serving), then the issued one, without a restart, and renews it
    // before it expires. Certificates of 30 s, so the renewal happens within the test.
    require_command("openssl", "openssl");
    let mut j = start_with(&["--cluster-signing-duration", "30s"]);
    let kc = j.kubeconfig();
    let (token, pin) = token_and_pin(&j);
    let node = unique_name("serves");
    join_node(&mut j, &token, &pin, &node);
    let pid = j.node.as_ref().map(|n| n.pid()).expect("the node runs");
    let node_ip = j.net.node_ip.clone();
    let endpoint = format!("{node_ip}:10250");
    let ca = j.server_dir.path().join("pki/ca.crt");
    let manifest = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: talker\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: busybox:latest\n    imagePullPolicy: Never\n    command: [\"sh\", \"-c\", \"echo hello from the joined node; sleep 3600\"]\n";
    up_support::kubectl_ok_with(&kc, &["apply", "-f", "-"], Some(manifest));

    // the kubelet's request: Pending, the serving signer, filed as the node, upstream's usages, subject and names
    let csr = poll_until("the kubelet's serving CSR", Duration::from_secs(30), || pending_serving_csrs(&kc, &node).into_iter().next());
    let csrs = kubectl_with(&kc, &["get", "csr"]);
    eprintln!("{csrs}");
    let row = csrs.lines().find(|l| l.starts_with(&format!("{csr} "))).unwrap_or_else(|| panic!("{csr} in {csrs}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[2..], ["kubernetes.io/kubelet-serving", &format!("system:node:{node}"), "<none>", "Pending"], "{csrs}");
    assert!(csr.starts_with("csr-"), "upstream's generated name: {csr}");
    let usages = kubectl_with(&kc, &["get", "csr", &csr, "-o", "jsonpath={.spec.usages}"]);
    assert_eq!(usages.trim(), r#"["digital signature","key encipherment","server auth"]"#);
    let request = {
        use base64::Engine;
        let b64 = kubectl_with(&kc, &["get", "csr", &csr, "-o", "jsonpath={.spec.request}"]);
        base64::engine::general_purpose::STANDARD.decode(b64.trim()).expect("base64 request")
    };
    let req_file = j.server_dir.path().join("kubelet-serving.csr");
    std::fs::write(&req_file, request).expect("write the request");
    let out = Command::new("openssl").args(["req", "-noout", "-subject", "-nameopt", "RFC2253", "-text", "-in"]).arg(&req_file).output().expect("openssl req");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains(&format!("subject=CN=system:node:{node},O=system:nodes")), "{text}");
    let sans = text.lines().skip_while(|l| !l.contains("Subject Alternative Name")).nth(1).unwrap_or_default().trim().to_string();
    assert_eq!(sans, format!("DNS:{node}, IP Address:{node_ip}"), "the Node's hostname and InternalIP: {text}");

    // until it is approved: the self-signed certificate, and kubectl logs works through the apiserver
    let (serial0, issuer0, subject0, _, _) = served_cert(&endpoint);
    assert_eq!(issuer0, subject0, "self-signed before approval");
    assert!(!verifies_for(&endpoint, &ca, &node_ip), "not the cluster CA's before approval");
    poll_until("kubectl logs before approval", Duration::from_secs(90), || {
        kubectl_try_with(&kc, &["logs", "talker"]).filter(|l| l.contains("hello from the joined node"))
    });

    // an administrator approves: the kubelet's port presents the issued certificate, without a restart
    let out = kubectl_with(&kc, &["certificate", "approve", &csr]);
    assert!(out.contains("approved"), "{out}");
    poll_until("the kubelet presents the cluster CA's certificate", Duration::from_secs(30), || verifies_for(&endpoint, &ca, &node_ip).then_some(()));
    let (serial1, issuer1, subject1, not_after1, _) = served_cert(&endpoint);
    assert_ne!(serial1, serial0);
    assert_eq!(subject1, format!("CN=system:node:{node},O=system:nodes"));
    assert_ne!(issuer1, subject1);
    let row = kubectl_with(&kc, &["get", "csr", &csr]);
    assert!(row.contains("Approved,Issued"), "{row}");
    let logs = kubectl_with(&kc, &["logs", "talker"]);
    assert!(logs.contains("hello from the joined node"), "kubectl logs through the apiserver after the switch: {logs}");
    let stored = j.node_dir.path().join("pki/kubelet-server-current.pem");
    assert_eq!(mode(&stored), 0o600, "the issued certificate is kept for the next start");

    // renewed at 70-90 % of its 30 s: a new request, filed before the certificate expired, approved and served
    let renewal = poll_until("the kubelet's renewal request", Duration::from_secs(40), || {
        pending_serving_csrs(&kc, &node).into_iter().find(|c| *c != csr)
    });
    let now = unix_now();
    assert!(now < not_after1, "renewal filed at {now}, before the certificate's notAfter {not_after1}");
    let out = kubectl_with(&kc, &["certificate", "approve", &renewal]);
    assert!(out.contains("approved"), "{out}");
    let serial2 = poll_until("the renewed certificate presented", Duration::from_secs(30), || {
        let (serial, ..) = served_cert(&endpoint);
        (serial != serial1 && verifies_for(&endpoint, &ca, &node_ip)).then_some(serial)
    });
    eprintln!("served serials: self-signed {serial0}, issued {serial1}, renewed {serial2}");
    assert_eq!(j.node.as_mut().map(|n| (n.pid(), n.is_running())), Some((pid, true)), "the same kubelet process, never restarted");
    let logs = kubectl_with(&kc, &["logs", "talker"]);
    assert!(logs.contains("hello from the joined node"), "{logs}");
}

#[test]
fn rkube_ups_node_renews_its_client_certificate_as_a_joined_node_does() {
    // one code path for a node: the kubelet of `rkube up` runs with a system:node certificate from the cluster's
    // signer (20 s here) and renews it through self-approved CSRs before it expires, without a restart
    let up = up_support::Up::start_with(&["--cluster-signing-duration", "20s"]);
    let kc = up.kubeconfig();
    let node = up.kubectl(&["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"]).trim().to_string();
    let pid = up.pid().expect("rkube up runs");
    let conf = up.data.path().join("kubelet.conf");
    assert_eq!(mode(&conf), 0o600);
    let first = client_cert(&conf);
    assert!(first.1 <= unix_now() + 21, "the signer's 20 s: notAfter {} at {}", first.1, unix_now());
    let mut seen = vec![first.clone()];
    poll_until("two renewals of rkube up's node certificate", Duration::from_secs(90), || {
        let now = unix_now();
        let cur = client_cert(&conf);
        let last = seen.last().expect("one").clone();
        if cur.0 != last.0 {
            assert!(now < last.1, "certificate {} replaced at {now}, before its notAfter {}", last.0, last.1);
            assert!(cur.1 > last.1, "the new certificate {} outlives the old", cur.0);
            seen.push(cur);
        }
        (seen.len() >= 3).then_some(())
    });
    eprintln!("node certificates (serial, notAfter): {seen:?}");
    assert_eq!(up.pid(), Some(pid), "the same rkube up process");
    let csrs = kubectl_with(&kc, &["get", "csr"]);
    eprintln!("{csrs}");
    let renewals: Vec<&str> = csrs
        .lines()
        .filter(|l| l.contains("kubernetes.io/kube-apiserver-client-kubelet") && l.contains(&format!("system:node:{node}")) && l.contains("Approved,Issued"))
        .collect();
    assert!(renewals.len() >= 2, "a self-filed, approved, issued CSR per renewal: {csrs}");
    // well after the first certificate expired the node still renews its Lease and is Ready
    poll_until("a Lease renewal after the first certificate expired", Duration::from_secs(60), || {
        let renew = kubectl_try_with(&kc, &["get", "lease", "-n", "kube-node-lease", &node, "-o", "jsonpath={.spec.renewTime}"])?;
        let out = Command::new("date").args(["-u", "-d", renew.trim(), "+%s"]).output().ok()?;
        let t: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
        (t > first.1 + 5).then_some(())
    });
    let ready = kubectl_with(&kc, &["get", "node", &node, "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"]);
    assert_eq!(ready, "True");
    let whoami = kubectl_with(&conf, &["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"]);
    assert_eq!(whoami, format!("system:node:{node}"), "the rewritten kubelet.conf holds a valid certificate of the node");
}
