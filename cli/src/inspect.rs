//! `rkube inspect pod NAME [-n NS]`, `rkube inspect node [NAME]`, `rkube inspect service NAME [-n NS] [--node N]`,
//! each with `-o json|yaml`: kernel objects from a node's kubelet through the apiserver's node proxy. Thin:
//! finding, fetching and formatting are `rkube_kubelet::inspect::client`'s.

use std::io::IsTerminal;
use std::path::PathBuf;

use rkube_kubelet::inspect::client::{self, Format};
use rkube_kubelet::inspect::render;

#[derive(clap::Subcommand)]
pub enum Command {
    /// A pod: its sandbox, namespaces, cgroups, veth and bridge, routes, mounts, rootfs layers and service rules
    Pod(PodArgs),
    /// A node: its pod bridge, routes to other nodes' pods, service proxy table, cluster DNS, QoS cgroups with
    /// memory and CPU use, and its pods with their sandbox processes
    Node(NodeArgs),
    /// A Service on one node: its addresses and NodePorts, the nftables chains per port and the endpoints each picks
    #[command(alias = "svc")]
    Service(ServiceArgs),
}

#[derive(clap::Args)]
pub struct NodeArgs {
    /// The node's name (default: the only node of the cluster)
    pub name: Option<String>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(clap::Args)]
pub struct ServiceArgs {
    /// The Service's name
    pub name: String,
    /// The Service's namespace
    #[arg(short, long, default_value = "default")]
    pub namespace: String,
    /// The node whose service proxy to read (default: the first Ready node by name)
    #[arg(long)]
    pub node: Option<String>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(clap::Args)]
pub struct Common {
    /// Output format: a tree (default), or the inspect.rkube.io/v1alpha1 document as json or yaml
    #[arg(short, long, value_parser = ["json", "yaml"])]
    pub output: Option<String>,
    /// Kubeconfig of the cluster (default: $KUBECONFIG, then ~/.kube/config)
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct PodArgs {
    /// The pod's name
    pub name: String,
    /// The pod's namespace
    #[arg(short, long, default_value = "default")]
    pub namespace: String,
    /// Output format: a tree (default), or the inspect.rkube.io/v1alpha1 PodInspection document as json or yaml
    #[arg(short, long, value_parser = ["json", "yaml"])]
    pub output: Option<String>,
    /// Kubeconfig of the cluster (default: $KUBECONFIG, then ~/.kube/config)
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

/// The kubeconfig to use: the flag, $KUBECONFIG, ~/.kube/config, as kubectl looks.
pub fn kubeconfig_path(flag: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(p) = flag {
        return Ok(p);
    }
    if let Some(p) = std::env::var_os("KUBECONFIG").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    let p = home.join(".kube/config");
    if p.exists() {
        return Ok(p);
    }
    anyhow::bail!("no kubeconfig: pass --kubeconfig or set KUBECONFIG (rkube up writes <data-dir>/kubeconfig)")
}

fn format_of(output: Option<&str>) -> Format {
    match output {
        Some("json") => Format::Json,
        Some("yaml") => Format::Yaml,
        _ => Format::Tree,
    }
}

fn client_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

pub fn run(cmd: Command) -> anyhow::Result<()> {
    // each document is formatted whole before anything is printed: nothing partial reaches stdout
    let color = std::io::stdout().is_terminal();
    let out = match cmd {
        Command::Pod(args) => {
            let format = format_of(args.output.as_deref());
            let kubeconfig = kubeconfig_path(args.kubeconfig)?;
            let doc = client_runtime()?.block_on(async {
                let client = crate::control_plane::client_from_kubeconfig(&kubeconfig).await?;
                client::fetch_pod(&client, &args.namespace, &args.name).await.map_err(anyhow::Error::from)
            })?;
            client::format(&doc, format, format == Format::Tree && color)
        }
        Command::Node(args) => {
            let format = format_of(args.common.output.as_deref());
            let kubeconfig = kubeconfig_path(args.common.kubeconfig)?;
            let doc = client_runtime()?.block_on(async {
                let client = crate::control_plane::client_from_kubeconfig(&kubeconfig).await?;
                client::fetch_node(&client, args.name.as_deref()).await.map_err(anyhow::Error::from)
            })?;
            client::format_with(&doc, format, |d| render::node_tree(d, color))
        }
        Command::Service(args) => {
            let format = format_of(args.common.output.as_deref());
            let kubeconfig = kubeconfig_path(args.common.kubeconfig)?;
            let doc = client_runtime()?.block_on(async {
                let client = crate::control_plane::client_from_kubeconfig(&kubeconfig).await?;
                client::fetch_service(&client, &args.namespace, &args.name, args.node.as_deref()).await.map_err(anyhow::Error::from)
            })?;
            client::format_with(&doc, format, |d| render::service_tree(d, color))
        }
    };
    print!("{out}");
    Ok(())
}
