//! Deployment rollout math, pure: resolving maxSurge/maxUnavailable (percentages: surge rounds up,
//! unavailable rounds down), how far the new ReplicaSet may grow and the old ones shrink in one step of a
//! RollingUpdate, the Recreate sequence, and the status numbers `kubectl get deploy` shows.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// A maxSurge/maxUnavailable value that is neither an int nor "N%".
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid {field} {value:?}: want an integer or a percentage like \"25%\"")]
pub struct RolloutError {
    /// `maxSurge` or `maxUnavailable`.
    pub field: &'static str,
    /// The value given.
    pub value: String,
}

/// What the planner needs of one ReplicaSet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RsState {
    /// The ReplicaSet's name.
    pub name: String,
    /// Its `deployment.kubernetes.io/revision` (older ones are scaled down first).
    pub revision: i64,
    /// `spec.replicas`: what it is asked to run.
    pub spec_replicas: i32,
    /// `status.replicas`: the pods it has.
    pub status_replicas: i32,
    /// Its ready pods.
    pub ready: i32,
    /// Its pods ready for minReadySeconds.
    pub available: i32,
}

fn scaled(v: Option<&IntOrString>, default: &str, total: i32, round_up: bool, field: &'static str) -> Result<i32, RolloutError> {
    let bad = |s: &str| RolloutError { field, value: s.to_string() };
    match v {
        Some(IntOrString::Int(i)) => Ok((*i).max(0)),
        Some(IntOrString::String(s)) => pct(s, total, round_up).ok_or_else(|| bad(s)),
        None => pct(default, total, round_up).ok_or_else(|| bad(default)),
    }
}

fn pct(s: &str, total: i32, round_up: bool) -> Option<i32> {
    if let Some(p) = s.strip_suffix('%') {
        let p: i64 = p.trim().parse().ok()?;
        if p < 0 {
            return None;
        }
        let num = p * i64::from(total);
        let v = if round_up { (num + 99) / 100 } else { num / 100 };
        i32::try_from(v).ok()
    } else {
        s.trim().parse::<i32>().ok().map(|v| v.max(0))
    }
}

/// (maxSurge, maxUnavailable) as pod counts for `desired` replicas. Both zero would deadlock, so
/// maxUnavailable becomes 1 then, as in Kubernetes. Defaults are 25% each.
pub fn resolve_fenceposts(
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    desired: i32,
) -> Result<(i32, i32), RolloutError> {
    let surge = scaled(max_surge, "25%", desired, true, "maxSurge")?;
    let mut unavailable = scaled(max_unavailable, "25%", desired, false, "maxUnavailable")?;
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    Ok((surge, unavailable.min(desired.max(0)).max(if surge == 0 { 1 } else { 0 })))
}

/// Replicas for the new ReplicaSet in a RollingUpdate step: grow while the total stays within
/// desired + maxSurge; shrink straight to desired when above it (scale-down of the Deployment).
pub fn new_rs_replicas(desired: i32, max_surge: i32, new: &RsState, all: &[RsState]) -> i32 {
    if new.spec_replicas > desired {
        return desired;
    }
    let max_total = desired + max_surge;
    // An old ReplicaSet scaled down still has its pods until its controller deletes them: count what its status
    // reports until then, so the new one never grows into pods that still exist (upstream counts spec alone,
    // which lets the pod count pass desired + maxSurge for a moment).
    let current: i32 = all.iter().map(|r| r.spec_replicas.max(r.status_replicas)).sum();
    if current >= max_total {
        return new.spec_replicas;
    }
    let up = (max_total - current).min(desired - new.spec_replicas);
    new.spec_replicas + up.max(0)
}

/// New spec.replicas for old ReplicaSets in a RollingUpdate step, never letting available pods drop below
/// desired - maxUnavailable. First unhealthy old pods go (they are not available anyway), then available
/// ones, oldest revision first. Returns only the ReplicaSets whose replicas change.
pub fn scale_down_old(desired: i32, max_unavailable: i32, new: &RsState, old: &[RsState]) -> Vec<(String, i32)> {
    let old_count: i32 = old.iter().map(|r| r.spec_replicas).sum();
    if old_count == 0 {
        return vec![];
    }
    let all_count = old_count + new.spec_replicas;
    let min_available = desired - max_unavailable;
    let new_unavailable = (new.spec_replicas - new.available).max(0);
    let max_scaled_down = all_count - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return vec![];
    }
    let mut olds: Vec<RsState> = old.to_vec();
    olds.sort_by_key(|r| r.revision);
    let mut changed: Vec<usize> = Vec::new();
    // 1. unhealthy replicas
    let mut cleaned = 0;
    for (i, r) in olds.iter_mut().enumerate() {
        if cleaned >= max_scaled_down {
            break;
        }
        let unhealthy = (r.spec_replicas - r.available).max(0);
        if r.spec_replicas == 0 || unhealthy == 0 {
            continue;
        }
        let down = unhealthy.min(max_scaled_down - cleaned);
        r.spec_replicas -= down;
        cleaned += down;
        changed.push(i);
    }
    // 2. available replicas, keeping min_available
    let available: i32 = olds.iter().map(|r| r.available.min(r.spec_replicas)).sum::<i32>() + new.available;
    if available > min_available {
        let total = available - min_available;
        let mut done = 0;
        for (i, r) in olds.iter_mut().enumerate() {
            if done >= total {
                break;
            }
            if r.spec_replicas == 0 {
                continue;
            }
            let down = r.spec_replicas.min(total - done);
            r.spec_replicas -= down;
            done += down;
            changed.push(i);
        }
    }
    changed.sort_unstable();
    changed.dedup();
    changed.into_iter().map(|i| (olds[i].name.clone(), olds[i].spec_replicas)).collect()
}

/// One Recreate step: scale every old ReplicaSet to 0; once no old pod is left, the new one goes to
/// `desired`. Returns (name, replicas) changes; `new` is None when the new ReplicaSet must be created first.
pub fn recreate_step(desired: i32, new: Option<&RsState>, old: &[RsState], old_pods_left: usize) -> (Vec<(String, i32)>, bool) {
    let mut changes: Vec<(String, i32)> =
        old.iter().filter(|r| r.spec_replicas != 0).map(|r| (r.name.clone(), 0)).collect();
    let old_gone = changes.is_empty() && old_pods_left == 0 && old.iter().all(|r| r.status_replicas == 0);
    let mut create_new = false;
    if old_gone {
        match new {
            Some(n) if n.spec_replicas != desired => changes.push((n.name.clone(), desired)),
            Some(_) => {}
            None => create_new = true,
        }
    }
    (changes, create_new)
}

/// The counts in Deployment status (`kubectl get deploy`: READY ready/replicas, UP-TO-DATE, AVAILABLE).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusCounts {
    /// Pods of every ReplicaSet.
    pub replicas: i32,
    /// Pods of the current template's ReplicaSet.
    pub updated: i32,
    /// Ready pods.
    pub ready: i32,
    /// Pods ready for minReadySeconds.
    pub available: i32,
    /// Desired replicas not yet available.
    pub unavailable: i32,
}

/// Sum the ReplicaSets' status into the Deployment's.
pub fn status_counts(desired: i32, new: Option<&RsState>, all: &[RsState]) -> StatusCounts {
    let replicas: i32 = all.iter().map(|r| r.status_replicas).sum();
    let available: i32 = all.iter().map(|r| r.available).sum();
    StatusCounts {
        replicas,
        updated: new.map_or(0, |n| n.status_replicas),
        ready: all.iter().map(|r| r.ready).sum(),
        available,
        unavailable: (desired - available).max(0),
    }
}

/// Rollout finished: every replica updated and available, no old pods left.
pub fn is_complete(desired: i32, c: &StatusCounts) -> bool {
    c.updated == desired && c.replicas == desired && c.available == desired
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is(s: &str) -> IntOrString {
        IntOrString::String(s.into())
    }

    #[test]
    fn fenceposts_round_like_kubernetes() {
        let cases: Vec<(Option<IntOrString>, Option<IntOrString>, i32, (i32, i32))> = vec![
            (None, None, 10, (3, 2)),          // 25% of 10: surge 2.5 -> 3, unavailable 2.5 -> 2
            (None, None, 4, (1, 1)),
            (None, None, 1, (1, 0)),          // 0.25 -> surge 1, unavailable 0
            (Some(IntOrString::Int(0)), Some(IntOrString::Int(0)), 3, (0, 1)), // both zero -> unavailable 1
            (Some(is("50%")), Some(is("0%")), 3, (2, 0)),
            (Some(IntOrString::Int(2)), Some(is("34%")), 3, (2, 1)),
            (Some(is("100%")), Some(is("100%")), 5, (5, 5)),
        ];
        for (s, u, d, want) in cases {
            assert_eq!(resolve_fenceposts(s.as_ref(), u.as_ref(), d), Ok(want), "surge {s:?} unavail {u:?} desired {d}");
        }
        assert!(resolve_fenceposts(Some(&is("abc")), None, 3).is_err());
    }

    fn rs(name: &str, rev: i64, spec: i32, available: i32) -> RsState {
        RsState { name: name.into(), revision: rev, spec_replicas: spec, status_replicas: spec, ready: available, available }
    }

    #[test]
    fn new_rs_grows_within_surge() {
        let new = rs("new", 2, 0, 0);
        let old = rs("old", 1, 3, 3);
        assert_eq!(new_rs_replicas(3, 1, &new, &[new.clone(), old.clone()]), 1);
        let new1 = rs("new", 2, 1, 0);
        assert_eq!(new_rs_replicas(3, 1, &new1, &[new1.clone(), old]), 1, "at max total, no growth");
        let alone = rs("new", 2, 5, 5);
        assert_eq!(new_rs_replicas(3, 1, &alone, &[alone.clone()]), 3, "deployment scaled down");
        let small = rs("new", 2, 1, 1);
        assert_eq!(new_rs_replicas(5, 1, &small, &[small.clone()]), 5, "scale up with no old pods");
        // the old ReplicaSet was scaled 4 -> 3 but its status still counts 4 pods: no growth yet
        let new1 = rs("new", 2, 1, 0);
        let shrinking = RsState { status_replicas: 4, ..rs("old", 1, 3, 3) };
        assert_eq!(new_rs_replicas(4, 1, &new1, &[new1.clone(), shrinking.clone()]), 1, "old pods not gone yet");
        let gone = RsState { status_replicas: 3, ..shrinking };
        assert_eq!(new_rs_replicas(4, 1, &new1, &[new1.clone(), gone]), 2, "grows once they are");
    }

    #[test]
    fn old_rs_scale_down_keeps_min_available() {
        // desired 3, maxUnavailable 0: new has 1 unavailable -> nothing can go
        assert_eq!(scale_down_old(3, 0, &rs("new", 2, 1, 0), &[rs("old", 1, 3, 3)]), vec![]);
        // new pod became available -> one old can go
        assert_eq!(scale_down_old(3, 0, &rs("new", 2, 1, 1), &[rs("old", 1, 3, 3)]), vec![("old".into(), 2)]);
        // maxUnavailable 1, nothing new yet -> one old can go right away
        assert_eq!(scale_down_old(3, 1, &rs("new", 2, 0, 0), &[rs("old", 1, 3, 3)]), vec![("old".into(), 2)]);
        // unhealthy old pods go first
        assert_eq!(
            scale_down_old(4, 1, &rs("new", 3, 1, 1), &[rs("mid", 2, 2, 2), rs("oldest", 1, 2, 0)]),
            vec![("oldest".into(), 0)]
        );
        // then available ones, oldest revision first
        assert_eq!(
            scale_down_old(4, 2, &rs("new", 3, 1, 1), &[rs("mid", 2, 2, 2), rs("oldest", 1, 2, 2)]),
            vec![("oldest".into(), 0), ("mid".into(), 1)]
        );
    }

    #[test]
    fn rolling_update_simulation_never_drops_below_min_available() {
        // simulate a 10-replica rollout with maxSurge 3 / maxUnavailable 2; pods become available one step
        // after they are created
        let (desired, surge, unavail) = (10, 3, 2);
        let mut new = rs("new", 2, 0, 0);
        let mut old = rs("old", 1, 10, 10);
        for _ in 0..50 {
            let all = [new.clone(), old.clone()];
            new.spec_replicas = new_rs_replicas(desired, surge, &new, &all);
            for (_, r) in scale_down_old(desired, unavail, &new, std::slice::from_ref(&old)) {
                old.spec_replicas = r;
                old.status_replicas = r;
                old.available = old.available.min(r);
            }
            assert!(new.available + old.available >= desired - unavail, "dropped below min available");
            assert!(new.spec_replicas + old.spec_replicas <= desired + surge, "exceeded surge");
            // pods created last step become available
            new.available = new.status_replicas;
            new.status_replicas = new.spec_replicas;
            if new.available == desired && old.spec_replicas == 0 {
                break;
            }
        }
        assert_eq!((new.available, old.spec_replicas), (10, 0));
    }

    #[test]
    fn recreate_waits_for_old_pods() {
        let old = rs("old", 1, 3, 3);
        assert_eq!(recreate_step(3, None, std::slice::from_ref(&old), 3), (vec![("old".into(), 0)], false));
        let mut drained = rs("old", 1, 0, 0);
        drained.status_replicas = 0;
        assert_eq!(recreate_step(3, None, std::slice::from_ref(&drained), 1), (vec![], false));
        assert_eq!(recreate_step(3, None, std::slice::from_ref(&drained), 0), (vec![], true));
        assert_eq!(
            recreate_step(3, Some(&rs("new", 2, 0, 0)), std::slice::from_ref(&drained), 0),
            (vec![("new".into(), 3)], false)
        );
    }

    #[test]
    fn status_counts_sum_replica_sets() {
        let new = rs("new", 2, 2, 1);
        let old = rs("old", 1, 2, 2);
        let c = status_counts(3, Some(&new), &[new.clone(), old]);
        assert_eq!(c, StatusCounts { replicas: 4, updated: 2, ready: 3, available: 3, unavailable: 0 });
        assert!(!is_complete(3, &c));
    }
}
