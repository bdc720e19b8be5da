//! A pod's steps as they are recorded: the loop of `rkube trace pod NAME --follow` and of the dashboard's live
//! timeline (one loop, two sinks). It waits for the pod, then hands each new step over once, in order
//! ([`crate::follow::Follower`] decides which), until the pod is Ready, has finished or failed.
//!
//! The pod (by name) and its Events (`involvedObject.name`) are watched, as `kubectl get -w` watches: list, then
//! watch from the list's resourceVersion, resumed from the last one seen when the watch ends, and listed again
//! when that version has expired (410 Gone; kube-runtime's watcher). The trace records are not objects and
//! cannot be watched: each change of the pod or a new Event reads them, and so does every [`POLL`] for
//! [`AFTER_CHANGE`] after it (a span is recorded when it ends, with no change of its own) or while a step waits
//! for its parent span; with nothing happening, every [`IDLE`].
//!
//! Must not: print, or decide which steps come next (the sink prints; [`crate::follow`] decides).

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::runtime::watcher::{self, watcher};
use kube::runtime::WatchStreamExt;
use kube::Api;

use crate::fetch::{self, pod_state, seen, PodState, Seen, TraceFetchError};
use crate::follow::Follower;
use crate::store::Record;

/// How often the records are read while the pod changes or a step waits for its parent span.
pub const POLL: Duration = Duration::from_millis(200);
/// How long after a change of the pod (or a new Event) the records are read every [`POLL`]: a step's parent
/// span can take [`crate::follow::HOLD`] to come.
pub const AFTER_CHANGE: Duration = Duration::from_millis(2500);
/// How often the records are read when nothing changes (a step no change announces: an image pull's progress,
/// a span ending).
pub const IDLE: Duration = Duration::from_secs(2);
/// After the pod is done, how long to wait for the kubelet's last steps (the status that says Ready).
pub const SETTLE: Duration = Duration::from_secs(5);

/// What the follow has to say, in this order: [`Followed::Waiting`] at most once, [`Followed::Started`] once,
/// then steps and notes, then [`Followed::Done`] (or the follow's error).
#[derive(Debug, Clone, PartialEq)]
pub enum Followed {
    /// The pod does not exist yet: it is waited for.
    Waiting {
        /// `namespace/name`.
        pod: String,
        /// How long it is waited for.
        timeout: Duration,
    },
    /// The pod exists: what it is followed by.
    Started {
        /// The pod's trace id, 32 hex digits.
        trace_id: String,
    },
    /// Steps recorded since the last ones handed over, each once, in the order the pod lived them.
    Steps(Vec<Record>),
    /// Something said once that does not end the follow: a kubelet that does not answer (its steps come when it
    /// does), a watch that failed and is retried.
    Note(String),
    /// The pod is Ready, has finished or failed (what it is: `Ready`, `finished (Succeeded)`, `failed (...)`);
    /// every step recorded was handed over, and the follow ends.
    Done {
        /// `namespace/name`.
        pod: String,
        /// `Ready`, `finished (Succeeded)` or `failed (<reason>)`.
        what: String,
    },
}

/// Why a follow ended before the pod was done.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// The pod did not appear in time.
    #[error("pod {pod} was not created within {} s (kubectl get pods -n {ns} lists the pods there; --timeout waits longer)", .timeout.as_secs())]
    NotCreated {
        /// `namespace/name`.
        pod: String,
        /// The namespace.
        ns: String,
        /// How long it was waited for.
        timeout: Duration,
    },
    /// The pod was deleted first (the steps recorded were handed over).
    #[error("pod {pod} was deleted before it was Ready")]
    Deleted {
        /// `namespace/name`.
        pod: String,
    },
    /// A watch stream ended (the watcher retries failures itself, so this is the client going away).
    #[error("the watch of {what} ended")]
    WatchEnded {
        /// `pod <ns/name>` or `pod <ns/name>'s events`.
        what: String,
    },
    /// The pod or its records could not be read.
    #[error(transparent)]
    Fetch(#[from] TraceFetchError),
    /// The sink refused what it was handed (stdout closed, the page gone).
    #[error("hand over the followed steps: {0}")]
    Sink(#[source] std::io::Error),
}

/// Follows pod `ns/name`, handing [`Followed`]s to `sink` as they come, until the pod is done (`Ok`), the
/// follow fails, or `sink` returns an error (then [`FollowError::Sink`]). `timeout`: how long to wait for a pod
/// that does not exist yet.
pub async fn follow_pod(
    client: &kube::Client,
    ns: &str,
    name: &str,
    timeout: Duration,
    mut sink: impl FnMut(Followed) -> std::io::Result<()>,
) -> Result<(), FollowError> {
    let mut say = |f: Followed| sink(f).map_err(FollowError::Sink);
    let key = format!("{ns}/{name}");
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut pod_watch = watcher(pods, watcher::Config::default().fields(&format!("metadata.name={name}"))).default_backoff().boxed();
    let mut listed = false;
    let mut said = Said::default();
    // wait for the pod and its trace context
    let (trace_id, mut pod) = loop {
        let ev = match tokio::time::timeout_at(deadline, pod_watch.next()).await {
            Err(_) => return Err(FollowError::NotCreated { pod: key, ns: ns.into(), timeout }),
            Ok(None) => return Err(FollowError::WatchEnded { what: format!("pod {key}") }),
            Ok(Some(Err(e))) => {
                said.watch_failed(&format!("pod {key}"), &e, &mut say)?;
                continue;
            }
            Ok(Some(Ok(ev))) => ev,
        };
        match seen(ev, &mut listed) {
            Seen::Pod(p) => break (fetch::trace_id_of(&p, &key)?, *p),
            Seen::Gone if !said.waiting => {
                said.waiting = true;
                say(Followed::Waiting { pod: key.clone(), timeout })?;
            }
            Seen::Gone | Seen::Nothing => {}
        }
    };
    say(Followed::Started { trace_id: trace_id.clone() })?;
    let mut event_watch =
        watcher(events, watcher::Config::default().fields(&format!("involvedObject.name={name}"))).default_backoff().boxed();
    let mut follower = Follower::new();
    let mut done: Option<(String, tokio::time::Instant)> = None;
    let mut changed_at = tokio::time::Instant::now();
    loop {
        let state = pod_state(Some(&pod));
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        let steps = read(client, &trace_id, &key, node.clone(), &mut said, &mut say).await?;
        if let (PodState::Done(what), None) = (&state, &done) {
            done = Some((what.clone(), tokio::time::Instant::now()));
        }
        // once done, the last steps (the kubelet's status saying so) may still be on their way: wait for them a
        // little, then hand over everything left
        let settled = done.as_ref().is_some_and(|(what, since)| {
            since.elapsed() >= SETTLE || what != "Ready" || steps.iter().any(|s| s.name == "status" && s.attr("ready") == Some("True"))
        });
        let next = follower.next(&steps, std::time::Instant::now(), settled);
        if !next.is_empty() {
            say(Followed::Steps(next))?;
        }
        if settled {
            if let Some((what, _)) = done {
                say(Followed::Done { pod: key, what })?;
            }
            return Ok(());
        }
        let busy = changed_at.elapsed() < AFTER_CHANGE || follower.holding() || done.is_some();
        let next_read = tokio::time::Instant::now() + if busy { POLL } else { IDLE };
        // wait for a change of the pod, a new Event of it, or the next read
        loop {
            tokio::select! {
                ev = pod_watch.next() => match ev {
                    None => return Err(FollowError::WatchEnded { what: format!("pod {key}") }),
                    Some(Err(e)) => said.watch_failed(&format!("pod {key}"), &e, &mut say)?,
                    Some(Ok(ev)) => match seen(ev, &mut listed) {
                        Seen::Pod(p) => {
                            pod = *p;
                            changed_at = tokio::time::Instant::now();
                            break;
                        }
                        Seen::Gone => {
                            // gone before it was done: hand over what was recorded, and say so
                            let steps = read(client, &trace_id, &key, node.clone(), &mut said, &mut say).await?;
                            let last = follower.next(&steps, std::time::Instant::now(), true);
                            if !last.is_empty() {
                                say(Followed::Steps(last))?;
                            }
                            return Err(FollowError::Deleted { pod: key });
                        }
                        Seen::Nothing => {}
                    },
                },
                ev = event_watch.next() => match ev {
                    None => return Err(FollowError::WatchEnded { what: format!("pod {key}'s events") }),
                    Some(Err(e)) => said.watch_failed(&format!("pod {key}'s events"), &e, &mut say)?,
                    Some(Ok(watcher::Event::Apply(_) | watcher::Event::InitApply(_))) => {
                        changed_at = tokio::time::Instant::now();
                        break;
                    }
                    Some(Ok(_)) => {}
                },
                _ = tokio::time::sleep_until(next_read) => break,
            }
        }
    }
}

/// What has been said once already.
#[derive(Default)]
struct Said {
    waiting: bool,
    kubelet: bool,
    watches: std::collections::HashSet<String>,
}

impl Said {
    /// Says a watch failure once per watch (the watcher retries with backoff, and relists after 410 Gone).
    fn watch_failed(&mut self, what: &str, e: &watcher::Error, say: &mut impl FnMut(Followed) -> Result<(), FollowError>) -> Result<(), FollowError> {
        if self.watches.insert(what.to_string()) {
            say(Followed::Note(format!("the watch of {what} failed ({e}); retrying")))?;
        }
        Ok(())
    }
}

/// The records of trace `trace_id` from the apiserver and the pod's node, merged to the pod's steps. A kubelet
/// that does not answer is said once, and its steps are missing until it does.
async fn read(
    client: &kube::Client,
    trace_id: &str,
    key: &str,
    node: Option<String>,
    said: &mut Said,
    say: &mut impl FnMut(Followed) -> Result<(), FollowError>,
) -> Result<Vec<Record>, FollowError> {
    let (steps, _, warning) = fetch::steps(client, trace_id, key, node).await?;
    if let Some(w) = warning.filter(|_| !said.kubelet) {
        said.kubelet = true;
        say(Followed::Note(format!("{w} until it answers")))?;
    }
    Ok(steps)
}
