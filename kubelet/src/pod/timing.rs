//! Per-step durations of the pod worker's slow paths (sandbox creation, container start), so a user can see
//! where a pod's startup time goes with `RKUBE_LOG=debug`:
//!
//! ```text
//! DEBUG sandbox steps pod=web total_ms=21.4 steps=runtime sandbox 9.8 ms, loopback 0.3 ms, CNI ADD 10.6 ms, pod files 0.4 ms
//! DEBUG container steps pod=web container=c total_ms=38.0 steps=env 0.2 ms, volumes 0.1 ms, image 0.5 ms, ...
//! ```

use std::fmt;
use std::time::{Duration, Instant};

/// A stopwatch that records how long each named step took since the previous one.
#[derive(Debug)]
pub struct Steps {
    start: Instant,
    last: Instant,
    steps: Vec<(&'static str, Duration)>,
}

impl Default for Steps {
    fn default() -> Self {
        Self::new()
    }
}

impl Steps {
    /// A stopwatch started now, no step ended yet.
    pub fn new() -> Self {
        let now = Instant::now();
        Self { start: now, last: now, steps: Vec::with_capacity(8) }
    }

    /// Ends step `name` now.
    pub fn mark(&mut self, name: &'static str) {
        let now = Instant::now();
        self.steps.push((name, now - self.last));
        self.last = now;
    }

    /// Time since the stopwatch started.
    pub fn total(&self) -> Duration {
        self.start.elapsed()
    }

    /// Milliseconds since the start, for a log field.
    pub fn total_ms(&self) -> f64 {
        (self.total().as_micros() as f64 / 100.0).round() / 10.0
    }

    /// Each ended step's name and how long it took, in order.
    pub fn steps(&self) -> &[(&'static str, Duration)] {
        &self.steps
    }
}

impl fmt::Display for Steps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, d)) in self.steps.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{name} {:.1} ms", d.as_secs_f64() * 1000.0)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_add_up_and_print_in_order() {
        let mut s = Steps::new();
        s.mark("a");
        std::thread::sleep(Duration::from_millis(3));
        s.mark("b");
        let names: Vec<&str> = s.steps().iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["a", "b"]);
        assert!(s.steps()[1].1 >= Duration::from_millis(3));
        let sum: Duration = s.steps().iter().map(|(_, d)| *d).sum();
        assert!(sum <= s.total());
        let text = s.to_string();
        assert!(text.starts_with("a 0.") && text.contains(", b "), "{text}");
        assert!(text.ends_with(" ms"), "{text}");
    }
}
