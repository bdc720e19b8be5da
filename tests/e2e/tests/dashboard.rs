//! `rkube dashboard` on `rkube up`, in a real browser: Debian's chromium, headless, driven over the Chrome
//! DevTools Protocol (a small WebSocket client below, std only). Checks: nothing is served without the token
//! (401, also in the browser); with it the pods page lists a pod kubectl made; a pod made after the page loaded
//! appears without a reload (the watch); the nodes, services and events pages list the cluster's objects; a
//! pod's page shows its network namespace inode and host veth as `rkube inspect pod -o json` reports them, and
//! its trace as a timeline with `rkube trace pod -o json`'s steps in order, kept live (the page of a pod made after
//! it opened draws its steps as they come, without a reload, up to Ready); a node's page its conditions,
//! addresses, bridge, proxy table and QoS cgroups with the pod's sandbox PID; a Service's page its VIP, chain and
//! the endpoint it picks, as `rkube inspect node|service -o json` report them.
//! Each page's screenshot is saved in the artifacts directory the test prints.
//!
//! Needs the binaries: `cargo build --release -p rkube -p rkube-kubelet -p rkube-runtime -p rkube-cni --bins`,
//! and chromium (`apt-get install -y chromium`; scripts/test.sh lists it).

mod up_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine;
use rkube_testsupport::{poll_until, require_command, unique_name, ChildGuard};
use serde_json::{json, Value};
use up_support::{bin, Up};

fn sleeping_pod(name: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{app: dash}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", "exec sleep 3600"]
    resources:
      limits: {{cpu: 200m, memory: 32Mi}}
"#
    )
}

// ---------------------------------------------------------------------------------------------------------
// plain HTTP to the dashboard, for the status codes and headers

/// One HTTP/1.1 GET with the given extra headers: (status, head, body).
fn http_get(port: u16, path: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the dashboard");
    s.set_read_timeout(Some(Duration::from_secs(20))).expect("read timeout");
    let mut req = format!("GET {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("send the request");
    let mut raw = Vec::new();
    // the live stream never ends: read what comes within a short while and stop
    if path.starts_with("/api/stream") {
        s.set_read_timeout(Some(Duration::from_secs(2))).expect("read timeout");
        let mut buf = [0u8; 4096];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            raw.extend_from_slice(&buf[..n]);
            if raw.windows(4).any(|w| w == b"\r\n\r\n") && raw.len() > 200 {
                break;
            }
        }
    } else {
        // the head, then as many bytes as Content-Length says (the server may keep the connection open)
        let mut buf = [0u8; 4096];
        loop {
            let n = s.read(&mut buf).expect("read the answer");
            raw.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&raw).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let len = text[..end]
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0)))
                    .unwrap_or(0);
                if raw.len() >= end + 4 + len {
                    break;
                }
            }
            if n == 0 {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("no status line in {head:?}"));
    (status, head.to_string(), body.to_string())
}

// ---------------------------------------------------------------------------------------------------------
// a minimal Chrome DevTools Protocol client: one page target, over a WebSocket (RFC 6455) on a TcpStream

struct Cdp {
    stream: TcpStream,
    next_id: u64,
}

impl Cdp {
    fn connect(ws_url: &str) -> Cdp {
        let rest = ws_url.strip_prefix("ws://").unwrap_or_else(|| panic!("not a ws:// URL: {ws_url}"));
        let (hostport, path) = rest.split_once('/').expect("ws URL has a path");
        let mut stream = TcpStream::connect(hostport).unwrap_or_else(|e| panic!("connect to chromium's DevTools at {hostport}: {e}"));
        stream.set_read_timeout(Some(Duration::from_secs(60))).expect("read timeout");
        let key = base64::engine::general_purpose::STANDARD.encode(unique_name("k").as_bytes());
        let req = format!(
            "GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(req.as_bytes()).expect("send the WebSocket handshake");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).expect("read the handshake answer");
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head);
        assert!(head.starts_with("HTTP/1.1 101"), "chromium refused the WebSocket: {head}");
        Cdp { stream, next_id: 1 }
    }

    fn send_text(&mut self, text: &str) {
        let payload = text.as_bytes();
        let mut frame = vec![0x81u8];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n < 65536 => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(7);
        let mask = nanos.to_be_bytes();
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&frame).expect("send a DevTools message");
    }

    /// The next whole text message (fragments joined; pings answered).
    fn read_message(&mut self) -> String {
        let mut message = Vec::new();
        loop {
            let mut h = [0u8; 2];
            self.stream.read_exact(&mut h).expect("read a DevTools frame");
            let (fin, opcode) = (h[0] & 0x80 != 0, h[0] & 0x0f);
            let mut len = (h[1] & 0x7f) as u64;
            if len == 126 {
                let mut b = [0u8; 2];
                self.stream.read_exact(&mut b).expect("frame length");
                len = u16::from_be_bytes(b) as u64;
            } else if len == 127 {
                let mut b = [0u8; 8];
                self.stream.read_exact(&mut b).expect("frame length");
                len = u64::from_be_bytes(b);
            }
            let mut payload = vec![0u8; len as usize];
            self.stream.read_exact(&mut payload).expect("frame payload");
            match opcode {
                0x8 => panic!("chromium closed the DevTools connection"),
                0x9 => {
                    // pong with the same payload (masked, as every client frame)
                    let mut frame = vec![0x8a, 0x80 | payload.len() as u8, 0, 0, 0, 0];
                    frame.extend_from_slice(&payload);
                    self.stream.write_all(&frame).expect("send a pong");
                    continue;
                }
                0xa => continue,
                _ => message.extend_from_slice(&payload),
            }
            if fin {
                return String::from_utf8(message).expect("DevTools messages are UTF-8");
            }
        }
    }

    /// Calls `method` and returns its result; events that come first are skipped.
    fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send_text(&json!({"id": id, "method": method, "params": params}).to_string());
        loop {
            let msg: Value = serde_json::from_str(&self.read_message()).expect("DevTools sends JSON");
            if msg["id"] == id {
                assert!(msg.get("error").is_none(), "{method}: {}", msg["error"]);
                return msg["result"].clone();
            }
        }
    }

    /// The value of a JavaScript expression in the page.
    fn eval(&mut self, expr: &str) -> Value {
        let r = self.call("Runtime.evaluate", json!({"expression": expr, "returnByValue": true}));
        assert!(r.get("exceptionDetails").is_none(), "{expr}: {}", r["exceptionDetails"]);
        r["result"]["value"].clone()
    }

    fn navigate(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url}));
    }

    /// Waits until `expr` is true in the page, then returns.
    fn wait_for(&mut self, what: &str, expr: &str) {
        // while a navigation is under way the document may have no body yet: that is "not yet", not a failure
        let guarded = format!("(() => {{ try {{ return !!({expr}); }} catch (e) {{ return false; }} }})()");
        poll_until(what, Duration::from_secs(60), || (self.eval(&guarded) == json!(true)).then_some(()));
    }

    fn screenshot(&mut self, dir: &Path, name: &str) -> PathBuf {
        let r = self.call("Page.captureScreenshot", json!({"format": "png", "captureBeyondViewport": true}));
        let png = base64::engine::general_purpose::STANDARD.decode(r["data"].as_str().expect("screenshot data")).expect("base64 screenshot");
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        let path = dir.join(name);
        std::fs::write(&path, png).expect("write the screenshot");
        path
    }
}

/// Headless chromium with its DevTools on a free loopback port; its profile in `profile`, its log in `log`.
fn start_chromium(profile: &Path, log: &Path) -> (ChildGuard, Cdp) {
    let chromium = require_command("chromium", "chromium");
    let child = Command::new(chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars", "--window-size=1280,1000"])
        .args(["--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("chromium log"))
        .spawn()
        .expect("start chromium");
    let mut guard = ChildGuard::new(child, "chromium");
    // chromium writes its DevTools port and browser path here once it listens
    let port_file = profile.join("DevToolsActivePort");
    let port: u16 = poll_until("chromium's DevTools port", Duration::from_secs(60), || {
        assert!(guard.is_running(), "chromium exited: {}", std::fs::read_to_string(log).unwrap_or_default());
        std::fs::read_to_string(&port_file).ok()?.lines().next()?.trim().parse().ok()
    });
    let ws = poll_until("chromium's page target", Duration::from_secs(30), || {
        let (status, _, body) = http_get_devtools(port, "/json/list")?;
        (status == 200).then_some(())?;
        let targets: Value = serde_json::from_str(&body).ok()?;
        targets.as_array()?.iter().find(|t| t["type"] == "page").and_then(|t| t["webSocketDebuggerUrl"].as_str()).map(str::to_string)
    });
    let mut cdp = Cdp::connect(&ws);
    cdp.call("Page.enable", json!({}));
    cdp.call("Runtime.enable", json!({}));
    (guard, cdp)
}

fn http_get_devtools(port: u16, path: &str) -> Option<(u16, String, String)> {
    TcpStream::connect(("127.0.0.1", port)).ok()?;
    Some(http_get(port, path, &[("Host", &format!("127.0.0.1:{port}"))]))
}

/// `rkube dashboard --port 0`: its guard, its port and the URL it printed on stdout.
fn start_dashboard(up: &Up, log: &Path) -> (ChildGuard, u16, String) {
    let mut child = Command::new(bin("rkube"))
        .args(["dashboard", "--port", "0", "--kubeconfig"])
        .arg(up.kubeconfig())
        .env("RKUBE_LOG", "info,kube=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).expect("dashboard log"))
        .spawn()
        .expect("start rkube dashboard");
    let stdout = child.stdout.take().expect("piped stdout");
    let guard = ChildGuard::new(child, "rkube dashboard");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("rkube dashboard printed no URL in 60 s: {}", std::fs::read_to_string(log).unwrap_or_default()));
    let url = line.trim().to_string();
    let port = url
        .strip_prefix("http://127.0.0.1:")
        .and_then(|r| r.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("rkube dashboard printed {url:?}, not http://127.0.0.1:PORT/?token=...: {}", std::fs::read_to_string(log).unwrap_or_default()));
    (guard, port, url)
}

fn inspect_json(up: &Up, pod: &str) -> Value {
    rkube_json(up, &["inspect", "pod", pod])
}

/// `rkube ARGS -o json` against the cluster, parsed.
fn rkube_json(up: &Up, args: &[&str]) -> Value {
    let mut cmd = Command::new(bin("rkube"));
    cmd.args(args).args(["-o", "json", "--kubeconfig"]).arg(up.kubeconfig()).env("RKUBE_LOG", "warn");
    let out = rkube_testsupport::output_within(&mut cmd, None, Duration::from_secs(60), "rkube");
    assert!(out.status.success(), "rkube {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("rkube {args:?}: json: {e}"))
}

const DASH_SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: dash}\nspec:\n  selector: {app: dash}\n  ports: [{name: web, port: 80, targetPort: 8080}]\n";

/// Where the screenshots go: $RKUBE_TEST_ARTIFACTS/dashboard-<unique>, else target/tmp/dashboard-<unique>.
fn artifacts_dir() -> PathBuf {
    let base = std::env::var_os("RKUBE_TEST_ARTIFACTS").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    let dir = base.join(unique_name("dash-"));
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    eprintln!("dashboard test artifacts (screenshots, logs): {}", dir.display());
    dir
}

#[test]
fn dashboard_pages_in_headless_chromium() {
    require_command("chromium", "chromium");
    let artifacts = artifacts_dir();
    let up = Up::start();
    up.kubectl_ok(&["apply", "-f", "-"], Some(&sleeping_pod("dash-a")));
    up.kubectl_ok(&["apply", "-f", "-"], Some(DASH_SERVICE));
    up.kubectl_ok(&["wait", "--for=condition=Ready", "pod/dash-a", "--timeout=120s"], None);

    let (_dashboard, port, url) = start_dashboard(&up, &artifacts.join("dashboard.log"));
    let token = url.split_once("?token=").map(|(_, t)| t.to_string()).expect("the URL carries the token");
    assert_eq!(token.len(), 64, "a 256-bit hex token: {url}");
    let base = format!("http://127.0.0.1:{port}/");

    // nothing without the token, or with a wrong one of the same length, or from another Host
    let wrong = format!("{}{}", &token[..63], if token.ends_with('0') { '1' } else { '0' });
    for path in ["/", "/assets/app.js", "/api/stream", "/api/inspect/pods/default/dash-a", &format!("/?token={wrong}")] {
        let (status, _, body) = http_get(port, path, &[]);
        assert_eq!(status, 401, "GET {path} without the token: {body}");
        assert!(!body.contains("dash-a"), "a 401 shows nothing of the cluster: {body}");
    }
    let (status, _, _) = http_get(port, "/api/stream", &[("Cookie", &format!("rkube_dashboard_{port}={wrong}"))]);
    assert_eq!(status, 401, "a wrong cookie");
    let (status, _, _) = http_get(port, &format!("/?token={token}"), &[("Host", &format!("rebind.example:{port}"))]);
    assert_eq!(status, 403, "another Host (DNS rebinding) is refused even with the token");
    // with it: the page, and the token as an HttpOnly cookie that opens the API
    let (status, head, body) = http_get(port, &format!("/?token={token}"), &[]);
    assert_eq!(status, 200, "GET / with the token: {head}");
    assert!(body.contains("/assets/app.js"), "the page: {body}");
    let cookie_line = head.lines().find(|l| l.to_ascii_lowercase().starts_with("set-cookie:")).unwrap_or_else(|| panic!("no cookie: {head}"));
    assert!(cookie_line.contains("HttpOnly") && cookie_line.contains("SameSite=Strict"), "{cookie_line}");
    assert!(head.to_ascii_lowercase().contains("content-security-policy: default-src 'self'"), "{head}");
    let (status, _, body) = http_get(port, "/api/inspect/pods/default/dash-a", &[("Cookie", &format!("rkube_dashboard_{port}={token}"))]);
    assert_eq!(status, 200, "inspect with the cookie: {body}");

    let profile = tempfile::tempdir().expect("chromium profile");
    let (_chromium, mut cdp) = start_chromium(profile.path(), &artifacts.join("chromium.log"));

    // the browser without the token: 401 and nothing else
    cdp.navigate(&base);
    cdp.wait_for("the 401 page", "document.readyState === 'complete' && document.body.innerText.includes('401 Unauthorized')");
    assert_eq!(cdp.eval("document.querySelectorAll('table').length"), json!(0));
    cdp.screenshot(&artifacts, "01-no-token-401.png");

    // with it: the pods page lists the pod kubectl made, and the token leaves the address bar
    cdp.navigate(&url);
    cdp.wait_for("the pods list", "document.body.dataset.podsReady === 'true' && !!document.querySelector('#pods-table tr[data-key=\"default/dash-a\"]')");
    assert_eq!(cdp.eval("document.querySelector('#pods-table tr[data-key=\"default/dash-a\"]').dataset.live"), json!("false"), "listed, not live");
    assert_eq!(cdp.eval("location.search"), json!(""), "the token is taken out of the URL");
    let row = cdp.eval("document.querySelector('#pods-table tr[data-key=\"default/dash-a\"]').innerText");
    let ip = up.kubectl(&["get", "pod", "dash-a", "-o", "jsonpath={.status.podIP}"]);
    assert!(row.as_str().is_some_and(|r| r.contains("Running") && r.contains(ip.trim())), "row {row} shows Running and {ip}");
    cdp.wait_for("the stream is live", "document.getElementById('conn').dataset.state === 'live'");
    cdp.screenshot(&artifacts, "02-pods.png");

    // a pod made now appears without a reload, from the watch
    let loads = cdp.eval("performance.getEntriesByType('navigation').length + ':' + performance.timeOrigin");
    up.kubectl_ok(&["apply", "-f", "-"], Some(&sleeping_pod("dash-b")));
    cdp.wait_for("pod dash-b on the page", "!!document.querySelector('#pods-table tr[data-key=\"default/dash-b\"][data-live=\"true\"]')");
    assert_eq!(cdp.eval("performance.getEntriesByType('navigation').length + ':' + performance.timeOrigin"), loads, "the page was not reloaded");
    cdp.screenshot(&artifacts, "03-pods-live.png");
    // and a deleted one leaves
    up.kubectl_ok(&["delete", "pod", "dash-b", "--grace-period=0", "--force"], None);
    cdp.wait_for("pod dash-b gone from the page", "!document.querySelector('#pods-table tr[data-key=\"default/dash-b\"]')");

    // the other lists
    let node = up.kubectl(&["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"]);
    cdp.navigate(&format!("{base}#/nodes"));
    cdp.wait_for("the nodes list", &format!("document.body.dataset.nodesReady === 'true' && !!document.querySelector('#nodes-table tr[data-key=\"{}\"]')", node.trim()));
    let row = cdp.eval(&format!("document.querySelector('#nodes-table tr[data-key=\"{}\"]').innerText", node.trim()));
    assert!(row.as_str().is_some_and(|r| r.contains("Ready")), "node row {row}");
    cdp.screenshot(&artifacts, "04-nodes.png");
    cdp.navigate(&format!("{base}#/services"));
    cdp.wait_for("the services list", "document.body.dataset.servicesReady === 'true' && !!document.querySelector('#services-table tr[data-key=\"default/kubernetes\"]')");
    cdp.screenshot(&artifacts, "05-services.png");
    cdp.navigate(&format!("{base}#/events"));
    cdp.wait_for(
        "an event of pod dash-a",
        "document.body.dataset.eventsReady === 'true' && [...document.querySelectorAll('#events-table tbody tr')].some(r => r.innerText.includes('Pod/dash-a'))",
    );
    cdp.screenshot(&artifacts, "06-events.png");

    // the pod's page: its kernel objects as `rkube inspect pod -o json` has them
    let doc = inspect_json(&up, "dash-a");
    let netns = doc["sandbox"]["namespaces"].as_array().and_then(|ns| ns.iter().find(|n| n["type"] == "net")).expect("a net namespace")["inode"].clone();
    let veth = doc["network"]["hostVeth"]["name"].as_str().expect("a host veth").to_string();
    let bridge = doc["network"]["bridge"]["name"].as_str().expect("a bridge").to_string();
    cdp.navigate(&format!("{base}#/pod/default/dash-a"));
    cdp.wait_for("the pod's inspection", "!!document.querySelector('#pod-inspection') || !!document.querySelector('#pod-error')");
    assert_eq!(cdp.eval("document.querySelector('#pod-error') && document.querySelector('#pod-error').textContent"), Value::Null, "no error");
    assert_eq!(cdp.eval("document.querySelector('[data-testid=\"netns-inode\"]').textContent"), json!(netns.to_string()), "netns inode");
    assert_eq!(cdp.eval("document.querySelector('[data-testid=\"host-veth\"]').textContent"), json!(veth), "host veth");
    let text = cdp.eval("document.querySelector('#pod-inspection').textContent");
    let text = text.as_str().expect("text");
    assert!(text.contains(&format!("bridge {bridge}")), "the bridge {bridge} is drawn: {text}");
    assert!(text.contains(&doc["sandbox"]["id"].as_str().expect("sandbox id").to_string()), "the sandbox id");
    // the container's own mount namespace, the pod's net
    assert_eq!(cdp.eval("document.querySelector('[data-testid=\"ns-c-net\"] .badge').textContent"), json!("pod"));
    assert_eq!(cdp.eval("document.querySelector('[data-testid=\"ns-c-mnt\"] .badge').textContent"), json!("own"));
    assert!(text.contains("memory") && text.contains("32.0 MiB"), "the memory limit: {text}");
    // its trace as a timeline: the steps `rkube trace pod -o json` gives, in its order, one row each (a late step
    // may land between the two reads: then both are read again)
    let (trace, drawn) = poll_until("the pod's timeline as rkube trace has it", Duration::from_secs(30), || {
        cdp.call("Runtime.evaluate", json!({"expression": "document.getElementById('pod-refresh').click()"}));
        cdp.wait_for("the pod's trace", "!!document.querySelector('#pod-trace') || !!document.querySelector('#trace-error')");
        let trace = rkube_json(&up, &["trace", "pod", "dash-a"]);
        let drawn = cdp.eval("[...document.querySelectorAll('#pod-trace [data-testid^=\"trace-step-\"]')].map(g => g.dataset.name + '@' + g.dataset.component)");
        let want: Vec<String> = trace["steps"].as_array().expect("steps").iter().map(|s| format!("{}@{}", s["name"].as_str().unwrap_or(""), s["component"].as_str().unwrap_or(""))).collect();
        (drawn == json!(want)).then_some((trace, want))
    });
    assert_eq!(cdp.eval("document.querySelector('#trace-error') && document.querySelector('#trace-error').textContent"), Value::Null, "no trace error");
    assert_eq!(cdp.eval("document.querySelector('#pod-trace').dataset.traceId"), trace["traceId"], "the pod's trace id");
    assert!(drawn.iter().any(|s| s.starts_with("apiserver.create@apiserver")), "the API request is drawn: {drawn:?}");
    assert!(drawn.iter().any(|s| s.ends_with("@kubelet")) && drawn.iter().any(|s| s.ends_with("@scheduler")), "the scheduler's and the kubelet's steps: {drawn:?}");
    // spans are bars with a width, and each bar starts where its offset puts it: left to right in time
    let xs = cdp.eval("[...document.querySelectorAll('#pod-trace [data-kind=\"span\"] rect.bar')].map(r => +r.getAttribute('x'))");
    let xs: Vec<f64> = xs.as_array().expect("bars").iter().filter_map(Value::as_f64).collect();
    assert!(!xs.is_empty() && xs.windows(2).all(|w| w[0] <= w[1]), "the bars go left to right in start order: {xs:?}");
    let steps_text = cdp.eval("document.querySelector('#trace-steps').innerText");
    assert!(steps_text.as_str().is_some_and(|t| t.contains("request accepted and stored")), "the steps' words are rkube trace's: {steps_text}");
    cdp.screenshot(&artifacts, "07-pod.png");
    assert_eq!(cdp.eval("document.querySelector('#trace-live').dataset.state"), json!("done"), "dash-a is Ready: the live trace ended");

    // the timeline is live: the page of a pod not made yet draws its steps as they are recorded, without a reload
    // (the follow `rkube trace pod --follow` runs), and stops following when the pod is Ready
    cdp.navigate(&format!("{base}#/pod/default/dash-c"));
    cdp.wait_for("the live trace waiting for dash-c", "!!document.querySelector('#trace-live[data-state=\"waiting\"]')");
    let drawn_steps = "[...document.querySelectorAll('#pod-trace [data-testid^=\"trace-step-\"]')].map(g => g.dataset.name + '@' + g.dataset.component)";
    assert_eq!(cdp.eval(drawn_steps), json!([]), "no steps before the pod exists");
    let loads = cdp.eval("performance.getEntriesByType('navigation').length + ':' + performance.timeOrigin");
    up.kubectl_ok(&["apply", "-f", "-"], Some(&sleeping_pod("dash-c")));
    let mut counts: Vec<usize> = vec![0]; // the steps drawn, each time their number changed
    let live = poll_until("dash-c's steps drawn live up to Ready, as rkube trace has them", Duration::from_secs(120), || {
        let drawn: Vec<String> = serde_json::from_value(cdp.eval(drawn_steps)).unwrap_or_default();
        if counts.last() != Some(&drawn.len()) {
            counts.push(drawn.len());
        }
        if cdp.eval("document.querySelector('#trace-live').dataset.state") != json!("done") {
            return None;
        }
        let trace = rkube_json(&up, &["trace", "pod", "dash-c"]);
        let want: Vec<String> = trace["steps"].as_array().expect("steps").iter().map(|s| format!("{}@{}", s["name"].as_str().unwrap_or(""), s["component"].as_str().unwrap_or(""))).collect();
        if drawn != want {
            // a step recorded after the page's last read of the trace: read it again
            cdp.call("Runtime.evaluate", json!({"expression": "document.getElementById('pod-refresh').click()"}));
            return None;
        }
        Some(drawn)
    });
    assert!(counts.len() >= 2, "the drawn steps grew from none, live: {counts:?}");
    assert!(live.iter().any(|s| s.starts_with("apiserver.create@")) && live.iter().any(|s| s.ends_with("@kubelet")), "from the API request to the kubelet: {live:?}");
    let state = cdp.eval("document.querySelector('#trace-live').textContent");
    assert!(state.as_str().is_some_and(|t| t.contains("Ready")), "the follow ended at Ready: {state}");
    // and the pod, started now, is inspected without a reload too
    cdp.wait_for("dash-c's inspection once Ready", "!!document.querySelector('#pod-inspection')");
    assert_eq!(cdp.eval("performance.getEntriesByType('navigation').length + ':' + performance.timeOrigin"), loads, "the page was not reloaded");
    cdp.screenshot(&artifacts, "07b-pod-live-trace.png");
    // dash-c is one of the Service's pods too: gone, so that the Service's page below has dash-a alone
    up.kubectl_ok(&["delete", "pod", "dash-c", "--grace-period=0", "--force"], None);

    // a pod that does not exist: the page says so
    cdp.navigate(&format!("{base}#/pod/default/nope"));
    cdp.wait_for("the error for a missing pod", "!!document.querySelector('#pod-error') && document.querySelector('#pod-error').textContent.includes('default/nope')");
    let err = cdp.eval("document.querySelector('#pod-error').textContent");
    assert!(err.as_str().is_some_and(|e| e.contains("pod default/nope not found")), "{err}");
    cdp.screenshot(&artifacts, "08-pod-missing.png");

    // the node's page: the API's conditions and addresses, and the kubelet's inspection as `rkube inspect node`
    let node = node.trim().to_string();
    let node_doc = rkube_json(&up, &["inspect", "node", &node]);
    let internal_ip = up.kubectl(&["get", "node", &node, "-o", "jsonpath={.status.addresses[?(@.type==\"InternalIP\")].address}"]);
    cdp.navigate(&format!("{base}#/nodes"));
    cdp.wait_for("the node's link", &format!("!!document.querySelector('#nodes-table tr[data-key=\"{node}\"] a')"));
    cdp.call("Runtime.evaluate", json!({"expression": format!("document.querySelector('#nodes-table tr[data-key=\"{node}\"] a').click()")}));
    cdp.wait_for("the node's inspection", "!!document.querySelector('#node-inspection') || !!document.querySelector('#node-error')");
    assert_eq!(cdp.eval("location.hash"), json!(format!("#/node/{node}")), "the list links to the node's page");
    assert_eq!(cdp.eval("document.querySelector('#node-error') && document.querySelector('#node-error').textContent"), Value::Null, "no error");
    assert_eq!(cdp.eval("document.querySelector('#node-conditions tr[data-condition=\"Ready\"] td:nth-child(2)').textContent"), json!("True"));
    assert_eq!(cdp.eval("document.querySelector('#node-addresses .addr[data-type=\"InternalIP\"] code').textContent"), json!(internal_ip.trim()));
    assert_eq!(cdp.eval("document.getElementById('node-pod-cidr').textContent"), node_doc["podCidr"]);
    assert_eq!(cdp.eval("document.getElementById('node-bridge').textContent"), node_doc["bridge"]["name"]);
    let proxy = cdp.eval("document.getElementById('node-proxy').textContent");
    assert!(proxy.as_str().is_some_and(|p| p.contains(&format!("ip {}", node_doc["proxy"]["table"].as_str().unwrap_or("?")))), "the proxy table: {proxy}");
    // dash-a under its QoS class (Guaranteed: the root), with the sandbox PID `rkube inspect pod` reports
    let qos = cdp.eval("document.querySelector('#node-cgroups [data-qos=\"Guaranteed\"] tr[data-pod=\"default/dash-a\"] [data-testid=\"sandbox-pid\"]').textContent");
    assert_eq!(qos, json!(doc["sandbox"]["pid"].to_string()), "dash-a's sandbox pid in the Guaranteed class");
    let cg = cdp.eval("document.querySelector('#node-cgroups [data-qos=\"Guaranteed\"]').textContent");
    assert!(cg.as_str().is_some_and(|t| t.contains("in use") && t.contains("s used") && t.contains("m now")), "memory and CPU of the class: {cg}");
    cdp.screenshot(&artifacts, "09-node.png");

    // the Service's page: its VIP, the port's chain and the endpoint it picks, as `rkube inspect service` has them
    let ip = ip.trim().to_string();
    let svc_doc = poll_until("the proxy has dash's endpoint", Duration::from_secs(60), || {
        let d = rkube_json(&up, &["inspect", "service", "dash"]);
        let picks = d["ports"][0]["endpoints"].as_array().map(|e| e.iter().map(|p| p["endpoint"].clone()).collect::<Vec<_>>());
        (picks == Some(vec![json!(format!("{ip}:8080"))])).then_some(d)
    });
    cdp.navigate(&format!("{base}#/services"));
    cdp.wait_for("the service's link", "!!document.querySelector('#services-table tr[data-key=\"default/dash\"] a')");
    cdp.call("Runtime.evaluate", json!({"expression": "document.querySelector('#services-table tr[data-key=\"default/dash\"] a').click()"}));
    cdp.wait_for("the service's picks", "!!document.querySelector('[data-testid=\"svc-pick\"]') || !!document.querySelector('#service-error')");
    assert_eq!(cdp.eval("location.hash"), json!("#/service/default/dash"));
    assert_eq!(cdp.eval("[...document.querySelectorAll('#service-vips .vip')].map(e => e.textContent)"), svc_doc["clusterIps"]);
    assert_eq!(cdp.eval("document.querySelector('[data-testid=\"svc-chain-0\"]').textContent"), svc_doc["ports"][0]["serviceChain"]);
    assert_eq!(cdp.eval("[...document.querySelectorAll('[data-testid=\"svc-pick\"]')].map(g => g.dataset.endpoint)"), json!([format!("{ip}:8080")]));
    assert_eq!(cdp.eval("document.querySelector('.port').dataset.port"), json!("tcp/web"));
    cdp.screenshot(&artifacts, "10-service.png");
    // a missing Service: the page says what `rkube inspect service` says
    cdp.navigate(&format!("{base}#/service/default/nope"));
    cdp.wait_for("the error for a missing service", "!!document.querySelector('#service-error')");
    let err = cdp.eval("document.querySelector('#service-error').textContent");
    assert!(err.as_str().is_some_and(|e| e.contains("service default/nope not found")), "{err}");

    let shots = std::fs::read_dir(&artifacts).expect("artifacts").filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "png"))).count();
    assert_eq!(shots, 11, "eleven screenshots in {}", artifacts.display());
}
