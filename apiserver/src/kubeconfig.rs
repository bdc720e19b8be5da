//! The admin kubeconfig `rkube server` writes for kubectl and client libraries.

use std::path::Path;

/// A kubeconfig for a plain-HTTP server at `server_url` (e.g. `http://127.0.0.1:6443`).
pub fn render(server_url: &str, cluster_name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {cluster_name}\n  cluster:\n    server: {server_url}\ncontexts:\n- name: {cluster_name}-admin\n  context:\n    cluster: {cluster_name}\n    user: admin\n    namespace: default\ncurrent-context: {cluster_name}-admin\nusers:\n- name: admin\n  user: {{}}\npreferences: {{}}\n"
    )
}

/// A kubeconfig for an HTTPS server with the cluster CA and an admin client certificate embedded.
pub fn render_tls(server_url: &str, cluster_name: &str, ca_pem: &str, cert_pem: &str, key_pem: &str) -> String {
    render_tls_user(server_url, cluster_name, "admin", ca_pem, cert_pem, key_pem)
}

/// A kubeconfig for an HTTPS server acting as `user` (context `<cluster>-<user>`), with the cluster CA and the
/// user's client certificate embedded.
pub fn render_tls_user(server_url: &str, cluster_name: &str, user: &str, ca_pem: &str, cert_pem: &str, key_pem: &str) -> String {
    use base64::Engine;
    let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {cluster_name}\n  cluster:\n    server: {server_url}\n    certificate-authority-data: {}\ncontexts:\n- name: {cluster_name}-{user}\n  context:\n    cluster: {cluster_name}\n    user: {user}\n    namespace: default\ncurrent-context: {cluster_name}-{user}\nusers:\n- name: {user}\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\npreferences: {{}}\n",
        b(ca_pem),
        b(cert_pem),
        b(key_pem)
    )
}

/// Writes `content` atomically (temp file + rename), mode 0600 from the first byte (`private_files`).
pub fn write_content(path: &Path, content: &str) -> std::io::Result<()> {
    crate::private_files::write(path, content.as_bytes()).map_err(std::io::Error::other)
}

/// Writes the kubeconfig atomically (temp file + rename), mode 0600.
pub fn write(path: &Path, server_url: &str, cluster_name: &str) -> std::io::Result<()> {
    write_content(path, &render(server_url, cluster_name))
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
