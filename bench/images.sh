#!/usr/bin/env bash
# Pull + unpack time from a local registry: `rkube image pull` (download, verify, unpack in one pass) against
# the usual peer pipeline `skopeo copy docker://... oci:...` + `umoci unpack`, side by side with hyperfine.
#
# Two images: the busybox image the tests use (one ~1 MB layer: mostly process and HTTP overhead) and a
# "fat" one with a second layer made of /usr/share/doc (~120 MB of many small files: throughput of
# download + gunzip + untar). Prints each tool's median and the ratio peer/rkube (> 1: rkube is faster).
#
# Usage (root): bench/images.sh [runs]        Env: RKUBE=/path/to/rkube (default: a release build)
set -euo pipefail
RUNS="${1:-10}"
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/images.sh: run as root (umoci unpack and rkube keep ownership)" >&2; exit 1; }
for c in docker-registry skopeo umoci hyperfine jq busybox; do
  command -v "$c" >/dev/null || { echo "missing $c: scripts/deps.sh installs it" >&2; exit 1; }
done
if [ -z "${RKUBE:-}" ]; then
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/target-kubelet}"
  cargo build --release -q -p rkube
  RKUBE="$CARGO_TARGET_DIR/release/rkube"
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

printf '\n%-8s %12s %12s %12s %10s\n' image size rkube_ms peer_ms peer/rkube
for t in busybox fat; do
  REF="127.0.0.1:$PORT/bench:$t"
  hyperfine -N --runs "$RUNS" --warmup 1 --export-json "$WORK/$t.json" \
    --prepare "sh -c 'rm -rf $WORK/store $WORK/peer && mkdir -p $WORK/peer'" \
    -n rkube "$RKUBE image pull -q --root $WORK/store $REF" \
    -n skopeo+umoci "sh -c 'skopeo copy -q --insecure-policy --src-tls-verify=false docker://$REF oci:$WORK/peer/layout:$t && umoci unpack --image $WORK/peer/layout:$t $WORK/peer/bundle'" \
    >/dev/null
  rk=$(jq '.results[] | select(.command=="rkube") | .median * 1000' "$WORK/$t.json")
  peer=$(jq '.results[] | select(.command=="skopeo+umoci") | .median * 1000' "$WORK/$t.json")
  rm -rf "$WORK/store"; "$RKUBE" image pull -q --root "$WORK/store" "$REF" >/dev/null
  size=$("$RKUBE" image ls --root "$WORK/store" | awk 'NR==2 {print $4}')
  printf '%-8s %12s %12.1f %12.1f %10.2f\n' "$t" "$size" "$rk" "$peer" "$(awk -v p="$peer" -v r="$rk" 'BEGIN{print p/r}')"
done
