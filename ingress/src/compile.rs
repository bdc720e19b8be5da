//! From the cluster's objects to what the proxy serves: which Ingresses are ours (IngressClass), their rules
//! as a [`RouteTable`] whose backends carry their ready endpoints (EndpointSlices, no ClusterIP hop), the TLS
//! certificates per host (Secrets), and the problems worth an event (a missing Service, port or Secret).
//! Pure: the controller hands it a snapshot and swaps in the result.
//!
//! Must not: talk to the API or the network; fail as a whole because one Ingress is bad (its bad parts are
//! reported and the rest is served).

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend, IngressClass};
use rustls::sign::CertifiedKey;

use crate::routing::{HostMap, PathKind, RouteTable, RouteTableBuilder};

/// `spec.controller` of the IngressClasses this controller serves.
pub const CONTROLLER: &str = "rkube.io/ingress-controller";
/// The annotation that makes an IngressClass the cluster's default.
pub const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";
/// The annotation Ingresses used to name their class before `spec.ingressClassName`.
pub const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A Service port's endpoints, chosen round robin. Shared by every rule that names the same Service port.
#[derive(Debug)]
pub struct Backend {
    /// `namespace/service:port`, for logs and error bodies.
    pub name: String,
    /// Ready endpoints (address and the slice's port), sorted.
    pub endpoints: Vec<SocketAddr>,
    /// Why this backend cannot be served at all (a missing Service or port), for the 503 body.
    pub unavailable: Option<String>,
    next: AtomicUsize,
}

impl Backend {
    fn new(name: String, endpoints: Vec<SocketAddr>, unavailable: Option<String>) -> Backend {
        Backend {
            name,
            endpoints,
            unavailable,
            next: AtomicUsize::new(0),
        }
    }

    /// The next endpoint, round robin; None when there is none.
    pub fn pick(&self) -> Option<SocketAddr> {
        if self.endpoints.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        Some(self.endpoints[i % self.endpoints.len()])
    }

    /// What a client gets when [`Backend::pick`] finds nothing.
    pub fn unavailable_message(&self) -> String {
        match &self.unavailable {
            Some(why) => why.clone(),
            None => format!("service {} has no ready endpoints", self.name),
        }
    }
}

/// An Ingress, by namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IngressKey {
    /// The Ingress's namespace.
    pub namespace: String,
    /// The Ingress's name.
    pub name: String,
}

/// Something wrong with an Ingress, reported as a Warning event on it. The reasons are ours (in the spirit of
/// ingress-nginx's), not a Kubernetes API contract.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Problem {
    /// The Ingress the event goes to.
    pub ingress: IngressKey,
    /// The event's reason (`ServiceNotFound`, `SecretNotFound`, ...; the table in docs/ingress.md).
    pub reason: &'static str,
    /// The event's message: what is wrong and what is served instead.
    pub message: String,
}

/// What the proxy serves, built from one snapshot of the cluster.
#[derive(Default)]
pub struct Compiled {
    /// Host and path to backend, for every rule and default backend of the Ingresses served.
    pub routes: RouteTable<Arc<Backend>>,
    /// TLS certificates by host (SNI); hosts without one get the default certificate.
    pub certs: HostMap<Arc<CertifiedKey>>,
    /// The Ingresses this controller serves (their status carries our addresses).
    pub ours: Vec<IngressKey>,
    /// What is wrong with the Ingresses served, one entry per problem, for the controller's Warning events.
    pub problems: Vec<Problem>,
}

/// One snapshot of the objects the controller watches.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot<'a> {
    /// Every Ingress (those of other classes are left out by the compile).
    pub ingresses: &'a [Ingress],
    /// Every IngressClass: which are ours, and which is the default.
    pub classes: &'a [IngressClass],
    /// The Services the backends name (their ports, by number or name).
    pub services: &'a [Service],
    /// The EndpointSlices, matched to their Service by the `kubernetes.io/service-name` label.
    pub slices: &'a [EndpointSlice],
    /// The Secrets the Ingresses' `tls` sections name.
    pub secrets: &'a [Secret],
}

/// The IngressClasses whose controller is ours, and whether one of them is the default.
struct Classes {
    names: BTreeSet<String>,
    default: bool,
}

impl Classes {
    fn of(classes: &[IngressClass]) -> Classes {
        let ours: Vec<&IngressClass> = classes
            .iter()
            .filter(|c| c.spec.as_ref().and_then(|s| s.controller.as_deref()) == Some(CONTROLLER))
            .collect();
        Classes {
            names: ours
                .iter()
                .filter_map(|c| c.metadata.name.clone())
                .collect(),
            default: ours.iter().any(|c| is_default_class(c)),
        }
    }

    /// Upstream's order: `spec.ingressClassName`, else the legacy annotation, else the default class.
    fn serves(&self, ing: &Ingress) -> bool {
        if let Some(name) = ing
            .spec
            .as_ref()
            .and_then(|s| s.ingress_class_name.as_deref())
        {
            return self.names.contains(name);
        }
        if let Some(name) = ing
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(LEGACY_CLASS_ANNOTATION))
        {
            return self.names.contains(name.as_str());
        }
        self.default
    }
}

/// True for an IngressClass annotated as the cluster's default.
pub fn is_default_class(c: &IngressClass) -> bool {
    c.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
        .map(|v| v == "true")
        .unwrap_or(false)
}

/// Builds what the proxy serves from `snap`. Ingresses are taken oldest first, so the oldest one wins a
/// conflict (the same host, path and type, or two default backends).
pub fn compile(snap: Snapshot<'_>) -> Compiled {
    let classes = Classes::of(snap.classes);
    let mut ingresses: Vec<&Ingress> = snap
        .ingresses
        .iter()
        .filter(|i| classes.serves(i))
        .collect();
    ingresses.sort_by(|a, b| {
        let t = |i: &Ingress| i.metadata.creation_timestamp.as_ref().map(|t| t.0);
        t(a).cmp(&t(b)).then_with(|| key(a).cmp(&key(b)))
    });
    let mut out = Compiled::default();
    let mut resolver = Resolver::new(snap);
    let mut builder = RouteTableBuilder::default();
    for ing in ingresses {
        let ik = key(ing);
        let Some(spec) = ing.spec.as_ref() else {
            out.ours.push(ik);
            continue;
        };
        let mut problems = BTreeSet::new();
        if let Some(b) = &spec.default_backend {
            let backend = resolver.backend(&ik, b, &mut problems);
            builder.default_backend(backend);
        }
        let mut rule_hosts = Vec::new();
        for rule in spec.rules.iter().flatten() {
            let host = rule.host.as_deref().filter(|h| !h.is_empty());
            if let Some(h) = host {
                rule_hosts.push(h.to_string());
            }
            for p in rule.http.iter().flat_map(|h| h.paths.iter()) {
                let kind = if p.path_type == "Exact" {
                    PathKind::Exact
                } else {
                    PathKind::Prefix
                };
                let path = p.path.as_deref().filter(|s| !s.is_empty()).unwrap_or("/");
                let backend = resolver.backend(&ik, &p.backend, &mut problems);
                builder.add(host, path, kind, backend);
            }
        }
        for tls in spec.tls.iter().flatten() {
            // no secretName: the default certificate (upstream leaves this to the controller)
            let Some(secret_name) = tls.secret_name.as_deref().filter(|s| !s.is_empty()) else {
                continue;
            };
            let hosts: Vec<String> = match tls.hosts.as_ref().filter(|h| !h.is_empty()) {
                Some(h) => h.clone(),
                None => rule_hosts.clone(),
            };
            match resolver.cert(&ik.namespace, secret_name) {
                Ok(cert) => {
                    for h in &hosts {
                        out.certs.entry_or_insert_with(Some(h), || cert.clone());
                    }
                }
                Err((reason, why)) => {
                    let shown = if hosts.is_empty() {
                        "its hosts".to_string()
                    } else {
                        hosts.join(", ")
                    };
                    problems.insert((
                        reason,
                        format!("{why}: {shown} served with the default certificate"),
                    ));
                }
            }
        }
        out.problems
            .extend(problems.into_iter().map(|(reason, message)| Problem {
                ingress: ik.clone(),
                reason,
                message,
            }));
        out.ours.push(ik);
    }
    out.routes = builder.build();
    out
}

fn key(i: &Ingress) -> IngressKey {
    IngressKey {
        namespace: i
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        name: i.metadata.name.clone().unwrap_or_default(),
    }
}

/// A parsed TLS Secret, or the reason and message of the problem with it.
type CertResult = Result<Arc<CertifiedKey>, (&'static str, String)>;

/// Looks up Services, their endpoints and Secrets, sharing one [`Backend`] per Service port.
struct Resolver<'a> {
    snap: Snapshot<'a>,
    services: HashMap<(&'a str, &'a str), &'a Service>,
    slices: HashMap<(&'a str, &'a str), Vec<&'a EndpointSlice>>,
    backends: HashMap<String, Arc<Backend>>,
    certs: HashMap<(String, String), CertResult>,
}

impl<'a> Resolver<'a> {
    fn new(snap: Snapshot<'a>) -> Resolver<'a> {
        let ns = |m: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
            m.namespace.as_deref().unwrap_or("default")
        };
        let services = snap
            .services
            .iter()
            .filter_map(|s| Some(((ns(&s.metadata), s.metadata.name.as_deref()?), s)))
            .collect();
        let mut slices: HashMap<_, Vec<_>> = HashMap::new();
        for s in snap.slices {
            if let Some(svc) = s
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
            {
                slices
                    .entry((ns(&s.metadata), svc.as_str()))
                    .or_default()
                    .push(s);
            }
        }
        Resolver {
            snap,
            services,
            slices,
            backends: HashMap::new(),
            certs: HashMap::new(),
        }
    }

    /// The backend an IngressBackend names; problems found on the way go to `problems`.
    fn backend(
        &mut self,
        ing: &IngressKey,
        b: &IngressBackend,
        problems: &mut BTreeSet<(&'static str, String)>,
    ) -> Arc<Backend> {
        let Some(svc) = &b.service else {
            let what = b
                .resource
                .as_ref()
                .map(|r| format!("{} {:?}", r.kind, r.name))
                .unwrap_or_else(|| "a backend without a service".into());
            let message = format!(
                "{what}: resource backends are not supported by the rkube ingress controller"
            );
            problems.insert(("UnsupportedBackend", message.clone()));
            return self.shared(
                format!("{}/resource:{what}", ing.namespace),
                Vec::new(),
                Some(message),
            );
        };
        let port = svc.port.as_ref();
        let port_shown = match (
            port.and_then(|p| p.number),
            port.and_then(|p| p.name.as_deref()),
        ) {
            (Some(n), _) => n.to_string(),
            (None, Some(n)) => n.to_string(),
            (None, None) => "<none>".into(),
        };
        let name = format!("{}/{}:{}", ing.namespace, svc.name, port_shown);
        if let Some(b) = self.backends.get(&name) {
            return b.clone();
        }
        let Some(service) = self
            .services
            .get(&(ing.namespace.as_str(), svc.name.as_str()))
            .copied()
        else {
            let message = format!("service \"{}/{}\" not found", ing.namespace, svc.name);
            problems.insert(("ServiceNotFound", message.clone()));
            return self.shared(name, Vec::new(), Some(message));
        };
        let spec = service.spec.as_ref();
        if spec.and_then(|s| s.type_.as_deref()) == Some("ExternalName") {
            let message = format!(
                "service \"{}/{}\" is of type ExternalName: not supported as an ingress backend",
                ing.namespace, svc.name
            );
            problems.insert(("UnsupportedBackend", message.clone()));
            return self.shared(name, Vec::new(), Some(message));
        }
        let svc_port = spec.and_then(|s| s.ports.as_ref()).and_then(|ports| {
            ports.iter().find(|p| {
                match (
                    port.and_then(|p| p.number),
                    port.and_then(|p| p.name.as_deref()),
                ) {
                    (Some(n), _) => p.port == n,
                    (None, Some(n)) => p.name.as_deref() == Some(n),
                    (None, None) => false,
                }
            })
        });
        let Some(svc_port) = svc_port else {
            let message = format!(
                "service \"{}/{}\" has no port {port_shown}",
                ing.namespace, svc.name
            );
            problems.insert(("ServicePortNotFound", message.clone()));
            return self.shared(name, Vec::new(), Some(message));
        };
        let endpoints = self.endpoints(
            &ing.namespace,
            &svc.name,
            svc_port.name.as_deref().unwrap_or(""),
        );
        self.shared(name, endpoints, None)
    }

    fn shared(
        &mut self,
        name: String,
        endpoints: Vec<SocketAddr>,
        unavailable: Option<String>,
    ) -> Arc<Backend> {
        self.backends
            .entry(name.clone())
            .or_insert_with(|| Arc::new(Backend::new(name, endpoints, unavailable)))
            .clone()
    }

    /// Ready endpoints of a Service port (by the port's name, as EndpointSlices name their ports). A nil `ready`
    /// condition counts as ready, as the EndpointSlice API says.
    fn endpoints(&self, ns: &str, svc: &str, port_name: &str) -> Vec<SocketAddr> {
        let mut out = BTreeSet::new();
        for slice in self.slices.get(&(ns, svc)).into_iter().flatten() {
            if slice.address_type == "FQDN" {
                continue;
            }
            let Some(port) = slice
                .ports
                .iter()
                .flatten()
                .find(|p| {
                    p.name.as_deref().unwrap_or("") == port_name
                        && p.protocol.as_deref().unwrap_or("TCP") == "TCP"
                })
                .and_then(|p| p.port)
            else {
                continue;
            };
            let Ok(port) = u16::try_from(port) else {
                continue;
            };
            for ep in &slice.endpoints {
                if ep.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                    continue;
                }
                for a in &ep.addresses {
                    if let Ok(ip) = a.parse::<IpAddr>() {
                        out.insert(SocketAddr::new(ip, port));
                    }
                }
            }
        }
        out.into_iter().collect()
    }

    /// The certificate of a TLS Secret in `ns`, parsed once per compile.
    fn cert(&mut self, ns: &str, name: &str) -> Result<Arc<CertifiedKey>, (&'static str, String)> {
        let snap = self.snap;
        self.certs
            .entry((ns.to_string(), name.to_string()))
            .or_insert_with(|| {
                let secret = snap
                    .secrets
                    .iter()
                    .find(|s| {
                        s.metadata.namespace.as_deref().unwrap_or("default") == ns
                            && s.metadata.name.as_deref() == Some(name)
                    })
                    .ok_or_else(|| {
                        (
                            "SecretNotFound",
                            format!("TLS secret \"{ns}/{name}\" not found"),
                        )
                    })?;
                crate::tls::certified_key(secret)
                    .map(Arc::new)
                    .map_err(|e| ("InvalidSecret", format!("TLS secret \"{ns}/{name}\": {e}")))
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::Route;
    use serde_json::json;

    fn obj<T: k8s_openapi::serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).expect("valid object")
    }

    fn class(name: &str, controller: &str, default: bool) -> IngressClass {
        let ann = if default {
            json!({DEFAULT_CLASS_ANNOTATION: "true"})
        } else {
            json!({})
        };
        obj(
            json!({"metadata": {"name": name, "annotations": ann}, "spec": {"controller": controller}}),
        )
    }

    fn service(name: &str, ports: serde_json::Value) -> Service {
        obj(json!({"metadata": {"name": name, "namespace": "default"}, "spec": {"ports": ports}}))
    }

    fn slice(svc: &str, port_name: &str, port: i32, eps: &[(&str, Option<bool>)]) -> EndpointSlice {
        let endpoints: Vec<_> = eps
            .iter()
            .map(|(a, ready)| match ready {
                Some(r) => json!({"addresses": [a], "conditions": {"ready": r}}),
                None => json!({"addresses": [a]}),
            })
            .collect();
        obj(json!({
            "metadata": {"name": format!("{svc}-x"), "namespace": "default", "labels": {SERVICE_NAME_LABEL: svc}},
            "addressType": "IPv4",
            "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
            "endpoints": endpoints,
        }))
    }

    fn ingress(name: &str, created: &str, spec: serde_json::Value) -> Ingress {
        obj(
            json!({"metadata": {"name": name, "namespace": "default", "creationTimestamp": created}, "spec": spec}),
        )
    }

    fn backend_of<'a>(c: &'a Compiled, host: &str, path: &str) -> Option<&'a Backend> {
        match c.routes.route(host, path) {
            Route::Rule { backend, .. } | Route::Default(backend) => Some(backend),
            Route::NotFound => None,
        }
    }

    fn svc_backend(name: &str, port: serde_json::Value) -> serde_json::Value {
        json!({"service": {"name": name, "port": port}})
    }

    #[test]
    fn which_ingresses_are_ours() {
        let classes = [
            class("rkube", CONTROLLER, true),
            class("nginx", "k8s.io/ingress-nginx", false),
        ];
        let rows = [
            (json!({"ingressClassName": "rkube"}), None, true),
            (json!({"ingressClassName": "nginx"}), None, false),
            (json!({"ingressClassName": "missing"}), None, false),
            (json!({}), None, true),
            (json!({}), Some("nginx"), false),
            (json!({}), Some("rkube"), true),
        ];
        for (spec, legacy, want) in rows {
            let mut ing = ingress("a", "2024-01-01T00:00:00Z", spec.clone());
            if let Some(l) = legacy {
                ing.metadata.annotations =
                    Some([(LEGACY_CLASS_ANNOTATION.to_string(), l.to_string())].into());
            }
            let c = compile(Snapshot {
                ingresses: &[ing],
                classes: &classes,
                services: &[],
                slices: &[],
                secrets: &[],
            });
            assert_eq!(c.ours.len() == 1, want, "{spec} legacy {legacy:?}");
        }
        // our class, not the default: an Ingress without a class is someone else's
        let classes = [class("rkube", CONTROLLER, false)];
        let ing = ingress("a", "2024-01-01T00:00:00Z", json!({}));
        let c = compile(Snapshot {
            ingresses: &[ing],
            classes: &classes,
            services: &[],
            slices: &[],
            secrets: &[],
        });
        assert!(c.ours.is_empty());
    }

    #[test]
    fn backends_resolve_to_ready_endpoints_by_port_number_or_name() {
        let classes = [class("rkube", CONTROLLER, true)];
        let services = [
            service(
                "web",
                json!([{"name": "http", "port": 80, "targetPort": 8080}, {"name": "admin", "port": 9000}]),
            ),
            service("api", json!([{"port": 81, "targetPort": 8081}])),
            service("empty", json!([{"port": 82}])),
        ];
        let slices = [
            slice(
                "web",
                "http",
                8080,
                &[
                    ("10.0.0.1", Some(true)),
                    ("10.0.0.2", None),
                    ("10.0.0.3", Some(false)),
                ],
            ),
            slice("web", "admin", 9000, &[("10.0.0.1", Some(true))]),
            slice("api", "", 8081, &[("10.0.1.1", Some(true))]),
        ];
        let ing = ingress(
            "i",
            "2024-01-01T00:00:00Z",
            json!({
                "defaultBackend": svc_backend("empty", json!({"number": 82})),
                "rules": [
                {"host": "a.example", "http": {"paths": [
                    {"path": "/", "pathType": "Prefix", "backend": svc_backend("web", json!({"number": 80}))},
                    {"path": "/admin", "pathType": "Exact", "backend": svc_backend("web", json!({"name": "admin"}))},
                    {"path": "/api", "pathType": "ImplementationSpecific", "backend": svc_backend("api", json!({"number": 81}))},
                    {"path": "/gone", "pathType": "Prefix", "backend": svc_backend("gone", json!({"number": 80}))},
                    {"path": "/noport", "pathType": "Prefix", "backend": svc_backend("web", json!({"number": 1234}))},
                ]}}
            ]}),
        );
        let c = compile(Snapshot {
            ingresses: &[ing],
            classes: &classes,
            services: &services,
            slices: &slices,
            secrets: &[],
        });
        let addrs = |host: &str, path: &str| {
            backend_of(&c, host, path).map(|b| {
                b.endpoints
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(
            addrs("a.example", "/x"),
            Some(vec!["10.0.0.1:8080".into(), "10.0.0.2:8080".into()])
        );
        assert_eq!(
            addrs("a.example", "/admin"),
            Some(vec!["10.0.0.1:9000".into()])
        );
        assert_eq!(
            addrs("a.example", "/admin/x"),
            Some(vec!["10.0.0.1:8080".into(), "10.0.0.2:8080".into()]),
            "Exact only"
        );
        assert_eq!(
            addrs("a.example", "/api/v1"),
            Some(vec!["10.0.1.1:8081".into()]),
            "ImplementationSpecific as Prefix"
        );
        assert_eq!(
            addrs("b.example", "/"),
            Some(vec![]),
            "the default backend, without endpoints"
        );
        let gone = backend_of(&c, "a.example", "/gone").expect("routed");
        assert_eq!(gone.pick(), None);
        assert_eq!(
            gone.unavailable_message(),
            "service \"default/gone\" not found"
        );
        let noport = backend_of(&c, "a.example", "/noport").expect("routed");
        assert_eq!(
            noport.unavailable_message(),
            "service \"default/web\" has no port 1234"
        );
        let empty = backend_of(&c, "b.example", "/").expect("default");
        assert_eq!(
            empty.unavailable_message(),
            "service default/empty:82 has no ready endpoints"
        );
        let reasons: Vec<(&str, &str)> = c
            .problems
            .iter()
            .map(|p| (p.reason, p.message.as_str()))
            .collect();
        assert_eq!(
            reasons,
            [
                ("ServiceNotFound", "service \"default/gone\" not found"),
                (
                    "ServicePortNotFound",
                    "service \"default/web\" has no port 1234"
                )
            ]
        );
    }

    #[test]
    fn round_robin_over_ready_endpoints() {
        let classes = [class("rkube", CONTROLLER, true)];
        let services = [service("web", json!([{"port": 80}]))];
        let slices = [slice(
            "web",
            "",
            80,
            &[
                ("10.0.0.1", Some(true)),
                ("10.0.0.2", Some(true)),
                ("10.0.0.3", Some(true)),
            ],
        )];
        let ing = ingress(
            "i",
            "2024-01-01T00:00:00Z",
            json!({"defaultBackend": svc_backend("web", json!({"number": 80}))}),
        );
        let c = compile(Snapshot {
            ingresses: &[ing],
            classes: &classes,
            services: &services,
            slices: &slices,
            secrets: &[],
        });
        let b = backend_of(&c, "x", "/").expect("default");
        let picks: Vec<String> = (0..6)
            .filter_map(|_| b.pick())
            .map(|a| a.ip().to_string())
            .collect();
        assert_eq!(
            picks,
            ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.1", "10.0.0.2", "10.0.0.3"]
        );
    }

    #[test]
    fn the_oldest_ingress_wins_a_conflict() {
        let classes = [class("rkube", CONTROLLER, true)];
        let services = [
            service("old", json!([{"port": 80}])),
            service("new", json!([{"port": 80}])),
        ];
        let rule = |svc: &str| {
            json!({"defaultBackend": svc_backend(svc, json!({"number": 80})),
                   "rules": [{"host": "a.example", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": svc_backend(svc, json!({"number": 80}))}]}}]})
        };
        // listed newest first: the order of the list must not matter
        let ings = [
            ingress("b-new", "2024-02-01T00:00:00Z", rule("new")),
            ingress("a-old", "2024-01-01T00:00:00Z", rule("old")),
        ];
        let c = compile(Snapshot {
            ingresses: &ings,
            classes: &classes,
            services: &services,
            slices: &[],
            secrets: &[],
        });
        assert_eq!(
            backend_of(&c, "a.example", "/").map(|b| b.name.as_str()),
            Some("default/old:80")
        );
        assert_eq!(
            backend_of(&c, "other", "/").map(|b| b.name.as_str()),
            Some("default/old:80")
        );
        assert_eq!(c.ours.len(), 2);
    }

    #[test]
    fn tls_secrets_give_certificates_per_host_and_problems_when_missing_or_bad() {
        let classes = [class("rkube", CONTROLLER, true)];
        let pair = crate::tls::self_signed(&["a.example".into()]).expect("self-signed");
        let good: Secret = obj(json!({
            "metadata": {"name": "tls-a", "namespace": "default"}, "type": "kubernetes.io/tls",
            "data": {"tls.crt": b64(&pair.0), "tls.key": b64(&pair.1)}
        }));
        let nokey: Secret = obj(
            json!({"metadata": {"name": "tls-bad", "namespace": "default"}, "data": {"tls.crt": b64(&pair.0)}}),
        );
        let ing = ingress(
            "i",
            "2024-01-01T00:00:00Z",
            json!({
                "tls": [{"hosts": ["a.example"], "secretName": "tls-a"},
                        {"hosts": ["b.example"], "secretName": "tls-missing"},
                        {"secretName": "tls-bad"}],
                "rules": [{"host": "c.example"}]
            }),
        );
        let c = compile(Snapshot {
            ingresses: &[ing],
            classes: &classes,
            services: &[],
            slices: &[],
            secrets: &[good, nokey],
        });
        assert!(c.certs.lookup("a.example").is_some());
        assert!(c.certs.lookup("b.example").is_none());
        assert!(c.certs.lookup("c.example").is_none());
        let problems: Vec<(&str, &str)> = c
            .problems
            .iter()
            .map(|p| (p.reason, p.message.as_str()))
            .collect();
        assert_eq!(
            problems,
            [
                ("InvalidSecret", "TLS secret \"default/tls-bad\": no tls.key in the secret: c.example served with the default certificate"),
                ("SecretNotFound", "TLS secret \"default/tls-missing\" not found: b.example served with the default certificate"),
            ]
        );
    }

    fn b64(s: &str) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(s)
    }
}
