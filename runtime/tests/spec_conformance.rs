//! Runtime-spec conformance where the runtime used to be silently wrong, refuse late or hang its caller
//! (issue 18): each refusal is checked for its message and for leaving nothing behind (state, cgroup, mounts,
//! processes); each behaviour is checked from inside the container.

mod common;

use std::fs;

use common::Bundle;
use serde_json::json;

/// The host's mount table, for "nothing was left mounted" checks.
/// The host's mounts at or under this bundle or its state root (other tests' mounts, made in parallel, are not
/// counted).
fn host_mounts(b: &Bundle) -> usize {
    let (bundle, state) = (b.path().to_str().unwrap().to_string(), b.root.path().to_str().unwrap().to_string());
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(&bundle) || m.starts_with(&state)))
        .count()
}

/// Creates with the bundle as it is; the create must fail with one `error:` line naming `must_mention`, and leave
/// no state directory, cgroup or mount behind.
fn refused(b: &mut Bundle, must_mention: &[&str]) -> String {
    b.write();
    let id = b.id();
    let before = host_mounts(b);
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
    assert_eq!(host_mounts(b), before, "mounts left behind: {err}");
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

#[test]
fn limits_for_a_controller_the_host_lacks_are_refused() {
    // This host (cgroup v1 with hugetlb in the hybrid unified mount) has no net_cls, net_prio or rdma hierarchy
    // and no weighting I/O scheduler; each limit it cannot apply is refused with the controller's name.
    let layout = rkube_runtime::cgroups::Layout::detect(std::path::Path::new("/sys/fs/cgroup"));
    let v2 = layout.name() == "v2";
    let no_weights = layout.v1_root("blkio").is_some_and(|r| !r.join("blkio.weight").exists() && !r.join("blkio.bfq.weight").exists());
    let cases = [
        ("network", json!({"classID": 1048577}), "network.classID", "net_cls", v2 || !layout.has_controller("net_cls")),
        ("network", json!({"priorities": [{"name": "eth0", "priority": 5}]}), "network.priorities", "net_prio", v2 || !layout.has_controller("net_prio")),
        ("rdma", json!({"mlx5_0": {"hcaHandles": 3, "hcaObjects": 10000}}), "rdma", "rdma", !layout.has_controller("rdma")),
        ("blockIO", json!({"weight": 300}), "blockIO", "blkio", !v2 && (!layout.has_controller("blkio") || no_weights)),
        ("unified", json!({"memory.high": "10000000"}), "unified", "cannot use unified on cgroup v1", !v2),
        ("cpu", json!({"idle": 1}), "cpu.idle", "needs cgroup v2", !v2),
    ];
    let mut refusals = 0;
    for (key, value, field, mention, lacking) in cases {
        if !lacking {
            continue; // this host can apply it: not a refusal case here
        }
        let mut b = Bundle::new(&["true"]);
        b.config["linux"]["resources"][key] = value;
        let err = refused(&mut b, &[&format!("linux.resources.{field}"), mention, "cannot set"]);
        assert!(!err.contains("container \""), "refused before anything was made, not by the init: {err}");
        refusals += 1;
    }
    assert!(refusals >= 5, "this machine lacks net_cls, net_prio, rdma, blkio weights and cgroup v2: {refusals}");
}

/// The whole-disk `major:minor` of the first block device (throttle limits only take whole disks).
fn a_block_device() -> String {
    let d = fs::read_dir("/sys/block").unwrap().flatten().map(|e| e.path()).find(|p| p.join("dev").exists() && !p.file_name().unwrap().to_string_lossy().starts_with("loop")).unwrap();
    fs::read_to_string(d.join("dev")).unwrap().trim().to_string()
}

#[test]
fn blkio_throttle_limits_are_applied() {
    let dev = a_block_device();
    let (major, minor) = dev.split_once(':').unwrap();
    let (major, minor): (i64, i64) = (major.parse().unwrap(), minor.parse().unwrap());
    let mut b = Bundle::new(&["sh", "-c", "cat /sys/fs/cgroup/blkio/blkio.throttle.read_bps_device /sys/fs/cgroup/blkio/blkio.throttle.write_iops_device"]);
    b.config["linux"]["resources"]["blockIO"] = json!({
        "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1048576}],
        "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 100}]
    });
    let out = b.run_ok();
    assert!(out.contains(&format!("{dev} 1048576")) && out.contains(&format!("{dev} 100")), "{out}");
}

#[test]
fn seccomp_is_loaded_after_the_cwd_check_with_and_without_no_new_privs() {
    for nnp in [true, false] {
        let mut b = Bundle::new(&["sh", "-c", "echo started; grep -E '^(CapEff|CapPrm|Seccomp):' /proc/self/status"]);
        b.config["process"]["noNewPrivileges"] = json!(nnp);
        b.config["process"]["cwd"] = json!("/tmp");
        // A profile that denies getcwd: the runtime's own CVE-2024-21626 check calls it, so it must run first.
        b.config["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]});
        let out = b.run_ok();
        assert!(out.starts_with("started\n"), "nnp={nnp}: {out}");
        assert_eq!(common::status_field(&out, "Seccomp"), "2", "nnp={nnp}: {out}");
        // Without no_new_privs the runtime kept CAP_SYS_ADMIN to load the filter; the process must not have it.
        let want = common::cap_mask(&[5, 10, 29]);
        assert_eq!(common::status_field(&out, "CapEff"), want, "nnp={nnp}: {out}");
        assert_eq!(common::status_field(&out, "CapPrm"), want, "nnp={nnp}: {out}");
    }
}

#[test]
fn hooks_get_the_status_the_spec_gives_and_start_container_inherits_the_env() {
    let mut b = Bundle::new(&["true"]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let hook = |name: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {d}/{name}.json")]});
    b.config["process"]["env"] = json!(["PATH=/bin", "FROM_PROCESS=yes"]);
    b.config["hooks"] = json!({
        "prestart": [hook("prestart")],
        "createRuntime": [hook("createRuntime")],
        "createContainer": [hook("createContainer")],
        "startContainer": [
            {"path": "/bin/sh", "args": ["sh", "-c", "cat > /tmp/startContainer.json; env > /tmp/inherited.env"]},
            {"path": "/bin/sh", "args": ["sh", "-c", "env > /tmp/own.env"], "env": ["OWN=1"]}
        ],
        "poststart": [hook("poststart")],
        "poststop": [hook("poststop")]
    });
    let (id, _) = b.create();
    assert!(b.rt(&["start", &id]).status.success());
    b.wait_status(&id, "stopped");
    assert!(b.rt(&["delete", &id]).status.success());
    let status = |f: std::path::PathBuf| -> String {
        let v: serde_json::Value = serde_json::from_slice(&fs::read(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()))).unwrap();
        v["status"].as_str().unwrap().to_string()
    };
    for (h, want) in [("prestart", "creating"), ("createRuntime", "creating"), ("createContainer", "creating"), ("poststart", "running"), ("poststop", "stopped")] {
        assert_eq!(status(dir.path().join(format!("{h}.json"))), want, "{h}");
    }
    assert_eq!(status(b.rootfs().join("tmp/startContainer.json")), "created", "startContainer");
    let inherited = fs::read_to_string(b.rootfs().join("tmp/inherited.env")).unwrap();
    assert!(inherited.contains("FROM_PROCESS=yes"), "a startContainer hook without env gets the process's: {inherited}");
    let own = fs::read_to_string(b.rootfs().join("tmp/own.env")).unwrap();
    assert!(own.contains("OWN=1") && !own.contains("FROM_PROCESS"), "{own}");
}

#[test]
fn a_process_without_a_capabilities_object_gets_none() {
    let mut b = Bundle::new(&["grep", "-E", "^Cap(Eff|Prm|Bnd):", "/proc/self/status"]);
    b.config["process"].as_object_mut().unwrap().remove("capabilities");
    let out = b.run_ok();
    for f in ["CapEff", "CapPrm", "CapBnd"] {
        assert_eq!(common::status_field(&out, f), "0000000000000000", "{out}");
    }
}

#[test]
fn every_rootfs_propagation_applies_to_the_new_root() {
    // mountinfo's optional fields for "/": shared:N, master:N, unbindable, or none (private).
    for (p, want) in [("unbindable", "unbindable"), ("runbindable", "unbindable"), ("private", ""), ("rprivate", ""),
        ("slave", "master:"), ("rslave", "master:"), ("shared", "shared:"), ("rshared", "shared:")]
    {
        let mut b = Bundle::new(&["sh", "-c", "awk '$5==\"/\" {for (i=7; $i != \"-\"; i++) printf \"%s \", $i; print \"end\"}' /proc/self/mountinfo"]);
        b.config["linux"]["rootfsPropagation"] = json!(p);
        // a slave needs a master: the rootfs is a shared mount of its own on the host, whatever the host's "/" is
        let _shared = SharedBind::new(&b.rootfs());
        let out = b.run_ok();
        if want.is_empty() {
            assert_eq!(out.trim(), "end", "{p}: {out}");
        } else {
            assert!(out.contains(want), "{p}: {out}");
        }
    }
    let mut b = Bundle::new(&["true"]);
    b.config["linux"]["rootfsPropagation"] = json!("sideways");
    refused(&mut b, &["linux.rootfsPropagation", "sideways"]);
}

/// `rootfs` bind-mounted on itself and made shared for one test; unmounted on drop, pass or fail.
struct SharedBind(std::path::PathBuf);

impl SharedBind {
    fn new(p: &std::path::Path) -> SharedBind {
        for args in [&["--bind", p.to_str().unwrap(), p.to_str().unwrap()][..], &["--make-shared", p.to_str().unwrap()][..]] {
            let st = std::process::Command::new("mount").args(args).status().expect("mount");
            assert!(st.success(), "mount {args:?}");
        }
        SharedBind(p.to_path_buf())
    }
}

impl Drop for SharedBind {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The container's processes (by cgroup), for "exec left nothing running" checks.
fn container_pids(b: &Bundle, id: &str) -> Vec<String> {
    let out = b.rt(&["ps", "--format", "json", id]);
    assert!(out.status.success(), "ps: {}", String::from_utf8_lossy(&out.stderr));
    let v: Vec<i64> = serde_json::from_slice(&out.stdout).unwrap();
    v.iter().map(|p| p.to_string()).collect()
}

#[test]
fn exec_env_replaces_the_configs_variable_and_cap_adds_capabilities() {
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.config["process"]["env"] = json!(["PATH=/usr/bin:/bin", "KEEP=1", "OVER=config", "OVER=config2"]);
    let (id, _) = b.create();
    assert!(b.rt(&["start", &id]).status.success());
    b.wait_status(&id, "running");
    let out = b.rt(&["exec", "--env", "OVER=exec", "--env", "PATH=/bin", "--env", "NEW=x", &id, "cat", "/proc/self/environ"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let env: Vec<String> = String::from_utf8_lossy(&out.stdout).split('\0').filter(|s| !s.is_empty()).map(str::to_string).collect();
    let mut names: Vec<&str> = env.iter().map(|e| e.split_once('=').unwrap().0).collect();
    names.sort();
    let n = names.len();
    names.dedup();
    assert_eq!(names.len(), n, "one entry per name: {env:?}");
    for want in ["OVER=exec", "PATH=/bin", "NEW=x", "KEEP=1"] {
        assert!(env.iter().any(|e| e == want), "{want} missing: {env:?}");
    }
    // The container's own process sees the config's env, also one entry per name.
    let out = b.rt(&["exec", &id, "cat", "/proc/1/environ"]);
    let init_env = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(init_env.matches("OVER=").count(), 1, "{init_env:?}");
    assert!(init_env.contains("OVER=config2"), "{init_env:?}");

    // --cap: CAP_NET_ADMIN (12) and CAP_SYS_TIME (25) join bounding, effective and permitted; never inheritable.
    let out = b.rt(&["exec", "--cap", "CAP_NET_ADMIN", "--cap", "sys_time", &id, "grep", "^Cap", "/proc/self/status"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let st = String::from_utf8_lossy(&out.stdout).into_owned();
    let want = common::cap_mask(&[5, 10, 12, 25, 29]);
    for f in ["CapBnd", "CapEff", "CapPrm"] {
        assert_eq!(common::status_field(&st, f), want, "{f}: {st}");
    }
    assert_eq!(common::status_field(&st, "CapInh"), "0000000000000000", "{st}");
    // Without --cap the exec'd process has the config's set only.
    let out = b.rt(&["exec", &id, "grep", "^CapEff", "/proc/self/status"]);
    assert_eq!(common::status_field(&String::from_utf8_lossy(&out.stdout), "CapEff"), common::cap_mask(&[5, 10, 29]));

    // An unknown capability is refused before anything runs in the container.
    let before = container_pids(&b, &id);
    let out = b.rt(&["exec", "--cap", "CAP_FLY", &id, "sleep", "100"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.starts_with("error: ") && err.contains("exec --cap") && err.contains("CAP_FLY"), "{err}");
    assert_eq!(container_pids(&b, &id), before);
    // An env entry that is not NAME=value is refused naming it.
    let out = b.rt(&["exec", "--env", "=oops", &id, "true"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.starts_with("error: ") && err.contains("process.env[") && err.contains("=oops"), "{err}");
    assert_eq!(container_pids(&b, &id), before);
}

fn inode(p: impl AsRef<std::path::Path>) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(p.as_ref()).unwrap_or_else(|e| panic!("{}: {e}", p.as_ref().display())).ino()
}

/// The default config without a mount namespace and without anything that would need one.
fn without_mount_ns(b: &mut Bundle) {
    let ns = b.config["linux"]["namespaces"].as_array().unwrap().iter().filter(|n| n["type"] != "mount").cloned().collect::<Vec<_>>();
    b.config["linux"]["namespaces"] = json!(ns);
    b.config["mounts"] = json!([]);
    b.config["linux"]["maskedPaths"] = json!([]);
    b.config["linux"]["readonlyPaths"] = json!([]);
}

#[test]
fn without_a_mount_namespace_the_container_is_chrooted_in_the_callers() {
    let mut b = Bundle::new(&["sh", "-c", "echo from-container > /marker; exec sleep 1000"]);
    without_mount_ns(&mut b);
    let before = host_mounts(&b);
    let (id, log) = b.create();
    let pid = b.state(&id)["pid"].as_i64().unwrap();
    // Same mount namespace as the caller; root is the bundle's rootfs.
    assert_eq!(inode(format!("/proc/{pid}/ns/mnt")), inode("/proc/self/ns/mnt"));
    assert_eq!(fs::read_link(format!("/proc/{pid}/root")).unwrap(), fs::canonicalize(b.rootfs()).unwrap());
    assert!(b.rt(&["start", &id]).status.success());
    rkube_testsupport::poll_until("marker written in the rootfs", std::time::Duration::from_secs(10), || b.rootfs().join("marker").exists().then_some(()));
    assert!(!std::path::Path::new("/marker").exists(), "wrote to the host's /");
    // exec lands in the same chroot.
    let out = b.rt(&["exec", &id, "cat", "/marker"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "from-container", "{}", String::from_utf8_lossy(&out.stderr));
    assert!(b.rt(&["delete", "--force", &id]).status.success(), "{}", fs::read_to_string(log).unwrap_or_default());
    assert!(!b.root.path().join(&id).exists() && !b.cgroup_exists());
    assert_eq!(host_mounts(&b), before, "nothing was mounted in the caller's namespace");

    // Whatever would have to be mounted is refused before anything is made.
    let mut b = Bundle::new(&["true"]);
    without_mount_ns(&mut b);
    b.config["mounts"] = json!([{"destination": "/proc", "type": "proc", "source": "proc"}]);
    refused(&mut b, &["mounts", "private mount namespace"]);
    without_mount_ns(&mut b);
    b.config["linux"]["maskedPaths"] = json!(["/proc/kcore"]);
    refused(&mut b, &["linux.maskedPaths", "unable to restrict sys entries without a private MNT namespace"]);
    without_mount_ns(&mut b);
    b.config["root"]["readonly"] = json!(true);
    refused(&mut b, &["root.readonly", "private mount namespace"]);
    b.config["root"]["readonly"] = json!(false);
    b.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    refused(&mut b, &["linux.sysctl"]);
    b.config["linux"].as_object_mut().unwrap().remove("sysctl");
    // --no-pivot, with runc's wording.
    b.write();
    let id = b.id();
    let out = b.rt(&["create", "--no-pivot", "--bundle", b.path().to_str().unwrap(), &id]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.starts_with("error: ") && err.contains("unable to use no-pivot without a private MNT namespace"), "{err}");
    assert!(!b.root.path().join(&id).exists() && !b.cgroup_exists());
}

/// A mount namespace pinned on a file (unshare --mount=FILE), with no process in it; unpinned on drop.
struct PinnedMountNs {
    dir: tempfile::TempDir,
}

impl PinnedMountNs {
    fn new() -> PinnedMountNs {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap().to_string();
        // The pin's parent must be a private mount (a namespace file cannot be bound under a shared one).
        for args in [&["--bind", &d, &d][..], &["--make-private", &d][..]] {
            assert!(std::process::Command::new("mount").args(args).status().unwrap().success(), "mount {args:?}");
        }
        let pin = dir.path().join("mnt");
        fs::write(&pin, "").unwrap();
        let st = std::process::Command::new("unshare").arg(format!("--mount={}", pin.display())).arg("true").status().unwrap();
        assert!(st.success(), "unshare --mount=FILE");
        PinnedMountNs { dir }
    }

    fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("mnt")
    }
}

impl Drop for PinnedMountNs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(self.path()).status();
        let _ = std::process::Command::new("umount").arg(self.dir.path()).status();
    }
}

#[test]
fn a_mount_namespace_joined_by_path_gets_the_rootfs_set_up_in_it() {
    let pinned = PinnedMountNs::new();
    let mut b = Bundle::new(&["sh", "-c", "test -x /bin/busybox && test -e /proc/self/status && echo rootfs-ok"]);
    let ns: Vec<_> = b.config["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| if n["type"] == "mount" { json!({"type": "mount", "path": pinned.path()}) } else { n.clone() })
        .collect();
    b.config["linux"]["namespaces"] = json!(ns);
    let before = host_mounts(&b);
    let (id, log) = b.create();
    let pid = b.state(&id)["pid"].as_i64().unwrap();
    assert_eq!(inode(format!("/proc/{pid}/ns/mnt")), inode(pinned.path()), "init is in the joined namespace");
    assert_eq!(host_mounts(&b), before, "the rootfs was set up in the joined namespace, not the host's");
    assert!(b.rt(&["start", &id]).status.success());
    b.wait_status(&id, "stopped");
    assert!(b.rt(&["delete", &id]).status.success());
    assert_eq!(fs::read_to_string(&log).unwrap().trim(), "rootfs-ok");
    assert!(!b.root.path().join(&id).exists() && !b.cgroup_exists());
}

#[test]
fn time_offsets_are_written_before_the_first_process_enters() {
    let mut b = Bundle::new(&["sh", "-c", "cat /proc/self/timens_offsets; cut -d. -f1 /proc/uptime; exec sleep 1000"]);
    b.config["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "time"}));
    b.config["linux"]["timeOffsets"] = json!({"monotonic": {"secs": 31536000, "nanosecs": 5}, "boottime": {"secs": 2000000}});
    let (id, log) = b.create();
    let pid = b.state(&id)["pid"].as_i64().unwrap();
    assert_ne!(inode(format!("/proc/{pid}/ns/time")), inode("/proc/self/ns/time"));
    // The runtime put its own children's time namespace back: this test's next child is in the host's.
    assert!(b.rt(&["start", &id]).status.success());
    let out = rkube_testsupport::poll_until("container output", std::time::Duration::from_secs(10), || {
        let s = fs::read_to_string(&log).unwrap_or_default();
        (s.lines().count() >= 3).then_some(s)
    });
    let norm: Vec<String> = out.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    assert!(norm.iter().any(|l| l == "monotonic 31536000 5") && norm.iter().any(|l| l == "boottime 2000000 0"), "{out}");
    let uptime: u64 = out.lines().nth(2).unwrap().trim().parse().unwrap();
    assert!(uptime >= 2000000, "boottime offset shows in /proc/uptime: {out}");
    // exec joins the container's time namespace.
    let out = b.rt(&["exec", &id, "cut", "-d.", "-f1", "/proc/uptime"]);
    let up: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(up >= 2000000, "exec sees the offset: {up}");
    assert!(b.rt(&["delete", "--force", &id]).status.success());

    let mut b = Bundle::new(&["true"]);
    b.config["linux"]["timeOffsets"] = json!({"monotonic": {"secs": 10}});
    refused(&mut b, &["linux.timeOffsets", "new time namespace"]);
    b.config["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "time"}));
    b.config["linux"]["timeOffsets"] = json!({"realtime": {"secs": 10}});
    refused(&mut b, &["linux.timeOffsets.realtime", "monotonic and boottime"]);
    b.config["linux"]["timeOffsets"] = json!({"boottime": {"secs": 10, "nanosecs": 1000000000u64}});
    refused(&mut b, &["linux.timeOffsets.boottime.nanosecs"]);
}

fn v1_knob(b: &Bundle, controller: &str, file: &str) -> String {
    let dir = std::path::Path::new("/sys/fs/cgroup").join(controller).join(b.cgroup.trim_start_matches('/'));
    fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{}/{file}: {e}", dir.display())).trim().to_string()
}

#[test]
fn pause_resume_and_update_a_running_container() {
    let layout = rkube_runtime::cgroups::Layout::detect(std::path::Path::new("/sys/fs/cgroup"));
    assert!(layout.has_controller("freezer") || layout.name() == "v2", "this test needs a freezer");
    let mut b = Bundle::new(&["sleep", "1000"]);
    let (id, _) = b.create();
    // Only a running container pauses.
    let out = b.rt(&["pause", &id]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.starts_with("error: ") && err.contains("only a running container"), "{err}");
    assert!(b.rt(&["start", &id]).status.success());
    b.wait_status(&id, "running");
    let pid = b.state(&id)["pid"].as_i64().unwrap();
    assert!(b.rt(&["pause", &id]).status.success());
    assert_eq!(b.state(&id)["status"], "paused");
    if layout.name() != "v2" {
        assert_eq!(v1_knob(&b, "freezer", "freezer.state"), "FROZEN");
    }
    assert!(!b.rt(&["pause", &id]).status.success(), "a paused container does not pause again");
    assert!(b.rt(&["resume", &id]).status.success());
    assert_eq!(b.state(&id)["status"], "running");
    assert_eq!(b.state(&id)["pid"].as_i64().unwrap(), pid, "the same process runs on");
    let out = b.rt(&["resume", &id]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("only a paused container"));

    // update with runc's flags, then with -r.
    let out = b.rt(&["update", "--memory", "32m", "--pids-limit", "20", "--cpu-quota", "50000", "--cpu-period", "100000", "--cpu-shares", "512", &id]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    if layout.name() != "v2" {
        assert_eq!(v1_knob(&b, "memory", "memory.limit_in_bytes"), "33554432");
        assert_eq!(v1_knob(&b, "pids", "pids.max"), "20");
        assert_eq!(v1_knob(&b, "cpu", "cpu.cfs_quota_us"), "50000");
        assert_eq!(v1_knob(&b, "cpu", "cpu.shares"), "512");
    }
    let r = b.path().join("resources.json");
    fs::write(&r, r#"{"memory": {"limit": 67108864}, "pids": {"limit": 30}}"#).unwrap();
    let out = b.rt(&["update", "-r", r.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    if layout.name() != "v2" {
        assert_eq!(v1_knob(&b, "memory", "memory.limit_in_bytes"), "67108864");
        assert_eq!(v1_knob(&b, "pids", "pids.max"), "30");
    }
    // From inside: the container sees its new pids limit.
    let out = b.rt(&["exec", &id, "cat", "/sys/fs/cgroup/pids/pids.max"]);
    if layout.name() != "v2" {
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "30");
    }
    // Refusals name what is wrong and change nothing.
    let out = b.rt(&["update", "--memory", "lots", &id]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--memory"));
    if !layout.has_controller("net_cls") {
        fs::write(&r, r#"{"network": {"classID": 1048577}}"#).unwrap();
        let out = b.rt(&["update", "-r", r.to_str().unwrap(), &id]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("net_cls"), "{err}");
    }
    let out = b.rt(&["update", "--pids-limit", "5", "no-such-container"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("no-such-container"));

    // A paused container is deleted with --force (killed, then thawed so the kill lands), leaving nothing.
    assert!(b.rt(&["pause", &id]).status.success());
    assert!(b.rt(&["delete", "--force", &id]).status.success());
    assert!(!b.cgroup_exists(), "cgroup left behind");
    assert!(!b.root.path().join(&id).exists());
    // Killed (its reaper, not this test, removes the zombie): gone or a zombie, never running or frozen.
    rkube_testsupport::poll_until(&format!("process {pid} to be killed"), std::time::Duration::from_secs(10), || {
        let st = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        (st.is_empty() || st.rsplit(')').next().is_some_and(|r| r.trim_start().starts_with('Z'))).then_some(())
    });
}

/// A host directory with a tmpfs mounted inside it; unmounted on drop.
struct DirWithSubmount(tempfile::TempDir);

impl Drop for DirWithSubmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(self.0.path().join("sub")).status();
    }
}

#[test]
fn recursive_mount_options_reach_every_submount() {
    let host = DirWithSubmount(tempfile::tempdir().unwrap());
    let sub = host.0.path().join("sub");
    fs::create_dir(&sub).unwrap();
    assert!(std::process::Command::new("mount").args(["-t", "tmpfs", "-o", "size=1m", "tmpfs", sub.to_str().unwrap()]).status().unwrap().success());
    let script = "touch /data/sub/x 2>/dev/null && echo writable; awk '$5==\"/data/sub\" {print $6}' /proc/self/mountinfo";
    let mut b = Bundle::new(&["sh", "-c", script]);
    b.config["mounts"].as_array_mut().unwrap().push(json!({"destination": "/data", "type": "bind", "source": host.0.path(),
        "options": ["rbind", "rro", "rnosuid", "rnodev", "rnoexec", "rnoatime", "rnodiratime", "rnosymfollow"]}));
    let out = b.run_ok();
    assert!(!out.contains("writable"), "rro reached the submount: {out}");
    let opts: Vec<&str> = out.trim().split(',').collect();
    for o in ["ro", "nosuid", "nodev", "noexec", "noatime", "nodiratime", "nosymfollow"] {
        assert!(opts.contains(&o), "{o} missing on the submount: {out}");
    }
    // The host's own submount is untouched.
    assert!(fs::write(sub.join("host-can-write"), "").is_ok());

    let mut b = Bundle::new(&["sh", "-c", "awk '$5==\"/data/sub\" {print $6}' /proc/self/mountinfo"]);
    b.config["mounts"].as_array_mut().unwrap().push(json!({"destination": "/data", "type": "bind", "source": host.0.path(),
        "options": ["rbind", "rnoatime", "rstrictatime"]}));
    let out = b.run_ok();
    assert!(!out.contains("noatime") && !out.contains("relatime"), "rstrictatime replaced rnoatime: {out}");
}
