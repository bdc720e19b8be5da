//! The acting half of a pod's inspection: each fact read where the kernel keeps it (`/proc`, `ip -j`, `nft -j`,
//! the pod's records under the kubelet root) or asked of the runtime through [`RuntimeClient`], then put together
//! by [`super::assemble`]. Every read is small and named; a fact that cannot be read is left empty, except the
//! pod and its sandbox, without which there is nothing to inspect.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use super::assemble;
use super::schema::{self, Container, Network, PodInspection, PodRef, Sandbox};
use super::InspectError;
use crate::pod::worker::{ContainerRecord, SandboxRecord};
use crate::runtime_client::RuntimeClient;

/// What the inspection reads on this node.
#[derive(Clone, Debug)]
pub struct InspectEnv {
    /// This node's name, as the errors say it.
    pub node_name: String,
    /// `<kubelet root>/pods`: `<uid>/{pod.json,sandbox.json,hosts,resolv.conf,containers/<name>/...}`.
    pub pods_dir: PathBuf,
    /// The runtime the kubelet runs containers with (for cgroup limits and usage).
    pub runtime_bin: PathBuf,
    /// The runtime's state directory (its `--root`).
    pub runtime_root: PathBuf,
    /// The service proxy's nftables table, when this kubelet runs the proxy.
    pub proxy_table: Option<String>,
    /// Where `/proc` is (a parameter for tests).
    pub proc_root: PathBuf,
    /// The kubelet's cgroup root (`kubepods`), under which the QoS classes' and pods' cgroups are.
    pub cgroup_root: String,
    /// The default pod network's bridge, when the kubelet runs one.
    pub bridge: Option<String>,
    /// The cluster DNS address pods are given.
    pub cluster_dns: Option<String>,
    /// The link the kubelet puts `cluster_dns` on, when it serves DNS itself.
    pub dns_link: Option<String>,
}

impl InspectEnv {
    /// What a kubelet started with `cfg` reads (its root, runtime, proxy table, cgroup root, bridge and DNS).
    pub fn from_config(cfg: &crate::config::KubeletConfig) -> InspectEnv {
        InspectEnv {
            node_name: cfg.node_name.clone(),
            pods_dir: cfg.root_dir.join("pods"),
            runtime_bin: cfg.runtime_bin.clone(),
            runtime_root: cfg.runtime_root.clone(),
            proxy_table: cfg.proxy_table.clone(),
            proc_root: PathBuf::from("/proc"),
            cgroup_root: cfg.cgroup_root.clone(),
            bridge: cfg.default_network.as_ref().map(|n| n.bridge.clone()),
            cluster_dns: cfg.cluster_dns.clone(),
            dns_link: cfg.serve_cluster_dns.then(|| cfg.dns_link.clone()),
        }
    }

    pub(super) fn runtime(&self) -> crate::runtime_client::RuntimeCli {
        crate::runtime_client::RuntimeCli { bin: self.runtime_bin.clone(), root: self.runtime_root.clone() }
    }
}

pub(super) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// The pod directory and `pod.json` of `ns/name`.
fn find_pod(env: &InspectEnv, ns: &str, name: &str) -> Option<(PathBuf, Value)> {
    for e in std::fs::read_dir(&env.pods_dir).ok()?.flatten() {
        let Some(v) = read_json::<Value>(&e.path().join("pod.json")) else { continue };
        if v.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("default") == ns
            && v.pointer("/metadata/name").and_then(Value::as_str) == Some(name)
        {
            return Some((e.path(), v));
        }
    }
    None
}

/// Kind → inode of each namespace of `pid` (none when the process is gone).
pub fn namespaces_of(proc_root: &Path, pid: i32) -> BTreeMap<String, u64> {
    namespaces_in(&proc_root.join(pid.to_string()))
}

/// The node's namespaces: the kubelet's own (`/proc/self/ns/*`), what a hostNetwork pod joins. Not PID 1's:
/// readlink of another process's namespace needs ptrace access to it, which an init may refuse even to root
/// (a non-dumpable init answers EACCES, and the comparison would then silently label nothing `host`), and the
/// kubelet of `rkube cluster` runs in its node's network namespace, not PID 1's.
pub fn node_namespaces(proc_root: &Path) -> BTreeMap<String, u64> {
    namespaces_in(&proc_root.join("self"))
}

fn namespaces_in(proc_dir: &Path) -> BTreeMap<String, u64> {
    assemble::NAMESPACE_KINDS
        .iter()
        .filter_map(|k| {
            let link = std::fs::read_link(proc_dir.join("ns").join(k)).ok()?;
            Some((k.to_string(), assemble::ns_inode(&link.to_string_lossy())?))
        })
        .collect()
}

fn cmdline(proc_root: &Path, pid: i32) -> Vec<String> {
    std::fs::read(proc_root.join(pid.to_string()).join("cmdline"))
        .map(|b| b.split(|c| *c == 0).filter(|s| !s.is_empty()).map(|s| String::from_utf8_lossy(s).into_owned()).collect())
        .unwrap_or_default()
}

fn alive(proc_root: &Path, pid: i32) -> bool {
    pid > 0 && proc_root.join(pid.to_string()).exists()
}

/// Runs a command and parses its stdout as JSON (`ip -j`, `nft -j`); None when it fails.
pub(super) fn json_of(program: &str, args: &[&str]) -> Option<Value> {
    let out = Command::new(program).args(args).stdin(Stdio::null()).stderr(Stdio::null()).output().ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// `ip -j <args>` inside the network namespace at `netns`.
fn ip_in_netns(netns: &str, args: &[&str]) -> Option<Value> {
    let net = format!("--net={netns}");
    let mut all = vec![net.as_str(), "ip", "-j"];
    all.extend_from_slice(args);
    json_of("nsenter", &all)
}

/// The inspection of pod `ns/name` on this node.
pub fn inspect_pod(env: &InspectEnv, ns: &str, name: &str) -> Result<PodInspection, InspectError> {
    let (dir, pod) = find_pod(env, ns, name).ok_or_else(|| InspectError::PodNotHere { pod: format!("{ns}/{name}"), node: env.node_name.clone() })?;
    let sandbox_rec: SandboxRecord =
        read_json(&dir.join("sandbox.json")).ok_or_else(|| InspectError::NoSandbox { pod: format!("{ns}/{name}") })?;
    if !alive(&env.proc_root, sandbox_rec.pid) {
        return Err(InspectError::SandboxGone { pod: format!("{ns}/{name}"), pid: sandbox_rec.pid });
    }
    let spec = pod.get("spec").cloned().unwrap_or(Value::Null);
    let host_ns = node_namespaces(&env.proc_root);
    let sandbox_ns = namespaces_of(&env.proc_root, sandbox_rec.pid);
    // the sandbox's namespaces: the host's, or made for the pod
    let sandbox_namespaces = assemble::label_namespaces(&sandbox_ns, Some(&sandbox_ns), &host_ns);
    let sandbox = Sandbox {
        id: sandbox_rec.id.clone(),
        pid: sandbox_rec.pid,
        command: cmdline(&env.proc_root, sandbox_rec.pid),
        namespaces: sandbox_namespaces,
    };
    let runtime = env.runtime();
    let names: Vec<String> = spec
        .get("containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
        .collect();
    let containers = names.iter().filter_map(|c| container(env, &runtime, &dir, &spec, c, &sandbox_ns, &host_ns)).collect();
    let pod_ip = sandbox_rec.ip.clone().or_else(|| pod.pointer("/status/podIP").and_then(Value::as_str).map(str::to_string));
    let network = network(&dir, &sandbox_rec, pod_ip.as_deref());
    let own_ip = pod_ip.as_deref().filter(|_| !sandbox_rec.host_network);
    let service_rules = super::node::pod_service_rules(env.proxy_table.as_deref(), own_ip, &super::node::nft_command);
    let qos_class = pod
        .pointer("/status/qosClass")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| rkube_apimachinery::qos::qos_class_of_json(&spec).as_str().to_string());
    Ok(PodInspection {
        api_version: schema::API_VERSION.into(),
        kind: schema::POD_KIND.into(),
        metadata: PodRef {
            namespace: ns.into(),
            name: name.into(),
            uid: pod.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or_default().into(),
            node: env.node_name.clone(),
        },
        qos_class,
        sandbox,
        containers,
        network,
        service_rules,
    })
}

/// One container's facts; None when it has not been created yet.
fn container(
    env: &InspectEnv,
    runtime: &dyn RuntimeClient,
    pod_dir: &Path,
    spec: &Value,
    name: &str,
    sandbox_ns: &BTreeMap<String, u64>,
    host_ns: &BTreeMap<String, u64>,
) -> Option<Container> {
    let cdir = pod_dir.join("containers").join(name);
    let rec: ContainerRecord = read_json(&cdir.join("meta.json"))?;
    let mdir = cdir.join("monitor");
    let pid = crate::container_monitor::container_pid(&mdir)
        .or_else(|| std::fs::read_to_string(cdir.join("container.pid")).ok().and_then(|s| s.trim().parse().ok()))
        .filter(|p| rec.exit.is_none() && alive(&env.proc_root, *p));
    let mut c = Container {
        name: name.into(),
        id: rec.id.clone(),
        restart_count: rec.restart_count,
        state: if pid.is_some() { "running".into() } else { "exited".into() },
        pid,
        monitor: schema::Monitor { pid: crate::container_monitor::alive_monitor(&mdir), log_file: rec.log_path.clone() },
        ..Default::default()
    };
    let Some(pid) = pid else { return Some(c) };
    c.namespaces = assemble::label_namespaces(&namespaces_of(&env.proc_root, pid), Some(sandbox_ns), host_ns);
    c.cgroup = runtime.container_stats(&rec.id).ok().map(|st| schema::Cgroup {
        path: rec.cgroups_path.clone(),
        dirs: st.cgroup_dirs,
        cpu: schema::CpuFacts {
            quota_micros: st.cpu.limits.quota,
            period_micros: st.cpu.limits.period,
            shares: st.cpu.limits.shares,
            weight: st.cpu.limits.weight,
            usage_nanos: st.cpu.usage.total,
        },
        memory: schema::MemoryFacts { limit_bytes: st.memory.usage.limit, usage_bytes: st.memory.usage.usage, oom_kills: st.memory.oom_kill },
        pids: schema::PidsFacts { limit: st.pids.limit, current: st.pids.current },
    });
    let mountinfo = std::fs::read_to_string(env.proc_root.join(pid.to_string()).join("mountinfo")).unwrap_or_default();
    let mounts = assemble::parse_mountinfo(&mountinfo);
    c.rootfs = assemble::rootfs_of(&mounts);
    let bundle: Value = read_json(&cdir.join("bundle").join("config.json")).unwrap_or(Value::Null);
    c.mounts = assemble::container_mounts(spec, name, &bundle["mounts"], &mounts);
    Some(c)
}

/// The pod's interface, its veth peer and bridge, routes, and the files the kubelet wrote for it.
fn network(pod_dir: &Path, sandbox: &SandboxRecord, pod_ip: Option<&str>) -> Network {
    let read = |f: &str| std::fs::read_to_string(pod_dir.join(f)).unwrap_or_default();
    let mut n = Network { host_network: sandbox.host_network, pod_ip: pod_ip.map(str::to_string), hosts: read("hosts"), resolv_conf: read("resolv.conf"), ..Default::default() };
    let Some(netns) = sandbox.netns.as_deref().filter(|_| !sandbox.host_network) else { return n };
    let pod_links = ip_in_netns(netns, &["addr", "show"]).unwrap_or(Value::Null);
    let host_links = json_of("ip", &["-j", "addr", "show"]).unwrap_or(Value::Null);
    let (p, h, b) = assemble::veth_of(&pod_links, &host_links, pod_ip);
    n.pod_interface = p;
    n.host_veth = h;
    n.bridge = b;
    n.routes = ip_in_netns(netns, &["route", "show"]).map(|v| assemble::routes_of(&v)).unwrap_or_default();
    n
}
