//! The kubelet's rtnetlink calls, for the links it owns: bringing a pod's `lo` up (from a thread inside the
//! pod's namespace, [`crate::pod::network::loopback_up`]) and the cluster DNS bridge with its address
//! ([`crate::dns::local_address`]). The client is `rkube-netlink`, the leaf crate the CNI plugins use too (one
//! socket, one request at a time, waiting for the kernel's ACK or dump: a handful of requests per pod or per
//! start, not worth an async client).
//!
//! Must not: make pod networks (veths, the pods' bridge, routes, IPAM): those are the CNI plugins', reached
//! through [`crate::pod::cni_client`]. A socket belongs to the network namespace of the thread that opened it.

pub use rkube_netlink::link::Link;
pub use rkube_netlink::{Netlink, NetlinkError};
