#!/usr/bin/env bash
# Scheduler benchmark (not a test): throughput and p99 latency with 1,000 and 5,000 simulated nodes and
# 10,000 pending pods, on the scheduling core alone and end to end through rkube's apiserver; then a
# Deployment scaled 0 -> 1,000 with the controller manager, timed until every pod is bound. Each throughput is
# printed with its ratio to upstream scheduler_perf's 680 pods/s floor (5,000 nodes / 10,000 pods) and to our
# 1,000 pods/s target. Results and how to read them: docs/scheduler.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
# on a shared machine, serialise compiles: BENCH_LOCK=/work/cargo.lock bench/scheduler.sh
if [ -n "${BENCH_LOCK:-}" ]; then
    flock "$BENCH_LOCK" cargo build --release -q -p rkube-controllers --example scheduler_bench
else
    cargo build --release -q -p rkube-controllers --example scheduler_bench
fi
bin="$CARGO_TARGET_DIR/release/examples/scheduler_bench"
for nodes in 1000 5000; do
    "$bin" core "$nodes" 10000
done
for nodes in 1000 5000; do
    "$bin" e2e "$nodes" 10000
done
"$bin" deploy 100 1000
