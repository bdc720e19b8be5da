//! Every Service's ports kept between syncs, so that a sync recomputes only the Services whose object or
//! EndpointSlices changed (upstream kube-proxy's `ServiceChangeTracker` and `EndpointsChangeTracker` play this part
//! for its partial syncs). An object is known by its uid and told unchanged by its resourceVersion: the API server
//! gives every write a new resourceVersion, so an object with the version the ports were computed from is that
//! object. One without a resourceVersion (never one from the API) counts as changed on every sync.
//!
//! One change costs the objects that changed, not the whole cluster's ([`PortTracker::update_shared`]): the
//! tracker holds the `Arc` of every object it last saw, and the watch's stores replace an object's `Arc` on every
//! change, so an object at an address the tracker holds is one it has seen, at that version. A pass over the
//! state hashes addresses only; only new, changed and gone objects are read (their uid, version and the Service
//! they feed), and each Service's own objects are found through an index instead of a scan of every object.
//! At 5,000 Services x 10 endpoints the objects are cold in the cache after a quiet second, and reading each
//! one's uid and resourceVersion cost 5.6 ms a change in the kubelet.
//!
//! Pure: no I/O. [`super::model::service_ports`] over the whole state stays the reference; the tests below check
//! that the tracked ports always equal it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;

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

/// What the tracker remembers of one object: the object as last seen (held, so that its address stays its own
/// while the tracker compares addresses), its resourceVersion and the Service whose ports it feeds (a Service
/// itself; a slice: the one its `kubernetes.io/service-name` label names).
#[derive(Debug)]
struct Known<T> {
    obj: Arc<T>,
    version: Option<String>,
    feeds: Option<ServiceKey>,
}

/// The objects of one kind as of the last update.
#[derive(Debug)]
struct Objects<T> {
    /// By uid (`namespace/name` for one without).
    by_id: HashMap<String, Known<T>>,
    /// The address of every object in `by_id`, and whether seeing it again means unchanged (it has a
    /// resourceVersion: one without counts as changed on every update).
    by_addr: HashMap<usize, bool>,
    /// The ids of the objects that feed each Service.
    feeding: HashMap<ServiceKey, BTreeSet<String>>,
}

impl<T> Default for Objects<T> {
    fn default() -> Self {
        Objects { by_id: HashMap::new(), by_addr: HashMap::new(), feeding: HashMap::new() }
    }
}

fn addr<T>(o: &Arc<T>) -> usize {
    Arc::as_ptr(o) as usize
}

fn id_of(meta: &ObjectMeta) -> String {
    meta.uid.clone().unwrap_or_else(|| format!("{}/{}", meta.namespace.as_deref().unwrap_or_default(), meta.name.as_deref().unwrap_or_default()))
}

impl<T: Resource> Objects<T> {
    /// Brings these objects to `objects` (each object once, as a store holds it); every Service fed by an object
    /// that is new, changed or gone (before or after the change) goes into `dirty`.
    fn update(&mut self, objects: &[Arc<T>], feeds: impl Fn(&T) -> Option<ServiceKey>, dirty: &mut BTreeSet<ServiceKey>) {
        // the one pass over every object: its address only, the object itself is not read
        let fresh: Vec<&Arc<T>> = objects.iter().filter(|o| self.by_addr.get(&addr(o)) != Some(&true)).collect();
        for o in fresh {
            let meta = o.meta();
            let id = id_of(meta);
            let (version, now) = (meta.resource_version.clone(), feeds(&**o));
            if let Some(k) = self.by_id.get_mut(&id) {
                self.by_addr.remove(&addr(&k.obj));
                self.by_addr.insert(addr(o), version.is_some());
                k.obj = Arc::clone(o);
                if k.version.is_some() && k.version == version {
                    continue; // a new Arc of the same version (a relist)
                }
                k.version = version;
                if k.feeds != now {
                    unindex(&mut self.feeding, k.feeds.as_ref(), &id);
                    index(&mut self.feeding, now.as_ref(), &id);
                }
                dirty.extend(std::mem::replace(&mut k.feeds, now.clone()));
                dirty.extend(now);
                continue;
            }
            self.by_addr.insert(addr(o), version.is_some());
            index(&mut self.feeding, now.as_ref(), &id);
            dirty.extend(now.clone());
            self.by_id.insert(id, Known { obj: Arc::clone(o), version, feeds: now });
        }
        // every object of `objects` has its address in `by_addr` now: more addresses than objects means some of
        // the known ones are gone (deleted, or replaced by another uid under the same name)
        if self.by_addr.len() != objects.len() {
            let present: HashSet<usize> = objects.iter().map(addr).collect();
            let gone: Vec<String> = self.by_id.iter().filter(|(_, k)| !present.contains(&addr(&k.obj))).map(|(id, _)| id.clone()).collect();
            for id in gone {
                if let Some(k) = self.by_id.remove(&id) {
                    self.by_addr.remove(&addr(&k.obj));
                    unindex(&mut self.feeding, k.feeds.as_ref(), &id);
                    dirty.extend(k.feeds);
                }
            }
        }
    }

    /// The objects that feed Service `key`.
    fn feeding<'a>(&'a self, key: &ServiceKey) -> impl Iterator<Item = &'a T> + 'a {
        self.feeding.get(key).into_iter().flatten().filter_map(|id| self.by_id.get(id)).map(|k| &*k.obj)
    }
}

fn index(feeding: &mut HashMap<ServiceKey, BTreeSet<String>>, key: Option<&ServiceKey>, id: &str) {
    if let Some(key) = key {
        feeding.entry(key.clone()).or_default().insert(id.to_string());
    }
}

fn unindex(feeding: &mut HashMap<ServiceKey, BTreeSet<String>>, key: Option<&ServiceKey>, id: &str) {
    if let Some(ids) = key.and_then(|k| feeding.get_mut(k)) {
        ids.remove(id);
        if ids.is_empty() {
            feeding.remove(key.expect("found under it"));
        }
    }
}

/// The Services' ports as of the last [`PortTracker::update_shared`], and what it needs to tell what changed since.
#[derive(Debug, Default)]
pub struct PortTracker {
    node_name: String,
    services: Objects<Service>,
    slices: Objects<EndpointSlice>,
    ports: BTreeMap<ServiceKey, Vec<ServicePort>>,
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

    /// Brings the ports to `services` and `slices` (the whole cluster's, as the watch's stores hold them: each
    /// object once, a new `Arc` for every change), recomputing only the Services that are new, changed, gone, or
    /// fed by a slice that is. Returns those Services: the only ones whose ports may differ from before.
    pub fn update_shared(&mut self, services: &[Arc<Service>], slices: &[Arc<EndpointSlice>]) -> BTreeSet<ServiceKey> {
        let mut dirty = BTreeSet::new();
        self.slices.update(slices, slice_feeds, &mut dirty);
        self.services.update(services, |s: &Service| Some(ServiceKey::of(&s.metadata)), &mut dirty);
        if dirty.is_empty() {
            return dirty;
        }
        // the dirty Services' own objects, from the index
        let svcs = dirty.iter().flat_map(|k| self.services.feeding(k));
        let slcs = dirty.iter().flat_map(|k| self.slices.feeding(k));
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

    /// [`PortTracker::update_shared`] for callers holding plain objects (tests): each is wrapped in a new `Arc`, so
    /// every object is read and told unchanged by its uid and resourceVersion alone.
    pub fn update(&mut self, services: &[Service], slices: &[EndpointSlice]) -> BTreeSet<ServiceKey> {
        let services: Vec<Arc<Service>> = services.iter().cloned().map(Arc::new).collect();
        let slices: Vec<Arc<EndpointSlice>> = slices.iter().cloned().map(Arc::new).collect();
        self.update_shared(&services, &slices)
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

    fn shared<T>(objects: Vec<T>) -> Vec<Arc<T>> {
        objects.into_iter().map(Arc::new).collect()
    }

    /// [`assert_same_as_full`] of a shared state.
    fn assert_same(t: &PortTracker, services: &[Arc<Service>], slices: &[Arc<EndpointSlice>]) {
        let services: Vec<Service> = services.iter().map(|s| (**s).clone()).collect();
        let slices: Vec<EndpointSlice> = slices.iter().map(|s| (**s).clone()).collect();
        assert_same_as_full(t, &services, &slices);
    }

    #[test]
    fn first_update_computes_every_service_and_an_unchanged_state_nothing() {
        let services = shared(vec![svc("a", 1, 1), svc("b", 2, 2)]);
        let slices = shared(vec![slice("a-1", "a", 1, &[5, 6], 3)]);
        let mut t = PortTracker::new("n1");
        assert_eq!(t.update_shared(&services, &slices), keys(&["a", "b"]));
        assert_same(&t, &services, &slices);
        assert!(t.update_shared(&services, &slices).is_empty(), "the same objects: nothing recomputed");
        assert_eq!(t.ports_of(&ServiceKey::new("default", "a"))[0].cluster_endpoints.len(), 2);
        // new Arcs of the same uids and resourceVersions (a relist): nothing recomputed either
        assert!(t.update_shared(&shared(vec![svc("a", 1, 1), svc("b", 2, 2)]), &shared(vec![slice("a-1", "a", 1, &[5, 6], 3)])).is_empty());
        // nor through plain objects, which are all new Arcs
        assert!(t.update(&[svc("a", 1, 1), svc("b", 2, 2)], &[slice("a-1", "a", 1, &[5, 6], 3)]).is_empty());
        assert_same(&t, &services, &slices);
    }

    #[test]
    fn a_slice_change_recomputes_only_the_service_it_feeds() {
        let mut services = shared((0..50).map(|i| svc(&format!("s{i}"), i + 1, 1)).collect());
        let mut slices = shared((0..50).map(|i| slice(&format!("s{i}-1"), &format!("s{i}"), i, &[1, 2, 3], 2)).collect());
        let mut t = PortTracker::new("n1");
        t.update_shared(&services, &slices);
        slices[7] = Arc::new(slice("s7-1", "s7", 7, &[1, 2, 9], 3));
        assert_eq!(t.update_shared(&services, &slices), keys(&["s7"]));
        assert_same(&t, &services, &slices);
        // the Service object itself changing (a new resourceVersion): that Service alone
        services[3] = Arc::new(svc("s3", 200, 4));
        assert_eq!(t.update_shared(&services, &slices), keys(&["s3"]));
        assert_same(&t, &services, &slices);
        // the state in another order (a store's): nothing
        services.reverse();
        slices.rotate_left(17);
        assert!(t.update_shared(&services, &slices).is_empty());
    }

    #[test]
    fn deletes_relabels_and_objects_without_a_version() {
        let mut services = shared(vec![svc("a", 1, 1), svc("b", 2, 1), svc("c", 3, 1)]);
        let mut slices = shared(vec![slice("a-1", "a", 1, &[5], 1), slice("b-1", "b", 2, &[5], 1), slice("x-1", "a", 9, &[7], 1)]);
        let mut t = PortTracker::new("n1");
        t.update_shared(&services, &slices);
        // a slice moved from a to c: both recomputed
        slices[2] = Arc::new(slice("x-1", "c", 9, &[7], 2));
        assert_eq!(t.update_shared(&services, &slices), keys(&["a", "c"]));
        assert_same(&t, &services, &slices);
        // a slice deleted: its Service recomputed (no endpoints left)
        slices.remove(1);
        assert_eq!(t.update_shared(&services, &slices), keys(&["b"]));
        assert!(!t.ports_of(&ServiceKey::new("default", "b"))[0].has_endpoints);
        // a Service deleted: gone from the ports
        services.remove(0);
        assert_eq!(t.update_shared(&services, &slices), keys(&["a"]));
        assert!(t.ports_of(&ServiceKey::new("default", "a")).is_empty());
        assert_same(&t, &services, &slices);
        // deleted and made again under the same name (a new uid): recomputed
        let mut again = svc("c", 4, 1);
        again.metadata.uid = Some("svc-c-2".into());
        services[1] = Arc::new(again);
        assert_eq!(t.update_shared(&services, &slices), keys(&["c"]));
        assert_same(&t, &services, &slices);
        // hand-made objects without a resourceVersion are never taken as unchanged, even as the same Arc
        Arc::make_mut(&mut services[0]).metadata.resource_version = None;
        assert_eq!(t.update_shared(&services, &slices), keys(&["b"]));
        assert_eq!(t.update_shared(&services, &slices), keys(&["b"]));
        // reset: everything again, a too (a Service gone whose slice a-1 is still there)
        t.reset();
        assert_eq!(t.update_shared(&services, &slices), keys(&["a", "b", "c"]));
        assert_same(&t, &services, &slices);
    }

    /// One object through its life, each step a new Arc as the store makes it: modified, deleted, made again
    /// under the same name (a new uid), and a slice relabelled to another Service and back.
    #[test]
    fn an_object_modified_deleted_recreated_and_relabelled() {
        let mut services = shared(vec![svc("a", 1, 1), svc("b", 2, 1)]);
        let mut slices = shared(vec![slice("a-1", "a", 1, &[5], 1), slice("b-1", "b", 2, &[6], 1)]);
        let mut t = PortTracker::new("n1");
        assert_eq!(t.update_shared(&services, &slices), keys(&["a", "b"]));
        let endpoints = |t: &PortTracker, name: &str| -> Vec<String> {
            t.ports_of(&ServiceKey::new("default", name)).iter().flat_map(|p| p.cluster_endpoints.iter().map(|e| e.ip.to_string())).collect()
        };
        // modified
        slices[0] = Arc::new(slice("a-1", "a", 1, &[7, 8], 2));
        assert_eq!(t.update_shared(&services, &slices), keys(&["a"]));
        assert_eq!(endpoints(&t, "a"), ["10.244.1.7", "10.244.1.8"]);
        assert_same(&t, &services, &slices);
        // deleted (the slice and the Service)
        slices.remove(0);
        services.remove(0);
        assert_eq!(t.update_shared(&services, &slices), keys(&["a"]));
        assert!(t.ports_of(&ServiceKey::new("default", "a")).is_empty());
        assert_same(&t, &services, &slices);
        // made again under the same names: new uids, versions that happen to equal the old ones
        let mut again = slice("a-1", "a", 3, &[9], 1);
        again.metadata.uid = Some("slice-a-1-again".into());
        slices.push(Arc::new(again));
        assert_eq!(t.update_shared(&services, &slices), keys(&["a"]), "a slice of a Service not there (yet)");
        assert!(t.ports_of(&ServiceKey::new("default", "a")).is_empty());
        let mut again = svc("a", 1, 1);
        again.metadata.uid = Some("svc-a-again".into());
        services.insert(0, Arc::new(again));
        assert_eq!(t.update_shared(&services, &slices), keys(&["a"]));
        assert_eq!(endpoints(&t, "a"), ["10.244.3.9"], "the new slice's endpoints, found through the index");
        assert_same(&t, &services, &slices);
        // deleted and made again between two updates (the old uid gone, the new one there)
        let mut again = slice("a-1", "a", 4, &[1], 5);
        again.metadata.uid = Some("slice-a-1-third".into());
        let last = slices.len() - 1;
        slices[last] = Arc::new(again);
        assert_eq!(t.update_shared(&services, &slices), keys(&["a"]));
        assert_eq!(endpoints(&t, "a"), ["10.244.4.1"]);
        assert_same(&t, &services, &slices);
        // the slice relabelled to b: both; b has both slices' endpoints, a none
        let mut moved = slice("a-1", "b", 4, &[1], 6);
        moved.metadata.uid = Some("slice-a-1-third".into());
        slices[last] = Arc::new(moved);
        assert_eq!(t.update_shared(&services, &slices), keys(&["a", "b"]));
        assert_eq!(endpoints(&t, "b"), ["10.244.2.6", "10.244.4.1"]);
        assert!(endpoints(&t, "a").is_empty());
        assert_same(&t, &services, &slices);
        // and back, label removed, then a change to b's own slice: each time only what it feeds
        let mut back = slice("a-1", "a", 4, &[1], 7);
        back.metadata.uid = Some("slice-a-1-third".into());
        slices[last] = Arc::new(back);
        assert_eq!(t.update_shared(&services, &slices), keys(&["a", "b"]));
        assert_eq!(endpoints(&t, "b"), ["10.244.2.6"]);
        let mut unlabelled = slice("a-1", "a", 4, &[1], 8);
        unlabelled.metadata.uid = Some("slice-a-1-third".into());
        unlabelled.metadata.labels = None;
        slices[last] = Arc::new(unlabelled);
        assert_eq!(t.update_shared(&services, &slices), keys(&["a"]));
        assert!(endpoints(&t, "a").is_empty());
        slices[0] = Arc::new(slice("b-1", "b", 2, &[6, 7], 2));
        assert_eq!(t.update_shared(&services, &slices), keys(&["b"]));
        assert_same(&t, &services, &slices);
    }

    /// Many random changes in a row (a fixed seed): after each, the tracked ports equal a full recompute, through
    /// shared objects (what changed is a new Arc, the rest kept) and through plain ones (all new Arcs) alike.
    #[test]
    fn tracked_ports_equal_a_full_recompute_after_every_change() {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let mut services = shared((0..20).map(|i| svc(&format!("s{i}"), i + 1, 1)).collect());
        let mut slices = shared((0..20).map(|i| slice(&format!("s{i}-1"), &format!("s{i}"), i, &[1, 2], 1)).collect());
        let mut t = PortTracker::new("n1");
        let mut plain = PortTracker::new("n1");
        let values = |services: &[Arc<Service>], slices: &[Arc<EndpointSlice>]| -> (Vec<Service>, Vec<EndpointSlice>) {
            (services.iter().map(|s| (**s).clone()).collect(), slices.iter().map(|s| (**s).clone()).collect())
        };
        t.update_shared(&services, &slices);
        let (s, e) = values(&services, &slices);
        plain.update(&s, &e);
        for rv in 2..300u64 {
            let i = next(20) as u8;
            match next(7) {
                0 => {
                    let hosts: Vec<u8> = (0..next(4)).map(|_| next(5) as u8 + 1).collect();
                    let owner = format!("s{}", next(22)); // sometimes a Service that does not exist
                    let name = format!("s{i}-{}", next(2) + 1);
                    slices.retain(|s| s.metadata.name.as_deref() != Some(name.as_str()));
                    slices.push(Arc::new(slice(&name, &owner, i, &hosts, rv)));
                }
                1 => slices.retain(|s| s.metadata.name.as_deref() != Some(format!("s{i}-1").as_str())),
                2 => {
                    services.retain(|s| s.metadata.name.as_deref() != Some(format!("s{i}").as_str()));
                    services.push(Arc::new(svc(&format!("s{i}"), i + 100, rv)));
                }
                3 => services.retain(|s| s.metadata.name.as_deref() != Some(format!("s{i}").as_str())),
                4 => {
                    // made again under the same name: a new uid
                    services.retain(|s| s.metadata.name.as_deref() != Some(format!("s{i}").as_str()));
                    let mut again = svc(&format!("s{i}"), i + 150, rv);
                    again.metadata.uid = Some(format!("svc-s{i}-{rv}"));
                    services.push(Arc::new(again));
                }
                _ => {} // nothing changed
            }
            // the store's order is not kept from one state to the next
            let by = next(services.len().max(1) as u64) as usize;
            services.rotate_left(by);
            let changed = t.update_shared(&services, &slices);
            assert_same(&t, &services, &slices);
            assert!(changed.len() <= 2, "one change recomputes at most the two Services a relabeled slice feeds: {changed:?}");
            let (s, e) = values(&services, &slices);
            assert_eq!(plain.update(&s, &e), changed, "plain objects: the same Services recomputed");
        }
    }
}
