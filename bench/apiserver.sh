#!/usr/bin/env bash
# Apiserver benchmark (not a test): starts the apiserver alone (release build) on the embedded store and on a
# throwaway etcd (Debian's etcd-server, 127.0.0.1 only, data in a temp dir on the same disk), in alternation round
# by round (embedded, then etcd, then embedded...), and runs the bench client against each: pod creates/s with
# p50/p99 latency at 16 and 64 clients, list of 10,000 pods (whole and in pages of 500), watch fan-out to 1,000
# watchers, and the apiserver's RSS. Prints per measure the median of each backend over the rounds and the median
# of the per-round ratios embedded/etcd with min and max (bench/lib.sh), the targets, and the load average.
# The apiserver is the library's `examples/serve` on plain HTTP (no TLS, no authentication): the figures are the
# API and the store, without the TLS that `rkube server` and `rkube up` always serve (issue 15), as before.
# Usage: bench/apiserver.sh [--embedded|--etcd|--both] [rounds]     (default: both, 3 rounds)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
which=${1:-both}
rounds=${2:-3}
case "$which" in both | --both | --embedded | --etcd) ;; *) echo "usage: $0 [--embedded|--etcd|--both] [rounds]" >&2; exit 2 ;; esac
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

# run BACKEND ROUND [ETCD_URL]: one apiserver, one bench client run; output in $work/BACKEND.ROUND.out
run() {
  local backend=$1 round=$2 etcd=${3:-} port dir pid
  port=$(free_port)
  dir="$work/$backend.$round"
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
  } | tee "$work/$backend.$round.out"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
}

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
fi
for ((r = 1; r <= rounds; r++)); do
  if [ "$which" != --etcd ]; then
    echo "== round $r: embedded store"
    run embedded "$r"
  fi
  if [ "$which" != --embedded ]; then
    # every round starts from an empty etcd, as the embedded store starts from an empty data dir
    ETCDCTL_API=3 etcdctl --endpoints "http://127.0.0.1:$cport" del "" --prefix >/dev/null
    echo "== round $r: etcd $(etcd --version | head -1 | awk '{print $3}')"
    run etcd "$r" "http://127.0.0.1:$cport"
  fi
done

# Side by side: each measure, embedded, etcd, embedded/etcd, target.
python3 - "$work" "$rounds" <<'EOF'
import os, sys
work, rounds = sys.argv[1], int(sys.argv[2])
def parse(path):
    if not os.path.exists(path):
        return {}
    out = {}
    for line in open(path):
        f = line.split()
        if not f:
            continue
        kv = dict(x.split("=", 1) for x in f[1:] if "=" in x)
        if f[0] == "create_pods":
            c = kv["clients"]
            out[f"creates/s, {c} clients"] = float(kv["creates_per_s"])
            out[f"create p50 ms, {c} clients"] = float(kv["p50_ms"])
            out[f"create p99 ms, {c} clients"] = float(kv["p99_ms"])
            out[f"server CPU us per create, {c} clients"] = float(kv["server_cpu_us_per_create"])
            if kv.get("failed", "0") != "0":
                out[f"failed creates, {c} clients"] = float(kv["failed"])
        elif f[0] == "list_pods":
            out["list 10,000 pods ms"] = float(kv["ms"])
        elif f[0] == "list_pods_paged_500":
            out["list 10,000 pods, pages of 500 ms"] = float(kv["ms"])
        elif f[0] == "watch_fanout":
            out["fan-out 1,000 watchers ms"] = float(kv["ms_to_all"])
            out["watchers reached"] = float(kv["received"])
        elif f[0].startswith("rss_mib"):
            out["RSS MiB " + f[0][len("rss_mib_"):].replace("_", " ")] = float(f[1])
        elif f[0].startswith("load_"):
            out["load " + f[0][5:]] = " ".join(f[1:])
    return out
def median(v):
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2
runs = {b: [parse(os.path.join(work, f"{b}.{r}.out")) for r in range(1, rounds + 1)] for b in ("embedded", "etcd")}
targets = {"create p99 ms, 64 clients": "<= 10 (embedded)", "RSS MiB 10000 pods": "<= 100"}
keys = list(dict.fromkeys(k for b in runs.values() for r in b for k in r if not k.startswith("load ")))
print()
print(f"{'measure':38} {'embedded':>10} {'etcd':>10}  {'emb/etcd per round: median (min, max)':38} target")
for k in keys:
    e = [r[k] for r in runs["embedded"] if k in r]
    d = [r[k] for r in runs["etcd"] if k in r]
    ratios = [a[k] / b[k] for a, b in zip(runs["embedded"], runs["etcd"]) if k in a and k in b and b[k]]
    fe = f"{median(e):.1f}" if e else ""
    fd = f"{median(d):.1f}" if d else ""
    fr = f"{median(ratios):.2f} ({min(ratios):.2f}, {max(ratios):.2f})" if ratios else ""
    print(f"{k:38} {fe:>10} {fd:>10}  {fr:38} {targets.get(k, '')}")
print(f"(medians over {rounds} rounds, embedded and etcd alternating; RSS is the apiserver's alone, etcd's own memory is not counted)")
for b in ("embedded", "etcd"):
    for i, r in enumerate(runs[b], 1):
        if r:
            print(f"load average, {b} round {i}: before {r.get('load before', '?')}, after {r.get('load after', '?')}")
EOF
