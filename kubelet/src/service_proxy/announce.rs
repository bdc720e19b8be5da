//! The node's part in the built-in load balancer (L2, as MetalLB's L2 mode and k3s ServiceLB): a pool address the
//! LoadBalancer controller gave a Service, and named this node for (annotation [`LB_NODE_ANNOTATION`]), is added
//! as a /32 to the node's link whose subnet holds it. The kernel then answers ARP for it on that LAN, `ip addr`
//! shows it, and the proxy's rules DNAT it like any load balancer address. Addresses no longer wanted (Service
//! gone, moved to another node) are removed, and everything this node added is removed when it stops.
//!
//! Each address carries this node's mark: the address metric ([`mark`], `ip -o -4 addr show` prints it as
//! `metric N`), derived from the node's proxy table name, which is unique per node on a host. A /32 makes no
//! prefix route, so the metric changes nothing else. By the mark a restarted node takes over what it added before
//! a crash, and `rkube down` ([`withdraw_marked`]) removes what a killed node left, without touching another
//! node's addresses or any address not ours.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::process::Command;

use k8s_openapi::api::core::v1::Service;

use super::model::LB_NODE_ANNOTATION;

/// Why a load balancer address is not announced on this node.
#[derive(Debug, thiserror::Error)]
pub enum AnnounceError {
    /// No link of the node is on the address's subnet.
    #[error("load balancer address {ip}: no link of this node has an address in its subnet (is --lb-pool inside the node's LAN?)")]
    NoLink {
        /// The pool address.
        ip: Ipv4Addr,
    },
    /// `ip addr` refused to add or remove the address.
    #[error("load balancer address {ip} on {link}: `ip {args}`: {detail}")]
    Ip {
        /// The pool address.
        ip: Ipv4Addr,
        /// The link it was to go on.
        link: String,
        /// The `ip` command's arguments.
        args: String,
        /// What `ip` said.
        detail: String,
    },
}

/// The high byte of every mark ('r'); the rest is a hash of the proxy table name.
const MARK_BASE: u32 = 0x7200_0000;

/// The address metric that marks the load balancer addresses of the node whose proxy table is `table`.
pub fn mark(table: &str) -> u32 {
    // FNV-1a: stable across builds and runs, unlike std's hasher
    let h = table.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    MARK_BASE | (h & 0x00ff_ffff)
}

/// The /32 addresses carrying `mark`, with their links, from `ip -o -4 addr show` lines.
pub fn marked(listed: &str, mark: u32) -> Vec<(Ipv4Addr, String)> {
    let metric = mark.to_string();
    listed
        .lines()
        .filter(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words.windows(2).any(|w| w[0] == "metric" && w[1] == metric)
        })
        .filter_map(parse_addr_line)
        .filter(|(_, _, len)| *len == 32)
        .map(|(link, ip, _)| (ip, link))
        .collect()
}

fn list_addresses() -> Result<String, AnnounceError> {
    ip_cmd(Ipv4Addr::UNSPECIFIED, "-", &["-o", "-4", "addr", "show"])
}

/// Removes every load balancer address the node with proxy table `table` added (by its mark), whether or not
/// that node is still running: `rkube down` after the node was killed. Returns what was removed.
pub fn withdraw_marked(table: &str) -> Result<Vec<(Ipv4Addr, String)>, AnnounceError> {
    let found = marked(&list_addresses()?, mark(table));
    for (ip, link) in &found {
        ip_cmd(*ip, link, &["addr", "del", &format!("{ip}/32"), "dev", link])?;
    }
    Ok(found)
}

/// The pool addresses this node announces: the ingress IPs of LoadBalancer Services whose annotation names it.
pub fn wanted<S: Borrow<Service>>(services: &[S], node_name: &str) -> BTreeSet<Ipv4Addr> {
    services
        .iter()
        .map(Borrow::borrow)
        .filter(|s| s.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer"))
        .filter(|s| !node_name.is_empty() && s.metadata.annotations.as_ref().and_then(|a| a.get(LB_NODE_ANNOTATION)).map(String::as_str) == Some(node_name))
        .flat_map(|s| {
            s.status.as_ref().and_then(|st| st.load_balancer.as_ref()).and_then(|l| l.ingress.clone()).unwrap_or_default()
        })
        .filter_map(|i| i.ip.and_then(|ip| ip.parse().ok()))
        .collect()
}

/// One line of `ip -o -4 addr show`: (link, address, prefix length).
pub fn parse_addr_line(line: &str) -> Option<(String, Ipv4Addr, u8)> {
    let mut words = line.split_whitespace();
    let _index = words.next()?;
    let link = words.next()?.split('@').next()?.to_string();
    let mut rest = words.skip_while(|w| *w != "inet");
    rest.next()?;
    let (ip, len) = rest.next()?.split_once('/')?;
    Some((link, ip.parse().ok()?, len.parse().ok()?))
}

/// The link for `ip`: the one whose (non-/32) subnet holds it, the longest prefix winning.
pub fn link_for(ip: Ipv4Addr, addrs: &[(String, Ipv4Addr, u8)]) -> Option<String> {
    addrs
        .iter()
        .filter(|(_, _, len)| *len < 32)
        .filter(|(_, a, len)| {
            let mask = if *len == 0 { 0 } else { u32::MAX << (32 - u32::from(*len)) };
            u32::from(*a) & mask == u32::from(ip) & mask
        })
        .max_by_key(|(_, _, len)| *len)
        .map(|(l, _, _)| l.clone())
}

fn ip_cmd(ip: Ipv4Addr, link: &str, args: &[&str]) -> Result<String, AnnounceError> {
    let fail = |detail: String| AnnounceError::Ip { ip, link: link.to_string(), args: args.join(" "), detail };
    let out = Command::new("ip").args(args).output().map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        return Err(fail(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The addresses this node added, by link; removed on drop.
#[derive(Debug)]
pub struct Announcer {
    added: BTreeMap<Ipv4Addr, String>,
    mark: u32,
}

impl Announcer {
    /// The announcer of the node whose proxy table is `table`: it takes over the addresses with its mark that a
    /// previous run left (killed before it could remove them), so they are withdrawn when no longer wanted.
    pub fn new(table: &str) -> Announcer {
        let mark = mark(table);
        let added = match list_addresses() {
            Ok(listed) => marked(&listed, mark).into_iter().collect(),
            Err(e) => {
                tracing::warn!(error = %e, "load balancer addresses of a previous run not read");
                BTreeMap::new()
            }
        };
        Announcer { added, mark }
    }

    /// Adds what is wanted and missing, removes what this node added and is no longer wanted.
    pub fn update(&mut self, wanted: &BTreeSet<Ipv4Addr>) -> Vec<AnnounceError> {
        let mut errors = Vec::new();
        let gone: Vec<Ipv4Addr> = self.added.keys().filter(|ip| !wanted.contains(ip)).copied().collect();
        for ip in gone {
            if let Some(link) = self.added.remove(&ip) {
                if let Err(e) = ip_cmd(ip, &link, &["addr", "del", &format!("{ip}/32"), "dev", &link]) {
                    errors.push(e);
                }
                tracing::info!(address = %ip, link = %link, "load balancer address withdrawn");
            }
        }
        let missing: Vec<Ipv4Addr> = wanted.iter().filter(|ip| !self.added.contains_key(ip)).copied().collect();
        if missing.is_empty() {
            return errors;
        }
        let listed = match list_addresses() {
            Ok(l) => l,
            Err(e) => {
                errors.push(e);
                return errors;
            }
        };
        let addrs: Vec<(String, Ipv4Addr, u8)> = listed.lines().filter_map(parse_addr_line).collect();
        for ip in missing {
            if addrs.iter().any(|(_, a, _)| *a == ip) {
                continue; // already an address of this node (a node IP as the LB address): nothing to add
            }
            let Some(link) = link_for(ip, &addrs) else {
                errors.push(AnnounceError::NoLink { ip });
                continue;
            };
            match ip_cmd(ip, &link, &["addr", "add", &format!("{ip}/32"), "dev", &link, "metric", &self.mark.to_string()]) {
                Ok(_) => {
                    tracing::info!(address = %ip, link = %link, "load balancer address announced");
                    self.added.insert(ip, link);
                }
                Err(e) => errors.push(e),
            }
        }
        errors
    }
}

impl Drop for Announcer {
    fn drop(&mut self) {
        let _ = self.update(&BTreeSet::new());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wanted_only_for_this_node() {
        let svc = |node: &str, ty: &str| -> Service {
            serde_json::from_value(json!({"metadata": {"name": "a", "namespace": "d", "annotations": {LB_NODE_ANNOTATION: node}},
                "spec": {"type": ty}, "status": {"loadBalancer": {"ingress": [{"ip": "10.5.0.9"}]}}}))
            .unwrap()
        };
        assert_eq!(wanted(&[svc("n1", "LoadBalancer"), svc("n2", "LoadBalancer")], "n1"), BTreeSet::from([Ipv4Addr::new(10, 5, 0, 9)]));
        assert!(wanted(&[svc("n1", "ClusterIP")], "n1").is_empty(), "a Service no longer LoadBalancer is not announced");
        assert!(wanted(&[svc("n1", "LoadBalancer")], "").is_empty());
    }

    #[test]
    fn marked_addresses_are_this_nodes_only() {
        let m = mark("rkube-proxy");
        assert_eq!(m & 0xff00_0000, MARK_BASE);
        assert_ne!(m, mark("rkube-proxy-2"), "another node's table, another mark");
        let lines = format!(
            "7: rku1@if6    inet 10.244.20.1/24 scope global rku1\\       valid_lft forever\n\
             7: rku1@if6    inet 10.250.3.241/32 metric {m} scope global rku1\\       valid_lft forever\n\
             7: rku1@if6    inet 10.250.3.242/32 metric {} scope global rku1\\       valid_lft forever\n\
             7: rku1@if6    inet 10.250.3.243/32 scope global rku1\\       valid_lft forever\n",
            mark("other")
        );
        assert_eq!(marked(&lines, m), vec![(Ipv4Addr::new(10, 250, 3, 241), "rku1".to_string())]);
    }

    #[test]
    fn the_link_whose_subnet_holds_the_address() {
        let lines = "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever\n\
                     7: rku1@if6    inet 10.244.20.1/24 scope global rku1\\       valid_lft forever\n\
                     9: br0    inet 10.244.0.1/16 scope global br0\n\
                     9: br0    inet 10.244.20.77/32 scope global br0\n";
        let addrs: Vec<_> = lines.lines().filter_map(parse_addr_line).collect();
        assert_eq!(addrs[1], ("rku1".to_string(), Ipv4Addr::new(10, 244, 20, 1), 24));
        assert_eq!(link_for(Ipv4Addr::new(10, 244, 20, 200), &addrs).as_deref(), Some("rku1"), "longest prefix");
        assert_eq!(link_for(Ipv4Addr::new(10, 244, 9, 9), &addrs).as_deref(), Some("br0"));
        assert_eq!(link_for(Ipv4Addr::new(192, 0, 2, 1), &addrs), None);
    }
}
