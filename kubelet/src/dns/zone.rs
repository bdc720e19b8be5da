//! The cluster's DNS answers, computed the way CoreDNS's kubernetes plugin computes them (the schema is
//! kubernetes/dns `docs/specification.md`; where CoreDNS goes beyond or around it, CoreDNS's behaviour is
//! followed, with the Corefile kubeadm deploys: `kubernetes cluster.local in-addr.arpa ip6.arpa { pods
//! insecure; fallthrough in-addr.arpa ip6.arpa }` and the plugin's default `ttl 5`).
//!
//! The zone is rebuilt whole from Namespaces, Services and EndpointSlices on every change and answers without
//! I/O: [`Zone::lookup`] gives the records, the response code and the SOA to put in the authority section, and
//! names an upstream lookup to append when an ExternalName's target lies outside the cluster domain (the server
//! does that one). It must not read the clock or the network; the server owns both.
//!
//! What a name is, in the order CoreDNS decides it:
//! - `<service>.<ns>.svc.<zone>`: the ClusterIP(s); a headless Service's ready endpoint addresses; an
//!   ExternalName Service's CNAME. A headless Service with no ready endpoint does not exist (NXDOMAIN).
//! - `<endpoint>.<service>.<ns>.svc.<zone>`: one ready endpoint, named by its `hostname` (StatefulSet pods:
//!   `web-0.web.ns.svc...`) or else by its address with dashes (`10-244-1-5.web.ns.svc...`).
//! - `_<port>._<proto>.<service>.<ns>.svc.<zone>` (SRV): the named port; SRV on the Service name lists every port.
//! - `<a-b-c-d>.<ns>.pod.<zone>`: the address in the name, if the namespace exists ("pods insecure").
//! - `<ns>.svc.<zone>`, `svc.<zone>`, `pod.<zone>` and the apex exist with no records (NODATA) when the
//!   namespace exists; `dns-version.<zone>` TXT is the schema version; `ns.dns.<zone>` is this server.
//! - `d.c.b.a.in-addr.arpa` (PTR): a ClusterIP's Service name, or an endpoint with a hostname. A reverse name
//!   that is not ours goes on to the upstream (CoreDNS's fallthrough), as does every name outside the zones.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::RecordType;
use k8s_openapi::api::core::v1::Service;

use crate::service_proxy::model::SERVICE_NAME_LABEL;
use crate::service_watch::ServiceState;

/// TTL of every record the zone makes: the kubernetes plugin's `ttl` default.
pub const DEFAULT_TTL: u32 = 5;
/// The version of the DNS schema answered at `dns-version.<zone>` (TXT), with its TTL.
pub const SCHEMA_VERSION: &str = "1.1.0";
/// The TTL of the `dns-version` TXT record, in seconds (8 hours, as CoreDNS).
pub const SCHEMA_VERSION_TTL: u32 = 28800;
/// SOA timers, as CoreDNS's backends set them.
const SOA_REFRESH: i32 = 7200;
const SOA_RETRY: i32 = 1800;
const SOA_EXPIRE: i32 = 86400;
/// How deep a chain of CNAMEs inside the zone is followed (CoreDNS stops adding after 8).
const MAX_CNAME_CHAIN: usize = 7;
const REVERSE_ZONES: [&str; 2] = ["in-addr.arpa", "ip6.arpa"];

/// One resource record. Names are absolute, with the trailing dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rr {
    /// The owner name; the question's own name keeps the case it was asked in.
    pub name: String,
    /// Seconds a resolver may cache it.
    pub ttl: u32,
    /// The type and its data.
    pub data: Data,
}

/// The record types the zone answers with, and their data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    /// An IPv4 address: a ClusterIP, an endpoint or a pod.
    A(Ipv4Addr),
    /// An IPv6 address.
    Aaaa(Ipv6Addr),
    /// An alias: an ExternalName Service's target, absolute.
    Cname(String),
    /// A reverse name's owner: the Service or named endpoint of an address, absolute.
    Ptr(String),
    /// The zone's nameserver, `ns.dns.<zone>.`.
    Ns(String),
    /// A service location (RFC 2782), one per endpoint and named port.
    Srv {
        /// Always 0: every endpoint is equal.
        priority: u16,
        /// The record's share, as CoreDNS weighs them: floor(100 / records in the answer), at least 1.
        weight: u16,
        /// The port number.
        port: u16,
        /// The name owning the address (an endpoint's, or the Service's for a ClusterIP), absolute; its A or
        /// AAAA record goes in the additional section.
        target: String,
    },
    /// A text record: the schema version at `dns-version.<zone>`.
    Txt(String),
    /// The zone's start of authority, in negative answers' authority section.
    Soa {
        /// The primary nameserver, `ns.dns.<zone>.`.
        mname: String,
        /// The contact mailbox, `hostmaster.<zone>.`.
        rname: String,
        /// The zone version: the time of the last change, in seconds since the epoch.
        serial: u32,
        /// Seconds before a secondary refreshes (CoreDNS's 7200).
        refresh: i32,
        /// Seconds before a failed refresh is retried (1800).
        retry: i32,
        /// Seconds after which a secondary that cannot refresh stops answering (86400).
        expire: i32,
        /// The negative-caching TTL in seconds: the records' TTL.
        minimum: u32,
    },
}

impl fmt::Display for Rr {
    /// Zone-file form, as dig prints it (with single spaces): `web.default.svc.cluster.local. 5 IN A 10.96.0.20`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} IN ", self.name, self.ttl)?;
        match &self.data {
            Data::A(ip) => write!(f, "A {ip}"),
            Data::Aaaa(ip) => write!(f, "AAAA {ip}"),
            Data::Cname(t) => write!(f, "CNAME {t}"),
            Data::Ptr(t) => write!(f, "PTR {t}"),
            Data::Ns(t) => write!(f, "NS {t}"),
            Data::Srv { priority, weight, port, target } => write!(f, "SRV {priority} {weight} {port} {target}"),
            Data::Txt(t) => write!(f, "TXT \"{t}\""),
            Data::Soa { mname, rname, serial, refresh, retry, expire, minimum } => {
                write!(f, "SOA {mname} {rname} {serial} {refresh} {retry} {expire} {minimum}")
            }
        }
    }
}

/// The response code of an answer from the zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rcode {
    /// The name exists: answers, or none (NODATA) for a type it has no records of.
    NoError,
    /// The name does not exist in the zone.
    NxDomain,
    /// The zone has not been filled from the API yet: a missing name may only be missing from us.
    ServFail,
}

/// An authoritative answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The response code.
    pub rcode: Rcode,
    /// The answer section, CNAMEs first and their targets' records after.
    pub answers: Vec<Rr>,
    /// The zone's SOA when there is no answer (NXDOMAIN and NODATA), for negative caching.
    pub authorities: Vec<Rr>,
    /// Addresses of SRV targets and of `ns.dns.<zone>`, so the client need not ask again.
    pub additionals: Vec<Rr>,
    /// An ExternalName's target outside the zone: resolve it upstream with this type and append its answers
    /// after `answers` (which end with the CNAME to it). Without an upstream, or when it fails, the CNAME stands alone.
    pub upstream: Option<(String, RecordType)>,
}

/// What the zone says about one question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The zone is authoritative for the name: this is the answer.
    Answer(Reply),
    /// Zone transfers are not served.
    Refused,
    /// Not a name of ours (outside the zones, or a reverse name we do not know): ask the upstream.
    NotOurs,
}

/// A Service as DNS sees it.
#[derive(Debug, Clone)]
struct Svc {
    kind: SvcKind,
    ports: Vec<Port>,
}

#[derive(Debug, Clone)]
enum SvcKind {
    ClusterIp(Vec<IpAddr>),
    Headless,
    ExternalName(String),
}

#[derive(Debug, Clone)]
struct Port {
    name: String,
    protocol: String,
    /// -1: the slice declares no ports (CoreDNS's sentinel: the address counts, but makes no SRV record).
    port: i32,
}

/// One EndpointSlice of a Service: its ports and ready addresses.
#[derive(Debug, Clone)]
struct EndpointSet {
    ports: Vec<Port>,
    addresses: Vec<(IpAddr, Option<String>)>,
}

/// CoreDNS's `msg.Service`: an address or a name, a port, and the name that owns it (the SRV target).
#[derive(Debug, Clone)]
struct Entry {
    host: Host,
    port: i32,
    key: String,
}

#[derive(Debug, Clone)]
enum Host {
    Ip(IpAddr),
    Name(String),
    Text(&'static str),
}

/// Answers, additionals and the upstream lookup of one answer.
type Sections = (Vec<Rr>, Vec<Rr>, Option<(String, RecordType)>);

/// The name does not exist (CoreDNS's errNoItems, errNsNotExposed and errInvalidRequest alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct NameError;

/// A query name taken apart as CoreDNS's `parseRequest` does.
#[derive(Debug, Default)]
struct Request {
    pod_or_svc: String,
    namespace: String,
    service: String,
    endpoint: String,
    port: String,
    protocol: String,
}

/// All names of the cluster domain and the reverse zones.
#[derive(Debug, Clone, Default)]
pub struct Zone {
    domain: String,
    ttl: u32,
    serial: u32,
    synced: bool,
    nameservers: Vec<IpAddr>,
    namespaces: HashSet<String>,
    services: HashMap<(String, String), Svc>,
    endpoints: HashMap<(String, String), Vec<EndpointSet>>,
    by_cluster_ip: HashMap<IpAddr, (String, String)>,
    /// endpoint address -> (hostname, service, namespace), only for endpoints with a hostname
    by_endpoint_ip: HashMap<IpAddr, Vec<(String, String, String)>>,
}

/// `name` without the trailing dot, lowercase.
fn canonical(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn fqdn(name: &str) -> String {
    if name.ends_with('.') { name.to_string() } else { format!("{name}.") }
}

/// The part of `name` before `zone` ("" for the apex), if `name` is `zone` or below it.
fn trim_zone<'a>(name: &'a str, zone: &str) -> Option<&'a str> {
    if name == zone {
        return Some("");
    }
    name.strip_suffix(zone)?.strip_suffix('.')
}

fn strip_underscore(s: &str) -> &str {
    s.strip_prefix('_').unwrap_or(s)
}

/// CoreDNS's `matchPortAndProtocol`: an empty asked port or protocol matches any.
fn port_matches(r: &Request, p: &Port) -> bool {
    (r.port.is_empty() || r.port.eq_ignore_ascii_case(&p.name))
        && (r.protocol.is_empty() || r.protocol.eq_ignore_ascii_case(&p.protocol))
}

/// The name of an endpoint inside its Service: its hostname, else its address with dashes (CoreDNS's
/// `endpointHostname` without `endpoint_pod_names`).
fn endpoint_name(ip: &IpAddr, hostname: &Option<String>) -> String {
    match hostname.as_deref().filter(|h| !h.is_empty()) {
        Some(h) => h.to_ascii_lowercase(),
        None => ip.to_string().replace(['.', ':'], "-"),
    }
}

/// The address of a reverse name (`4.3.2.1.in-addr.arpa` -> 1.2.3.4; 32 nibbles under ip6.arpa).
fn address_from_reverse(name: &str) -> Option<IpAddr> {
    if let Some(v4) = name.strip_suffix(".in-addr.arpa") {
        let mut labels: Vec<&str> = v4.split('.').collect();
        labels.reverse();
        return labels.join(".").parse::<Ipv4Addr>().ok().map(IpAddr::V4);
    }
    let v6 = name.strip_suffix(".ip6.arpa")?;
    let nibbles: Vec<&str> = v6.split('.').collect();
    if nibbles.len() != 32 || nibbles.iter().any(|n| n.len() != 1) {
        return None;
    }
    let hex: String = nibbles.iter().rev().copied().collect();
    let groups: Vec<&str> = (0..8).map(|i| &hex[i * 4..i * 4 + 4]).collect();
    groups.join(":").parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

fn parse_ports(ports: impl Iterator<Item = (Option<String>, Option<String>, i32)>) -> Vec<Port> {
    ports
        .map(|(name, protocol, port)| Port {
            name: name.unwrap_or_default(),
            protocol: protocol.unwrap_or_else(|| "TCP".into()),
            port,
        })
        .collect()
}

fn service_kind(svc: &Service) -> Option<SvcKind> {
    let spec = svc.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return Some(SvcKind::ExternalName(spec.external_name.clone().unwrap_or_default()));
    }
    let ips: Vec<String> = match &spec.cluster_ips {
        Some(ips) if !ips.is_empty() => ips.clone(),
        _ => vec![spec.cluster_ip.clone().unwrap_or_default()],
    };
    if ips.first().map(String::as_str) == Some("None") {
        return Some(SvcKind::Headless);
    }
    Some(SvcKind::ClusterIp(ips.iter().filter_map(|ip| ip.parse().ok()).collect()))
}

impl Zone {
    /// The zone of `domain` (`cluster.local`) for the cluster in `state`; `serial` is the SOA serial (CoreDNS
    /// uses the time of the last change, in seconds since the epoch).
    pub fn build(domain: &str, state: &ServiceState, serial: u32) -> Zone {
        let mut zone = Zone {
            domain: canonical(domain),
            ttl: DEFAULT_TTL,
            serial,
            synced: true,
            ..Zone::default()
        };
        zone.namespaces = state.namespaces.iter().filter_map(|n| n.metadata.name.as_deref()).map(str::to_ascii_lowercase).collect();
        for svc in &state.services {
            let (Some(ns), Some(name)) = (&svc.metadata.namespace, &svc.metadata.name) else { continue };
            let Some(kind) = service_kind(svc) else { continue };
            let key = (ns.to_ascii_lowercase(), name.to_ascii_lowercase());
            if let SvcKind::ClusterIp(ips) = &kind {
                for ip in ips {
                    zone.by_cluster_ip.insert(*ip, key.clone());
                }
            }
            let ports = svc.spec.as_ref().and_then(|s| s.ports.as_ref()).into_iter().flatten();
            let ports = parse_ports(ports.map(|p| (p.name.clone(), p.protocol.clone(), p.port)));
            zone.services.insert(key, Svc { kind, ports });
        }
        // slices by name, so answers come in a stable order
        let mut slices: BTreeMap<(String, String), _> = BTreeMap::new();
        for slice in state.slices.iter().filter(|s| s.address_type == "IPv4" || s.address_type == "IPv6") {
            let ns = slice.metadata.namespace.clone().unwrap_or_default().to_ascii_lowercase();
            slices.insert((ns, slice.metadata.name.clone().unwrap_or_default()), slice);
        }
        for ((ns, _), slice) in slices {
            let Some(svc) = slice.metadata.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL)) else { continue };
            let svc = svc.to_ascii_lowercase();
            let ports = match slice.ports.as_deref() {
                Some(ports) if !ports.is_empty() => {
                    parse_ports(ports.iter().map(|p| (p.name.clone(), p.protocol.clone(), p.port.unwrap_or(-1))))
                }
                _ => vec![Port { name: String::new(), protocol: String::new(), port: -1 }],
            };
            let mut addresses = Vec::new();
            for ep in &slice.endpoints {
                // ready unset counts as ready, as the API documents
                if ep.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                    continue;
                }
                for ip in ep.addresses.iter().filter_map(|a| a.parse::<IpAddr>().ok()) {
                    let hostname = ep.hostname.clone().filter(|h| !h.is_empty());
                    if let Some(h) = &hostname {
                        zone.by_endpoint_ip.entry(ip).or_default().push((h.to_ascii_lowercase(), svc.clone(), ns.clone()));
                    }
                    addresses.push((ip, hostname));
                }
            }
            zone.endpoints.entry((ns.clone(), svc)).or_default().push(EndpointSet { ports, addresses });
        }
        zone
    }

    /// An empty zone that has not seen the API yet: every name it does not know is SERVFAIL, not NXDOMAIN.
    pub fn unsynced(domain: &str) -> Zone {
        Zone { domain: canonical(domain), ttl: DEFAULT_TTL, ..Zone::default() }
    }

    /// The addresses this server answers on: `ns.dns.<zone>` and the zone's NS records point there.
    pub fn with_nameservers(mut self, nameservers: Vec<IpAddr>) -> Zone {
        self.nameservers = nameservers;
        self
    }

    /// The cluster domain, lowercase without the trailing dot (`cluster.local`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The answer to `qname` (as asked: case kept in the records' names) with type `qtype`.
    pub fn lookup(&self, qname: &str, qtype: RecordType) -> Lookup {
        let name = canonical(qname);
        let owner = fqdn(qname);
        // the most specific zone that holds the name
        let zones = std::iter::once(self.domain.as_str()).chain(REVERSE_ZONES);
        let Some(zone) = zones.filter(|z| trim_zone(&name, z).is_some()).max_by_key(|z| z.len()) else {
            return Lookup::NotOurs;
        };
        let reverse = zone != self.domain;
        let result: Result<Sections, NameError> = match qtype {
            RecordType::A | RecordType::AAAA => {
                self.address(&name, &owner, qtype, zone, &[]).map(|(answers, upstream)| (answers, vec![], upstream))
            }
            RecordType::TXT => self.txt(&name, &owner, zone).map(|a| (a, vec![], None)),
            RecordType::CNAME => self.cname(&name, &owner, zone).map(|a| (a, vec![], None)),
            RecordType::PTR => self.ptr(&name, &owner, zone).map(|a| (a, vec![], None)),
            RecordType::SRV => self.srv(&name, &owner, zone).map(|(a, extra)| (a, extra, None)),
            RecordType::SOA => Ok((if name == zone { vec![self.soa(zone)] } else { vec![] }, vec![], None)),
            RecordType::AXFR | RecordType::IXFR => return Lookup::Refused,
            RecordType::NS if name == zone => Ok(self.ns(&owner, zone)),
            // MX, NS below the apex, ANY, HTTPS and the rest: the name exists (NODATA) or not (NXDOMAIN), as a
            // lookup of A would say
            _ => self.address(&name, &owner, RecordType::A, zone, &[]).map(|_| (vec![], vec![], None)),
        };
        let reply = |rcode, answers, additionals, upstream| {
            let authorities = if rcode == Rcode::NoError && !Vec::is_empty(&answers) { vec![] } else { vec![self.soa(zone)] };
            Lookup::Answer(Reply { rcode, answers, authorities, additionals, upstream })
        };
        match result {
            // fallthrough in-addr.arpa ip6.arpa
            Err(NameError) if reverse => Lookup::NotOurs,
            Err(NameError) if !self.synced => reply(Rcode::ServFail, vec![], vec![], None),
            Err(NameError) => reply(Rcode::NxDomain, vec![], vec![], None),
            // no answer: NODATA, SOA only (CoreDNS drops the extras then)
            Ok((answers, _, _)) if answers.is_empty() => reply(Rcode::NoError, vec![], vec![], None),
            Ok((answers, additionals, upstream)) => reply(Rcode::NoError, answers, additionals, upstream),
        }
    }

    fn rr(&self, name: &str, data: Data) -> Rr {
        Rr { name: fqdn(name), ttl: self.ttl, data }
    }

    /// The zone's SOA: `ns.dns.<zone>. hostmaster.<zone>.`, CoreDNS's timers, the negative TTL = the record TTL.
    fn soa(&self, zone: &str) -> Rr {
        Rr {
            name: fqdn(zone),
            ttl: self.ttl.min(300),
            data: Data::Soa {
                mname: format!("ns.dns.{zone}."),
                rname: format!("hostmaster.{zone}."),
                serial: self.serial,
                refresh: SOA_REFRESH,
                retry: SOA_RETRY,
                expire: SOA_EXPIRE,
                minimum: self.ttl,
            },
        }
    }

    fn namespace_exists(&self, ns: &str) -> bool {
        self.namespaces.contains(ns)
    }

    /// CoreDNS's `parseRequest` followed by `Records`: what a name holds, by the shape of the name.
    fn records(&self, name: &str, zone: &str) -> Result<Vec<Entry>, NameError> {
        let base = trim_zone(name, zone).ok_or(NameError)?;
        if base.is_empty() || base == "svc" || base == "pod" {
            return Ok(vec![]);
        }
        let mut segs: Vec<&str> = base.split('.').collect();
        let mut r = Request { pod_or_svc: segs.pop().unwrap_or_default().to_string(), ..Request::default() };
        if r.pod_or_svc != "svc" && r.pod_or_svc != "pod" {
            return Err(NameError);
        }
        if let Some(ns) = segs.pop() {
            r.namespace = ns.to_string();
        }
        if let Some(svc) = segs.pop() {
            r.service = svc.to_string();
        }
        match segs.as_slice() {
            [] => {}
            [endpoint] => r.endpoint = endpoint.to_string(),
            [port, protocol] => {
                r.port = strip_underscore(port).to_string();
                r.protocol = strip_underscore(protocol).to_string();
            }
            _ => return Err(NameError),
        }
        if REVERSE_ZONES.contains(&zone) || !self.namespace_exists(&r.namespace) {
            return Err(NameError);
        }
        if r.pod_or_svc == "pod" {
            return self.find_pod(&r, zone);
        }
        self.find_service(&r, zone)
    }

    /// `pods insecure`: the address is in the name; only the namespace must exist.
    fn find_pod(&self, r: &Request, zone: &str) -> Result<Vec<Entry>, NameError> {
        if r.service.is_empty() {
            return Ok(vec![]);
        }
        let ip = if r.service.matches('-').count() == 3 && !r.service.contains("--") {
            r.service.replace('-', ".")
        } else {
            r.service.replace('-', ":")
        };
        let ip: IpAddr = ip.parse().map_err(|_| NameError)?;
        Ok(vec![Entry { host: Host::Ip(ip), port: 0, key: format!("{}.{}.pod.{zone}", r.service, r.namespace) }])
    }

    fn find_service(&self, r: &Request, zone: &str) -> Result<Vec<Entry>, NameError> {
        if r.service.is_empty() {
            return Ok(vec![]);
        }
        let key = (r.namespace.clone(), r.service.clone());
        let svc = self.services.get(&key).ok_or(NameError)?;
        let base = format!("{}.{}.svc.{zone}", r.service, r.namespace);
        if let SvcKind::ExternalName(target) = &svc.kind {
            // no endpoints, ports or protocols below an ExternalName; an address is not a name to CNAME to
            if !r.endpoint.is_empty() || !r.port.is_empty() || !r.protocol.is_empty() || target.is_empty() || target.parse::<IpAddr>().is_ok() {
                return Err(NameError);
            }
            return Ok(vec![Entry { host: Host::Name(target.clone()), port: 0, key: base }]);
        }
        let mut found = Vec::new();
        if matches!(svc.kind, SvcKind::Headless) || !r.endpoint.is_empty() {
            // a headless Service, or one endpoint of any Service: the ready endpoint addresses
            for set in self.endpoints.get(&key).into_iter().flatten() {
                for (ip, hostname) in &set.addresses {
                    let ep_name = endpoint_name(ip, hostname);
                    if !r.endpoint.is_empty() && r.endpoint != ep_name {
                        continue;
                    }
                    for p in set.ports.iter().filter(|p| port_matches(r, p)) {
                        found.push(Entry { host: Host::Ip(*ip), port: p.port, key: format!("{ep_name}.{base}") });
                    }
                }
            }
            return if found.is_empty() { Err(NameError) } else { Ok(found) };
        }
        // a ClusterIP Service exists by its ports: a port name it does not have is NXDOMAIN
        let ports: Vec<&Port> = svc.ports.iter().filter(|p| port_matches(r, p)).collect();
        if ports.is_empty() {
            return Err(NameError);
        }
        if let SvcKind::ClusterIp(ips) = &svc.kind {
            for p in ports {
                for ip in ips {
                    found.push(Entry { host: Host::Ip(*ip), port: p.port, key: base.clone() });
                }
            }
        }
        Ok(found)
    }

    /// CoreDNS's `Services`: `records` plus the special names (schema version, the nameserver) by type.
    fn services(&self, name: &str, qtype: RecordType, zone: &str) -> Result<Vec<Entry>, NameError> {
        if qtype == RecordType::TXT {
            if trim_zone(name, zone) == Some("dns-version") {
                return Ok(vec![Entry { host: Host::Text(SCHEMA_VERSION), port: 0, key: name.to_string() }]);
            }
            // the name exists with other records: NODATA; else NXDOMAIN
            return match self.records(name, zone) {
                Ok(found) if !found.is_empty() => Ok(vec![]),
                _ => Err(NameError),
            };
        }
        if name == format!("ns.dns.{zone}") {
            return Ok(self.nameserver_entries(name, qtype));
        }
        let found = self.records(name, zone)?;
        if qtype == RecordType::SRV {
            // no SRV for ExternalName Services
            return Ok(found.into_iter().filter(|e| !matches!(e.host, Host::Name(_))).collect());
        }
        Ok(found)
    }

    /// `ns.dns.<zone>`: this server's addresses of the asked family.
    fn nameserver_entries(&self, key: &str, qtype: RecordType) -> Vec<Entry> {
        self.nameservers
            .iter()
            .filter(|ip| match qtype {
                RecordType::A => ip.is_ipv4(),
                RecordType::AAAA => ip.is_ipv6(),
                _ => false,
            })
            .map(|ip| Entry { host: Host::Ip(*ip), port: 0, key: key.to_string() })
            .collect()
    }

    /// CoreDNS's `checkForApex`: the apex itself has no address records of its own.
    fn services_or_apex(&self, name: &str, qtype: RecordType, zone: &str) -> Result<Vec<Entry>, NameError> {
        if name != zone {
            return self.services(name, qtype, zone);
        }
        self.services(&format!("apex.dns.{zone}"), qtype, zone).or_else(|_| self.services(name, qtype, zone))
    }

    /// A or AAAA: addresses, or an ExternalName's CNAME followed by what its target resolves to (inside the
    /// zone, here; outside, by the upstream: returned as the lookup to make).
    #[allow(clippy::type_complexity)]
    fn address(
        &self,
        name: &str,
        owner: &str,
        qtype: RecordType,
        zone: &str,
        previous: &[Rr],
    ) -> Result<(Vec<Rr>, Option<(String, RecordType)>), NameError> {
        let mut records = Vec::new();
        let mut upstream = None;
        let mut seen = HashSet::new();
        for entry in self.services_or_apex(name, qtype, zone)? {
            match entry.host {
                Host::Ip(ip @ IpAddr::V4(v4)) if qtype == RecordType::A => {
                    if seen.insert(ip) {
                        records.push(self.rr(owner, Data::A(v4)));
                    }
                }
                Host::Ip(ip @ IpAddr::V6(v6)) if qtype == RecordType::AAAA => {
                    if seen.insert(ip) {
                        records.push(self.rr(owner, Data::Aaaa(v6)));
                    }
                }
                Host::Ip(_) | Host::Text(_) => {}
                Host::Name(target) => {
                    let target_name = canonical(&target);
                    // x CNAME x is a loop; a long chain stops
                    if target_name == name || previous.len() > MAX_CNAME_CHAIN {
                        continue;
                    }
                    let cname = self.rr(owner, Data::Cname(fqdn(&target)));
                    if previous.iter().any(|r| r.name.eq_ignore_ascii_case(&cname.name) && r.data == cname.data) {
                        continue;
                    }
                    if trim_zone(&target_name, zone).is_some() {
                        // a target of our own: the CNAME only if the target resolves
                        let chain: Vec<Rr> = previous.iter().cloned().chain([cname.clone()]).collect();
                        if let Ok((next, up)) = self.address(&target_name, &fqdn(&target), qtype, zone, &chain) {
                            if !next.is_empty() {
                                records.push(cname);
                                records.extend(next);
                                upstream = upstream.or(up);
                            }
                        }
                        continue;
                    }
                    records.push(cname);
                    upstream = Some((fqdn(&target), qtype));
                }
            }
        }
        Ok((records, upstream))
    }

    fn txt(&self, name: &str, owner: &str, zone: &str) -> Result<Vec<Rr>, NameError> {
        let found = self.services_or_apex(name, RecordType::TXT, zone)?;
        Ok(found
            .into_iter()
            .filter_map(|e| match e.host {
                Host::Text(t) => Some(Rr { name: fqdn(owner), ttl: SCHEMA_VERSION_TTL, data: Data::Txt(t.to_string()) }),
                _ => None,
            })
            .collect())
    }

    fn cname(&self, name: &str, owner: &str, zone: &str) -> Result<Vec<Rr>, NameError> {
        let found = self.services(name, RecordType::CNAME, zone)?;
        Ok(match found.into_iter().next() {
            Some(Entry { host: Host::Name(target), .. }) => vec![self.rr(owner, Data::Cname(fqdn(&target)))],
            _ => vec![],
        })
    }

    /// PTR: a ClusterIP names its Service; else each endpoint with a hostname at that address names itself.
    /// A forward name has no PTR records, but exists or not as ever.
    fn ptr(&self, name: &str, owner: &str, zone: &str) -> Result<Vec<Rr>, NameError> {
        let Some(ip) = address_from_reverse(name) else {
            self.records(name, zone)?;
            return Ok(vec![]);
        };
        let domain = &self.domain;
        if let Some((ns, svc)) = self.by_cluster_ip.get(&ip) {
            return Ok(vec![self.rr(owner, Data::Ptr(format!("{svc}.{ns}.svc.{domain}.")))]);
        }
        let mut seen = HashSet::new();
        let records: Vec<Rr> = self
            .by_endpoint_ip
            .get(&ip)
            .into_iter()
            .flatten()
            .map(|(host, svc, ns)| format!("{host}.{svc}.{ns}.svc.{domain}."))
            .filter(|target| seen.insert(target.clone()))
            .map(|target| self.rr(owner, Data::Ptr(target)))
            .collect();
        if records.is_empty() {
            return Err(NameError);
        }
        Ok(records)
    }

    /// SRV: one record per (target, port), the weight split evenly (`100 / n`, CoreDNS's rounding), and the
    /// target's address in the additional section.
    fn srv(&self, name: &str, owner: &str, zone: &str) -> Result<(Vec<Rr>, Vec<Rr>), NameError> {
        let found = self.services(name, RecordType::SRV, zone)?;
        let weight = if found.is_empty() { 100 } else { ((100.0 / found.len() as f64).floor() as u16).max(1) };
        let (mut records, mut extra) = (Vec::new(), Vec::new());
        let (mut seen_srv, mut seen_addr) = (HashSet::new(), HashSet::new());
        for e in found {
            let (Ok(port), Host::Ip(ip)) = (u16::try_from(e.port), &e.host) else { continue };
            let target = fqdn(&e.key);
            if seen_srv.insert((target.clone(), port)) {
                records.push(self.rr(owner, Data::Srv { priority: 0, weight, port, target: target.clone() }));
            }
            if seen_addr.insert((target.clone(), *ip)) {
                extra.push(self.rr(&target, match ip {
                    IpAddr::V4(v4) => Data::A(*v4),
                    IpAddr::V6(v6) => Data::Aaaa(*v6),
                }));
            }
        }
        Ok((records, extra))
    }

    /// NS at the apex: `ns.dns.<zone>` with this server's addresses as glue.
    fn ns(&self, owner: &str, zone: &str) -> Sections {
        let target = format!("ns.dns.{zone}.");
        let glue: Vec<Rr> = self
            .nameservers
            .iter()
            .map(|ip| match ip {
                IpAddr::V4(v4) => self.rr(&target, Data::A(*v4)),
                IpAddr::V6(v6) => self.rr(&target, Data::Aaaa(*v6)),
            })
            .collect();
        let answers = if glue.is_empty() { vec![] } else { vec![self.rr(owner, Data::Ns(target.clone()))] };
        (answers, glue, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NEG: &str = "auth cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1700000000 7200 1800 86400 5";

    fn state() -> ServiceState {
        let ns = |n: &str| json!({"metadata": {"name": n}});
        let svc = |ns: &str, name: &str, spec: serde_json::Value| json!({"metadata": {"name": name, "namespace": ns}, "spec": spec});
        let http = json!([{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "https", "port": 443, "protocol": "TCP"}]);
        serde_json::from_value(json!({
            "namespaces": [ns("default"), ns("shop"), ns("kube-system"), ns("empty")],
            "services": [
                svc("default", "kubernetes", json!({"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443}]})),
                svc("default", "web", json!({"clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"], "ports": http})),
                svc("default", "v6", json!({"clusterIP": "fd00::20", "ports": [{"name": "http", "port": 80}]})),
                svc("kube-system", "kube-dns", json!({"clusterIP": "10.96.0.10", "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]})),
                svc("shop", "db", json!({"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]})),
                svc("shop", "nobody", json!({"clusterIP": "None"})),
                svc("default", "ext", json!({"type": "ExternalName", "externalName": "example.org"})),
                svc("default", "alias", json!({"type": "ExternalName", "externalName": "web.default.svc.cluster.local"})),
                svc("default", "ipext", json!({"type": "ExternalName", "externalName": "1.2.3.4"})),
                svc("default", "loop", json!({"type": "ExternalName", "externalName": "loop.default.svc.cluster.local"})),
            ],
            "slices": [
                {"metadata": {"name": "db-abc", "namespace": "shop", "labels": {SERVICE_NAME_LABEL: "db"}},
                 "addressType": "IPv4", "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
                 "endpoints": [
                    {"addresses": ["10.244.1.7"], "hostname": "db-0", "conditions": {"ready": true}},
                    {"addresses": ["10.244.2.9"], "hostname": "db-1", "conditions": {"ready": false}},
                    {"addresses": ["10.244.3.3"]}]},
                {"metadata": {"name": "web-xyz", "namespace": "default", "labels": {SERVICE_NAME_LABEL: "web"}},
                 "addressType": "IPv4",
                 "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "https", "port": 8443, "protocol": "TCP"}],
                 "endpoints": [{"addresses": ["10.244.1.20"], "conditions": {"ready": true}}]},
                {"metadata": {"name": "web-fqdn", "namespace": "default", "labels": {SERVICE_NAME_LABEL: "web"}},
                 "addressType": "FQDN", "endpoints": [{"addresses": ["db.example.org"]}]},
            ],
        }))
        .map(|v: Objects| {
            fn shared<T>(v: Vec<T>) -> Vec<std::sync::Arc<T>> {
                v.into_iter().map(std::sync::Arc::new).collect()
            }
            ServiceState { namespaces: shared(v.namespaces), services: shared(v.services), slices: shared(v.slices) }
        })
        .expect("fixture")
    }

    #[derive(serde::Deserialize)]
    struct Objects {
        namespaces: Vec<k8s_openapi::api::core::v1::Namespace>,
        services: Vec<Service>,
        slices: Vec<k8s_openapi::api::discovery::v1::EndpointSlice>,
    }

    fn zone() -> Zone {
        Zone::build("cluster.local", &state(), 1_700_000_000).with_nameservers(vec!["10.96.0.10".parse().expect("address")])
    }

    /// A lookup as lines: the code, answers as they are, authority records after `auth`, additional after
    /// `add`, the upstream lookup after `upstream`.
    fn show(l: Lookup) -> Vec<String> {
        match l {
            Lookup::NotOurs => vec!["NotOurs".into()],
            Lookup::Refused => vec!["Refused".into()],
            Lookup::Answer(r) => std::iter::once(format!("{:?}", r.rcode))
                .chain(r.answers.iter().map(|rr| rr.to_string()))
                .chain(r.authorities.iter().map(|rr| format!("auth {rr}")))
                .chain(r.additionals.iter().map(|rr| format!("add {rr}")))
                .chain(r.upstream.iter().map(|(n, t)| format!("upstream {n} {t}")))
                .collect(),
        }
    }

    fn check(zone: &Zone, cases: &[(&str, RecordType, &[&str])]) {
        let mut failed = Vec::new();
        for (qname, qtype, want) in cases {
            let got = show(zone.lookup(qname, *qtype));
            if got != *want {
                failed.push(format!("{qname} {qtype}:\n  want {want:#?}\n  got  {got:#?}"));
            }
        }
        assert!(failed.is_empty(), "{} of {} cases differ:\n{}", failed.len(), cases.len(), failed.join("\n"));
    }

    use RecordType::*;

    #[test]
    fn clusterip_services_and_nodata_vs_nxdomain() {
        check(&zone(), &[
            ("web.default.svc.cluster.local.", A, &["NoError", "web.default.svc.cluster.local. 5 IN A 10.96.0.20"]),
            // case kept in the answer, ignored in the match
            ("Web.Default.SVC.cluster.local", A, &["NoError", "Web.Default.SVC.cluster.local. 5 IN A 10.96.0.20"]),
            ("v6.default.svc.cluster.local", AAAA, &["NoError", "v6.default.svc.cluster.local. 5 IN AAAA fd00::20"]),
            // the name exists, not with that type: NODATA, the SOA for negative caching
            ("web.default.svc.cluster.local", AAAA, &["NoError", NEG]),
            ("v6.default.svc.cluster.local", A, &["NoError", NEG]),
            ("web.default.svc.cluster.local", MX, &["NoError", NEG]),
            ("web.default.svc.cluster.local", HTTPS, &["NoError", NEG]),
            ("web.default.svc.cluster.local", TXT, &["NoError", NEG]),
            ("web.default.svc.cluster.local", CNAME, &["NoError", NEG]),
            ("web.default.svc.cluster.local", PTR, &["NoError", NEG]),
            ("web.default.svc.cluster.local", SOA, &["NoError", NEG]),
            // names above a Service exist while their namespace does
            ("default.svc.cluster.local", A, &["NoError", NEG]),
            ("empty.svc.cluster.local", A, &["NoError", NEG]),
            ("svc.cluster.local", A, &["NoError", NEG]),
            ("pod.cluster.local", A, &["NoError", NEG]),
            ("cluster.local", A, &["NoError", NEG]),
            // and do not, otherwise
            ("nope.default.svc.cluster.local", A, &["NxDomain", NEG]),
            ("nope.default.svc.cluster.local", AAAA, &["NxDomain", NEG]),
            ("nope.default.svc.cluster.local", TXT, &["NxDomain", NEG]),
            ("nope.default.svc.cluster.local", PTR, &["NxDomain", NEG]),
            ("web.nons.svc.cluster.local", A, &["NxDomain", NEG]),
            ("nons.svc.cluster.local", A, &["NxDomain", NEG]),
            ("foo.cluster.local", A, &["NxDomain", NEG]),
            ("a.b.c.web.default.svc.cluster.local", A, &["NxDomain", NEG]),
            // the search path's misses
            ("web.default.svc.cluster.local.default.svc.cluster.local", A, &["NxDomain", NEG]),
            ("web.default.svc", A, &["NotOurs"]),
            ("example.org", A, &["NotOurs"]),
            ("notcluster.local", A, &["NotOurs"]),
        ]);
    }

    #[test]
    fn headless_services_and_endpoint_names() {
        check(&zone(), &[
            // ready endpoints only; ready unset counts as ready
            ("db.shop.svc.cluster.local", A, &["NoError", "db.shop.svc.cluster.local. 5 IN A 10.244.1.7", "db.shop.svc.cluster.local. 5 IN A 10.244.3.3"]),
            ("db-0.db.shop.svc.cluster.local", A, &["NoError", "db-0.db.shop.svc.cluster.local. 5 IN A 10.244.1.7"]),
            ("db-1.db.shop.svc.cluster.local", A, &["NxDomain", NEG]),
            // without a hostname, an endpoint is named by its address; with one, only by it
            ("10-244-3-3.db.shop.svc.cluster.local", A, &["NoError", "10-244-3-3.db.shop.svc.cluster.local. 5 IN A 10.244.3.3"]),
            ("10-244-1-7.db.shop.svc.cluster.local", A, &["NxDomain", NEG]),
            // endpoints of a ClusterIP Service have names too; two ports, one record
            ("10-244-1-20.web.default.svc.cluster.local", A, &["NoError", "10-244-1-20.web.default.svc.cluster.local. 5 IN A 10.244.1.20"]),
            ("db-0.db.shop.svc.cluster.local", AAAA, &["NoError", NEG]),
            // a headless Service with no ready endpoint does not exist
            ("nobody.shop.svc.cluster.local", A, &["NxDomain", NEG]),
            ("nobody.shop.svc.cluster.local", AAAA, &["NxDomain", NEG]),
        ]);
    }

    #[test]
    fn srv_records_for_ports() {
        check(&zone(), &[
            ("_http._tcp.web.default.svc.cluster.local", SRV, &[
                "NoError",
                "_http._tcp.web.default.svc.cluster.local. 5 IN SRV 0 100 80 web.default.svc.cluster.local.",
                "add web.default.svc.cluster.local. 5 IN A 10.96.0.20",
            ]),
            // the Service name: every port, the weight split
            ("web.default.svc.cluster.local", SRV, &[
                "NoError",
                "web.default.svc.cluster.local. 5 IN SRV 0 50 80 web.default.svc.cluster.local.",
                "web.default.svc.cluster.local. 5 IN SRV 0 50 443 web.default.svc.cluster.local.",
                "add web.default.svc.cluster.local. 5 IN A 10.96.0.20",
            ]),
            ("_dns._udp.kube-dns.kube-system.svc.cluster.local", SRV, &[
                "NoError",
                "_dns._udp.kube-dns.kube-system.svc.cluster.local. 5 IN SRV 0 100 53 kube-dns.kube-system.svc.cluster.local.",
                "add kube-dns.kube-system.svc.cluster.local. 5 IN A 10.96.0.10",
            ]),
            // headless: one per ready endpoint, its name as target, the endpoint's port
            ("_pg._tcp.db.shop.svc.cluster.local", SRV, &[
                "NoError",
                "_pg._tcp.db.shop.svc.cluster.local. 5 IN SRV 0 50 5432 db-0.db.shop.svc.cluster.local.",
                "_pg._tcp.db.shop.svc.cluster.local. 5 IN SRV 0 50 5432 10-244-3-3.db.shop.svc.cluster.local.",
                "add db-0.db.shop.svc.cluster.local. 5 IN A 10.244.1.7",
                "add 10-244-3-3.db.shop.svc.cluster.local. 5 IN A 10.244.3.3",
            ]),
            ("db-0.db.shop.svc.cluster.local", SRV, &[
                "NoError",
                "db-0.db.shop.svc.cluster.local. 5 IN SRV 0 100 5432 db-0.db.shop.svc.cluster.local.",
                "add db-0.db.shop.svc.cluster.local. 5 IN A 10.244.1.7",
            ]),
            // the underscores are optional, the protocol is matched without case
            ("http.TCP.web.default.svc.cluster.local", SRV, &[
                "NoError",
                "http.TCP.web.default.svc.cluster.local. 5 IN SRV 0 100 80 web.default.svc.cluster.local.",
                "add web.default.svc.cluster.local. 5 IN A 10.96.0.20",
            ]),
            // a port or protocol the Service does not have: no such name
            ("_http._udp.web.default.svc.cluster.local", SRV, &["NxDomain", NEG]),
            ("_nope._tcp.web.default.svc.cluster.local", SRV, &["NxDomain", NEG]),
            ("_nope._tcp.web.default.svc.cluster.local", A, &["NxDomain", NEG]),
            ("_http._tcp.web.default.svc.cluster.local", A, &["NoError", "_http._tcp.web.default.svc.cluster.local. 5 IN A 10.96.0.20"]),
            ("_http._tcp.web.default.svc.cluster.local", AAAA, &["NoError", NEG]),
            // an ExternalName has no SRV records, and no ports below it
            ("ext.default.svc.cluster.local", SRV, &["NoError", NEG]),
            ("_http._tcp.ext.default.svc.cluster.local", SRV, &["NxDomain", NEG]),
        ]);
    }

    #[test]
    fn external_names() {
        check(&zone(), &[
            // outside the zone: the CNAME, then what the upstream says of the target, of the asked type
            ("ext.default.svc.cluster.local", A, &["NoError", "ext.default.svc.cluster.local. 5 IN CNAME example.org.", "upstream example.org. A"]),
            ("ext.default.svc.cluster.local", AAAA, &["NoError", "ext.default.svc.cluster.local. 5 IN CNAME example.org.", "upstream example.org. AAAA"]),
            ("ext.default.svc.cluster.local", CNAME, &["NoError", "ext.default.svc.cluster.local. 5 IN CNAME example.org."]),
            ("ext.default.svc.cluster.local", MX, &["NoError", NEG]),
            ("ext.default.svc.cluster.local", TXT, &["NoError", NEG]),
            // inside the zone: followed here, and only if the target resolves
            ("alias.default.svc.cluster.local", A, &[
                "NoError",
                "alias.default.svc.cluster.local. 5 IN CNAME web.default.svc.cluster.local.",
                "web.default.svc.cluster.local. 5 IN A 10.96.0.20",
            ]),
            ("alias.default.svc.cluster.local", AAAA, &["NoError", NEG]),
            // an address is not a name; a CNAME to itself is dropped
            ("ipext.default.svc.cluster.local", A, &["NxDomain", NEG]),
            ("loop.default.svc.cluster.local", A, &["NoError", NEG]),
            ("db-0.ext.default.svc.cluster.local", A, &["NxDomain", NEG]),
        ]);
    }

    #[test]
    fn ptr_for_cluster_ips_and_named_endpoints() {
        let v6 = "0.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa";
        let v6_answer = format!("{v6}. 5 IN PTR v6.default.svc.cluster.local.");
        check(&zone(), &[
            ("1.0.96.10.in-addr.arpa", PTR, &["NoError", "1.0.96.10.in-addr.arpa. 5 IN PTR kubernetes.default.svc.cluster.local."]),
            ("20.0.96.10.in-addr.arpa.", PTR, &["NoError", "20.0.96.10.in-addr.arpa. 5 IN PTR web.default.svc.cluster.local."]),
            ("7.1.244.10.in-addr.arpa", PTR, &["NoError", "7.1.244.10.in-addr.arpa. 5 IN PTR db-0.db.shop.svc.cluster.local."]),
            (v6, PTR, &["NoError", &v6_answer]),
            // endpoints without a hostname, not-ready ones and unknown addresses: not ours (fallthrough)
            ("3.3.244.10.in-addr.arpa", PTR, &["NotOurs"]),
            ("9.2.244.10.in-addr.arpa", PTR, &["NotOurs"]),
            ("20.1.244.10.in-addr.arpa", PTR, &["NotOurs"]),
            ("8.8.8.8.in-addr.arpa", PTR, &["NotOurs"]),
            ("0.96.10.in-addr.arpa", PTR, &["NotOurs"]),
            ("1.0.96.10.in-addr.arpa", A, &["NotOurs"]),
        ]);
    }

    #[test]
    fn pods_schema_version_apex_and_transfers() {
        check(&zone(), &[
            ("10-244-1-7.shop.pod.cluster.local", A, &["NoError", "10-244-1-7.shop.pod.cluster.local. 5 IN A 10.244.1.7"]),
            ("fd00--5.shop.pod.cluster.local", AAAA, &["NoError", "fd00--5.shop.pod.cluster.local. 5 IN AAAA fd00::5"]),
            ("10-244-1-7.shop.pod.cluster.local", AAAA, &["NoError", NEG]),
            ("10-244-1-7.nons.pod.cluster.local", A, &["NxDomain", NEG]),
            ("not-an-ip.shop.pod.cluster.local", A, &["NxDomain", NEG]),
            ("shop.pod.cluster.local", A, &["NoError", NEG]),
            ("dns-version.cluster.local", TXT, &["NoError", "dns-version.cluster.local. 28800 IN TXT \"1.1.0\""]),
            ("dns-version.cluster.local", A, &["NxDomain", NEG]),
            ("cluster.local", SOA, &["NoError", &NEG["auth ".len()..]]),
            ("cluster.local", NS, &["NoError", "cluster.local. 5 IN NS ns.dns.cluster.local.", "add ns.dns.cluster.local. 5 IN A 10.96.0.10"]),
            ("ns.dns.cluster.local", A, &["NoError", "ns.dns.cluster.local. 5 IN A 10.96.0.10"]),
            ("ns.dns.cluster.local", AAAA, &["NoError", NEG]),
            ("cluster.local", AXFR, &["Refused"]),
            ("cluster.local", IXFR, &["Refused"]),
        ]);
    }

    #[test]
    fn before_the_first_sync_a_missing_name_is_servfail() {
        check(&Zone::unsynced("cluster.local"), &[
            ("web.default.svc.cluster.local", A, &["ServFail", "auth cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 0 7200 1800 86400 5"]),
            ("1.0.96.10.in-addr.arpa", PTR, &["NotOurs"]),
        ]);
    }

    #[test]
    fn reverse_names_give_their_address() {
        assert_eq!(address_from_reverse("1.0.96.10.in-addr.arpa"), Some("10.96.0.1".parse().expect("address")));
        assert_eq!(address_from_reverse("0.96.10.in-addr.arpa"), None, "a network, not an address");
        let v6 = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa";
        assert_eq!(address_from_reverse(v6), Some("2001:db8::1".parse().expect("address")));
    }

    #[test]
    fn endpoint_names_are_hostnames_or_dashed_addresses() {
        assert_eq!(endpoint_name(&"10.244.1.5".parse().expect("address"), &None), "10-244-1-5");
        assert_eq!(endpoint_name(&"fd00::5".parse().expect("address"), &None), "fd00--5");
        assert_eq!(endpoint_name(&"10.244.1.5".parse().expect("address"), &Some("Web-0".into())), "web-0");
    }
}
