//! `linux.seccomp`: builds and loads a filter with libseccomp.
//!
//! Why libseccomp and not a pure-Rust crate: the OCI profile names syscalls and architectures, and libseccomp is
//! the reference that resolves names per architecture (including multiplexed and x32 variants), handles
//! SCMP_CMP_MASKED_EQ and argument comparison on 32-bit arches, and is what runc and crun use, so profiles made
//! for them (podman's, Docker's) behave the same here. The cost is one shared library already on every Debian host
//! (libseccomp2); the filter is built only when the spec asks for seccomp.

use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompOperator};

/// Errors building or loading a seccomp filter, naming the field.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("linux.seccomp.{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("linux.seccomp: {what}: {source}")]
    Lib { what: String, #[source] source: libseccomp::error::SeccompError },
}

fn action(a: LinuxSeccompAction, errno: Option<u32>) -> ScmpAction {
    match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => ScmpAction::KillThread,
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno.unwrap_or(libc::EPERM as u32) as i32),
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(errno.unwrap_or(libc::EPERM as u32) as u16),
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
    }
}

/// Checks a profile before anything is made (config validation): every action is one this runtime carries out,
/// every architecture one libseccomp knows, every argument index 0-5. SCMP_ACT_NOTIFY is refused: rkube-runtime
/// has no seccomp agent to hand the listener to (`listenerPath`), and a notified syscall with nobody listening
/// blocks the container, and whoever waits on it, for ever.
pub fn check(s: &LinuxSeccomp) -> Result<(), SeccompError> {
    let invalid = |field: String, reason: String| SeccompError::Invalid { field, reason };
    let notify = |field: String| {
        let listener = match s.listener_path() {
            Some(p) => format!("listenerPath {} cannot be served", p.display()),
            None => "no listenerPath is given".to_string(),
        };
        invalid(
            field,
            format!("SCMP_ACT_NOTIFY is not supported by rkube-runtime ({listener}); use SCMP_ACT_ERRNO, or a runtime with a seccomp agent"),
        )
    };
    if s.default_action() == LinuxSeccompAction::ScmpActNotify {
        return Err(notify("defaultAction".into()));
    }
    for (i, a) in s.architectures().iter().flatten().enumerate() {
        let name = serde_json::to_value(a).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        name.parse::<ScmpArch>().map_err(|_| invalid(format!("architectures[{i}]"), format!("unknown architecture {name:?}")))?;
    }
    for (i, rule) in s.syscalls().iter().flatten().enumerate() {
        if rule.action() == LinuxSeccompAction::ScmpActNotify {
            return Err(notify(format!("syscalls[{i}].action")));
        }
        for (j, arg) in rule.args().iter().flatten().enumerate() {
            if arg.index() > 5 {
                return Err(invalid(format!("syscalls[{i}].args[{j}].index"), format!("{} is not a syscall argument index (0-5)", arg.index())));
            }
        }
    }
    Ok(())
}

/// Builds the filter (no syscall is filtered yet). Syscall names unknown to libseccomp are skipped, as runc does,
/// so one profile serves several kernels.
pub fn build(s: &LinuxSeccomp) -> Result<ScmpFilterContext, SeccompError> {
    let lib = |what: &str| {
        let what = what.to_string();
        move |source| SeccompError::Lib { what: what.clone(), source }
    };
    let default = action(s.default_action(), s.default_errno_ret());
    let mut ctx = ScmpFilterContext::new(default).map_err(lib("init"))?;
    // The runtime applies no_new_privs itself when the spec asks for it.
    ctx.set_ctl_nnp(false).map_err(lib("disable implicit no_new_privs"))?;
    for (i, a) in s.architectures().iter().flatten().enumerate() {
        let name = serde_json::to_value(a).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        let arch: ScmpArch = name.parse().map_err(|_| SeccompError::Invalid {
            field: format!("architectures[{i}]"),
            reason: format!("unknown architecture {name:?}"),
        })?;
        ctx.add_arch(arch).map_err(lib(&format!("add architecture {name}")))?;
    }
    for (i, rule) in s.syscalls().iter().flatten().enumerate() {
        let act = action(rule.action(), rule.errno_ret());
        if act == default {
            continue; // libseccomp refuses rules equal to the default action
        }
        let mut cmps = Vec::new();
        for (j, arg) in rule.args().iter().flatten().enumerate() {
            let op = match arg.op() {
                LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
                LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
                LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
                LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
                LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
                LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
                LinuxSeccompOperator::ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(arg.value()),
            };
            if arg.index() > 5 {
                return Err(SeccompError::Invalid {
                    field: format!("syscalls[{i}].args[{j}].index"),
                    reason: format!("{} is not a syscall argument index (0-5)", arg.index()),
                });
            }
            let datum = if matches!(op, ScmpCompareOp::MaskedEqual(_)) { arg.value_two().unwrap_or(0) } else { arg.value() };
            cmps.push(ScmpArgCompare::new(arg.index() as u32, op, datum));
        }
        for name in rule.names() {
            let Ok(sc) = ScmpSyscall::from_name(name) else { continue };
            let r = if cmps.is_empty() {
                ctx.add_rule(act, sc)
            } else {
                ctx.add_rule_conditional(act, sc, &cmps)
            };
            r.map_err(lib(&format!("syscalls[{i}] {name}")))?;
        }
    }
    Ok(ctx)
}

/// Loads a built filter into this process (the last step before exec).
pub fn load(ctx: &ScmpFilterContext) -> Result<(), SeccompError> {
    ctx.load().map_err(|source| SeccompError::Lib { what: "load filter".into(), source })
}
