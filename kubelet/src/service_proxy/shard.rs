//! Which nftables table holds a Service. The kernel checks a table's whole chain graph (from its base chains,
//! through every verdict map element and jump) on each commit that adds a rule or a `goto` element, so even a
//! one-element batch costs time proportional to the table: measured on this machine in a netns with one table of
//! 5,000 Services × 10 endpoints, one endpoint change (the proxy's batch) took 41 ms (33-69), a batch adding
//! only one `goto` element 31 ms, against 1.3 ms for one that adds a plain set element or a rule without a jump
//! (no check). The check is per table: the same 5,000 Services spread over 16 tables of ~312, each with its own
//! hooks and maps, took 3.1 ms for the same change (32 tables: 2.4 ms).
//!
//! So a large cluster's Services are spread over several tables: shard 0 is the proxy's table itself
//! (`rkube-proxy`, with the masquerade and the service CIDR guard), shard `i` is `rkube-proxy-<i>`. Each shard
//! has its own `nat-prerouting`/`nat-output` chains at the same priority and its own
//! `service-ips`/`service-nodeports` maps, so a packet to a ClusterIP finds its element in the one shard that has
//! it; the shards without it do not match and let it through (the first shard that DNATs ends the nat hook's walk
//! for the connection).
//!
//! [`Shards`] places the Services and never moves one: moving a Service to another table would make its
//! affinity sets again, empty (clients lose their pins), and rewriting every table when the count changes took
//! seconds inside the sync loop at thousands of Services (20 s at 4,000). A from-scratch sync (on start, after a
//! failure) places every Service by a hash of namespace/name over [`shards_for`] tables ([`shard_of`]: one table
//! up to [`SERVICES_PER_SHARD`] Services, then powers of two, as every node computes alike). A Service that comes
//! later goes to its hash's table if that one has room, else to the emptiest table with room; when every table is
//! full a new, empty one is added (`rkube-proxy-<count>`, made on its own) and the new Service goes there. The
//! count only grows between from-scratch syncs; a deleted Service frees its place. Pure.

use std::collections::HashMap;

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

/// The shard of Service `namespace/name` in a from-scratch placement: FNV-1a (32 bit) of `namespace/name`, modulo
/// `shards`. Stable across restarts and nodes (no random seed). A Service placed after the from-scratch sync may be
/// elsewhere ([`Shards::place`]).
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

/// `ns/name` of a port key `ns/name/proto/port` ([`super::nft::port_key`]).
fn service_of_key(port_key: &str) -> &str {
    match port_key.match_indices('/').nth(1) {
        Some((i, _)) => &port_key[..i],
        None => port_key,
    }
}

/// Where each Service is: the shard count and every placed Service's shard, kept between syncs so that no Service
/// ever moves (see the module's text). Services are known as `namespace/name`.
#[derive(Debug, Clone)]
pub struct Shards {
    per_shard: usize,
    of: HashMap<String, u32>,
    /// Services in each shard; its length is the shard count.
    load: Vec<usize>,
}

/// Where [`Shards::place`] put a Service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    /// The Service's shard.
    pub shard: u32,
    /// The shard is a new one: its table must be made before anything is written into it.
    pub new_table: bool,
}

impl Shards {
    /// The from-scratch placement of `services` (`(namespace, name)`): [`shards_for`] tables, each Service at
    /// [`shard_of`]. `per_shard`: [`SERVICES_PER_SHARD`] but in tests.
    pub fn fresh<'a>(services: impl IntoIterator<Item = (&'a str, &'a str)>, per_shard: usize) -> Shards {
        let services: Vec<(&str, &str)> = services.into_iter().collect();
        let count = shards_for(services.len(), per_shard);
        let mut shards = Shards { per_shard: per_shard.max(1), of: HashMap::with_capacity(services.len()), load: vec![0; count as usize] };
        for (ns, name) in services {
            let shard = shard_of(ns, name, count);
            if shards.of.insert(format!("{ns}/{name}"), shard).is_none() {
                shards.load[shard as usize] += 1;
            }
        }
        shards
    }

    /// No Service placed, `count` tables: every port goes to its Service's from-scratch shard ([`shard_of`]).
    pub fn by_hash(count: u32) -> Shards {
        Shards { load: vec![0; count.clamp(1, MAX_SHARDS) as usize], ..Shards::default() }
    }

    /// The tables the Services are spread over.
    pub fn count(&self) -> u32 {
        self.load.len() as u32
    }

    /// Services placed.
    pub fn len(&self) -> usize {
        self.of.len()
    }

    /// Whether no Service is placed.
    pub fn is_empty(&self) -> bool {
        self.of.is_empty()
    }

    /// The shard of Service `namespace/name`, if placed.
    pub fn get(&self, namespace: &str, name: &str) -> Option<u32> {
        self.of.get(&format!("{namespace}/{name}")).copied()
    }

    /// The shard of a service port by its key (`ns/name/proto/port`): its Service's; for a Service not placed
    /// (never the case for a port the proxy writes), its from-scratch shard.
    pub fn of_key(&self, port_key: &str) -> u32 {
        self.of.get(service_of_key(port_key)).copied().unwrap_or_else(|| shard_of_key(port_key, self.count()))
    }

    /// Places Service `namespace/name` if it is not yet (a placed Service stays where it is): its hash's shard
    /// if that has room, else the emptiest shard with room, else a new shard (up to [`MAX_SHARDS`]; past that,
    /// the emptiest shard).
    pub fn place(&mut self, namespace: &str, name: &str) -> Placed {
        let key = format!("{namespace}/{name}");
        if let Some(&shard) = self.of.get(&key) {
            return Placed { shard, new_table: false };
        }
        let count = self.count();
        let home = shard_of(namespace, name, count) as usize;
        let emptiest = (0..self.load.len()).min_by_key(|&i| (self.load[i], i)).unwrap_or(0);
        let (shard, new_table) = if self.load[home] < self.per_shard {
            (home, false)
        } else if self.load[emptiest] < self.per_shard || count >= MAX_SHARDS {
            (emptiest, false)
        } else {
            self.load.push(0);
            (self.load.len() - 1, true)
        };
        self.load[shard] += 1;
        self.of.insert(key, shard as u32);
        Placed { shard: shard as u32, new_table }
    }

    /// Forgets Service `namespace/name` (deleted, or no longer proxied): its place is free. The shard count
    /// stays.
    pub fn release(&mut self, namespace: &str, name: &str) {
        if let Some(shard) = self.of.remove(&format!("{namespace}/{name}")) {
            self.load[shard as usize] -= 1;
        }
    }
}

impl Default for Shards {
    /// No Service, one table.
    fn default() -> Shards {
        Shards { per_shard: SERVICES_PER_SHARD, of: HashMap::new(), load: vec![0] }
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

    #[test]
    fn a_growing_cluster_never_moves_a_service_and_adds_one_table_at_a_time() {
        let name = |i: usize| format!("b{i}");
        // from scratch: 30 Services, 10 per table: 4 tables, each Service at its hash's shard
        let names: Vec<String> = (0..30).map(name).collect();
        let mut shards = Shards::fresh(names.iter().map(|n| ("default", n.as_str())), 10);
        assert_eq!(shards.count(), 4);
        assert!(names.iter().all(|n| shards.get("default", n) == Some(shard_of("default", n, 4))));
        let mut placed: Vec<(String, u32)> = names.iter().map(|n| (n.clone(), shards.get("default", n).unwrap())).collect();
        // 100 more, one at a time: nobody moves, no table over 10, a new table only when all are full
        for i in 30..130 {
            let full_before = shards.load.iter().all(|&l| l >= 10);
            let count_before = shards.count();
            let p = shards.place("default", &name(i));
            assert_eq!(p.new_table, full_before, "a new table exactly when every table is full ({i})");
            assert_eq!(shards.count(), count_before + u32::from(p.new_table));
            if p.new_table {
                assert_eq!(p.shard, count_before, "the new table is the next one");
            }
            placed.push((name(i), p.shard));
            for (n, s) in &placed {
                assert_eq!(shards.get("default", n), Some(*s), "{n} stays in its table");
            }
        }
        assert_eq!(shards.count(), 13);
        let fresh_most = placed[..30].iter().fold([0usize; 4], |mut l, (_, s)| {
            l[*s as usize] += 1;
            l
        });
        assert!(shards.load.iter().enumerate().all(|(i, &l)| l <= 10 || (i < 4 && l == fresh_most[i])), "only the from-scratch hash may have filled a table past 10: {:?}", shards.load);
        // placing a placed Service again changes nothing
        assert_eq!(shards.place("default", "b0"), Placed { shard: placed[0].1, new_table: false });
        // a deleted Service frees its place: the next new one takes it, no new table
        let freed = shards.get("default", "b77").unwrap();
        shards.release("default", "b77");
        assert_eq!(shards.get("default", "b77"), None);
        assert_eq!(shards.place("default", "newcomer"), Placed { shard: freed, new_table: false });
        assert_eq!(shards.count(), 13);
        // a port key finds its Service's shard
        assert_eq!(shards.of_key("default/newcomer/tcp/http"), freed);
        assert_eq!(service_of_key("default/web/tcp/http"), "default/web");
    }

    #[test]
    fn past_the_most_tables_services_go_to_the_emptiest() {
        let mut shards = Shards::fresh(std::iter::empty(), 1);
        for i in 0..(MAX_SHARDS as usize + 5) {
            shards.place("default", &format!("s{i}"));
        }
        assert_eq!(shards.count(), MAX_SHARDS);
        assert!(shards.load.iter().all(|&l| (1..=2).contains(&l)), "{:?}", shards.load);
    }
}
