//! The host side of an attachment: the bridge (made once, reused by every attachment), its gateway addresses,
//! IP forwarding, and the host end of the veth pair.

use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use netlink_packet_route::link::{InfoKind, LinkFlags};

use super::config::BridgeConf;
use super::BridgeError;
use rkube_netlink::link::Link;
use rkube_netlink::Netlink;
use crate::spec::IpConfig;
use crate::sysctl;

/// The bridge named in the config, created (up) if missing, brought up if down.
pub fn ensure_bridge(nl: &mut Netlink, conf: &BridgeConf) -> Result<Link, BridgeError> {
    if let Some(link) = find_bridge(nl, &conf.bridge)? {
        return reuse_bridge(nl, conf, link);
    }
    nl.create_bridge(&conf.bridge, random_mac(), conf.mtu, conf.promisc_mode)?;
    // Created by us or, in a race, by a concurrent ADD: either way it exists now.
    let link = nl
        .link_by_name(&conf.bridge, "host")?
        .ok_or_else(|| BridgeError::Vanished { what: format!("bridge {}", conf.bridge) })?;
    reuse_bridge(nl, conf, link)
}

/// Looks `name` up through sysfs (`/sys/class/net/<name>/{ifindex,address,flags,bridge}`), falling back to
/// netlink when sysfs does not show it. A bridge's RTM_GETLINK answer carries all its options and costs ~0.7 ms
/// here, ten times the sysfs reads, and ADD needs only the index, MAC, up flag and kind.
pub fn find_bridge(nl: &mut Netlink, name: &str) -> Result<Option<Link>, BridgeError> {
    let dir = PathBuf::from("/sys/class/net").join(name);
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok().map(|s| s.trim().to_string());
    let index = read("ifindex").and_then(|v| v.parse::<u32>().ok());
    let flags = read("flags").and_then(|v| u32::from_str_radix(v.trim_start_matches("0x"), 16).ok());
    match (index, flags, read("address")) {
        (Some(index), Some(flags), Some(mac)) => Ok(Some(Link {
            index,
            name: name.to_string(),
            mac,
            up: flags & libc::IFF_UP as u32 != 0,
            mtu: read("mtu").and_then(|v| v.parse().ok()),
            master: None,
            kind: dir.join("bridge").is_dir().then_some(InfoKind::Bridge),
            peer_index: None,
        })),
        _ => Ok(nl.link_by_name(name, "host")?),
    }
}

/// Checks an existing link is a bridge and brings it up (and promiscuous if asked).
pub fn reuse_bridge(nl: &mut Netlink, conf: &BridgeConf, link: Link) -> Result<Link, BridgeError> {
    if link.kind != Some(InfoKind::Bridge) {
        return Err(BridgeError::NotABridge { name: conf.bridge.clone(), kind: format!("{:?}", link.kind) });
    }
    let mut want = LinkFlags::Up;
    if conf.promisc_mode {
        want |= LinkFlags::Promisc;
    }
    if !link.up || conf.promisc_mode {
        nl.set_flags(link.index, &conf.bridge, want, want)?;
    }
    Ok(link)
}

/// The gateway address of `ip`'s subnet: the one IPAM named, or the subnet's first address.
pub fn gateway_of(ip: &IpConfig) -> Option<IpAddr> {
    ip.gateway.or_else(|| {
        let net = ip.address.trunc();
        let first = match net.network() {
            IpAddr::V4(a) => IpAddr::V4((u32::from(a) + 1).into()),
            IpAddr::V6(a) => IpAddr::V6((u128::from(a) + 1).into()),
        };
        (first != ip.address.addr()).then_some(first)
    })
}

/// Puts each gateway address (with its subnet's prefix) on the bridge and turns on forwarding for its family.
pub fn setup_gateways(nl: &mut Netlink, bridge: &Link, ips: &[IpConfig]) -> Result<Vec<IpAddr>, BridgeError> {
    let mut gws = Vec::new();
    for ip in ips {
        let Some(gw) = gateway_of(ip) else { continue };
        let net = IpNet::new(gw, ip.address.prefix_len()).map_err(|_| BridgeError::Vanished { what: format!("gateway {gw}") })?;
        nl.add_address(bridge.index, &bridge.name, net, "host")?;
        if gw.is_ipv4() {
            sysctl::ensure("net/ipv4/ip_forward", "1")?;
        } else {
            sysctl::ensure("net/ipv6/conf/all/forwarding", "1")?;
        }
        gws.push(gw);
    }
    Ok(gws)
}

/// Turns on hairpin mode on a bridge port, so a pod can reach itself through a service address.
pub fn set_hairpin(port: &str) -> Result<(), BridgeError> {
    sysctl::write_file(PathBuf::from(format!("/sys/class/net/{port}/brport/hairpin_mode")), "1")?;
    Ok(())
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    let ok = std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b));
    if ok.is_err() {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let seed = t ^ ((std::process::id() as u128) << 64);
        for (i, x) in b.iter_mut().enumerate() {
            *x = (seed >> ((i % 16) * 8)) as u8;
        }
    }
    b
}

/// A random unicast, locally administered MAC.
pub fn random_mac() -> [u8; 6] {
    let mut m = random_bytes::<6>();
    m[0] = (m[0] & 0xfe) | 0x02;
    m
}

/// A fresh host-side veth name: "veth" and 8 random hex digits.
pub fn random_veth_name() -> String {
    let b = random_bytes::<4>();
    format!("veth{:02x}{:02x}{:02x}{:02x}", b[0], b[1], b[2], b[3])
}
