//! The span recorder: [`SpanLayer`] keeps traced spans (those opened with [`crate::trace_span!`] and every span
//! and event beneath them) and writes each finished one to a [`Store`]: bounded in traces, records per trace
//! and age, keyed by trace id, with an index from a pod (`namespace/name`) to its latest trace, so a pod that is
//! gone can still be traced while its records are kept.
//!
//! Cost: a span or event outside a trace costs the layer one look-up of its parent's extensions, no allocation.
//! Inside a trace, its fields are formatted once, when it is recorded.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record as SpanValues};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::context::{TraceContext, TraceId};

/// One finished span, or one event inside a span (then `durationNanos` is absent), as the endpoints serve it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// The trace id, 32 lowercase hex digits.
    pub trace_id: String,
    /// The span's id (an event gets one of its own), 16 lowercase hex digits.
    pub span_id: String,
    /// The enclosing span's id, 16 hex digits; empty for a trace's root span.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub parent_id: String,
    /// The span's name, or the event's message.
    pub name: String,
    /// Which component recorded it: apiserver, scheduler, controller-manager, kubelet.
    pub component: String,
    /// `span` or `event`.
    pub kind: String,
    /// When the span started or the event happened, in nanoseconds since the Unix epoch (wall clock).
    pub start_unix_nanos: u64,
    /// How long the span was open, in nanoseconds (monotonic clock); `None` for an event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_nanos: Option<u64>,
    /// The span's or event's fields but the trace ids, formatted as strings (`pod`, `node`, `error`...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

impl Record {
    /// The attribute `key`, if recorded.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

/// How much a store keeps.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Traces kept; a new trace beyond it drops the oldest (by first record). Default 2048.
    pub max_traces: usize,
    /// Records kept per trace; a new one beyond it drops the trace's oldest, counted as dropped. Default 512.
    pub max_records_per_trace: usize,
    /// A trace with no new record for this long is dropped.
    pub max_idle: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_traces: 2048, max_records_per_trace: 512, max_idle: Duration::from_secs(3600) }
    }
}

struct Trace {
    last: Instant,
    records: VecDeque<Record>,
    dropped: u64,
}

#[derive(Default)]
struct Inner {
    traces: HashMap<u128, Trace>,
    /// Trace ids, oldest first (by first record).
    order: VecDeque<u128>,
    /// namespace/name -> the pod's latest trace.
    pods: HashMap<String, u128>,
}

/// Finished spans and events by trace id, bounded by [`Limits`].
pub struct Store {
    limits: Limits,
    inner: Mutex<Inner>,
}

impl Store {
    /// An empty store keeping at most what `limits` allow.
    pub fn new(limits: Limits) -> Store {
        Store { limits, inner: Mutex::new(Inner::default()) }
    }

    /// Adds a record; drops the oldest traces beyond the limits, and a trace's oldest records beyond its own.
    pub fn push(&self, trace_id: u128, record: Record) {
        let Ok(mut inner) = self.inner.lock() else { return };
        let now = Instant::now();
        let inner = &mut *inner;
        if let Some(pod) = record.attributes.get("pod") {
            if inner.pods.get(pod) != Some(&trace_id) {
                inner.pods.insert(pod.clone(), trace_id);
            }
        }
        if !inner.traces.contains_key(&trace_id) {
            while inner.order.len() >= self.limits.max_traces.max(1) {
                self.evict_front(inner);
            }
            inner.order.push_back(trace_id);
            inner.traces.insert(trace_id, Trace { last: now, records: VecDeque::new(), dropped: 0 });
        }
        while let Some(front) = inner.order.front() {
            let idle = inner.traces.get(front).is_none_or(|t| now.duration_since(t.last) > self.limits.max_idle);
            if !idle || *front == trace_id {
                break;
            }
            self.evict_front(inner);
        }
        if let Some(t) = inner.traces.get_mut(&trace_id) {
            t.last = now;
            if t.records.len() >= self.limits.max_records_per_trace.max(1) {
                t.records.pop_front();
                t.dropped += 1;
            }
            t.records.push_back(record);
        }
    }

    fn evict_front(&self, inner: &mut Inner) {
        if let Some(old) = inner.order.pop_front() {
            inner.traces.remove(&old);
            inner.pods.retain(|_, t| *t != old);
        }
    }

    /// A trace's records in the order they finished, and how many were dropped for the per-trace limit.
    pub fn get(&self, trace_id: u128) -> Option<(Vec<Record>, u64)> {
        let inner = self.inner.lock().ok()?;
        inner.traces.get(&trace_id).map(|t| (t.records.iter().cloned().collect(), t.dropped))
    }

    /// The latest trace a record naming pod `namespace/name` belongs to.
    pub fn trace_of_pod(&self, key: &str) -> Option<u128> {
        self.inner.lock().ok()?.pods.get(key).copied()
    }

    /// How many traces the store holds.
    pub fn len(&self) -> usize {
        self.inner.lock().map(|i| i.traces.len()).unwrap_or(0)
    }

    /// Whether the store holds no trace.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn unix_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// The component a module belongs to.
pub fn component_of(module: &str) -> &'static str {
    if module.starts_with("rkube_controllers::scheduler") {
        "scheduler"
    } else if module.starts_with("rkube_controllers") {
        "controller-manager"
    } else if module.starts_with("rkube_kubelet") {
        "kubelet"
    } else if module.starts_with("rkube_apiserver") {
        "apiserver"
    } else {
        "rkube"
    }
}

/// An open traced span's state, kept in the registry's extensions.
struct Open {
    ctx: TraceContext,
    start: u64,
    started: Instant,
    attributes: BTreeMap<String, String>,
    /// The events inside it, kept for OTLP export only ([`crate::export::active`]).
    events: Vec<Record>,
    dropped_events: u64,
}

/// Finds the explicit ids of a [`crate::trace_span!`] without allocating.
#[derive(Default)]
struct Ids {
    hi: Option<u64>,
    lo: Option<u64>,
    span: u64,
    parent: u64,
}

impl Visit for Ids {
    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "trace_hi" => self.hi = Some(value),
            "trace_lo" => self.lo = Some(value),
            "span_id" => self.span = value,
            "parent_id" => self.parent = value,
            _ => {}
        }
    }
    fn record_debug(&mut self, _: &Field, _: &dyn fmt::Debug) {}
}

/// Collects the other fields as strings.
struct Fields<'a> {
    out: &'a mut BTreeMap<String, String>,
    message: Option<String>,
}

const ID_FIELDS: [&str; 4] = ["trace_hi", "trace_lo", "span_id", "parent_id"];

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.to_string());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        if !ID_FIELDS.contains(&field.name()) {
            self.put(field, value.to_string());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}"));
    }
}

impl Fields<'_> {
    fn put(&mut self, field: &Field, value: String) {
        if field.name() == "message" {
            self.message = Some(value);
        } else {
            self.out.insert(field.name().to_string(), value);
        }
    }
}

/// The `tracing` layer that records traced spans into a [`Store`].
pub struct SpanLayer {
    store: &'static Store,
}

impl SpanLayer {
    /// A layer recording into `store` ([`crate::global`] in the components; a leaked one in tests).
    pub fn new(store: &'static Store) -> SpanLayer {
        SpanLayer { store }
    }
}

impl<S> tracing_subscriber::Layer<S> for SpanLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut ids = Ids::default();
        attrs.record(&mut ids);
        let Some(span) = ctx.span(id) else { return };
        let tc = match (ids.hi, ids.lo) {
            (Some(hi), Some(lo)) => TraceContext {
                trace_id: (u128::from(hi) << 64) | u128::from(lo),
                span_id: if ids.span == 0 { TraceContext::root().span_id } else { ids.span },
                parent_id: ids.parent,
            },
            _ => {
                let parent = span.parent().and_then(|p| p.extensions().get::<Open>().map(|o| o.ctx));
                match parent {
                    Some(p) => TraceContext { trace_id: p.trace_id, span_id: TraceContext::root().span_id, parent_id: p.span_id },
                    None => return,
                }
            }
        };
        let mut attributes = BTreeMap::new();
        let mut f = Fields { out: &mut attributes, message: None };
        attrs.record(&mut f);
        span.extensions_mut().insert(Open {
            ctx: tc,
            start: unix_nanos(),
            started: Instant::now(),
            attributes,
            events: Vec::new(),
            dropped_events: 0,
        });
    }

    fn on_record(&self, id: &Id, values: &SpanValues<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        if let Some(open) = ext.get_mut::<Open>() {
            let mut f = Fields { out: &mut open.attributes, message: None };
            values.record(&mut f);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.event_span(event) else { return };
        let Some(parent) = span.extensions().get::<Open>().map(|o| o.ctx) else { return };
        let mut attributes = BTreeMap::new();
        let mut f = Fields { out: &mut attributes, message: None };
        event.record(&mut f);
        let name = f.message.take().unwrap_or_else(|| event.metadata().name().to_string());
        let meta = event.metadata();
        let module = meta.module_path().unwrap_or(meta.target());
        let record = Record {
            trace_id: TraceId(parent.trace_id).to_string(),
            span_id: format!("{:016x}", TraceContext::root().span_id),
            parent_id: format!("{:016x}", parent.span_id),
            name,
            component: component_of(module).to_string(),
            kind: "event".into(),
            start_unix_nanos: unix_nanos(),
            duration_nanos: None,
            attributes,
        };
        if crate::export::active() {
            if let Some(open) = span.extensions_mut().get_mut::<Open>() {
                if open.events.len() < crate::export::EVENTS_PER_SPAN {
                    open.events.push(record.clone());
                } else {
                    open.dropped_events += 1;
                }
            }
        }
        self.store.push(parent.trace_id, record);
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(mut open) = span.extensions_mut().remove::<Open>() else { return };
        let meta = span.metadata();
        let events = std::mem::take(&mut open.events);
        let dropped_events = open.dropped_events;
        let module = meta.module_path().unwrap_or(meta.target());
        let record = Record {
            trace_id: TraceId(open.ctx.trace_id).to_string(),
            span_id: format!("{:016x}", open.ctx.span_id),
            parent_id: if open.ctx.parent_id == 0 { String::new() } else { format!("{:016x}", open.ctx.parent_id) },
            name: meta.name().to_string(),
            component: component_of(module).to_string(),
            kind: "span".into(),
            start_unix_nanos: open.start,
            duration_nanos: Some(open.started.elapsed().as_nanos() as u64),
            attributes: open.attributes,
        };
        if crate::export::active() {
            let mut exported = record.clone();
            if dropped_events > 0 {
                exported.attributes.insert("rkube.dropped_events".into(), dropped_events.to_string());
            }
            crate::export::offer(open.ctx.trace_id, &exported, events);
        }
        self.store.push(open.ctx.trace_id, record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::TraceParent;
    use tracing_subscriber::layer::SubscriberExt;

    fn leaked(limits: Limits) -> &'static Store {
        Box::leak(Box::new(Store::new(limits)))
    }

    fn rec(name: &str, pod: Option<&str>) -> Record {
        let mut attributes = BTreeMap::new();
        if let Some(p) = pod {
            attributes.insert("pod".into(), p.into());
        }
        Record {
            trace_id: String::new(),
            span_id: String::new(),
            parent_id: String::new(),
            name: name.into(),
            component: "x".into(),
            kind: "event".into(),
            start_unix_nanos: 0,
            duration_nanos: None,
            attributes,
        }
    }

    #[test]
    fn traced_spans_and_their_children_are_recorded_others_are_not() {
        let store = leaked(Limits::default());
        let subscriber = tracing_subscriber::registry().with(SpanLayer::new(store));
        let root = TraceContext::root();
        tracing::subscriber::with_default(subscriber, || {
            let untraced = tracing::info_span!("untraced", pod = "default/other");
            untraced.in_scope(|| tracing::info!("not recorded"));
            let span = crate::trace_span!("scheduler.schedule", root, pod = "default/web", node = tracing::field::Empty);
            span.in_scope(|| {
                crate::trace_event!(node = "n2", reasons = ?["node(s) were unschedulable"], "filtered out");
                let child = tracing::info_span!("pull", image = "busybox");
                child.in_scope(|| tracing::info!(bytes = 1024u64, "pulled image"));
            });
            span.record("node", "n1");
        });
        assert_eq!(store.len(), 1, "only the traced span's trace is kept");
        let (records, dropped) = store.get(root.trace_id).expect("the trace is kept");
        assert_eq!(dropped, 0);
        let names: Vec<&str> = records.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["filtered out", "pulled image", "pull", "scheduler.schedule"]);
        let sched = &records[3];
        assert_eq!(sched.span_id, format!("{:016x}", root.span_id));
        assert_eq!(sched.attr("node"), Some("n1"), "a field recorded later is kept");
        assert_eq!(sched.attr("pod"), Some("default/web"));
        assert!(!sched.attributes.contains_key("trace_hi"), "ids are not attributes");
        assert_eq!(records[0].attr("reasons"), Some(r#"["node(s) were unschedulable"]"#));
        assert_eq!(records[0].parent_id, sched.span_id);
        let pull = &records[2];
        assert_eq!(pull.parent_id, sched.span_id, "a plain span under a traced one joins its trace");
        assert_eq!(records[1].parent_id, pull.span_id);
        assert!(pull.duration_nanos.is_some() && records[1].duration_nanos.is_none());
        assert_eq!(store.trace_of_pod("default/web"), Some(root.trace_id));
        assert_eq!(store.trace_of_pod("default/other"), None);
        let tp = TraceParent::parse(&root.traceparent()).expect("valid");
        assert_eq!(tp.trace_id, root.trace_id);
    }

    #[test]
    fn the_store_keeps_its_bounds() {
        let store = Store::new(Limits { max_traces: 2, max_records_per_trace: 3, max_idle: Duration::from_secs(60) });
        for i in 0..5 {
            store.push(1, rec(&format!("r{i}"), Some("ns/a")));
        }
        let (records, dropped) = store.get(1).expect("kept");
        assert_eq!(records.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["r2", "r3", "r4"]);
        assert_eq!(dropped, 2);
        store.push(2, rec("b", Some("ns/b")));
        store.push(3, rec("c", Some("ns/c")));
        assert!(store.get(1).is_none(), "the oldest trace goes first");
        assert_eq!(store.trace_of_pod("ns/a"), None, "and its pod index with it");
        assert_eq!(store.trace_of_pod("ns/c"), Some(3));
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn idle_traces_expire() {
        let store = Store::new(Limits { max_traces: 10, max_records_per_trace: 10, max_idle: Duration::from_millis(0) });
        store.push(1, rec("a", None));
        std::thread::sleep(Duration::from_millis(2));
        store.push(2, rec("b", None));
        assert!(store.get(1).is_none());
        assert!(store.get(2).is_some());
    }
}
