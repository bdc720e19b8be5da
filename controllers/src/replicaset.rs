//! ReplicaSet and ReplicationController: keep `replicas` pods matching the selector alive.
//!
//! The decision is the pure [`step`]: given the owner, its selector and the pods in its namespace it returns
//! adopt/release/create/delete actions. Both kinds share it; they differ only in the selector (set-based vs
//! equality). [`Expectations`] stop a second reconcile from creating again before the watch cache has seen
//! the pods the first one created. The kube-rs wiring lives in `reconcile` below and in `controllers::run_all`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Pod;

use crate::util::owner::controller_ref;
use crate::util::pod as podutil;

/// Most pods one reconcile creates or deletes (kube-controller-manager's burstReplicas).
pub const BURST: usize = 500;

/// What a ReplicaSet/RC reconcile must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Set our controller reference on an orphan that matches the selector.
    Adopt(String),
    /// Drop our controller reference from a pod that no longer matches.
    Release(String),
    /// Create this many pods from the template.
    Create(usize),
    /// Delete these pods (best candidates first).
    Delete(Vec<String>),
}

/// The owner as `step` needs it.
pub struct Owner<'a> {
    pub uid: &'a str,
    pub replicas: i32,
    pub deleting: bool,
    pub matches: &'a dyn Fn(Option<&BTreeMap<String, String>>) -> bool,
}

fn name(p: &Pod) -> String {
    p.metadata.name.clone().unwrap_or_default()
}

/// Rank for deletion: lower sorts first = deleted first. Unscheduled < scheduled, Pending < Unknown < Running,
/// not ready < ready, ready for less time first, more restarts first, newer first (Kubernetes' ActivePods order).
fn deletion_rank(p: &Pod) -> (u8, u8, u8, i64, i64, i64) {
    let scheduled = p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some_and(|n| !n.is_empty());
    let phase = match podutil::phase(p) {
        "Pending" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 3,
    };
    let ready_since = podutil::ready_since(p);
    let ready = u8::from(ready_since.is_some());
    let ready_ts = ready_since.flatten().map_or(0, |t| -t.timestamp());
    let restarts: i64 = p
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map_or(0, |cs| cs.iter().map(|c| i64::from(c.restart_count)).sum());
    let created = p.metadata.creation_timestamp.as_ref().map_or(0, |t| crate::util::time::to_chrono(t).timestamp());
    (u8::from(scheduled), phase, ready, ready_ts, -restarts, -created)
}

/// Decide the actions for one owner over the pods in its namespace.
pub fn step(owner: &Owner<'_>, pods: &[&Pod]) -> Vec<Action> {
    let mut actions = Vec::new();
    let mut owned: Vec<&Pod> = Vec::new();
    for p in pods {
        match controller_ref(&p.metadata) {
            Some(r) if r.uid == owner.uid => {
                if (owner.matches)(p.metadata.labels.as_ref()) {
                    owned.push(p);
                } else if p.metadata.deletion_timestamp.is_none() {
                    actions.push(Action::Release(name(p)));
                }
            }
            Some(_) => {}
            None => {
                if !owner.deleting
                    && p.metadata.deletion_timestamp.is_none()
                    && podutil::is_active(p)
                    && (owner.matches)(p.metadata.labels.as_ref())
                {
                    actions.push(Action::Adopt(name(p)));
                    owned.push(p);
                }
            }
        }
    }
    if owner.deleting {
        return actions;
    }
    let mut active: Vec<&Pod> = owned.into_iter().filter(|p| podutil::is_active(p)).collect();
    let want = owner.replicas.max(0) as usize;
    if active.len() < want {
        actions.push(Action::Create((want - active.len()).min(BURST)));
    } else if active.len() > want {
        active.sort_by_key(|p| deletion_rank(p));
        let n = (active.len() - want).min(BURST);
        actions.push(Action::Delete(active[..n].iter().map(|p| name(p)).collect()));
    }
    actions
}

/// Replica counts for `.status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub replicas: i32,
    pub fully_labeled: i32,
    pub ready: i32,
    pub available: i32,
}

/// Count active owned pods (after `step`'s adoptions are applied).
pub fn counts(
    owner_uid: &str,
    template_labels: &BTreeMap<String, String>,
    min_ready_seconds: i32,
    pods: &[&Pod],
    now: DateTime<Utc>,
) -> Counts {
    let mut c = Counts::default();
    for p in pods {
        if !controller_ref(&p.metadata).is_some_and(|r| r.uid == owner_uid) || !podutil::is_active(p) {
            continue;
        }
        c.replicas += 1;
        let labels = p.metadata.labels.clone().unwrap_or_default();
        if template_labels.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            c.fully_labeled += 1;
        }
        if podutil::is_ready(p) {
            c.ready += 1;
        }
        if podutil::is_available(p, min_ready_seconds, now) {
            c.available += 1;
        }
    }
    c
}

/// Creations and deletions a reconcile issued and the watch has not shown yet, per owner key. While an
/// owner has outstanding expectations it must not create or delete again (it would double up).
#[derive(Debug, Default)]
pub struct Expectations {
    pending: HashMap<String, Pending>,
}

#[derive(Debug)]
struct Pending {
    creates: HashSet<String>,
    deletes: HashSet<String>,
    since: Instant,
}

/// How long expectations are trusted before a reconcile acts anyway (lost watch event, failed create).
pub const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(60);

impl Expectations {
    /// Remember the pod names just created and deleted for `key`.
    pub fn expect(&mut self, key: &str, creates: impl IntoIterator<Item = String>, deletes: impl IntoIterator<Item = String>) {
        let e = self.pending.entry(key.to_string()).or_insert_with(|| Pending {
            creates: HashSet::new(),
            deletes: HashSet::new(),
            since: Instant::now(),
        });
        e.creates.extend(creates);
        e.deletes.extend(deletes);
        e.since = Instant::now();
    }

    /// Whether the cache now reflects everything expected for `key`: every created name present and every
    /// deleted name gone or terminating. `present(name)` answers (exists, terminating) from the cache.
    pub fn satisfied(&mut self, key: &str, present: impl Fn(&str) -> (bool, bool)) -> bool {
        let Some(e) = self.pending.get_mut(key) else { return true };
        e.creates.retain(|n| !present(n).0);
        e.deletes.retain(|n| {
            let (exists, terminating) = present(n);
            exists && !terminating
        });
        let done = (e.creates.is_empty() && e.deletes.is_empty()) || e.since.elapsed() > EXPECTATIONS_TIMEOUT;
        if done {
            self.pending.remove(key);
        }
        done
    }

    /// A create that failed will never show up: stop waiting for it.
    pub fn creation_failed(&mut self, key: &str, name: &str) {
        if let Some(e) = self.pending.get_mut(key) {
            e.creates.remove(name);
        }
    }

    /// Drop everything for a deleted owner.
    pub fn forget(&mut self, key: &str) {
        self.pending.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    fn pod(name: &str, owner: Option<&str>, app: &str, node: Option<&str>, ready: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some([("app".to_string(), app.to_string())].into()),
                owner_references: owner.map(|o| {
                    vec![OwnerReference {
                        api_version: "apps/v1".into(),
                        kind: "ReplicaSet".into(),
                        name: "rs".into(),
                        uid: o.into(),
                        controller: Some(true),
                        block_owner_deletion: Some(true),
                    }]
                }),
                ..Default::default()
            },
            spec: Some(PodSpec { node_name: node.map(String::from), ..Default::default() }),
            status: Some(PodStatus {
                phase: Some(if node.is_some() { "Running" } else { "Pending" }.into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    fn web(labels: Option<&BTreeMap<String, String>>) -> bool {
        labels.and_then(|l| l.get("app")).is_some_and(|v| v == "web")
    }

    #[test]
    fn step_table() {
        let owned_ready = pod("a", Some("u1"), "web", Some("n1"), true);
        let owned_pending = pod("b", Some("u1"), "web", None, false);
        let orphan = pod("c", None, "web", Some("n1"), true);
        let other_owner = pod("d", Some("u2"), "web", Some("n1"), true);
        let relabeled = pod("e", Some("u1"), "db", Some("n1"), true);
        let cases: Vec<(&str, i32, Vec<&Pod>, Vec<Action>)> = vec![
            ("scale up from zero", 3, vec![], vec![Action::Create(3)]),
            ("at desired", 1, vec![&owned_ready], vec![]),
            ("adopts orphan, counts it", 2, vec![&owned_ready, &orphan], vec![Action::Adopt("c".into())]),
            ("ignores other controller's pods", 1, vec![&other_owner], vec![Action::Create(1)]),
            (
                "releases relabeled pod and replaces it",
                1,
                vec![&relabeled],
                vec![Action::Release("e".into()), Action::Create(1)],
            ),
            (
                "scale down deletes unscheduled before running",
                1,
                vec![&owned_ready, &owned_pending],
                vec![Action::Delete(vec!["b".into()])],
            ),
            ("burst limit", 10_000, vec![], vec![Action::Create(BURST)]),
        ];
        for (what, replicas, pods, want) in cases {
            let owner = Owner { uid: "u1", replicas, deleting: false, matches: &web };
            assert_eq!(step(&owner, &pods), want, "{what}");
        }
    }

    #[test]
    fn deleting_owner_neither_adopts_nor_creates() {
        let orphan = pod("c", None, "web", Some("n1"), true);
        let owner = Owner { uid: "u1", replicas: 3, deleting: true, matches: &web };
        assert_eq!(step(&owner, &[&orphan]), vec![]);
    }

    #[test]
    fn counts_ready_and_available() {
        let a = pod("a", Some("u1"), "web", Some("n1"), true);
        let b = pod("b", Some("u1"), "web", None, false);
        let tl: BTreeMap<String, String> = [("app".to_string(), "web".to_string())].into();
        let c = counts("u1", &tl, 0, &[&a, &b], Utc::now());
        assert_eq!(c, Counts { replicas: 2, fully_labeled: 2, ready: 1, available: 1 });
    }

    #[test]
    fn expectations_block_until_cache_catches_up() {
        let mut e = Expectations::default();
        e.expect("ns/rs", ["p1".to_string(), "p2".to_string()], ["old".to_string()]);
        assert!(!e.satisfied("ns/rs", |n| (n == "p1" || n == "old", false)));
        assert!(!e.satisfied("ns/rs", |n| (n == "p1" || n == "p2" || n == "old", false)));
        // deletion observed as terminating counts
        assert!(e.satisfied("ns/rs", |n| (true, n == "old")));
        assert!(e.satisfied("ns/other", |_| (false, false)));
        e.expect("ns/rs", ["p3".to_string()], []);
        e.creation_failed("ns/rs", "p3");
        assert!(e.satisfied("ns/rs", |_| (false, false)));
    }
}
