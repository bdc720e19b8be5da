#!/usr/bin/env bash
# The README's main command: install packages, build rkube, import a demo busybox image made offline from
# Debian's busybox-static, start `rkube up`, run a demo Pod and show it.
#
#   scripts/up.sh            # foreground: Ctrl-C stops rkube (then `rkube down` removes the pods)
#   scripts/up.sh --bg       # background: rkube logs to $DATA/rkube.log; stop with `target/release/rkube down`
#
# Environment: DATA (data dir, default /var/lib/rkube), NODE_IP (default: the host's primary address),
# PROFILE (release|debug, default release), CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
BG=0; [ "${1:-}" = "--bg" ] && BG=1
DATA=${DATA:-/var/lib/rkube}
PROFILE=${PROFILE:-release}
TARGET=${CARGO_TARGET_DIR:-target}
[ "$(id -u)" = 0 ] || { echo "up: run as root (rkube makes namespaces, mounts, cgroups and network devices)" >&2; exit 1; }

scripts/deps.sh
if [ "$PROFILE" = release ]; then FLAG=--release; else FLAG=; fi
echo "up: building rkube ($PROFILE)"
cargo build $FLAG -q -p rkube -p rkube-kubelet -p rkube-runtime -p rkube-cni --bins
# one rkube-monitor runs per container: link it statically, so it maps no libc.so / ld.so pages (~1.4 -> ~0.9 MiB RSS)
[ "$PROFILE" = release ] && cargo rustc --release -q -p rkube-kubelet --bin rkube-monitor -- -C target-feature=+crt-static
BIN="$TARGET/$PROFILE"

# demo image, offline: busybox-static in a one-layer OCI image
if ! "$BIN/rkube" image ls --root "$DATA/images" 2>/dev/null | grep -q "busybox"; then
  echo "up: building the demo busybox image from busybox-static"
  work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
  umoci init --layout "$work/oci" >/dev/null
  umoci new --image "$work/oci:latest" >/dev/null
  umoci unpack --rootless --image "$work/oci:latest" "$work/bundle" >/dev/null 2>&1 || umoci unpack --image "$work/oci:latest" "$work/bundle" >/dev/null
  mkdir -p "$work/bundle/rootfs/bin" "$work/bundle/rootfs/etc" "$work/bundle/rootfs/tmp"
  cp /bin/busybox "$work/bundle/rootfs/bin/busybox"
  chroot "$work/bundle/rootfs" /bin/busybox --install -s /bin
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$work/bundle/rootfs/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' > "$work/bundle/rootfs/etc/group"
  umoci repack --image "$work/oci:latest" "$work/bundle" >/dev/null
  umoci config --image "$work/oci:latest" --config.cmd sh --config.env PATH=/bin >/dev/null
  "$BIN/rkube" image import --root "$DATA/images" --name docker.io/library/busybox:latest "$work/oci"
fi

ARGS=(up --data-dir "$DATA")
[ -n "${NODE_IP:-}" ] && ARGS+=(--node-ip "$NODE_IP")
export KUBECONFIG="$DATA/kubeconfig"

POD_JSON='{"apiVersion":"v1","kind":"Pod","metadata":{"name":"hello"},"spec":{"containers":[{"name":"hello",
  "image":"busybox:latest","imagePullPolicy":"Never",
  "command":["sh","-c","echo hello from $(hostname); while true; do date; sleep 5; done"]}]}}'

# Polls `$@` until it succeeds, for at most $1 seconds.
wait_for() {
  local secs=$1; shift
  for _ in $(seq 1 $((secs * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "up: gave up after ${secs}s waiting for: $*" >&2; return 1
}

demo() {
  wait_for 60 test -s "$KUBECONFIG"
  if kubectl version --client >/dev/null 2>&1; then
    wait_for 60 sh -c 'kubectl get nodes -o name | grep -q node/'
    kubectl wait --for=condition=Ready node --all --timeout=60s >/dev/null
    echo "$POD_JSON" | kubectl apply -f -
    if ! kubectl wait --for=condition=Ready pod/hello --timeout=60s; then
      # say why, as kubectl describe would: the pod's events (e.g. FailedScheduling on a disk-pressure taint when
      # the disk holding $DATA is over 90 % full) and the node's conditions
      echo "up: the demo pod is not Ready after 60 s; its events and the node's conditions:" >&2
      kubectl get events --field-selector involvedObject.name=hello >&2 || true
      kubectl get nodes -o jsonpath='{range .items[*].status.conditions[*]}{.type}={.status} {.message}{"\n"}{end}' >&2 || true
      return 1
    fi
    kubectl get nodes -o wide
    kubectl get pods -o wide
    kubectl get svc -A
    kubectl logs hello | head -3
    echo
    echo "rkube is up.  export KUBECONFIG=$KUBECONFIG   then e.g.  kubectl get pods -A"
  else
    # kubectl is not packaged in Debian: the same demo with curl, over HTTPS with the admin certificate of the
    # cluster CA (the API serves nothing without credentials but health and version)
    api=$(awk '/server:/ {print $2; exit}' "$KUBECONFIG")
    pki="$DATA/pki"
    c="curl --cacert $pki/ca.crt --cert $pki/admin.crt --key $pki/admin.key"
    wait_for 60 sh -c "$c -sf $api/api/v1/nodes | jq -e '.items | length > 0'"
    $c -sf -X POST -H 'Content-Type: application/json' -d "$POD_JSON" "$api/api/v1/namespaces/default/pods" >/dev/null ||
      $c -sf "$api/api/v1/namespaces/default/pods/hello" >/dev/null
    wait_for 60 sh -c "$c -sf $api/api/v1/namespaces/default/pods/hello | jq -e '.status.phase == \"Running\"'"
    $c -sf "$api/api/v1/namespaces/default/pods/hello" | jq -r '"pod \(.metadata.name): \(.status.phase), IP \(.status.podIP) on \(.spec.nodeName)"'
    wait_for 20 sh -c "$c -sf '$api/api/v1/namespaces/default/pods/hello/log' | grep -q hello"
    $c -sf "$api/api/v1/namespaces/default/pods/hello/log" | head -3
    echo
    echo "rkube is up at $api (kubeconfig $KUBECONFIG). kubectl is not installed: get it from"
    echo "https://kubernetes.io/docs/tasks/tools/install-kubectl-linux/ and  export KUBECONFIG=$KUBECONFIG"
  fi
}

if [ "$BG" = 1 ]; then
  nohup "$BIN/rkube" "${ARGS[@]}" > "$DATA/rkube.log" 2>&1 &
  echo "up: rkube running in the background (pid $!, log $DATA/rkube.log)"
  demo
  echo "stop everything with: $BIN/rkube down --data-dir $DATA"
else
  "$BIN/rkube" "${ARGS[@]}" &
  pid=$!
  trap 'kill -TERM $pid 2>/dev/null; wait $pid; "$BIN/rkube" down --data-dir "$DATA"' INT TERM
  demo
  wait $pid
fi
