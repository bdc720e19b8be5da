//! A pod's container as an OCI runtime `config.json`: process (command/args per Kubernetes' rules over the
//! image's entrypoint and cmd, env, cwd, identity, capabilities), rootfs, the standard kernel filesystems,
//! /etc/hosts, /etc/resolv.conf, /etc/hostname and the termination log from the pod directory, volume mounts,
//! the sandbox's namespaces to join, the QoS cgroup and its limits. Pure: takes everything as input.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::{json, Value};

use super::env::{expand, Env};
use super::qos::{cgroup_values, CgroupValues, QosClass};
use super::security::Security;

/// What an image's config says about how to run it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImageConfig {
    /// `Entrypoint`: the argv prefix a container's `command` replaces.
    pub entrypoint: Vec<String>,
    /// `Cmd`: the default arguments, used only when the container sets neither `command` nor `args`.
    pub cmd: Vec<String>,
    /// `Env` as `NAME=value` strings; the container's own env overrides them by name.
    pub env: Vec<String>,
    /// `WorkingDir`, the cwd when the container sets no `workingDir`; `None` when empty (then `/`).
    pub working_dir: Option<String>,
    /// `User` (`uid[:gid]` or names, looked up in the rootfs by [`super::security::image_user_in_rootfs`]);
    /// `None` when empty.
    pub user: Option<String>,
}

impl ImageConfig {
    /// Reads the `config` section of an OCI/Docker image config JSON.
    pub fn from_json(data: &[u8]) -> Self {
        let v: Value = serde_json::from_slice(data).unwrap_or(Value::Null);
        let c = &v["config"];
        let strings = |v: &Value| -> Vec<String> {
            v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default()
        };
        Self {
            entrypoint: strings(&c["Entrypoint"]),
            cmd: strings(&c["Cmd"]),
            env: strings(&c["Env"]),
            working_dir: c["WorkingDir"].as_str().filter(|s| !s.is_empty()).map(str::to_string),
            user: c["User"].as_str().filter(|s| !s.is_empty()).map(str::to_string),
        }
    }
}

/// Namespaces of the pod sandbox that a container joins; `None` means the host's (hostNetwork).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SandboxNamespaces {
    /// The network namespace to join, a path such as `/proc/<sandbox pid>/ns/net`.
    pub net: Option<String>,
    /// The IPC namespace to join (shared SysV IPC and POSIX message queues across the pod).
    pub ipc: Option<String>,
    /// The UTS namespace to join, which holds the pod's hostname.
    pub uts: Option<String>,
}

/// A bind mount into the container.
#[derive(Clone, Debug, PartialEq)]
pub struct BindMount {
    /// Absolute path inside the container.
    pub destination: String,
    /// Host path bound there (a file or a directory, usually under the pod's directory).
    pub source: PathBuf,
    /// Remount read-only (`ro`), from the volume mount's `readOnly`.
    pub readonly: bool,
}

/// Everything [`oci_config`] needs.
pub struct SpecInput<'a> {
    /// The pod: its name is the container's hostname.
    pub pod: &'a Pod,
    /// The container to run: command, args, workingDir, tty and resources are read from it.
    pub container: &'a Container,
    /// The image's defaults for what the container leaves unset.
    pub image: &'a ImageConfig,
    /// The container's resolved environment, also used to expand `$(VAR)` in command and args.
    pub env: &'a Env,
    /// Resolved identity, capabilities, seccomp and read-only rootfs ([`super::security::resolve`]).
    pub security: &'a Security,
    /// The container's root filesystem (the overlay mount point).
    pub rootfs: &'a Path,
    /// The sandbox's namespaces to join; pid and mount are always new.
    pub namespaces: &'a SandboxNamespaces,
    /// /etc/hosts, /etc/resolv.conf, /etc/hostname, termination log and volume mounts.
    pub mounts: Vec<BindMount>,
    /// cgroupsPath, e.g. `/kubepods/besteffort/pod<uid>/<container id>`.
    pub cgroups_path: String,
    /// The pod's QoS class, which sets the oom_score_adj.
    pub qos: QosClass,
    /// Node memory capacity in bytes (for the Burstable oom_score_adj).
    pub node_memory_bytes: i64,
}

/// Kubernetes' rule: `command` replaces the entrypoint (and drops the image cmd), `args` replaces the cmd;
/// `$(VAR)` references are expanded from the container's env.
pub fn process_args(c: &Container, image: &ImageConfig, env: &Env) -> Vec<String> {
    let command = c.command.clone().unwrap_or_default();
    let args = c.args.clone().unwrap_or_default();
    let argv: Vec<String> = match (command.is_empty(), args.is_empty()) {
        (false, _) => command.into_iter().chain(args).collect(),
        (true, false) => image.entrypoint.iter().cloned().chain(args).collect(),
        (true, true) => image.entrypoint.iter().chain(image.cmd.iter()).cloned().collect(),
    };
    argv.iter().map(|a| expand(a, env)).collect()
}

/// Image env, then the container's (the container wins), with a default PATH.
pub fn process_env(image: &ImageConfig, env: &Env, hostname: &str) -> Vec<String> {
    let mut merged = Env::default();
    merged.set("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    for kv in &image.env {
        if let Some((k, v)) = kv.split_once('=') {
            merged.set(k, v.to_string());
        }
    }
    merged.set("HOSTNAME", hostname.to_string());
    for (k, v) in env.vars() {
        merged.set(k, v.clone());
    }
    merged.to_oci()
}

/// The lowest oom_score_adj this kubelet can give a container. Going below one's own value needs
/// CAP_SYS_RESOURCE; without it (some VMs and containers, like rootless upstream kubelets) the runtime's write
/// is refused and the container never starts, so the value is clamped to the kubelet's own instead.
pub fn oom_score_adj_floor() -> i64 {
    static FLOOR: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *FLOOR.get_or_init(|| {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let cap_eff = status.lines().find_map(|l| l.strip_prefix("CapEff:")).and_then(|v| u64::from_str_radix(v.trim(), 16).ok());
        const CAP_SYS_RESOURCE: u32 = 24;
        match cap_eff {
            Some(c) if c & (1 << CAP_SYS_RESOURCE) == 0 => {
                let own = std::fs::read_to_string("/proc/self/oom_score_adj").ok().and_then(|v| v.trim().parse().ok()).unwrap_or(0);
                tracing::warn!(floor = own, "no CAP_SYS_RESOURCE: container oom_score_adj is not set below the kubelet's own");
                own
            }
            _ => -1000,
        }
    })
}

/// oom_score_adj by QoS, as upstream: Guaranteed -997, BestEffort 1000, Burstable by memory request share.
pub fn oom_score_adj(qos: QosClass, memory_request: Option<i64>, node_memory: i64) -> i64 {
    match qos {
        QosClass::Guaranteed => -997,
        QosClass::BestEffort => 1000,
        QosClass::Burstable => {
            let req = memory_request.unwrap_or(0);
            let adj = if node_memory > 0 { 1000 - (1000 * req) / node_memory } else { 999 };
            adj.clamp(2, 999)
        }
    }
}

/// Syscalls the RuntimeDefault profile refuses with EPERM (everything else is allowed).
pub const SECCOMP_DENY: &[&str] = &[
    "acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "delete_module", "finit_module", "init_module",
    "kexec_file_load", "kexec_load", "keyctl", "lookup_dcookie", "mount", "move_mount", "open_by_handle_at",
    "perf_event_open", "pivot_root", "quotactl", "reboot", "request_key", "setns", "settimeofday", "swapoff",
    "swapon", "umount2", "unshare", "userfaultfd",
];

const MASKED: &[&str] = &[
    "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
    "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
];
const READONLY: &[&str] = &["/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Value {
    json!({"destination": dest, "type": typ, "source": source, "options": options})
}

/// The OCI runtime config for one container.
pub fn oci_config(input: &SpecInput) -> Result<Value, rkube_apimachinery::quantity::QuantityError> {
    let c = input.container;
    let sec = input.security;
    let hostname = input.pod.metadata.name.clone().unwrap_or_default();
    let args = process_args(c, input.image, input.env);
    let cwd = c
        .working_dir
        .clone()
        .filter(|s| !s.is_empty())
        .or_else(|| input.image.working_dir.clone())
        .unwrap_or_else(|| "/".into());
    let cg: CgroupValues = cgroup_values(c.resources.as_ref())?;
    let mem_req = match c.resources.as_ref().and_then(|r| r.requests.as_ref()).and_then(|m| m.get("memory")) {
        Some(q) => Some(rkube_apimachinery::quantity::value(q)?),
        None => None,
    };
    let caps = &sec.capabilities;
    let mut mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount("/dev", "tmpfs", "tmpfs", &["nosuid", "strictatime", "mode=755", "size=65536k"]),
        mount("/dev/pts", "devpts", "devpts", &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]),
        mount("/dev/shm", "tmpfs", "shm", &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
        mount("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"]),
        mount("/sys", "sysfs", "sysfs", if sec.privileged { &["nosuid", "noexec", "nodev"] } else { &["nosuid", "noexec", "nodev", "ro"] }),
    ];
    for m in &input.mounts {
        let mut opts = vec!["rbind", "rprivate"];
        if m.readonly {
            opts.push("ro");
        }
        mounts.push(json!({
            "destination": m.destination,
            "type": "bind",
            "source": m.source.to_string_lossy(),
            "options": opts,
        }));
    }
    let mut namespaces = vec![json!({"type": "pid"}), json!({"type": "mount"})];
    for (typ, path) in [("network", &input.namespaces.net), ("ipc", &input.namespaces.ipc), ("uts", &input.namespaces.uts)] {
        if let Some(p) = path {
            namespaces.push(json!({"type": typ, "path": p}));
        }
    }
    let mut resources = json!({"cpu": {"shares": cg.cpu_shares}});
    if let Some(q) = cg.cpu_quota_us {
        resources["cpu"]["quota"] = json!(q);
        resources["cpu"]["period"] = json!(super::qos::CFS_PERIOD_US);
    }
    if let Some(m) = cg.memory_limit {
        resources["memory"] = json!({"limit": m});
    }
    let mut linux = json!({
        "namespaces": namespaces,
        "cgroupsPath": input.cgroups_path,
        "resources": resources,
    });
    if !sec.privileged {
        linux["maskedPaths"] = json!(MASKED);
        linux["readonlyPaths"] = json!(READONLY);
    }
    if sec.seccomp_default {
        linux["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": SECCOMP_DENY, "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
        });
    }
    let tty = input.container.tty.unwrap_or(false);
    let mut env = process_env(input.image, input.env, &hostname);
    if tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into()); // as containerd's CRI does for a tty
    }
    Ok(json!({
        "ociVersion": "1.0.2",
        "process": {
            // tty: true: the monitor gets the pty master over --console-socket (see rkube_monitor::attach)
            "terminal": tty,
            "user": {"uid": sec.uid, "gid": sec.gid, "additionalGids": sec.additional_gids},
            "args": args,
            "env": env,
            "cwd": cwd,
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps, "inheritable": [], "ambient": []
            },
            "noNewPrivileges": sec.no_new_privileges,
            "oomScoreAdj": oom_score_adj(input.qos, mem_req, input.node_memory_bytes).max(oom_score_adj_floor()),
        },
        "root": {"path": input.rootfs.to_string_lossy(), "readonly": sec.readonly_rootfs},
        "mounts": mounts,
        "linux": linux,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::security;

    fn image() -> ImageConfig {
        ImageConfig {
            entrypoint: vec!["/entry".into()],
            cmd: vec!["serve".into(), "--port=80".into()],
            env: vec!["PATH=/img/bin".into(), "IMG=1".into()],
            working_dir: Some("/app".into()),
            user: None,
        }
    }

    #[test]
    fn command_and_args_rules() {
        let mut env = Env::default();
        env.set("PORT", "8080".into());
        let c = |cmd: Option<Vec<&str>>, args: Option<Vec<&str>>| Container {
            name: "c".into(),
            command: cmd.map(|v| v.into_iter().map(String::from).collect()),
            args: args.map(|v| v.into_iter().map(String::from).collect()),
            ..Default::default()
        };
        assert_eq!(process_args(&c(None, None), &image(), &env), ["/entry", "serve", "--port=80"]);
        assert_eq!(process_args(&c(None, Some(vec!["x"])), &image(), &env), ["/entry", "x"]);
        assert_eq!(process_args(&c(Some(vec!["sh"]), None), &image(), &env), ["sh"]);
        assert_eq!(process_args(&c(Some(vec!["sh", "-c"]), Some(vec!["echo $(PORT) $$(PORT)"])), &image(), &env), ["sh", "-c", "echo 8080 $(PORT)"]);
    }

    #[test]
    fn env_merge_and_config_json() {
        let p = crate::pod::lifecycle::tests::pod("Always", &[], &["c"]);
        let c = Container { name: "c".into(), ..Default::default() };
        let mut env = Env::default();
        env.set("IMG", "overridden".into());
        let sec = security::resolve(&p, &c, None).expect("security");
        let ns = SandboxNamespaces { net: Some("/proc/42/ns/net".into()), ipc: Some("/proc/42/ns/ipc".into()), uts: Some("/proc/42/ns/uts".into()) };
        let input = SpecInput {
            pod: &p,
            container: &c,
            image: &image(),
            env: &env,
            security: &sec,
            rootfs: Path::new("/r"),
            namespaces: &ns,
            mounts: vec![BindMount { destination: "/data".into(), source: "/host/data".into(), readonly: true }],
            cgroups_path: "/kubepods/besteffort/podu/c".into(),
            qos: QosClass::BestEffort,
            node_memory_bytes: 1 << 30,
        };
        let v = oci_config(&input).expect("config");
        let envs: Vec<&str> = v["process"]["env"].as_array().expect("env").iter().filter_map(|s| s.as_str()).collect();
        assert!(envs.contains(&"PATH=/img/bin") && envs.contains(&"IMG=overridden") && envs.contains(&"HOSTNAME=p"), "{envs:?}");
        assert_eq!(v["process"]["cwd"], "/app");
        assert_eq!(v["process"]["oomScoreAdj"], 1000);
        assert_eq!(v["linux"]["cgroupsPath"], "/kubepods/besteffort/podu/c");
        let nss = v["linux"]["namespaces"].as_array().expect("ns");
        assert!(nss.iter().any(|n| n["type"] == "network" && n["path"] == "/proc/42/ns/net"));
        assert!(nss.iter().any(|n| n["type"] == "pid" && n.get("path").is_none()));
        let data = v["mounts"].as_array().expect("mounts").iter().find(|m| m["destination"] == "/data").expect("volume mount");
        assert_eq!(data["options"], json!(["rbind", "rprivate", "ro"]));
        assert!(v["linux"].get("seccomp").is_none());
        assert!(v["linux"]["maskedPaths"].as_array().is_some());
    }

    #[test]
    fn image_config_parsing() {
        let cfg = br#"{"config":{"Entrypoint":null,"Cmd":["sh"],"Env":["PATH=/bin"],"WorkingDir":"","User":"1000"}}"#;
        let ic = ImageConfig::from_json(cfg);
        assert_eq!(ic, ImageConfig { entrypoint: vec![], cmd: vec!["sh".into()], env: vec!["PATH=/bin".into()], working_dir: None, user: Some("1000".into()) });
    }

    #[test]
    fn oom_scores() {
        assert_eq!(oom_score_adj(QosClass::Guaranteed, None, 100), -997);
        assert_eq!(oom_score_adj(QosClass::Burstable, Some(50), 100), 500);
        assert_eq!(oom_score_adj(QosClass::Burstable, Some(100), 100), 2);
        assert_eq!(oom_score_adj(QosClass::Burstable, None, 100), 999);
    }
}
