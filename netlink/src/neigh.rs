//! Neighbour (ARP/NDP) entries: forgetting the host's entry for an address, so an address handed out again to a
//! new container (with a new MAC) is resolved afresh instead of going to the old MAC for the ARP lock time.
//! Permanent entries and a VXLAN device's forwarding database (`bridge fdb`: which remote address a MAC is
//! behind), written and listed for the kubelet's vxlan pod network.

use std::net::{IpAddr, Ipv4Addr};

use netlink_packet_core::{NLM_F_CREATE, NLM_F_DUMP, NLM_F_REPLACE};
use netlink_packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(mac: &str) -> Option<[u8; 6]> {
    let bytes: Vec<u8> = mac.split(':').map(|b| if b.len() == 2 { u8::from_str_radix(b, 16).ok() } else { None }).collect::<Option<_>>()?;
    bytes.try_into().ok()
}

fn mac_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// A permanent neighbour entry (`ip neigh replace IP lladdr MAC dev LINK nud permanent`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Neighbour {
    /// The address.
    pub ip: Ipv4Addr,
    /// Its link-layer address, `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
}

/// A forwarding database entry of a VXLAN device (`bridge fdb replace MAC dev LINK dst IP self permanent`):
/// frames for `mac` are sent, encapsulated, to `dst`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FdbEntry {
    /// The MAC, `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// The remote VTEP's underlay address.
    pub dst: Ipv4Addr,
}

fn bad_mac(what: String, mac: &str) -> NetlinkError {
    NetlinkError::Request { what, source: std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{mac:?} is not a MAC address (aa:bb:cc:dd:ee:ff)")) }
}

fn neighbour_message(index: u32, n: &Neighbour) -> Option<NeighbourMessage> {
    let mut m = NeighbourMessage::default();
    m.header.ifindex = index;
    m.header.family = AddressFamily::Inet;
    m.header.state = NeighbourState::Permanent;
    m.attributes.push(NeighbourAttribute::Destination(NeighbourAddress::from(n.ip)));
    m.attributes.push(NeighbourAttribute::LinkLocalAddress(parse_mac(&n.mac)?.to_vec()));
    Some(m)
}

fn fdb_message(index: u32, f: &FdbEntry) -> Option<NeighbourMessage> {
    let mut m = NeighbourMessage::default();
    m.header.ifindex = index;
    m.header.family = AddressFamily::Bridge;
    m.header.state = NeighbourState::Permanent;
    // NTF_SELF: the entry is the VXLAN device's own, not a bridge's
    m.header.flags = NeighbourFlags::Own;
    m.attributes.push(NeighbourAttribute::LinkLocalAddress(parse_mac(&f.mac)?.to_vec()));
    m.attributes.push(NeighbourAttribute::Destination(NeighbourAddress::Other(f.dst.octets().to_vec())));
    Some(m)
}

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

    /// Adds or replaces the permanent entry `n` on link `index`.
    pub fn replace_neighbour(&mut self, index: u32, link: &str, n: &Neighbour, ns: &str) -> Result<(), NetlinkError> {
        let what = || format!("replace neighbour {} lladdr {} dev {link} in {ns}", n.ip, n.mac);
        let m = neighbour_message(index, n).ok_or_else(|| bad_mac(what(), &n.mac))?;
        self.request(RouteNetlinkMessage::NewNeighbour(m), NLM_F_CREATE | NLM_F_REPLACE, what).map(|_| ())
    }

    /// The permanent IPv4 entries of link `index`.
    pub fn permanent_neighbours(&mut self, index: u32, link: &str, ns: &str) -> Result<Vec<Neighbour>, NetlinkError> {
        let mut m = NeighbourMessage::default();
        m.header.family = AddressFamily::Inet;
        let replies = self.request(RouteNetlinkMessage::GetNeighbour(m), NLM_F_DUMP, || format!("list neighbours of {link} in {ns}"))?;
        let mut out = Vec::new();
        for r in replies {
            let RouteNetlinkMessage::NewNeighbour(n) = r else { continue };
            if n.header.ifindex != index || n.header.state != NeighbourState::Permanent {
                continue;
            }
            let (mut ip, mut mac) = (None, None);
            for a in &n.attributes {
                match a {
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(v)) => ip = Some(*v),
                    NeighbourAttribute::LinkLocalAddress(b) => mac = Some(mac_string(b)),
                    _ => {}
                }
            }
            if let (Some(ip), Some(mac)) = (ip, mac) {
                out.push(Neighbour { ip, mac });
            }
        }
        Ok(out)
    }

    /// Adds or replaces the forwarding entry `f` of VXLAN device `index`.
    pub fn replace_fdb(&mut self, index: u32, link: &str, f: &FdbEntry, ns: &str) -> Result<(), NetlinkError> {
        let what = || format!("replace fdb {} dev {link} dst {} in {ns}", f.mac, f.dst);
        let m = fdb_message(index, f).ok_or_else(|| bad_mac(what(), &f.mac))?;
        self.request(RouteNetlinkMessage::NewNeighbour(m), NLM_F_CREATE | NLM_F_REPLACE, what).map(|_| ())
    }

    /// Deletes the forwarding entry `f` of device `index`; none is not an error.
    pub fn delete_fdb(&mut self, index: u32, link: &str, f: &FdbEntry, ns: &str) -> Result<(), NetlinkError> {
        let what = || format!("delete fdb {} dev {link} dst {} in {ns}", f.mac, f.dst);
        let m = fdb_message(index, f).ok_or_else(|| bad_mac(what(), &f.mac))?;
        match self.request(RouteNetlinkMessage::DelNeighbour(m), 0, what) {
            Ok(_) => Ok(()),
            Err(e) if e.errno() == Some(libc::ENOENT) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The forwarding entries of device `index` that name a remote address (`bridge fdb show dev LINK` lines
    /// with `dst`).
    pub fn fdb(&mut self, index: u32, link: &str, ns: &str) -> Result<Vec<FdbEntry>, NetlinkError> {
        let mut m = NeighbourMessage::default();
        m.header.family = AddressFamily::Bridge;
        let replies = self.request(RouteNetlinkMessage::GetNeighbour(m), NLM_F_DUMP, || format!("list fdb of {link} in {ns}"))?;
        let mut out = Vec::new();
        for r in replies {
            let RouteNetlinkMessage::NewNeighbour(n) = r else { continue };
            if n.header.ifindex != index {
                continue;
            }
            let (mut dst, mut mac) = (None, None);
            for a in &n.attributes {
                match a {
                    NeighbourAttribute::Destination(NeighbourAddress::Other(b)) if b.len() == 4 => dst = Some(Ipv4Addr::new(b[0], b[1], b[2], b[3])),
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(v)) => dst = Some(*v),
                    NeighbourAttribute::LinkLocalAddress(b) => mac = Some(mac_string(b)),
                    _ => {}
                }
            }
            if let (Some(dst), Some(mac)) = (dst, mac) {
                out.push(FdbEntry { mac, dst });
            }
        }
        Ok(out)
    }
}
