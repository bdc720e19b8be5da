//! vxlan pod network (`--pod-network vxlan`), for nodes that do not share an L2 segment: pods' packets to
//! another node are carried in UDP (VXLAN, VNI [`VNI`], port [`PORT`] as flannel uses) between the nodes'
//! addresses, so any routed network between them will do. As flannel's vxlan backend:
//!
//! - each node has a VXLAN device [`DEVICE`] (local = its InternalIP, learning off) whose address is the
//!   first address of its podCIDR as a /32 (its VTEP address: `10.244.1.0` for `10.244.1.0/24`), MTU the
//!   underlay link's minus [`OVERHEAD`]; the pods' bridge and veths get the same MTU, so pods do not fragment;
//! - it publishes the device's MAC on its Node (annotation [`VTEP_MAC_ANNOTATION`]);
//! - for every other Node with a podCIDR, an InternalIP and that annotation it keeps a route to the podCIDR via
//!   the peer's VTEP address `onlink` over the device (protocol [`super::routes::RT_PROTO`]), a permanent ARP
//!   entry VTEP address -> VTEP MAC, and an fdb entry VTEP MAC -> the peer's InternalIP.
//!
//! The decision is pure ([`desired`] from the Node list, [`plan`] against what is on the device and what this
//! reconciler owns, with [`super::routes::plan`]'s rules: what it does not own is never deleted or replaced);
//! [`run`] carries it out over rkube-netlink. The device is the kubelet's own (made by it, named [`DEVICE`]), so
//! at start the entries already on it are taken as made by an earlier run of this kubelet: a Node deleted while
//! the kubelet was down loses its entries here, unlike host-gw's routes on a shared link.
//!
//! Before making the device the kubelet records it in its root dir ([`RECORD`]: the device's name and local
//! address); `rkube down` ([`remove_device`], from `node::teardown`) removes the device, and every entry on it
//! with it, only when that record is there and the device is still as recorded ([`device_teardown`], pure).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::Api;
use rkube_netlink::link::VxlanSpec;
use rkube_netlink::neigh::{FdbEntry, Neighbour};
use rkube_netlink::route::OnlinkRoute;

use super::routes::Change;
use crate::netlink::{Netlink, NetlinkError};

/// The VXLAN device's name.
pub const DEVICE: &str = "rkube.vxlan";
/// The VXLAN network identifier (flannel's default).
pub const VNI: u32 = 1;
/// The UDP port (the Linux kernel's and flannel's 8472, not IANA's 4789).
pub const PORT: u16 = 8472;
/// Bytes VXLAN adds to each packet: outer IPv4 (20), UDP (8), VXLAN (8) and inner Ethernet (14) headers.
pub const OVERHEAD: u32 = 50;
/// The Node annotation holding its VTEP's MAC (flannel puts it in `flannel.alpha.coreos.com/backend-data`).
pub const VTEP_MAC_ANNOTATION: &str = "rkube.io/vtep-mac";

const ROUTE_PROTO: u8 = 82;
const NS: &str = "the node's namespace";

/// Something the vxlan pod network could not set up.
#[derive(Debug, thiserror::Error)]
pub enum VxlanError {
    /// No link of the node's namespace holds `--node-ip`: there is no underlay to send VXLAN packets from.
    #[error("vxlan pod network: no link holds the node address {ip}; pass --node-ip with an address of this node")]
    NoUnderlay {
        /// The node address looked for.
        ip: String,
    },
    /// `--node-ip` is not IPv4 (the VXLAN network is IPv4 only).
    #[error("vxlan pod network: the node address {ip:?} is not an IPv4 address")]
    BadNodeIp {
        /// The node address as given.
        ip: String,
    },
    /// A link of the device's name exists and is something else: it is not taken over.
    #[error("vxlan pod network: link {name} exists and is not a VXLAN device; remove it or use --pod-network host-gw")]
    NotVxlan {
        /// The device's name.
        name: String,
    },
    /// A netlink request (link, address, route, neighbour or fdb) failed.
    #[error("vxlan pod network: {0}")]
    Netlink(#[from] NetlinkError),
    /// The VTEP MAC could not be written to the Node's annotation (logged; tried again on the next sync).
    #[error("vxlan pod network: publish the VTEP MAC on node {node}: {source}")]
    Publish {
        /// This Node's name.
        node: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
}

/// The MTU of the VXLAN device and of the pods' links, for an underlay link of MTU `underlay`.
pub fn mtu_for(underlay: u32) -> u32 {
    underlay.saturating_sub(OVERHEAD)
}

/// A node's VTEP address: the first address of its podCIDR (`10.244.2.0` for `10.244.2.0/24`).
pub fn vtep_address(pod_cidr: &ipnet::Ipv4Net) -> Ipv4Addr {
    pod_cidr.network()
}

/// What the device holds for the peers: routes (podCIDR -> VTEP address), neighbours (VTEP address -> VTEP
/// MAC) and fdb entries (VTEP MAC -> node address), each as text keyed as [`super::routes::plan`] takes them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entries {
    /// A peer's podCIDR -> its VTEP address (the route's gateway, on the device).
    pub routes: BTreeMap<String, String>,
    /// A peer's VTEP address -> its VTEP MAC (a permanent neighbour entry).
    pub neighbours: BTreeMap<String, String>,
    /// A peer's VTEP MAC -> its node address (where the device sends that MAC's frames).
    pub fdb: BTreeMap<String, String>,
}

/// The entries wanted for every other Node that has an IPv4 InternalIP, an IPv4 podCIDR and a VTEP MAC; a node
/// being deleted is left out.
pub fn desired(nodes: &[Node], me: &str) -> Entries {
    let mut out = Entries::default();
    for n in nodes {
        if n.metadata.name.as_deref() == Some(me) || n.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let ip = n.status.as_ref().and_then(|s| s.addresses.as_ref()).and_then(|a| a.iter().find(|a| a.type_ == "InternalIP")).map(|a| a.address.clone());
        let Some(ip) = ip.filter(|ip| ip.parse::<Ipv4Addr>().is_ok()) else { continue };
        let mac = n.metadata.annotations.as_ref().and_then(|a| a.get(VTEP_MAC_ANNOTATION)).map(|m| m.to_ascii_lowercase());
        let Some(mac) = mac.filter(|m| rkube_netlink::neigh::parse_mac(m).is_some()) else { continue };
        let spec = n.spec.as_ref();
        let mut cidrs: Vec<String> = spec.and_then(|s| s.pod_cidrs.clone()).unwrap_or_default();
        cidrs.extend(spec.and_then(|s| s.pod_cidr.clone()));
        let mut any = false;
        for c in cidrs {
            let Ok(net) = c.parse::<ipnet::Ipv4Net>() else { continue };
            let vtep = vtep_address(&net).to_string();
            out.routes.insert(net.trunc().to_string(), vtep.clone());
            out.neighbours.insert(vtep, mac.clone());
            any = true;
        }
        if any {
            out.fdb.insert(mac, ip);
        }
    }
    out
}

/// One change to the device's entries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// A route on the device.
    Route(Change),
    /// A neighbour entry on the device.
    Neighbour(Change),
    /// An fdb entry on the device.
    Fdb(Change),
}

/// What to do, in order: routes that go first (so no packet is sent to a peer whose entries are gone), then
/// the fdb and neighbour entries, then the new or moved routes (their next hop resolvable from the first
/// packet). Each kind follows [`super::routes::plan`]: only what this reconciler owns is deleted or replaced.
pub fn plan(want: &Entries, current: &Entries, owned: &Entries) -> Vec<Step> {
    let routes = super::routes::plan(&want.routes, &current.routes, &owned.routes);
    let (early, late): (Vec<Change>, Vec<Change>) = routes.into_iter().partition(|c| matches!(c, Change::Delete { .. } | Change::Forget { .. }));
    let mut out: Vec<Step> = early.into_iter().map(Step::Route).collect();
    out.extend(super::routes::plan(&want.fdb, &current.fdb, &owned.fdb).into_iter().map(Step::Fdb));
    out.extend(super::routes::plan(&want.neighbours, &current.neighbours, &owned.neighbours).into_iter().map(Step::Neighbour));
    out.extend(late.into_iter().map(Step::Route));
    out
}

/// The node's pods' MTU under vxlan: that of the link holding `node_ip`, minus [`OVERHEAD`]. Called before
/// the CNI config is written; the process must already be in the node's network namespace.
pub fn pod_mtu(node_ip: &str) -> Result<u32, VxlanError> {
    let mut nl = Netlink::open()?;
    let (_, mtu) = underlay(&mut nl, node_ip)?;
    Ok(mtu_for(mtu))
}

fn underlay(nl: &mut Netlink, node_ip: &str) -> Result<(u32, u32), VxlanError> {
    let ip: Ipv4Addr = node_ip.parse().map_err(|_| VxlanError::BadNodeIp { ip: node_ip.to_string() })?;
    let index = nl.link_with_address(ip.into(), NS)?.ok_or_else(|| VxlanError::NoUnderlay { ip: node_ip.to_string() })?;
    let link = nl.link_by_index(index, NS)?.ok_or_else(|| VxlanError::NoUnderlay { ip: node_ip.to_string() })?;
    Ok((index, link.mtu.unwrap_or(1500)))
}

/// The device as wanted, made if missing; one of ours with other settings (another node address, a changed
/// underlay) is made again. Returns its index and its MAC.
fn ensure_device(nl: &mut Netlink, node_ip: &str) -> Result<(u32, String), VxlanError> {
    let (underlay_index, underlay_mtu) = underlay(nl, node_ip)?;
    let local: Ipv4Addr = node_ip.parse().map_err(|_| VxlanError::BadNodeIp { ip: node_ip.to_string() })?;
    let spec = VxlanSpec { name: DEVICE.into(), vni: VNI, local, underlay: underlay_index, port: PORT, mtu: mtu_for(underlay_mtu) };
    let mut existed = false;
    if let Some(link) = nl.link_by_name(DEVICE, NS)? {
        match nl.vxlan_of(link.index, NS)? {
            None => return Err(VxlanError::NotVxlan { name: DEVICE.into() }),
            Some(have) if have.vni == spec.vni && have.local == spec.local && have.underlay == spec.underlay && have.port == spec.port => {
                existed = true;
                if have.mtu != spec.mtu {
                    nl.set_mtu(link.index, DEVICE, spec.mtu, NS)?;
                }
                if !link.up {
                    nl.set_up(link.index, DEVICE)?;
                }
            }
            Some(have) => {
                tracing::info!(?have, want = ?spec, "vxlan device has other settings; making it again");
                nl.delete_link(link.index, DEVICE, NS)?;
            }
        }
    }
    if !existed {
        nl.create_vxlan(&spec, NS)?;
    }
    let link = nl.link_by_name(DEVICE, NS)?.ok_or_else(|| VxlanError::NotVxlan { name: DEVICE.into() })?;
    Ok((link.index, link.mac))
}

/// The entries on the device now: protocol-82 routes out of it, its permanent neighbours, its fdb entries.
fn read_current(nl: &mut Netlink, index: u32) -> Result<Entries, VxlanError> {
    Ok(Entries {
        routes: nl.onlink_routes(index, ROUTE_PROTO, NS)?.into_iter().map(|r| (r.dst.to_string(), r.gw.to_string())).collect(),
        neighbours: nl.permanent_neighbours(index, DEVICE, NS)?.into_iter().map(|n| (n.ip.to_string(), n.mac)).collect(),
        fdb: nl.fdb(index, DEVICE, NS)?.into_iter().map(|f| (f.mac, f.dst.to_string())).collect(),
    })
}

fn route(index: u32, dst: &str, via: &str) -> Option<OnlinkRoute> {
    Some(OnlinkRoute { dst: dst.parse().ok()?, gw: via.parse().ok()?, oif: index, protocol: ROUTE_PROTO })
}

/// Carries out one step; keeps `owned` to what is held afterwards.
fn apply(nl: &mut Netlink, index: u32, step: &Step, owned: &mut Entries) -> Result<(), String> {
    let bad = || format!("{step:?}: not an address");
    let (map, change) = match step {
        Step::Route(c) => (&mut owned.routes, c),
        Step::Neighbour(c) => (&mut owned.neighbours, c),
        Step::Fdb(c) => (&mut owned.fdb, c),
    };
    match change {
        Change::Set { dst, via } => {
            match step {
                Step::Route(_) => nl.replace_onlink_route(&route(index, dst, via).ok_or_else(bad)?, DEVICE, NS),
                Step::Neighbour(_) => nl.replace_neighbour(index, DEVICE, &Neighbour { ip: dst.parse().map_err(|_| bad())?, mac: via.clone() }, NS),
                Step::Fdb(_) => nl.replace_fdb(index, DEVICE, &FdbEntry { mac: dst.clone(), dst: via.parse().map_err(|_| bad())? }, NS),
            }
            .map_err(|e| e.to_string())?;
            map.insert(dst.clone(), via.clone());
        }
        Change::Adopt { dst, via } => {
            map.insert(dst.clone(), via.clone());
        }
        Change::Delete { dst, via } => {
            match step {
                Step::Route(_) => nl.delete_onlink_route(&route(index, dst, via).ok_or_else(bad)?, DEVICE, NS).map(|_| ()),
                Step::Neighbour(_) => nl.forget_neighbour(index, DEVICE, dst.parse().map_err(|_| bad())?),
                Step::Fdb(_) => nl.delete_fdb(index, DEVICE, &FdbEntry { mac: dst.clone(), dst: via.parse().map_err(|_| bad())? }, NS),
            }
            .map_err(|e| e.to_string())?;
            map.remove(dst);
        }
        Change::Forget { dst } => {
            map.remove(dst);
        }
        Change::Conflict { .. } => return Err("an entry this kubelet did not make is in the way; left alone".into()),
    }
    Ok(())
}

/// One pass: the device (made again if someone removed it), its address, then [`plan`] carried out.
fn sync(nodes: &[Node], me: &str, node_ip: &str, vtep: &ipnet::Ipv4Net, owned: &mut Entries) -> Result<String, VxlanError> {
    let mut nl = Netlink::open()?;
    let (index, mac) = ensure_device(&mut nl, node_ip)?;
    let addr = ipnet::IpNet::V4(ipnet::Ipv4Net::new(vtep_address(vtep), 32).expect("32 is a valid prefix"));
    nl.add_address(index, DEVICE, addr, NS)?;
    let current = read_current(&mut nl, index)?;
    for step in plan(&desired(nodes, me), &current, owned) {
        match apply(&mut nl, index, &step, owned) {
            Ok(()) => tracing::info!(?step, "vxlan pod network"),
            Err(e) => tracing::warn!(?step, error = %e, "vxlan pod network entry not changed"),
        }
    }
    Ok(mac)
}

/// What is on the device now (nothing if there is none): at start, taken as this kubelet's own.
fn on_device() -> Result<Entries, VxlanError> {
    let mut nl = Netlink::open()?;
    match nl.link_by_name(DEVICE, NS)? {
        Some(l) => read_current(&mut nl, l.index),
        None => Ok(Entries::default()),
    }
}

/// The file in the kubelet's root dir (`<data-dir>/kubelet`) that records the device this node made: its
/// local address, the marker `rkube down` goes by.
pub const RECORD: &str = "vxlan-device";

/// What `rkube down` does with a link called [`DEVICE`] in the node's network namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceTeardown {
    /// There is none, or this node never made one.
    Nothing,
    /// It is this node's: remove it (its routes, ARP and fdb entries go with it).
    Remove,
    /// Not this node's: left in place, for this reason.
    Leave(String),
}

/// Decides about the link called [`DEVICE`]: `recorded` is the local address this node's kubelet recorded
/// ([`RECORD`]; None: it never ran the vxlan pod network), `found` None when there is no such link, `Some(None)`
/// when it is not a VXLAN device, else its settings. The device is this node's only with rkube's VNI and port
/// and the recorded local address (another node agent in the same namespace would have made it again with its
/// own). Pure.
pub fn device_teardown(recorded: Option<Ipv4Addr>, found: Option<Option<&VxlanSpec>>) -> DeviceTeardown {
    let Some(local) = recorded else { return DeviceTeardown::Nothing };
    match found {
        None => DeviceTeardown::Nothing,
        Some(None) => DeviceTeardown::Leave(format!("link {DEVICE} is not a VXLAN device, so not this node's: left in place")),
        Some(Some(s)) if s.vni != VNI || s.port != PORT => DeviceTeardown::Leave(format!(
            "VXLAN device {DEVICE} has VNI {} and port {} (rkube's are {VNI} and {PORT}), so not this node's: left in place",
            s.vni, s.port
        )),
        Some(Some(s)) if s.local != local => DeviceTeardown::Leave(format!(
            "VXLAN device {DEVICE} is another node's (local {}, this node's was {local}): left in place",
            s.local
        )),
        Some(Some(_)) => DeviceTeardown::Remove,
    }
}

/// The local address in a [`RECORD`] file's text (`rkube.vxlan 172.28.0.11`).
fn parse_record(text: &str) -> Option<Ipv4Addr> {
    let mut w = text.split_whitespace();
    (w.next()? == DEVICE).then_some(())?;
    w.next()?.parse().ok()
}

fn write_record(root_dir: &std::path::Path, local: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(root_dir)?;
    let (path, tmp) = (root_dir.join(RECORD), root_dir.join(format!("{RECORD}.tmp")));
    std::fs::write(&tmp, format!("{DEVICE} {local}\n"))?;
    std::fs::rename(tmp, path)
}

/// `rkube down`: removes the device when [`device_teardown`] says it is this node's (`root_dir` is its kubelet
/// root, holding [`RECORD`]), with every route, ARP and fdb entry on it (the kernel drops them with the link).
/// Returns what it did, for the command to print; the caller must be in the node's network namespace.
pub fn remove_device(root_dir: &std::path::Path) -> Result<Option<String>, VxlanError> {
    let recorded = std::fs::read_to_string(root_dir.join(RECORD)).ok().and_then(|t| parse_record(&t));
    if recorded.is_none() {
        return Ok(None);
    }
    let mut nl = Netlink::open()?;
    let Some(link) = nl.link_by_name(DEVICE, NS)? else { return Ok(None) };
    let spec = nl.vxlan_of(link.index, NS)?;
    match device_teardown(recorded, Some(spec.as_ref())) {
        DeviceTeardown::Nothing => Ok(None),
        DeviceTeardown::Leave(why) => Ok(Some(why)),
        DeviceTeardown::Remove => {
            nl.delete_link(link.index, DEVICE, NS)?;
            Ok(Some(format!("removed the vxlan pod network's device {DEVICE} (its routes, ARP and fdb entries with it)")))
        }
    }
}

/// The Node's own podCIDR (IPv4), once the node controller has assigned it.
fn own_cidr(nodes: &[Node], me: &str) -> Option<ipnet::Ipv4Net> {
    let n = nodes.iter().find(|n| n.metadata.name.as_deref() == Some(me))?;
    let spec = n.spec.as_ref()?;
    spec.pod_cidr.iter().chain(spec.pod_cidrs.iter().flatten()).find_map(|c| c.parse::<ipnet::Ipv4Net>().ok())
}

fn published_mac(nodes: &[Node], me: &str) -> Option<String> {
    nodes.iter().find(|n| n.metadata.name.as_deref() == Some(me))?.metadata.annotations.as_ref()?.get(VTEP_MAC_ANNOTATION).cloned()
}

/// Keeps the device and its entries until the Node watch ends (it retries with backoff, so in practice until
/// the kubelet stops); re-checks every 30 s, for anything someone else removed.
/// Boxed here, so it is compiled once, in this crate, and not again in the binary that spawns it.
pub fn run(client: kube::Client, me: String, node_ip: String, root_dir: std::path::PathBuf) -> futures::future::BoxFuture<'static, ()> {
    Box::pin(keep_device(client, me, node_ip, root_dir))
}

async fn keep_device(client: kube::Client, me: String, node_ip: String, root_dir: std::path::PathBuf) {
    let (store, writer) = reflector::store::<Node>();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    let nodes_api = Api::<Node>::all(client);
    let stream = reflector(writer, watcher(nodes_api.clone(), watcher::Config::default())).default_backoff().touched_objects();
    tokio::spawn(async move {
        let mut s = std::pin::pin!(stream);
        while s.next().await.is_some() {
            let _ = tx.try_send(());
        }
    });
    if let Err(e) = store.wait_until_ready().await {
        tracing::warn!(error = %e, "vxlan pod network: node watch ended before the first list");
        return;
    }
    // the device is ours: what is on it at start was made by an earlier run of this kubelet
    let mut owned: Option<Entries> = None;
    let mut recorded = false;
    loop {
        let nodes: Vec<Node> = store.state().iter().map(|n| (**n).clone()).collect();
        match own_cidr(&nodes, &me) {
            None => tracing::info!(node = %me, "vxlan pod network: waiting for the node's podCIDR"),
            Some(cidr) => {
                // the marker `rkube down` removes the device by, written before the device is made
                if !recorded {
                    match write_record(&root_dir, &node_ip) {
                        Ok(()) => recorded = true,
                        Err(e) => tracing::warn!(error = %e, dir = %root_dir.display(), "vxlan pod network: record the device"),
                    }
                }
                let (me2, ip2, nodes2) = (me.clone(), node_ip.clone(), nodes.clone());
                let held = owned.take();
                let r = tokio::task::spawn_blocking(move || {
                    let mut mine = match held {
                        Some(o) => o,
                        None => match on_device() {
                            Ok(e) => e,
                            Err(e) => return (Err(e), None),
                        },
                    };
                    let r = sync(&nodes2, &me2, &ip2, &cidr, &mut mine);
                    (r, Some(mine))
                })
                .await;
                match r {
                    Ok((Ok(mac), mine)) => {
                        owned = mine;
                        if published_mac(&nodes, &me).as_deref() != Some(mac.as_str()) {
                            let patch = serde_json::json!({"metadata": {"annotations": {VTEP_MAC_ANNOTATION: mac}}});
                            match nodes_api.patch(&me, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await {
                                Ok(_) => tracing::info!(node = %me, %mac, "vxlan pod network: VTEP MAC published"),
                                Err(source) => tracing::warn!(error = %VxlanError::Publish { node: me.clone(), source }, "vxlan pod network"),
                            }
                        }
                    }
                    Ok((Err(e), mine)) => {
                        owned = mine;
                        tracing::warn!(error = %e, "vxlan pod network");
                    }
                    Err(e) => tracing::warn!(error = %e, "vxlan pod network: the sync task failed"),
                }
            }
        }
        match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
            Ok(None) => return,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, ip: &str, cidr: Option<&str>, mac: Option<&str>) -> Node {
        let mut v = serde_json::json!({"metadata": {"name": name}, "spec": {},
            "status": {"addresses": [{"type": "Hostname", "address": name}, {"type": "InternalIP", "address": ip}]}});
        if let Some(c) = cidr {
            v["spec"]["podCIDR"] = c.into();
            v["spec"]["podCIDRs"] = serde_json::json!([c]);
        }
        if let Some(m) = mac {
            v["metadata"]["annotations"] = serde_json::json!({VTEP_MAC_ANNOTATION: m});
        }
        serde_json::from_value(v).expect("node")
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    fn entries(peers: &[(&str, &str, &str)]) -> Entries {
        // (podCIDR, mac, node ip)
        let mut e = Entries::default();
        for (cidr, mac, ip) in peers {
            let vtep = vtep_address(&cidr.parse().expect("cidr")).to_string();
            e.routes.insert(cidr.to_string(), vtep.clone());
            e.neighbours.insert(vtep, mac.to_string());
            e.fdb.insert(mac.to_string(), ip.to_string());
        }
        e
    }

    #[test]
    fn every_other_node_with_an_address_a_cidr_and_a_vtep_mac_is_a_peer() {
        let nodes = vec![
            node("me", "172.28.0.11", Some("10.244.1.0/24"), Some("02:00:00:00:00:01")),
            node("b", "172.28.0.12", Some("10.244.2.0/24"), Some("02:00:00:00:00:02")),
            node("c", "172.28.0.13", Some("10.244.3.0/24"), Some("02:00:00:00:00:03")),
            node("no-mac-yet", "172.28.0.14", Some("10.244.4.0/24"), None),
            node("no-cidr-yet", "172.28.0.15", None, Some("02:00:00:00:00:05")),
            node("bad-mac", "172.28.0.16", Some("10.244.6.0/24"), Some("02:00:00")),
        ];
        let want = desired(&nodes, "me");
        assert_eq!(want, entries(&[("10.244.2.0/24", "02:00:00:00:00:02", "172.28.0.12"), ("10.244.3.0/24", "02:00:00:00:00:03", "172.28.0.13")]));
        assert_eq!(want.routes["10.244.2.0/24"], "10.244.2.0", "via the peer's VTEP: its podCIDR's first address");
        assert_eq!(want.neighbours["10.244.2.0"], "02:00:00:00:00:02");
        assert_eq!(want.fdb["02:00:00:00:00:02"], "172.28.0.12");
        let mut gone = nodes[1].clone();
        gone.metadata.deletion_timestamp = Some(crate::time::to_k8s(chrono::Utc::now()));
        assert_eq!(desired(&[gone], "me"), Entries::default(), "a node being deleted is no peer");
    }

    #[test]
    fn the_mtu_leaves_room_for_the_vxlan_headers() {
        assert_eq!(mtu_for(1500), 1450);
        assert_eq!(mtu_for(9000), 8950);
        assert_eq!(vtep_address(&"10.244.3.0/24".parse().expect("cidr")), Ipv4Addr::new(10, 244, 3, 0));
    }

    #[test]
    fn a_new_peer_gets_fdb_and_neighbour_before_its_route() {
        let want = entries(&[("10.244.2.0/24", "02:00:00:00:00:02", "172.28.0.12")]);
        let steps = plan(&want, &Entries::default(), &Entries::default());
        let set = |d: &str, v: &str| Change::Set { dst: d.into(), via: v.into() };
        assert_eq!(
            steps,
            vec![
                Step::Fdb(set("02:00:00:00:00:02", "172.28.0.12")),
                Step::Neighbour(set("10.244.2.0", "02:00:00:00:00:02")),
                Step::Route(set("10.244.2.0/24", "10.244.2.0")),
            ]
        );
        assert!(plan(&want, &want, &want).is_empty(), "nothing to do once in place");
    }

    #[test]
    fn a_removed_peer_loses_its_route_first_then_its_entries() {
        let owned = entries(&[("10.244.2.0/24", "02:00:00:00:00:02", "172.28.0.12"), ("10.244.3.0/24", "02:00:00:00:00:03", "172.28.0.13")]);
        let want = entries(&[("10.244.2.0/24", "02:00:00:00:00:02", "172.28.0.12")]);
        let del = |d: &str, v: &str| Change::Delete { dst: d.into(), via: v.into() };
        assert_eq!(
            plan(&want, &owned, &owned),
            vec![
                Step::Route(del("10.244.3.0/24", "10.244.3.0")),
                Step::Fdb(del("02:00:00:00:00:03", "172.28.0.13")),
                Step::Neighbour(del("10.244.3.0", "02:00:00:00:00:03")),
            ]
        );
    }

    #[test]
    fn a_peer_with_a_new_vtep_mac_or_address_is_moved() {
        let owned = entries(&[("10.244.2.0/24", "02:00:00:00:00:02", "172.28.0.12")]);
        // its device made again (new MAC) and its node now at another address
        let want = entries(&[("10.244.2.0/24", "02:00:00:00:00:22", "172.28.0.22")]);
        let steps = plan(&want, &owned, &owned);
        assert_eq!(
            steps,
            vec![
                Step::Fdb(Change::Delete { dst: "02:00:00:00:00:02".into(), via: "172.28.0.12".into() }),
                Step::Fdb(Change::Set { dst: "02:00:00:00:00:22".into(), via: "172.28.0.22".into() }),
                Step::Neighbour(Change::Set { dst: "10.244.2.0".into(), via: "02:00:00:00:00:22".into() }),
            ],
            "the route via the VTEP address stays"
        );
    }

    #[test]
    fn down_removes_only_the_vxlan_device_this_node_recorded() {
        let mine = Ipv4Addr::new(172, 28, 0, 11);
        let spec = |vni: u32, port: u16, local: Ipv4Addr| VxlanSpec { name: DEVICE.into(), vni, local, underlay: 2, port, mtu: 1450 };
        assert_eq!(device_teardown(Some(mine), Some(Some(&spec(VNI, PORT, mine)))), DeviceTeardown::Remove);
        assert_eq!(device_teardown(Some(mine), None), DeviceTeardown::Nothing, "already gone");
        assert_eq!(device_teardown(None, Some(Some(&spec(VNI, PORT, mine)))), DeviceTeardown::Nothing, "this node never ran vxlan");
        let leave = |d: DeviceTeardown| match d {
            DeviceTeardown::Leave(why) => why,
            other => panic!("{other:?}"),
        };
        assert!(leave(device_teardown(Some(mine), Some(None))).contains("not a VXLAN device"), "a user's link of that name");
        assert!(leave(device_teardown(Some(mine), Some(Some(&spec(42, PORT, mine))))).contains("VNI 42"), "someone else's tunnel");
        assert!(leave(device_teardown(Some(mine), Some(Some(&spec(VNI, 4789, mine))))).contains("port 4789"));
        let other = leave(device_teardown(Some(mine), Some(Some(&spec(VNI, PORT, Ipv4Addr::new(172, 28, 0, 12))))));
        assert!(other.contains("172.28.0.12") && other.contains("172.28.0.11"), "made again by another node here: {other}");
    }

    #[test]
    fn the_record_names_the_device_and_its_local_address() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("kubelet");
        write_record(&root, "172.28.0.11").expect("write");
        let text = std::fs::read_to_string(root.join(RECORD)).expect("read");
        assert_eq!(text, "rkube.vxlan 172.28.0.11\n");
        assert_eq!(parse_record(&text), Some(Ipv4Addr::new(172, 28, 0, 11)));
        assert_eq!(parse_record("other.vxlan 172.28.0.11"), None);
        assert_eq!(parse_record("rkube.vxlan nonsense"), None);
        // no record: nothing to remove, and no netlink call needed to say so
        assert_eq!(remove_device(dir.path()).expect("no record"), None);
    }

    #[test]
    fn entries_it_did_not_make_are_never_touched() {
        // someone's neighbour and fdb entry on the device, and a clashing route; nothing owned
        let current = Entries {
            routes: map(&[("10.244.2.0/24", "10.9.9.9")]),
            neighbours: map(&[("10.99.0.1", "02:99:00:00:00:01")]),
            fdb: map(&[("02:99:00:00:00:01", "192.168.9.9")]),
        };
        let want = entries(&[("10.244.2.0/24", "02:00:00:00:00:02", "172.28.0.12")]);
        let steps = plan(&want, &current, &Entries::default());
        assert!(steps.iter().all(|s| !matches!(s, Step::Route(Change::Delete { .. }) | Step::Neighbour(Change::Delete { .. }) | Step::Fdb(Change::Delete { .. }))), "{steps:?}");
        assert!(steps.contains(&Step::Route(Change::Conflict { dst: "10.244.2.0/24".into(), via: "10.244.2.0".into(), found: "10.9.9.9".into() })), "{steps:?}");
        assert!(plan(&Entries::default(), &current, &Entries::default()).is_empty());
    }
}
