//! `rkube-bridge`: attaches a container to a Linux bridge on the host through a veth pair, with addresses and
//! routes from the IPAM plugin named in `ipam.type` (executed per the CNI exec protocol).
//!
//! ADD checks everything it can first, then makes the bridge, asks IPAM for addresses, makes the veth pair and
//! configures both ends; if any later step fails it deletes the veth and releases the addresses again, so a failed
//! ADD leaves nothing behind. DEL is idempotent and works without the namespace.

pub mod config;
pub mod container;
pub mod host;

use std::path::Path;

use crate::exec::Command;
use crate::netlink::{Netlink, NetlinkError};
use crate::netns::{NetNs, NetnsError};
use crate::nft::{Masquerade, NftError};
use crate::plugin::{Call, Plugin};
use crate::spec::config::decode;
use crate::spec::error::{code, CniError};
use crate::spec::{CniResult, Interface, IpConfig};
use crate::sysctl::SysctlError;

pub use config::BridgeConf;

#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error(transparent)]
    Sysctl(#[from] SysctlError),
    #[error(transparent)]
    Nft(#[from] NftError),
    #[error("link {name} exists but is not a bridge (kind {kind}); pick another \"bridge\" name")]
    NotABridge { name: String, kind: String },
    #[error("{what} disappeared while being configured")]
    Vanished { what: String },
    #[error("check failed: {0}")]
    Check(String),
}

impl From<BridgeError> for CniError {
    fn from(e: BridgeError) -> CniError {
        let c = match &e {
            BridgeError::Netns(NetnsError::Missing { .. }) => code::UNKNOWN_CONTAINER,
            BridgeError::Netns(_) | BridgeError::Sysctl(_) => code::IO_FAILURE,
            BridgeError::NotABridge { .. } => code::INVALID_CONFIG,
            BridgeError::Check(_) => code::CHECK_FAILED,
            BridgeError::Netlink(_) | BridgeError::Nft(_) | BridgeError::Vanished { .. } => code::NETWORK_SETUP,
        };
        CniError::from_error(c, &e)
    }
}

impl From<NetnsError> for CniError {
    fn from(e: NetnsError) -> CniError {
        BridgeError::from(e).into()
    }
}

/// The `rkube-bridge` plugin.
pub struct Bridge;

fn conf(call: &Call) -> Result<BridgeConf, CniError> {
    let mut c: BridgeConf = decode(call.config)?;
    c.validate()?;
    Ok(c)
}

impl Plugin for Bridge {
    fn add(&self, call: &Call) -> Result<CniResult, CniError> {
        let conf = conf(call)?;
        let env = call.env;
        let ipam_type = conf.net.ipam_type()?;
        env.find_plugin(ipam_type)?;
        let ns = NetNs::open(Path::new(&env.netns))?;
        // Prove we can enter it, and that CNI_IFNAME is free there, before anything is made.
        let what = ns.describe();
        let taken = ns.run(|| Netlink::open().and_then(|mut n| n.link_by_name(&env.ifname, &what)))?.map_err(BridgeError::from)?;
        if taken.is_some() {
            return Err(CniError::new(
                code::INVALID_ENV,
                format!("interface {} already exists in {what}; DEL the attachment first or pick another CNI_IFNAME", env.ifname),
            ));
        }
        let mut nl = Netlink::open().map_err(BridgeError::from)?;

        let ipam = env
            .delegate(ipam_type, Command::Add, call.stdin)?
            .ok_or_else(|| CniError::new(code::DECODE_FAILURE, format!("IPAM plugin {ipam_type} returned no result")))?;
        if ipam.ips.is_empty() {
            let _ = env.delegate(ipam_type, Command::Del, call.stdin);
            return Err(CniError::new(code::INVALID_CONFIG, format!("IPAM plugin {ipam_type} returned no addresses")));
        }

        let mut host_veth: Option<String> = None;
        // The bridge only once IPAM accepted the config, so bad IPAM config makes nothing.
        let made = host::ensure_bridge(&mut nl, &conf)
            .map_err(CniError::from)
            .and_then(|bridge| attach(&mut nl, &conf, call, &ns, &bridge, &ipam, &mut host_veth));
        match made {
            Ok(r) => Ok(r),
            Err(e) => {
                // Undo: the veth pair (deleting one end deletes both), then the addresses.
                if let Some(name) = &host_veth {
                    if let Ok(Some(l)) = nl.link_by_name(name, "host") {
                        let _ = nl.delete_link(l.index, name, "host");
                    }
                }
                let _ = env.delegate(ipam_type, Command::Del, call.stdin);
                Err(e)
            }
        }
    }

    fn del(&self, call: &Call) -> Result<(), CniError> {
        let conf = conf(call)?;
        let env = call.env;
        if !env.netns.is_empty() {
            match NetNs::open(Path::new(&env.netns)) {
                Ok(ns) => {
                    let what = ns.describe();
                    ns.run(|| container::delete(&env.ifname, &what))??;
                }
                // The namespace is gone, and the veth pair with it.
                Err(NetnsError::Missing { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        env.delegate(conf.net.ipam_type()?, Command::Del, call.stdin)?;
        if conf.ip_masq {
            Masquerade::new(&conf.net.name, &conf.state_dir()).release(&env.container_id, &env.ifname).map_err(BridgeError::from)?;
        }
        Ok(())
    }

    fn check(&self, call: &Call) -> Result<(), CniError> {
        let conf = conf(call)?;
        let env = call.env;
        let prev = conf.net.prev_result()?.ok_or_else(|| {
            CniError::new(code::INVALID_CONFIG, "CHECK needs prevResult (the result of ADD) in the network config")
        })?;
        env.delegate(conf.net.ipam_type()?, Command::Check, call.stdin)?;
        let ns = NetNs::open(Path::new(&env.netns))?;
        let what = ns.describe();
        let seen = ns.run(|| container::observe(&env.ifname, &what))??;
        check_against(&conf, env, &prev, &seen, &what)?;
        if conf.ip_masq {
            Masquerade::new(&conf.net.name, &conf.state_dir()).check().map_err(BridgeError::from)?;
        }
        Ok(())
    }

    fn status(&self, call: &Call) -> Result<(), CniError> {
        let conf = conf(call)?;
        call.env.find_plugin(conf.net.ipam_type()?).map_err(|e| CniError::new(code::NOT_AVAILABLE, e.msg))?;
        Ok(())
    }
}

#[allow(clippy::too_many_arguments)]
fn attach(
    nl: &mut Netlink,
    conf: &BridgeConf,
    call: &Call,
    ns: &NetNs,
    bridge: &crate::netlink::link::Link,
    ipam: &CniResult,
    host_veth: &mut Option<String>,
) -> Result<CniResult, CniError> {
    let env = call.env;
    let what = ns.describe();
    let mut name = host::random_veth_name();
    for attempt in 0..3 {
        match nl.create_veth(&name, &env.ifname, ns.fd(), bridge.index, conf.mtu, &what) {
            Ok(()) => break,
            Err(e) if e.errno() == Some(libc::EEXIST) && attempt < 2 => {
                // CNI_IFNAME was free a moment ago, so the random host name is taken: try another.
                name = host::random_veth_name();
            }
            Err(e) => return Err(BridgeError::from(e).into()),
        }
    }
    *host_veth = Some(name.clone());
    let host_link = nl
        .link_by_name(&name, "host")
        .map_err(BridgeError::from)?
        .ok_or_else(|| BridgeError::Vanished { what: format!("veth {name}") })?;
    if conf.hairpin_mode {
        host::set_hairpin(&name)?;
    }

    let gateways: Vec<_> = ipam.ips.iter().filter_map(host::gateway_of).collect();
    if conf.is_gateway {
        host::setup_gateways(nl, bridge, &ipam.ips)?;
    }
    let routes = container::routes_for(&ipam.ips, &ipam.routes, &gateways, conf.is_default_gateway);
    let ips: Vec<IpConfig> = ipam.ips.iter().map(|ip| IpConfig { interface: Some(2), ..ip.clone() }).collect();
    let cont = ns.run(|| container::configure(&env.ifname, &what, &ips, &routes))??;
    // An address can come back with a new MAC within the ARP lock time, when the kernel ignores the gratuitous
    // ARP: drop the host's stale entry instead.
    for ip in &ips {
        nl.forget_neighbour(bridge.index, &bridge.name, ip.address.addr()).map_err(BridgeError::from)?;
    }
    if conf.ip_masq {
        let subnets: Vec<_> = ips.iter().map(|ip| ip.address.trunc()).collect();
        Masquerade::new(&conf.net.name, &conf.state_dir())
            .acquire(&env.container_id, &env.ifname, &subnets)
            .map_err(BridgeError::from)?;
    }
    // The bridge's MAC may have changed when the port joined: read it again.
    let bridge_mac = nl.link_by_name(&bridge.name, "host").ok().flatten().map(|l| l.mac).unwrap_or_default();
    let mut dns = ipam.dns.clone();
    if dns.is_empty() {
        dns = conf.net.dns.clone();
    }
    Ok(CniResult {
        cni_version: call.cni_version.to_string(),
        interfaces: vec![
            Interface { name: bridge.name.clone(), mac: bridge_mac, mtu: conf.mtu, sandbox: String::new() },
            Interface { name: name.clone(), mac: host_link.mac, mtu: conf.mtu, sandbox: String::new() },
            Interface { name: env.ifname.clone(), mac: cont.mac, mtu: conf.mtu, sandbox: env.netns.clone() },
        ],
        ips,
        routes,
        dns,
    })
}

/// CHECK: the container interface, its addresses and routes from `prev` are all there; the host veth is still a
/// port of the bridge.
fn check_against(
    conf: &BridgeConf,
    env: &crate::exec::Env,
    prev: &CniResult,
    seen: &container::Observed,
    ns: &str,
) -> Result<(), BridgeError> {
    let fail = |m: String| Err(BridgeError::Check(m));
    let Some(link) = &seen.link else {
        return fail(format!("interface {} is missing from {ns}", env.ifname));
    };
    let cont_idx = prev.interfaces.iter().position(|i| i.name == env.ifname && !i.sandbox.is_empty());
    if let Some(i) = cont_idx {
        let want = &prev.interfaces[i].mac;
        if !want.is_empty() && !want.eq_ignore_ascii_case(&link.mac) {
            return fail(format!("interface {} in {ns} has MAC {} but ADD gave it {want}", env.ifname, link.mac));
        }
    }
    for ip in &prev.ips {
        if ip.interface.is_some() && ip.interface != cont_idx {
            continue;
        }
        if !seen.addresses.contains(&ip.address) {
            return fail(format!("address {} is missing from {} in {ns}", ip.address, env.ifname));
        }
    }
    for r in &prev.routes {
        let found = seen.routes.iter().any(|s| s.dst == r.dst.trunc() && (r.gw.is_none() || s.gw == r.gw));
        if !found {
            let via = r.gw.map(|g| format!(" via {g}")).unwrap_or_default();
            return fail(format!("route {}{via} is missing from {ns}", r.dst));
        }
    }
    let mut nl = Netlink::open()?;
    let Some(bridge) = nl.link_by_name(&conf.bridge, "host")? else {
        return fail(format!("bridge {} is missing from the host", conf.bridge));
    };
    if let Some(hv) = prev.interfaces.iter().find(|i| i.sandbox.is_empty() && i.name != conf.bridge) {
        match nl.link_by_name(&hv.name, "host")? {
            Some(l) if l.master == Some(bridge.index) => {}
            Some(_) => return fail(format!("host veth {} is no longer a port of bridge {}", hv.name, conf.bridge)),
            None => return fail(format!("host veth {} is missing", hv.name)),
        }
    }
    Ok(())
}
