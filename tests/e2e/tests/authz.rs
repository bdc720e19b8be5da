//! Authorization with the real kubectl: users named by client certificates (`rkube kubeconfig`) get only what
//! RBAC bindings give them, with upstream's Forbidden messages; `kubectl auth can-i`/`whoami` answer from the
//! same rules; `--as` impersonation is checked and evaluated as the impersonated user; escalation through
//! Roles and bindings is refused.

mod common;
mod up_support;

use std::path::Path;
use std::process::{Command, Output};

use common::{as_str, TestServer, KUBECTLS};
use rkube_testsupport::unique_name;

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `kubectl auth can-i` answers on stdout and exits 1 for "no".
fn can_i(s: &TestServer, v: &str, kubeconfig: Option<&Path>, args: &[&str]) -> String {
    let mut all: Vec<&str> = Vec::new();
    if let Some(k) = kubeconfig {
        all.extend(["--kubeconfig", as_str(k)]);
    }
    all.extend(["auth", "can-i"]);
    all.extend(args);
    stdout(&s.kubectl(v, &all))
}

#[test]
fn rbac_limits_certificate_users_to_their_bindings() {
    let s = TestServer::start_tls();
    let alice = s.path("alice.kubeconfig");
    let out = Command::new(up_support::bin("rkube"))
        .args(["kubeconfig", "--data-dir", as_str(s.dir.path()), "--user", "alice", "--group", "devs", "-o", as_str(&alice)])
        .output()
        .expect("run rkube kubeconfig");
    assert!(out.status.success(), "rkube kubeconfig: {}", stderr(&out));
    for v in KUBECTLS {
        let ns = unique_name("rbac");
        s.ok(v, &["create", "namespace", &ns]);
        let as_alice = |args: &[&str]| {
            let mut all = vec!["--kubeconfig", as_str(&alice)];
            all.extend(args);
            s.kubectl(v, &all)
        };
        // nothing bound yet: upstream's Forbidden, and can-i agrees
        let o = as_alice(&["get", "pods", "-n", &ns]);
        assert!(!o.status.success());
        let want = format!("pods is forbidden: User \"alice\" cannot list resource \"pods\" in API group \"\" in the namespace \"{ns}\"");
        assert!(stderr(&o).contains(&want), "kubectl.{v}: {}", stderr(&o));
        assert_eq!(can_i(&s, v, Some(&alice), &["list", "pods", "-n", &ns]), "no", "kubectl.{v}");
        // view in the namespace: read there, nowhere else, and no writes
        s.ok(v, &["create", "rolebinding", "alice-view", "-n", &ns, "--clusterrole", "view", "--user", "alice"]);
        assert_eq!(can_i(&s, v, Some(&alice), &["list", "pods", "-n", &ns]), "yes", "kubectl.{v}");
        assert_eq!(can_i(&s, v, Some(&alice), &["list", "pods", "-n", "default"]), "no", "kubectl.{v}");
        assert!(as_alice(&["get", "pods", "-n", &ns]).status.success(), "kubectl.{v}: view lists pods");
        let o = as_alice(&["create", "configmap", "cm", "-n", &ns, "--from-literal", "a=b"]);
        assert!(stderr(&o).contains("User \"alice\" cannot create resource \"configmaps\""), "kubectl.{v}: {}", stderr(&o));
        // a binding to the certificate's group (O) counts
        s.ok(v, &["create", "rolebinding", "devs-edit", "-n", &ns, "--clusterrole", "edit", "--group", "devs"]);
        let o = as_alice(&["create", "configmap", "cm", "-n", &ns, "--from-literal", "a=b"]);
        assert!(o.status.success(), "kubectl.{v}: edit through the group: {}", stderr(&o));
        // the cluster scope stays closed
        let o = as_alice(&["get", "nodes"]);
        assert!(stderr(&o).contains("cannot list resource \"nodes\" in API group \"\" at the cluster scope"), "kubectl.{v}: {}", stderr(&o));
        // escalation: a namespace admin may hand out edit, not cluster-admin
        s.ok(v, &["create", "rolebinding", "alice-admin", "-n", &ns, "--clusterrole", "admin", "--user", "alice"]);
        let o = as_alice(&["create", "rolebinding", "bob-edit", "-n", &ns, "--clusterrole", "edit", "--user", "bob"]);
        assert!(o.status.success(), "kubectl.{v}: admin binds edit: {}", stderr(&o));
        let o = as_alice(&["create", "rolebinding", "steal", "-n", &ns, "--clusterrole", "cluster-admin", "--user", "alice"]);
        assert!(stderr(&o).contains("is attempting to grant RBAC permissions not currently held"), "kubectl.{v}: {}", stderr(&o));
        let o = as_alice(&["create", "role", "nodes-reader", "-n", &ns, "--verb", "get", "--resource", "nodes"]);
        assert!(!o.status.success(), "kubectl.{v}: a Role with rules alice lacks was stored");
        assert!(s.kubectl(v, &["get", "rolebinding", "steal", "-n", &ns]).status.code() == Some(1), "nothing stored on refusal");
        // impersonation from the admin evaluates as the named user and groups
        assert_eq!(can_i(&s, v, None, &["create", "configmaps", "-n", &ns, "--as", "carol"]), "no");
        assert_eq!(can_i(&s, v, None, &["create", "configmaps", "-n", &ns, "--as", "carol", "--as-group", "devs"]), "yes");
        let o = s.kubectl(v, &["get", "pods", "-n", "default", "--as", "bob"]);
        assert!(stderr(&o).contains("User \"bob\" cannot list resource \"pods\""), "kubectl.{v}: {}", stderr(&o));
        // and alice may not impersonate anyone
        let o = as_alice(&["get", "pods", "-n", &ns, "--as", "kubernetes-admin"]);
        assert!(
            stderr(&o).contains("users \"kubernetes-admin\" is forbidden: User \"alice\" cannot impersonate resource \"users\""),
            "kubectl.{v}: {}",
            stderr(&o)
        );
        // `can-i --list` shows the rules from every binding
        let list = can_i(&s, v, Some(&alice), &["--list", "-n", &ns]);
        assert!(list.contains("rolebindings.rbac.authorization.k8s.io") && list.contains("selfsubjectaccessreviews"), "{list}");
    }
    let who = s.ok("1.33", &["--kubeconfig", as_str(&alice), "auth", "whoami", "-o", "jsonpath={.status.userInfo.username} {.status.userInfo.groups}"]);
    assert_eq!(who, "alice [\"devs\",\"system:authenticated\"]");
    // the built-in roles are there to bind to
    let roles = s.ok("1.33", &["get", "clusterroles", "-o", "name"]);
    for r in ["cluster-admin", "admin", "edit", "view", "system:discovery", "system:basic-user"] {
        assert!(roles.contains(&format!("clusterrole.rbac.authorization.k8s.io/{r}\n")), "{r} in {roles}");
    }
}

#[test]
fn plain_http_is_privileged_but_impersonation_is_enforced() {
    let s = TestServer::start();
    for v in KUBECTLS {
        assert_eq!(can_i(&s, v, None, &["delete", "nodes"]), "yes", "kubectl.{v}: the unauthenticated port is an admin");
        let o = s.kubectl(v, &["get", "secrets", "--as", "mallory"]);
        assert!(stderr(&o).contains("secrets is forbidden: User \"mallory\" cannot list resource \"secrets\""), "kubectl.{v}: {}", stderr(&o));
        let o = s.kubectl(v, &["get", "--raw", "/version", "--as", "mallory"]);
        assert!(o.status.success(), "kubectl.{v}: every authenticated user may read /version: {}", stderr(&o));
        let o = s.kubectl(v, &["get", "--raw", "/metrics", "--as", "mallory"]);
        assert!(stderr(&o).contains("forbidden: User \"mallory\" cannot get path \"/metrics\""), "kubectl.{v}: {}", stderr(&o));
    }
}

fn token_kubeconfig(s: &TestServer, name: &str, token: &str) -> std::path::PathBuf {
    let ca = s.dir.path().join("pki/ca.crt");
    let body = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority: {}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: {token}\n",
        s.url,
        ca.display()
    );
    s.write(name, &body)
}

#[test]
fn service_account_tokens_authenticate_until_the_account_goes() {
    use base64::Engine;
    let s = TestServer::start_tls();
    for v in KUBECTLS {
        let ns = unique_name("sa");
        s.ok(v, &["create", "namespace", &ns]);
        s.ok(v, &["create", "serviceaccount", "robot", "-n", &ns]);
        let token = s.ok(v, &["create", "token", "robot", "-n", &ns, "--duration", "20m"]).trim().to_string();
        let payload = token.split('.').nth(1).expect("a JWT");
        let claims: serde_json::Value =
            serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("JSON claims");
        assert_eq!(claims["sub"], format!("system:serviceaccount:{ns}:robot"));
        assert_eq!(claims["exp"].as_i64().zip(claims["iat"].as_i64()).map(|(e, i)| e - i), Some(1200), "kubectl.{v}: --duration 20m");
        // TokenReview: good for the API server's audience, not for another
        let review = |audience: &str| {
            let body = format!(
                "apiVersion: authentication.k8s.io/v1\nkind: TokenReview\nspec:\n  token: {token}\n  audiences: [{audience}]\n"
            );
            let o = s.kubectl_stdin(v, &["create", "-f", "-", "-o", "jsonpath={.status.authenticated} {.status.user.username}"], &body);
            assert!(o.status.success(), "kubectl.{v}: {}", stderr(&o));
            stdout(&o)
        };
        assert_eq!(review("https://kubernetes.default.svc.cluster.local"), format!("true system:serviceaccount:{ns}:robot"), "kubectl.{v}");
        assert_eq!(review("vault"), "false", "kubectl.{v}");
        let kc = token_kubeconfig(&s, &format!("{ns}.kubeconfig"), &token);
        let as_robot = |args: &[&str]| {
            let mut all = vec!["--kubeconfig", as_str(&kc)];
            all.extend(args);
            s.kubectl(v, &all)
        };
        let o = as_robot(&["get", "pods", "-n", &ns]);
        let want = format!("pods is forbidden: User \"system:serviceaccount:{ns}:robot\" cannot list resource \"pods\"");
        assert!(stderr(&o).contains(&want), "kubectl.{v}: {}", stderr(&o));
        s.ok(v, &["create", "rolebinding", "robot-view", "-n", &ns, "--clusterrole", "view", "--serviceaccount", &format!("{ns}:robot")]);
        let o = as_robot(&["get", "pods", "-n", &ns]);
        assert!(o.status.success(), "kubectl.{v}: bound service account lists pods: {}", stderr(&o));
        // a group binding for all service accounts of the namespace counts too
        assert_eq!(can_i(&s, v, Some(&kc), &["create", "configmaps", "-n", &ns]), "no");
        s.ok(v, &["create", "rolebinding", "sas-edit", "-n", &ns, "--clusterrole", "edit", "--group", &format!("system:serviceaccounts:{ns}")]);
        assert_eq!(can_i(&s, v, Some(&kc), &["create", "configmaps", "-n", &ns]), "yes");
        // too short a lifetime is refused; a deleted account's tokens stop working
        let err = s.fails(v, &["create", "token", "robot", "-n", &ns, "--duration", "5m"]);
        assert!(err.contains("may not specify a duration less than 10 minutes"), "kubectl.{v}: {err}");
        s.ok(v, &["delete", "serviceaccount", "robot", "-n", &ns]);
        let o = as_robot(&["get", "pods", "-n", &ns]);
        assert!(stderr(&o).contains("Unauthorized"), "kubectl.{v}: {}", stderr(&o));
        let o = as_robot(&["get", "pods", "-n", &ns, "--token", "not-a-token"]);
        assert!(stderr(&o).contains("Unauthorized"), "kubectl.{v}: {}", stderr(&o));
    }
    // whoami names the account and its groups
    let ns = unique_name("sa");
    s.ok("1.33", &["create", "namespace", &ns]);
    s.ok("1.33", &["create", "serviceaccount", "who", "-n", &ns]);
    let token = s.ok("1.33", &["create", "token", "who", "-n", &ns]).trim().to_string();
    let kc = token_kubeconfig(&s, "who.kubeconfig", &token);
    let who = s.ok("1.33", &["--kubeconfig", as_str(&kc), "auth", "whoami", "-o", "jsonpath={.status.userInfo.username} {.status.userInfo.groups}"]);
    assert_eq!(who, format!("system:serviceaccount:{ns}:who [\"system:serviceaccounts\",\"system:serviceaccounts:{ns}\",\"system:authenticated\"]"));
}
