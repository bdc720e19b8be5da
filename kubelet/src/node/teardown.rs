//! Taking a node off this host (`rkube down`): stop the rkube that holds the data dir, remove every pod it ran
//! (containers and sandboxes, CNI attachments, volumes and rootfs mounts, pod cgroups, logs), the default
//! network's bridge and masquerade table, the service proxy table with the load balancer addresses it announced,
//! the cluster DNS address and its bridge, the vxlan pod network's device with its routes, ARP and fdb entries
//! (only the one this node recorded making: [`super::vxlan::remove_device`]), the node's cgroup tree (through the
//! runtime, which owns cgroupfs), and on the last node down the original `net.ipv4.ip_forward`. The image store
//! and the API store stay unless purged.
//!
//! Each step is a named function; [`teardown`] runs them in order and reports what it did through `note`, for
//! the command to print. Which cgroup trees go is decided by the pure [`cgroup_trees`].

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::config::KubeletConfig;
use crate::container::qos::KUBEPODS;
use crate::kubelet::KubeletError;
use crate::runtime_client::RuntimeClient;

use super::host;

/// What [`teardown`] is asked to do.
#[derive(Clone, Debug)]
pub struct TeardownOptions {
    /// The node's data dir (`rkube up --data-dir`).
    pub data_dir: PathBuf,
    /// Also remove the API store, images and everything else under the data dir.
    pub purge: bool,
    /// The node ran in a network namespace of its own (the caller has entered it): the host's ip_forward is not
    /// this node's to restore.
    pub in_netns: bool,
    /// The node's own cgroup root (`rkube kubelet --cgroup-root`); None: the host-wide `kubepods`.
    pub cgroup_root: Option<String>,
}

/// What went wrong tearing a node down, and on what.
#[derive(Debug, thiserror::Error)]
pub enum TeardownError {
    /// The node's pods (containers, sandboxes, volumes, network) could not all be removed.
    #[error("tear down pods: {0}")]
    Pods(#[source] KubeletError),
    /// `--purge`: the node's data dir could not be removed.
    #[error("remove {path}: {source}")]
    Purge {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Tears the node of `opts.data_dir` down; `cfg` is the kubelet configuration it ran with (its dirs, CNI, runtime)
/// and `runtime` the runtime its containers and cgroups belong to. Steps that find nothing to do are not errors.
pub fn teardown(
    cfg: &KubeletConfig,
    runtime: &dyn RuntimeClient,
    opts: &TeardownOptions,
    tokio: tokio::runtime::Handle,
    note: &mut dyn FnMut(String),
) -> Result<(), TeardownError> {
    let data = &opts.data_dir;
    if let Some(pid) = stop_node_process(data) {
        note(format!("stopped rkube (pid {pid})"));
    }
    let mut cfg = cfg.clone();
    if let Some(root) = &opts.cgroup_root {
        cfg.cgroup_root = root.trim_matches('/').to_string();
    }
    if !cfg.cni_conf_dir.join("10-rkube.conflist").exists() {
        cfg.cni_conf_dir = "/etc/cni/net.d".into();
    }
    let n = if cfg.image_root.exists() || cfg.root_dir.exists() { crate::kubelet::teardown_all(&cfg, tokio).map_err(TeardownError::Pods)? } else { 0 };
    note(format!("removed {n} pod(s)"));
    remove_default_network(&data.join("net.d/10-rkube.conflist"));
    // the vxlan pod network's device, when this node made it (its record says so and it is still as made)
    match super::vxlan::remove_device(&cfg.root_dir) {
        Ok(Some(what)) => note(what),
        Ok(None) => {}
        Err(e) => note(format!("rkube down: {e}")),
    }
    // Services: the proxy table with the load balancer addresses it announced, the cluster DNS address and bridge
    if let Err(e) = crate::node_services::remove(&cfg.root_dir) {
        note(format!("rkube down: {e}"));
    }
    // The kubepods tree is host-wide: while another rkube node runs here its empty cgroups are in use (a
    // container's cgroup between create and start, or just exited and not yet checked for an OOM kill), so only
    // the last node down removes it. A node's own root is its own.
    let others = if opts.cgroup_root.is_some() { Vec::new() } else { host::other_nodes_running() };
    let trees = cgroup_trees(opts.cgroup_root.as_deref(), !others.is_empty());
    if trees.is_empty() {
        note(format!("kubepods cgroups left in place: other rkube nodes still run here (pids {others:?})"));
    }
    for tree in trees {
        runtime.remove_pod_cgroup(&tree);
    }
    if !opts.in_netns {
        if let Some(msg) = host::IpForward::host().restore() {
            note(msg);
        }
    }
    remove_node_dirs(data);
    if opts.purge {
        std::fs::remove_dir_all(data)
            .or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) })
            .map_err(|source| TeardownError::Purge { path: data.clone(), source })?;
    }
    Ok(())
}

/// The cgroup trees to remove, in order: a node's own root and then its parents (a cluster's top goes with its
/// last node, once empty), or the host-wide `kubepods` unless other nodes still run here.
pub fn cgroup_trees(own_root: Option<&str>, others_running: bool) -> Vec<String> {
    match own_root {
        Some(root) => {
            let mut rel = PathBuf::from(root.trim_matches('/'));
            let mut out = Vec::new();
            while !rel.as_os_str().is_empty() {
                out.push(rel.to_string_lossy().into_owned());
                if !rel.pop() {
                    break;
                }
            }
            out
        }
        None if others_running => Vec::new(),
        None => vec![KUBEPODS.to_string()],
    }
}

fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Stops the rkube recorded in the data dir's `rkube.pid`: SIGTERM, up to 15 s, then SIGKILL. Returns its pid
/// when one was running.
fn stop_node_process(data: &Path) -> Option<i32> {
    use nix::sys::signal::{kill, Signal};
    let pid = std::fs::read_to_string(data.join(super::data_dir::PID_FILE)).ok().and_then(|s| s.trim().parse::<i32>().ok())?;
    if pid <= 0 || !alive(pid) {
        return None;
    }
    let target = nix::unistd::Pid::from_raw(pid);
    let _ = kill(target, Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(15);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if alive(pid) {
        let _ = kill(target, Signal::SIGKILL);
    }
    Some(pid)
}

/// The default network's bridge and masquerade table, when rkube wrote that network (`conflist`).
fn remove_default_network(conflist: &Path) {
    let Ok(conf) = std::fs::read(conflist) else { return };
    let v: serde_json::Value = serde_json::from_slice(&conf).unwrap_or_default();
    if let Some(bridge) = v["plugins"][0]["bridge"].as_str() {
        let _ = std::process::Command::new("ip").args(["link", "del", bridge]).stderr(std::process::Stdio::null()).status();
    }
    if let Some(name) = v["name"].as_str() {
        let _ = std::process::Command::new("nft")
            .args(["delete", "table", "inet", &masquerade_table(name)])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// The masquerade table the bridge network of `network` made (`rkube_masq_<name, non-alphanumerics as _>`).
fn masquerade_table(network: &str) -> String {
    let name: String = network.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    format!("rkube_masq_{name}")
}

/// Unmounts everything still mounted under `dir`, deepest first, then removes the node's own dirs (not the
/// image store, the API store or the keys).
fn remove_node_dirs(data: &Path) {
    if let Ok(canon) = data.canonicalize() {
        let prefix = canon.to_string_lossy().into_owned();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut points: Vec<String> =
            mounts.lines().filter_map(|l| l.split(' ').nth(4)).filter(|m| m.starts_with(&prefix)).map(str::to_string).collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in points {
            let _ = nix::mount::umount2(Path::new(&p), nix::mount::MntFlags::MNT_DETACH);
        }
    }
    for sub in ["kubelet", "pod-logs", "runtime", "cni", "net.d"] {
        let _ = std::fs::remove_dir_all(data.join(sub));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_cgroup_trees_go() {
        // the host-wide tree, only when this is the last node
        assert_eq!(cgroup_trees(None, false), vec!["kubepods".to_string()]);
        assert!(cgroup_trees(None, true).is_empty(), "in use by another node");
        // a cluster node's own subtree, then its parents (each only if empty), whatever else runs
        assert_eq!(cgroup_trees(Some("/rkube-c1/node-2/"), true), vec!["rkube-c1/node-2".to_string(), "rkube-c1".to_string()]);
        assert_eq!(cgroup_trees(Some("solo"), false), vec!["solo".to_string()]);
        assert!(cgroup_trees(Some("/"), false).is_empty(), "never the root");
    }

    #[test]
    fn the_masquerade_table_is_named_as_the_bridge_plugin_names_it() {
        assert_eq!(masquerade_table("rkube-net.1"), "rkube_masq_rkube_net_1");
    }

    /// Nothing recorded anywhere (no pid file, pods, network or services): the teardown removes only the node's
    /// dirs, keeps the image store, and asks the runtime for the cgroup trees the options name.
    #[test]
    fn an_idle_node_dir_goes_and_the_cgroups_go_through_the_runtime() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        for d in ["runtime", "cni", "pod-logs", "images/blobs"] {
            std::fs::create_dir_all(data.join(d)).expect("mkdir");
        }
        let cfg = KubeletConfig::new("n", "127.0.0.1", &data);
        let fake = crate::runtime_client::fake::FakeRuntime::default();
        let opts = TeardownOptions { data_dir: data.clone(), purge: false, in_netns: true, cgroup_root: Some("/rkube-t/n1".into()) };
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("tokio");
        let mut notes = Vec::new();
        // the image store exists, so the pod teardown runs and finds no pods
        teardown(&cfg, &fake, &opts, rt.handle().clone(), &mut |n| notes.push(n)).expect("teardown");
        assert_eq!(notes, vec!["removed 0 pod(s)".to_string()]);
        assert!(!data.join("runtime").exists() && !data.join("cni").exists() && !data.join("pod-logs").exists());
        assert!(data.join("images/blobs").exists(), "the image store stays");
        // the cgroup removals the runtime was asked for, by path (read from the calls' Debug form, so this holds
        // whichever removal verb the seam records)
        let removed: Vec<String> = fake
            .calls()
            .iter()
            .map(|c| format!("{c:?}"))
            .filter(|c| c.starts_with("Remove") && c.contains("Cgroup"))
            .filter_map(|c| c.split_once("(\"").map(|(_, p)| p.trim_end_matches("\")").to_string()))
            .collect();
        assert_eq!(removed, vec!["rkube-t/n1".to_string(), "rkube-t".to_string()]);
        let purge = TeardownOptions { purge: true, ..opts };
        teardown(&cfg, &fake, &purge, rt.handle().clone(), &mut |_| {}).expect("purge");
        assert!(!data.exists(), "purged");
    }
}
