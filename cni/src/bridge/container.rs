//! The container side of an attachment, done from a thread inside the container's namespace: addresses, link
//! up (with `arp_notify`, so the kernel announces the addresses with gratuitous ARP as the link comes up),
//! routes; deleting the interface on DEL; reading it back for CHECK.

use std::net::IpAddr;

use ipnet::IpNet;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use netlink_packet_route::link::InfoKind;

use super::BridgeError;
use crate::netns::NetNs;
use crate::sys;
use rkube_netlink::link::Link;
use rkube_netlink::route::RouteEntry;
use rkube_netlink::Netlink;
use crate::spec::{IpConfig, Route};
use crate::sysctl;

/// Turns on the kernel's announcements for `ifname` (gratuitous ARP with `arp_notify`, unsolicited neighbour
/// advertisements with `ndisc_notify`). Runs inside the namespace: procfs answers for the caller's namespace.
pub fn enable_announcements(ifname: &str, ips: &[IpConfig]) -> Result<(), BridgeError> {
    if ips.iter().any(|ip| ip.address.addr().is_ipv4()) {
        sysctl::set(&format!("net/ipv4/conf/{ifname}/arp_notify"), "1")?;
    }
    if ips.iter().any(|ip| ip.address.addr().is_ipv6()) {
        sysctl::set(&format!("net/ipv6/conf/{ifname}/ndisc_notify"), "1")?;
    }
    Ok(())
}

/// Configures the pod's interface `link` through `nl`, a socket opened inside its namespace: addresses, routes.
pub fn configure(nl: &mut Netlink, link: &Link, ns: &str, ips: &[IpConfig], routes: &[Route]) -> Result<(), BridgeError> {
    for ip in ips {
        nl.add_address(link.index, &link.name, ip.address, ns)?;
    }
    for r in routes {
        nl.add_route(r.dst, r.gw, link.index, &link.name, ns)?;
    }
    Ok(())
}

/// Announces the pod's addresses: setting the MAC it already has makes the kernel send a gratuitous ARP
/// (unsolicited neighbour advertisement for IPv6) for every address (NETDEV_CHANGEADDR with
/// arp_notify/ndisc_notify on), so neighbours holding a stale MAC for a reused address learn the new one.
pub fn announce(nl: &mut Netlink, link: &Link, ns: &str) -> Result<(), BridgeError> {
    Ok(nl.announce(link.index, &link.name, &link.mac, ns)?)
}

/// Waits (at most `limit`) for bridge port `port` to forward: the bridge enables a port only once the kernel's
/// link watcher has seen its carrier, and an announcement sent before that is dropped at the port.
pub fn wait_forwarding(port: &str, limit: std::time::Duration) -> bool {
    let path = format!("/sys/class/net/{port}/brport/state");
    let deadline = std::time::Instant::now() + limit;
    loop {
        // 3 is BR_STATE_FORWARDING.
        if std::fs::read_to_string(&path).map(|s| s.trim() == "3").unwrap_or(false) {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_micros(50));
    }
}

/// Deletes `ifname` in the pod's namespace, and with it its veth peer on the host. Returns false if it was
/// already gone.
///
/// A synchronous RTM_DELLINK returns only after the kernel's RCU grace periods and reference waits (15-30 ms
/// here), though within a few ms the pair is unlisted, its addresses and routes are gone, it is off the bridge and
/// out of sysfs, and the RTNL lock is free. So a forked helper sends the delete, and this returns as soon as the
/// host end has left sysfs (the kernel removes it there after unlisting both ends and running the unregister
/// notifiers); the helper exits when the kernel is done and is reaped by init (or the runtime, if it is a
/// subreaper). If the interface is not a veth whose peer is in our sysfs, or the process is not
/// single-threaded, or the helper fails, it deletes synchronously instead.
pub fn delete(ns: &NetNs, ifname: &str) -> Result<bool, BridgeError> {
    let what = ns.describe();
    let mut pod_nl = ns.run(Netlink::open)??;
    let Some(pod) = pod_nl.link_by_name(ifname, &what)? else { return Ok(false) };
    let mut host_nl = Netlink::open()?;
    let host = match pod.peer_index {
        Some(i) if pod.kind == Some(InfoKind::Veth) => host_nl.link_by_index(i, "host")?,
        _ => None,
    };
    // The peer must be this pod end's peer and visible in our sysfs, or its leaving sysfs would prove nothing.
    let watched = host.filter(|h| h.peer_index == Some(pod.index)).and_then(|h| {
        let dir = PathBuf::from(format!("/sys/class/net/{}", h.name));
        let same = std::fs::read_to_string(dir.join("ifindex")).map(|s| s.trim() == h.index.to_string()).unwrap_or(false);
        same.then_some(dir)
    });
    if let Some(dir) = watched {
        let helper = sys::fork_detached(|| match pod_nl.delete_link_by_name(ifname, &what) {
            Ok(_) => 0,
            Err(e) => e.errno().unwrap_or(1).clamp(1, 125),
        });
        if let Some(pid) = helper {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if !dir.exists() {
                    return Ok(true);
                }
                // Done or failed: whatever is left, the synchronous delete below finishes or reports.
                if sys::exited(pid).is_some() || Instant::now() >= deadline {
                    if !dir.exists() {
                        return Ok(true);
                    }
                    break;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }
    Ok(pod_nl.delete_link_by_name(ifname, &what)?)
}

/// What CHECK reads back from the container's namespace.
pub struct Observed {
    pub link: Option<Link>,
    pub addresses: Vec<IpNet>,
    pub routes: Vec<RouteEntry>,
}

pub fn observe(ifname: &str, ns: &str) -> Result<Observed, BridgeError> {
    let mut nl = Netlink::open()?;
    let Some(link) = nl.link_by_name(ifname, ns)? else {
        return Ok(Observed { link: None, addresses: Vec::new(), routes: Vec::new() });
    };
    let addresses = nl.addresses(link.index, ifname, ns)?;
    let mut routes = nl.routes(true, ns)?;
    routes.extend(nl.routes(false, ns)?);
    Ok(Observed { link: Some(link), addresses, routes })
}

/// The routes ADD installs: IPAM's (a missing gateway filled with the family's gateway), plus default routes when
/// the bridge is the default gateway.
pub fn routes_for(ips: &[IpConfig], ipam_routes: &[Route], gateways: &[IpAddr], default_gw: bool) -> Vec<Route> {
    let gw_for = |v4: bool| gateways.iter().copied().find(|g| g.is_ipv4() == v4);
    let mut out: Vec<Route> = ipam_routes
        .iter()
        .map(|r| Route { gw: r.gw.or_else(|| gw_for(r.dst.addr().is_ipv4())), ..r.clone() })
        .collect();
    if default_gw {
        for v4 in [true, false] {
            if !ips.iter().any(|ip| ip.address.addr().is_ipv4() == v4) {
                continue;
            }
            let dst: IpNet = if v4 { "0.0.0.0/0" } else { "::/0" }.parse().unwrap_or_else(|_| IpNet::default());
            if out.iter().any(|r| r.dst == dst) {
                continue;
            }
            if let Some(gw) = gw_for(v4) {
                out.push(Route { dst, gw: Some(gw), mtu: None, priority: None });
            }
        }
    }
    out
}
