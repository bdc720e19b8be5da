//! The address and name plan of a local cluster, pure: from a name, a LAN subnet, a node count and a data dir,
//! every netns, link, address, directory and cgroup the cluster will use. Nothing here touches the machine.
//!
//! Layout for cluster `dev` on 172.28.0.0/24 with 3 nodes:
//! - netns `rkc-dev-lan` holds bridge `lan`; the host's veth `rkc-dev` (172.28.0.1/24) has its peer `host` on it;
//! - node `dev-n1` lives in netns `rkc-dev-n1`: its `eth0` (172.28.0.11/24) has its peer `n1` on the LAN bridge;
//!   its CNI bridge is `dev-br1`, its pod cgroups go under `rkc-dev/n1`, its data in `<data>/dev-n1`;
//! - the control plane listens on https://172.28.0.1:6443 with its data in `<data>/server`.
//!
//! With a routed LAN ([`Lan::Routed`]) there is no bridge: the LAN namespace is a router, and the /24 is cut in
//! /28 segments, one per node and one for the host, so no two nodes share an L2 segment:
//! - segment 0 (172.28.0.0/28): the host's `rkc-dev` 172.28.0.1, the router's `host` 172.28.0.2;
//! - segment i (172.28.0.16i/28): the router's `n<i>` .16i+1, node i's `eth0` .16i+2 (172.28.0.18 for node 1);
//! - every node and the host route the /24 via the router's address on their segment.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::{ClusterError, Result};

/// The default LAN: a private /24 outside the pod (10.244.0.0/16) and service (10.96.0.0/12) ranges.
pub const DEFAULT_SUBNET: &str = "172.28.0.0/24";
/// Where clusters keep their data unless told otherwise: `<root>/<name>`.
pub const DEFAULT_DATA_ROOT: &str = "/var/lib/rkube-cluster";
/// The apiserver's port on the host's LAN address.
pub const API_PORT: u16 = 6443;
/// Node i's LAN address is `.<NODE_BASE + i>`; .2-.10 and .100-.254 stay free for clients a user attaches.
pub const NODE_BASE: u8 = 10;
/// The most nodes a bridge LAN holds: .11 to .60, below the .100-.254 left to clients.
pub const MAX_NODES: usize = 50;
/// A routed LAN has 16 /28 segments, the first the host's.
pub const MAX_ROUTED_NODES: usize = 15;
/// The prefix length of a routed LAN's segments.
pub const SEGMENT_PREFIX: u8 = 28;
/// The bridge inside the LAN namespace.
pub const LAN_BRIDGE: &str = "lan";
/// The host veth's peer on the LAN bridge.
pub const LAN_HOST_PORT: &str = "host";
/// A node's link to the LAN, inside its namespace.
pub const NODE_LINK: &str = "eth0";

/// How the nodes are connected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lan {
    /// One bridge: every node and the host on one L2 segment (the /24).
    #[default]
    Bridge,
    /// A router: each node, and the host, on a /28 segment of its own, reaching the others through it.
    Routed,
}

impl std::str::FromStr for Lan {
    type Err = ClusterError;
    fn from_str(s: &str) -> Result<Lan> {
        match s {
            "bridge" => Ok(Lan::Bridge),
            "routed" => Ok(Lan::Routed),
            _ => Err(invalid("LAN kind", s, "use bridge (one L2 segment) or routed (a segment per node, joined by a router)")),
        }
    }
}

/// What `rkube cluster up` will make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The cluster's name (checked by [`check_name`]): the stem of every netns, link, node and cgroup name.
    pub name: String,
    /// Where the cluster's data lives: the control plane's in `server/`, each node's in `<name>-n<i>/`.
    pub data_dir: PathBuf,
    /// The LAN's first three octets (a /24).
    pub subnet: [u8; 3],
    /// How many nodes (1 to [`MAX_NODES`], or [`MAX_ROUTED_NODES`] on a routed LAN).
    pub nodes: usize,
    /// How the nodes are connected.
    pub lan: Lan,
}

/// One node's share of the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodePlan {
    /// The node's number, from 1.
    pub index: usize,
    /// The Node's name: `<cluster>-n<index>`.
    pub name: String,
    /// The network namespace the node agent runs in: `rkc-<node name>`.
    pub netns: String,
    /// The node's LAN address, on its `eth0` ([`NODE_LINK`]); also its node IP.
    pub addr: Ipv4Addr,
    /// The prefix length of `addr`'s segment: 24 on a bridge LAN, [`SEGMENT_PREFIX`] on a routed one.
    pub prefix: u8,
    /// On a routed LAN: the router's address on the node's segment (the node's way to the rest of the /24),
    /// which the router's port `lan_port` holds.
    pub gateway: Option<Ipv4Addr>,
    /// The node's port on the LAN bridge or router (in the LAN namespace).
    pub lan_port: String,
    /// The node agent's data dir: `<cluster data>/<node name>`.
    pub data_dir: PathBuf,
    /// The node's CNI bridge: `<cluster>-br<index>`, unique on the host (nodes share the host's kernel).
    pub bridge: String,
    /// The node's pod cgroup subtree, `rkc-<cluster>/n<index>`, under [`Plan::cgroup_top`].
    pub cgroup_root: String,
}

fn invalid(what: &'static str, value: &str, why: impl Into<String>) -> ClusterError {
    ClusterError::Invalid { what, value: value.to_string(), why: why.into() }
}

/// Checks a cluster name: 1-10 of [a-z0-9-], starting and ending with a letter or digit (it goes into link
/// names, which Linux caps at 15 bytes, and into node names, which must be DNS labels).
pub fn check_name(name: &str) -> Result<()> {
    let ok_chars = name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let ends_ok = !name.starts_with('-') && !name.ends_with('-');
    if name.is_empty() || name.len() > 10 || !ok_chars || !ends_ok {
        return Err(invalid("cluster name", name, "use 1-10 lowercase letters, digits or '-', not starting or ending with '-' (e.g. dev)"));
    }
    Ok(())
}

/// Parses the LAN subnet: a private IPv4 /24 (10/8, 172.16/12, 192.168/16) outside the pod CIDR 10.244.0.0/16
/// and the service CIDR 10.96.0.0/12.
pub fn parse_subnet(s: &str) -> Result<[u8; 3]> {
    let (addr, len) = s.split_once('/').ok_or_else(|| invalid("LAN subnet", s, "expected a /24, e.g. 172.28.0.0/24"))?;
    let ip: Ipv4Addr = addr.parse().map_err(|_| invalid("LAN subnet", s, "not an IPv4 address, e.g. 172.28.0.0/24"))?;
    if len != "24" {
        return Err(invalid("LAN subnet", s, "the LAN is a /24 (one address per node at .11 and up), e.g. 172.28.0.0/24"));
    }
    let o = ip.octets();
    if o[3] != 0 {
        return Err(invalid("LAN subnet", s, format!("host bits set; did you mean {}.{}.{}.0/24?", o[0], o[1], o[2])));
    }
    if !ip.is_private() {
        return Err(invalid("LAN subnet", s, "not a private range (10/8, 172.16/12, 192.168/16): the LAN must never be routable"));
    }
    if o[0] == 10 && o[1] == 244 {
        return Err(invalid("LAN subnet", s, "inside the pod CIDR 10.244.0.0/16"));
    }
    if o[0] == 10 && (96..112).contains(&o[1]) {
        return Err(invalid("LAN subnet", s, "inside the service CIDR 10.96.0.0/12"));
    }
    Ok([o[0], o[1], o[2]])
}

/// Which of the host's addresses (as `ip -o -4 addr` lists them: `addr/len`) lie in the LAN subnet: any at all
/// means the subnet is in use here (the uplink's, or another cluster's) and must not be taken.
pub fn conflicts(subnet: [u8; 3], host_addrs: &[String]) -> Vec<String> {
    host_addrs
        .iter()
        .filter(|a| {
            let ip = a.split('/').next().and_then(|i| i.parse::<Ipv4Addr>().ok());
            let len: u8 = a.split('/').nth(1).and_then(|l| l.parse().ok()).unwrap_or(32);
            match ip {
                // the host address is inside our /24, or its own network covers our /24
                Some(ip) => {
                    let o = ip.octets();
                    let mask = |n: u8| if n == 0 { 0u32 } else { u32::MAX << (32 - n.min(32) as u32) };
                    let ours = u32::from(Ipv4Addr::new(subnet[0], subnet[1], subnet[2], 0));
                    let m = mask(len.min(24));
                    [o[0], o[1], o[2]] == subnet || (u32::from(ip) & m) == (ours & m)
                }
                None => false,
            }
        })
        .cloned()
        .collect()
}

impl Plan {
    /// A bridge-LAN plan, checked: the name ([`check_name`]), the subnet ([`parse_subnet`]), 1 to [`MAX_NODES`]
    /// nodes; the data dir defaults to `<`[`DEFAULT_DATA_ROOT`]`>/<name>`. An error is [`ClusterError::Invalid`].
    pub fn new(name: &str, subnet: &str, nodes: usize, data_dir: Option<&Path>) -> Result<Plan> {
        check_name(name)?;
        let subnet = parse_subnet(subnet)?;
        if nodes == 0 || nodes > MAX_NODES {
            return Err(invalid("node count", &nodes.to_string(), format!("a cluster has 1 to {MAX_NODES} nodes")));
        }
        let data_dir = data_dir.map(Path::to_path_buf).unwrap_or_else(|| Path::new(DEFAULT_DATA_ROOT).join(name));
        Ok(Plan { name: name.to_string(), data_dir, subnet, nodes, lan: Lan::Bridge })
    }

    /// The same plan on a LAN of kind `lan` (a routed one has room for [`MAX_ROUTED_NODES`]).
    pub fn with_lan(self, lan: Lan) -> Result<Plan> {
        if lan == Lan::Routed && self.nodes > MAX_ROUTED_NODES {
            return Err(invalid("node count", &self.nodes.to_string(), format!("a routed LAN has 1 to {MAX_ROUTED_NODES} nodes (a /28 each in the /24)")));
        }
        Ok(Plan { lan, ..self })
    }

    /// The prefix length of the host's address on its link.
    pub fn host_prefix(&self) -> u8 {
        match self.lan {
            Lan::Bridge => 24,
            Lan::Routed => SEGMENT_PREFIX,
        }
    }

    /// On a routed LAN: the router's address on the host's segment (.2), the host's way to the nodes.
    pub fn router_addr(&self) -> Option<Ipv4Addr> {
        let [a, b, c] = self.subnet;
        (self.lan == Lan::Routed).then(|| Ipv4Addr::new(a, b, c, 2))
    }

    /// The LAN's network namespace, holding the bridge or router: `rkc-<name>-lan`.
    pub fn lan_netns(&self) -> String {
        format!("rkc-{}-lan", self.name)
    }

    /// The host's veth to the LAN.
    pub fn host_link(&self) -> String {
        format!("rkc-{}", self.name)
    }

    /// The host's address on the LAN (.1), where the control plane listens.
    pub fn host_addr(&self) -> Ipv4Addr {
        let [a, b, c] = self.subnet;
        Ipv4Addr::new(a, b, c, 1)
    }

    /// The LAN subnet as `a.b.c.0/24`.
    pub fn subnet_cidr(&self) -> String {
        let [a, b, c] = self.subnet;
        format!("{a}.{b}.{c}.0/24")
    }

    /// The control plane's data dir.
    pub fn server_dir(&self) -> PathBuf {
        self.data_dir.join("server")
    }

    /// The admin kubeconfig `rkube server` writes into its data dir: the user's credential, and what `up` uses to
    /// make the nodes' join token and to wait for them to be Ready (never given to a node).
    pub fn kubeconfig(&self) -> PathBuf {
        self.server_dir().join("kubeconfig")
    }

    /// The apiserver's listen address: the host's LAN address, port [`API_PORT`].
    pub fn api_listen(&self) -> String {
        format!("{}:{API_PORT}", self.host_addr())
    }

    /// The cgroup every node's subtree goes under (`rkc-<name>/n<i>` per node), in each hierarchy.
    pub fn cgroup_top(&self) -> String {
        format!("rkc-{}", self.name)
    }

    /// Node `index` (1-based).
    pub fn node(&self, index: usize) -> NodePlan {
        let [a, b, c] = self.subnet;
        let name = format!("{}-n{index}", self.name);
        let (addr, prefix, gateway) = match self.lan {
            Lan::Bridge => (Ipv4Addr::new(a, b, c, NODE_BASE + index as u8), 24, None),
            Lan::Routed => {
                let base = 16 * index as u8;
                (Ipv4Addr::new(a, b, c, base + 2), SEGMENT_PREFIX, Some(Ipv4Addr::new(a, b, c, base + 1)))
            }
        };
        NodePlan {
            index,
            netns: format!("rkc-{name}"),
            addr,
            prefix,
            gateway,
            lan_port: format!("n{index}"),
            data_dir: self.data_dir.join(&name),
            bridge: format!("{}-br{index}", self.name),
            cgroup_root: format!("{}/n{index}", self.cgroup_top()),
            name,
        }
    }

    /// Every node's plan, in index order.
    pub fn node_plans(&self) -> Vec<NodePlan> {
        (1..=self.nodes).map(|i| self.node(i)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_addresses_of_a_three_node_cluster() {
        let p = Plan::new("dev", "172.28.5.0/24", 3, Some(Path::new("/tmp/c"))).expect("plan");
        assert_eq!(p.lan_netns(), "rkc-dev-lan");
        assert_eq!(p.host_link(), "rkc-dev");
        assert_eq!(p.host_addr().to_string(), "172.28.5.1");
        assert_eq!(p.api_listen(), "172.28.5.1:6443");
        let n = p.node_plans();
        assert_eq!(n.len(), 3);
        assert_eq!(n[2].name, "dev-n3");
        assert_eq!(n[2].netns, "rkc-dev-n3");
        assert_eq!(n[2].addr.to_string(), "172.28.5.13");
        assert_eq!(n[2].bridge, "dev-br3");
        assert_eq!(n[2].cgroup_root, "rkc-dev/n3");
        assert_eq!(n[2].data_dir, Path::new("/tmp/c/dev-n3"));
        assert_eq!(Plan::new("dev", DEFAULT_SUBNET, 1, None).expect("plan").data_dir, Path::new("/var/lib/rkube-cluster/dev"));
    }

    #[test]
    fn a_routed_lan_puts_each_node_on_a_segment_of_its_own() {
        let p = Plan::new("dev", "172.28.5.0/24", 2, None).and_then(|p| p.with_lan(Lan::Routed)).expect("plan");
        assert_eq!((p.host_addr().to_string(), p.host_prefix()), ("172.28.5.1".into(), 28));
        assert_eq!(p.router_addr().map(|a| a.to_string()), Some("172.28.5.2".into()));
        let n = p.node_plans();
        assert_eq!((n[0].addr.to_string(), n[0].prefix, n[0].gateway.map(|g| g.to_string())), ("172.28.5.18".into(), 28, Some("172.28.5.17".into())));
        assert_eq!((n[1].addr.to_string(), n[1].gateway.map(|g| g.to_string())), ("172.28.5.34".into(), Some("172.28.5.33".into())));
        // no two of the host's and the nodes' addresses share a /28
        let seg = |ip: Ipv4Addr| ip.octets()[3] / 16;
        assert!(seg(p.host_addr()) != seg(n[0].addr) && seg(n[0].addr) != seg(n[1].addr));
        assert_eq!(p.api_listen(), "172.28.5.1:6443", "the API stays on the host's .1");
        let last = Plan::new("dev", DEFAULT_SUBNET, MAX_ROUTED_NODES, None).and_then(|p| p.with_lan(Lan::Routed)).expect("15 nodes");
        assert_eq!(last.node(MAX_ROUTED_NODES).addr.to_string(), "172.28.0.242");
        let err = Plan::new("dev", DEFAULT_SUBNET, MAX_ROUTED_NODES + 1, None).and_then(|p| p.with_lan(Lan::Routed)).expect_err("16 nodes");
        assert!(err.to_string().contains("routed LAN has 1 to 15 nodes"), "{err}");
        // a bridge LAN is as before: one /24, no router
        let b = Plan::new("dev", DEFAULT_SUBNET, 1, None).expect("plan");
        assert_eq!((b.host_prefix(), b.router_addr(), b.node(1).prefix, b.node(1).gateway), (24, None, 24, None));
        assert_eq!("routed".parse::<Lan>().expect("routed"), Lan::Routed);
        assert!("l3".parse::<Lan>().expect_err("l3").to_string().contains("bridge"), "names the choices");
    }

    #[test]
    fn link_names_fit_linux_limits_at_the_longest_name() {
        let p = Plan::new("abcdefghij", DEFAULT_SUBNET, MAX_NODES, None).expect("plan");
        assert!(p.host_link().len() <= 15);
        for n in p.node_plans() {
            assert!(n.bridge.len() <= 15, "{}", n.bridge);
            assert!(n.lan_port.len() <= 15);
        }
        assert_eq!(p.node(MAX_NODES).addr.octets()[3], 60);
    }

    #[test]
    fn bad_input_is_refused_with_the_reason() {
        for bad in ["", "Dev", "-a", "a-", "abcdefghijk", "a_b", "a.b"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        let why = |s: &str| match parse_subnet(s) {
            Err(ClusterError::Invalid { why, .. }) => why,
            other => panic!("{s}: {other:?}"),
        };
        assert!(why("172.28.0.0/16").contains("/24"));
        assert!(why("172.28.0.5/24").contains("172.28.0.0/24"));
        assert!(why("8.8.8.0/24").contains("private"));
        assert!(why("10.244.3.0/24").contains("pod CIDR"));
        assert!(why("10.100.0.0/24").contains("service CIDR"));
        assert!(why("nonsense").contains("/24"));
        assert!(Plan::new("a", DEFAULT_SUBNET, 0, None).is_err());
        assert!(Plan::new("a", DEFAULT_SUBNET, MAX_NODES + 1, None).is_err());
    }

    #[test]
    fn a_subnet_the_host_already_uses_conflicts() {
        let host = vec!["10.0.2.15/24".to_string(), "172.28.5.1/24".to_string(), "172.16.0.0/12".to_string()];
        assert_eq!(conflicts([172, 28, 5], &host[..2]), vec!["172.28.5.1/24".to_string()]);
        assert_eq!(conflicts([172, 28, 6], &host[..2]), Vec::<String>::new());
        // a wider network on the host that covers the LAN
        assert_eq!(conflicts([172, 28, 6], &host), vec!["172.16.0.0/12".to_string()]);
    }
}
