//! Helpers only the controllers and the scheduler need: owner references, pods made from templates, cron
//! schedules. Pure functions only; nothing here talks to the apiserver. What the apiserver and kubelet need as
//! well (selectors, quantities, pod facts, time conversion) is in the shared `rkube_apimachinery` crate.

pub mod cron;
pub mod owner;
pub mod pod;
pub mod trace;
