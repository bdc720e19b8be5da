//! `rkube kubeconfig`: credentials for another user of a cluster this machine serves with `rkube server` or
//! `rkube up`.
//! The kubeconfig carries a client certificate from the cluster CA (`<data-dir>/pki`) naming the user (CN) and
//! optionally one group (O); what the user may do is up to RBAC (`kubectl create rolebinding ... --user NAME`).

use std::path::PathBuf;

use anyhow::{bail, Context};

#[derive(clap::Args)]
pub struct Args {
    /// The data dir of `rkube server` or `rkube up` (its pki/ holds the cluster CA, its kubeconfig the server
    /// address)
    #[arg(long, default_value = "/var/lib/rkube/server")]
    pub data_dir: PathBuf,
    /// User name (the certificate's common name)
    #[arg(long, required_unless_present = "node")]
    pub user: Option<String>,
    /// Group the user belongs to (the certificate's organization)
    #[arg(long, conflicts_with = "node")]
    pub group: Option<String>,
    /// A kubelet's credential for node NAME instead: user system:node:NAME in group system:nodes, held by the
    /// Node authorizer and NodeRestriction to that node's own objects (for `rkube kubelet --kubeconfig`)
    #[arg(long, value_name = "NAME", conflicts_with = "user")]
    pub node: Option<String>,
    /// Write the kubeconfig here (mode 0600) instead of to stdout
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let pki_dir = args.data_dir.join("pki");
    if !pki_dir.join("ca.key").exists() {
        bail!(
            "no cluster CA in {}: user credentials need a server started once with `rkube server --data-dir {}` (or `rkube up`), which creates it",
            pki_dir.display(),
            args.data_dir.display()
        );
    }
    let user = args.user.clone().unwrap_or_default();
    if args.node.is_none() && (user.is_empty() || user.starts_with("system:")) {
        bail!("--user {user:?}: give a user name that is not empty and not in the reserved system: namespace (a kubelet's: --node NAME)");
    }
    if let Some(node) = args.node.as_deref().filter(|n| n.is_empty() || n.contains(':')) {
        bail!("--node {node:?}: give the node's name (as `kubectl get nodes` shows it)");
    }
    let pki = rkube_apiserver::tls::ensure_pki(&pki_dir, &[]).context("load the cluster CA")?;
    let admin = args.data_dir.join("kubeconfig");
    let kc = kube::config::Kubeconfig::read_from(&admin).with_context(|| format!("read the server address from {}", admin.display()))?;
    let server = kc
        .clusters
        .first()
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.server.clone())
        .with_context(|| format!("{} names no server", admin.display()))?;
    let (user, pair) = match &args.node {
        Some(node) => (format!("system:node:{node}"), rkube_apiserver::tls::issue_node(&pki, node)?),
        None => {
            let groups: Vec<String> = args.group.into_iter().collect();
            let pair = rkube_apiserver::tls::issue_user(&pki, &user, &groups)?;
            (user, pair)
        }
    };
    let out = rkube_apiserver::kubeconfig::render_tls_user(&server, "rkube", &user, &pki.ca_cert, &pair.cert, &pair.key);
    match args.output {
        Some(path) => rkube_apiserver::kubeconfig::write_content(&path, &out).with_context(|| format!("write {}", path.display()))?,
        None => print!("{out}"),
    }
    Ok(())
}
