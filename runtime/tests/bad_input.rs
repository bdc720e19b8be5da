//! Bad input: each mistake gives one line on stderr naming the field, a non-zero exit, and leaves no state
//! directory and no cgroup behind.

mod common;

use std::fs;

use common::Bundle;
use serde_json::json;

/// Creates with the bundle as it is and checks the failure shape; returns stderr.
fn fails(b: &mut Bundle, must_mention: &[&str]) -> String {
    let id = b.id();
    let out = b.rt(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "create should fail");
    assert_eq!(err.trim_end().lines().count(), 1, "error is not one line: {err}");
    for m in must_mention {
        assert!(err.contains(m), "error does not mention {m:?}: {err}");
    }
    assert!(!b.root.path().join(&id).exists(), "state dir left behind: {err}");
    assert!(!b.cgroup_exists(), "cgroup left behind: {err}");
    err
}

#[test]
fn malformed_json() {
    let mut b = Bundle::new(&["true"]);
    b.write();
    fs::write(b.path().join("config.json"), "{\"ociVersion\": \"1.0.2\", \"process\": {").unwrap();
    fails(&mut b, &["config.json", "EOF"]);
}

#[test]
fn wrong_field_type() {
    let mut b = Bundle::new(&["true"]);
    b.config["process"]["args"] = json!("true");
    b.write();
    fails(&mut b, &["process.args"]);
}

#[test]
fn missing_rootfs() {
    let mut b = Bundle::new(&["true"]);
    b.config["root"]["path"] = json!("no-such-rootfs");
    b.write();
    fails(&mut b, &["root.path", "no-such-rootfs"]);
}

#[test]
fn missing_process_args() {
    let mut b = Bundle::new(&["true"]);
    b.config["process"]["args"] = json!([]);
    b.write();
    fails(&mut b, &["process.args"]);
}

#[test]
fn program_not_in_path() {
    let mut b = Bundle::new(&["no-such-program"]);
    b.write();
    fails(&mut b, &["process.args", "no-such-program"]);
}

#[test]
fn absolute_program_that_does_not_exist() {
    let mut b = Bundle::new(&["/no/such/program"]);
    b.write();
    fails(&mut b, &["process.args[0]", "/no/such/program", "No such file"]);
}

#[test]
fn absolute_program_that_is_a_directory() {
    let mut b = Bundle::new(&["/etc"]);
    b.write();
    fails(&mut b, &["process.args[0]", "\"/etc\"", "is a directory"]);
}

#[test]
fn namespace_path_of_the_wrong_type() {
    let mut b = Bundle::new(&["true"]);
    b.config["linux"]["namespaces"][1] = json!({"type": "network", "path": "/proc/self/ns/uts"});
    b.write();
    fails(&mut b, &["linux.namespaces[1].path", "not a network namespace"]);
}

#[test]
fn duplicate_namespace() {
    let mut b = Bundle::new(&["true"]);
    b.config["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "ipc"}));
    b.write();
    fails(&mut b, &["linux.namespaces[6]", "ipc"]);
}

#[test]
fn unknown_capability() {
    let mut b = Bundle::new(&["true"]);
    b.config["process"]["capabilities"]["bounding"] = json!(["CAP_KILL", "CAP_MAKE_COFFEE"]);
    b.write();
    fails(&mut b, &["process.capabilities.bounding", "CAP_MAKE_COFFEE"]);
}

#[test]
fn bad_mount_fails_cleanly() {
    let mut b = Bundle::new(&["true"]);
    b.config["mounts"].as_array_mut().unwrap().push(json!({"destination": "/x", "type": "bind", "source": "/no/such/source", "options": ["bind"]}));
    b.write();
    fails(&mut b, &["mounts", "/x"]);
}

#[test]
fn duplicate_id_keeps_the_first() {
    let mut b = Bundle::new(&["sleep", "100"]);
    let (id, _) = b.create();
    let out = b.rt(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already exists") && err.contains(&id), "{err}");
    assert_eq!(b.state(&id)["status"], "created", "the first container is untouched");
}

#[test]
fn missing_bundle() {
    let b = Bundle::new(&["true"]);
    let out = b.rt(&["create", "--bundle", "/no/such/bundle", "x1"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/no/such/bundle/config.json"), "{err}");
    assert!(!b.root.path().join("x1").exists());
}
