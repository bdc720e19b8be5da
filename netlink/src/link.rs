//! Links: finding one by name, creating the bridge and the veth pair (peer created straight inside the container's
//! namespace), creating a VXLAN device (the kubelet's vxlan pod network), bringing links up, setting the MTU,
//! enslaving to the bridge, deleting.

use std::net::Ipv4Addr;
use std::os::fd::RawFd;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::RouteNetlinkMessage;

use super::{Netlink, NetlinkError};

const ENODEV: i32 = libc::ENODEV;

/// A VXLAN device as [`Netlink::create_vxlan`] makes it: unicast only (no multicast group), MAC learning off, so
/// the forwarding database holds only the entries its owner writes (`ip link add NAME type vxlan id VNI local
/// LOCAL dev UNDERLAY dstport PORT nolearning`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanSpec {
    /// The device's name.
    pub name: String,
    /// The VXLAN network identifier.
    pub vni: u32,
    /// The source address of the encapsulated packets (the node's address on the underlay).
    pub local: Ipv4Addr,
    /// The index of the underlay link the packets leave by.
    pub underlay: u32,
    /// The UDP destination port (the kernel's default is 8472, as flannel uses).
    pub port: u16,
    /// The device's MTU: the underlay's minus the 50 bytes of outer IPv4, UDP, VXLAN and Ethernet headers.
    pub mtu: u32,
}

/// What we need to know of a link.
#[derive(Debug, Clone)]
pub struct Link {
    /// The interface index (`ip link` prints it first).
    pub index: u32,
    /// The interface name (IFLA_IFNAME).
    pub name: String,
    /// The MAC address as `aa:bb:cc:dd:ee:ff` (empty for a link without one).
    pub mac: String,
    /// Whether the link is administratively up (IFF_UP).
    pub up: bool,
    /// The link's MTU, when the kernel reports one.
    pub mtu: Option<u32>,
    /// The index of the bridge (or other controller) the link is enslaved to.
    pub master: Option<u32>,
    /// The link's kind (bridge, veth...), from IFLA_LINKINFO; `None` for a plain device such as `lo`.
    pub kind: Option<InfoKind>,
    /// IFLA_LINK: for a veth, its peer's index (in the peer's namespace).
    pub peer_index: Option<u32>,
}

fn mac_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

impl Link {
    /// True for a bridge (callers outside this crate need not depend on netlink-packet-route for this).
    pub fn is_bridge(&self) -> bool {
        matches!(self.kind, Some(InfoKind::Bridge))
    }

    fn from_message(m: &LinkMessage) -> Link {
        let mut l = Link {
            index: m.header.index,
            name: String::new(),
            mac: String::new(),
            up: m.header.flags.contains(LinkFlags::Up),
            mtu: None,
            master: None,
            kind: None,
            peer_index: None,
        };
        for a in &m.attributes {
            match a {
                LinkAttribute::IfName(n) => l.name = n.clone(),
                LinkAttribute::Address(b) => l.mac = mac_string(b),
                LinkAttribute::Mtu(v) => l.mtu = Some(*v),
                LinkAttribute::Controller(v) => l.master = Some(*v),
                LinkAttribute::Link(v) => l.peer_index = Some(*v),
                LinkAttribute::LinkInfo(infos) => {
                    for i in infos {
                        if let LinkInfo::Kind(k) = i {
                            l.kind = Some(k.clone());
                        }
                    }
                }
                _ => {}
            }
        }
        l
    }
}

impl Netlink {
    /// The link called `name`, or `None` if there is none in this namespace.
    pub fn link_by_name(&mut self, name: &str, ns: &str) -> Result<Option<Link>, NetlinkError> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.request(RouteNetlinkMessage::GetLink(m), 0, || format!("look up link {name} in {ns}")) {
            Ok(replies) => Ok(replies.iter().find_map(|r| match r {
                RouteNetlinkMessage::NewLink(l) => Some(Link::from_message(l)),
                _ => None,
            })),
            Err(e) if e.errno() == Some(ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The link with index `index`, or `None`.
    pub fn link_by_index(&mut self, index: u32, ns: &str) -> Result<Option<Link>, NetlinkError> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        match self.request(RouteNetlinkMessage::GetLink(m), 0, || format!("look up link #{index} in {ns}")) {
            Ok(replies) => Ok(replies.iter().find_map(|r| match r {
                RouteNetlinkMessage::NewLink(l) => Some(Link::from_message(l)),
                _ => None,
            })),
            Err(e) if e.errno() == Some(ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates bridge `name` (up, with MAC `mac` and `mtu` if given). Returns false if it already existed.
    pub fn create_bridge(&mut self, name: &str, mac: [u8; 6], mtu: Option<u32>, promisc: bool) -> Result<bool, NetlinkError> {
        let mut m = LinkMessage::default();
        m.header.flags = LinkFlags::Up | if promisc { LinkFlags::Promisc } else { LinkFlags::empty() };
        m.header.change_mask = m.header.flags;
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        if let Some(mtu) = mtu {
            m.attributes.push(LinkAttribute::Mtu(mtu));
        }
        // A MAC of our own: a bridge with a kernel-chosen MAC takes the lowest MAC of its ports, so it would change
        // as pods come and go and leave their ARP caches pointing at a MAC that is gone.
        m.attributes.push(LinkAttribute::Address(mac.to_vec()));
        m.attributes.push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Bridge)]));
        match self.request(RouteNetlinkMessage::NewLink(m), NLM_F_CREATE | NLM_F_EXCL, || format!("create bridge {name}")) {
            Ok(_) => Ok(true),
            Err(e) if e.errno() == Some(libc::EEXIST) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Creates veth `host` (up, enslaved to `master`) whose peer `peer` is created inside the namespace open at
    /// `peer_netns_fd` (down, to be configured there).
    pub fn create_veth(
        &mut self,
        host: &str,
        peer: &str,
        peer_netns_fd: RawFd,
        master: u32,
        mtu: Option<u32>,
        what_ns: &str,
    ) -> Result<(), NetlinkError> {
        let mut p = LinkMessage::default();
        p.attributes.push(LinkAttribute::IfName(peer.to_string()));
        p.attributes.push(LinkAttribute::NetNsFd(peer_netns_fd));
        if let Some(mtu) = mtu {
            p.attributes.push(LinkAttribute::Mtu(mtu));
        }
        let mut m = LinkMessage::default();
        m.header.flags = LinkFlags::Up;
        m.header.change_mask = LinkFlags::Up;
        m.attributes.push(LinkAttribute::IfName(host.to_string()));
        if let Some(mtu) = mtu {
            m.attributes.push(LinkAttribute::Mtu(mtu));
        }
        m.attributes.push(LinkAttribute::Controller(master));
        m.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p))),
        ]));
        self.request(RouteNetlinkMessage::NewLink(m), NLM_F_CREATE | NLM_F_EXCL, || {
            format!("create veth {host} with peer {peer} in {what_ns}")
        })
        .map(|_| ())
    }

    /// Creates the VXLAN device `spec` (up). Returns false if a link of that name already existed (it is left
    /// as it is: the caller checks what it is).
    pub fn create_vxlan(&mut self, spec: &VxlanSpec, ns: &str) -> Result<bool, NetlinkError> {
        let mut m = LinkMessage::default();
        m.header.flags = LinkFlags::Up;
        m.header.change_mask = LinkFlags::Up;
        m.attributes.push(LinkAttribute::IfName(spec.name.clone()));
        m.attributes.push(LinkAttribute::Mtu(spec.mtu));
        m.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Vxlan),
            LinkInfo::Data(InfoData::Vxlan(vec![
                InfoVxlan::Id(spec.vni),
                InfoVxlan::Local(spec.local),
                InfoVxlan::Link(spec.underlay),
                InfoVxlan::Port(spec.port),
                InfoVxlan::Learning(false),
            ])),
        ]));
        match self.request(RouteNetlinkMessage::NewLink(m), NLM_F_CREATE | NLM_F_EXCL, || {
            format!("create vxlan {} (vni {}, local {}, dstport {}) in {ns}", spec.name, spec.vni, spec.local, spec.port)
        }) {
            Ok(_) => Ok(true),
            Err(e) if e.errno() == Some(libc::EEXIST) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The VXLAN settings of link `index` (VNI, local address, underlay link, port), or `None` if it is not a
    /// VXLAN device. `mtu` and `name` come from the link itself.
    pub fn vxlan_of(&mut self, index: u32, ns: &str) -> Result<Option<VxlanSpec>, NetlinkError> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        let replies = self.request(RouteNetlinkMessage::GetLink(m), 0, || format!("look up link #{index} in {ns}"))?;
        for r in replies {
            let RouteNetlinkMessage::NewLink(l) = r else { continue };
            let link = Link::from_message(&l);
            let mut spec = VxlanSpec { name: link.name, vni: 0, local: Ipv4Addr::UNSPECIFIED, underlay: 0, port: 0, mtu: link.mtu.unwrap_or(0) };
            let mut is_vxlan = false;
            for a in &l.attributes {
                let LinkAttribute::LinkInfo(infos) = a else { continue };
                for i in infos {
                    match i {
                        LinkInfo::Kind(InfoKind::Vxlan) => is_vxlan = true,
                        LinkInfo::Data(InfoData::Vxlan(v)) => {
                            for x in v {
                                match x {
                                    InfoVxlan::Id(id) => spec.vni = *id,
                                    InfoVxlan::Local(ip) => spec.local = *ip,
                                    InfoVxlan::Link(u) => spec.underlay = *u,
                                    InfoVxlan::Port(p) => spec.port = *p,
                                    _ => {}
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            return Ok(is_vxlan.then_some(spec));
        }
        Ok(None)
    }

    /// Sets link `index`'s MTU.
    pub fn set_mtu(&mut self, index: u32, name: &str, mtu: u32, ns: &str) -> Result<(), NetlinkError> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.attributes.push(LinkAttribute::Mtu(mtu));
        self.request(RouteNetlinkMessage::SetLink(m), 0, || format!("set mtu {mtu} on {name} in {ns}")).map(|_| ())
    }

    /// Sets flags on link `index` (only those in `mask` change).
    pub fn set_flags(&mut self, index: u32, name: &str, flags: LinkFlags, mask: LinkFlags) -> Result<(), NetlinkError> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.header.flags = flags;
        m.header.change_mask = mask;
        self.request(RouteNetlinkMessage::SetLink(m), 0, || format!("set flags {flags:?} on link {name}")).map(|_| ())
    }

    /// Brings link `index` up (`name` is for errors).
    pub fn set_up(&mut self, index: u32, name: &str) -> Result<(), NetlinkError> {
        self.set_flags(index, name, LinkFlags::Up, LinkFlags::Up)
    }

    /// Sets link `index`'s MAC to `mac` (its current one), which makes the kernel announce its addresses.
    pub fn announce(&mut self, index: u32, name: &str, mac: &str, ns: &str) -> Result<(), NetlinkError> {
        let bytes: Vec<u8> = mac.split(':').filter_map(|b| u8::from_str_radix(b, 16).ok()).collect();
        if bytes.len() != 6 {
            return Ok(());
        }
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.attributes.push(LinkAttribute::Address(bytes));
        self.request(RouteNetlinkMessage::SetLink(m), 0, || format!("announce the addresses of {name} in {ns}")).map(|_| ())
    }

    /// Deletes the link called `name` (one request, no lookup). Returns false if there was none.
    pub fn delete_link_by_name(&mut self, name: &str, ns: &str) -> Result<bool, NetlinkError> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.request(RouteNetlinkMessage::DelLink(m), 0, || format!("delete link {name} in {ns}")) {
            Ok(_) => Ok(true),
            Err(e) if e.errno() == Some(ENODEV) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deletes link `index`; a link already gone is not an error.
    pub fn delete_link(&mut self, index: u32, name: &str, ns: &str) -> Result<(), NetlinkError> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        match self.request(RouteNetlinkMessage::DelLink(m), 0, || format!("delete link {name} in {ns}")) {
            Ok(_) => Ok(()),
            Err(e) if e.errno() == Some(ENODEV) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
