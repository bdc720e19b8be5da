//! One pod's timeline from the records of several components: merged (the apiserver and the kubelet of
//! `rkube up` share one process and one store, so the same record may come twice), kept to the pod (a Deployment's
//! pods share their owner's trace: another pod's spans and everything under them are left out), sorted by start,
//! and printed one step a line.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::store::Record;

/// The document `rkube trace pod -o json` prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodTrace {
    /// [`API_VERSION`].
    pub api_version: String,
    /// `PodTrace`.
    pub kind: String,
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// The pod's trace id, 32 hex digits.
    pub trace_id: String,
    /// The node the pod ran on ([`node_of`]), if any step says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Whether the pod still exists (else the trace is what was kept after it went).
    pub exists: bool,
    /// The pod's records, merged and in start order ([`merge`]).
    pub steps: Vec<Record>,
}

/// The `apiVersion` of a [`PodTrace`] document.
pub const API_VERSION: &str = "trace.rkube.io/v1alpha1";

/// Merges record sets: one copy of each record, ordered by start time (a span by its start, an event by when it
/// happened); records of other pods in the same trace are dropped.
pub fn merge(sets: Vec<Vec<Record>>, pod_key: &str) -> Vec<Record> {
    let mut seen = BTreeSet::new();
    let mut all: Vec<Record> = Vec::new();
    for r in sets.into_iter().flatten() {
        if seen.insert((r.span_id.clone(), r.kind.clone())) {
            all.push(r);
        }
    }
    let by_id: HashMap<&str, &Record> = all.iter().filter(|r| r.kind == "span").map(|r| (r.span_id.as_str(), r)).collect();
    // the pod a record is about: its own `pod` attribute, else its nearest ancestor's
    let pod_of = |r: &Record| -> Option<String> {
        let mut cur = Some(r);
        let mut hops = 0;
        while let Some(c) = cur {
            if let Some(p) = c.attr("pod") {
                return Some(p.to_string());
            }
            hops += 1;
            if hops > 64 {
                break;
            }
            cur = by_id.get(c.parent_id.as_str()).copied();
        }
        None
    };
    // the kubelet's own log fields name a pod without its namespace: the trace is already the namespace's
    let name = pod_key.rsplit('/').next().unwrap_or(pod_key);
    let keep: Vec<bool> = all.iter().map(|r| pod_of(r).is_none_or(|p| p == pod_key || p == name)).collect();
    let mut out: Vec<Record> = all.into_iter().zip(keep).filter(|(_, k)| *k).map(|(r, _)| r).collect();
    out.sort_by_key(|r| r.start_unix_nanos);
    out
}

/// The node the pod ran on, from its steps (the scheduler's choice, else the kubelet's).
pub fn node_of(steps: &[Record]) -> Option<String> {
    steps.iter().rev().find_map(|r| if r.component == "kubelet" || r.name == "scheduler.bind" { r.attr("node").map(str::to_string) } else { None })
}

/// What a step means, in the words of the pod's story.
pub fn title(r: &Record) -> String {
    let a = |k: &str| r.attr(k).unwrap_or("?").to_string();
    match r.name.as_str() {
        "apiserver.create" => format!("request accepted and stored: create {} {}", a("resource"), a("object")),
        "controller.create" => format!("{} controller created {} {} from {}", a("controller"), a("kind"), a("object"), a("owner")),
        "scheduler.schedule" => match r.attr("node") {
            Some(n) => format!("scheduler chose node {n}"),
            None => format!("scheduler found no node: {}", a("error")),
        },
        "scheduler.bind" => format!("scheduler bound the pod to {}", a("node")),
        "kubelet.pod" => format!("kubelet ran the pod on {} until it went", a("node")),
        "pull" => format!("image pull {}", a("image")),
        other => other.to_string(),
    }
}

const SHOWN_ATTRS: &[&str] = &[
    "owner", "node", "reasons", "score", "scores", "ip", "sandbox", "container", "image", "layers", "bytes", "manifest",
    "steps", "reason", "detail", "kind", "phase", "ready", "conditions", "total_ms", "ms", "secs", "error", "id", "layer",
];

/// The step's attributes worth showing, `key=value, ...` (what `rkube trace pod` prints in parentheses).
pub fn details(r: &Record) -> String {
    let mut s = String::new();
    for k in SHOWN_ATTRS {
        if matches!(r.name.as_str(), "apiserver.create" | "controller.create") && *k == "owner" {
            continue;
        }
        if r.name.starts_with("scheduler.") && *k == "node" {
            continue;
        }
        if let Some(v) = r.attr(k) {
            if !s.is_empty() {
                s.push_str(", ");
            }
            let _ = write!(s, "{k}={v}");
        }
    }
    s
}

fn ms(nanos: u64) -> String {
    format!("{:.1} ms", nanos as f64 / 1e6)
}

/// The timeline as text: one step a line, `+offset  wall-clock  component  duration  what (details)`.
pub fn render(t: &PodTrace, color: bool) -> String {
    let mut out = header(t, color);
    let Some(first) = t.steps.first().map(|s| s.start_unix_nanos) else {
        let _ = writeln!(out, "  no steps recorded");
        return out;
    };
    for s in &t.steps {
        out.push_str(&step_line(s, first, color));
    }
    out
}

/// The timeline's first line: the pod, its trace, its node.
pub fn header(t: &PodTrace, color: bool) -> String {
    let (b, r) = if color { ("\x1b[1m", "\x1b[0m") } else { ("", "") };
    format!(
        "{b}pod {}/{}{r}  trace {}{}{}\n",
        t.namespace,
        t.name,
        t.trace_id,
        t.node.as_deref().map(|n| format!("  node {n}")).unwrap_or_default(),
        if t.exists { "" } else { "  (pod is gone; steps kept)" }
    )
}

/// One step's line (with its newline), its offset counted from `first` (the first step's start).
pub fn step_line(s: &Record, first: u64, color: bool) -> String {
    let (d, r) = if color { ("\x1b[2m", "\x1b[0m") } else { ("", "") };
    let off = s.start_unix_nanos.saturating_sub(first);
    let wall = chrono::DateTime::from_timestamp_nanos(s.start_unix_nanos as i64).format("%H:%M:%S%.3f");
    let dur = s.duration_nanos.map(ms).unwrap_or_default();
    let det = details(s);
    format!(
        "  +{:>8.3}s  {d}{wall}{r}  {:<18}  {:>10}  {}{}\n",
        off as f64 / 1e9,
        s.component,
        dur,
        title(s),
        if det.is_empty() { String::new() } else { format!("  {d}({det}){r}") }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn rec(span: &str, parent: &str, kind: &str, name: &str, start: u64, attrs: &[(&str, &str)]) -> Record {
        Record {
            trace_id: "t".into(),
            span_id: span.into(),
            parent_id: parent.into(),
            name: name.into(),
            component: "kubelet".into(),
            kind: kind.into(),
            start_unix_nanos: start,
            duration_nanos: (kind == "span").then_some(1_500_000),
            attributes: attrs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn merge_dedups_orders_and_keeps_to_the_pod() {
        let owner = rec("a", "", "span", "apiserver.create", 10, &[("resource", "replicasets"), ("object", "default/web-1")]);
        let mine = rec("b", "a", "span", "controller.create", 20, &[("pod", "default/web-1-x"), ("object", "default/web-1-x"), ("kind", "Pod"), ("controller", "replicaset"), ("owner", "ReplicaSet/default/web-1")]);
        let theirs = rec("c", "a", "span", "controller.create", 21, &[("pod", "default/web-1-y")]);
        let under_theirs = rec("d", "c", "event", "sandbox ready", 40, &[("ip", "10.0.0.9")]);
        let under_mine = rec("e", "b", "event", "sandbox ready", 30, &[("ip", "10.0.0.8"), ("pod", "web-1-x")]);
        let merged = merge(vec![vec![under_mine.clone(), mine.clone(), theirs, under_theirs], vec![owner.clone(), mine.clone()]], "default/web-1-x");
        let names: Vec<(&str, u64)> = merged.iter().map(|r| (r.span_id.as_str(), r.start_unix_nanos)).collect();
        assert_eq!(names, [("a", 10), ("b", 20), ("e", 30)]);
        let t = PodTrace {
            api_version: API_VERSION.into(),
            kind: "PodTrace".into(),
            namespace: "default".into(),
            name: "web-1-x".into(),
            trace_id: "t".into(),
            node: node_of(&merged),
            exists: true,
            steps: merged,
        };
        let text = render(&t, false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[1].contains("request accepted and stored: create replicasets default/web-1"), "{text}");
        assert!(lines[2].contains("replicaset controller created Pod default/web-1-x from ReplicaSet/default/web-1") && lines[2].contains("1.5 ms"), "{text}");
        assert!(lines[3].contains("sandbox ready  (ip=10.0.0.8)"), "{text}");
    }

    #[test]
    fn an_empty_trace_says_so() {
        let t = PodTrace {
            api_version: API_VERSION.into(),
            kind: "PodTrace".into(),
            namespace: "ns".into(),
            name: "p".into(),
            trace_id: "t".into(),
            node: None,
            exists: false,
            steps: vec![],
        };
        let text = render(&t, false);
        assert!(text.contains("(pod is gone; steps kept)") && text.contains("no steps recorded"), "{text}");
    }
}
