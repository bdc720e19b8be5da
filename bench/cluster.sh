#!/usr/bin/env bash
# bench/cluster.sh: `rkube cluster up --nodes N` to every node Ready, and `rkube cluster down`, over ROUNDS rounds
# (median, min, max). No peer runs here (kind needs a container engine this machine does not have), so there is
# no ratio. Not measured yet: cross-node vs same-node pod-to-pod throughput (issue 15) needs a pod image with a
# TCP client in every node's store; the e2e test's image helpers are Rust, not shell.
#
#   RKUBE=target/release/rkube ROUNDS=5 NODES=3 bench/cluster.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
RKUBE=${RKUBE:-target/release/rkube}
ROUNDS=${ROUNDS:-5}
NODES=${NODES:-3}
SUBNET=${SUBNET:-172.28.250.0/24}
NAME=bench$$
NAME=${NAME:0:10}
work=$(mktemp -d)
trap '"$RKUBE" cluster down --name "$NAME" --data-dir "$work/c" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
[ "$(id -u)" = 0 ] || { echo "bench/cluster.sh: needs root (network namespaces, mounts)" >&2; exit 1; }
[ -x "$RKUBE" ] || { echo "bench/cluster.sh: $RKUBE missing: cargo build --release --bins" >&2; exit 1; }
bench_load start
: >"$work/up" ; : >"$work/down"
for r in $(seq "$ROUNDS"); do
  t0=$(date +%s.%N)
  "$RKUBE" cluster up --name "$NAME" --data-dir "$work/c" --nodes "$NODES" --subnet "$SUBNET" \
    --kubelet-arg=--eviction-hard=memory.available\<1Mi,nodefs.available\<1% >"$work/up.log" 2>&1 || { cat "$work/up.log" >&2; exit 1; }
  t1=$(date +%s.%N)
  "$RKUBE" cluster down --name "$NAME" --data-dir "$work/c" >"$work/down.log" 2>&1 || { cat "$work/down.log" >&2; exit 1; }
  t2=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }' >>"$work/up"
  awk -v a="$t1" -v b="$t2" 'BEGIN { printf "%.3f\n", b - a }' >>"$work/down"
  echo "round $r: up $(tail -1 "$work/up") s, down $(tail -1 "$work/down") s"
done
read -r m lo hi < <(bench_median_spread "$work/up")
echo "cluster up --nodes $NODES to all Ready: median $m s (min $lo, max $hi) over $ROUNDS rounds"
read -r m lo hi < <(bench_median_spread "$work/down")
echo "cluster down ($NODES nodes, no pods):   median $m s (min $lo, max $hi) over $ROUNDS rounds"
bench_load end
