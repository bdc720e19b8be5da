//! Terminal over --console-socket, the six hooks, seccomp, user namespaces and the cwd/fd checks, each observed
//! from inside the container or from what the hooks wrote.

mod common;

use std::fs;
use std::io::{IoSliceMut, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;

use common::{status_field, Bundle};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use serde_json::{json, Value};

/// Accepts one connection on a console socket and returns the pty master it carries.
fn receive_pty(listener: &UnixListener) -> OwnedFd {
    let (conn, _) = listener.accept().unwrap();
    let mut buf = [0u8; 256];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(conn.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::empty()).unwrap();
    for c in msg.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: the fd was just received and is owned by nobody else.
            return unsafe { OwnedFd::from_raw_fd(fds[0]) };
        }
    }
    panic!("no fd received on the console socket");
}

#[test]
fn terminal_is_handed_over_the_console_socket() {
    let mut b = Bundle::new(&["sh", "-c", "tty; stty size; echo isatty=$(test -t 0 && echo yes)"]);
    b.config["process"]["terminal"] = json!(true);
    b.config["process"]["consoleSize"] = json!({"height": 40, "width": 100});
    b.write();
    let sock = b.path().join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let id = b.id();
    let mut cmd = b.cmd();
    cmd.args(["create", "--bundle", b.path().to_str().unwrap(), "--console-socket", sock.to_str().unwrap(), &id]);
    let child = std::thread::spawn(move || cmd.output().unwrap());
    let master = receive_pty(&listener);
    let out = child.join().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(b.rt(&["start", &id]).status.success());
    let mut f = fs::File::from(master);
    let mut text = String::new();
    let mut buf = [0u8; 1024];
    // Read until the shell exits (EIO on a pty master once the slave side is closed).
    while let Ok(n) = f.read(&mut buf) {
        if n == 0 {
            break;
        }
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
        if text.contains("isatty=") && text.ends_with('\n') {
            break;
        }
    }
    assert!(text.contains("/dev/pts/0"), "not on the container's pty: {text:?}");
    assert!(text.contains("40 100"), "console size not applied: {text:?}");
    assert!(text.contains("isatty=yes"), "{text:?}");
}

#[test]
fn terminal_without_console_socket_is_refused() {
    let mut b = Bundle::new(&["true"]);
    b.config["process"]["terminal"] = json!(true);
    b.write();
    let id = b.id();
    let out = b.rt(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--console-socket"));
    assert!(!b.root.path().join(&id).exists());
}

#[test]
fn all_six_hooks_run_with_the_state_on_stdin() {
    let mut b = Bundle::new(&["sh", "-c", "cat /proc/self/status > /dev/null; echo main-ran"]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let hook = |name: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {d}/{name}.json; readlink /proc/self/ns/mnt > {d}/{name}.mnt")], "timeout": 10});
    b.config["hooks"] = json!({
        "prestart": [hook("prestart")],
        "createRuntime": [hook("createRuntime")],
        "createContainer": [hook("createContainer")],
        "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "cat > /tmp/startContainer.json; echo in-container > /tmp/marker"]}],
        "poststart": [hook("poststart")],
        "poststop": [hook("poststop")]
    });
    let (id, log) = b.create();
    for h in ["prestart", "createRuntime", "createContainer"] {
        let v: Value = serde_json::from_slice(&fs::read(dir.path().join(format!("{h}.json"))).unwrap()).unwrap();
        assert_eq!(v["id"], id.as_str(), "{h}");
        assert!(v["pid"].as_i64().unwrap() > 0, "{h}: {v}");
    }
    let host_mnt = fs::read_link("/proc/self/ns/mnt").unwrap().to_string_lossy().to_string();
    assert_eq!(fs::read_to_string(dir.path().join("createRuntime.mnt")).unwrap().trim(), host_mnt, "createRuntime runs in the runtime's namespace");
    assert_ne!(fs::read_to_string(dir.path().join("createContainer.mnt")).unwrap().trim(), host_mnt, "createContainer runs in the container's namespace");
    assert!(!dir.path().join("poststart.json").exists());
    assert!(b.rt(&["start", &id]).status.success());
    assert!(dir.path().join("poststart.json").exists());
    b.wait_status(&id, "stopped");
    // startContainer ran inside the container (after pivot_root): its file is in the rootfs.
    let sc: Value = serde_json::from_slice(&fs::read(b.rootfs().join("tmp/startContainer.json")).unwrap()).unwrap();
    assert_eq!(sc["id"], id.as_str());
    assert!(fs::read_to_string(&log).unwrap().contains("main-ran"));
    assert!(!dir.path().join("poststop.json").exists());
    assert!(b.rt(&["delete", &id]).status.success());
    let ps: Value = serde_json::from_slice(&fs::read(dir.path().join("poststop.json")).unwrap()).unwrap();
    assert_eq!(ps["status"], "stopped");
}

#[test]
fn failing_create_hook_fails_create_and_cleans_up() {
    let mut b = Bundle::new(&["true"]);
    b.config["hooks"] = json!({"createRuntime": [{"path": "/bin/false"}]});
    b.write();
    let id = b.id();
    let out = b.rt(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("hooks.createRuntime[0]"));
    assert!(!b.root.path().join(&id).exists());
    assert!(!b.cgroup_exists());
}

#[test]
fn seccomp_profile_blocks_and_allows() {
    let mut b = Bundle::new(&["sh", "-c", "mkdir /tmp/blocked 2>&1; echo mkdir=$?; echo still-running; grep Seccomp: /proc/self/status"]);
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    });
    let out = b.run_ok();
    assert!(out.contains("Operation not permitted"), "{out}");
    assert!(out.contains("mkdir=1") && out.contains("still-running"), "{out}");
    assert_eq!(status_field(&out, "Seccomp"), "2", "filter mode");
    assert!(!b.rootfs().join("tmp/blocked").exists());
    // Without no_new_privs the filter is loaded while still privileged.
    b.config["process"]["noNewPrivileges"] = json!(false);
    let out = b.run_ok();
    assert!(out.contains("mkdir=1"), "{out}");
}

#[test]
fn user_namespace_maps_root() {
    let mut b = Bundle::new(&["sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; id -u; readlink /proc/self/ns/user"]);
    let ns = b.config["linux"]["namespaces"].as_array_mut().unwrap();
    ns.push(json!({"type": "user"}));
    b.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    b.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    // cgroup v1 and sysfs cannot be mounted from a user namespace on this host; keep the rest.
    b.config["mounts"].as_array_mut().unwrap().retain(|m| m["type"] != "cgroup" && m["type"] != "sysfs");
    b.config["linux"]["maskedPaths"] = json!(["/proc/keys"]);
    let out = b.run_ok();
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[0].split_whitespace().collect::<Vec<_>>(), ["0", "100000", "65536"], "{out}");
    assert_eq!(l[1].split_whitespace().collect::<Vec<_>>(), ["0", "100000", "65536"], "{out}");
    assert_eq!(l[2], "0");
    assert_ne!(l[3], fs::read_link("/proc/self/ns/user").unwrap().to_string_lossy(), "not a new user namespace");
}

#[test]
fn runtime_fds_do_not_leak_into_the_container() {
    let mut b = Bundle::new(&["sh", "-c", "ls /proc/self/fd | sort -n | tr '\\n' ' '; echo; readlink /proc/self/cwd"]);
    b.config["process"]["cwd"] = json!("/tmp");
    let out = b.run_ok();
    let l: Vec<&str> = out.lines().collect();
    // Only stdio (and the fd ls itself opens to read the directory).
    let fds: Vec<u32> = l[0].split_whitespace().map(|s| s.parse().unwrap()).collect();
    assert!(fds.iter().all(|&fd| fd <= 3), "leaked fds: {fds:?}");
    assert_eq!(l[1], "/tmp");
}

#[test]
fn time_namespace_is_new() {
    let mut b = Bundle::new(&["readlink", "/proc/self/ns/time"]);
    b.config["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "time"}));
    let out = b.run_ok();
    assert_ne!(out.trim(), fs::read_link("/proc/self/ns/time").unwrap().to_string_lossy());
}
