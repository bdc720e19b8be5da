//! The CNI specification's data types: network configuration, results, errors and versions. They live in the
//! `rkube-cni-types` crate, which the kubelet's CNI client shares; re-exported here under the plugins' paths.
//!
//! Everything here is plain data with serde; nothing touches the network or the filesystem.

pub use rkube_cni_types::{config, error, version};

pub use rkube_cni_types::{CniResult, Dns, Interface, IpConfig, NetConf, Route};
