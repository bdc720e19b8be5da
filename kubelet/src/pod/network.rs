//! Pod networking through CNI: ADD when the sandbox is made, DEL when it goes, with the network from the
//! config directory (`/etc/cni/net.d`) and plugins from the plugin directories, run by the kubelet's own CNI client
//! ([`super::cni_client`]). hostNetwork pods skip both. The pod's `lo` comes up over the kubelet's netlink calls.

use std::path::{Path, PathBuf};

use super::cni_client::{load_network, Attachment, CniRuntime};

/// Why a pod's network could not be attached, detached or brought up. On ADD the sandbox's creation fails and
/// is retried; a failed DEL is logged and the teardown goes on.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// The network config could not be loaded, a plugin failed, or `lo` could not be brought up.
    #[error("pod {pod}: CNI {op} on {netns}: {message}")]
    Cni {
        /// The pod's name.
        pod: String,
        /// `ADD`, `DEL` or `loopback`.
        op: &'static str,
        /// The sandbox's network namespace.
        netns: PathBuf,
        /// The plugin's or the kernel's message (with the CNI error code).
        message: String,
    },
}

/// The node's CNI setup.
#[derive(Clone, Debug)]
pub struct PodNetwork {
    /// The CNI config directory, read on every ADD and DEL (so a network written later is picked up).
    pub conf_dir: PathBuf,
    /// The CNI client that runs the plugins.
    pub runtime: CniRuntime,
}

/// CNI_ARGS for a pod, as the kubelet passes them.
pub fn cni_args(namespace: &str, name: &str, sandbox_id: &str) -> String {
    format!("IgnoreUnknown=1;K8S_POD_NAMESPACE={namespace};K8S_POD_NAME={name};K8S_POD_INFRA_CONTAINER_ID={sandbox_id}")
}

impl PodNetwork {
    /// The network of `conf_dir`, its plugins from `bin_dirs`, ADD results cached in `cache_dir`.
    pub fn new(conf_dir: PathBuf, bin_dirs: Vec<PathBuf>, cache_dir: PathBuf) -> Self {
        Self { conf_dir, runtime: CniRuntime::new(bin_dirs, cache_dir) }
    }

    /// Attaches the sandbox's netns; returns the pod's IPv4 (else first) address.
    pub fn add(&self, pod: &str, namespace: &str, sandbox_id: &str, netns: &Path) -> Result<Option<String>, NetworkError> {
        let err = |message: String| NetworkError::Cni { pod: pod.into(), op: "ADD", netns: netns.into(), message };
        let net = load_network(&self.conf_dir).map_err(|e| err(e.msg))?;
        let att = Attachment {
            container_id: sandbox_id.into(),
            netns: netns.into(),
            ifname: "eth0".into(),
            args: cni_args(namespace, pod, sandbox_id),
        };
        let result = self.runtime.add(&net, &att).map_err(|e| err(format!("{} (code {})", e.msg, e.code)))?;
        let ips: Vec<std::net::IpAddr> = result.ips.iter().map(|i| i.address.addr()).collect();
        Ok(ips.iter().find(|ip| ip.is_ipv4()).or(ips.first()).map(|ip| ip.to_string()))
    }

    /// Detaches it (idempotent: a missing netns or cached result is not an error for the plugins we run).
    pub fn del(&self, pod: &str, namespace: &str, sandbox_id: &str, netns: &Path) -> Result<(), NetworkError> {
        let err = |message: String| NetworkError::Cni { pod: pod.into(), op: "DEL", netns: netns.into(), message };
        let net = load_network(&self.conf_dir).map_err(|e| err(e.msg))?;
        let att = Attachment {
            container_id: sandbox_id.into(),
            netns: netns.into(),
            ifname: "eth0".into(),
            args: cni_args(namespace, pod, sandbox_id),
        };
        self.runtime.del(&net, &att).map_err(|e| err(format!("{} (code {})", e.msg, e.code)))
    }
}

/// Brings `lo` up in the pod's network namespace (a new netns starts with it down; containers of a pod talk
/// over localhost), over netlink: a short-lived thread enters the namespace (`setns`, which moves only that
/// thread) and opens its netlink socket there, so the kubelet's own threads never leave the host's namespace.
pub fn loopback_up(pod: &str, netns: &Path) -> Result<(), NetworkError> {
    let err = |message: String| NetworkError::Cni { pod: pod.into(), op: "loopback", netns: netns.into(), message };
    let ns = std::fs::File::open(netns).map_err(|e| err(format!("open network namespace: {e}")))?;
    let outcome = std::thread::scope(|s| {
        s.spawn(|| -> Result<(), String> {
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| format!("enter network namespace: {e}"))?;
            let mut nl = crate::netlink::Netlink::open().map_err(|e| e.to_string())?;
            let lo = nl.link_by_name("lo", "pod").map_err(|e| e.to_string())?.ok_or("no lo link in the namespace")?;
            if !lo.up {
                nl.set_up(lo.index, "lo").map_err(|e| e.to_string())?;
            }
            Ok(())
        })
        .join()
    });
    match outcome {
        Ok(r) => r.map_err(err),
        Err(_) => Err(err("the netlink thread panicked".into())),
    }
}

/// The pod network of the whole cluster: the controllers hand each node a /24 of it (controllers'
/// node_lifecycle `cluster_cidr`).
pub const CLUSTER_CIDR: &str = "10.244.0.0/16";

/// A default network config for a node: network `name`, rkube-bridge on `bridge` with rkube-host-local over
/// `subnet`, gateway and masquerade on; `mtu` for the bridge and the pods' veths (the kernel's default when
/// None). Written by `rkube up` under its data dir.
pub fn default_conflist(name: &str, bridge: &str, subnet: &str, mtu: Option<u32>) -> String {
    let mut v = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": name,
        "plugins": [{
            "type": "rkube-bridge",
            "bridge": bridge,
            "isGateway": true,
            // pods reach Services and cluster DNS through the node: without a default route a ClusterIP or
            // 10.96.0.10 is "network unreachable" inside the pod
            "isDefaultGateway": true,
            "ipMasq": true,
            // a pod reaching itself through its own Service: with br_netfilter the DNAT happens on the bridge and
            // the packet leaves by the port it came in on, which the bridge drops unless the port hairpins
            "hairpinMode": true,
            // pods on other nodes are reached with the pod's own address; only traffic leaving the cluster's
            // pod network is masqueraded
            "clusterCIDR": CLUSTER_CIDR,
            "ipam": {"type": "rkube-host-local", "ranges": [[{"subnet": subnet}]]}
        }]
    });
    if let Some(mtu) = mtu {
        // the bridge and both ends of each pod's veth (the vxlan pod network's tunnel MTU)
        v["plugins"][0]["mtu"] = mtu.into();
    }
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_and_default_config() {
        assert_eq!(cni_args("ns", "web", "sb1"), "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=sb1");
        let v: serde_json::Value = serde_json::from_str(&default_conflist("rkube", "cni0", "10.244.0.0/24", None)).expect("json");
        assert_eq!(v["plugins"][0]["ipam"]["ranges"][0][0]["subnet"], "10.244.0.0/24");
        assert_eq!(v["plugins"][0]["bridge"], "cni0");
        assert_eq!(v["plugins"][0]["isDefaultGateway"], true, "a default route to the node for Services and DNS");
        assert_eq!(v["plugins"][0]["hairpinMode"], true, "a pod reaches itself through its Service");
        assert_eq!(v["plugins"][0]["clusterCIDR"], CLUSTER_CIDR, "pod to pod across nodes is not masqueraded");
        let parsed = rkube_cni_types::ConfList::parse(default_conflist("rkube", "cni0", "10.244.0.0/24", None).as_bytes());
        assert!(parsed.is_ok(), "{parsed:?}");
        assert!(v["plugins"][0].get("mtu").is_none(), "the kernel's default MTU unless told");
        let v: serde_json::Value = serde_json::from_str(&default_conflist("rkube", "cni0", "10.244.0.0/24", Some(1450))).expect("json");
        assert_eq!(v["plugins"][0]["mtu"], 1450, "the vxlan pod network's MTU on the bridge and veths");
    }

    #[test]
    fn loopback_comes_up_in_the_pods_namespace_only() {
        rkube_testsupport::require_root();
        struct Netns(String);
        impl Drop for Netns {
            fn drop(&mut self) {
                let _ = std::process::Command::new("ip").args(["netns", "del", &self.0]).status();
            }
        }
        let name = rkube_testsupport::unique_name("klo");
        let made = std::process::Command::new("ip").args(["netns", "add", &name]).status().expect("run ip netns add");
        assert!(made.success(), "ip netns add {name}");
        let ns = Netns(name.clone());
        let netns = std::path::PathBuf::from(format!("/var/run/netns/{name}"));
        let lo_up = |_: &Path| {
            let out = std::process::Command::new("ip").args(["-n", &name, "-o", "link", "show", "lo"]).output().expect("run ip");
            String::from_utf8_lossy(&out.stdout).contains(",UP")
        };
        let host_lo = std::fs::read_to_string("/sys/class/net/lo/operstate").unwrap_or_default();
        assert!(!lo_up(&netns), "a new namespace starts with lo down");
        loopback_up("p", &netns).expect("lo up");
        assert!(lo_up(&netns), "lo is up in the pod's namespace");
        loopback_up("p", &netns).expect("a second call is a no-op");
        let e = loopback_up("p", Path::new("/nonexistent/netns")).expect_err("missing netns");
        assert!(e.to_string().contains("/nonexistent/netns"), "{e}");
        assert_eq!(std::fs::read_to_string("/sys/class/net/lo/operstate").unwrap_or_default(), host_lo, "the host's lo is untouched");
        drop(ns);
    }
}
