//! `rkube up`: the whole node in one foreground process: the control plane ([`crate::control_plane`]:
//! apiserver on the embedded store, scheduler, controllers) and the kubelet with cluster DNS and the service
//! proxy, with an admin kubeconfig written to `<data-dir>/kubeconfig` (0600). The API is HTTPS only, with one
//! cluster CA in `<data-dir>/pki` for it and the kubelet API; a local account without that kubeconfig gets
//! 401 (plain HTTP only with `--insecure-http-listen`). Works offline once an image is in the
//! node's store (`rkube image import`). Stop it with Ctrl-C or `rkube down`.
//!
//! The kubelet talks to the API as the node, not as admin: with its own `system:node:<name>` certificate from
//! the cluster CA (`<data-dir>/kubelet.conf`, 0600, as `rkube kubeconfig --node` issues one), so the Node
//! authorizer and NodeRestriction hold it to its own Node, Lease and pods, as on every other path. It renews
//! that certificate, and its serving one, through CSRs before they expire, as a joined node does (the serving
//! renewals wait for an administrator's `kubectl certificate approve`, as upstream's serverTLSBootstrap).

use std::net::SocketAddr;
use std::path::PathBuf;

use rkube_controllers::certificates::SigningCa;
use rkube_kubelet::node::certs::serving::{self, ServingRotation};

use crate::control_plane;
use crate::node::{self, NodeArgs};

#[derive(clap::Args)]
pub struct Args {
    /// Directory for the store, kubeconfig, pods, logs and images
    #[arg(long, default_value = "/var/lib/rkube")]
    pub data_dir: PathBuf,
    /// Address to serve the Kubernetes API on (HTTPS; clients need the kubeconfig's certificate)
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
    /// Also serve plain HTTP on this loopback address with NO authentication or authorization: every caller,
    /// any local account included, is system:masters and can take the machine with a hostPath pod
    /// (upstream's removed insecure port). Never on by default; for tests and debugging only
    #[arg(long, value_name = "ADDR")]
    pub insecure_http_listen: Option<SocketAddr>,
    /// Open connections the API accepts from one client address (an IPv6 client's whole /64); more are closed
    /// at once, other addresses are still served
    #[arg(long, default_value_t = rkube_apiserver::connections::DEFAULT_MAX_CONNECTIONS_PER_CLIENT)]
    pub max_connections_per_client: usize,
    /// Addresses for LoadBalancer Services (the built-in load balancer); without it, the nodes' InternalIPs
    #[arg(long = "lb-pool", value_name = "CIDR")]
    pub lb_pool: Option<rkube_controllers::service_lb::Pool>,
    /// Port of the built-in ingress controller's HTTP listener on the node address (IngressClass `rkube`)
    #[arg(long, default_value_t = 80)]
    pub ingress_http_port: u16,
    /// Port of the ingress controller's HTTPS listener (certificates from the Ingresses' TLS Secrets, by SNI)
    #[arg(long, default_value_t = 443)]
    pub ingress_https_port: u16,
    /// Run no ingress controller (Ingresses are still served by the API, for another controller)
    #[arg(long)]
    pub no_ingress: bool,
    /// OpenTelemetry trace export, as kube-apiserver's --tracing-config-file, for every component here: a TracingConfiguration file
    /// (apiserver.config.k8s.io/v1; endpoint host:port of an OTLP/HTTP collector, samplingRatePerMillion).
    /// Without it: $OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or $OTEL_EXPORTER_OTLP_ENDPOINT, else no export
    #[arg(long, value_name = "FILE")]
    pub tracing_config_file: Option<PathBuf>,
    /// Lifetime of the certificates the cluster's signer issues (kube-controller-manager's flag; one year as
    /// upstream): the node's own client and serving certificates here too, which it renews at 70-90 % of it
    #[arg(long, default_value = "8760h", value_parser = control_plane::parse_signing_duration)]
    pub cluster_signing_duration: std::time::Duration,
    /// Renew the kubelet API's serving certificate through kubernetes.io/kubelet-serving CSRs, which an
    /// administrator approves (`kubectl certificate approve`), as upstream's serverTLSBootstrap; on by default
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value_t = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub rotate_server_certificates: bool,
    #[command(flatten)]
    pub tolerations: crate::server::DefaultTolerations,
    #[command(flatten)]
    pub node: NodeArgs,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    use anyhow::Context;
    crate::trace::start_export(args.tracing_config_file.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("start the tokio runtime")?;
    runtime.block_on(up(args))
}

async fn up(args: Args) -> anyhow::Result<()> {
    let data = &args.data_dir;
    let _claim = rkube_kubelet::node::data_dir::claim(data)?;
    // bad flags fail here, before anything is started
    let mut cfg = node::node_config(&args.node, data, Some("10.244.0.0/24"))?;
    let pod_cidr: ipnet::Ipv4Net = {
        let c = args.node.pod_cidr.as_deref().unwrap_or("10.244.0.0/24");
        c.parse().map_err(|e| anyhow::anyhow!("--pod-cidr {c}: not an IPv4 CIDR ({e})"))?
    };
    control_plane::check_insecure_listen(args.insecure_http_listen)?;
    // One cluster CA in <data-dir>/pki for both APIs: the apiserver serves HTTPS with it (its certificate names
    // the listen address and the node's), and the kubelet API admits only the apiserver's client certificate
    // from it (issue 6).
    let hosts = [args.listen.ip().to_string(), cfg.node_ip.clone()];
    let pki = rkube_apiserver::tls::ensure_pki(&data.join("pki"), &hosts)?;
    // The node's certificates come from the cluster's signer, for its --cluster-signing-duration, as its CSRs'
    // would: the kubelet renews both through CSRs before they expire, as every node does (node::certs).
    let signing = control_plane::signing_ca(&pki.dir, args.cluster_signing_duration)?;
    let (serving_cert, serving_key) = serving_certificate(&signing, &cfg.node_name, &cfg.node_ip)?;
    let api_tls = rkube_kubelet::server::tls::ApiTls::new(&serving_cert, &serving_key, &pki.ca_cert)?;
    cfg.api_tls = Some(api_tls.clone());
    let client = rkube_apiserver::tls::issue_kubelet_client(&pki)?;
    let kubelet_client = rkube_apiserver::node_proxy::KubeletClientTls { ca_pem: Some(pki.ca_cert.clone()), cert_pem: client.cert, key_pem: client.key };
    rkube_kubelet::node::host::record_ip_forward()?;
    let cp = control_plane::start(&control_plane::Options {
        data_dir: data.clone(),
        listen: args.listen,
        etcd: Vec::new(),
        etcd_prefix: String::new(),
        insecure_http_listen: args.insecure_http_listen,
        advertise_address: None,
        cluster_dns: Some(args.node.cluster_dns),
        kubelet_client: Some(kubelet_client),
        max_connections_per_client: args.max_connections_per_client,
        lb_pool: args.lb_pool,
        node_monitor_grace_period: rkube_controllers::node_lifecycle::DEFAULT_NODE_MONITOR_GRACE_PERIOD,
        node_monitor_period: rkube_controllers::node_lifecycle::DEFAULT_NODE_MONITOR_PERIOD,
        // the one Node's podCIDR is the subnet its kubelet's bridge uses (--pod-cidr), not another /24
        pod_network: control_plane::PodNetwork::single(pod_cidr),
        cluster_signing_duration: args.cluster_signing_duration,
        default_not_ready_toleration_seconds: args.tolerations.default_not_ready_toleration_seconds,
        default_unreachable_toleration_seconds: args.tolerations.default_unreachable_toleration_seconds,
    })
    .await?;
    eprintln!(
        "rkube is up: node {name} ({ip}), API {url}, cluster DNS {dns}\n\n    export KUBECONFIG={kc}\n    kubectl get nodes\n\nStop with Ctrl-C or `rkube down --data-dir {dd}`.",
        name = cfg.node_name,
        ip = cfg.node_ip,
        url = cp.url,
        dns = args.node.cluster_dns,
        kc = cp.kubeconfig.display(),
        dd = data.display()
    );
    if let Some(plain) = &cp.insecure_url {
        eprintln!("WARNING: {plain} serves plain HTTP with no authentication: every caller is system:masters (--insecure-http-listen)");
    }
    let ingress = match (args.no_ingress, cfg.node_ip.parse::<std::net::IpAddr>()) {
        (true, _) => None,
        (false, Err(e)) => anyhow::bail!("ingress: node address {:?}: {e}", cfg.node_ip),
        (false, Ok(address)) => {
            let mut ic = rkube_ingress::IngressConfig::new(&cfg.node_name, address);
            (ic.http_port, ic.https_port) = (args.ingress_http_port, args.ingress_https_port);
            // the node is useful without its ingress (a port taken by another server): say so and carry on
            match rkube_ingress::start(ic, cp.client.clone()).await {
                Ok(h) => Some(h),
                Err(e) => {
                    tracing::error!(error = %e, "ingress controller not started");
                    None
                }
            }
        }
    };
    let kubelet_conf = data.join("kubelet.conf");
    let node_client = node_credential(&signing, &pki.ca_cert, &cfg.node_name, &cp.url, &kubelet_conf).await;
    let result = match node_client {
        Ok((client, rotation)) => {
            if let Some(r) = rotation {
                tokio::spawn(r.run());
            }
            let serving = args
                .rotate_server_certificates
                .then(|| ServingRotation::new(client.clone(), &cfg.node_name, &data.join("pki"), api_tls.serving.clone(), &pki.ca_cert))
                .transpose();
            match serving {
                Ok(serving) => {
                    if let Some(s) = serving {
                        tokio::spawn(s.run());
                    }
                    node::run_kubelet(cfg, client).await
                }
                Err(e) => Err(e.into()),
            }
        }
        Err(e) => Err(e),
    };
    tracing::info!("shutting down (containers keep running; `rkube down` removes them)");
    if let Some(h) = ingress {
        h.stop().await;
    }
    cp.stop().await;
    result
}

/// The kubelet's client: a `system:node:<name>` certificate from the cluster's signer at every start, written
/// to `path` (0600) as a kubeconfig naming the API at `url`, and its rotation: the kubelet renews it before it
/// expires as a joined node does, one code path for a node (`rkube_kubelet::node::certs`).
async fn node_credential(
    signing: &SigningCa,
    ca_pem: &str,
    node: &str,
    url: &str,
    path: &std::path::Path,
) -> anyhow::Result<(kube::Client, Option<rkube_kubelet::node::certs::Rotation>)> {
    use anyhow::Context;
    let (key, request) = rkube_kubelet::bootstrap::node_request(node).with_context(|| format!("make the key of node {node}"))?;
    let usages: Vec<String> = rkube_apimachinery::certificates::KUBELET_CLIENT_USAGES.iter().map(|u| u.to_string()).collect();
    let cert = rkube_controllers::certificates::sign(signing, "rkube-up", &request, &usages, signing.max_duration)
        .with_context(|| format!("issue the certificate of node {node}"))?;
    let user = format!("system:node:{node}");
    let kc = rkube_apiserver::kubeconfig::render_tls_user(url, "rkube", &user, ca_pem, &cert, &key);
    rkube_apiserver::kubeconfig::write_content(path, &kc).with_context(|| format!("write {}", path.display()))?;
    Ok(rkube_kubelet::node::certs::client(path, node).await?)
}

/// The kubelet API's first certificate: what an approved kubernetes.io/kubelet-serving request of the node
/// gets (`CN=system:node:<node>, O=system:nodes`, its InternalIP and hostname), from the cluster's signer.
fn serving_certificate(signing: &SigningCa, node: &str, node_ip: &str) -> anyhow::Result<(String, String)> {
    use anyhow::Context;
    use k8s_openapi::api::core::v1::NodeAddress;
    // the addresses the kubelet reports for its Node (node::status)
    let addresses = [NodeAddress { type_: "InternalIP".into(), address: node_ip.into() }, NodeAddress { type_: "Hostname".into(), address: node.into() }];
    let template = serving::serving_template(node, &addresses).with_context(|| format!("node address {node_ip:?}: not an IP address"))?;
    let (key, request) = serving::serving_request(&template)?;
    let usages: Vec<String> = serving::USAGES.iter().map(|u| u.to_string()).collect();
    let cert = rkube_controllers::certificates::sign(signing, "rkube-up", &request, &usages, signing.max_duration)
        .with_context(|| format!("issue the serving certificate of node {node}"))?;
    Ok((cert, key))
}
