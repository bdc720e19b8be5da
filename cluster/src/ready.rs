//! Waiting for the cluster's nodes to be Ready, through the API the kubeconfig names.

use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use kube::api::Api;

use crate::{ClusterError, Result};

/// Which of `names` have Ready=True in `nodes`.
pub fn ready_names(nodes: &[Node], names: &[String]) -> Vec<String> {
    nodes
        .iter()
        .filter(|n| {
            let ready = n.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            ready && n.metadata.name.as_ref().is_some_and(|m| names.contains(m))
        })
        .filter_map(|n| n.metadata.name.clone())
        .collect()
}

/// Polls until every node of `names` is Ready, calling `progress(ready, total)` whenever the count changes and
/// `check()` on every round (a node agent that exited fails it at once).
pub fn wait_ready(kubeconfig: &Path, names: &[String], limit: Duration, progress: &mut dyn FnMut(usize, usize), check: &mut dyn FnMut() -> Result<()>) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| ClusterError::Command { cmd: "start a tokio runtime".into(), message: e.to_string() })?;
    rt.block_on(async {
        let deadline = Instant::now() + limit;
        let mut last;
        let mut seen = usize::MAX;
        loop {
            check()?;
            match client(kubeconfig).await {
                Ok(c) => match Api::<Node>::all(c).list(&Default::default()).await {
                    Ok(list) => {
                        let ready = ready_names(&list.items, names);
                        if ready.len() != seen {
                            seen = ready.len();
                            progress(seen, names.len());
                        }
                        if ready.len() == names.len() {
                            return Ok(());
                        }
                        last = format!("ready: {ready:?} of {names:?}");
                    }
                    Err(e) => last = format!("list nodes: {e}"),
                },
                Err(e) => last = e,
            }
            if Instant::now() > deadline {
                return Err(ClusterError::Timeout { what: "all nodes Ready".into(), secs: limit.as_secs(), last });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

async fn client(kubeconfig: &Path) -> std::result::Result<kube::Client, String> {
    if !kubeconfig.exists() {
        return Err(format!("{} not written yet", kubeconfig.display()));
    }
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).map_err(|e| format!("read {}: {e}", kubeconfig.display()))?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.map_err(|e| format!("use {}: {e}", kubeconfig.display()))?;
    kube::Client::try_from(cfg).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_named_nodes_with_ready_true_count() {
        let node = |name: &str, ready: &str| -> Node {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name},
                "status": {"conditions": [{"type": "Ready", "status": ready}]}
            }))
            .expect("node")
        };
        let nodes = vec![node("a", "True"), node("b", "Unknown"), node("other", "True")];
        assert_eq!(ready_names(&nodes, &["a".into(), "b".into()]), vec!["a".to_string()]);
    }
}
