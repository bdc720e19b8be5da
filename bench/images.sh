#!/usr/bin/env bash
# Pull + unpack time from a local registry: `rkube image pull` (download, verify, unpack in one pass) against
# the usual peer pipeline `skopeo copy docker://... oci:...` + `umoci unpack`, in alternation: each round pulls
# the image once with each (both stores emptied first), so load changes hit both alike.
#
# Two images: the busybox image the tests use (one ~1 MB layer: mostly process and HTTP overhead) and a
# "fat" one with a second layer made of /usr/share/doc (many small files: throughput of download + gunzip +
# untar). Prints each tool's median and the median of the per-round ratios rkube/peer with min and max
# (bench/lib.sh; < 1: rkube is faster), and the load average before and after.
# Not like for like: the peer writes an OCI layout (a second copy of every blob) before umoci unpacks it, and
# umoci also writes its mtree manifest; rkube unpacks while it downloads and keeps the blobs only as layers.
#
# Usage (root): bench/images.sh [rounds]      (default 10)   Env: RKUBE=/path/to/rkube (default: a release build)
set -euo pipefail
RUNS="${1:-10}"
cd "$(dirname "$0")/.."
. bench/lib.sh
[ "$(id -u)" = 0 ] || { echo "bench/images.sh: run as root (umoci unpack and rkube keep ownership)" >&2; exit 1; }
for c in docker-registry skopeo umoci busybox; do
  command -v "$c" >/dev/null || { echo "missing $c: scripts/deps.sh installs it" >&2; exit 1; }
done
if [ -z "${RKUBE:-}" ]; then
  cargo build --release -q -p rkube
  RKUBE="${CARGO_TARGET_DIR:-target}/release/rkube"
fi

WORK="$(mktemp -d /var/tmp/rkube-bench-images.XXXXXX)"
REG_PID=""
cleanup() {
  [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null && wait "$REG_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- images, built with umoci from busybox-static (no network) ---
umoci init --layout "$WORK/src" >/dev/null
umoci new --image "$WORK/src:busybox" >/dev/null
umoci unpack --image "$WORK/src:busybox" "$WORK/bundle" >/dev/null
R="$WORK/bundle/rootfs"
mkdir -p "$R/bin" "$R/etc" "$R/tmp" "$R/proc" "$R/sys" "$R/dev"
cp /bin/busybox "$R/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$R/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$R/etc/passwd"
umoci repack --image "$WORK/src:busybox" "$WORK/bundle" >/dev/null
cp -a /usr/share/doc "$R/usr-share-doc"
umoci repack --image "$WORK/src:fat" "$WORK/bundle" >/dev/null
rm -rf "$WORK/bundle"

# --- registry on 127.0.0.1 ---
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$WORK/registry.yml" <<EOF
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $WORK/registry}}
http: {addr: 127.0.0.1:$PORT}
EOF
docker-registry serve "$WORK/registry.yml" >/dev/null 2>&1 &
REG_PID=$!
for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
for t in busybox fat; do
  skopeo copy -q --insecure-policy --dest-tls-verify=false "oci:$WORK/src:$t" "docker://127.0.0.1:$PORT/bench:$t"
done

# ms a command takes (EPOCHREALTIME: no process started inside the timed span but the command)
timed_ms() {
  local t0 t1
  t0=$EPOCHREALTIME
  "$@" >/dev/null
  t1=$EPOCHREALTIME
  awk -v a="${t0/./}" -v b="${t1/./}" 'BEGIN { printf "%.1f\n", (b - a) / 1000 }'
}
bench_load start
for t in busybox fat; do
  REF="127.0.0.1:$PORT/bench:$t"
  for ((i = 0; i <= RUNS; i++)); do  # round 0 warms the registry's and the page cache
    rm -rf "$WORK/store" "$WORK/peer" && mkdir -p "$WORK/peer"
    rk=$(timed_ms "$RKUBE" image pull -q --root "$WORK/store" "$REF")
    peer=$(timed_ms sh -c "skopeo copy -q --insecure-policy --src-tls-verify=false docker://$REF oci:$WORK/peer/layout:$t && umoci unpack --image $WORK/peer/layout:$t $WORK/peer/bundle")
    ((i == 0)) && continue
    echo "$rk" >>"$WORK/$t.rk"
    echo "$peer" >>"$WORK/$t.peer"
    bench_ratio "$rk" "$peer" >>"$WORK/$t.ratio" && echo >>"$WORK/$t.ratio"
  done
  "$RKUBE" image ls --root "$WORK/store" | awk 'NR==2 {print $4}' >"$WORK/$t.size"
done
bench_load end
printf '\n%-8s %10s %12s %16s  %s\n' image size "rkube ms" "skopeo+umoci ms" "rkube/peer per round: median (min, max)"
for t in busybox fat; do
  size=$(cat "$WORK/$t.size")
  read -r m lo hi < <(bench_median_spread "$WORK/$t.ratio")
  printf '%-8s %10s %12s %16s  %s (%s, %s) over %d rounds\n' "$t" "$size" "$(bench_median "$WORK/$t.rk")" "$(bench_median "$WORK/$t.peer")" "$m" "$lo" "$hi" "$RUNS"
done
