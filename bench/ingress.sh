#!/usr/bin/env bash
# The built-in ingress controller on `rkube up`: requests/s, p50 and p99 latency of one HTTP GET through the
# ingress (node-ip:80, a Host rule -> the pod, user-space proxy) next to the same GET through Debian's nginx
# as a reverse proxy to the same pod (proxy_pass to the pod IP, as the ingress does: no ClusterIP hop), straight
# to the Service's ClusterIP (nftables DNAT to the same pod) and to the pod IP: same backend, same client, same run.
# Twice, behind two kinds of backend:
# - busybox httpd (Host bench.example, nginx on :8081): a process forked per connection that closes after each
#   answer, so both proxies open a connection to the pod for every request;
# - nginx in the pod (Host ka.example, nginx on :8082; bench_import_nginx): keeps connections open, so both
#   proxies reuse theirs to the pod (the ingress's pool, nginx's `keepalive 32`) and each request costs the proxy
#   only its own work.
#
#   sudo bench/ingress.sh [rounds] [requests] [concurrency] [updates]
#   (default 5 rounds, 3000 requests, 8 concurrent, 40 updates; RKUBE=/path/to/rkube runs that binary, no build)
#
# Then the update latency: the Ingress path's backend is switched between two Services (kubectl patch), and the
# time from the write's return (kubectl exits) to the first answer from the new backend is taken, polling with
# curl about every 5 ms (so the figure carries ~5-10 ms of poll and curl start); p50 and p99 of `updates` switches.
#
# The client is ApacheBench (`ab`, Debian's apache2-utils) on the host, one connection per request (HTTP/1.0, as
# ab sends). The four targets are taken in alternation, round by round (bench/lib.sh; the ingress and nginx swap
# places every round); each round gives the ratios ingress/nginx, ingress/ClusterIP and ingress/pod. The ingress:
# 2 worker threads (one per core, IngressConfig::workers' default), each its own event loop, no per-request log.
# nginx: 2 workers (one per core, its `auto` here), access log off, HTTP/1.1 to the upstream with keep-alive (as
# the ingress). A p99 of 3,000 requests is the 30th slowest of about half a second: expect it to move 20-30% from
# round to round, and read the median of the per-round ratios over many rounds (9 rounds: `ingress.sh 9`).
# Uses only a veth pair and a bridge this script makes (10.244.248.0/24), all removed on exit; never the uplink.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
[ "$(id -u)" = 0 ] || { echo "ingress.sh: run as root (rkube up makes links and nftables tables)" >&2; exit 1; }
command -v ab >/dev/null || { echo "ingress.sh: needs ab: apt-get install apache2-utils" >&2; exit 1; }
command -v umoci >/dev/null || { echo "ingress.sh: needs umoci: apt-get install umoci" >&2; exit 1; }
command -v nginx >/dev/null || { echo "ingress.sh: needs nginx: apt-get install nginx-light" >&2; exit 1; }
command -v conntrack >/dev/null || echo "ingress.sh: without conntrack (apt-get install conntrack) this run's connections stay tracked for 2 minutes after it, and a run started meanwhile measures them: wait 2 minutes between runs" >&2
ROUNDS=${1:-5}
N=${2:-3000}
C=${3:-8}
UPDATES=${4:-40}
if [ -z "${RKUBE:-}" ]; then   # RKUBE=/path/to/rkube: that binary, no cargo build
    TARGET=${CARGO_TARGET_DIR:-target}
    cargo build --release -q -p rkube
    RKUBE=$(cd "$TARGET/release" && pwd)/rkube
fi

TAG=$$
DATA=$(mktemp -d)
VETH="rkiv$TAG"; BR="rkib$TAG"; DNSL="rkid$TAG"; TABLE="rkip$TAG"
NODE=10.244.248.1
FORWARD=$(cat /proc/sys/net/ipv4/ip_forward)
UP_PID=
NGINX_PID=
POD_IP=
KA_POD_IP=
cleanup() {
    if [ -n "$NGINX_PID" ]; then kill -TERM "$NGINX_PID" 2>/dev/null || true; wait "$NGINX_PID" 2>/dev/null || true; fi
    bench_up_stop
    # the run's ~45,000 connections stay in conntrack (TIME_WAIT, 120 s) after it; the next run gets the same pod
    # address and ClusterIP, and its new connections on reused ports met those entries: ClusterIP fell to 660-1,150
    # requests/s with a 15 ms p99 in back-to-back runs. Every connection of the run was to or from the pod.
    if command -v conntrack >/dev/null; then
        for ip in $POD_IP $KA_POD_IP; do conntrack -D --reply-src "$ip" >/dev/null 2>&1 || true; done
    fi
}
trap cleanup EXIT
bench_node_veth "$NODE/24"

# a busybox image, offline
bench_import_busybox
bench_import_nginx benchka

"$RKUBE" up --data-dir "$DATA" --listen 127.0.0.1:0 --node-ip "$NODE" --bridge "$BR" --pod-cidr 10.244.249.0/24 \
    --cluster-dns 10.96.0.248 --dns-link "$DNSL" --proxy-table "$TABLE" --dns-upstream none \
    2> "$DATA/rkube.log" & UP_PID=$!
bench_wait_node 120

# backend NAME IMAGE COMMAND: a Deployment of one pod running COMMAND (a JSON list) of IMAGE, answering on 8080,
# and a Service of the same name on port 80.
backend() {
  kubectl apply -f - >/dev/null <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: $1}
spec:
  replicas: 1
  selector: {matchLabels: {app: $1}}
  template:
    metadata: {labels: {app: $1}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: server
        image: $2
        imagePullPolicy: Never
        command: $3
        readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: $1}
spec:
  selector: {app: $1}
  ports: [{port: 80, targetPort: 8080}]
EOF
}
# busybox httpd answering NAME
httpd_answering() { echo "[\"sh\", \"-c\", \"mkdir -p /www; echo $1 > /www/index.html; httpd -f -p 8080 -h /www\"]"; }
backend bench busybox:latest "$(httpd_answering bench)"
backend bench2 busybox:latest "$(httpd_answering bench2)"
# the same behind a server that keeps connections open (nginx in the pod, answering benchka: bench_import_nginx)
backend benchka bench-nginx:latest '["/usr/sbin/nginx", "-g", "daemon off;"]'
kubectl apply -f - >/dev/null <<'EOF'
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: bench}
spec:
  rules:
  - host: bench.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: bench, port: {number: 80}}}}
  - host: ka.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: benchka, port: {number: 80}}}}
EOF
kubectl rollout status deployment/bench --timeout=120s >/dev/null
kubectl rollout status deployment/bench2 --timeout=120s >/dev/null
kubectl rollout status deployment/benchka --timeout=120s >/dev/null
CLUSTER_IP=$(kubectl get svc bench -o jsonpath='{.spec.clusterIP}')
POD_IP=$(kubectl get pods -l app=bench -o jsonpath='{.items[0].status.podIP}')
KA_CLUSTER_IP=$(kubectl get svc benchka -o jsonpath='{.spec.clusterIP}')
KA_POD_IP=$(kubectl get pods -l app=benchka -o jsonpath='{.items[0].status.podIP}')
for _ in $(seq 100); do curl -sf -H 'Host: bench.example' "http://$NODE/" >/dev/null && break; sleep 0.1; done
curl -sf -H 'Host: bench.example' "http://$NODE/" | grep -q bench || { echo "ingress.sh: the ingress does not answer" >&2; exit 1; }
curl -sf "http://$CLUSTER_IP/" | grep -q bench || { echo "ingress.sh: the ClusterIP does not answer from the host" >&2; exit 1; }
for _ in $(seq 100); do curl -sf -H 'Host: ka.example' "http://$NODE/" >/dev/null && break; sleep 0.1; done
curl -sf -H 'Host: ka.example' "http://$NODE/" | grep -q benchka || { echo "ingress.sh: the ingress does not answer for the nginx backend" >&2; exit 1; }

# the peer: Debian's nginx as a reverse proxy to the same pod, on the node address, port 8081
mkdir -p "$DATA/nginx-run"
cat > "$DATA/nginx.conf" <<NGINX
worker_processes 2;
pid $DATA/nginx-run/nginx.pid;
error_log $DATA/nginx-run/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $DATA/nginx-run/body;
    proxy_temp_path $DATA/nginx-run/proxy;
    upstream bench { server $POD_IP:8080; keepalive 32; }
    upstream benchka { server $KA_POD_IP:8080; keepalive 32; }
    server {
        listen $NODE:8081;
        server_name bench.example;
        location / {
            proxy_pass http://bench;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
        }
    }
    server {
        listen $NODE:8082;
        server_name ka.example;
        location / {
            proxy_pass http://benchka;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
        }
    }
}
NGINX
nginx -c "$DATA/nginx.conf" -g 'daemon off;' & NGINX_PID=$!
for _ in $(seq 100); do curl -sf -H 'Host: bench.example' "http://$NODE:8081/" >/dev/null && break; sleep 0.1; done
curl -sf -H 'Host: bench.example' "http://$NODE:8081/" | grep -q bench || { echo "ingress.sh: nginx does not answer" >&2; exit 1; }
curl -sf -H 'Host: ka.example' "http://$NODE:8082/" | grep -q benchka || { echo "ingress.sh: nginx does not answer for the nginx backend" >&2; exit 1; }

# run NAME URL [ab args...] -> appends "rps p50 p99" to $DATA/NAME
run() {
    local name=$1 url=$2; shift 2
    ab -q -n "$N" -c "$C" -e "$DATA/ab.csv" "$@" "$url" > "$DATA/ab.out" 2>&1 || { cat "$DATA/ab.out" >&2; exit 1; }
    grep -q '^Failed requests: *0$' "$DATA/ab.out" || { echo "ingress.sh: $name: failed requests" >&2; grep -E 'Failed|Non-2xx' "$DATA/ab.out" >&2; }
    local rps p50 p99
    rps=$(awk '/^Requests per second:/ {print $4}' "$DATA/ab.out")
    # ab's CSV has the percentiles in ms with decimals (its text report rounds to whole ms)
    p50=$(awk -F, '$1 == "50" {printf "%.3f", $2}' "$DATA/ab.csv")
    p99=$(awk -F, '$1 == "99" {printf "%.3f", $2}' "$DATA/ab.csv")
    echo "$rps $p50 $p99" >> "$DATA/$name"
    echo "$rps $p50 $p99"
}

# The CPU the proxies spend: the ingress's worker threads (ingress-N of the rkube process) and nginx's worker
# processes, their time on a CPU from /proc/.../schedstat (ns) around each ab run, per request in µs.
INGRESS_TASKS=$(for t in /proc/"$UP_PID"/task/*; do case $(cat "$t/comm") in ingress-*) echo "$t";; esac; done)
NGINX_TASKS=$(for p in $(pgrep -P "$NGINX_PID"); do echo "/proc/$p"; done)
[ -n "$INGRESS_TASKS" ] && [ -n "$NGINX_TASKS" ] || { echo "ingress.sh: no ingress-N threads in $UP_PID or no nginx workers" >&2; exit 1; }
cpu_ns() { local s=0 t; for t in "$@"; do s=$((s + $(cut -d' ' -f1 "$t/schedstat"))); done; echo "$s"; }
per_request_us() { awk -v a="$1" -v b="$2" -v n="$N" 'BEGIN { printf "%.1f", (b - a) / n / 1000 }'; }
# proxy_run WHO TAG HOST URL: one ab run through the ingress (WHO=ingress) or nginx, setting WHO's rps, p50,
# p99 and cpu (µs per request)
proxy_run() {
    local who=$1 tag=$2 host=$3 url=$4 before after tasks rps p50 p99
    if [ "$who" = ingress ]; then tasks=$INGRESS_TASKS; else tasks=$NGINX_TASKS; fi
    # shellcheck disable=SC2086
    before=$(cpu_ns $tasks)
    read -r rps p50 p99 < <(run "$tag-$who" "$url" -H "Host: $host")
    # shellcheck disable=SC2086
    after=$(cpu_ns $tasks)
    per_request_us "$before" "$after" > "$DATA/cpu"
    echo >> "$DATA/cpu"
    cat "$DATA/cpu" >> "$DATA/$tag-$who-cpu"
    if [ "$who" = ingress ]; then irps=$rps ip50=$p50 ip99=$p99 icpu=$(cat "$DATA/cpu")
    else nrps=$rps np50=$p50 np99=$p99 ncpu=$(cat "$DATA/cpu"); fi
}

# measure TAG HOST NGINX_PORT CLUSTER_IP POD_IP: the rounds against one backend; TAG names its result files
measure() {
    local tag=$1 host=$2 nport=$3 cip=$4 pip=$5 r
    local irps ip50 ip99 icpu nrps np50 np99 ncpu crps cp50 prps pp50
    bench_load start
    echo "round  ingress rps p50ms p99ms cpu-us/req | nginx rps p50ms p99ms cpu-us/req | ClusterIP rps p50ms | pod rps p50ms"
    for r in $(seq "$ROUNDS"); do
        # the two proxies swap places every round, so neither always runs right after the other
        if [ $((r % 2)) = 1 ]; then
            proxy_run ingress "$tag" "$host" "http://$NODE/"
            proxy_run nginx "$tag" "$host" "http://$NODE:$nport/"
        else
            proxy_run nginx "$tag" "$host" "http://$NODE:$nport/"
            proxy_run ingress "$tag" "$host" "http://$NODE/"
        fi
        read -r crps cp50 _ < <(run "$tag-clusterip" "http://$cip/")
        read -r prps pp50 _ < <(run "$tag-pod" "http://$pip:8080/")
        echo "$r      $irps $ip50 $ip99 $icpu | $nrps $np50 $np99 $ncpu | $crps $cp50 | $prps $pp50"
        keep() { [ -z "$1" ] || echo "$1" >> "$DATA/$tag-$2"; }
        keep "$(bench_ratio "$irps" "$nrps")" rps_vs_nginx
        keep "$(bench_ratio "$ip99" "$np99")" p99_vs_nginx
        keep "$(bench_ratio "$icpu" "$ncpu")" cpu_vs_nginx
        keep "$(bench_ratio "$irps" "$crps")" rps_vs_clusterip
        keep "$(bench_ratio "$irps" "$prps")" rps_vs_pod
        keep "$(bench_ratio "$ip50" "$cp50")" p50_vs_clusterip
    done
    bench_load end
    col() { cut -d' ' -f"$1" "$DATA/$tag-$2" > "$DATA/col"; bench_median "$DATA/col"; }
    echo "median requests/s: ingress $(col 1 ingress), nginx $(col 1 nginx), ClusterIP $(col 1 clusterip), pod $(col 1 pod)"
    echo "median p50 ms:     ingress $(col 2 ingress), nginx $(col 2 nginx), ClusterIP $(col 2 clusterip), pod $(col 2 pod)"
    echo "median p99 ms:     ingress $(col 3 ingress), nginx $(col 3 nginx), ClusterIP $(col 3 clusterip), pod $(col 3 pod)"
    echo "median CPU µs/request (workers): ingress $(bench_median "$DATA/$tag-ingress-cpu"), nginx $(bench_median "$DATA/$tag-nginx-cpu")"
    bench_ratio_row "requests/s ingress / nginx" "$DATA/$tag-rps_vs_nginx"
    bench_ratio_row "p99 latency ingress / nginx (ms/ms)" "$DATA/$tag-p99_vs_nginx"
    bench_ratio_row "CPU per request ingress / nginx (workers)" "$DATA/$tag-cpu_vs_nginx"
    bench_ratio_row "requests/s ingress / ClusterIP" "$DATA/$tag-rps_vs_clusterip"
    bench_ratio_row "requests/s ingress / pod IP" "$DATA/$tag-rps_vs_pod"
    bench_ratio_row "p50 latency ingress / ClusterIP (ms/ms)" "$DATA/$tag-p50_vs_clusterip"
}

echo "== backend busybox httpd (a process per connection, closes after each answer)"
measure busybox bench.example 8081 "$CLUSTER_IP" "$POD_IP"
echo "== backend nginx (keeps connections open: the proxies reuse theirs to it)"
measure nginx ka.example 8082 "$KA_CLUSTER_IP" "$KA_POD_IP"

# update latency: switch the path's backend, wait for the new backend's answer
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
: > "$DATA/update_ms"
for i in $(seq "$UPDATES"); do
    if [ $((i % 2)) = 1 ]; then to=bench2; else to=bench; fi
    kubectl patch ingress bench --type=json \
        -p "[{\"op\": \"replace\", \"path\": \"/spec/rules/0/http/paths/0/backend/service/name\", \"value\": \"$to\"}]" >/dev/null
    t0=$(now_ms)
    until [ "$(curl -s --max-time 1 -H 'Host: bench.example' "http://$NODE/")" = "$to" ]; do
        [ $(( $(now_ms) - t0 )) -lt 10000 ] || { echo "ingress.sh: update $i: $to did not answer within 10 s" >&2; exit 1; }
        sleep 0.005
    done
    echo $(( $(now_ms) - t0 )) >> "$DATA/update_ms"
done
sort -n "$DATA/update_ms" > "$DATA/update_sorted"
pct() { awk -v p="$1" '{ v[NR] = $1 } END { i = int((NR * p + 99) / 100); if (i < 1) i = 1; print v[i] }' "$DATA/update_sorted"; }
echo "ingress update (path backend switched -> new backend answers), $UPDATES updates: p50 $(pct 50) ms, p99 $(pct 99) ms, max $(pct 100) ms"
