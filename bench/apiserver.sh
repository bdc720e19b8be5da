#!/usr/bin/env bash
# Apiserver benchmark (not a test): starts the apiserver alone (release build) on the embedded store, then on a
# throwaway etcd (Debian's etcd-server, 127.0.0.1 only, data in a temp dir on the same disk), and runs the bench
# client against each: pod creates/s with p50/p99 latency at 16 and 64 clients, list of 10,000 pods (whole and in
# pages of 500), watch fan-out to 1,000 watchers, and the apiserver's RSS. Prints both side by side with the
# ratio embedded/etcd and the targets, plus the load average around each run (the VM has 2 cores: numbers taken
# while something else compiles are noisy, so repeat and compare).
# Usage: bench/apiserver.sh [--embedded|--etcd]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
which=${1:-both}
case "$which" in both | --embedded | --etcd) ;; *) echo "usage: $0 [--embedded|--etcd]" >&2; exit 2 ;; esac
cargo build --release -q -p rkube-apiserver --example serve --example bench
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
work=$(mktemp -d /var/tmp/rkube-bench-api.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() { # url what
  for _ in $(seq 1 300); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "$2 did not become ready at $1" >&2; exit 1
}

# run BACKEND [ETCD_URL]: one apiserver, one bench client run; output in $work/BACKEND.out
run() {
  local backend=$1 etcd=${2:-} port dir pid
  port=$(free_port)
  dir="$work/$backend"
  mkdir -p "$dir"
  # shellcheck disable=SC2086
  "$CARGO_TARGET_DIR/release/examples/serve" "$dir" "127.0.0.1:$port" $etcd >"$dir/server.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  wait_ready "http://127.0.0.1:$port/readyz" "apiserver ($backend)"
  {
    echo "load_before $(cut -d' ' -f1-3 /proc/loadavg)"
    "$CARGO_TARGET_DIR/release/examples/bench" "http://127.0.0.1:$port" "$pid"
    echo "load_after $(cut -d' ' -f1-3 /proc/loadavg)"
  } | tee "$work/$backend.out"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
}

if [ "$which" != --etcd ]; then
  echo "== embedded store"
  run embedded
fi
if [ "$which" != --embedded ]; then
  command -v etcd >/dev/null || { echo "etcd not found: apt-get install etcd-server" >&2; exit 1; }
  cport=$(free_port)
  pport=$(free_port)
  etcd --name bench --data-dir "$work/etcd-data" \
    --listen-client-urls "http://127.0.0.1:$cport" --advertise-client-urls "http://127.0.0.1:$cport" \
    --listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
    --initial-cluster "bench=http://127.0.0.1:$pport" >"$work/etcd.log" 2>&1 &
  pids+=("$!")
  wait_ready "http://127.0.0.1:$cport/health" etcd
  echo "== etcd $(etcd --version | head -1 | awk '{print $3}')"
  run etcd "http://127.0.0.1:$cport"
fi

# Side by side: each measure, embedded, etcd, embedded/etcd, target.
python3 - "$work" <<'EOF'
import os, re, sys
work = sys.argv[1]
def parse(name):
    path = os.path.join(work, name + ".out")
    if not os.path.exists(path):
        return {}
    out = {}
    for line in open(path):
        f = line.split()
        if not f:
            continue
        if f[0] == "create_pods":
            kv = dict(x.split("=") for x in f[1:])
            c = kv["clients"]
            out[f"creates/s, {c} clients"] = float(kv["creates_per_s"])
            out[f"create p50 ms, {c} clients"] = float(kv["p50_ms"])
            out[f"create p99 ms, {c} clients"] = float(kv["p99_ms"])
            out[f"server CPU us per create, {c} clients"] = float(kv["server_cpu_us_per_create"])
            if kv.get("failed", "0") != "0":
                out[f"failed creates, {c} clients"] = float(kv["failed"])
        elif f[0] == "list_pods":
            kv = dict(x.split("=") for x in f[1:])
            out["list 10,000 pods ms"] = float(kv["ms"])
        elif f[0] == "list_pods_paged_500":
            kv = dict(x.split("=") for x in f[1:])
            out["list 10,000 pods, pages of 500 ms"] = float(kv["ms"])
        elif f[0] == "watch_fanout":
            kv = dict(x.split("=") for x in f[1:])
            out["fan-out 1,000 watchers ms"] = float(kv["ms_to_all"])
            out["watchers reached"] = float(kv["received"])
        elif f[0].startswith("rss_mib"):
            out["RSS MiB " + f[0][len("rss_mib_"):].replace("_", " ")] = float(f[1])
        elif f[0].startswith("load_"):
            out["load " + f[0][5:]] = " ".join(f[1:])
    return out
e, d = parse("embedded"), parse("etcd")
targets = {"create p99 ms, 64 clients": "<= 10 (embedded)", "RSS MiB 10000 pods": "<= 100"}
keys = list(dict.fromkeys(list(e) + list(d)))
print()
print(f"{'measure':36} {'embedded':>12} {'etcd':>12} {'emb/etcd':>9}  target")
for k in keys:
    a, b = e.get(k, ""), d.get(k, "")
    if k.startswith("load "):
        continue
    ratio = f"{a / b:.2f}" if isinstance(a, float) and isinstance(b, float) and b else ""
    fa = f"{a:.1f}" if isinstance(a, float) else ""
    fb = f"{b:.1f}" if isinstance(b, float) else ""
    print(f"{k:36} {fa:>12} {fb:>12} {ratio:>9}  {targets.get(k, '')}")
print("(RSS is the apiserver's alone: etcd's own memory is not counted)")
for name, r in (("embedded", e), ("etcd", d)):
    if r:
        print(f"load average during the {name} run: before {r.get('load before', '?')}, after {r.get('load after', '?')}")
EOF
