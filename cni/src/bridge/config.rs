//! The bridge plugin's network config: the common fields plus `bridge`, `isGateway`, `isDefaultGateway`,
//! `forceAddress`, `ipMasq`, `mtu`, `hairpinMode`, `promiscMode`, `vlan`, and rkube's `stateDir` and
//! `clusterCIDR`.

use std::path::PathBuf;

use serde::Deserialize;

use crate::spec::error::{code, CniError};
use crate::spec::NetConf;

/// Where rkube-bridge records which attachments use a network's masquerade table.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/cni/rkube-bridge";

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BridgeConf {
    #[serde(flatten)]
    pub net: NetConf,
    #[serde(default = "default_bridge")]
    pub bridge: String,
    #[serde(default)]
    pub is_gateway: bool,
    #[serde(default)]
    pub is_default_gateway: bool,
    #[serde(default)]
    #[allow(dead_code)] // the reference plugin's forceAddress: parsed with the rest, never read here
    pub force_address: bool,
    #[serde(default)]
    pub ip_masq: bool,
    #[serde(default)]
    pub mtu: Option<u32>,
    #[serde(default)]
    pub hairpin_mode: bool,
    #[serde(default)]
    pub promisc_mode: bool,
    #[serde(default)]
    pub vlan: Option<u16>,
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// rkube's: the network of every pod on every node. With `ipMasq`, traffic from the pods to addresses
    /// inside it is not masqueraded, so a pod reached across nodes sees the sender's pod IP (Kubernetes'
    /// network model); only traffic leaving it is. Without it (or when it does not hold the pod subnet), the
    /// pod subnet alone is kept unmasqueraded, as the reference plugin does.
    #[serde(default, rename = "clusterCIDR")]
    pub cluster_cidr: Option<ipnet::IpNet>,
}

fn default_bridge() -> String {
    "cni0".to_string()
}

impl BridgeConf {
    /// Checks what can be checked before anything is made, so bad config leaves nothing half-made.
    pub fn validate(&mut self) -> Result<(), CniError> {
        let invalid = |m: String| CniError::new(code::INVALID_CONFIG, m);
        if self.bridge.is_empty() {
            return Err(invalid("\"bridge\" is empty: name the bridge, e.g. \"cni0\"".into()));
        }
        if self.bridge.len() > 15 {
            return Err(invalid(format!(
                "bridge name {:?} is {} bytes long; Linux interface names are at most 15",
                self.bridge,
                self.bridge.len()
            )));
        }
        if self.bridge.chars().any(|c| c == '/' || c == ':' || c.is_whitespace()) || self.bridge == "." || self.bridge == ".." {
            return Err(invalid(format!("bridge name {:?} is not a valid interface name", self.bridge)));
        }
        if let Some(mtu) = self.mtu {
            if !(68..=65535).contains(&mtu) {
                return Err(invalid(format!("mtu {mtu} is out of range (68-65535)")));
            }
        }
        if let Some(vlan) = self.vlan {
            if vlan > 4094 {
                return Err(invalid(format!("vlan {vlan} is out of range (0-4094)")));
            }
            if vlan != 0 {
                return Err(CniError::new(
                    code::UNSUPPORTED_FIELD,
                    format!("vlan {vlan}: VLAN tagging is not supported by rkube-bridge yet; remove \"vlan\""),
                ));
            }
        }
        if self.is_default_gateway {
            self.is_gateway = true;
        }
        self.net.ipam_type()?;
        Ok(())
    }

    /// The network the masquerade rule keeps inside for a pod address in `subnet`: the cluster CIDR when it
    /// holds the subnet, else the subnet.
    pub fn masq_network(&self, subnet: ipnet::IpNet) -> ipnet::IpNet {
        match self.cluster_cidr {
            Some(c) if c.contains(&subnet) => c,
            _ => subnet,
        }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.state_dir.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::config::decode;

    fn conf(extra: serde_json::Value) -> Result<BridgeConf, CniError> {
        let mut v = serde_json::json!({"cniVersion":"1.0.0","name":"n","type":"rkube-bridge","ipam":{"type":"rkube-host-local"}});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        let mut c: BridgeConf = decode(&v)?;
        c.validate()?;
        Ok(c)
    }

    #[test]
    fn masquerade_keeps_the_cluster_cidr_inside_when_it_holds_the_pod_subnet() {
        let net = |s: &str| s.parse::<ipnet::IpNet>().unwrap();
        let c = conf(serde_json::json!({"ipMasq": true, "clusterCIDR": "10.244.0.0/16"})).unwrap();
        assert_eq!(c.masq_network(net("10.244.3.0/24")), net("10.244.0.0/16"));
        assert_eq!(c.masq_network(net("192.168.9.0/24")), net("192.168.9.0/24"), "a subnet outside it stays its own");
        let plain = conf(serde_json::json!({"ipMasq": true})).unwrap();
        assert_eq!(plain.masq_network(net("10.244.3.0/24")), net("10.244.3.0/24"));
        assert!(conf(serde_json::json!({"clusterCIDR": "nonsense"})).is_err());
    }

    #[test]
    fn defaults() {
        let c = conf(serde_json::json!({})).unwrap();
        assert_eq!(c.bridge, "cni0");
        assert!(!c.is_gateway && !c.ip_masq);
        assert!(conf(serde_json::json!({"isDefaultGateway": true})).unwrap().is_gateway);
    }

    #[test]
    fn bad_bridge_config_is_code_7() {
        let e = conf(serde_json::json!({"bridge":"a-very-long-bridge-name"})).unwrap_err();
        assert_eq!(e.code, 7);
        assert!(e.msg.contains("15"), "{}", e.msg);
        assert_eq!(conf(serde_json::json!({"mtu": 10})).unwrap_err().code, 7);
        assert_eq!(conf(serde_json::json!({"isGateway": "yes"})).unwrap_err().code, 7);
        let mut v = serde_json::json!({"cniVersion":"1.0.0","name":"n","type":"rkube-bridge"});
        let mut c: BridgeConf = decode(&v).unwrap();
        assert_eq!(c.validate().unwrap_err().code, 7, "ipam.type is required");
        v["ipam"] = serde_json::json!({});
        c = decode(&v).unwrap();
        assert!(c.validate().unwrap_err().msg.contains("ipam.type"));
    }
}
