//! Runtime-spec conformance where the runtime used to be silently wrong, refuse late or hang its caller
//! (issue 18): each refusal is checked for its message and for leaving nothing behind (state, cgroup, mounts,
//! processes); each behaviour is checked from inside the container.

mod common;

use std::fs;

use common::Bundle;
use serde_json::json;

/// The host's mount table, for "nothing was left mounted" checks.
fn host_mounts() -> String {
    fs::read_to_string("/proc/self/mountinfo").unwrap()
}

/// Creates with the bundle as it is; the create must fail with one `error:` line naming `must_mention`, and leave
/// no state directory, cgroup or mount behind.
fn refused(b: &mut Bundle, must_mention: &[&str]) -> String {
    b.write();
    let id = b.id();
    let before = host_mounts().lines().count();
    let out = b.rt(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "create should fail");
    assert_eq!(err.trim_end().lines().count(), 1, "error is not one line: {err}");
    assert!(err.starts_with("error: "), "error does not begin with `error:`: {err}");
    for m in must_mention {
        assert!(err.contains(m), "error does not mention {m:?}: {err}");
    }
    assert!(!b.root.path().join(&id).exists(), "state dir left behind: {err}");
    assert!(!b.cgroup_exists(), "cgroup left behind: {err}");
    assert_eq!(host_mounts().lines().count(), before, "mounts left behind: {err}");
    err
}

#[test]
fn every_cli_error_begins_with_error() {
    let mut b = Bundle::new(&["true"]);
    for args in [vec!["state", "no-such-container"], vec!["kill", "no-such-container", "KILL"], vec!["delete", "no-such-container"]] {
        let out = b.rt(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.starts_with("error: ") && err.contains("no-such-container"), "{args:?}: {err}");
    }
    b.config["process"]["args"] = json!([]);
    refused(&mut b, &["process.args"]);
}

#[test]
fn oci_version_outside_1_0_to_1_2_is_refused() {
    for v in ["2.0.0", "1.3.0", "0.5.0", "latest"] {
        let mut b = Bundle::new(&["true"]);
        b.config["ociVersion"] = json!(v);
        refused(&mut b, &["ociVersion", v, "1.0.0 to 1.2.x"]);
    }
    let mut b = Bundle::new(&["true"]);
    b.config.as_object_mut().unwrap().remove("ociVersion");
    refused(&mut b, &["ociVersion", "missing"]);
    // Pre-release and build suffixes of a supported version are fine.
    b.config["ociVersion"] = json!("1.2.1-dev");
    b.run_ok();
}

#[test]
fn unknown_seccomp_action_is_refused_before_anything_is_made() {
    let mut b = Bundle::new(&["true"]);
    b.config["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_FOO", "syscalls": []});
    refused(&mut b, &["linux.seccomp.defaultAction", "SCMP_ACT_FOO"]);
    b.config["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_BAR"}]});
    refused(&mut b, &["linux.seccomp.syscalls[0].action", "SCMP_ACT_BAR"]);
    b.config["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_PDP11"]});
    refused(&mut b, &["linux.seccomp.architectures[0]", "SCMP_ARCH_PDP11"]);
}

#[test]
fn seccomp_notify_is_refused_instead_of_hanging_the_caller() {
    let agent = tempfile::tempdir().unwrap();
    let listener = agent.path().join("agent.sock");
    let _sock = std::os::unix::net::UnixListener::bind(&listener).unwrap();
    let mut b = Bundle::new(&["true"]);
    b.config["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": listener,
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]});
    refused(&mut b, &["linux.seccomp.syscalls[0].action", "SCMP_ACT_NOTIFY", &listener.display().to_string()]);
    b.config["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_NOTIFY"});
    refused(&mut b, &["linux.seccomp.defaultAction", "SCMP_ACT_NOTIFY", "no listenerPath"]);
}
