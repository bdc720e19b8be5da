//! Keeps the proxy's nftables table in step with the cluster: a [`Consumer`] for the shared service watch.
//! The first sync replaces the whole table (`nft -f`); after that each sync rewrites only the service ports whose
//! rules changed ([`super::nft::partial_ops`]), sent as one netlink batch ([`super::nfnl`]), so one EndpointSlice
//! change costs one Service's chains, not the table, and no dump of the table either. A sync the kernel refuses is
//! retried as a full sync on the next change.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::service_watch::{Consumer, ServiceState};

use super::announce::{self, Announcer};
use super::health::{wanted, HealthServers};
use super::model::{service_ports, ServicePort};
use super::nfnl;
use super::nft::{apply_script, full_script, partial_ops, port_key, port_objects, render, script, PortObjects, ProxyConfig, ProxyError};

/// What is in the table: every service port (by [`port_key`]) with the objects rendered for it, or nothing known
/// (the next sync is a full one).
#[derive(Debug, Default)]
pub struct Proxier {
    cfg: ProxyConfig,
    applied: Option<BTreeMap<String, (ServicePort, PortObjects)>>,
}

/// What one sync did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncKind {
    Full,
    Partial,
    Unchanged,
}

impl Proxier {
    pub fn new(cfg: ProxyConfig) -> Proxier {
        Proxier { cfg, applied: None }
    }

    /// Brings the table to `ports` (from [`service_ports`]). Only the service ports that differ from the last
    /// applied ones are rendered and rewritten; the rest are not looked at again.
    pub fn sync(&mut self, ports: &[ServicePort]) -> Result<SyncKind, ProxyError> {
        let start = Instant::now();
        let new: BTreeMap<String, &ServicePort> = ports.iter().map(|p| (port_key(p), p)).collect();
        let (kind, result, rendered) = match &self.applied {
            None => {
                let rendered: BTreeMap<String, PortObjects> = render(&self.cfg, ports);
                (SyncKind::Full, apply_script(&self.cfg, &full_script(&self.cfg, &rendered)), rendered)
            }
            Some(applied) => {
                let gone = applied.keys().filter(|k| !new.contains_key(*k));
                let changed = new.iter().filter(|(k, p)| applied.get(*k).is_none_or(|(old, _)| old != **p)).map(|(k, _)| k);
                let keys: Vec<&String> = gone.chain(changed).collect();
                let old: BTreeMap<String, PortObjects> = keys.iter().filter_map(|k| applied.get(*k).map(|(_, o)| ((*k).clone(), o.clone()))).collect();
                let rendered: BTreeMap<String, PortObjects> = keys.iter().filter_map(|k| new.get(*k).map(|p| ((*k).clone(), port_objects(&self.cfg, p)))).collect();
                let ops = partial_ops(&old, &rendered);
                if ops.is_empty() {
                    return Ok(SyncKind::Unchanged);
                }
                (SyncKind::Partial, apply_partial(&self.cfg, &ops), rendered)
            }
        };
        if let Err(e) = result {
            self.applied = None;
            super::metrics::record_failure();
            return Err(e);
        }
        let applied = self.applied.get_or_insert_with(BTreeMap::new);
        applied.retain(|k, _| new.contains_key(k));
        for (k, objects) in rendered {
            if let Some(p) = new.get(&k) {
                applied.insert(k, ((*p).clone(), objects));
            }
        }
        let rules = applied.values().map(|(_, o)| o.rule_count()).sum();
        super::metrics::record_sync(start.elapsed(), &self.cfg.table, rules);
        Ok(kind)
    }
}

/// A partial sync's ops: one netlink batch, or `nft -f` for a batch too large for one netlink message (many
/// Services changed at once, where the table dump nft adds no longer dominates).
fn apply_partial(cfg: &ProxyConfig, ops: &[super::nft::Op<'_>]) -> Result<(), ProxyError> {
    let encoded = nfnl::encode(&cfg.table, ops);
    if encoded.0.len() <= nfnl::MAX_BATCH_BYTES {
        nfnl::send(&cfg.table, encoded)
    } else {
        apply_script(cfg, &script(&cfg.table, ops))
    }
}

/// The proxy's consumer: a full sync on the first state, partial ones after; the health check node ports and
/// the load balancer addresses this node announces follow.
pub fn consumer(cfg: ProxyConfig) -> Consumer {
    let mut proxier = Proxier::new(cfg.clone());
    let mut health = HealthServers::default();
    let mut announcer = Announcer::new(&cfg.table);
    Box::new(move |state: &ServiceState| {
        let ports = service_ports(&state.services, &state.slices, &cfg.node_name);
        for err in announcer.update(&announce::wanted(&state.services, &cfg.node_name)) {
            tracing::warn!(error = %err, "load balancer address not announced; retried on the next change");
        }
        for err in health.update(wanted(&ports)) {
            tracing::warn!(error = %err, "health check node port not served; retried on the next change");
        }
        let result = proxier.sync(&ports);
        match result {
            Ok(SyncKind::Unchanged) => {}
            Ok(kind) => tracing::info!(table = %cfg.table, ?kind, services = state.services.len(), "service proxy rules applied"),
            // Logged here, where it is handled: the next change retries with a full sync.
            Err(err) => tracing::error!(table = %cfg.table, error = %err, "service proxy rules not applied"),
        }
    })
}
