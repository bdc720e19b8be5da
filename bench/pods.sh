#!/usr/bin/env bash
# Pod benchmark (release build), rkube side by side with podman on the same machine in one run:
#  - start latency: rkube pod create -> Ready (through the apiserver, scheduler, kubelet, CNI; one at a time, then
#    a burst of 100) next to `podman run -d` of one busybox container (runc and crun, --network none, no API);
#  - per-container memory: rkube-monitor (dynamic and static) next to podman's conmon, RSS and PSS;
#  - per-pod memory (pause + monitor), rkube up's RSS with 20 pods, and a separate `rkube kubelet`'s RSS with 20.
# Targets (issue 6): p50 <= 150 ms, p99 <= 400 ms for one pod, 100 pods Running within 10 s, <= 2 MiB per pod,
# monitor well under 1 MiB RSS. Times depend on the load: the load average is printed before and after.
# Start latency is taken in ROUNDS rounds, alternating: RUNS podman starts with runc, RUNS with crun, then rkube's
# 20 pods one at a time and the burst; each round gives the ratio rkube p50 / podman p50 per runtime, and the
# script reports the median of those per-round ratios with min and max (bench/lib.sh). Not like for like: podman
# starts one container with no API and no network; rkube's time goes through the apiserver, the scheduler, CNI and
# a pause sandbox. Memory is measured once (it does not move with the load).
#
#   sudo bench/pods.sh [RUNS] [ROUNDS]    # RUNS podman starts per runtime and round (default 20), ROUNDS (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
[ "$(id -u)" = 0 ] || { echo "bench: run as root" >&2; exit 1; }
RUNS=${1:-20}
ROUNDS=${2:-3}
TARGET=${CARGO_TARGET_DIR:-target}
BIN="$TARGET/release"

cargo build --release -q -p rkube -p rkube-kubelet -p rkube-runtime -p rkube-cni --bins
cp "$BIN/rkube-monitor" "$BIN/rkube-monitor.dynamic"
# the monitor linked statically (no libc.so / ld.so pages): what scripts/up.sh installs for release
cargo rustc --release -q -p rkube-kubelet --bin rkube-monitor -- -C target-feature=+crt-static
cargo test --release -q -p rkube-e2e --test up_bench --no-run 2>/dev/null

work=$(mktemp -d /tmp/bench-pods.XXXXXX)
P=(podman --root "$work/storage" --runroot "$work/run" --cgroup-manager cgroupfs --events-backend none)
cleanup() {
  "${P[@]}" rm -af -t 0 >/dev/null 2>&1 || true
  unshare -m --propagation private sh -c 'umount /sys/fs/cgroup/unified 2>/dev/null; "$@" rm -af -t 0' sh "${P[@]}" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# p50 and p99 of the numbers on stdin
pct() { sort -n | awk '{v[NR]=$1} END {i50=int((NR-1)*0.5+0.5)+1; i99=int((NR-1)*0.99+0.5)+1; printf "%.0f %.0f\n", v[i50], v[i99]}'; }
kib() { awk -v k="$2" '$1==k {print $2}' "$1" 2>/dev/null || echo 0; }

# --- podman: start -> running of one busybox container (image present as a rootfs dir) ---
mkdir -p "$work/rootfs/bin"
cp /bin/busybox "$work/rootfs/bin/busybox"
ln -s busybox "$work/rootfs/bin/sleep"
podman_starts() { # runtime, wrapper...
  local rt=$1; shift
  for i in $(seq 1 "$RUNS"); do
    "$@" sh -c 't0=$(date +%s%N); "$@" >/dev/null && echo $(( ($(date +%s%N) - t0) / 1000000 ))' sh \
      "${P[@]}" run -d --name "bench-$rt-$i" --network none --ulimit nofile=1024:1024 --ulimit nproc=4096:4096 \
      --runtime "$rt" --rootfs "$work/rootfs" /bin/sleep 600
    "$@" "${P[@]}" rm -f -t 0 "bench-$rt-$i" >/dev/null
  done
}
# crun refuses hybrid cgroups: run it in a private mount namespace without the cgroup2 mount
nocg2() { unshare -m --propagation private sh -c 'umount /sys/fs/cgroup/unified 2>/dev/null; "$@"' sh "$@"; }

# conmon of a running container, for the monitor comparison
"${P[@]}" run -d --name bench-conmon --network none --ulimit nofile=1024:1024 --ulimit nproc=4096:4096 \
  --runtime runc --rootfs "$work/rootfs" /bin/sleep 600 >/dev/null
sleep_until_settled() { for _ in $(seq 1 50); do [ -r "/proc/$1/smaps_rollup" ] && return 0; sleep 0.02; done; }
cpid=$("${P[@]}" inspect --format '{{.State.ConmonPid}}' bench-conmon)
sleep_until_settled "$cpid"
conmon_rss=$(kib "/proc/$cpid/status" VmRSS:); conmon_pss=$(kib "/proc/$cpid/smaps_rollup" Pss:)
"${P[@]}" rm -f -t 0 bench-conmon >/dev/null

# --- rkube-monitor around a logging container stand-in, dynamic and static ---
monitor_mem() { # binary -> "rss pss"
  local d; d=$(mktemp -d "$work/mon.XXXX")
  "$1" --dir "$d/state" --log "$d/0.log" -- /bin/sh -c 'while :; do echo tick; sleep 0.05; done' >/dev/null
  for _ in $(seq 1 100); do [ "$(wc -l < "$d/0.log")" -ge 5 ] && break; sleep 0.02; done
  local m c; m=$(cat "$d/state/monitor.pid"); c=$(cat "$d/state/container.pid")
  echo "$(kib "/proc/$m/status" VmRSS:) $(kib "/proc/$m/smaps_rollup" Pss:)"
  kill "$c"
  for _ in $(seq 1 100); do [ -e "$d/state/exit" ] && break; sleep 0.02; done
}
read -r mdyn_rss mdyn_pss < <(monitor_mem "$BIN/rkube-monitor.dynamic")
read -r mst_rss mst_pss < <(monitor_mem "$BIN/rkube-monitor")

# --- start latency, alternating round by round: podman runc, podman crun, rkube up ---
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }'; }
bench_load start
for ((round = 1; round <= ROUNDS; round++)); do
  read -r runc50 runc99 < <(podman_starts runc env | pct)
  read -r crun50 crun99 < <(podman_starts crun nocg2 | pct)
  cargo test --release -q -p rkube-e2e --test up_bench -- --ignored --nocapture --test-threads=1 > "$work/up_bench.out" 2>&1 || true
  out=$(grep -E "pod startup|burst|per pod|RSS|test result" "$work/up_bench.out" || true)
  grep -q "test result: ok" "$work/up_bench.out" || { echo "bench: the rkube run failed:" >&2; tail -40 "$work/up_bench.out" >&2; exit 1; }
  num() { echo "$out" | grep -E "$1" | grep -oE "$2 [0-9.]+" | head -1 | awk '{print $NF}'; }
  r50=$(num "one at a time" p50); r99=$(num "one at a time" p99)
  [ -n "$r50" ] || { echo "bench: the rkube run failed (see above)" >&2; exit 1; }
  echo "round $round: rkube p50 $r50 ms p99 $r99 ms; podman runc p50 $runc50 ms p99 $runc99 ms; crun p50 $crun50 ms p99 $crun99 ms; $(bench_load "after round $round")"
  echo "$r50" >>"$work/rk50"; echo "$r99" >>"$work/rk99"
  echo "$runc50" >>"$work/runc50"; echo "$runc99" >>"$work/runc99"
  echo "$crun50" >>"$work/crun50"; echo "$crun99" >>"$work/crun99"
  ratio "$r50" "$runc50" >>"$work/ratio-runc"; echo >>"$work/ratio-runc"
  ratio "$r50" "$crun50" >>"$work/ratio-crun"; echo >>"$work/ratio-crun"
done
bench_load end
echo "last round's rkube run:"
echo "$out"

echo
printf "%-44s %12s %12s\n" "start latency, one container/pod (median of $ROUNDS rounds)" "p50 ms" "p99 ms"
printf "%-44s %12s %12s\n" "rkube pod create -> Ready (API+CNI+kubelet)" "$(bench_median "$work/rk50")" "$(bench_median "$work/rk99")"
printf "%-44s %12s %12s\n" "podman run -d, runc (no API, no network)" "$(bench_median "$work/runc50")" "$(bench_median "$work/runc99")"
printf "%-44s %12s %12s\n" "podman run -d, crun (no API, no network)" "$(bench_median "$work/crun50")" "$(bench_median "$work/crun99")"
bench_ratio_row "rkube/podman runc (p50), per round" "$work/ratio-runc"
bench_ratio_row "rkube/podman crun (p50), per round" "$work/ratio-crun"
echo
printf "%-44s %12s %12s %s\n" "per-container monitor" "RSS KiB" "PSS KiB" "RSS ratio to conmon"
printf "%-44s %12s %12s %s\n" "rkube-monitor, static (release install)" "$mst_rss" "$mst_pss" "$(ratio "$mst_rss" "$conmon_rss")"
printf "%-44s %12s %12s %s\n" "rkube-monitor, dynamic (plain cargo build)" "$mdyn_rss" "$mdyn_pss" "$(ratio "$mdyn_rss" "$conmon_rss")"
printf "%-44s %12s %12s %s\n" "podman's conmon" "$conmon_rss" "$conmon_pss" ""
echo "(quoted, not measured here: k3s agent 275 MB RAM minimum, docs.k3s.io/reference/resource-profiling, K3s v1.26.5)"
