//! The admin kubeconfig `rkube server` writes for kubectl and client libraries.

use std::path::Path;

/// A kubeconfig for a plain-HTTP server at `server_url` (e.g. `http://127.0.0.1:6443`).
pub fn render(server_url: &str, cluster_name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {cluster_name}\n  cluster:\n    server: {server_url}\ncontexts:\n- name: {cluster_name}-admin\n  context:\n    cluster: {cluster_name}\n    user: admin\n    namespace: default\ncurrent-context: {cluster_name}-admin\nusers:\n- name: admin\n  user: {{}}\npreferences: {{}}\n"
    )
}

/// Writes the kubeconfig atomically (temp file + rename), mode 0600.
pub fn write(path: &Path, server_url: &str, cluster_name: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, render(server_url, cluster_name))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    #[test]
    fn kubeconfig_is_valid_yaml_with_the_server() {
        let y = super::render("http://127.0.0.1:1234", "rkube");
        let v: serde_json::Value = serde_yaml::from_str(&y).expect("yaml");
        assert_eq!(v["clusters"][0]["cluster"]["server"], "http://127.0.0.1:1234");
        assert_eq!(v["current-context"], "rkube-admin");
    }
}
