//! Reading a pod's trace through the API, for `rkube trace pod` and the dashboard's pod page (feature `client`):
//! the trace id from the pod's `rkube.io/traceparent` (or, for a pod that is gone, the apiserver's index of kept
//! traces), the records from the apiserver's `/debug/rkube/traces/<id>` and from the pod's node's kubelet through
//! the node proxy, merged by [`crate::timeline`]. Also what a watch of a followed pod says ([`pod_state`],
//! [`seen`]), pure.
//!
//! Must not: order, filter or name steps (the timeline's), or fail for a kubelet that does not answer (the
//! control plane's steps are returned, with a warning saying so).

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher;
use kube::Api;

use crate::store::Record;
use crate::timeline::{self, PodTrace};
use crate::TraceParent;

/// How long the apiserver or a kubelet may take to answer.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(20);

/// Why a pod's trace could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TraceFetchError {
    /// Neither the pod nor a kept trace of it exists.
    #[error("pod {pod} not found (kubectl get pods -n {ns} lists the pods there), and no trace is kept for it")]
    NotFound {
        /// `namespace/name`.
        pod: String,
        /// The namespace.
        ns: String,
    },
    /// The pod exists without a trace context.
    #[error("pod {pod} has no trace context (annotation {annotation}): it was created before tracing, or with tracing off")]
    NoContext {
        /// `namespace/name`.
        pod: String,
        /// The annotation that is missing.
        annotation: &'static str,
    },
    /// The apiserver did not answer, or answered something that does not decode.
    #[error("read the trace of pod {pod}: {what}: {source}")]
    Api {
        /// `namespace/name`.
        pod: String,
        /// What was being read.
        what: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
}

impl TraceFetchError {
    /// The HTTP status an API answering with this error uses (the dashboard's).
    pub fn status(&self) -> u16 {
        match self {
            TraceFetchError::NotFound { .. } => 404,
            TraceFetchError::NoContext { .. } => 409,
            TraceFetchError::Api { .. } => 502,
        }
    }
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// GET `path` on the apiserver as JSON; None on 404.
async fn get_json(client: &kube::Client, path: &str) -> Result<Option<serde_json::Value>, kube::Error> {
    let req = http::Request::get(path).body(Vec::new()).map_err(kube::Error::HttpError)?;
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

/// The trace id a pod's annotation carries, or [`TraceFetchError::NoContext`].
pub fn trace_id_of(pod: &Pod, key: &str) -> Result<String, TraceFetchError> {
    let tp = TraceParent::from_annotations(pod.metadata.annotations.as_ref())
        .ok_or(TraceFetchError::NoContext { pod: key.to_string(), annotation: crate::ANNOTATION })?;
    Ok(format!("{:032x}", tp.trace_id))
}

/// Trace `trace_id`'s records from the apiserver and, when known, from `node`'s kubelet (or from the node the
/// control plane's records name), merged into pod `key`'s steps. Also returns the node read and, when its
/// kubelet did not answer, a warning saying only the control plane's steps are there.
pub async fn steps(
    client: &kube::Client,
    trace_id: &str,
    key: &str,
    node: Option<String>,
) -> Result<(Vec<Record>, Option<String>, Option<String>), TraceFetchError> {
    let api_err = |what: &str, source: kube::Error| TraceFetchError::Api { pod: key.to_string(), what: what.to_string(), source };
    let control = get_json(client, &format!("/debug/rkube/traces/{trace_id}")).await.map_err(|e| api_err("the apiserver's records", e))?;
    let mut sets = vec![records(control).map_err(|e| api_err("the apiserver's records", kube::Error::SerdeError(e)))?];
    let node = node.or_else(|| timeline::node_of(&timeline::merge(sets.clone(), key)));
    let mut warning = None;
    if let Some(n) = &node {
        match get_json(client, &format!("/api/v1/nodes/{n}/proxy/debug/rkube/traces/{trace_id}")).await.map(records) {
            Ok(Ok(r)) => sets.push(r),
            Ok(Err(e)) => warning = Some(format!("the kubelet of node {n} answered records that do not decode ({e}): the control plane's steps only")),
            Err(e) => warning = Some(format!("the kubelet of node {n} did not answer ({e}): the control plane's steps only")),
        }
    }
    Ok((timeline::merge(sets, key), node, warning))
}

/// Pod `ns/name`'s trace (the `trace.rkube.io/v1alpha1` PodTrace document), and a warning when its node's
/// kubelet did not answer. A pod that is gone is read from the apiserver's kept traces.
pub async fn pod_trace(client: &kube::Client, ns: &str, name: &str) -> Result<(PodTrace, Option<String>), TraceFetchError> {
    let key = format!("{ns}/{name}");
    let api_err = |what: &str, source: kube::Error| TraceFetchError::Api { pod: key.clone(), what: what.to_string(), source };
    let pod = Api::<Pod>::namespaced(client.clone(), ns).get_opt(name).await.map_err(|e| api_err("read the pod", e))?;
    let (trace_id, node, exists) = match &pod {
        Some(p) => (trace_id_of(p, &key)?, p.spec.as_ref().and_then(|s| s.node_name.clone()), true),
        None => {
            let kept = get_json(client, &format!("/debug/rkube/traces/pods/{ns}/{name}"))
                .await
                .map_err(|e| api_err("ask the apiserver for a kept trace", e))?;
            let id = kept.as_ref().and_then(|k| k.get("traceId")).and_then(|v| v.as_str());
            let id = id.ok_or_else(|| TraceFetchError::NotFound { pod: key.clone(), ns: ns.into() })?;
            (id.to_string(), None, false)
        }
    };
    let (steps, node, warning) = steps(client, &trace_id, &key, node).await?;
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
    Ok((trace, warning))
}

/// Where a followed pod is.
#[derive(Debug, PartialEq)]
pub enum PodState {
    /// Not created yet.
    Missing,
    /// Neither Ready nor finished.
    Running,
    /// Ready, finished or failed: what to say.
    Done(String),
}

/// Where `pod` is: Ready, Succeeded and Failed end a follow.
pub fn pod_state(pod: Option<&Pod>) -> PodState {
    let Some(p) = pod else { return PodState::Missing };
    let status = p.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or_default();
    let ready = status.and_then(|s| s.conditions.as_ref()).is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    match phase {
        "Failed" => PodState::Done(format!("failed{}", status.and_then(|s| s.reason.as_deref()).map(|r| format!(" ({r})")).unwrap_or_default())),
        "Succeeded" => PodState::Done("finished (Succeeded)".into()),
        _ if ready => PodState::Done("Ready".into()),
        _ => PodState::Running,
    }
}

/// What a watch event says about the followed pod.
#[derive(Debug)]
pub enum Seen {
    /// The pod as it is now.
    Pod(Box<Pod>),
    /// Deleted, or absent from a (re)list.
    Gone,
    /// Nothing about the pod.
    Nothing,
}

/// Folds one watch event of the pod (watched by name) into what it says. A relist (`Init` .. `InitDone`, after
/// the watch expired: 410 Gone) that does not list the pod means it is gone.
pub fn seen(ev: watcher::Event<Pod>, listed: &mut bool) -> Seen {
    match ev {
        watcher::Event::Apply(p) | watcher::Event::InitApply(p) => {
            *listed = true;
            Seen::Pod(Box::new(p))
        }
        watcher::Event::Delete(_) => Seen::Gone,
        watcher::Event::Init => {
            *listed = false;
            Seen::Nothing
        }
        watcher::Event::InitDone if !*listed => Seen::Gone,
        watcher::Event::InitDone => Seen::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};

    fn pod(phase: &str, ready: bool) -> Pod {
        Pod {
            status: Some(PodStatus {
                phase: Some(phase.into()),
                conditions: Some(vec![PodCondition { type_: "Ready".into(), status: if ready { "True" } else { "False" }.into(), ..Default::default() }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_follow_ends_when_the_pod_is_ready_finished_or_failed() {
        assert_eq!(pod_state(None), PodState::Missing);
        assert_eq!(pod_state(Some(&pod("Pending", false))), PodState::Running);
        assert_eq!(pod_state(Some(&pod("Running", true))), PodState::Done("Ready".into()));
        assert_eq!(pod_state(Some(&pod("Succeeded", false))), PodState::Done("finished (Succeeded)".into()));
        let mut failed = pod("Failed", false);
        failed.status.as_mut().unwrap().reason = Some("Evicted".into());
        assert_eq!(pod_state(Some(&failed)), PodState::Done("failed (Evicted)".into()));
    }

    #[test]
    fn a_relist_without_the_pod_says_it_is_gone() {
        let mut listed = false;
        assert!(matches!(seen(watcher::Event::Init, &mut listed), Seen::Nothing));
        assert!(matches!(seen(watcher::Event::InitApply(pod("Running", false)), &mut listed), Seen::Pod(_)));
        assert!(matches!(seen(watcher::Event::InitDone, &mut listed), Seen::Nothing));
        // the watch expired (410): relisted, and the pod is not in the list
        assert!(matches!(seen(watcher::Event::Init, &mut listed), Seen::Nothing));
        assert!(matches!(seen(watcher::Event::InitDone, &mut listed), Seen::Gone));
        assert!(matches!(seen(watcher::Event::Delete(pod("Running", true)), &mut listed), Seen::Gone));
    }
}
