//! What one sync writes, decided without touching the kernel: [`Applied`] is the table as the proxy last wrote it
//! (each service port with its objects); [`partial`] picks, among the Services a [`PortTracker`] update reported,
//! the service ports whose objects differ from the applied ones, and nothing else: a change to one Service costs
//! that Service's ports, whatever the number of Services. [`full`] is the whole table, for the first sync and after
//! a failure; [`resync`] rewrites every service port of one shard table ([`super::shard`]), one step of the
//! periodic resync. `sync` carries a plan out (`nfnl` or `nft -f`) and then commits it here.

use std::collections::{BTreeMap, BTreeSet};

use super::model::ServicePort;
use super::nft::{partial_ops, port_key, port_objects, resync_ops, sharded_ops, Op, PortObjects, ProxyConfig};
use super::shard::Shards;
use super::tracker::{PortTracker, ServiceKey};

/// The service ports in the table (by [`port_key`]), each with the objects rendered for it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    ports: BTreeMap<String, (ServicePort, PortObjects)>,
    rules: usize,
}

impl Applied {
    /// Rules and map elements in the table (the rules-count metric), kept as plans are committed.
    pub fn rule_count(&self) -> usize {
        self.rules
    }

    /// Every service port's objects, by [`port_key`].
    pub fn objects(&self) -> BTreeMap<String, PortObjects> {
        self.ports.iter().map(|(k, (_, o))| (k.clone(), o.clone())).collect()
    }

    /// The table after `plan` was written.
    pub fn commit(&mut self, plan: Plan) {
        for (key, objects) in plan.old {
            if self.ports.remove(&key).is_some() {
                self.rules -= objects.rule_count();
            }
        }
        for (key, objects) in plan.new {
            if let Some(port) = plan.ports.get(&key) {
                self.rules += objects.rule_count();
                self.ports.insert(key, (port.clone(), objects));
            }
        }
    }
}

/// The service ports one sync rewrites: their objects in the table now (`old`) and after (`new`). A key only in
/// `old` is a port that is gone; only in `new`, a port that is new.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The rewritten ports' objects as the table has them.
    pub old: BTreeMap<String, PortObjects>,
    /// Their objects after the plan is written.
    pub new: BTreeMap<String, PortObjects>,
    /// The service ports behind `new`.
    ports: BTreeMap<String, ServicePort>,
    /// A resync of this shard: every service port of it rewritten ([`resync_ops`]).
    resync: Option<u32>,
}

impl Plan {
    /// The transaction on one table: the changed ports' elements and chains, nothing else (empty: nothing to
    /// write).
    pub fn ops(&self) -> Vec<Op<'_>> {
        partial_ops(&self.old, &self.new)
    }

    /// The transaction over the tables of `shards`: each shard's ops (only shards with something to write).
    pub fn ops_by_shard(&self, shards: &Shards) -> BTreeMap<u32, Vec<Op<'_>>> {
        match self.resync {
            Some(shard) => BTreeMap::from([(shard, resync_ops(&self.old, &self.new))]),
            None => sharded_ops(&self.old, &self.new, shards),
        }
    }

    /// Service ports rewritten, added or removed.
    pub fn len(&self) -> usize {
        self.old.keys().chain(self.new.keys()).collect::<BTreeSet<_>>().len()
    }

    /// Whether the plan writes nothing.
    pub fn is_empty(&self) -> bool {
        self.old.is_empty() && self.new.is_empty()
    }
}

/// The whole table for every port of `tracker`: an empty [`Applied`] with `plan` committed to it gives the table.
pub fn full(cfg: &ProxyConfig, tracker: &PortTracker) -> Plan {
    let mut plan = Plan::default();
    for p in tracker.ports() {
        let key = port_key(p);
        plan.new.insert(key.clone(), port_objects(cfg, p));
        plan.ports.insert(key, p.clone());
    }
    plan
}

/// One step of the periodic resync: every service port of shard `shard` (placed by `shards`) as the table has it
/// (`old`, from `applied`) and as `tracker` has it now (`new`, rendered again), changed or not.
pub fn resync(cfg: &ProxyConfig, applied: &Applied, tracker: &PortTracker, shard: u32, shards: &Shards) -> Plan {
    let mut plan = Plan { resync: Some(shard), ..Plan::default() };
    for (key, (_, objects)) in &applied.ports {
        if shards.of_key(key) == shard {
            plan.old.insert(key.clone(), objects.clone());
        }
    }
    for p in tracker.ports() {
        let key = port_key(p);
        if shards.of_key(&key) == shard {
            plan.new.insert(key.clone(), port_objects(cfg, p));
            plan.ports.insert(key, p.clone());
        }
    }
    plan
}

/// The ports of the `changed` Services whose objects differ from `applied`'s: rendered again, or gone. Ports of
/// other Services are not looked at.
pub fn partial(cfg: &ProxyConfig, applied: &Applied, tracker: &PortTracker, changed: &BTreeSet<ServiceKey>) -> Plan {
    let mut plan = Plan::default();
    for svc in changed {
        // port keys are `ns/name/proto/port`, and names hold no '/': the Service's ports sit in one range
        let prefix = format!("{}/{}/", svc.namespace, svc.name);
        let before: Vec<(&String, &(ServicePort, PortObjects))> =
            applied.ports.range(prefix.clone()..).take_while(|(k, _)| k.starts_with(&prefix)).collect();
        let now = tracker.ports_of(svc);
        for p in now {
            let key = port_key(p);
            let old = applied.ports.get(&key);
            if old.is_some_and(|(q, _)| q == p) {
                continue;
            }
            if let Some((_, o)) = old {
                plan.old.insert(key.clone(), o.clone());
            }
            plan.new.insert(key.clone(), port_objects(cfg, p));
            plan.ports.insert(key, p.clone());
        }
        for (key, (_, o)) in before {
            if !now.iter().any(|p| port_key(p) == *key) {
                plan.old.insert(key.clone(), o.clone());
            }
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service_proxy::model::service_ports;
    use crate::service_proxy::nft::{render, script};
    use crate::service_proxy::tracker::tests::{slice, svc};

    fn cluster(n: u8) -> (Vec<k8s_openapi::api::core::v1::Service>, Vec<k8s_openapi::api::discovery::v1::EndpointSlice>) {
        let services = (0..n).map(|i| svc(&format!("s{i}"), i + 1, 1)).collect();
        let slices = (0..n).map(|i| slice(&format!("s{i}-1"), &format!("s{i}"), i, &[1, 2, 3], 1)).collect();
        (services, slices)
    }

    #[test]
    fn a_change_to_one_service_touches_only_its_chains_and_ends_as_a_full_recompute() {
        let cfg = ProxyConfig::default();
        let (mut services, mut slices) = cluster(30);
        let mut t = PortTracker::new("n1");
        t.update(&services, &slices);
        let mut applied = Applied::default();
        applied.commit(full(&cfg, &t));
        assert_eq!(applied.objects(), render(&cfg, &service_ports(&services, &slices, "n1")));

        // one endpoint of s7 replaced
        slices[7] = slice("s7-1", "s7", 7, &[1, 2, 9], 2);
        let changed = t.update(&services, &slices);
        let plan = partial(&cfg, &applied, &t, &changed);
        assert_eq!((plan.old.len(), plan.new.len(), plan.len()), (1, 1, 1), "{plan:#?}");
        let s = script(&cfg.table, &plan.ops());
        let names: BTreeSet<&str> = s.split_whitespace().filter(|w| w.contains("default/")).collect();
        assert!(names.iter().all(|n| n.contains("default/s7/")), "only s7's chains and elements:\n{s}");
        assert!(s.contains("add chain ip rkube-proxy ep-default/s7/tcp/http__10.244.7.9/8080"), "{s}");
        assert!(s.contains("delete chain ip rkube-proxy ep-default/s7/tcp/http__10.244.7.3/8080"), "{s}");
        applied.commit(plan);
        assert_eq!(applied.objects(), render(&cfg, &service_ports(&services, &slices, "n1")), "partial == full recompute");

        // a Service removed and another added in one sync
        services.remove(3);
        services.push(svc("new", 200, 3));
        slices.push(slice("new-1", "new", 200, &[4], 3));
        let changed = t.update(&services, &slices);
        let plan = partial(&cfg, &applied, &t, &changed);
        let s = script(&cfg.table, &plan.ops());
        assert!(s.contains("delete chain ip rkube-proxy svc-default/s3/tcp/http") && s.contains("add chain ip rkube-proxy svc-default/new/tcp/http"), "{s}");
        applied.commit(plan);
        let expected = render(&cfg, &service_ports(&services, &slices, "n1"));
        assert_eq!(applied.objects(), expected);
        assert_eq!(applied.rule_count(), expected.values().map(PortObjects::rule_count).sum::<usize>(), "the running rule count");

        // nothing changed: an empty plan
        let changed = t.update(&services, &slices);
        assert!(changed.is_empty() && partial(&cfg, &applied, &t, &changed).is_empty());
    }

    #[test]
    fn a_service_whose_ports_did_not_change_writes_nothing() {
        let cfg = ProxyConfig::default();
        let (services, mut slices) = cluster(3);
        let mut t = PortTracker::new("n1");
        t.update(&services, &slices);
        let mut applied = Applied::default();
        applied.commit(full(&cfg, &t));
        // a new resourceVersion with the same endpoints (a label edit, say): recomputed, nothing to write
        slices[1] = slice("s1-1", "s1", 1, &[1, 2, 3], 5);
        let changed = t.update(&services, &slices);
        assert_eq!(changed.len(), 1);
        let plan = partial(&cfg, &applied, &t, &changed);
        assert!(plan.ops().is_empty() && plan.is_empty(), "{plan:#?}");
    }

    #[test]
    fn a_resync_step_rewrites_every_port_of_its_shard_and_only_those() {
        use crate::service_proxy::shard::shard_of;
        let cfg = ProxyConfig::default();
        let (services, mut slices) = cluster(30);
        let mut t = PortTracker::new("n1");
        t.update(&services, &slices);
        let mut applied = Applied::default();
        applied.commit(full(&cfg, &t));
        // drift: s7 changed in the cluster, and the tracker recomputed from scratch (as the resync does)
        slices[7] = slice("s7-1", "s7", 7, &[1, 2, 9], 2);
        t.reset();
        t.update(&services, &slices);
        let shard = shard_of("default", "s7", 4);
        let in_shard: BTreeSet<String> = (0..30).map(|i| format!("s{i}")).filter(|n| shard_of("default", n, 4) == shard).collect();
        let plan = resync(&cfg, &applied, &t, shard, &Shards::by_hash(4));
        let names = |m: &BTreeMap<String, PortObjects>| m.keys().map(|k| k.split('/').nth(1).unwrap_or_default().to_string()).collect::<BTreeSet<_>>();
        assert_eq!(names(&plan.old), in_shard, "every port of the shard as written");
        assert_eq!(names(&plan.new), in_shard, "every port of the shard as it is now");
        assert!(in_shard.len() < 30, "{in_shard:?}");
        let ops = plan.ops_by_shard(&Shards::by_hash(4));
        assert_eq!(ops.keys().copied().collect::<Vec<_>>(), [shard]);
        assert!(matches!(ops[&shard][0], Op::FlushMap(_)), "{:?}", ops[&shard]);
        applied.commit(plan);
        assert_eq!(applied.objects(), render(&cfg, &service_ports(&services, &slices, "n1")), "the shard's drift repaired");
        assert_eq!(applied.rule_count(), applied.objects().values().map(PortObjects::rule_count).sum::<usize>());
        // a partial plan over shards: only the changed Service's shard
        slices[7] = slice("s7-1", "s7", 7, &[1, 2, 3], 3);
        let changed = t.update(&services, &slices);
        let plan = partial(&cfg, &applied, &t, &changed);
        assert_eq!(plan.ops_by_shard(&Shards::by_hash(4)).keys().copied().collect::<Vec<_>>(), [shard]);
    }
}
