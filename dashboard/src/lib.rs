//! The `rkube dashboard` web UI (issue 17): served on loopback only behind a random token, it shows the
//! cluster the caller's kubeconfig reaches. Nothing here yet.
#![forbid(unsafe_code)]
