//! Writing CRI-format log lines with rotation: the monitor's writer (`rkube_monitor::cri`), re-exported for
//! the kubelet's readers and tests.

pub use rkube_monitor::cri::*;
