//! tcpSocket probes: a TCP connection within the timeout is success.

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Connects to `host:port` (the first address it resolves to) within `timeout` and closes at once:
/// (success, message).
pub fn probe(host: &str, port: u16, timeout: Duration) -> (bool, String) {
    let addr = match (host, port).to_socket_addrs().ok().and_then(|mut a| a.next()) {
        Some(a) => a,
        None => return (false, format!("cannot resolve {host}")),
    };
    match TcpStream::connect_timeout(&addr, timeout) {
        Ok(_) => (true, String::new()),
        Err(e) => (false, format!("dial tcp {addr}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_and_closed_ports() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        assert!(probe("127.0.0.1", port, Duration::from_secs(1)).0);
        drop(l);
        let (ok, msg) = probe("127.0.0.1", port, Duration::from_secs(1));
        assert!(!ok && msg.contains("dial tcp"), "{msg}");
    }
}
