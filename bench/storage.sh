#!/usr/bin/env bash
# Storage benchmark: creates/s and p50/p99 at 16 and 64 concurrent writers, list of 10,000 objects, watch
# fan-out to 1,000 watchers and RSS, on the embedded store and on a throwaway etcd (Debian's etcd-server), in
# alternation round by round (embedded, etcd, embedded...; each round a fresh store). Prints every round's lines,
# then per figure the median of each backend and the median of the per-round ratios embedded/etcd with min and
# max (bench/lib.sh), and the load average before and after.
# Usage: bench/storage.sh [rounds]     (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
rounds=${1:-3}
command -v etcd >/dev/null || { echo "storage.sh: etcd not found: apt-get install -y etcd-server" >&2; exit 1; }
cargo bench -q -p rkube-apiserver --bench storage --no-run
work=$(mktemp -d /var/tmp/rkube-bench-storage.XXXXXX)
trap 'rm -rf "$work"' EXIT
bench_load start
for ((r = 1; r <= rounds; r++)); do
  for b in embedded etcd; do
    echo "== round $r: $b"
    cargo bench -q -p rkube-apiserver --bench storage -- "--$b" | tee "$work/$b.$r.out"
  done
done
bench_load end
python3 - "$work" "$rounds" <<'EOF'
import os, re, sys
work, rounds = sys.argv[1], int(sys.argv[2])
def ms(v):
    m = re.match(r"([0-9.]+)(µs|us|ms|s)$", v)
    n, u = float(m.group(1)), m.group(2)
    return n * {"µs": 1e-3, "us": 1e-3, "ms": 1, "s": 1e3}[u]
def parse(path):
    out = {}
    for line in open(path):
        if m := re.search(r"creates\s+writers=\s*(\d+).*?([0-9.]+) creates/s\s+p50=(\S+)\s+p99=(\S+)", line):
            w = m.group(1)
            out[f"creates/s, {w} writers"] = float(m.group(2))
            out[f"create p99 ms, {w} writers"] = ms(m.group(4))
        elif m := re.search(r"list\s+\d+ objects in one response: (\S+)", line):
            out["list 10,000 ms"] = ms(m.group(1))
        elif m := re.search(r"list\s+\d+ objects in pages of 500 at one revision: (\S+)", line):
            out["list 10,000, pages of 500 ms"] = ms(m.group(1))
        elif m := re.search(r"fan-out .* in (\S+) \(", line):
            out["fan-out ms"] = ms(m.group(1))
        elif m := re.search(r"rss\s+([0-9.]+) MiB", line):
            out["RSS MiB (bench process)"] = float(m.group(1))
    return out
def median(v):
    v = sorted(v); n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2
runs = {b: [parse(os.path.join(work, f"{b}.{r}.out")) for r in range(1, rounds + 1)] for b in ("embedded", "etcd")}
keys = list(dict.fromkeys(k for b in runs.values() for r in b for k in r))
print()
print(f"{'measure':32} {'embedded':>10} {'etcd':>10}  emb/etcd per round: median (min, max)")
for k in keys:
    e = [r[k] for r in runs["embedded"] if k in r]
    d = [r[k] for r in runs["etcd"] if k in r]
    ratios = [a[k] / b[k] for a, b in zip(runs["embedded"], runs["etcd"]) if k in a and k in b and b[k]]
    fr = f"{median(ratios):.2f} ({min(ratios):.2f}, {max(ratios):.2f})" if ratios else ""
    print(f"{k:32} {median(e) if e else float('nan'):>10.1f} {median(d) if d else float('nan'):>10.1f}  {fr}")
print(f"(medians over {rounds} rounds, embedded and etcd alternating)")
EOF
