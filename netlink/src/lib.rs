//! A small synchronous rtnetlink client: one `NETLINK_ROUTE` socket, one request at a time, waiting for the
//! kernel's ACK or dump. Synchronous on purpose: a CNI plugin lives for one call, and an async runtime would cost
//! more to start than the few requests it makes; the kubelet makes a handful per pod or per start.
//!
//! Shared by the CNI plugins (`cni/`: bridges, veths, addresses, routes, neighbours for pods) and the kubelet
//! (a pod's `lo`, the cluster DNS bridge): the socket, the request/ACK loop and the attribute building and
//! parsing are written once, here. One module per object: [`link`], [`addr`], [`route`], [`neigh`].
//!
//! A socket belongs to the network namespace of the thread that opened it, so a socket opened inside a
//! container's namespace configures that namespace from any thread.
//!
//! Must not: depend on any crate of rkube's (it is a leaf, as the layering test holds), know about pods, CNI or
//! the API, or hold `unsafe` code (netlink-sys owns the socket calls).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod addr;
pub mod link;
pub mod neigh;
pub mod route;

use std::io;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// A failed netlink request; `what` names the link, address or route and the namespace.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The socket could not be opened, bound or connected.
    #[error("open netlink socket: {0}")]
    Socket(#[source] io::Error),
    /// Sending, receiving, or the kernel refused the request (its errno is in `source`).
    #[error("{what}: {source}")]
    Request {
        /// What was asked, e.g. `add address 10.0.0.1/24 to eth0 in <netns>`.
        what: String,
        /// The socket's error, or the kernel's errno as an `io::Error`.
        #[source]
        source: io::Error,
    },
    /// The kernel answered something this client could not parse.
    #[error("{what}: the kernel's reply could not be decoded: {reason}")]
    Decode {
        /// What was asked.
        what: String,
        /// The decoder's complaint.
        reason: String,
    },
}

impl NetlinkError {
    /// The kernel's errno, if the kernel refused the request.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Request { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// An rtnetlink socket bound to the namespace it was opened in.
pub struct Netlink {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Netlink {
    /// Opens and binds a `NETLINK_ROUTE` socket in the calling thread's network namespace.
    pub fn open() -> Result<Netlink, NetlinkError> {
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(NetlinkError::Socket)?;
        sock.bind_auto().map_err(NetlinkError::Socket)?;
        sock.connect(&SocketAddr::new(0, 0)).map_err(NetlinkError::Socket)?;
        Ok(Netlink { sock, seq: 0, buf: vec![0u8; 64 * 1024] })
    }

    /// Sends `msg` with `flags` (NLM_F_REQUEST and NLM_F_ACK are added) and collects replies until the ACK,
    /// the end of a dump, or an error.
    pub fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        what: impl Fn() -> String,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
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
            let n = self
                .sock
                .recv(&mut &mut self.buf[..], 0)
                .map_err(|source| NetlinkError::Request { what: what(), source })?;
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
                    NetlinkPayload::Error(e) => {
                        if e.code.is_none() {
                            if !dump {
                                return Ok(replies);
                            }
                        } else {
                            return Err(NetlinkError::Request { what: what(), source: e.to_io() });
                        }
                    }
                    NetlinkPayload::Done(_) => return Ok(replies),
                    _ => {}
                }
            }
        }
    }
}
