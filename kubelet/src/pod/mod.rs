//! Pods on this node: the pure lifecycle ([`lifecycle::step`]), restart backoff, and status computation.
//! The worker that performs the actions on the runtime lives next to them.

pub mod backoff;
pub mod lifecycle;
pub mod status;
