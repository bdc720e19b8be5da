//! Pods on this node: the pure lifecycle ([`lifecycle::step`]), restart backoff and status computation, and
//! the worker that carries the actions out on the runtime, CNI, volumes and images.

pub mod backoff;
pub mod cni_client;
pub mod dns;
pub mod events;
pub mod lifecycle;
pub mod network;
pub mod status;
pub mod timing;
pub mod worker;
