#!/usr/bin/env bash
# The whole test suite: unit tests and root integration tests (real namespaces, cgroups, veths, nftables, registry,
# etcd, kubectl). Run as root on Debian 12. Everything is built once, in release: the binaries other engines exec
# (podman --runtime, CNI) and the tests share the same artifacts. Layers, times and how to run one test:
# docs/testing.md.
#
#   scripts/test.sh            install what is missing (scripts/deps.sh), check the prerequisites, build, test
#   scripts/test.sh --check    only check the prerequisites (nothing installed, nothing built)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "test.sh: run as root (the integration tests make real namespaces and cgroups)" >&2; exit 1; }

# Every prerequisite the suite needs and scripts/deps.sh cannot (or did not) install, each missing one named with
# the command that installs it. `check_prereqs early` checks only what scripts/deps.sh cannot install (kubectl,
# cargo, the cgroup layout) and runs before anything is built, so a machine that lacks one fails in seconds; the
# full check runs once the packages are in, before any test.
check_prereqs() {
  local early=${1:-}
  local missing=() venv=${RKUBE_TEST_VENV:-/var/cache/rkube-test/venv} vm=${RKUBE_VM_DIR:-/var/cache/rkube-vm}
  local gcloud_kubectl="add Google's cloud-sdk apt repository, then apt-get install -y kubectl (it ships /usr/bin/kubectl and /usr/lib/google-cloud-sdk/bin/kubectl.1.27 ... kubectl.1.33)"
  need() { # what, install command
    missing+=("$1: $2")
  }
  command -v cargo >/dev/null || need "cargo (Rust toolchain >= 1.85)" "install rustup, then rustup toolchain install stable"
  # the real kubectl: the one on PATH for most tests, the oldest and newest side by side for the version tests
  command -v kubectl >/dev/null || need "kubectl" "$gcloud_kubectl"
  for v in 1.27 1.33; do
    [ -x "/usr/lib/google-cloud-sdk/bin/kubectl.$v" ] || need "kubectl $v (/usr/lib/google-cloud-sdk/bin/kubectl.$v)" "$gcloud_kubectl"
  done
  # Debian packages the tests exec (scripts/deps.sh installs them all)
  local cmd pkg
  [ "$early" = early ] || while read -r cmd pkg; do
    command -v "$cmd" >/dev/null || need "$cmd" "apt-get install -y $pkg (or scripts/deps.sh)"
  done <<'EOF'
etcd etcd-server
etcdctl etcd-client
docker-registry docker-registry
skopeo skopeo
umoci umoci
runc runc
crun crun
podman podman
nft nftables
ip iproute2
dig dnsutils
curl curl
jq jq
python3 python3-venv
shellcheck shellcheck
vagrant vagrant
chromium chromium
EOF
  # busybox must be the static build: it is copied alone into container rootfs images
  if [ "$early" = early ]; then
    :
  elif [ ! -x /bin/busybox ]; then
    need "busybox (static)" "apt-get install -y busybox-static (or scripts/deps.sh)"
  elif ldd /bin/busybox >/dev/null 2>&1; then
    need "a static /bin/busybox (this one is dynamically linked)" "apt-get install -y busybox-static"
  fi
  if [ "$early" != early ] && { ! [ -x /usr/lib/cni/bridge ] || ! [ -x /usr/lib/cni/host-local ]; }; then
    need "reference CNI plugins (/usr/lib/cni/bridge, host-local)" "apt-get install -y containernetworking-plugins (or scripts/deps.sh)"
  fi
  # the Python kubernetes client, in the venv scripts/deps.sh makes
  if [ "$early" != early ] && { ! [ -e "$venv/.rkube-installed" ] || ! "$venv/bin/python" -c 'import kubernetes' 2>/dev/null; }; then
    need "the Python kubernetes client in $venv" "scripts/deps.sh (python3 -m venv $venv && $venv/bin/pip install kubernetes)"
  fi
  # qemu and Debian's cloud kernel for the cgroup v2 VM tests, unpacked (not installed)
  if [ "$early" != early ] && { ! [ -x "$vm/root/usr/bin/qemu-system-x86_64" ] || ! compgen -G "$vm/root/boot/vmlinuz-*" >/dev/null; }; then
    need "qemu-system-x86_64 and a cloud kernel under $vm/root" "scripts/vm-deps.sh"
  fi
  # Cgroup layout: the host tests use the v1 controllers (hybrid or legacy layout); pure v2 runs in the VM.
  local c
  for c in cpu cpuacct cpuset memory pids devices freezer; do
    [ "$(stat -fc %T "/sys/fs/cgroup/$c" 2>/dev/null)" = cgroupfs ] ||
      need "cgroup v1 controller $c at /sys/fs/cgroup/$c (the host tests need the v1 or hybrid layout; this host's /sys/fs/cgroup is $(stat -fc %T /sys/fs/cgroup))" \
        "boot with systemd.unified_cgroup_hierarchy=0, or run on a host with the v1/hybrid layout (pure v2 is tested in the qemu VM)"
  done
  [ -w /proc/sys/net/ipv4/ip_forward ] || need "a writable /proc/sys/net/ipv4/ip_forward" "run as root outside a read-only /proc"
  if [ ${#missing[@]} -gt 0 ]; then
    echo "test.sh: missing prerequisites:" >&2
    printf '  - %s\n' "${missing[@]}" >&2
    return 1
  fi
  [ "$early" != early ] || return 0
  echo "test.sh: prerequisites present (kubectl $(kubectl version --client -o json 2>/dev/null | jq -r .clientVersion.gitVersion), 1.27 and 1.33; $(etcd --version | head -1); Python kubernetes $("$venv/bin/python" -c 'import kubernetes; print(kubernetes.__version__)'); cgroup v1 controllers)"
}

if [ "${1:-}" = --check ]; then
  check_prereqs
  exit
fi
check_prereqs early
start=$(date +%s)
# The build's few packages first; the tests' packages, the VM's qemu and kernel and the Python client install in
# the background while cargo builds (on a clean CI machine that overlaps minutes of apt with the build). The
# prerequisites are checked once both are done, before any test runs.
scripts/deps.sh --build
deps_log=$(mktemp /tmp/rkube-deps.XXXXXX.log)
scripts/deps.sh --test >"$deps_log" 2>&1 &
deps_pid=$!
# A build cache outside the clone, as CI caches are: a clone without a target/ of its own builds into
# $RKUBE_BUILD_CACHE/target (a symlink target -> there), so the next clone on this machine rebuilds only what changed;
# a clean machine builds everything there the first time, as before. Artifacts of old commits pile up in it: over
# 40 GB it is emptied first. RKUBE_BUILD_CACHE=none (or a CARGO_TARGET_DIR of your own) keeps the build in the clone.
cache=${RKUBE_BUILD_CACHE:-/var/cache/rkube-build}
if [ ! -e target ] && [ ! -L target ] && [ -z "${CARGO_TARGET_DIR:-}" ] && [ "$cache" != none ]; then
  mkdir -p "$cache/target"
  if [ "$(du -s --block-size=1G "$cache/target" | cut -f1)" -gt 40 ]; then
    echo "test.sh: emptying the build cache $cache/target (over 40 GB)"
    rm -rf "$cache/target" && mkdir -p "$cache/target"
  fi
  ln -s "$cache/target" target
  echo "test.sh: building in $cache/target (target -> there; RKUBE_BUILD_CACHE=none builds in the clone)"
fi
# --all-targets resolves features once for binaries and tests together (dev-dependencies included), so the test
# run below compiles nothing again and the binaries tests exec are the ones just built.
if ! cargo build --release --workspace --all-targets; then
  wait "$deps_pid" || true
  cat "$deps_log"
  rm -f "$deps_log"
  exit 1
fi
deps_rc=0
wait "$deps_pid" || deps_rc=$?
cat "$deps_log"
rm -f "$deps_log"
[ "$deps_rc" = 0 ] || { echo "test.sh: scripts/deps.sh --test failed (exit $deps_rc), see above" >&2; exit 1; }
check_prereqs
cargo test --release --workspace --no-fail-fast -- --test-threads="${RKUBE_TEST_THREADS:-4}"
echo "test.sh: finished in $(( $(date +%s) - start )) s"
