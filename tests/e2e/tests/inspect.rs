//! `rkube inspect pod` bad input on `rkube up`, as root: a missing pod, a pod not scheduled, a pod on an
//! unreachable node: exit 1, a message naming what is wrong, nothing on stdout. (The comparison of a pod's
//! inspection with the kernel's own view is not in yet: see docs/inspect.md.)
//!
//! Needs the binaries: `cargo build --release -p rkube -p rkube-kubelet -p rkube-runtime -p rkube-cni --bins`.

mod up_support;

use std::process::Command;
use std::time::Duration;

use rkube_testsupport::unique_name;
use up_support::{bin, Up};

/// `rkube inspect` with the cluster's kubeconfig: (exit code, stdout, stderr).
fn inspect(up: &Up, args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(bin("rkube"));
    cmd.arg("inspect").args(args).arg("--kubeconfig").arg(up.kubeconfig()).env("RKUBE_LOG", "warn");
    let out = rkube_testsupport::output_within(&mut cmd, None, Duration::from_secs(60), "rkube inspect");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn inspect_bad_input_exits_1_naming_what_is_wrong() {
    let up = Up::start();
    // no such pod
    let (code, out, err) = inspect(&up, &["pod", "nope", "-n", "default"]);
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(err.contains("pod default/nope not found"), "{err}");

    // a pod no node fits: Pending, never scheduled
    up.kubectl_ok(
        &["apply", "-f", "-"],
        Some("apiVersion: v1\nkind: Pod\nmetadata: {name: nowhere}\nspec:\n  nodeSelector: {no-such-label: x}\n  containers: [{name: c, image: busybox:latest, imagePullPolicy: Never}]\n"),
    );
    let (code, out, err) = inspect(&up, &["pod", "nowhere"]);
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(err.contains("pod default/nowhere is Pending and not scheduled to a node yet"), "{err}");

    // a pod on a node whose kubelet nobody answers for: a Node at the node's address on a port nothing listens on
    let ghost = unique_name("ghost");
    up.kubectl_ok(&["apply", "-f", "-"], Some(&format!("apiVersion: v1\nkind: Node\nmetadata: {{name: {ghost}}}\n")));
    let status = format!(
        r#"{{"status":{{"addresses":[{{"type":"InternalIP","address":"{}"}}],"daemonEndpoints":{{"kubeletEndpoint":{{"Port":9}}}}}}}}"#,
        up.node_ip
    );
    up.kubectl(&["patch", "node", &ghost, "--subresource=status", "--type=merge", "-p", &status]);
    up.kubectl_ok(
        &["apply", "-f", "-"],
        Some(&format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: stranded}}\nspec:\n  nodeName: {ghost}\n  containers: [{{name: c, image: busybox:latest, imagePullPolicy: Never}}]\n")),
    );
    let (code, out, err) = inspect(&up, &["pod", "stranded"]);
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(err.contains(&format!("node {ghost} of pod default/stranded is unreachable")), "{err}");
    let _ = up.kubectl_output(&["delete", "pod", "stranded", "nowhere", "--grace-period=0", "--force"]);
    let _ = up.kubectl_output(&["delete", "node", &ghost]);
}
