//! `rkube server`: the control plane alone (apiserver + scheduler + controllers, see [`crate::control_plane`])
//! on the embedded store under `--data-dir` or on etcd. Writes an admin kubeconfig to `<data-dir>/kubeconfig`
//! that kubectl and `rkube kubelet` use as is.
//!
//! It serves HTTPS only (`--tls` is the default, still accepted): a request needs a client certificate signed
//! by the cluster CA (`<data-dir>/pki`) or a service account token, else it is 401 (`system:anonymous` may read
//! only health and version). It reaches kubelets over HTTPS with a client certificate of its own from that CA;
//! `rkube kubelet` learns the CA from the kubeconfig and admits nothing else to its API. Plain HTTP exists only
//! with `--insecure-http-listen` on a loopback address, where every caller is `system:masters`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;

use crate::control_plane::{self, DEFAULT_CLUSTER_DNS};

#[derive(clap::Args)]
pub struct Args {
    /// Directory for the embedded store and the admin kubeconfig
    #[arg(long, default_value = "/var/lib/rkube/server")]
    pub data_dir: PathBuf,
    /// Address to serve the Kubernetes API on
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
    /// Address other machines reach the API at (the kubeconfig's server and the `kubernetes` Service's
    /// endpoint); needed when --listen is 0.0.0.0
    #[arg(long)]
    pub advertise_address: Option<IpAddr>,
    /// etcd endpoints (http://host:port); when given, objects live in etcd instead of the embedded store
    #[arg(long = "etcd", value_name = "URL")]
    pub etcd: Vec<String>,
    /// Key prefix in etcd
    #[arg(long, default_value = "/rkube")]
    pub etcd_prefix: String,
    /// Serve HTTPS with a cluster CA and client certificates kept in <data-dir>/pki (the kubeconfig carries the
    /// admin certificate). The default and the only mode; accepted so scripts that pass it keep working
    #[arg(long)]
    pub tls: bool,
    /// Also serve plain HTTP on this loopback address with NO authentication or authorization: every caller,
    /// any local account included, is system:masters (upstream's removed insecure port). Never on by default;
    /// for tests and debugging only
    #[arg(long, value_name = "ADDR")]
    pub insecure_http_listen: Option<SocketAddr>,
    /// ClusterIP of the kube-dns Service (the kubelets answer DNS there)
    #[arg(long, default_value_t = DEFAULT_CLUSTER_DNS)]
    pub cluster_dns: Ipv4Addr,
    /// Open connections the API accepts from one client address (an IPv6 client's whole /64); more are closed
    /// at once, other addresses are still served
    #[arg(long, default_value_t = rkube_apiserver::connections::DEFAULT_MAX_CONNECTIONS_PER_CLIENT)]
    pub max_connections_per_client: usize,
    /// Addresses for LoadBalancer Services (the built-in load balancer); without it, the nodes' InternalIPs
    #[arg(long = "lb-pool", value_name = "CIDR")]
    pub lb_pool: Option<rkube_controllers::service_lb::Pool>,
    /// Run the scheduler and controllers only while holding their Lease in kube-system (kube-scheduler,
    /// kube-controller-manager), so several servers on one etcd act as one; false: always act
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub leader_elect: bool,
    /// How long a candidate waits after it last saw the Lease renewed before taking it over
    #[arg(long, default_value = "15s", value_parser = leader_duration)]
    pub leader_elect_lease_duration: std::time::Duration,
    /// How long the leader keeps acting without renewing the Lease
    #[arg(long, default_value = "10s", value_parser = leader_duration)]
    pub leader_elect_renew_deadline: std::time::Duration,
    /// How often candidates try to acquire and the leader renews
    #[arg(long, default_value = "2s", value_parser = leader_duration)]
    pub leader_elect_retry_period: std::time::Duration,
    /// How long a node may go without renewing its Lease (kube-node-lease) before it is Ready=Unknown and
    /// tainted node.kubernetes.io/unreachable (kube-controller-manager's flag; 50s as upstream since 1.32). The
    /// kubelet renews every 10 s: keep it well above that
    #[arg(long, default_value = "50s", value_parser = node_monitor_grace)]
    pub node_monitor_grace_period: std::time::Duration,
    /// How often the node lifecycle controller checks every node (and evicts pods whose toleration ran out)
    #[arg(long, default_value = "5s", value_parser = leader_duration)]
    pub node_monitor_period: std::time::Duration,
    /// The range node IPAM gives each Node's spec.podCIDR from (kube-controller-manager's flag)
    #[arg(long, default_value = "10.244.0.0/16")]
    pub cluster_cidr: ipnet::Ipv4Net,
    /// Prefix length of each Node's podCIDR within --cluster-cidr (kube-controller-manager's flag)
    #[arg(long, default_value_t = 24)]
    pub node_cidr_mask_size: u8,
    /// The longest lifetime of a certificate the CSR signer issues, a node's client certificate included
    /// (kube-controller-manager's flag; one year as upstream). Kubelets renew theirs at 70-90 % of it
    #[arg(long, default_value = "8760h", value_parser = control_plane::parse_signing_duration)]
    pub cluster_signing_duration: std::time::Duration,
    /// OpenTelemetry trace export, as kube-apiserver's --tracing-config-file: a TracingConfiguration file
    /// (apiserver.config.k8s.io/v1; endpoint host:port of an OTLP/HTTP collector, samplingRatePerMillion).
    /// Without it: $OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or $OTEL_EXPORTER_OTLP_ENDPOINT, else no export
    #[arg(long, value_name = "FILE")]
    pub tracing_config_file: Option<PathBuf>,
    #[command(flatten)]
    pub tolerations: DefaultTolerations,
}

/// kube-apiserver's DefaultTolerationSeconds admission flags, on `rkube server` and `rkube up`.
#[derive(clap::Args, Clone, Copy, Debug)]
pub struct DefaultTolerations {
    /// tolerationSeconds of the node.kubernetes.io/not-ready:NoExecute toleration added to every pod that does
    /// not tolerate that taint already: how long its pods stay on a NotReady node
    #[arg(long, default_value_t = rkube_apiserver::admission::default_toleration_seconds::DEFAULT_TOLERATION_SECONDS, value_parser = clap::value_parser!(i64).range(0..))]
    pub default_not_ready_toleration_seconds: i64,
    /// tolerationSeconds of the node.kubernetes.io/unreachable:NoExecute toleration added to every pod that does
    /// not tolerate that taint already: how long its pods stay on an unreachable node
    #[arg(long, default_value_t = rkube_apiserver::admission::default_toleration_seconds::DEFAULT_TOLERATION_SECONDS, value_parser = clap::value_parser!(i64).range(0..))]
    pub default_unreachable_toleration_seconds: i64,
}

/// A grace period at or below the kubelet's 10 s Lease renewal would mark live nodes Unknown between renewals.
fn node_monitor_grace(s: &str) -> Result<std::time::Duration, String> {
    let d = leader_duration(s)?;
    if d <= std::time::Duration::from_secs(10) {
        return Err(format!("{s}: must be more than the kubelet's 10s Lease renewal interval, or live nodes go Unknown between renewals (upstream's default is 50s)"));
    }
    Ok(d)
}

fn leader_duration(s: &str) -> Result<std::time::Duration, String> {
    rkube_controllers::leader::parse_duration(s).map_err(|e| e.to_string())
}

pub fn run(args: Args) -> anyhow::Result<()> {
    crate::trace::start_export(args.tracing_config_file.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("start the tokio runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    // --tls is the default; nothing to do with it
    let _ = args.tls;
    let le = control_plane::LeaderElection {
        disabled: !args.leader_elect,
        timing: rkube_controllers::leader::Timing {
            lease_duration: args.leader_elect_lease_duration,
            renew_deadline: args.leader_elect_renew_deadline,
            retry_period: args.leader_elect_retry_period,
        },
    };
    let cp = control_plane::start_elected(&control_plane::Options {
        data_dir: args.data_dir.clone(),
        listen: args.listen,
        etcd: args.etcd.clone(),
        etcd_prefix: args.etcd_prefix.clone(),
        insecure_http_listen: args.insecure_http_listen,
        advertise_address: args.advertise_address,
        cluster_dns: Some(args.cluster_dns),
        // HTTPS to kubelets with a client certificate from the cluster CA (see control_plane)
        kubelet_client: None,
        max_connections_per_client: args.max_connections_per_client,
        lb_pool: args.lb_pool,
        node_monitor_grace_period: args.node_monitor_grace_period,
        node_monitor_period: args.node_monitor_period,
        pod_network: control_plane::PodNetwork { cluster_cidr: args.cluster_cidr, node_mask: args.node_cidr_mask_size },
        cluster_signing_duration: args.cluster_signing_duration,
        default_not_ready_toleration_seconds: args.tolerations.default_not_ready_toleration_seconds,
        default_unreachable_toleration_seconds: args.tolerations.default_unreachable_toleration_seconds,
    }, &le)
    .await?;
    eprintln!(
        "rkube server is up: API {url}\n\n    export KUBECONFIG={kc}\n    kubectl get nodes\n\nAdd nodes with `rkube kubelet --kubeconfig {kc} --node-ip <their address>`.",
        url = cp.url,
        kc = cp.kubeconfig.display()
    );
    if let Some(plain) = &cp.insecure_url {
        eprintln!("WARNING: {plain} serves plain HTTP with no authentication: every caller is system:masters (--insecure-http-listen)");
    }
    crate::node::wait_for_signal().await;
    tracing::info!("shutting down");
    cp.stop().await;
    Ok(())
}
