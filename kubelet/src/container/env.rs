//! A container's environment, as upstream builds it: Service link variables of the namespace first (lowest
//! precedence), then `envFrom` sources in order, then `env` entries with `$(VAR)` expansion over what came
//! before. Values come from literals, `fieldRef`, `resourceFieldRef`, ConfigMap and Secret keys. Pure: the
//! caller fetches the ConfigMaps, Secrets and Services and passes them in.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, Service};

use rkube_apimachinery::quantity::{approximate_f64, milli_value, value as bytes};

/// Why an environment could not be built; reported as `CreateContainerConfigError`.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EnvError {
    /// A non-optional `configMapKeyRef` or `configMapRef` names a ConfigMap that does not exist.
    #[error("configmap \"{name}\" not found (namespace {namespace}); create it or mark the reference optional")]
    ConfigMapNotFound {
        /// The pod's namespace, where the object was looked for.
        namespace: String,
        /// The object's name.
        name: String,
    },
    /// A non-optional `secretKeyRef` or `secretRef` names a Secret that does not exist.
    #[error("secret \"{name}\" not found (namespace {namespace}); create it or mark the reference optional")]
    SecretNotFound {
        /// The pod's namespace, where the object was looked for.
        namespace: String,
        /// The object's name.
        name: String,
    },
    /// A non-optional key reference names a key the ConfigMap or Secret (`kind`) does not have.
    #[error("couldn't find key {key} in {kind} {namespace}/{name}")]
    KeyNotFound {
        /// `configmap` or `secret`.
        kind: &'static str,
        /// The pod's namespace, where the object was looked for.
        namespace: String,
        /// The object's name.
        name: String,
        /// The missing key.
        key: String,
    },
    /// A `fieldRef` path this kubelet does not serve ([`field_value`] lists those it does).
    #[error("env var {var}: unsupported fieldRef path {path:?}")]
    UnsupportedField {
        /// The environment variable being built.
        var: String,
        /// The `fieldPath`, as written.
        path: String,
    },
    /// A `resourceFieldRef` other than `limits.`/`requests.` of cpu, memory or ephemeral-storage.
    #[error("env var {var}: unsupported resourceFieldRef {resource:?}")]
    UnsupportedResource {
        /// The environment variable being built.
        var: String,
        /// The `resource`, as written.
        resource: String,
    },
    /// A `resourceFieldRef` divisor, or the resource it reads, is not a valid quantity.
    #[error("env var {var}: invalid quantity: {source}")]
    Quantity {
        /// The environment variable being built.
        var: String,
        /// The cause.
        #[source]
        source: rkube_apimachinery::quantity::QuantityError,
    },
}

/// Everything outside the pod that env values may refer to.
#[derive(Clone, Debug, Default)]
pub struct EnvSources {
    /// ConfigMaps of the pod's namespace by name.
    pub config_maps: HashMap<String, ConfigMap>,
    /// Secrets of the pod's namespace by name.
    pub secrets: HashMap<String, Secret>,
    /// Service account tokens for the pod's projected `serviceAccountToken` sources, by (audience,
    /// expirationSeconds): the token, or why the TokenRequest failed.
    pub tokens: HashMap<(String, i64), Result<String, String>>,
    /// Services of the pod's namespace, plus the `kubernetes` Service of `default` (always linked).
    pub services: Vec<Service>,
    /// This node's name: `spec.nodeName` when the pod does not carry it yet.
    pub node_name: String,
    /// This node's IP, for `status.hostIP`.
    pub host_ip: String,
    /// The pod's IP from its sandbox, for `status.podIP` (empty for a pod not yet networked).
    pub pod_ip: String,
    /// Node allocatable CPU in millicores: what resourceFieldRef reports for an unset `limits.cpu`.
    pub node_cpu_millis: i64,
    /// Node allocatable memory in bytes: what resourceFieldRef reports for an unset `limits.memory`.
    pub node_memory_bytes: i64,
}

/// Ordered environment; a later assignment to a name replaces the earlier value in place.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Env(Vec<(String, String)>);

impl Env {
    /// Assigns `k`: replaces an existing value in its place (keeping the first position), else appends.
    pub fn set(&mut self, k: &str, v: String) {
        match self.0.iter_mut().find(|(n, _)| n == k) {
            Some(e) => e.1 = v,
            None => self.0.push((k.to_string(), v)),
        }
    }

    /// The current value of `k`, for `$(VAR)` expansion.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    /// The variables in assignment order (each name once).
    pub fn vars(&self) -> &[(String, String)] {
        &self.0
    }

    /// `NAME=value` strings for an OCI process.
    pub fn to_oci(&self) -> Vec<String> {
        self.0.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }
}

/// Expands `$(NAME)` from `env`; `$$` is a literal `$`; unknown references stay as written (upstream's rule).
pub fn expand(s: &str, env: &Env) -> String {
    let mut out = String::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' && i + 1 < b.len() {
            if b[i + 1] == b'$' {
                out.push('$');
                i += 2;
                continue;
            }
            if b[i + 1] == b'(' {
                if let Some(end) = s[i + 2..].find(')') {
                    let name = &s[i + 2..i + 2 + end];
                    match env.get(name) {
                        Some(v) => out.push_str(v),
                        None => out.push_str(&s[i..i + 3 + end]),
                    }
                    i += 3 + end;
                    continue;
                }
            }
        }
        let ch = s[i..].chars().next().unwrap_or('\u{fffd}');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

fn env_name(service: &str) -> String {
    service.to_uppercase().replace('-', "_")
}

/// Docker-link style variables for the Services of the namespace (`{SVC}_SERVICE_HOST`, `_SERVICE_PORT`,
/// `_PORT`, `_PORT_<port>_<PROTO>` ...). Headless Services (no cluster IP) are skipped.
pub fn service_env(services: &[Service], pod_namespace: &str, enable_links: bool) -> Env {
    let mut env = Env::default();
    let mut sorted: Vec<&Service> = services.iter().collect();
    sorted.sort_by_key(|s| s.metadata.name.clone());
    for svc in sorted {
        let name = svc.metadata.name.as_deref().unwrap_or("");
        let ns = svc.metadata.namespace.as_deref().unwrap_or("default");
        let master = name == "kubernetes" && ns == "default";
        if !master && (ns != pod_namespace || !enable_links) {
            continue;
        }
        let Some(spec) = svc.spec.as_ref() else { continue };
        let ip = match spec.cluster_ip.as_deref() {
            Some(ip) if !ip.is_empty() && ip != "None" => ip,
            _ => continue,
        };
        let ports = spec.ports.as_deref().unwrap_or(&[]);
        let Some(first) = ports.first() else { continue };
        let n = env_name(name);
        env.set(&format!("{n}_SERVICE_HOST"), ip.to_string());
        env.set(&format!("{n}_SERVICE_PORT"), first.port.to_string());
        for p in ports {
            if let Some(pn) = p.name.as_deref().filter(|s| !s.is_empty()) {
                env.set(&format!("{n}_SERVICE_PORT_{}", env_name(pn)), p.port.to_string());
            }
        }
        let proto = |p: &k8s_openapi::api::core::v1::ServicePort| p.protocol.clone().unwrap_or_else(|| "TCP".into());
        env.set(&format!("{n}_PORT"), format!("{}://{ip}:{}", proto(first).to_lowercase(), first.port));
        for p in ports {
            let pr = proto(p);
            let prefix = format!("{n}_PORT_{}_{}", p.port, pr.to_uppercase());
            env.set(&prefix, format!("{}://{ip}:{}", pr.to_lowercase(), p.port));
            env.set(&format!("{prefix}_PROTO"), pr.to_lowercase());
            env.set(&format!("{prefix}_PORT"), p.port.to_string());
            env.set(&format!("{prefix}_ADDR"), ip.to_string());
        }
    }
    env
}

/// The value of a `fieldRef` path (`metadata.name`, `metadata.labels['app']`, `status.podIP`...).
pub fn field_value(pod: &Pod, path: &str, src: &EnvSources) -> Option<String> {
    let md = &pod.metadata;
    let subscript = |prefix: &str, map: Option<&BTreeMap<String, String>>| -> Option<Option<String>> {
        let rest = path.strip_prefix(prefix)?;
        let key = rest.strip_prefix("['")?.strip_suffix("']")?;
        Some(map.and_then(|m| m.get(key)).cloned().or(Some(String::new())))
    };
    if let Some(v) = subscript("metadata.labels", md.labels.as_ref()) {
        return v;
    }
    if let Some(v) = subscript("metadata.annotations", md.annotations.as_ref()) {
        return v;
    }
    let spec = pod.spec.as_ref();
    Some(match path {
        "metadata.name" => md.name.clone().unwrap_or_default(),
        "metadata.namespace" => md.namespace.clone().unwrap_or_else(|| "default".into()),
        "metadata.uid" => md.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_else(|| src.node_name.clone()),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()).unwrap_or_else(|| "default".into()),
        "status.hostIP" | "status.hostIPs" => src.host_ip.clone(),
        "status.podIP" | "status.podIPs" => src.pod_ip.clone(),
        _ => return None,
    })
}

/// The value of a `resourceFieldRef` (`limits.cpu`, `requests.memory`...) divided by `divisor`, rounded up;
/// an unset limit reports the node's allocatable amount, as upstream.
pub fn resource_value(
    c: &Container,
    resource: &str,
    divisor: Option<&str>,
    src: &EnvSources,
    var: &str,
) -> Result<String, EnvError> {
    let res = c.resources.as_ref();
    let (kind, which) = resource
        .split_once('.')
        .ok_or_else(|| EnvError::UnsupportedResource { var: var.into(), resource: resource.into() })?;
    let map = match kind {
        "limits" => res.and_then(|r| r.limits.as_ref()),
        "requests" => res.and_then(|r| r.requests.as_ref()),
        _ => return Err(EnvError::UnsupportedResource { var: var.into(), resource: resource.into() }),
    };
    let q = map.and_then(|m| m.get(which));
    let qerr = |source| EnvError::Quantity { var: var.into(), source };
    let value: f64 = match which {
        "cpu" => match q {
            Some(q) => milli_value(q).map_err(qerr)? as f64 / 1000.0,
            None if kind == "limits" => src.node_cpu_millis as f64 / 1000.0,
            None => 0.0,
        },
        "memory" | "ephemeral-storage" => match q {
            Some(q) => bytes(q).map_err(qerr)? as f64,
            None if kind == "limits" && which == "memory" => src.node_memory_bytes as f64,
            None => 0.0,
        },
        _ => return Err(EnvError::UnsupportedResource { var: var.into(), resource: resource.into() }),
    };
    let div = match divisor {
        Some(d) if !d.is_empty() => approximate_f64(d).map_err(qerr)?,
        _ => 1.0,
    };
    let div = if div == 0.0 { 1.0 } else { div };
    Ok(format!("{}", (value / div).ceil() as i64))
}

fn config_map_data(cm: &ConfigMap) -> BTreeMap<String, String> {
    let mut m = cm.data.clone().unwrap_or_default();
    for (k, v) in cm.binary_data.clone().unwrap_or_default() {
        m.insert(k, String::from_utf8_lossy(&v.0).into_owned());
    }
    m
}

fn secret_data(s: &Secret) -> BTreeMap<String, String> {
    let mut m: BTreeMap<String, String> =
        s.data.clone().unwrap_or_default().into_iter().map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned())).collect();
    for (k, v) in s.string_data.clone().unwrap_or_default() {
        m.insert(k, v);
    }
    m
}

/// A valid environment variable name (upstream: C identifier-ish, letters digits `_ - .`, not starting with a digit).
fn valid_env_name(k: &str) -> bool {
    !k.is_empty()
        && !k.starts_with(|c: char| c.is_ascii_digit())
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}

/// Builds the full environment of container `c` of `pod`.
pub fn container_env(pod: &Pod, c: &Container, src: &EnvSources) -> Result<Env, EnvError> {
    let ns = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let links = pod.spec.as_ref().and_then(|s| s.enable_service_links).unwrap_or(true);
    let mut env = service_env(&src.services, &ns, links);
    for from in c.env_from.as_deref().unwrap_or(&[]) {
        let prefix = from.prefix.clone().unwrap_or_default();
        let data = if let Some(r) = &from.config_map_ref {
            match src.config_maps.get(&r.name) {
                Some(cm) => config_map_data(cm),
                None if r.optional == Some(true) => continue,
                None => return Err(EnvError::ConfigMapNotFound { namespace: ns, name: r.name.clone() }),
            }
        } else if let Some(r) = &from.secret_ref {
            match src.secrets.get(&r.name) {
                Some(s) => secret_data(s),
                None if r.optional == Some(true) => continue,
                None => return Err(EnvError::SecretNotFound { namespace: ns, name: r.name.clone() }),
            }
        } else {
            continue;
        };
        for (k, v) in data {
            let name = format!("{prefix}{k}");
            // upstream skips invalid keys (and emits an event)
            if valid_env_name(&name) {
                env.set(&name, v);
            }
        }
    }
    for e in c.env.as_deref().unwrap_or(&[]) {
        let value = if let Some(v) = &e.value {
            expand(v, &env)
        } else if let Some(vf) = &e.value_from {
            if let Some(f) = &vf.field_ref {
                field_value(pod, &f.field_path, src)
                    .ok_or_else(|| EnvError::UnsupportedField { var: e.name.clone(), path: f.field_path.clone() })?
            } else if let Some(r) = &vf.resource_field_ref {
                let target = match r.container_name.as_deref().filter(|n| !n.is_empty()) {
                    Some(name) => pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.containers.iter().find(|c| c.name == name))
                        .unwrap_or(c),
                    None => c,
                };
                resource_value(target, &r.resource, r.divisor.as_ref().map(|d| d.0.as_str()), src, &e.name)?
            } else if let Some(r) = &vf.config_map_key_ref {
                let optional = r.optional == Some(true);
                match src.config_maps.get(&r.name) {
                    Some(cm) => match config_map_data(cm).get(&r.key) {
                        Some(v) => v.clone(),
                        None if optional => continue,
                        None => {
                            return Err(EnvError::KeyNotFound {
                                kind: "ConfigMap",
                                namespace: ns,
                                name: r.name.clone(),
                                key: r.key.clone(),
                            })
                        }
                    },
                    None if optional => continue,
                    None => return Err(EnvError::ConfigMapNotFound { namespace: ns, name: r.name.clone() }),
                }
            } else if let Some(r) = &vf.secret_key_ref {
                let optional = r.optional == Some(true);
                match src.secrets.get(&r.name) {
                    Some(s) => match secret_data(s).get(&r.key) {
                        Some(v) => v.clone(),
                        None if optional => continue,
                        None => {
                            return Err(EnvError::KeyNotFound {
                                kind: "Secret",
                                namespace: ns,
                                name: r.name.clone(),
                                key: r.key.clone(),
                            })
                        }
                    },
                    None if optional => continue,
                    None => return Err(EnvError::SecretNotFound { namespace: ns, name: r.name.clone() }),
                }
            } else {
                String::new()
            }
        } else {
            String::new()
        };
        env.set(&e.name, value);
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ConfigMapEnvSource, ConfigMapKeySelector, EnvFromSource, EnvVar, EnvVarSource, ObjectFieldSelector,
        ResourceFieldSelector, ResourceRequirements, SecretKeySelector, ServicePort, ServiceSpec,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use k8s_openapi::ByteString;

    fn var(name: &str, value: &str) -> EnvVar {
        EnvVar { name: name.into(), value: Some(value.into()), value_from: None }
    }

    fn from(name: &str, src: EnvVarSource) -> EnvVar {
        EnvVar { name: name.into(), value: None, value_from: Some(src) }
    }

    fn svc(name: &str, ns: &str, ip: &str, ports: &[(Option<&str>, i32)]) -> Service {
        Service {
            metadata: ObjectMeta { name: Some(name.into()), namespace: Some(ns.into()), ..Default::default() },
            spec: Some(ServiceSpec {
                cluster_ip: Some(ip.into()),
                ports: Some(
                    ports
                        .iter()
                        .map(|(n, p)| ServicePort { name: n.map(str::to_string), port: *p, ..Default::default() })
                        .collect(),
                ),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn sources() -> EnvSources {
        let cm = ConfigMap {
            metadata: ObjectMeta { name: Some("cfg".into()), ..Default::default() },
            data: Some([("mode".to_string(), "fast".to_string()), ("1bad".into(), "x".into())].into()),
            ..Default::default()
        };
        let secret = Secret {
            metadata: ObjectMeta { name: Some("creds".into()), ..Default::default() },
            data: Some([("password".to_string(), ByteString(b"hunter2".to_vec()))].into()),
            ..Default::default()
        };
        EnvSources {
            config_maps: [("cfg".to_string(), cm)].into(),
            secrets: [("creds".to_string(), secret)].into(),
            tokens: Default::default(),
            services: vec![
                svc("kubernetes", "default", "10.96.0.1", &[(Some("https"), 443)]),
                svc("web-api", "shop", "10.96.0.7", &[(Some("http"), 80), (Some("metrics"), 9090)]),
                svc("other-ns", "elsewhere", "10.96.0.8", &[(None, 80)]),
                svc("headless", "shop", "None", &[(None, 80)]),
            ],
            node_name: "node-a".into(),
            host_ip: "10.200.0.1".into(),
            pod_ip: "10.88.0.5".into(),
            node_cpu_millis: 2000,
            node_memory_bytes: 1 << 30,
        }
    }

    fn pod_and_container(env: Vec<EnvVar>, env_from: Vec<EnvFromSource>) -> (Pod, Container) {
        let mut p = crate::pod::lifecycle::tests::pod("Always", &[], &["app"]);
        p.metadata.namespace = Some("shop".into());
        p.metadata.uid = Some("uid-1".into());
        p.metadata.labels = Some([("app".to_string(), "web".to_string())].into());
        let c = Container {
            name: "app".into(),
            env: Some(env),
            env_from: Some(env_from),
            resources: Some(ResourceRequirements {
                limits: Some([("memory".to_string(), Quantity("64Mi".into()))].into()),
                requests: Some([("cpu".to_string(), Quantity("250m".into()))].into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        p.spec.as_mut().expect("spec").containers = vec![c.clone()];
        (p, c)
    }

    #[test]
    fn expansion_rules() {
        let mut env = Env::default();
        env.set("A", "1".into());
        assert_eq!(expand("x$(A)y", &env), "x1y");
        assert_eq!(expand("$(B)", &env), "$(B)");
        assert_eq!(expand("$$(A)", &env), "$(A)");
        assert_eq!(expand("$(A", &env), "$(A");
        assert_eq!(expand("héllo $", &env), "héllo $");
    }

    #[test]
    fn service_links() {
        let env = service_env(&sources().services, "shop", true);
        assert_eq!(env.get("WEB_API_SERVICE_HOST"), Some("10.96.0.7"));
        assert_eq!(env.get("WEB_API_SERVICE_PORT"), Some("80"));
        assert_eq!(env.get("WEB_API_SERVICE_PORT_METRICS"), Some("9090"));
        assert_eq!(env.get("WEB_API_PORT"), Some("tcp://10.96.0.7:80"));
        assert_eq!(env.get("WEB_API_PORT_9090_TCP_ADDR"), Some("10.96.0.7"));
        assert_eq!(env.get("KUBERNETES_SERVICE_HOST"), Some("10.96.0.1"));
        assert_eq!(env.get("OTHER_NS_SERVICE_HOST"), None, "other namespaces are not linked");
        assert_eq!(env.get("HEADLESS_SERVICE_HOST"), None, "headless services are not linked");
        let env = service_env(&sources().services, "shop", false);
        assert_eq!(env.get("WEB_API_SERVICE_HOST"), None);
        assert_eq!(env.get("KUBERNETES_SERVICE_HOST"), Some("10.96.0.1"), "the master service is always linked");
    }

    #[test]
    fn every_value_source() {
        let field = |p: &str| EnvVarSource {
            field_ref: Some(ObjectFieldSelector { field_path: p.into(), api_version: None }),
            ..Default::default()
        };
        let resource = |r: &str, d: Option<&str>| EnvVarSource {
            resource_field_ref: Some(ResourceFieldSelector {
                resource: r.into(),
                divisor: d.map(|d| Quantity(d.into())),
                container_name: None,
            }),
            ..Default::default()
        };
        let (p, c) = pod_and_container(
            vec![
                var("GREETING", "hi"),
                var("MSG", "$(GREETING) from $(POD_NAME)"),
                from("POD_NAME", field("metadata.name")),
                from("NS", field("metadata.namespace")),
                from("APP", field("metadata.labels['app']")),
                from("NODE", field("spec.nodeName")),
                from("POD_IP", field("status.podIP")),
                from("HOST_IP", field("status.hostIP")),
                from("MEM_MI", resource("limits.memory", Some("1Mi"))),
                from("CPU_REQ_M", resource("requests.cpu", Some("1m"))),
                from("CPU_LIMIT", resource("limits.cpu", None)),
                from(
                    "MODE",
                    EnvVarSource {
                        config_map_key_ref: Some(ConfigMapKeySelector { name: "cfg".into(), key: "mode".into(), optional: None }),
                        ..Default::default()
                    },
                ),
                from(
                    "PASS",
                    EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector { name: "creds".into(), key: "password".into(), optional: None }),
                        ..Default::default()
                    },
                ),
                var("WEB_API_SERVICE_PORT", "override"),
            ],
            vec![EnvFromSource {
                prefix: Some("CFG_".into()),
                config_map_ref: Some(ConfigMapEnvSource { name: "cfg".into(), optional: None }),
                secret_ref: None,
            }],
        );
        let env = container_env(&p, &c, &sources()).expect("env");
        let want = [
            ("MSG", "hi from $(POD_NAME)"), // POD_NAME is defined after MSG: not expanded, as upstream
            ("POD_NAME", "p"),
            ("NS", "shop"),
            ("APP", "web"),
            ("NODE", "node-a"),
            ("POD_IP", "10.88.0.5"),
            ("HOST_IP", "10.200.0.1"),
            ("MEM_MI", "64"),
            ("CPU_REQ_M", "250"),
            ("CPU_LIMIT", "2"),
            ("MODE", "fast"),
            ("PASS", "hunter2"),
            ("CFG_mode", "fast"),
            ("WEB_API_SERVICE_PORT", "override"),
            ("WEB_API_SERVICE_HOST", "10.96.0.7"),
        ];
        for (k, v) in want {
            assert_eq!(env.get(k), Some(v), "{k}");
        }
        assert_eq!(env.get("CFG_1bad"), Some("x"), "prefix makes the key valid");
        let names: Vec<&str> = env.vars().iter().map(|(k, _)| k.as_str()).collect();
        let svc_pos = names.iter().position(|n| *n == "WEB_API_SERVICE_HOST").expect("svc");
        let own_pos = names.iter().position(|n| *n == "GREETING").expect("own");
        assert!(svc_pos < own_pos, "service variables come first");
    }

    #[test]
    fn missing_references() {
        let cm_ref = |name: &str, key: &str, optional| EnvVarSource {
            config_map_key_ref: Some(ConfigMapKeySelector { name: name.into(), key: key.into(), optional }),
            ..Default::default()
        };
        let (p, c) = pod_and_container(vec![from("X", cm_ref("nope", "k", None))], vec![]);
        let err = container_env(&p, &c, &sources()).expect_err("missing configmap");
        assert_eq!(err, EnvError::ConfigMapNotFound { namespace: "shop".into(), name: "nope".into() });
        assert!(err.to_string().contains("configmap \"nope\" not found"));

        let (p, c) = pod_and_container(vec![from("X", cm_ref("cfg", "nokey", None))], vec![]);
        let err = container_env(&p, &c, &sources()).expect_err("missing key");
        assert_eq!(err.to_string(), "couldn't find key nokey in ConfigMap shop/cfg");

        let (p, c) = pod_and_container(vec![from("X", cm_ref("nope", "k", Some(true)))], vec![]);
        let env = container_env(&p, &c, &sources()).expect("optional");
        assert_eq!(env.get("X"), None);

        let (p, c) = pod_and_container(
            vec![],
            vec![EnvFromSource { prefix: None, config_map_ref: None, secret_ref: Some(k8s_openapi::api::core::v1::SecretEnvSource { name: "gone".into(), optional: None }) }],
        );
        assert_eq!(
            container_env(&p, &c, &sources()).expect_err("missing secret"),
            EnvError::SecretNotFound { namespace: "shop".into(), name: "gone".into() }
        );
    }
}
