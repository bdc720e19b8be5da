//! host-gw pod network: a route to every other node's `spec.podCIDR` via that node's InternalIP, kept from a
//! watch on Nodes as nodes come and go (flannel's host-gw backend does the same). The decision is pure
//! ([`desired`] from the Node list, [`diff`] against the routes in place); acting is `ip route` on routes
//! marked with protocol [`RT_PROTO`], so only the routes this module made are ever changed or removed.
//!
//! Needs the nodes on one L2 segment (the gateway must be on-link); a node whose InternalIP is not reachable
//! directly gets no route, and the failure is logged.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::Api;

/// The routing protocol number on our routes (`ip route show proto 82`), so they are told from anyone else's.
pub const RT_PROTO: &str = "82";

/// Routes wanted: other nodes' podCIDRs (IPv4) -> their InternalIP. Nodes without either are left out, and
/// so is a node being deleted.
pub fn desired(nodes: &[Node], me: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for n in nodes {
        if n.metadata.name.as_deref() == Some(me) || n.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let ip = n.status.as_ref().and_then(|s| s.addresses.as_ref()).and_then(|a| a.iter().find(|a| a.type_ == "InternalIP")).map(|a| a.address.clone());
        let Some(ip) = ip.filter(|ip| ip.parse::<std::net::Ipv4Addr>().is_ok()) else { continue };
        let spec = n.spec.as_ref();
        let mut cidrs: Vec<String> = spec.and_then(|s| s.pod_cidrs.clone()).unwrap_or_default();
        cidrs.extend(spec.and_then(|s| s.pod_cidr.clone()));
        for c in cidrs {
            if c.parse::<ipnet::Ipv4Net>().is_ok() {
                out.insert(c, ip.clone());
            }
        }
    }
    out
}

/// What to change so the routes in place (`current`, ours only) become `want`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Add, or replace a route to `dst` that goes elsewhere.
    Set { dst: String, via: String },
    Delete { dst: String },
}

pub fn diff(want: &BTreeMap<String, String>, current: &BTreeMap<String, String>) -> Vec<Change> {
    let mut out: Vec<Change> = current.keys().filter(|d| !want.contains_key(*d)).map(|d| Change::Delete { dst: d.clone() }).collect();
    for (dst, via) in want {
        if current.get(dst) != Some(via) {
            out.push(Change::Set { dst: dst.clone(), via: via.clone() });
        }
    }
    out
}

/// Our routes from `ip -o -4 route show proto 82`: `10.244.2.0/24 via 172.28.0.12 dev eth0 ...`.
pub fn parse_routes(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let via = w.iter().position(|x| *x == "via").and_then(|i| w.get(i + 1))?;
            Some((w.first()?.to_string(), via.to_string()))
        })
        .collect()
}

async fn ip(args: &[&str]) -> Result<String, String> {
    let out = tokio::process::Command::new("ip").args(args).output().await.map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

async fn sync(nodes: &[Node], me: &str) {
    let current = match ip(&["-o", "-4", "route", "show", "proto", RT_PROTO]).await {
        Ok(t) => parse_routes(&t),
        Err(e) => {
            tracing::warn!(error = %e, "read pod network routes");
            return;
        }
    };
    for change in diff(&desired(nodes, me), &current) {
        let r = match &change {
            Change::Set { dst, via } => ip(&["route", "replace", dst, "via", via, "proto", RT_PROTO]).await,
            Change::Delete { dst } => ip(&["route", "del", dst, "proto", RT_PROTO]).await,
        };
        match r {
            Ok(_) => tracing::info!(?change, "pod network route"),
            Err(e) => tracing::warn!(?change, error = %e, "pod network route not changed"),
        }
    }
}

/// Keeps the routes until the watch ends (it retries with backoff, so in practice until the kubelet stops);
/// also re-checks every 30 s, for a route someone else removed.
pub async fn run(client: kube::Client, me: String) {
    let (store, writer) = reflector::store::<Node>();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    let stream = reflector(writer, watcher(Api::<Node>::all(client), watcher::Config::default())).default_backoff().touched_objects();
    tokio::spawn(async move {
        let mut s = std::pin::pin!(stream);
        while s.next().await.is_some() {
            let _ = tx.try_send(());
        }
    });
    if let Err(e) = store.wait_until_ready().await {
        tracing::warn!(error = %e, "pod network routes: node watch ended before the first list");
        return;
    }
    loop {
        let nodes: Vec<Node> = store.state().iter().map(|n| (**n).clone()).collect();
        sync(&nodes, &me).await;
        match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
            Ok(None) => return,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, ip: Option<&str>, cidr: Option<&str>) -> Node {
        let mut v = serde_json::json!({"metadata": {"name": name}, "spec": {}, "status": {"addresses": []}});
        if let Some(ip) = ip {
            v["status"]["addresses"] = serde_json::json!([{"type": "Hostname", "address": name}, {"type": "InternalIP", "address": ip}]);
        }
        if let Some(c) = cidr {
            v["spec"]["podCIDR"] = c.into();
            v["spec"]["podCIDRs"] = serde_json::json!([c]);
        }
        serde_json::from_value(v).expect("node")
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn every_other_node_with_an_address_and_a_cidr_gets_a_route() {
        let nodes = vec![
            node("me", Some("172.28.0.11"), Some("10.244.1.0/24")),
            node("b", Some("172.28.0.12"), Some("10.244.2.0/24")),
            node("c", Some("172.28.0.13"), Some("10.244.3.0/24")),
            node("no-cidr-yet", Some("172.28.0.14"), None),
            node("no-address", None, Some("10.244.5.0/24")),
        ];
        assert_eq!(desired(&nodes, "me"), map(&[("10.244.2.0/24", "172.28.0.12"), ("10.244.3.0/24", "172.28.0.13")]));
        assert!(desired(&nodes[..1], "me").is_empty(), "one node: nothing to route");
        let mut gone = node("b", Some("172.28.0.12"), Some("10.244.2.0/24"));
        gone.metadata.deletion_timestamp = Some(crate::time::to_k8s(chrono::Utc::now()));
        assert!(desired(&[gone], "me").is_empty(), "a node being deleted loses its route");
    }

    #[test]
    fn diff_adds_moves_and_removes_only_what_differs() {
        let want = map(&[("10.244.2.0/24", "172.28.0.12"), ("10.244.3.0/24", "172.28.0.23")]);
        let current = map(&[("10.244.3.0/24", "172.28.0.13"), ("10.244.4.0/24", "172.28.0.14"), ("10.244.2.0/24", "172.28.0.12")]);
        assert_eq!(
            diff(&want, &current),
            vec![Change::Delete { dst: "10.244.4.0/24".into() }, Change::Set { dst: "10.244.3.0/24".into(), via: "172.28.0.23".into() }]
        );
        assert!(diff(&want, &want).is_empty());
    }

    #[test]
    fn routes_are_read_from_ip_route_output() {
        let text = "10.244.2.0/24 via 172.28.0.12 dev eth0 proto 82 \n10.244.3.0/24 via 172.28.0.13 dev eth0 proto 82 \n";
        assert_eq!(parse_routes(text), map(&[("10.244.2.0/24", "172.28.0.12"), ("10.244.3.0/24", "172.28.0.13")]));
    }
}
