//! Routes in the main table: adding one (via a gateway or on-link) and listing them for CHECK; replacing,
//! deleting and listing the routes of one protocol on one link (the kubelet's vxlan pod network).

use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::{Netlink, NetlinkError};

/// A route as CHECK compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteEntry {
    /// The destination (`0.0.0.0/0` or `::/0` for a default route).
    pub dst: IpNet,
    /// The gateway, for a route via one.
    pub gw: Option<IpAddr>,
    /// The index of the link the route goes out of.
    pub oif: Option<u32>,
}

fn route_ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v) => Some(IpAddr::V4(*v)),
        RouteAddress::Inet6(v) => Some(IpAddr::V6(*v)),
        _ => None,
    }
}

/// An IPv4 route via a gateway that is on-link on `oif` whatever its address (`ip route replace DST via GW dev
/// OIF onlink proto PROTOCOL`): the gateway need not be in a subnet of the link, as a VXLAN peer's VTEP is not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnlinkRoute {
    /// The destination.
    pub dst: IpNet,
    /// The gateway.
    pub gw: IpAddr,
    /// The index of the link the route goes out of.
    pub oif: u32,
    /// The routing protocol number the route carries, so its owner tells it from others'.
    pub protocol: u8,
}

fn onlink_message(r: &OnlinkRoute) -> RouteMessage {
    let dst = r.dst.trunc();
    let mut m = RouteMessage::default();
    m.header.address_family = if dst.addr().is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
    m.header.destination_prefix_length = dst.prefix_len();
    m.header.table = RouteHeader::RT_TABLE_MAIN;
    m.header.protocol = RouteProtocol::from(r.protocol);
    m.header.scope = RouteScope::Universe;
    m.header.kind = RouteType::Unicast;
    m.header.flags = RouteFlags::Onlink;
    m.attributes.push(RouteAttribute::Destination(dst.addr().into()));
    m.attributes.push(RouteAttribute::Gateway(r.gw.into()));
    m.attributes.push(RouteAttribute::Oif(r.oif));
    m
}

impl Netlink {
    /// Adds `r`, or replaces the route to its destination (same table, same metric) with it.
    pub fn replace_onlink_route(&mut self, r: &OnlinkRoute, link: &str, ns: &str) -> Result<(), NetlinkError> {
        self.request(RouteNetlinkMessage::NewRoute(onlink_message(r)), NLM_F_CREATE | NLM_F_REPLACE, || {
            format!("replace route {} via {} dev {link} onlink proto {} in {ns}", r.dst, r.gw, r.protocol)
        })
        .map(|_| ())
    }

    /// Deletes `r` (destination, gateway, link and protocol must all match). Returns false if there was none.
    pub fn delete_onlink_route(&mut self, r: &OnlinkRoute, link: &str, ns: &str) -> Result<bool, NetlinkError> {
        match self.request(RouteNetlinkMessage::DelRoute(onlink_message(r)), 0, || {
            format!("delete route {} via {} dev {link} proto {} in {ns}", r.dst, r.gw, r.protocol)
        }) {
            Ok(_) => Ok(true),
            Err(e) if e.errno() == Some(libc::ESRCH) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The IPv4 routes of the main table with protocol `protocol` out of link `oif` that go via a gateway.
    pub fn onlink_routes(&mut self, oif: u32, protocol: u8, ns: &str) -> Result<Vec<OnlinkRoute>, NetlinkError> {
        let mut m = RouteMessage::default();
        m.header.address_family = AddressFamily::Inet;
        let replies = self.request(RouteNetlinkMessage::GetRoute(m), NLM_F_DUMP, || format!("list routes in {ns}"))?;
        let mut out = Vec::new();
        for r in replies {
            let RouteNetlinkMessage::NewRoute(rt) = r else { continue };
            if rt.header.table != RouteHeader::RT_TABLE_MAIN || u8::from(rt.header.protocol) != protocol {
                continue;
            }
            let (mut dst, mut gw, mut out_if) = (None, None, None);
            for a in &rt.attributes {
                match a {
                    RouteAttribute::Destination(d) => dst = route_ip(d),
                    RouteAttribute::Gateway(g) => gw = route_ip(g),
                    RouteAttribute::Oif(o) => out_if = Some(*o),
                    _ => {}
                }
            }
            let (Some(dst), Some(gw)) = (dst, gw) else { continue };
            if out_if != Some(oif) {
                continue;
            }
            let Ok(dst) = IpNet::new(dst, rt.header.destination_prefix_length) else { continue };
            out.push(OnlinkRoute { dst, gw, oif, protocol });
        }
        Ok(out)
    }

    /// Adds a route to `dst` via `gw` (or on-link when `gw` is None) out of link `oif`. Returns false if it existed.
    pub fn add_route(
        &mut self,
        dst: IpNet,
        gw: Option<IpAddr>,
        oif: u32,
        link: &str,
        ns: &str,
    ) -> Result<bool, NetlinkError> {
        let dst = dst.trunc();
        let mut m = RouteMessage::default();
        m.header.address_family = if dst.addr().is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
        m.header.destination_prefix_length = dst.prefix_len();
        m.header.table = RouteHeader::RT_TABLE_MAIN;
        m.header.protocol = RouteProtocol::Boot;
        m.header.scope = if gw.is_some() { RouteScope::Universe } else { RouteScope::Link };
        m.header.kind = RouteType::Unicast;
        if dst.prefix_len() > 0 {
            m.attributes.push(RouteAttribute::Destination(dst.addr().into()));
        }
        if let Some(gw) = gw {
            m.attributes.push(RouteAttribute::Gateway(gw.into()));
        }
        m.attributes.push(RouteAttribute::Oif(oif));
        let via = gw.map(|g| format!(" via {g}")).unwrap_or_default();
        match self.request(RouteNetlinkMessage::NewRoute(m), NLM_F_CREATE | NLM_F_EXCL, || {
            format!("add route {dst}{via} dev {link} in {ns}")
        }) {
            Ok(_) => Ok(true),
            Err(e) if e.errno() == Some(libc::EEXIST) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Routes of the main table in this namespace, for family of `v4`.
    pub fn routes(&mut self, v4: bool, ns: &str) -> Result<Vec<RouteEntry>, NetlinkError> {
        let mut m = RouteMessage::default();
        m.header.address_family = if v4 { AddressFamily::Inet } else { AddressFamily::Inet6 };
        let replies = self.request(RouteNetlinkMessage::GetRoute(m), NLM_F_DUMP, || format!("list routes in {ns}"))?;
        let mut out = Vec::new();
        for r in replies {
            let RouteNetlinkMessage::NewRoute(rt) = r else { continue };
            if rt.header.table != RouteHeader::RT_TABLE_MAIN {
                continue;
            }
            let mut dst = None;
            let mut gw = None;
            let mut oif = None;
            for a in &rt.attributes {
                match a {
                    RouteAttribute::Destination(d) => dst = route_ip(d),
                    RouteAttribute::Gateway(g) => gw = route_ip(g),
                    RouteAttribute::Oif(o) => oif = Some(*o),
                    _ => {}
                }
            }
            let unspecified: IpAddr = if v4 { [0u8; 4].into() } else { [0u16; 8].into() };
            let Ok(dst) = IpNet::new(dst.unwrap_or(unspecified), rt.header.destination_prefix_length) else { continue };
            out.push(RouteEntry { dst, gw, oif });
        }
        Ok(out)
    }
}
