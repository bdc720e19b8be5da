//! The five capability sets of `process.capabilities` (bounding, effective, permitted, inheritable, ambient),
//! applied with the caps crate after the uid switch.

use caps::{CapSet, CapsHashSet};
use oci_spec::runtime::{Capability as OciCap, LinuxCapabilities};

/// Errors applying capabilities, naming the set and capability.
#[derive(Debug, thiserror::Error)]
pub enum CapabilityError {
    /// A capability name this runtime does not know.
    #[error("capability {name} is not known to this runtime; use a name from capabilities(7) like CAP_NET_ADMIN")]
    Unknown {
        /// The name given.
        name: String,
    },
    /// The kernel refused a capability set.
    #[error("set {set} capabilities: {source}")]
    Apply {
        /// Which set (`bounding`, `effective`, `permitted`, `inheritable`, `ambient`).
        set: &'static str,
        /// The cause.
        #[source]
        source: caps::errors::CapsError,
    },
}

/// Maps an oci-spec capability to the caps crate's.
pub fn to_caps(c: OciCap) -> Result<caps::Capability, CapabilityError> {
    let name = format!("CAP_{c}");
    name.parse().map_err(|_| CapabilityError::Unknown { name })
}

fn to_set(v: &Option<std::collections::HashSet<OciCap>>) -> Result<CapsHashSet, CapabilityError> {
    v.iter().flatten().map(|c| to_caps(*c)).collect()
}

/// Drops what the bounding set does not list. Call while still root with CAP_SETPCAP (before the uid switch).
pub fn apply_bounding(c: &LinuxCapabilities) -> Result<(), CapabilityError> {
    let bounding = to_set(c.bounding())?;
    // Bounding: drop what is not listed (caps unknown to the running kernel are skipped).
    for cap in caps::all() {
        if !bounding.contains(&cap) {
            if let Err(e) = caps::drop(None, CapSet::Bounding, cap) {
                if caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
                    return Err(CapabilityError::Apply { set: "bounding", source: e });
                }
            }
        }
    }
    Ok(())
}

/// `exec --cap NAME`: adds each capability to the bounding, effective and permitted sets of the exec'd process, and
/// to ambient only where inheritable already holds it (runc's rule since CVE-2022-29162: `--cap` never puts anything
/// into inheritable). Names are capabilities(7)'s, with or without the `CAP_` prefix, any case.
pub fn add_for_exec(c: &mut LinuxCapabilities, names: &[String]) -> Result<(), CapabilityError> {
    for n in names {
        let upper = n.trim().to_ascii_uppercase();
        let full = if upper.starts_with("CAP_") { upper } else { format!("CAP_{upper}") };
        let cap: OciCap = serde_json::from_value(serde_json::Value::String(full.clone()))
            .map_err(|_| CapabilityError::Unknown { name: n.clone() })?;
        to_caps(cap)?;
        let add = |set: &Option<std::collections::HashSet<OciCap>>| {
            let mut s = set.clone().unwrap_or_default();
            s.insert(cap);
            Some(s)
        };
        c.set_bounding(add(c.bounding()));
        c.set_effective(add(c.effective()));
        c.set_permitted(add(c.permitted()));
        if c.inheritable().as_ref().is_some_and(|i| i.contains(&cap)) {
            c.set_ambient(add(c.ambient()));
        }
    }
    Ok(())
}

/// The capability object of a process that lists none: every set empty, as runc reads it (not oci-spec's default
/// set, and not "keep everything").
pub fn none() -> LinuxCapabilities {
    serde_json::from_value(serde_json::json!({})).expect("an empty object is a valid capability set")
}

/// Sets effective, inheritable, permitted and ambient. Call after the uid switch (made with keep-caps). With
/// `keep_sys_admin`, CAP_SYS_ADMIN stays in effective and permitted (to load a seccomp filter without
/// no_new_privs) until [`drop_kept_sys_admin`].
pub fn apply(c: &LinuxCapabilities, keep_sys_admin: bool) -> Result<(), CapabilityError> {
    let mut permitted = to_set(c.permitted())?;
    let mut effective = to_set(c.effective())?;
    if keep_sys_admin {
        permitted.insert(caps::Capability::CAP_SYS_ADMIN);
        effective.insert(caps::Capability::CAP_SYS_ADMIN);
    }
    let inheritable = to_set(c.inheritable())?;
    let ambient = to_set(c.ambient())?;
    // Effective must stay a subset of permitted at each step: set effective first (shrinking), then the rest.
    caps::set(None, CapSet::Effective, &effective).map_err(|source| CapabilityError::Apply { set: "effective", source })?;
    caps::set(None, CapSet::Inheritable, &inheritable)
        .map_err(|source| CapabilityError::Apply { set: "inheritable", source })?;
    caps::set(None, CapSet::Permitted, &permitted).map_err(|source| CapabilityError::Apply { set: "permitted", source })?;
    // Ambient caps need to be in both permitted and inheritable; like runc, ones that cannot be raised are
    // skipped rather than failing the container (specs often list ambient caps without inheritable ones).
    let _ = caps::clear(None, CapSet::Ambient);
    for cap in ambient {
        if permitted.contains(&cap) && inheritable.contains(&cap) {
            caps::raise(None, CapSet::Ambient, cap).map_err(|source| CapabilityError::Apply { set: "ambient", source })?;
        }
    }
    Ok(())
}

/// Puts effective and permitted back to what `c` lists, dropping the CAP_SYS_ADMIN [`apply`] kept.
pub fn drop_kept_sys_admin(c: &LinuxCapabilities) -> Result<(), CapabilityError> {
    let effective = to_set(c.effective())?;
    let permitted = to_set(c.permitted())?;
    caps::set(None, CapSet::Effective, &effective).map_err(|source| CapabilityError::Apply { set: "effective", source })?;
    caps::set(None, CapSet::Permitted, &permitted).map_err(|source| CapabilityError::Apply { set: "permitted", source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_oci_names() {
        assert_eq!(to_caps(OciCap::SysAdmin).unwrap(), caps::Capability::CAP_SYS_ADMIN);
        assert_eq!(to_caps(OciCap::NetBindService).unwrap(), caps::Capability::CAP_NET_BIND_SERVICE);
        assert_eq!(to_caps(OciCap::Bpf).unwrap(), caps::Capability::CAP_BPF);
    }
}
