//! Ingress on `rkube up` with the real kubectl, as root: networking.k8s.io/v1 served (kubectl 1.27 and 1.33
//! `create ingress`, `get ingress` columns, upstream's validation message for a bad path), and the built-in
//! controller (IngressClass `rkube`, the default): two Services behind Ingresses by host and path, reached with
//! curl from a test netns on the node's test link (never the uplink), HTTPS with the certificate of a TLS
//! Secret chosen by SNI and verified against the test's CA, a missing Secret reported as a Warning event, a
//! missing backend answered 503, an updated Ingress served without a restart, a WebSocket Upgrade passed through
//! (101 from the pod, then bytes both ways), and the node address in status.loadBalancer.
//!
//! Needs the binaries: `cargo build --release -p rkube -p rkube-kubelet -p rkube-runtime -p rkube-cni --bins`.

mod common;
mod up_support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rkube_testsupport::{poll_until, require_command, unique_name};
use up_support::Up;

const KUBECTL_1_27: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.27";
const KUBECTL_1_33: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33";

/// A netns holding the peer end of the node's veth: a client outside the node; deleted on drop.
struct ClientNs {
    name: String,
}

impl ClientNs {
    fn new(up: &Up) -> ClientNs {
        let ns = ClientNs { name: unique_name("rki") };
        let peer = format!("{}p", up.net.veth);
        let client_ip = up.node_ip.trim_end_matches(".1").to_string() + ".2";
        for args in [
            vec!["netns", "add", &ns.name],
            vec!["link", "set", &peer, "netns", &ns.name],
            vec!["-n", &ns.name, "addr", "add", &format!("{client_ip}/24"), "dev", &peer],
            vec!["-n", &ns.name, "link", "set", &peer, "up"],
            vec!["-n", &ns.name, "link", "set", "lo", "up"],
        ] {
            assert!(Command::new("ip").args(&args).status().expect("ip").success(), "ip {args:?}");
        }
        ns
    }

    /// curl inside the netns: (HTTP code, body), or None when no HTTP answer came.
    fn curl(&self, args: &[&str]) -> Option<(u16, String)> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "curl", "-sS", "--max-time", "5", "-w", "\n%{http_code}"])
            .args(args)
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!("curl {args:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
            return None;
        }
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n')?;
        Some((code.trim().parse().ok()?, body.trim().to_string()))
    }
}

impl Drop for ClientNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// A CA and a server certificate for `host` signed by it, with openssl: (ca.pem, tls.crt, tls.key).
fn certificates(dir: &Path, host: &str) -> (String, String, String) {
    let p = |f: &str| dir.join(f).to_str().expect("utf8").to_string();
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).output().expect("openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    run(&["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", &p("ca.key"), "-out", &p("ca.pem"), "-days", "2", "-subj", "/CN=rkube ingress test CA"]);
    run(&["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", &p("tls.key"), "-out", &p("tls.csr"), "-subj", &format!("/CN={host}")]);
    std::fs::write(dir.join("ext.cnf"), format!("subjectAltName=DNS:{host}\n")).expect("ext");
    run(&["x509", "-req", "-in", &p("tls.csr"), "-CA", &p("ca.pem"), "-CAkey", &p("ca.key"), "-CAcreateserial", "-out", &p("tls.crt"), "-days", "2", "-extfile", &p("ext.cnf")]);
    (p("ca.pem"), p("tls.crt"), p("tls.key"))
}

fn kubectl_version(kubectl: &str, up: &Up, args: &[&str]) -> std::process::Output {
    Command::new(kubectl).arg("--kubeconfig").arg(up.kubeconfig()).args(args).output().expect("kubectl")
}

const BACKENDS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: alpha}
spec:
  replicas: 1
  selector: {matchLabels: {app: alpha}}
  template:
    metadata: {labels: {app: alpha}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: httpd
        image: busybox:latest
        imagePullPolicy: Never
        command: ["sh", "-c", "mkdir -p /www/api; echo alpha-root > /www/index.html; echo alpha-api > /www/api/v1; httpd -f -p 8080 -h /www"]
        readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: beta}
spec:
  replicas: 1
  selector: {matchLabels: {app: beta}}
  template:
    metadata: {labels: {app: beta}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: httpd
        image: busybox:latest
        imagePullPolicy: Never
        command: ["sh", "-c", "mkdir -p /www/api; echo beta-root > /www/index.html; echo beta-api > /www/api/v1; httpd -f -p 8080 -h /www"]
        readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: alpha}
spec:
  selector: {app: alpha}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: beta}
spec:
  selector: {app: beta}
  ports: [{port: 8000, targetPort: 8080}]
"#;

/// A WebSocket-style backend: busybox nc runs a script per connection that reads the request head, answers 101
/// Switching Protocols and then echoes every byte (cat), as a WebSocket echo server does with its frames.
const WS_BACKEND: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: ws}
spec:
  replicas: 1
  selector: {matchLabels: {app: ws}}
  template:
    metadata: {labels: {app: ws}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: echo
        image: busybox:latest
        imagePullPolicy: Never
        command: ["sh", "-c"]
        args:
        - |
          cat > /tmp/ws.sh <<'EOF'
          #!/bin/sh
          cr=$(printf '\r')
          while read -r line; do
            [ "${line%$cr}" = "" ] && break
          done
          printf 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'
          exec cat
          EOF
          chmod +x /tmp/ws.sh
          exec nc -ll -p 8080 -e /tmp/ws.sh
        readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: ws}
spec:
  selector: {app: ws}
  ports: [{port: 80, targetPort: 8080}]
"#;

/// The client: an Upgrade request to the ingress (argv[1]:80, Host ws.example), the status line of the answer,
/// then two messages, each printed as it comes back.
const WS_CLIENT: &str = r#"
import socket, sys
s = socket.create_connection((sys.argv[1], 80), timeout=5)
s.sendall(b"GET /chat HTTP/1.1\r\nHost: ws.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
buf = b""
while b"\r\n\r\n" not in buf:
    d = s.recv(4096)
    if not d:
        sys.exit("closed before the answer: %r" % buf)
    buf += d
head, _, rest = buf.partition(b"\r\n\r\n")
print(head.split(b"\r\n")[0].decode())
for msg in (b"hello through the ingress\n", b"a second message\n"):
    s.sendall(msg)
    got = rest
    rest = b""
    while len(got) < len(msg):
        d = s.recv(4096)
        if not d:
            break
        got += d
    print(got.decode().strip())
"#;

const BAD_PATH: &str = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: bad}
spec:
  rules:
  - host: bad.example
    http:
      paths:
      - path: api
        pathType: Prefix
        backend: {service: {name: alpha, port: {number: 80}}}
"#;

#[test]
fn ingress_routes_by_host_and_path_over_http_and_https() {
    require_command("curl", "curl");
    require_command("openssl", "openssl");
    let up = Up::start();
    let node = up.node_ip.clone();

    // the controller made its class, the cluster's default
    let class = poll_until("IngressClass rkube", Duration::from_secs(60), || {
        up.kubectl_try(&["get", "ingressclass", "rkube", "-o", "jsonpath={.spec.controller} {.metadata.annotations.ingressclass\\.kubernetes\\.io/is-default-class}"])
    });
    assert_eq!(class.trim(), "rkube.io/ingress-controller true");
    let classes = up.kubectl(&["get", "ingressclass"]);
    assert!(classes.lines().next().is_some_and(|h| h.split_whitespace().collect::<Vec<_>>() == ["NAME", "CONTROLLER", "PARAMETERS", "AGE"]), "{classes}");

    up.kubectl_ok(&["apply", "-f", "-"], Some(BACKENDS));
    for d in ["alpha", "beta"] {
        up.kubectl_ok(&["rollout", "status", &format!("deployment/{d}"), "--timeout=120s"], None);
    }

    // kubectl 1.27 and 1.33 both create Ingresses with their generator: `*` makes a Prefix path
    let out = kubectl_version(
        KUBECTL_1_27,
        &up,
        &["create", "ingress", "web", "--class=rkube", "--rule=a.example/*=alpha:http", "--rule=a.example/api*=beta:8000", "--rule=b.example/api*=beta:8000"],
    );
    assert!(out.status.success(), "kubectl 1.27 create ingress: {}", String::from_utf8_lossy(&out.stderr));
    // no class: the default class (ours) serves it; the Secret does not exist yet
    let out = kubectl_version(KUBECTL_1_33, &up, &["create", "ingress", "secure", "--rule=secure.example/*=alpha:80,tls=tls-secure", "--rule=ghost.example/*=ghost:80"]);
    assert!(out.status.success(), "kubectl 1.33 create ingress: {}", String::from_utf8_lossy(&out.stderr));
    let path_type = up.kubectl(&["get", "ingress", "web", "-o", "jsonpath={.spec.rules[0].http.paths[0].pathType} {.spec.rules[0].http.paths[0].path}"]);
    assert_eq!(path_type.trim(), "Prefix /");

    // status.loadBalancer carries the node address, and kubectl shows it in its columns
    let table = poll_until("ingress ADDRESS is the node address", Duration::from_secs(30), || {
        let t = up.kubectl(&["get", "ingress"]);
        (t.lines().filter(|l| l.contains(&node)).count() == 2).then_some(t)
    });
    let mut lines = table.lines();
    assert_eq!(lines.next().map(|h| h.split_whitespace().collect::<Vec<_>>()), Some(vec!["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]), "{table}");
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    // created without a class: the DefaultIngressClass admission wrote the default class, ours
    assert_eq!(rows[0][..6], ["secure", "rkube", "secure.example,ghost.example", node.as_str(), "80,", "443"], "{table}");
    // kubectl merges the two a.example rules into one rule
    assert_eq!(rows[1][..5], ["web", "rkube", "a.example,b.example", node.as_str(), "80"], "{table}");

    // routing by host and path from a client outside the node
    let client = ClientNs::new(&up);
    let get = |host: &str, path: &str| {
        let url = format!("http://{host}{path}");
        let resolve = format!("{host}:80:{node}");
        poll_until(&format!("{url} answered by the ingress"), Duration::from_secs(30), || client.curl(&["--resolve", &resolve, &url]))
    };
    assert_eq!(get("a.example", "/"), (200, "alpha-root".into()));
    assert_eq!(get("a.example", "/api/v1"), (200, "beta-api".into()), "the longest matching path wins");
    assert_eq!(get("b.example", "/api/v1"), (200, "beta-api".into()));
    assert_eq!(get("b.example", "/").0, 404, "b.example has no rule for / and there is no default backend");
    let (code, body) = get("ghost.example", "/");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("service \"default/ghost\" not found"), "{body}");

    // the missing Secret is reported as a Warning event on the Ingress
    let events = poll_until("SecretNotFound event on ingress/secure", Duration::from_secs(30), || {
        let e = up.kubectl(&["get", "events", "--field-selector", "involvedObject.name=secure", "-o", "jsonpath={range .items[*]}{.type} {.reason} {.message}{\"\\n\"}{end}"]);
        e.contains("SecretNotFound").then_some(e)
    });
    assert!(
        events.contains("Warning SecretNotFound TLS secret \"default/tls-secure\" not found: secure.example served with the default certificate"),
        "{events}"
    );

    // HTTPS: the Secret's certificate, chosen by SNI, verified against the test's CA
    let dir = tempfile::tempdir().expect("cert dir");
    let (ca, crt, key) = certificates(dir.path(), "secure.example");
    up.kubectl_ok(&["create", "secret", "tls", "tls-secure", "--cert", &crt, "--key", &key], None);
    let resolve = format!("secure.example:443:{node}");
    let (code, body) = poll_until("https://secure.example/ with the Secret's certificate", Duration::from_secs(30), || {
        client.curl(&["--cacert", &ca, "--resolve", &resolve, "https://secure.example/"])
    });
    assert_eq!((code, body.as_str()), (200, "alpha-root"));
    // another name gets the default certificate, which the CA does not sign
    let other = format!("a.example:443:{node}");
    assert_eq!(client.curl(&["--cacert", &ca, "--resolve", &other, "https://a.example/"]), None, "the default certificate is not the Secret's");
    assert_eq!(client.curl(&["-k", "--resolve", &other, "https://a.example/api/v1"]), Some((200, "beta-api".into())), "routing is the same over HTTPS");

    // an updated Ingress takes effect without a restart: b.example/api now goes to alpha
    let patch = r#"[{"op": "replace", "path": "/spec/rules/1/http/paths/0/backend/service", "value": {"name": "alpha", "port": {"name": "http"}}}]"#;
    let host_b = up.kubectl(&["get", "ingress", "web", "-o", "jsonpath={.spec.rules[1].host}"]);
    assert_eq!(host_b.trim(), "b.example");
    up.kubectl_ok(&["patch", "ingress", "web", "--type=json", "-p", patch], None);
    let resolve_b = format!("b.example:80:{node}");
    poll_until("b.example/api/v1 served by alpha after the update", Duration::from_secs(30), || {
        client.curl(&["--resolve", &resolve_b, "http://b.example/api/v1"]).filter(|(code, body)| *code == 200 && body == "alpha-api")
    });

    // WebSocket: the Upgrade request reaches the pod, its 101 comes back, and then bytes pass both ways
    up.kubectl_ok(&["apply", "-f", "-"], Some(WS_BACKEND));
    up.kubectl_ok(&["rollout", "status", "deployment/ws", "--timeout=120s"], None);
    up.kubectl_ok(&["create", "ingress", "ws", "--rule=ws.example/*=ws:80"], None);
    let talk = poll_until("a WebSocket through the ingress", Duration::from_secs(30), || {
        let out = Command::new("ip").args(["netns", "exec", &client.name, "/usr/bin/python3", "-c", WS_CLIENT, &node]).output().ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success() && text.starts_with("HTTP/1.1 101")).then_some(text)
    });
    let lines: Vec<&str> = talk.lines().collect();
    assert_eq!(lines, ["HTTP/1.1 101 Switching Protocols", "hello through the ingress", "a second message"], "{talk}");

    // upstream's validation: a relative Prefix path is refused with upstream's message
    let bad = up_support::kubectl_output_with(&up.kubeconfig(), &["apply", "-f", "-"], Some(BAD_PATH));
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("The Ingress \"bad\" is invalid: spec.rules[0].http.paths[0].path: Invalid value: \"api\": must be an absolute path"),
        "{err}"
    );
}

const CLASS: &str = r#"
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: NAME
  annotations: {ingressclass.kubernetes.io/is-default-class: "DEFAULT"}
spec: {controller: example.com/NAME}
"#;

fn ingress_yaml(name: &str, extra_meta: &str, class: Option<&str>) -> String {
    let class = class.map(|c| format!("  ingressClassName: {c}\n")).unwrap_or_default();
    format!("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n{extra_meta}spec:\n{class}  defaultBackend: {{service: {{name: web, port: {{number: 80}}}}}}\n")
}

/// Upstream's DefaultIngressClass admission on the apiserver alone, with the real kubectl: no default class
/// leaves the class unset; a default class is written into an Ingress created without one (not into one that
/// names a class or carries the legacy annotation, and not on update); with two defaults the newest wins.
#[test]
fn ingress_without_a_class_gets_the_default_class() {
    let server = common::TestServer::start();
    let k = "1.33";
    let class_of = |name: &str| server.ok(k, &["get", "ingress", name, "-o", "jsonpath={.spec.ingressClassName}"]);
    let apply = |yaml: String| {
        let out = server.kubectl_stdin(k, &["apply", "-f", "-"], &yaml);
        assert!(out.status.success(), "apply: {}", String::from_utf8_lossy(&out.stderr));
    };

    apply(CLASS.replace("NAME", "not-default").replace("DEFAULT", "false"));
    apply(ingress_yaml("before", "", None));
    assert_eq!(class_of("before"), "", "no class is the default yet");

    apply(CLASS.replace("NAME", "old").replace("DEFAULT", "true"));
    apply(ingress_yaml("one", "", None));
    assert_eq!(class_of("one"), "old");
    apply(ingress_yaml("named", "", Some("not-default")));
    assert_eq!(class_of("named"), "not-default");
    apply(ingress_yaml("legacy", "  annotations: {kubernetes.io/ingress.class: not-default}\n", None));
    assert_eq!(class_of("legacy"), "", "the legacy annotation names the class");
    // an update of an Ingress without a class leaves it without one, as upstream (the plugin runs on create)
    server.ok(k, &["label", "ingress", "before", "touched=yes"]);
    assert_eq!(class_of("before"), "");

    // two defaults: the newest wins ("new" is newer than "old", or as old and first by name)
    apply(CLASS.replace("NAME", "new").replace("DEFAULT", "true"));
    apply(ingress_yaml("two", "", None));
    assert_eq!(class_of("two"), "new");
    let table = server.ok(k, &["get", "ingress", "two"]);
    assert!(table.lines().nth(1).is_some_and(|l| l.split_whitespace().nth(1) == Some("new")), "{table}");
}
