//! Keeps the proxy's nftables tables in step with the cluster: a [`Consumer`] for the shared service watch.
//! Each sync first brings the [`PortTracker`] up to date, which recomputes only the Services whose object or
//! EndpointSlices changed, then writes what [`plan::partial`] picked among those Services' ports, as one netlink
//! batch ([`super::nfnl`]) over the shard tables they are in ([`super::shard`]): one EndpointSlice change costs one
//! Service, not the 5,000 others (no recompute, no diff, no rendering of theirs, no dump of the table), and the
//! kernel's commit checks only the one small table that changed.
//!
//! The first sync and the one after a sync the kernel refused replace every table (`nft -f`), computed and
//! placed from scratch. A cluster that outgrows its tables gets one more, empty, next to them ([`Shards::place`]):
//! no Service moves and no table is rewritten, so the affinity sets keep their clients. Every
//! [`FULL_SYNC_PERIOD`] the Services are recomputed from scratch and the tables are rewritten in place one shard
//! per sync ([`plan::resync`]), every table's own maps, base chains and their rules repaired at the first step
//! ([`fixed_repair_script`], one `nft -f` for all), so no sync of the watch loop waits for more than one shard's rewrite and the
//! affinity sets keep their clients.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::service_watch::{Consumer, ServiceState};

use super::announce::{self, Announcer};
use super::health::{wanted, HealthServers};
use super::nfnl;
use super::nft::{apply_script, fixed_repair_script, full_script_sharded, script, skeleton, Op, ProxyConfig, ProxyError};
use super::plan::{self, Applied, Plan};
use super::shard::{table_name, Shards, SERVICES_PER_SHARD};
use super::tracker::{PortTracker, ServiceKey};

/// How often every Service is recomputed and every table rewritten even when nothing asks for it: upstream
/// kube-proxy's `FullSyncPeriod` (its nftables proxier does partial syncs in between, as this one does). It
/// repairs rules someone edited by hand (the Services' and each table's own) and any drift between what the proxy
/// believes is applied and what is.
pub const FULL_SYNC_PERIOD: Duration = Duration::from_secs(3600);

/// What is in the tables (`None`: nothing known, the next sync is a full one), where each Service is, when the
/// last resync ended and where the current one is.
#[derive(Debug)]
pub struct Proxier {
    cfg: ProxyConfig,
    applied: Option<Applied>,
    shards: Shards,
    last_full: Option<Instant>,
    /// The next shard the periodic resync rewrites (`None`: no resync under way).
    resync: Option<u32>,
    per_shard: usize,
    full_sync_period: Duration,
}

/// What one sync did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncKind {
    /// Every table replaced, computed from scratch.
    Full,
    /// Only the changed Services' ports written (a new shard table made first if the cluster outgrew its tables).
    Partial,
    /// One step of the periodic resync: this shard rewritten in place (after the sync's partial changes).
    Resync(u32),
    /// Nothing to write.
    Unchanged,
}

impl Proxier {
    /// A proxier for `cfg`'s tables, knowing nothing of them yet: its first sync is a full one.
    pub fn new(cfg: ProxyConfig) -> Proxier {
        Proxier {
            cfg,
            applied: None,
            shards: Shards::default(),
            last_full: None,
            resync: None,
            per_shard: SERVICES_PER_SHARD,
            full_sync_period: FULL_SYNC_PERIOD,
        }
    }

    /// Spreads the Services over more tables once there are more than `n` of them (instead of
    /// [`SERVICES_PER_SHARD`]): for tests, which need several shards with a few Services.
    pub fn with_services_per_shard(mut self, n: usize) -> Proxier {
        self.per_shard = n;
        self
    }

    /// Resyncs every `period` instead of [`FULL_SYNC_PERIOD`] (tests).
    pub fn with_full_sync_period(mut self, period: Duration) -> Proxier {
        self.full_sync_period = period;
        self
    }

    /// Whether the caller must recompute every Service ([`PortTracker::reset`]) before the next [`Proxier::sync`]:
    /// nothing is known of the tables, or the periodic resync is due (it starts here).
    pub fn recompute_due(&mut self, now: Instant) -> bool {
        if self.applied.is_none() {
            return true;
        }
        if self.resync.is_none() && self.last_full.is_none_or(|t| now.saturating_duration_since(t) >= self.full_sync_period) {
            self.resync = Some(0);
            return true;
        }
        false
    }

    /// Whether the next sync writes something even with no Service changed: a full sync or a resync step.
    pub fn work_pending(&self) -> bool {
        self.applied.is_none() || self.resync.is_some()
    }

    /// The tables the Services are spread over now.
    pub fn shards(&self) -> u32 {
        self.shards.count()
    }

    /// The shard Service `namespace/name` is in (None: not placed, no proxied port).
    pub fn shard_of(&self, namespace: &str, name: &str) -> Option<u32> {
        self.shards.get(namespace, name)
    }

    /// Brings the tables to `tracker`'s ports; `changed` are the Services its last update recomputed. Returns what
    /// was done and how many service ports were written.
    pub fn sync(&mut self, tracker: &PortTracker, changed: &BTreeSet<ServiceKey>, now: Instant) -> Result<(SyncKind, usize), ProxyError> {
        if self.applied.is_none() {
            return self.full(tracker, now);
        }
        let mut kind = SyncKind::Unchanged;
        let mut written = 0;
        // new Services placed (none moves); a table for them when every one is full
        let mut new_tables = String::new();
        for svc in changed {
            if !tracker.ports_of(svc).is_empty() {
                let placed = self.shards.place(&svc.namespace, &svc.name);
                if placed.new_table {
                    new_tables += &skeleton(&self.cfg, &table_name(&self.cfg.table, placed.shard), false);
                }
            }
        }
        if !new_tables.is_empty() {
            if let Err(e) = apply_script(&self.cfg, &new_tables) {
                self.applied = None;
                super::metrics::record_failure();
                return Err(e);
            }
            kind = SyncKind::Partial;
        }
        let Some(applied) = self.applied.as_ref() else { return self.full(tracker, now) };
        let partial = plan::partial(&self.cfg, applied, tracker, changed);
        if !partial.is_empty() {
            let (result, len) = (write(&self.cfg, &partial, &self.shards), partial.len());
            if commit(&mut self.applied, partial, result)? {
                kind = SyncKind::Partial;
                written += len;
            }
        }
        // Services gone free their places once their objects are deleted
        for svc in changed {
            if tracker.ports_of(svc).is_empty() {
                self.shards.release(&svc.namespace, &svc.name);
            }
        }
        if let (Some(shard), Some(applied)) = (self.resync, self.applied.as_ref()) {
            // every table's own objects at the first step, in one nft -f: nft dumps its cache before any script
            // (0.5 s at 5,000 Services), so once per resync rather than once per table
            if shard == 0 {
                let repair: String = (0..self.shards.count()).map(|s| fixed_repair_script(&self.cfg, &table_name(&self.cfg.table, s), s == 0)).collect();
                if let Err(e) = apply_script(&self.cfg, &repair) {
                    self.applied = None;
                    super::metrics::record_failure();
                    return Err(e);
                }
            }
            let step = plan::resync(&self.cfg, applied, tracker, shard, &self.shards);
            let result = write(&self.cfg, &step, &self.shards);
            written += step.len();
            commit(&mut self.applied, step, result)?;
            kind = SyncKind::Resync(shard);
            self.resync = (shard + 1 < self.shards.count()).then_some(shard + 1);
            if self.resync.is_none() {
                self.last_full = Some(now);
            }
        }
        Ok((kind, written))
    }

    /// Every table replaced by one `nft -f` transaction, the Services placed from scratch.
    fn full(&mut self, tracker: &PortTracker, now: Instant) -> Result<(SyncKind, usize), ProxyError> {
        let plan = plan::full(&self.cfg, tracker);
        let shards = Shards::fresh(tracker.services().map(|k| (k.namespace.as_str(), k.name.as_str())), self.per_shard);
        if let Err(e) = apply_script(&self.cfg, &full_script_sharded(&self.cfg, &shards, &plan.new)) {
            super::metrics::record_failure();
            return Err(e);
        }
        self.shards = shards;
        self.last_full = Some(now);
        self.resync = None;
        let written = plan.len();
        self.applied.insert(Applied::default()).commit(plan);
        Ok((SyncKind::Full, written))
    }

    /// Rules and map elements in the tables.
    pub fn rule_count(&self) -> usize {
        self.applied.as_ref().map_or(0, Applied::rule_count)
    }
}

/// Records a written plan in `applied` (true: it wrote something), or forgets the tables after a failure, so
/// that the next sync is a full one.
fn commit(applied: &mut Option<Applied>, plan: Plan, result: Result<bool, ProxyError>) -> Result<bool, ProxyError> {
    match result {
        Ok(wrote) => {
            if let Some(a) = applied.as_mut() {
                a.commit(plan);
            }
            Ok(wrote)
        }
        Err(e) => {
            *applied = None;
            super::metrics::record_failure();
            Err(e)
        }
    }
}

/// A plan's ops over the shard tables: one netlink batch, or `nft -f` for a batch too large for one netlink
/// message. Ok(false): nothing to write (ports that changed without changing their rules: a health check port).
fn write(cfg: &ProxyConfig, plan: &Plan, shards: &Shards) -> Result<bool, ProxyError> {
    let by_shard = plan.ops_by_shard(shards);
    let tables: Vec<(String, &[Op<'_>])> = by_shard.iter().filter(|(_, ops)| !ops.is_empty()).map(|(s, ops)| (table_name(&cfg.table, *s), ops.as_slice())).collect();
    if tables.is_empty() {
        return Ok(false);
    }
    let groups: Vec<(&str, &[Op<'_>])> = tables.iter().map(|(t, ops)| (t.as_str(), *ops)).collect();
    let encoded = nfnl::encode_tables(&groups);
    if encoded.0.len() <= nfnl::MAX_BATCH_BYTES {
        nfnl::send(&cfg.table, encoded)?;
    } else {
        apply_script(cfg, &groups.iter().map(|(t, ops)| script(t, ops)).collect::<String>())?;
    }
    Ok(true)
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
        if proxier.recompute_due(start) {
            tracker.reset();
        }
        let changed = tracker.update_shared(&state.services, &state.slices);
        let computed = start.elapsed();
        // the rules first: the announcer and the health checks look at every Service, and a change waits for
        // nothing else
        if !changed.is_empty() || proxier.work_pending() {
            sync_rules(&mut proxier, &tracker, &changed, state, start, computed);
        }
        for err in announcer.update(&announce::wanted(&state.services, &cfg.node_name)) {
            tracing::warn!(error = %err, "load balancer address not announced; retried on the next change");
        }
        for err in health.update(wanted(tracker.ports())) {
            tracing::warn!(error = %err, "health check node port not served; retried on the next change");
        }
    })
}

/// One sync of the rules, logged with its kind and times (`computed`: the tracker's update, from `start`).
fn sync_rules(proxier: &mut Proxier, tracker: &PortTracker, changed: &BTreeSet<ServiceKey>, state: &ServiceState, start: Instant, computed: Duration) {
    let write_start = Instant::now();
    match proxier.sync(tracker, changed, start) {
        Ok((SyncKind::Unchanged, _)) => {}
        Ok((kind, ports)) => {
            super::metrics::record_sync(start.elapsed(), &proxier.cfg.table, proxier.rule_count());
            tracing::info!(
                table = %proxier.cfg.table,
                ?kind,
                shards = proxier.shards(),
                services = state.services.len(),
                services_changed = changed.len(),
                ports_written = ports,
                compute_ms = computed.as_secs_f64() * 1000.0,
                write_ms = write_start.elapsed().as_secs_f64() * 1000.0,
                "service proxy rules applied"
            );
        }
        // Logged here, where it is handled: the next change retries with a full sync.
        Err(err) => tracing::error!(table = %proxier.cfg.table, error = %err, "service proxy rules not applied"),
    }
}
