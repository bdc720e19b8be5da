//! The Kubernetes API machinery rkube's apiserver, controllers and kubelet share, each concept written once
//! (upstream keeps the same things in `k8s.io/apimachinery` and `pkg/api/v1`):
//!
//! - [`quantity`]: resource quantities (`100m`, `64Mi`, `1.5G`, `2e3`) parsed exactly, with the accessors
//!   upstream's `resource.Quantity` has (`MilliValue`, `Value`, `AsApproximateFloat64`, comparison, sum);
//! - [`labels`]: label selectors: the `labelSelector` query syntax, `metav1.LabelSelector` objects and
//!   equality (set) selectors, matched against a label map, plus the query string of a selector object;
//! - [`fields`]: field selectors (`spec.nodeName=n1,status.phase!=Failed`) over JSON objects;
//! - [`node_selector`]: `NodeSelector` terms (node affinity, `requiredDuringScheduling...`), with `Gt`/`Lt` and
//!   `matchFields`;
//! - [`validation`]: name and label syntax with upstream's messages (DNS-1123 subdomains and labels, DNS-1035
//!   labels, qualified names, label values, path segments);
//! - [`qos`]: a pod's QoS class (Guaranteed, Burstable, BestEffort), from typed or JSON pods;
//! - [`pod`]: facts about a pod (phase, active, terminal, ready, available, resource requests, host ports);
//! - [`time`]: k8s-openapi's `Time` to and from chrono;
//! - [`bootstrap_token`]: bootstrap tokens (format, expiry, their Secret's checks);
//! - [`certificates`]: CertificateSigningRequests (the PEM request parsed, signer names, kubelet client checks).
//!
//! Must not: do I/O (files, network, processes, clocks other than a `now` passed in), log, or depend on any
//! other rkube crate. Everything here is a pure function over API objects, tested without root.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bootstrap_token;
pub mod certificates;
pub mod fields;
pub mod labels;
pub mod node_selector;
pub mod pod;
pub mod qos;
pub mod quantity;
pub mod time;
pub mod validation;
