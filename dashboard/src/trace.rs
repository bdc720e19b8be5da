//! A pod's trace for its page: the same records `rkube trace pod` reads (the apiserver's
//! `/debug/rkube/traces/<id>` and the node's kubelet's, through the node proxy), merged and labelled by
//! `rkube_trace::timeline` (the one timeline builder; this module only fetches), with each step's title and
//! details for the page to draw as bars on a time axis.
//!
//! Must not: order, filter or name steps itself (that is the timeline's), or fail the page for a kubelet that
//! does not answer (the control plane's steps are shown, with a note).

use std::time::Duration;

use axum::http::Request;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use rkube_trace::store::Record;
use rkube_trace::timeline::{self, PodTrace};
use rkube_trace::TraceParent;
use serde::Serialize;

/// How long the apiserver or a kubelet may take to answer.
const FETCH_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum TraceFetchError {
    #[error("pod {pod} not found (kubectl get pods -n {ns} lists the pods there), and no trace is kept for it")]
    NotFound { pod: String, ns: String },
    #[error("pod {pod} has no trace context (annotation {annotation}): it was created before tracing, or with tracing off")]
    NoContext { pod: String, annotation: &'static str },
    #[error("read the trace of pod {pod}: {what}: {source}")]
    Api {
        pod: String,
        what: String,
        #[source]
        source: kube::Error,
    },
}

impl TraceFetchError {
    /// The HTTP status the dashboard answers with.
    pub fn status(&self) -> u16 {
        match self {
            TraceFetchError::NotFound { .. } => 404,
            TraceFetchError::NoContext { .. } => 409,
            TraceFetchError::Api { .. } => 502,
        }
    }
}

/// What the page draws: `rkube trace pod -o json`'s document, each step's words, and what could not be read.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PageTrace {
    pub trace: PodTrace,
    /// Per step, in the same order: its title and details as `rkube trace pod` prints them.
    pub labels: Vec<StepLabel>,
    /// Set when the node's kubelet did not answer: only the control plane's steps are there.
    pub warning: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct StepLabel {
    pub title: String,
    pub details: String,
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// GET `path` on the apiserver as JSON; None on 404.
async fn get_json(client: &kube::Client, path: &str) -> Result<Option<serde_json::Value>, kube::Error> {
    let req = Request::get(path).body(Vec::new()).map_err(kube::Error::HttpError)?;
    match tokio::time::timeout(FETCH_TIMEOUT, client.request_text(req)).await {
        Err(_) => Err(kube::Error::Service(format!("no answer from {path} in {} s", FETCH_TIMEOUT.as_secs()).into())),
        Ok(Ok(text)) => serde_json::from_str(&text).map(Some).map_err(kube::Error::SerdeError),
        Ok(Err(e)) if is_not_found(&e) => Ok(None),
        Ok(Err(e)) => Err(e),
    }
}

/// The `records` of a trace endpoint's answer (none when it has no such trace).
fn records(doc: Option<serde_json::Value>) -> Result<Vec<Record>, serde_json::Error> {
    match doc.and_then(|mut d| d.get_mut("records").map(serde_json::Value::take)) {
        Some(r) => serde_json::from_value(r),
        None => Ok(Vec::new()),
    }
}

/// Pod `ns/name`'s trace, as `rkube trace pod` assembles it.
pub async fn fetch_pod_trace(client: &kube::Client, ns: &str, name: &str) -> Result<PageTrace, TraceFetchError> {
    let key = format!("{ns}/{name}");
    let api_err = |what: &str| {
        let (pod, what) = (key.clone(), what.to_string());
        move |source: kube::Error| TraceFetchError::Api { pod, what, source }
    };
    let pod = Api::<Pod>::namespaced(client.clone(), ns).get_opt(name).await.map_err(api_err("read the pod"))?;
    let (trace_id, node, exists) = match &pod {
        Some(p) => {
            let tp = TraceParent::from_annotations(p.metadata.annotations.as_ref())
                .ok_or(TraceFetchError::NoContext { pod: key.clone(), annotation: rkube_trace::ANNOTATION })?;
            (format!("{:032x}", tp.trace_id), p.spec.as_ref().and_then(|s| s.node_name.clone()), true)
        }
        None => {
            let kept = get_json(client, &format!("/debug/rkube/traces/pods/{ns}/{name}")).await.map_err(api_err("ask the apiserver for a kept trace"))?;
            let id = kept.as_ref().and_then(|k| k.get("traceId")).and_then(|v| v.as_str());
            let id = id.ok_or_else(|| TraceFetchError::NotFound { pod: key.clone(), ns: ns.into() })?;
            (id.to_string(), None, false)
        }
    };
    let control = get_json(client, &format!("/debug/rkube/traces/{trace_id}")).await.map_err(api_err("the apiserver's records"))?;
    let mut sets = vec![records(control).map_err(|e| api_err("the apiserver's records")(kube::Error::SerdeError(e)))?];
    let node = node.or_else(|| timeline::node_of(&timeline::merge(sets.clone(), &key)));
    let mut warning = None;
    if let Some(n) = &node {
        match get_json(client, &format!("/api/v1/nodes/{n}/proxy/debug/rkube/traces/{trace_id}")).await.map(records) {
            Ok(Ok(r)) => sets.push(r),
            Ok(Err(e)) => warning = Some(format!("the kubelet of node {n} answered records that do not decode ({e}): the control plane's steps only")),
            Err(e) => warning = Some(format!("the kubelet of node {n} did not answer ({e}): the control plane's steps only")),
        }
    }
    let steps = timeline::merge(sets, &key);
    let labels = steps.iter().map(|s| StepLabel { title: timeline::title(s), details: timeline::details(s) }).collect();
    let trace = PodTrace {
        api_version: timeline::API_VERSION.into(),
        kind: "PodTrace".into(),
        namespace: ns.into(),
        name: name.into(),
        trace_id,
        node,
        exists,
        steps,
    };
    Ok(PageTrace { trace, labels, warning })
}
