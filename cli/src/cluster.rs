//! `rkube cluster up|down|status|node`: a local multi-node cluster on this machine (see docs/cluster.md). The
//! work is in the `rkube-cluster` crate; this module parses the flags and prints.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use rkube_cluster::plan::{DEFAULT_DATA_ROOT, DEFAULT_SUBNET};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Start the control plane and N nodes, each node in its own network namespace on a private LAN; returns
    /// once every node is Ready
    Up(UpArgs),
    /// Stop the cluster's processes and remove its pods, namespaces, links, mounts, cgroups and data dir
    Down(Which),
    /// List what the cluster has: nodes, processes, addresses
    Status(Which),
    /// Failure drills on one node: stop or start its agent, cut or restore its LAN link
    #[command(subcommand)]
    Node(NodeCommand),
}

#[derive(clap::Args)]
pub struct Which {
    /// Name of the cluster (1-10 of a-z, 0-9, '-')
    #[arg(long, default_value = "rkube")]
    pub name: String,
    /// Data dir of the cluster (default: /var/lib/rkube-cluster/<name>)
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

impl Which {
    fn dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| Path::new(DEFAULT_DATA_ROOT).join(&self.name))
    }
}

#[derive(clap::Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub which: Which,
    /// Number of nodes
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// The LAN (a private /24 no address of this host is in); the host is .1, node i is .(10+i) (routed:
    /// .(16i+2), its router .(16i+1))
    #[arg(long, default_value = DEFAULT_SUBNET)]
    pub subnet: String,
    /// How the nodes are connected: `bridge` (one L2 segment, the /24) or `routed` (each node on a /28 of its
    /// own, joined by a router namespace: nodes reach each other only through it, as across a routed network)
    #[arg(long, default_value = "bridge", value_parser = ["bridge", "routed"])]
    pub lan: String,
    /// How pods reach pods on other nodes: `host-gw` (a route to each node's podCIDR via its LAN address) or
    /// `vxlan` (a VXLAN tunnel between the nodes' LAN addresses, as when nodes share no L2 segment)
    #[arg(long, default_value = "host-gw", value_parser = ["host-gw", "vxlan"])]
    pub pod_network: String,
    /// How long to wait for every node to be Ready, in seconds
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// One more `rkube server` flag (repeat it)
    #[arg(long = "server-arg", value_name = "FLAG", allow_hyphen_values = true)]
    pub server_args: Vec<String>,
    /// One more `rkube kubelet` flag for every node (repeat it)
    #[arg(long = "kubelet-arg", value_name = "FLAG", allow_hyphen_values = true)]
    pub kubelet_args: Vec<String>,
}

#[derive(clap::Subcommand)]
pub enum NodeCommand {
    /// Stop the node's kubelet (its pods keep running)
    Stop(NodeArgs),
    /// Start the node's kubelet again
    Start(NodeArgs),
    /// Cut the node's LAN link
    Partition(NodeArgs),
    /// Restore the node's LAN link
    Heal(NodeArgs),
}

#[derive(clap::Args)]
pub struct NodeArgs {
    /// The node (its full name, e.g. rkube-n2, or n2)
    pub node: String,
    #[command(flatten)]
    pub which: Which,
}

fn exe() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("find the rkube binary")
}

pub fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Up(a) => up(a),
        Command::Down(w) => {
            for line in rkube_cluster::down(&exe()?, &w.dir(), &w.name)? {
                eprintln!("{line}");
            }
            eprintln!("cluster {} is down", w.name);
            Ok(())
        }
        Command::Status(w) => {
            print!("{}", rkube_cluster::status(&w.dir(), &w.name)?);
            Ok(())
        }
        Command::Node(n) => {
            let (a, action) = match n {
                NodeCommand::Stop(a) => (a, rkube_cluster::NodeAction::Stop),
                NodeCommand::Start(a) => (a, rkube_cluster::NodeAction::Start),
                NodeCommand::Partition(a) => (a, rkube_cluster::NodeAction::Partition),
                NodeCommand::Heal(a) => (a, rkube_cluster::NodeAction::Heal),
            };
            eprintln!("{}", rkube_cluster::node_action(&exe()?, &a.which.dir(), &a.which.name, &a.node, action)?);
            Ok(())
        }
    }
}

fn up(a: UpArgs) -> anyhow::Result<()> {
    let dir = a.which.dir();
    let plan = rkube_cluster::Plan::new(&a.which.name, &a.subnet, a.nodes, Some(&dir))?.with_lan(a.lan.parse()?)?;
    let started = std::time::Instant::now();
    let opts = rkube_cluster::UpOptions {
        plan,
        exe: exe()?,
        ready_timeout: Duration::from_secs(a.timeout),
        server_args: a.server_args,
        // every node agent's own flag (kept in the state file, so `cluster node start` passes it again)
        kubelet_args: [vec!["--pod-network".to_string(), a.pod_network], a.kubelet_args].concat(),
    };
    let s = rkube_cluster::up(&opts, &mut |line| eprintln!("{line}"))?;
    eprintln!(
        "cluster {name} is up: {n} nodes Ready in {secs:.1} s, API {url}\n\n    export KUBECONFIG={kc}\n    kubectl get nodes -o wide\n\nStatus: rkube cluster status --name {name}{dd}\nDrills: rkube cluster node stop|start|partition|heal {first} --name {name}{dd}\nRemove: rkube cluster down --name {name}{dd}",
        name = s.name,
        n = s.nodes.len(),
        secs = started.elapsed().as_secs_f64(),
        url = s.api_url,
        kc = s.kubeconfig.display(),
        first = s.nodes.first().map(|n| n.name.as_str()).unwrap_or("NODE"),
        dd = a.which.data_dir.as_ref().map(|d| format!(" --data-dir {}", d.display())).unwrap_or_default(),
    );
    Ok(())
}
