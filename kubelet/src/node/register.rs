//! Registers the Node (create, or take over an existing one of the same name) and pushes its status every
//! 10 s. The podCIDR comes from the controller (node IPAM), so it is read back, never set here.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, NodeSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams, PostParams};

use super::machine;
use super::status::{node_status, NodeInputs};

/// How often status and lease are refreshed.
pub const STATUS_PERIOD: Duration = Duration::from_secs(10);

/// Why the Node could not be created, read or have its status written: at start the kubelet stops; in the
/// status loop it is logged and tried again next period.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The API refused or did not answer.
    #[error("register node {node}: {source}")]
    Api {
        /// The Node's name.
        node: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
}

/// What the node agent needs to know about this node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The Node's name (`--node-name`).
    pub name: String,
    /// The node's IP address (`--node-ip`).
    pub node_ip: String,
    /// Where pod data lives (disk capacity and pressure).
    pub data_dir: PathBuf,
    /// Labels set when the Node is created, over [`default_labels`]; an existing Node's are left as they are.
    pub labels: BTreeMap<String, String>,
}

/// The labels every node carries.
pub fn default_labels(name: &str) -> BTreeMap<String, String> {
    [
        ("kubernetes.io/hostname", name),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", "amd64"),
        ("beta.kubernetes.io/os", "linux"),
        ("beta.kubernetes.io/arch", "amd64"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Creates the Node if missing and writes its status. Returns the Node as stored.
pub async fn register(client: &kube::Client, cfg: &NodeConfig, inputs: &NodeInputs) -> Result<Node, RegisterError> {
    let api: Api<Node> = Api::all(client.clone());
    let err = |source| RegisterError::Api { node: cfg.name.clone(), source };
    let facts = machine::read(std::path::Path::new("/"), &cfg.data_dir);
    let existing = api.get_opt(&cfg.name).await.map_err(err)?;
    let node = match existing {
        Some(n) => n,
        None => {
            let mut labels = default_labels(&cfg.name);
            labels.extend(cfg.labels.clone());
            let node = Node {
                metadata: ObjectMeta { name: Some(cfg.name.clone()), labels: Some(labels), ..Default::default() },
                spec: Some(NodeSpec::default()),
                status: Some(node_status(&facts, inputs, None, chrono::Utc::now())),
            };
            match api.create(&PostParams::default(), &node).await {
                Ok(n) => n,
                Err(kube::Error::Api(e)) if e.code == 409 => api.get(&cfg.name).await.map_err(err)?,
                Err(e) => return Err(err(e)),
            }
        }
    };
    update_status(client, cfg, inputs, node.status.as_ref()).await
}

/// Recomputes and patches the Node's status.
pub async fn update_status(
    client: &kube::Client,
    cfg: &NodeConfig,
    inputs: &NodeInputs,
    previous: Option<&k8s_openapi::api::core::v1::NodeStatus>,
) -> Result<Node, RegisterError> {
    let api: Api<Node> = Api::all(client.clone());
    let facts = machine::read(std::path::Path::new("/"), &cfg.data_dir);
    let status = node_status(&facts, inputs, previous, chrono::Utc::now());
    let patch = serde_json::json!({ "status": status });
    api.patch_status(&cfg.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|source| RegisterError::Api { node: cfg.name.clone(), source })
}

/// The podCIDR the controller gave this node, if any yet.
pub fn pod_cidr(node: &Node) -> Option<String> {
    node.spec.as_ref().and_then(|s| s.pod_cidr.clone()).filter(|c| !c.is_empty())
}
