//! `linux.namespaces`: which namespaces a container gets new (clone flags) and which it joins by path.
//!
//! pid and time namespaces only apply to children, so they are joined by the process that clones the container
//! (and restored right after); the others are joined by the container's init child, user namespace first.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::PathBuf;

use nix::sched::{setns, CloneFlags};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::config::{ns_flag, ns_name};

/// Errors entering namespaces, naming the namespace and path.
#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error("linux.namespaces: open {typ} namespace {path}: {source}")]
    Open { typ: &'static str, path: PathBuf, #[source] source: std::io::Error },
    #[error("linux.namespaces: join {typ} namespace {path}: {source}")]
    Join { typ: &'static str, path: PathBuf, #[source] source: nix::Error },
    #[error("linux.namespaces: unshare {typ}: {source}")]
    Unshare { typ: &'static str, #[source] source: nix::Error },
    #[error("linux.timeOffsets: {what}: {source}")]
    TimeOffsets { what: &'static str, #[source] source: std::io::Error },
}

/// A namespace to join, opened before anything moves.
pub struct Join {
    pub typ: LinuxNamespaceType,
    pub path: PathBuf,
    pub file: File,
}

/// What to create and what to join.
pub struct Plan {
    /// CLONE_NEW* flags for clone3 (everything new except cgroup, which is unshared after the cgroup join).
    pub clone_flags: u64,
    pub new_cgroup: bool,
    pub new_user: bool,
    pub new_mount: bool,
    pub new_uts: bool,
    pub joins: Vec<Join>,
    /// A new time namespace with offsets (timens_offsets lines): made by the cloning process with unshare, the
    /// offsets written before the child is cloned into it (they can only be set before any process enters).
    pub time_offsets: Option<String>,
}

impl Plan {
    pub fn joins_type(&self, t: LinuxNamespaceType) -> bool {
        self.joins.iter().any(|j| j.typ == t)
    }
}

/// Builds the plan and opens every namespace file to join.
pub fn plan(spec: &Spec) -> Result<Plan, NamespaceError> {
    let mut p = Plan { clone_flags: 0, new_cgroup: false, new_user: false, new_mount: false, new_uts: false, joins: Vec::new(), time_offsets: None };
    let offsets: String = spec
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().as_ref())
        .into_iter()
        .flatten()
        .map(|(clock, o)| format!("{clock} {} {}\n", o.secs().unwrap_or(0), o.nanosecs().unwrap_or(0)))
        .collect();
    for ns in spec.linux().as_ref().and_then(|l| l.namespaces().as_ref()).into_iter().flatten() {
        match ns.path() {
            Some(path) => {
                let file = File::open(path).map_err(|source| NamespaceError::Open { typ: ns_name(ns.typ()), path: path.clone(), source })?;
                p.joins.push(Join { typ: ns.typ(), path: path.clone(), file });
            }
            None => match ns.typ() {
                LinuxNamespaceType::Cgroup => p.new_cgroup = true,
                LinuxNamespaceType::Time if !offsets.is_empty() => p.time_offsets = Some(offsets.clone()),
                t => {
                    p.clone_flags |= ns_flag(t) as u32 as u64;
                    p.new_user |= t == LinuxNamespaceType::User;
                    p.new_mount |= t == LinuxNamespaceType::Mount;
                    p.new_uts |= t == LinuxNamespaceType::Uts;
                }
            },
        }
    }
    // Joined namespaces go user first (it grants the rights for the rest), mount last.
    p.joins.sort_by_key(|j| match j.typ {
        LinuxNamespaceType::User => 0,
        LinuxNamespaceType::Mount => 9,
        _ => 5,
    });
    Ok(p)
}

/// Joins one namespace file.
pub fn join(j: &Join) -> Result<(), NamespaceError> {
    setns(j.file.as_fd(), CloneFlags::from_bits_truncate(ns_flag(j.typ)))
        .map_err(|source| NamespaceError::Join { typ: ns_name(j.typ), path: j.path.clone(), source })
}

/// Joins the namespaces that apply to children only (pid, time): called by the cloning process. Returns the
/// namespaces to restore afterwards.
pub fn join_for_children(p: &Plan) -> Result<Vec<Join>, NamespaceError> {
    let mut restore = Vec::new();
    for j in p.joins.iter().filter(|j| matches!(j.typ, LinuxNamespaceType::Pid | LinuxNamespaceType::Time)) {
        let own = if j.typ == LinuxNamespaceType::Pid { "/proc/self/ns/pid_for_children" } else { "/proc/self/ns/time_for_children" };
        let file = File::open(own).map_err(|source| NamespaceError::Open { typ: ns_name(j.typ), path: own.into(), source })?;
        restore.push(Join { typ: j.typ, path: own.into(), file });
        join(j)?;
    }
    if let Some(offsets) = &p.time_offsets {
        let own = "/proc/self/ns/time_for_children";
        let file = File::open(own).map_err(|source| NamespaceError::Open { typ: "time", path: own.into(), source })?;
        let saved = Join { typ: LinuxNamespaceType::Time, path: own.into(), file };
        crate::sys::unshare_time_for_children().map_err(|source| NamespaceError::TimeOffsets { what: "unshare a time namespace", source })?;
        if let Err(source) = std::fs::write("/proc/self/timens_offsets", offsets) {
            let _ = join(&saved);
            for r in &restore {
                let _ = join(r);
            }
            return Err(NamespaceError::TimeOffsets { what: "write /proc/self/timens_offsets", source });
        }
        restore.push(saved);
    }
    Ok(restore)
}

/// Joins the rest (user, ipc, uts, net, cgroup, mount): called by the container's init child.
pub fn join_in_child(p: &Plan) -> Result<(), NamespaceError> {
    for j in p.joins.iter().filter(|j| !matches!(j.typ, LinuxNamespaceType::Pid | LinuxNamespaceType::Time)) {
        join(j)?;
    }
    Ok(())
}
