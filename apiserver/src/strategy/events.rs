//! Events, core/v1 and events.k8s.io/v1 (one stored kind, served under two APIs with some fields renamed,
//! `conversion`): no defaults or checks beyond metadata and no generation; each API's field selectors name the
//! fields its own way, as upstream's `pkg/registry/core/event/strategy.go` and the events.k8s.io/v1 field label
//! conversion.

use serde_json::Value;

use super::Strategy;
use crate::registry::ResourceInfo;
use crate::selectors::{text, Field};
use crate::table::{self, Printer};

/// Events: plain records of what happened to an object (`regarding`/`involvedObject`).
pub struct Events;

impl Strategy for Events {
    fn has_generation(&self) -> bool {
        false
    }

    fn printer(&self) -> &'static Printer {
        &table::EVENT
    }

    fn selectable_fields(&self, info: &ResourceInfo) -> &'static [Field] {
        if info.group == "events.k8s.io" {
            EVENTS_K8S_IO_FIELDS
        } else {
            CORE_FIELDS
        }
    }
}

/// The core/v1 Event's field selectors. `source` is the reporting component: `source.component`, or
/// `reportingComponent` when an event written through events.k8s.io/v1 has no source.
const CORE_FIELDS: &[Field] = &[
    Field { label: "involvedObject.kind", value: |o| text(o, "/involvedObject/kind") },
    Field { label: "involvedObject.namespace", value: |o| text(o, "/involvedObject/namespace") },
    Field { label: "involvedObject.name", value: |o| text(o, "/involvedObject/name") },
    Field { label: "involvedObject.uid", value: |o| text(o, "/involvedObject/uid") },
    Field { label: "involvedObject.apiVersion", value: |o| text(o, "/involvedObject/apiVersion") },
    Field { label: "involvedObject.resourceVersion", value: |o| text(o, "/involvedObject/resourceVersion") },
    Field { label: "involvedObject.fieldPath", value: |o| text(o, "/involvedObject/fieldPath") },
    Field { label: "reason", value: |o| text(o, "/reason") },
    Field { label: "reportingComponent", value: |o| text(o, "/reportingComponent") },
    Field { label: "source", value: source },
    Field { label: "type", value: |o| text(o, "/type") },
];

fn source(event: &Value) -> String {
    match text(event, "/source/component") {
        s if s.is_empty() => text(event, "/reportingComponent"),
        s => s,
    }
}

/// The events.k8s.io/v1 Event's field selectors: the core Event's under that API's names (`regarding.*`,
/// `reportingController`), read from the object as served in that API.
const EVENTS_K8S_IO_FIELDS: &[Field] = &[
    Field { label: "regarding.kind", value: |o| text(o, "/regarding/kind") },
    Field { label: "regarding.namespace", value: |o| text(o, "/regarding/namespace") },
    Field { label: "regarding.name", value: |o| text(o, "/regarding/name") },
    Field { label: "regarding.uid", value: |o| text(o, "/regarding/uid") },
    Field { label: "regarding.apiVersion", value: |o| text(o, "/regarding/apiVersion") },
    Field { label: "regarding.resourceVersion", value: |o| text(o, "/regarding/resourceVersion") },
    Field { label: "regarding.fieldPath", value: |o| text(o, "/regarding/fieldPath") },
    Field { label: "reason", value: |o| text(o, "/reason") },
    Field { label: "reportingController", value: |o| text(o, "/reportingController") },
    Field { label: "type", value: |o| text(o, "/type") },
];
