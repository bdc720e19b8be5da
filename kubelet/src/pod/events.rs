//! What a pod worker tells the rest of the kubelet: events (Scheduled, Pulling, Pulled, Created, Started,
//! Killing, BackOff, Unhealthy, Failed...), status changes, and the data it needs from the API (ConfigMaps,
//! Secrets, Services). The kubelet implements this over the API client; tests record.

use k8s_openapi::api::core::v1::{Pod, PodStatus};

use crate::container::env::EnvSources;

/// Normal or Warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// Something expected happened (Pulled, Created, Started, Killing).
    Normal,
    /// Something went wrong (Failed, BackOff, Unhealthy, FailedMount).
    Warning,
}

impl EventType {
    /// The Event's `type` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "Normal",
            Self::Warning => "Warning",
        }
    }
}

/// The pod worker's connection to the kubelet.
pub trait PodSink: Send + Sync {
    /// Records an event about `pod` (optionally about one container: `fieldPath` spec.containers{name}).
    fn event(&self, pod: &Pod, container: Option<&str>, type_: EventType, reason: &str, message: String);
    /// The pod's status changed.
    fn status(&self, pod: &Pod, status: PodStatus);
    /// The pod is deleted and nothing of it runs: remove it from the API.
    fn finalized(&self, pod: &Pod);
    /// ConfigMaps, Secrets and service account tokens the pod's containers and volumes may reference, and with
    /// `services` the Services its environment links (blocking).
    fn sources(&self, pod: &Pod, services: bool) -> EnvSources;
}
