//! Routes in the main table: adding one (via a gateway or on-link) and listing them for CHECK.

use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
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

impl Netlink {
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
