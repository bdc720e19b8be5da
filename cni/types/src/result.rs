//! The success result of ADD (and the `prevResult` of chained plugins), in spec 1.0.0 form, with conversion to and
//! from the 0.3.x/0.4.0 form whose `ips[]` carry a `version` field.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::error::{code, CniError};
use crate::version;

/// What ADD made: interfaces, addresses, routes and DNS settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CniResult {
    /// `cniVersion` of the result.
    pub cni_version: String,
    /// The interfaces made or used (host side and container side).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    /// The addresses assigned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpConfig>,
    /// The routes added in the container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// DNS settings for the container.
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    pub dns: Dns,
}

/// An interface the plugin made or used.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Interface {
    /// The interface's name.
    pub name: String,
    /// Its MAC address, if it has one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    /// Its MTU, if the plugin set one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// The netns path it is in; empty for a host interface.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sandbox: String,
}

/// An address assigned to an interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// "4" or "6"; only in 0.3.x/0.4.0 results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The address with its prefix.
    pub address: IpNet,
    /// The default gateway of the subnet, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Index into `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

/// A route added in the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// The destination.
    pub dst: IpNet,
    /// The next hop; none means the interface's default gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
    /// The route's MTU, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// The route's priority (metric), if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
}

/// DNS settings, as in resolv.conf.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    /// Nameserver addresses, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// The local domain.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    /// Search domains, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// Resolver options (`ndots:5`...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty() && self.domain.is_empty() && self.search.is_empty() && self.options.is_empty()
    }
}

impl CniResult {
    /// Parses a result of any supported version (an IPAM delegate's stdout, or a `prevResult`).
    pub fn parse(value: &serde_json::Value) -> Result<CniResult, CniError> {
        let mut r: CniResult = serde_json::from_value(value.clone()).map_err(|e| {
            CniError::new(code::DECODE_FAILURE, format!("cannot decode CNI result: {e}"))
                .with_details(value.to_string())
        })?;
        for ip in &mut r.ips {
            ip.version = None;
        }
        Ok(r)
    }

    /// Serializes in the shape `cni_version` expects: 0.x results name each IP's family in `version`.
    pub fn to_json(&self, cni_version: &str) -> String {
        let mut r = self.clone();
        r.cni_version = cni_version.to_string();
        let legacy = version::parse(cni_version) < (1, 0, 0);
        for ip in &mut r.ips {
            ip.version = legacy.then(|| if ip.address.addr().is_ipv4() { "4" } else { "6" }.to_string());
        }
        if version::parse(cni_version) < (1, 1, 0) {
            // Interface and route MTUs are 1.1 fields.
            for i in &mut r.interfaces {
                i.mtu = None;
            }
            for rt in &mut r.routes {
                rt.mtu = None;
                rt.priority = None;
            }
        }
        serde_json::to_string(&r).unwrap_or_else(|e| format!("{{\"error\":\"serialize result: {e}\"}}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CniResult {
        CniResult {
            cni_version: "1.0.0".into(),
            interfaces: vec![Interface { name: "eth0".into(), mac: "aa:bb:cc:dd:ee:ff".into(), mtu: None, sandbox: "/var/run/netns/x".into() }],
            ips: vec![IpConfig { version: None, address: "10.1.0.5/24".parse().unwrap(), gateway: Some("10.1.0.1".parse().unwrap()), interface: Some(0) }],
            routes: vec![Route { dst: "0.0.0.0/0".parse().unwrap(), gw: None, mtu: None, priority: None }],
            dns: Dns::default(),
        }
    }

    #[test]
    fn v1_result_has_no_ip_version() {
        let v: serde_json::Value = serde_json::from_str(&sample().to_json("1.0.0")).unwrap();
        assert_eq!(v["ips"][0]["address"], "10.1.0.5/24");
        assert_eq!(v["ips"][0]["gateway"], "10.1.0.1");
        assert!(v["ips"][0].get("version").is_none());
        assert!(v.get("dns").is_none());
        assert_eq!(v["routes"][0]["dst"], "0.0.0.0/0");
    }

    #[test]
    fn legacy_result_names_ip_family() {
        let v: serde_json::Value = serde_json::from_str(&sample().to_json("0.4.0")).unwrap();
        assert_eq!(v["cniVersion"], "0.4.0");
        assert_eq!(v["ips"][0]["version"], "4");
    }

    #[test]
    fn parses_a_legacy_result() {
        let v = serde_json::json!({"cniVersion":"0.4.0","ips":[{"version":"6","address":"fd00::5/64","gateway":"fd00::1"}],"dns":{}});
        let r = CniResult::parse(&v).unwrap();
        assert_eq!(r.ips[0].address.to_string(), "fd00::5/64");
        assert_eq!(r.ips[0].version, None);
    }

    #[test]
    fn garbage_result_is_a_decode_error() {
        let e = CniResult::parse(&serde_json::json!({"ips":[{"address":"nonsense"}]})).unwrap_err();
        assert_eq!(e.code, code::DECODE_FAILURE);
    }
}
