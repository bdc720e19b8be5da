#!/usr/bin/env bash
# Installs every Debian package rkube's build, tests and demo need. Safe to run again; a clean CI machine runs it.
set -euo pipefail
#
#   scripts/deps.sh           everything
#   scripts/deps.sh --build   only what `cargo build` needs (scripts/test.sh installs the rest while it builds)
#   scripts/deps.sh --test    only what the tests and the demo need, not the build's packages
mode=${1:-all}
case $mode in all|--build|--test) ;; *) echo "deps: unknown argument $mode (use --build, --test or nothing)" >&2; exit 2 ;; esac
# libprotobuf-dev: the well-known .proto files (google/protobuf/descriptor.proto) etcd-client's build needs;
# --no-install-recommends does not pull them in with protobuf-compiler.
BUILD_PKGS=(libseccomp-dev pkg-config protobuf-compiler libprotobuf-dev)
TEST_PKGS=(busybox-static runc crun containernetworking-plugins docker-registry skopeo umoci etcd-server etcd-client
      iputils-ping curl openssl nftables iproute2 jq hyperfine podman python3-venv dnsutils shellcheck vagrant chromium)
case $mode in
  --build) PKGS=("${BUILD_PKGS[@]}") ;;
  --test) PKGS=("${TEST_PKGS[@]}") ;;
  *) PKGS=("${BUILD_PKGS[@]}" "${TEST_PKGS[@]}") ;;
esac
missing=()
for p in "${PKGS[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ "$mode" = --build ]; then
  command -v cargo >/dev/null || { echo "deps: cargo not found; install a Rust toolchain >= 1.85 (rustup) first" >&2; exit 1; }
  exit 0
fi
"$(dirname "$0")/vm-deps.sh"
# The Python `kubernetes` client (PyPI) the client e2e tests drive, in a venv of its own. The marker file is written
# last, so an interrupted install is redone; tests/e2e/tests/clients.rs reads the same place and marker.
venv=${RKUBE_TEST_VENV:-/var/cache/rkube-test/venv}
if [ ! -e "$venv/.rkube-installed" ]; then
  echo "deps: installing the Python kubernetes client into $venv (from PyPI)"
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet kubernetes
  "$venv/bin/python" -c 'import kubernetes' && : >"$venv/.rkube-installed"
fi
command -v cargo >/dev/null || { echo "deps: cargo not found; install a Rust toolchain >= 1.85 (rustup) first" >&2; exit 1; }
