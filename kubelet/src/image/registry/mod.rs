//! Talking to OCI/Docker registries: the HTTP client and the credentials it presents.

pub mod auth;
pub mod client;
