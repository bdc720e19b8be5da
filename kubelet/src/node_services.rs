//! The node's part in Services: the service proxy's nftables table and the cluster DNS server on its node-local
//! address, both fed by one watch of Services and EndpointSlices ([`crate::service_watch`]).
//!
//! What it sets up is recorded in `<kubelet root>/node-services.json` before it is made, so `rkube down` removes
//! exactly that (the table, the address and its bridge) after the kubelet is gone, even if the kubelet died
//! half way. Pods keep their Services while the kubelet restarts: the table and the address stay until `down`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::KubeletConfig;
use crate::dns::{local_address, DnsServer};
use crate::service_proxy::ProxyConfig;

const RECORD: &str = "node-services.json";

/// What the node made for Services.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Record {
    /// The service proxy's nftables table (`ip <table>`), if a proxy runs.
    pub proxy_table: Option<String>,
    /// (link, address) of the node-local cluster DNS address.
    pub dns: Option<(String, Ipv4Addr)>,
}

/// Why the node's Service plumbing could not be set up or torn down.
#[derive(Debug, thiserror::Error)]
pub enum NodeServicesError {
    /// `--cluster-dns` is not an IPv4 address.
    #[error("cluster dns address {0:?} is not an IPv4 address; pass e.g. --cluster-dns 10.96.0.10")]
    DnsAddress(String),
    /// The cluster DNS address could not be put on (or taken off) its bridge.
    #[error(transparent)]
    LocalAddress(#[from] local_address::LocalAddressError),
    /// The DNS server could not bind the cluster DNS address (UDP or TCP port 53).
    #[error("cluster dns: listen on {addr}: {source} (is another DNS server bound there? `ss -lunp 'sport = 53'`)")]
    Bind {
        /// The address the DNS server was to listen on.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The record of what is being set up, which [`remove`] reads back, could not be written.
    #[error("record node services in {path}: {source}")]
    Record {
        /// The record's file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// LoadBalancer ingress addresses announced on this node could not be removed.
    #[error(transparent)]
    LoadBalancerAddress(#[from] crate::service_proxy::announce::AnnounceError),
    /// The service proxy's nftables table could not be removed.
    #[error("remove service proxy table {table}: {source}")]
    Proxy {
        /// The nftables table.
        table: String,
        /// The cause.
        #[source]
        source: crate::service_proxy::ProxyError,
    },
}

fn record_path(root_dir: &Path) -> PathBuf {
    root_dir.join(RECORD)
}

fn write_record(root_dir: &Path, rec: &Record) -> Result<(), NodeServicesError> {
    let path = record_path(root_dir);
    let tmp = path.with_extension("tmp");
    let write = || {
        std::fs::create_dir_all(root_dir)?;
        std::fs::write(&tmp, serde_json::to_vec_pretty(rec).unwrap_or_default())?;
        std::fs::rename(&tmp, &path)
    };
    write().map_err(|source| NodeServicesError::Record { path: path.clone(), source })
}

/// What `cfg` asks for: the record `start` writes.
pub fn planned(cfg: &KubeletConfig) -> Result<Record, NodeServicesError> {
    let dns = match (&cfg.cluster_dns, cfg.serve_cluster_dns) {
        (Some(ip), true) => {
            let ip: Ipv4Addr = ip.parse().map_err(|_| NodeServicesError::DnsAddress(ip.clone()))?;
            Some((cfg.dns_link.clone(), ip))
        }
        _ => None,
    };
    Ok(Record { proxy_table: cfg.proxy_table.clone(), dns })
}

/// Puts the DNS address in place, binds the DNS server (UDP and TCP) and starts the service watch that keeps
/// the proxy table and the DNS zone current. Returns the task running them all.
pub async fn start(cfg: &KubeletConfig, client: kube::Client) -> Result<tokio::task::JoinHandle<()>, NodeServicesError> {
    let rec = planned(cfg)?;
    let mut consumers: Vec<crate::service_watch::Consumer> = Vec::new();
    let mut servers = Vec::new();
    if rec == Record::default() {
        return Ok(tokio::spawn(async {}));
    }
    // recorded first: whatever happens next, `rkube down` knows what to remove
    write_record(&cfg.root_dir, &rec)?;
    if let Some(table) = &rec.proxy_table {
        consumers.push(crate::service_proxy::sync::consumer(ProxyConfig {
            table: table.clone(),
            service_cidr: cfg.service_cidr,
            node_name: cfg.node_name.clone(),
            pod_bridge: cfg.default_network.as_ref().map(|n| n.bridge.clone()),
        }));
    }
    if let Some((link, ip)) = &rec.dns {
        local_address::ensure(link, *ip)?;
        let addr = SocketAddr::from((*ip, 53));
        let udp = tokio::net::UdpSocket::bind(addr).await.map_err(|source| NodeServicesError::Bind { addr, source })?;
        let tcp = tokio::net::TcpListener::bind(addr).await.map_err(|source| NodeServicesError::Bind { addr, source })?;
        let server = DnsServer::new(&cfg.cluster_domain, cfg.dns_upstream);
        consumers.push(server.consumer());
        let s = server.clone();
        servers.push(tokio::spawn(async move {
            if let Err(e) = s.serve(udp).await {
                tracing::error!(error = %e, "cluster dns (udp) stopped");
            }
        }));
        servers.push(tokio::spawn(async move {
            if let Err(e) = server.serve_tcp(tcp).await {
                tracing::error!(error = %e, "cluster dns (tcp) stopped");
            }
        }));
        tracing::info!(address = %ip, link = %link, "cluster dns address in place");
    }
    Ok(tokio::spawn(async move {
        // the watch retries with backoff on its own; it ends only when its streams do
        if let Err(e) = crate::service_watch::run(client, consumers).await {
            tracing::error!(error = %e, "service watch stopped; Services and cluster DNS no longer follow the API");
        }
        for s in servers {
            s.abort();
        }
    }))
}

/// Removes what a kubelet with root `root_dir` recorded: the load balancer addresses it announced (by the mark
/// of its proxy table), the proxy table, the DNS address and its bridge.
/// Nothing recorded is not an error.
pub fn remove(root_dir: &Path) -> Result<(), NodeServicesError> {
    let path = record_path(root_dir);
    let Some(rec) = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice::<Record>(&b).ok()) else { return Ok(()) };
    if let Some(table) = &rec.proxy_table {
        crate::service_proxy::announce::withdraw_marked(table)?;
        let cfg = ProxyConfig { table: table.clone(), ..ProxyConfig::default() };
        crate::service_proxy::nft::remove(&cfg).map_err(|source| NodeServicesError::Proxy { table: table.clone(), source })?;
    }
    if let Some((link, ip)) = &rec.dns {
        local_address::remove(link, *ip)?;
    }
    let _ = std::fs::remove_file(&path);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_follows_the_config() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = KubeletConfig::new("n", "10.244.9.1", dir.path());
        assert_eq!(planned(&cfg).expect("plan"), Record::default());
        cfg.cluster_dns = Some("10.96.0.10".into());
        assert_eq!(planned(&cfg).expect("plan").dns, None, "not served unless asked");
        cfg.serve_cluster_dns = true;
        cfg.proxy_table = Some("rkube-proxy".into());
        let rec = planned(&cfg).expect("plan");
        assert_eq!(rec.dns, Some(("rkube-dns0".into(), Ipv4Addr::new(10, 96, 0, 10))));
        assert_eq!(rec.proxy_table.as_deref(), Some("rkube-proxy"));
        cfg.cluster_dns = Some("dns.example".into());
        assert!(matches!(planned(&cfg), Err(NodeServicesError::DnsAddress(_))));
    }

    #[test]
    fn remove_without_a_record_is_a_no_op() {
        let dir = tempfile::tempdir().expect("tempdir");
        remove(dir.path()).expect("nothing to remove");
    }
}
