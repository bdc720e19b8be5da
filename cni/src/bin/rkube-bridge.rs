//! `rkube-bridge`: the CNI bridge plugin.

fn main() {}
