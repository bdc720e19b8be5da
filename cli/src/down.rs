//! `rkube down`: stops a running `rkube up` (or `rkube kubelet`) of the data dir and removes every pod it ran:
//! containers and sandboxes, CNI attachments (veths, addresses, the masquerade table), volumes and rootfs
//! mounts, cgroups (and the kubepods tree once empty), logs, the default network's bridge, the service proxy
//! table and the cluster DNS address with its bridge; the last node down on the host restores
//! net.ipv4.ip_forward. The image store and the API store stay (pass `--purge` to remove the whole data dir).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;

#[derive(clap::Args)]
pub struct Args {
    /// The data dir given to `rkube up`
    #[arg(long, default_value = "/var/lib/rkube")]
    pub data_dir: PathBuf,
    /// Also remove the API store, images and everything else under the data dir
    #[arg(long)]
    pub purge: bool,
    /// The node ran in this network namespace (`rkube kubelet --netns`): clean up inside it; the host's
    /// ip_forward and other nodes' cgroups are left alone
    #[arg(long, value_name = "NAME")]
    pub netns: Option<String>,
    /// The node's `rkube kubelet --cgroup-root`: its pods' cgroups, and the tree once empty
    #[arg(long)]
    pub cgroup_root: Option<String>,
}

fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn stop_server(data: &Path) {
    let Some(pid) = std::fs::read_to_string(data.join("rkube.pid")).ok().and_then(|s| s.trim().parse::<i32>().ok()) else {
        return;
    };
    if !alive(pid) {
        return;
    }
    let sig = |s: &str| std::process::Command::new("kill").args([s, &pid.to_string()]).status();
    let _ = sig("-TERM");
    let deadline = Instant::now() + Duration::from_secs(15);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if alive(pid) {
        let _ = sig("-KILL");
    }
    eprintln!("stopped rkube (pid {pid})");
}

/// Unmounts everything still mounted under `dir`, deepest first.
fn unmount_under(dir: &Path) {
    let Ok(canon) = dir.canonicalize() else { return };
    let prefix = canon.to_string_lossy().into_owned();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<String> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&prefix))
        .map(str::to_string)
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = nix::mount::umount2(Path::new(&p), nix::mount::MntFlags::MNT_DETACH);
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(ns) = &args.netns {
        rkube_cluster::netns::enter(ns)?;
    }
    let data = &args.data_dir;
    stop_server(data);
    let mut cfg = super::node::kubelet_config(data, "down", "127.0.0.1");
    if let Some(root) = &args.cgroup_root {
        cfg.cgroup_root = root.trim_matches('/').to_string();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("start the tokio runtime")?;
    if !cfg.cni_conf_dir.join("10-rkube.conflist").exists() {
        cfg.cni_conf_dir = "/etc/cni/net.d".into();
    }
    let n = if cfg.image_root.exists() || cfg.root_dir.exists() {
        rkube_kubelet::kubelet::teardown_all(&cfg, runtime.handle().clone()).context("tear down pods")?
    } else {
        0
    };
    eprintln!("removed {n} pod(s)");
    // the default network's bridge and masquerade table, when rkube wrote that network
    if let Ok(conf) = std::fs::read(data.join("net.d/10-rkube.conflist")) {
        let v: serde_json::Value = serde_json::from_slice(&conf).unwrap_or_default();
        if let Some(bridge) = v["plugins"][0]["bridge"].as_str() {
            let _ = std::process::Command::new("ip").args(["link", "del", bridge]).stderr(std::process::Stdio::null()).status();
        }
        if let Some(name) = v["name"].as_str() {
            let table: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
            let _ = std::process::Command::new("nft")
                .args(["delete", "table", "inet", &format!("rkube_masq_{table}")])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
    // Services: the proxy table, the cluster DNS address and its bridge
    if let Err(e) = rkube_kubelet::node_services::remove(&cfg.root_dir) {
        eprintln!("rkube down: {e}");
    }
    // the kubepods cgroup tree, now that its pods are gone. It is host-wide: while another rkube node runs here
    // its empty cgroups are in use (a container's cgroup between create and start, or just exited and not yet
    // checked for an OOM kill), so only the last node down removes the tree.
    let others = super::node::other_nodes_running();
    if let Some(root) = &args.cgroup_root {
        // a cluster node's own subtree, then its parents once empty (the cluster's top goes with its last node)
        let mut rel = PathBuf::from(root.trim_matches('/'));
        loop {
            remove_cgroup_trees(Path::new("/sys/fs/cgroup"), &rel);
            if !rel.pop() || rel.as_os_str().is_empty() {
                break;
            }
        }
    } else if others.is_empty() {
        remove_kubepods_cgroups(Path::new("/sys/fs/cgroup"));
    } else {
        eprintln!("kubepods cgroups left in place: other rkube nodes still run here (pids {others:?})");
    }
    if args.netns.is_none() {
        if let Some(msg) = super::ip_forward::restore() {
            eprintln!("{msg}");
        }
    }
    unmount_under(data);
    for sub in ["kubelet", "pod-logs", "runtime", "cni", "net.d"] {
        let _ = std::fs::remove_dir_all(data.join(sub));
    }
    if args.purge {
        std::fs::remove_dir_all(data).or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) }).with_context(|| format!("remove {}", data.display()))?;
    }
    eprintln!("rkube is down (data dir {})", data.display());
    Ok(())
}

/// Removes empty `kubepods` cgroup trees, deepest first: under each v1 hierarchy (`<root>/<controller>/kubepods`)
/// and at the root of a v2 unified mount (`<root>/kubepods`). Non-empty cgroups are left alone.
fn remove_kubepods_cgroups(root: &Path) {
    remove_cgroup_trees(root, Path::new("kubepods"));
}

/// Removes the empty cgroup tree `rel` under each v1 hierarchy and at the root of a v2 mount, deepest first.
fn remove_cgroup_trees(root: &Path, rel: &Path) {
    let mut tops = vec![root.join(rel)];
    if let Ok(rd) = std::fs::read_dir(root) {
        tops.extend(rd.flatten().filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false)).map(|e| e.path().join(rel)));
    }
    for top in tops {
        remove_empty_tree(&top);
    }
}

fn remove_empty_tree(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_empty_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubepods_trees_go_in_every_hierarchy() {
        let root = tempfile::tempdir().expect("tempdir");
        for d in ["cpu/kubepods/besteffort/podx", "memory/kubepods/burstable", "kubepods/pody", "pids/other"] {
            std::fs::create_dir_all(root.path().join(d)).expect("mkdir");
        }
        // a file inside stands for a cgroup that cannot be removed (it still has processes)
        std::fs::create_dir_all(root.path().join("pids/kubepods/podz")).expect("mkdir");
        std::fs::write(root.path().join("pids/kubepods/podz/busy"), "").expect("write");
        remove_kubepods_cgroups(root.path());
        assert!(!root.path().join("cpu/kubepods").exists());
        assert!(!root.path().join("memory/kubepods").exists());
        assert!(!root.path().join("kubepods").exists());
        assert!(root.path().join("pids/other").exists(), "not ours");
        assert!(root.path().join("pids/kubepods/podz").exists(), "a busy cgroup stays");
    }
}
