#!/usr/bin/env bash
# Pod benchmark on `rkube up` (release build): startup latency p50/p99 for single pods and a burst of 100,
# per-pod memory of pause + monitor, rkube's RSS with 20 pods, and the monitor's own RSS.
# Targets: p50 <= 150 ms, p99 <= 400 ms, burst of 100 Running within 10 s, <= 2 MiB per pod.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench: run as root" >&2; exit 1; }
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
cargo build --release -q -p rkube -p rkube-kubelet -p rkube-runtime -p rkube-cni --bins
cargo test --release -q -p rkube-e2e --test up_bench -- --ignored --nocapture 2>&1 | grep -E "pod startup|burst|per pod|RSS|test result"
cargo test --release -q -p rkube-kubelet --test monitor survives_its_launcher_and_stays_small -- --nocapture 2>&1 | grep -E "VmRSS|test result"
