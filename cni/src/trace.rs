//! Phase timings for diagnosing slow calls: with `RKUBE_CNI_TRACE=1` in the environment, each [`mark`] prints the
//! microseconds since the process started the plugin to stderr (stdout stays the CNI result).

use std::sync::OnceLock;
use std::time::Instant;

static START: OnceLock<Option<Instant>> = OnceLock::new();

fn start() -> Option<Instant> {
    *START.get_or_init(|| std::env::var_os("RKUBE_CNI_TRACE").filter(|v| v == "1").map(|_| Instant::now()))
}

/// Starts the clock (call first thing in `main`); without RKUBE_CNI_TRACE=1 this and [`mark`] do nothing.
pub fn init() {
    let _ = start();
}

/// Prints `rkube-cni trace: <µs> us <what>` to stderr when tracing is on.
pub fn mark(what: &str) {
    if let Some(t0) = start() {
        eprintln!("rkube-cni trace: {:>7} us {what}", t0.elapsed().as_micros());
    }
}
