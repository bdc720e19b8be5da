#!/bin/sh
# Storage benchmark: creates/s and p50/p99 at 16 and 64 concurrent writers, list of 10,000 objects, watch
# fan-out to 1,000 watchers and RSS, on the embedded store and on a throwaway etcd (Debian's etcd-server).
# Usage: bench/storage.sh [--embedded|--etcd]
set -eu
cd "$(dirname "$0")/.."
exec cargo bench -p rkube-apiserver --bench storage -- "$@"
