//! The `PodInspection` document (`apiVersion: inspect.rkube.io/v1alpha1`), what the kubelet's
//! `GET /inspect/pods/<ns>/<name>` answers and `rkube inspect pod -o json|yaml` prints. docs/inspect.md
//! describes every field; a change that removes or renames one needs a new version.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub const API_VERSION: &str = "inspect.rkube.io/v1alpha1";
pub const POD_KIND: &str = "PodInspection";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodInspection {
    pub api_version: String,
    pub kind: String,
    pub metadata: PodRef,
    pub qos_class: String,
    pub sandbox: Sandbox,
    pub containers: Vec<Container>,
    pub network: Network,
    /// The nftables rules of the service proxy that send traffic to this pod (empty without a proxy table).
    pub service_rules: ServiceRules,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub node: String,
}

/// A namespace of a process: its kind (`net`, `ipc`, `uts`, `pid`, `mnt`, `cgroup`, `user`), the inode
/// `/proc/<pid>/ns/<kind>` names, and whose it is.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Namespace {
    #[serde(rename = "type")]
    pub kind: String,
    pub inode: u64,
    pub shared: Sharing,
}

/// Whose namespace it is: the pod's (the sandbox's, shared by its containers), the host's (the node's: the
/// kubelet's own namespaces), or the process's own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sharing {
    Pod,
    Host,
    #[default]
    Own,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sandbox {
    pub id: String,
    pub pid: i32,
    pub command: Vec<String>,
    /// For the sandbox, `shared` is `host` or `pod` (a namespace the sandbox made for the pod).
    pub namespaces: Vec<Namespace>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    pub name: String,
    pub id: String,
    pub restart_count: i32,
    /// `running`, or `exited` (then the process facts are empty).
    pub state: String,
    pub pid: Option<i32>,
    pub namespaces: Vec<Namespace>,
    pub cgroup: Option<Cgroup>,
    pub rootfs: Option<Rootfs>,
    pub mounts: Vec<Mount>,
    pub monitor: Monitor,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cgroup {
    /// Relative to each hierarchy's root (`/kubepods/burstable/pod<uid>/<id>`).
    pub path: String,
    /// Controller → the directory the runtime read.
    pub dirs: BTreeMap<String, PathBuf>,
    pub cpu: CpuFacts,
    pub memory: MemoryFacts,
    pub pids: PidsFacts,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CpuFacts {
    /// CFS quota per period in µs; null when unlimited.
    pub quota_micros: Option<i64>,
    pub period_micros: Option<u64>,
    pub shares: Option<u64>,
    pub weight: Option<u64>,
    pub usage_nanos: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryFacts {
    /// As the kernel holds it (cgroup v1's "unlimited" is 9223372036854771712); null for v2 `max`.
    pub limit_bytes: Option<u64>,
    pub usage_bytes: Option<u64>,
    pub oom_kills: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PidsFacts {
    /// null for `max`.
    pub limit: Option<u64>,
    pub current: Option<u64>,
}

/// The container's root filesystem as its own mount table shows `/`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rootfs {
    pub fs_type: String,
    /// Topmost first, as overlayfs takes them.
    pub lower_layers: Vec<Layer>,
    pub upper_dir: Option<String>,
    pub work_dir: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Layer {
    /// `sha256:<hex>` (the layer's diff id) when the directory is in the image store.
    pub digest: Option<String>,
    pub dir: String,
}

/// A mount of the container that the kubelet asked for: a volume, or a file the kubelet manages
/// (`/etc/hosts`, `/etc/resolv.conf`, `/etc/hostname`, the termination log).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mount {
    /// The pod volume's name; null for a kubelet-managed file.
    pub volume: Option<String>,
    /// `emptyDir`, `emptyDir(Memory)`, `hostPath`, `configMap`, `secret`, `projected`, `downwardAPI`, or
    /// `kubelet` for a managed file.
    pub kind: String,
    pub mount_path: String,
    /// The source on the host the runtime bound (from the container's bundle).
    pub host_source: String,
    /// From `/proc/<pid>/mountinfo`: the filesystem, the path of the mount's root within it, its device, and
    /// whether it is read-only. Null when the mount table has no entry at `mount_path`.
    pub kernel: Option<KernelMount>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KernelMount {
    pub mount_id: u64,
    pub fs_type: String,
    pub root: String,
    pub device: String,
    pub source: String,
    pub read_only: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Monitor {
    /// The `rkube-monitor` process holding the container's stdio (null when it has exited).
    pub pid: Option<i32>,
    pub log_file: PathBuf,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Network {
    pub host_network: bool,
    pub pod_ip: Option<String>,
    /// The pod's interface (in its netns), its veth peer on the host, and the bridge that peer is a port of.
    pub pod_interface: Option<Link>,
    pub host_veth: Option<Link>,
    pub bridge: Option<Link>,
    /// Routes of the pod's network namespace (main table).
    pub routes: Vec<Route>,
    /// The pod's `/etc/hosts` and `/etc/resolv.conf` as the kubelet wrote them.
    pub hosts: String,
    pub resolv_conf: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Link {
    pub name: String,
    pub ifindex: u32,
    /// The ifindex of the veth's other end (in the other namespace); null for a bridge.
    pub peer_ifindex: Option<u32>,
    pub mac: String,
    /// The bridge this link is a port of.
    pub master: Option<String>,
    pub addresses: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    /// `default` or a prefix.
    pub dst: String,
    pub gateway: Option<String>,
    pub dev: Option<String>,
    pub prefsrc: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRules {
    /// The proxy's table (`nft list table ip <table>`); null when this kubelet runs no service proxy.
    pub table: Option<String>,
    pub endpoints: Vec<EndpointRules>,
}

/// One service port endpoint that is this pod: the chain that DNATs to it and what leads there.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointRules {
    /// `<namespace>/<name>`.
    pub service: String,
    /// `<proto>/<port name or number>`.
    pub port: String,
    /// `<pod ip>:<target port>`.
    pub endpoint: String,
    pub endpoint_chain: String,
    /// Chains with a rule that jumps or goes to `endpoint_chain` (`svc-`, `local-`), and those that go to them
    /// (`ext-`), nearest first.
    pub via_chains: Vec<String>,
    /// Map elements that lead there: `<ip>:<port>/<proto>` of `service-ips` (ClusterIPs, externalIPs, load
    /// balancer IPs).
    pub service_ips: Vec<String>,
    /// `<port>/<proto>` of `service-nodeports`.
    pub node_ports: Vec<String>,
}
