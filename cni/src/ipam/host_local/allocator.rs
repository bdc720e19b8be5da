//! Ranges and the search for a free address: next after the last one handed out in the set, wrapping around,
//! never the subnet's network address, its IPv4 broadcast address or the gateway.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::config::RangeConf;
use crate::spec::IpConfig;

/// One range: the subnet and the inclusive [start, end] handed out from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub subnet: IpNet,
    pub start: IpAddr,
    pub end: IpAddr,
    pub gateway: Option<IpAddr>,
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

fn from_u128(v: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(v as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(v))
    }
}

impl Range {
    /// Normalizes a configured range: defaults start to network+1 and end to the last usable address, the gateway
    /// to network+1, and checks they lie inside the subnet.
    pub fn from_conf(c: &RangeConf) -> Result<Range, String> {
        let subnet = c.subnet.trunc();
        let v4 = subnet.addr().is_ipv4();
        let net = to_u128(subnet.network());
        let last = to_u128(subnet.broadcast());
        if (v4 && subnet.prefix_len() > 30) || (!v4 && subnet.prefix_len() > 126) {
            return Err(format!("subnet {subnet} is too small to hand out addresses from"));
        }
        let first_usable = net + 1;
        let last_usable = if v4 { last - 1 } else { last };
        let inside = |what: &str, ip: IpAddr| -> Result<u128, String> {
            if ip.is_ipv4() != v4 || !subnet.contains(&ip) {
                return Err(format!("{what} {ip} is outside subnet {subnet}"));
            }
            Ok(to_u128(ip))
        };
        let start = match c.range_start {
            Some(ip) => inside("rangeStart", ip)?.max(first_usable),
            None => first_usable,
        };
        let end = match c.range_end {
            Some(ip) => inside("rangeEnd", ip)?.min(last_usable),
            None => last_usable,
        };
        if start > end {
            return Err(format!("rangeStart {} is after rangeEnd {} in {subnet}", from_u128(start, v4), from_u128(end, v4)));
        }
        let gateway = match c.gateway {
            Some(gw) => {
                inside("gateway", gw)?;
                Some(gw)
            }
            None => Some(from_u128(first_usable, v4)),
        };
        Ok(Range { subnet, start: from_u128(start, v4), end: from_u128(end, v4), gateway })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.subnet.addr().is_ipv4()
            && (to_u128(self.start)..=to_u128(self.end)).contains(&to_u128(ip))
    }

    pub fn overlaps(&self, other: &Range) -> bool {
        self.subnet.contains(&other.subnet.network()) || other.subnet.contains(&self.subnet.network())
    }

    /// An address this range may hand out.
    fn usable(&self, ip: IpAddr) -> bool {
        ip != self.subnet.network()
            && !(ip.is_ipv4() && ip == self.subnet.broadcast())
            && Some(ip) != self.gateway
    }

    /// The result entry for `ip` leased from this range.
    pub fn ip_config(&self, ip: IpAddr) -> IpConfig {
        let address = IpNet::new(ip, self.subnet.prefix_len()).unwrap_or(self.subnet);
        IpConfig { version: None, address, gateway: self.gateway, interface: None }
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}-{}]", self.subnet, self.start, self.end)
    }
}

/// Ranges of one family an attachment gets one address from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeSet(pub Vec<Range>);

impl fmt::Display for RangeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|r| r.to_string()).collect();
        write!(f, "{}", parts.join(", "))
    }
}

impl RangeSet {
    /// The range holding `ip`, if any.
    pub fn range_of(&self, ip: IpAddr) -> Option<&Range> {
        self.0.iter().find(|r| r.contains(ip))
    }

    /// The first address after `last` (wrapping around the set once) that is usable and not `taken`.
    pub fn next_free(&self, last: Option<IpAddr>, taken: impl Fn(IpAddr) -> bool) -> Option<(IpAddr, &Range)> {
        let n = self.0.len();
        let (first_idx, first_pos) = match last.and_then(|ip| self.0.iter().position(|r| r.contains(ip)).map(|i| (i, ip))) {
            Some((i, ip)) => (i, Some(to_u128(ip))),
            None => (0, None),
        };
        // Walk: rest of the range holding `last`, the other ranges in order, then the start of that range.
        for step in 0..=n {
            let i = (first_idx + step) % n;
            let r = &self.0[i];
            let v4 = r.subnet.addr().is_ipv4();
            let (lo, hi) = match (step, first_pos) {
                (0, Some(p)) => (p.saturating_add(1), to_u128(r.end)),
                (s, Some(p)) if s == n => (to_u128(r.start), p),
                (s, None) if s == n => break,
                _ => (to_u128(r.start), to_u128(r.end)),
            };
            let mut v = lo;
            while v <= hi {
                let ip = from_u128(v, v4);
                if r.usable(ip) && !taken(ip) {
                    return Some((ip, r));
                }
                v += 1;
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn range(subnet: &str, start: Option<&str>, end: Option<&str>, gw: Option<&str>) -> Range {
        Range::from_conf(&RangeConf {
            subnet: subnet.parse().unwrap(),
            range_start: start.map(|s| s.parse().unwrap()),
            range_end: end.map(|s| s.parse().unwrap()),
            gateway: gw.map(|s| s.parse().unwrap()),
        })
        .unwrap()
    }

    #[test]
    fn never_network_gateway_or_broadcast() {
        let set = RangeSet(vec![range("10.9.0.0/30", Some("10.9.0.0"), Some("10.9.0.3"), None)]);
        // /30: .0 network, .1 gateway, .3 broadcast: only .2 is usable.
        let first = set.next_free(None, |_| false).unwrap().0;
        assert_eq!(first.to_string(), "10.9.0.2");
        let taken: HashSet<IpAddr> = [first].into();
        assert!(set.next_free(None, |ip| taken.contains(&ip)).is_none());
    }

    #[test]
    fn continues_after_last_and_wraps() {
        let set = RangeSet(vec![range("10.9.0.0/24", Some("10.9.0.10"), Some("10.9.0.12"), None)]);
        let next = |last: &str| set.next_free(Some(last.parse().unwrap()), |_| false).unwrap().0.to_string();
        assert_eq!(next("10.9.0.10"), "10.9.0.11");
        assert_eq!(next("10.9.0.12"), "10.9.0.10");
        let taken: HashSet<IpAddr> = ["10.9.0.10".parse().unwrap()].into();
        let ip = set.next_free(Some("10.9.0.12".parse().unwrap()), |ip| taken.contains(&ip)).unwrap().0;
        assert_eq!(ip.to_string(), "10.9.0.11");
    }

    #[test]
    fn walks_across_ranges_of_a_set() {
        let set = RangeSet(vec![
            range("10.9.0.0/24", Some("10.9.0.250"), None, None),
            range("10.9.1.0/24", None, Some("10.9.1.3"), Some("10.9.1.1")),
        ]);
        let mut taken = HashSet::new();
        let mut got = Vec::new();
        let mut last = None;
        while let Some((ip, _)) = set.next_free(last, |ip| taken.contains(&ip)) {
            taken.insert(ip);
            got.push(ip.to_string());
            last = Some(ip);
        }
        assert_eq!(got, ["10.9.0.250", "10.9.0.251", "10.9.0.252", "10.9.0.253", "10.9.0.254", "10.9.1.2", "10.9.1.3"]);
    }

    #[test]
    fn explicit_gateway_is_skipped_and_ipv6_works() {
        let set = RangeSet(vec![range("fd00:9::/120", None, None, Some("fd00:9::2"))]);
        let a = set.next_free(None, |_| false).unwrap().0;
        assert_eq!(a.to_string(), "fd00:9::1");
        let b = set.next_free(Some(a), |_| false).unwrap().0;
        assert_eq!(b.to_string(), "fd00:9::3");
        let cfg = set.0[0].ip_config(b);
        assert_eq!(cfg.address.to_string(), "fd00:9::3/120");
    }

    #[test]
    fn invalid_ranges_say_why() {
        let bad = |s: &str, st: Option<&str>, en: Option<&str>, gw: Option<&str>| {
            Range::from_conf(&RangeConf {
                subnet: s.parse().unwrap(),
                range_start: st.map(|x| x.parse().unwrap()),
                range_end: en.map(|x| x.parse().unwrap()),
                gateway: gw.map(|x| x.parse().unwrap()),
            })
            .unwrap_err()
        };
        assert!(bad("10.0.0.0/24", Some("10.0.1.5"), None, None).contains("outside"));
        assert!(bad("10.0.0.0/24", Some("10.0.0.50"), Some("10.0.0.40"), None).contains("after"));
        assert!(bad("10.0.0.0/31", None, None, None).contains("too small"));
        assert!(bad("10.0.0.0/24", None, None, Some("10.1.0.1")).contains("gateway"));
    }
}
