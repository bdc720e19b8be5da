//! Unique, short names for test resources (netns, links, cgroups, nft tables, containers).

use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// `prefix` + process id + a per-process counter, in hex, kept to 15 characters so it fits a Linux interface name.
/// Two tests in one process, or two test processes, never get the same name.
pub fn unique_name(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = format!("{prefix}{:x}x{:x}", std::process::id(), n);
    assert!(name.len() <= 15, "test name {name:?} is longer than an interface name may be; use a shorter prefix");
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_distinct_and_short() {
        let a = unique_name("rkt");
        let b = unique_name("rkt");
        assert_ne!(a, b);
        assert!(a.len() <= 15 && a.starts_with("rkt"));
    }
}
