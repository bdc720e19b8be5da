//! The scheduler: watches unbound pods and nodes, picks a node per pod (filters, then scores) and binds it
//! through `pods/binding`. Pods it cannot place get a FailedScheduling event with kube-scheduler's wording and
//! wait in the queue until nodes or pods change.
//!
//! Must not: list pods or nodes per pod (the cache is fed by watches), or touch pods that have `nodeName`.

pub mod algorithm;
pub mod cache;
pub mod filters;
pub mod scores;

#[cfg(test)]
mod tests;
