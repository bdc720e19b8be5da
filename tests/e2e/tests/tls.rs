//! HTTPS: the server generates a cluster CA, a serving certificate and an admin client certificate; the written
//! kubeconfig works as is for kubectl and kube-rs, and a client without a certificate is refused.

mod common;

use std::process::Command;

use common::{as_str, deployment_yaml, TestServer, KUBECTLS};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use rkube_testsupport::unique_name;

#[test]
fn https_with_client_certificates() {
    let s = TestServer::start_tls();
    assert!(s.url.starts_with("https://"));
    for v in KUBECTLS {
        let ns = s.ok(v, &["get", "namespaces", "-o", "name"]);
        assert!(ns.contains("namespace/kube-system"), "kubectl.{v} over TLS: {ns}");
        let name = unique_name("tls");
        let file = s.write(&format!("{name}.yaml"), &deployment_yaml(&name, 1, "busybox:1.36"));
        let out = s.ok(v, &["apply", "-f", as_str(&file)]);
        assert!(out.contains("created"), "{out}");
    }
    let kubeconfig = s.kubeconfig.clone();
    let names = s.runtime().block_on(async move {
        let kc = kube::config::Kubeconfig::read_from(&kubeconfig).expect("read kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.expect("config");
        let client = kube::Client::try_from(config).expect("client");
        let api: Api<Namespace> = Api::all(client);
        api.list(&ListParams::default()).await.expect("list over TLS").items.len()
    });
    assert_eq!(names, 4);
    // Without a client certificate the handshake is refused; with the CA but no cert too.
    let ca = s.dir.path().join("pki/ca.crt");
    let st = Command::new("curl")
        .args(["-sS", "--max-time", "5", "--cacert", as_str(&ca), &format!("{}/version", s.url)])
        .output()
        .expect("curl");
    assert!(!st.status.success(), "a client without a certificate got in: {}", String::from_utf8_lossy(&st.stdout));
    let st = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "5",
            "--cacert",
            as_str(&ca),
            "--cert",
            as_str(&s.dir.path().join("pki/admin.crt")),
            "--key",
            as_str(&s.dir.path().join("pki/admin.key")),
            &format!("{}/version", s.url),
        ])
        .output()
        .expect("curl");
    assert!(st.status.success() && String::from_utf8_lossy(&st.stdout).contains("gitVersion"), "{st:?}");
}
