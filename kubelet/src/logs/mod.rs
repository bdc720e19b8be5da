//! Container logs in the CRI format (`<RFC3339Nano> <stream> <P|F> <text>` per line), the format `kubectl logs`
//! expects from a kubelet: [`cri`] writes and rotates them (used by the monitor), [`read`] selects lines for
//! the containerLogs API (tail, since, timestamps, previous rotation).

pub mod cri;
pub mod read;
