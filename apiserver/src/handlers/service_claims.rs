//! Who holds which ClusterIP and node port, kept in the store so that several apiservers on one store never hand
//! one value to two Services (issue 15). Each value a Service holds is one key, created with the store's
//! create-if-absent before the Service is written:
//! `/registry/allocations/serviceips/<ip>` and `/registry/allocations/servicenodeports/<port>`, the value naming
//! the Service (namespace/name and uid) and when it was claimed. Two servers picking the same value race on one
//! create, which exactly one wins; the loser picks again (or, for a value the user asked for, answers upstream's
//! "provided IP is already allocated"). Deleting a Service, or an update dropping a value, deletes its keys.
//!
//! Why keys per value and not upstream's one allocator bitmap per range (`/registry/ranges/serviceips`, updated
//! with compare-and-swap): a bitmap makes every Service write in the cluster contend on one key, and a Service
//! create that dies between the bitmap update and the Service write leaks the value until a repair loop runs.
//! Per-value keys contend only when two creates pick the same value, and repair themselves: a claim older than
//! [`IN_FLIGHT`] whose Service (by uid) does not hold the value is stale (its create failed or its server died
//! before it wrote or released) and is taken over with compare-and-swap on its revision, so two servers cannot
//! both take it. Upstream's newer allocator (IPAddress objects, one per address) makes the same choice.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::object;
use crate::registry::ResourceInfo;
use crate::state::ApiState;
use crate::status::ApiError;
use crate::storage::StorageError;

/// How long a claim counts as held while its Service is not (yet) stored: far longer than the gap between a
/// claim and the Service write it guards.
pub const IN_FLIGHT: chrono::Duration = chrono::Duration::seconds(60);

/// One value a Service holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Held {
    /// A ClusterIP (`spec.clusterIP` or one of `spec.clusterIPs`).
    ClusterIp(String),
    /// A node port (`spec.ports[].nodePort`).
    NodePort(i64),
}

impl Held {
    fn key(&self) -> String {
        match self {
            Held::ClusterIp(ip) => format!("/registry/allocations/serviceips/{ip}"),
            Held::NodePort(p) => format!("/registry/allocations/servicenodeports/{p}"),
        }
    }

    /// The values `svc` holds: its cluster IPs (not `None`) and node ports, health check node port included.
    pub fn of(svc: &Value) -> std::collections::BTreeSet<Held> {
        let mut out = std::collections::BTreeSet::new();
        let spec = svc.get("spec");
        let ips = spec.and_then(|s| s.get("clusterIPs")).and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str);
        let ip = spec.and_then(|s| s.get("clusterIP")).and_then(Value::as_str);
        for ip in ips.chain(ip) {
            if !ip.is_empty() && ip != "None" {
                out.insert(Held::ClusterIp(ip.to_string()));
            }
        }
        let ports = spec.and_then(|s| s.get("ports")).and_then(Value::as_array).into_iter().flatten();
        out.extend(ports.filter_map(|p| p.get("nodePort").and_then(Value::as_i64)).filter(|p| *p != 0).map(Held::NodePort));
        if let Some(p) = spec.and_then(|s| s.get("healthCheckNodePort")).and_then(Value::as_i64).filter(|p| *p != 0) {
            out.insert(Held::NodePort(p));
        }
        out
    }
}

/// The stored claim.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Claim {
    /// `namespace/name` of the Service.
    service: String,
    uid: String,
    /// RFC 3339.
    since: String,
}

/// The Service a claim is made for.
#[derive(Debug, Clone)]
pub struct Owner {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
    /// The Service's uid, which tells a claim left by a deleted Service of the same name from its own.
    pub uid: String,
}

impl Owner {
    /// The owner named by a Service object's metadata.
    pub fn of(svc: &Value) -> Owner {
        Owner {
            namespace: object::namespace(svc).unwrap_or_default().to_string(),
            name: object::name(svc).to_string(),
            uid: object::uid(svc).to_string(),
        }
    }

    fn service(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// Why a claim was not made.
#[derive(Debug)]
pub enum ClaimError {
    /// Another Service holds the value.
    Held(Held),
    /// Another create of a Service with the same name holds it: that one is being created.
    SameName,
    /// The store failed while claiming.
    Api(ApiError),
}

fn storage(info: &ResourceInfo, name: &str, e: StorageError) -> ClaimError {
    ClaimError::Api(ApiError::from_storage(info, name, e))
}

fn encode(owner: &Owner) -> bytes::Bytes {
    let claim = Claim { service: owner.service(), uid: owner.uid.clone(), since: object::now_rfc3339() };
    bytes::Bytes::from(serde_json::to_vec(&claim).unwrap_or_default())
}

/// Claims every value in `values` for `owner`, all or none: on an error the ones claimed here are released.
pub async fn claim_all(state: &ApiState, info: &ResourceInfo, owner: &Owner, values: &[Held]) -> Result<(), ClaimError> {
    for (i, v) in values.iter().enumerate() {
        if let Err(e) = claim(state, info, owner, v).await {
            release(state, &owner.uid, &values[..i]).await;
            return Err(e);
        }
    }
    Ok(())
}

/// Claims one value for `owner` (already its own: Ok).
async fn claim(state: &ApiState, info: &ResourceInfo, owner: &Owner, value: &Held) -> Result<(), ClaimError> {
    let key = value.key();
    for _ in 0..8 {
        match state.store.create(&key, encode(owner)).await {
            Ok(_) => return Ok(()),
            Err(StorageError::AlreadyExists { .. }) => {}
            Err(e) => return Err(storage(info, &owner.name, e)),
        }
        let Some(kv) = state.store.get(&key).await.map_err(|e| storage(info, &owner.name, e))? else {
            continue; // released meanwhile: create again
        };
        let held: Option<Claim> = serde_json::from_slice(&kv.value).ok();
        if let Some(c) = &held {
            if c.uid == owner.uid {
                return Ok(());
            }
            let since = chrono::DateTime::parse_from_rfc3339(&c.since).map(|t| t.with_timezone(&chrono::Utc)).ok();
            let in_flight = since.is_none_or(|t| chrono::Utc::now() - t < IN_FLIGHT);
            if in_flight && c.service == owner.service() {
                return Err(ClaimError::SameName);
            }
            if in_flight || holder_holds(state, info, c, value).await.map_err(ClaimError::Api)? {
                return Err(ClaimError::Held(value.clone()));
            }
        }
        // stale (or unreadable): take it over, unless someone else changed it since it was read
        match state.store.update(&key, encode(owner), kv.mod_revision).await {
            Ok(_) => {
                tracing::info!(key, stale = ?held, service = owner.service(), "took over a stale service allocation");
                return Ok(());
            }
            Err(StorageError::Conflict { .. } | StorageError::NotFound { .. }) => continue,
            Err(e) => return Err(storage(info, &owner.name, e)),
        }
    }
    Err(ClaimError::Held(value.clone()))
}

/// Whether the Service a claim names is stored, with the claim's uid, holding `value`.
async fn holder_holds(state: &ApiState, info: &ResourceInfo, claim: &Claim, value: &Held) -> Result<bool, ApiError> {
    let Some((ns, name)) = claim.service.split_once('/') else { return Ok(false) };
    let key = info.key(Some(ns), name);
    match object::read(state.store.as_ref(), info, &key, name).await? {
        Some((svc, _)) => Ok(object::uid(&svc) == claim.uid && Held::of(&svc).contains(value)),
        None => Ok(false),
    }
}

/// Releases the claims `uid` holds on `values` (claims another Service holds are left alone). Failures are
/// logged: a claim left behind is stale and taken over later.
pub async fn release(state: &ApiState, uid: &str, values: &[Held]) {
    for v in values {
        let key = v.key();
        let kv = match state.store.get(&key).await {
            Ok(Some(kv)) => kv,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(key, error = %e, "release service allocation");
                continue;
            }
        };
        if serde_json::from_slice::<Claim>(&kv.value).is_ok_and(|c| c.uid == uid) {
            match state.store.delete(&key, Some(kv.mod_revision)).await {
                Ok(_) | Err(StorageError::NotFound { .. } | StorageError::Conflict { .. }) => {}
                Err(e) => tracing::warn!(key, error = %e, "release service allocation"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_service_holds_its_cluster_ips_and_node_ports() {
        let svc = json!({"spec": {"clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.5"], "healthCheckNodePort": 31000,
            "ports": [{"port": 80, "nodePort": 30080}, {"port": 81}]}});
        let held: Vec<Held> = Held::of(&svc).into_iter().collect();
        assert_eq!(held, [Held::ClusterIp("10.96.0.5".into()), Held::NodePort(30080), Held::NodePort(31000)]);
        assert!(Held::of(&json!({"spec": {"clusterIP": "None"}})).is_empty());
        assert_eq!(Held::NodePort(30080).key(), "/registry/allocations/servicenodeports/30080");
    }
}
