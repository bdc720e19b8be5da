//! W3C trace context (<https://www.w3.org/TR/trace-context/>): the `traceparent` value
//! `00-<32 hex trace id>-<16 hex parent span id>-<2 hex flags>`, as a request header and as the object
//! annotation [`ANNOTATION`] that carries a pod's trace from the request that created it to the scheduler and the
//! kubelet (upstream's OpenTelemetry tracing stops at each component's edge; rkube keeps the context on the object).

use std::collections::BTreeMap;
use std::fmt;

/// The annotation holding an object's trace context: the trace of the request that created it (or of its owner's),
/// and the span that created it, as a `traceparent` value.
pub const ANNOTATION: &str = "rkube.io/traceparent";

/// The header W3C trace context travels in.
pub const HEADER: &str = "traceparent";

/// A parsed `traceparent`: whose trace, which span is the parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// The trace id, never 0.
    pub trace_id: u128,
    /// The parent span's id, never 0.
    pub span_id: u64,
}

/// Why a `traceparent` value was refused; a refused value is treated as absent (a new trace starts).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TraceParentError {
    /// Not `version-traceid-parentid-flags` with lowercase hex fields of the right lengths.
    #[error("traceparent {value:?} is not version-traceid-parentid-flags (00-<32 hex>-<16 hex>-<2 hex>)")]
    Format {
        /// The value as received.
        value: String,
    },
    /// Well-formed but with an all-zero trace or parent id.
    #[error("traceparent {value:?} has an all-zero trace id or parent id, which W3C trace context forbids")]
    Zero {
        /// The value as received.
        value: String,
    },
}

fn hex_field(s: &str, len: usize) -> Option<&str> {
    (s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))).then_some(s)
}

impl TraceParent {
    /// Parses a `traceparent` value. Version `00` must have exactly four fields; a later version may carry more
    /// after the flags, as the spec allows; version `ff` is invalid.
    pub fn parse(value: &str) -> Result<TraceParent, TraceParentError> {
        let bad = || TraceParentError::Format { value: value.to_string() };
        let v = value.trim();
        let parts: Vec<&str> = v.split('-').collect();
        if parts.len() < 4 {
            return Err(bad());
        }
        let version = hex_field(parts[0], 2).ok_or_else(bad)?;
        if version == "ff" || (version == "00" && parts.len() != 4) {
            return Err(bad());
        }
        let trace = hex_field(parts[1], 32).ok_or_else(bad)?;
        let span = hex_field(parts[2], 16).ok_or_else(bad)?;
        hex_field(parts[3], 2).ok_or_else(bad)?;
        let trace_id = u128::from_str_radix(trace, 16).map_err(|_| bad())?;
        let span_id = u64::from_str_radix(span, 16).map_err(|_| bad())?;
        if trace_id == 0 || span_id == 0 {
            return Err(TraceParentError::Zero { value: value.to_string() });
        }
        Ok(TraceParent { trace_id, span_id })
    }

    /// The trace context of an object's annotations, if it carries a valid one.
    pub fn from_annotations(annotations: Option<&BTreeMap<String, String>>) -> Option<TraceParent> {
        annotations.and_then(|a| a.get(ANNOTATION)).and_then(|v| TraceParent::parse(v).ok())
    }
}

/// The ids of one span: its trace, its own id, its parent's (0: none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    /// The trace this span belongs to, never 0.
    pub trace_id: u128,
    /// This span's id, never 0.
    pub span_id: u64,
    /// The parent span's id; 0 for a trace's root span.
    pub parent_id: u64,
}

fn nonzero_u64() -> u64 {
    loop {
        let v: u64 = rand::random();
        if v != 0 {
            return v;
        }
    }
}

impl TraceContext {
    /// The first span of a new trace.
    pub fn root() -> TraceContext {
        let trace_id = loop {
            let v: u128 = rand::random();
            if v != 0 {
                break v;
            }
        };
        TraceContext { trace_id, span_id: nonzero_u64(), parent_id: 0 }
    }

    /// A new span under `parent`.
    pub fn child_of(parent: TraceParent) -> TraceContext {
        TraceContext { trace_id: parent.trace_id, span_id: nonzero_u64(), parent_id: parent.span_id }
    }

    /// A child of `parent` if there is one, else a new trace.
    pub fn child_or_root(parent: Option<TraceParent>) -> TraceContext {
        parent.map_or_else(TraceContext::root, TraceContext::child_of)
    }

    /// This span as the parent of what comes next: the `traceparent` value (sampled flag set).
    pub fn traceparent(&self) -> String {
        format!("00-{:032x}-{:016x}-01", self.trace_id, self.span_id)
    }

    /// The trace id's upper 64 bits: `tracing` fields hold no `u128`, so [`crate::trace_span!`] records the id
    /// as two `u64` fields, `trace_hi` and `trace_lo`, which the span layer joins again.
    pub fn trace_hi(&self) -> u64 {
        (self.trace_id >> 64) as u64
    }

    /// The trace id's lower 64 bits (see [`TraceContext::trace_hi`]).
    pub fn trace_lo(&self) -> u64 {
        self.trace_id as u64
    }
}

/// A trace id as the 32 lowercase hex digits W3C writes.
pub struct TraceId(pub u128);

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// Parses 32 hex digits (any case) as a trace id; `None` for anything else, or the all-zero id.
pub fn parse_trace_id(s: &str) -> Option<u128> {
    (s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())).then(|| u128::from_str_radix(s, 16).ok()).flatten().filter(|v| *v != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_spec_example_and_writes_it_back() {
        let tp = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").expect("valid");
        assert_eq!(tp.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(tp.span_id, 0x00f067aa0ba902b7);
        let c = TraceContext { trace_id: tp.trace_id, span_id: tp.span_id, parent_id: 0 };
        assert_eq!(c.traceparent(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        assert_eq!((u128::from(c.trace_hi()) << 64) | u128::from(c.trace_lo()), tp.trace_id);
    }

    #[test]
    fn refuses_what_the_spec_refuses() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            assert!(matches!(TraceParent::parse(bad), Err(TraceParentError::Format { .. })), "{bad:?} must be refused");
        }
        assert!(matches!(
            TraceParent::parse("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            Err(TraceParentError::Zero { .. })
        ));
        // a later version may add fields
        assert!(TraceParent::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what").is_ok());
    }

    #[test]
    fn children_keep_the_trace_and_point_at_their_parent() {
        let root = TraceContext::root();
        assert_ne!(root.trace_id, 0);
        let child = TraceContext::child_of(TraceParent::parse(&root.traceparent()).expect("own output parses"));
        assert_eq!(child.trace_id, root.trace_id);
        assert_eq!(child.parent_id, root.span_id);
        assert_ne!(child.span_id, root.span_id);
        let mut ann = BTreeMap::new();
        ann.insert(ANNOTATION.to_string(), child.traceparent());
        assert_eq!(TraceParent::from_annotations(Some(&ann)).map(|p| p.span_id), Some(child.span_id));
        assert_eq!(parse_trace_id(&TraceId(root.trace_id).to_string()), Some(root.trace_id));
    }
}
