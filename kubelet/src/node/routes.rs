//! host-gw pod network: a route to every other node's `spec.podCIDR` via that node's InternalIP, kept from a
//! watch on Nodes as nodes come and go (flannel's host-gw backend does the same). The decision is pure
//! ([`desired`] from the Node list, [`plan`] against the routes in place and the routes this reconciler owns);
//! acting is `ip route` in the main table with protocol [`RT_PROTO`].
//!
//! Protocol 82 alone does not make a route ours: another rkube node agent on the same host (each test cluster
//! has one) or a user may have made one with it. So the reconciler remembers the routes it installed, or found
//! already as it wants them, and removes only those, and only while they still go where it put them; a route it
//! does not own is never deleted or replaced (a conflicting one is logged and left). The cost: a route this
//! kubelet made before a restart, for a Node deleted while it was down, is not known as its own and stays.
//!
//! Needs the nodes on one L2 segment (the gateway must be on-link): before adding a route the kubelet asks the
//! kernel how it reaches the peer's InternalIP (`ip route get`, read by the pure [`check_path`]); a peer behind
//! a router gets no route, and the kubelet says why and what to do (use `--pod-network vxlan`) in its log and
//! once in a Warning event `HostGwNotOnLink` on its own Node.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, EventSource, Node, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
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

/// One step from the routes in place to the wanted ones (and, keyed the same way, from [`super::vxlan`]'s
/// device entries in place to the wanted ones).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Add a route to `dst`, or move our own route to `dst` to another gateway; owned afterwards.
    Set {
        /// The key: a peer's podCIDR (for [`super::vxlan`]'s neighbours and fdb, a VTEP address or MAC).
        dst: String,
        /// The value wanted: the peer's InternalIP (for vxlan, its VTEP address, VTEP MAC or node address).
        via: String,
    },
    /// A route to `dst` via `via` is already there as wanted (made before a restart, or by an earlier sync):
    /// owned from now on, nothing to do in the kernel.
    Adopt {
        /// The key, as in [`Change::Set`].
        dst: String,
        /// Its value, as wanted.
        via: String,
    },
    /// Remove our route to `dst` via `via` (its Node is gone or has moved); not owned afterwards.
    Delete {
        /// The key, as in [`Change::Set`].
        dst: String,
        /// The value it had.
        via: String,
    },
    /// Our route to `dst` is gone or someone else's now (changed under us): forget it, touch nothing.
    Forget {
        /// The key, as in [`Change::Set`].
        dst: String,
    },
    /// A route to `dst` with protocol 82 that is not ours goes via `found`, not `via`: left alone.
    Conflict {
        /// The key, as in [`Change::Set`].
        dst: String,
        /// The value wanted, as in [`Change::Set`].
        via: String,
        /// The value of the entry that is not ours.
        found: String,
    },
}

/// What to do so that the kernel's protocol-82 routes (`current`: dst -> gateway, main table) give every
/// wanted podCIDR its route, given the routes this reconciler owns (`owned`, dst -> the gateway it set).
/// Routes it does not own are never deleted or replaced. Pure: the table of cases is the unit test.
pub fn plan(want: &BTreeMap<String, String>, current: &BTreeMap<String, String>, owned: &BTreeMap<String, String>) -> Vec<Change> {
    let mut out = Vec::new();
    for (dst, mine) in owned {
        let still_mine = current.get(dst) == Some(mine);
        match (want.contains_key(dst), still_mine) {
            (false, true) => out.push(Change::Delete { dst: dst.clone(), via: mine.clone() }),
            (_, false) => out.push(Change::Forget { dst: dst.clone() }),
            (true, true) => {}
        }
    }
    for (dst, via) in want {
        let ours = owned.get(dst).is_some_and(|mine| current.get(dst) == Some(mine));
        match current.get(dst) {
            Some(found) if found == via => {
                if !ours {
                    out.push(Change::Adopt { dst: dst.clone(), via: via.clone() });
                }
            }
            Some(found) if !ours => out.push(Change::Conflict { dst: dst.clone(), via: via.clone(), found: found.clone() }),
            _ => out.push(Change::Set { dst: dst.clone(), via: via.clone() }),
        }
    }
    out
}

/// Why host-gw cannot route to a node's pods.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HostGwError {
    /// The kernel reaches the peer through a router: a host-gw route via it would not work.
    #[error(
        "host-gw pod network: no route to node {node}'s pods {dst}: its InternalIP {via} is not on a link of this node \
         (the kernel reaches it through the router {router} on {dev}); host-gw needs every node on one L2 segment: \
         run the node agents with --pod-network vxlan"
    )]
    NotOnLink {
        /// The peer Node's name.
        node: String,
        /// Its podCIDR.
        dst: String,
        /// Its InternalIP.
        via: String,
        /// The router the kernel would send to instead.
        router: String,
        /// The link that router is on.
        dev: String,
    },
    /// `ip route get` found no way to the peer at all.
    #[error("host-gw pod network: no route to node {node}'s pods {dst}: its InternalIP {via} is not reachable from this node ({reason})")]
    Unreachable {
        /// The peer Node's name.
        node: String,
        /// Its podCIDR.
        dst: String,
        /// Its InternalIP.
        via: String,
        /// What `ip route get` said.
        reason: String,
    },
}

/// The Event reason of [`HostGwError`] on the kubelet's own Node.
pub const NOT_ON_LINK_REASON: &str = "HostGwNotOnLink";

/// Whether a route to `dst` (node `node`'s podCIDR) via `via` can be added, from `ip -o route get <via>`'s
/// output: only when the kernel reaches `via` directly on a link (`172.28.0.12 dev eth0 src ...`), not
/// through a router (`172.28.0.34 via 172.28.0.17 dev eth0 ...`). Pure.
pub fn check_path(route_get: &str, node: &str, dst: &str, via: &str) -> Result<(), HostGwError> {
    let w: Vec<&str> = route_get.split_whitespace().collect();
    let after = |k: &str| w.iter().position(|x| *x == k).and_then(|i| w.get(i + 1)).map(|s| s.to_string());
    match (after("via"), after("dev")) {
        (Some(router), dev) => {
            Err(HostGwError::NotOnLink { node: node.into(), dst: dst.into(), via: via.into(), router, dev: dev.unwrap_or_else(|| "?".into()) })
        }
        (None, Some(_)) => Ok(()),
        (None, None) => Err(HostGwError::Unreachable { node: node.into(), dst: dst.into(), via: via.into(), reason: format!("ip route get: {}", route_get.trim()) }),
    }
}

/// The name of the Node whose InternalIP is `ip`, for messages.
fn node_with_ip(nodes: &[Node], ip: &str) -> String {
    nodes
        .iter()
        .find(|n| n.status.as_ref().and_then(|s| s.addresses.as_ref()).is_some_and(|a| a.iter().any(|a| a.type_ == "InternalIP" && a.address == ip)))
        .and_then(|n| n.metadata.name.clone())
        .unwrap_or_else(|| ip.to_string())
}

/// Asks the kernel how it reaches `via` and checks it is on-link ([`check_path`]).
async fn on_link(nodes: &[Node], dst: &str, via: &str) -> Result<(), HostGwError> {
    let node = node_with_ip(nodes, via);
    match ip(&["-o", "-4", "route", "get", via]).await {
        Ok(text) => check_path(&text, &node, dst, via),
        Err(reason) => Err(HostGwError::Unreachable { node, dst: dst.into(), via: via.into(), reason }),
    }
}

/// A Warning event on this kubelet's Node (namespace default, as upstream's node events).
async fn node_warning(client: &kube::Client, me: &str, reason: &str, message: String) {
    let now = chrono::Utc::now();
    let ev = Event {
        metadata: ObjectMeta { name: Some(format!("{me}.{:x}", now.timestamp_nanos_opt().unwrap_or(0))), namespace: Some("default".into()), ..Default::default() },
        involved_object: ObjectReference { api_version: Some("v1".into()), kind: Some("Node".into()), name: Some(me.into()), uid: Some(me.into()), ..Default::default() },
        reason: Some(reason.into()),
        message: Some(message),
        type_: Some("Warning".into()),
        source: Some(EventSource { component: Some("kubelet".into()), host: Some(me.into()) }),
        reporting_component: Some("kubelet".into()),
        reporting_instance: Some(me.into()),
        first_timestamp: Some(crate::time::to_k8s(now)),
        last_timestamp: Some(crate::time::to_k8s(now)),
        count: Some(1),
        ..Default::default()
    };
    if let Err(e) = Api::<Event>::namespaced(client.clone(), "default").create(&PostParams::default(), &ev).await {
        tracing::debug!(error = %e, "record node event");
    }
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

/// What one pass found wrong that the user should hear about once (by Event), not every pass.
#[derive(Default)]
struct Reported(BTreeSet<(String, String)>);

/// One pass: read the kernel's protocol-82 routes in the main table, carry out [`plan`], and keep `owned` to
/// what this reconciler now holds. A route whose gateway is not on-link is not tried ([`on_link`]).
async fn sync(client: &kube::Client, nodes: &[Node], me: &str, owned: &mut BTreeMap<String, String>, reported: &mut Reported) {
    let current = match ip(&["-o", "-4", "route", "show", "table", "main", "proto", RT_PROTO]).await {
        Ok(t) => parse_routes(&t),
        Err(e) => {
            tracing::warn!(error = %e, "read pod network routes");
            return;
        }
    };
    for change in plan(&desired(nodes, me), &current, owned) {
        let r = match &change {
            Change::Set { dst, via } => match on_link(nodes, dst, via).await {
                Err(e) => {
                    if reported.0.insert((dst.clone(), via.clone())) {
                        node_warning(client, me, NOT_ON_LINK_REASON, e.to_string()).await;
                    }
                    Err(e.to_string())
                }
                Ok(()) => ip(&["route", "replace", dst, "via", via, "proto", RT_PROTO, "table", "main"]).await.map(|_| {
                    reported.0.remove(&(dst.clone(), via.clone()));
                    owned.insert(dst.clone(), via.clone());
                }),
            },
            Change::Adopt { dst, via } => {
                owned.insert(dst.clone(), via.clone());
                Ok(())
            }
            Change::Delete { dst, via } => ip(&["route", "del", dst, "via", via, "proto", RT_PROTO, "table", "main"]).await.map(|_| {
                owned.remove(dst);
            }),
            Change::Forget { dst } => {
                owned.remove(dst);
                Ok(())
            }
            Change::Conflict { .. } => Err("a protocol-82 route this kubelet did not make is in the way; left alone".to_string()),
        };
        match r {
            Ok(()) => tracing::info!(?change, "pod network route"),
            Err(e) => tracing::warn!(?change, error = %e, "pod network route not changed"),
        }
    }
}

/// Keeps the routes until the watch ends (it retries with backoff, so in practice until the kubelet stops);
/// also re-checks every 30 s, for a route someone else removed.
/// Boxed here, so it is compiled once, in this crate, and not again in the binary that spawns it.
pub fn run(client: kube::Client, me: String) -> futures::future::BoxFuture<'static, ()> {
    Box::pin(keep_routes(client, me))
}

async fn keep_routes(client: kube::Client, me: String) {
    let (store, writer) = reflector::store::<Node>();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    let stream = reflector(writer, watcher(Api::<Node>::all(client.clone()), watcher::Config::default())).default_backoff().touched_objects();
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
    let mut owned = BTreeMap::new();
    let mut reported = Reported::default();
    loop {
        let nodes: Vec<Node> = store.state().iter().map(|n| (**n).clone()).collect();
        sync(&client, &nodes, &me, &mut owned, &mut reported).await;
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

    fn set(dst: &str, via: &str) -> Change {
        Change::Set { dst: dst.into(), via: via.into() }
    }

    #[test]
    fn plan_adds_moves_and_removes_only_its_own_routes() {
        // ours: .2 (as wanted), .3 (its node moved to .23), .4 (its node is gone)
        let owned = map(&[("10.244.2.0/24", "172.28.0.12"), ("10.244.3.0/24", "172.28.0.13"), ("10.244.4.0/24", "172.28.0.14")]);
        let want = map(&[("10.244.2.0/24", "172.28.0.12"), ("10.244.3.0/24", "172.28.0.23"), ("10.244.5.0/24", "172.28.0.15")]);
        let current = owned.clone();
        assert_eq!(
            plan(&want, &current, &owned),
            vec![
                Change::Delete { dst: "10.244.4.0/24".into(), via: "172.28.0.14".into() },
                set("10.244.3.0/24", "172.28.0.23"),
                set("10.244.5.0/24", "172.28.0.15"),
            ]
        );
        let after = map(&[("10.244.2.0/24", "172.28.0.12"), ("10.244.3.0/24", "172.28.0.23"), ("10.244.5.0/24", "172.28.0.15")]);
        assert!(plan(&want, &after, &after).is_empty(), "nothing to do once in place");
    }

    #[test]
    fn routes_it_did_not_make_are_never_removed_or_replaced() {
        // another node agent on this host (another cluster) and a user's route, both protocol 82
        let current = map(&[("10.244.9.0/24", "10.1.0.9"), ("192.168.77.0/24", "10.1.0.1"), ("10.244.2.0/24", "10.1.0.2")]);
        let want = map(&[("10.244.2.0/24", "172.28.0.12"), ("10.244.3.0/24", "172.28.0.13")]);
        assert_eq!(
            plan(&want, &current, &BTreeMap::new()),
            vec![
                Change::Conflict { dst: "10.244.2.0/24".into(), via: "172.28.0.12".into(), found: "10.1.0.2".into() },
                set("10.244.3.0/24", "172.28.0.13"),
            ],
            "the unknown routes stay; the clashing one is reported, not taken over"
        );
        // with nothing wanted (one node, or every other Node gone) nothing foreign is touched
        assert!(plan(&BTreeMap::new(), &current, &BTreeMap::new()).is_empty());
    }

    #[test]
    fn a_route_already_as_wanted_is_adopted_and_one_changed_under_it_forgotten() {
        let want = map(&[("10.244.2.0/24", "172.28.0.12")]);
        let current = map(&[("10.244.2.0/24", "172.28.0.12")]);
        assert_eq!(plan(&want, &current, &BTreeMap::new()), vec![Change::Adopt { dst: "10.244.2.0/24".into(), via: "172.28.0.12".into() }]);
        // our route to .7 was replaced by someone else's (another gateway), and its Node is gone: forgotten, kept
        let owned = map(&[("10.244.7.0/24", "172.28.0.17")]);
        let current = map(&[("10.244.7.0/24", "10.1.0.7")]);
        assert_eq!(plan(&BTreeMap::new(), &current, &owned), vec![Change::Forget { dst: "10.244.7.0/24".into() }]);
        // our route was deleted by hand while its Node is still there: put back
        let want = map(&[("10.244.7.0/24", "172.28.0.17")]);
        assert_eq!(plan(&want, &BTreeMap::new(), &owned), vec![Change::Forget { dst: "10.244.7.0/24".into() }, set("10.244.7.0/24", "172.28.0.17")]);
    }

    #[test]
    fn a_gateway_behind_a_router_is_refused_with_what_to_do() {
        // on the same segment: the kernel reaches it directly
        assert_eq!(check_path("172.28.0.12 dev eth0 src 172.28.0.11 uid 0 \\    cache ", "n2", "10.244.2.0/24", "172.28.0.12"), Ok(()));
        // on another subnet, through a router: no route, and the message says why and what to do
        let e = check_path("172.28.0.34 via 172.28.0.17 dev eth0 src 172.28.0.18 uid 0 \\    cache ", "n2", "10.244.2.0/24", "172.28.0.34")
            .expect_err("not on-link");
        assert_eq!(e, HostGwError::NotOnLink { node: "n2".into(), dst: "10.244.2.0/24".into(), via: "172.28.0.34".into(), router: "172.28.0.17".into(), dev: "eth0".into() });
        let msg = e.to_string();
        for want in ["node n2's pods 10.244.2.0/24", "172.28.0.34 is not on a link of this node", "router 172.28.0.17 on eth0", "--pod-network vxlan"] {
            assert!(msg.contains(want), "{want:?} in {msg}");
        }
        assert!(matches!(check_path("", "n2", "10.244.2.0/24", "172.28.0.34"), Err(HostGwError::Unreachable { .. })));
    }

    #[test]
    fn routes_are_read_from_ip_route_output() {
        let text = "10.244.2.0/24 via 172.28.0.12 dev eth0 proto 82 \n10.244.3.0/24 via 172.28.0.13 dev eth0 proto 82 \n";
        assert_eq!(parse_routes(text), map(&[("10.244.2.0/24", "172.28.0.12"), ("10.244.3.0/24", "172.28.0.13")]));
    }
}
