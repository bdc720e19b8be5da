#!/usr/bin/env bash
# bench/cluster.sh: a local cluster (`rkube cluster up --nodes N`) measured in one run:
#  1. `cluster up` to every node Ready, and `cluster down`, over ROUNDS rounds (median, min, max). No peer runs here
#     (kind needs a container engine this machine does not have), so this part has no ratio.
#  2. pod-to-pod TCP throughput and latency across nodes vs on one node, alternating round by round (NET_ROUNDS):
#     a server pod on node 1, a client pod on node 1 and one on node 2; iperf3 (Debian's) and ping run inside the
#     pods' network namespaces (nsenter -n into each pod's process), so the path is exactly the pods': veth, the
#     node's CNI bridge, the host-gw route, the LAN bridge. The ratio cross-node/same-node is per round; the
#     issue's target is >= 0.9 for throughput.
#  3. the RSS of every node agent (`rkube kubelet`, one per node) and of the control plane, with the bench's pods
#     running.
#
#   RKUBE=target/release/rkube ROUNDS=3 NET_ROUNDS=5 NODES=3 bench/cluster.sh
#   POD_NETWORK=vxlan ROUNDS=1 bench/cluster.sh    # the same over the vxlan pod network (MTU 1450, UDP 8472)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
RKUBE=${RKUBE:-target/release/rkube}
ROUNDS=${ROUNDS:-5}
NET_ROUNDS=${NET_ROUNDS:-5}
NET_SECS=${NET_SECS:-3}
NODES=${NODES:-3}
POD_NETWORK=${POD_NETWORK:-host-gw}
SUBNET=${SUBNET:-172.28.250.0/24}
NAME=bench$$
NAME=${NAME:0:10}
work=$(mktemp -d)
cleanup() {
  [ -s "$work/iperf.pid" ] && kill "$(cat "$work/iperf.pid")" 2>/dev/null
  "$RKUBE" cluster down --name "$NAME" --data-dir "$work/c" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
[ "$(id -u)" = 0 ] || { echo "bench/cluster.sh: needs root (network namespaces, mounts)" >&2; exit 1; }
[ -x "$RKUBE" ] || { echo "bench/cluster.sh: $RKUBE missing: cargo build --release --bins" >&2; exit 1; }
[ "$NODES" -ge 2 ] || { echo "bench/cluster.sh: NODES=$NODES: the cross-node figures need 2 nodes or more" >&2; exit 1; }
for c in iperf3 ping umoci jq kubectl nsenter; do
  command -v "$c" >/dev/null || { echo "bench/cluster.sh: $c missing (apt-get install -y iperf3 iputils-ping umoci jq util-linux; kubectl)" >&2; exit 1; }
done
up() {
  "$RKUBE" cluster up --name "$NAME" --data-dir "$work/c" --nodes "$NODES" --subnet "$SUBNET" --pod-network "$POD_NETWORK" \
    --kubelet-arg=--eviction-hard=memory.available\<1Mi,nodefs.available\<1% >"$work/up.log" 2>&1 || { cat "$work/up.log" >&2; exit 1; }
}
bench_load start

# --- 1. up and down ---
: >"$work/up" ; : >"$work/down"
for r in $(seq "$ROUNDS"); do
  t0=$(date +%s.%N)
  up
  t1=$(date +%s.%N)
  "$RKUBE" cluster down --name "$NAME" --data-dir "$work/c" >"$work/down.log" 2>&1 || { cat "$work/down.log" >&2; exit 1; }
  t2=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }' >>"$work/up"
  awk -v a="$t1" -v b="$t2" 'BEGIN { printf "%.3f\n", b - a }' >>"$work/down"
  echo "round $r: up $(tail -1 "$work/up") s, down $(tail -1 "$work/down") s"
done

# --- 2. pod to pod: one cluster, three pods ---
up
export KUBECONFIG=$work/c/server/kubeconfig
# a busybox image (static /bin/busybox) in every node's store, as an OCI layout made with umoci
umoci init --layout "$work/oci" >/dev/null
umoci new --image "$work/oci:latest" >/dev/null
umoci unpack --image "$work/oci:latest" "$work/bundle" >/dev/null
mkdir -p "$work/bundle/rootfs/bin"
cp /bin/busybox "$work/bundle/rootfs/bin/busybox"
for a in sh sleep; do ln -sf busybox "$work/bundle/rootfs/bin/$a"; done
umoci repack --image "$work/oci:latest" "$work/bundle" >/dev/null
umoci config --image "$work/oci:latest" --config.cmd sh >/dev/null
for i in $(seq "$NODES"); do
  "$RKUBE" image import --root "$work/c/$NAME-n$i/images" --name docker.io/library/busybox:latest "$work/oci" >/dev/null
done
# each pod sleeps a number of its own, so its process is found by its command line
pod() { # name node seconds
  cat <<POD
apiVersion: v1
kind: Pod
metadata: {name: $1}
spec:
  nodeName: $2
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: busybox:latest, imagePullPolicy: Never, command: [sleep, "$3"]}
---
POD
}
{ pod srv "$NAME-n1" 1000001; pod same "$NAME-n1" 1000002; pod cross "$NAME-n2" 1000003; } | kubectl apply -f - >/dev/null
kubectl wait --for=condition=Ready pod/srv pod/same pod/cross --timeout=120s >/dev/null
pid_of() { # the pid whose command line is `sleep $1`
  local p
  for p in /proc/[0-9]*; do
    [ "$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null)" = "sleep $1 " ] && { basename "$p"; return; }
  done
  echo "bench/cluster.sh: no process 'sleep $1'" >&2
  exit 1
}
srv_pid=$(pid_of 1000001) same_pid=$(pid_of 1000002) cross_pid=$(pid_of 1000003)
srv_ip=$(kubectl get pod srv -o jsonpath='{.status.podIP}')
echo "server pod srv $srv_ip on $NAME-n1; clients: same on $NAME-n1, cross on $NAME-n2 ($(kubectl get pod cross -o jsonpath='{.status.podIP}'))"
nsenter -t "$srv_pid" -n iperf3 -s -D -p 5201 --pidfile "$work/iperf.pid"
for _ in $(seq 50); do [ -s "$work/iperf.pid" ] && break; sleep 0.1; done
gbits() { # client pid: Gbit/s received by the server over NET_SECS s
  nsenter -t "$1" -n iperf3 -c "$srv_ip" -p 5201 -t "$NET_SECS" -J | jq -r '.end.sum_received.bits_per_second / 1e9'
}
rtt() { # client pid: mean round trip in microseconds over 100 pings
  nsenter -t "$1" -n ping -c 100 -i 0.005 -q "$srv_ip" | awk -F'/' '/^rtt/ { printf "%.1f\n", $5 * 1000 }'
}
: >"$work/tp-same" ; : >"$work/tp-cross" ; : >"$work/tp-ratio" ; : >"$work/rtt-same" ; : >"$work/rtt-cross" ; : >"$work/rtt-ratio"
for r in $(seq "$NET_ROUNDS"); do
  s=$(gbits "$same_pid"); c=$(gbits "$cross_pid")
  ls=$(rtt "$same_pid"); lc=$(rtt "$cross_pid")
  echo "$s" >>"$work/tp-same"; echo "$c" >>"$work/tp-cross"; bench_ratio "$c" "$s" >>"$work/tp-ratio"; echo >>"$work/tp-ratio"
  echo "$ls" >>"$work/rtt-same"; echo "$lc" >>"$work/rtt-cross"; bench_ratio "$lc" "$ls" >>"$work/rtt-ratio"; echo >>"$work/rtt-ratio"
  printf 'net round %d: throughput same-node %.2f Gbit/s, cross-node %.2f Gbit/s; rtt same %s us, cross %s us\n' "$r" "$s" "$c" "$ls" "$lc"
done

# --- 3. memory: every node agent and the control plane, pods running ---
: >"$work/rss"
rss_mib() { awk '/^VmRSS/ { printf "%.1f\n", $2 / 1024 }' "/proc/$1/status"; }
status=$("$RKUBE" cluster status --name "$NAME" --data-dir "$work/c")
while read -r node pid; do
  m=$(rss_mib "$pid"); echo "$m" >>"$work/rss"
  echo "node agent of $node (pid $pid): RSS $m MiB"
done < <(echo "$status" | awk '/^  node / { for (i = 1; i <= NF; i++) if ($i == "kubelet" && $(i + 1) == "pid") print $2, $(i + 2) }')
server_pid=$(echo "$status" | awk '/^  server: pid/ { print $3 }')
server_rss=$(rss_mib "$server_pid")

echo
read -r m lo hi < <(bench_median_spread "$work/up")
echo "cluster up --nodes $NODES to all Ready: median $m s (min $lo, max $hi) over $ROUNDS rounds"
read -r m lo hi < <(bench_median_spread "$work/down")
echo "cluster down ($NODES nodes, no pods):   median $m s (min $lo, max $hi) over $ROUNDS rounds"
echo "pod network: $POD_NETWORK"
echo "pod-to-pod TCP throughput (iperf3, ${NET_SECS} s), same-node: median $(bench_median "$work/tp-same") Gbit/s; cross-node: median $(bench_median "$work/tp-cross") Gbit/s"
bench_ratio_row "throughput cross-node/same-node, per round" "$work/tp-ratio"
echo "pod-to-pod round trip (ping, 100), same-node: median $(bench_median "$work/rtt-same") us; cross-node: median $(bench_median "$work/rtt-cross") us"
bench_ratio_row "round trip cross-node/same-node, per round" "$work/rtt-ratio"
read -r m lo hi < <(bench_median_spread "$work/rss")
echo "node agent RSS (rkube kubelet, one per node, 0-2 bench pods each): median $m MiB (min $lo, max $hi) over $NODES nodes; control plane (rkube server) $server_rss MiB"
bench_load end
