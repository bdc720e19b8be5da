//! `rkube-host-local`: hands out addresses from configured ranges, one lease file per address under
//! `dataDir/<network>/` (the same layout as the reference host-local), with an exclusive `flock` on
//! `dataDir/<network>/lock` around every change so concurrent ADDs never hand out one address twice.

pub(crate) mod allocator;
pub(crate) mod config;
pub(crate) mod store;

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::PathBuf;

use serde::Deserialize;

use crate::plugin::{Call, Plugin};
use crate::spec::config::decode;
use crate::spec::error::{code, CniError};
use crate::spec::{CniResult, IpConfig, NetConf};

pub(crate) use allocator::RangeSet;
pub(crate) use config::IpamConfig;
pub(crate) use store::Store;

/// Default lease directory, as in the reference plugin.
pub(crate) const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";

/// Failures of host-local IPAM, each naming the network, range, address or path involved.
#[derive(Debug, thiserror::Error)]
pub(crate) enum IpamError {
    #[error("network {network:?}: invalid ipam config: {reason}")]
    InvalidConfig { network: String, reason: String },
    #[error("network {network:?}: no free address left in {ranges} (every address is leased; free some with DEL or widen the range)")]
    Exhausted { network: String, ranges: String },
    #[error("lease store {path}: {op}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("network {network:?}: container {container_id:?} interface {ifname:?} holds no lease in {ranges}")]
    NoLease { network: String, container_id: String, ifname: String, ranges: String },
}

impl From<IpamError> for CniError {
    fn from(e: IpamError) -> CniError {
        let c = match &e {
            IpamError::InvalidConfig { .. } => code::INVALID_CONFIG,
            IpamError::Exhausted { .. } => code::RANGE_EXHAUSTED,
            IpamError::Io { .. } => code::IO_FAILURE,
            IpamError::NoLease { .. } => code::CHECK_FAILED,
        };
        CniError::from_error(c, &e)
    }
}

/// A config as host-local receives it: the common fields plus `ipam`.
#[derive(Debug, Deserialize)]
struct HostLocalNetConf {
    #[serde(flatten)]
    net: NetConf,
}

/// Everything ADD/DEL/CHECK need, resolved from the config.
pub(crate) struct Resolved {
    pub network: String,
    pub ipam: IpamConfig,
    pub range_sets: Vec<RangeSet>,
    pub data_dir: PathBuf,
}

/// Reads and checks the `ipam` section of a host-local config.
pub(crate) fn resolve(config: &serde_json::Value) -> Result<Resolved, CniError> {
    let conf: HostLocalNetConf = decode(config)?;
    let network = conf.net.name.clone();
    let raw = conf.net.ipam.ok_or_else(|| IpamError::InvalidConfig {
        network: network.clone(),
        reason: "no \"ipam\" section".into(),
    })?;
    let ipam: IpamConfig = serde_json::from_value(raw)
        .map_err(|e| IpamError::InvalidConfig { network: network.clone(), reason: e.to_string() })?;
    let range_sets = ipam.range_sets(&network)?;
    let data_dir = ipam.data_dir.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    Ok(Resolved { network, ipam, range_sets, data_dir })
}

fn describe(sets: &[RangeSet]) -> String {
    sets.iter().map(|s| s.to_string()).collect::<Vec<_>>().join("; ")
}

/// Allocates one address per range set for `container_id`/`ifname` (or returns the ones it already holds).
pub(crate) fn allocate(r: &Resolved, container_id: &str, ifname: &str) -> Result<Vec<IpConfig>, IpamError> {
    let store = Store::open(&r.data_dir, &r.network)?;
    let held = store.find(container_id, ifname)?;
    let mut made: Vec<IpAddr> = Vec::new();
    let mut ips = Vec::new();
    for (idx, set) in r.range_sets.iter().enumerate() {
        if let Some((ip, range)) = held.iter().find_map(|ip| set.range_of(*ip).map(|rg| (*ip, rg))) {
            ips.push(range.ip_config(ip));
            continue;
        }
        let last = store.last_reserved(idx);
        let found = set.next_free(last, |ip| store.is_taken(ip));
        let Some((ip, range)) = found else {
            for ip in &made {
                let _ = store.release(*ip);
            }
            return Err(IpamError::Exhausted { network: r.network.clone(), ranges: set.to_string() });
        };
        if let Err(e) = store.reserve(ip, container_id, ifname, idx) {
            for ip in &made {
                let _ = store.release(*ip);
            }
            return Err(e);
        }
        made.push(ip);
        ips.push(range.ip_config(ip));
    }
    Ok(ips)
}

/// The `rkube-host-local` plugin.
pub struct HostLocal;

impl Plugin for HostLocal {
    fn add(&self, call: &Call) -> Result<CniResult, CniError> {
        let r = resolve(call.config)?;
        let ips = allocate(&r, &call.env.container_id, &call.env.ifname)?;
        Ok(CniResult {
            cni_version: call.cni_version.to_string(),
            interfaces: Vec::new(),
            ips,
            routes: r.ipam.routes.clone(),
            dns: r.ipam.dns.clone(),
        })
    }

    fn del(&self, call: &Call) -> Result<(), CniError> {
        let r = resolve(call.config)?;
        if !r.data_dir.join(&r.network).exists() {
            return Ok(());
        }
        let store = Store::open(&r.data_dir, &r.network)?;
        store.release_owner(&call.env.container_id, &call.env.ifname)?;
        Ok(())
    }

    fn check(&self, call: &Call) -> Result<(), CniError> {
        let r = resolve(call.config)?;
        let no_lease = || IpamError::NoLease {
            network: r.network.clone(),
            container_id: call.env.container_id.clone(),
            ifname: call.env.ifname.clone(),
            ranges: describe(&r.range_sets),
        };
        if !r.data_dir.join(&r.network).exists() {
            return Err(no_lease().into());
        }
        let store = Store::open(&r.data_dir, &r.network)?;
        let held = store.find(&call.env.container_id, &call.env.ifname)?;
        for set in &r.range_sets {
            if !held.iter().any(|ip| set.range_of(*ip).is_some()) {
                return Err(no_lease().into());
            }
        }
        Ok(())
    }

    fn status(&self, call: &Call) -> Result<(), CniError> {
        let r = resolve(call.config)?;
        let dir = r.data_dir.join(&r.network);
        std::fs::create_dir_all(&dir).map_err(|e| {
            CniError::new(code::NOT_AVAILABLE, format!("lease directory {} is not usable: {e}", dir.display()))
        })?;
        Ok(())
    }

    fn gc(&self, call: &Call) -> Result<(), CniError> {
        let r = resolve(call.config)?;
        if !r.data_dir.join(&r.network).exists() {
            return Ok(());
        }
        let valid = valid_attachments(call.config)?;
        let store = Store::open(&r.data_dir, &r.network)?;
        for lease in store.leases()? {
            if !valid.contains(&(lease.container_id.clone(), lease.ifname.clone())) {
                store.release(lease.ip)?;
            }
        }
        Ok(())
    }
}

/// The `cni.dev/valid-attachments` list GC is called with.
pub(crate) fn valid_attachments(config: &serde_json::Value) -> Result<HashSet<(String, String)>, CniError> {
    #[derive(Deserialize)]
    struct Attachment {
        #[serde(rename = "containerID")]
        container_id: String,
        ifname: String,
    }
    let list = config.get("cni.dev/valid-attachments").cloned().unwrap_or(serde_json::Value::Array(vec![]));
    let list: Vec<Attachment> = serde_json::from_value(list).map_err(|e| {
        CniError::new(code::INVALID_CONFIG, format!("cni.dev/valid-attachments is malformed: {e}"))
    })?;
    Ok(list.into_iter().map(|a| (a.container_id, a.ifname)).collect())
}
