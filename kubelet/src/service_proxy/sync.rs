//! Keeps the proxy's nftables table in step with the cluster: a [`Consumer`] for the shared service watch.
//! Each sync first brings the [`PortTracker`] up to date, which recomputes only the Services whose object or
//! EndpointSlices changed, then writes what [`plan::partial`] picked among those Services' ports, as one netlink
//! batch ([`super::nfnl`]): one EndpointSlice change costs one Service, not the 5,000 others (no recompute, no
//! diff, no rendering of theirs, no dump of the table either). The first sync, the one after a sync the kernel
//! refused, and one every [`FULL_SYNC_PERIOD`] replace the whole table (`nft -f`), computed from scratch.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::service_watch::{Consumer, ServiceState};

use super::announce::{self, Announcer};
use super::health::{wanted, HealthServers};
use super::nfnl;
use super::nft::{apply_script, full_script, script, Op, ProxyConfig, ProxyError};
use super::plan::{self, Applied};
use super::tracker::{PortTracker, ServiceKey};

/// How often the whole table is rewritten from scratch even when nothing asks for it: upstream kube-proxy's
/// `FullSyncPeriod` (its nftables proxier does partial syncs in between, as this one does). It repairs a table
/// someone edited by hand and any drift between what the proxy believes is applied and what is.
pub const FULL_SYNC_PERIOD: Duration = Duration::from_secs(3600);

/// What is in the table (`None`: nothing known, the next sync is a full one) and when it was last written whole.
#[derive(Debug)]
pub struct Proxier {
    cfg: ProxyConfig,
    applied: Option<Applied>,
    last_full: Option<Instant>,
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
        Proxier { cfg, applied: None, last_full: None }
    }

    /// The next sync replaces the whole table: nothing is known of it, or the last full sync is
    /// [`FULL_SYNC_PERIOD`] old. The caller then recomputes every Service ([`PortTracker::reset`]).
    pub fn full_sync_due(&self, now: Instant) -> bool {
        self.applied.is_none() || self.last_full.is_none_or(|t| now.saturating_duration_since(t) >= FULL_SYNC_PERIOD)
    }

    /// Brings the table to `tracker`'s ports; `changed` are the Services its last update recomputed. Returns what
    /// was done and how many service ports were written.
    pub fn sync(&mut self, tracker: &PortTracker, changed: &BTreeSet<ServiceKey>, now: Instant) -> Result<(SyncKind, usize), ProxyError> {
        let full = self.full_sync_due(now);
        let (kind, plan, result) = match &self.applied {
            Some(applied) if !full => {
                let plan = plan::partial(&self.cfg, applied, tracker, changed);
                let (empty, result) = {
                    let ops = plan.ops();
                    (ops.is_empty(), if ops.is_empty() { Ok(()) } else { apply_partial(&self.cfg, &ops) })
                };
                if empty {
                    // ports that changed without changing their rules (a health check port, say)
                    if let Some(a) = self.applied.as_mut() {
                        a.commit(plan);
                    }
                    return Ok((SyncKind::Unchanged, 0));
                }
                (SyncKind::Partial, plan, result)
            }
            _ => {
                let plan = plan::full(&self.cfg, tracker);
                let result = apply_script(&self.cfg, &full_script(&self.cfg, &plan.new));
                (SyncKind::Full, plan, result)
            }
        };
        if let Err(e) = result {
            self.applied = None;
            super::metrics::record_failure();
            return Err(e);
        }
        let written = plan.len();
        let applied = match kind {
            SyncKind::Full => {
                self.last_full = Some(now);
                self.applied.insert(Applied::default())
            }
            _ => self.applied.get_or_insert_with(Applied::default),
        };
        applied.commit(plan);
        Ok((kind, written))
    }

    /// Rules and map elements in the table.
    pub fn rule_count(&self) -> usize {
        self.applied.as_ref().map_or(0, Applied::rule_count)
    }
}

/// A partial sync's ops: one netlink batch, or `nft -f` for a batch too large for one netlink message (many
/// Services changed at once, where the table dump nft adds no longer dominates).
fn apply_partial(cfg: &ProxyConfig, ops: &[Op<'_>]) -> Result<(), ProxyError> {
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
    let mut tracker = PortTracker::new(&cfg.node_name);
    let mut health = HealthServers::default();
    let mut announcer = Announcer::new(&cfg.table);
    Box::new(move |state: &ServiceState| {
        let start = Instant::now();
        if proxier.full_sync_due(start) {
            tracker.reset();
        }
        let changed = tracker.update(&state.services, &state.slices);
        let computed = start.elapsed();
        for err in announcer.update(&announce::wanted(&state.services, &cfg.node_name)) {
            tracing::warn!(error = %err, "load balancer address not announced; retried on the next change");
        }
        for err in health.update(wanted(tracker.ports())) {
            tracing::warn!(error = %err, "health check node port not served; retried on the next change");
        }
        if changed.is_empty() && !proxier.full_sync_due(start) {
            return;
        }
        let write_start = Instant::now();
        match proxier.sync(&tracker, &changed, start) {
            Ok((SyncKind::Unchanged, _)) => {}
            Ok((kind, ports)) => {
                super::metrics::record_sync(start.elapsed(), &cfg.table, proxier.rule_count());
                tracing::info!(
                    table = %cfg.table,
                    ?kind,
                    services = state.services.len(),
                    services_changed = changed.len(),
                    ports_written = ports,
                    compute_ms = computed.as_secs_f64() * 1000.0,
                    write_ms = write_start.elapsed().as_secs_f64() * 1000.0,
                    "service proxy rules applied"
                );
            }
            // Logged here, where it is handled: the next change retries with a full sync.
            Err(err) => tracing::error!(table = %cfg.table, error = %err, "service proxy rules not applied"),
        }
    })
}
