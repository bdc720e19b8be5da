//! OpenAPI documents: the definitions (generated from k8s-openapi's JSON schemas, with Kubernetes' patch
//! extensions added), the v3 per-group-version documents kubectl uses for `explain` and to hand field validation
//! to the server, and the v2 document (JSON and the protobuf encoding kubectl asks for).

pub mod patch_strategies;
pub mod proto;
pub mod schema;
pub mod v2;
pub mod v3;
