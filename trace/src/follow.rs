//! What `rkube trace pod NAME --follow` prints next: given the pod's merged records at each poll
//! ([`crate::timeline::merge`]), the steps not printed yet, each once, in the order the pod lived them.
//!
//! A span is recorded when it ends, after the steps inside it (the scheduler's `filtered out` and `scored` come
//! before `scheduler.schedule`; the pod's `apiserver.create` before the `controller.create` it ran in). So a step
//! whose parent span has not been recorded yet waits, and every later step with it, until the parent comes or
//! [`HOLD`] has passed since the step was first seen (a parent that never comes: a span of a client outside
//! rkube, or one recorded by a node that does not answer). The kubelet's `kubelet.pod` span lasts as long as the
//! pod: its steps do not wait for it. They wait instead, with the same [`HOLD`], for the scheduler's binding
//! once the scheduler has chosen a node: the bind span ends after its API write returns, and the kubelet may see
//! the bound pod (and record its first steps) before that.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::store::Record;

/// How long a step waits for its parent span.
pub const HOLD: Duration = Duration::from_secs(2);

/// The steps printed so far, and since when the waiting ones wait.
#[derive(Debug, Default)]
pub struct Follower {
    printed: HashSet<(String, String)>,
    waiting_since: HashMap<(String, String), Instant>,
}

fn key(r: &Record) -> (String, String) {
    (r.span_id.clone(), r.kind.clone())
}

impl Follower {
    /// A follower that has printed nothing yet.
    pub fn new() -> Follower {
        Follower::default()
    }

    /// The steps to print now, from all the records known at `now` (sorted by start, as `merge` gives them).
    /// `flush`: the pod is done (Ready, finished, failed or gone): nothing waits any more.
    pub fn next(&mut self, merged: &[Record], now: Instant, flush: bool) -> Vec<Record> {
        let spans: HashSet<&str> = merged.iter().filter(|r| r.kind == "span").map(|r| r.span_id.as_str()).collect();
        // the kubelet.pod span: the parent of the kubelet's first step; it ends only when the pod goes
        let lasting: HashSet<&str> =
            merged.iter().filter(|r| r.name == "kubelet saw the pod").map(|r| r.parent_id.as_str()).collect();
        // the scheduler chose a node and its bind span has not ended yet: the kubelet's steps come after it
        let bind_pending = merged.iter().any(|r| r.name == "scheduler.schedule" && r.attr("node").is_some())
            && !merged.iter().any(|r| r.name == "scheduler.bind");
        let mut out = Vec::new();
        for r in merged {
            let k = key(r);
            if self.printed.contains(&k) {
                continue;
            }
            let since = *self.waiting_since.entry(k.clone()).or_insert(now);
            let parent_here = (r.parent_id.is_empty() || spans.contains(r.parent_id.as_str()) || lasting.contains(r.parent_id.as_str()))
                && !(bind_pending && lasting.contains(r.parent_id.as_str()));
            if !(flush || parent_here || now.duration_since(since) >= HOLD) {
                // this step and the ones after it wait for the parent
                for later in merged.iter().skip_while(|x| key(x) != k).skip(1) {
                    self.waiting_since.entry(key(later)).or_insert(now);
                }
                break;
            }
            self.waiting_since.remove(&k);
            self.printed.insert(k);
            out.push(r.clone());
        }
        out
    }

    /// Whether a step seen is still held back (waiting for its parent span).
    pub fn holding(&self) -> bool {
        !self.waiting_since.is_empty()
    }

    /// How many steps have been printed.
    pub fn printed(&self) -> usize {
        self.printed.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(span: &str, parent: &str, kind: &str, name: &str, start: u64) -> Record {
        Record {
            trace_id: "t".into(),
            span_id: span.into(),
            parent_id: parent.into(),
            name: name.into(),
            component: "scheduler".into(),
            kind: kind.into(),
            start_unix_nanos: start,
            duration_nanos: None,
            attributes: Default::default(),
        }
    }

    fn names(v: &[Record]) -> Vec<&str> {
        v.iter().map(|r| r.name.as_str()).collect()
    }

    #[test]
    fn each_step_once_in_order_a_step_waits_for_its_span() {
        let t0 = Instant::now();
        let mut f = Follower::new();
        let create = rec("a", "", "span", "apiserver.create", 10);
        let filtered = rec("e1", "s", "event", "filtered out", 21);
        let scored = rec("e2", "s", "event", "scored", 22);
        let schedule = rec("s", "a", "span", "scheduler.schedule", 20);
        let saw = rec("e3", "k", "event", "kubelet saw the pod", 30);
        let sandbox = rec("e4", "k", "event", "sandbox ready", 31);

        // the scheduler's span has not ended: its steps wait
        assert_eq!(names(&f.next(&[create.clone(), filtered.clone(), scored.clone()], t0, false)), ["apiserver.create"]);
        assert_eq!(f.next(&[create.clone(), filtered.clone(), scored.clone()], t0 + Duration::from_millis(300), false), []);
        // it ends: the span first, then its steps; the kubelet's steps do not wait for kubelet.pod
        let all = [create.clone(), schedule.clone(), filtered.clone(), scored.clone(), saw.clone(), sandbox.clone()];
        assert_eq!(
            names(&f.next(&all, t0 + Duration::from_millis(500), false)),
            ["scheduler.schedule", "filtered out", "scored", "kubelet saw the pod", "sandbox ready"]
        );
        // nothing twice
        assert_eq!(f.next(&all, t0 + Duration::from_secs(1), false), []);
        assert_eq!(f.printed(), 6);
    }

    #[test]
    fn the_kubelets_steps_wait_for_the_binding_once_a_node_is_chosen() {
        let t0 = Instant::now();
        let mut f = Follower::new();
        let mut schedule = rec("s", "", "span", "scheduler.schedule", 20);
        schedule.attributes.insert("node".into(), "n1".into());
        let bind = rec("b", "", "span", "scheduler.bind", 25);
        let saw = rec("e3", "k", "event", "kubelet saw the pod", 30);
        let sandbox = rec("e4", "k", "event", "sandbox ready", 31);
        // the kubelet saw the bound pod before the bind span ended: its steps wait
        let early = [schedule.clone(), saw.clone(), sandbox.clone()];
        assert_eq!(names(&f.next(&early, t0, false)), ["scheduler.schedule"]);
        assert!(f.holding());
        // the binding comes: it is printed before the kubelet's steps
        let all = [schedule.clone(), bind.clone(), saw.clone(), sandbox.clone()];
        assert_eq!(
            names(&f.next(&all, t0 + Duration::from_millis(100), false)),
            ["scheduler.bind", "kubelet saw the pod", "sandbox ready"]
        );
        // a binding that never comes (a pod bound by someone else) holds them only for a while
        let mut g = Follower::new();
        assert_eq!(names(&g.next(&early, t0, false)), ["scheduler.schedule"]);
        assert_eq!(names(&g.next(&early, t0 + HOLD, false)), ["kubelet saw the pod", "sandbox ready"]);
    }

    #[test]
    fn a_parent_that_never_comes_holds_only_for_a_while() {
        let t0 = Instant::now();
        let mut f = Follower::new();
        let orphan = rec("o", "outside", "span", "apiserver.create", 10);
        let next = rec("n", "o", "event", "later", 11);
        assert_eq!(f.next(&[orphan.clone(), next.clone()], t0, false), []);
        assert_eq!(f.next(&[orphan.clone(), next.clone()], t0 + HOLD / 2, false), []);
        assert_eq!(names(&f.next(&[orphan.clone(), next.clone()], t0 + HOLD, false)), ["apiserver.create", "later"]);
        // a flush prints what waits at once
        let mut g = Follower::new();
        assert_eq!(names(&g.next(&[orphan, next], t0, true)), ["apiserver.create", "later"]);
    }
}
