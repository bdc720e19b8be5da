//! A pod's trace for its page: the same records `rkube trace pod` reads (the apiserver's
//! `/debug/rkube/traces/<id>` and the node's kubelet's, through the node proxy), merged and labelled by
//! `rkube_trace::timeline` (the one timeline builder; this module only fetches), with each step's title and
//! details for the page to draw as bars on a time axis; and its new steps live ([`follow_stream`]), from the
//! loop `rkube trace pod --follow` runs (`rkube_trace::live`).
//!
//! Must not: order, filter or name steps itself (that is the timeline's), decide which steps come next (the
//! follower's), or fail the page for a kubelet that does not answer (the control plane's steps are shown, with a
//! note).

use std::convert::Infallible;
use std::time::Duration;

use axum::response::sse::Event as SseEvent;
use futures::Stream;
use rkube_trace::fetch::{self, TraceFetchError};
use rkube_trace::live::{self, FollowError, Followed};
use rkube_trace::store::Record;
use rkube_trace::timeline::{self, PodTrace};
use serde::Serialize;

/// What the page draws: `rkube trace pod -o json`'s document, each step's words, and what could not be read.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PageTrace {
    /// The pod's timeline, as `rkube trace pod -o json` prints it.
    pub trace: PodTrace,
    /// Per step, in the same order: its title and details as `rkube trace pod` prints them.
    pub labels: Vec<StepLabel>,
    /// Set when the node's kubelet did not answer: only the control plane's steps are there.
    pub warning: Option<String>,
}

/// A step's words, as `rkube trace pod` prints its line.
#[derive(Debug, Serialize, PartialEq)]
pub struct StepLabel {
    /// What happened (`timeline::title`): `request accepted and stored`, `scheduled on n1`, ...
    pub title: String,
    /// The step's details (`timeline::details`): ids, sizes, reasons.
    pub details: String,
}

fn labels_of(steps: &[Record]) -> Vec<StepLabel> {
    steps.iter().map(|s| StepLabel { title: timeline::title(s), details: timeline::details(s) }).collect()
}

/// Pod `ns/name`'s trace, as `rkube trace pod` assembles it.
pub async fn fetch_pod_trace(client: &kube::Client, ns: &str, name: &str) -> Result<PageTrace, TraceFetchError> {
    let (trace, warning) = fetch::pod_trace(client, ns, name).await?;
    let labels = labels_of(&trace.steps);
    Ok(PageTrace { trace, labels, warning })
}

/// How long the live timeline of a pod that does not exist yet waits for it (as `rkube trace pod --follow`'s
/// default `--timeout`).
pub const FOLLOW_WAIT: Duration = Duration::from_secs(60);

/// One message of a pod's live trace: the `data` of an SSE event named `trace`, what `rkube trace pod --follow`
/// says, tagged by `op`.
#[derive(Debug, Serialize, PartialEq)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum LiveTrace {
    /// The pod does not exist yet; it is waited for [`FOLLOW_WAIT`].
    Waiting,
    /// The pod exists and has this trace id.
    #[serde(rename_all = "camelCase")]
    Started {
        /// The pod's trace id, 32 hex digits.
        trace_id: String,
    },
    /// New steps, each once, in order, with their words.
    Steps {
        /// The steps' records, as in `rkube trace pod -o json`.
        steps: Vec<Record>,
        /// Per step, in the same order: its words.
        labels: Vec<StepLabel>,
    },
    /// A note that does not end the follow (a kubelet that does not answer yet, a watch retried).
    Note {
        /// What `rkube trace pod --follow` prints on stderr.
        message: String,
    },
    /// The pod is Ready, finished or failed: the last message.
    Done {
        /// `Ready`, `finished (Succeeded)` or `failed (<reason>)`.
        what: String,
    },
    /// The follow ended before that (deleted first, never created, no trace context): the last message.
    Problem {
        /// What `rkube trace pod --follow` says.
        message: String,
    },
}

impl From<Followed> for LiveTrace {
    fn from(f: Followed) -> LiveTrace {
        match f {
            Followed::Waiting { .. } => LiveTrace::Waiting,
            Followed::Started { trace_id } => LiveTrace::Started { trace_id },
            Followed::Steps(steps) => LiveTrace::Steps { labels: labels_of(&steps), steps },
            Followed::Note(message) => LiveTrace::Note { message },
            Followed::Done { what, .. } => LiveTrace::Done { what },
        }
    }
}

fn sse(u: &LiveTrace) -> Result<SseEvent, Infallible> {
    let data = serde_json::to_string(u).unwrap_or_else(|e| format!(r#"{{"op":"problem","message":"encode a trace update: {e}"}}"#));
    Ok(SseEvent::default().event("trace").data(data))
}

/// Pod `ns/name`'s steps as they are recorded, as server-sent events: `rkube_trace::live::follow_pod` run for
/// this page, until the pod is done, the follow fails, or the page goes (the stream dropped: the follow stops
/// at once).
pub fn follow_stream(client: kube::Client, ns: String, name: String) -> impl Stream<Item = Result<SseEvent, Infallible>> + Send + 'static {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<LiveTrace>();
    tokio::spawn(async move {
        let send = tx.clone();
        let follow = live::follow_pod(&client, &ns, &name, FOLLOW_WAIT, move |f| {
            send.send(f.into()).map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the page is gone"))
        });
        tokio::select! {
            r = follow => match r {
                Ok(()) | Err(FollowError::Sink(_)) => {}
                Err(e) => {
                    let _ = tx.send(LiveTrace::Problem { message: e.to_string() });
                }
            },
            _ = tx.closed() => {}
        }
    });
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|u| (sse(&u), rx)) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_follow_says_becomes_the_pages_messages() {
        let started: LiveTrace = Followed::Started { trace_id: "ab".repeat(16) }.into();
        assert_eq!(serde_json::to_value(&started).expect("json"), serde_json::json!({"op": "started", "traceId": "ab".repeat(16)}));
        let done: LiveTrace = Followed::Done { pod: "default/p".into(), what: "Ready".into() }.into();
        assert_eq!(serde_json::to_value(&done).expect("json"), serde_json::json!({"op": "done", "what": "Ready"}));
        let steps: LiveTrace = Followed::Steps(vec![]).into();
        assert_eq!(serde_json::to_value(&steps).expect("json"), serde_json::json!({"op": "steps", "steps": [], "labels": []}));
    }
}
