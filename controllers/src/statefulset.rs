//! StatefulSet controller: pods with stable names `<set>-<ordinal>`, created in order (OrderedReady: each
//! only once all lower ordinals are Running and Ready) or all at once (Parallel), removed from the highest
//! ordinal down, and rolled to a new template one ordinal at a time from the top (respecting `partition`).
//!
//! [`step`] is the pure decision; the template revision is the `controller-revision-hash` label.

/// Label carrying the template revision a pod was created from.
pub const REVISION_LABEL: &str = "controller-revision-hash";
/// Label with the pod's own name (Kubernetes sets it for per-pod Services).
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// Label with the pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// What the step needs of one existing pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetPod {
    pub ordinal: i32,
    pub revision: String,
    pub running_ready: bool,
    pub failed: bool,
    pub terminating: bool,
}

/// One thing to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SsAction {
    /// Create the pod for this ordinal at the update revision.
    Create(i32),
    /// Delete the pod with this ordinal (scale down, failed pod, or update).
    Delete(i32),
}

/// Pod name for an ordinal.
pub fn pod_name(set: &str, ordinal: i32) -> String {
    format!("{set}-{ordinal}")
}

/// Ordinal from a pod name of this set, if it is one.
pub fn ordinal_of(set: &str, pod: &str) -> Option<i32> {
    pod.strip_prefix(set)?.strip_prefix('-')?.parse().ok().filter(|o: &i32| *o >= 0)
}

/// Decide the next actions. `start` is `spec.ordinals.start` (0 by default).
pub fn step(
    replicas: i32,
    start: i32,
    parallel: bool,
    update_revision: &str,
    partition: i32,
    pods: &[SetPod],
) -> Vec<SsAction> {
    let mut actions = Vec::new();
    let end = start + replicas.max(0); // exclusive
    let mut by_ord: std::collections::BTreeMap<i32, &SetPod> = std::collections::BTreeMap::new();
    for p in pods {
        by_ord.insert(p.ordinal, p);
    }
    // failed pods are deleted and recreated
    for p in by_ord.values() {
        if p.failed && !p.terminating {
            actions.push(SsAction::Delete(p.ordinal));
        }
    }
    if !actions.is_empty() && !parallel {
        return actions;
    }
    // creation in ordinal order
    for ord in start..end {
        match by_ord.get(&ord) {
            None => {
                actions.push(SsAction::Create(ord));
                if !parallel {
                    return actions;
                }
            }
            Some(p) => {
                if !parallel && (p.terminating || !p.running_ready || p.failed) {
                    // OrderedReady: wait for this ordinal before touching the next
                    return actions;
                }
            }
        }
    }
    // scale down from the highest ordinal
    let excess: Vec<&SetPod> = by_ord.values().rev().filter(|p| p.ordinal >= end || p.ordinal < start).copied().collect();
    if !excess.is_empty() {
        if parallel {
            actions.extend(excess.iter().filter(|p| !p.terminating).map(|p| SsAction::Delete(p.ordinal)));
        } else {
            let all_ready = by_ord.values().all(|p| p.running_ready && !p.terminating);
            if all_ready {
                actions.push(SsAction::Delete(excess[0].ordinal));
            }
        }
        return actions;
    }
    // rolling update: highest ordinal first, one at a time, only when every pod is running and ready
    if !actions.is_empty() {
        return actions;
    }
    let all_ready = (start..end).all(|o| by_ord.get(&o).is_some_and(|p| p.running_ready && !p.terminating));
    if !all_ready {
        return actions;
    }
    for ord in (start..end).rev() {
        if ord < start + partition.max(0) {
            break;
        }
        if let Some(p) = by_ord.get(&ord) {
            if p.revision != update_revision {
                actions.push(SsAction::Delete(ord));
                break;
            }
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(ordinal: i32, rev: &str, ready: bool) -> SetPod {
        SetPod { ordinal, revision: rev.into(), running_ready: ready, failed: false, terminating: false }
    }

    #[test]
    fn names_and_ordinals() {
        assert_eq!(pod_name("web", 2), "web-2");
        assert_eq!(ordinal_of("web", "web-2"), Some(2));
        assert_eq!(ordinal_of("web", "web-x"), None);
        assert_eq!(ordinal_of("web", "webby-1"), None);
    }

    #[test]
    fn step_table() {
        use SsAction::*;
        let cases: Vec<(&str, i32, bool, i32, Vec<SetPod>, Vec<SsAction>)> = vec![
            ("ordered: first pod", 3, false, 0, vec![], vec![Create(0)]),
            ("ordered: waits for web-0 ready", 3, false, 0, vec![sp(0, "r1", false)], vec![]),
            ("ordered: next when ready", 3, false, 0, vec![sp(0, "r1", true)], vec![Create(1)]),
            ("parallel: all at once", 3, true, 0, vec![], vec![Create(0), Create(1), Create(2)]),
            ("ordered: scale down highest first", 1, false, 0, vec![sp(0, "r1", true), sp(1, "r1", true), sp(2, "r1", true)], vec![Delete(2)]),
            ("parallel: scale down all excess", 1, true, 0, vec![sp(0, "r1", true), sp(1, "r1", true), sp(2, "r1", true)], vec![Delete(2), Delete(1)]),
            ("update: highest ordinal first", 3, false, 0, vec![sp(0, "r1", true), sp(1, "r1", true), sp(2, "r1", true)], vec![Delete(2)]),
            ("update: next lower after top updated", 3, false, 0, vec![sp(0, "r1", true), sp(1, "r1", true), sp(2, "r2", true)], vec![Delete(1)]),
            ("update: waits while a pod is not ready", 3, false, 0, vec![sp(0, "r1", true), sp(1, "r1", true), sp(2, "r2", false)], vec![]),
            ("update: partition keeps lower ordinals", 3, false, 2, vec![sp(0, "r1", true), sp(1, "r1", true), sp(2, "r2", true)], vec![]),
        ];
        for (what, replicas, parallel, partition, pods, want) in cases {
            assert_eq!(step(replicas, 0, parallel, "r2", partition, &pods), want, "{what}");
        }
        let failed = SetPod { failed: true, ..sp(1, "r2", false) };
        assert_eq!(step(3, 0, false, "r2", 0, &[sp(0, "r2", true), failed]), vec![SsAction::Delete(1)]);
    }
}
