//! PKI on every path (issue 15): `rkube up` and `rkube server` serve the API over HTTPS only, with the cluster
//! CA in `<data-dir>/pki`; a request without credentials is 401 `Unauthorized` except on the health and version
//! paths, where it is `system:anonymous` and upstream's `system:public-info-viewer` lets it read them; nothing
//! answers plain HTTP unless `--insecure-http-listen` (loopback only) asks for it; the admin kubeconfig and
//! every private key are 0600 in 0700 directories, out of another local account's reach.
//!
//! The attack this closes: `rkube up` served plain HTTP on loopback to any local account as `system:masters`,
//! and such an account could create a hostPath pod and become root.

mod up_support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use rkube_testsupport::registry::free_port;
use rkube_testsupport::require_command;
use up_support::{bin, Up};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o7777
}

/// curl `url` with `extra` flags: (HTTP status as curl prints it, "000" when there was no HTTP answer; body).
fn curl(url: &str, extra: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
        .args(extra)
        .arg(url)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
    (code.to_string(), body.to_string())
}

/// The kubeconfig's server URL.
fn server_url(kubeconfig: &Path) -> String {
    up_support::kubectl_with(kubeconfig, &["config", "view", "-o", "jsonpath={.clusters[0].cluster.server}"])
}

/// Upstream's body for a request it cannot authenticate.
const UNAUTHORIZED: &str =
    r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#;

/// What a client without credentials gets from `url` (HTTPS, the cluster CA trusted): upstream's answers.
fn assert_unauthenticated_answers(url: &str, ca: &Path) {
    let ca = ca.to_str().expect("utf8");
    for path in ["/api/v1/pods", "/api", "/apis", "/api/v1/namespaces/default/secrets", "/metrics", "/healthz/ping"] {
        let (code, body) = curl(&format!("{url}{path}"), &["--cacert", ca]);
        assert_eq!(code, "401", "{path} without credentials: {body}");
        let got: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
        let want: serde_json::Value = serde_json::from_str(UNAUTHORIZED).expect("literal");
        assert_eq!(got, want, "{path}: upstream's Unauthorized Status");
    }
    let (code, body) = curl(&format!("{url}/api/v1/pods"), &["--cacert", ca, "-H", "Authorization: Bearer forged"]);
    assert_eq!(code, "401", "a token that does not verify: {body}");
    // anonymous discovery as upstream's system:public-info-viewer allows it to system:unauthenticated
    let (code, body) = curl(&format!("{url}/version"), &["--cacert", ca]);
    assert!(code == "200" && body.contains("\"gitVersion\""), "/version: {code} {body}");
    for path in ["/healthz", "/livez", "/readyz"] {
        assert_eq!(curl(&format!("{url}{path}"), &["--cacert", ca]), ("200".to_string(), "ok".to_string()), "{path}");
    }
}

/// The API port of an HTTPS server answers no plain-HTTP request.
fn assert_no_plain_http(https_url: &str) {
    let plain = https_url.replacen("https://", "http://", 1);
    assert!(plain.starts_with("http://"), "{https_url}");
    let (code, body) = curl(&format!("{plain}/api/v1/pods"), &[]);
    assert_eq!(code, "000", "plain HTTP to the API port must get no HTTP answer: {body}");
    assert!(!body.contains("items"), "{body}");
}

#[test]
fn rkube_up_serves_https_only_and_refuses_requests_without_credentials() {
    require_command("curl", "curl");
    require_command("setpriv", "util-linux");
    let mut up = Up::start();
    let data = up.data.path().to_path_buf();
    let kc = up.kubeconfig();
    let url = server_url(&kc);
    assert!(url.starts_with("https://127.0.0.1:"), "the kubeconfig's server is HTTPS: {url}");
    let pki = data.join("pki");
    let ca = pki.join("ca.crt");

    // one CA for both APIs: the apiserver's certificate and the kubelet's chain to the same ca.crt
    let (cert, key) = (pki.join("admin.crt"), pki.join("admin.key"));
    let creds = ["--cacert", ca.to_str().expect("utf8"), "--cert", cert.to_str().expect("utf8"), "--key", key.to_str().expect("utf8")];
    let (code, body) = curl(&format!("{url}/api/v1/pods"), &creds);
    assert!(code == "200" && body.contains("\"PodList\""), "the admin certificate of <data-dir>/pki: {code} {body}");
    let (code, body) = curl(&format!("https://{}:10250/healthz", up.node_ip), &creds);
    assert_eq!((code.as_str(), body.as_str()), ("200", "ok"), "the kubelet API trusts the same CA");

    // the kubeconfig and every key 0600, in 0700 directories; another local account reads none of them
    assert_eq!(mode(&data), 0o700, "data dir");
    assert_eq!(mode(&pki), 0o700, "pki dir");
    assert_eq!(mode(&kc), 0o600, "kubeconfig");
    let keys: Vec<_> = std::fs::read_dir(&pki).expect("pki").map(|e| e.expect("entry").path()).filter(|p| p.extension().is_some_and(|e| e == "key")).collect();
    for want in ["ca.key", "apiserver.key", "admin.key", "sa.key"] {
        assert!(keys.contains(&pki.join(want)), "{want} in {keys:?}");
    }
    for k in &keys {
        assert_eq!(mode(k), 0o600, "{}", k.display());
    }
    for secret in [&kc, &pki.join("ca.key"), &pki.join("admin.key")] {
        let out = Command::new("setpriv").args(["--reuid=65534", "--regid=65534", "--clear-groups", "cat"]).arg(secret).output().expect("setpriv");
        assert!(!out.status.success() && out.stdout.is_empty(), "uid 65534 read {}", secret.display());
        assert!(String::from_utf8_lossy(&out.stderr).contains("Permission denied"), "{}", String::from_utf8_lossy(&out.stderr));
    }

    // what a local account without the kubeconfig gets: 401, or public information as system:anonymous
    assert_unauthenticated_answers(&url, &ca);
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "curl", "-sS", "-k", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("{url}/api/v1/namespaces/default/pods"))
        .output()
        .expect("setpriv curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "401", "another account on the machine: {}", String::from_utf8_lossy(&out.stderr));
    let out = up.kubectl_output(&["--as", "system:anonymous", "--as-group", "system:unauthenticated", "create", "namespace", "anon"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("User \"system:anonymous\" cannot create resource"), "{}", String::from_utf8_lossy(&out.stderr));

    // nothing answers plain HTTP by default
    assert_no_plain_http(&url);

    // plain HTTP only when asked, on loopback, and then it is the privileged insecure port
    let plain_port = free_port();
    let ca_before = std::fs::read_to_string(&ca).expect("ca.crt");
    up.kill9();
    up.extra_args.extend(["--insecure-http-listen".to_string(), format!("127.0.0.1:{plain_port}")]);
    up.launch();
    assert_eq!(std::fs::read_to_string(&ca).expect("ca.crt"), ca_before, "the cluster CA is kept across restarts");
    let url = server_url(&kc);
    assert!(url.starts_with("https://"), "{url}");
    let (code, body) = curl(&format!("http://127.0.0.1:{plain_port}/api/v1/namespaces/default/pods"), &[]);
    assert!(code == "200" && body.contains("\"PodList\""), "--insecure-http-listen serves plain HTTP: {code} {body}");
    // launch() names the log after whether a child was running: kill9 took it, so this is rkube-0.log again
    let log = std::fs::read_to_string(data.join("rkube-0.log")).expect("log");
    assert!(log.contains("every caller is system:masters"), "the insecure listener is announced as such: {log}");
    // the HTTPS port is unchanged: still 401 without credentials
    assert_unauthenticated_answers(&url, &ca);
}

#[test]
fn rkube_server_is_https_by_default_and_plain_http_needs_the_insecure_flag_on_loopback() {
    require_command("curl", "curl");
    let tmp = tempfile::tempdir().expect("tmp");
    let start = |data: &Path, extra: &[&str], log: &Path| up_support::start_rkube_server(data, free_port(), extra, log);

    // no flag at all: HTTPS, the kubeconfig 0600 with the CA and the admin certificate, 401 without them
    let data = tmp.path().join("plain-default");
    let server = start(&data, &[], &tmp.path().join("a.log"));
    let kc = data.join("kubeconfig");
    let url = server_url(&kc);
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    assert_eq!(mode(&kc), 0o600);
    assert_eq!(up_support::kubectl_with(&kc, &["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"]), "kubernetes-admin");
    assert_unauthenticated_answers(&url, &data.join("pki/ca.crt"));
    assert_no_plain_http(&url);
    drop(server);

    // --tls is still accepted (the default, a no-op) and so is --insecure-http-listen on loopback
    let data = tmp.path().join("tls-insecure");
    let plain_port = free_port();
    let log = tmp.path().join("b.log");
    let server = start(&data, &["--tls", "--insecure-http-listen", &format!("127.0.0.1:{plain_port}")], &log);
    let url = server_url(&data.join("kubeconfig"));
    assert!(url.starts_with("https://"), "{url}");
    assert_unauthenticated_answers(&url, &data.join("pki/ca.crt"));
    let (code, body) = curl(&format!("http://127.0.0.1:{plain_port}/api/v1/namespaces"), &[]);
    assert!(code == "200" && body.contains("kube-system"), "plain HTTP with the flag: {code} {body}");
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(text.contains(&format!("WARNING: http://127.0.0.1:{plain_port} serves plain HTTP with no authentication: every caller is system:masters")), "{text}");
    drop(server);

    // anywhere but loopback it is refused before anything is made
    for bad in ["0.0.0.0:18080", "10.0.0.1:18080"] {
        let data = tmp.path().join(format!("refused-{}", bad.replace([':', '.'], "-")));
        let out = Command::new(bin("rkube"))
            .args(["server", "--data-dir"])
            .arg(&data)
            .args(["--listen", &format!("127.0.0.1:{}", free_port()), "--insecure-http-listen", bad])
            .output()
            .expect("rkube server");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{bad} accepted: {err}");
        assert!(err.contains(&format!("--insecure-http-listen {bad}")) && err.contains("give a loopback address"), "{err}");
        assert!(!data.exists(), "nothing made for a refused flag: {}", data.display());
    }
}
