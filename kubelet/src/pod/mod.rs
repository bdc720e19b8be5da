//! Pods on this node: the pure lifecycle ([`lifecycle::step`]), restart backoff and status computation, and
//! the worker that carries the actions out on the runtime, CNI, volumes and images.
//!
//! What lives where: [`lifecycle`] (what to do next, pure), [`backoff`] (restart and retry delays), [`status`]
//! (the PodStatus from the same observations, pure), [`worker`] (one thread per pod doing the actions, and the
//! records under the pod dir that let a restarted kubelet adopt its pods), [`events`] (the worker's
//! [`PodSink`](events::PodSink) to the rest of the kubelet), [`network`] (CNI ADD/DEL for a sandbox, over the
//! kubelet's own CNI client [`cni_client`]), [`dns`] (the pod's hosts, hostname and resolv.conf) and [`timing`]
//! (step durations for the debug log).

pub mod backoff;
pub mod cni_client;
pub mod dns;
pub mod events;
pub mod lifecycle;
pub mod network;
pub mod status;
pub mod timing;
pub mod worker;
