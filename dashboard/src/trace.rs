//! A pod's trace for its page: the same records `rkube trace pod` reads (the apiserver's
//! `/debug/rkube/traces/<id>` and the node's kubelet's, through the node proxy), merged and labelled by
//! `rkube_trace::timeline` (the one timeline builder; this module only fetches), with each step's title and
//! details for the page to draw as bars on a time axis.
//!
//! Must not: order, filter or name steps itself (that is the timeline's), or fail the page for a kubelet that
//! does not answer (the control plane's steps are shown, with a note).

use rkube_trace::fetch::{self, TraceFetchError};
use rkube_trace::timeline::{self, PodTrace};
use serde::Serialize;

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

/// Pod `ns/name`'s trace, as `rkube trace pod` assembles it.
pub async fn fetch_pod_trace(client: &kube::Client, ns: &str, name: &str) -> Result<PageTrace, TraceFetchError> {
    let (trace, warning) = fetch::pod_trace(client, ns, name).await?;
    let labels = trace.steps.iter().map(|s| StepLabel { title: timeline::title(s), details: timeline::details(s) }).collect();
    Ok(PageTrace { trace, labels, warning })
}
