//! Keeps the proxy's nftables table in step with the cluster: a [`Consumer`] for the shared service watch.
//! The first sync replaces the whole table; after that each sync rewrites only the service ports whose rules
//! changed ([`super::nft::partial_script`]), so one EndpointSlice change costs one Service's chains, not the
//! table. A sync nft refuses is retried as a full sync on the next change.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::service_watch::{Consumer, ServiceState};

use super::announce::{self, Announcer};
use super::health::{wanted, HealthServers};
use super::model::{service_ports, ServicePort};
use super::nft::{apply_script, full_script, partial_script, render, PortObjects, ProxyConfig, ProxyError};

/// What is in the table: every service port's objects, or nothing known (the next sync is a full one).
#[derive(Debug, Default)]
pub struct Proxier {
    cfg: ProxyConfig,
    applied: Option<BTreeMap<String, PortObjects>>,
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

    /// Brings the table to `ports` (from [`service_ports`]).
    pub fn sync(&mut self, ports: &[ServicePort]) -> Result<SyncKind, ProxyError> {
        let start = Instant::now();
        let objects = render(ports);
        let (kind, script) = match &self.applied {
            None => (SyncKind::Full, full_script(&self.cfg, &objects)),
            Some(old) => (SyncKind::Partial, partial_script(&self.cfg, old, &objects)),
        };
        if script.is_empty() {
            return Ok(SyncKind::Unchanged);
        }
        if let Err(e) = apply_script(&self.cfg, &script) {
            self.applied = None;
            super::metrics::record_failure();
            return Err(e);
        }
        let rules = objects.values().map(PortObjects::rule_count).sum();
        self.applied = Some(objects);
        super::metrics::record_sync(start.elapsed(), &self.cfg.table, rules);
        Ok(kind)
    }
}

/// The proxy's consumer: a full sync on the first state, partial ones after; the health check node ports and
/// the load balancer addresses this node announces follow.
pub fn consumer(cfg: ProxyConfig) -> Consumer {
    let mut proxier = Proxier::new(cfg.clone());
    let mut health = HealthServers::default();
    let mut announcer = Announcer::default();
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
