//! The pod workers' writes to the API: [`ApiOp`] (a status, an event, a removal), [`apply_ops`] (one queue per
//! pod, superseded statuses skipped), and the [`PodApi`] seam it writes through. The kubelet implements
//! `PodApi` over the API client (`kubelet.rs`); the tests here over an in-memory fake.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, PodStatus};

use crate::pod::events::EventType;

/// One write of a pod worker.
// one op per status or event of a pod; boxing the pod would only move the allocation
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ApiOp {
    /// Patch the pod's status.
    Status(Pod, PodStatus),
    /// Record an event on the pod (optionally on one container): type, reason, message.
    Event(Pod, Option<String>, EventType, String, String),
    /// Remove the finalized pod from the API.
    Delete(Pod),
}

/// Where the workers' writes go: the API server, or a fake in tests. Errors are the implementation's to log;
/// nothing is retried.
pub(crate) trait PodApi: Clone + Send + Sync + 'static {
    /// Writes `status` as the status of `pod`.
    fn write_status(&self, pod: Pod, status: PodStatus) -> impl Future<Output = ()> + Send;
    /// Records an event on `pod`.
    fn record_event(
        &self,
        pod: Pod,
        container: Option<String>,
        t: EventType,
        reason: String,
        message: String,
    ) -> impl Future<Output = ()> + Send;
    /// Removes `pod` (finalized: nothing of it runs) from the API.
    fn remove(&self, pod: Pod) -> impl Future<Output = ()> + Send;
}

async fn send<A: PodApi>(api: &A, op: ApiOp) {
    match op {
        ApiOp::Status(p, s) => api.write_status(p, s).await,
        ApiOp::Event(p, c, t, r, m) => api.record_event(p, c, t, r, m).await,
        ApiOp::Delete(p) => api.remove(p).await,
    }
}

/// Sends the workers' writes. Pods are independent, so writes of different pods go concurrently; the writes
/// of one pod stay in order (one queue per pod), and a status that a newer one replaced before it was sent
/// is skipped.
pub(crate) async fn apply_ops<A: PodApi>(api: A, mut rx: tokio::sync::mpsc::UnboundedReceiver<ApiOp>) {
    type Queue = tokio::sync::mpsc::UnboundedSender<ApiOp>;
    let mut queues: HashMap<String, Queue> = HashMap::new();
    let latest: Arc<Mutex<HashMap<String, u64>>> = Arc::new(Mutex::new(HashMap::new()));
    let mut seq: u64 = 0;
    while let Some(op) = rx.recv().await {
        let pod = match &op {
            ApiOp::Status(p, _) | ApiOp::Event(p, ..) | ApiOp::Delete(p) => p,
        };
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if let ApiOp::Status(..) = &op {
            seq += 1;
            if let Ok(mut l) = latest.lock() {
                l.insert(uid.clone(), seq);
            }
        }
        let my_seq = seq;
        queues.retain(|_, q| !q.is_closed());
        let q = queues.entry(uid.clone()).or_insert_with(|| {
            let (tx, mut prx) = tokio::sync::mpsc::unbounded_channel::<ApiOp>();
            let api = api.clone();
            let latest = latest.clone();
            let uid = uid.clone();
            tokio::spawn(async move {
                while let Ok(Some(op)) = tokio::time::timeout(Duration::from_secs(30), prx.recv()).await {
                    if let ApiOp::Status(pod, _) = &op {
                        // a newer status for this pod is queued behind: skip this one
                        let newest = latest.lock().ok().and_then(|l| l.get(&uid).copied());
                        let this: Option<u64> =
                            pod.metadata.resource_version.as_deref().and_then(|s| s.strip_prefix("seq:")).and_then(|s| s.parse().ok());
                        if this.is_some() && newest.is_some() && this < newest {
                            continue;
                        }
                    }
                    send(&api, op).await;
                }
            });
            tx
        });
        let op = match op {
            ApiOp::Status(mut pod, status) => {
                pod.metadata.resource_version = Some(format!("seq:{my_seq}"));
                ApiOp::Status(pod, status)
            }
            other => other,
        };
        if let Err(e) = q.send(op) {
            // the pod's queue just timed out: send directly
            send(&api, e.0).await;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An in-memory API: records each write (its kind, the pod's name and the status's phase or the event's
    /// reason) in the order it arrived; writes of pods named in `held` wait until `release` is notified.
    #[derive(Clone, Default)]
    pub(crate) struct FakeApi {
        pub(crate) writes: Arc<Mutex<Vec<String>>>,
        held: Arc<Mutex<Vec<String>>>,
        release: Arc<tokio::sync::Notify>,
    }

    impl FakeApi {
        fn hold(&self, name: &str) {
            self.held.lock().expect("held").push(name.into());
        }

        pub(crate) fn writes(&self) -> Vec<String> {
            self.writes.lock().expect("writes").clone()
        }

        async fn write(&self, pod: &Pod, what: String) {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let held = self.held.lock().expect("held").contains(&name);
            if held {
                self.release.notified().await;
            }
            self.writes.lock().expect("writes").push(format!("{name} {what}"));
        }
    }

    impl PodApi for FakeApi {
        async fn write_status(&self, pod: Pod, status: PodStatus) {
            self.write(&pod, format!("status {}", status.phase.unwrap_or_default())).await
        }
        async fn record_event(&self, pod: Pod, _: Option<String>, _: EventType, reason: String, _: String) {
            self.write(&pod, format!("event {reason}")).await
        }
        async fn remove(&self, pod: Pod) {
            self.write(&pod, "delete".into()).await
        }
    }

    fn pod(name: &str) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.uid = Some(format!("uid-{name}"));
        p
    }

    fn status(phase: &str) -> PodStatus {
        PodStatus { phase: Some(phase.into()), ..Default::default() }
    }

    /// Runs `apply_ops` on `api` with `ops` queued, until `want` writes arrived (or 10 s).
    async fn apply(api: &FakeApi, ops: Vec<ApiOp>, want: usize) -> Vec<String> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        for op in ops {
            tx.send(op).expect("queue op");
        }
        let task = tokio::spawn(apply_ops(api.clone(), rx));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while api.writes().len() < want && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        task.abort();
        api.writes()
    }

    /// Statuses queued faster than they are sent: only the newest goes out; events and the final removal keep
    /// their order.
    #[tokio::test]
    async fn a_superseded_status_is_skipped_and_a_pods_writes_stay_in_order() {
        let api = FakeApi::default();
        let a = pod("a");
        let ops = vec![
            ApiOp::Status(a.clone(), status("Pending")),
            ApiOp::Event(a.clone(), None, EventType::Normal, "Scheduled".into(), String::new()),
            ApiOp::Status(a.clone(), status("Running")),
            ApiOp::Status(a.clone(), status("Succeeded")),
            ApiOp::Delete(a.clone()),
        ];
        let got = apply(&api, ops, 3).await;
        assert_eq!(got, ["a event Scheduled", "a status Succeeded", "a delete"]);
    }

    /// One pod's slow write does not hold up another pod's.
    #[tokio::test]
    async fn pods_are_written_independently() {
        let api = FakeApi::default();
        api.hold("slow");
        let ops =
            vec![ApiOp::Status(pod("slow"), status("Pending")), ApiOp::Status(pod("fast"), status("Running")), ApiOp::Delete(pod("fast"))];
        let got = apply(&api, ops, 2).await;
        assert_eq!(got, ["fast status Running", "fast delete"], "the held pod's write is still waiting");
        api.release.notify_one();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while api.writes().len() < 3 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(api.writes().last().map(String::as_str), Some("slow status Pending"));
    }
}
