//! Every Service's ports kept between syncs, so that a sync recomputes only the Services whose object or
//! EndpointSlices changed (upstream kube-proxy's `ServiceChangeTracker` and `EndpointsChangeTracker` play this part
//! for its partial syncs). An object is known by its uid and told unchanged by its resourceVersion: the API server
//! gives every write a new resourceVersion, so an object with the version the ports were computed from is that
//! object. One without a resourceVersion (never one from the API) counts as changed on every sync.
//!
//! Pure: no I/O. [`super::model::service_ports`] over the whole state stays the reference; the tests below check
//! that the tracked ports always equal it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::model::{ports_of, ServicePort, SERVICE_NAME_LABEL};

/// A Service by namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
}

impl ServiceKey {
    /// The key of Service `namespace/name`.
    pub fn new(namespace: &str, name: &str) -> ServiceKey {
        ServiceKey { namespace: namespace.into(), name: name.into() }
    }

    fn of(meta: &ObjectMeta) -> ServiceKey {
        ServiceKey::new(meta.namespace.as_deref().unwrap_or_default(), meta.name.as_deref().unwrap_or_default())
    }
}

impl std::fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What the tracker remembers of one object: its resourceVersion, the Service whose ports it feeds (a Service
/// itself; a slice: the one its `kubernetes.io/service-name` label names) and the update that last saw it.
#[derive(Debug)]
struct Known {
    version: Option<String>,
    feeds: Option<ServiceKey>,
    seen: u64,
}

/// The Services' ports as of the last [`PortTracker::update`], and what it needs to tell what changed since.
#[derive(Debug, Default)]
pub struct PortTracker {
    node_name: String,
    services: HashMap<String, Known>,
    slices: HashMap<String, Known>,
    ports: BTreeMap<ServiceKey, Vec<ServicePort>>,
    generation: u64,
}

impl PortTracker {
    /// Ports as seen from node `node_name` (its endpoints are the local ones).
    pub fn new(node_name: &str) -> PortTracker {
        PortTracker { node_name: node_name.into(), ..PortTracker::default() }
    }

    /// Forgets everything: the next update recomputes every Service (a full resync).
    pub fn reset(&mut self) {
        let node_name = std::mem::take(&mut self.node_name);
        *self = PortTracker::new(&node_name);
    }

    /// Brings the ports to `services` and `slices` (the whole cluster's), recomputing only the Services that are
    /// new, changed, gone, or fed by a slice that is. Returns those Services: the only ones whose ports may differ
    /// from before.
    pub fn update(&mut self, services: &[Service], slices: &[EndpointSlice]) -> BTreeSet<ServiceKey> {
        self.generation += 1;
        let mut dirty = BTreeSet::new();
        track(&mut self.slices, self.generation, slices.iter().map(|s| (&s.metadata, s)), slice_feeds, &mut dirty);
        track(&mut self.services, self.generation, services.iter().map(|s| (&s.metadata, s)), |s: &Service| Some(ServiceKey::of(&s.metadata)), &mut dirty);
        if dirty.is_empty() {
            return dirty;
        }
        // the dirty Services' objects and slices, found without allocating per object
        let mut by_ns: HashMap<&str, HashSet<&str>> = HashMap::new();
        for k in &dirty {
            by_ns.entry(k.namespace.as_str()).or_default().insert(k.name.as_str());
        }
        let is_dirty = |ns: Option<&str>, name: Option<&str>| by_ns.get(ns.unwrap_or_default()).is_some_and(|n| n.contains(name.unwrap_or_default()));
        let svcs = services.iter().filter(|s| is_dirty(s.metadata.namespace.as_deref(), s.metadata.name.as_deref()));
        let slcs = slices.iter().filter(|s| {
            let owner = s.metadata.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL)).map(String::as_str);
            owner.is_some() && is_dirty(s.metadata.namespace.as_deref(), owner)
        });
        let mut fresh: BTreeMap<ServiceKey, Vec<ServicePort>> = BTreeMap::new();
        for p in ports_of(svcs, slcs, &self.node_name) {
            fresh.entry(ServiceKey::new(&p.namespace, &p.service)).or_default().push(p);
        }
        for k in &dirty {
            match fresh.remove(k) {
                Some(ports) => self.ports.insert(k.clone(), ports),
                None => self.ports.remove(k),
            };
        }
        dirty
    }

    /// Services with proxied ports (what the shard count follows).
    pub fn service_count(&self) -> usize {
        self.ports.len()
    }

    /// The Services with proxied ports.
    pub fn services(&self) -> impl Iterator<Item = &ServiceKey> {
        self.ports.keys()
    }

    /// One Service's ports (none: not proxied, or unknown).
    pub fn ports_of(&self, key: &ServiceKey) -> &[ServicePort] {
        self.ports.get(key).map(Vec::as_slice).unwrap_or_default()
    }

    /// Every Service's ports.
    pub fn ports(&self) -> impl Iterator<Item = &ServicePort> {
        self.ports.values().flatten()
    }
}

fn slice_feeds(s: &EndpointSlice) -> Option<ServiceKey> {
    let owner = s.metadata.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL))?;
    Some(ServiceKey::new(s.metadata.namespace.as_deref().unwrap_or_default(), owner))
}

/// Records `objects` in `known` (marking them seen in `generation`); every Service fed by an object that is new,
/// changed or gone (before or after the change) goes into `dirty`.
fn track<'a, T: 'a>(
    known: &mut HashMap<String, Known>,
    generation: u64,
    objects: impl Iterator<Item = (&'a ObjectMeta, &'a T)>,
    feeds: impl Fn(&T) -> Option<ServiceKey>,
    dirty: &mut BTreeSet<ServiceKey>,
) {
    let mut seen = 0usize;
    for (meta, obj) in objects {
        seen += 1;
        let unchanged = |k: &Known| k.version.is_some() && k.version == meta.resource_version;
        let entry = match &meta.uid {
            Some(uid) => known.get_mut(uid.as_str()),
            None => known.get_mut(&format!("{}/{}", meta.namespace.as_deref().unwrap_or_default(), meta.name.as_deref().unwrap_or_default())),
        };
        if let Some(k) = entry {
            k.seen = generation;
            if unchanged(k) {
                continue;
            }
            dirty.extend(k.feeds.take());
            k.version = meta.resource_version.clone();
            k.feeds = feeds(obj);
            dirty.extend(k.feeds.clone());
            continue;
        }
        let id = meta.uid.clone().unwrap_or_else(|| format!("{}/{}", meta.namespace.as_deref().unwrap_or_default(), meta.name.as_deref().unwrap_or_default()));
        let k = Known { version: meta.resource_version.clone(), feeds: feeds(obj), seen: generation };
        dirty.extend(k.feeds.clone());
        known.insert(id, k);
    }
    // every object seen marked one entry (uids are unique): more entries than objects means some are gone
    if known.len() > seen {
        known.retain(|_, k| {
            if k.seen != generation {
                dirty.extend(k.feeds.take());
            }
            k.seen == generation
        });
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::service_proxy::model::service_ports;
    use crate::service_proxy::nft::port_key;
    use serde_json::json;

    /// A Service `name` with one port at 10.96.0.<n>, as the API returns it (uid, resourceVersion).
    pub(crate) fn svc(name: &str, n: u8, rv: u64) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("svc-{name}"), "resourceVersion": rv.to_string()},
            "spec": {"clusterIP": format!("10.96.0.{n}"), "ports": [{"name": "http", "port": 80}]}
        }))
        .expect("service json")
    }

    /// Slice `slice` of Service `owner` with endpoints 10.244.<n>.<host> for each host.
    pub(crate) fn slice(slice: &str, owner: &str, n: u8, hosts: &[u8], rv: u64) -> EndpointSlice {
        let eps: Vec<_> = hosts.iter().map(|h| json!({"addresses": [format!("10.244.{n}.{h}")], "nodeName": "n1"})).collect();
        serde_json::from_value(json!({
            "metadata": {"name": slice, "namespace": "default", "uid": format!("slice-{slice}"), "resourceVersion": rv.to_string(),
                         "labels": {SERVICE_NAME_LABEL: owner}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": eps
        }))
        .expect("slice json")
    }

    /// The tracker's ports compared with a full recompute, both by port key.
    pub(crate) fn assert_same_as_full(t: &PortTracker, services: &[Service], slices: &[EndpointSlice]) {
        let by_key = |ports: Vec<&ServicePort>| ports.into_iter().map(|p| (port_key(p), p.clone())).collect::<BTreeMap<_, _>>();
        let full = service_ports(services, slices, "n1");
        assert_eq!(by_key(t.ports().collect()), by_key(full.iter().collect()));
    }

    fn keys(names: &[&str]) -> BTreeSet<ServiceKey> {
        names.iter().map(|n| ServiceKey::new("default", n)).collect()
    }

    #[test]
    fn first_update_computes_every_service_and_an_unchanged_state_nothing() {
        let services = vec![svc("a", 1, 1), svc("b", 2, 2)];
        let slices = vec![slice("a-1", "a", 1, &[5, 6], 3)];
        let mut t = PortTracker::new("n1");
        assert_eq!(t.update(&services, &slices), keys(&["a", "b"]));
        assert_same_as_full(&t, &services, &slices);
        assert!(t.update(&services, &slices).is_empty(), "same uids and resourceVersions: nothing recomputed");
        assert_eq!(t.ports_of(&ServiceKey::new("default", "a"))[0].cluster_endpoints.len(), 2);
    }

    #[test]
    fn a_slice_change_recomputes_only_the_service_it_feeds() {
        let services: Vec<Service> = (0..50).map(|i| svc(&format!("s{i}"), i + 1, 1)).collect();
        let mut slices: Vec<EndpointSlice> = (0..50).map(|i| slice(&format!("s{i}-1"), &format!("s{i}"), i, &[1, 2, 3], 2)).collect();
        let mut t = PortTracker::new("n1");
        t.update(&services, &slices);
        slices[7] = slice("s7-1", "s7", 7, &[1, 2, 9], 3);
        assert_eq!(t.update(&services, &slices), keys(&["s7"]));
        assert_same_as_full(&t, &services, &slices);
        // the Service object itself changing (a new resourceVersion): that Service alone
        let mut services = services;
        services[3] = svc("s3", 200, 4);
        assert_eq!(t.update(&services, &slices), keys(&["s3"]));
        assert_same_as_full(&t, &services, &slices);
    }

    #[test]
    fn deletes_relabels_and_objects_without_a_version() {
        let mut services = vec![svc("a", 1, 1), svc("b", 2, 1), svc("c", 3, 1)];
        let mut slices = vec![slice("a-1", "a", 1, &[5], 1), slice("b-1", "b", 2, &[5], 1), slice("x-1", "a", 9, &[7], 1)];
        let mut t = PortTracker::new("n1");
        t.update(&services, &slices);
        // a slice moved from a to c: both recomputed
        slices[2] = slice("x-1", "c", 9, &[7], 2);
        assert_eq!(t.update(&services, &slices), keys(&["a", "c"]));
        assert_same_as_full(&t, &services, &slices);
        // a slice deleted: its Service recomputed (no endpoints left)
        slices.remove(1);
        assert_eq!(t.update(&services, &slices), keys(&["b"]));
        assert!(!t.ports_of(&ServiceKey::new("default", "b"))[0].has_endpoints);
        // a Service deleted: gone from the ports
        services.remove(0);
        assert_eq!(t.update(&services, &slices), keys(&["a"]));
        assert!(t.ports_of(&ServiceKey::new("default", "a")).is_empty());
        assert_same_as_full(&t, &services, &slices);
        // deleted and made again under the same name (a new uid): recomputed
        let mut again = svc("c", 4, 1);
        again.metadata.uid = Some("svc-c-2".into());
        services[1] = again;
        assert_eq!(t.update(&services, &slices), keys(&["c"]));
        assert_same_as_full(&t, &services, &slices);
        // hand-made objects without a resourceVersion are never taken as unchanged
        services[0].metadata.resource_version = None;
        assert_eq!(t.update(&services, &slices), keys(&["b"]));
        assert_eq!(t.update(&services, &slices), keys(&["b"]));
        // reset: everything again, a too (a Service gone whose slice a-1 is still there)
        t.reset();
        assert_eq!(t.update(&services, &slices), keys(&["a", "b", "c"]));
        assert_same_as_full(&t, &services, &slices);
    }

    /// Many random changes in a row (a fixed seed): after each, the tracked ports equal a full recompute.
    #[test]
    fn tracked_ports_equal_a_full_recompute_after_every_change() {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let mut services: Vec<Service> = (0..20).map(|i| svc(&format!("s{i}"), i + 1, 1)).collect();
        let mut slices: Vec<EndpointSlice> = (0..20).map(|i| slice(&format!("s{i}-1"), &format!("s{i}"), i, &[1, 2], 1)).collect();
        let mut t = PortTracker::new("n1");
        t.update(&services, &slices);
        for rv in 2..300u64 {
            let i = next(20) as u8;
            match next(6) {
                0 => {
                    let hosts: Vec<u8> = (0..next(4)).map(|_| next(5) as u8 + 1).collect();
                    let owner = format!("s{}", next(22)); // sometimes a Service that does not exist
                    let name = format!("s{i}-{}", next(2) + 1);
                    slices.retain(|s| s.metadata.name.as_deref() != Some(name.as_str()));
                    slices.push(slice(&name, &owner, i, &hosts, rv));
                }
                1 => slices.retain(|s| s.metadata.name.as_deref() != Some(format!("s{i}-1").as_str())),
                2 => {
                    services.retain(|s| s.metadata.name.as_deref() != Some(format!("s{i}").as_str()));
                    services.push(svc(&format!("s{i}"), i + 100, rv));
                }
                3 => services.retain(|s| s.metadata.name.as_deref() != Some(format!("s{i}").as_str())),
                _ => {} // nothing changed
            }
            let changed = t.update(&services, &slices);
            assert_same_as_full(&t, &services, &slices);
            assert!(changed.len() <= 2, "one change recomputes at most the two Services a relabeled slice feeds: {changed:?}");
        }
    }
}
