#!/usr/bin/env bash
# The whole test suite: unit tests and root integration tests (real namespaces, cgroups, veths, nftables, registry,
# etcd, kubectl). Run as root on Debian 12. Everything is built once, in release: the binaries other engines exec
# (podman --runtime, CNI) and the tests share the same artifacts.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "test.sh: run as root (the integration tests make real namespaces and cgroups)" >&2; exit 1; }
scripts/deps.sh
start=$(date +%s)
# --all-targets resolves features once for binaries and tests together (dev-dependencies included), so the test
# run below compiles nothing again and the binaries tests exec are the ones just built.
cargo build --release --workspace --all-targets
cargo test --release --workspace --no-fail-fast -- --test-threads="${RKUBE_TEST_THREADS:-4}"
echo "test.sh: finished in $(( $(date +%s) - start )) s"
