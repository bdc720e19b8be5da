#!/usr/bin/env bash
# The whole test suite: unit tests and root integration tests (real namespaces, cgroups, veths, nftables, registry,
# etcd, kubectl). Run as root on Debian 12. Everything is built once, in release: the binaries other engines exec
# (podman --runtime, CNI) and the tests share the same artifacts.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "test.sh: run as root (the integration tests make real namespaces and cgroups)" >&2; exit 1; }
scripts/deps.sh
start=$(date +%s)
cargo build --release --workspace --bins
cargo test --release --workspace --no-fail-fast -- --test-threads="${RKUBE_TEST_THREADS:-4}"
echo "test.sh: finished in $(( $(date +%s) - start )) s"
