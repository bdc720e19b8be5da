//! The nftables table behind Services, laid out as upstream kube-proxy's nftables mode lays out its own, and
//! applied with `nft -f -`: one transaction per sync, so a packet sees the old rules or the new ones, never a mix.
//!
//! ```text
//! table ip rkube-proxy
//!   map service-ips        ipv4_addr . inet_proto . inet_service : verdict   (ClusterIPs, externalIPs, LB IPs)
//!   map service-nodeports  inet_proto . inet_service : verdict               (NodePorts, on local addresses)
//!   chain nat-prerouting / nat-output (nat, dstnat)   jump services
//!   chain services         ip daddr . meta l4proto . th dport vmap @service-ips
//!                          fib daddr type local meta l4proto . th dport vmap @service-nodeports
//!   chain svc-<ns>/<name>/<proto>/<port>     the Cluster endpoints: affinity sets first, then numgen
//!   chain local-<...>      the node's own endpoints (a Local traffic policy), drop when there are none
//!   chain ext-<...>        traffic from outside (NodePort, externalIPs, LB IPs): Cluster policy: mark for
//!                          masquerade, goto svc-; Local: traffic from this node's pods (`iifname <bridge>`) and
//!                          from the node itself (masqueraded) as Cluster (upstream's short-circuit), the rest
//!                          goto local- without SNAT (the client's address reaches the pod)
//!   chain ep-<...>__<ip>/<port>  hairpin mark; `update @aff-... { ip saddr }` (ClientIP affinity); dnat
//!   set aff-<...>__<ip>/<port>   ipv4_addr, flags dynamic,timeout, timeout = sessionAffinityConfig's
//!   chain nat-postrouting (nat, srcnat)    mark & 0x4000 == 0x4000 masquerade
//!   chain filter-output / filter-forward (filter)     ip daddr <service CIDR> reject
//!                          (filter-output first accepts local destinations: the node-local cluster DNS address)
//! ```
//! With more than [`super::shard::SERVICES_PER_SHARD`] Services they are spread over several tables
//! (`rkube-proxy-1`, ... [`super::shard`]): each has its own maps, `nat-prerouting`/`nat-output` and `services`
//! chains and its Services' chains and sets; `nat-postrouting` and the filter chains stay in `rkube-proxy` alone.
//!
//! A service port's objects are named after it alone, so a change to one Service rewrites its chains, sets and
//! map elements only ([`partial_script`], [`sharded_ops`]); the first sync (and any after a failure) replaces
//! every table ([`full_script_sharded`]); the periodic resync rewrites a table in place ([`resync_ops`]).
//!
//! Why `nft -f` text and not the JSON API: the text is what `nft list table` prints back, so the rendering tests,
//! the docs and a node's live table read the same; the transaction is the same one `nft -j -f` makes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use super::model::{Endpoint, Protocol, ServicePort, TrafficPolicy};
use super::shard::{table_name, Shards, MAX_SHARDS};

/// The packet mark that asks nat-postrouting to masquerade (external Cluster traffic and hairpin connections).
pub const MASQUERADE_MARK: u32 = 0x4000;
/// ClusterIPs, externalIPs and load balancer IPs (`ip . proto . port`) to their service port's chain.
pub const SERVICE_IPS_MAP: &str = "service-ips";
/// NodePorts (`proto . port`, on any local address) to their service port's external chain.
pub const NODEPORTS_MAP: &str = "service-nodeports";

/// Which table to own, which service CIDR to guard, and which node this is (its endpoints are the local ones).
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// The proxy's table (shard 0); the other shards are `<table>-<n>` ([`super::shard`]).
    pub table: String,
    /// The service CIDR (address, prefix length): an address in it without a rule is rejected.
    pub service_cidr: (Ipv4Addr, u8),
    /// This node's name: endpoints with this `nodeName` are the local ones.
    pub node_name: String,
    /// The bridge this node's pods hang off: traffic coming in on it is from a pod on this node (upstream's
    /// `--detect-local-mode=BridgeInterface` with `--pod-bridge-interface`). None: pod traffic is not told apart,
    /// and an externalTrafficPolicy Local address reached from a pod gets no short-circuit (as upstream without a
    /// local-traffic detector).
    pub pod_bridge: Option<String>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            table: "rkube-proxy".into(),
            service_cidr: (Ipv4Addr::new(10, 96, 0, 0), 12),
            node_name: String::new(),
            pod_bridge: None,
        }
    }
}

/// Why the proxy's rules were not written (the next sync writes every table again).
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// `nft` could not be run.
    #[error("apply nftables table {table}: run nft: {source} (is the nftables package installed?)")]
    Spawn {
        /// The proxy's table.
        table: String,
        /// The spawn or pipe error.
        #[source]
        source: std::io::Error,
    },
    /// `nft -f` refused the transaction.
    #[error("apply nftables table {table}: nft refused the transaction: {stderr} (`nft list table ip {table}` shows the current rules)")]
    Refused {
        /// The proxy's table.
        table: String,
        /// The first lines nft wrote to stderr.
        stderr: String,
    },
    /// The netlink socket could not be opened, bound or written.
    #[error("update nftables table {table} over netlink: {source} (is nf_tables available in this network namespace?)")]
    Netlink {
        /// The proxy's table.
        table: String,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// The kernel refused an op of the batch (and so the whole batch).
    #[error("update nftables table {table} over netlink: the kernel refused `{op}`: {source} (`nft list table ip {table}` shows the current rules)")]
    NetlinkRefused {
        /// The proxy's table.
        table: String,
        /// The refused op as nft text.
        op: String,
        /// The kernel's error.
        #[source]
        source: std::io::Error,
    },
}

/// Everything one service port puts in the table. Equal values mean equal rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortObjects {
    /// Chain name → its rules, in creation order.
    pub chains: Vec<(String, Vec<Rule>)>,
    /// Affinity sets: name → timeout in seconds.
    pub sets: Vec<(String, u32)>,
    /// Map elements.
    pub elements: Vec<Element>,
}

impl PortObjects {
    /// Rules and map elements: what the rules-count metric counts.
    pub fn rule_count(&self) -> usize {
        self.chains.iter().map(|(_, r)| r.len()).sum::<usize>() + self.elements.len()
    }
}

/// Every kind of rule the proxy writes. `Display` gives the nft text (what `nft list` prints back); `nfnl`
/// encodes the same rule as the expressions nft itself would send, so both writers leave identical rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// `ip saddr @<set> goto <chain>`: a client in an endpoint's affinity set goes back to that endpoint.
    AffinityGoto {
        /// The endpoint's affinity set.
        set: String,
        /// The endpoint's chain.
        chain: String,
    },
    /// `numgen random mod N vmap { 0 : goto <c0>, ... }`: one of the endpoint chains at random.
    Spread(Vec<String>),
    /// `drop`
    Drop,
    /// `meta mark set meta mark | 0x4000`: masquerade this connection in nat-postrouting.
    MarkMasquerade,
    /// `goto <chain>`
    Goto(String),
    /// `iifname "<bridge>" goto <chain>`: traffic from this node's pods.
    FromBridgeGoto {
        /// The pod bridge.
        bridge: String,
        /// The Service's chain.
        chain: String,
    },
    /// `fib saddr type local meta mark set meta mark | 0x4000 goto <chain>`: the node's own traffic, masqueraded.
    FromNodeMasqueradeGoto(String),
    /// `ip saddr <ip> meta mark set meta mark | 0x4000`: hairpin, an endpoint reaching itself.
    HairpinMasquerade(Ipv4Addr),
    /// `update @<set> { ip saddr }`: remember the client for ClientIP affinity.
    AffinityUpdate(String),
    /// `meta l4proto <proto> dnat to <ip>:<port>`
    Dnat {
        /// The port's protocol.
        proto: Protocol,
        /// The endpoint's address.
        ip: Ipv4Addr,
        /// The endpoint's port.
        port: u16,
    },
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let masq = format!("meta mark set meta mark | {MASQUERADE_MARK:#x}");
        match self {
            Rule::AffinityGoto { set, chain } => write!(f, "ip saddr @{set} goto {chain}"),
            Rule::Spread(chains) => {
                let arms: Vec<String> = chains.iter().enumerate().map(|(i, c)| format!("{i} : goto {c}")).collect();
                write!(f, "numgen random mod {} vmap {{ {} }}", chains.len(), arms.join(", "))
            }
            Rule::Drop => write!(f, "drop"),
            Rule::MarkMasquerade => write!(f, "{masq}"),
            Rule::Goto(chain) => write!(f, "goto {chain}"),
            Rule::FromBridgeGoto { bridge, chain } => write!(f, "iifname {} goto {chain}", nft_quote(bridge)),
            Rule::FromNodeMasqueradeGoto(chain) => write!(f, "fib saddr type local {masq} goto {chain}"),
            Rule::HairpinMasquerade(ip) => write!(f, "ip saddr {ip} {masq}"),
            Rule::AffinityUpdate(set) => write!(f, "update @{set} {{ ip saddr }}"),
            Rule::Dnat { proto, ip, port } => write!(f, "meta l4proto {} dnat to {ip}:{port}", proto.as_nft()),
        }
    }
}

/// What a map element matches on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElementKey {
    /// `service-ips`: `<ip> . <proto> . <port>`
    Address {
        /// ClusterIP, external IP or load balancer IP.
        ip: Ipv4Addr,
        /// The port's protocol.
        proto: Protocol,
        /// The Service's port.
        port: u16,
    },
    /// `service-nodeports`: `<proto> . <port>`
    NodePort {
        /// The port's protocol.
        proto: Protocol,
        /// The NodePort.
        port: u16,
    },
}

/// One element of [`SERVICE_IPS_MAP`] or [`NODEPORTS_MAP`]: its key and the chain it sends matching packets to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// What the element matches.
    pub key: ElementKey,
    /// The chain matching packets go to.
    pub chain: String,
}

impl Element {
    /// The map the element is in.
    pub fn map(&self) -> &'static str {
        match self.key {
            ElementKey::Address { .. } => SERVICE_IPS_MAP,
            ElementKey::NodePort { .. } => NODEPORTS_MAP,
        }
    }

    /// The key as nft writes it.
    pub fn key_text(&self) -> String {
        match &self.key {
            ElementKey::Address { ip, proto, port } => format!("{ip} . {} . {port}", proto.as_nft()),
            ElementKey::NodePort { proto, port } => format!("{} . {port}", proto.as_nft()),
        }
    }
}

/// `<map> <key> goto <chain>`
impl std::fmt::Display for Element {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} goto {}", self.map(), self.key_text(), self.chain)
    }
}

/// One step of a transaction on the table (below the table itself): what [`partial_ops`] returns and both
/// writers carry out, `nft -f` from [`Op::write`]'s text, netlink from `nfnl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op<'a> {
    /// A map element removed (by its key).
    DeleteElement(&'a Element),
    /// Every element of a map ([`SERVICE_IPS_MAP`] or [`NODEPORTS_MAP`]): a periodic resync of a shard starts
    /// with it, so elements the proxy did not write go too.
    FlushMap(&'static str),
    /// Every rule of a chain removed.
    FlushChain(&'a str),
    /// A chain removed (flushed before, and no longer referenced).
    DeleteChain(&'a str),
    /// An affinity set removed.
    DeleteSet(&'a str),
    /// A regular chain made.
    AddChain(&'a str),
    /// An affinity set and its timeout in seconds.
    AddSet(&'a str, u32),
    /// A rule appended to a chain.
    AddRule(&'a str, &'a Rule),
    /// A map element added.
    AddElement(&'a Element),
}

impl Op<'_> {
    /// The op as one line of an `nft -f` script on table `t`.
    pub fn write(&self, out: &mut String, t: &str) {
        let _ = match self {
            Op::DeleteElement(e) => writeln!(out, "delete element ip {t} {} {{ {} }}", e.map(), e.key_text()),
            Op::FlushMap(m) => writeln!(out, "flush map ip {t} {m}"),
            Op::FlushChain(c) => writeln!(out, "flush chain ip {t} {c}"),
            Op::DeleteChain(c) => writeln!(out, "delete chain ip {t} {c}"),
            Op::DeleteSet(s) => writeln!(out, "delete set ip {t} {s}"),
            Op::AddChain(c) => writeln!(out, "add chain ip {t} {c}"),
            Op::AddSet(s, timeout) => {
                writeln!(out, "add set ip {t} {s} {{ type ipv4_addr ; flags dynamic,timeout ; timeout {timeout}s ; }}")
            }
            Op::AddRule(c, r) => writeln!(out, "add rule ip {t} {c} {r}"),
            Op::AddElement(e) => writeln!(out, "add element ip {t} {} {{ {} : goto {} }}", e.map(), e.key_text(), e.chain),
        };
    }
}

/// `ns/name/tcp/port`: the port's name, or its number when unnamed. Only `[a-z0-9-]` from the API (DNS labels and
/// IANA port names), so every derived chain name is a valid nft identifier.
pub fn port_key(p: &ServicePort) -> String {
    let port = if p.port_name.is_empty() { p.port.to_string() } else { p.port_name.clone() };
    format!("{}/{}/{}/{}", p.namespace, p.service, p.protocol.as_nft(), port)
}

fn ep_suffix(e: &Endpoint) -> String {
    format!("{}/{}", e.ip, e.port)
}

/// The objects of one service port, as this node (`cfg`) serves it.
pub fn port_objects(cfg: &ProxyConfig, p: &ServicePort) -> PortObjects {
    let mut o = PortObjects::default();
    if !p.has_endpoints {
        return o; // no element: a ClusterIP falls through to the CIDR guard's reject, a NodePort finds no listener
    }
    let key = port_key(p);
    let proto = p.protocol;
    let svc_chain = format!("svc-{key}");
    let local_chain = format!("local-{key}");
    let ext_chain = format!("ext-{key}");
    let ep_chain = |e: &Endpoint| format!("ep-{key}__{}", ep_suffix(e));
    let aff_set = |e: &Endpoint| format!("aff-{key}__{}", ep_suffix(e));

    let dispatch = |eps: &[Endpoint]| -> Vec<Rule> {
        if eps.is_empty() {
            return vec![Rule::Drop]; // endpoints elsewhere but none for this traffic: upstream drops
        }
        let mut rules = Vec::new();
        if p.affinity_timeout.is_some() {
            for e in eps {
                rules.push(Rule::AffinityGoto { set: aff_set(e), chain: ep_chain(e) });
            }
        }
        rules.push(Rule::Spread(eps.iter().map(ep_chain).collect()));
        rules
    };

    let uses_local = p.internal_policy == TrafficPolicy::Local
        || (p.externally_accessible() && p.external_policy == TrafficPolicy::Local);
    if !p.cluster_endpoints.is_empty() {
        o.chains.push((svc_chain.clone(), dispatch(&p.cluster_endpoints)));
    }
    if uses_local {
        o.chains.push((local_chain.clone(), dispatch(&p.local_endpoints)));
    }
    let internal_target = match p.internal_policy {
        TrafficPolicy::Cluster => svc_chain.clone(),
        TrafficPolicy::Local => local_chain.clone(),
    };
    if o.chains.iter().any(|(c, _)| *c == internal_target) {
        o.elements.push(Element { key: ElementKey::Address { ip: p.cluster_ip, proto, port: p.port }, chain: internal_target });
    }
    if p.externally_accessible() {
        let cluster = !p.cluster_endpoints.is_empty();
        let rules = match p.external_policy {
            TrafficPolicy::Cluster if cluster => vec![Rule::MarkMasquerade, Rule::Goto(svc_chain.clone())],
            TrafficPolicy::Cluster => vec![Rule::Drop],
            TrafficPolicy::Local => {
                let mut r = Vec::new();
                // upstream's short-circuit (kube-proxy nftables `external-` chain): a pod on this node reaching an
                // external address goes to any endpoint, unmasqueraded ("short-circuit pod traffic"); the node's own
                // traffic too, masqueraded so replies come back through the node ("short-circuit traffic from
                // local addresses")
                if cluster {
                    if let Some(bridge) = &cfg.pod_bridge {
                        r.push(Rule::FromBridgeGoto { bridge: bridge.clone(), chain: svc_chain.clone() });
                    }
                    r.push(Rule::FromNodeMasqueradeGoto(svc_chain.clone()));
                }
                r.push(Rule::Goto(local_chain.clone()));
                r
            }
        };
        o.chains.push((ext_chain.clone(), rules));
        if let Some(np) = p.node_port {
            o.elements.push(Element { key: ElementKey::NodePort { proto, port: np }, chain: ext_chain.clone() });
        }
        let mut vips: BTreeSet<Ipv4Addr> = p.external_ips.iter().copied().collect();
        vips.extend(p.load_balancer_ips.iter().copied());
        vips.remove(&p.cluster_ip);
        for ip in vips {
            o.elements.push(Element { key: ElementKey::Address { ip, proto, port: p.port }, chain: ext_chain.clone() });
        }
    }

    let mut eps: BTreeSet<Endpoint> = p.cluster_endpoints.iter().copied().collect();
    eps.extend(p.local_endpoints.iter().copied());
    for e in &eps {
        let mut rules = vec![Rule::HairpinMasquerade(e.ip)]; // hairpin: a pod reaching itself
        if let Some(timeout) = p.affinity_timeout {
            o.sets.push((aff_set(e), timeout));
            rules.push(Rule::AffinityUpdate(aff_set(e)));
        }
        rules.push(Rule::Dnat { proto, ip: e.ip, port: e.port });
        o.chains.push((ep_chain(e), rules));
    }
    o
}

/// An interface name as an nft string literal (`"name"`): names may hold characters nft would parse otherwise.
fn nft_quote(name: &str) -> String {
    format!("\"{}\"", name.replace(['"', '\\'], ""))
}

/// Every service port's objects, by [`port_key`].
pub fn render(cfg: &ProxyConfig, ports: &[ServicePort]) -> BTreeMap<String, PortObjects> {
    ports.iter().map(|p| (port_key(p), port_objects(cfg, p))).collect()
}

/// The ops that add `objs` to the table, leaving out the chains and sets `old` already made.
fn add_ops<'a>(ops: &mut Vec<Op<'a>>, objs: &'a PortObjects, old: Option<&PortObjects>) {
    for (chain, _) in &objs.chains {
        if !old.is_some_and(|o| o.chains.iter().any(|(c, _)| c == chain)) {
            ops.push(Op::AddChain(chain));
        }
    }
    for (set, timeout) in &objs.sets {
        if !old.is_some_and(|o| o.sets.contains(&(set.clone(), *timeout))) {
            ops.push(Op::AddSet(set, *timeout));
        }
    }
    for (chain, rules) in &objs.chains {
        for r in rules {
            ops.push(Op::AddRule(chain, r));
        }
    }
    for e in &objs.elements {
        ops.push(Op::AddElement(e));
    }
}

/// `ops` as `nft -f` text on table `t`.
pub fn script(t: &str, ops: &[Op<'_>]) -> String {
    let mut s = String::new();
    for op in ops {
        op.write(&mut s, t);
    }
    s
}

/// The whole table as one transaction: (re)create it, then fill it. `add` + `delete` + `add` replaces the table
/// whether or not it existed. One shard: see [`full_script_sharded`].
pub fn full_script(cfg: &ProxyConfig, objects: &BTreeMap<String, PortObjects>) -> String {
    full_script_sharded(cfg, &Shards::by_hash(1), objects)
}

/// Every table of `shards` ([`super::shard`]) as one transaction, each (re)created and filled with its
/// Services' objects: shard 0 (the proxy's table) also holds the masquerade and the service CIDR guard. Shard
/// tables beyond `shards`' count (left by a larger count before) are deleted.
pub fn full_script_sharded(cfg: &ProxyConfig, shards: &Shards, objects: &BTreeMap<String, PortObjects>) -> String {
    let count = shards.count().clamp(1, MAX_SHARDS);
    let mut by_shard: Vec<Vec<Op<'_>>> = vec![Vec::new(); count as usize];
    for (key, objs) in objects {
        add_ops(&mut by_shard[(shards.of_key(key) % count) as usize], objs, None);
    }
    let mut s = String::new();
    for (shard, ops) in by_shard.iter().enumerate() {
        let t = table_name(&cfg.table, shard as u32);
        s += &skeleton(cfg, &t, shard == 0);
        s += &script(&t, ops);
    }
    let shards = count;
    for shard in shards..MAX_SHARDS {
        let t = table_name(&cfg.table, shard);
        let _ = writeln!(s, "add table ip {t}\ndelete table ip {t}");
    }
    s
}

/// A table's own objects, (re)created empty: the maps, the hooks into `services` and its two lookups; with
/// `guard` (shard 0) also the masquerade and the service CIDR's reject. Also what a new shard table starts as.
pub fn skeleton(cfg: &ProxyConfig, t: &str, guard: bool) -> String {
    let (decls, rules) = fixed_objects(cfg, t, guard);
    format!("add table ip {t}\ndelete table ip {t}\nadd table ip {t}\n{decls}{rules}")
}

/// The periodic resync's repair of a table's own objects (what [`skeleton`] makes: not a Service's), in place:
/// the table, maps and chains declared again (`add` makes what someone deleted and leaves the rest, a base
/// chain's policy included), the table's own chains flushed and their rules added again (a rule edited, added or
/// deleted by hand is undone). Map elements and Service chains are left to [`resync_ops`].
pub fn fixed_repair_script(cfg: &ProxyConfig, t: &str, guard: bool) -> String {
    let (decls, rules) = fixed_objects(cfg, t, guard);
    let mut s = format!("add table ip {t}\n{decls}");
    for chain in FIXED_CHAINS.iter().filter(|(_, kind, hook, _)| guard || (*kind == "nat" && *hook != "postrouting")).map(|c| c.0).chain(["services"]) {
        let _ = writeln!(s, "flush chain ip {t} {chain}");
    }
    s + &rules
}

/// The base chains of a table: name, type, hook, priority. Shard tables other than 0 have the first two only.
const FIXED_CHAINS: [(&str, &str, &str, i32); 5] = [
    ("nat-prerouting", "nat", "prerouting", -100),
    ("nat-output", "nat", "output", -100),
    ("nat-postrouting", "nat", "postrouting", 100),
    ("filter-output", "filter", "output", 0),
    ("filter-forward", "filter", "forward", 0),
];

/// A table's own objects as `nft -f` text: the declarations (maps, chains) and the rules of its own chains.
fn fixed_objects(cfg: &ProxyConfig, t: &str, guard: bool) -> (String, String) {
    let mut s = String::new();
    let _ = writeln!(s, "add map ip {t} {SERVICE_IPS_MAP} {{ type ipv4_addr . inet_proto . inet_service : verdict ; }}");
    let _ = writeln!(s, "add map ip {t} {NODEPORTS_MAP} {{ type inet_proto . inet_service : verdict ; }}");
    for (name, kind, hook, prio) in FIXED_CHAINS {
        if guard || (kind == "nat" && hook != "postrouting") {
            let _ = writeln!(s, "add chain ip {t} {name} {{ type {kind} hook {hook} priority {prio} ; policy accept ; }}");
        }
    }
    let _ = writeln!(s, "add chain ip {t} services");
    let mut r = String::new();
    let _ = writeln!(r, "add rule ip {t} nat-prerouting jump services");
    let _ = writeln!(r, "add rule ip {t} nat-output jump services");
    let _ = writeln!(r, "add rule ip {t} services ip daddr . meta l4proto . th dport vmap @{SERVICE_IPS_MAP}");
    let _ = writeln!(r, "add rule ip {t} services fib daddr type local meta l4proto . th dport vmap @{NODEPORTS_MAP}");
    if guard {
        let _ = writeln!(r, "add rule ip {t} nat-postrouting meta mark & {MASQUERADE_MARK:#x} == {MASQUERADE_MARK:#x} masquerade");
        // An address of this node inside the service CIDR (the node-local cluster DNS address) is a real local
        // destination, not an unserved ClusterIP: the node itself may query it.
        let _ = writeln!(r, "add rule ip {t} filter-output fib daddr type local accept");
        let (net, len) = cfg.service_cidr;
        for chain in ["filter-output", "filter-forward"] {
            let _ = writeln!(r, "add rule ip {t} {chain} ip daddr {net}/{len} reject");
        }
    }
    (s, r)
}

/// The transaction that takes the table from `old` to `new`, touching only the service ports whose objects
/// changed: their map elements are deleted, their chains flushed, what is gone deleted, then what is new added.
/// Empty when nothing changed.
pub fn partial_ops<'a>(old: &'a BTreeMap<String, PortObjects>, new: &'a BTreeMap<String, PortObjects>) -> Vec<Op<'a>> {
    let changed: Vec<(&PortObjects, &PortObjects)> = pairs(old, new).into_iter().map(|(_, o, n)| (o, n)).filter(|(o, n)| o != n).collect();
    ops_of(&changed, false)
}

/// [`partial_ops`] over the tables of `shards` ([`super::shard`]): each table's ops, by shard; shards with
/// nothing to change are left out.
pub fn sharded_ops<'a>(old: &'a BTreeMap<String, PortObjects>, new: &'a BTreeMap<String, PortObjects>, shards: &Shards) -> BTreeMap<u32, Vec<Op<'a>>> {
    let mut by_shard: BTreeMap<u32, Vec<(&PortObjects, &PortObjects)>> = BTreeMap::new();
    for (key, o, n) in pairs(old, new) {
        if o != n {
            by_shard.entry(shards.of_key(key)).or_default().push((o, n));
        }
    }
    by_shard.into_iter().map(|(shard, changed)| (shard, ops_of(&changed, false))).collect()
}

/// The periodic resync of one table: every service port of `old` (as written) and `new` (as recomputed) is
/// rewritten, changed or not, which repairs rules edited by hand: both maps flushed and every element added
/// again, every chain flushed and its rules added again, chains and sets that are gone deleted. The table itself
/// stays, and so do the affinity sets that are still wanted, with the clients they pin (upstream's full sync
/// keeps them the same way). `old` and `new` must hold every service port of the table.
pub fn resync_ops<'a>(old: &'a BTreeMap<String, PortObjects>, new: &'a BTreeMap<String, PortObjects>) -> Vec<Op<'a>> {
    let all: Vec<(&PortObjects, &PortObjects)> = pairs(old, new).into_iter().map(|(_, o, n)| (o, n)).collect();
    ops_of(&all, true)
}

/// Every key of `old` and `new` with its objects on each side (empty where it is missing).
fn pairs<'a>(old: &'a BTreeMap<String, PortObjects>, new: &'a BTreeMap<String, PortObjects>) -> Vec<(&'a str, &'a PortObjects, &'a PortObjects)> {
    static EMPTY: PortObjects = PortObjects { chains: Vec::new(), sets: Vec::new(), elements: Vec::new() };
    let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    keys.into_iter().map(|k| (k.as_str(), old.get(k).unwrap_or(&EMPTY), new.get(k).unwrap_or(&EMPTY))).collect()
}

/// The ops taking each (old, new) pair from its old objects to its new ones. `flush_maps`: both maps are
/// flushed first (instead of deleting the old elements one by one).
fn ops_of<'a>(changed: &[(&'a PortObjects, &'a PortObjects)], flush_maps: bool) -> Vec<Op<'a>> {
    let mut ops = Vec::new();
    if flush_maps {
        ops.push(Op::FlushMap(SERVICE_IPS_MAP));
        ops.push(Op::FlushMap(NODEPORTS_MAP));
    } else {
        for (o, _) in changed {
            ops.extend(o.elements.iter().map(Op::DeleteElement));
        }
    }
    for (o, _) in changed {
        ops.extend(o.chains.iter().map(|(c, _)| Op::FlushChain(c)));
    }
    for (o, n) in changed {
        for (chain, _) in &o.chains {
            if !n.chains.iter().any(|(c, _)| c == chain) {
                ops.push(Op::DeleteChain(chain));
            }
        }
        for set in &o.sets {
            if !n.sets.contains(set) {
                ops.push(Op::DeleteSet(&set.0));
            }
        }
    }
    for (o, n) in changed {
        add_ops(&mut ops, n, Some(o));
    }
    ops
}

/// [`partial_ops`] as `nft -f` text.
pub fn partial_script(cfg: &ProxyConfig, old: &BTreeMap<String, PortObjects>, new: &BTreeMap<String, PortObjects>) -> String {
    script(&cfg.table, &partial_ops(old, new))
}

/// Runs `script` as one `nft -f -` transaction.
pub fn apply_script(cfg: &ProxyConfig, script: &str) -> Result<(), ProxyError> {
    let spawn = |source| ProxyError::Spawn { table: cfg.table.clone(), source };
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes()).map_err(spawn)?;
    }
    let out = child.wait_with_output().map_err(spawn)?;
    if out.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr).lines().take(6).collect::<Vec<_>>().join("; ");
        Err(ProxyError::Refused { table: cfg.table.clone(), stderr })
    }
}

/// Replaces the proxy's table with the rules for `ports`.
pub fn apply(cfg: &ProxyConfig, ports: &[ServicePort]) -> Result<(), ProxyError> {
    apply_script(cfg, &full_script(cfg, &render(cfg, ports)))
}

/// Removes the proxy's table and its shard tables ([`super::shard`]; no error for those that are not there).
pub fn remove(cfg: &ProxyConfig) -> Result<(), ProxyError> {
    let mut s = String::new();
    for shard in 0..MAX_SHARDS {
        let t = table_name(&cfg.table, shard);
        let _ = writeln!(s, "add table ip {t}\ndelete table ip {t}");
    }
    apply_script(cfg, &s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service_proxy::model::Protocol;

    fn ep(ip: &str) -> Endpoint {
        Endpoint { ip: ip.parse().unwrap(), port: 8080 }
    }

    fn port(eps: &[&str], node_port: Option<u16>) -> ServicePort {
        let eps: Vec<Endpoint> = eps.iter().map(|ip| ep(ip)).collect();
        let mut p = ServicePort::new("default", "web", "http", Protocol::Tcp, "10.96.0.20".parse().unwrap(), 80).with_endpoints(&eps, false);
        p.node_port = node_port;
        p
    }

    fn rules(o: &PortObjects, chain: &str) -> Vec<String> {
        o.chains.iter().find(|(c, _)| c == chain).map(|(_, r)| r.iter().map(Rule::to_string).collect()).unwrap_or_else(|| panic!("no chain {chain} in {o:#?}"))
    }

    #[test]
    fn full_script_replaces_table_and_balances_over_endpoints() {
        let s = full_script(&ProxyConfig::default(), &render(&ProxyConfig::default(), &[port(&["10.244.0.4", "10.244.0.5"], Some(30080))]));
        assert!(s.starts_with("add table ip rkube-proxy\ndelete table ip rkube-proxy\nadd table ip rkube-proxy\n"), "{s}");
        for line in [
            "add rule ip rkube-proxy svc-default/web/tcp/http numgen random mod 2 vmap { 0 : goto ep-default/web/tcp/http__10.244.0.4/8080, 1 : goto ep-default/web/tcp/http__10.244.0.5/8080 }",
            "add rule ip rkube-proxy ep-default/web/tcp/http__10.244.0.5/8080 meta l4proto tcp dnat to 10.244.0.5:8080",
            "add element ip rkube-proxy service-ips { 10.96.0.20 . tcp . 80 : goto svc-default/web/tcp/http }",
            "add element ip rkube-proxy service-nodeports { tcp . 30080 : goto ext-default/web/tcp/http }",
            "add rule ip rkube-proxy ext-default/web/tcp/http meta mark set meta mark | 0x4000",
            "add rule ip rkube-proxy filter-forward ip daddr 10.96.0.0/12 reject",
        ] {
            assert!(s.lines().any(|l| l == line), "missing {line:?} in\n{s}");
        }
    }

    #[test]
    fn port_without_endpoints_gets_nothing() {
        let o = port_objects(&ProxyConfig::default(), &port(&[], Some(30080)));
        assert_eq!(o, PortObjects::default());
        assert!(!full_script(&ProxyConfig::default(), &render(&ProxyConfig::default(), &[port(&[], None)])).contains("dnat"));
    }

    #[test]
    fn client_ip_affinity_checks_each_endpoints_set_before_numgen_and_refreshes_it() {
        let mut p = port(&["10.244.0.4", "10.244.0.5"], None);
        p.affinity_timeout = Some(10800);
        let o = port_objects(&ProxyConfig::default(), &p);
        let svc = rules(&o, "svc-default/web/tcp/http");
        assert_eq!(svc.len(), 3, "{svc:?}");
        assert_eq!(svc[0], "ip saddr @aff-default/web/tcp/http__10.244.0.4/8080 goto ep-default/web/tcp/http__10.244.0.4/8080");
        assert!(svc[2].starts_with("numgen random mod 2"), "{svc:?}");
        let epr = rules(&o, "ep-default/web/tcp/http__10.244.0.5/8080");
        assert_eq!(epr[1], "update @aff-default/web/tcp/http__10.244.0.5/8080 { ip saddr }");
        assert_eq!(o.sets, [("aff-default/web/tcp/http__10.244.0.4/8080".to_string(), 10800), ("aff-default/web/tcp/http__10.244.0.5/8080".to_string(), 10800)]);
        let s = full_script(&ProxyConfig::default(), &render(&ProxyConfig::default(), &[p]));
        assert!(s.contains("add set ip rkube-proxy aff-default/web/tcp/http__10.244.0.4/8080 { type ipv4_addr ; flags dynamic,timeout ; timeout 10800s ; }"), "{s}");
        // no affinity: no sets, no set lookups
        let o = port_objects(&ProxyConfig::default(), &port(&["10.244.0.4"], None));
        assert!(o.sets.is_empty() && !format!("{o:?}").contains('@'));
    }

    #[test]
    fn external_ips_and_lb_ips_go_through_the_external_chain() {
        let mut p = port(&["10.244.0.4"], None);
        p.external_ips = vec!["192.0.2.7".parse().unwrap()];
        p.load_balancer_ips = vec!["198.51.100.9".parse().unwrap(), "192.0.2.7".parse().unwrap()];
        let o = port_objects(&ProxyConfig::default(), &p);
        let els: Vec<String> = o.elements.iter().map(Element::to_string).collect();
        assert_eq!(
            els,
            [
                "service-ips 10.96.0.20 . tcp . 80 goto svc-default/web/tcp/http",
                "service-ips 192.0.2.7 . tcp . 80 goto ext-default/web/tcp/http",
                "service-ips 198.51.100.9 . tcp . 80 goto ext-default/web/tcp/http",
            ]
        );
        assert_eq!(rules(&o, "ext-default/web/tcp/http"), ["meta mark set meta mark | 0x4000", "goto svc-default/web/tcp/http"]);
    }

    #[test]
    fn external_local_keeps_the_source_and_uses_local_endpoints_only() {
        let mut p = port(&["10.244.0.4", "10.244.0.5"], Some(30080));
        p.external_policy = TrafficPolicy::Local;
        p.local_endpoints = vec![ep("10.244.0.5")];
        let o = port_objects(&ProxyConfig::default(), &p);
        assert_eq!(
            rules(&o, "ext-default/web/tcp/http"),
            ["fib saddr type local meta mark set meta mark | 0x4000 goto svc-default/web/tcp/http", "goto local-default/web/tcp/http"],
            "no masquerade mark for outside clients"
        );
        assert_eq!(rules(&o, "local-default/web/tcp/http"), ["numgen random mod 1 vmap { 0 : goto ep-default/web/tcp/http__10.244.0.5/8080 }"]);
        // the ClusterIP still spreads over all endpoints (internal policy Cluster)
        assert!(rules(&o, "svc-default/web/tcp/http")[0].starts_with("numgen random mod 2"));
        // no local endpoint: external traffic is dropped here (the LB's health check steers it elsewhere)
        p.local_endpoints.clear();
        assert_eq!(rules(&port_objects(&ProxyConfig::default(), &p), "local-default/web/tcp/http"), ["drop"]);
    }

    #[test]
    fn external_local_short_circuits_pod_traffic_from_the_pod_bridge() {
        let cfg = ProxyConfig { pod_bridge: Some("rkube0".into()), ..ProxyConfig::default() };
        let mut p = port(&["10.244.0.4", "10.244.0.5"], Some(30080));
        p.external_policy = TrafficPolicy::Local;
        p.local_endpoints.clear(); // every endpoint on other nodes
        let o = port_objects(&cfg, &p);
        assert_eq!(
            rules(&o, "ext-default/web/tcp/http"),
            [
                "iifname \"rkube0\" goto svc-default/web/tcp/http",
                "fib saddr type local meta mark set meta mark | 0x4000 goto svc-default/web/tcp/http",
                "goto local-default/web/tcp/http",
            ],
            "pods on this node: any endpoint, source kept; the node: any endpoint, masqueraded; the rest: local only"
        );
        assert_eq!(rules(&o, "local-default/web/tcp/http"), ["drop"]);
        // Cluster policy: no short-circuit needed, every source already goes to any endpoint
        p.external_policy = TrafficPolicy::Cluster;
        assert!(!format!("{:?}", port_objects(&cfg, &p)).contains("iifname"));
    }

    #[test]
    fn internal_local_sends_the_cluster_ip_to_local_endpoints() {
        let mut p = port(&["10.244.0.4", "10.244.0.5"], None);
        p.internal_policy = TrafficPolicy::Local;
        p.cluster_endpoints.clear(); // as categorize leaves it: not externally accessible
        p.local_endpoints = vec![ep("10.244.0.4")];
        let o = port_objects(&ProxyConfig::default(), &p);
        assert_eq!(o.elements[0].chain, "local-default/web/tcp/http");
        assert!(!o.chains.iter().any(|(c, _)| c.starts_with("svc-")), "{o:#?}");
    }

    #[test]
    fn partial_script_touches_only_the_changed_port() {
        let cfg = ProxyConfig::default();
        let mut other = port(&["10.244.0.9"], None);
        other.service = "other".into();
        other.cluster_ip = "10.96.0.21".parse().unwrap();
        let before = render(&ProxyConfig::default(), &[port(&["10.244.0.4", "10.244.0.5"], None), other.clone()]);
        let mut changed = port(&["10.244.0.4", "10.244.0.6"], None);
        changed.affinity_timeout = Some(30);
        let after = render(&ProxyConfig::default(), &[changed, other]);
        let s = partial_script(&cfg, &before, &after);
        assert!(!s.contains("default/other/"), "the unchanged Service is not touched:\n{s}");
        assert!(!s.contains("table"), "no table replace:\n{s}");
        let lines: Vec<&str> = s.lines().collect();
        let pos = |l: &str| lines.iter().position(|x| *x == l).unwrap_or_else(|| panic!("missing {l:?} in\n{s}"));
        let del_el = pos("delete element ip rkube-proxy service-ips { 10.96.0.20 . tcp . 80 }");
        let flush = pos("flush chain ip rkube-proxy svc-default/web/tcp/http");
        let del_gone = pos("delete chain ip rkube-proxy ep-default/web/tcp/http__10.244.0.5/8080");
        let add_new = pos("add chain ip rkube-proxy ep-default/web/tcp/http__10.244.0.6/8080");
        let add_set = pos("add set ip rkube-proxy aff-default/web/tcp/http__10.244.0.6/8080 { type ipv4_addr ; flags dynamic,timeout ; timeout 30s ; }");
        let add_el = pos("add element ip rkube-proxy service-ips { 10.96.0.20 . tcp . 80 : goto svc-default/web/tcp/http }");
        assert!(del_el < flush && flush < del_gone && del_gone < add_new && add_new < add_set && add_set < add_el, "{s}");
        assert!(!s.contains("add chain ip rkube-proxy svc-default/web/tcp/http\n"), "a kept chain is flushed, not re-added:\n{s}");
        // nothing changed: nothing to do; a Service removed: its objects deleted
        assert_eq!(partial_script(&cfg, &after, &after), "");
        let gone = partial_script(&cfg, &before, &BTreeMap::new());
        assert!(gone.contains("delete chain ip rkube-proxy svc-default/other/tcp/http") && !gone.contains("add "), "{gone}");
    }

    #[test]
    fn a_sharded_table_set_puts_each_service_in_its_shard_and_the_guard_in_the_first() {
        use crate::service_proxy::shard::shard_of;
        let cfg = ProxyConfig::default();
        let ports: Vec<ServicePort> = (0..8u8)
            .map(|i| {
                let mut p = port(&["10.244.0.4"], None);
                p.service = format!("web{i}");
                p.cluster_ip = Ipv4Addr::new(10, 96, 0, 20 + i);
                p
            })
            .collect();
        let s = full_script_sharded(&cfg, &Shards::by_hash(4), &render(&cfg, &ports));
        for shard in 0..4 {
            let t = table_name("rkube-proxy", shard);
            assert!(s.contains(&format!("add table ip {t}\ndelete table ip {t}\nadd table ip {t}\n")), "{t} replaced:\n{s}");
            for line in [
                format!("add chain ip {t} nat-prerouting {{ type nat hook prerouting priority -100 ; policy accept ; }}"),
                format!("add rule ip {t} services ip daddr . meta l4proto . th dport vmap @service-ips"),
            ] {
                assert!(s.lines().any(|l| l == line), "missing {line:?} in\n{s}");
            }
            // the masquerade and the CIDR guard once, in the proxy's own table
            let guard = s.lines().any(|l| l == format!("add rule ip {t} filter-forward ip daddr 10.96.0.0/12 reject"));
            assert_eq!(guard, shard == 0, "{t}");
            assert_eq!(s.contains(&format!("add chain ip {t} nat-postrouting")), shard == 0, "{t}");
        }
        for (i, p) in ports.iter().enumerate() {
            let t = table_name("rkube-proxy", shard_of("default", &p.service, 4));
            let element = format!("add element ip {t} service-ips {{ 10.96.0.{} . tcp . 80 : goto svc-default/web{i}/tcp/http }}", 20 + i);
            assert!(s.lines().any(|l| l == element), "missing {element:?}");
            assert_eq!(s.matches(&format!("svc-default/web{i}/tcp/http\n")).count(), 1, "web{i}'s chain made once, in {t}");
        }
        assert!(ports.iter().map(|p| shard_of("default", &p.service, 4)).collect::<BTreeSet<_>>().len() > 1, "8 Services in more than one shard");
        // shard tables a larger count left are deleted; none beyond 63
        assert!(s.contains("add table ip rkube-proxy-4\ndelete table ip rkube-proxy-4\n") && s.contains("delete table ip rkube-proxy-63\n"));
        assert!(!s.contains("rkube-proxy-64"));
        // one shard: the layout as it always was, its first lines the table's replacement
        let one = full_script(&cfg, &render(&cfg, &ports));
        assert!(one.starts_with("add table ip rkube-proxy\ndelete table ip rkube-proxy\nadd table ip rkube-proxy\n"));
        assert!(!one.contains("add chain ip rkube-proxy-1 "), "{one}");
    }

    #[test]
    fn sharded_ops_write_each_change_in_its_own_table_and_a_resync_keeps_the_affinity_sets() {
        use crate::service_proxy::shard::shard_of;
        let cfg = ProxyConfig::default();
        let named = |name: &str, ip: u8, eps: &[&str]| {
            let mut p = port(eps, None);
            p.service = name.into();
            p.cluster_ip = Ipv4Addr::new(10, 96, 0, ip);
            p.affinity_timeout = Some(60);
            p
        };
        // two Services in different shards of 4
        let (a, b) = (0..40).map(|i| (format!("a{i}"), format!("b{i}"))).find(|(a, b)| shard_of("default", a, 4) != shard_of("default", b, 4)).expect("two shards");
        let before = render(&cfg, &[named(&a, 1, &["10.244.0.4"]), named(&b, 2, &["10.244.0.5"])]);
        let after = render(&cfg, &[named(&a, 1, &["10.244.0.4", "10.244.0.6"]), named(&b, 2, &["10.244.0.5"])]);
        let ops = sharded_ops(&before, &after, &Shards::by_hash(4));
        assert_eq!(ops.keys().copied().collect::<Vec<_>>(), [shard_of("default", &a, 4)], "only a's shard: {ops:?}");
        assert!(ops.values().flatten().all(|op| !format!("{op:?}").contains(&format!("default/{b}/"))));

        // a resync of a's shard: every chain flushed, every rule and element again, the maps flushed first, and
        // the affinity set that stays is neither deleted nor made again
        let resync = resync_ops(&before, &after);
        let text = script("rkube-proxy", &resync);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(&lines[..2], ["flush map ip rkube-proxy service-ips", "flush map ip rkube-proxy service-nodeports"], "{text}");
        let kept = format!("aff-default/{a}/tcp/http__10.244.0.4/8080");
        assert!(!text.contains(&format!("delete set ip rkube-proxy {kept}")) && !text.contains(&format!("add set ip rkube-proxy {kept} ")), "{text}");
        assert!(text.contains(&format!("add set ip rkube-proxy aff-default/{a}/tcp/http__10.244.0.6/8080 ")), "the new endpoint's set: {text}");
        assert!(!text.contains("delete element"), "after a flush no element is deleted one by one: {text}");
        // unchanged ports are rewritten too (a rule edited by hand is repaired)
        assert!(text.contains(&format!("flush chain ip rkube-proxy svc-default/{b}/tcp/http")), "{text}");
        assert!(text.contains(&format!("add element ip rkube-proxy service-ips {{ 10.96.0.2 . tcp . 80 : goto svc-default/{b}/tcp/http }}")), "{text}");
        // a timeout changed: that set is made again (with the new timeout)
        let mut longer = after.clone();
        for objs in longer.values_mut() {
            for set in &mut objs.sets {
                set.1 = 120;
            }
        }
        let t = script("rkube-proxy", &resync_ops(&after, &longer));
        assert!(t.contains(&format!("delete set ip rkube-proxy {kept}")) && t.contains(&format!("add set ip rkube-proxy {kept} {{ type ipv4_addr ; flags dynamic,timeout ; timeout 120s ; }}")), "{t}");
    }
}
