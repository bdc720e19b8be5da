//! The library API the kubelet uses in-process: Runtime::{create_sandbox, create, start, state, wait, kill,
//! delete, exec} from a multi-threaded program, with create/exec/sandbox re-executed in init mode.

mod common;

use std::fs;

use common::Bundle;
use rkube_runtime::{ContainerStatus, CreateOptions, Exit, ExecRequest, Runtime, SandboxRequest, Stdio};
use rkube_testsupport::unique_name;
use serde_json::json;

#[test]
fn kubelet_style_pod_lifecycle_through_the_library() {
    let mut b = Bundle::new(&["true"]);
    // This test binary stands in for the kubelet: threaded, and the reaper of the containers it creates.
    rkube_runtime::become_subreaper().unwrap();
    let rt = Runtime::new(b.root.path()).with_init_binary(common::RT);
    let pod = unique_name("rkp");
    b.ids.push(pod.clone());
    let sb = rt.create_sandbox(&SandboxRequest { id: pod.clone(), hostname: Some("libpod".into()), ..Default::default() }).unwrap();
    assert_eq!(sb.status, ContainerStatus::Running);
    let netns = sb.private.namespaces["net"].clone();

    b.config["linux"]["namespaces"] = json!([
        {"type": "pid"}, {"type": "mount"}, {"type": "cgroup"},
        {"type": "network", "path": netns}, {"type": "uts", "path": sb.private.namespaces["uts"]},
        {"type": "ipc", "path": sb.private.namespaces["ipc"]}
    ]);
    b.config["process"]["args"] = json!(["sh", "-c", "hostname; readlink /proc/self/ns/net; exit 5"]);
    b.write();
    let id = b.id();
    let log = b.path().join("log");
    let st = rt
        .create(&id, b.path(), CreateOptions { stdio: Stdio { stdout: Some(log.clone()), stderr: Some(log.clone()), stdin: None }, ..Default::default() })
        .unwrap();
    assert_eq!(st.status, ContainerStatus::Created);
    rt.start(&id).unwrap();
    assert_eq!(rt.wait(&id).unwrap(), Some(Exit::Code(5)));
    assert_eq!(rt.state(&id).unwrap().status, ContainerStatus::Stopped);
    let out = fs::read_to_string(&log).unwrap();
    let want_ns = fs::read_link(&netns).unwrap();
    assert_eq!(out, format!("libpod\n{}\n", want_ns.display()));
    assert_eq!(rt.oom_kills(&id).unwrap(), 0);
    rt.delete(&id, false).unwrap();

    // exec into a long-running container, and errors from init mode come back as errors.
    b.config["process"]["args"] = json!(["sleep", "1000"]);
    b.write();
    let id2 = b.id();
    rt.create(&id2, b.path(), CreateOptions::default()).unwrap();
    rt.start(&id2).unwrap();
    let proc_: oci_spec::runtime::Process =
        serde_json::from_value(json!({"args": ["sh", "-c", "echo exec-ok > /tmp/exec-out"], "cwd": "/", "user": {"uid": 0, "gid": 0}})).unwrap();
    let pid = rt.exec(&ExecRequest { id: id2.clone(), process: Some(proc_), ..Default::default() }).unwrap();
    assert!(pid > 0);
    rkube_testsupport::poll_until("exec output", std::time::Duration::from_secs(5), || {
        fs::read_to_string(b.rootfs().join("tmp/exec-out")).ok().filter(|s| s == "exec-ok\n")
    });
    rt.kill(&id2, libc::SIGKILL, false).unwrap();
    assert!(matches!(rt.wait(&id2).unwrap(), Some(Exit::Signal(9)) | None));
    rt.delete(&id2, false).unwrap();
    let err = rt.create(&id2, std::path::Path::new("/no/bundle"), CreateOptions::default()).unwrap_err().to_string();
    assert!(err.contains("/no/bundle/config.json"), "{err}");
    rt.delete(&pod, true).unwrap();
    assert!(rt.list().is_empty());
}

#[test]
fn fork_paths_refuse_a_threaded_caller() {
    let _t = std::thread::spawn(|| std::thread::sleep(std::time::Duration::from_secs(2)));
    let req = rkube_runtime::CreateRequest { id: "x".into(), bundle: "/nonexistent".into(), ..Default::default() };
    let err = rkube_runtime::container::create(&req).err().expect("must refuse").to_string();
    assert!(err.contains("single-threaded"), "{err}");
}
