//! The `ipam` section host-local reads: `ranges` (a list of range sets, each a list of ranges), or the legacy
//! single `subnet`/`rangeStart`/`rangeEnd`/`gateway`, plus `routes`, `dns` and `dataDir`.

use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use serde::Deserialize;

use super::allocator::{Range, RangeSet};
use super::IpamError;
use crate::spec::{Dns, Route};

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpamConfig {
    #[serde(default)]
    pub ranges: Vec<Vec<RangeConf>>,
    #[serde(default)]
    pub subnet: Option<IpNet>,
    #[serde(default)]
    pub range_start: Option<IpAddr>,
    #[serde(default)]
    pub range_end: Option<IpAddr>,
    #[serde(default)]
    pub gateway: Option<IpAddr>,
    #[serde(default)]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub dns: Dns,
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RangeConf {
    pub subnet: IpNet,
    #[serde(default)]
    pub range_start: Option<IpAddr>,
    #[serde(default)]
    pub range_end: Option<IpAddr>,
    #[serde(default)]
    pub gateway: Option<IpAddr>,
}

impl IpamConfig {
    /// Checked, normalized range sets: every range valid, no two ranges overlapping.
    pub fn range_sets(&self, network: &str) -> Result<Vec<RangeSet>, IpamError> {
        let invalid = |reason: String| IpamError::InvalidConfig { network: network.to_string(), reason };
        let mut confs = self.ranges.clone();
        if let Some(subnet) = self.subnet {
            confs.insert(0, vec![RangeConf { subnet, range_start: self.range_start, range_end: self.range_end, gateway: self.gateway }]);
        }
        if confs.is_empty() {
            return Err(invalid("no ranges: set ipam.ranges to e.g. [[{\"subnet\": \"10.244.1.0/24\"}]]".into()));
        }
        let mut sets = Vec::new();
        for (i, set) in confs.iter().enumerate() {
            if set.is_empty() {
                return Err(invalid(format!("range set {i} is empty")));
            }
            let ranges = set.iter().map(Range::from_conf).collect::<Result<Vec<_>, _>>().map_err(invalid)?;
            let v4 = ranges[0].subnet.addr().is_ipv4();
            if ranges.iter().any(|r| r.subnet.addr().is_ipv4() != v4) {
                return Err(invalid(format!("range set {i} mixes IPv4 and IPv6 ranges")));
            }
            sets.push(RangeSet(ranges));
        }
        let all: Vec<&Range> = sets.iter().flat_map(|s| s.0.iter()).collect();
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                if a.overlaps(b) {
                    return Err(invalid(format!("ranges {a} and {b} overlap")));
                }
            }
        }
        Ok(sets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(v: serde_json::Value) -> IpamConfig {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn legacy_subnet_becomes_a_range_set() {
        let c = conf(serde_json::json!({"type":"host-local","subnet":"10.9.0.0/24","routes":[{"dst":"0.0.0.0/0"}]}));
        let sets = c.range_sets("n").unwrap();
        assert_eq!(sets.len(), 1);
        assert_eq!(sets[0].0[0].start.to_string(), "10.9.0.1");
        assert_eq!(sets[0].0[0].end.to_string(), "10.9.0.254");
        assert_eq!(c.routes.len(), 1);
    }

    #[test]
    fn overlapping_or_mixed_ranges_are_rejected() {
        let c = conf(serde_json::json!({"ranges":[[{"subnet":"10.9.0.0/24"}],[{"subnet":"10.9.0.128/25"}]]}));
        let e = c.range_sets("n").unwrap_err().to_string();
        assert!(e.contains("overlap"), "{e}");
        let c = conf(serde_json::json!({"ranges":[[{"subnet":"10.9.0.0/24"},{"subnet":"fd00::/64"}]]}));
        assert!(c.range_sets("n").unwrap_err().to_string().contains("mixes"));
        let c = conf(serde_json::json!({"ranges":[]}));
        assert!(c.range_sets("n").unwrap_err().to_string().contains("no ranges"));
    }

    #[test]
    fn dual_stack_sets() {
        let c = conf(serde_json::json!({"ranges":[[{"subnet":"10.9.0.0/24"}],[{"subnet":"fd00:9::/64"}]]}));
        let sets = c.range_sets("n").unwrap();
        assert_eq!(sets.len(), 2);
        assert_eq!(sets[1].0[0].gateway, Some("fd00:9::1".parse().unwrap()));
    }
}
