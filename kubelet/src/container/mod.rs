//! One container of a pod as the runtime needs it: environment, security settings, resources and QoS
//! cgroups, and the OCI config that puts them together.

pub mod env;
pub mod qos;
pub mod quantity;
pub mod security;
pub mod spec;
