//! The node-local cluster DNS address (`10.96.0.10` by default, the kube-dns Service's ClusterIP). The kubelet
//! puts it, as a /32, on a bridge of its own (`rkube-dns0`, no ports: a bridge is the one link type this kernel
//! lets us create that holds an address without a peer; it has no dummy device) and answers DNS there. A pod's
//! packet to it arrives through the pod's default route and is delivered locally: no DNS pod, no DNAT.
//!
//! It must not touch any other link: the address lives only on the bridge made here, and [`remove`] deletes
//! that bridge, address and all. `ip -4 addr show dev rkube-dns0` shows it on a node.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;
use crate::netlink::{Netlink, NetlinkError};

/// Why the cluster DNS address could not be put on, or taken off, its bridge.
#[derive(Debug, thiserror::Error)]
pub enum LocalAddressError {
    /// A netlink request failed (opening the socket, creating the bridge, an address change).
    #[error("cluster dns address {ip} on link {link}: {source} (run as root; `ip addr show dev {link}` shows the link)")]
    Netlink {
        /// The cluster DNS address.
        ip: Ipv4Addr,
        /// The bridge's name (`--dns-link`).
        link: String,
        /// The cause.
        #[source]
        source: NetlinkError,
    },
    /// `link` exists but is not a bridge, so it is not the one rkube made for the address: left alone.
    #[error("cluster dns address {ip}: link {link} exists and is not a bridge rkube made; pick another name (--dns-link)")]
    NotOurs {
        /// The cluster DNS address.
        ip: Ipv4Addr,
        /// The bridge's name (`--dns-link`).
        link: String,
    },
}

/// A locally administered MAC derived from the address, stable across restarts.
fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x72, o[0], o[1], o[2], o[3]]
}

/// Creates bridge `link` (if missing), brings it up and adds `ip/32`. Idempotent.
pub fn ensure(link: &str, ip: Ipv4Addr) -> Result<(), LocalAddressError> {
    let err = |source| LocalAddressError::Netlink { ip, link: link.to_string(), source };
    let mut nl = Netlink::open().map_err(err)?;
    nl.create_bridge(link, mac_for(ip), None, false).map_err(err)?;
    let l = nl.link_by_name(link, "host").map_err(err)?.ok_or_else(|| LocalAddressError::NotOurs { ip, link: link.into() })?;
    if !l.is_bridge() {
        return Err(LocalAddressError::NotOurs { ip, link: link.into() });
    }
    if !l.up {
        nl.set_up(l.index, link).map_err(err)?;
    }
    let net = IpNet::new(IpAddr::V4(ip), 32).expect("a /32 is a valid prefix");
    nl.add_address(l.index, link, net, "host").map_err(err)?;
    Ok(())
}

/// Removes `ip/32` from `link` and deletes the bridge if it has no ports left. Nothing there is not an error.
pub fn remove(link: &str, ip: Ipv4Addr) -> Result<(), LocalAddressError> {
    let err = |source| LocalAddressError::Netlink { ip, link: link.to_string(), source };
    let mut nl = Netlink::open().map_err(err)?;
    let Some(l) = nl.link_by_name(link, "host").map_err(err)? else { return Ok(()) };
    if !l.is_bridge() {
        return Err(LocalAddressError::NotOurs { ip, link: link.into() });
    }
    let net = IpNet::new(IpAddr::V4(ip), 32).expect("a /32 is a valid prefix");
    nl.del_address(l.index, link, net, "host").map_err(err)?;
    if nl.addresses(l.index, link, "host").map_err(err)?.is_empty() {
        nl.delete_link(l.index, link, "host").map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ensure and remove in a network namespace of the test's own: a thread unshares its netns, so the
    /// namespace and everything made in it go away with the thread, pass or fail; the `ip` it runs to check
    /// (forked from that thread) sees the same namespace.
    #[test]
    fn the_dns_bridge_is_made_once_holds_the_address_and_goes_with_it() {
        rkube_testsupport::require_root();
        rkube_testsupport::require_command("ip", "iproute2");
        let ip = |args: &[&str]| -> String {
            let out = std::process::Command::new("ip").args(args).output().expect("run ip");
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let addr = Ipv4Addr::new(10, 96, 0, 10);
        std::thread::scope(|s| {
            s.spawn(|| {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("a network namespace of the test's own");
                ensure("rkdns0", addr).expect("ensure");
                ensure("rkdns0", addr).expect("ensure again is a no-op");
                let link = ip(&["-d", "-o", "link", "show", "rkdns0"]);
                assert!(link.contains("bridge") && link.contains(",UP"), "{link}");
                assert!(link.contains("02:72:0a:60:00:0a"), "the MAC derived from the address: {link}");
                let addrs = ip(&["-o", "-4", "addr", "show", "dev", "rkdns0"]);
                assert!(addrs.contains("10.96.0.10/32"), "{addrs}");

                // a link of that name that is not a bridge is not ours: refused and left alone
                let made = std::process::Command::new("ip").args(["link", "add", "rkveth0", "type", "veth", "peer", "rkveth1"]).status().expect("ip");
                assert!(made.success(), "ip link add rkveth0");
                let e = ensure("rkveth0", addr).expect_err("a veth is not our bridge");
                assert!(matches!(e, LocalAddressError::NotOurs { .. }), "{e}");
                assert!(ip(&["-o", "link", "show", "rkveth0"]).contains("rkveth0"), "left alone");

                remove("rkdns0", addr).expect("remove");
                assert!(!ip(&["-o", "link", "show"]).contains("rkdns0"), "the bridge goes with its last address");
                remove("rkdns0", addr).expect("nothing there is not an error");
            })
            .join()
            .expect("the test thread");
        });
    }
}
