//! A throwaway etcd cluster of N members on 127.0.0.1 (Debian's `etcd-server`): free client and peer ports,
//! data in a temp dir per member, each member stopped by its PID on drop. Used by the HA tests, which run
//! several `rkube server --etcd` against one cluster (the storage tests' single member is
//! `apiserver/tests/storage_common`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{poll_until, registry::free_port, require_command, unique_name, ChildGuard};

struct Member {
    name: String,
    client: u16,
    peer: u16,
    data_dir: PathBuf,
    log: PathBuf,
    child: Option<ChildGuard>,
}

/// An etcd cluster whose members all run (see [`EtcdCluster::start`]).
pub struct EtcdCluster {
    /// Every member's client URL, `http://127.0.0.1:PORT`.
    pub endpoints: Vec<String>,
    members: Vec<Member>,
    initial_cluster: String,
    token: String,
    dir: tempfile::TempDir,
}

impl EtcdCluster {
    /// Starts `members` etcd processes forming one cluster and waits until each reports healthy (it has a
    /// leader). Panics with the members' logs if one exits or the cluster does not form within 60 s.
    pub fn start(members: usize) -> EtcdCluster {
        assert!(members >= 1, "an etcd cluster needs at least one member");
        require_command("etcd", "etcd-server");
        let dir = tempfile::tempdir().expect("etcd cluster tempdir");
        let token = unique_name("etcd");
        let members: Vec<Member> = (0..members)
            .map(|i| {
                let name = format!("{token}-{i}");
                Member {
                    client: free_port(),
                    peer: free_port(),
                    data_dir: dir.path().join(format!("member-{i}")),
                    log: dir.path().join(format!("etcd-{i}.log")),
                    name,
                    child: None,
                }
            })
            .collect();
        let initial_cluster = members.iter().map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer)).collect::<Vec<_>>().join(",");
        let endpoints = members.iter().map(|m| format!("http://127.0.0.1:{}", m.client)).collect();
        let mut c = EtcdCluster { endpoints, members, initial_cluster, token, dir };
        // all members at once: none is healthy before a quorum has joined
        for i in 0..c.members.len() {
            c.spawn(i);
        }
        c.wait_healthy();
        c
    }

    fn spawn(&mut self, i: usize) {
        let bin = require_command("etcd", "etcd-server");
        let m = &mut self.members[i];
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&m.log).expect("etcd log file");
        let state = if m.data_dir.exists() { "existing" } else { "new" };
        let child = Command::new(bin)
            .args(["--name", &m.name, "--data-dir"])
            .arg(&m.data_dir)
            .args(["--listen-client-urls", &format!("http://127.0.0.1:{}", m.client)])
            .args(["--advertise-client-urls", &format!("http://127.0.0.1:{}", m.client)])
            .args(["--listen-peer-urls", &format!("http://127.0.0.1:{}", m.peer)])
            .args(["--initial-advertise-peer-urls", &format!("http://127.0.0.1:{}", m.peer)])
            .args(["--initial-cluster", &self.initial_cluster])
            .args(["--initial-cluster-token", &self.token])
            .args(["--initial-cluster-state", state])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start etcd");
        m.child = Some(ChildGuard::new(child, format!("etcd member {}", m.name)));
    }

    /// Waits until every running member says it is healthy.
    pub fn wait_healthy(&mut self) {
        poll_until("every etcd member to report healthy", Duration::from_secs(60), || {
            for m in &mut self.members {
                let Some(child) = m.child.as_mut() else { continue };
                if !child.is_running() {
                    panic!("etcd member {} exited:\n{}", m.name, logs_of(&[m.log.clone()]));
                }
                if !healthy(m.client) {
                    return None;
                }
            }
            Some(())
        });
    }

    /// SIGKILL to member `i`, reaped.
    pub fn kill9(&mut self, i: usize) {
        if let Some(mut g) = self.members[i].child.take() {
            let pid = g.pid().to_string();
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
            poll_until("etcd member to die", Duration::from_secs(10), || (!g.is_running()).then_some(()));
        }
    }

    /// Starts member `i` again on its data dir and ports, and waits until every running member is healthy.
    pub fn restart(&mut self, i: usize) {
        self.kill9(i);
        self.spawn(i);
        self.wait_healthy();
    }

    /// The member list as `etcdctl member list` prints it (one line per member).
    pub fn member_list(&self) -> String {
        let etcdctl = require_command("etcdctl", "etcd-client");
        let out = Command::new(etcdctl)
            .args(["--endpoints", &self.endpoints.join(","), "member", "list"])
            .env("ETCDCTL_API", "3")
            .output()
            .expect("run etcdctl");
        assert!(out.status.success(), "etcdctl member list: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn logs(&self) -> Vec<PathBuf> {
        self.members.iter().map(|m| m.log.clone()).collect()
    }

    /// The members' log files' last lines, for a failing test.
    pub fn log_tail(&self) -> String {
        logs_of(&self.logs())
    }

    /// Where the members keep their data and logs.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
        // each member by its PID (ChildGuard: TERM, then KILL); the temp dir goes after them
        for m in &mut self.members {
            m.child.take();
        }
    }
}

fn logs_of(paths: &[PathBuf]) -> String {
    paths.iter().filter_map(|p| crate::log_tail(p, 15)).map(|t| t + "\n").collect()
}

/// etcd's `/health` on the client port says `"health":"true"` once the member sees a leader.
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Three members form one cluster: all list each other, a key written through one member is read through
    /// another, and the cluster keeps serving with one member killed.
    #[test]
    fn three_members_form_one_cluster_that_survives_losing_one() {
        crate::require_root();
        let mut c = EtcdCluster::start(3);
        assert_eq!(c.member_list().lines().filter(|l| l.contains("started")).count(), 3, "{}", c.member_list());
        let etcdctl = require_command("etcdctl", "etcd-client");
        let ctl = |endpoint: &str, args: &[&str]| {
            let out = Command::new(&etcdctl).args(["--endpoints", endpoint]).args(args).env("ETCDCTL_API", "3").output().expect("etcdctl");
            assert!(out.status.success(), "etcdctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        ctl(&c.endpoints[0], &["put", "/k", "v1"]);
        assert_eq!(ctl(&c.endpoints[2], &["get", "/k", "--print-value-only"]).trim(), "v1");
        c.kill9(0);
        // the survivors may first have to elect a new leader (member 0 may have been it)
        poll_until("a put through a surviving member", Duration::from_secs(30), || {
            let out = Command::new(&etcdctl).args(["--endpoints", &c.endpoints[1], "put", "/k", "v2"]).env("ETCDCTL_API", "3").output().expect("etcdctl");
            out.status.success().then_some(())
        });
        assert_eq!(ctl(&c.endpoints[2], &["get", "/k", "--print-value-only"]).trim(), "v2");
        c.restart(0);
        poll_until("the restarted member to catch up", Duration::from_secs(30), || {
            (ctl(&c.endpoints[0], &["get", "/k", "--print-value-only"]).trim() == "v2").then_some(())
        });
    }
}
