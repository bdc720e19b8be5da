//! The `kubernetes` Service's endpoints with several apiservers on one store: upstream's lease endpoint
//! reconciler (`--endpoint-reconciler-type=lease`). Every apiserver started with an advertised address holds a
//! Lease in kube-system (`apiserver-<hash of the address>`, labelled `apiserver.kubernetes.io/identity:
//! kube-apiserver`, the address in the annotation [`ADDRESS_ANNOTATION`]) and renews it every
//! `endpoint_leases.interval`; the `kubernetes` EndpointSlice in `default` lists the addresses of every Lease not
//! expired (renewTime + leaseDurationSeconds in the future). Each server rewrites the slice from the Leases, so it
//! lists every live server whichever wrote last, and a server killed without a goodbye drops out after the TTL.
//! A server that stops cleanly removes its Lease and itself from the slice at once ([`EndpointReconciler::remove`]).
//!
//! Upstream keeps these leases as raw etcd keys with a TTL (`/masterleases/<ip>`); here they are Lease objects,
//! so `kubectl get leases -n kube-system -l apiserver.kubernetes.io/identity=kube-apiserver` shows them.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::admission::{prepare_update, FieldValidation, Part};
use crate::handlers::context::{guarded_update, read_object, Ctx};
use crate::handlers::create::create_object;
use crate::object;
use crate::registry::{self, ResourceInfo};
use crate::request::{Query, Target};
use crate::state::ApiState;
use crate::status::ApiError;
use crate::storage::ListOptions;

/// The label every apiserver identity Lease carries (upstream's APIServerIdentity).
pub const IDENTITY_LABEL: &str = "apiserver.kubernetes.io/identity";
/// Where an apiserver's Lease keeps the address it advertises.
pub const ADDRESS_ANNOTATION: &str = "rkube.io/advertise-address";
/// The namespace of the Leases.
const LEASE_NS: &str = "kube-system";

fn leases() -> &'static ResourceInfo {
    registry::builtin::LEASES
}

fn slices() -> &'static ResourceInfo {
    registry::builtin::ENDPOINT_SLICES
}

/// The Lease name of the apiserver advertising `ip`: one per address, so a restarted server takes its own
/// Lease back (upstream hashes the host name; several servers here may share a host, never an address).
pub fn lease_name(ip: IpAddr) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, ip.to_string().as_bytes());
    format!("apiserver-{}", &hex::encode(digest.as_ref())[..26])
}

/// Kubernetes' MicroTime (`renewTime`, `acquireTime`).
fn micro_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// The addresses of the identity Leases that have not expired at `now`, of the address family of `family`.
pub fn live_addresses(leases: &[Value], now: DateTime<Utc>, family: IpAddr) -> BTreeSet<IpAddr> {
    let mut out = BTreeSet::new();
    for lease in leases {
        if lease.pointer("/metadata/labels").and_then(|l| l.get(IDENTITY_LABEL)).and_then(Value::as_str) != Some("kube-apiserver") {
            continue;
        }
        let Some(ip) = lease
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(ADDRESS_ANNOTATION))
            .and_then(Value::as_str)
            .and_then(|a| a.parse::<IpAddr>().ok())
        else {
            continue;
        };
        let renewed = lease.pointer("/spec/renewTime").and_then(Value::as_str).and_then(|t| DateTime::parse_from_rfc3339(t).ok());
        let ttl = lease.pointer("/spec/leaseDurationSeconds").and_then(Value::as_i64).unwrap_or(0);
        let live = renewed.is_some_and(|r| r.with_timezone(&Utc) + chrono::Duration::seconds(ttl) > now);
        if live && ip.is_ipv4() == family.is_ipv4() {
            out.insert(ip);
        }
    }
    out
}

/// The `kubernetes` EndpointSlice's endpoints and ports for these apiserver addresses.
fn slice_body(addresses: &BTreeSet<IpAddr>, port: u16, family: IpAddr) -> (Value, Value, &'static str) {
    let endpoints: Vec<Value> = addresses.iter().map(|ip| json!({"addresses": [ip.to_string()], "conditions": {"ready": true}})).collect();
    let ports = json!([{"name": "https", "port": port, "protocol": "TCP"}]);
    (json!(endpoints), ports, if family.is_ipv4() { "IPv4" } else { "IPv6" })
}

fn internal_ctx(state: &Arc<ApiState>, info: &'static ResourceInfo, ns: &str, name: &str) -> Ctx {
    Ctx {
        state: state.clone(),
        user: Arc::new(crate::auth::User::internal()),
        target: Target { info, namespace: Some(ns.to_string()), name: Some(name.to_string()), subresource: None, watch_path: false },
        query: Query::default(),
        headers: http::HeaderMap::new(),
        path: String::new(),
    }
}

/// One apiserver's part in the `kubernetes` endpoints: its Lease and the slice it rewrites.
pub struct EndpointReconciler {
    state: Arc<ApiState>,
    ip: IpAddr,
    port: u16,
    lease: String,
    holder: String,
}

impl EndpointReconciler {
    /// The reconciler for a server advertising `ip` and serving on `port`.
    pub fn new(state: Arc<ApiState>, ip: IpAddr, port: u16) -> EndpointReconciler {
        let lease = lease_name(ip);
        let holder = format!("{lease}_{}", uuid::Uuid::new_v4());
        EndpointReconciler { state, ip, port, lease, holder }
    }

    /// Renews the Lease and rewrites the slice every interval, until the task is aborted.
    pub fn spawn(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(self.state.config.endpoint_leases.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = self.reconcile().await {
                    tracing::warn!(lease = %self.lease, error = %e, "apiserver endpoint lease: will retry");
                }
            }
        })
    }

    /// Renews this server's Lease, then makes the slice list every live apiserver.
    pub async fn reconcile(&self) -> Result<(), ApiError> {
        self.renew().await?;
        self.write_slice(None).await
    }

    /// Removes this server's Lease and its address from the slice (a clean stop).
    pub async fn remove(&self) -> Result<(), ApiError> {
        let ctx = internal_ctx(&self.state, leases(), LEASE_NS, &self.lease);
        match crate::handlers::delete::delete_one(&ctx, &json!({})).await {
            Ok(_) | Err(ApiError { code: 404, .. }) => {}
            Err(e) => return Err(e),
        }
        self.write_slice(Some(self.ip)).await
    }

    async fn renew(&self) -> Result<(), ApiError> {
        let now = micro_time(Utc::now());
        let ttl = self.state.config.endpoint_leases.ttl.as_secs().max(1);
        let key = leases().key(Some(LEASE_NS), &self.lease);
        if read_object(&self.state, leases(), &key, &self.lease).await?.is_none() {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_string();
            let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.lease, "namespace": LEASE_NS,
                    "labels": {IDENTITY_LABEL: "kube-apiserver", "kubernetes.io/hostname": host},
                    "annotations": {ADDRESS_ANNOTATION: self.ip.to_string()}},
                "spec": {"holderIdentity": self.holder, "leaseDurationSeconds": ttl, "acquireTime": now, "renewTime": now}});
            match create_object(&self.state, leases(), Some(LEASE_NS), lease, FieldValidation::Strict, false).await {
                Ok(_) => return Ok(()),
                // another start raced us to it: renew it below
                Err(ApiError { code: 409, .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let ctx = internal_ctx(&self.state, leases(), LEASE_NS, &self.lease);
        guarded_update(&ctx, None, |cur| {
            let mut next = cur.clone();
            next["spec"]["holderIdentity"] = json!(self.holder);
            next["spec"]["leaseDurationSeconds"] = json!(ttl);
            next["spec"]["renewTime"] = json!(now);
            object::meta_mut(&mut next).entry("annotations").or_insert_with(|| json!({}))[ADDRESS_ANNOTATION] = json!(self.ip.to_string());
            prepare_update(leases(), cur, next, Part::Main, FieldValidation::Strict)
        })
        .await?;
        Ok(())
    }

    /// Writes the slice from the live Leases (`without`: an address to leave out, this server's on stop).
    async fn write_slice(&self, without: Option<IpAddr>) -> Result<(), ApiError> {
        let page = self
            .state
            .store
            .list(ListOptions { prefix: leases().prefix_for(Some(LEASE_NS)), ..Default::default() })
            .await
            .map_err(|e| ApiError::from_storage(leases(), "", e))?;
        let all: Vec<Value> = page.items.iter().filter_map(|kv| object::decode(kv).ok()).collect();
        let mut live = live_addresses(&all, Utc::now(), self.ip);
        if let Some(ip) = without {
            live.remove(&ip);
        }
        let (endpoints, ports, family) = slice_body(&live, self.port, self.ip);
        let key = slices().key(Some("default"), "kubernetes");
        if read_object(&self.state, slices(), &key, "kubernetes").await?.is_none() {
            let slice = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": "kubernetes", "namespace": "default",
                    "labels": {"kubernetes.io/service-name": "kubernetes", "endpointslice.kubernetes.io/managed-by": "rkube-apiserver"}},
                "addressType": family, "endpoints": endpoints, "ports": ports});
            match create_object(&self.state, slices(), Some("default"), slice, FieldValidation::Strict, false).await {
                Ok(_) => return Ok(()),
                Err(ApiError { code: 409, .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let ctx = internal_ctx(&self.state, slices(), "default", "kubernetes");
        guarded_update(&ctx, None, |cur| {
            let mut next = cur.clone();
            next["addressType"] = json!(family);
            next["endpoints"] = endpoints.clone();
            next["ports"] = ports.clone();
            prepare_update(slices(), cur, next, Part::Main, FieldValidation::Strict)
        })
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(ip: &str, renewed: DateTime<Utc>, ttl: i64) -> Value {
        json!({"metadata": {"name": lease_name(ip.parse().expect("ip")), "labels": {IDENTITY_LABEL: "kube-apiserver"},
            "annotations": {ADDRESS_ANNOTATION: ip}},
            "spec": {"renewTime": micro_time(renewed), "leaseDurationSeconds": ttl}})
    }

    #[test]
    fn the_endpoints_are_the_addresses_of_unexpired_identity_leases() {
        let now = Utc::now();
        let v4: IpAddr = "10.0.0.1".parse().expect("ip");
        let mut other = lease("10.0.0.4", now, 15);
        other["metadata"]["labels"][IDENTITY_LABEL] = json!("something-else");
        let leases = [
            lease("10.0.0.1", now - chrono::Duration::seconds(5), 15),  // live
            lease("10.0.0.2", now - chrono::Duration::seconds(20), 15), // expired
            lease("10.0.0.3", now, 15),                                 // live
            other,                                                      // not an apiserver's
            lease("fd00::1", now, 15),                                  // the other family
            json!({"metadata": {"labels": {IDENTITY_LABEL: "kube-apiserver"}}, "spec": {"renewTime": micro_time(now), "leaseDurationSeconds": 15}}),
        ];
        let live: Vec<String> = live_addresses(&leases, now, v4).iter().map(ToString::to_string).collect();
        assert_eq!(live, ["10.0.0.1", "10.0.0.3"]);
        let v6: IpAddr = "fd00::9".parse().expect("ip");
        assert_eq!(live_addresses(&leases, now, v6).len(), 1);
    }

    #[test]
    fn one_lease_name_per_address() {
        let a = lease_name("10.0.0.1".parse().expect("ip"));
        assert!(a.starts_with("apiserver-") && a.len() == "apiserver-".len() + 26, "{a}");
        assert_eq!(a, lease_name("10.0.0.1".parse().expect("ip")));
        assert_ne!(a, lease_name("10.0.0.2".parse().expect("ip")));
    }
}
