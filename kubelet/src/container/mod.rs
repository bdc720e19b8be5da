//! One container of a pod as the runtime needs it: environment, resources and QoS cgroups.

pub mod env;
pub mod qos;
pub mod quantity;
