//! Server-side printing: `meta.k8s.io/v1` Tables with Kubernetes' own columns per kind, which `kubectl get`
//! prints (columns with priority 1 appear only with `-o wide`). Cells hold what kubectl shows, including the
//! human-readable AGE. Each kind's columns are a [`Printer`] here, which its `strategy` names.

use serde_json::{json, Value};

use crate::registry::ResourceInfo;
use crate::request::Query;

/// Kubernetes' short human duration (`5s`, `3m20s`, `7h`, `12d`...).
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".to_string();
    }
    if secs < 0 {
        return "0s".to_string();
    }
    if secs < 120 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        let s = secs % 60;
        return if s == 0 { format!("{minutes}m") } else { format!("{minutes}m{s}s") };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 { format!("{hours}h") } else { format!("{hours}h{m}m") };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 { format!("{}d", hours / 24) } else { format!("{}d{h}h", hours / 24) };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 { format!("{}y", hours / 24 / 365) } else { format!("{}y{dy}d", hours / 24 / 365) };
    }
    format!("{}y", hours / 24 / 365)
}

fn age_of(ts: Option<&str>) -> String {
    let Some(ts) = ts else { return "<unknown>".to_string() };
    match chrono::DateTime::parse_from_rfc3339(ts) {
        Ok(t) => human_duration((chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds()),
        Err(_) => "<unknown>".to_string(),
    }
}

fn age(obj: &Value) -> Value {
    json!(age_of(obj.pointer("/metadata/creationTimestamp").and_then(Value::as_str)))
}

fn s<'a>(obj: &'a Value, ptr: &str) -> &'a str {
    obj.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

fn n(obj: &Value, ptr: &str) -> i64 {
    obj.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

fn or_none(v: String) -> String {
    if v.is_empty() {
        "<none>".to_string()
    } else {
        v
    }
}

/// A column: name, type, priority (1 = wide only).
type Col = (&'static str, &'static str, u8);

const NAME: Col = ("Name", "string", 0);
const AGE: Col = ("Age", "string", 0);

fn containers_images(spec: &Value) -> (String, String) {
    let cs = spec.get("containers").and_then(Value::as_array).cloned().unwrap_or_default();
    let names: Vec<&str> = cs.iter().filter_map(|c| c.get("name").and_then(Value::as_str)).collect();
    let images: Vec<&str> = cs.iter().filter_map(|c| c.get("image").and_then(Value::as_str)).collect();
    (names.join(","), images.join(","))
}

/// A kind's columns and how one object fills them: what a kind's `strategy` names for `kubectl get`, as
/// upstream's printers (`pkg/printers/internalversion/printers.go`) are one handler per kind.
pub struct Printer {
    /// The column definitions of the Table, Name first.
    pub columns: &'static [Col],
    /// One object's cells, one per column.
    pub row: fn(&Value) -> Vec<Value>,
}

/// Pod.
pub static POD: Printer = Printer { columns: &[
            NAME,
            ("Ready", "string", 0),
            ("Status", "string", 0),
            ("Restarts", "string", 0),
            AGE,
            ("IP", "string", 1),
            ("Node", "string", 1),
            ("Nominated Node", "string", 1),
            ("Readiness Gates", "string", 1),
        ], row: pod_row };

/// Deployment.
pub static DEPLOYMENT: Printer = Printer { columns: &[
            NAME,
            ("Ready", "string", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            AGE,
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ], row: deployment_row };

/// ReplicaSet and ReplicationController.
pub static REPLICA_SET: Printer = Printer { columns: &[
            NAME,
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            AGE,
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ], row: replica_set_row };

/// StatefulSet.
pub static STATEFUL_SET: Printer = Printer { columns: &[NAME, ("Ready", "string", 0), AGE, ("Containers", "string", 1), ("Images", "string", 1)], row: stateful_set_row };

/// DaemonSet.
pub static DAEMON_SET: Printer = Printer { columns: &[
            NAME,
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            ("Node Selector", "string", 0),
            AGE,
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ], row: daemon_set_row };

/// Service.
pub static SERVICE: Printer = Printer { columns: &[
            NAME,
            ("Type", "string", 0),
            ("Cluster-IP", "string", 0),
            ("External-IP", "string", 0),
            ("Port(s)", "string", 0),
            AGE,
            ("Selector", "string", 1),
        ], row: service_row };

/// Node.
pub static NODE: Printer = Printer { columns: &[
            NAME,
            ("Status", "string", 0),
            ("Roles", "string", 0),
            AGE,
            ("Version", "string", 0),
            ("Internal-IP", "string", 1),
            ("External-IP", "string", 1),
            ("OS-Image", "string", 1),
            ("Kernel-Version", "string", 1),
            ("Container-Runtime", "string", 1),
        ], row: node_row };

/// Namespace.
pub static NAMESPACE: Printer = Printer { columns: &[NAME, ("Status", "string", 0), AGE], row: namespace_row };

/// ConfigMap.
pub static CONFIG_MAP: Printer = Printer { columns: &[NAME, ("Data", "integer", 0), AGE], row: config_map_row };

/// Secret.
pub static SECRET: Printer = Printer { columns: &[NAME, ("Type", "string", 0), ("Data", "integer", 0), AGE], row: secret_row };

/// Job.
pub static JOB: Printer = Printer { columns: &[
            NAME,
            ("Status", "string", 0),
            ("Completions", "string", 0),
            ("Duration", "string", 0),
            AGE,
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ], row: job_row };

/// CronJob.
pub static CRON_JOB: Printer = Printer { columns: &[
            NAME,
            ("Schedule", "string", 0),
            ("Timezone", "string", 0),
            ("Suspend", "boolean", 0),
            ("Active", "integer", 0),
            ("Last Schedule", "string", 0),
            AGE,
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ], row: cron_job_row };

/// Event.
pub static EVENT: Printer = Printer { columns: &[
            ("Last Seen", "string", 0),
            ("Type", "string", 0),
            ("Reason", "string", 0),
            ("Object", "string", 0),
            ("Message", "string", 0),
        ], row: event_row };

/// Endpoints.
pub static ENDPOINTS: Printer = Printer { columns: &[NAME, ("Endpoints", "string", 0), AGE], row: endpoints_row };

/// ServiceAccount.
pub static SERVICE_ACCOUNT: Printer = Printer { columns: &[NAME, ("Secrets", "integer", 0), AGE], row: service_account_row };

/// Lease.
pub static LEASE: Printer = Printer { columns: &[NAME, ("Holder", "string", 0), AGE], row: lease_row };

/// EndpointSlice.
pub static ENDPOINT_SLICE: Printer = Printer { columns: &[NAME, ("AddressType", "string", 0), ("Ports", "string", 0), ("Endpoints", "string", 0), AGE], row: endpoint_slice_row };

/// ControllerRevision.
pub static CONTROLLER_REVISION: Printer = Printer { columns: &[NAME, ("Controller", "string", 0), ("Revision", "integer", 0), AGE], row: controller_revision_row };

/// Role and ClusterRole.
pub static ROLE: Printer = Printer { columns: &[NAME, ("Created At", "date", 0)], row: role_row };

/// Ingress.
pub static INGRESS: Printer = Printer { columns: &[NAME, ("Class", "string", 0), ("Hosts", "string", 0), ("Address", "string", 0), ("Ports", "string", 0), AGE], row: ingress_row };

/// IngressClass.
pub static INGRESS_CLASS: Printer = Printer { columns: &[NAME, ("Controller", "string", 0), ("Parameters", "string", 0), AGE], row: ingress_class_row };

/// CertificateSigningRequest.
pub static CERTIFICATE_SIGNING_REQUEST: Printer = Printer { columns: &[
            NAME,
            AGE,
            ("SignerName", "string", 0),
            ("Requestor", "string", 0),
            ("RequestedDuration", "string", 0),
            ("Condition", "string", 0),
        ], row: csr_row };

/// RoleBinding and ClusterRoleBinding.
pub static ROLE_BINDING: Printer = Printer { columns: &[
            NAME,
            ("Role", "string", 0),
            AGE,
            ("Users", "string", 1),
            ("Groups", "string", 1),
            ("ServiceAccounts", "string", 1),
        ], row: role_binding_row };

/// kinds without columns of their own.
pub static GENERIC: Printer = Printer { columns: &[NAME, AGE], row: generic_row };

/// The STATUS column of a pod, following kubectl's rules (init containers, waiting/terminated reasons,
/// Terminating).
pub fn pod_status(pod: &Value) -> String {
    let mut reason = s(pod, "/status/phase").to_string();
    if !s(pod, "/status/reason").is_empty() {
        reason = s(pod, "/status/reason").to_string();
    }
    let init_specs = pod.pointer("/spec/initContainers").and_then(Value::as_array).map(Vec::len).unwrap_or(0);
    let mut initializing = false;
    for (i, c) in pod.pointer("/status/initContainerStatuses").and_then(Value::as_array).into_iter().flatten().enumerate() {
        if let Some(t) = c.pointer("/state/terminated") {
            if t.get("exitCode").and_then(Value::as_i64) == Some(0) {
                continue;
            }
            let r = t.get("reason").and_then(Value::as_str).unwrap_or_default();
            reason = if !r.is_empty() {
                format!("Init:{r}")
            } else if let Some(sig) = t.get("signal").and_then(Value::as_i64).filter(|s| *s != 0) {
                format!("Init:Signal:{sig}")
            } else {
                format!("Init:ExitCode:{}", t.get("exitCode").and_then(Value::as_i64).unwrap_or(0))
            };
            initializing = true;
        } else if let Some(r) = c.pointer("/state/waiting/reason").and_then(Value::as_str).filter(|r| !r.is_empty() && *r != "PodInitializing") {
            reason = format!("Init:{r}");
            initializing = true;
        } else {
            reason = format!("Init:{i}/{init_specs}");
            initializing = true;
        }
        break;
    }
    if !initializing {
        let mut has_running = false;
        let statuses: Vec<Value> = pod.pointer("/status/containerStatuses").and_then(Value::as_array).cloned().unwrap_or_default();
        for c in statuses.iter().rev() {
            if let Some(r) = c.pointer("/state/waiting/reason").and_then(Value::as_str).filter(|r| !r.is_empty()) {
                reason = r.to_string();
            } else if let Some(t) = c.pointer("/state/terminated") {
                let r = t.get("reason").and_then(Value::as_str).unwrap_or_default();
                reason = if !r.is_empty() {
                    r.to_string()
                } else if let Some(sig) = t.get("signal").and_then(Value::as_i64).filter(|s| *s != 0) {
                    format!("Signal:{sig}")
                } else {
                    format!("ExitCode:{}", t.get("exitCode").and_then(Value::as_i64).unwrap_or(0))
                };
            } else if c.get("ready").and_then(Value::as_bool) == Some(true) && c.pointer("/state/running").is_some() {
                has_running = true;
            }
        }
        if reason == "Completed" && has_running {
            reason = "Running".to_string();
        }
    }
    if pod.pointer("/metadata/deletionTimestamp").is_some_and(|v| !v.is_null()) {
        reason = if s(pod, "/status/reason") == "NodeLost" { "Unknown".to_string() } else { "Terminating".to_string() };
    }
    reason
}

fn pod_row(pod: &Value) -> Vec<Value> {
    let total = pod.pointer("/spec/containers").and_then(Value::as_array).map(Vec::len).unwrap_or(0);
    let statuses: Vec<Value> = pod.pointer("/status/containerStatuses").and_then(Value::as_array).cloned().unwrap_or_default();
    let ready = statuses.iter().filter(|c| c.get("ready").and_then(Value::as_bool) == Some(true)).count();
    let restarts: i64 = statuses.iter().map(|c| c.get("restartCount").and_then(Value::as_i64).unwrap_or(0)).sum();
    let last_restart = statuses
        .iter()
        .filter_map(|c| c.pointer("/lastState/terminated/finishedAt").and_then(Value::as_str))
        .max()
        .map(|t| format!("{restarts} ({} ago)", age_of(Some(t))));
    let restarts_cell = if restarts > 0 { last_restart.unwrap_or_else(|| restarts.to_string()) } else { restarts.to_string() };
    let gates = pod.pointer("/spec/readinessGates").and_then(Value::as_array).map(Vec::len).unwrap_or(0);
    vec![
        json!(s(pod, "/metadata/name")),
        json!(format!("{ready}/{total}")),
        json!(pod_status(pod)),
        json!(restarts_cell),
        age(pod),
        json!(or_none(s(pod, "/status/podIP").to_string())),
        json!(or_none(s(pod, "/spec/nodeName").to_string())),
        json!(or_none(s(pod, "/status/nominatedNodeName").to_string())),
        json!(if gates == 0 { "<none>".to_string() } else { format!("0/{gates}") }),
    ]
}

fn service_ports(svc: &Value) -> String {
    let ports: Vec<String> = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| {
            let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
            match p.get("nodePort").and_then(Value::as_i64) {
                Some(np) => format!("{}:{np}/{proto}", n(p, "/port")),
                None => format!("{}/{proto}", n(p, "/port")),
            }
        })
        .collect();
    or_none(ports.join(","))
}

fn node_row(node: &Value) -> Vec<Value> {
    let ready = node
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c.get("type").and_then(Value::as_str) == Some("Ready")))
        .and_then(|c| c.get("status").and_then(Value::as_str))
        .map(|s| if s == "True" { "Ready" } else { "NotReady" })
        .unwrap_or("Unknown");
    let mut status = ready.to_string();
    if node.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push_str(",SchedulingDisabled");
    }
    let roles: Vec<String> = node
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, _)| k.strip_prefix("node-role.kubernetes.io/").map(str::to_string))
        .collect();
    let addr = |t: &str| {
        node.pointer("/status/addresses")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().find(|x| x.get("type").and_then(Value::as_str) == Some(t)))
            .and_then(|x| x.get("address").and_then(Value::as_str))
            .unwrap_or("<none>")
            .to_string()
    };
    vec![
        json!(s(node, "/metadata/name")),
        json!(status),
        json!(or_none(roles.join(","))),
        age(node),
        json!(s(node, "/status/nodeInfo/kubeletVersion")),
        json!(addr("InternalIP")),
        json!(addr("ExternalIP")),
        json!(or_none(s(node, "/status/nodeInfo/osImage").to_string())),
        json!(or_none(s(node, "/status/nodeInfo/kernelVersion").to_string())),
        json!(or_none(s(node, "/status/nodeInfo/containerRuntimeVersion").to_string())),
    ]
}

fn job_status(job: &Value) -> &'static str {
    let conds = job.pointer("/status/conditions").and_then(Value::as_array).cloned().unwrap_or_default();
    let has = |t: &str| conds.iter().any(|c| c["type"] == t && c["status"] == "True");
    if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if has("FailureTarget") {
        "FailureTarget"
    } else if has("SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else if has("Suspended") {
        "Suspended"
    } else {
        "Running"
    }
}

fn duration_between(start: &str, end: Option<&str>) -> String {
    let Ok(st) = chrono::DateTime::parse_from_rfc3339(start) else { return String::new() };
    let en = end.and_then(|e| chrono::DateTime::parse_from_rfc3339(e).ok()).map(|e| e.with_timezone(&chrono::Utc)).unwrap_or_else(chrono::Utc::now);
    human_duration((en - st.with_timezone(&chrono::Utc)).num_seconds())
}

/// kubectl's Ingress row (upstream's printIngress): the class or `<none>`, up to three hosts (`*` for none),
/// the load balancer addresses cut to 16 characters, `80` or `80, 443` when there is TLS.
fn ingress_row(o: &Value) -> Vec<Value> {
    let class = o.pointer("/spec/ingressClassName").and_then(Value::as_str).unwrap_or("<none>");
    let rules = o.pointer("/spec/rules").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let (mut hosts, mut more) = (Vec::new(), false);
    for r in rules {
        more |= hosts.len() == 3;
        match r.get("host").and_then(Value::as_str) {
            Some(h) if !more && !h.is_empty() => hosts.push(h),
            _ => {}
        }
    }
    let shown = match (hosts.is_empty(), more) {
        (true, _) => "*".to_string(),
        (false, false) => hosts.join(","),
        (false, true) => format!("{} + {} more...", hosts.join(","), rules.len() - 3),
    };
    let mut address: String = o
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|i| i.get("ip").or(i.get("hostname")).and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join(",");
    if address.len() > 16 {
        address = format!("{}...", &address[..13]);
    }
    let tls = o.pointer("/spec/tls").and_then(Value::as_array).is_some_and(|t| !t.is_empty());
    let ports = if tls { "80, 443" } else { "80" };
    vec![json!(s(o, "/metadata/name")), json!(class), json!(shown), json!(address), json!(ports), age(o)]
}

/// upstream's CSR columns; Condition is `Pending`, `Approved` or `Denied`, then `,Failed` and `,Issued`
fn csr_row(o: &Value) -> Vec<Value> {
    let has = |t: &str| {
        o.pointer("/status/conditions").and_then(Value::as_array).is_some_and(|cs| cs.iter().any(|c| c.get("type").and_then(Value::as_str) == Some(t)))
    };
    let mut condition = if has("Denied") { "Denied" } else if has("Approved") { "Approved" } else { "Pending" }.to_string();
    if has("Failed") {
        condition.push_str(",Failed");
    }
    if !s(o, "/status/certificate").is_empty() {
        condition.push_str(",Issued");
    }
    let duration = o.pointer("/spec/expirationSeconds").and_then(Value::as_i64).map_or_else(|| "<none>".to_string(), human_duration);
    vec![json!(s(o, "/metadata/name")), age(o), json!(s(o, "/spec/signerName")), json!(s(o, "/spec/username")), json!(duration), json!(condition)]
}

fn deployment_row(o: &Value) -> Vec<Value> {
    let name = json!(s(o, "/metadata/name"));
    let tspec = o.pointer("/spec/template/spec").cloned().unwrap_or(Value::Null);
    let (cs, imgs) = containers_images(&tspec);
    let sel = || json!(or_none(o.pointer("/spec/selector").map(selector_string).unwrap_or_default()));
    vec![
        name,
        json!(format!("{}/{}", n(o, "/status/readyReplicas"), n(o, "/spec/replicas"))),
        json!(n(o, "/status/updatedReplicas")),
        json!(n(o, "/status/availableReplicas")),
        age(o),
        json!(cs),
        json!(imgs),
        sel(),
    ]
}

fn replica_set_row(o: &Value) -> Vec<Value> {
    let name = json!(s(o, "/metadata/name"));
    let tspec = o.pointer("/spec/template/spec").cloned().unwrap_or(Value::Null);
    let (cs, imgs) = containers_images(&tspec);
    let sel = || json!(or_none(o.pointer("/spec/selector").map(selector_string).unwrap_or_default()));
    vec![
        name,
        json!(n(o, "/spec/replicas")),
        json!(n(o, "/status/replicas")),
        json!(n(o, "/status/readyReplicas")),
        age(o),
        json!(cs),
        json!(imgs),
        sel(),
    ]
}

fn stateful_set_row(o: &Value) -> Vec<Value> {
    let name = json!(s(o, "/metadata/name"));
    let tspec = o.pointer("/spec/template/spec").cloned().unwrap_or(Value::Null);
    let (cs, imgs) = containers_images(&tspec);
    vec![
        name,
        json!(format!("{}/{}", n(o, "/status/readyReplicas"), n(o, "/spec/replicas"))),
        age(o),
        json!(cs),
        json!(imgs),
    ]
}

fn daemon_set_row(o: &Value) -> Vec<Value> {
    let name = json!(s(o, "/metadata/name"));
    let tspec = o.pointer("/spec/template/spec").cloned().unwrap_or(Value::Null);
    let (cs, imgs) = containers_images(&tspec);
    let sel = || json!(or_none(o.pointer("/spec/selector").map(selector_string).unwrap_or_default()));
    let ns: Vec<String> = o
        .pointer("/spec/template/spec/nodeSelector")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    vec![
        name,
        json!(n(o, "/status/desiredNumberScheduled")),
        json!(n(o, "/status/currentNumberScheduled")),
        json!(n(o, "/status/numberReady")),
        json!(n(o, "/status/updatedNumberScheduled")),
        json!(n(o, "/status/numberAvailable")),
        json!(or_none(ns.join(","))),
        age(o),
        json!(cs),
        json!(imgs),
        sel(),
    ]
}

fn service_row(o: &Value) -> Vec<Value> {
    let name = json!(s(o, "/metadata/name"));
    let ty = s(o, "/spec/type");
    let mut external: Vec<String> = o
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|i| i.get("ip").or(i.get("hostname")).and_then(Value::as_str).map(str::to_string))
        .collect();
    external.extend(o.pointer("/spec/externalIPs").and_then(Value::as_array).into_iter().flatten().filter_map(|v| v.as_str().map(str::to_string)));
    let ext = match ty {
        "ExternalName" => s(o, "/spec/externalName").to_string(),
        "LoadBalancer" if external.is_empty() => "<pending>".to_string(),
        _ => or_none(external.join(",")),
    };
    let selector: Vec<String> = o
        .pointer("/spec/selector")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    vec![name, json!(ty), json!(or_none(s(o, "/spec/clusterIP").to_string())), json!(ext), json!(service_ports(o)), age(o), json!(or_none(selector.join(",")))]
}

fn namespace_row(o: &Value) -> Vec<Value> {
    let name = json!(s(o, "/metadata/name"));
    vec![name, json!(s(o, "/status/phase")), age(o)]
}

fn config_map_row(o: &Value) -> Vec<Value> {
    let name = json!(s(o, "/metadata/name"));
    let count = ["data", "binaryData"].iter().filter_map(|k| o.get(*k).and_then(Value::as_object)).map(|m| m.len()).sum::<usize>();
    vec![name, json!(count), age(o)]
}

fn secret_row(o: &Value) -> Vec<Value> {
    let name = json!(s(o, "/metadata/name"));
    vec![name, json!(s(o, "/type")), json!(o.get("data").and_then(Value::as_object).map(|m| m.len()).unwrap_or(0)), age(o)]
}

fn job_row(o: &Value) -> Vec<Value> {
    let name = json!(s(o, "/metadata/name"));
    let tspec = o.pointer("/spec/template/spec").cloned().unwrap_or(Value::Null);
    let (cs, imgs) = containers_images(&tspec);
    let sel = || json!(or_none(o.pointer("/spec/selector").map(selector_string).unwrap_or_default()));
    let completions = o.pointer("/spec/completions").and_then(Value::as_i64);
    let succeeded = n(o, "/status/succeeded");
    let comp = match completions {
        Some(c) => format!("{succeeded}/{c}"),
        None => format!("{succeeded}/1 of {}", n(o, "/spec/parallelism").max(1)),
    };
    let start = s(o, "/status/startTime");
    let end = o.pointer("/status/completionTime").and_then(Value::as_str);
    let dur = if start.is_empty() { String::new() } else { duration_between(start, end) };
    vec![name, json!(job_status(o)), json!(comp), json!(dur), age(o), json!(cs), json!(imgs), sel()]
}

fn cron_job_row(o: &Value) -> Vec<Value> {
    let name = json!(s(o, "/metadata/name"));
    let jspec = o.pointer("/spec/jobTemplate/spec/template/spec").cloned().unwrap_or(Value::Null);
    let (cs, imgs) = containers_images(&jspec);
    let last = o.pointer("/status/lastScheduleTime").and_then(Value::as_str).map(|t| age_of(Some(t))).unwrap_or_else(|| "<none>".to_string());
    let jsel = o.pointer("/spec/jobTemplate/spec/selector").map(selector_string).unwrap_or_default();
    vec![
        name,
        json!(s(o, "/spec/schedule")),
        json!(or_none(s(o, "/spec/timeZone").to_string())),
        json!(o.pointer("/spec/suspend").and_then(Value::as_bool).unwrap_or(false)),
        json!(o.pointer("/status/active").and_then(Value::as_array).map(Vec::len).unwrap_or(0)),
        json!(last),
        age(o),
        json!(cs),
        json!(imgs),
        json!(or_none(jsel)),
    ]
}

fn event_row(o: &Value) -> Vec<Value> {
    let last = o
        .get("lastTimestamp")
        .and_then(Value::as_str)
        .or_else(|| o.get("eventTime").and_then(Value::as_str))
        .or_else(|| o.pointer("/metadata/creationTimestamp").and_then(Value::as_str));
    let obj = format!("{}/{}", s(o, "/involvedObject/kind").to_lowercase(), s(o, "/involvedObject/name"));
    vec![json!(age_of(last)), json!(s(o, "/type")), json!(s(o, "/reason")), json!(obj), json!(s(o, "/message"))]
}

fn endpoints_row(o: &Value) -> Vec<Value> {
    let name = json!(s(o, "/metadata/name"));
    let mut eps = Vec::new();
    for subset in o.get("subsets").and_then(Value::as_array).into_iter().flatten() {
        let ports: Vec<i64> = subset.get("ports").and_then(Value::as_array).into_iter().flatten().map(|p| n(p, "/port")).collect();
        for a in subset.get("addresses").and_then(Value::as_array).into_iter().flatten() {
            let ip = s(a, "/ip");
            if ports.is_empty() {
                eps.push(ip.to_string());
            }
            for p in &ports {
                eps.push(format!("{ip}:{p}"));
            }
        }
    }
    let shown = if eps.len() > 3 { format!("{} + {} more...", eps[..3].join(","), eps.len() - 3) } else { eps.join(",") };
    vec![name, json!(or_none(shown)), age(o)]
}

fn service_account_row(o: &Value) -> Vec<Value> {
    let name = json!(s(o, "/metadata/name"));
    vec![name, json!(o.get("secrets").and_then(Value::as_array).map(Vec::len).unwrap_or(0)), age(o)]
}

fn lease_row(o: &Value) -> Vec<Value> {
    let name = json!(s(o, "/metadata/name"));
    vec![name, json!(or_none(s(o, "/spec/holderIdentity").to_string())), age(o)]
}

fn endpoint_slice_row(o: &Value) -> Vec<Value> {
    let name = json!(s(o, "/metadata/name"));
    let ports: Vec<String> = o.get("ports").and_then(Value::as_array).into_iter().flatten().map(|p| n(p, "/port").to_string()).collect();
    let addrs: Vec<String> = o
        .get("endpoints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|e| e.get("addresses").and_then(Value::as_array).cloned().unwrap_or_default())
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    vec![name, json!(s(o, "/addressType")), json!(or_none(ports.join(","))), json!(or_none(addrs.join(","))), age(o)]
}

fn controller_revision_row(o: &Value) -> Vec<Value> {
    let name = json!(s(o, "/metadata/name"));
    let owner = o
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().find(|r| r.get("controller").and_then(Value::as_bool) == Some(true)))
        .map(|r| format!("{}/{}", s(r, "/kind").to_lowercase(), s(r, "/name")))
        .unwrap_or_else(|| "<none>".to_string());
    vec![name, json!(owner), json!(n(o, "/revision")), age(o)]
}

fn role_row(o: &Value) -> Vec<Value> {
    let name = json!(s(o, "/metadata/name"));
    vec![name, json!(s(o, "/metadata/creationTimestamp"))]
}

fn ingress_class_row(o: &Value) -> Vec<Value> {
    let name = json!(s(o, "/metadata/name"));
    let params = match o.pointer("/spec/parameters").filter(|p| p.is_object()) {
        None => "<none>".to_string(),
        Some(p) => match p.get("apiGroup").and_then(Value::as_str) {
            Some(g) => format!("{}.{g}/{}", s(p, "/kind"), s(p, "/name")),
            None => format!("{}/{}", s(p, "/kind"), s(p, "/name")),
        },
    };
    vec![name, json!(s(o, "/spec/controller")), json!(params), age(o)]
}

fn role_binding_row(o: &Value) -> Vec<Value> {
    let name = json!(s(o, "/metadata/name"));
    let subjects: Vec<&Value> = o.get("subjects").and_then(Value::as_array).map(|v| v.iter().collect()).unwrap_or_default();
    let of = |kind: &str| -> String {
        subjects
            .iter()
            .filter(|x| x.get("kind").and_then(Value::as_str) == Some(kind))
            .map(|x| match (kind, x.get("namespace").and_then(Value::as_str)) {
                ("ServiceAccount", Some(ns)) => format!("{ns}/{}", s(x, "/name")),
                _ => s(x, "/name").to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let role = format!("{}/{}", s(o, "/roleRef/kind"), s(o, "/roleRef/name"));
    vec![name, json!(role), age(o), json!(of("User")), json!(of("Group")), json!(of("ServiceAccount"))]
}

fn generic_row(o: &Value) -> Vec<Value> {
    let name = json!(s(o, "/metadata/name"));
    vec![name, age(o)]
}

/// A Table of `objects` of `info`'s kind, in the columns of `printer` (the kind's strategy's).
pub fn table(info: &ResourceInfo, printer: &Printer, objects: &[Value], resource_version: &str, q: &Query, version: &str) -> Value {
    let cols = printer.columns;
    let defs: Vec<Value> = cols
        .iter()
        .map(|(name, ty, prio)| {
            let mut d = json!({"name": name, "type": ty, "format": "", "description": format!("{name} of the {}", info.kind), "priority": prio});
            if *name == "Name" {
                d["format"] = json!("name");
                d["description"] = json!("Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names");
            }
            d
        })
        .collect();
    let include = q.include_object.as_deref().unwrap_or("Metadata");
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            // Columns read the stored form (events.k8s.io Events print like core Events).
            let mut cells = match &info.stored_as {
                Some(s) => (printer.row)(&(s.to_storage)(o.clone())),
                None => (printer.row)(o),
            };
            cells.truncate(cols.len());
            let mut r = json!({"cells": cells});
            match include {
                "None" => {}
                "Object" => r["object"] = o.clone(),
                _ => {
                    r["object"] = json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": format!("meta.k8s.io/{version}"),
                        "metadata": o.get("metadata").cloned().unwrap_or(json!({})),
                    })
                }
            }
            r
        })
        .collect();
    let mut meta = json!({});
    if !resource_version.is_empty() {
        meta["resourceVersion"] = json!(resource_version);
    }
    json!({
        "kind": "Table",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": meta,
        "columnDefinitions": defs,
        "rows": rows,
    })
}

/// A label selector object (or an RC's plain map) as the string form (`a=b,c in (d)`).
pub fn selector_string(sel: &Value) -> String {
    let mut parts = Vec::new();
    let labels = sel.get("matchLabels").or(if sel.get("matchExpressions").is_none() { Some(sel) } else { None });
    if let Some(m) = labels.and_then(Value::as_object) {
        for (k, v) in m {
            parts.push(format!("{k}={}", v.as_str().unwrap_or_default()));
        }
    }
    if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
        for e in exprs {
            let key = e["key"].as_str().unwrap_or_default();
            let vals: Vec<&str> = e["values"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
            match e["operator"].as_str().unwrap_or_default() {
                "In" => parts.push(format!("{key} in ({})", vals.join(","))),
                "NotIn" => parts.push(format!("{key} notin ({})", vals.join(","))),
                "Exists" => parts.push(key.to_string()),
                "DoesNotExist" => parts.push(format!("!{key}")),
                _ => {}
            }
        }
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(200), "3m20s");
        assert_eq!(human_duration(3600), "60m");
        assert_eq!(human_duration(4 * 3600 + 60 * 5), "4h5m");
        assert_eq!(human_duration(10 * 24 * 3600), "10d");
    }

    #[test]
    fn pod_status_prefers_waiting_reason_and_terminating() {
        let mut p = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": "Pending", "containerStatuses": [{"name": "c", "ready": false, "state": {"waiting": {"reason": "ContainerCreating"}}}]}});
        assert_eq!(pod_status(&p), "ContainerCreating");
        p["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
        assert_eq!(pod_status(&p), "Terminating");
    }

    #[test]
    fn rows_have_as_many_cells_as_columns() {
        for r in crate::registry::RESOURCES {
            let obj = json!({"metadata": {"name": "x", "creationTimestamp": "2024-01-01T00:00:00Z"}});
            let t = table(r, crate::strategy::of(r).printer(), std::slice::from_ref(&obj), "1", &Query::default(), "v1");
            let cols = t["columnDefinitions"].as_array().map(Vec::len);
            let cells = t["rows"][0]["cells"].as_array().map(Vec::len);
            assert_eq!(cols, cells, "{}", r.kind);
        }
    }

    #[test]
    fn each_kind_prints_kubectls_columns() {
        // the columns as they were when the per-kind tables moved behind the strategies (* = priority 1,
        // -o wide only); a kind not listed prints Name and Age
        let expected = [
            ("Pod", "Name,Ready,Status,Restarts,Age,IP*,Node*,Nominated Node*,Readiness Gates*"),
            ("Deployment", "Name,Ready,Up-to-date,Available,Age,Containers*,Images*,Selector*"),
            ("ReplicaSet", "Name,Desired,Current,Ready,Age,Containers*,Images*,Selector*"),
            ("ReplicationController", "Name,Desired,Current,Ready,Age,Containers*,Images*,Selector*"),
            ("StatefulSet", "Name,Ready,Age,Containers*,Images*"),
            ("DaemonSet", "Name,Desired,Current,Ready,Up-to-date,Available,Node Selector,Age,Containers*,Images*,Selector*"),
            ("Service", "Name,Type,Cluster-IP,External-IP,Port(s),Age,Selector*"),
            ("Node", "Name,Status,Roles,Age,Version,Internal-IP*,External-IP*,OS-Image*,Kernel-Version*,Container-Runtime*"),
            ("Namespace", "Name,Status,Age"),
            ("ConfigMap", "Name,Data,Age"),
            ("Secret", "Name,Type,Data,Age"),
            ("Job", "Name,Status,Completions,Duration,Age,Containers*,Images*,Selector*"),
            ("CronJob", "Name,Schedule,Timezone,Suspend,Active,Last Schedule,Age,Containers*,Images*,Selector*"),
            ("Event", "Last Seen,Type,Reason,Object,Message"),
            ("Endpoints", "Name,Endpoints,Age"),
            ("ServiceAccount", "Name,Secrets,Age"),
            ("Lease", "Name,Holder,Age"),
            ("EndpointSlice", "Name,AddressType,Ports,Endpoints,Age"),
            ("ControllerRevision", "Name,Controller,Revision,Age"),
            ("Role", "Name,Created At"),
            ("ClusterRole", "Name,Created At"),
            ("Ingress", "Name,Class,Hosts,Address,Ports,Age"),
            ("IngressClass", "Name,Controller,Parameters,Age"),
            ("CertificateSigningRequest", "Name,Age,SignerName,Requestor,RequestedDuration,Condition"),
            ("RoleBinding", "Name,Role,Age,Users*,Groups*,ServiceAccounts*"),
            ("ClusterRoleBinding", "Name,Role,Age,Users*,Groups*,ServiceAccounts*"),
            ("_", "Name,Age"),
        ];
        for r in crate::registry::RESOURCES {
            let want = expected.iter().find(|(k, _)| *k == r.kind).map_or("Name,Age", |(_, c)| *c);
            let cols = crate::strategy::of(r).printer().columns;
            let got: Vec<String> = cols.iter().map(|(name, _, prio)| format!("{name}{}", if *prio == 1 { "*" } else { "" })).collect();
            assert_eq!(got.join(","), want, "{}", r.kind);
        }
    }
}
