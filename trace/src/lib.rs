//! A pod's path through rkube as spans (issue 17, `docs/trace.md`):
//!
//! - [`context`]: W3C trace context (`traceparent`): parsed from a request header or the object's
//!   `rkube.io/traceparent` annotation, made fresh when absent, written back as the annotation;
//! - [`store`]: the span recorder: a `tracing` [`Layer`](tracing_subscriber::Layer) that keeps the finished spans
//!   and the events inside them of traced work (spans opened with [`trace_span!`]) in a bounded in-memory store
//!   keyed by trace id, which the apiserver and the kubelet serve read-only;
//! - [`timeline`]: merging the records of several components into one pod's timeline, and printing it;
//! - [`follow`]: which of a pod's steps `rkube trace pod --follow` prints next, each once, in order;
//! - [`export`]: the finished spans sent to an OpenTelemetry collector over OTLP/HTTP (JSON), when configured;
//! - `fetch` (feature `client`): reading a pod's trace through the API, from the apiserver and its node's kubelet,
//!   for `rkube trace pod` and the dashboard;
//! - `live` (feature `client`): the follow loop over [`follow`] that `rkube trace pod --follow` and the
//!   dashboard's live timeline run.
//!
//! Must not: outside the modules of the `client` feature (for clients), do network I/O other than [`export`]'s
//! one POST on its own thread, or know the Kubernetes client (the apiserver and the kubelet serve the records); or
//! keep more than its limits allow.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod context;
pub mod export;
#[cfg(feature = "client")]
pub mod fetch;
pub mod follow;
#[cfg(feature = "client")]
pub mod live;
pub mod store;
pub mod timeline;

pub use context::{TraceContext, TraceParent, ANNOTATION};
pub use store::{Record, SpanLayer, Store};

/// The `tracing` target of trace spans and of the detail events recorded inside them (debug level, so the
/// log's default `info` filter never prints them; the span layer's own filter takes them).
pub const TARGET: &str = "rkube_trace";

/// Opens a trace span: `trace_span!("scheduler.schedule", ctx, pod = %key, node = tracing::field::Empty)`.
/// `ctx` is a [`TraceContext`]; the span's ids are its ids. Debug level, target [`TARGET`].
#[macro_export]
macro_rules! trace_span {
    ($name:literal, $ctx:expr $(, $($fields:tt)*)?) => {{
        let c: $crate::TraceContext = $ctx;
        ::tracing::span!(
            target: "rkube_trace",
            ::tracing::Level::DEBUG,
            $name,
            trace_hi = c.trace_hi(),
            trace_lo = c.trace_lo(),
            span_id = c.span_id,
            parent_id = c.parent_id
            $(, $($fields)*)?
        )
    }};
}

/// A detail step inside the current trace span: `trace_event!(node = %n, reasons = ?r, "filtered out")`.
/// Values are formatted only when the layer records them (inside a traced span).
#[macro_export]
macro_rules! trace_event {
    ($($args:tt)*) => {
        ::tracing::event!(target: "rkube_trace", ::tracing::Level::DEBUG, $($args)*)
    };
}

/// The process's store, fed by [`layer`] and read by the apiserver's and the kubelet's endpoints.
pub fn global() -> &'static Store {
    static STORE: std::sync::OnceLock<Store> = std::sync::OnceLock::new();
    STORE.get_or_init(|| Store::new(store::Limits::default()))
}

/// The span layer over [`global`] (none when [`enabled`] says recording is off), with its filter: trace spans and events, the info-level spans and events
/// of rkube's components (they are recorded only inside a traced span), and the few debug events that carry a
/// step's details (the kubelet's sandbox and container step timings, the image puller's layers and bytes).
pub fn layer<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use tracing_subscriber::Layer;
    if !enabled() {
        return None;
    }
    let filter = tracing_subscriber::filter::Targets::new()
        .with_target(TARGET, tracing::Level::DEBUG)
        .with_target("rkube_kubelet::pod::worker", tracing::Level::DEBUG)
        .with_target("rkube_kubelet::image::pull", tracing::Level::DEBUG)
        .with_target("rkube_kubelet", tracing::Level::INFO)
        .with_target("rkube_controllers", tracing::Level::INFO)
        .with_target("rkube_apiserver", tracing::Level::INFO);
    Some(SpanLayer::new(global()).with_filter(filter))
}

/// The environment variable that turns span recording off in a process (`RKUBE_TRACING=off`, also `0`,
/// `false`): no span layer is installed, so trace spans are disabled (no layer wants them) and the trace
/// endpoints serve nothing new. Objects still get their `rkube.io/traceparent`. `bench/trace.sh` uses it to
/// measure what recording costs.
pub const ENV_SWITCH: &str = "RKUBE_TRACING";

/// Whether this process records spans: [`ENV_SWITCH`] unset or anything but `off`, `0`, `false`.
pub fn enabled() -> bool {
    !matches!(std::env::var(ENV_SWITCH).as_deref().map(str::trim), Ok("off" | "0" | "false"))
}
