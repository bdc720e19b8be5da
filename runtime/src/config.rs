//! Loading and validating a bundle's `config.json` (OCI runtime-spec, via the oci-spec crate).
//!
//! Owns turning bad input into one-line errors that name the field (`process.capabilities.bounding[2]: ...`),
//! before anything is made on the host. It does not apply anything.

use std::collections::HashSet;
use std::fs;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

/// Errors in a bundle's configuration, each naming the field at fault.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// `config.json` could not be read.
    #[error("read {path}: {source} (is --bundle the directory holding config.json?)")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `config.json` is not a valid runtime spec.
    #[error("{path}: {field}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The JSON path of the bad field.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The spec parses but asks for something this runtime refuses.
    #[error("config.json: {field}: {reason}")]
    Invalid {
        /// The spec field (`process.args`, `linux.namespaces`...).
        field: String,
        /// Why it is refused.
        reason: String,
    },
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> SpecError {
    SpecError::Invalid { field: field.into(), reason: reason.into() }
}

/// Parses `<bundle>/config.json`, reporting the JSON path of the first field that does not fit the spec.
pub fn load(bundle: &Path) -> Result<Spec, SpecError> {
    let path = bundle.join("config.json");
    let data = fs::read(&path).map_err(|source| SpecError::Read { path: path.clone(), source })?;
    parse(&data, &path)
}

/// Parses config.json bytes (see [`load`]).
pub fn parse(data: &[u8], path: &Path) -> Result<Spec, SpecError> {
    let de = &mut serde_json::Deserializer::from_slice(data);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let field = if field == "." { "(document)".to_string() } else { field };
        SpecError::Parse { path: path.to_path_buf(), field, message: e.into_inner().to_string() }
    })
}

/// The rootfs directory of a bundle (root.path, relative to the bundle unless absolute).
pub fn rootfs_of(spec: &Spec, bundle: &Path) -> PathBuf {
    let p = spec.root().as_ref().map(|r| r.path().clone()).unwrap_or_else(|| PathBuf::from("rootfs"));
    if p.is_absolute() {
        p
    } else {
        bundle.join(p)
    }
}

/// Checks what the spec requires beyond its JSON shape: a rootfs that exists, a process to run, absolute paths,
/// namespaces listed once and joined by a path of the right type.
pub fn validate(spec: &Spec, bundle: &Path, need_process: bool) -> Result<(), SpecError> {
    check_oci_version(spec.version())?;
    let root = spec.root().as_ref().ok_or_else(|| invalid("root", "missing: name the rootfs directory in root.path"))?;
    let rootfs = rootfs_of(spec, bundle);
    if !rootfs.is_dir() {
        return Err(invalid("root.path", format!("rootfs {} does not exist or is not a directory", rootfs.display())));
    }
    let _ = root;
    if need_process {
        let p = spec.process().as_ref().ok_or_else(|| invalid("process", "missing: say what to run in process.args"))?;
        validate_process(p, "process")?;
    }
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if !m.destination().is_absolute() {
            return Err(invalid(format!("mounts[{i}].destination"), format!("{:?} must be an absolute path", m.destination())));
        }
    }
    if let Some(linux) = spec.linux() {
        let mut seen = HashSet::new();
        for (i, ns) in linux.namespaces().iter().flatten().enumerate() {
            let name = ns_name(ns.typ());
            if !seen.insert(name) {
                return Err(invalid(format!("linux.namespaces[{i}]"), format!("namespace type {name:?} appears more than once")));
            }
            if let Some(path) = ns.path() {
                check_ns_path(path, ns.typ()).map_err(|r| invalid(format!("linux.namespaces[{i}].path"), r))?;
            }
        }
        let has_new_user = linux
            .namespaces()
            .iter()
            .flatten()
            .any(|n| n.typ() == LinuxNamespaceType::User && n.path().is_none());
        if has_new_user && linux.uid_mappings().as_ref().is_none_or(|m| m.is_empty()) {
            return Err(invalid("linux.uidMappings", "a new user namespace needs uidMappings and gidMappings"));
        }
        if let Some(p) = linux.rootfs_propagation().as_deref().filter(|p| !p.is_empty()) {
            if crate::rootfs::mounts::propagation_flag(p).is_none() {
                return Err(invalid(
                    "linux.rootfsPropagation",
                    format!("{p:?} is not one of private, rprivate, shared, rshared, slave, rslave, unbindable, runbindable"),
                ));
            }
        }
        if let Some(sc) = linux.seccomp() {
            crate::seccomp::check(sc).map_err(|e| match e {
                crate::seccomp::SeccompError::Invalid { field, reason } => invalid(format!("linux.seccomp.{field}"), reason),
                other => invalid("linux.seccomp", other.to_string()),
            })?;
        }
        if let Some(tp) = linux.time_offsets().as_ref().filter(|t| !t.is_empty()) {
            let new_time = linux.namespaces().iter().flatten().any(|n| n.typ() == LinuxNamespaceType::Time && n.path().is_none());
            if !new_time {
                return Err(invalid(
                    "linux.timeOffsets",
                    "offsets need a new time namespace: add {\"type\": \"time\"} (without a path) to linux.namespaces",
                ));
            }
            for (clock, off) in tp {
                if clock != "monotonic" && clock != "boottime" {
                    return Err(invalid(format!("linux.timeOffsets.{clock}"), "only the monotonic and boottime clocks have time namespace offsets"));
                }
                if off.nanosecs().unwrap_or(0) >= 1_000_000_000 {
                    return Err(invalid(format!("linux.timeOffsets.{clock}.nanosecs"), "must be below 1000000000"));
                }
            }
        }
    }
    check_without_mount_ns(spec)?;
    Ok(())
}

/// True when the config gives the container a mount namespace, new or joined by path.
pub fn has_mount_ns(spec: &Spec) -> bool {
    spec.linux().as_ref().and_then(|l| l.namespaces().as_ref()).into_iter().flatten().any(|n| n.typ() == LinuxNamespaceType::Mount)
}

/// Without a mount namespace the container runs in the caller's mount namespace, chrooted into its rootfs (runc's
/// chroot path). Whatever would have to be mounted is refused here, before anything is made: mounting it would
/// change the caller's mount table and outlive the container.
fn check_without_mount_ns(spec: &Spec) -> Result<(), SpecError> {
    if has_mount_ns(spec) {
        return Ok(());
    }
    const WHY: &str = "needs a private mount namespace: add {\"type\": \"mount\"} to linux.namespaces (without one the container runs in the caller's mount namespace, chrooted into its rootfs, and nothing is mounted)";
    if spec.mounts().as_ref().is_some_and(|m| !m.is_empty()) {
        return Err(invalid("mounts", WHY));
    }
    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        return Err(invalid("root.readonly", WHY));
    }
    if let Some(l) = spec.linux() {
        if l.masked_paths().as_ref().is_some_and(|v| !v.is_empty()) || l.readonly_paths().as_ref().is_some_and(|v| !v.is_empty()) {
            // runc's wording
            let field = if l.masked_paths().as_ref().is_some_and(|v| !v.is_empty()) { "linux.maskedPaths" } else { "linux.readonlyPaths" };
            return Err(invalid(field, "unable to restrict sys entries without a private MNT namespace"));
        }
        for (field, set) in [
            ("linux.devices", l.devices().as_ref().is_some_and(|v| !v.is_empty())),
            ("linux.sysctl", l.sysctl().as_ref().is_some_and(|v| !v.is_empty())),
            ("linux.rootfsPropagation", l.rootfs_propagation().as_ref().is_some_and(|v| !v.is_empty())),
        ] {
            if set {
                return Err(invalid(field, WHY));
            }
        }
    }
    Ok(())
}

/// The runtime-spec versions this runtime implements: 1.0.0 up to the 1.2 series (features.json says the same).
pub const OCI_VERSION_MIN: (u64, u64) = (1, 0);
/// The newest runtime-spec version (major, minor) accepted.
pub const OCI_VERSION_MAX: (u64, u64) = (1, 2);

/// Refuses an `ociVersion` outside 1.0.0-1.2.x: a later minor may carry fields this runtime would silently drop,
/// another major may mean anything.
pub fn check_oci_version(v: &str) -> Result<(), SpecError> {
    if v.is_empty() {
        return Err(invalid("ociVersion", "missing: give the runtime-spec version the bundle follows, e.g. \"1.2.0\""));
    }
    let core = v.split(['-', '+']).next().unwrap_or("");
    let nums: Vec<Option<u64>> = core.split('.').map(|n| n.parse().ok()).collect();
    let ok = match nums.as_slice() {
        [Some(major), Some(minor), Some(_)] => (OCI_VERSION_MIN..=OCI_VERSION_MAX).contains(&(*major, *minor)),
        _ => false,
    };
    if !ok {
        return Err(invalid(
            "ociVersion",
            format!("{v:?} is not supported: rkube-runtime implements runtime-spec 1.0.0 to 1.2.x"),
        ));
    }
    Ok(())
}

/// Checks a process object (used for config.json's process and for `exec --process`).
pub fn validate_process(p: &oci_spec::runtime::Process, field: &str) -> Result<(), SpecError> {
    if p.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(invalid(format!("{field}.args"), "must name the program to run"));
    }
    if !p.cwd().is_absolute() {
        return Err(invalid(format!("{field}.cwd"), format!("{:?} must be an absolute path", p.cwd())));
    }
    for (i, e) in p.env().iter().flatten().enumerate() {
        if e.split_once('=').is_none_or(|(name, _)| name.is_empty()) {
            return Err(invalid(format!("{field}.env[{i}]"), format!("{e:?} is not NAME=value")));
        }
    }
    if let Some(caps) = p.capabilities() {
        for (set, v) in [
            ("bounding", caps.bounding()),
            ("effective", caps.effective()),
            ("inheritable", caps.inheritable()),
            ("permitted", caps.permitted()),
            ("ambient", caps.ambient()),
        ] {
            for c in v.iter().flatten() {
                crate::capabilities::to_caps(*c)
                    .map_err(|e| invalid(format!("{field}.capabilities.{set}"), e.to_string()))?;
            }
        }
    }
    Ok(())
}

/// The spec's name for a namespace type ("net", "mount", ...).
pub fn ns_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mount",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "network",
        LinuxNamespaceType::Time => "time",
    }
}

/// CLONE_NEW* flag of a namespace type.
pub fn ns_flag(t: LinuxNamespaceType) -> i32 {
    match t {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => 0x80,
    }
}

fn flag_name(flag: i32) -> &'static str {
    [
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Cgroup,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::User,
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Time,
    ]
    .into_iter()
    .find(|t| ns_flag(*t) == flag)
    .map(ns_name)
    .unwrap_or("unknown")
}

fn check_ns_path(path: &Path, want: LinuxNamespaceType) -> Result<(), String> {
    let f = fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let got = crate::sys::ns_type(f.as_raw_fd())
        .map_err(|e| format!("{} is not a namespace file ({e})", path.display()))?;
    if got != ns_flag(want) {
        return Err(format!(
            "{} is a {} namespace, not a {} namespace",
            path.display(),
            flag_name(got),
            ns_name(want)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_name_the_field() {
        let bad = br#"{"ociVersion":"1.0.2","process":{"cwd":"/","user":{"uid":0,"gid":0},"args":["sh"],
            "capabilities":{"bounding":["CAP_CHOWN","CAP_NOT_A_THING"]}},"root":{"path":"rootfs"}}"#;
        let e = parse(bad, Path::new("config.json")).unwrap_err().to_string();
        assert!(e.contains("process.capabilities.bounding"), "{e}");
        let e = parse(b"{not json", Path::new("config.json")).unwrap_err().to_string();
        assert!(e.starts_with("config.json: "), "{e}");
        let e = parse(br#"{"process":{"args":"sh"}}"#, Path::new("config.json")).unwrap_err().to_string();
        assert!(e.contains("process.args"), "{e}");
    }

    #[test]
    fn oci_versions() {
        for ok in ["1.0.0", "1.0.2-dev", "1.1.0", "1.2.0", "1.2.1+build"] {
            check_oci_version(ok).unwrap();
        }
        for bad in ["", "2.0.0", "0.9.0", "1.3.0", "1.0", "one", "1.x.0"] {
            let e = check_oci_version(bad).unwrap_err().to_string();
            assert!(e.contains("ociVersion"), "{e}");
        }
    }

    #[test]
    fn validate_rejects_duplicates_and_missing_rootfs() {
        let t = tempfile::tempdir().unwrap();
        let spec = parse(br#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},"process":{"cwd":"/","args":["sh"],"user":{"uid":0,"gid":0}}}"#, Path::new("c")).unwrap();
        let e = validate(&spec, t.path(), true).unwrap_err().to_string();
        assert!(e.contains("root.path") && e.contains("does not exist"), "{e}");
        fs::create_dir(t.path().join("rootfs")).unwrap();
        validate(&spec, t.path(), true).unwrap();
        let spec = parse(
            br#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},"process":{"cwd":"/","args":["sh"],"user":{"uid":0,"gid":0}},
               "linux":{"namespaces":[{"type":"pid"},{"type":"network"},{"type":"pid"}]}}"#,
            Path::new("c"),
        )
        .unwrap();
        let e = validate(&spec, t.path(), true).unwrap_err().to_string();
        assert!(e.contains("linux.namespaces[2]") && e.contains("\"pid\""), "{e}");
        let spec = parse(
            br#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},"process":{"cwd":"/","args":["sh"],"user":{"uid":0,"gid":0}},
               "linux":{"namespaces":[{"type":"network","path":"/proc/self/ns/uts"}]}}"#,
            Path::new("c"),
        )
        .unwrap();
        let e = validate(&spec, t.path(), true).unwrap_err().to_string();
        assert!(e.contains("linux.namespaces[0].path") && e.contains("uts namespace, not a network"), "{e}");
    }
}
