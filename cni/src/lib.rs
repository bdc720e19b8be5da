//! rkube's CNI plugins: `rkube-bridge` (bridge + veth) and `rkube-host-local` (IPAM), per CNI spec 1.0.0, also
//! accepting 0.3.x/0.4.0 configs and answering STATUS and GC from 1.1.0.
//!
//! The library holds everything; the two binaries only call [`plugin::run`] with their plugin. Link, address,
//! route, neighbour, nftables and sysctl work goes through netlink (links, addresses, routes and neighbours through
//! `rkube-netlink`, the rtnetlink client shared with the kubelet), procfs and sysfs in-process; the only program
//! ever executed is the IPAM delegate named by `ipam.type` (and not even that for `rkube-host-local`, which runs
//! in-process). The other side of the protocol (loading a network, running the chain) is the kubelet's own
//! `pod::cni_client`; both share the spec's types and the exec protocol through `rkube-cni-types`. `unsafe` lives in [`sys`] only.

#![cfg_attr(test, allow(clippy::unwrap_used))]
#![warn(missing_docs)]

pub(crate) mod spec;
/// The exec protocol (the `CNI_*` environment, running a delegate), from the shared `rkube-cni-types`.
pub use rkube_cni_types::exec;
pub mod plugin;
pub mod ipam;
pub(crate) mod netns;
pub(crate) mod sys;
pub(crate) mod sysctl;
pub mod bridge;
pub mod nft;
pub(crate) mod trace;
