# shellcheck shell=bash
# Shared by the bench/*.sh scripts (sourced, not run). How every comparison here is made: the peers run in
# alternation, round by round, so a change of load on this shared 2-core machine hits both alike; each round gives
# one ratio rkube/peer; a script reports the median of those per-round ratios with their min and max (the spread),
# never the best round. The load average is printed at the start and end of every script.

# The load average line a script prints before and after its rounds.
bench_load() { echo "load average ($1): $(cut -d' ' -f1-3 /proc/loadavg)"; }

# bench_ratio A B: A/B with 4 decimals, or nothing when B is 0 or either is empty.
bench_ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b != "" && b + 0 > 0) printf "%.4f", a / b }'; }

# bench_median_spread FILE: "median min max" of the numbers in FILE (one a line), 2 decimals; "- - -" if none.
bench_median_spread() {
  sort -g "$1" | awk '{v[NR] = $1} END {
    if (NR == 0) { print "- - -"; exit }
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "%.2f %.2f %.2f\n", m, v[1], v[NR] }'
}

# bench_median FILE: the median of the numbers in FILE, 2 decimals.
bench_median() { bench_median_spread "$1" | cut -d' ' -f1; }

# bench_ratio_row LABEL FILE: one line "LABEL  median X (min Y, max Z) over N rounds" for a file of per-round ratios.
bench_ratio_row() {
  local m lo hi
  read -r m lo hi < <(bench_median_spread "$2")
  printf '%-48s median %s (min %s, max %s) over %d rounds\n' "$1" "$m" "$lo" "$hi" "$(grep -c . "$2" || true)"
}

# --- one `rkube up` on links of the script's own (proxy.sh, ingress.sh, inspect.sh) ---
# The script sets DATA (a temp dir), VETH, BR (the bridge rkube up makes), FORWARD (ip_forward as found), UP_PID
# and RKUBE; these do the rest the same way in each.

# bench_node_veth ADDR/LEN: the node's address on a veth pair of the script's own ($VETH), never the uplink.
bench_node_veth() {
  ip link add "$VETH" type veth peer name "${VETH}p"
  ip addr add "$1" dev "$VETH"
  ip link set "$VETH" up
}

# bench_image NAME FILL [ARGS...]: an offline OCI image docker.io/library/NAME:latest in $DATA/images (a one-layer
# image made with umoci), its root filesystem filled by the function FILL, called with the rootfs path and ARGS.
bench_image() {
  local name=$1 fill=$2 layout="$DATA/oci-$1" bundle="$DATA/bundle-$1"
  shift 2
  umoci init --layout "$layout" >/dev/null
  umoci new --image "$layout:latest" >/dev/null
  umoci unpack --image "$layout:latest" "$bundle" >/dev/null
  "$fill" "$bundle/rootfs" "$@"
  umoci repack --image "$layout:latest" "$bundle" >/dev/null
  "$RKUBE" image import --root "$DATA/images" --name "docker.io/library/$name:latest" "$layout" >/dev/null
}

# bench_import_busybox: the host's static busybox as docker.io/library/busybox:latest in $DATA/images, offline.
bench_import_busybox() { bench_image busybox bench_fill_busybox; }
bench_fill_busybox() {
  mkdir -p "$1/bin"
  cp "$(command -v busybox)" "$1/bin/busybox"
  chroot "$1" /bin/busybox --install -s /bin
}

# bench_import_nginx NAME: the host's nginx (Debian's, with the libraries it links) as
# docker.io/library/bench-nginx:latest in $DATA/images, offline: a server that keeps connections open and does not
# fork per connection, answering NAME (from /www/index.html) on port 8080 with 2 workers, no access log.
bench_import_nginx() { bench_image bench-nginx bench_fill_nginx "$1"; }
bench_fill_nginx() {
  local root=$1 lib
  mkdir -p "$root/usr/sbin" "$root/etc/nginx" "$root/tmp" "$root/www"
  cp "$(command -v nginx)" "$root/usr/sbin/nginx"
  for lib in $(ldd "$(command -v nginx)" | grep -o '/[^ ]*'); do mkdir -p "$root$(dirname "$lib")"; cp -L "$lib" "$root$lib"; done
  echo 'root:x:0:0:root:/root:/bin/sh' > "$root/etc/passwd"
  echo 'root:x:0:' > "$root/etc/group"
  echo "$2" > "$root/www/index.html"
  cat > "$root/etc/nginx/nginx.conf" <<'NGINX'
user root root;
worker_processes 2;
pid /tmp/nginx.pid;
error_log stderr;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path /tmp/body;
    proxy_temp_path /tmp/proxy;
    fastcgi_temp_path /tmp/fastcgi;
    uwsgi_temp_path /tmp/uwsgi;
    scgi_temp_path /tmp/scgi;
    keepalive_requests 1000000;
    server { listen 8080; root /www; }
}
NGINX
}

# bench_wait_node SECONDS: waits for rkube up's kubeconfig and its Node; exits with the log's tail if none comes.
bench_wait_node() {
  export KUBECONFIG="$DATA/kubeconfig"
  for _ in $(seq $(($1 * 10))); do [ -s "$KUBECONFIG" ] && kubectl get nodes -o name 2>/dev/null | grep -q . && return 0; sleep 0.1; done
  echo "$0: rkube up gave no node in $1 s; its log:" >&2
  tail -30 "$DATA/rkube.log" >&2
  exit 1
}

# bench_up_stop: for the script's EXIT trap: ends its `rkube up` ($UP_PID), runs rkube down, removes its links,
# puts ip_forward back and removes $DATA.
bench_up_stop() {
  if [ -n "${UP_PID:-}" ]; then kill -TERM "$UP_PID" 2>/dev/null || true; wait "$UP_PID" 2>/dev/null || true; fi
  "$RKUBE" down --data-dir "$DATA" >/dev/null 2>&1 || true
  ip link del "$VETH" 2>/dev/null || true
  ip link del "$BR" 2>/dev/null || true
  echo "$FORWARD" > /proc/sys/net/ipv4/ip_forward
  rm -rf "$DATA"
}
