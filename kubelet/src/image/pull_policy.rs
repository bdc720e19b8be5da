//! `imagePullPolicy`: whether the kubelet pulls an image before starting a container.
//!
//! Pure functions only: the pod code asks [`decide`] with what the store holds and acts on the answer.

use super::reference::{Reference, DEFAULT_TAG};

/// A container's `imagePullPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Pull on every container start (the registry decides whether anything is downloaded).
    Always,
    /// Pull only when the store does not have the image.
    IfNotPresent,
    /// Never pull: the image must already be in the store (imported or pulled earlier).
    Never,
}

/// What the kubelet does about a container's image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullDecision {
    /// Pull (and emit Pulling/Pulled events).
    Pull,
    /// The image is present and the policy allows using it as is.
    UseLocal,
    /// Policy Never and the image is absent: the container waits with reason `ErrImageNeverPull`.
    NeverPullMissing,
}

impl PullDecision {
    /// The container waiting reason Kubernetes reports for this decision, if it blocks the container.
    pub fn waiting_reason(self) -> Option<&'static str> {
        match self {
            PullDecision::NeverPullMissing => Some("ErrImageNeverPull"),
            _ => None,
        }
    }
}

impl PullPolicy {
    /// Parses the API field; empty means "not set" (`None`), anything else unknown is rejected.
    pub fn from_api(value: &str) -> Result<Option<PullPolicy>, String> {
        match value {
            "" => Ok(None),
            "Always" => Ok(Some(PullPolicy::Always)),
            "IfNotPresent" => Ok(Some(PullPolicy::IfNotPresent)),
            "Never" => Ok(Some(PullPolicy::Never)),
            other => Err(format!("unsupported imagePullPolicy {other:?}: must be Always, IfNotPresent or Never")),
        }
    }

    /// The API server's default when the field is empty: `Always` for `:latest` (or no tag and no digest),
    /// `IfNotPresent` otherwise (a digest-only reference is `IfNotPresent`).
    pub fn default_for(reference: &Reference) -> PullPolicy {
        if reference.tag.as_deref() == Some(DEFAULT_TAG) {
            PullPolicy::Always
        } else {
            PullPolicy::IfNotPresent
        }
    }

    /// `policy` if set, else the default for `reference`.
    pub fn effective(policy: Option<PullPolicy>, reference: &Reference) -> PullPolicy {
        policy.unwrap_or_else(|| PullPolicy::default_for(reference))
    }
}

/// Whether to pull, given the (effective) policy and whether the store already has the image.
pub fn decide(policy: PullPolicy, present: bool) -> PullDecision {
    match (policy, present) {
        (PullPolicy::Always, _) => PullDecision::Pull,
        (PullPolicy::IfNotPresent, true) | (PullPolicy::Never, true) => PullDecision::UseLocal,
        (PullPolicy::IfNotPresent, false) => PullDecision::Pull,
        (PullPolicy::Never, false) => PullDecision::NeverPullMissing,
    }
}
