//! ClusterIP allocation from the service CIDR (10.96.0.0/12 by default; 10.96.0.1 is the `kubernetes`
//! Service's) and NodePort allocation from 30000-32767, with conflict checks against what is in use.
//! Used by the services controller when the apiserver leaves `clusterIP`/`nodePort` unset. Pure.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use rand::Rng;

/// Allocation failures.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AllocError {
    /// Every address of the service range (given) is taken.
    #[error("service CIDR {0} is full")]
    RangeFull(Ipv4Net),
    /// A Service asked for a ClusterIP outside the range.
    #[error("clusterIP {ip} is not in service CIDR {cidr}")]
    OutOfRange {
        /// The address asked for.
        ip: String,
        /// The service range.
        cidr: Ipv4Net,
    },
    /// A Service asked for a ClusterIP another Service holds.
    #[error("clusterIP {0} is already allocated")]
    IpTaken(String),
    /// A Service asked for a node port outside [`NODE_PORT_MIN`]..=[`NODE_PORT_MAX`].
    #[error("nodePort {0} is outside 30000-32767")]
    PortOutOfRange(i32),
    /// A Service asked for a node port another Service holds.
    #[error("nodePort {0} is already allocated")]
    PortTaken(i32),
    /// Every node port is taken.
    #[error("no free nodePort left in 30000-32767")]
    PortsFull,
}

/// The lowest node port (upstream's default `--service-node-port-range`).
pub const NODE_PORT_MIN: i32 = 30000;
/// The highest node port.
pub const NODE_PORT_MAX: i32 = 32767;

/// The default service CIDR.
pub fn default_service_cidr() -> Ipv4Net {
    Ipv4Net::new(Ipv4Addr::new(10, 96, 0, 0), 12).expect("valid prefix")
}

/// The `kubernetes` Service's IP: the first host of the range.
pub fn kubernetes_service_ip(cidr: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(cidr.network()) + 1)
}

/// Check a requested clusterIP or pick a random free one (never the network or broadcast address).
pub fn allocate_ip(cidr: Ipv4Net, requested: Option<&str>, used: &HashSet<String>, rng: &mut impl Rng) -> Result<String, AllocError> {
    if let Some(r) = requested.filter(|r| !r.is_empty() && *r != "None") {
        let ip: Ipv4Addr = r.parse().map_err(|_| AllocError::OutOfRange { ip: r.into(), cidr })?;
        if !cidr.contains(&ip) {
            return Err(AllocError::OutOfRange { ip: r.into(), cidr });
        }
        if used.contains(r) {
            return Err(AllocError::IpTaken(r.into()));
        }
        return Ok(r.into());
    }
    let base = u32::from(cidr.network());
    let size = 1u32 << (32 - cidr.prefix_len());
    if used.len() as u64 >= u64::from(size.saturating_sub(3)) {
        return Err(AllocError::RangeFull(cidr));
    }
    // random probing then a linear scan from a random offset, as the range is large and mostly free
    let first = 2; // .0 network, .1 kubernetes
    let span = size - first - 1;
    let start = rng.random_range(0..span);
    for i in 0..span {
        let ip = Ipv4Addr::from(base + first + (start + i) % span).to_string();
        if !used.contains(&ip) {
            return Ok(ip);
        }
    }
    Err(AllocError::RangeFull(cidr))
}

/// Check a requested nodePort or pick a random free one.
pub fn allocate_node_port(requested: Option<i32>, used: &HashSet<i32>, rng: &mut impl Rng) -> Result<i32, AllocError> {
    if let Some(p) = requested.filter(|p| *p != 0) {
        if !(NODE_PORT_MIN..=NODE_PORT_MAX).contains(&p) {
            return Err(AllocError::PortOutOfRange(p));
        }
        if used.contains(&p) {
            return Err(AllocError::PortTaken(p));
        }
        return Ok(p);
    }
    let span = NODE_PORT_MAX - NODE_PORT_MIN + 1;
    let start = rng.random_range(0..span);
    for i in 0..span {
        let p = NODE_PORT_MIN + (start + i) % span;
        if !used.contains(&p) {
            return Ok(p);
        }
    }
    Err(AllocError::PortsFull)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn cluster_ips_are_in_range_unique_and_checked() {
        let cidr = default_service_cidr();
        assert_eq!(kubernetes_service_ip(cidr).to_string(), "10.96.0.1");
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut used = HashSet::from(["10.96.0.1".to_string()]);
        for _ in 0..1000 {
            let ip = allocate_ip(cidr, None, &used, &mut rng).expect("free ip");
            assert!(cidr.contains(&ip.parse::<Ipv4Addr>().expect("ip")));
            assert!(used.insert(ip));
        }
        assert_eq!(allocate_ip(cidr, Some("10.96.0.1"), &used, &mut rng), Err(AllocError::IpTaken("10.96.0.1".into())));
        assert!(matches!(allocate_ip(cidr, Some("192.168.0.1"), &used, &mut rng), Err(AllocError::OutOfRange { .. })));
        let tiny: Ipv4Net = "10.0.0.0/30".parse().expect("net");
        assert_eq!(allocate_ip(tiny, None, &HashSet::new(), &mut rng), Ok("10.0.0.2".into()));
        assert_eq!(allocate_ip(tiny, None, &HashSet::from(["10.0.0.2".to_string()]), &mut rng), Err(AllocError::RangeFull(tiny)));
    }

    #[test]
    fn node_ports_in_range_and_conflicts_rejected() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let mut used = HashSet::new();
        for _ in 0..2768 {
            let p = allocate_node_port(None, &used, &mut rng).expect("free port");
            assert!((NODE_PORT_MIN..=NODE_PORT_MAX).contains(&p));
            assert!(used.insert(p));
        }
        assert_eq!(allocate_node_port(None, &used, &mut rng), Err(AllocError::PortsFull));
        assert_eq!(allocate_node_port(Some(30080), &used, &mut rng), Err(AllocError::PortTaken(30080)));
        assert_eq!(allocate_node_port(Some(80), &HashSet::new(), &mut rng), Err(AllocError::PortOutOfRange(80)));
        assert_eq!(allocate_node_port(Some(30080), &HashSet::new(), &mut rng), Ok(30080));
    }
}
