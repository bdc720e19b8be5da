//! The OCI runtime through its runc-compatible command line (`rkube-runtime`, or runc for containers):
//! sandbox, create (run by the monitor), start, kill, delete, state, exec. One process per call keeps the
//! kubelet free of fork-in-a-threaded-process hazards.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("run {bin} {what}: {source}")]
    Spawn {
        bin: PathBuf,
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{bin} {what} failed: {message}")]
    Failed { bin: PathBuf, what: String, message: String },
    #[error("{bin} {what}: unexpected output: {output}")]
    Output { bin: PathBuf, what: String, output: String },
}

/// The runtime binary and its state root.
#[derive(Clone, Debug)]
pub struct RuntimeCli {
    pub bin: PathBuf,
    pub root: PathBuf,
}

/// A running sandbox.
#[derive(Clone, Debug, PartialEq)]
pub struct SandboxInfo {
    pub pid: i32,
    /// Namespace kind (`net`, `ipc`, `uts`) → path to join.
    pub namespaces: HashMap<String, String>,
}

impl RuntimeCli {
    fn run(&self, what: &str, args: &[&str]) -> Result<String, RuntimeError> {
        let out = Command::new(&self.bin)
            .arg("--root")
            .arg(&self.root)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|source| RuntimeError::Spawn { bin: self.bin.clone(), what: what.into(), source })?;
        if !out.status.success() {
            let mut message = String::from_utf8_lossy(&out.stderr).trim().to_string();
            if message.is_empty() {
                message = format!("exit status {}", out.status);
            }
            return Err(RuntimeError::Failed { bin: self.bin.clone(), what: what.into(), message });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Creates a pause sandbox with new net/ipc/uts namespaces in `cgroups_path`.
    pub fn sandbox(&self, id: &str, hostname: &str, cgroups_path: &str) -> Result<SandboxInfo, RuntimeError> {
        let out = self.run(
            &format!("sandbox {id}"),
            &["sandbox", id, "--hostname", hostname, "--cgroups-path", cgroups_path],
        )?;
        let v: serde_json::Value = serde_json::from_str(&out).map_err(|_| RuntimeError::Output {
            bin: self.bin.clone(),
            what: format!("sandbox {id}"),
            output: out.clone(),
        })?;
        let pid = v["pid"].as_i64().unwrap_or(0) as i32;
        let namespaces = v["namespaces"]
            .as_object()
            .map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string()))).collect())
            .unwrap_or_default();
        if pid <= 0 {
            return Err(RuntimeError::Output { bin: self.bin.clone(), what: format!("sandbox {id}"), output: out });
        }
        Ok(SandboxInfo { pid, namespaces })
    }

    /// The argv that creates container `id` from `bundle` (run by the monitor, which holds its stdio).
    pub fn create_argv(&self, id: &str, bundle: &Path, pid_file: &Path) -> Vec<std::ffi::OsString> {
        vec![
            self.bin.clone().into(),
            "--root".into(),
            self.root.clone().into(),
            "create".into(),
            "--bundle".into(),
            bundle.into(),
            "--pid-file".into(),
            pid_file.into(),
            id.into(),
        ]
    }

    pub fn start(&self, id: &str) -> Result<(), RuntimeError> {
        self.run(&format!("start {id}"), &["start", id]).map(|_| ())
    }

    pub fn kill(&self, id: &str, signal: &str) -> Result<(), RuntimeError> {
        self.run(&format!("kill {id} {signal}"), &["kill", id, signal]).map(|_| ())
    }

    pub fn delete(&self, id: &str) -> Result<(), RuntimeError> {
        match self.run(&format!("delete {id}"), &["delete", "--force", id]) {
            Ok(_) => Ok(()),
            Err(RuntimeError::Failed { message, .. }) if message.contains("not exist") || message.contains("not found") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `status` of the container (`created`, `running`, `stopped`), None when the runtime does not know it.
    pub fn status(&self, id: &str) -> Option<String> {
        let out = self.run(&format!("state {id}"), &["state", id]).ok()?;
        let v: serde_json::Value = serde_json::from_str(&out).ok()?;
        v["status"].as_str().map(str::to_string)
    }

    /// Runs `argv` in the container and waits up to `timeout`; returns (exit code, stdout+stderr).
    pub fn exec(&self, id: &str, argv: &[String], timeout: Duration) -> Result<(i32, String), RuntimeError> {
        let what = format!("exec {id}");
        let mut child = Command::new(&self.bin)
            .arg("--root")
            .arg(&self.root)
            .arg("exec")
            .arg(id)
            .args(argv)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| RuntimeError::Spawn { bin: self.bin.clone(), what: what.clone(), source })?;
        let deadline = std::time::Instant::now() + timeout;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if std::time::Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(RuntimeError::Failed { bin: self.bin.clone(), what, message: format!("timed out after {timeout:?}") });
                }
            }
        }
        let out = child
            .wait_with_output()
            .map_err(|source| RuntimeError::Spawn { bin: self.bin.clone(), what, source })?;
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        Ok((out.status.code().unwrap_or(128 + 9), text))
    }
}
