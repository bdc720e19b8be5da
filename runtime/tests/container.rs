//! Root integration tests: real containers on the busybox rootfs, each feature checked from inside the container.

mod common;

use std::fs;
use std::time::Duration;

use common::{cap_mask, status_field, Bundle};
use rkube_testsupport::poll_until;
use serde_json::json;

#[test]
fn run_propagates_exit_status_and_leaves_nothing() {
    let mut b = Bundle::new(&["sh", "-c", "exit 7"]);
    let (code, _, err) = b.run();
    assert_eq!(code, 7, "{err}");
    assert!(!b.cgroup_exists(), "cgroup left behind after run");
    assert_eq!(fs::read_dir(b.root.path()).unwrap().count(), 0, "state left behind after run");
    // Without a pid namespace the shell is not an init, so SIGKILL from itself ends it.
    b.config["process"]["args"] = json!(["sh", "-c", "kill -9 $$"]);
    b.config["linux"]["namespaces"] = json!([{"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]);
    b.config["mounts"].as_array_mut().unwrap().retain(|m| m["type"] != "proc");
    let (code, _, _) = b.run();
    assert_eq!(code, 137, "death by signal is 128+signal");
}

#[test]
fn namespaces_hostname_and_pid1() {
    let mut b = Bundle::new(&["sh", "-c", "echo pid=$$; hostname; for n in net uts ipc mnt cgroup; do readlink /proc/self/ns/$n; done; cat /proc/self/cgroup"]);
    b.config["domainname"] = json!("example.test");
    let out = b.run_ok();
    assert!(out.contains("pid=1\n"), "container init is not pid 1: {out}");
    assert!(out.contains("rkube-test\n"), "hostname not set: {out}");
    for ns in ["net", "uts", "ipc", "mnt", "cgroup"] {
        let host = fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
        let host = host.to_string_lossy();
        assert!(out.contains(&format!("{ns}:[")), "{ns} missing: {out}");
        assert!(!out.contains(host.as_ref()), "container shares the host {ns} namespace {host}: {out}");
    }
    // In its own cgroup namespace the container sees its cgroup as the root.
    assert!(out.lines().any(|l| l.starts_with("4:memory:/") && l.ends_with(":/")) || out.contains("memory:/\n"), "cgroup ns root: {out}");
}

#[test]
fn capabilities_all_five_sets() {
    let mut b = Bundle::new(&["cat", "/proc/self/status"]);
    b.config["process"]["noNewPrivileges"] = json!(false);
    b.config["process"]["capabilities"] = json!({
        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE", "CAP_SETUID"],
        "effective": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "permitted": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_NET_ADMIN"],
        "inheritable": ["CAP_NET_BIND_SERVICE"],
        "ambient": ["CAP_NET_BIND_SERVICE"]
    });
    // As a non-root user, exec keeps only the ambient caps in permitted and effective (capabilities(7)).
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    let out = b.run_ok();
    assert_eq!(status_field(&out, "CapBnd"), cap_mask(&[0, 5, 7, 10, 12]));
    assert_eq!(status_field(&out, "CapPrm"), cap_mask(&[10]));
    assert_eq!(status_field(&out, "CapEff"), cap_mask(&[10]));
    assert_eq!(status_field(&out, "CapInh"), cap_mask(&[10]));
    assert_eq!(status_field(&out, "CapAmb"), cap_mask(&[10]));
    assert_eq!(status_field(&out, "NoNewPrivs"), "0");
    // As root, permitted stays as given and effective follows it across exec (runc shows the same).
    b.config["process"]["user"] = json!({"uid": 0, "gid": 0});
    b.config["process"]["noNewPrivileges"] = json!(true);
    let out = b.run_ok();
    assert_eq!(status_field(&out, "CapBnd"), cap_mask(&[0, 5, 7, 10, 12]));
    assert_eq!(status_field(&out, "CapPrm"), cap_mask(&[5, 10, 12]));
    assert_eq!(status_field(&out, "CapEff"), cap_mask(&[5, 10, 12]));
    assert_eq!(status_field(&out, "NoNewPrivs"), "1");
}

#[test]
fn rlimits_user_env_cwd_umask() {
    let mut b = Bundle::new(&["sh", "-c", "ulimit -n; ulimit -Hn; ulimit -c; id; echo FOO=$FOO; pwd; umask"]);
    b.config["process"]["rlimits"] = json!([
        {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1000},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}
    ]);
    b.config["process"]["user"] = json!({"uid": 65534, "gid": 65534, "additionalGids": [10, 20], "umask": 63});
    b.config["process"]["env"] = json!(["PATH=/bin", "FOO=bar baz"]);
    b.config["process"]["cwd"] = json!("/tmp");
    let out = b.run_ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "512", "{out}");
    assert_eq!(lines[1], "1000", "{out}");
    assert_eq!(lines[2], "0", "{out}");
    assert!(lines[3].starts_with("uid=65534(nobody) gid=65534(nogroup) groups="), "{out}");
    assert!(lines[3].contains("10") && lines[3].contains("20"), "supplementary groups: {out}");
    assert_eq!(lines[4], "FOO=bar baz");
    assert_eq!(lines[5], "/tmp");
    assert_eq!(lines[6], "0077");
}

#[test]
fn rlimit_above_hard_limit_is_a_clear_error() {
    // Without CAP_SYS_RESOURCE the runtime cannot raise nofile above the host hard limit; that must be an error
    // that names the field, not a silent cap.
    let mut b = Bundle::new(&["true"]);
    b.config["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 1048576, "hard": 1048576}]);
    let (code, _, err) = b.run();
    let has_sys_resource = fs::read_to_string("/proc/self/status").unwrap().lines().any(|l| {
        l.starts_with("CapEff:") && u64::from_str_radix(l[7..].trim(), 16).unwrap() & (1 << 24) != 0
    });
    if has_sys_resource {
        assert_eq!(code, 0, "{err}");
    } else {
        assert_ne!(code, 0);
        assert!(err.contains("process.rlimits") && err.contains("RLIMIT_NOFILE"), "{err}");
        assert!(!b.cgroup_exists());
    }
}

#[test]
fn mounts_masked_readonly_paths_and_sysctl() {
    let hostdir = tempfile::tempdir().unwrap();
    fs::write(hostdir.path().join("hello"), "from host").unwrap();
    let mut b = Bundle::new(&["sh", "-c", concat!(
        "cat /proc/self/mountinfo; echo ---; cat /data/hello; echo; ",
        "touch /data/x 2>/dev/null && echo data-writable || echo data-ro; ",
        "touch /x 2>/dev/null && echo root-writable || echo root-ro; ",
        "echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo procsys-writable || echo procsys-ro; ",
        "wc -c < /proc/timer_list; ls /sys/firmware | wc -l; cat /proc/sys/net/ipv4/ip_forward; ",
        "stat -c %a /scratch; ls -l /dev/fd /dev/stdin /dev/ptmx | sed 's/.*-> //'; ls /dev; test -c /dev/null && echo null-ok")]);
    b.config["root"]["readonly"] = json!(true);
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    mounts.push(json!({"destination": "/data", "type": "bind", "source": hostdir.path(), "options": ["rbind", "ro", "nosuid", "nodev", "noexec", "rprivate"]}));
    mounts.push(json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "size=1m", "mode=1777"]}));
    b.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    let out = b.run_ok();
    let (mi, rest) = out.split_once("---\n").unwrap();
    let line = |dest: &str| mi.lines().find(|l| l.split_whitespace().nth(4) == Some(dest)).unwrap_or_else(|| panic!("{dest} not mounted: {mi}")).to_string();
    let root = line("/");
    assert!(root.split_whitespace().nth(5).unwrap().starts_with("ro"), "root not read-only: {root}");
    let data = line("/data");
    for o in ["ro", "nosuid", "nodev", "noexec"] {
        assert!(data.split_whitespace().nth(5).unwrap().split(',').any(|x| x == o), "/data lacks {o}: {data}");
    }
    let scratch = line("/scratch");
    assert!(scratch.contains("tmpfs") && scratch.contains("size=1024k"), "{scratch}");
    assert!(line("/proc/sys").split_whitespace().nth(5).unwrap().starts_with("ro"));
    assert!(line("/dev/pts").contains("devpts"));
    assert!(line("/dev/shm").contains("tmpfs"));
    assert!(line("/dev/mqueue").contains("mqueue"));
    assert!(line("/sys").contains("sysfs"));
    assert!(line("/sys/fs/cgroup/memory").contains("cgroup"));
    let r: Vec<&str> = rest.lines().collect();
    assert_eq!(r[0], "from host");
    assert_eq!(r[1], "data-ro");
    assert_eq!(r[2], "root-ro");
    assert_eq!(r[3], "procsys-ro");
    assert_eq!(r[4].trim(), "0", "masked /proc/timer_list reads as /dev/null");
    assert_eq!(r[5].trim(), "0", "masked /sys/firmware is an empty tmpfs: {rest}");
    assert_eq!(r[6], "1", "sysctl in the container's netns");
    assert_eq!(r[7], "1777");
    assert_eq!(&r[8..11], ["/proc/self/fd", "pts/ptmx", "/proc/self/fd/0"]);
    for d in ["full", "null", "random", "tty", "urandom", "zero", "pts", "shm", "mqueue"] {
        assert!(r.contains(&d), "/dev/{d} missing: {rest}");
    }
    assert!(rest.contains("null-ok"));
    // The host's ip_forward is untouched (it was set only in the container's network namespace).
    assert!(hostdir.path().join("hello").exists());
}

#[test]
fn cgroup_limits_read_back_from_inside() {
    let mut b = Bundle::new(&["sh", "-c", concat!(
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max ",
        "/sys/fs/cgroup/cpu/cpu.shares /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us ",
        "/sys/fs/cgroup/cpuset/cpuset.cpus; cat /sys/fs/cgroup/devices/devices.list")]);
    b.config["linux"]["resources"] = json!({
        "devices": [{"allow": false, "access": "rwm"}],
        "memory": {"limit": 33554432},
        "pids": {"limit": 20},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"}
    });
    let out = b.run_ok();
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(&l[..6], ["33554432", "20", "512", "50000", "100000", "0"], "{out}");
    assert!(l.contains(&"c 1:3 rwm") && !l.contains(&"a *:* rwm"), "device allowlist: {out}");
}

#[test]
fn pids_limit_is_enforced() {
    let mut b = Bundle::new(&["sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 5 & done 2>&1; echo spawned"]);
    b.config["linux"]["resources"]["pids"] = json!({"limit": 4});
    let (_, out, err) = b.run();
    assert!(out.contains("can't fork") || err.contains("can't fork") || out.contains("Resource temporarily unavailable"), "fork not limited: {out} {err}");
}

#[test]
fn oom_kill_under_16mib_is_reported() {
    let mut b = Bundle::new(&["sh", "-c", "dd if=/dev/zero of=/dev/null bs=64M count=1; echo dd-exit=$?"]);
    b.config["linux"]["resources"]["memory"] = json!({"limit": 16777216, "swap": 16777216});
    let (id, log) = b.create();
    assert!(b.rt(&["start", &id]).status.success());
    b.wait_status(&id, "stopped");
    let out = fs::read_to_string(&log).unwrap();
    assert!(out.contains("dd-exit=137"), "dd was not SIGKILLed: {out}");
    let ev = b.rt(&["events", "--stats", &id]);
    let v: serde_json::Value = serde_json::from_slice(&ev.stdout).unwrap();
    assert!(v["data"]["memory"]["oom_kill"].as_u64().unwrap() >= 1, "oom kill not reported: {v}");
    assert!(b.rt(&["delete", &id]).status.success());
    assert!(!b.cgroup_exists());
}

#[test]
fn lifecycle_create_start_state_kill_delete() {
    let mut b = Bundle::new(&["sleep", "1000"]);
    let (id, _) = b.create();
    let st = b.state(&id);
    assert_eq!(st["status"], "created");
    let pid = st["pid"].as_i64().unwrap();
    assert!(pid > 0);
    assert!(b.cgroup_exists());
    // A created container is parked: its cmdline is still the runtime's, not sleep's.
    let cmd = fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(!cmd.starts_with("sleep"), "{cmd}");
    // Duplicate id.
    let dup = b.rt(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    assert!(!dup.status.success());
    assert!(String::from_utf8_lossy(&dup.stderr).contains("already exists"));
    assert!(b.rt(&["start", &id]).status.success());
    assert_eq!(b.state(&id)["status"], "running");
    poll_until("sleep to exec", Duration::from_secs(5), || {
        fs::read_to_string(format!("/proc/{pid}/cmdline")).ok().filter(|c| c.starts_with("sleep")).map(|_| ())
    });
    let second = b.rt(&["start", &id]);
    assert!(!second.status.success(), "second start must fail");
    let del = b.rt(&["delete", &id]);
    assert!(!del.status.success() && String::from_utf8_lossy(&del.stderr).contains("--force"));
    let list = b.rt(&["list", "--format", "json"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains(&id));
    let ps = b.rt(&["ps", "--format", "json", &id]);
    let pids: Vec<i64> = serde_json::from_slice(&ps.stdout).unwrap();
    assert_eq!(pids, vec![pid]);
    // sleep is pid 1 in its namespace and ignores TERM; KILL works.
    assert!(b.rt(&["kill", &id, "KILL"]).status.success());
    b.wait_status(&id, "stopped");
    assert!(b.rt(&["delete", &id]).status.success());
    assert!(!b.root.path().join(&id).exists());
    assert!(!b.cgroup_exists());
    assert!(!b.rt(&["state", &id]).status.success());
}

#[test]
fn delete_force_removes_running_container() {
    let mut b = Bundle::new(&["sh", "-c", "sleep 1000 & sleep 1000"]);
    let (id, _) = b.create();
    assert!(b.rt(&["start", &id]).status.success());
    poll_until("two processes in the cgroup", Duration::from_secs(5), || {
        let ps = b.rt(&["ps", "--format", "json", &id]);
        let pids: Vec<i64> = serde_json::from_slice(&ps.stdout).ok()?;
        (pids.len() >= 2).then_some(())
    });
    let out = b.rt(&["delete", "--force", &id]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!b.cgroup_exists());
    assert!(!b.root.path().join(&id).exists());
}

#[test]
fn delete_force_cleans_up_after_a_crash_mid_create() {
    // Simulate a create that died after claiming the id and making the cgroup: state "creating", no process.
    let mut b = Bundle::new(&["true"]);
    let id = b.id();
    let dir = b.root.path().join(&id);
    fs::create_dir_all(&dir).unwrap();
    let rel = b.cgroup.trim_start_matches('/').to_string();
    for d in b.cgroup_dirs() {
        fs::create_dir_all(&d).unwrap();
    }
    let state = json!({"ociVersion": "1.2.0", "id": id, "status": "creating", "pid": 0, "bundle": b.path(),
        "rootfs": b.rootfs(), "created": "2024-01-01T00:00:00Z", "owner": "",
        "rkube": {"cgroup": rel, "cgroup_root": "/sys/fs/cgroup"}});
    fs::write(dir.join("state.json"), state.to_string()).unwrap();
    assert!(b.cgroup_exists());
    let out = b.rt(&["delete", "--force", &id]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!dir.exists());
    assert!(!b.cgroup_exists());
    // A bare directory (crash before the first state write) is removed too.
    fs::create_dir_all(&dir).unwrap();
    assert!(b.rt(&["delete", "--force", &id]).status.success());
    assert!(!dir.exists());
}

#[test]
fn exec_joins_namespaces_and_cgroup() {
    let mut b = Bundle::new(&["sleep", "1000"]);
    let (id, _) = b.create();
    assert!(b.rt(&["start", &id]).status.success());
    let out = b.rt(&["exec", &id, "sh", "-c", "hostname; echo pid=$$; cat /proc/1/cmdline; echo; readlink /proc/self/ns/net; readlink /proc/1/ns/net; ulimit -n"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s = String::from_utf8_lossy(&out.stdout);
    let l: Vec<&str> = s.lines().collect();
    assert_eq!(l[0], "rkube-test");
    assert_ne!(l[1], "pid=1");
    assert!(l[2].starts_with("sleep"), "{s}");
    assert_eq!(l[3], l[4], "exec'd process is in the container's netns");
    assert_eq!(l[5], "1024");
    // exit status of exec propagates; --process file with user and cwd.
    let p = b.path().join("proc.json");
    fs::write(&p, json!({"args": ["sh", "-c", "id -u; pwd; exit 3"], "cwd": "/tmp", "user": {"uid": 65534, "gid": 65534},
        "env": ["PATH=/bin"]}).to_string()).unwrap();
    let out = b.rt(&["exec", "--process", p.to_str().unwrap(), &id]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "65534\n/tmp\n");
    // Detached with a pid file: the process is in the container's cgroup.
    let pf = b.path().join("exec.pid");
    // Detached: the process keeps the stdio it was given, so give it none the test waits on.
    let out = b.cmd().args(["exec", "-d", "--pid-file", pf.to_str().unwrap(), &id, "sleep", "1000"])
        .stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null())
        .output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let epid: i64 = fs::read_to_string(&pf).unwrap().trim().parse().unwrap();
    let ps = b.rt(&["ps", "--format", "json", &id]);
    let pids: Vec<i64> = serde_json::from_slice(&ps.stdout).unwrap();
    assert!(pids.contains(&epid), "{pids:?} lacks {epid}");
    assert!(b.rt(&["delete", "--force", &id]).status.success());
    assert!(!b.cgroup_exists());
}

#[test]
fn run_forwards_signals_to_the_container() {
    let mut b = Bundle::new(&["sh", "-c", "trap 'echo got-term; exit 3' TERM; echo ready; while true; do sleep 0.1; done"]);
    b.write();
    let id = b.id();
    let log = b.path().join("run.out");
    let mut child = b
        .cmd()
        .args(["run", "--bundle", b.path().to_str().unwrap(), &id])
        .stdin(std::process::Stdio::null())
        .stdout(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // "ready" is printed after the trap is installed.
    poll_until("the container to be ready", Duration::from_secs(10), || {
        fs::read_to_string(&log).ok().filter(|s| s.contains("ready")).map(|_| ())
    });
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = poll_until("run to exit", Duration::from_secs(10), || child.try_wait().unwrap());
    assert_eq!(status.code(), Some(3), "the container's exit code after its TERM trap");
    assert!(fs::read_to_string(&log).unwrap().contains("got-term"));
    assert!(!b.root.path().join(&id).exists(), "run deletes the container after it exits");
    assert!(!b.cgroup_exists());
}

#[test]
fn spec_and_features_have_runc_shapes() {
    let mut b = Bundle::new(&["true"]);
    let dir = tempfile::tempdir().unwrap();
    let out = b.rt(&["spec", "--bundle", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let spec: serde_json::Value = serde_json::from_slice(&fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(spec["process"]["args"], json!(["sh"]));
    assert_eq!(spec["root"]["path"], "rootfs");
    // The generated spec runs as it is (minus the terminal) on a busybox rootfs.
    b.config = spec;
    b.config["process"]["terminal"] = json!(false);
    b.config["process"]["args"] = json!(["sh", "-c", "echo spec-ok"]);
    b.config["linux"]["cgroupsPath"] = json!(b.cgroup.clone());
    assert_eq!(b.run_ok(), "spec-ok\n");
    let again = b.rt(&["spec", "--bundle", dir.path().to_str().unwrap()]);
    assert!(!again.status.success(), "spec must not overwrite an existing config.json");
    let f = b.rt(&["features"]);
    let v: serde_json::Value = serde_json::from_slice(&f.stdout).unwrap();
    assert_eq!(v["hooks"].as_array().unwrap().len(), 6);
    assert!(v["linux"]["namespaces"].as_array().unwrap().contains(&json!("time")));
    assert!(v["linux"]["capabilities"].as_array().unwrap().contains(&json!("CAP_SYS_ADMIN")));
    assert!(v["linux"]["seccomp"]["enabled"].as_bool().unwrap());
}

#[test]
fn without_a_cgroups_path_the_default_parent_goes_with_its_last_container() {
    // the runtime's own parent for path-less containers, in every hierarchy that has it
    let parents = || -> Vec<std::path::PathBuf> {
        fs::read_dir("/sys/fs/cgroup").unwrap().flatten().map(|e| e.path().join("rkube")).filter(|p| p.exists()).collect()
    };
    let mut b = Bundle::new(&["sleep", "100"]);
    b.config["linux"].as_object_mut().unwrap().remove("cgroupsPath");
    let (first, _) = b.create();
    let (second, _) = b.create();
    b.cgroup = format!("/rkube/{first}");
    assert!(b.cgroup_exists(), "rkube/<id> when cgroupsPath is empty");
    assert!(b.rt(&["delete", "--force", &first]).status.success());
    assert!(!b.cgroup_exists());
    assert!(!parents().is_empty(), "the parent stays while {second} is in it");
    assert!(b.rt(&["delete", "--force", &second]).status.success());
    assert_eq!(parents(), Vec::<std::path::PathBuf>::new(), "the default parent went with its last container");
}

#[test]
fn kill_all_signals_every_process_in_the_cgroup() {
    let mut b = Bundle::new(&["sh", "-c", "sleep 1000 & sleep 1000 & wait"]);
    let (id, _) = b.create();
    assert!(b.rt(&["start", &id]).status.success());
    poll_until("three processes", Duration::from_secs(10), || {
        let ps = b.rt(&["ps", "--format", "json", &id]);
        let v: Vec<i64> = serde_json::from_slice(&ps.stdout).ok()?;
        (v.len() == 3).then_some(())
    });
    assert!(b.rt(&["kill", "--all", &id, "9"]).status.success());
    b.wait_status(&id, "stopped");
    poll_until("an empty cgroup", Duration::from_secs(10), || {
        let ps = b.rt(&["ps", "--format", "json", &id]);
        let v: Vec<i64> = serde_json::from_slice(&ps.stdout).ok()?;
        v.is_empty().then_some(())
    });
    let bad = b.rt(&["kill", &id, "NOTASIGNAL"]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("unknown signal"));
    assert!(b.rt(&["delete", &id]).status.success());
}

#[test]
fn no_pivot_chroot_and_shared_rootfs_propagation() {
    let mut b = Bundle::new(&["sh", "-c", "echo inside; grep -c . /proc/self/mountinfo; awk '$5==\"/\" {print}' /proc/self/mountinfo"]);
    b.config["linux"]["rootfsPropagation"] = json!("rshared");
    let out = b.run_ok();
    let root_line = out.lines().nth(2).unwrap_or_default().to_string();
    assert!(root_line.contains("shared:"), "rootfsPropagation rshared not applied to /: {out}");
    // With --no-pivot the runtime moves the rootfs onto / and chroots; the container still gets its mounts.
    b.write();
    let id = b.id();
    let r = b.rt(&["run", "--no-pivot", "--bundle", b.path().to_str().unwrap(), &id]);
    let s = String::from_utf8_lossy(&r.stdout);
    assert!(r.status.success() && s.starts_with("inside\n"), "{s} {}", String::from_utf8_lossy(&r.stderr));
    assert!(s.lines().nth(1).unwrap().parse::<usize>().unwrap() > 5, "mounts missing under chroot: {s}");
}

#[test]
fn oom_score_adj_is_applied() {
    let mut b = Bundle::new(&["cat", "/proc/self/oom_score_adj"]);
    b.config["process"]["oomScoreAdj"] = json!(500);
    assert_eq!(b.run_ok(), "500\n");
}

/// hugepageLimits land where this host keeps the hugetlb controller: the hybrid layout's cgroup2 `unified` mount
/// (this machine), a pure cgroup v2 hierarchy, or cgroup v1's hugetlb hierarchy. A host with none of them fails
/// rather than passing with nothing tested; the pure v2 path is also checked in the VM (cgroup_v2_vm.rs).
#[test]
fn hugetlb_limit_lands_where_this_host_keeps_hugetlb() {
    let root = std::path::Path::new("/sys/fs/cgroup");
    let lists_hugetlb = |dir: &std::path::Path| {
        fs::read_to_string(dir.join("cgroup.controllers")).is_ok_and(|c| c.split_whitespace().any(|x| x == "hugetlb"))
    };
    assert!(
        std::path::Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").is_dir(),
        "this kernel has no 2 MiB huge pages: the test cannot run here"
    );
    // (hierarchy, knob, the /proc/<pid>/cgroup line prefix of that hierarchy)
    let (hierarchy, knob, line_prefix) = if lists_hugetlb(&root.join("unified")) {
        (root.join("unified"), "hugetlb.2MB.max", "0::".to_string())
    } else if lists_hugetlb(root) {
        (root.to_path_buf(), "hugetlb.2MB.max", "0::".to_string())
    } else if root.join("hugetlb/hugetlb.2MB.limit_in_bytes").exists() {
        let own = fs::read_to_string("/proc/self/cgroup").unwrap();
        let id = own.lines().find(|l| l.split(':').nth(1) == Some("hugetlb")).and_then(|l| l.split(':').next()).expect("a hugetlb line in /proc/self/cgroup").to_string();
        (root.join("hugetlb"), "hugetlb.2MB.limit_in_bytes", format!("{id}:hugetlb:"))
    } else {
        panic!("no hugetlb controller in /sys/fs/cgroup/unified, /sys/fs/cgroup or /sys/fs/cgroup/hugetlb: nothing to test on this host");
    };
    eprintln!("hugetlb in {} ({knob})", hierarchy.display());
    let mut b = Bundle::new(&["sleep", "100"]);
    b.config["linux"]["resources"]["hugepageLimits"] = json!([{"pageSize": "2MB", "limit": 4194304}]);
    let (id, _) = b.create();
    let file = hierarchy.join(b.cgroup.trim_start_matches('/')).join(knob);
    assert_eq!(fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display())).trim(), "4194304");
    let pid = b.state(&id)["pid"].as_i64().unwrap();
    let cg = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        cg.lines().any(|l| l.starts_with(&line_prefix) && l.ends_with(b.cgroup.as_str())),
        "the container is not in {} of {}: {cg}",
        b.cgroup,
        hierarchy.display()
    );
    assert!(b.rt(&["delete", "--force", &id]).status.success());
    assert!(!file.parent().unwrap().exists());
}
