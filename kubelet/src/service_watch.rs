//! One watch of Services and EndpointSlices (kube-rs reflectors) shared by everything on the node that follows
//! them: the service proxy and the cluster DNS. Namespaces are watched too: cluster DNS answers NXDOMAIN for a
//! namespace that does not exist and NODATA for one that does. After each change every consumer gets the full
//! state, as often as [`SyncLimiter`] allows.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::{Api, Client};

/// Once the burst is spent, consumers run at most this often, so a rollout touching many slices at once costs few
/// syncs. Upstream kube-proxy's `--min-sync-period` defaults to 1s; rkube takes 50 ms (the debounce it replaces):
/// a sync here rewrites only the changed Services' chains, and cluster DNS follows the same watch, so a second of
/// lag on a rollout's endpoints (and names) would cost more than the syncs it saves. (With 1 s, a client that
/// connects as soon as `kubectl rollout status` returns found no rule yet: services_proxy.rs did, 3 runs in 5.)
pub const MIN_SYNC_PERIOD: Duration = Duration::from_millis(50);
/// Upstream's `burstSyncs`: this many syncs may follow each other at once before [`MIN_SYNC_PERIOD`] applies.
pub const BURST_SYNCS: u32 = 2;
/// With no change for this long, consumers run anyway (upstream kube-proxy's `--sync-period` default): each
/// checks its own clock then, as the proxy does for its periodic full resync, which a quiet cluster would
/// otherwise never get.
pub const SYNC_PERIOD: Duration = Duration::from_secs(30);

/// When the next sync may run: upstream's BoundedFrequencyRunner (a token bucket of `burst` syncs refilled one per
/// `min_period`). A change after a quiet spell is synced at once, with no wait for more to come (the 50 ms
/// debounce this replaces delayed every change by 50 ms); a burst of changes is synced at most `burst` times at
/// once, then once per `min_period`. Pure: the caller passes the time.
#[derive(Debug, Clone)]
pub struct SyncLimiter {
    min_period: Duration,
    burst: u32,
    /// Syncs available at `at`, in units of one sync (fractions accumulate between syncs).
    tokens: f64,
    at: Instant,
}

impl SyncLimiter {
    /// A limiter with its bucket full at `now`: the first `burst` syncs (at least one) run at once.
    pub fn new(min_period: Duration, burst: u32, now: Instant) -> SyncLimiter {
        SyncLimiter { min_period, burst: burst.max(1), tokens: f64::from(burst.max(1)), at: now }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        let period = self.min_period.as_secs_f64();
        let gained = if period > 0.0 { elapsed / period } else { f64::from(self.burst) };
        self.tokens = (self.tokens + gained).min(f64::from(self.burst));
        self.at = now;
    }

    /// How long to wait from `now` before the next sync may run (zero: at once).
    pub fn wait(&mut self, now: Instant) -> Duration {
        self.refill(now);
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            self.min_period.mul_f64(1.0 - self.tokens)
        }
    }

    /// Records a sync run at `now` (after waiting as [`SyncLimiter::wait`] said).
    pub fn ran(&mut self, now: Instant) {
        self.refill(now);
        self.tokens = (self.tokens - 1.0).max(0.0);
    }
}

/// The Services, EndpointSlices and Namespaces of the whole cluster at one moment: the reflector stores' own
/// objects, shared (`Arc`), not copies. A store replaces an object's `Arc` on every change it applies, so an `Arc`
/// seen in an earlier state is that object at the same version: the proxy's tracker tells what changed by address
/// alone, without reading the objects that did not ([`crate::service_proxy::tracker`]).
#[derive(Debug, Clone, Default)]
pub struct ServiceState {
    /// Every Service of every namespace.
    pub services: Vec<Arc<Service>>,
    /// Every EndpointSlice; a Service's are those labelled `kubernetes.io/service-name` with its name.
    pub slices: Vec<Arc<EndpointSlice>>,
    /// Every Namespace: DNS answers names under a namespace only while it exists.
    pub namespaces: Vec<Arc<Namespace>>,
}

impl ServiceState {
    /// Every object's (uid, resourceVersion), in order: equal for two states holding the same objects at the same
    /// versions. Consumers that run on the quiet-period tick too ([`SYNC_PERIOD`]) compare it to skip work
    /// when nothing changed.
    pub fn versions(&self) -> Vec<(Option<String>, Option<String>)> {
        let meta = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| (m.uid.clone(), m.resource_version.clone());
        self.services
            .iter()
            .map(|o| meta(&o.metadata))
            .chain(self.slices.iter().map(|o| meta(&o.metadata)))
            .chain(self.namespaces.iter().map(|o| meta(&o.metadata)))
            .collect()
    }
}

/// Something that reacts to the service state; errors are logged and the watch goes on.
pub type Consumer = Box<dyn FnMut(&ServiceState) + Send>;

/// Why [`run`] returned.
#[derive(Debug, thiserror::Error)]
pub enum ServiceWatchError {
    /// A watch failed before its first list completed (the apiserver unreachable or refusing).
    #[error("watch of services, endpointslices and namespaces failed before the first list: {0}")]
    Initial(String),
    /// A watch stream ended. Errors are retried with backoff inside the streams, so this is the end of the
    /// watch, not a hiccup: Services and DNS stop following the API.
    #[error("watch of services and endpointslices ended")]
    Ended,
}

/// The objects the watches saw change since the loop last read them (by namespace and name), or `relisted`: a
/// watch (re)listed, and a relist does not tell which objects it dropped, so the next read is a full one.
#[derive(Default)]
struct Pending {
    services: HashSet<ObjectRef<Service>>,
    slices: HashSet<ObjectRef<EndpointSlice>>,
    namespaces: HashSet<ObjectRef<Namespace>>,
    relisted: bool,
}

/// Follows one reflector's events: records each object it applies or deletes in `pending` (the store already
/// holds the change when the event gets here) and wakes the loop.
fn follow<K, S>(
    stream: S,
    pending: Arc<Mutex<Pending>>,
    pick: fn(&mut Pending) -> &mut HashSet<ObjectRef<K>>,
    tx: tokio::sync::mpsc::Sender<()>,
) -> tokio::task::JoinHandle<()>
where
    K: kube::Resource<DynamicType = ()> + Send + 'static,
    S: futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        let mut s = std::pin::pin!(stream);
        while let Some(event) = s.next().await {
            {
                let mut p = pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                match event {
                    Ok(watcher::Event::Apply(o) | watcher::Event::Delete(o)) => {
                        pick(&mut p).insert(ObjectRef::from_obj(&o));
                    }
                    Ok(watcher::Event::Init | watcher::Event::InitApply(_) | watcher::Event::InitDone) => p.relisted = true,
                    // retried with backoff; a restart relists
                    Err(_) => continue,
                }
            }
            let _ = tx.try_send(());
        }
    })
}

/// Watches until the streams end. Consumers run once both caches are filled, then after every change.
///
/// The state the consumers get is kept between syncs: only the objects the watches reported changed are taken
/// again from the stores ([`Mirror::apply`]), so one change costs one object. Taking every object's `Arc` from the
/// stores touches every object, cold after a quiet second: 10-60 ms a change at 5,000 Services x 10 endpoints on
/// a busy 2-core VM, before any consumer ran. The state is rebuilt from the stores after a relist, on start and
/// on the [`SYNC_PERIOD`] tick.
pub async fn run(client: Client, mut consumers: Vec<Consumer>) -> Result<(), ServiceWatchError> {
    let (svc_store, svc_writer) = reflector::store::<Service>();
    let (slice_store, slice_writer) = reflector::store::<EndpointSlice>();
    let (ns_store, ns_writer) = reflector::store::<Namespace>();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    let pending = Arc::new(Mutex::new(Pending::default()));

    let svc_stream = reflector(svc_writer, watcher(Api::<Service>::all(client.clone()), watcher::Config::default())).default_backoff();
    let slice_stream =
        reflector(slice_writer, watcher(Api::<EndpointSlice>::all(client.clone()), watcher::Config::default())).default_backoff();
    let ns_stream = reflector(ns_writer, watcher(Api::<Namespace>::all(client), watcher::Config::default())).default_backoff();
    let svc_task = follow(svc_stream, pending.clone(), |p| &mut p.services, tx.clone());
    let slice_task = follow(slice_stream, pending.clone(), |p| &mut p.slices, tx.clone());
    let ns_task = follow(ns_stream, pending.clone(), |p| &mut p.namespaces, tx);

    svc_store.wait_until_ready().await.map_err(|e| ServiceWatchError::Initial(e.to_string()))?;
    slice_store.wait_until_ready().await.map_err(|e| ServiceWatchError::Initial(e.to_string()))?;
    ns_store.wait_until_ready().await.map_err(|e| ServiceWatchError::Initial(e.to_string()))?;
    let mut limiter = SyncLimiter::new(MIN_SYNC_PERIOD, BURST_SYNCS, Instant::now());
    let mut state = ServiceState::default();
    let (mut svcs, mut slices, mut nss) = (Mirror::default(), Mirror::default(), Mirror::default());
    let mut full = true;
    loop {
        limiter.ran(Instant::now());
        // taken before the stores are read: a change recorded later is in the next round too (reading it twice
        // is harmless)
        let changes = std::mem::take(&mut *pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        if full || changes.relisted {
            svcs.full(&mut state.services, &svc_store);
            slices.full(&mut state.slices, &slice_store);
            nss.full(&mut state.namespaces, &ns_store);
        } else {
            svcs.apply(&mut state.services, &svc_store, changes.services);
            slices.apply(&mut state.slices, &slice_store, changes.slices);
            nss.apply(&mut state.namespaces, &ns_store, changes.namespaces);
        }
        for consume in consumers.iter_mut() {
            consume(&state);
        }
        full = match tokio::time::timeout(SYNC_PERIOD, rx.recv()).await {
            Ok(None) => break,
            Ok(Some(())) => false,
            Err(_) => true,
        };
        let wait = limiter.wait(Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        // what came in meanwhile is in the state about to be read
        while rx.try_recv().is_ok() {}
    }
    svc_task.abort();
    slice_task.abort();
    ns_task.abort();
    Err(ServiceWatchError::Ended)
}

/// Where each object of one kind is in the state's list, so that a change is applied in place.
struct Mirror<K: kube::Resource<DynamicType = ()>> {
    index: HashMap<ObjectRef<K>, usize>,
}

impl<K: kube::Resource<DynamicType = ()>> Default for Mirror<K> {
    fn default() -> Self {
        Mirror { index: HashMap::new() }
    }
}

impl<K: kube::Resource<DynamicType = ()> + Clone> Mirror<K> {
    /// `items`: every object of `store`.
    fn full(&mut self, items: &mut Vec<Arc<K>>, store: &reflector::Store<K>) {
        *items = store.state();
        self.index = items.iter().enumerate().map(|(i, o)| (ObjectRef::from_obj(&**o), i)).collect();
    }

    /// The objects `changed` taken again from `store` into `items`: replaced, added, or removed when the store
    /// no longer has them.
    fn apply(&mut self, items: &mut Vec<Arc<K>>, store: &reflector::Store<K>, changed: HashSet<ObjectRef<K>>) {
        for r in changed {
            match (store.get(&r), self.index.get(&r).copied()) {
                (Some(o), Some(i)) => items[i] = o,
                (Some(o), None) => {
                    self.index.insert(r, items.len());
                    items.push(o);
                }
                (None, Some(i)) => {
                    self.index.remove(&r);
                    items.swap_remove(i);
                    if let Some(moved) = items.get(i) {
                        self.index.insert(ObjectRef::from_obj(&**moved), i);
                    }
                }
                (None, None) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(uid: &str, version: &str, cluster_ip: &str) -> Arc<Service> {
        let mut s = Service::default();
        s.metadata.uid = Some(uid.into());
        s.metadata.resource_version = Some(version.into());
        s.spec = Some(k8s_openapi::api::core::v1::ServiceSpec { cluster_ip: Some(cluster_ip.into()), ..Default::default() });
        Arc::new(s)
    }

    #[test]
    fn a_mirror_applies_the_changed_objects_and_equals_the_store() {
        let (store, mut writer) = reflector::store::<Service>();
        let named = |name: &str, uid: &str, version: &str| {
            let mut s = (*service(uid, version, "10.96.0.1")).clone();
            s.metadata.name = Some(name.into());
            s.metadata.namespace = Some("default".into());
            s
        };
        for (name, uid) in [("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")] {
            writer.apply_watcher_event(&watcher::Event::Apply(named(name, uid, "1")));
        }
        let (mut mirror, mut items) = (Mirror::default(), Vec::new());
        mirror.full(&mut items, &store);
        // the same objects as the store's: the same Arcs
        let sorted = |v: &[Arc<Service>]| {
            let mut v: Vec<usize> = v.iter().map(|s| Arc::as_ptr(s) as usize).collect();
            v.sort();
            v
        };
        assert_eq!(sorted(&items), sorted(&store.state()));
        let untouched = items.iter().find(|s| s.metadata.name.as_deref() == Some("d")).cloned().expect("d");
        // b modified, a deleted (not the last: the last moves into its place), e added, c deleted and made again
        // (a new uid), x deleted before it was ever read
        writer.apply_watcher_event(&watcher::Event::Apply(named("b", "2", "2")));
        writer.apply_watcher_event(&watcher::Event::Delete(named("a", "1", "1")));
        writer.apply_watcher_event(&watcher::Event::Apply(named("e", "5", "1")));
        writer.apply_watcher_event(&watcher::Event::Delete(named("c", "3", "1")));
        writer.apply_watcher_event(&watcher::Event::Apply(named("c", "6", "1")));
        let changed: HashSet<ObjectRef<Service>> = ["b", "a", "e", "c", "x"].iter().map(|n| ObjectRef::new(n).within("default")).collect();
        mirror.apply(&mut items, &store, changed);
        assert_eq!(sorted(&items), sorted(&store.state()));
        assert_eq!(items.len(), 4);
        assert!(items.iter().any(|s| Arc::ptr_eq(s, &untouched)), "an object not changed keeps its Arc");
        for (i, s) in items.iter().enumerate() {
            assert_eq!(mirror.index.get(&ObjectRef::from_obj(&**s)), Some(&i), "the index follows the moves");
        }
        // all of them deleted, one change set: nothing left
        let all: HashSet<ObjectRef<Service>> = items.iter().map(|s| ObjectRef::from_obj(&**s)).collect();
        for s in items.clone() {
            writer.apply_watcher_event(&watcher::Event::Delete((*s).clone()));
        }
        mirror.apply(&mut items, &store, all);
        assert!(items.is_empty() && mirror.index.is_empty());
    }

    #[test]
    fn versions_change_with_an_object_and_only_then() {
        let state = |v: &str| ServiceState { services: vec![service("a", v, "10.96.0.1")], ..Default::default() };
        assert_eq!(state("1").versions(), state("1").versions());
        assert_ne!(state("1").versions(), state("2").versions());
        assert_ne!(state("1").versions(), ServiceState::default().versions());
    }

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn a_change_after_a_quiet_spell_is_synced_at_once() {
        let t0 = Instant::now();
        let mut l = SyncLimiter::new(MIN_SYNC_PERIOD, BURST_SYNCS, t0);
        l.ran(t0); // the first sync, on start
        // a single change 5 s later: no wait
        assert_eq!(l.wait(t0 + MS(5000)), Duration::ZERO);
        l.ran(t0 + MS(5000));
        // another one 2 s after that: no wait either
        assert_eq!(l.wait(t0 + MS(7000)), Duration::ZERO);
    }

    #[test]
    fn a_burst_gets_burst_syncs_at_once_then_one_per_min_period() {
        let t0 = Instant::now();
        let mut l = SyncLimiter::new(Duration::from_secs(1), 2, t0);
        let mut t = t0;
        let mut waits = Vec::new();
        // changes arriving every 10 ms: each sync runs as soon as it may
        for _ in 0..5 {
            let w = l.wait(t);
            waits.push(w);
            t += w;
            l.ran(t);
            t += MS(10);
        }
        assert_eq!(waits[..2], [Duration::ZERO, Duration::ZERO], "the burst");
        // then one sync per second: the first waits for what is left of a token after the 20 ms of the burst
        // (980 ms), each later one for what 10 ms did not refill (990 ms)
        let ms: Vec<u128> = waits[2..].iter().map(Duration::as_millis).collect();
        assert!(ms.iter().zip([980, 990, 990]).all(|(w, want)| w.abs_diff(want) <= 1), "{waits:?}");
    }

    #[test]
    fn tokens_refill_to_the_burst_and_no_further() {
        let t0 = Instant::now();
        let mut l = SyncLimiter::new(MS(100), 2, t0);
        l.ran(t0);
        l.ran(t0);
        assert_eq!(l.wait(t0), MS(100), "empty: one period for the next token");
        assert_eq!(l.wait(t0 + MS(40)), MS(60));
        // an hour idle gives back 2 syncs, not more
        let later = t0 + Duration::from_secs(3600);
        l.ran(later);
        l.ran(later);
        assert_eq!(l.wait(later), MS(100));
    }
}
