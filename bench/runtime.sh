#!/usr/bin/env bash
# Benchmark (not a test): the full lifecycle of a /bin/true container — create, start, wait, delete — with
# rkube-runtime, crun and runc side by side in one run, on the same busybox bundle. Prints medians and ratios,
# the peak RSS of each runtime, and what stays alive per container.
#
# crun 1.8 refuses this host's hybrid cgroup layout, so the whole run happens in a private mount namespace with
# /sys/fs/cgroup/unified unmounted: every runtime sees plain cgroup v1.
#
# Usage: sudo bench/runtime.sh [runs]      (needs hyperfine, crun, runc, busybox-static; root)
# RKUBE_RUNTIME_BASELINE=/path/to/an/older/rkube-runtime adds that binary to the same run (before/after figures
# for a change, measured side by side under the same load).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-200}
[ "$(id -u)" = 0 ] || { echo "bench/runtime.sh: run as root" >&2; exit 1; }
for c in hyperfine crun runc busybox python3; do
    command -v "$c" >/dev/null || { echo "bench/runtime.sh: $c is missing (scripts/deps.sh installs it)" >&2; exit 1; }
done
RKUBE=${RKUBE_RUNTIME:-${CARGO_TARGET_DIR:-target}/release/rkube-runtime}
if [ ! -x "$RKUBE" ]; then
    cargo build --release -p rkube-runtime
fi
RKUBE=$(readlink -f "$RKUBE")
BASE=${RKUBE_RUNTIME_BASELINE:-}
[ -z "$BASE" ] || BASE=$(readlink -f "$BASE")

if [ "${RKUBE_BENCH_INNER:-}" != 1 ]; then
    # Re-run ourselves in a private mount namespace without the hybrid cgroup2 mount.
    exec unshare -m env RKUBE_BENCH_INNER=1 RKUBE_RUNTIME="$RKUBE" RKUBE_RUNTIME_BASELINE="$BASE" bash "$0" "$RUNS"
fi
mount --make-rprivate /
if mountpoint -q /sys/fs/cgroup/unified; then umount /sys/fs/cgroup/unified; fi

WORK=$(mktemp -d /tmp/rkube-bench.XXXXXX)
cleanup() {
    for r in rkube base crun runc; do
        for id in $(ls "$WORK/state-$r" 2>/dev/null); do
            case $r in
                rkube) "$RKUBE" --root "$WORK/state-$r" delete --force "$id" >/dev/null 2>&1 || true ;;
                base) "$BASE" --root "$WORK/state-$r" delete --force "$id" >/dev/null 2>&1 || true ;;
                *) "$r" --root "$WORK/state-$r" delete --force "$id" >/dev/null 2>&1 || true ;;
            esac
        done
    done
    rm -rf "$WORK"
    for d in /sys/fs/cgroup/*/rkube-bench; do
        [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    done
}
trap cleanup EXIT

B=$WORK/bundle
mkdir -p "$B/rootfs/bin" "$B/rootfs/proc" "$B/rootfs/dev" "$B/rootfs/sys" "$B/rootfs/tmp"
cp /bin/busybox "$B/rootfs/bin/busybox"
ln -s busybox "$B/rootfs/bin/true"
ln -s busybox "$B/rootfs/bin/sh"
# runc's default spec (pid, net, ipc, uts, mount namespaces; proc, /dev tmpfs, devpts, shm, mqueue, sysfs,
# cgroup mounts; masked/readonly paths), without a terminal, running /bin/true in its own cgroup.
(cd "$B" && runc spec)
python3 - "$B/config.json" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
c["linux"]["cgroupsPath"] = "/rkube-bench/c"
json.dump(c, open(p, "w"), indent=1)
PY

echo "bundle: $B (runc spec, /bin/true from busybox-static); $RUNS runs each; cgroup v1 in a private mount ns"
echo "rkube-runtime: $RKUBE"
[ -z "$BASE" ] || echo "baseline rkube-runtime: $BASE"
echo "crun: $(crun --version | head -1)"
echo "runc: $(runc --version | head -1)"

# `run` without --detach is exactly create + start + wait + delete in one invocation, for all three.
BASE_RUN=() BASE_STEPS=()
if [ -n "$BASE" ]; then
    BASE_RUN=(-n "rkube-runtime (baseline)" "$BASE --root $WORK/state-base run --bundle $B bench")
    BASE_STEPS=(-n "rkube-runtime (baseline)" "$WORK/steps.sh $BASE $WORK/state-base $B")
fi
hyperfine -N --warmup 10 --runs "$RUNS" --export-json "$WORK/hf.json" \
    -n rkube-runtime "$RKUBE --root $WORK/state-rkube run --bundle $B bench" "${BASE_RUN[@]}" \
    -n crun "crun --root $WORK/state-crun run --bundle $B bench" \
    -n runc "runc --root $WORK/state-runc run --bundle $B bench" \
    -n "unshare+chroot (floor)" "unshare -p -n -i -u -m -f chroot $B/rootfs /bin/true" >/dev/null

# The same lifecycle as four separate commands, as podman/conmon or the kubelet drive it.
cat > "$WORK/steps.sh" <<'SH'
#!/bin/sh
# $1 = runtime binary, $2 = state root, $3 = bundle
"$1" --root "$2" create --bundle "$3" steps >/dev/null
"$1" --root "$2" start steps
while [ "$("$1" --root "$2" state steps | grep -c '"stopped"')" = 0 ]; do :; done
"$1" --root "$2" delete steps
SH
chmod +x "$WORK/steps.sh"
hyperfine -N --warmup 5 --runs "$((RUNS / 4 + 1))" --export-json "$WORK/hf-steps.json" \
    -n rkube-runtime "$WORK/steps.sh $RKUBE $WORK/state-rkube $B" "${BASE_STEPS[@]}" \
    -n crun "$WORK/steps.sh crun $WORK/state-crun $B" \
    -n runc "$WORK/steps.sh runc $WORK/state-runc $B" >/dev/null

# Peak RSS: the largest resident set of any process of the runtime during one `run` (GNU time follows
# the runtime and every child it waits for; /bin/true itself is tiny).
rss() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }
RSS_RKUBE=$(rss "$RKUBE" --root "$WORK/state-rkube" run --bundle "$B" rss)
RSS_CRUN=$(rss crun --root "$WORK/state-crun" run --bundle "$B" rss)
RSS_RUNC=$(rss runc --root "$WORK/state-runc" run --bundle "$B" rss)

# What stays alive per container: nothing besides the container's own process (no monitor/shim); for a pod,
# one pause process holding the namespaces.
"$RKUBE" --root "$WORK/state-rkube" sandbox benchpod >/dev/null
PAUSE_PID=$(python3 -c "import json,sys; print(json.load(open('$WORK/state-rkube/benchpod/state.json'))['pid'])")
PAUSE_RSS=$(awk '/VmRSS/ {print $2}' "/proc/$PAUSE_PID/status")
"$RKUBE" --root "$WORK/state-rkube" delete --force benchpod

python3 - "$WORK/hf.json" "$WORK/hf-steps.json" "$RSS_RKUBE" "$RSS_CRUN" "$RSS_RUNC" "$PAUSE_RSS" <<'PY'
import json, sys
def medians(path):
    return {r["command"]: r["median"] * 1000 for r in json.load(open(path))["results"]}
def cpu(path):
    return {r["command"]: (r["user"] + r["system"]) * 1000 for r in json.load(open(path))["results"]}
run, steps = medians(sys.argv[1]), medians(sys.argv[2])
cpus = cpu(sys.argv[1])
rk = run["rkube-runtime"]
print()
print("full lifecycle of /bin/true (run = create+start+wait+delete), median of each:")
for name, ms in run.items():
    print(f"  {name:<24} {ms:7.2f} ms   rkube-runtime is {ms / rk:5.2f}x faster" if name != "rkube-runtime"
          else f"  {name:<24} {ms:7.2f} ms")
print(f"  ratio rkube-runtime/crun = {rk / run['crun']:.2f}, rkube-runtime/runc = {rk / run['runc']:.2f}")
if "rkube-runtime (baseline)" in run:
    b = run["rkube-runtime (baseline)"]
    print(f"  baseline rkube-runtime/crun = {b / run['crun']:.2f}; this build / baseline = {rk / b:.2f}")
print("  CPU time (user+sys, mean; less sensitive to other load): " + ", ".join(f"{n} {v:.2f} ms" for n, v in cpus.items()))
print()
print("same lifecycle as separate create, start, state (until stopped), delete commands:")
rs = steps["rkube-runtime"]
for name, ms in steps.items():
    print(f"  {name:<24} {ms:7.2f} ms")
print(f"  ratio rkube-runtime/crun = {rs / steps['crun']:.2f}, rkube-runtime/runc = {rs / steps['runc']:.2f}")
if "rkube-runtime (baseline)" in steps:
    b = steps["rkube-runtime (baseline)"]
    print(f"  baseline rkube-runtime/crun = {b / steps['crun']:.2f}; this build / baseline = {rs / b:.2f}")
print()
print("peak RSS during one run (KiB): rkube-runtime %s, crun %s, runc %s" % tuple(sys.argv[3:6]))
print("alive per container: only the container process (no monitor); per pod sandbox: the pause process, VmRSS %s KiB" % sys.argv[6])
PY
