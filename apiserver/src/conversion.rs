//! Resources served under two APIs but stored once: events.k8s.io/v1 Events are core/v1 Events in storage (as in
//! Kubernetes), so `kubectl get events` and `kubectl describe` see events whichever API wrote them. The
//! conversion renames the fields that differ between the two versions.

use serde_json::{Map, Value};

/// (events.k8s.io/v1 name, core/v1 name) of the fields that differ.
const EVENT_RENAMES: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn rename(obj: Value, api_version: &str, to_core: bool) -> Value {
    let Value::Object(m) = obj else { return obj };
    let mut out = Map::new();
    for (k, v) in m {
        let name = EVENT_RENAMES
            .iter()
            .find(|(new, old)| if to_core { new == &k } else { old == &k })
            .map(|(new, old)| if to_core { *old } else { *new })
            .unwrap_or(k.as_str())
            .to_string();
        out.insert(name, v);
    }
    out.insert("apiVersion".into(), Value::String(api_version.into()));
    out.insert("kind".into(), Value::String("Event".into()));
    Value::Object(out)
}

/// events.k8s.io/v1 Event → stored core/v1 Event.
pub fn event_to_core(obj: Value) -> Value {
    rename(obj, "v1", true)
}

/// Stored core/v1 Event → events.k8s.io/v1 Event.
pub fn event_from_core(obj: Value) -> Value {
    rename(obj, "events.k8s.io/v1", false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_round_trip_between_apis() {
        let e = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"}, "regarding": {"name": "p"},
            "note": "hi", "reason": "R", "reportingController": "c", "deprecatedCount": 2});
        let core = event_to_core(e.clone());
        assert_eq!(core["involvedObject"]["name"], "p");
        assert_eq!(core["message"], "hi");
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["count"], 2);
        assert_eq!(event_from_core(core), e);
    }
}
