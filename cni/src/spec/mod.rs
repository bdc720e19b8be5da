//! The CNI specification's data types: network configuration, results, errors and versions.
//!
//! Everything here is plain data with serde; nothing touches the network or the filesystem.

pub mod config;
pub mod error;
pub mod result;
pub mod version;

pub use config::{ConfList, NetConf};
pub use error::{code, CniError};
pub use result::{CniResult, Dns, Interface, IpConfig, Route};
