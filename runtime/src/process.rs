//! The container process itself: rlimits, user and groups, umask, environment, cwd (checked after chdir, the
//! CVE-2024-21626 class), no_new_privs, and the final exec with PATH looked up in the container's environment.
//!
//! Runs in the single-threaded init child only; nothing here is safe to call in the kubelet's process.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::sys::resource::{setrlimit, Resource};
use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{PosixRlimitType, Process};

/// Errors preparing or starting the container process, naming the field or path.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("process.rlimits: set {name} soft={soft} hard={hard}: {source} (raising a hard limit needs CAP_SYS_RESOURCE)")]
    Rlimit { name: String, soft: u64, hard: u64, #[source] source: nix::Error },
    #[error("process.user: {what}: {source}")]
    User { what: String, #[source] source: nix::Error },
    #[error("process.cwd: chdir to {path}: {source}")]
    Cwd { path: PathBuf, #[source] source: nix::Error },
    #[error("process.cwd: {path} resolves outside the container root ({seen}); refusing to run (CVE-2024-21626)")]
    CwdEscape { path: PathBuf, seen: String },
    #[error("process.args[0]: {name:?} not found in the container's PATH ({path})")]
    NotFound { name: String, path: String },
    #[error("process.args[0]: {name:?}: {why}")]
    NotExecutable { name: String, why: String },
    #[error("process.args: exec {name:?}: {source}")]
    Exec { name: String, #[source] source: nix::Error },
    #[error("process.{field}: contains a NUL byte")]
    Nul { field: &'static str },
    #[error("process.noNewPrivileges: {source}")]
    NoNewPrivs { #[source] source: nix::Error },
    #[error("process.oomScoreAdj: write {value}: {source}")]
    OomScore { value: i32, #[source] source: std::io::Error },
}

fn resource(t: PosixRlimitType) -> Resource {
    match t {
        PosixRlimitType::RlimitCpu => Resource::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => Resource::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => Resource::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => Resource::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => Resource::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => Resource::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => Resource::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => Resource::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => Resource::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => Resource::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => Resource::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => Resource::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => Resource::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => Resource::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => Resource::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => Resource::RLIMIT_RTTIME,
    }
}

/// Applies process.rlimits.
pub fn set_rlimits(p: &Process) -> Result<(), ProcessError> {
    for r in p.rlimits().iter().flatten() {
        setrlimit(resource(r.typ()), r.soft(), r.hard()).map_err(|source| ProcessError::Rlimit {
            name: serde_json::to_value(r.typ()).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
            soft: r.soft(),
            hard: r.hard(),
            source,
        })?;
    }
    Ok(())
}

/// Writes process.oomScoreAdj for this process, so the child it is about to clone inherits it; returns the value to
/// put back after the clone. Done by the runtime before the clone, as runc does: the child is non-dumpable, and
/// a non-dumpable process in a user namespace cannot write its own /proc files.
pub fn set_oom_score_adj(p: &Process) -> Result<Option<String>, ProcessError> {
    let Some(v) = p.oom_score_adj() else { return Ok(None) };
    let cur = std::fs::read_to_string("/proc/self/oom_score_adj").unwrap_or_default();
    if cur.trim() == v.to_string() {
        return Ok(None);
    }
    std::fs::write("/proc/self/oom_score_adj", v.to_string()).map_err(|source| ProcessError::OomScore { value: v, source })?;
    Ok(Some(cur.trim().to_string()))
}

/// Puts back this process's own oomScoreAdj after the clone (best effort).
pub fn restore_oom_score_adj(old: Option<String>) {
    if let Some(old) = old {
        let _ = std::fs::write("/proc/self/oom_score_adj", old);
    }
}

/// The descriptors among 3..3+n that are open now: the ones a caller really passed with `--preserve-fds n`. Call
/// before the runtime opens anything of its own: only these reach the container (runc's semantics), never a
/// descriptor of the runtime that happens to be numbered in that range.
pub fn passed_fds(n: u32) -> Vec<std::os::fd::RawFd> {
    // No descriptor can be numbered at or above the hard RLIMIT_NOFILE.
    let cap = nix::sys::resource::getrlimit(Resource::RLIMIT_NOFILE).map(|(_, hard)| hard).unwrap_or(1 << 20);
    let end = (3 + u64::from(n)).min(cap).min(i32::MAX as u64) as std::os::fd::RawFd;
    (3..end).filter(|fd| crate::sys::fd_is_open(*fd)).collect()
}

/// Switches to process.user (groups, gid, uid), keeping capabilities across the switch so the capability sets can
/// be applied afterwards.
pub fn switch_user(p: &Process) -> Result<(), ProcessError> {
    let u = p.user();
    let groups: Vec<Gid> = u.additional_gids().iter().flatten().map(|g| Gid::from_raw(*g)).collect();
    // setgroups is refused in a user namespace with setgroups=deny; only then is an empty list acceptable.
    if let Err(e) = nix::unistd::setgroups(&groups) {
        let denied = std::fs::read_to_string("/proc/self/setgroups").map(|s| s.trim() == "deny").unwrap_or(false);
        if !(denied && groups.is_empty()) {
            return Err(ProcessError::User { what: format!("setgroups {:?}", u.additional_gids()), source: e });
        }
    }
    nix::sys::prctl::set_keepcaps(true).map_err(|source| ProcessError::User { what: "keep capabilities".into(), source })?;
    let gid = Gid::from_raw(u.gid());
    nix::unistd::setresgid(gid, gid, gid).map_err(|source| ProcessError::User { what: format!("setgid {}", u.gid()), source })?;
    let uid = Uid::from_raw(u.uid());
    nix::unistd::setresuid(uid, uid, uid).map_err(|source| ProcessError::User { what: format!("setuid {}", u.uid()), source })?;
    Ok(())
}

/// Sets no_new_privs when asked.
pub fn set_no_new_privs(p: &Process) -> Result<(), ProcessError> {
    if p.no_new_privileges() == Some(true) {
        nix::sys::prctl::set_no_new_privs().map_err(|source| ProcessError::NoNewPrivs { source })?;
    }
    Ok(())
}

/// chdir to process.cwd and verify the kernel agrees we are inside the container's root: a cwd inherited through
/// a leaked fd shows as "(unreachable)" or fails getcwd.
pub fn enter_cwd(p: &Process) -> Result<(), ProcessError> {
    let cwd = p.cwd();
    nix::unistd::chdir(cwd.as_path()).map_err(|source| ProcessError::Cwd { path: cwd.clone(), source })?;
    match nix::unistd::getcwd() {
        Ok(seen) if seen.is_absolute() && !seen.as_os_str().as_bytes().starts_with(b"(unreachable)") => Ok(()),
        Ok(seen) => Err(ProcessError::CwdEscape { path: cwd.clone(), seen: seen.display().to_string() }),
        Err(e) => Err(ProcessError::CwdEscape { path: cwd.clone(), seen: e.to_string() }),
    }
}

/// One entry per variable name, the last one given winning, at the place of the name's first entry (runc's
/// rule): `exec --env NAME=v` replaces the config's NAME instead of adding a second one.
pub fn merge_env(env: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(env.len());
    let mut at: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for e in env {
        let name = e.split_once('=').map_or(e.as_str(), |(n, _)| n);
        match at.get(name) {
            Some(&i) => out[i] = e.clone(),
            None => {
                at.insert(name, out.len());
                out.push(e.clone());
            }
        }
    }
    out
}

/// Everything exec needs, allocated before the last steps so that only exec remains.
pub struct PreparedExec {
    pub program: CString,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
}

/// Resolves args[0] against the container's PATH (from process.env, or a default) and builds argv/envp.
pub fn prepare_exec(p: &Process) -> Result<PreparedExec, ProcessError> {
    let args = p.args().clone().unwrap_or_default();
    let env = merge_env(p.env().as_deref().unwrap_or(&[]));
    let argv = args
        .iter()
        .map(|a| CString::new(a.as_bytes()).map_err(|_| ProcessError::Nul { field: "args" }))
        .collect::<Result<Vec<_>, _>>()?;
    let envp = env
        .iter()
        .map(|a| CString::new(a.as_bytes()).map_err(|_| ProcessError::Nul { field: "env" }))
        .collect::<Result<Vec<_>, _>>()?;
    let name = args.first().cloned().unwrap_or_default();
    let path_var = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .to_string();
    let program = if name.contains('/') {
        // Checked here, before create returns, as runc does: a missing program is the creator's error to report,
        // not an exit code the container seems to have chosen.
        let program = PathBuf::from(&name);
        if !is_executable(&program) {
            let why = match std::fs::metadata(&program) {
                Err(e) => e.to_string(),
                Ok(m) if m.is_dir() => "is a directory".to_string(),
                Ok(_) => "permission denied (not executable)".to_string(),
            };
            return Err(ProcessError::NotExecutable { name, why });
        }
        program
    } else {
        path_var
            .split(':')
            .filter(|d| !d.is_empty())
            .map(|d| Path::new(d).join(&name))
            .find(|c| is_executable(c))
            .ok_or_else(|| ProcessError::NotFound { name: name.clone(), path: path_var.clone() })?
    };
    let program = CString::new(program.as_os_str().as_bytes()).map_err(|_| ProcessError::Nul { field: "args" })?;
    Ok(PreparedExec { program, argv, envp })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

/// execve; returns only on failure.
pub fn exec(e: &PreparedExec) -> ProcessError {
    let err = nix::unistd::execve(&e.program, &e.argv, &e.envp).err().unwrap_or(nix::Error::UnknownErrno);
    ProcessError::Exec { name: e.program.to_string_lossy().into_owned(), source: err }
}

#[cfg(test)]
mod tests {
    use super::merge_env;

    #[test]
    fn merge_env_keeps_one_entry_per_name_last_wins() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(merge_env(&v(&["PATH=/bin", "A=1", "B=2", "A=3", "PATH=/usr/bin"])), v(&["PATH=/usr/bin", "A=3", "B=2"]));
        assert_eq!(merge_env(&v(&["A=", "A=x=y"])), v(&["A=x=y"]));
        assert!(merge_env(&[]).is_empty());
    }
}
