//! A node's claim on its data dir: `rkube.pid` names the live rkube process (`rkube up` or `rkube kubelet`)
//! using the dir, so a second one started on the same dir is refused instead of sharing the store, the
//! kubelet's state and the node's links with the first. The dir holds the store, keys and kubeconfigs, so it is
//! made private first: created 0700, or an existing one tightened to 0700 with a warning; one owned by another
//! user is refused. `rkube down` reads the same file to stop the process ([`super::teardown`]).
//!
//! Must not: stop or signal the process that holds the claim (that is `rkube down`'s teardown).

use std::path::{Path, PathBuf};

use crate::image::secure_fs::{ensure_private_dir, octal, SecureFsError};

/// The file in a data dir that names the rkube process holding it.
pub const PID_FILE: &str = "rkube.pid";

/// Why a data dir could not be claimed; each variant names the dir or file.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// The dir could not be made or kept private (another user's, not a directory, or an I/O error).
    #[error("data dir {dir}: {source}")]
    Private {
        /// The data dir.
        dir: PathBuf,
        /// What was wrong with it.
        #[source]
        source: SecureFsError,
    },
    /// Another live rkube holds the dir.
    #[error("rkube is already running with data dir {dir} (pid {pid}); run `rkube down --data-dir {dir}` first")]
    Held {
        /// The data dir.
        dir: PathBuf,
        /// The pid in its `rkube.pid`.
        pid: i32,
    },
    /// `rkube.pid` could not be written.
    #[error("write {path}: {source}")]
    Write {
        /// The pid file.
        path: PathBuf,
        /// The write's error.
        #[source]
        source: std::io::Error,
    },
}

/// The claim on a data dir: its `rkube.pid`, removed when this is dropped.
#[derive(Debug)]
pub struct DataDirClaim {
    pid_file: PathBuf,
}

impl DataDirClaim {
    /// The pid file this claim wrote.
    pub fn pid_file(&self) -> &Path {
        &self.pid_file
    }
}

impl Drop for DataDirClaim {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.pid_file);
    }
}

/// Claims `data` for this process: makes it private (0700), fails if another live rkube holds it (a stale
/// `rkube.pid`, whose process is gone or is not rkube, is taken over), and writes this process's pid.
pub fn claim(data: &Path) -> Result<DataDirClaim, DataDirError> {
    claim_as(data, std::process::id() as i32, super::host::rkube_alive)
}

/// [`claim`] for process `me`, with `alive` telling whether a pid is a live rkube (a parameter, for tests).
fn claim_as(data: &Path, me: i32, alive: impl Fn(i32) -> bool) -> Result<DataDirClaim, DataDirError> {
    let was = ensure_private_dir(data, 0o700).map_err(|source| DataDirError::Private { dir: data.to_path_buf(), source })?;
    if let Some(was) = was {
        tracing::warn!(
            path = %data.display(),
            was = octal(was),
            now = octal(was & 0o700),
            "directory was open to other local users; removed their access (rotate its secrets if that matters)"
        );
    }
    let pid_file = data.join(PID_FILE);
    let holder = std::fs::read_to_string(&pid_file).ok().and_then(|s| s.trim().parse::<i32>().ok());
    if let Some(pid) = holder.filter(|&pid| pid > 0 && pid != me) {
        if alive(pid) {
            return Err(DataDirError::Held { dir: data.to_path_buf(), pid });
        }
    }
    std::fs::write(&pid_file, me.to_string()).map_err(|source| DataDirError::Write { path: pid_file.clone(), source })?;
    Ok(DataDirClaim { pid_file })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).expect("stat").permissions().mode() & 0o7777
    }

    #[test]
    fn a_new_dir_is_made_private_and_the_pid_file_goes_with_the_claim() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path().join("a/data");
        let claim = claim_as(&data, 4242, |_| true).expect("claim");
        assert_eq!(mode(&data), 0o700);
        assert_eq!(std::fs::read_to_string(data.join(PID_FILE)).expect("pid file"), "4242");
        assert_eq!(claim.pid_file(), data.join(PID_FILE));
        drop(claim);
        assert!(!data.join(PID_FILE).exists(), "rkube.pid removed on drop");
    }

    #[test]
    fn a_live_holder_is_refused_and_keeps_its_pid_file() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::write(tmp.path().join(PID_FILE), "77\n").expect("write");
        let err = claim_as(tmp.path(), 4242, |pid| pid == 77).expect_err("held");
        assert!(matches!(err, DataDirError::Held { pid: 77, .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains("(pid 77)") && text.contains("rkube down --data-dir"), "{text}");
        assert_eq!(std::fs::read_to_string(tmp.path().join(PID_FILE)).expect("pid file"), "77\n", "left as it was");
    }

    #[test]
    fn a_stale_or_own_pid_file_is_taken_over_and_a_loose_dir_tightened() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::write(tmp.path().join(PID_FILE), "77").expect("write");
        let claim = claim_as(tmp.path(), 4242, |_| false).expect("stale holder taken over");
        assert_eq!(mode(tmp.path()), 0o700);
        drop(claim);
        std::fs::write(tmp.path().join(PID_FILE), "4242").expect("write");
        let _claim = claim_as(tmp.path(), 4242, |_| true).expect("our own pid is no other holder");
    }

    #[test]
    fn a_file_where_the_dir_should_be_is_refused_naming_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path().join("data");
        std::fs::write(&data, "").expect("write");
        let err = claim_as(&data, 4242, |_| false).expect_err("not a dir");
        assert!(err.to_string().starts_with(&format!("data dir {}", data.display())), "{err}");
    }
}
