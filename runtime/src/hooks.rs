//! The six OCI hooks: prestart and createRuntime (runtime namespace, during create), createContainer (container
//! namespaces, before pivot_root), startContainer (in the container, before the user process), poststart (after
//! start) and poststop (at delete). Each gets the OCI state on stdin and is killed at its timeout.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;

/// A hook that failed, naming the hook list, index and path.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("hooks.{kind}[{index}] {path}: {reason}")]
    Failed { kind: &'static str, index: usize, path: String, reason: String },
}

/// The OCI state with `status` set to what the spec gives for a hook: prestart, createRuntime and createContainer
/// run while the container is `creating`, startContainer once it is `created` (start called, the program not yet
/// run), poststart when it is `running`, poststop when it is `stopped`.
pub fn state_for(state_json: &str, status: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(state_json) {
        Ok(mut v) => {
            v["status"] = serde_json::json!(status);
            v.to_string()
        }
        Err(_) => state_json.to_string(),
    }
}

/// Runs `hooks` in order with `state_json` on stdin; the first failure stops the list.
pub fn run(kind: &'static str, hooks: &[Hook], state_json: &str) -> Result<(), HookError> {
    run_with_env(kind, hooks, state_json, &[])
}

/// [`run`], where a hook without its own `env` gets `inherited` (startContainer hooks get the process's env).
pub fn run_with_env(kind: &'static str, hooks: &[Hook], state_json: &str, inherited: &[String]) -> Result<(), HookError> {
    for (index, h) in hooks.iter().enumerate() {
        let fail = |reason: String| HookError::Failed { kind, index, path: h.path().display().to_string(), reason };
        let args = h.args().clone().unwrap_or_default();
        let mut cmd = Command::new(h.path());
        if let Some(a0) = args.first() {
            cmd.arg0(a0);
        }
        cmd.args(args.iter().skip(1)).env_clear().stdin(Stdio::piped()).stdout(Stdio::null());
        for e in h.env().as_deref().unwrap_or(inherited) {
            if let Some((k, v)) = e.split_once('=') {
                cmd.env(k, v);
            }
        }
        let mut child = cmd.spawn().map_err(|e| fail(format!("cannot run: {e}")))?;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(state_json.as_bytes());
        }
        let deadline = h.timeout().filter(|t| *t > 0).map(|t| Instant::now() + Duration::from_secs(t as u64));
        let status = if deadline.is_none() {
            child.wait().map_err(|e| fail(format!("wait: {e}")))?
        } else { loop {
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) => {}
                Err(e) => return Err(fail(format!("wait: {e}"))),
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!("timed out after {}s", h.timeout().unwrap_or(0))));
            }
            // Bounded by the hook's timeout; std has no wait-with-timeout for a child.
            std::thread::sleep(Duration::from_millis(1));
        } };
        if !status.success() {
            return Err(fail(format!("exited with {status}")));
        }
    }
    Ok(())
}
