//! securityContext → process identity and privileges: user/group (pod defaults, container overrides),
//! runAsNonRoot, capabilities (runtime defaults, add/drop, privileged = all), allowPrivilegeEscalation →
//! no_new_privileges, readOnlyRootFilesystem, seccomp RuntimeDefault. Pure.

use std::path::Path;

use k8s_openapi::api::core::v1::{Container, Pod};

/// Capabilities a container gets unless it drops them (the common runtime default set).
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability this kernel generation knows, in number order (index n is capability n). Privileged
/// containers get those of them the kubelet itself holds: see [`resolve_within`].
pub const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN",
    "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
];

/// A securityContext the kubelet refuses (CreateContainerConfigError). The runAsNonRoot refusals are upstream's
/// messages word for word (kubelet `verifyRunAsNonRoot`); `pod` is upstream's `name_namespace(uid)`.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SecurityError {
    /// runAsNonRoot is set, no runAsUser, and the image's user is root (uid 0, or no user at all).
    #[error("container has runAsNonRoot and image will run as root (pod: {pod:?}, container: {container})")]
    RunAsRoot {
        /// The pod as upstream names it in these messages: `name_namespace(uid)`.
        pod: String,
        /// The container's name.
        container: String,
    },
    /// runAsNonRoot is set and runAsUser is 0.
    #[error("container's runAsUser breaks non-root policy (pod: {pod:?}, container: {container})")]
    RunAsUserRoot {
        /// The pod as upstream names it in these messages: `name_namespace(uid)`.
        pod: String,
        /// The container's name.
        container: String,
    },
    /// runAsNonRoot is set, no runAsUser, and the image's user is a name, which cannot be checked to be non-root.
    #[error("container has runAsNonRoot and image has non-numeric user ({user}), cannot verify user is non-root (pod: {pod:?}, container: {container})")]
    NonNumericUser {
        /// The pod as upstream names it in these messages: `name_namespace(uid)`.
        pod: String,
        /// The container's name.
        container: String,
        /// The image's `User`, as written.
        user: String,
    },
    /// A user or group name of the image's `User` has no entry in the image's /etc/passwd or /etc/group.
    #[error("unable to find {what} {name}: no matching entries in {file} file of the image (container {container:?})")]
    UnknownName {
        /// The container's name.
        container: String,
        /// `user` or `group`.
        what: &'static str,
        /// The name that was looked up.
        name: String,
        /// `passwd` or `group` (under the image's /etc).
        file: &'static str,
    },
    /// The image's /etc/passwd or /etc/group could not be read safely (not a regular file, too large, I/O error).
    #[error("cannot look up the image's user in /etc/{file} (container {container:?}): {detail}; it must be a regular file of at most {max} bytes")]
    AccountFile {
        /// The container's name.
        container: String,
        /// `passwd` or `group` (under the image's /etc).
        file: &'static str,
        /// Why the file could not be read.
        detail: String,
        /// [`MAX_ACCOUNT_FILE_BYTES`].
        max: u64,
    },
}

/// The largest /etc/passwd or /etc/group read from an image (real ones are a few KB).
pub const MAX_ACCOUNT_FILE_BYTES: u64 = 4 << 20;

/// What the OCI process and root get from the security context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Security {
    /// Process uid: runAsUser (container over pod), else the image's user, else 0.
    pub uid: u32,
    /// Process gid: runAsGroup, else the group of the image's `User`, else 0.
    pub gid: u32,
    /// Supplementary groups: the pod's fsGroup and supplementalGroups, sorted and deduplicated.
    pub additional_gids: Vec<u32>,
    /// `CAP_*` names for the bounding, effective and permitted sets: [`DEFAULT_CAPS`] with drop/add applied, or all
    /// this process holds when privileged.
    pub capabilities: Vec<String>,
    /// Set `no_new_privs` (allowPrivilegeEscalation: false, and not privileged).
    pub no_new_privileges: bool,
    /// Mount the rootfs read-only (readOnlyRootFilesystem).
    pub readonly_rootfs: bool,
    /// Privileged: all capabilities, host devices, /sys writable, no masked paths or seccomp.
    pub privileged: bool,
    /// seccomp RuntimeDefault (or Localhost, treated the same): apply the runtime's default profile.
    pub seccomp_default: bool,
}

fn normalize_cap(c: &str) -> String {
    let up = c.to_uppercase();
    if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    }
}

/// The image's `User` with names looked up in the container's own /etc/passwd and /etc/group, as `uid:gid`, or
/// None when there is nothing to look up (no user, all numeric, or runAsUser overrides it). As runc does, a user
/// without a group takes the primary group of its passwd entry, else 0. The image wrote these files: symlinks
/// resolve inside `rootfs` (never to the host's files), and a FIFO, device or file over
/// [`MAX_ACCOUNT_FILE_BYTES`] is an error, found without opening or reading it.
pub fn image_user_in_rootfs(pod: &Pod, c: &Container, image_user: Option<&str>, rootfs: &Path) -> Result<Option<String>, SecurityError> {
    let Some(spec) = image_user.filter(|u| !u.is_empty()) else { return Ok(None) };
    let psc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let run_as_user = c.security_context.as_ref().and_then(|s| s.run_as_user).or_else(|| psc.and_then(|s| s.run_as_user));
    let (user, group) = spec.split_once(':').map(|(a, b)| (a, Some(b))).unwrap_or((spec, None));
    let named = user.parse::<u32>().is_err() || group.is_some_and(|g| g.parse::<u32>().is_err());
    if !named || run_as_user.is_some() {
        return Ok(None);
    }
    let unknown = |what, name: &str, file| SecurityError::UnknownName { container: c.name.clone(), what, name: name.to_string(), file };
    // name:x:uid:gid:... and name:x:gid:members
    let passwd = read_account_file(rootfs, "passwd", &c.name)?;
    let entry = passwd.iter().find(|f| f[0] == user || (f[2] == user && user.parse::<u32>().is_ok()));
    let uid = match user.parse::<u32>() {
        Ok(n) => n,
        Err(_) => entry.and_then(|f| f[2].parse().ok()).ok_or_else(|| unknown("user", user, "passwd"))?,
    };
    let gid = match group {
        None => entry.and_then(|f| f[3].parse().ok()).unwrap_or(0),
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => read_account_file(rootfs, "group", &c.name)?
                .iter()
                .find(|f| f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| unknown("group", g, "group"))?,
        },
    };
    Ok(Some(format!("{uid}:{gid}")))
}

/// The colon-separated lines (at least four fields) of rootfs/etc/<name>, read with symlinks resolved inside
/// `rootfs`; empty if the file is missing.
fn read_account_file(rootfs: &Path, name: &'static str, container: &str) -> Result<Vec<Vec<String>>, SecurityError> {
    let rel = Path::new("etc").join(name);
    let bytes = match crate::image::secure_fs::read_regular_in(rootfs, &rel, MAX_ACCOUNT_FILE_BYTES) {
        Ok(b) => b,
        Err(e) if e.is_not_found() => return Ok(Vec::new()),
        Err(e) => {
            return Err(SecurityError::AccountFile {
                container: container.to_string(),
                file: name,
                detail: e.to_string(),
                max: MAX_ACCOUNT_FILE_BYTES,
            })
        }
    };
    Ok(String::from_utf8_lossy(&bytes)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(':').map(str::to_string).collect::<Vec<_>>())
        .filter(|f| f.len() >= 4)
        .collect())
}

/// This process's capability bounding set (`CapBnd` of /proc/self/status; bit n is capability n), read once;
/// every bit set if it cannot be read.
pub fn current_bounding() -> u64 {
    static BOUNDING: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *BOUNDING.get_or_init(|| {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status.lines().find_map(|l| l.strip_prefix("CapBnd:")).and_then(|v| u64::from_str_radix(v.trim(), 16).ok()).unwrap_or(u64::MAX)
    })
}

/// The capabilities of [`ALL_CAPS`] that are in `bounding`.
fn all_within(bounding: u64) -> Vec<String> {
    ALL_CAPS.iter().enumerate().filter(|(n, _)| bounding >> n & 1 == 1).map(|(_, c)| c.to_string()).collect()
}

/// Resolves the effective security settings. `image_user` is the image config's `User` (`uid[:gid]` or a
/// name; names are only accepted when runAsUser is set or runAsNonRoot is not). "All capabilities" (privileged,
/// `add: [ALL]`) means all that this process holds ([`current_bounding`]).
pub fn resolve(pod: &Pod, c: &Container, image_user: Option<&str>) -> Result<Security, SecurityError> {
    resolve_within(pod, c, image_user, current_bounding())
}

/// [`resolve`] with "all capabilities" limited to `bounding` (bit n is capability n), as containerd gives a
/// privileged container all the capabilities it holds itself: one it does not hold cannot be raised (the
/// runtime's capset fails with EPERM), e.g. CAP_SYS_RESOURCE on a node that runs without it.
pub fn resolve_within(pod: &Pod, c: &Container, image_user: Option<&str>, bounding: u64) -> Result<Security, SecurityError> {
    let psc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let sc = c.security_context.as_ref();
    // upstream's format.Pod: name_namespace(uid)
    let pod_name = format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.uid.as_deref().unwrap_or_default()
    );
    let privileged = sc.and_then(|s| s.privileged).unwrap_or(false);
    let run_as_user = sc.and_then(|s| s.run_as_user).or_else(|| psc.and_then(|s| s.run_as_user));
    let run_as_group = sc.and_then(|s| s.run_as_group).or_else(|| psc.and_then(|s| s.run_as_group));
    let non_root = sc.and_then(|s| s.run_as_non_root).or_else(|| psc.and_then(|s| s.run_as_non_root)).unwrap_or(false);
    let (img_uid, img_gid, img_named) = match image_user.filter(|u| !u.is_empty()) {
        None => (Some(0u32), None, None),
        Some(u) => {
            let (user, group) = u.split_once(':').map(|(a, b)| (a, Some(b))).unwrap_or((u, None));
            match user.parse::<u32>() {
                Ok(uid) => (Some(uid), group.and_then(|g| g.parse::<u32>().ok()), None),
                Err(_) => (None, None, Some(u.to_string())),
            }
        }
    };
    let uid = match run_as_user {
        Some(u) => u as u32,
        None => match (img_uid, &img_named) {
            (Some(u), _) => u,
            (None, Some(name)) => {
                if non_root {
                    return Err(SecurityError::NonNumericUser { pod: pod_name, container: c.name.clone(), user: name.clone() });
                }
                // the caller looks names up in the rootfs first (image_user_in_rootfs); one left here is root
                0
            }
            (None, None) => 0,
        },
    };
    if non_root && uid == 0 {
        let container = c.name.clone();
        return Err(match run_as_user {
            Some(_) => SecurityError::RunAsUserRoot { pod: pod_name, container },
            None => SecurityError::RunAsRoot { pod: pod_name, container },
        });
    }
    let gid = run_as_group.map(|g| g as u32).or(img_gid).unwrap_or(0);
    let mut additional_gids: Vec<u32> = Vec::new();
    if let Some(p) = psc {
        if let Some(fs) = p.fs_group {
            additional_gids.push(fs as u32);
        }
        for g in p.supplemental_groups.as_deref().unwrap_or(&[]) {
            additional_gids.push(*g as u32);
        }
    }
    additional_gids.sort_unstable();
    additional_gids.dedup();
    let capabilities = if privileged {
        all_within(bounding)
    } else {
        let caps = sc.and_then(|s| s.capabilities.as_ref());
        let drop: Vec<String> = caps.and_then(|c| c.drop.clone()).unwrap_or_default().iter().map(|c| normalize_cap(c)).collect();
        let add: Vec<String> = caps.and_then(|c| c.add.clone()).unwrap_or_default().iter().map(|c| normalize_cap(c)).collect();
        let mut set: Vec<String> = if drop.iter().any(|d| d == "CAP_ALL") {
            Vec::new()
        } else {
            DEFAULT_CAPS.iter().map(|s| s.to_string()).filter(|c| !drop.contains(c)).collect()
        };
        if add.iter().any(|a| a == "CAP_ALL") {
            set = all_within(bounding);
        } else {
            for a in add {
                if !set.contains(&a) {
                    set.push(a);
                }
            }
        }
        set
    };
    let allow_escalation = sc.and_then(|s| s.allow_privilege_escalation).unwrap_or(true);
    let seccomp = sc
        .and_then(|s| s.seccomp_profile.as_ref())
        .or_else(|| psc.and_then(|s| s.seccomp_profile.as_ref()))
        .map(|p| p.type_.as_str());
    Ok(Security {
        uid,
        gid,
        additional_gids,
        capabilities,
        no_new_privileges: !allow_escalation && !privileged,
        readonly_rootfs: sc.and_then(|s| s.read_only_root_filesystem).unwrap_or(false),
        privileged,
        seccomp_default: !privileged && matches!(seccomp, Some("RuntimeDefault") | Some("Localhost")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Capabilities, PodSecurityContext, SeccompProfile, SecurityContext};

    fn with(psc: Option<PodSecurityContext>, sc: Option<SecurityContext>) -> (Pod, Container) {
        let mut p = crate::pod::lifecycle::tests::pod("Always", &[], &["c"]);
        p.spec.as_mut().expect("spec").security_context = psc;
        let c = Container { name: "c".into(), security_context: sc, ..Default::default() };
        (p, c)
    }

    #[test]
    fn defaults() {
        let (p, c) = with(None, None);
        let s = resolve(&p, &c, None).expect("ok");
        assert_eq!((s.uid, s.gid), (0, 0));
        assert_eq!(s.capabilities.len(), DEFAULT_CAPS.len());
        assert!(!s.no_new_privileges && !s.readonly_rootfs && !s.privileged && !s.seccomp_default);
        let s = resolve(&p, &c, Some("1000:2000")).expect("image user");
        assert_eq!((s.uid, s.gid), (1000, 2000));
    }

    #[test]
    fn users_groups_and_non_root() {
        let (p, c) = with(
            Some(PodSecurityContext { run_as_user: Some(1000), run_as_group: Some(3000), fs_group: Some(2000), supplemental_groups: Some(vec![5, 2000]), ..Default::default() }),
            Some(SecurityContext { run_as_user: Some(1001), ..Default::default() }),
        );
        let s = resolve(&p, &c, None).expect("ok");
        assert_eq!((s.uid, s.gid, s.additional_gids.clone()), (1001, 3000, vec![5, 2000]));

        let (p, c) = with(Some(PodSecurityContext { run_as_non_root: Some(true), ..Default::default() }), None);
        let err = resolve(&p, &c, None).expect_err("root image");
        assert!(matches!(err, SecurityError::RunAsRoot { .. }));
        assert!(err.to_string().contains("runAsNonRoot and image will run as root"));
        assert!(matches!(resolve(&p, &c, Some("nobody")), Err(SecurityError::NonNumericUser { .. })));
        assert_eq!(resolve(&p, &c, Some("65534")).expect("numeric non-root").uid, 65534);
        // upstream's words, with format.Pod's name_namespace(uid)
        let (mut p, c) = with(Some(PodSecurityContext { run_as_non_root: Some(true), ..Default::default() }), None);
        (p.metadata.name, p.metadata.namespace, p.metadata.uid) = (Some("web".into()), Some("ns".into()), Some("u-1".into()));
        assert_eq!(
            resolve(&p, &c, None).expect_err("root image").to_string(),
            "container has runAsNonRoot and image will run as root (pod: \"web_ns(u-1)\", container: c)"
        );
        assert_eq!(
            resolve(&p, &c, Some("nobody")).expect_err("named user").to_string(),
            "container has runAsNonRoot and image has non-numeric user (nobody), cannot verify user is non-root (pod: \"web_ns(u-1)\", container: c)"
        );
        let c0 = Container { name: "c".into(), security_context: Some(SecurityContext { run_as_user: Some(0), ..Default::default() }), ..Default::default() };
        assert_eq!(
            resolve(&p, &c0, Some("1000")).expect_err("runAsUser 0").to_string(),
            "container's runAsUser breaks non-root policy (pod: \"web_ns(u-1)\", container: c)"
        );
    }

    #[test]
    fn image_user_names_are_looked_up_in_the_rootfs() {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(root.path().join("etc")).expect("etc");
        std::fs::write(root.path().join("etc/passwd"), "root:x:0:0::/root:/bin/sh\nnobody:x:65534:65533::/:/bin/false\n").expect("passwd");
        std::fs::write(root.path().join("etc/group"), "root:x:0:\nstaff:x:50:\n").expect("group");
        let (p, c) = with(None, None);
        let look = |u: &str| image_user_in_rootfs(&p, &c, Some(u), root.path());
        assert_eq!(look("nobody"), Ok(Some("65534:65533".into())));
        assert_eq!(look("nobody:staff"), Ok(Some("65534:50".into())));
        assert_eq!(look("1000:staff"), Ok(Some("1000:50".into())));
        assert_eq!(look("1000:2000"), Ok(None), "numeric: nothing to look up");
        let err = look("ghost").expect_err("unknown user");
        assert_eq!(err.to_string(), "unable to find user ghost: no matching entries in passwd file of the image (container \"c\")");
        assert!(matches!(look("nobody:wheel"), Err(SecurityError::UnknownName { what: "group", .. })));
        // runAsUser wins: no lookup, no error
        let (p2, c2) = with(Some(PodSecurityContext { run_as_user: Some(7), ..Default::default() }), None);
        assert_eq!(image_user_in_rootfs(&p2, &c2, Some("ghost"), root.path()), Ok(None));
        // a symlinked passwd resolves inside the rootfs: to the image's own file, never to the host's
        let host = tempfile::tempdir().expect("host dir");
        std::fs::write(host.path().join("passwd"), "hostonly:x:4242:4242::/:/bin/sh\n").expect("host passwd");
        std::fs::create_dir_all(root.path().join("usr/lib")).expect("usr/lib");
        std::fs::rename(root.path().join("etc/passwd"), root.path().join("usr/lib/passwd")).expect("mv");
        std::os::unix::fs::symlink("/usr/lib/passwd", root.path().join("etc/passwd")).expect("symlink");
        assert_eq!(look("nobody"), Ok(Some("65534:65533".into())), "an in-image symlink is followed inside the rootfs");
        std::fs::remove_file(root.path().join("etc/passwd")).expect("rm");
        std::os::unix::fs::symlink(host.path().join("passwd"), root.path().join("etc/passwd")).expect("symlink");
        assert!(matches!(look("hostonly"), Err(SecurityError::UnknownName { .. })), "the host's file is never read");
        // a FIFO is refused without blocking; a file over the cap without reading it
        std::fs::remove_file(root.path().join("etc/passwd")).expect("rm");
        nix::unistd::mkfifo(&root.path().join("etc/passwd"), nix::sys::stat::Mode::from_bits_truncate(0o644)).expect("mkfifo");
        let err = look("nobody").expect_err("a FIFO");
        assert!(err.to_string().contains("not a regular file (a FIFO)"), "{err}");
        std::fs::remove_file(root.path().join("etc/passwd")).expect("rm");
        let big = std::fs::File::create(root.path().join("etc/passwd")).expect("create");
        big.set_len(1 << 40).expect("a 1 TiB sparse file");
        let err = look("nobody").expect_err("too large");
        assert!(matches!(err, SecurityError::AccountFile { file: "passwd", .. }), "{err}");
        assert!(err.to_string().contains("1099511627776 bytes, over the limit of 4194304 bytes"), "{err}");
        let s = resolve(&p, &c, Some("65534:65533")).expect("resolved");
        assert_eq!((s.uid, s.gid), (65534, 65533));
    }

    #[test]
    fn capabilities_and_privileges() {
        let (p, c) = with(
            None,
            Some(SecurityContext {
                capabilities: Some(Capabilities { add: Some(vec!["NET_ADMIN".into()]), drop: Some(vec!["KILL".into(), "CAP_CHOWN".into()]) }),
                allow_privilege_escalation: Some(false),
                read_only_root_filesystem: Some(true),
                seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), localhost_profile: None }),
                ..Default::default()
            }),
        );
        let s = resolve(&p, &c, None).expect("ok");
        assert!(s.capabilities.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!s.capabilities.contains(&"CAP_KILL".to_string()));
        assert!(!s.capabilities.contains(&"CAP_CHOWN".to_string()));
        assert!(s.no_new_privileges && s.readonly_rootfs && s.seccomp_default);

        let (p, c) = with(None, Some(SecurityContext { capabilities: Some(Capabilities { add: None, drop: Some(vec!["ALL".into()]) }), ..Default::default() }));
        assert!(resolve(&p, &c, None).expect("ok").capabilities.is_empty());

        let (p, c) = with(None, Some(SecurityContext { privileged: Some(true), allow_privilege_escalation: Some(false), ..Default::default() }));
        let s = resolve_within(&p, &c, None, u64::MAX).expect("ok");
        assert!(s.privileged && s.capabilities.contains(&"CAP_SYS_ADMIN".to_string()) && !s.no_new_privileges);
        assert_eq!(s.capabilities.len(), ALL_CAPS.len());
        // all that the kubelet holds, no more: here without CAP_SYS_RESOURCE (24)
        let s = resolve_within(&p, &c, None, u64::MAX & !(1 << 24)).expect("ok");
        assert_eq!(s.capabilities.len(), ALL_CAPS.len() - 1);
        assert!(!s.capabilities.contains(&"CAP_SYS_RESOURCE".to_string()) && s.capabilities.contains(&"CAP_SYS_TIME".to_string()));
        let (p, c) = with(None, Some(SecurityContext { capabilities: Some(Capabilities { add: Some(vec!["ALL".into()]), drop: None }), ..Default::default() }));
        assert_eq!(resolve_within(&p, &c, None, 0b111).expect("ok").capabilities, ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH"]);
        assert_eq!(ALL_CAPS[24], "CAP_SYS_RESOURCE", "index n is capability n");
        assert_eq!(ALL_CAPS[40], "CAP_CHECKPOINT_RESTORE");
    }
}
