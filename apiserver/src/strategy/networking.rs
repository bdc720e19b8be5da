//! Ingresses, IngressClasses and EndpointSlices.

use serde_json::{json, Value};

use super::{validate_with, StoreHook, Strategy};
use crate::defaulting::set_default;
use crate::registry::ResourceInfo;
use crate::table::{self, Printer};
use crate::status::Cause;
use crate::validation::ingress;

/// Ingresses: rules, backends and TLS checked (`validation::ingress`). The default IngressClass is filled in
/// on create by the handlers, which can read the classes (upstream's DefaultIngressClass admission).
pub struct Ingresses;

impl Strategy for Ingresses {
    fn printer(&self) -> &'static Printer {
        &table::INGRESS
    }

    fn store_hook(&self) -> StoreHook {
        StoreHook::DefaultIngressClass
    }

    fn validate(&self, info: &ResourceInfo, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        validate_with(self, info, obj, |causes| ingress::validate_ingress(obj, old.is_none(), causes))
    }
}

/// IngressClasses: parameters' scope defaulted to Cluster (upstream's SetDefaults_IngressClass), the controller
/// immutable.
pub struct IngressClasses;

impl Strategy for IngressClasses {
    fn printer(&self) -> &'static Printer {
        &table::INGRESS_CLASS
    }

    fn defaults(&self, _info: &ResourceInfo, obj: &mut Value) {
        if let Some(params) = obj.pointer_mut("/spec/parameters").filter(|p| p.is_object()) {
            set_default(params, "scope", json!("Cluster"));
        }
    }

    fn validate(&self, info: &ResourceInfo, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        validate_with(self, info, obj, |causes| ingress::validate_ingress_class(obj, old, causes))
    }
}

/// EndpointSlices: ports' protocol defaulted to TCP; no generation (plain data).
pub struct EndpointSlices;

impl Strategy for EndpointSlices {
    fn printer(&self) -> &'static Printer {
        &table::ENDPOINT_SLICE
    }

    fn defaults(&self, _info: &ResourceInfo, obj: &mut Value) {
        if let Some(ports) = obj.get_mut("ports").and_then(Value::as_array_mut) {
            for p in ports {
                set_default(p, "protocol", json!("TCP"));
            }
        }
    }

    fn has_generation(&self) -> bool {
        false
    }
}
