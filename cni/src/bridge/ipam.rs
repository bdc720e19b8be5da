//! IPAM as the bridge calls it: the plugin named by `ipam.type`, executed per the CNI exec protocol, except our
//! own `rkube-host-local`, whose code is linked into this binary and runs in-process (same config, same lease
//! store and lock, same result) to save an exec on every ADD and DEL. It still has to be installed in CNI_PATH,
//! so a node behaves the same whichever way it runs.

use crate::exec::{Command, Delegation, Env};
use crate::ipam::host_local::HostLocal;
use crate::plugin::{Call, Plugin};
use crate::spec::error::CniError;
use crate::spec::CniResult;

/// The `ipam.type` that runs in-process.
pub const IN_PROCESS: &str = "rkube-host-local";

/// An IPAM call that has finished (in-process) or is still running (a delegate process).
pub enum IpamCall {
    Finished(Result<Option<CniResult>, CniError>),
    Running(Delegation),
}

impl IpamCall {
    pub fn wait(self) -> Result<Option<CniResult>, CniError> {
        match self {
            IpamCall::Finished(r) => r,
            IpamCall::Running(d) => d.wait(),
        }
    }
}

/// Starts IPAM `command` for this call.
pub fn start(ipam_type: &str, command: Command, call: &Call) -> Result<IpamCall, CniError> {
    if ipam_type != IN_PROCESS {
        return Ok(IpamCall::Running(call.env.spawn_delegate(ipam_type, command, call.stdin)?));
    }
    call.env.find_plugin(ipam_type)?;
    let env = Env { command, ..call.env.clone() };
    let inner = Call { env: &env, stdin: call.stdin, config: call.config, cni_version: call.cni_version };
    let r = match command {
        Command::Add => HostLocal.add(&inner).map(Some),
        Command::Del => HostLocal.del(&inner).map(|()| None),
        Command::Check => HostLocal.check(&inner).map(|()| None),
        Command::Status => HostLocal.status(&inner).map(|()| None),
        Command::Gc => HostLocal.gc(&inner).map(|()| None),
        Command::Version => Ok(None),
    };
    Ok(IpamCall::Finished(r.map_err(|mut e| {
        e.msg = format!("{ipam_type} {}: {}", command.as_str(), e.msg);
        e
    })))
}
