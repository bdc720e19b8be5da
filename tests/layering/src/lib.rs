//! Holds no code: `tests/layering.rs` checks the workspace's boundaries (issue 14) and fails naming the file and
//! line that crosses one. Run it with `cargo test --release -p rkube-layering`.
//!
//! The rules, and where they come from, are in `docs/architecture.md`.
#![forbid(unsafe_code)]
