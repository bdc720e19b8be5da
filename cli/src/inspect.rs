//! `rkube inspect pod NAME [-n NS] [-o json|yaml]`: a pod's kernel objects, from its node's kubelet through the
//! apiserver's node proxy. Thin: finding, fetching and formatting are `rkube_kubelet::inspect::client`'s.

use std::io::IsTerminal;
use std::path::PathBuf;

use rkube_kubelet::inspect::client::{self, Format};

#[derive(clap::Subcommand)]
pub enum Command {
    /// A pod: its sandbox, namespaces, cgroups, veth and bridge, routes, mounts, rootfs layers and service rules
    Pod(PodArgs),
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
fn kubeconfig_path(flag: Option<PathBuf>) -> anyhow::Result<PathBuf> {
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

pub fn run(cmd: Command) -> anyhow::Result<()> {
    let Command::Pod(args) = cmd;
    let format = match args.output.as_deref() {
        Some("json") => Format::Json,
        Some("yaml") => Format::Yaml,
        _ => Format::Tree,
    };
    let kubeconfig = kubeconfig_path(args.kubeconfig)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let doc = rt.block_on(async {
        let client = crate::control_plane::client_from_kubeconfig(&kubeconfig).await?;
        client::fetch_pod(&client, &args.namespace, &args.name).await.map_err(anyhow::Error::from)
    })?;
    // the whole document is formatted before anything is printed: nothing partial reaches stdout
    let out = client::format(&doc, format, format == Format::Tree && std::io::stdout().is_terminal());
    print!("{out}");
    Ok(())
}
