//! Addresses: adding one to a link (IPv6 without duplicate address detection, so it is usable at once),
//! removing one, and listing a link's addresses.

use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL};
use netlink_packet_route::address::{AddressAttribute, AddressHeaderFlags, AddressMessage, AddressScope};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::{Netlink, NetlinkError};

fn family(ip: IpAddr) -> AddressFamily {
    if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

impl Netlink {
    /// Adds `addr` to link `index`. Returns false if the link already had it.
    pub fn add_address(&mut self, index: u32, link: &str, addr: IpNet, ns: &str) -> Result<bool, NetlinkError> {
        let mut m = AddressMessage::default();
        m.header.family = family(addr.addr());
        m.header.prefix_len = addr.prefix_len();
        m.header.index = index;
        m.header.scope = AddressScope::Universe;
        if addr.addr().is_ipv6() {
            m.header.flags = AddressHeaderFlags::Nodad;
        }
        m.attributes.push(AddressAttribute::Local(addr.addr()));
        m.attributes.push(AddressAttribute::Address(addr.addr()));
        if let IpNet::V4(v4) = addr {
            m.attributes.push(AddressAttribute::Broadcast(v4.broadcast()));
        }
        match self.request(RouteNetlinkMessage::NewAddress(m), NLM_F_CREATE | NLM_F_EXCL, || {
            format!("add address {addr} to {link} in {ns}")
        }) {
            Ok(_) => Ok(true),
            Err(e) if e.errno() == Some(libc::EEXIST) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Removes `addr` from link `index`. Returns false if the link did not have it.
    pub fn del_address(&mut self, index: u32, link: &str, addr: IpNet, ns: &str) -> Result<bool, NetlinkError> {
        let mut m = AddressMessage::default();
        m.header.family = family(addr.addr());
        m.header.prefix_len = addr.prefix_len();
        m.header.index = index;
        m.attributes.push(AddressAttribute::Local(addr.addr()));
        m.attributes.push(AddressAttribute::Address(addr.addr()));
        match self.request(RouteNetlinkMessage::DelAddress(m), 0, || format!("remove address {addr} from {link} in {ns}")) {
            Ok(_) => Ok(true),
            // the kernel answers EADDRNOTAVAIL for an address the link does not hold
            Err(e) if e.errno() == Some(libc::EADDRNOTAVAIL) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The addresses (with prefix) on link `index`.
    pub fn addresses(&mut self, index: u32, link: &str, ns: &str) -> Result<Vec<IpNet>, NetlinkError> {
        let m = AddressMessage::default();
        let replies = self.request(RouteNetlinkMessage::GetAddress(m), NLM_F_DUMP, || {
            format!("list addresses of {link} in {ns}")
        })?;
        let mut out = Vec::new();
        for r in replies {
            let RouteNetlinkMessage::NewAddress(a) = r else { continue };
            if a.header.index != index {
                continue;
            }
            let ip = a.attributes.iter().find_map(|at| match at {
                AddressAttribute::Local(ip) => Some(*ip),
                _ => None,
            });
            let ip = ip.or_else(|| {
                a.attributes.iter().find_map(|at| match at {
                    AddressAttribute::Address(ip) => Some(*ip),
                    _ => None,
                })
            });
            if let Some(ip) = ip {
                if let Ok(net) = IpNet::new(ip, a.header.prefix_len) {
                    out.push(net);
                }
            }
        }
        Ok(out)
    }

    /// The index of the link holding address `ip` (any prefix), or `None`.
    pub fn link_with_address(&mut self, ip: IpAddr, ns: &str) -> Result<Option<u32>, NetlinkError> {
        let m = AddressMessage::default();
        let replies = self.request(RouteNetlinkMessage::GetAddress(m), NLM_F_DUMP, || format!("list addresses in {ns}"))?;
        for r in replies {
            let RouteNetlinkMessage::NewAddress(a) = r else { continue };
            let holds = a.attributes.iter().any(|at| matches!(at, AddressAttribute::Local(x) | AddressAttribute::Address(x) if *x == ip));
            if holds {
                return Ok(Some(a.header.index));
            }
        }
        Ok(None)
    }
}
