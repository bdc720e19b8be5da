//! `rkube inspect`: a pod's kernel objects in one document. The kubelet answers `GET /inspect/pods/<ns>/<name>`
//! (read-only, authorized as every kubelet path: `nodes/proxy`) with a [`schema::PodInspection`]
//! (`inspect.rkube.io/v1alpha1`, docs/inspect.md); `rkube inspect pod` fetches it through the apiserver's node
//! proxy and prints it as JSON, YAML or [`render::tree`]. Likewise `GET /inspect/node` ([`schema::NodeInspection`],
//! `rkube inspect node`) and `GET /inspect/services/<ns>/<name>` ([`schema::ServiceInspection`], `rkube inspect
//! service`: this node's proxy rules for the Service).
//!
//! - [`gather`]: the acting half: `/proc`, `ip -j`, `nft -j`, the pod's records, and cgroup limits and usage
//!   from the runtime through the kubelet's [`crate::runtime_client::RuntimeClient`] seam (never cgroupfs);
//! - [`assemble`]: pure parsing and joining of those facts (mountinfo, namespace links, links and routes, the
//!   proxy table), unit-tested on fixtures;
//! - [`node`]: the acting half of the node and service views; [`proxy_table`]: the proxy's nft table, pure;
//! - [`schema`]: the versioned documents; [`render`]: the trees for people.
//!
//! Must not: change anything on the node; report a fact it could not read as if it had read it (missing facts
//! are null or empty).

pub mod assemble;
pub mod client;
pub mod gather;
pub mod node;
pub mod proxy_table;
pub mod render;
pub mod schema;

pub use gather::{inspect_pod, InspectEnv};
pub use node::{inspect_node, inspect_service};
pub use schema::{NodeInspection, PodInspection, ServiceInspection};

/// Why a pod cannot be inspected on this node.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// This kubelet has no record of the pod.
    #[error("pod {pod} is not running on node {node}")]
    PodNotHere {
        /// `namespace/name`.
        pod: String,
        /// This node.
        node: String,
    },
    /// The pod is here but its sandbox has not been made yet.
    #[error("pod {pod} has no sandbox yet: it has not started on this node")]
    NoSandbox {
        /// `namespace/name`.
        pod: String,
    },
    /// The sandbox record names a process that has exited.
    #[error("pod {pod}: its sandbox process {pid} is gone")]
    SandboxGone {
        /// `namespace/name`.
        pod: String,
        /// The sandbox's PID as recorded.
        pid: i32,
    },
}

impl InspectError {
    /// The HTTP status the kubelet answers with.
    pub fn status(&self) -> u16 {
        match self {
            InspectError::PodNotHere { .. } => 404,
            InspectError::NoSandbox { .. } | InspectError::SandboxGone { .. } => 409,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_not_here_or_not_started_is_named_in_the_error() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let env = InspectEnv {
            node_name: "n1".into(),
            pods_dir: tmp.path().join("pods"),
            runtime_bin: "/bin/false".into(),
            runtime_root: tmp.path().join("rt"),
            proxy_table: None,
            proc_root: tmp.path().join("proc"),
            cgroup_root: "kubepods".into(),
            bridge: None,
            cluster_dns: None,
            dns_link: None,
        };
        let e = inspect_pod(&env, "default", "web").expect_err("no pod");
        assert_eq!((e.status(), e.to_string()), (404, "pod default/web is not running on node n1".to_string()));
        let dir = tmp.path().join("pods/u1");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("pod.json"), r#"{"metadata":{"namespace":"default","name":"web","uid":"u1"},"spec":{"containers":[]}}"#).expect("write");
        let e = inspect_pod(&env, "default", "web").expect_err("no sandbox");
        assert_eq!((e.status(), e.to_string()), (409, "pod default/web has no sandbox yet: it has not started on this node".to_string()));
        std::fs::write(dir.join("sandbox.json"), r#"{"id":"sb-u1","pid":4242,"netns":null,"ipc":null,"uts":null,"ip":null,"host_network":false}"#).expect("write");
        let e = inspect_pod(&env, "default", "web").expect_err("sandbox gone");
        assert_eq!(e.to_string(), "pod default/web: its sandbox process 4242 is gone");
    }

    #[test]
    fn the_document_is_versioned_and_round_trips() {
        let doc = schema::PodInspection { api_version: schema::API_VERSION.into(), kind: schema::POD_KIND.into(), ..Default::default() };
        let v = serde_json::to_value(&doc).expect("json");
        assert_eq!(v["apiVersion"], "inspect.rkube.io/v1alpha1");
        assert_eq!(v["kind"], "PodInspection");
        assert!(v.get("serviceRules").is_some() && v.get("qosClass").is_some());
        let back: schema::PodInspection = serde_json::from_value(v).expect("back");
        assert_eq!(back, doc);
    }
}
