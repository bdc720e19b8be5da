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

pub const NODE_KIND: &str = "NodeInspection";
pub const SERVICE_KIND: &str = "ServiceInspection";

/// `GET /inspect/node` of a kubelet, `rkube inspect node [NAME] -o json|yaml`: the node's pod network (bridge, the
/// routes to other nodes' pod CIDRs), its service proxy table in numbers, the cluster DNS address, the QoS cgroup
/// tree with memory and CPU use, and every pod with its sandbox process.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeInspection {
    pub api_version: String,
    pub kind: String,
    pub metadata: NodeRef,
    /// The Node's `spec.podCIDR` (from the API, filled in by the client; null when the kubelet answers alone).
    pub pod_cidr: Option<String>,
    /// The pod bridge (`ip -j addr show dev <bridge>`); null when the kubelet runs no default pod network.
    pub bridge: Option<Link>,
    /// Routes the kubelet keeps to other nodes' pod CIDRs (host-gw, `ip route show proto 82`).
    pub pod_routes: Vec<Route>,
    pub proxy: ProxySummary,
    pub dns: Dns,
    pub cgroups: QosTree,
    pub pods: Vec<NodePod>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRef {
    pub name: String,
}

/// The service proxy's nftables table counted (`nft -j list table ip <table>`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxySummary {
    /// null when this kubelet runs no service proxy; then every count is 0.
    pub table: Option<String>,
    pub chains: usize,
    pub rules: usize,
    /// `svc-` chains: one per service port with endpoints.
    pub service_ports: usize,
    /// `ep-` chains: one per endpoint of a service port.
    pub endpoints: usize,
    /// Elements of the `service-ips` map (ClusterIP, externalIP, load balancer IP with port and protocol).
    pub service_ips: usize,
    /// Elements of the `service-nodeports` map.
    pub node_ports: usize,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dns {
    /// The cluster DNS address pods get in resolv.conf; null when none is configured.
    pub address: Option<String>,
    /// The link the kubelet puts that address on, when it serves cluster DNS itself, with its IPv4 addresses.
    pub link: Option<String>,
    pub link_addresses: Vec<String>,
}

/// The pod cgroups by QoS class: `<root>` holds Guaranteed pods, `<root>/burstable` and `<root>/besteffort` the
/// others.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QosTree {
    /// The kubelet's cgroup root (`kubepods`), relative to each hierarchy's root.
    pub root: String,
    /// Guaranteed (the root), Burstable, BestEffort, in that order.
    pub classes: Vec<QosCgroup>,
    /// The interval the CPU rates (`cpuMillicores`, here and in `pods`) were measured over, in ms; 0 when the
    /// runtime gave none.
    #[serde(default)]
    pub cpu_sample_millis: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QosCgroup {
    pub qos_class: String,
    pub path: String,
    /// Memory working set (usage less inactive file cache) as the runtime measures it; for the root it includes
    /// the two other classes.
    pub memory_working_set_bytes: u64,
    /// CPU time used since the cgroup was made, in ns (v1 `cpuacct.usage`, v2 `cpu.stat` usage_usec), as the
    /// runtime reads it; null when it could not be read.
    #[serde(default)]
    pub cpu_usage_nanos: Option<u64>,
    /// CPU in use now: the CPU time used over `cgroups.cpuSampleMillis`, in thousandths of a CPU (Kubernetes'
    /// `m`); null when it could not be measured.
    #[serde(default)]
    pub cpu_millicores: Option<u64>,
}

/// A pod this kubelet runs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodePod {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub qos_class: String,
    /// The pod's cgroup (`kubepods/burstable/pod<uid>`).
    pub cgroup: String,
    pub memory_working_set_bytes: u64,
    /// As [`QosCgroup::cpu_usage_nanos`], for the pod's cgroup.
    #[serde(default)]
    pub cpu_usage_nanos: Option<u64>,
    /// As [`QosCgroup::cpu_millicores`], for the pod's cgroup.
    #[serde(default)]
    pub cpu_millicores: Option<u64>,
    /// null while the pod has no sandbox yet.
    pub sandbox_id: Option<String>,
    /// null when there is no sandbox or its process is gone.
    pub sandbox_pid: Option<i32>,
    pub pod_ip: Option<String>,
    pub host_network: bool,
}

/// `GET /inspect/services/<ns>/<name>` of a kubelet, `rkube inspect service NAME -o json|yaml`: how this node's
/// service proxy sends the Service's traffic: per port, the chain, the addresses and NodePorts that lead to it, and
/// the endpoint chains it picks from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceInspection {
    pub api_version: String,
    pub kind: String,
    pub metadata: ServiceRef,
    /// `spec.type`, `spec.clusterIPs` and `spec.ports` as the API holds them (filled in by the client).
    #[serde(rename = "type")]
    pub service_type: Option<String>,
    pub cluster_ips: Vec<String>,
    /// The proxy table read; null when the node runs no service proxy.
    pub table: Option<String>,
    pub ports: Vec<ServicePortRules>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRef {
    pub namespace: String,
    pub name: String,
    /// The node whose proxy table this is.
    pub node: String,
}

/// One service port in the proxy table.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePortRules {
    /// `<proto>/<port name or number>`, as the chain names say.
    pub port: String,
    /// `svc-<ns>/<name>/<port>`: picks an endpoint (`numgen random mod N`).
    pub service_chain: Option<String>,
    /// `ext-...` (marks traffic from outside for masquerade) and `local-...` (externalTrafficPolicy Local).
    pub other_chains: Vec<String>,
    /// `<ip>:<port>/<proto>` elements of `service-ips` leading here.
    pub service_ips: Vec<String>,
    /// `<port>/<proto>` elements of `service-nodeports` leading here.
    pub node_ports: Vec<String>,
    /// The endpoints the service chain picks from, in its numgen order.
    pub endpoints: Vec<EndpointPick>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointPick {
    /// The `numgen` value that picks it in the service chain (null when another chain picks it, e.g. `local-`).
    pub slot: Option<u64>,
    pub chain: String,
    /// `<ip>:<port>` of the chain's DNAT.
    pub endpoint: String,
}
