//! Fixtures for the storage tests: a throwaway etcd on 127.0.0.1 (Debian's etcd-server) and embedded stores in
//! temp dirs.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rkube_apiserver::storage::{self, Store};
use rkube_testsupport::{poll_until, registry::free_port, require_command, unique_name, ChildGuard};

/// A single-member etcd with its data in a temp dir, on free ports; killed by PID and removed on drop.
pub struct Etcd {
    pub endpoint: String,
    pub data_dir: std::path::PathBuf,
    name: String,
    client: u16,
    peer: u16,
    child: Option<ChildGuard>,
    _dir: tempfile::TempDir,
}

/// Starts etcd and waits until it reports healthy.
fn spawn(dir: &tempfile::TempDir, name: &str, data_dir: &std::path::Path, client: u16, peer: u16) -> ChildGuard {
    let bin = require_command("etcd", "etcd-server");
    let log_path = dir.path().join("etcd.log");
    let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).expect("etcd log file");
    let child = Command::new(bin)
        .args(["--name", name, "--data-dir"])
        .arg(data_dir)
        .args([
            "--listen-client-urls",
            &format!("http://127.0.0.1:{client}"),
            "--advertise-client-urls",
            &format!("http://127.0.0.1:{client}"),
            "--listen-peer-urls",
            &format!("http://127.0.0.1:{peer}"),
            "--initial-advertise-peer-urls",
            &format!("http://127.0.0.1:{peer}"),
            "--initial-cluster",
            &format!("{name}=http://127.0.0.1:{peer}"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start etcd");
    let mut guard = ChildGuard::new(child, "etcd");
    poll_until("etcd to report healthy", Duration::from_secs(30), || {
        if !guard.is_running() {
            panic!("etcd exited: {}", std::fs::read_to_string(&log_path).unwrap_or_default());
        }
        healthy(client).then_some(())
    });
    guard
}

impl Etcd {
    pub fn start() -> Etcd {
        let dir = tempfile::tempdir().expect("etcd tempdir");
        let (client, peer) = (free_port(), free_port());
        let name = unique_name("etcd");
        let data_dir = dir.path().join("data");
        let child = spawn(&dir, &name, &data_dir, client, peer);
        Etcd { endpoint: format!("http://127.0.0.1:{client}"), data_dir, name, client, peer, child: Some(child), _dir: dir }
    }

    /// SIGKILLs etcd (no chance to flush anything it has not already made durable) and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut guard) = self.child.take() {
            let pid = guard.pid().to_string();
            let status = Command::new("kill").args(["-KILL", &pid]).status().expect("kill -9 etcd");
            assert!(status.success(), "kill -9 {pid}");
            poll_until("etcd to die", Duration::from_secs(10), || (!guard.is_running()).then_some(()));
        }
    }

    /// Starts etcd again on the same data dir and ports.
    pub fn restart(&mut self) {
        self.kill9();
        self.child = Some(spawn(&self._dir, &self.name, &self.data_dir, self.client, self.peer));
    }

    pub fn endpoints(&self) -> Vec<String> {
        vec![self.endpoint.clone()]
    }

    pub async fn store(&self, prefix: &str) -> Arc<dyn Store> {
        storage::open_etcd(&self.endpoints(), prefix).await.expect("connect to etcd")
    }
}

/// etcd's `/health` on the client port says `"health":"true"` once it has a leader.
fn healthy(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.contains("\"health\":\"true\"")
}

pub fn embedded() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = storage::open_embedded(dir.path().join("state.redb")).expect("open embedded store");
    (dir, store)
}
