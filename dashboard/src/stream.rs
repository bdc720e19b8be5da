//! Live updates: one kube-rs watcher per kind (nodes, pods, services, events, all namespaces) per open page,
//! turned into server-sent events. The watcher lists, then watches, and lists again after a lost watch; the
//! page follows the same protocol, so it never misses an object created between its list and its watch:
//!
//! - `init`: the kind is being (re)listed: the page clears the kind's table
//! - `apply` with `initial: true`: an object of that list
//! - `ready`: the list is complete
//! - `apply` with `initial: false`: an object created or changed since (a live update)
//! - `delete`: an object is gone
//! - `problem`: the watch failed (it retries with backoff); the message is shown on the page

use std::convert::Infallible;

use axum::response::sse::Event as SseEvent;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Event, Node, Pod, Service};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;
use serde::Serialize;

use crate::rows;

/// One message of the stream, the `data` of an SSE event named after the kind.
#[derive(Debug, Serialize, PartialEq)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Update<R> {
    /// The kind is being (re)listed: the page clears its table.
    Init,
    /// An object listed, created or changed.
    Apply {
        /// `namespace/name`, or `name` for a cluster-scoped object.
        key: String,
        /// Whether it came with the list (else it is a live change since).
        initial: bool,
        /// Its table row.
        row: R,
    },
    /// The list is complete.
    Ready,
    /// An object is gone.
    Delete {
        /// `namespace/name`, or `name`.
        key: String,
    },
    /// The watch failed and is retried with backoff.
    Problem {
        /// The watcher's error.
        message: String,
    },
}

/// The watcher's events for one kind as updates, the rows made by `row`. Pure: the tests feed it by hand.
pub fn updates<K, R>(events: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>>, row: fn(&K) -> R) -> impl Stream<Item = Update<R>>
where
    K: kube::Resource,
{
    events.map(move |e| match e {
        Ok(watcher::Event::Init) => Update::Init,
        Ok(watcher::Event::InitApply(o)) => Update::Apply { key: key_of(&o), initial: true, row: row(&o) },
        Ok(watcher::Event::InitDone) => Update::Ready,
        Ok(watcher::Event::Apply(o)) => Update::Apply { key: key_of(&o), initial: false, row: row(&o) },
        Ok(watcher::Event::Delete(o)) => Update::Delete { key: key_of(&o) },
        Err(e) => Update::Problem { message: e.to_string() },
    })
}

/// `namespace/name`, or `name` for a cluster-scoped object.
fn key_of<K: kube::Resource>(o: &K) -> String {
    let m = o.meta();
    let name = m.name.clone().unwrap_or_default();
    match &m.namespace {
        Some(ns) => format!("{ns}/{name}"),
        None => name,
    }
}

fn sse<R: Serialize>(kind: &'static str, u: Update<R>) -> Result<SseEvent, Infallible> {
    let data = serde_json::to_string(&u).unwrap_or_else(|e| format!(r#"{{"op":"problem","message":"encode a {kind} update: {e}"}}"#));
    Ok(SseEvent::default().event(kind).data(data))
}

fn kind_stream<K, R>(client: &kube::Client, kind: &'static str, row: fn(&K) -> R) -> impl Stream<Item = Result<SseEvent, Infallible>> + Send + 'static
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    R: Serialize + Send + 'static,
{
    let api: Api<K> = Api::all(client.clone());
    let events = watcher(api, watcher::Config::default()).default_backoff();
    updates(events, row).map(move |u| sse(kind, u))
}

/// The page's whole stream: nodes, pods, services and events, interleaved as they come.
pub fn cluster_stream(client: &kube::Client) -> impl Stream<Item = Result<SseEvent, Infallible>> + Send + 'static {
    futures::stream::select_all([
        kind_stream::<Node, _>(client, "nodes", rows::node_row).boxed(),
        kind_stream::<Pod, _>(client, "pods", rows::pod_row).boxed(),
        kind_stream::<Service, _>(client, "services", rows::service_row).boxed(),
        kind_stream::<Event, _>(client, "events", rows::event_row).boxed(),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ns: &str, name: &str) -> Pod {
        serde_json::from_value(serde_json::json!({"metadata": {"name": name, "namespace": ns}, "spec": {"containers": []}})).expect("pod")
    }

    #[tokio::test]
    async fn list_then_live_changes_become_updates_in_order() {
        let events = futures::stream::iter(vec![
            Ok(watcher::Event::Init),
            Ok(watcher::Event::InitApply(pod("default", "a"))),
            Ok(watcher::Event::InitDone),
            Ok(watcher::Event::Apply(pod("default", "b"))),
            Ok(watcher::Event::Delete(pod("kube-system", "a"))),
        ]);
        let got: Vec<Update<String>> = updates(events, |p: &Pod| p.metadata.name.clone().unwrap_or_default()).collect().await;
        assert_eq!(
            got,
            vec![
                Update::Init,
                Update::Apply { key: "default/a".into(), initial: true, row: "a".into() },
                Update::Ready,
                Update::Apply { key: "default/b".into(), initial: false, row: "b".into() },
                Update::Delete { key: "kube-system/a".into() },
            ]
        );
    }

    #[test]
    fn updates_are_tagged_by_op() {
        let u: Update<u8> = Update::Apply { key: "n1".into(), initial: false, row: 7 };
        assert_eq!(serde_json::to_string(&u).expect("json"), r#"{"op":"apply","key":"n1","initial":false,"row":7}"#);
        assert_eq!(serde_json::to_string(&Update::<u8>::Ready).expect("json"), r#"{"op":"ready"}"#);
    }
}
