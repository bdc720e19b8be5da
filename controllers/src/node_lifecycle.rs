//! Node lifecycle: podCIDR per node from 10.244.0.0/16 (/24 each); a node whose Lease is not renewed within
//! the grace period (`--node-monitor-grace-period`, 50 s by default as upstream since 1.32; 40 s before) goes Ready=Unknown and gets the `unreachable` taints, a node reporting
//! Ready=False gets the `not-ready` taints; pods on a NoExecute-tainted node are evicted after their
//! tolerationSeconds (300 s when they carry no toleration for it, as DefaultTolerationSeconds gives). A node
//! reporting MemoryPressure, DiskPressure or PIDPressure gets the matching NoSchedule taint
//! ([`with_condition_taints`], upstream's TaintNodesByCondition), so the scheduler sends new pods elsewhere.
//!
//! The decisions ([`node_verdict`], [`eviction_deadline`], [`with_condition_taints`], [`CidrAllocator`]) are
//! pure.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::{NodeCondition, Taint, Toleration};

use crate::scheduler::filters::{tolerates, TAINT_NOT_READY, TAINT_UNREACHABLE};

/// kube-controller-manager's `--node-monitor-grace-period` default (50 s since Kubernetes 1.32, kubernetes#126287;
/// 40 s before): how long a node may go without renewing its Lease before it is Ready=Unknown.
pub const DEFAULT_NODE_MONITOR_GRACE_PERIOD: std::time::Duration = std::time::Duration::from_secs(50);
/// kube-controller-manager's `--node-monitor-period` default: how often every node is checked again.
pub const DEFAULT_NODE_MONITOR_PERIOD: std::time::Duration = std::time::Duration::from_secs(5);

/// A [`std::time::Duration`] flag as the lifecycle's [`Duration`] (saturating).
pub fn duration_from_std(d: std::time::Duration) -> Duration {
    Duration::milliseconds(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Tunables.
#[derive(Debug, Clone)]
pub struct LifecycleConfig {
    /// Lease age after which the node is Unknown (node-monitor-grace-period).
    pub grace: Duration,
    /// tolerationSeconds assumed for pods without a not-ready/unreachable toleration.
    pub default_toleration_seconds: i64,
    /// The pod network nodes' podCIDRs are cut from (`--cluster-cidr`).
    pub cluster_cidr: Ipv4Net,
    /// The prefix length of each node's podCIDR (`--node-cidr-mask-size`).
    pub node_mask: u8,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig {
            grace: duration_from_std(DEFAULT_NODE_MONITOR_GRACE_PERIOD),
            default_toleration_seconds: 300,
            cluster_cidr: Ipv4Net::new(std::net::Ipv4Addr::new(10, 244, 0, 0), 16).expect("valid prefix"),
            node_mask: 24,
        }
    }
}

/// What the node's Ready condition and taints should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Some((status, reason, message)) when the controller must overwrite Ready
    pub set_ready: Option<(&'static str, &'static str, &'static str)>,
    /// lifecycle taints the node should carry (NoSchedule + NoExecute of one key, or none)
    pub taint_key: Option<&'static str>,
}

/// Decide from the kubelet-reported Ready status and the Lease renew time.
pub fn node_verdict(
    reported_ready: Option<&str>,
    lease_renewed: Option<DateTime<Utc>>,
    created: DateTime<Utc>,
    now: DateTime<Utc>,
    cfg: &LifecycleConfig,
) -> Verdict {
    let last = lease_renewed.unwrap_or(created);
    if now - last > cfg.grace {
        let set = if reported_ready == Some("Unknown") {
            None
        } else {
            Some(("Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status."))
        };
        return Verdict { set_ready: set, taint_key: Some(TAINT_UNREACHABLE) };
    }
    match reported_ready {
        Some("True") => Verdict { set_ready: None, taint_key: None },
        Some("False") => Verdict { set_ready: None, taint_key: Some(TAINT_NOT_READY) },
        // no condition yet, or Unknown written by us earlier while the lease is fresh again: wait for kubelet
        _ => Verdict { set_ready: None, taint_key: Some(TAINT_NOT_READY) },
    }
}

/// The node's taints with lifecycle taints replaced by those for `key` (None: removed). Keeps timeAdded of
/// taints that stay, so eviction deadlines don't move.
pub fn desired_taints(current: &[Taint], key: Option<&str>, now: DateTime<Utc>) -> Vec<Taint> {
    let lifecycle = |k: &str| k == TAINT_NOT_READY || k == TAINT_UNREACHABLE;
    let mut out: Vec<Taint> = current.iter().filter(|t| !lifecycle(&t.key) || Some(t.key.as_str()) == key).cloned().collect();
    if let Some(k) = key {
        for effect in ["NoSchedule", "NoExecute"] {
            if !out.iter().any(|t| t.key == k && t.effect == effect) {
                out.push(Taint {
                    key: k.into(),
                    effect: effect.into(),
                    value: None,
                    time_added: if effect == "NoExecute" { Some(rkube_apimachinery::time::from_chrono(now)) } else { None },
                });
            }
        }
    }
    out
}

/// Upstream's TaintNodesByCondition: a node condition that is True and the NoSchedule taint it brings.
pub const CONDITION_TAINTS: [(&str, &str); 3] = [
    ("MemoryPressure", "node.kubernetes.io/memory-pressure"),
    ("DiskPressure", "node.kubernetes.io/disk-pressure"),
    ("PIDPressure", "node.kubernetes.io/pid-pressure"),
];

/// `taints` with a NoSchedule taint for each pressure condition the node reports True, and without those
/// of conditions that are not (any more).
pub fn with_condition_taints(mut taints: Vec<Taint>, conditions: &[NodeCondition]) -> Vec<Taint> {
    for (cond, key) in CONDITION_TAINTS {
        let on = conditions.iter().any(|c| c.type_ == cond && c.status == "True");
        let has = taints.iter().any(|t| t.key == key && t.effect == "NoSchedule");
        if on && !has {
            taints.push(Taint { key: key.into(), effect: "NoSchedule".into(), value: None, time_added: None });
        } else if !on && has {
            taints.retain(|t| t.key != key);
        }
    }
    taints
}

/// When a pod on a node with these taints must be evicted: None = never, Some(t) = at t (may be past).
pub fn eviction_deadline(
    taints: &[Taint],
    tolerations: &[Toleration],
    now: DateTime<Utc>,
    cfg: &LifecycleConfig,
) -> Option<DateTime<Utc>> {
    let mut deadline: Option<DateTime<Utc>> = None;
    for taint in taints.iter().filter(|t| t.effect == "NoExecute") {
        let added = taint.time_added.as_ref().map(rkube_apimachinery::time::to_chrono).unwrap_or(now);
        let matching: Vec<&Toleration> = tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        let secs = if matching.is_empty() {
            if taint.key == TAINT_NOT_READY || taint.key == TAINT_UNREACHABLE {
                Some(cfg.default_toleration_seconds)
            } else {
                Some(0)
            }
        } else if matching.iter().any(|t| t.toleration_seconds.is_none()) {
            None
        } else {
            matching.iter().filter_map(|t| t.toleration_seconds).min()
        };
        if let Some(s) = secs {
            let at = added + Duration::seconds(s.max(0));
            deadline = Some(deadline.map_or(at, |d| d.min(at)));
        }
    }
    deadline
}

/// Allocates /24s (by default) out of the cluster CIDR; tracks which are taken.
#[derive(Debug, Clone)]
pub struct CidrAllocator {
    subnets: Vec<Ipv4Net>,
    used: HashSet<Ipv4Net>,
}

/// No subnet left.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("cluster CIDR {cidr} has no free /{mask} left for node {node}")]
pub struct CidrExhausted {
    /// The cluster CIDR.
    pub cidr: Ipv4Net,
    /// The node subnet size asked for.
    pub mask: u8,
    /// The node left without a podCIDR.
    pub node: String,
}

impl CidrAllocator {
    /// Allocator over `cidr` split into `/mask` subnets.
    pub fn new(cidr: Ipv4Net, mask: u8) -> Self {
        let subnets = cidr.subnets(mask).map(|s| s.collect()).unwrap_or_default();
        CidrAllocator { subnets, used: HashSet::new() }
    }

    /// Mark a subnet already assigned (from a node's spec.podCIDR). Returns false if outside the range.
    pub fn mark_used(&mut self, cidr: &str) -> bool {
        match cidr.parse::<Ipv4Net>() {
            Ok(n) if self.subnets.contains(&n) => self.used.insert(n),
            _ => false,
        }
    }

    /// Release a subnet (node deleted).
    pub fn release(&mut self, cidr: &str) {
        if let Ok(n) = cidr.parse::<Ipv4Net>() {
            self.used.remove(&n);
        }
    }

    /// The lowest free subnet, now marked used.
    pub fn allocate(&mut self, node: &str) -> Result<Ipv4Net, CidrExhausted> {
        let free = self.subnets.iter().find(|s| !self.used.contains(s)).copied();
        match free {
            Some(s) => {
                self.used.insert(s);
                Ok(s)
            }
            None => Err(CidrExhausted {
                cidr: self.subnets.first().map(|s| s.supernet().unwrap_or(*s)).unwrap_or_default(),
                mask: self.subnets.first().map_or(0, |s| s.prefix_len()),
                node: node.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).expect("ts")
    }

    #[test]
    fn verdict_table() {
        let cfg = LifecycleConfig::default();
        let now = t0() + Duration::seconds(100);
        let fresh = Some(now - Duration::seconds(10));
        let stale = Some(now - Duration::seconds(51));
        assert_eq!(node_verdict(Some("True"), fresh, t0(), now, &cfg), Verdict { set_ready: None, taint_key: None });
        assert_eq!(node_verdict(Some("False"), fresh, t0(), now, &cfg).taint_key, Some(TAINT_NOT_READY));
        // 45 s without a renewal is within upstream's 50 s default (it was not within the pre-1.32 40 s)
        assert_eq!(node_verdict(Some("True"), Some(now - Duration::seconds(45)), t0(), now, &cfg).taint_key, None);
        let lost = node_verdict(Some("True"), stale, t0(), now, &cfg);
        assert_eq!(lost.taint_key, Some(TAINT_UNREACHABLE));
        assert_eq!(lost.set_ready.map(|s| s.0), Some("Unknown"));
        // already Unknown: no rewrite
        assert_eq!(node_verdict(Some("Unknown"), stale, t0(), now, &cfg).set_ready, None);
        // never renewed: counted from creation
        assert_eq!(node_verdict(None, None, t0(), now, &cfg).taint_key, Some(TAINT_UNREACHABLE));
    }

    #[test]
    fn taints_are_replaced_and_keep_time_added() {
        let now = t0();
        let with_unreach = desired_taints(&[], Some(TAINT_UNREACHABLE), now);
        assert_eq!(with_unreach.len(), 2);
        let later = desired_taints(&with_unreach, Some(TAINT_UNREACHABLE), now + Duration::seconds(60));
        assert_eq!(later, with_unreach);
        let other = Taint { key: "dedicated".into(), effect: "NoSchedule".into(), value: None, time_added: None };
        let healed = desired_taints(&[with_unreach, vec![other.clone()]].concat(), None, now);
        assert_eq!(healed, vec![other]);
    }

    #[test]
    fn pressure_conditions_bring_and_take_their_no_schedule_taints() {
        let cond = |t: &str, s: &str| NodeCondition { type_: t.into(), status: s.into(), ..Default::default() };
        let other = Taint { key: "dedicated".into(), effect: "NoSchedule".into(), value: Some("x".into()), time_added: None };
        let on = with_condition_taints(vec![other.clone()], &[cond("MemoryPressure", "True"), cond("DiskPressure", "False")]);
        assert_eq!(on.iter().map(|t| (t.key.as_str(), t.effect.as_str())).collect::<Vec<_>>(), vec![
            ("dedicated", "NoSchedule"),
            ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ]);
        assert_eq!(with_condition_taints(on.clone(), &[cond("MemoryPressure", "True")]), on, "stable");
        assert_eq!(with_condition_taints(on, &[cond("MemoryPressure", "False")]), vec![other], "cleared with the condition");
    }

    #[test]
    fn eviction_deadlines_follow_toleration_seconds() {
        let cfg = LifecycleConfig::default();
        let taints = desired_taints(&[], Some(TAINT_UNREACHABLE), t0());
        // default 300 s
        assert_eq!(eviction_deadline(&taints, &[], t0(), &cfg), Some(t0() + Duration::seconds(300)));
        let tol = |secs: Option<i64>| Toleration {
            key: Some(TAINT_UNREACHABLE.into()),
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            toleration_seconds: secs,
            value: None,
        };
        assert_eq!(eviction_deadline(&taints, &[tol(Some(5))], t0(), &cfg), Some(t0() + Duration::seconds(5)));
        assert_eq!(eviction_deadline(&taints, &[tol(None)], t0(), &cfg), None);
        // an arbitrary NoExecute taint without toleration evicts at once
        let custom = vec![Taint { key: "x".into(), effect: "NoExecute".into(), value: None, time_added: None }];
        assert_eq!(eviction_deadline(&custom, &[], t0(), &cfg), Some(t0()));
        assert_eq!(eviction_deadline(&[], &[], t0(), &cfg), None);
    }

    #[test]
    fn cidr_allocator_hands_out_distinct_24s() {
        let cfg = LifecycleConfig::default();
        let mut a = CidrAllocator::new(cfg.cluster_cidr, 24);
        assert!(a.mark_used("10.244.0.0/24"));
        assert_eq!(a.allocate("n1").map(|n| n.to_string()), Ok("10.244.1.0/24".into()));
        assert_eq!(a.allocate("n2").map(|n| n.to_string()), Ok("10.244.2.0/24".into()));
        a.release("10.244.1.0/24");
        assert_eq!(a.allocate("n3").map(|n| n.to_string()), Ok("10.244.1.0/24".into()));
        let mut tiny = CidrAllocator::new("10.0.0.0/23".parse().expect("net"), 24);
        assert!(tiny.allocate("a").is_ok() && tiny.allocate("b").is_ok());
        assert!(tiny.allocate("c").is_err());
    }
}

// ---------------------------------------------------------------------------------------------------------
// kube-rs wiring
// ---------------------------------------------------------------------------------------------------------

use std::sync::{Arc, Mutex};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::DeleteParams;
use kube::runtime::controller::Action as Requeue;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::context::{delete_quiet, merge_patch, merge_patch_status, ReconcileError, Shared};
use rkube_apimachinery::time::{from_chrono, to_chrono};

/// The namespace kubelets renew their Leases in.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// Node lifecycle controller state.
pub struct LifecycleCtx {
    /// The client, configuration and caches every controller shares.
    pub shared: Arc<Shared>,
    /// The cache of Nodes.
    pub nodes: Store<Node>,
    /// The cache of node Leases in [`LEASE_NAMESPACE`]: a node's heartbeat.
    pub leases: Store<Lease>,
    /// The podCIDR allocator, built from the Nodes on first use.
    pub cidrs: Mutex<Option<CidrAllocator>>,
}

/// Reconcile one Node: podCIDR, Ready condition from the Lease, lifecycle taints, evictions.
pub async fn reconcile(node: Arc<Node>, ctx: Arc<LifecycleCtx>) -> Result<Requeue, ReconcileError> {
    let shared = &ctx.shared;
    let cfg = &shared.config.lifecycle;
    let name = node.name_any();
    let api: Api<Node> = Api::all(shared.client.clone());
    let now = Utc::now();
    // 1. podCIDR
    let has_cidr = node.spec.as_ref().and_then(|s| s.pod_cidr.as_ref()).is_some_and(|c| !c.is_empty());
    if !has_cidr {
        let cidr = {
            let mut guard = ctx.cidrs.lock().map_err(|_| ReconcileError::Invalid { what: format!("node {name}"), problem: "cidr allocator poisoned".into() })?;
            let alloc = guard.get_or_insert_with(|| CidrAllocator::new(cfg.cluster_cidr, cfg.node_mask));
            for n in ctx.nodes.state() {
                if let Some(c) = n.spec.as_ref().and_then(|s| s.pod_cidr.as_ref()) {
                    alloc.mark_used(c);
                }
            }
            // a full range leaves this node without a podCIDR (upstream's CIDRNotAvailable), not without the rest
            // of its lifecycle: readiness, taints and evictions below still run (e.g. `rkube up`, whose range is
            // its one node's --pod-cidr, with a second Node registered by hand)
            alloc.allocate(&name).map_err(|e| tracing::warn!(node = %name, error = %e, "no podCIDR for the node (CIDRNotAvailable)")).ok()
        };
        if let Some(cidr) = cidr {
            merge_patch(&api, &name, &shared.config.manager, json!({"spec": {"podCIDR": cidr.to_string(), "podCIDRs": [cidr.to_string()]}}))
                .await
                .map_err(ReconcileError::api(format!("assign podCIDR {cidr} to node {name}")))?;
            tracing::info!(node = %name, cidr = %cidr, "assigned podCIDR");
        }
    }
    // 2. readiness from the lease
    let lease = ctx.leases.get(&ObjectRef::new(&name).within(LEASE_NAMESPACE));
    let renewed = lease.as_ref().and_then(|l| l.spec.as_ref()).and_then(|s| s.renew_time.as_ref()).map(|t| {
        let micro = &t.0;
        chrono::DateTime::from_timestamp(micro.as_second(), micro.subsec_nanosecond().max(0) as u32).unwrap_or(now)
    });
    let conds = node.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
    let ready = conds.iter().find(|c| c.type_ == "Ready");
    let created = node.metadata.creation_timestamp.as_ref().map(to_chrono).unwrap_or(now);
    let verdict = node_verdict(ready.map(|c| c.status.as_str()), renewed, created, now, cfg);
    if let Some((status, reason, message)) = verdict.set_ready {
        let ts = from_chrono(now);
        let mut new_conds: Vec<serde_json::Value> = conds
            .iter()
            .map(|c| {
                let mut v = serde_json::to_value(c).unwrap_or_default();
                // every kubelet-owned condition is unknown now
                v["status"] = json!(status);
                v["reason"] = json!(reason);
                v["message"] = json!(message);
                v["lastTransitionTime"] = json!(ts);
                v
            })
            .collect();
        if ready.is_none() {
            new_conds.push(json!({"type": "Ready", "status": status, "reason": reason, "message": message, "lastTransitionTime": ts, "lastHeartbeatTime": ts}));
        }
        merge_patch_status(&api, &name, json!({"status": {"conditions": new_conds}}))
            .await
            .map_err(ReconcileError::api(format!("mark node {name} {status}")))?;
        tracing::warn!(node = %name, "node stopped renewing its lease: Ready=Unknown");
    }
    let current = node.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
    let want = with_condition_taints(desired_taints(&current, verdict.taint_key, now), &conds);
    if want != current {
        merge_patch(&api, &name, &shared.config.manager, json!({"spec": {"taints": want}}))
            .await
            .map_err(ReconcileError::api(format!("update taints of node {name}")))?;
        tracing::info!(node = %name, taint = ?verdict.taint_key, "node lifecycle taints updated");
    }
    // 3. evictions
    let mut next = shared.config.node_monitor_period;
    if want.iter().any(|t| t.effect == "NoExecute") {
        let pods: Vec<Arc<Pod>> = shared
            .pods
            .state()
            .into_iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name.as_str()))
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        for p in pods {
            let tolerations = p.spec.as_ref().and_then(|s| s.tolerations.clone()).unwrap_or_default();
            let Some(deadline) = eviction_deadline(&want, &tolerations, now, cfg) else { continue };
            if deadline <= now {
                let ns = p.namespace().unwrap_or_else(|| "default".into());
                let papi: Api<Pod> = Api::namespaced(shared.client.clone(), &ns);
                delete_quiet(&papi, &p.name_any(), &DeleteParams::default())
                    .await
                    .map_err(ReconcileError::api(format!("evict pod {ns}/{} from node {name}", p.name_any())))?;
                tracing::warn!(node = %name, pod = %p.name_any(), "evicted pod from tainted node");
            } else if let Ok(d) = (deadline - now).to_std() {
                next = next.min(d);
            }
        }
    }
    Ok(Requeue::requeue(next))
}

/// Map a Lease event to its Node.
pub fn lease_to_node(lease: Lease) -> Option<ObjectRef<Node>> {
    Some(ObjectRef::new(&lease.name_any()))
}
