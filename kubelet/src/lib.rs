//! The rkube node agent: registers the node, runs the pods bound to it on rkube-runtime, reports their status,
//! and serves the node's part of Services (proxy, DNS) and the kubelet API.
//!
//! What lives where, from the process down:
//!
//! - the process: `kubelet` ([`kubelet::run`]: the pod watch, one worker per pod, adoption after a restart,
//!   events and statuses), `config` (the [`config::KubeletConfig`] the CLI builds), `bootstrap` (TLS bootstrap
//!   for `rkube join`), `static_pods` (manifests run without the apiserver, mirrored into it);
//! - this node: `node/` (the Node object, its Lease, node-pressure eviction, host-gw pod network routes;
//!   on the host: process scans and ip_forward in `node::host`, the data dir claim in `node::data_dir`, and
//!   `rkube down`'s `node::teardown`);
//! - pods: `pod/` (the pure lifecycle `pod::lifecycle::step`, restart backoff, status, and the worker that
//!   carries the steps out; the pod network through `pod::network` and the CNI client `pod::cni_client`),
//!   `container/` (one container as the runtime needs it: env, security, resources and QoS cgroups, the OCI
//!   config), `volume/` (volumes as directories under the pod's dir), `probe/` (liveness, readiness, startup),
//!   `image/` (pull, the content-addressed store, unpacking, overlay root filesystems, image GC);
//! - the runtime seam: `runtime_client/` ([`runtime_client::RuntimeClient`], everything the kubelet asks of a
//!   container runtime, over the `rkube-runtime` CLI, with a fake for unit tests) and `monitor/` (starting a
//!   per-container `rkube-monitor` and reading what it recorded); `logs/` (CRI log files written and read);
//! - networking the kubelet does itself: `netlink` (a pod's `lo`, the cluster DNS bridge, over `rkube-netlink`),
//!   `service_watch` (one watch of Services and EndpointSlices) feeding `node_services` (what it set up, for
//!   teardown), `proxy/` (the service proxy: one nftables table) and `dns/` (cluster DNS on a node-local
//!   address);
//! - the kubelet API: `server/` (containerLogs, exec, attach, port-forward, with TLS and authorization) and
//!   `inspect/` (a pod's or the node's kernel objects, for `rkube inspect`); `time` (chrono <-> metav1.Time).
//!
//! Must not: depend on the apiserver crate (state is reached through the API), link the CNI plugins (only the
//! shared leaves `rkube-cni-types` and `rkube-netlink`), or touch cgroupfs (it asks the runtime, through
//! `RuntimeClient`). `cargo test -p rkube-layering` checks all three.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
pub mod bootstrap;
pub mod config;
pub mod container;
pub mod image;
pub mod inspect;
pub mod kubelet;
pub mod logs;
pub mod container_monitor;
pub mod netlink;
pub mod node;
pub mod node_services;
pub mod pod;
pub mod probe;
pub mod runtime_client;
pub mod server;
pub mod static_pods;
pub mod time;
pub mod trace;
pub mod volume;
pub mod service_proxy;
pub mod dns;
pub mod service_watch;
