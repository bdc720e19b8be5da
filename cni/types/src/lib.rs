//! The CNI specification (1.0.0, with 0.3.x/0.4.0 configs and 1.1.0's STATUS and GC) as data and protocol, shared
//! by both sides of it: rkube's plugins (`rkube-cni`, which read a config on stdin and print a result) and the
//! kubelet's CNI client (`rkube_kubelet::pod::cni_client`, which loads a network and runs its plugins).
//!
//! - [`config`]: network configurations and conflists; [`result`]: the ADD result and `prevResult`;
//!   [`error`]: the error object and its codes; [`version`]: the versions spoken;
//! - [`exec`]: the exec protocol: the `CNI_*` environment and running a plugin from `CNI_PATH` with a config on
//!   stdin (a runtime runs the chain this way, and a plugin its IPAM delegate).
//!
//! Must not: touch the network (no netlink, nftables or sysctl: that is the plugins'), or depend on any crate
//! of this workspace (the layering test holds it a leaf).

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod config;
pub mod error;
pub mod exec;
pub mod result;
pub mod version;

pub use config::{ConfList, NetConf};
pub use error::{code, CniError};
pub use result::{CniResult, Dns, Interface, IpConfig, Route};
