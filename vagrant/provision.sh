#!/usr/bin/env bash
# Provisions one rkube node inside a Vagrant VM: packages, binaries, CNI plugins, and systemd units.
#   provision.sh control-plane NAME NODE_IP CONTROL_PLANE_IP
#   provision.sh worker NAME NODE_IP CONTROL_PLANE_IP JOIN_FILE
# It expects the binaries in /tmp/rkube-bin/ and rkube-node.sh at /tmp/rkube-node.sh (the Vagrantfile uploads both).
# Every node, the control plane's own included, joins the way kubeadm's do (docs/join.md): a bootstrap token and
# the CA's pin, a CertificateSigningRequest, then the kubelet with its own system:node:NAME certificate. No admin
# credential leaves the control plane. The control plane writes the join command (`rkube token create
# --print-join-command`) to /var/lib/rkube/join-command (0600); the Vagrantfile hands it to the workers as
# JOIN_FILE.
set -euo pipefail
role=$1 name=$2 node_ip=$3 cp_ip=$4 join_file=${5:-}
export DEBIAN_FRONTEND=noninteractive

apt-get update -qq
apt-get install -y -qq --no-install-recommends nftables iproute2 kmod ca-certificates >/dev/null
modprobe br_netfilter overlay veth bridge || true
sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1

install -m 0755 /tmp/rkube-bin/* /usr/local/bin/
mkdir -p /opt/cni/bin /etc/cni/net.d /var/lib/rkube /etc/rkube
ln -sf /usr/local/bin/rkube-bridge /opt/cni/bin/rkube-bridge
ln -sf /usr/local/bin/rkube-host-local /opt/cni/bin/rkube-host-local

case "$role" in
  control-plane)
    cat >/etc/systemd/system/rkube-server.service <<UNIT
[Unit]
Description=rkube apiserver, scheduler and controllers
After=network-online.target
[Service]
ExecStart=/usr/local/bin/rkube server --data-dir /var/lib/rkube/server --listen 0.0.0.0:6443 --advertise-address ${cp_ip}
Restart=always
[Install]
WantedBy=multi-user.target
UNIT
    systemctl daemon-reload
    systemctl enable --now rkube-server
    admin=/var/lib/rkube/server/kubeconfig
    join_file=/var/lib/rkube/join-command
    # the token lives 24 h (kubeadm's default); `rkube token create --print-join-command` on cp makes another
    ok=
    for _ in $(seq 1 150); do
      if [ -s "$admin" ] && (umask 077 && rkube token create --kubeconfig "$admin" --print-join-command \
          --description "vagrant nodes" >"$join_file.tmp" 2>/dev/null); then
        mv "$join_file.tmp" "$join_file"
        ok=1
        break
      fi
      sleep 0.2
    done
    [ -n "$ok" ] || { echo "provision: rkube server did not answer; journalctl -u rkube-server" >&2; exit 1; }
    ;;
  worker)
    [ -s "$join_file" ] || { echo "provision: worker $name needs the join command file (from cp)" >&2; exit 1; }
    ;;
  *)
    echo "provision: role $role: control-plane or worker" >&2
    exit 2
    ;;
esac

# The node agent starts through rkube-node.sh (the same script the VM test runs in its qemu guest): the first
# time it runs the `rkube join --server URL --token T --discovery-token-ca-cert-hash sha256:...` of the join
# command; once /var/lib/rkube/kubelet.conf (the node's own certificate) exists, every restart runs the kubelet
# with it, as a joined node does.
install -m 0755 /tmp/rkube-node.sh /usr/local/bin/rkube-node
if [ "$join_file" != /etc/rkube/join-command ]; then
  install -m 0600 "$join_file" /etc/rkube/join-command
fi
server=$(awk '{print $4}' /etc/rkube/join-command)
cat >/etc/systemd/system/rkube-kubelet.service <<UNIT
[Unit]
Description=rkube kubelet (joins with a bootstrap token the first time)
After=network-online.target
[Service]
Environment=RKUBE=/usr/local/bin/rkube
ExecStart=/usr/local/bin/rkube-node /etc/rkube/join-command ${name} ${node_ip}
KillMode=process
Restart=always
[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now rkube-kubelet
echo "rkube: ${name} (${role}) provisioned at ${node_ip}; it joins ${server} as system:node:${name}"
