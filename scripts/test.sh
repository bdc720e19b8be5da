#!/usr/bin/env bash
# The whole test suite: unit tests, root integration tests (real namespaces, cgroups, veths, nftables, registry,
# etcd, kubectl). Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "test.sh: run as root (the integration tests make real namespaces and cgroups)" >&2; exit 1; }
scripts/deps.sh
# Release binaries for the tests that drive them as other engines would (podman --runtime, CNI exec).
cargo build --release --workspace --bins
cargo test --workspace --no-fail-fast -- --test-threads="${RKUBE_TEST_THREADS:-4}" 2>&1 | tee target/test.log
