#!/usr/bin/env bash
# `rkube inspect pod` latency (issue 17's target: p50 <= 100 ms), end to end as a user runs it: the rkube process,
# the API read of the pod, the apiserver's node proxy, the kubelet gathering every fact (/proc, `ip -j` in the
# pod's netns and on the host, `nft -j`, the runtime's `events --stats` per container, mountinfo), the JSON out.
#
# The peer, same run, same pod, same kubeconfig: `kubectl get pod NAME -o json` (the kubectl on PATH; the first line
# prints its version), the comparable
# read a user makes today: one CLI process, a TLS connection to the same apiserver, one object out as JSON. It
# reads only the API's record (no node, no kernel), so it is the floor of "one command, one answer" here, not a
# tool that shows the same facts (none does: docs/inspect.md). A third column, for the split of the cost:
# `kubectl get --raw /api/v1/nodes/N/proxy/inspect/pods/NS/NAME`, the same kubelet document through kubectl
# without rkube's client (no pod read first, no schema check).
#
# Each round runs the three in alternation, RUNS times each (the order rotates every round, bench/lib.sh); p50
# and p99 are over all runs of all rounds per tool; the ratio is rkube/kubectl of each round's p50s, reported as
# the median with min and max.
#
#   sudo bench/inspect.sh [ROUNDS] [RUNS]     # default 5 rounds x 30 runs
#   sudo RKUBE=/path/to/rkube bench/inspect.sh   # that binary (rkube-kubelet, -runtime, -cni beside it), no build
#
# Uses only a veth pair and a bridge this script makes (node IP 10.244.246.1 on the veth, pods 10.244.247.0/24),
# removed on exit with everything `rkube up` made (`rkube down`); never the uplink.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
[ "$(id -u)" = 0 ] || { echo "inspect.sh: run as root (rkube up makes links and nftables tables)" >&2; exit 1; }
command -v umoci >/dev/null || { echo "inspect.sh: needs umoci: apt-get install umoci" >&2; exit 1; }
command -v kubectl >/dev/null || { echo "inspect.sh: needs kubectl" >&2; exit 1; }
ROUNDS=${1:-5}
RUNS=${2:-30}
if [ -z "${RKUBE:-}" ]; then
    TARGET=${CARGO_TARGET_DIR:-target}
    cargo build --release -q -p rkube -p rkube-kubelet -p rkube-runtime -p rkube-cni --bins
    RKUBE=$(cd "$TARGET/release" && pwd)/rkube
fi
[ -x "$RKUBE" ] || { echo "inspect.sh: $RKUBE is not an executable" >&2; exit 1; }

TAG=$$
DATA=$(mktemp -d)
VETH="rknv$TAG"; BR="rknb$TAG"; DNSL="rknd$TAG"; TABLE="rknp$TAG"
NODE=10.244.246.1
FORWARD=$(cat /proc/sys/net/ipv4/ip_forward)
UP_PID=
trap bench_up_stop EXIT
bench_node_veth "$NODE/24"

# a busybox image, offline
bench_import_busybox

"$RKUBE" up --data-dir "$DATA" --listen 127.0.0.1:0 --node-ip "$NODE" --bridge "$BR" --pod-cidr 10.244.247.0/24 \
    --cluster-dns 10.96.0.246 --dns-link "$DNSL" --proxy-table "$TABLE" --dns-upstream none \
    2> "$DATA/rkube.log" & UP_PID=$!
bench_wait_node 120

# The pod the issue's test inspects: two containers with limits, an emptyDir, a Service in front of it.
kubectl apply -f - >/dev/null <<'YAML'
apiVersion: v1
kind: Pod
metadata: {name: inspect-bench, labels: {app: inspect-bench}}
spec:
  terminationGracePeriodSeconds: 1
  volumes: [{name: scratch, emptyDir: {}}]
  containers:
  - {name: a, image: busybox:latest, imagePullPolicy: Never, command: [sleep, "3600"], volumeMounts: [{name: scratch, mountPath: /data}], resources: {limits: {cpu: 200m, memory: 32Mi}}}
  - {name: b, image: busybox:latest, imagePullPolicy: Never, command: [sleep, "3600"], resources: {limits: {cpu: 200m, memory: 32Mi}}}
---
apiVersion: v1
kind: Service
metadata: {name: inspect-bench}
spec:
  selector: {app: inspect-bench}
  ports: [{port: 80, targetPort: 8080}]
YAML
kubectl wait --for=condition=Ready pod/inspect-bench --timeout=120s >/dev/null
node=$(kubectl get pod inspect-bench -o jsonpath='{.spec.nodeName}')
raw="/api/v1/nodes/$node/proxy/inspect/pods/default/inspect-bench"
# each must answer, and the inspect document must be whole, before anything is timed (warms the authorization cache)
"$RKUBE" inspect pod inspect-bench -o json | jq -e '.kind == "PodInspection" and (.containers | length) == 2' >/dev/null \
    || { echo "inspect.sh: rkube inspect pod did not give a whole PodInspection" >&2; exit 1; }
kubectl get pod inspect-bench -o json | jq -e '.metadata.name == "inspect-bench"' >/dev/null
kubectl get --raw "$raw" | jq -e '.kind == "PodInspection"' >/dev/null

W=$DATA/bench
mkdir -p "$W"
# time_one NAME CMD...: append the command's wall time in µs to $W/NAME.round and $W/NAME.all; a failure stops the bench
time_one() {
    local name=$1 t0 t1; shift
    t0=$(date +%s%N)
    "$@" >/dev/null || { echo "inspect.sh: $name failed: $*" >&2; exit 1; }
    t1=$(date +%s%N)
    echo $(( (t1 - t0) / 1000 )) | tee -a "$W/$name.all" >> "$W/$name.round"
}
rkube_run() { time_one rkube "$RKUBE" inspect pod inspect-bench -o json; }
kubectl_run() { time_one kubectl kubectl get pod inspect-bench -o json; }
raw_run() { time_one raw kubectl get --raw "$raw"; }
# pct FILE P: the P-th percentile (nearest rank) of the µs in FILE, in ms with 1 decimal
pct() { sort -n "$1" | awk -v p="$2" '{v[NR] = $1} END { r = int((p * NR + 99) / 100); if (r < 1) r = 1; printf "%.1f", v[r] / 1000 }'; }

echo "rkube: $RKUBE ($(stat -c %y "$RKUBE" | cut -d. -f1)); peer: $(kubectl version --client -o json | jq -r .clientVersion.gitVersion) get pod -o json"
echo "$ROUNDS rounds x $RUNS runs each of: rkube inspect pod -o json | kubectl get pod -o json | kubectl get --raw <inspect>"
bench_load start
order=(rkube_run kubectl_run raw_run)
for ((round = 1; round <= ROUNDS; round++)); do
    rm -f "$W"/*.round
    for ((i = 0; i < RUNS; i++)); do
        for ((k = 0; k < 3; k++)); do "${order[(k + round) % 3]}"; done
    done
    a=$(pct "$W/rkube.round" 50); b=$(pct "$W/kubectl.round" 50); c=$(pct "$W/raw.round" 50)
    bench_ratio "$a" "$b" >> "$W/ratio"; echo >> "$W/ratio"
    echo "round $round: p50 rkube inspect $a ms, kubectl get pod $b ms, kubectl get --raw inspect $c ms, rkube/kubectl $(bench_ratio "$a" "$b"); $(bench_load "after round $round")"
done
bench_load end
echo
n=$(grep -c . "$W/rkube.all")
printf '%-44s p50 %6s ms  p99 %6s ms  (n=%d; target p50 <= 100 ms)\n' "rkube inspect pod -o json" "$(pct "$W/rkube.all" 50)" "$(pct "$W/rkube.all" 99)" "$n"
printf '%-44s p50 %6s ms  p99 %6s ms\n' "kubectl get pod -o json (peer)" "$(pct "$W/kubectl.all" 50)" "$(pct "$W/kubectl.all" 99)"
printf '%-44s p50 %6s ms  p99 %6s ms\n' "kubectl get --raw .../proxy/inspect/pods/..." "$(pct "$W/raw.all" 50)" "$(pct "$W/raw.all" 99)"
bench_ratio_row "rkube inspect / kubectl get, per-round p50" "$W/ratio"
