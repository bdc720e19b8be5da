//! Neighbour (ARP/NDP) entries: forgetting the host's entry for an address, so an address handed out again to a
//! new container (with a new MAC) is resolved afresh instead of going to the old MAC for the ARP lock time.

use std::net::IpAddr;

use netlink_packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::{Netlink, NetlinkError};

impl Netlink {
    /// Deletes the neighbour entry for `ip` on link `index`; no entry is not an error.
    pub fn forget_neighbour(&mut self, index: u32, link: &str, ip: IpAddr) -> Result<(), NetlinkError> {
        let mut m = NeighbourMessage::default();
        m.header.ifindex = index;
        m.header.family = if ip.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
        let addr = match ip {
            IpAddr::V4(a) => NeighbourAddress::from(a),
            IpAddr::V6(a) => NeighbourAddress::from(a),
        };
        m.attributes.push(NeighbourAttribute::Destination(addr));
        match self.request(RouteNetlinkMessage::DelNeighbour(m), 0, || format!("forget neighbour {ip} on {link}")) {
            Ok(_) => Ok(()),
            Err(e) if e.errno() == Some(libc::ENOENT) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
