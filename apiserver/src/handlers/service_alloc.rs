//! What the apiserver allocates for a Service, as upstream's Service REST storage does
//! (pkg/registry/core/service/storage/alloc.go): `spec.clusterIP(s)` from the service range, `nodePort`s for
//! NodePort and LoadBalancer Services, and `healthCheckNodePort` for a LoadBalancer Service with
//! `externalTrafficPolicy: Local`, the last two from the one node port range (30000-32767).
//!
//! Values are picked outside what the stored Services hold, then claimed in the store (`service_claims`, one
//! key per value, created if absent) before the Service is written, so two apiservers on one store, or two
//! requests on one, never hand out one value twice; a value another request claimed first is picked again (a
//! value the user asked for is refused with upstream's words). A value is free again when the Service holding
//! it is deleted or an update drops it (type or policy change): its claim is deleted with it. The update rules
//! are upstream's: an unset allocated value is carried over from the old object, a `healthCheckNodePort`
//! cannot be changed while it is needed, and one that is no longer needed is dropped.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use serde_json::{json, Value};

use super::context::{WriteHook, WriteOutcome};
use super::service_claims::{self, ClaimError, Held, Owner};
use crate::object;
use crate::registry::ResourceInfo;
use crate::state::ApiState;
use crate::status::{ApiError, Cause};
use crate::storage::ListOptions;
use crate::strategy::{self, StoreHook};

/// The node port range (upstream's default `--service-node-port-range`).
pub const NODE_PORTS: std::ops::RangeInclusive<i64> = 30000..=32767;

/// Cluster IPs and node ports (including health check node ports) held by the stored Services.
#[derive(Debug, Default, Clone)]
pub struct InUse {
    /// ClusterIPs (`spec.clusterIPs`) in use.
    pub ips: HashSet<String>,
    /// Node ports and health check node ports in use.
    pub node_ports: HashSet<i64>,
}

impl InUse {
    /// Marks a value another Service was found to hold.
    fn add(&mut self, v: &Held) {
        match v {
            Held::ClusterIp(ip) => {
                self.ips.insert(ip.clone());
            }
            Held::NodePort(p) => {
                self.node_ports.insert(*p);
            }
        }
    }

    /// The node ports `svc` itself holds (those may stay with it on an update).
    fn node_ports_of(svc: &Value) -> impl Iterator<Item = i64> + '_ {
        let ports = svc.pointer("/spec/ports").and_then(Value::as_array).into_iter().flatten();
        ports.filter_map(|p| p.get("nodePort").and_then(Value::as_i64)).chain(health_check_node_port(svc))
    }
}

/// Reads what every stored Service holds.
pub async fn in_use(state: &ApiState, info: &ResourceInfo) -> Result<InUse, ApiError> {
    let page = state
        .store
        .list(ListOptions { prefix: info.key_prefix(), ..Default::default() })
        .await
        .map_err(|e| ApiError::from_storage(info, "", e))?;
    let mut used = InUse::default();
    for kv in page.items {
        let Ok(svc) = object::decode(&kv) else { continue };
        if let Some(ip) = svc.pointer("/spec/clusterIP").and_then(Value::as_str) {
            used.ips.insert(ip.to_string());
        }
        used.node_ports.extend(InUse::node_ports_of(&svc));
    }
    Ok(used)
}

fn service_type(svc: &Value) -> &str {
    svc.pointer("/spec/type").and_then(Value::as_str).unwrap_or("ClusterIP")
}

fn needs_node_ports(svc: &Value) -> bool {
    matches!(service_type(svc), "NodePort" | "LoadBalancer")
}

/// Upstream's `NeedsHealthCheck`: a LoadBalancer Service with `externalTrafficPolicy: Local`.
pub fn needs_health_check(svc: &Value) -> bool {
    service_type(svc) == "LoadBalancer" && svc.pointer("/spec/externalTrafficPolicy").and_then(Value::as_str) == Some("Local")
}

fn health_check_node_port(svc: &Value) -> Option<i64> {
    svc.pointer("/spec/healthCheckNodePort").and_then(Value::as_i64).filter(|p| *p != 0)
}

/// Upstream's validation text for a `healthCheckNodePort` on a Service that does not need one.
const HC_NOT_NEEDED: &str = "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'";

fn random_node_port(taken: &mut HashSet<i64>) -> Option<i64> {
    let span = (NODE_PORTS.end() - NODE_PORTS.start() + 1) as u128;
    for _ in 0..4096 {
        let n = NODE_PORTS.start() + (uuid::Uuid::new_v4().as_u128() % span) as i64;
        if taken.insert(n) {
            return Some(n);
        }
    }
    // a nearly full range: take the first free port
    NODE_PORTS.clone().find(|n| taken.insert(*n))
}

/// Allocates everything a new Service needs (its own values validated) and, unless `dry_run`, claims them in the
/// store; returns what was claimed, for [`release`] if the Service is then not stored.
pub async fn allocate_on_create(state: &ApiState, info: &ResourceInfo, svc: &mut Value, dry_run: bool) -> Result<Vec<Held>, ApiError> {
    let mut used = in_use(state, info).await?;
    let asked = svc.clone();
    let name = object::name(svc).to_string();
    for _ in 0..16 {
        let mut picked = asked.clone();
        allocate(state, info, &name, &mut picked, &used)?;
        if dry_run {
            *svc = picked;
            return Ok(Vec::new());
        }
        let values: Vec<Held> = Held::of(&picked).into_iter().collect();
        match service_claims::claim_all(state, info, &Owner::of(&picked), &values).await {
            Ok(()) => {
                *svc = picked;
                return Ok(values);
            }
            // another request got there first: pick again without it (a value the user asked for is refused)
            Err(ClaimError::Held(v)) => used.add(&v),
            Err(ClaimError::SameName) => return Err(ApiError::already_exists(info, &name)),
            Err(ClaimError::Api(e)) => return Err(e),
        }
    }
    Err(ApiError::internal(format!("allocate a cluster IP and node ports for service {name}: every value picked was taken meanwhile; retry")))
}

/// Picks the values a new Service needs outside `used`.
fn allocate(state: &ApiState, info: &ResourceInfo, name: &str, svc: &mut Value, used: &InUse) -> Result<(), ApiError> {
    if service_type(svc) != "ExternalName" {
        let ip = cluster_ip(state, info, name, svc, &used.ips)?;
        svc["spec"]["clusterIP"] = json!(ip);
        svc["spec"]["clusterIPs"] = json!([ip]);
    }
    let mut taken = used.node_ports.clone();
    if needs_node_ports(svc) {
        node_ports(info, name, svc, None, &mut taken)?;
    }
    health_check(info, name, svc, None, &mut taken)
}

/// Releases what a Service held once it is gone from the store (deleted, or its last finalizer removed).
pub async fn on_removed(state: &ApiState, info: &ResourceInfo, svc: &Value) {
    if strategy::of(info).store_hook() == StoreHook::ServiceAddresses {
        release(state, svc, Held::of(svc).into_iter().collect()).await;
    }
}

/// Releases `values`, claimed for `svc`.
pub async fn release(state: &ApiState, svc: &Value, values: Vec<Held>) {
    service_claims::release(state, object::uid(svc), &values).await;
}

/// Carries allocations across an update of the main resource: `in_use` is what all stored Services hold, `old`
/// included (its own values may stay with it).
pub fn reallocate_on_update(info: &ResourceInfo, old: &Value, new: &mut Value, in_use: &InUse) -> Result<(), ApiError> {
    let name = object::name(old).to_string();
    let mut taken = in_use.node_ports.clone();
    for p in InUse::node_ports_of(old) {
        taken.remove(&p);
    }
    if needs_node_ports(new) {
        node_ports(info, &name, new, Some(old), &mut taken)?;
    } else if let Some(ports) = new.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
        // upstream's dropTypeDependentFields: node ports the old object held go with the type
        for p in ports.iter_mut() {
            if p.get("nodePort").is_some_and(|n| old_node_port(old, p) == n.as_i64()) {
                if let Some(m) = p.as_object_mut() {
                    m.remove("nodePort");
                }
            }
        }
    }
    health_check(info, &name, new, Some(old), &mut taken)
}

/// An update or patch of a Service's main resource: what the stored Services hold (read before the
/// read-modify-write loop, grown by values found claimed meanwhile), and the write hook claiming what the update
/// newly holds before it is stored and releasing what it dropped after.
pub struct ForUpdate {
    state: std::sync::Arc<ApiState>,
    info: &'static ResourceInfo,
    used: std::sync::Mutex<InUse>,
}

/// [`ForUpdate`] for a Service's main resource (None for any other resource or subresource).
pub async fn for_update(ctx: &super::Ctx) -> Result<Option<ForUpdate>, ApiError> {
    let info = ctx.info();
    if strategy::of(info).store_hook() != StoreHook::ServiceAddresses || ctx.target.subresource.is_some() {
        return Ok(None);
    }
    let used = in_use(&ctx.state, info).await?;
    Ok(Some(ForUpdate { state: ctx.state.clone(), info, used: std::sync::Mutex::new(used) }))
}

/// The update hook: `next` (already defaulted and validated) with its allocations carried over from `old`.
pub fn on_update(info: &ResourceInfo, old: &Value, mut next: Value, allocs: Option<&ForUpdate>) -> Result<Value, ApiError> {
    if let Some(allocs) = allocs {
        let used = allocs.used.lock().map(|u| u.clone()).unwrap_or_default();
        reallocate_on_update(info, old, &mut next, &used)?;
    }
    Ok(next)
}

fn added(from: &Value, to: &Value) -> Vec<Held> {
    let before = Held::of(from);
    Held::of(to).into_iter().filter(|v| !before.contains(v)).collect()
}

#[async_trait::async_trait]
impl WriteHook for ForUpdate {
    async fn before_write(&self, cur: &Value, new: &Value) -> Result<bool, ApiError> {
        let values = added(cur, new);
        if values.is_empty() {
            return Ok(true);
        }
        match service_claims::claim_all(&self.state, self.info, &Owner::of(cur), &values).await {
            Ok(()) => Ok(true),
            // taken by another request meanwhile: read-modify-write again knowing it
            Err(ClaimError::Held(v)) => {
                if let Ok(mut used) = self.used.lock() {
                    used.add(&v);
                }
                Ok(false)
            }
            Err(ClaimError::SameName) => Ok(false),
            Err(ClaimError::Api(e)) => Err(e),
        }
    }

    async fn after_write(&self, cur: &Value, new: &Value, outcome: WriteOutcome) {
        let released = match outcome {
            WriteOutcome::Stored => added(new, cur),
            WriteOutcome::Removed => Held::of(cur).into_iter().chain(Held::of(new)).collect(),
            WriteOutcome::NotWritten => added(cur, new),
        };
        if !released.is_empty() {
            release(&self.state, cur, released).await;
        }
    }
}

fn cluster_ip(state: &ApiState, info: &ResourceInfo, name: &str, svc: &Value, used_ips: &HashSet<String>) -> Result<String, ApiError> {
    let requested = svc.pointer("/spec/clusterIP").and_then(Value::as_str).unwrap_or_default().to_string();
    if requested == "None" {
        return Ok(requested);
    }
    if !requested.is_empty() {
        let parsed: Ipv4Addr = requested.parse().map_err(|_| {
            ApiError::invalid(info, name, vec![Cause::invalid("spec.clusterIP", &json!(requested), "must be a valid IP address")])
        })?;
        if !state.config.service_range_contains(parsed) {
            let why = format!("provided IP is not in the valid range. The range of valid IPs is {}", state.config.service_cidr());
            return Err(ApiError::invalid(info, name, vec![Cause::invalid("spec.clusterIP", &json!(requested), &why)]));
        }
        if used_ips.contains(&requested) {
            return Err(ApiError::invalid(info, name, vec![Cause::invalid("spec.clusterIP", &json!(requested), "provided IP is already allocated")]));
        }
        return Ok(requested);
    }
    for _ in 0..2048 {
        let candidate = state.config.random_service_ip().to_string();
        if !used_ips.contains(&candidate) {
            return Ok(candidate);
        }
    }
    Err(ApiError::internal("the service IP range is full"))
}

/// The node port `old` held for the same port number and protocol as `port`.
fn old_node_port(old: &Value, port: &Value) -> Option<i64> {
    let key = |p: &Value| (p.get("port").and_then(Value::as_i64), p.get("protocol").and_then(Value::as_str).unwrap_or("TCP").to_string());
    let ports = old.pointer("/spec/ports").and_then(Value::as_array)?;
    ports.iter().find(|p| key(p) == key(port)).and_then(|p| p.get("nodePort")).and_then(Value::as_i64)
}

fn node_ports(info: &ResourceInfo, name: &str, svc: &mut Value, old: Option<&Value>, taken: &mut HashSet<i64>) -> Result<(), ApiError> {
    let Some(ports) = svc.pointer_mut("/spec/ports").and_then(Value::as_array_mut) else { return Ok(()) };
    // first what the Service keeps or asks for, then new ports for the rest
    let mut missing = Vec::new();
    for (i, p) in ports.iter_mut().enumerate() {
        let held = old.and_then(|o| old_node_port(o, p));
        let n = match p.get("nodePort").and_then(Value::as_i64) {
            Some(n) => n,
            None => match held {
                // upstream's patchAllocatedValues: an update without the value keeps the old one
                Some(n) => {
                    p["nodePort"] = json!(n);
                    n
                }
                None => {
                    missing.push(i);
                    continue;
                }
            },
        };
        let field = format!("spec.ports[{i}].nodePort");
        if !NODE_PORTS.contains(&n) {
            let why = format!("provided port is not in the valid range. The range of valid ports is {}-{}", NODE_PORTS.start(), NODE_PORTS.end());
            return Err(ApiError::invalid(info, name, vec![Cause::invalid(&field, &json!(n), &why)]));
        }
        if !taken.insert(n) && held != Some(n) {
            return Err(ApiError::invalid(info, name, vec![Cause::invalid(&field, &json!(n), "provided port is already allocated")]));
        }
    }
    for i in missing {
        let n = random_node_port(taken).ok_or_else(|| ApiError::internal("range is full"))?;
        ports[i]["nodePort"] = json!(n);
    }
    Ok(())
}

/// `healthCheckNodePort`, upstream's rules: allocated when the Service starts needing one (a value the user gave
/// is reserved if free and in range), kept while it does (a change is refused), dropped when it stops.
fn health_check(info: &ResourceInfo, name: &str, svc: &mut Value, old: Option<&Value>, taken: &mut HashSet<i64>) -> Result<(), ApiError> {
    let field = "spec.healthCheckNodePort";
    let given = health_check_node_port(svc);
    let held = old.filter(|o| needs_health_check(o)).and_then(health_check_node_port);
    if !needs_health_check(svc) {
        match given {
            // the old object's port goes with the type or policy that needed it
            Some(p) if held == Some(p) => {
                if let Some(spec) = svc.get_mut("spec").and_then(Value::as_object_mut) {
                    spec.remove("healthCheckNodePort");
                }
                Ok(())
            }
            Some(p) => Err(ApiError::invalid(info, name, vec![Cause::invalid(field, &json!(p), HC_NOT_NEEDED)])),
            None => Ok(()),
        }
    } else if let Some(held) = held {
        match given {
            None => {
                svc["spec"]["healthCheckNodePort"] = json!(held);
                Ok(())
            }
            Some(p) if p == held => Ok(()),
            Some(p) => Err(ApiError::invalid(
                info,
                name,
                vec![Cause::invalid(field, &json!(p), "cannot change healthCheckNodePort on loadBalancer service with externalTraffic=Local during update")],
            )),
        }
    } else if let Some(p) = given {
        if !(1..=65535).contains(&p) {
            return Err(ApiError::invalid(info, name, vec![Cause::invalid(field, &json!(p), "must be between 1 and 65535, inclusive")]));
        }
        // upstream reports these as an internal error from the allocator, with these words
        if !NODE_PORTS.contains(&p) {
            return Err(ApiError::internal(format!(
                "failed to allocate requested HealthCheck NodePort {p}: provided port is not in the valid range. The range of valid ports is {}-{}",
                NODE_PORTS.start(),
                NODE_PORTS.end()
            )));
        }
        if !taken.insert(p) {
            return Err(ApiError::internal(format!("failed to allocate requested HealthCheck NodePort {p}: provided port is already allocated")));
        }
        Ok(())
    } else {
        let p = random_node_port(taken).ok_or_else(|| ApiError::internal("failed to allocate a HealthCheck NodePort: range is full"))?;
        svc["spec"]["healthCheckNodePort"] = json!(p);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> &'static ResourceInfo {
        crate::registry::builtin::SERVICES
    }

    fn lb(policy: &str, hc: Option<i64>) -> Value {
        let mut s = json!({"metadata": {"name": "web"}, "spec": {"type": "LoadBalancer", "externalTrafficPolicy": policy,
            "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}]}});
        if let Some(p) = hc {
            s["spec"]["healthCheckNodePort"] = json!(p);
        }
        s
    }

    fn used(svcs: &[&Value]) -> InUse {
        let mut u = InUse::default();
        for s in svcs {
            u.node_ports.extend(InUse::node_ports_of(s));
        }
        u
    }

    #[test]
    fn a_local_load_balancer_gets_a_health_check_port_from_the_node_port_range() {
        let mut svc = lb("Local", None);
        let mut taken = HashSet::from([30080]);
        health_check(info(), "web", &mut svc, None, &mut taken).expect("allocated");
        let p = health_check_node_port(&svc).expect("set");
        assert!(NODE_PORTS.contains(&p) && p != 30080, "{p}");
        // Cluster: none, and one given is refused with upstream's words
        let mut cluster = lb("Cluster", None);
        health_check(info(), "web", &mut cluster, None, &mut HashSet::new()).expect("nothing to do");
        assert_eq!(health_check_node_port(&cluster), None);
        let mut given = lb("Cluster", Some(31000));
        let err = health_check(info(), "web", &mut given, None, &mut HashSet::new()).expect_err("refused");
        assert!(err.to_string().contains(HC_NOT_NEEDED), "{err}");
    }

    #[test]
    fn a_given_health_check_port_is_kept_or_refused_as_upstream() {
        let mut svc = lb("Local", Some(31999));
        health_check(info(), "web", &mut svc, None, &mut HashSet::new()).expect("free");
        assert_eq!(health_check_node_port(&svc), Some(31999));
        let err = health_check(info(), "web", &mut lb("Local", Some(30080)), None, &mut HashSet::from([30080])).expect_err("taken");
        assert!(err.to_string().contains("failed to allocate requested HealthCheck NodePort 30080: provided port is already allocated"), "{err}");
        let err = health_check(info(), "web", &mut lb("Local", Some(8080)), None, &mut HashSet::new()).expect_err("range");
        assert!(err.to_string().contains("provided port is not in the valid range. The range of valid ports is 30000-32767"), "{err}");
    }

    #[test]
    fn updates_keep_drop_or_refuse_the_health_check_port() {
        let old = lb("Local", Some(31500));
        let others = lb("Local", Some(31600));
        let in_use = used(&[&old, &others]);
        // unset in the update: carried over
        let mut new = lb("Local", None);
        new["spec"]["ports"][0].as_object_mut().expect("port").remove("nodePort");
        reallocate_on_update(info(), &old, &mut new, &in_use).expect("kept");
        assert_eq!(health_check_node_port(&new), Some(31500));
        assert_eq!(new.pointer("/spec/ports/0/nodePort"), Some(&json!(30080)), "the node port is carried over too");
        // changed: refused
        let err = reallocate_on_update(info(), &old, &mut lb("Local", Some(31501)), &in_use).expect_err("changed");
        assert!(err.to_string().contains("cannot change healthCheckNodePort"), "{err}");
        // policy to Cluster: dropped, so free again
        let mut cluster = old.clone();
        cluster["spec"]["externalTrafficPolicy"] = json!("Cluster");
        reallocate_on_update(info(), &old, &mut cluster, &in_use).expect("dropped");
        assert_eq!(health_check_node_port(&cluster), None);
        // type to ClusterIP: the health check port and the node ports go
        let mut plain = old.clone();
        plain["spec"]["type"] = json!("ClusterIP");
        plain["spec"].as_object_mut().expect("spec").remove("externalTrafficPolicy");
        reallocate_on_update(info(), &old, &mut plain, &in_use).expect("dropped");
        assert_eq!(health_check_node_port(&plain), None);
        assert_eq!(plain.pointer("/spec/ports/0/nodePort"), None);
        // Cluster to Local: a new one, not one another Service holds
        let mut local = cluster.clone();
        local["spec"]["externalTrafficPolicy"] = json!("Local");
        reallocate_on_update(info(), &cluster, &mut local, &used(&[&cluster, &others])).expect("allocated");
        let p = health_check_node_port(&local).expect("set");
        assert!(p != 31600 && p != 30080 && NODE_PORTS.contains(&p), "{p}");
    }

    #[test]
    fn a_type_change_to_node_port_allocates_node_ports() {
        let old = json!({"metadata": {"name": "web"}, "spec": {"type": "ClusterIP", "ports": [{"port": 80, "protocol": "TCP"}]}});
        let mut new = old.clone();
        new["spec"]["type"] = json!("NodePort");
        reallocate_on_update(info(), &old, &mut new, &InUse::default()).expect("allocated");
        assert!(new.pointer("/spec/ports/0/nodePort").and_then(Value::as_i64).is_some_and(|p| NODE_PORTS.contains(&p)), "{new}");
    }
}
