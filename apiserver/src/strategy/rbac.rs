//! The RBAC kinds: Roles and ClusterRoles, RoleBindings and ClusterRoleBindings. Their names may be any path
//! segment (upstream's ValidateRBACName), so `system:metrics-server` is a valid ClusterRole.

use rkube_apimachinery::validation as names;
use serde_json::{json, Value};

use super::{validate_with, Strategy};
use crate::defaulting::set_default;
use crate::registry::ResourceInfo;
use crate::table::{self, Printer};
use crate::status::Cause;
use crate::validation::rbac;

/// Roles and ClusterRoles: their rules checked.
pub struct Roles;

impl Strategy for Roles {
    fn printer(&self) -> &'static Printer {
        &table::ROLE
    }

    fn name_error(&self, _info: &ResourceInfo, name: &str) -> Option<String> {
        names::path_segment_error(name)
    }

    fn validate(&self, info: &ResourceInfo, obj: &Value, _old: Option<&Value>) -> Vec<Cause> {
        validate_with(self, info, obj, |causes| rbac::validate_role(obj, info.namespaced, causes))
    }
}

/// RoleBindings and ClusterRoleBindings: users' and groups' apiGroup defaulted, subjects and roleRef checked,
/// roleRef immutable.
pub struct Bindings;

impl Strategy for Bindings {
    fn printer(&self) -> &'static Printer {
        &table::ROLE_BINDING
    }

    fn defaults(&self, _info: &ResourceInfo, obj: &mut Value) {
        // users' and groups' apiGroup is rbac.authorization.k8s.io; a service account's stays "" (omitted)
        if let Some(subjects) = obj.get_mut("subjects").and_then(Value::as_array_mut) {
            for x in subjects {
                if matches!(x.get("kind").and_then(Value::as_str), Some("User" | "Group")) {
                    set_default(x, "apiGroup", json!("rbac.authorization.k8s.io"));
                }
            }
        }
    }

    fn name_error(&self, _info: &ResourceInfo, name: &str) -> Option<String> {
        names::path_segment_error(name)
    }

    fn validate(&self, info: &ResourceInfo, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        validate_with(self, info, obj, |causes| {
            rbac::validate_binding(obj, !info.namespaced, causes);
            if let Some(old) = old {
                rbac::validate_binding_update(obj, old, causes);
            }
        })
    }
}
