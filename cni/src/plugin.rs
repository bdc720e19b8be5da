//! The shape every plugin binary shares: read stdin and the `CNI_*` environment, check the version, dispatch to
//! the plugin's command, print the result or the spec's error JSON, and return the exit status.

use std::io::{Read, Write};

use serde_json::Value;

use crate::exec::{Command, Env};
use crate::spec::config::read_version;
use crate::spec::error::{code, CniError};
use crate::spec::version;
use crate::spec::CniResult;

/// One invocation: the checked environment, the raw stdin and its decoded form.
pub struct Call<'a> {
    /// The `CNI_*` environment, checked for the command.
    pub env: &'a Env,
    /// The network configuration as read from stdin.
    pub stdin: &'a [u8],
    /// The same, parsed as JSON.
    pub config: &'a Value,
    /// The config's `cniVersion`, the version the result is written in.
    pub cni_version: &'a str,
}

/// What a plugin implements. ADD returns the result to print; the others print nothing on success.
pub trait Plugin {
    /// ADD: attaches the container to the network and returns what was configured.
    fn add(&self, call: &Call) -> Result<CniResult, CniError>;
    /// DEL: detaches the container; succeeds when there is nothing left to remove.
    fn del(&self, call: &Call) -> Result<(), CniError>;
    /// CHECK: verifies the container's attachment is as ADD left it.
    fn check(&self, call: &Call) -> Result<(), CniError>;
    /// STATUS (CNI 1.1): whether the plugin is ready for ADD; ready by default.
    fn status(&self, _call: &Call) -> Result<(), CniError> {
        Ok(())
    }
    /// GC (CNI 1.1): releases what the plugin holds for attachments not in `cni.dev/valid-attachments`; nothing
    /// by default.
    fn gc(&self, _call: &Call) -> Result<(), CniError> {
        Ok(())
    }
}

/// Runs `plugin` as the current process's CNI invocation and returns the exit status for `main`.
pub fn run(plugin: &dyn Plugin) -> i32 {
    crate::trace::init();
    let mut stdin = Vec::new();
    let read = std::io::stdin().read_to_end(&mut stdin);
    let (out, status) = match read {
        Err(e) => (CniError::new(code::IO_FAILURE, format!("read network config from stdin: {e}")).to_json(version::LATEST), 1),
        Ok(_) => match Env::from_process() {
            Err(e) => (e.to_json(&version_hint(&stdin)), 1),
            Ok(env) => dispatch(plugin, &env, &stdin),
        },
    };
    crate::trace::mark("done");
    let mut so = std::io::stdout().lock();
    if !out.is_empty() {
        let _ = so.write_all(out.as_bytes());
        let _ = so.write_all(b"\n");
    }
    let _ = so.flush();
    status
}

/// The caller's version if stdin names a supported one, so errors come back in a shape it reads.
fn version_hint(stdin: &[u8]) -> String {
    read_version(stdin).map(|(_, v)| v).unwrap_or_else(|_| version::LATEST.to_string())
}

/// Dispatches one call; returns what to print and the exit status.
pub fn dispatch(plugin: &dyn Plugin, env: &Env, stdin: &[u8]) -> (String, i32) {
    if env.command == Command::Version {
        let v = serde_json::from_slice::<Value>(stdin)
            .ok()
            .and_then(|v| v.get("cniVersion").and_then(Value::as_str).map(str::to_string))
            .filter(|v| version::SUPPORTED.contains(&v.as_str()))
            .unwrap_or_else(|| version::LATEST.to_string());
        return (version::version_info(&v), 0);
    }
    let (config, ver) = match read_version(stdin) {
        Ok(x) => x,
        Err(e) => return (e.to_json(version::LATEST), 1),
    };
    let call = Call { env, stdin, config: &config, cni_version: &ver };
    let res = match env.command {
        Command::Add => plugin.add(&call).map(|r| r.to_json(&ver)),
        Command::Del => plugin.del(&call).map(|()| String::new()),
        Command::Check if !version::has_check(&ver) => Err(CniError::new(
            code::INCOMPATIBLE_VERSION,
            format!("CHECK needs cniVersion 0.4.0 or later; the config says {ver}"),
        )),
        Command::Check => plugin.check(&call).map(|()| String::new()),
        Command::Status => plugin.status(&call).map(|()| String::new()),
        Command::Gc => plugin.gc(&call).map(|()| String::new()),
        Command::Version => Ok(version::version_info(&ver)),
    };
    match res {
        Ok(out) => (out, 0),
        Err(e) => (e.to_json(&ver), 1),
    }
}
