//! The CNI exec protocol: the `CNI_*` environment a plugin is called with, and delegation to another plugin
//! (the IPAM plugin named by `ipam.type`) by executing it from `CNI_PATH` with the same environment and stdin.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};

use serde_json::Value;

use crate::error::{code, CniError};
use crate::result::CniResult;

/// The CNI_COMMAND verbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// `ADD`: attach the container to the network.
    Add,
    /// `DEL`: detach it and release what ADD took.
    Del,
    /// `CHECK`: verify the attachment is as ADD left it.
    Check,
    /// `VERSION`: report the spec versions the plugin supports.
    Version,
    /// `STATUS` (1.1.0): whether the plugin is ready to serve ADDs.
    Status,
    /// `GC` (1.1.0): release what no attachment in the list still holds.
    Gc,
}

impl Command {
    /// The verb as `CNI_COMMAND` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Version => "VERSION",
            Command::Status => "STATUS",
            Command::Gc => "GC",
        }
    }

    fn parse(s: &str) -> Option<Command> {
        Some(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "VERSION" => Command::Version,
            "STATUS" => Command::Status,
            "GC" => Command::Gc,
            _ => return None,
        })
    }
}

/// The plugin's invocation, read from `CNI_*` variables.
#[derive(Debug, Clone)]
pub struct Env {
    /// `CNI_COMMAND`.
    pub command: Command,
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// Path of the network namespace; may be empty on DEL (the runtime lost it) and is empty for VERSION/STATUS/GC.
    pub netns: String,
    /// `CNI_IFNAME`: the interface to create inside the container.
    pub ifname: String,
    /// `CNI_ARGS`: extra `KEY=VALUE;...` arguments.
    pub args: String,
    /// `CNI_PATH`: where plugins are looked for.
    pub path: Vec<PathBuf>,
}

impl Env {
    /// Reads the process environment.
    pub fn from_process() -> Result<Env, CniError> {
        Env::from_vars(|k| std::env::var(k).ok())
    }

    /// Reads and checks the variables `command` needs (code 4 when one is missing or malformed).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Env, CniError> {
        let cmd_s = get("CNI_COMMAND").unwrap_or_default();
        let command = Command::parse(&cmd_s).ok_or_else(|| {
            CniError::new(
                code::INVALID_ENV,
                format!("CNI_COMMAND {cmd_s:?} is not one of ADD, DEL, CHECK, VERSION, STATUS, GC"),
            )
        })?;
        let env = Env {
            command,
            container_id: get("CNI_CONTAINERID").unwrap_or_default(),
            netns: get("CNI_NETNS").unwrap_or_default(),
            ifname: get("CNI_IFNAME").unwrap_or_default(),
            args: get("CNI_ARGS").unwrap_or_default(),
            path: get("CNI_PATH")
                .unwrap_or_default()
                .split(':')
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
                .collect(),
        };
        let needs_attachment = matches!(command, Command::Add | Command::Del | Command::Check);
        if needs_attachment {
            validate_container_id(&env.container_id)?;
            validate_ifname(&env.ifname)?;
        }
        if matches!(command, Command::Add | Command::Check) && env.netns.is_empty() {
            return Err(missing("CNI_NETNS", "the path of the container's network namespace, e.g. /var/run/netns/pod1"));
        }
        Ok(env)
    }

    /// The `CNI_*` variables to hand a delegate, with `command` in place of ours.
    fn vars(&self, command: Command) -> Vec<(&'static str, String)> {
        let path = self.path.iter().map(|p| p.to_string_lossy()).collect::<Vec<_>>().join(":");
        vec![
            ("CNI_COMMAND", command.as_str().to_string()),
            ("CNI_CONTAINERID", self.container_id.clone()),
            ("CNI_NETNS", self.netns.clone()),
            ("CNI_IFNAME", self.ifname.clone()),
            ("CNI_ARGS", self.args.clone()),
            ("CNI_PATH", path),
        ]
    }

    /// Finds plugin `name` in CNI_PATH.
    pub fn find_plugin(&self, name: &str) -> Result<PathBuf, CniError> {
        if name.contains('/') || name.is_empty() {
            return Err(CniError::new(code::INVALID_CONFIG, format!("plugin type {name:?} must be a bare executable name")));
        }
        for dir in &self.path {
            let p = dir.join(name);
            if is_executable(&p) {
                return Ok(p);
            }
        }
        let dirs = self.path.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":");
        Err(CniError::new(
            code::INVALID_CONFIG,
            format!("plugin {name:?} not found in CNI_PATH {dirs:?}: install it there or fix ipam.type"),
        ))
    }

    /// Runs plugin `name` with `command` and our stdin config; returns its parsed result (ADD) or `None`.
    pub fn delegate(&self, name: &str, command: Command, stdin: &[u8]) -> Result<Option<CniResult>, CniError> {
        self.spawn_delegate(name, command, stdin)?.wait()
    }

    /// Starts plugin `name` with `command` and our stdin config without waiting for it, so the caller can do
    /// kernel work while the delegate runs.
    pub fn spawn_delegate(&self, name: &str, command: Command, stdin: &[u8]) -> Result<Delegation, CniError> {
        let bin = self.find_plugin(name)?;
        let mut child = Process::new(&bin)
            .envs(self.vars(command))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| CniError::new(code::IO_FAILURE, format!("execute delegate {}: {e}", bin.display())))?;
        if let Some(mut input) = child.stdin.take() {
            // A delegate that exits without reading stdin closes the pipe; its exit status tells what happened.
            let _ = input.write_all(stdin);
        }
        Ok(Delegation { child, bin, name: name.to_string(), command })
    }
}

/// A delegate plugin running in the background.
pub struct Delegation {
    child: std::process::Child,
    bin: PathBuf,
    name: String,
    command: Command,
}

impl Delegation {
    /// Waits for the delegate; its error JSON becomes our error (code kept), its result is parsed (ADD).
    pub fn wait(self) -> Result<Option<CniResult>, CniError> {
        let Delegation { child, bin, name, command } = self;
        let out = child
            .wait_with_output()
            .map_err(|e| CniError::new(code::IO_FAILURE, format!("wait for delegate {}: {e}", bin.display())))?;
        if !out.status.success() {
            let mut err = serde_json::from_slice::<CniError>(&out.stdout).unwrap_or_else(|_| {
                CniError::new(code::IO_FAILURE, format!("delegate {} failed ({})", bin.display(), out.status))
                    .with_details(String::from_utf8_lossy(&out.stdout).into_owned())
            });
            err.msg = format!("{name} {}: {}", command.as_str(), err.msg);
            return Err(err);
        }
        if command != Command::Add {
            return Ok(None);
        }
        let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
            CniError::new(code::DECODE_FAILURE, format!("delegate {name} printed a result that is not JSON: {e}"))
                .with_details(String::from_utf8_lossy(&out.stdout).into_owned())
        })?;
        CniResult::parse(&v).map(Some)
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

fn missing(var: &str, what: &str) -> CniError {
    CniError::new(code::INVALID_ENV, format!("{var} is not set: it must name {what}"))
}

/// The spec: alphanumerics plus `_`, `.`, `-`, starting with an alphanumeric.
pub fn validate_container_id(id: &str) -> Result<(), CniError> {
    if id.is_empty() {
        return Err(missing("CNI_CONTAINERID", "the container's id"));
    }
    let ok = id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !ok {
        return Err(CniError::new(
            code::INVALID_ENV,
            format!("CNI_CONTAINERID {id:?} is invalid: use letters, digits, '_', '.' and '-'"),
        ));
    }
    Ok(())
}

/// A Linux interface name: 1-15 bytes, no '/', ':' or whitespace, not "." or "..".
pub fn validate_ifname(name: &str) -> Result<(), CniError> {
    if name.is_empty() {
        return Err(missing("CNI_IFNAME", "the interface to create in the container, e.g. eth0"));
    }
    if name.len() > 15 || name == "." || name == ".." || name.chars().any(|c| c == '/' || c == ':' || c.is_whitespace()) {
        return Err(CniError::new(
            code::INVALID_ENV,
            format!("CNI_IFNAME {name:?} is not a valid interface name (at most 15 bytes, no '/', ':' or spaces)"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> Result<Env, CniError> {
        let m: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Env::from_vars(|k| m.get(k).cloned())
    }

    #[test]
    fn add_needs_netns_container_and_ifname() {
        let base = [("CNI_COMMAND", "ADD"), ("CNI_CONTAINERID", "c1"), ("CNI_NETNS", "/var/run/netns/x"), ("CNI_IFNAME", "eth0")];
        assert!(env(&base).is_ok());
        for skip in ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"] {
            let vars: Vec<_> = base.iter().copied().filter(|(k, _)| *k != skip).collect();
            let e = env(&vars).unwrap_err();
            assert_eq!(e.code, 4, "{skip}");
            assert!(e.msg.contains(skip), "{}", e.msg);
        }
    }

    #[test]
    fn del_does_not_need_netns() {
        assert!(env(&[("CNI_COMMAND", "DEL"), ("CNI_CONTAINERID", "c1"), ("CNI_IFNAME", "eth0")]).is_ok());
    }

    #[test]
    fn bad_command_and_names_are_code_4() {
        assert_eq!(env(&[("CNI_COMMAND", "FROB")]).unwrap_err().code, 4);
        assert_eq!(validate_ifname("much-too-long-name").unwrap_err().code, 4);
        assert_eq!(validate_container_id("../x").unwrap_err().code, 4);
        assert!(env(&[("CNI_COMMAND", "VERSION")]).is_ok());
    }

    #[test]
    fn cni_path_is_split() {
        let e = env(&[("CNI_COMMAND", "VERSION"), ("CNI_PATH", "/a:/b::/c")]).unwrap();
        assert_eq!(e.path.len(), 3);
        assert_eq!(e.find_plugin("no-such-plugin-xyz").unwrap_err().code, 7);
    }
}
