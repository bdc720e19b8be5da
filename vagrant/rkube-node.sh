#!/usr/bin/env bash
# Starts this machine's rkube node agent the way kubeadm's nodes join (docs/join.md):
#   rkube-node.sh JOIN_FILE NAME NODE_IP [more `rkube kubelet` flags...]
# The first time (no DATA_DIR/kubelet.conf yet) it runs the `rkube join --server URL --token T
# --discovery-token-ca-cert-hash sha256:...` that `rkube token create --print-join-command` wrote to JOIN_FILE:
# the node checks the CA by its pin, files a CSR with the bootstrap token, and runs the kubelet with its own
# system:node:NAME certificate in DATA_DIR/kubelet.conf. Every start after that runs `rkube kubelet --kubeconfig
# DATA_DIR/kubelet.conf` with the same flags. No admin credential is needed or read.
#
# provision.sh installs it as /usr/local/bin/rkube-node for the rkube-kubelet unit of every Vagrant node; the VM
# test (tests/e2e/tests/join_vm.rs) runs this same file inside its qemu guest.
# Environment: RKUBE_DATA_DIR (default /var/lib/rkube), RKUBE (the rkube binary, default rkube on PATH).
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: rkube-node.sh JOIN_FILE NAME NODE_IP [rkube kubelet flags...]" >&2
  exit 2
fi
join_file=$1 name=$2 node_ip=$3
shift 3
data=${RKUBE_DATA_DIR:-/var/lib/rkube}
rkube=${RKUBE:-rkube}
flags=(--data-dir "$data" --node-name "$name" --node-ip "$node_ip" "$@")

if [ -s "$data/kubelet.conf" ]; then
  exec "$rkube" kubelet --kubeconfig "$data/kubelet.conf" "${flags[@]}"
fi

[ -s "$join_file" ] || { echo "rkube-node: $name has no kubelet.conf and no join command in $join_file (make one on the control plane: rkube token create --print-join-command)" >&2; exit 1; }
# `rkube join --server URL --token T --discovery-token-ca-cert-hash sha256:...`, as rkube token create printed it
read -r w_rkube w_join flag_server server flag_token token flag_hash ca_hash _ <"$join_file" || true
ca_hash=${ca_hash%$'\r'}
if [ "$w_rkube $w_join" != "rkube join" ] || [ "$flag_server" != --server ] || [ "$flag_token" != --token ] ||
   [ "$flag_hash" != --discovery-token-ca-cert-hash ] || [ -z "$ca_hash" ]; then
  echo "rkube-node: $join_file is not an \`rkube join --server URL --token T --discovery-token-ca-cert-hash sha256:...\` command" >&2
  exit 1
fi
echo "rkube-node: $name ($node_ip) joins $server with token ${token%%.*}.<secret>" >&2
exec "$rkube" join --server "$server" --token "$token" --discovery-token-ca-cert-hash "$ca_hash" "${flags[@]}"
