//! The patch formats Kubernetes accepts: JSON Patch (RFC 6902), JSON merge patch (RFC 7386), strategic merge
//! patch (lists merged by the Kubernetes patch-merge keys, `$patch`/`$retainKeys`/... directives) and server-side
//! apply (`application/apply-patch+yaml`) with field ownership recorded in `managedFields`.

pub mod apply;
pub mod json;
pub mod merge;
pub mod strategic;

/// A patch that cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The patch is malformed or does not fit the object (Kubernetes answers 400 or 422 by kind of patch).
    #[error("{0}")]
    Invalid(String),
    /// A JSON Patch `test` operation failed (Kubernetes answers 422).
    #[error("{0}")]
    TestFailed(String),
    /// Server-side apply would change fields another manager owns (409 unless forced).
    #[error("{0}")]
    Conflict(String),
}
