//! HTTPS: the server generates a cluster CA, a serving certificate and an admin client certificate; the written
//! kubeconfig works as is for kubectl and kube-rs, and a client without a certificate is 401 except on the
//! health and version paths, where it is anonymous.

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
    // Without a client certificate or token a request is 401, but on the health and version paths, where it is
    // system:anonymous and reads public information (upstream's anonymous authentication limited to those
    // endpoints); a bearer token that does not verify is 401.
    let ca = s.dir.path().join("pki/ca.crt");
    let curl = |path: &str, extra: &[&str]| {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "5", "--cacert", as_str(&ca), "-w", "\n%{http_code}"])
            .args(extra)
            .arg(format!("{}{path}", s.url))
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let version = curl("/version", &[]);
    assert!(version.contains("gitVersion") && version.ends_with("200"), "{version}");
    let ns = curl("/api/v1/namespaces", &[]);
    assert!(ns.contains("\"reason\":\"Unauthorized\"") && ns.ends_with("401"), "{ns}");
    let bad = curl("/api/v1/namespaces", &["-H", "Authorization: Bearer forged"]);
    assert!(bad.ends_with("401"), "{bad}");
    let (cert, key) = (s.dir.path().join("pki/admin.crt"), s.dir.path().join("pki/admin.key"));
    let admin = curl("/api/v1/namespaces", &["--cert", as_str(&cert), "--key", as_str(&key)]);
    assert!(admin.contains("kube-system") && admin.ends_with("200"), "{admin}");
}
