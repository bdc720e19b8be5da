#!/usr/bin/env bash
# Leader failover benchmark (not a test): two `rkube server`s on a 3-member etcd (loopback ports, temp dirs);
# each round finds the holder of the kube-controller-manager Lease, kill -9s its server and times how long until
# the Lease names the other server (kubectl polled every 100 ms), then starts the killed server again. Upstream's
# periods by default (15 s lease, 10 s renew deadline, 2 s retry): the failover is bounded below by the lease
# duration, since the follower waits that long after it last saw the Lease renewed. Reports the median with min
# and max. No peer runs here (no upstream control plane on this machine).
#
#   bench/ha.sh [rounds]        (default 3)
#   LEASE=6s RENEW=4s RETRY=1s bench/ha.sh 5    (the e2e test's shortened periods)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
rounds=${1:-3}
lease=${LEASE:-15s} renew=${RENEW:-10s} retry=${RETRY:-2s}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --release -q -p rkube --bin rkube
rkube="$CARGO_TARGET_DIR/release/rkube"
command -v etcd >/dev/null || { echo "etcd missing: apt-get install etcd-server" >&2; exit 1; }

work=$(mktemp -d /tmp/rkube-ha-bench.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# the etcd cluster
cluster="" endpoints=() peers=() clients=()
for i in 0 1 2; do clients[i]=$(free_port); peers[i]=$(free_port); done
for i in 0 1 2; do cluster+="${cluster:+,}m$i=http://127.0.0.1:${peers[i]}"; endpoints+=(--etcd "http://127.0.0.1:${clients[i]}"); done
for i in 0 1 2; do
    etcd --name "m$i" --data-dir "$work/etcd-$i" --initial-cluster-token "ha-bench-$$" --initial-cluster "$cluster" \
        --listen-client-urls "http://127.0.0.1:${clients[i]}" --advertise-client-urls "http://127.0.0.1:${clients[i]}" \
        --listen-peer-urls "http://127.0.0.1:${peers[i]}" --initial-advertise-peer-urls "http://127.0.0.1:${peers[i]}" \
        >/dev/null 2>"$work/etcd-$i.log" &
    pids+=($!)
done
for i in 0 1 2; do
    for _ in $(seq 300); do curl -fsS "http://127.0.0.1:${clients[i]}/health" 2>/dev/null | grep -q '"health":"true"' && break; sleep 0.1; done
done

ports=("$(free_port)" "$(free_port)")
spids=(0 0)
start_server() { # index
    local i=$1
    "$rkube" server --data-dir "$work/server-$i" --listen "127.0.0.1:${ports[i]}" --tls "${endpoints[@]}" \
        --leader-elect-lease-duration "$lease" --leader-elect-renew-deadline "$renew" --leader-elect-retry-period "$retry" \
        >/dev/null 2>>"$work/server-$i.log" &
    spids[i]=$!
    pids+=($!)
    for _ in $(seq 600); do
        [ -f "$work/server-$i/kubeconfig" ] && KUBECONFIG="$work/server-$i/kubeconfig" kubectl get --raw /readyz >/dev/null 2>&1 && return
        sleep 0.1
    done
    echo "server $i did not come up: $work/server-$i.log" >&2; exit 1
}
identity() { sed 's/\x1b\[[0-9;]*m//g' "$work/server-$1.log" | grep -o 'identity=[^ ]*' | tail -1 | cut -d= -f2; }
holder() { KUBECONFIG="$work/server-$1/kubeconfig" kubectl get lease -n kube-system kube-controller-manager -o jsonpath='{.spec.holderIdentity}' 2>/dev/null || true; }

start_server 0
mkdir -p "$work/server-1" && chmod 700 "$work/server-1" && cp -a "$work/server-0/pki" "$work/server-1/pki"
start_server 1
echo "two servers on a 3-member etcd; lease $lease, renew deadline $renew, retry $retry"
bench_load start
times="$work/failover.txt"
for ((r = 1; r <= rounds; r++)); do
    ids=("$(identity 0)" "$(identity 1)")
    h=""
    for _ in $(seq 600); do h=$(holder 0); [ -n "$h" ] || h=$(holder 1); [ -n "$h" ] && break; sleep 0.1; done
    if [ "$h" = "${ids[0]}" ]; then leader=0; elif [ "$h" = "${ids[1]}" ]; then leader=1; else echo "lease held by $h, neither server" >&2; exit 1; fi
    other=$((1 - leader))
    t0=$(date +%s.%N)
    kill -KILL "${spids[leader]}"
    wait "${spids[leader]}" 2>/dev/null || true
    for _ in $(seq 1200); do [ "$(holder "$other")" = "${ids[other]}" ] && break; sleep 0.1; done
    [ "$(holder "$other")" = "${ids[other]}" ] || { echo "round $r: no takeover within 120 s" >&2; exit 1; }
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f\n", b - a }' | tee -a "$times" | sed "s/^/round $r: failover (s) /"
    start_server "$leader"
done
bench_load end
read -r m lo hi < <(bench_median_spread "$times")
printf 'leader failover, kill -9 to Lease held by the other server: median %s s (min %s, max %s) over %d rounds (lease %s)\n' "$m" "$lo" "$hi" "$rounds" "$lease"
