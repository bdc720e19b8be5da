//! Network configuration as a plugin receives it on stdin, and network configuration lists (conflists) as a
//! runtime reads them from /etc/cni/net.d and splits into one config per plugin.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{code, CniError};
use crate::result::{CniResult, Dns};
use crate::version;

/// The fields every plugin config has. Plugins flatten this into their own config type.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    /// `cniVersion`: the spec version the config is written for.
    pub cni_version: String,
    /// `name`: the network's name, unique on the host.
    #[serde(default)]
    pub name: String,
    /// `type`: the plugin binary to run, found in `CNI_PATH`.
    #[serde(rename = "type", default)]
    pub plugin_type: String,
    /// `ipam`: the IPAM delegate's config (its own `type` and fields).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipam: Option<Value>,
    /// `dns`: nameservers, domain, search and options to hand to the container.
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    pub dns: Dns,
    /// `prevResult`: the result of the previous plugin in a chain (injected by the runtime).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_result: Option<Value>,
    /// `runtimeConfig`: the capability arguments the runtime passes (port mappings, bandwidth...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_config: Option<Value>,
}

impl NetConf {
    /// The previous plugin's result, if the runtime passed one.
    pub fn prev_result(&self) -> Result<Option<CniResult>, CniError> {
        self.prev_result.as_ref().map(CniResult::parse).transpose()
    }

    /// The `ipam.type` to delegate to, or a code-7 error when there is none.
    pub fn ipam_type(&self) -> Result<&str, CniError> {
        self.ipam
            .as_ref()
            .and_then(|i| i.get("type"))
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                CniError::new(code::INVALID_CONFIG, format!("network {:?} has no ipam.type: name an IPAM plugin such as \"rkube-host-local\"", self.name))
            })
    }
}

/// Only the version, read first so every later error can be answered in the caller's version.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VersionOnly {
    #[serde(default)]
    cni_version: Option<Value>,
}

/// Decodes stdin as JSON (code 6 on failure) and returns its `cniVersion` after checking we speak it (code 1).
pub fn read_version(stdin: &[u8]) -> Result<(Value, String), CniError> {
    let value: Value = serde_json::from_slice(stdin).map_err(|e| {
        CniError::new(code::DECODE_FAILURE, format!("network config on stdin is not valid JSON: {e}"))
    })?;
    if !value.is_object() {
        return Err(CniError::new(code::DECODE_FAILURE, "network config on stdin must be a JSON object"));
    }
    let v: VersionOnly = serde_json::from_value(value.clone())
        .map_err(|e| CniError::new(code::DECODE_FAILURE, format!("cannot decode network config: {e}")))?;
    let ver = match v.cni_version {
        Some(Value::String(s)) => s,
        Some(other) => {
            return Err(CniError::new(code::INCOMPATIBLE_VERSION, format!("cniVersion must be a string, got {other}")))
        }
        None => return Err(CniError::new(code::INCOMPATIBLE_VERSION, "network config has no cniVersion")),
    };
    version::ensure_supported(&ver)?;
    Ok((value, ver))
}

/// Decodes a plugin's config type from an already version-checked JSON value (code 7 on failure) and checks the
/// network name is safe to use as a file name.
pub fn decode<T: DeserializeOwned>(value: &Value) -> Result<T, CniError> {
    let name = value.get("name").and_then(Value::as_str).unwrap_or("");
    validate_network_name(name)?;
    serde_json::from_value(value.clone())
        .map_err(|e| CniError::new(code::INVALID_CONFIG, format!("invalid network config for {name:?}: {e}")))
}

/// The spec allows alphanumerics, `_`, `.` and `-`, starting with an alphanumeric.
pub fn validate_network_name(name: &str) -> Result<(), CniError> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(CniError::new(
            code::INVALID_CONFIG,
            format!("network name {name:?} is invalid: use letters, digits, '_', '.' and '-', starting with a letter or digit"),
        ))
    }
}

/// A network configuration list (`*.conflist`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfList {
    /// `cniVersion`: the spec version of every plugin's config in the list.
    pub cni_version: String,
    /// `name`: the network's name, given to every plugin.
    pub name: String,
    /// `disableCheck`: CHECK is skipped for this network.
    #[serde(default)]
    pub disable_check: bool,
    /// `disableGC`: GC is skipped for this network.
    #[serde(default)]
    pub disable_gc: bool,
    /// `plugins`: each plugin's own config, run in order on ADD and in reverse on DEL.
    pub plugins: Vec<Value>,
}

impl ConfList {
    /// Parses a conflist, or a single plugin config (a 0.x `.conf`) as a one-plugin list.
    pub fn parse(bytes: &[u8]) -> Result<ConfList, CniError> {
        let (value, ver) = read_version(bytes)?;
        if value.get("plugins").is_some() {
            let list: ConfList = decode(&value)?;
            if list.plugins.is_empty() {
                return Err(CniError::new(code::INVALID_CONFIG, format!("conflist {:?} has no plugins", list.name)));
            }
            Ok(list)
        } else {
            let conf: NetConf = decode(&value)?;
            Ok(ConfList { cni_version: ver, name: conf.name, disable_check: false, disable_gc: false, plugins: vec![value] })
        }
    }

    /// The stdin config for plugin `i`: its own object plus the list's name and version, and `prevResult`.
    pub fn plugin_config(&self, i: usize, prev_result: Option<&CniResult>) -> Option<Value> {
        let mut obj = self.plugins.get(i)?.as_object()?.clone();
        obj.insert("name".into(), Value::String(self.name.clone()));
        obj.insert("cniVersion".into(), Value::String(self.cni_version.clone()));
        if let Some(prev) = prev_result {
            let prev: Value = serde_json::from_str(&prev.to_json(&self.cni_version)).ok()?;
            obj.insert("prevResult".into(), prev);
        }
        Some(Value::Object(obj))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_json_is_code_6() {
        assert_eq!(read_version(b"{not json").unwrap_err().code, 6);
        assert_eq!(read_version(b"[1,2]").unwrap_err().code, 6);
    }

    #[test]
    fn unknown_or_missing_version_is_code_1() {
        assert_eq!(read_version(br#"{"cniVersion":"7.0.0","name":"n"}"#).unwrap_err().code, 1);
        assert_eq!(read_version(br#"{"name":"n"}"#).unwrap_err().code, 1);
        assert_eq!(read_version(br#"{"cniVersion":1}"#).unwrap_err().code, 1);
        assert_eq!(read_version(br#"{"cniVersion":"0.4.0"}"#).unwrap().1, "0.4.0");
    }

    #[test]
    fn network_name_must_be_a_safe_file_name() {
        assert!(validate_network_name("pods-1.net_a").is_ok());
        for bad in ["", "../etc", "a/b", "-x", "a b"] {
            assert_eq!(validate_network_name(bad).unwrap_err().code, 7, "{bad}");
        }
    }

    #[test]
    fn conflist_splits_into_plugin_configs() {
        let list = ConfList::parse(
            br#"{"cniVersion":"0.4.0","name":"pods","plugins":[{"type":"rkube-bridge","bridge":"rk0"},{"type":"portmap"}]}"#,
        )
        .unwrap();
        let prev = CniResult { cni_version: "1.0.0".into(), ips: vec![crate::IpConfig { version: None, address: "10.0.0.2/24".parse().unwrap(), gateway: None, interface: None }], ..Default::default() };
        let c1 = list.plugin_config(1, Some(&prev)).unwrap();
        assert_eq!(c1["name"], "pods");
        assert_eq!(c1["cniVersion"], "0.4.0");
        assert_eq!(c1["type"], "portmap");
        assert_eq!(c1["prevResult"]["ips"][0]["version"], "4");
        let single = ConfList::parse(br#"{"cniVersion":"0.3.1","name":"x","type":"rkube-bridge"}"#).unwrap();
        assert_eq!(single.plugins.len(), 1);
    }
}
