//! httpGet probes: an HTTP/1.1 GET; a status from 200 to 399 is success (redirects are not followed).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// GETs `path` from `host:port` with upstream's `kube-probe` User-Agent and `headers`, `timeout` applying to
/// the connect and to each write and read: (success, message with the status code on failure). Only the
/// status line is read.
pub fn probe(host: &str, port: u16, path: &str, headers: &[(String, String)], timeout: Duration) -> (bool, String) {
    let addr = match (host, port).to_socket_addrs().ok().and_then(|mut a| a.next()) {
        Some(a) => a,
        None => return (false, format!("cannot resolve {host}")),
    };
    let mut s = match TcpStream::connect_timeout(&addr, timeout) {
        Ok(s) => s,
        Err(e) => return (false, format!("Get \"http://{addr}{path}\": dial tcp {addr}: {e}")),
    };
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_write_timeout(Some(timeout));
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    if let Err(e) = s.write_all(req.as_bytes()) {
        return (false, format!("write request to {addr}: {e}"));
    }
    let mut buf = [0u8; 512];
    let n = match s.read(&mut buf) {
        Ok(n) => n,
        Err(e) => return (false, format!("read response from {addr}: {e}")),
    };
    let line = String::from_utf8_lossy(&buf[..n]);
    let code: u16 = line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    if (200..400).contains(&code) {
        (true, String::new())
    } else {
        (false, format!("HTTP probe failed with statuscode: {code}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve(status: &'static str) -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            if let Ok((mut c, _)) = l.accept() {
                let mut b = [0u8; 1024];
                let _ = c.read(&mut b);
                let _ = c.write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes());
            }
        });
        port
    }

    #[test]
    fn status_codes() {
        assert!(probe("127.0.0.1", serve("200 OK"), "/healthz", &[], Duration::from_secs(2)).0);
        assert!(probe("127.0.0.1", serve("302 Found"), "/", &[], Duration::from_secs(2)).0);
        let (ok, msg) = probe("127.0.0.1", serve("500 Internal Server Error"), "/", &[], Duration::from_secs(2));
        assert!(!ok && msg.contains("statuscode: 500"), "{msg}");
    }
}
