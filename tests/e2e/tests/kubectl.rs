//! The real kubectl (1.27 and 1.33) against rkube's apiserver: discovery, create/apply/get/delete, output
//! formats, and `get -w` streaming.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{as_str, deployment_yaml, kubectl_bin, TestServer, KUBECTLS};
use rkube_testsupport::{poll_until, unique_name, ChildGuard};

#[test]
fn discovery_lists_resources_short_names_and_versions() {
    let s = TestServer::start();
    for v in KUBECTLS {
        let out = s.ok(v, &["api-resources"]);
        let deploy = out.lines().find(|l| l.starts_with("deployments ")).unwrap_or_else(|| panic!("no deployments in {out}"));
        assert!(deploy.contains("deploy") && deploy.contains("apps/v1") && deploy.contains("Deployment"), "{deploy}");
        for short in ["po ", "svc ", "rs ", "ds ", "sts ", "ns ", "cm "] {
            assert!(out.contains(short), "kubectl.{v} api-resources lacks {short:?}: {out}");
        }
        let versions = s.ok(v, &["api-versions"]);
        for gv in ["apps/v1", "batch/v1", "coordination.k8s.io/v1", "discovery.k8s.io/v1", "events.k8s.io/v1", "v1"] {
            assert!(versions.lines().any(|l| l == gv), "kubectl.{v} api-versions lacks {gv}: {versions}");
        }
        let ns = s.ok(v, &["get", "namespaces", "-o", "name"]);
        for n in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            assert!(ns.contains(&format!("namespace/{n}")), "{ns}");
        }
    }
}

#[test]
fn create_apply_get_delete_with_both_kubectls() {
    let s = TestServer::start();
    for v in KUBECTLS {
        let name = unique_name("web");
        let file = s.write(&format!("{name}.yaml"), &deployment_yaml(&name, 2, "nginx:1.25"));
        let out = s.ok(v, &["apply", "-f", as_str(&file)]);
        assert!(out.contains(&format!("deployment.apps/{name} created")), "{out}");
        let out = s.ok(v, &["apply", "-f", as_str(&file)]);
        assert!(out.contains(&format!("deployment.apps/{name} unchanged")), "second apply must be a no-op: {out}");

        let json: serde_json::Value = serde_json::from_str(&s.ok(v, &["get", "deployment", &name, "-o", "json"])).expect("json");
        assert_eq!(json["spec"]["replicas"], 2);
        assert_eq!(json["metadata"]["generation"], 1);
        assert_eq!(json["spec"]["strategy"]["type"], "RollingUpdate", "defaulted");
        assert!(json["metadata"]["uid"].as_str().is_some_and(|u| u.len() == 36));
        assert!(json["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"].is_string());

        let table = s.ok(v, &["get", "deploy", &name]);
        let header = table.lines().next().unwrap_or_default();
        for col in ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"] {
            assert!(header.contains(col), "kubectl.{v} get deploy header {header:?} lacks {col}");
        }
        let wide = s.ok(v, &["get", "deploy", &name, "-o", "wide"]);
        assert!(wide.contains("nginx:1.25") && wide.contains(&format!("app={name}")), "{wide}");
        let jp = s.ok(v, &["get", "deploy", &name, "-o", "jsonpath={.spec.template.spec.containers[0].image}"]);
        assert_eq!(jp, "nginx:1.25");
        let yaml = s.ok(v, &["get", "deploy", &name, "-o", "yaml"]);
        assert!(yaml.contains("kind: Deployment"), "{yaml}");

        // A changed manifest patches the live object and bumps generation.
        let file2 = s.write(&format!("{name}-2.yaml"), &deployment_yaml(&name, 3, "nginx:1.26"));
        let out = s.ok(v, &["apply", "-f", as_str(&file2)]);
        assert!(out.contains("configured"), "{out}");
        let json: serde_json::Value = serde_json::from_str(&s.ok(v, &["get", "deployment", &name, "-o", "json"])).expect("json");
        assert_eq!(json["spec"]["replicas"], 3);
        assert_eq!(json["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.26");
        assert_eq!(json["metadata"]["generation"], 2);

        let out = s.ok(v, &["delete", "deployment", &name]);
        assert!(out.contains("deleted"), "{out}");
        let err = s.fails(v, &["get", "deployment", &name]);
        assert!(err.contains(&format!("Error from server (NotFound): deployments.apps \"{name}\" not found")), "{err}");
    }
}

#[test]
fn get_watch_streams_changes() {
    let s = TestServer::start();
    for v in KUBECTLS {
        let name = unique_name("cm");
        let mut child = Command::new(kubectl_bin(v))
            .arg("--kubeconfig")
            .arg(&s.kubeconfig)
            .args(["get", "configmaps", "-w", "-o", "name", "--field-selector", &format!("metadata.name={name}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("kubectl get -w");
        let out = child.stdout.take().expect("piped stdout");
        let guard = ChildGuard::new(child, "kubectl get -w");
        let stdout = {
            let (tx, rx) = mpsc::channel::<String>();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            rx
        };
        let manifest = format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  a: b\n");
        let file = s.write(&format!("{name}.yaml"), &manifest);
        // The watch may start before or after the create; keep touching the object until lines arrive.
        let mut seen = Vec::new();
        s.ok(v, &["create", "-f", as_str(&file)]);
        let mut n = 0;
        poll_until("kubectl get -w to print two events", Duration::from_secs(20), || {
            n += 1;
            s.ok(v, &["label", "configmap", &name, &format!("round={n}"), "--overwrite"]);
            while let Ok(l) = stdout.recv_timeout(Duration::from_millis(200)) {
                seen.push(l);
            }
            (seen.len() >= 2).then_some(())
        });
        assert!(seen.iter().all(|l| l == &format!("configmap/{name}")), "kubectl.{v} -w printed {seen:?}");
        drop(guard);
    }
}

/// `kubectl get -w` without `-o` watches with the Table Accept header: the header and each event print as table
/// rows with the kind's own columns.
#[test]
fn get_watch_prints_table_rows() {
    let s = TestServer::start();
    for v in KUBECTLS {
        let name = unique_name("wp");
        let mut child = Command::new(kubectl_bin(v))
            .arg("--kubeconfig")
            .arg(&s.kubeconfig)
            .args(["get", "pods", "-w", "--field-selector", &format!("metadata.name={name}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("kubectl get -w");
        let out = child.stdout.take().expect("piped stdout");
        let guard = ChildGuard::new(child, "kubectl get pods -w");
        let (tx, lines) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let pod = format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers:\n  - name: c\n    image: busybox:1.36\n");
        let file = s.write(&format!("{name}.yaml"), &pod);
        s.ok(v, &["create", "-f", as_str(&file)]);
        let mut seen: Vec<String> = Vec::new();
        let mut n = 0;
        poll_until("kubectl get pods -w to print the pod as a table row", Duration::from_secs(20), || {
            n += 1;
            s.ok(v, &["label", "pod", &name, &format!("round={n}"), "--overwrite"]);
            while let Ok(l) = lines.recv_timeout(Duration::from_millis(200)) {
                seen.push(l);
            }
            seen.iter().any(|l| l.starts_with(&format!("{name} "))).then_some(())
        });
        let header = seen.iter().find(|l| l.starts_with("NAME")).unwrap_or_else(|| panic!("kubectl.{v}: no header in {seen:?}"));
        for col in ["READY", "STATUS", "RESTARTS", "AGE"] {
            assert!(header.contains(col), "kubectl.{v} get pods -w header {header:?} lacks {col}");
        }
        let row = seen.iter().find(|l| l.starts_with(&format!("{name} "))).expect("row");
        assert!(row.contains("0/1") && row.contains("Pending"), "kubectl.{v} row {row:?}");
        drop(guard);
    }
}
