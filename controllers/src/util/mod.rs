//! Helpers every controller and the scheduler share: selectors, quantities, owner references, pod state.
//! Pure functions only; nothing here talks to the apiserver.

pub mod owner;
pub mod pod;
pub mod cron;
pub mod quantity;
pub mod selector;
pub mod time;
