//! The spec's error object (`{"cniVersion", "code", "msg", "details"}`) and its well-known codes.

use serde::{Deserialize, Serialize};

/// Error codes. 1-99 are reserved by the spec; 100 and up are this project's own.
pub mod code {
    /// Incompatible CNI version.
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// Unsupported field in network configuration.
    pub const UNSUPPORTED_FIELD: u32 = 2;
    /// Container unknown or does not exist (no cleanup needed).
    pub const UNKNOWN_CONTAINER: u32 = 3;
    /// Invalid necessary environment variables (CNI_COMMAND, CNI_CONTAINERID, ...).
    pub const INVALID_ENV: u32 = 4;
    /// I/O failure.
    pub const IO_FAILURE: u32 = 5;
    /// Failed to decode content (invalid JSON on stdin or from a delegate).
    pub const DECODE_FAILURE: u32 = 6;
    /// Invalid network config.
    pub const INVALID_CONFIG: u32 = 7;
    /// Try again later (a transient condition such as a lock held elsewhere).
    pub const TRY_AGAIN_LATER: u32 = 11;
    /// STATUS: the plugin cannot service ADD requests now.
    pub const NOT_AVAILABLE: u32 = 50;
    /// rkube: the IPAM range has no free address left.
    pub const RANGE_EXHAUSTED: u32 = 100;
    /// rkube: CHECK found the attachment differs from what ADD made (interface, address or route missing).
    pub const CHECK_FAILED: u32 = 101;
    /// rkube: a netlink, nftables or sysctl operation failed.
    pub const NETWORK_SETUP: u32 = 102;
}

/// A CNI error, printed as JSON on stdout with a non-zero exit status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{msg} (code {code}{})", if details.is_empty() { String::new() } else { format!(": {details}") })]
pub struct CniError {
    /// The spec's error code ([`code`]); 100 and up are the plugin's own.
    pub code: u32,
    /// A short message.
    pub msg: String,
    /// A longer explanation, if any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

impl CniError {
    /// An error with `code` and `msg`, no details.
    pub fn new(code: u32, msg: impl Into<String>) -> Self {
        Self { code, msg: msg.into(), details: String::new() }
    }

    /// The same error with `details`.
    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    /// Builds an error from any error value: `msg` is its display, `details` the chain of its sources.
    pub fn from_error(code: u32, err: &(dyn std::error::Error + 'static)) -> Self {
        let mut details = Vec::new();
        let mut src = err.source();
        while let Some(s) = src {
            details.push(s.to_string());
            src = s.source();
        }
        Self { code, msg: err.to_string(), details: details.join(": ") }
    }

    /// The JSON object the spec asks for, tagged with `cni_version`.
    pub fn to_json(&self, cni_version: &str) -> String {
        let v = serde_json::json!({
            "cniVersion": cni_version,
            "code": self.code,
            "msg": self.msg,
            "details": self.details,
        });
        let mut v = v;
        if self.details.is_empty() {
            if let Some(o) = v.as_object_mut() {
                o.remove("details");
            }
        }
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_json_has_spec_fields() {
        let e = CniError::new(code::INVALID_CONFIG, "bridge name too long").with_details("limit is 15");
        let v: serde_json::Value = serde_json::from_str(&e.to_json("1.0.0")).unwrap();
        assert_eq!(v["cniVersion"], "1.0.0");
        assert_eq!(v["code"], 7);
        assert_eq!(v["msg"], "bridge name too long");
        assert_eq!(v["details"], "limit is 15");
    }

    #[test]
    fn empty_details_are_left_out() {
        let e = CniError::new(code::IO_FAILURE, "disk full");
        let v: serde_json::Value = serde_json::from_str(&e.to_json("0.4.0")).unwrap();
        assert!(v.get("details").is_none());
        assert_eq!(v["code"], 5);
    }

    #[test]
    fn from_error_keeps_the_source_chain() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        #[derive(Debug, thiserror::Error)]
        #[error("open lease dir /x")]
        struct Outer(#[source] std::io::Error);
        let e = CniError::from_error(code::IO_FAILURE, &Outer(io));
        assert_eq!(e.msg, "open lease dir /x");
        assert_eq!(e.details, "no such file");
    }
}
