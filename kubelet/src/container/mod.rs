//! One container of a pod as the runtime needs it: environment, security settings, resources and QoS
//! cgroups, the host's devices for privileged containers, and the OCI config that puts them together.

pub mod devices;
pub mod env;
pub mod qos;
pub mod security;
pub mod spec;
