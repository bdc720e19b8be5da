//! RBAC on the streaming subresources end to end: `rkube server --tls` and an `rkube kubelet`, a user named by a
//! client certificate (`rkube kubeconfig`) who may get and list pods. `kubectl exec`, `attach` and
//! `port-forward` are refused with upstream's 403 until a Role grants `create` on `pods/exec`, `pods/attach`,
//! `pods/portforward`; each grant opens exactly its own subresource. Both wire protocols: kubectl 1.27 (SPDY,
//! POST) and kubectl 1.33 (WebSocket GET, falling back to SPDY on a refused upgrade), which must be refused the
//! same way.
//!
//! Needs root and the binaries: `cargo build --release -p rkube -p rkube-kubelet -p rkube-runtime -p rkube-cni --bins`.

mod node_cluster;
mod up_support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use node_cluster::{Cluster, Options};
use rkube_testsupport::{registry::free_port, ChildGuard};

const KUBECTLS: &[&str] = &["1.27", "1.33"];

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

fn kubectl_bin(v: &str) -> String {
    let p = format!("/usr/lib/google-cloud-sdk/bin/kubectl.{v}");
    assert!(Path::new(&p).exists(), "{p} missing: the test needs kubectl 1.27 and 1.33 side by side");
    p
}

/// `kubectl.<v> --kubeconfig <kc> args` to its end (60 s at most).
fn run(v: &str, kc: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(kubectl_bin(v));
    cmd.arg("--kubeconfig").arg(kc).args(args);
    rkube_testsupport::output_within(&mut cmd, None, Duration::from_secs(60), &format!("kubectl.{v} {args:?}"))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).trim().to_string()
}

/// Upstream's Forbidden message for `create` on a pod subresource.
fn forbidden(user: &str, sub: &str) -> String {
    format!("pods \"web\" is forbidden: User \"{user}\" cannot create resource \"pods/{sub}\" in API group \"\" in the namespace \"default\"")
}

/// Starts a long-running kubectl and returns its first stdout line (or None if it exits or says nothing within
/// 20 s), with the process (its stdout still drained) and its stderr.
fn first_line(v: &str, kc: &Path, args: &[&str]) -> (Option<String>, ChildGuard, std::process::ChildStderr) {
    let mut child = Command::new(kubectl_bin(v))
        .arg("--kubeconfig")
        .arg(kc)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kubectl");
    let stdout = child.stdout.take().expect("stdout");
    let err = child.stderr.take().expect("stderr");
    let guard = ChildGuard::new(child, format!("kubectl.{v} {args:?}"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // read on to the end: a closed pipe would kill kubectl at its next line ("Handling connection for ...")
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    (rx.recv_timeout(Duration::from_secs(20)).ok(), guard, err)
}

fn exec_check(v: &str, kc: &Path) -> Output {
    run(v, kc, &["exec", "web", "--", "echo", "exec-ok"])
}

fn attach_check(v: &str, kc: &Path) -> Result<String, String> {
    let (line, guard, err) = first_line(v, kc, &["attach", "web"]);
    drop(guard);
    match line {
        Some(l) => Ok(l),
        None => {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut { err }, &mut text);
            Err(text.trim().to_string())
        }
    }
}

fn port_forward_check(v: &str, kc: &Path) -> Result<String, String> {
    let port = free_port();
    let (line, guard, err) = first_line(v, kc, &["port-forward", "pod/web", &format!("{port}:8080"), "--address", "127.0.0.1"]);
    let result = match line {
        Some(l) if l.contains(&format!("Forwarding from 127.0.0.1:{port}")) => {
            let out = Command::new("curl").args(["-sS", "--max-time", "10", &format!("http://127.0.0.1:{port}/index.html")]).output().expect("curl");
            if !out.status.success() {
                drop(guard);
                let mut text = String::new();
                let _ = std::io::Read::read_to_string(&mut { err }, &mut text);
                return Ok(format!("{}{}kubectl said: {}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr), text.trim()));
            }
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        }
        other => {
            drop(guard);
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut { err }, &mut text);
            return Err(format!("{other:?} {}", text.trim()));
        }
    };
    drop(guard);
    result
}

#[test]
fn exec_attach_and_port_forward_need_their_rbac_grants() {
    let c = Cluster::start(Options::default());
    c.kubectl_ok(&["apply", "-f", "-"], Some(POD));
    c.kubectl_ok(&["wait", "--for=condition=Ready", "pod/web", "--timeout=90s"], None);
    let bob = c.user_kubeconfig("bob");
    c.kubectl_ok(&["create", "role", "pod-reader", "--verb=get,list", "--resource=pods"], None);
    c.kubectl_ok(&["create", "rolebinding", "bob-reads", "--role=pod-reader", "--user=bob"], None);

    for v in KUBECTLS {
        // reading works; every stream is refused with upstream's 403
        let o = run(v, &bob, &["get", "pod", "web", "-o", "name"]);
        assert!(o.status.success(), "kubectl.{v}: bob reads pods: {}", stderr(&o));
        let o = exec_check(v, &bob);
        assert!(!o.status.success(), "kubectl.{v}: exec without pods/exec");
        assert_eq!(stderr(&o), format!("Error from server (Forbidden): {}", forbidden("bob", "exec")), "kubectl.{v}");
        let err = attach_check(v, &bob).expect_err("attach without pods/attach");
        // kubectl says "If you don't see a command prompt, try pressing enter." before it connects
        assert_eq!(err.lines().last(), Some(format!("Error from server (Forbidden): {}", forbidden("bob", "attach")).as_str()), "kubectl.{v}: {err}");
        let err = port_forward_check(v, &bob).expect_err("port-forward without pods/portforward");
        assert!(err.contains(&forbidden("bob", "portforward")), "kubectl.{v}: {err}");
    }

    // each grant opens its own subresource and no other
    c.kubectl_ok(&["create", "role", "exec", "--verb=create", "--resource=pods/exec"], None);
    c.kubectl_ok(&["create", "rolebinding", "bob-exec", "--role=exec", "--user=bob"], None);
    for v in KUBECTLS {
        let o = exec_check(v, &bob);
        assert!(o.status.success(), "kubectl.{v}: exec with pods/exec: {}", stderr(&o));
        assert_eq!(String::from_utf8_lossy(&o.stdout), "exec-ok\n");
        let err = attach_check(v, &bob).expect_err("attach with only pods/exec");
        assert!(err.contains(&forbidden("bob", "attach")), "kubectl.{v}: {err}");
    }
    c.kubectl_ok(&["create", "role", "attach", "--verb=create", "--resource=pods/attach"], None);
    c.kubectl_ok(&["create", "rolebinding", "bob-attach", "--role=attach", "--user=bob"], None);
    for v in KUBECTLS {
        let line = attach_check(v, &bob).unwrap_or_else(|e| panic!("kubectl.{v}: attach with pods/attach: {e}"));
        assert!(line.starts_with("tick "), "kubectl.{v}: live output through attach: {line:?}");
        let err = port_forward_check(v, &bob).expect_err("port-forward with only exec and attach");
        assert!(err.contains(&forbidden("bob", "portforward")), "kubectl.{v}: {err}");
    }
    c.kubectl_ok(&["create", "role", "forward", "--verb=create", "--resource=pods/portforward"], None);
    c.kubectl_ok(&["create", "rolebinding", "bob-forward", "--role=forward", "--user=bob"], None);
    for v in KUBECTLS {
        let body = port_forward_check(v, &bob).unwrap_or_else(|e| panic!("kubectl.{v}: port-forward with pods/portforward: {e}"));
        assert_eq!(body, "served\n", "kubectl.{v}: through the forwarded port");
    }
    // another user with the same reading rights and no stream grants is still refused
    let carol = c.user_kubeconfig("carol");
    c.kubectl_ok(&["create", "rolebinding", "carol-reads", "--role=pod-reader", "--user=carol"], None);
    let o = exec_check("1.33", &carol);
    assert_eq!(stderr(&o), format!("Error from server (Forbidden): {}", forbidden("carol", "exec")));
}
