//! Pod securityContext enforced end to end on `rkube up`, checked from inside each container: one pod per field,
//! all on one node. Each container reads its own `/proc/1/status` (CapEff and CapBnd decoded bit by bit, Uid,
//! Gid, Groups, NoNewPrivs, Seccomp) and tries what the field must allow or refuse: a chown without CAP_CHOWN,
//! a write to a read-only root, `unshare -U` under seccomp RuntimeDefault, the host's devices in a privileged
//! container. A pod with no securityContext is the control for every check, and `kubectl exec` must land in the
//! same restrictions as the container's own process. runAsNonRoot refusals are checked against upstream's
//! messages (kubelet `verifyRunAsNonRoot`) word for word.
//!
//! Needs root and the binaries: `cargo build --release -p rkube -p rkube-kubelet -p rkube-runtime -p rkube-cni --bins`.

mod up_support;

use std::collections::HashMap;
use std::time::Duration;

use rkube_testsupport::poll_until;
use up_support::Up;

/// What every container runs: its own status, ids, and the attempts each field decides, then it stays up for
/// `kubectl exec`.
const PROBE: &str = r#"grep -E '^(Uid|Gid|Groups|CapEff|CapPrm|CapBnd|NoNewPrivs|Seccomp):' /proc/1/status
echo "id=$(id -u):$(id -g)"
r=$(touch /tmp/chown-me 2>&1 && chown 1:1 /tmp/chown-me 2>&1); echo "chown=$? $r"
r=$(unshare -U true 2>&1); echo "unshare=$? $r"
r=$(touch /probe-write 2>&1); echo "write-root=$? $r"
r=$(touch /scratch/probe-write 2>&1); echo "write-volume=$? $r"
echo "dev=$(ls /dev | tr '\n' ' ')"
r=$(: < /dev/loop-control 2>&1); echo "open-loop-control=$? $r"
echo "sys=$(grep ' /sys ' /proc/mounts | cut -d' ' -f4)"
echo probe-done
exec sleep 3600"#;

/// A pod running [`PROBE`] with `pod_sc` as its spec.securityContext and `sc` as its container's (YAML flow
/// maps, or "" for none), and an emptyDir at /scratch.
fn pod(name: &str, pod_sc: &str, sc: &str) -> String {
    let indented: String = PROBE.lines().map(|l| format!("      {l}\n")).collect();
    let pod_sc = if pod_sc.is_empty() { String::new() } else { format!("  securityContext: {pod_sc}\n") };
    let sc = if sc.is_empty() { String::new() } else { format!("    securityContext: {sc}\n") };
    format!(
        "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 1\n{pod_sc}  volumes:\n  - name: scratch\n    emptyDir: {{}}\n  containers:\n  - name: c\n    image: busybox:latest\n    imagePullPolicy: Never\n{sc}    volumeMounts: [{{name: scratch, mountPath: /scratch}}]\n    command:\n    - sh\n    - -c\n    - |\n{indented}"
    )
}

/// Capability numbers (linux/capability.h) of the ones these checks name.
fn cap_bit(name: &str) -> u32 {
    match name {
        "CHOWN" => 0,
        "DAC_OVERRIDE" => 1,
        "FOWNER" => 3,
        "FSETID" => 4,
        "KILL" => 5,
        "SETGID" => 6,
        "SETUID" => 7,
        "SETPCAP" => 8,
        "NET_BIND_SERVICE" => 10,
        "NET_ADMIN" => 12,
        "NET_RAW" => 13,
        "SYS_CHROOT" => 18,
        "SYS_ADMIN" => 21,
        "SYS_TIME" => 25,
        "MKNOD" => 27,
        "AUDIT_WRITE" => 29,
        "SETFCAP" => 31,
        other => panic!("no bit for {other}"),
    }
}

/// The default capability set of containerd and CRI-O (what a container gets with no securityContext).
const RUNTIME_DEFAULT_CAPS: &[&str] = &[
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID", "SETFCAP", "SETPCAP",
    "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
];

fn mask(names: &[&str]) -> u64 {
    names.iter().fold(0, |m, n| m | 1 << cap_bit(n))
}

/// A capability mask as /proc prints it (for messages).
fn describe(m: u64) -> String {
    format!("{m:016x}")
}

/// `Key:\tvalue` status lines and `key=value` probe lines, by key.
fn parse(out: &str) -> HashMap<String, String> {
    let mut m = HashMap::new();
    for l in out.lines() {
        if let Some((k, v)) = l.split_once(":\t") {
            m.insert(k.to_string(), v.trim().to_string());
        } else if let Some((k, v)) = l.split_once('=') {
            m.insert(k.to_string(), v.trim().to_string());
        }
    }
    m
}

fn caps(probe: &HashMap<String, String>, key: &str) -> u64 {
    let v = probe.get(key).unwrap_or_else(|| panic!("{key} in {probe:?}"));
    u64::from_str_radix(v, 16).unwrap_or_else(|_| panic!("{key} {v:?} is not hex"))
}

/// The exit status and message of a `name=<status> <message>` probe line.
fn attempt<'a>(probe: &'a HashMap<String, String>, key: &str) -> (i32, &'a str) {
    let v = probe.get(key).unwrap_or_else(|| panic!("{key} in {probe:?}"));
    let (code, msg) = v.split_once(' ').unwrap_or((v, ""));
    (code.parse().unwrap_or_else(|_| panic!("{key}: {v:?}")), msg)
}

/// This process's (the test's, root on the host) capability bounding set: all a privileged container can have.
fn host_bounding() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let v = status.lines().find_map(|l| l.strip_prefix("CapBnd:")).expect("CapBnd");
    u64::from_str_radix(v.trim(), 16).expect("hex CapBnd")
}

fn logs_of(up: &Up, pod: &str) -> HashMap<String, String> {
    let out = poll_until(&format!("{pod} ran its probe"), Duration::from_secs(90), || {
        // no logs (an error) until the container has started
        up.kubectl_try(&["logs", pod]).filter(|l| l.contains("probe-done"))
    });
    parse(&out)
}

/// `kubectl exec` into `pod`: exit status and the command's stdout + stderr (without kubectl's own "command
/// terminated with exit code" line).
fn exec(up: &Up, pod: &str, cmd: &[&str]) -> (i32, String) {
    let mut args = vec!["exec", pod, "--"];
    args.extend(cmd);
    let out = up.kubectl_output(&args);
    let code = out.status.code().unwrap_or(-1);
    let stderr: String = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| *l != format!("command terminated with exit code {code}"))
        .map(|l| format!("{l}\n"))
        .collect();
    (code, format!("{}{stderr}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn security_context_fields_are_enforced_inside_the_container() {
    let up = Up::start();
    let manifest = [
        pod("plain", "", ""),
        pod("caps", "", "{capabilities: {add: [NET_ADMIN, SYS_TIME], drop: [CHOWN, NET_RAW]}}"),
        pod("caps-none", "", "{capabilities: {drop: [ALL]}}"),
        pod("ids", "{supplementalGroups: [4321]}", "{runAsUser: 1234, runAsGroup: 5678}"),
        pod("nonroot-image", "{runAsNonRoot: true}", ""),
        pod("nonroot-uid0", "{runAsNonRoot: true}", "{runAsUser: 0}"),
        pod("nonroot-ok", "{runAsNonRoot: true}", "{runAsUser: 1000}"),
        pod("privileged", "", "{privileged: true}"),
        pod("rofs", "", "{readOnlyRootFilesystem: true}"),
        pod("nnp", "", "{allowPrivilegeEscalation: false}"),
        pod("seccomp", "", "{seccompProfile: {type: RuntimeDefault}}"),
    ]
    .concat();
    up.kubectl_ok(&["apply", "-f", "-"], Some(&manifest));

    // the control: the runtime's default capabilities exactly, nothing else set, everything the others refuse
    // works here
    let plain = logs_of(&up, "plain");
    let default_caps = mask(RUNTIME_DEFAULT_CAPS);
    assert_eq!(caps(&plain, "CapEff"), default_caps, "plain: CapEff {} is the runtime default set", describe(caps(&plain, "CapEff")));
    assert_eq!(caps(&plain, "CapBnd"), default_caps, "plain: CapBnd");
    assert_eq!(plain["id"], "0:0");
    assert_eq!((plain["NoNewPrivs"].as_str(), plain["Seccomp"].as_str()), ("0", "0"), "plain: {plain:?}");
    assert_eq!(attempt(&plain, "chown").0, 0, "plain: chown with CAP_CHOWN: {plain:?}");
    assert_eq!(attempt(&plain, "unshare"), (0, ""), "plain: a user namespace without seccomp");
    assert_eq!(attempt(&plain, "write-root").0, 0, "plain: the root filesystem is writable: {plain:?}");
    assert!(!plain["dev"].split(' ').any(|d| d == "loop-control" || d == "kmsg"), "plain: no host devices: {}", plain["dev"]);
    assert_ne!(attempt(&plain, "open-loop-control").0, 0, "plain: no /dev/loop-control");
    assert!(plain["sys"].split(',').any(|o| o == "ro"), "plain: /sys read-only: {}", plain["sys"]);

    // capabilities: the default set minus drop plus add, and a dropped one is refused
    let c = logs_of(&up, "caps");
    let want = (default_caps & !mask(&["CHOWN", "NET_RAW"])) | mask(&["NET_ADMIN", "SYS_TIME"]);
    assert_eq!(caps(&c, "CapEff"), want, "caps: CapEff {} want {}", describe(caps(&c, "CapEff")), describe(want));
    assert_eq!(caps(&c, "CapBnd"), want, "caps: dropped from the bounding set too");
    assert_eq!(attempt(&c, "chown"), (1, "chown: /tmp/chown-me: Operation not permitted"), "caps: chown without CAP_CHOWN");
    let none = logs_of(&up, "caps-none");
    assert_eq!((caps(&none, "CapEff"), caps(&none, "CapPrm"), caps(&none, "CapBnd")), (0, 0, 0), "drop ALL: {none:?}");
    assert_eq!(attempt(&none, "chown").0, 1, "drop ALL: no chown: {none:?}");

    // runAsUser / runAsGroup / supplementalGroups; a non-root process keeps no effective capabilities
    let ids = logs_of(&up, "ids");
    assert_eq!(ids["id"], "1234:5678");
    assert_eq!(ids["Uid"].split_whitespace().collect::<Vec<_>>(), ["1234"; 4], "real, effective, saved, fs uid");
    assert_eq!(ids["Gid"].split_whitespace().collect::<Vec<_>>(), ["5678"; 4]);
    assert_eq!(ids["Groups"].split_whitespace().collect::<Vec<_>>(), ["4321"], "supplementalGroups");
    assert_eq!(caps(&ids, "CapEff"), 0, "uid 1234: no effective capabilities");
    assert_eq!(attempt(&ids, "write-root").1, "touch: /probe-write: Permission denied", "uid 1234 may not write root's /");

    // runAsNonRoot: a numeric non-root uid runs; a root image or runAsUser 0 is refused with upstream's message
    let ok = logs_of(&up, "nonroot-ok");
    assert_eq!(ok["id"], "1000:0");
    let refused = |pod: &str, message: &str| {
        let uid = up.kubectl(&["get", "pod", pod, "-o", "jsonpath={.metadata.uid}"]);
        let want = message.replace("POD", &format!("\"{pod}_default({uid})\""));
        let got = poll_until(&format!("{pod} refused"), Duration::from_secs(60), || {
            let w = up.kubectl(&["get", "pod", pod, "-o", "jsonpath={.status.containerStatuses[0].state.waiting.reason}|{.status.containerStatuses[0].state.waiting.message}"]);
            w.starts_with("CreateContainerConfigError|").then_some(w)
        });
        assert_eq!(got, format!("CreateContainerConfigError|{want}"), "{pod}");
        let events = up.kubectl(&["get", "events", "--field-selector", &format!("involvedObject.name={pod},reason=Failed"), "-o", "jsonpath={.items[*].message}"]);
        assert!(events.contains(&format!("Error: {want}")), "{pod}: a Failed event with the message: {events}");
        assert_eq!(up.kubectl(&["get", "pod", pod, "-o", "jsonpath={.status.phase}"]), "Pending");
    };
    refused("nonroot-image", "container has runAsNonRoot and image will run as root (pod: POD, container: c)");
    refused("nonroot-uid0", "container's runAsUser breaks non-root policy (pod: POD, container: c)");

    // privileged: every capability the host has, the host's devices, a writable /sys
    let p = logs_of(&up, "privileged");
    assert_eq!(caps(&p, "CapEff"), host_bounding(), "privileged: CapEff {} is the host's bounding set", describe(caps(&p, "CapEff")));
    let devs: Vec<&str> = p["dev"].split(' ').collect();
    for d in ["loop-control", "kmsg", "loop0"] {
        assert!(devs.contains(&d), "privileged: host device /dev/{d} in {devs:?}");
    }
    assert_eq!(attempt(&p, "open-loop-control"), (0, ""), "privileged: the device cgroup lets it open a host device");
    assert!(p["sys"].split(',').any(|o| o == "rw"), "privileged: /sys writable: {}", p["sys"]);

    // readOnlyRootFilesystem: a write to / is EROFS, volumes stay writable
    let ro = logs_of(&up, "rofs");
    assert_eq!(attempt(&ro, "write-root"), (1, "touch: /probe-write: Read-only file system"));
    assert_eq!(attempt(&ro, "write-volume"), (0, ""), "rofs: the emptyDir is writable");

    // allowPrivilegeEscalation: false is no_new_privs
    let nnp = logs_of(&up, "nnp");
    assert_eq!(nnp["NoNewPrivs"], "1");
    assert_eq!(nnp["Seccomp"], "0", "nnp: no seccomp filter on its own");

    // seccomp RuntimeDefault: a filter (mode 2) that refuses unshare with EPERM
    let s = logs_of(&up, "seccomp");
    assert_eq!(s["Seccomp"], "2");
    assert_eq!(attempt(&s, "unshare"), (1, "unshare: unshare(0x10000000): Operation not permitted"));
    assert_eq!(caps(&s, "CapEff"), default_caps, "seccomp: capabilities untouched");

    // kubectl exec lands in the same restrictions as the container's process
    let status_keys = ["Uid", "Gid", "CapEff", "CapBnd", "NoNewPrivs", "Seccomp"];
    for (pod, main) in [("plain", &plain), ("caps", &c), ("ids", &ids), ("privileged", &p), ("nnp", &nnp), ("seccomp", &s)] {
        let (code, out) = exec(&up, pod, &["cat", "/proc/self/status"]);
        assert_eq!(code, 0, "{pod}: exec: {out}");
        let got = parse(&out);
        for k in status_keys {
            assert_eq!(got.get(k), main.get(k), "{pod}: {k} of an exec'd process");
        }
    }
    let (code, out) = exec(&up, "seccomp", &["unshare", "-U", "true"]);
    assert_eq!((code, out.trim()), (1, "unshare: unshare(0x10000000): Operation not permitted"), "seccomp applies to exec");
    let (code, out) = exec(&up, "rofs", &["touch", "/from-exec"]);
    assert_eq!((code, out.trim()), (1, "touch: /from-exec: Read-only file system"), "read-only root for exec");
    let (code, out) = exec(&up, "caps", &["chown", "1:1", "/tmp/chown-me"]);
    assert_eq!((code, out.trim()), (1, "chown: /tmp/chown-me: Operation not permitted"), "dropped CAP_CHOWN for exec");
}
