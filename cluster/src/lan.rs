//! The cluster's network, made and removed with `ip`: the LAN namespace and its bridge (or, routed, its router
//! ports), the host's veth to it,
//! each node's namespace with its LAN link, per-namespace sysctls, and a node's LAN port going down and up.

use std::process::Command;

use std::net::Ipv4Addr;

use crate::plan::{Lan, NodePlan, Plan, LAN_BRIDGE, LAN_HOST_PORT, NODE_LINK, SEGMENT_PREFIX};
use crate::{ClusterError, Result};

/// Runs `ip args...`; its stdout, or an error with its stderr.
pub fn ip(args: &[&str]) -> Result<String> {
    run("ip", args)
}

/// Runs `prog args...` and waits: its stdout, or [`ClusterError::Command`] with its stderr (or why it could not
/// start).
pub fn run(prog: &str, args: &[&str]) -> Result<String> {
    let cmd = format!("{prog} {}", args.join(" "));
    let out = Command::new(prog).args(args).output().map_err(|e| ClusterError::Command { cmd: cmd.clone(), message: format!("{e} (is {prog} installed?)") })?;
    if !out.status.success() {
        return Err(ClusterError::Command { cmd, message: String::from_utf8_lossy(&out.stderr).trim().to_string() });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The host's IPv4 addresses (`addr/len`), to check the LAN subnet is free.
pub fn host_addrs() -> Result<Vec<String>> {
    let out = ip(&["-o", "-4", "addr", "show"])?;
    Ok(out.lines().filter_map(|l| l.split_whitespace().skip_while(|w| *w != "inet").nth(1)).map(str::to_string).collect())
}

/// Whether the named network namespace (`/run/netns/<name>`, as `ip netns add` makes it) exists.
pub fn netns_exists(name: &str) -> bool {
    std::path::Path::new("/run/netns").join(name).exists()
}

/// Whether a link of that name exists in this process's network namespace (the host's, for `rkube cluster`).
pub fn link_exists(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

/// Makes the named network namespace and brings its loopback up.
pub fn add_netns(name: &str) -> Result<()> {
    ip(&["netns", "add", name])?;
    ip(&["-n", name, "link", "set", "lo", "up"])?;
    Ok(())
}

/// Deletes the named network namespace; one already gone is not an error (`down` may run twice).
pub fn del_netns(name: &str) -> Result<()> {
    if !netns_exists(name) {
        return Ok(());
    }
    ip(&["netns", "del", name]).map(|_| ())
}

/// Deletes a link of this namespace (with its veth peer); one already gone is not an error.
pub fn del_link(name: &str) -> Result<()> {
    if !link_exists(name) {
        return Ok(());
    }
    ip(&["link", "del", name]).map(|_| ())
}

/// Sets `key` (e.g. net.ipv4.ip_forward) inside namespace `ns` only.
pub fn sysctl_in(ns: &str, key: &str, value: &str) -> Result<()> {
    ip(&["netns", "exec", ns, "sysctl", "-q", "-w", &format!("{key}={value}")]).map(|_| ())
}

/// The LAN in its namespace (made already, empty): the bridge, or for a routed LAN forwarding on in that
/// namespace only (it is the router; the host's ip_forward is not touched).
pub fn make_lan(p: &Plan) -> Result<()> {
    let ns = p.lan_netns();
    match p.lan {
        Lan::Bridge => {
            ip(&["-n", &ns, "link", "add", LAN_BRIDGE, "type", "bridge"])?;
            ip(&["-n", &ns, "link", "set", LAN_BRIDGE, "up"])?;
        }
        Lan::Routed => sysctl_in(&ns, "net.ipv4.ip_forward", "1")?,
    }
    Ok(())
}

/// The LAN's side of a link: a port of the bridge, or on a routed LAN a router port holding `router_addr`.
fn lan_side(p: &Plan, port: &str, router_addr: Option<Ipv4Addr>) -> Result<()> {
    let ns = p.lan_netns();
    match (p.lan, router_addr) {
        (Lan::Routed, Some(a)) => {
            ip(&["-n", &ns, "addr", "add", &format!("{a}/{SEGMENT_PREFIX}"), "dev", port])?;
            ip(&["-n", &ns, "link", "set", port, "up"])?;
        }
        _ => {
            ip(&["-n", &ns, "link", "set", port, "master", LAN_BRIDGE, "up"])?;
        }
    }
    Ok(())
}

/// The host's veth to the LAN with the host's LAN address (.1); on a routed LAN also the host's route to the
/// /24 via the router (on that veth, so it goes with it).
pub fn make_host_link(p: &Plan) -> Result<()> {
    let (ns, link) = (p.lan_netns(), p.host_link());
    ip(&["link", "add", &link, "type", "veth", "peer", "name", LAN_HOST_PORT, "netns", &ns])?;
    lan_side(p, LAN_HOST_PORT, p.router_addr())?;
    ip(&["addr", "add", &format!("{}/{}", p.host_addr(), p.host_prefix()), "dev", &link])?;
    ip(&["link", "set", &link, "up"])?;
    if let Some(router) = p.router_addr() {
        ip(&["route", "add", &p.subnet_cidr(), "via", &router.to_string(), "dev", &link])?;
    }
    Ok(())
}

/// Node `n`'s link to the LAN (`eth0` in its namespace, its peer a port of the LAN bridge or router) with its
/// address (and on a routed LAN its route to the /24 via the router), and forwarding on in its namespace (pods
/// are routed through it); the host's own ip_forward is not touched.
pub fn make_node_link(p: &Plan, n: &NodePlan) -> Result<()> {
    let lan = p.lan_netns();
    ip(&["-n", &lan, "link", "add", &n.lan_port, "type", "veth", "peer", "name", NODE_LINK, "netns", &n.netns])?;
    lan_side(p, &n.lan_port, n.gateway)?;
    ip(&["-n", &n.netns, "addr", "add", &format!("{}/{}", n.addr, n.prefix), "dev", NODE_LINK])?;
    ip(&["-n", &n.netns, "link", "set", NODE_LINK, "up"])?;
    if let Some(gw) = n.gateway {
        ip(&["-n", &n.netns, "route", "add", &p.subnet_cidr(), "via", &gw.to_string(), "dev", NODE_LINK])?;
    }
    sysctl_in(&n.netns, "net.ipv4.ip_forward", "1")?;
    Ok(())
}

/// Cuts (`up` false) or restores a node's LAN port: a partition, as a pulled cable.
pub fn set_port(lan_netns: &str, port: &str, up: bool) -> Result<()> {
    ip(&["-n", lan_netns, "link", "set", port, if up { "up" } else { "down" }]).map(|_| ())
}
