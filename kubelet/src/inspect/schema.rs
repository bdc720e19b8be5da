//! The `PodInspection` document (`apiVersion: inspect.rkube.io/v1alpha1`), what the kubelet's
//! `GET /inspect/pods/<ns>/<name>` answers and `rkube inspect pod -o json|yaml` prints. docs/inspect.md
//! describes every field; a change that removes or renames one needs a new version.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The `apiVersion` of every inspection document (pod, node, Service).
pub const API_VERSION: &str = "inspect.rkube.io/v1alpha1";
/// The `kind` of a [`PodInspection`].
pub const POD_KIND: &str = "PodInspection";

/// `GET /inspect/pods/<ns>/<name>` of a kubelet, `rkube inspect pod NAME -o json|yaml`: one pod's kernel objects
/// on this node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodInspection {
    /// [`API_VERSION`].
    pub api_version: String,
    /// [`POD_KIND`].
    pub kind: String,
    /// Which pod, and the node that answered.
    pub metadata: PodRef,
    /// `Guaranteed`, `Burstable` or `BestEffort`: the pod's `status.qosClass`, else computed from its spec.
    pub qos_class: String,
    /// The pause process that holds the pod's namespaces.
    pub sandbox: Sandbox,
    /// Each container of the spec that has been created, in spec order.
    pub containers: Vec<Container>,
    /// The pod's interface, its veth peer and bridge, routes, hosts and resolv.conf.
    pub network: Network,
    /// The nftables rules of the service proxy that send traffic to this pod (empty without a proxy table).
    pub service_rules: ServiceRules,
}

/// Which pod an inspection is of.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodRef {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// The pod's `metadata.uid`.
    pub uid: String,
    /// The node whose kubelet answered.
    pub node: String,
}

/// A namespace of a process: its kind (`net`, `ipc`, `uts`, `pid`, `mnt`, `cgroup`, `user`), the inode
/// `/proc/<pid>/ns/<kind>` names, and whose it is.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Namespace {
    /// `net`, `ipc`, `uts`, `pid`, `mnt`, `cgroup` or `user` (`type` in the document).
    #[serde(rename = "type")]
    pub kind: String,
    /// The namespace's inode, as `readlink /proc/<pid>/ns/<type>` shows it (`net:[<inode>]`).
    pub inode: u64,
    /// Whose namespace it is.
    pub shared: Sharing,
}

/// Whose namespace it is: the pod's (the sandbox's, shared by its containers), the host's (the node's: the
/// kubelet's own namespaces), or the process's own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sharing {
    /// The sandbox's, shared by the pod's containers.
    Pod,
    /// The node's (the kubelet's own).
    Host,
    /// The process's own, shared with nothing else in the pod.
    #[default]
    Own,
}

/// The pod's sandbox: the pause process whose namespaces the containers join.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sandbox {
    /// The sandbox id the kubelet gave it.
    pub id: String,
    /// The pause process's PID on the node.
    pub pid: i32,
    /// Its command line (`/proc/<pid>/cmdline`).
    pub command: Vec<String>,
    /// For the sandbox, `shared` is `host` or `pod` (a namespace the sandbox made for the pod).
    pub namespaces: Vec<Namespace>,
}

/// One container of the pod: its process, namespaces, cgroup, rootfs, mounts and monitor.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    /// The container's name in the spec.
    pub name: String,
    /// The runtime's container id.
    pub id: String,
    /// How many times the kubelet has restarted it.
    pub restart_count: i32,
    /// `running`, or `exited` (then the process facts are empty).
    pub state: String,
    /// The container's init process on the node; null when it is not running.
    pub pid: Option<i32>,
    /// Its namespaces, each labelled `pod`, `host` or `own`.
    pub namespaces: Vec<Namespace>,
    /// Its cgroup with limits and usage, as the runtime reads them; null when the runtime could not answer.
    pub cgroup: Option<Cgroup>,
    /// Its root filesystem (overlay layers); null when the mount table has none.
    pub rootfs: Option<Rootfs>,
    /// The mounts the kubelet asked for (volumes and managed files).
    pub mounts: Vec<Mount>,
    /// The process holding its stdio, and its log file.
    pub monitor: Monitor,
}

/// A container's cgroup: where it is, and its CPU, memory and PID limits and usage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cgroup {
    /// Relative to each hierarchy's root (`/kubepods/burstable/pod<uid>/<id>`).
    pub path: String,
    /// Controller → the directory the runtime read.
    pub dirs: BTreeMap<String, PathBuf>,
    /// CPU limits and time used.
    pub cpu: CpuFacts,
    /// Memory limit, usage and OOM kills.
    pub memory: MemoryFacts,
    /// PID limit and current count.
    pub pids: PidsFacts,
}

/// A cgroup's CPU settings (v1 `cpu.cfs_*`/`cpu.shares`, v2 `cpu.max`/`cpu.weight`) and time used.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CpuFacts {
    /// CFS quota per period in µs; null when unlimited.
    pub quota_micros: Option<i64>,
    /// CFS period in µs.
    pub period_micros: Option<u64>,
    /// cgroup v1 `cpu.shares`; null on v2.
    pub shares: Option<u64>,
    /// cgroup v2 `cpu.weight`; null on v1.
    pub weight: Option<u64>,
    /// CPU time used since the cgroup was made, in ns.
    pub usage_nanos: Option<u64>,
}

/// A cgroup's memory limit and use.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryFacts {
    /// As the kernel holds it (cgroup v1's "unlimited" is 9223372036854771712); null for v2 `max`.
    pub limit_bytes: Option<u64>,
    /// Memory in use now, as the runtime reads it (v1 `memory.usage_in_bytes`, v2 `memory.current`).
    pub usage_bytes: Option<u64>,
    /// Processes the kernel's OOM killer has killed in the cgroup.
    pub oom_kills: u64,
}

/// A cgroup's PID limit and use.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PidsFacts {
    /// null for `max`.
    pub limit: Option<u64>,
    /// Tasks in the cgroup now.
    pub current: Option<u64>,
}

/// The container's root filesystem as its own mount table shows `/`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rootfs {
    /// The filesystem type of `/` (`overlay`).
    pub fs_type: String,
    /// Topmost first, as overlayfs takes them.
    pub lower_layers: Vec<Layer>,
    /// overlayfs' `upperdir`: the container's writable layer.
    pub upper_dir: Option<String>,
    /// overlayfs' `workdir`.
    pub work_dir: Option<String>,
}

/// One read-only layer of an overlay rootfs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Layer {
    /// `sha256:<hex>` (the layer's diff id) when the directory is in the image store.
    pub digest: Option<String>,
    /// The layer's directory on the host (`lowerdir` entry).
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
    /// Where it is mounted inside the container.
    pub mount_path: String,
    /// The source on the host the runtime bound (from the container's bundle).
    pub host_source: String,
    /// From `/proc/<pid>/mountinfo`: the filesystem, the path of the mount's root within it, its device, and
    /// whether it is read-only. Null when the mount table has no entry at `mount_path`.
    pub kernel: Option<KernelMount>,
}

/// A mount as `/proc/<pid>/mountinfo` has it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KernelMount {
    /// The mount's id (mountinfo's first field).
    pub mount_id: u64,
    /// The filesystem type (`tmpfs`, `ext4`, `overlay`, ...).
    pub fs_type: String,
    /// The path within the filesystem that is mounted (a bind mount's source directory).
    pub root: String,
    /// `major:minor` of the filesystem's device.
    pub device: String,
    /// The mount source (mountinfo's field after the `-`).
    pub source: String,
    /// Whether the mount is read-only (`ro` in its options).
    pub read_only: bool,
}

/// The `rkube-monitor` of a container: the process that holds its stdio and writes its log.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Monitor {
    /// The `rkube-monitor` process holding the container's stdio (null when it has exited).
    pub pid: Option<i32>,
    /// The container's log file on the host (what `kubectl logs` reads).
    pub log_file: PathBuf,
}

/// A pod's network as the node has it: the interface, the veth to the bridge, routes and the files the
/// kubelet wrote.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Network {
    /// Whether the pod uses the node's network namespace (then there is no veth or bridge).
    pub host_network: bool,
    /// The pod's IP (the sandbox's record, else `status.podIP`).
    pub pod_ip: Option<String>,
    /// The pod's interface (in its netns), its veth peer on the host, and the bridge that peer is a port of.
    pub pod_interface: Option<Link>,
    /// The host end of the pod's veth pair.
    pub host_veth: Option<Link>,
    /// The bridge the host veth is a port of.
    pub bridge: Option<Link>,
    /// Routes of the pod's network namespace (main table).
    pub routes: Vec<Route>,
    /// The pod's `/etc/hosts` and `/etc/resolv.conf` as the kubelet wrote them.
    pub hosts: String,
    /// The pod's `/etc/resolv.conf` as the kubelet wrote it.
    pub resolv_conf: String,
}

/// A network interface as `ip -j addr show` reports it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Link {
    /// The interface name (`eth0`, `veth...`, `rkube0`).
    pub name: String,
    /// Its index in its network namespace.
    pub ifindex: u32,
    /// The ifindex of the veth's other end (in the other namespace); null for a bridge.
    pub peer_ifindex: Option<u32>,
    /// Its MAC address.
    pub mac: String,
    /// The bridge this link is a port of.
    pub master: Option<String>,
    /// Its IPv4 and IPv6 addresses with prefix length (`10.244.1.5/24`).
    pub addresses: Vec<String>,
}

/// A route as `ip -j route show` reports it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    /// `default` or a prefix.
    pub dst: String,
    /// The next hop; null for a directly connected prefix.
    pub gateway: Option<String>,
    /// The interface the route goes out of.
    pub dev: Option<String>,
    /// The source address the kernel prefers for it.
    pub prefsrc: Option<String>,
}

/// The service proxy's rules that send traffic to a pod, from every table of the proxy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRules {
    /// The proxy's table (`nft list table ip <table>`); null when this kubelet runs no service proxy.
    pub table: Option<String>,
    /// Each service port endpoint that is this pod, by endpoint chain.
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
    /// The table the chains are in: the proxy's table, or the shard table (`<table>-<n>`) that holds the Service.
    #[serde(default)]
    pub table: String,
    /// The `ep-<ns>/<name>/<proto>/<port>__<ip>/<port>` chain that DNATs to the pod.
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

/// The `kind` of a [`NodeInspection`].
pub const NODE_KIND: &str = "NodeInspection";
/// The `kind` of a [`ServiceInspection`].
pub const SERVICE_KIND: &str = "ServiceInspection";

/// `GET /inspect/node` of a kubelet, `rkube inspect node [NAME] -o json|yaml`: the node's pod network (bridge, the
/// routes to other nodes' pod CIDRs), its service proxy table in numbers, the cluster DNS address, the QoS cgroup
/// tree with memory and CPU use, and every pod with its sandbox process.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeInspection {
    /// [`API_VERSION`].
    pub api_version: String,
    /// [`NODE_KIND`].
    pub kind: String,
    /// The node that answered.
    pub metadata: NodeRef,
    /// The Node's `spec.podCIDR` (from the API, filled in by the client; null when the kubelet answers alone).
    pub pod_cidr: Option<String>,
    /// The pod bridge (`ip -j addr show dev <bridge>`); null when the kubelet runs no default pod network.
    pub bridge: Option<Link>,
    /// Routes the kubelet keeps to other nodes' pod CIDRs (host-gw, `ip route show proto 82`).
    pub pod_routes: Vec<Route>,
    /// The service proxy's tables in numbers.
    pub proxy: ProxySummary,
    /// The cluster DNS address pods are given, and where the kubelet serves it.
    pub dns: Dns,
    /// The QoS cgroup tree with memory and CPU use.
    pub cgroups: QosTree,
    /// Every pod this kubelet has a record of, by namespace and name.
    pub pods: Vec<NodePod>,
}

/// Which node an inspection is of.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRef {
    /// The node's name.
    pub name: String,
}

/// The service proxy's nftables tables counted (`nft -j list table ip <table>`, for each shard table).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxySummary {
    /// null when this kubelet runs no service proxy; then every count is 0.
    pub table: Option<String>,
    /// The tables counted: `table`, and with more Services than one table holds its shard tables
    /// (`<table>-1`, ...); the counts are their sums. Empty when `table` is not there.
    #[serde(default)]
    pub tables: Vec<String>,
    /// Chains in the tables.
    pub chains: usize,
    /// Rules in the tables.
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

/// Cluster DNS on a node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dns {
    /// The cluster DNS address pods get in resolv.conf; null when none is configured.
    pub address: Option<String>,
    /// The link the kubelet puts that address on, when it serves cluster DNS itself, with its IPv4 addresses.
    pub link: Option<String>,
    /// The IPv4 addresses on `link`.
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

/// One QoS class's cgroup with its memory and CPU use.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QosCgroup {
    /// `Guaranteed`, `Burstable` or `BestEffort`.
    pub qos_class: String,
    /// The class's cgroup, relative to each hierarchy's root (`kubepods/burstable`).
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
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// The pod's `metadata.uid`.
    pub uid: String,
    /// `Guaranteed`, `Burstable` or `BestEffort`.
    pub qos_class: String,
    /// The pod's cgroup (`kubepods/burstable/pod<uid>`).
    pub cgroup: String,
    /// As [`QosCgroup::memory_working_set_bytes`], for the pod's cgroup.
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
    /// The pod's IP (the sandbox's record, else `status.podIP`).
    pub pod_ip: Option<String>,
    /// Whether the pod uses the node's network namespace.
    pub host_network: bool,
}

/// `GET /inspect/services/<ns>/<name>` of a kubelet, `rkube inspect service NAME -o json|yaml`: how this node's
/// service proxy sends the Service's traffic: per port, the chain, the addresses and NodePorts that lead to it, and
/// the endpoint chains it picks from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceInspection {
    /// [`API_VERSION`].
    pub api_version: String,
    /// [`SERVICE_KIND`].
    pub kind: String,
    /// Which Service, and the node whose proxy was read.
    pub metadata: ServiceRef,
    /// `spec.type`, `spec.clusterIPs` and `spec.ports` as the API holds them (filled in by the client).
    #[serde(rename = "type")]
    pub service_type: Option<String>,
    /// The Service's `spec.clusterIPs` (filled in by the client).
    pub cluster_ips: Vec<String>,
    /// The proxy table read; null when the node runs no service proxy.
    pub table: Option<String>,
    /// The Service's ports as the proxy table has them, in chain-name order; empty when it has none (no
    /// ready endpoints, or not synced yet).
    pub ports: Vec<ServicePortRules>,
}

/// Which Service an inspection is of.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRef {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
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

/// One endpoint a service port's chain picks.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointPick {
    /// The `numgen` value that picks it in the service chain (null when another chain picks it, e.g. `local-`).
    pub slot: Option<u64>,
    /// The endpoint's `ep-` chain.
    pub chain: String,
    /// `<ip>:<port>` of the chain's DNAT.
    pub endpoint: String,
}
