//! exec probes: run the command in the container; exit 0 is success.

use std::time::Duration;

use crate::runtime_client::RuntimeClient;

/// Runs `command` in the container through the runtime, waiting up to `timeout`: (success, message). The
/// message names the exit code and the output on failure, or the runtime's error (a timeout among them).
pub fn probe(runtime: &dyn RuntimeClient, container_id: &str, command: &[String], timeout: Duration) -> (bool, String) {
    match runtime.exec(container_id, command, timeout) {
        Ok((0, _)) => (true, String::new()),
        Ok((code, out)) => (false, format!("command {command:?} exited with {code}: {}", out.trim())),
        Err(e) => (false, e.to_string()),
    }
}
