//! The scheduler's trace spans (issue 17, `docs/trace.md`): one per scheduling attempt of a pod that carries a
//! trace context (`rkube.io/traceparent`), with the nodes the filters removed and why, and the score table;
//! one per bind. Untraced pods get disabled spans, which cost nothing.

use std::fmt;

use k8s_openapi::api::core::v1::Pod;
use rkube_trace::{trace_span, TraceContext, TraceParent};

use super::cache::NodeInfo;

fn context(pod: &Pod) -> Option<TraceContext> {
    TraceParent::from_annotations(pod.metadata.annotations.as_ref()).map(TraceContext::child_of)
}

/// A scheduling attempt of `pod`; `node` or `error` is recorded when it ends.
pub fn schedule_span(pod: &Pod, key: &str) -> tracing::Span {
    match context(pod) {
        Some(c) => trace_span!("scheduler.schedule", c, pod = key, node = tracing::field::Empty, error = tracing::field::Empty),
        None => tracing::Span::none(),
    }
}

/// The bind of `pod` to `node`.
pub fn bind_span(pod: &Pod, key: &str, node: &str) -> tracing::Span {
    match context(pod) {
        Some(c) => trace_span!("scheduler.bind", c, pod = key, node = node),
        None => tracing::Span::none(),
    }
}

/// The score table, formatted only if a trace records it: `n1=187 n2=150`.
pub struct Scores<'a>(pub &'a [&'a NodeInfo], pub &'a [i64]);

impl fmt::Debug for Scores<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (n, s)) in self.0.iter().zip(self.1).enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{}={s}", n.name)?;
        }
        Ok(())
    }
}
