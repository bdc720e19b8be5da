//! vagrant/ in CI without VMs (this machine has no usable hypervisor): `shellcheck` on the provisioning scripts,
//! `vagrant validate` (Debian's vagrant; provider blocks ignored) on the Vagrantfile, and the join flow's shape:
//! the workers get the join command, never the admin kubeconfig.

use std::path::{Path, PathBuf};
use std::process::Command;

use rkube_testsupport::require_command;

fn vagrant_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../vagrant").canonicalize().expect("vagrant/ in the repository")
}

#[test]
fn provisioning_passes_shellcheck() {
    let shellcheck = require_command("shellcheck", "shellcheck");
    let out = Command::new(shellcheck).args(["provision.sh", "rkube-node.sh"]).current_dir(vagrant_dir()).output().expect("run shellcheck");
    assert!(out.status.success(), "shellcheck vagrant/provision.sh vagrant/rkube-node.sh:\n{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

#[test]
fn vagrantfile_validates() {
    let vagrant = require_command("vagrant", "vagrant");
    let home = tempfile::tempdir().expect("VAGRANT_HOME");
    // its file provisioners name ../target/release/rkube...: the binaries the suite built
    let out = Command::new(vagrant)
        .args(["validate", "--ignore-provider"])
        .current_dir(vagrant_dir())
        .env("VAGRANT_HOME", home.path())
        // no .vagrant/ left in the repository
        .env("VAGRANT_DOTFILE_PATH", home.path().join("dot"))
        .env("VAGRANT_CHECKPOINT_DISABLE", "1")
        .output()
        .expect("run vagrant validate");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("validated successfully"), "vagrant validate:\n{text}");
}

#[test]
fn workers_join_with_a_token_not_the_admin_credential() {
    let dir = vagrant_dir();
    let vagrantfile = std::fs::read_to_string(dir.join("Vagrantfile")).expect("Vagrantfile");
    let provision = std::fs::read_to_string(dir.join("provision.sh")).expect("provision.sh");
    let node = std::fs::read_to_string(dir.join("rkube-node.sh")).expect("rkube-node.sh");
    for l in vagrantfile.lines().filter(|l| l.contains("provision \"file\"")) {
        assert!(!l.contains("kubeconfig"), "no kubeconfig is copied to a node: {l}");
    }
    assert!(provision.contains("rkube token create") && provision.contains("--print-join-command"), "cp makes a bootstrap token");
    assert!(vagrantfile.contains("source: \"rkube-node.sh\"") && provision.contains("ExecStart=/usr/local/bin/rkube-node /etc/rkube/join-command"), "every node's kubelet unit starts through rkube-node.sh");
    assert!(node.contains("join --server \"$server\" --token \"$token\" --discovery-token-ca-cert-hash \"$ca_hash\""), "kubelets join with the token and the CA pin");
    assert!(node.contains("kubelet --kubeconfig \"$data/kubelet.conf\""), "a restarted node runs with its own kubelet.conf");
    for text in [&provision, &node] {
        assert!(!text.contains("kubelet --kubeconfig ${kubeconfig}") && !text.contains("rkube-kubeconfig"), "no kubelet runs with the admin kubeconfig");
    }
}
