//! The sync loop's decisions, without I/O: [`PodSync::step`] turns one event of the pod watch (the pods the API
//! binds to this node) into what the kubelet must do: send a pod to its worker (starting one if none runs), or,
//! once the initial list is complete, tear down the pods left on disk that the API no longer has
//! ([`orphans`]). The kubelet (`kubelet.rs`) carries the decisions out: workers, the disk, the API.

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher;

/// What the kubelet must do after one watch event.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Decision {
    /// Send `pod` (a new version, or marked for deletion) to the worker of `uid`, starting one if none runs.
    Dispatch { uid: String, pod: Pod },
    /// The API's list is complete and holds the pods `known`: pods on disk not among them (nor static) are
    /// torn down.
    AdoptOrphans { known: Vec<String> },
}

/// The sync loop's state between watch events: this node's name and the pods of the list in progress.
pub(crate) struct PodSync {
    node: String,
    listed: Vec<String>,
}

impl PodSync {
    /// A sync loop for node `node`.
    pub(crate) fn new(node: &str) -> PodSync {
        PodSync { node: node.to_string(), listed: Vec::new() }
    }

    /// What to do with watch event `ev`, seen at `now`. Mirror pods (the API's copies of static pods) and pods
    /// bound to another node are ignored (the watch's field selector already keeps the latter out); a pod gone
    /// from the API without the kubelet's finalization (a force delete) is stopped at once (grace 0).
    pub(crate) fn step(&mut self, ev: watcher::Event<Pod>, now: DateTime<Utc>) -> Vec<Decision> {
        match ev {
            watcher::Event::Init => {
                self.listed.clear();
                vec![]
            }
            watcher::Event::InitApply(p) | watcher::Event::Apply(p) => {
                let Some(uid) = self.ours(&p) else { return vec![] };
                self.listed.push(uid.clone());
                vec![Decision::Dispatch { uid, pod: p }]
            }
            watcher::Event::Delete(mut p) => {
                let Some(uid) = self.ours(&p) else { return vec![] };
                if p.metadata.deletion_timestamp.is_none() {
                    mark_deleted(&mut p, now, 0);
                }
                vec![Decision::Dispatch { uid, pod: p }]
            }
            watcher::Event::InitDone => vec![Decision::AdoptOrphans { known: self.listed.clone() }],
        }
    }

    /// The uid of `pod` if this node runs it from the API: bound here, not a mirror pod.
    fn ours(&self, pod: &Pod) -> Option<String> {
        let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
        if crate::static_pods::is_mirror(pod) || node != Some(self.node.as_str()) {
            return None;
        }
        pod.metadata.uid.clone()
    }
}

/// The pods recorded on disk (`(uid, pod.json)`) that are not in `known`, each marked deleted at `now` with
/// grace 0, for their workers to tear down.
pub(crate) fn orphans(known: &[String], on_disk: Vec<(String, Pod)>, now: DateTime<Utc>) -> Vec<(String, Pod)> {
    on_disk
        .into_iter()
        .filter(|(uid, _)| !known.contains(uid))
        .map(|(uid, mut pod)| {
            mark_deleted(&mut pod, now, 0);
            (uid, pod)
        })
        .collect()
}

/// Marks `pod` deleted at `now` with `grace` seconds to stop.
pub(crate) fn mark_deleted(pod: &mut Pod, now: DateTime<Utc>, grace: i64) {
    pod.metadata.deletion_timestamp = Some(crate::time::to_k8s(now));
    pod.metadata.deletion_grace_period_seconds = Some(grace);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::pod::lifecycle::tests::t;

    /// A one-container pod `name` with uid `uid`, bound to `node`.
    pub(crate) fn bound(name: &str, uid: &str, node: &str) -> Pod {
        let mut p = crate::pod::lifecycle::tests::pod("Always", &[], &["app"]);
        p.metadata.name = Some(name.into());
        p.metadata.uid = Some(uid.into());
        p.spec.as_mut().expect("spec").node_name = Some(node.into());
        p
    }

    fn mirror(p: Pod) -> Pod {
        let mut p = p;
        p.metadata.annotations = Some([(crate::static_pods::MIRROR_ANNOTATION.to_string(), "x".to_string())].into());
        p
    }

    fn deleted(p: Pod, at: i64, grace: i64) -> Pod {
        let mut p = p;
        mark_deleted(&mut p, t(at), grace);
        p
    }

    fn dispatch(p: &Pod) -> Decision {
        Decision::Dispatch { uid: p.metadata.uid.clone().expect("uid"), pod: p.clone() }
    }

    /// Each watch event on its own, from a fresh loop of node n1.
    #[test]
    fn each_event_decides() {
        let a = bound("a", "ua", "n1");
        let mut changed = a.clone();
        changed.spec.as_mut().expect("spec").containers[0].image = Some("busybox:2".into());
        let cases: Vec<(&str, watcher::Event<Pod>, Vec<Decision>)> = vec![
            ("a new pod bound here starts (or reaches) its worker", watcher::Event::Apply(a.clone()), vec![dispatch(&a)]),
            ("a listed pod too", watcher::Event::InitApply(a.clone()), vec![dispatch(&a)]),
            // the worker decides what it can apply: the loop passes every version on unchanged
            ("a changed spec goes to the worker as it is", watcher::Event::Apply(changed.clone()), vec![dispatch(&changed)]),
            ("a pod bound to another node is ignored", watcher::Event::Apply(bound("b", "ub", "n2")), vec![]),
            ("its deletion too", watcher::Event::Delete(bound("b", "ub", "n2")), vec![]),
            (
                "a pod not yet bound is ignored",
                watcher::Event::Apply({
                    let mut p = a.clone();
                    p.spec.as_mut().expect("spec").node_name = None;
                    p
                }),
                vec![],
            ),
            ("a mirror pod is ignored (its static pod runs from the file)", watcher::Event::Apply(mirror(a.clone())), vec![]),
            ("its deletion too", watcher::Event::Delete(mirror(a.clone())), vec![]),
            (
                "a pod without uid is ignored",
                watcher::Event::Apply({
                    let mut p = a.clone();
                    p.metadata.uid = None;
                    p
                }),
                vec![],
            ),
            ("a force-deleted pod stops now, grace 0", watcher::Event::Delete(a.clone()), vec![dispatch(&deleted(a.clone(), 5, 0))]),
            (
                "a pod deleted after its grace keeps its deletion",
                watcher::Event::Delete(deleted(a.clone(), 1, 30)),
                vec![dispatch(&deleted(a.clone(), 1, 30))],
            ),
            ("a relist starts", watcher::Event::Init, vec![]),
            (
                "an empty list is complete: every pod on disk is an orphan",
                watcher::Event::InitDone,
                vec![Decision::AdoptOrphans { known: vec![] }],
            ),
        ];
        for (what, ev, want) in cases {
            assert_eq!(PodSync::new("n1").step(ev, t(5)), want, "{what}");
        }
    }

    /// A list, a watch, and a relist: orphans are judged against the latest complete list only.
    #[test]
    fn orphans_are_judged_against_the_latest_list() {
        let (a, b, c) = (bound("a", "ua", "n1"), bound("b", "ub", "n1"), bound("c", "uc", "n1"));
        let mut s = PodSync::new("n1");
        assert_eq!(s.step(watcher::Event::Init, t(0)), vec![]);
        assert_eq!(s.step(watcher::Event::InitApply(a.clone()), t(0)), vec![dispatch(&a)]);
        assert_eq!(s.step(watcher::Event::InitApply(bound("x", "ux", "n2")), t(0)), vec![]);
        assert_eq!(s.step(watcher::Event::InitApply(b.clone()), t(0)), vec![dispatch(&b)]);
        assert_eq!(s.step(watcher::Event::InitDone, t(0)), vec![Decision::AdoptOrphans { known: vec!["ua".into(), "ub".into()] }]);
        assert_eq!(s.step(watcher::Event::Apply(c.clone()), t(1)), vec![dispatch(&c)]);
        // the watch expired: a new list, where b is gone
        assert_eq!(s.step(watcher::Event::Init, t(2)), vec![]);
        assert_eq!(s.step(watcher::Event::InitApply(c.clone()), t(2)), vec![dispatch(&c)]);
        assert_eq!(s.step(watcher::Event::InitApply(a.clone()), t(2)), vec![dispatch(&a)]);
        assert_eq!(s.step(watcher::Event::InitDone, t(2)), vec![Decision::AdoptOrphans { known: vec!["uc".into(), "ua".into()] }]);
    }

    #[test]
    fn pods_on_disk_the_api_lacks_are_torn_down_at_once() {
        let on_disk = vec![("ua".to_string(), bound("a", "ua", "n1")), ("ub".to_string(), bound("b", "ub", "n1"))];
        let got = orphans(&["ua".to_string(), "static".to_string()], on_disk, t(7));
        assert_eq!(got, vec![("ub".to_string(), deleted(bound("b", "ub", "n1"), 7, 0))]);
        assert_eq!(orphans(&[], vec![], t(7)), vec![]);
    }
}
