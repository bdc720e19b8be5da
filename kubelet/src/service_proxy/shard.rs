//! Which nftables table holds a Service. The kernel checks a table's whole chain graph (from its base chains,
//! through every verdict map element and jump) on each commit that adds a rule or a `goto` element, so even a
//! one-element batch costs time proportional to the table: measured on this machine in a netns with one table of
//! 5,000 Services × 10 endpoints, one endpoint change (the proxy's batch) took 41 ms (33-69), a batch adding
//! only one `goto` element 31 ms, against 1.3 ms for one that adds a plain set element or a rule without a jump
//! (no check). The check is per table: the same 5,000 Services spread over 16 tables of ~312, each with its own
//! hooks and maps, took 3.1 ms for the same change (32 tables: 2.4 ms).
//!
//! So a large cluster's Services are spread over `shards` tables by a hash of namespace/name: shard 0 is the
//! proxy's table itself (`rkube-proxy`, with the masquerade and the service CIDR guard), shard `i` is
//! `rkube-proxy-<i>`. Each shard has its own `nat-prerouting`/`nat-output` chains at the same priority and its
//! own `service-ips`/`service-nodeports` maps, so a packet to a ClusterIP finds its element in the one shard
//! that has it; the shards without it do not match and let it through (the first shard that DNATs ends the
//! nat hook's walk for the connection). A Service stays in its shard as long as the shard count does not change.
//!
//! The count grows with the cluster, in powers of two: one table up to [`SERVICES_PER_SHARD`] Services (a small
//! cluster's table is exactly what it always was), two up to twice that, and so on up to [`MAX_SHARDS`]. Pure.

/// Services per table before the proxy spreads them over more tables: about 3 ms of kernel check per commit
/// at 10 endpoints each.
pub const SERVICES_PER_SHARD: usize = 500;
/// The most tables (`rkube-proxy`, `rkube-proxy-1` ... `rkube-proxy-63`): 32,000 Services at
/// [`SERVICES_PER_SHARD`]; beyond that the shards grow.
pub const MAX_SHARDS: u32 = 64;

/// The shard count for `services` Services: the smallest power of two that keeps each shard at or under
/// `per_shard` ([`SERVICES_PER_SHARD`] but in tests) Services (1 for a small cluster), at most [`MAX_SHARDS`].
pub fn shards_for(services: usize, per_shard: usize) -> u32 {
    let needed = services.div_ceil(per_shard.max(1)).max(1);
    let mut shards = 1u32;
    while (shards as usize) < needed && shards < MAX_SHARDS {
        shards *= 2;
    }
    shards
}

/// The shard of Service `namespace/name`: FNV-1a (32 bit) of `namespace/name`, modulo `shards`. Stable across
/// restarts and nodes (no random seed), so every node puts a Service in the same table.
pub fn shard_of(namespace: &str, name: &str, shards: u32) -> u32 {
    if shards <= 1 {
        return 0;
    }
    let mut h: u32 = 0x811c_9dc5;
    for b in namespace.bytes().chain(std::iter::once(b'/')).chain(name.bytes()) {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h % shards
}

/// The shard of a service port by its key (`ns/name/proto/port`, [`super::nft::port_key`]).
pub fn shard_of_key(port_key: &str, shards: u32) -> u32 {
    let mut parts = port_key.splitn(3, '/');
    let (ns, name) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    shard_of(ns, name, shards)
}

/// The table of shard `shard`: the proxy's table itself for shard 0, `<table>-<shard>` for the others.
pub fn table_name(table: &str, shard: u32) -> String {
    if shard == 0 {
        table.to_string()
    } else {
        format!("{table}-{shard}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_is_one_table_for_a_small_cluster_and_doubles_with_it() {
        for (services, shards) in [(0, 1), (1, 1), (500, 1), (501, 2), (1000, 2), (1001, 4), (5000, 16), (8000, 16), (8001, 32), (1_000_000, MAX_SHARDS)] {
            assert_eq!(shards_for(services, SERVICES_PER_SHARD), shards, "{services} Services");
        }
        assert_eq!(shards_for(3, 1), 4);
    }

    #[test]
    fn a_service_has_one_shard_whatever_its_port_and_the_services_spread_evenly() {
        assert_eq!(shard_of("default", "web", 1), 0);
        assert_eq!(shard_of_key("default/web/tcp/http", 16), shard_of("default", "web", 16));
        assert_eq!(shard_of_key("default/web/udp/53", 16), shard_of("default", "web", 16));
        // namespace and name are told apart: a/bc and ab/c are different Services
        let differ = (0..64).filter(|i| shard_of("a", &format!("bc{i}"), 16) != shard_of("ab", &format!("c{i}"), 16)).count();
        assert!(differ > 32, "{differ}");
        // 5,000 Services named as the benchmark names them over 16 shards: none above 1.25x the mean
        let mut counts = [0usize; 16];
        for i in 0..5000 {
            counts[shard_of("default", &format!("b{i}"), 16) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c > 5000 / 16 * 3 / 4 && c < 5000 / 16 * 5 / 4), "{counts:?}");
        // stable: the same input, the same shard (other nodes and the next start agree)
        assert_eq!(shard_of("kube-system", "kube-dns", 64), shard_of("kube-system", "kube-dns", 64));
    }

    #[test]
    fn shard_zero_is_the_proxy_table_itself() {
        assert_eq!(table_name("rkube-proxy", 0), "rkube-proxy");
        assert_eq!(table_name("rkube-proxy", 7), "rkube-proxy-7");
    }
}
