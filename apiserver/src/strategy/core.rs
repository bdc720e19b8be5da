//! The core kinds with a strategy of their own: Namespace, Service, ConfigMap, Secret and Node (Pods are with
//! the workloads).

use rkube_apimachinery::validation as names;
use serde_json::{json, Value};

use super::{validate_with, StoreHook, Strategy};
use crate::defaulting::{child, default_secret, default_service, set_default};
use crate::registry::ResourceInfo;
use crate::selectors::{text, text_or, Field};
use crate::table::{self, Printer};
use crate::status::Cause;
use crate::validation::{self, workloads};

/// Namespaces: the `kubernetes.io/metadata.name` label, the `kubernetes` finalizer and phase Active by
/// default; the name a DNS-1123 label; selectable by `status.phase`.
pub struct Namespaces;

impl Strategy for Namespaces {
    fn printer(&self) -> &'static Printer {
        &table::NAMESPACE
    }

    fn defaults(&self, _info: &ResourceInfo, obj: &mut Value) {
        let name = obj.pointer("/metadata/name").cloned().unwrap_or(Value::Null);
        let meta = child(obj, "metadata");
        let labels = child(meta, "labels");
        labels["kubernetes.io/metadata.name"] = name;
        let spec = child(obj, "spec");
        set_default(spec, "finalizers", json!(["kubernetes"]));
        let status = child(obj, "status");
        set_default(status, "phase", json!("Active"));
    }

    fn name_error(&self, _info: &ResourceInfo, name: &str) -> Option<String> {
        names::dns1123_label_error(name)
    }

    fn validate(&self, info: &ResourceInfo, obj: &Value, _old: Option<&Value>) -> Vec<Cause> {
        validate_with(self, info, obj, |_| {})
    }

    fn selectable_fields(&self, _info: &ResourceInfo) -> &'static [Field] {
        const FIELDS: &[Field] = &[Field { label: "status.phase", value: |o| text(o, "/status/phase") }];
        FIELDS
    }
}

/// Services: port and type defaults, the name a DNS-1035 label, ports and type checked, the ClusterIP
/// immutable once set. Allocation needs the store: `handlers::service_alloc`, by [`StoreHook::ServiceAddresses`].
pub struct Services;

impl Strategy for Services {
    fn printer(&self) -> &'static Printer {
        &table::SERVICE
    }

    fn defaults(&self, _info: &ResourceInfo, obj: &mut Value) {
        default_service(obj);
    }

    fn name_error(&self, _info: &ResourceInfo, name: &str) -> Option<String> {
        names::dns1035_label_error(name)
    }

    fn store_hook(&self) -> StoreHook {
        StoreHook::ServiceAddresses
    }

    fn validate(&self, info: &ResourceInfo, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        validate_with(self, info, obj, |causes| {
            validation::validate_service(obj, causes);
            if let Some(old) = old {
                validation::validate_service_update(obj, old, causes);
            }
        })
    }
}

/// ConfigMaps: keys checked; data frozen once `immutable` is set; no generation (plain data).
pub struct ConfigMaps;

impl Strategy for ConfigMaps {
    fn printer(&self) -> &'static Printer {
        &table::CONFIG_MAP
    }

    fn validate(&self, info: &ResourceInfo, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        validate_config(self, info, obj, old)
    }

    fn has_generation(&self) -> bool {
        false
    }
}

/// Secrets: type Opaque by default, otherwise as ConfigMaps; selectable by `type`.
pub struct Secrets;

impl Strategy for Secrets {
    fn printer(&self) -> &'static Printer {
        &table::SECRET
    }

    fn selectable_fields(&self, _info: &ResourceInfo) -> &'static [Field] {
        const FIELDS: &[Field] = &[Field { label: "type", value: |o| text(o, "/type") }];
        FIELDS
    }

    fn defaults(&self, _info: &ResourceInfo, obj: &mut Value) {
        default_secret(obj);
    }

    fn validate(&self, info: &ResourceInfo, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        validate_config(self, info, obj, old)
    }

    fn has_generation(&self) -> bool {
        false
    }
}

fn validate_config(strategy: &dyn Strategy, info: &ResourceInfo, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    validate_with(strategy, info, obj, |causes| {
        workloads::validate_config_data(obj, causes);
        if let Some(old) = old {
            workloads::validate_config_data_update(obj, old, causes);
        }
    })
}

/// Nodes: an empty spec when none is given; selectable by `spec.unschedulable` (`false` when unset).
pub struct Nodes;

impl Strategy for Nodes {
    fn printer(&self) -> &'static Printer {
        &table::NODE
    }

    fn selectable_fields(&self, _info: &ResourceInfo) -> &'static [Field] {
        const FIELDS: &[Field] = &[Field { label: "spec.unschedulable", value: |o| text_or(o, "/spec/unschedulable", "false") }];
        FIELDS
    }

    fn defaults(&self, _info: &ResourceInfo, obj: &mut Value) {
        child(obj, "spec");
    }
}
