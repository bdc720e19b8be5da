#!/usr/bin/env bash
# The service proxy's rule sync on `rkube up`: how long from an API write to the rule being in the node's
# nftables table.
#   1. full: N Services x 10 endpoints (selector-less Services with their own EndpointSlices,
#      addresses from 198.18.0.0/15, the benchmarking range: no traffic goes anywhere) created at once; time from the first create to the last Service's
#      map element in `service-ips`;
#      then the full sync alone: every table of the proxy's (past 500 Services the Services are spread over
#      several, kubelet/src/service_proxy/shard.rs) as `nft list` prints it, loaded by `nft -f` into an empty
#      network namespace of this script's (what the proxy's from-scratch sync on start or after a failure costs
#      at this size), and the from-scratch syncs the proxy made while the Services came in (one each time they
#      outgrew the table count);
#   2. one change: ROUNDS times, one EndpointSlice's first address is replaced (a merge patch straight to the
#      API from bench/patcher.py, one client on one open TLS connection, as a controller writes); time from the
#      patch's send to the new address's rule committed in the table (partial sync): new
#      connections go to the new address from then on. The commit is seen by a listener on the kernel's nftables
#      netlink group (NFNLGRP_NFTABLES), each event stamped as it arrives. p50/p99. Then where a round's time
#      goes: from the PATCH's start to the proxy's sync start (API write and watch delivery), the sync's compute
#      and its write (from the proxy's log lines, stamped when each sync ends).
#
#   sudo bench/proxy.sh [services] [rounds]     (default 1000 services, 30 rounds)
#   RKUBE=/path/to/rkube bench/proxy.sh ...     (that binary, e.g. an older build for a before/after; no cargo build)
#
# The times include the API write, the watch delivery and the transaction: what a user waits for. (Earlier
# versions polled `nft list chain` (~60 ms a listing at 1,000 Services), then used `nft monitor rules`, which
# at 5,000 Services was still dumping the table into its cache when the change landed: the listener here reads
# the kernel's events and dumps nothing.) No peer is run here (no kube-proxy on this machine): compare builds
# with RKUBE=.
# The rounds are 1.2 s apart (GAP): the kubelet syncs a change that follows a quiet spell at once, and a burst at
# most twice at once then once per 50 ms (kubelet/src/service_watch.rs), so each round is the issue's "one
# endpoint change", not a rate-limited burst.
# Uses only a veth pair and a bridge this script makes (10.244.250.0/24), all removed on exit; never the uplink.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
[ "$(id -u)" = 0 ] || { echo "proxy.sh: run as root (rkube up makes links and nftables tables)" >&2; exit 1; }
N=${1:-1000}
ROUNDS=${2:-30}
GAP=${GAP:-1.2}
if [ -z "${RKUBE:-}" ]; then
    TARGET=${CARGO_TARGET_DIR:-target}
    cargo build --release -q -p rkube
    RKUBE=$(cd "$TARGET/release" && pwd)/rkube
fi

TAG=$$
DATA=$(mktemp -d)
VETH="rkbv$TAG"; BR="rkbb$TAG"; DNSL="rkbd$TAG"; TABLE="rkbp$TAG"
FORWARD=$(cat /proc/sys/net/ipv4/ip_forward)
UP_PID=
MON_PID=
PATCHER_PID_=
cleanup() {
    if [ -n "$MON_PID" ]; then kill -TERM "$MON_PID" 2>/dev/null || true; wait "$MON_PID" 2>/dev/null || true; fi
    if [ -n "$PATCHER_PID_" ]; then kill -TERM "$PATCHER_PID_" 2>/dev/null || true; wait "$PATCHER_PID_" 2>/dev/null || true; fi
    bench_up_stop
}
trap cleanup EXIT
bench_node_veth 10.244.250.1/24

"$RKUBE" up --data-dir "$DATA" --listen 127.0.0.1:0 --node-ip 10.244.250.1 --bridge "$BR" --pod-cidr 10.244.251.0/24 \
    --cluster-dns 10.96.0.250 --dns-link "$DNSL" --proxy-table "$TABLE" --dns-upstream none --no-ingress \
    2> "$DATA/rkube.log" & UP_PID=$!
bench_wait_node 30
API=$(kubectl config view -o jsonpath='{.clusters[0].cluster.server}')

now_ms() { date +%s%3N; }
gen() { # services and slices i in [from, to)
    for i in $(seq "$1" $(($2 - 1))); do
        printf -- '---\napiVersion: v1\nkind: Service\nmetadata: {name: b%d}\nspec:\n  ports: [{name: http, port: 80}]\n' "$i"
        printf -- '---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: b%d-1\n  labels: {kubernetes.io/service-name: b%d}\naddressType: IPv4\nports: [{name: http, port: 8080, protocol: TCP}]\nendpoints:\n' "$i" "$i"
        for e in $(seq 10); do printf -- '- addresses: ["198.18.%d.%d"]\n' $((i % 250)) $((e + 10)); done
    done
}
# four kubectl create processes side by side (kubectl apply took 487 s for 5,000 Services and their slices)
for part in 0 1 2 3; do gen $((N * part / 4)) $((N * (part + 1) / 4)) > "$DATA/objects-$part.yaml"; done
start=$(now_ms)
pids=()
for part in 0 1 2 3; do kubectl create -f "$DATA/objects-$part.yaml" >/dev/null & pids+=($!); done
for pid in "${pids[@]}"; do wait "$pid"; done
applied=$(now_ms)
# the proxy's tables: $TABLE, and past 500 Services its shards $TABLE-1, $TABLE-2, ... (kubelet/src/service_proxy/shard.rs)
tables() { nft list tables | awk -v t="$TABLE" '$3 == t || index($3, t "-") == 1 && substr($3, length(t) + 2) ~ /^[0-9]+$/ {print $3}'; }
in_maps() { for t in $(tables); do nft list map ip "$t" service-ips 2>/dev/null; done | grep -o 'goto svc-default/b' | wc -l; }
while [ "$(in_maps)" -lt "$N" ]; do sleep 0.05; done
done_ms=$(now_ms)
echo "full: $N Services x 10 endpoints: kubectl create $((applied - start)) ms, all $N in the table after $((done_ms - start)) ms"
for t in $(tables); do nft list table ip "$t"; done > "$DATA/table.nft"
NS="rkbn$TAG"
ip netns add "$NS"
t0=$(now_ms)
ip netns exec "$NS" nft -f "$DATA/table.nft"
t1=$(now_ms)
ip netns del "$NS"
fulls=$(sed 's/\x1b\[[0-9;]*m//g' "$DATA/rkube.log" | grep "service proxy rules applied" | grep "kind=Full" || true)
echo "from-scratch syncs while the Services came in: $(printf '%s\n' "$fulls" | grep -c . || true), write_ms $(printf '%s\n' "$fulls" | grep -o 'write_ms=[0-9.]*' | cut -d= -f2 | tr '\n' ' '), tables $(printf '%s\n' "$fulls" | grep -o 'shards=[0-9]*' | cut -d= -f2 | tr '\n' ' ')"
echo "full sync alone: nft -f of the $(tables | wc -l) tables ($(grep -c '^	chain ' "$DATA/table.nft") chains) into an empty netns: $((t1 - t0)) ms"

# the proxy's own share (render, diff, nft transaction), from kube-proxy's metric on the kubelet's /metrics
NODE=$(kubectl get nodes -o jsonpath='{.items[0].metadata.name}')
sync_stats() {
    kubectl get --raw "/api/v1/nodes/$NODE/proxy/metrics" | awk '/^kubeproxy_sync_proxy_rules_duration_seconds_sum/ {s=$2} /^kubeproxy_sync_proxy_rules_duration_seconds_count/ {c=$2} END {print s, c}'
}
read -r sum0 count0 < <(sync_stats)
# the API server's own time for the rounds' PATCHes (its request histogram: count, sum, and how many took > 25 ms)
patch_stats() {
    kubectl get --raw /metrics | awk '/^apiserver_request_duration_seconds_(count|sum)\{verb="patch",resource="endpointslices"/ {v[$1 ~ /_count/ ? "c" : "s"]=$2}
        /^apiserver_request_duration_seconds_bucket\{verb="patch",resource="endpointslices",le="0.025"\}/ {b=$2}
        END {print v["c"] + 0, v["s"] + 0, b + 0}'
}
read -r pc0 ps0 pb0 < <(patch_stats)
# every new rule of the table, stamped in ms when the kernel's event arrives: "<ms> <chain>"
python3 -c '
import socket, struct, sys, time
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)  # NETLINK_NETFILTER
s.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)  # SO_RCVBUFFORCE: no event lost to a full queue
s.bind((0, 0))
s.setsockopt(270, 1, 7)  # SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, NFNLGRP_NFTABLES
print("listening", flush=True)
table = sys.argv[1].encode()
while True:
    data = s.recv(1 << 20)
    now = int(time.time() * 1000)
    off = 0
    while off + 20 <= len(data):
        ln, ty = struct.unpack_from("=IH", data, off)
        if ln < 20: break
        if ty == (10 << 8) | 6:  # NFT_MSG_NEWRULE: attributes after nlmsghdr + nfgenmsg
            attrs, a, got = data[off + 20:off + ln], 0, {}
            while a + 4 <= len(attrs):
                al, at = struct.unpack_from("=HH", attrs, a)
                if al < 4: break
                got[at & 0x7fff] = attrs[a + 4:a + al].rstrip(b"\0")
                a += (al + 3) & ~3
            t = got.get(1, b"")  # NFTA_RULE_TABLE (the proxy table or one of its shards); NFTA_RULE_CHAIN is 2
            if t == table or (t.startswith(table + b"-") and t[len(table) + 1:].isdigit()):
                print(now, got.get(2, b"").decode(), flush=True)
        off += (ln + 3) & ~3
' "$TABLE" > "$DATA/monitor" & MON_PID=$!
until grep -qs listening "$DATA/monitor"; do sleep 0.05; done
# one change at a time: b0's slice gets a new first address; time until b0's chain has it
chain="ep-default/b0/tcp/http__"
times=()
writes=()
starts=()
log0=$(wc -l < "$DATA/rkube.log")
# the writer: one client holding one TLS connection to the API, as a controller does (a curl per round cost a
# process start and a TLS handshake, 5-10 ms, that no controller pays); it stamps each PATCH just before sending
coproc PATCHER { exec python3 bench/patcher.py "$API" "$DATA/pki" /apis/discovery.k8s.io/v1/namespaces/default/endpointslices/b0-1; }
PATCHER_PID_=$PATCHER_PID
read -r ready <&"${PATCHER[0]}"
[ "$ready" = ready ] || { echo "proxy.sh: the PATCH client did not start" >&2; exit 1; }
for r in $(seq "$ROUNDS"); do
    sleep "$GAP"
    addr="203.0.113.$((r % 250 + 1))"
    echo "$addr" >&"${PATCHER[1]}"
    read -r t0 t1 <&"${PATCHER[0]}" || { echo "proxy.sh: round $r: the PATCH failed" >&2; exit 1; }
    t0=${t0%.*}
    starts+=("$t0")
    writes+=($(( ${t1%.*} - t0 )))
    until seen=$(grep -F -m1 " ${chain}$addr/8080" "$DATA/monitor"); do
        [ $(( $(now_ms) - t0 )) -lt 10000 ] || { echo "proxy.sh: round $r: $addr not in the table within 10 s" >&2; exit 1; }
        sleep 0.002
    done
    times+=($(( ${seen%% *} - t0 )))
done
sorted=$(printf '%s\n' "${times[@]}" | sort -n)
p() { printf '%s\n' "$sorted" | awk -v q="$1" '{a[NR]=$1} END {i=int(q*NR+0.999); if (i<1) i=1; print a[i]}'; }
echo "one endpoint change at $N Services: patch -> rule in place p50 $(p 0.5) ms, p99 $(p 0.99) ms, max $(p 1.0) ms ($ROUNDS rounds)"
sorted=$(printf '%s\n' "${writes[@]}" | sort -n)
echo "  of which the API write (the PATCH until its answer, the rule may land before): p50 $(p 0.5) ms, p99 $(p 0.99) ms"
read -r pc1 ps1 pb1 < <(patch_stats)
awk -v c="$((pc1 - pc0))" -v s0="$ps0" -v s1="$ps1" -v slow="$(( (pc1 - pc0) - (pb1 - pb0) ))" 'BEGIN { if (c > 0) printf "  the API server'"'"'s own time for those PATCHes (its request histogram): mean %.1f ms, %d of %d over 25 ms\n", (s1 - s0) * 1000 / c, slow, c }'
printf '  rounds (patch -> rule ms / API write ms):'; for i in "${!times[@]}"; do printf ' %s/%s' "${times[$i]}" "${writes[$i]}"; done; echo
read -r sum1 count1 < <(sync_stats)
awk -v a="$sum0" -v b="$sum1" -v c="$count0" -v d="$count1" 'BEGIN { if (d > c) printf "proxy sync itself (tracker update + plan + netlink batch), mean over the %d syncs of the rounds: %.1f ms\n", d - c, (b - a) * 1000 / (d - c) }'
# the same syncs split as the proxy logs them (kubelet/src/service_proxy/sync.rs): compute_ms (which Services
# changed, their ports again) and write_ms (plan, encode, the kernel's commit of the batch)
partial=$(tail -n +$((log0 + 1)) "$DATA/rkube.log" | sed 's/\x1b\[[0-9;]*m//g' | grep "service proxy rules applied" | grep "kind=Partial" || true)
field_p50() { printf '%s\n' "$partial" | grep -o "$1=[0-9.]*" | cut -d= -f2 | sort -n | awk '{a[NR]=$1} END {if (NR) print a[int((NR + 1) / 2)]; else print "-"}'; }
echo "proxy partial syncs of the rounds ($(printf '%s\n' "$partial" | grep -c . || true), from its log): compute p50 $(field_p50 compute_ms) ms, write p50 $(field_p50 write_ms) ms"
# where a round's time goes: the proxy's log line of the round's sync is stamped when the sync ends, so the sync
# began (compute_ms + write_ms) before it; from the PATCH's start to then is the API write and the watch's delivery
printf '%s\n' "$partial" | python3 -c '
import sys, datetime, re
starts = [int(x) for x in sys.argv[1].split()]
syncs = []
for line in sys.stdin:
    m = re.search(r"(\d{4}-\d\d-\d\dT[\d:.]+)Z", line)
    c, w = re.search(r"compute_ms=([\d.]+)", line), re.search(r"write_ms=([\d.]+)", line)
    if m and c and w:
        end = datetime.datetime.fromisoformat(m.group(1)).replace(tzinfo=datetime.timezone.utc).timestamp() * 1000
        syncs.append((end - float(c.group(1)) - float(w.group(1)), float(c.group(1)), float(w.group(1))))
got = []
for t0 in starts:
    after = [s for s in syncs if s[0] >= t0 - 1]
    if after:
        got.append((min(after)[0] - t0,) + min(after)[1:])
if got:
    q = lambda xs, f: sorted(xs)[min(len(xs) - 1, max(0, int(f * len(xs) + 0.999) - 1))]
    for i, name in enumerate(["API write + watch delivery (PATCH start -> sync start)", "compute", "write"]):
        xs = [g[i] for g in got]
        print("  %s: p50 %.1f ms, p99 %.1f ms" % (name, q(xs, 0.5), q(xs, 0.99)))
' "${starts[*]}" || true
echo "(rounds $GAP s apart)"
grep -c "service proxy rules applied" "$DATA/rkube.log" | sed 's/^/proxy syncs logged: /'
