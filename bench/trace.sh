#!/usr/bin/env bash
# Tracing's cost on pod startup (issue 17; target: with span recording on, pod create -> Ready p50 at most 3 %
# slower than with it off). Each round starts `rkube up` twice, once with the span recorder on (the default) and
# once with it off (RKUBE_TRACING=off, docs/trace.md), in alternating order, and times PODS pods one at a time
# from create to Ready as a client sees it (tests/e2e/tests/trace.rs pod_startup_with_and_without_tracing, through
# kube-rs). Each round gives the ratio on/off of the p50s; the script reports the median of those per-round ratios
# with min and max (bench/lib.sh), and the load average before and after.
# The binaries are built once and copied to a private dir first, so a rebuild of the shared target dir by someone
# else during the run does not change what is measured. CARGO_TARGET_DIR picks the build (see README).
#
#   sudo bench/trace.sh [ROUNDS] [PODS]    # ROUNDS (default 5), PODS pods per start (default 20)
#   sudo TEST_EXE=target/release/deps/trace-<hash> bench/trace.sh ...   # no build: that test binary and the
#                                                                          # rkube binaries of $CARGO_TARGET_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
[ "$(id -u)" = 0 ] || { echo "bench: run as root" >&2; exit 1; }
ROUNDS=${1:-5}
PODS=${2:-20}
TARGET=${CARGO_TARGET_DIR:-target}

if [ -n "${TEST_EXE:-}" ]; then
  test_exe=$TEST_EXE # already built: the rkube binaries are taken from $TARGET/release beside it
else
  cargo build --release -q -p rkube -p rkube-kubelet -p rkube-runtime -p rkube-cni --bins
  test_exe=$(cargo test --release -q -p rkube-e2e --test trace --no-run --message-format=json 2>/dev/null \
    | jq -r 'select(.reason == "compiler-artifact" and .target.name == "trace" and .executable != null) | .executable' | tail -1)
fi
[ -x "$test_exe" ] || { echo "bench: no test binary for tests/e2e/tests/trace.rs" >&2; exit 1; }

work=$(mktemp -d /tmp/bench-trace.XXXXXX)
trap 'rm -rf "$work"' EXIT
# the test finds the binaries beside its own directory (target/release/deps/.. = target/release)
mkdir -p "$work/bin/deps"
for f in "$TARGET"/release/rkube*; do
  [ -f "$f" ] && [ -x "$f" ] && cp "$f" "$work/bin/"
done
cp "$test_exe" "$work/bin/deps/trace-bench"

run() { # on|off -> p50 ms
  local out="$work/run-$1.out"
  RKUBE_TRACING=$1 RKUBE_BENCH_PODS=$PODS "$work/bin/deps/trace-bench" --ignored --nocapture --test-threads=1 \
    --exact pod_startup_with_and_without_tracing >"$out" 2>&1 || { echo "bench: the run with tracing $1 failed:" >&2; tail -30 "$out" >&2; exit 1; }
  grep -oE "pod startup, tracing $1 \(n=[0-9]+\): p50 [0-9.]+" "$out" | awk '{print $NF}'
}

echo "build: $TARGET/release (test binary $(basename "$test_exe")), $PODS pods one at a time per start, $ROUNDS rounds"
bench_load start
for ((round = 1; round <= ROUNDS; round++)); do
  if ((round % 2)); then on=$(run on); off=$(run off); else off=$(run off); on=$(run on); fi
  echo "round $round: p50 tracing on $on ms, off $off ms, on/off $(bench_ratio "$on" "$off"); $(bench_load "after round $round")"
  echo "$on" >>"$work/on"; echo "$off" >>"$work/off"
  bench_ratio "$on" "$off" >>"$work/ratio"; echo >>"$work/ratio"
done
bench_load end
echo
for side in on off; do
  read -r m lo hi < <(bench_median_spread "$work/$side")
  printf '%-48s median %s ms (min %s, max %s)\n' "pod create -> Ready p50, tracing $side" "$m" "$lo" "$hi"
done
bench_ratio_row "on/off (p50), per round; target <= 1.03" "$work/ratio"
