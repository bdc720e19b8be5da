//! `kubectl logs` goes through the apiserver's `pods/log` proxy to the kubelet of the pod's node, found from the
//! Node's InternalIP and kubelet port. A stand-in kubelet on 127.0.0.1 answers here.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;

use common::{as_str, TestServer, KUBECTLS};

#[test]
fn kubectl_logs_is_proxied_to_the_nodes_kubelet() {
    let s = TestServer::start();
    let kubelet = TcpListener::bind("127.0.0.1:0").expect("bind stand-in kubelet");
    let port = kubelet.local_addr().expect("addr").port();
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for conn in kubelet.incoming() {
            let Ok(mut conn) = conn else { break };
            let mut buf = [0u8; 4096];
            let n = conn.read(&mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).into_owned();
            let line = head.lines().next().unwrap_or_default().to_string();
            let body = "line one\nline two\n";
            let _ = conn.write_all(format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes());
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let node = format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: n-logs\nstatus:\n  addresses:\n  - type: InternalIP\n    address: 127.0.0.1\n  daemonEndpoints:\n    kubeletEndpoint:\n      Port: {port}\n"
    );
    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: talker\nspec:\n  nodeName: n-logs\n  containers:\n  - name: main\n    image: busybox:1.36\n";
    s.ok("1.33", &["apply", "-f", as_str(&s.write("node.yaml", &node))]);
    s.ok("1.33", &["apply", "-f", as_str(&s.write("pod.yaml", pod))]);
    for v in KUBECTLS {
        let out = s.ok(v, &["logs", "talker", "--tail=5"]);
        assert_eq!(out, "line one\nline two\n", "kubectl.{v} logs");
        let request = rx.recv().expect("kubelet saw the request");
        assert!(request.starts_with("GET /containerLogs/default/talker/main?"), "{request}");
        assert!(request.contains("tailLines=5"), "{request}");
    }
    let err = s.fails("1.33", &["logs", "missing"]);
    assert!(err.contains("NotFound"), "{err}");
}
