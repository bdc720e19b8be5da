//! A container's persisted state under the runtime root: `<root>/<id>/state.json`, written atomically (temp file
//! + rename), and the lifecycle checks each operation makes (refresh -> check -> act -> persist).

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Errors reading or writing container state, naming the container and file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// No state file for the container.
    #[error("container {id:?} does not exist (no {path})")]
    NotFound {
        /// The container id.
        id: String,
        /// The state file looked for.
        path: PathBuf,
    },
    /// A container with this id already has state.
    #[error("container {id:?} already exists (state in {path}); delete it first or pick another id")]
    Exists {
        /// The container id.
        id: String,
        /// Its state file.
        path: PathBuf,
    },
    /// The id cannot name a directory and a cgroup.
    #[error("container id {id:?} is invalid: use letters, digits, '.', '_', '-' (1-1024 characters)")]
    BadId {
        /// The id given.
        id: String,
    },
    /// Reading or writing a state file failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was done (`read`, `write`, `rename`...).
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A state file that is not valid JSON of a [`State`].
    #[error("state file {path} is corrupt: {source}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
}

/// Lifecycle status, as the OCI state reports it (plus `creating` while create is under way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerStatus {
    /// `create` is under way (or died before finishing).
    Creating,
    /// The init process waits at the exec fifo for `start`.
    Created,
    /// The user's process runs.
    Running,
    /// The init process has exited.
    Stopped,
    /// The cgroup is frozen.
    Paused,
}

impl ContainerStatus {
    /// Whether `start` may run: only a created container starts.
    pub fn can_start(self) -> bool {
        self == ContainerStatus::Created
    }
    /// Whether `kill` may signal it: it has a live init process.
    pub fn can_kill(self) -> bool {
        matches!(self, ContainerStatus::Created | ContainerStatus::Running | ContainerStatus::Paused)
    }
    /// Whether `delete` without force may remove it: nothing of it runs.
    pub fn can_delete(self) -> bool {
        matches!(self, ContainerStatus::Stopped | ContainerStatus::Creating)
    }
    /// Whether `exec` may join it.
    pub fn can_exec(self) -> bool {
        matches!(self, ContainerStatus::Created | ContainerStatus::Running)
    }
    /// The OCI state's name for it (`created`, `running`...).
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerStatus::Creating => "creating",
            ContainerStatus::Created => "created",
            ContainerStatus::Running => "running",
            ContainerStatus::Stopped => "stopped",
            ContainerStatus::Paused => "paused",
        }
    }
}

/// Runtime-private facts kept next to the OCI state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Private {
    /// Start time of `pid` in clock ticks since boot (/proc/<pid>/stat field 22): guards against pid reuse.
    #[serde(default)]
    pub start_time: u64,
    /// The container's cgroup, relative to each hierarchy root.
    #[serde(default)]
    pub cgroup: Option<PathBuf>,
    /// The cgroup root the cgroup lives under.
    #[serde(default)]
    pub cgroup_root: Option<PathBuf>,
    /// Hooks to run at delete (poststop), kept so delete does not need the bundle.
    #[serde(default)]
    pub hooks: Option<oci_spec::runtime::Hooks>,
    /// True for a pause sandbox made by [`crate::sandbox`].
    #[serde(default)]
    pub sandbox: bool,
    /// Namespace files a pod's containers join (`net`, `ipc`, `uts`, `pid`): set for sandboxes.
    #[serde(default)]
    pub namespaces: HashMap<String, PathBuf>,
}

/// The OCI state of a container plus the runtime's private record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// The OCI runtime spec version the state follows.
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    /// The container id.
    pub id: String,
    /// Where it is in its lifecycle.
    pub status: ContainerStatus,
    /// Host pid of its init process; 0 before it exists.
    pub pid: i32,
    /// The bundle directory it was created from.
    pub bundle: PathBuf,
    /// Its root filesystem on the host.
    pub rootfs: PathBuf,
    /// When it was created (RFC 3339).
    pub created: String,
    /// The user that created it (runc's `owner`; empty here).
    pub owner: String,
    /// The config's annotations.
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    /// The runtime's own record (`rkube` in the JSON).
    #[serde(rename = "rkube", default)]
    pub private: Private,
}

/// Checks a container id: it becomes a directory name and a cgroup name.
pub fn check_id(id: &str) -> Result<(), StateError> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && id != "."
        && id != ".."
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-' || b == b'+');
    if ok {
        Ok(())
    } else {
        Err(StateError::BadId { id: id.to_string() })
    }
}

/// Directory holding one container's state.
pub fn container_dir(root: &Path, id: &str) -> PathBuf {
    root.join(id)
}

impl State {
    /// The state of a container being created, before it has a process.
    pub fn new(id: &str, bundle: &Path, rootfs: &Path) -> Self {
        State {
            oci_version: "1.2.0".to_string(),
            id: id.to_string(),
            status: ContainerStatus::Creating,
            pid: 0,
            bundle: bundle.to_path_buf(),
            rootfs: rootfs.to_path_buf(),
            created: now_rfc3339(),
            owner: String::new(),
            annotations: HashMap::new(),
            private: Private::default(),
        }
    }

    /// Reads `<root>/<id>/state.json`.
    pub fn load(root: &Path, id: &str) -> Result<State, StateError> {
        check_id(id)?;
        let path = container_dir(root, id).join("state.json");
        let data = fs::read(&path).map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                StateError::NotFound { id: id.to_string(), path: path.clone() }
            } else {
                StateError::Io { op: "read", path: path.clone(), source }
            }
        })?;
        serde_json::from_slice(&data).map_err(|source| StateError::Corrupt { path, source })
    }

    /// Writes state.json atomically: a temp file in the same directory, then rename over the old one.
    pub fn save(&self, root: &Path) -> Result<(), StateError> {
        let dir = container_dir(root, &self.id);
        let tmp = dir.join(".state.json.tmp");
        let path = dir.join("state.json");
        let data = serde_json::to_vec(self).expect("state serializes: only strings, numbers and maps");
        let mut f = fs::File::create(&tmp).map_err(|source| StateError::Io { op: "create", path: tmp.clone(), source })?;
        f.write_all(&data).map_err(|source| StateError::Io { op: "write", path: tmp.clone(), source })?;
        drop(f);
        fs::rename(&tmp, &path).map_err(|source| StateError::Io { op: "rename", path: path.clone(), source })
    }

    /// Re-derives the status from the kernel: the recorded process still alive (same start time, not a zombie),
    /// and whether `start` has happened (the exec fifo is gone).
    pub fn refresh(&mut self, root: &Path) {
        if self.status == ContainerStatus::Creating && self.pid == 0 {
            return;
        }
        let alive = self.pid > 0 && process_start_time(self.pid).is_some_and(|t| t == self.private.start_time);
        self.status = if !alive {
            ContainerStatus::Stopped
        } else if self.private.sandbox {
            ContainerStatus::Running
        } else if container_dir(root, &self.id).join("exec.fifo").exists() {
            ContainerStatus::Created
        } else if process_state(self.pid) == Some('T') || super::cgroup_of(self).is_some_and(|c| c.frozen()) {
            ContainerStatus::Paused
        } else {
            ContainerStatus::Running
        };
    }

    /// The OCI state document (`rkube-runtime state` prints this).
    pub fn oci_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "ociVersion": self.oci_version,
            "id": self.id,
            "pid": if self.status == ContainerStatus::Stopped { 0 } else { self.pid },
            "status": self.status.as_str(),
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": self.owner,
        });
        if !self.annotations.is_empty() {
            v["annotations"] = serde_json::json!(self.annotations);
        }
        v
    }
}

/// Start time (clock ticks since boot) of a live, non-zombie process, or None.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = s.rsplit_once(')')?.1;
    let mut it = rest.split_whitespace();
    let state = it.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    it.nth(18)?.parse().ok()
}

/// Start time of `pid` even when it is a zombie (for collecting its exit status), or None.
pub fn any_start_time(pid: i32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s.rsplit_once(')')?.1.split_whitespace().nth(19)?.parse().ok()
}

fn process_state(pid: i32) -> Option<char> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s.rsplit_once(')')?.1.split_whitespace().next()?.chars().next()
}

/// Lists container ids under a root.
pub fn list_ids(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(root)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().join("state.json").exists())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Now as RFC 3339 UTC with nanoseconds, e.g. `2024-01-02T03:04:05.123456789Z`.
pub fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = if month <= 2 { y + 1 } else { y };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        d.subsec_nanos()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_is_atomic_and_round_trips() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join("c1")).unwrap();
        let mut s = State::new("c1", Path::new("/b"), Path::new("/b/rootfs"));
        s.pid = 42;
        s.save(t.path()).unwrap();
        assert!(!t.path().join("c1/.state.json.tmp").exists());
        let l = State::load(t.path(), "c1").unwrap();
        assert_eq!(l.pid, 42);
        assert_eq!(l.status, ContainerStatus::Creating);
        assert!(matches!(State::load(t.path(), "nope"), Err(StateError::NotFound { .. })));
        assert!(check_id("../x").is_err());
    }

    #[test]
    fn dead_process_is_stopped() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join("c2")).unwrap();
        let mut s = State::new("c2", Path::new("/b"), Path::new("/b/rootfs"));
        s.pid = std::process::id() as i32;
        s.private.start_time = process_start_time(s.pid).unwrap();
        assert!(s.private.start_time > 0, "field 22 of /proc/<pid>/stat, not a neighbouring zero field");
        assert_eq!(any_start_time(s.pid), Some(s.private.start_time));
        s.refresh(t.path());
        assert_eq!(s.status, ContainerStatus::Running);
        s.private.start_time += 1; // a recycled pid has another start time
        s.refresh(t.path());
        assert_eq!(s.status, ContainerStatus::Stopped);
    }

    #[test]
    fn timestamp_shape() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 30, "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T');
    }
}
