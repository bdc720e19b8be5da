#!/usr/bin/env bash
# ADD and DEL latency of rkube-bridge (+ rkube-host-local) against Debian's reference bridge (+ host-local), side
# by side in one run: each round ADDs and DELs one container with each plugin, alternating, in the same netns.
# Prints the median and p90 per plugin and command, and per command the median of the per-round ratios
# rkube/reference with their min and max (bench/lib.sh), and the load average before and after.
#
#   sudo bench/cni.sh [rounds]        (default 200 rounds after 10 warm-up rounds)
#
# Not like for like on DEL: rkube-bridge hands the veth delete to a forked helper and returns once the pair has
# left sysfs, before the kernel's RCU grace periods end (docs/cni.md); the reference waits for them.
#
# Both networks use isGateway (the bridge gets the gateway address, ip_forward is turned on and restored after) and
# no ipMasq (the reference would run iptables; rkube's nft table is timed by the root tests' DELs, not here).
# Traffic: none; only namespaces and a bridge this script makes, all removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
[ "$(id -u)" = 0 ] || { echo "cni.sh: run as root (it makes network namespaces and bridges)" >&2; exit 1; }
ROUNDS=${1:-200}
WARMUP=10
REF=/usr/lib/cni
[ -x "$REF/bridge" ] && [ -x "$REF/host-local" ] || { echo "cni.sh: apt-get install -y containernetworking-plugins" >&2; exit 1; }

TARGET=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p rkube-cni --bins
OURS=$(cd "$TARGET/release" && pwd)

TAG="rkbench$$"
NS="${TAG}ns"
WORK=$(mktemp -d)
FORWARD=$(cat /proc/sys/net/ipv4/ip_forward)
cleanup() {
    ip netns del "$NS" 2>/dev/null || true
    ip link del "rkbr$$" 2>/dev/null || true
    ip link del "rkbk$$" 2>/dev/null || true
    echo "$FORWARD" > /proc/sys/net/ipv4/ip_forward
    rm -rf "$WORK"
}
trap cleanup EXIT
ip netns add "$NS"

conf() { # name type bridge ipam subnet
    printf '{"cniVersion":"1.0.0","name":"%s","type":"%s","bridge":"%s","isGateway":true,"ipam":{"type":"%s","ranges":[[{"subnet":"%s"}]],"dataDir":"%s/ipam"}}' \
        "$1" "$2" "$3" "$4" "$5" "$WORK"
}
REF_CONF=$(conf "${TAG}r" bridge "rkbr$$" host-local 10.126.250.0/24)
RK_CONF=$(conf "${TAG}k" rkube-bridge "rkbk$$" rkube-host-local 10.126.251.0/24)
export CNI_NETNS="/var/run/netns/$NS" CNI_IFNAME=eth0 CNI_PATH="$OURS:$REF"

# Runs one plugin call and appends its wall time in microseconds to file $4. EPOCHREALTIME is a bash builtin, so
# no process is started inside the timed span except the plugin (and its IPAM delegate).
timed() { # plugin command config file
    local t0 t1
    t0=$EPOCHREALTIME
    CNI_COMMAND=$2 CNI_CONTAINERID="bench$i" "$1" <<<"$3" >"$WORK/out" || { echo "cni.sh: $1 $2 failed:" >&2; cat "$WORK/out" >&2; exit 1; }
    t1=$EPOCHREALTIME
    echo $(( (${t1/./} - ${t0/./}) )) >>"$4"
}

bench_load start
for ((i = 0; i < WARMUP + ROUNDS; i++)); do
    if ((i < WARMUP)); then sfx=warm; else sfx=run; fi
    timed "$REF/bridge" ADD "$REF_CONF" "$WORK/ref-add.$sfx"
    timed "$REF/bridge" DEL "$REF_CONF" "$WORK/ref-del.$sfx"
    timed "$OURS/rkube-bridge" ADD "$RK_CONF" "$WORK/rk-add.$sfx"
    timed "$OURS/rkube-bridge" DEL "$RK_CONF" "$WORK/rk-del.$sfx"
done

pct() { sort -n "$1" | awk -v p="$2" '{a[NR]=$1} END {i=int(NR*p+0.5); if (i<1) i=1; printf "%.2f", a[i]/1000}'; }
printf '%d rounds on %s, %s cpus\n' "$ROUNDS" "$(uname -r)" "$(nproc)"
bench_load end
echo
printf '%-8s %-22s %12s %12s\n' command plugin "median ms" "p90 ms"
for cmd in add del; do
    for who in ref rk; do
        name=$([ $who = ref ] && echo "reference bridge" || echo "rkube-bridge")
        printf '%-8s %-22s %12s %12s\n' "${cmd^^}" "$name" "$(pct "$WORK/$who-$cmd.run" 0.5)" "$(pct "$WORK/$who-$cmd.run" 0.9)"
    done
done
echo
# the rounds' files are in step: line n of each is round n
for cmd in add del; do
    paste "$WORK/rk-$cmd.run" "$WORK/ref-$cmd.run" | awk '$2 > 0 {printf "%.4f\n", $1 / $2}' >"$WORK/ratio-$cmd"
    bench_ratio_row "${cmd^^} rkube/reference, per round" "$WORK/ratio-$cmd"
done
