#!/usr/bin/env bash
# Provisions one rkube node inside a Vagrant VM: packages, binaries, CNI config, and systemd units.
#   provision.sh control-plane|worker NAME NODE_IP CONTROL_PLANE_IP
set -euo pipefail
role=$1 name=$2 node_ip=$3 cp_ip=$4
export DEBIAN_FRONTEND=noninteractive

apt-get update -qq
apt-get install -y -qq --no-install-recommends nftables iproute2 kmod ca-certificates >/dev/null
modprobe br_netfilter overlay veth bridge || true
sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1

install -m 0755 /tmp/rkube-bin/* /usr/local/bin/
mkdir -p /opt/cni/bin /etc/cni/net.d /var/lib/rkube
ln -sf /usr/local/bin/rkube-bridge /opt/cni/bin/rkube-bridge
ln -sf /usr/local/bin/rkube-host-local /opt/cni/bin/rkube-host-local

if [ "$role" = control-plane ]; then
  cat > /etc/systemd/system/rkube-server.service <<UNIT
[Unit]
Description=rkube apiserver, scheduler and controllers
After=network-online.target
[Service]
ExecStart=/usr/local/bin/rkube server --data-dir /var/lib/rkube/server --listen 0.0.0.0:6443 --advertise-address ${cp_ip} --tls
Restart=always
[Install]
WantedBy=multi-user.target
UNIT
  systemctl daemon-reload
  systemctl enable --now rkube-server
  for _ in $(seq 1 100); do [ -s /var/lib/rkube/server/kubeconfig ] && break; sleep 0.2; done
  kubeconfig=/var/lib/rkube/server/kubeconfig
else
  install -m 0600 /tmp/rkube-kubeconfig /var/lib/rkube/kubeconfig
  kubeconfig=/var/lib/rkube/kubeconfig
fi

cat > /etc/systemd/system/rkube-kubelet.service <<UNIT
[Unit]
Description=rkube kubelet
After=network-online.target
[Service]
ExecStart=/usr/local/bin/rkube kubelet --kubeconfig ${kubeconfig} --node-name ${name} --node-ip ${node_ip}
KillMode=process
Restart=always
[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now rkube-kubelet
echo "rkube: ${name} (${role}) provisioned at ${node_ip}"
