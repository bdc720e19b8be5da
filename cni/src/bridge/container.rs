//! The container side of an attachment, done from a thread inside the container's namespace: addresses, link
//! up (with `arp_notify`, so the kernel announces the addresses with gratuitous ARP as the link comes up),
//! routes; deleting the interface on DEL; reading it back for CHECK.

use std::net::IpAddr;

use ipnet::IpNet;

use super::BridgeError;
use crate::netlink::link::Link;
use crate::netlink::route::RouteEntry;
use crate::netlink::Netlink;
use crate::spec::{IpConfig, Route};
use crate::sysctl;

/// Configures `ifname` (already moved into this namespace): addresses, up, routes. Runs inside the namespace.
pub fn configure(ifname: &str, ns: &str, ips: &[IpConfig], routes: &[Route]) -> Result<Link, BridgeError> {
    let mut nl = Netlink::open()?;
    let link = nl
        .link_by_name(ifname, ns)?
        .ok_or_else(|| BridgeError::Vanished { what: format!("interface {ifname} in {ns}") })?;
    if ips.iter().any(|ip| ip.address.addr().is_ipv4()) {
        sysctl::set(&format!("net/ipv4/conf/{ifname}/arp_notify"), "1")?;
    }
    for ip in ips {
        nl.add_address(link.index, ifname, ip.address, ns)?;
    }
    nl.set_up(link.index, ifname)?;
    for r in routes {
        nl.add_route(r.dst, r.gw, link.index, ifname, ns)?;
    }
    Ok(link)
}

/// Deletes `ifname` (and so its veth peer on the host). Returns false if it was already gone.
pub fn delete(ifname: &str, ns: &str) -> Result<bool, BridgeError> {
    Ok(Netlink::open()?.delete_link_by_name(ifname, ns)?)
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
