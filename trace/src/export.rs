//! OTLP export: the finished spans of this process, with the events inside each as its span events, sent to an
//! OpenTelemetry collector over OTLP/HTTP with JSON encoding (`POST <endpoint>/v1/traces`, an
//! `ExportTraceServiceRequest`: `resourceSpans` per component, `service.name` the component as upstream's
//! apiserver and kubelet name themselves). Configured as upstream configures it: a `TracingConfiguration`
//! (`endpoint`, `samplingRatePerMillion`; apiserver `--tracing-config-file`, or a `KubeletConfiguration`'s
//! `tracing:`), or the standard `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT`.
//!
//! Never in the request path: the span layer offers a finished span to a bounded queue ([`QUEUE`], as the
//! OpenTelemetry batch span processor's default) without waiting; a full queue drops it and counts it. One
//! thread (`otlp-export`) takes batches of at most [`BATCH`] spans, every [`schedule_delay`], and posts them; a
//! collector that is down or answers an error costs that batch (counted as dropped), nothing else.
//!
//! This is the crate's only network I/O, and it happens on that thread alone.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};

use crate::store::Record;

/// Spans waiting for the export thread (the batch span processor's `OTEL_BSP_MAX_QUEUE_SIZE` default).
pub const QUEUE: usize = 2048;
/// Spans in one request at most (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE` default).
pub const BATCH: usize = 512;
/// Span events kept on one span; later ones are dropped (counted on the span as `rkube.dropped_events`).
pub const EVENTS_PER_SPAN: usize = 128;
/// How long one request may take, connecting included (`OTEL_EXPORTER_OTLP_TIMEOUT` default, 10 s).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The sampling rate a configuration without `samplingRatePerMillion` means: upstream's sampler then samples
/// no trace rkube starts itself ("never samples" unless the parent is sampled); rkube decides per trace id
/// only (see [`Config::sampled`]), so unset means none.
pub const DEFAULT_SAMPLING_RATE_PER_MILLION: u32 = 0;

/// Why export could not be configured or started; the component refuses to start with it (export never fails
/// once running: a failed post only counts its spans as dropped).
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The configuration file could not be read.
    #[error("read tracing configuration {path}: {source}")]
    Read {
        /// The file, as given.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    #[error("tracing configuration {path}: {message}")]
    /// The configuration file is not a usable `TracingConfiguration` or `KubeletConfiguration`.
    Invalid {
        /// The file, as given.
        path: String,
        /// What is wrong, with the endpoint's error when that is it.
        message: String,
    },
    /// The endpoint (or the sampling rate given with it) is not one this exporter can use.
    #[error("OTLP endpoint {endpoint:?}: {message}")]
    Endpoint {
        /// The endpoint as given (`localhost:4318` when unset).
        endpoint: String,
        /// Why not, and what is expected.
        message: String,
    },
    /// The export thread could not be spawned.
    #[error("start the OTLP export thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// Where and how much to export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `host:port` of the collector's OTLP/HTTP receiver.
    pub authority: String,
    /// The request path (`/v1/traces`).
    pub path: String,
    /// Traces sampled per million, by trace id.
    pub sampling_rate_per_million: u32,
}

/// `TracingConfiguration` (apiserver.config.k8s.io/v1, v1beta1, v1alpha1), or a `KubeletConfiguration`
/// (kubelet.config.k8s.io/v1beta1) holding one as `tracing`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigFile {
    kind: Option<String>,
    endpoint: Option<String>,
    sampling_rate_per_million: Option<i64>,
    tracing: Option<Tracing>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Tracing {
    endpoint: Option<String>,
    sampling_rate_per_million: Option<i64>,
}

impl Config {
    /// Parses `endpoint` (`host:port` as upstream's TracingConfiguration writes it, or an `http://` URL; its
    /// path, if any, replaces `/v1/traces`) and the rate. Upstream's unset endpoint is `localhost:4317`, the
    /// OTLP/gRPC port; rkube speaks OTLP/HTTP, whose port is 4318.
    pub fn new(endpoint: Option<&str>, rate: Option<i64>) -> Result<Config, ExportError> {
        let raw = endpoint.map(str::trim).filter(|e| !e.is_empty()).unwrap_or("localhost:4318");
        let bad = |message: &str| ExportError::Endpoint { endpoint: raw.to_string(), message: message.to_string() };
        if raw.starts_with("https://") {
            return Err(bad("TLS to the collector is not supported (as upstream's TracingConfiguration: the connection is insecure); use http://"));
        }
        let rest = raw.strip_prefix("http://").unwrap_or(raw);
        if rest.contains("://") {
            return Err(bad("only http:// or host:port is supported"));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) if rest[i..].len() > 1 => (&rest[..i], rest[i..].to_string()),
            Some(i) => (&rest[..i], "/v1/traces".to_string()),
            None => (rest, "/v1/traces".to_string()),
        };
        let port_ok = authority.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
        if !port_ok {
            return Err(bad("expected host:port (e.g. localhost:4318)"));
        }
        let rate = match rate {
            None => DEFAULT_SAMPLING_RATE_PER_MILLION,
            Some(r) if (0..=1_000_000).contains(&r) => r as u32,
            Some(r) => return Err(bad(&format!("samplingRatePerMillion {r} is not between 0 and 1000000"))),
        };
        Ok(Config { authority: authority.to_string(), path, sampling_rate_per_million: rate })
    }

    /// A `TracingConfiguration` file's contents (YAML or JSON); `path` names it in errors.
    pub fn from_file_contents(path: &str, text: &str) -> Result<Config, ExportError> {
        let invalid = |message: String| ExportError::Invalid { path: path.to_string(), message };
        let f: ConfigFile = serde_yaml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let (endpoint, rate) = match f.kind.as_deref() {
            Some("KubeletConfiguration") => match f.tracing {
                Some(t) => (t.endpoint, t.sampling_rate_per_million),
                None => return Err(invalid("a KubeletConfiguration without tracing: nothing to export".into())),
            },
            Some("TracingConfiguration") | None => (f.endpoint, f.sampling_rate_per_million),
            Some(k) => return Err(invalid(format!("kind {k} is neither TracingConfiguration nor KubeletConfiguration"))),
        };
        Config::new(endpoint.as_deref(), rate).map_err(|e| invalid(e.to_string()))
    }

    /// A `TracingConfiguration` file.
    pub fn from_file(path: &std::path::Path) -> Result<Config, ExportError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ExportError::Read { path: shown.clone(), source })?;
        Config::from_file_contents(&shown, &text)
    }

    /// From the standard OpenTelemetry variables: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the URL as is), else
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` (a base URL, `/v1/traces` appended); every trace sampled, as the SDKs'
    /// default `parentbased_always_on`. None when neither is set.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Option<Config>, ExportError> {
        let set = |k: &str| get(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        if let Some(url) = set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            return Config::new(Some(&url), Some(1_000_000)).map(Some);
        }
        if let Some(base) = set("OTEL_EXPORTER_OTLP_ENDPOINT") {
            let url = format!("{}/v1/traces", base.trim_end_matches('/'));
            return Config::new(Some(&url), Some(1_000_000)).map(Some);
        }
        Ok(None)
    }

    /// Whether trace `trace_id` is exported: OpenTelemetry's TraceIdRatioBased decision (the trace id's low 8
    /// bytes, shifted right once, below rate * 2^63), so every component decides the same for one trace.
    pub fn sampled(&self, trace_id: u128) -> bool {
        if self.sampling_rate_per_million >= 1_000_000 {
            return true;
        }
        let bound = (f64::from(self.sampling_rate_per_million) / 1e6 * (1u64 << 63) as f64) as u64;
        ((trace_id as u64) >> 1) < bound
    }
}

/// What the exporter did, for `/metrics`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Spans the collector accepted.
    pub exported: AtomicU64,
    /// Spans lost: offered to a full queue, or in a batch the collector did not take.
    pub dropped: AtomicU64,
}

/// A finished span and the events recorded inside it.
struct Item {
    span: Record,
    events: Vec<Record>,
}

struct Exporter {
    config: Config,
    tx: SyncSender<Item>,
}

static EXPORTER: OnceLock<Exporter> = OnceLock::new();
static STATS: Stats = Stats { exported: AtomicU64::new(0), dropped: AtomicU64::new(0) };

/// Starts exporting this process's spans (once; a second call is ignored).
pub fn install(config: Config) -> Result<(), ExportError> {
    if EXPORTER.get().is_some() {
        return Ok(());
    }
    let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
    let target = config.clone();
    std::thread::Builder::new()
        .name("otlp-export".into())
        .spawn(move || run(&target, rx, &STATS))
        .map_err(ExportError::Thread)?;
    let _ = EXPORTER.set(Exporter { config, tx });
    Ok(())
}

/// Whether spans are exported in this process (the span layer keeps span events only then).
pub fn active() -> bool {
    EXPORTER.get().is_some()
}

/// Offers a finished span (with its events) to the queue without waiting; dropped and counted when full.
pub fn offer(trace_id: u128, span: &Record, events: Vec<Record>) {
    let Some(e) = EXPORTER.get() else { return };
    if !e.config.sampled(trace_id) {
        return;
    }
    match e.tx.try_send(Item { span: span.clone(), events }) {
        Ok(()) => {}
        Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
            STATS.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The exporter's counters in the Prometheus text format (empty when nothing is exported).
pub fn metrics() -> String {
    if !active() {
        return String::new();
    }
    format!(
        "# HELP rkube_trace_otlp_exported_spans_total Spans sent to the OTLP collector and accepted.\n\
         # TYPE rkube_trace_otlp_exported_spans_total counter\n\
         rkube_trace_otlp_exported_spans_total {}\n\
         # HELP rkube_trace_otlp_dropped_spans_total Spans not exported: the queue was full or the collector did not take them.\n\
         # TYPE rkube_trace_otlp_dropped_spans_total counter\n\
         rkube_trace_otlp_dropped_spans_total {}\n",
        STATS.exported.load(Ordering::Relaxed),
        STATS.dropped.load(Ordering::Relaxed)
    )
}

/// The batch delay: `OTEL_BSP_SCHEDULE_DELAY` in milliseconds, default 5000 as the SDKs'.
pub fn schedule_delay() -> Duration {
    let ms = std::env::var("OTEL_BSP_SCHEDULE_DELAY").ok().and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(5000);
    Duration::from_millis(ms.max(1))
}

fn run(config: &Config, rx: Receiver<Item>, stats: &Stats) {
    let delay = schedule_delay();
    let mut batch: Vec<Item> = Vec::new();
    let mut due = Instant::now() + delay;
    loop {
        let wait = due.saturating_duration_since(Instant::now());
        let closed = match rx.recv_timeout(wait) {
            Ok(item) => {
                batch.push(item);
                false
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        if batch.len() >= BATCH || Instant::now() >= due || closed {
            if !batch.is_empty() {
                let n = batch.len() as u64;
                let body = request(&batch).to_string();
                batch.clear();
                match post(config, &body) {
                    Ok(()) => stats.exported.fetch_add(n, Ordering::Relaxed),
                    Err(e) => {
                        tracing::debug!(target: "rkube_trace_export", error = %e, spans = n, "otlp export failed");
                        stats.dropped.fetch_add(n, Ordering::Relaxed)
                    }
                };
            }
            due = Instant::now() + delay;
        }
        if closed {
            return;
        }
    }
}

fn kv(attributes: &BTreeMap<String, String>) -> Value {
    Value::Array(attributes.iter().map(|(k, v)| json!({"key": k, "value": {"stringValue": v}})).collect())
}

/// An `ExportTraceServiceRequest` in the OTLP JSON mapping: one `resourceSpans` per component
/// (`service.name`), one `scopeSpans` (scope `rkube`), ids as hex, times as decimal strings (64-bit integers).
fn request(batch: &[Item]) -> Value {
    let mut by_component: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for item in batch {
        let s = &item.span;
        let end = s.start_unix_nanos.saturating_add(s.duration_nanos.unwrap_or(0));
        // SPAN_KIND_SERVER for the apiserver's request span, SPAN_KIND_INTERNAL for the rest
        let kind = if s.name == "apiserver.create" { 2 } else { 1 };
        let mut span = json!({
            "traceId": s.trace_id,
            "spanId": s.span_id,
            "name": s.name,
            "kind": kind,
            "startTimeUnixNano": s.start_unix_nanos.to_string(),
            "endTimeUnixNano": end.to_string(),
            "attributes": kv(&s.attributes),
            "events": item.events.iter().map(|e| json!({
                "timeUnixNano": e.start_unix_nanos.to_string(),
                "name": e.name,
                "attributes": kv(&e.attributes),
            })).collect::<Vec<_>>(),
            "status": {},
        });
        if !s.parent_id.is_empty() {
            span["parentSpanId"] = json!(s.parent_id);
        }
        by_component.entry(s.component.as_str()).or_default().push(span);
    }
    let resource_spans: Vec<Value> = by_component
        .into_iter()
        .map(|(component, spans)| {
            json!({
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": component}}]},
                "scopeSpans": [{"scope": {"name": "rkube", "version": env!("CARGO_PKG_VERSION")}, "spans": spans}],
            })
        })
        .collect();
    json!({ "resourceSpans": resource_spans })
}

/// One `POST` over HTTP/1.1, `Connection: close`; a 2xx answer is success.
fn post(config: &Config, body: &str) -> Result<(), String> {
    let started = Instant::now();
    let addr = config
        .authority
        .to_socket_addrs()
        .map_err(|e| format!("resolve {}: {e}", config.authority))?
        .next()
        .ok_or_else(|| format!("resolve {}: no address", config.authority))?;
    let mut conn = TcpStream::connect_timeout(&addr, EXPORT_TIMEOUT).map_err(|e| format!("connect {addr}: {e}"))?;
    let left = EXPORT_TIMEOUT.saturating_sub(started.elapsed()).max(Duration::from_millis(1));
    let _ = conn.set_read_timeout(Some(left));
    let _ = conn.set_write_timeout(Some(left));
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        config.path,
        config.authority,
        body.len()
    );
    conn.write_all(head.as_bytes()).and_then(|()| conn.write_all(body.as_bytes())).map_err(|e| format!("send to {addr}: {e}"))?;
    let mut answer = Vec::new();
    let _ = conn.take(64 * 1024).read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse::<u16>().ok());
    match status {
        Some(c) if (200..300).contains(&c) => Ok(()),
        Some(c) => Err(format!("collector {addr} answered HTTP {c}")),
        None => Err(format!("collector {addr} sent no HTTP answer")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(name: &str, span: &str, parent: &str, component: &str) -> Record {
        Record {
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            span_id: span.into(),
            parent_id: parent.into(),
            name: name.into(),
            component: component.into(),
            kind: "span".into(),
            start_unix_nanos: 1_700_000_000_000_000_123,
            duration_nanos: Some(1000),
            attributes: [("pod".to_string(), "default/web".to_string())].into(),
        }
    }

    #[test]
    fn endpoints_as_upstream_writes_them() {
        let c = Config::new(Some("localhost:4318"), Some(1_000_000)).expect("host:port");
        assert_eq!((c.authority.as_str(), c.path.as_str()), ("localhost:4318", "/v1/traces"));
        let c = Config::new(Some("http://127.0.0.1:9/custom/traces"), None).expect("url with a path");
        assert_eq!((c.authority.as_str(), c.path.as_str(), c.sampling_rate_per_million), ("127.0.0.1:9", "/custom/traces", 0));
        assert_eq!(Config::new(None, None).expect("default").authority, "localhost:4318");
        for bad in ["https://c:4318", "grpc://c:4317", "collector", "c:port"] {
            assert!(Config::new(Some(bad), None).is_err(), "{bad} must be refused");
        }
        assert!(Config::new(Some("c:1"), Some(1_000_001)).is_err());
        let f = "apiVersion: apiserver.config.k8s.io/v1\nkind: TracingConfiguration\nendpoint: 127.0.0.1:4318\nsamplingRatePerMillion: 1000000\n";
        assert_eq!(Config::from_file_contents("f", f).expect("valid").sampling_rate_per_million, 1_000_000);
        let k = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ntracing:\n  endpoint: 127.0.0.1:4000\n  samplingRatePerMillion: 10\n";
        let c = Config::from_file_contents("k", k).expect("kubelet's");
        assert_eq!((c.authority.as_str(), c.sampling_rate_per_million), ("127.0.0.1:4000", 10));
        let err = Config::from_file_contents("/etc/t.yaml", "kind: Pod\n").expect_err("wrong kind").to_string();
        assert!(err.contains("/etc/t.yaml") && err.contains("kind Pod"), "{err}");
        let env = |k: &str| (k == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| "http://127.0.0.1:4318/".to_string());
        let c = Config::from_env(env).expect("valid").expect("set");
        assert_eq!((c.path.as_str(), c.sampling_rate_per_million), ("/v1/traces", 1_000_000));
        assert_eq!(Config::from_env(|_| None).expect("valid"), None);
    }

    #[test]
    fn sampling_decides_by_trace_id() {
        let all = Config::new(Some("c:1"), Some(1_000_000)).expect("valid");
        let none = Config::new(Some("c:1"), Some(0)).expect("valid");
        let half = Config::new(Some("c:1"), Some(500_000)).expect("valid");
        assert!(all.sampled(u128::MAX) && !none.sampled(1));
        assert!(half.sampled(0x10) && !half.sampled(u128::from(u64::MAX)));
        let n = (0..10_000u128).filter(|i| half.sampled(i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835))).count();
        assert!((4_000..6_000).contains(&n), "about half sampled: {n}");
    }

    #[test]
    fn the_request_follows_the_otlp_json_mapping() {
        let span = rec("kubelet.pod", "00f067aa0ba902b7", "53995c3f42cd8ad8", "kubelet");
        let mut ev = rec("kubelet saw the pod", "1111111111111111", "00f067aa0ba902b7", "kubelet");
        ev.duration_nanos = None;
        let root = rec("apiserver.create", "53995c3f42cd8ad8", "", "apiserver");
        let body = request(&[Item { span, events: vec![ev] }, Item { span: root, events: vec![] }]);
        let rs = body["resourceSpans"].as_array().expect("resourceSpans");
        assert_eq!(rs.len(), 2, "one per component");
        assert_eq!(rs[0]["resource"]["attributes"][0], json!({"key": "service.name", "value": {"stringValue": "apiserver"}}));
        let api = &rs[0]["scopeSpans"][0]["spans"][0];
        assert_eq!(api["kind"], 2);
        assert!(api.get("parentSpanId").is_none(), "a root has no parent");
        let k = &rs[1]["scopeSpans"][0]["spans"][0];
        assert_eq!(k["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(k["spanId"], "00f067aa0ba902b7");
        assert_eq!(k["parentSpanId"], "53995c3f42cd8ad8");
        assert_eq!(k["startTimeUnixNano"], "1700000000000000123");
        assert_eq!(k["endTimeUnixNano"], "1700000000000001123");
        assert_eq!(k["attributes"][0], json!({"key": "pod", "value": {"stringValue": "default/web"}}));
        assert_eq!(k["events"][0]["name"], "kubelet saw the pod");
        assert_eq!(k["events"][0]["timeUnixNano"], "1700000000000000123");
    }

    #[test]
    fn a_batch_reaches_a_collector_and_a_missing_one_costs_the_batch() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = std::thread::spawn(move || {
            let (mut c, _) = listener.accept().expect("accept");
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // read the head and the body of Content-Length
            loop {
                let n = c.read(&mut chunk).expect("read");
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(i) = text.find("\r\n\r\n") {
                    let len: usize = text
                        .lines()
                        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().expect("len")))
                        .expect("content-length");
                    if buf.len() >= i + 4 + len {
                        c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}").expect("answer");
                        return text;
                    }
                }
                assert!(n > 0, "the request ended early: {text}");
            }
        });
        let config = Config::new(Some(&addr.to_string()), Some(1_000_000)).expect("valid");
        let item = Item { span: rec("scheduler.schedule", "00f067aa0ba902b7", "", "scheduler"), events: vec![] };
        post(&config, &request(&[item]).to_string()).expect("the collector takes it");
        let got = server.join().expect("collector");
        assert!(got.starts_with("POST /v1/traces HTTP/1.1\r\n") && got.contains("Content-Type: application/json"), "{got}");
        assert!(got.contains(r#""name":"scheduler.schedule""#), "{got}");
        // nobody listens there any more
        let err = post(&config, "{}").expect_err("no collector");
        assert!(err.contains(&addr.to_string()), "{err}");
    }
}
