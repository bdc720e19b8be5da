//! The state file (`<data-dir>/cluster.json`): what `up` made, written after every step so `down` removes
//! exactly that after a failure halfway, and the pure teardown order ([`teardown_steps`]).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{io_err, ClusterError, Result};

/// The state file's name in the cluster's data dir.
pub const STATE_FILE: &str = "cluster.json";

/// A process `up` started: its pid and its start time (field 22 of `/proc/<pid>/stat`), so a recycled pid is
/// never taken for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proc {
    /// Its process id.
    pub pid: i32,
    /// Its start time, in clock ticks since boot: a pid with another start time is another process.
    pub start_time: u64,
    /// The file its stdout and stderr go to.
    pub log: PathBuf,
}

/// One node as made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    /// The Node's name ([`NodePlan::name`](crate::plan::NodePlan::name)).
    pub name: String,
    /// Its number, from 1.
    pub index: usize,
    /// The network namespace its agent runs in.
    pub netns: String,
    /// Its LAN address, also its node IP.
    pub addr: Ipv4Addr,
    /// Its port on the LAN bridge or router, in the LAN namespace: what a partition takes down.
    pub lan_port: String,
    /// Its agent's data dir.
    pub data_dir: PathBuf,
    /// Its CNI bridge.
    pub bridge: String,
    /// Its pod cgroup subtree.
    pub cgroup_root: String,
    /// The netns exists (made by `up`).
    pub netns_made: bool,
    /// Its agent (`rkube join`, then `rkube kubelet`), while started; `None` after `cluster node stop`.
    pub kubelet: Option<Proc>,
    /// Its LAN port is down (`cluster node partition`).
    #[serde(default)]
    pub partitioned: bool,
}

/// How the cluster's nodes join: what `rkube token create --print-join-command` printed for them. The token is
/// a credential; the state file is 0600 in the 0700 data dir.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinCreds {
    /// The apiserver's URL.
    pub server: String,
    /// The bootstrap token, `<id>.<secret>`.
    pub token: String,
    /// The CA pin, `sha256:<hex>` of the cluster CA's public key.
    pub ca_cert_hash: String,
}

impl JoinCreds {
    /// Parses `rkube join --server S --token T --discovery-token-ca-cert-hash H`.
    pub fn parse(command: &str) -> Option<JoinCreds> {
        let w: Vec<&str> = command.split_whitespace().collect();
        let after = |flag: &str| w.iter().position(|x| *x == flag).and_then(|i| w.get(i + 1)).map(|v| v.to_string());
        Some(JoinCreds { server: after("--server")?, token: after("--token")?, ca_cert_hash: after("--discovery-token-ca-cert-hash")? })
    }
}

/// Everything `up` made, in the order it made it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The cluster's name.
    pub name: String,
    /// The LAN subnet, `a.b.c.0/24`.
    pub subnet: String,
    /// One bridge, or a router between a segment per node (`rkube cluster up --lan`).
    #[serde(default)]
    pub lan: crate::plan::Lan,
    /// The cluster's data dir, which holds this file.
    pub data_dir: PathBuf,
    /// The LAN namespace, once `up` set out to make it.
    pub lan_netns: Option<String>,
    /// The host's veth to the LAN, once `up` set out to make it.
    pub host_link: Option<String>,
    /// The host's LAN address, where the API listens.
    pub host_addr: Ipv4Addr,
    /// The data dir bind-mounted on itself and made shared, so the mounts node agents make in their own mount
    /// namespaces (pods' root filesystems) are the host's too.
    pub shared_mount: bool,
    /// The cgroup every node's subtree goes under.
    pub cgroup_top: String,
    /// The admin kubeconfig the control plane wrote.
    pub kubeconfig: PathBuf,
    /// The API's URL, `https://<host addr>:6443`.
    pub api_url: String,
    /// The control plane process (`rkube server`), once started.
    pub server: Option<Proc>,
    /// More `rkube kubelet` flags given to `up`, used again by `cluster node start`.
    #[serde(default)]
    pub kubelet_args: Vec<String>,
    /// The bootstrap token and CA pin nodes join with (`rkube join`), made once the server is up.
    #[serde(default)]
    pub join: Option<JoinCreds>,
    /// The nodes, each recorded before its namespace is made.
    pub nodes: Vec<NodeState>,
}

/// One step of `down`, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// SIGTERM (then SIGKILL) a recorded process.
    Stop {
        /// What the process is, for the line `down` prints (`kubelet of dev-n1`, `rkube server`).
        what: String,
        /// The process as recorded.
        proc_: Proc,
    },
    /// `rkube down --netns <netns> --data-dir <dir> --cgroup-root <root>`: the node's pods, mounts, cgroups,
    /// CNI bridge, proxy table and DNS link.
    NodeDown {
        /// The node's name.
        node: String,
        /// Its network namespace (made again, empty, if gone).
        netns: String,
        /// Its agent's data dir.
        data_dir: PathBuf,
        /// Its pod cgroup subtree.
        cgroup_root: String,
    },
    /// `ip netns del` the named namespace.
    DeleteNetns(String),
    /// `ip link del` the named host link.
    DeleteLink(String),
    /// Unmount everything at or under this directory (the shared data dir mount), deepest first.
    Unmount(PathBuf),
    /// Remove the data dir with this state file, only when every step before succeeded.
    RemoveState(PathBuf),
}

/// The order `down` undoes `state`: agents first (so nothing recreates what follows), then each node's own
/// cleanup in its namespace (its pods, mounts and cgroup subtree, the cluster's cgroup top once empty), the
/// control plane, the namespaces and the host link, the shared mount, the state file last (a `down`
/// interrupted halfway can run again).
pub fn teardown_steps(s: &State) -> Vec<Step> {
    let mut steps = Vec::new();
    for n in &s.nodes {
        if let Some(p) = &n.kubelet {
            steps.push(Step::Stop { what: format!("kubelet of {}", n.name), proc_: p.clone() });
        }
    }
    for n in &s.nodes {
        if n.netns_made {
            steps.push(Step::NodeDown { node: n.name.clone(), netns: n.netns.clone(), data_dir: n.data_dir.clone(), cgroup_root: n.cgroup_root.clone() });
        }
    }
    if let Some(p) = &s.server {
        steps.push(Step::Stop { what: "rkube server".into(), proc_: p.clone() });
    }
    for n in &s.nodes {
        if n.netns_made {
            steps.push(Step::DeleteNetns(n.netns.clone()));
        }
    }
    if let Some(l) = &s.host_link {
        steps.push(Step::DeleteLink(l.clone()));
    }
    if let Some(ns) = &s.lan_netns {
        steps.push(Step::DeleteNetns(ns.clone()));
    }
    if s.shared_mount {
        steps.push(Step::Unmount(s.data_dir.clone()));
    }
    steps.push(Step::RemoveState(s.data_dir.join(STATE_FILE)));
    steps
}

impl State {
    /// Where the state file of a cluster with this data dir is.
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(STATE_FILE)
    }

    /// Reads the state file: `None` when there is none (no cluster there); [`ClusterError::State`] when it is not
    /// a cluster state.
    pub fn load(data_dir: &Path) -> Result<Option<State>> {
        let path = State::path(data_dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        serde_json::from_str(&text).map(Some).map_err(|e| ClusterError::State { path, message: format!("not a cluster state: {e}") })
    }

    /// Writes the state to a temp file and renames it over the old one, so a reader never sees half of it.
    pub fn save(&self) -> Result<()> {
        let path = State::path(&self.data_dir);
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self).map_err(|e| ClusterError::State { path: path.clone(), message: e.to_string() })?;
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            // it holds the nodes' bootstrap token
            let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(io_err("write", &tmp))?;
            f.write_all(text.as_bytes()).map_err(io_err("write", &tmp))?;
        }
        std::fs::rename(&tmp, &path).map_err(io_err("rename into place", &path))
    }

    /// The index in [`State::nodes`] of the node named `name` (or by its LAN port, `n2`); [`ClusterError::NoSuchNode`]
    /// lists the known names.
    pub fn node(&self, name: &str) -> Result<usize> {
        self.nodes.iter().position(|n| n.name == name || n.lan_port == name).ok_or_else(|| ClusterError::NoSuchNode {
            name: self.name.clone(),
            node: name.to_string(),
            known: self.nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(", "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc_(pid: i32) -> Proc {
        Proc { pid, start_time: 7, log: PathBuf::from("/l") }
    }

    fn state() -> State {
        let node = |i: usize, made: bool, pid: Option<i32>| NodeState {
            name: format!("c-n{i}"),
            index: i,
            netns: format!("rkc-c-n{i}"),
            addr: Ipv4Addr::new(172, 28, 0, 10 + i as u8),
            lan_port: format!("n{i}"),
            data_dir: PathBuf::from(format!("/d/c-n{i}")),
            bridge: format!("c-br{i}"),
            cgroup_root: format!("rkc-c/n{i}"),
            netns_made: made,
            kubelet: pid.map(proc_),
            partitioned: false,
        };
        State {
            name: "c".into(),
            subnet: "172.28.0.0/24".into(),
            lan: crate::plan::Lan::Bridge,
            data_dir: PathBuf::from("/d"),
            lan_netns: Some("rkc-c-lan".into()),
            host_link: Some("rkc-c".into()),
            host_addr: Ipv4Addr::new(172, 28, 0, 1),
            shared_mount: true,
            cgroup_top: "rkc-c".into(),
            kubeconfig: PathBuf::from("/d/server/kubeconfig"),
            api_url: "https://172.28.0.1:6443".into(),
            server: Some(proc_(10)),
            kubelet_args: Vec::new(),
            join: Some(JoinCreds { server: "https://172.28.0.1:6443".into(), token: "abcdef.0123456789abcdef".into(), ca_cert_hash: "sha256:00".into() }),
            nodes: vec![node(1, true, Some(11)), node(2, true, None), node(3, false, None)],
        }
    }

    #[test]
    fn teardown_stops_agents_first_and_forgets_the_state_last() {
        let steps = teardown_steps(&state());
        let names: Vec<String> = steps
            .iter()
            .map(|s| match s {
                Step::Stop { what, .. } => format!("stop {what}"),
                Step::NodeDown { node, .. } => format!("down {node}"),
                Step::DeleteNetns(n) => format!("netns {n}"),
                Step::DeleteLink(l) => format!("link {l}"),
                Step::Unmount(p) => format!("umount {}", p.display()),
                Step::RemoveState(p) => format!("state {}", p.display()),
            })
            .collect();
        assert_eq!(
            names,
            [
                "stop kubelet of c-n1",
                "down c-n1",
                "down c-n2",
                "stop rkube server",
                "netns rkc-c-n1",
                "netns rkc-c-n2",
                "link rkc-c",
                "netns rkc-c-lan",
                "umount /d",
                "state /d/cluster.json"
            ]
        );
    }

    #[test]
    fn the_join_command_is_read_back() {
        let c = JoinCreds::parse("rkube join --server https://172.28.0.1:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash sha256:ab\n")
            .expect("parsed");
        assert_eq!((c.server.as_str(), c.token.as_str(), c.ca_cert_hash.as_str()), ("https://172.28.0.1:6443", "abcdef.0123456789abcdef", "sha256:ab"));
        assert_eq!(JoinCreds::parse("abcdef.0123456789abcdef"), None, "a bare token is not a join command");
    }

    #[test]
    fn a_partial_up_undoes_only_what_it_made() {
        let mut s = state();
        s.server = None;
        s.host_link = None;
        s.shared_mount = false;
        s.nodes.truncate(0);
        let steps = teardown_steps(&s);
        assert_eq!(steps, vec![Step::DeleteNetns("rkc-c-lan".into()), Step::RemoveState("/d/cluster.json".into())]);
    }

    #[test]
    fn saved_state_reads_back_and_names_its_nodes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = state();
        s.data_dir = dir.path().to_path_buf();
        assert_eq!(State::load(dir.path()).expect("load"), None);
        s.save().expect("save");
        assert_eq!(State::load(dir.path()).expect("load"), Some(s.clone()));
        assert_eq!(s.node("c-n2").expect("by name"), 1);
        assert_eq!(s.node("n3").expect("by short name"), 2);
        let err = s.node("x").expect_err("unknown").to_string();
        assert!(err.contains("c-n1, c-n2, c-n3"), "{err}");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(State::path(dir.path())).expect("stat").permissions().mode() & 0o777, 0o600, "it holds a token");
        std::fs::write(State::path(dir.path()), "{").expect("write");
        assert!(State::load(dir.path()).expect_err("bad json").to_string().contains("not a cluster state"));
    }
}
