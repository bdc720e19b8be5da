//! `rkube-bridge`: attaches a container to a Linux bridge on the host through a veth pair, with addresses and
//! routes from the IPAM plugin named in `ipam.type` (executed per the CNI exec protocol, see [`ipam`]).
//!
//! ADD checks everything it can first, then asks IPAM for addresses while it makes the veth pair (on a bridge that
//! already exists; a new bridge waits for IPAM), configures both ends and announces the pod; if any later step
//! fails it deletes the veth and releases the addresses again, so a failed ADD leaves nothing behind. DEL is
//! idempotent and works without the namespace. `host` holds the host side, `container` the pod side.

pub(crate) mod config;
pub(crate) mod container;
pub(crate) mod host;
pub(crate) mod ipam;

use std::path::Path;

use crate::exec::Command;
use rkube_netlink::link::Link;
use rkube_netlink::{Netlink, NetlinkError};
use crate::netns::{NetNs, NetnsError};
use crate::nft::{Masquerade, NftError};
use crate::plugin::{Call, Plugin};
use crate::spec::config::decode;
use crate::spec::error::{code, CniError};
use crate::spec::{CniResult, Interface, IpConfig};
use crate::sysctl::SysctlError;
use crate::trace;

pub(crate) use config::BridgeConf;
use ipam::IpamCall;

#[derive(Debug, thiserror::Error)]
pub(crate) enum BridgeError {
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
            // CNI_NETNS names something that is not a network namespace.
            BridgeError::Netns(NetnsError::Enter { source: nix::Error::EINVAL, .. }) => code::INVALID_ENV,
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
        // A socket opened inside the pod's namespace configures it from here on without entering it again.
        let mut pod_nl = ns.run(Netlink::open)?.map_err(BridgeError::from)?;
        if pod_nl.link_by_name(&env.ifname, &what).map_err(BridgeError::from)?.is_some() {
            return Err(CniError::new(
                code::INVALID_ENV,
                format!("interface {} already exists in {what}; DEL the attachment first or pick another CNI_IFNAME", env.ifname),
            ));
        }
        let mut nl = Netlink::open().map_err(BridgeError::from)?;
        trace::mark("checked netns");

        // IPAM runs as its own process; while it does, make the veth pair if the bridge is already there (the
        // common case). A bridge that does not exist yet waits for IPAM, so bad IPAM config makes nothing.
        let pending = match ipam::start(ipam_type, Command::Add, call)? {
            IpamCall::Finished(Err(e)) => return Err(e),
            p => p,
        };
        let mut host_veth: Option<Veth> = None;
        let early = match host::find_bridge(&mut nl, &conf.bridge) {
            Ok(Some(link)) => host::reuse_bridge(&mut nl, &conf, link)
                .map_err(CniError::from)
                .and_then(|br| make_veth(&mut nl, &mut pod_nl, &conf, env, &ns, &br).map(|v| (br, v)))
                .map(|(br, v)| {
                    host_veth = Some(v);
                    Some(br)
                }),
            Ok(None) => Ok(None),
            Err(e) => Err(e.into()),
        };
        trace::mark("early veth");
        let ipam = pending.wait().and_then(|r| {
            r.filter(|r| !r.ips.is_empty())
                .ok_or_else(|| CniError::new(code::INVALID_CONFIG, format!("IPAM plugin {ipam_type} returned no addresses")))
        });
        let made = ipam.and_then(|ipam| {
            let bridge = match early? {
                Some(b) => b,
                None => host::ensure_bridge(&mut nl, &conf)?,
            };
            if host_veth.is_none() {
                host_veth = Some(make_veth(&mut nl, &mut pod_nl, &conf, env, &ns, &bridge)?);
            }
            let veth = host_veth.clone().ok_or_else(|| BridgeError::Vanished { what: "host veth".into() })?;
            attach(&mut nl, &mut pod_nl, &conf, call, &ns, &bridge, veth, &ipam)
        });
        match made {
            Ok(r) => Ok(r),
            Err(e) => {
                // Undo: the veth pair (deleting one end deletes both), then the addresses.
                if let Some(v) = &host_veth {
                    let _ = nl.delete_link(v.host.index, &v.host.name, "host");
                }
                let _ = ipam::start(ipam_type, Command::Del, call).and_then(IpamCall::wait);
                Err(e)
            }
        }
    }

    fn del(&self, call: &Call) -> Result<(), CniError> {
        let conf = conf(call)?;
        let env = call.env;
        // IPAM releases the addresses in its own process while the kernel tears the veth pair down.
        let pending = ipam::start(conf.net.ipam_type()?, Command::Del, call)?;
        trace::mark("ipam del started");
        let removed = remove_interface(env);
        trace::mark("interface removed");
        let released = pending.wait();
        removed?;
        released?;
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
        ipam::start(conf.net.ipam_type()?, Command::Check, call)?.wait()?;
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
        let ipam_type = conf.net.ipam_type()?;
        call.env.find_plugin(ipam_type).map_err(|e| CniError::new(code::NOT_AVAILABLE, e.msg))?;
        ipam::start(ipam_type, Command::Status, call)?.wait()?;
        Ok(())
    }

    /// GC: the bridge holds nothing per attachment outside the pods' namespaces except leases (IPAM's GC) and
    /// masquerade users, which are dropped for attachments not in `cni.dev/valid-attachments`.
    fn gc(&self, call: &Call) -> Result<(), CniError> {
        let conf = conf(call)?;
        ipam::start(conf.net.ipam_type()?, Command::Gc, call)?.wait()?;
        if conf.ip_masq {
            let valid = crate::ipam::host_local::valid_attachments(call.config)?;
            Masquerade::new(&conf.net.name, &conf.state_dir()).retain(&valid).map_err(BridgeError::from)?;
        }
        Ok(())
    }
}

/// DEL's link work: deletes CNI_IFNAME in the namespace (and with it the host end). A missing namespace or
/// interface is not an error.
fn remove_interface(env: &crate::exec::Env) -> Result<(), CniError> {
    if env.netns.is_empty() {
        return Ok(());
    }
    match NetNs::open(Path::new(&env.netns)) {
        Ok(ns) => {
            container::delete(&ns, &env.ifname)?;
            Ok(())
        }
        // The namespace is gone, and the veth pair with it.
        Err(NetnsError::Missing { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The veth pair of one attachment.
#[derive(Clone)]
struct Veth {
    host: Link,
    pod: Link,
}

/// Creates the veth pair: host end up on the bridge, pod end CNI_IFNAME inside the namespace, brought up at once
/// (through `pod_nl`, a socket opened in the pod's namespace) so the bridge port is forwarding by the time the pod
/// announces its addresses.
fn make_veth(
    nl: &mut Netlink,
    pod_nl: &mut Netlink,
    conf: &BridgeConf,
    env: &crate::exec::Env,
    ns: &NetNs,
    bridge: &Link,
) -> Result<Veth, CniError> {
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
    let host = nl
        .link_by_name(&name, "host")
        .map_err(BridgeError::from)?
        .ok_or_else(|| BridgeError::Vanished { what: format!("veth {name}") })?;
    trace::mark("veth created");
    let pod = pod_nl
        .link_by_name(&env.ifname, &what)
        .map_err(BridgeError::from)?
        .ok_or_else(|| BridgeError::Vanished { what: format!("interface {} in {what}", env.ifname) })?;
    pod_nl.set_up(pod.index, &env.ifname).map_err(BridgeError::from)?;
    if conf.hairpin_mode {
        host::set_hairpin(&name)?;
    }
    Ok(Veth { host, pod })
}

#[allow(clippy::too_many_arguments)]
fn attach(
    nl: &mut Netlink,
    pod_nl: &mut Netlink,
    conf: &BridgeConf,
    call: &Call,
    ns: &NetNs,
    bridge: &Link,
    veth: Veth,
    ipam: &CniResult,
) -> Result<CniResult, CniError> {
    let env = call.env;
    let what = ns.describe();
    let Veth { host: host_link, pod } = veth;
    let name = host_link.name.clone();
    let gateways: Vec<_> = ipam.ips.iter().filter_map(host::gateway_of).collect();
    if conf.is_gateway {
        host::setup_gateways(nl, bridge, &ipam.ips)?;
    }
    let routes = container::routes_for(&ipam.ips, &ipam.routes, &gateways, conf.is_default_gateway);
    let ips: Vec<IpConfig> = ipam.ips.iter().map(|ip| IpConfig { interface: Some(2), ..ip.clone() }).collect();
    trace::mark("gateways");
    // An address can come back with a new MAC within the ARP lock time, when the kernel would ignore the
    // gratuitous ARP: drop the host's stale entry first, then let the pod announce itself.
    for ip in &ips {
        nl.forget_neighbour(bridge.index, &bridge.name, ip.address.addr()).map_err(BridgeError::from)?;
    }
    ns.run(|| container::enable_announcements(&env.ifname, &ips))??;
    container::configure(pod_nl, &pod, &what, &ips, &routes)?;
    if conf.ip_masq {
        // pod to pod inside the cluster CIDR keeps its source address; the rest leaves masqueraded
        let subnets: Vec<_> = ips.iter().map(|ip| conf.masq_network(ip.address.trunc())).collect();
        Masquerade::new(&conf.net.name, &conf.state_dir())
            .acquire(&env.container_id, &env.ifname, &subnets)
            .map_err(BridgeError::from)?;
    }
    // The bridge enables the port once the kernel's link watcher has seen the carrier (asynchronously, usually
    // done by now); an announcement sent before that would be dropped at the port.
    if !container::wait_forwarding(&name, std::time::Duration::from_millis(50)) {
        trace::mark("bridge port still not forwarding: the announcement may be lost");
    }
    container::announce(pod_nl, &pod, &what)?;
    trace::mark("container side");
    let mut dns = ipam.dns.clone();
    if dns.is_empty() {
        dns = conf.net.dns.clone();
    }
    Ok(CniResult {
        cni_version: call.cni_version.to_string(),
        interfaces: vec![
            // Bridges made by rkube-bridge have a fixed MAC, so the one read before the port joined still holds.
            Interface { name: bridge.name.clone(), mac: bridge.mac.clone(), mtu: conf.mtu, sandbox: String::new() },
            Interface { name: name.clone(), mac: host_link.mac, mtu: conf.mtu, sandbox: String::new() },
            Interface { name: env.ifname.clone(), mac: pod.mac, mtu: conf.mtu, sandbox: env.netns.clone() },
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
