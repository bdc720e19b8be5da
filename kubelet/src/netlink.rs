//! The kubelet's own few rtnetlink calls, for the links it owns: bringing a pod's `lo` up (from a thread inside
//! the pod's namespace, [`crate::pod::network::loopback_up`]) and the cluster DNS bridge with its address
//! ([`crate::dns::local_address`]). One `NETLINK_ROUTE` socket, one request at a time, waiting for the kernel's
//! ACK or dump: a handful of requests per pod or per start, not worth an async client.
//!
//! Must not: make pod networks (veths, the pods' bridge, routes, IPAM): those are the CNI plugins', reached
//! through [`crate::pod::cni_client`]. A socket belongs to the network namespace of the thread that opened it.

use std::io;
use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST};
use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// A failed netlink request; `what` names the link or address and the namespace.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("open netlink socket: {0}")]
    Socket(#[source] io::Error),
    #[error("{what}: {source}")]
    Request {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("{what}: the kernel's reply could not be decoded: {reason}")]
    Decode { what: String, reason: String },
}

impl NetlinkError {
    fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Request { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

const ENODEV: i32 = nix::errno::Errno::ENODEV as i32;
const EEXIST: i32 = nix::errno::Errno::EEXIST as i32;
const EADDRNOTAVAIL: i32 = nix::errno::Errno::EADDRNOTAVAIL as i32;

/// What the kubelet needs to know of a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub up: bool,
    pub bridge: bool,
}

/// An rtnetlink socket bound to the namespace it was opened in.
pub struct Netlink {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Netlink {
    pub fn open() -> Result<Netlink, NetlinkError> {
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(NetlinkError::Socket)?;
        sock.bind_auto().map_err(NetlinkError::Socket)?;
        sock.connect(&SocketAddr::new(0, 0)).map_err(NetlinkError::Socket)?;
        Ok(Netlink { sock, seq: 0, buf: vec![0u8; 64 * 1024] })
    }

    /// Sends `msg` with `flags` (NLM_F_REQUEST and NLM_F_ACK added) and collects replies until the ACK, the end
    /// of a dump, or an error.
    fn request(&mut self, msg: RouteNetlinkMessage, flags: u16, what: impl Fn() -> String) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut header = NetlinkHeader::default();
        header.flags = flags | NLM_F_REQUEST | NLM_F_ACK;
        header.sequence_number = seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        packet.finalize();
        let mut out = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut out);
        self.sock.send(&out, 0).map_err(|source| NetlinkError::Request { what: what(), source })?;
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut replies = Vec::new();
        loop {
            let n = self.sock.recv(&mut &mut self.buf[..], 0).map_err(|source| NetlinkError::Request { what: what(), source })?;
            let mut off = 0;
            while off < n {
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[off..n])
                    .map_err(|e| NetlinkError::Decode { what: what(), reason: e.to_string() })?;
                let len = reply.header.length as usize;
                if len == 0 {
                    break;
                }
                off += (len + 3) & !3;
                if reply.header.sequence_number != seq {
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::InnerMessage(m) => replies.push(m),
                    NetlinkPayload::Error(e) if e.code.is_none() => {
                        if !dump {
                            return Ok(replies);
                        }
                    }
                    NetlinkPayload::Error(e) => return Err(NetlinkError::Request { what: what(), source: e.to_io() }),
                    NetlinkPayload::Done(_) => return Ok(replies),
                    _ => {}
                }
            }
        }
    }

    /// The link called `name`, or None if there is none in this namespace (`ns` names it in errors).
    pub fn link_by_name(&mut self, name: &str, ns: &str) -> Result<Option<Link>, NetlinkError> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.request(RouteNetlinkMessage::GetLink(m), 0, || format!("look up link {name} in {ns}")) {
            Ok(replies) => Ok(replies.iter().find_map(|r| match r {
                RouteNetlinkMessage::NewLink(l) => Some(Link {
                    index: l.header.index,
                    up: l.header.flags.contains(LinkFlags::Up),
                    bridge: l.attributes.iter().any(|a| matches!(a, LinkAttribute::LinkInfo(i) if i.iter().any(|k| matches!(k, LinkInfo::Kind(InfoKind::Bridge))))),
                }),
                _ => None,
            })),
            Err(e) if e.errno() == Some(ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates bridge `name`, up, with MAC `mac` (a MAC of its own: a bridge otherwise takes its lowest port's).
    /// Returns false if a link of that name already existed.
    pub fn create_bridge(&mut self, name: &str, mac: [u8; 6]) -> Result<bool, NetlinkError> {
        let mut m = LinkMessage::default();
        m.header.flags = LinkFlags::Up;
        m.header.change_mask = LinkFlags::Up;
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        m.attributes.push(LinkAttribute::Address(mac.to_vec()));
        m.attributes.push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Bridge)]));
        match self.request(RouteNetlinkMessage::NewLink(m), NLM_F_CREATE | NLM_F_EXCL, || format!("create bridge {name}")) {
            Ok(_) => Ok(true),
            Err(e) if e.errno() == Some(EEXIST) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Brings link `index` up.
    pub fn set_up(&mut self, index: u32, name: &str) -> Result<(), NetlinkError> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.header.flags = LinkFlags::Up;
        m.header.change_mask = LinkFlags::Up;
        self.request(RouteNetlinkMessage::SetLink(m), 0, || format!("bring link {name} up")).map(|_| ())
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

    fn address_message(index: u32, addr: IpNet) -> AddressMessage {
        let mut m = AddressMessage::default();
        m.header.family = if addr.addr().is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
        m.header.prefix_len = addr.prefix_len();
        m.header.index = index;
        m.attributes.push(AddressAttribute::Local(addr.addr()));
        m.attributes.push(AddressAttribute::Address(addr.addr()));
        m
    }

    /// Adds `addr` to link `index`. Returns false if the link already had it.
    pub fn add_address(&mut self, index: u32, link: &str, addr: IpNet, ns: &str) -> Result<bool, NetlinkError> {
        let mut m = Self::address_message(index, addr);
        m.header.scope = AddressScope::Universe;
        if let IpNet::V4(v4) = addr {
            m.attributes.push(AddressAttribute::Broadcast(v4.broadcast()));
        }
        match self.request(RouteNetlinkMessage::NewAddress(m), NLM_F_CREATE | NLM_F_EXCL, || format!("add address {addr} to {link} in {ns}")) {
            Ok(_) => Ok(true),
            Err(e) if e.errno() == Some(EEXIST) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Removes `addr` from link `index`. Returns false if the link did not have it.
    pub fn del_address(&mut self, index: u32, link: &str, addr: IpNet, ns: &str) -> Result<bool, NetlinkError> {
        let m = Self::address_message(index, addr);
        match self.request(RouteNetlinkMessage::DelAddress(m), 0, || format!("remove address {addr} from {link} in {ns}")) {
            Ok(_) => Ok(true),
            Err(e) if e.errno() == Some(EADDRNOTAVAIL) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The addresses (with prefix) on link `index`.
    pub fn addresses(&mut self, index: u32, link: &str, ns: &str) -> Result<Vec<IpNet>, NetlinkError> {
        let replies = self.request(RouteNetlinkMessage::GetAddress(AddressMessage::default()), NLM_F_DUMP, || format!("list addresses of {link} in {ns}"))?;
        let mut out = Vec::new();
        for r in replies {
            let RouteNetlinkMessage::NewAddress(a) = r else { continue };
            if a.header.index != index {
                continue;
            }
            let ip: Option<IpAddr> = a
                .attributes
                .iter()
                .find_map(|at| match at {
                    AddressAttribute::Local(ip) => Some(*ip),
                    _ => None,
                })
                .or_else(|| a.attributes.iter().find_map(|at| match at {
                    AddressAttribute::Address(ip) => Some(*ip),
                    _ => None,
                }));
            if let Some(net) = ip.and_then(|ip| IpNet::new(ip, a.header.prefix_len).ok()) {
                out.push(net);
            }
        }
        Ok(out)
    }
}
