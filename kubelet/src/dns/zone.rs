//! The cluster's DNS records, rebuilt from Services and EndpointSlices whenever they change.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::proxy::model::SERVICE_NAME_LABEL;

/// One answer record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rec {
    A(Ipv4Addr),
    /// SRV: port and target name (fully qualified, no trailing dot).
    Srv { port: u16, target: String },
}

/// What the zone says about a name and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The name exists; these are its records of the asked type (empty: exists, but not with that type).
    Found(Vec<Rec>),
    /// The name is under the cluster domain and does not exist.
    NxDomain,
    /// The name is not under the cluster domain: ask someone else.
    NotOurs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qtype {
    A,
    Srv,
    Other,
}

/// All names of the cluster domain, lowercase, without the trailing dot.
#[derive(Debug, Clone, Default)]
pub struct Zone {
    domain: String,
    names: HashMap<String, Vec<Rec>>,
}

impl Zone {
    pub fn build(domain: &str, services: &[Service], slices: &[EndpointSlice]) -> Zone {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let mut names: HashMap<String, Vec<Rec>> = HashMap::new();
        // Ready endpoints per (namespace, service): (ip, hostname)
        let mut ready: HashMap<(String, String), Vec<(Ipv4Addr, Option<String>)>> = HashMap::new();
        for slice in slices.iter().filter(|s| s.address_type == "IPv4") {
            let ns = slice.metadata.namespace.clone().unwrap_or_default();
            let Some(svc) = slice.metadata.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL)) else { continue };
            let list = ready.entry((ns, svc.clone())).or_default();
            for ep in &slice.endpoints {
                if ep.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                    continue;
                }
                for ip in ep.addresses.iter().filter_map(|a| a.parse().ok()) {
                    list.push((ip, ep.hostname.clone()));
                }
            }
        }
        for svc in services {
            let (Some(ns), Some(name), Some(spec)) = (&svc.metadata.namespace, &svc.metadata.name, &svc.spec) else {
                continue;
            };
            let fqdn = format!("{name}.{ns}.svc.{domain}").to_ascii_lowercase();
            let mut a = Vec::new();
            match spec.cluster_ip.as_deref() {
                Some("None") => {
                    let mut eps = ready.get(&(ns.clone(), name.clone())).cloned().unwrap_or_default();
                    eps.sort();
                    eps.dedup();
                    for (ip, hostname) in eps {
                        a.push(Rec::A(ip));
                        if let Some(h) = hostname {
                            names.entry(format!("{h}.{fqdn}").to_ascii_lowercase()).or_default().push(Rec::A(ip));
                        }
                    }
                }
                Some(ip) => {
                    if let Ok(ip) = ip.parse() {
                        a.push(Rec::A(ip));
                    }
                }
                None => {}
            }
            for p in spec.ports.iter().flatten() {
                let (Some(port_name), Ok(port)) = (&p.name, u16::try_from(p.port)) else { continue };
                let proto = p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase();
                names
                    .entry(format!("_{port_name}._{proto}.{fqdn}").to_ascii_lowercase())
                    .or_default()
                    .push(Rec::Srv { port, target: fqdn.clone() });
            }
            names.entry(fqdn).or_default().extend(a);
        }
        Zone { domain, names }
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    pub fn lookup(&self, qname: &str, qtype: Qtype) -> Lookup {
        let name = qname.trim_end_matches('.').to_ascii_lowercase();
        let Some(prefix) = name.strip_suffix(&self.domain).filter(|p| p.is_empty() || p.ends_with('.')) else {
            return Lookup::NotOurs;
        };
        let pick = |recs: &[Rec]| -> Vec<Rec> {
            recs.iter()
                .filter(|r| matches!((r, qtype), (Rec::A(_), Qtype::A) | (Rec::Srv { .. }, Qtype::Srv)))
                .cloned()
                .collect()
        };
        if let Some(recs) = self.names.get(&name) {
            return Lookup::Found(pick(recs));
        }
        // a-b-c-d.<namespace>.pod.<domain>: the address is in the name.
        let labels: Vec<&str> = prefix.trim_end_matches('.').split('.').collect();
        if let [ip, _ns, "pod"] = labels.as_slice() {
            if let Ok(ip) = ip.replace('-', ".").parse::<Ipv4Addr>() {
                return Lookup::Found(if qtype == Qtype::A { vec![Rec::A(ip)] } else { vec![] });
            }
        }
        // Intermediate names (svc.cluster.local, default.svc.cluster.local) exist with no records.
        let suffix = format!(".{name}");
        if name == self.domain || self.names.keys().any(|k| k.ends_with(&suffix)) {
            return Lookup::Found(vec![]);
        }
        Lookup::NxDomain
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn zone() -> Zone {
        let svcs: Vec<Service> = serde_json::from_value(json!([
            {"metadata": {"name": "web", "namespace": "default"},
             "spec": {"clusterIP": "10.96.0.20", "ports": [{"name": "http", "port": 80}]}},
            {"metadata": {"name": "db", "namespace": "shop"},
             "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}},
        ]))
        .unwrap();
        let slices: Vec<EndpointSlice> = serde_json::from_value(json!([
            {"metadata": {"name": "db-1", "namespace": "shop", "labels": {SERVICE_NAME_LABEL: "db"}},
             "addressType": "IPv4",
             "endpoints": [
                {"addresses": ["10.244.1.7"], "hostname": "db-0"},
                {"addresses": ["10.244.2.9"], "hostname": "db-1", "conditions": {"ready": false}}]}
        ]))
        .unwrap();
        Zone::build("cluster.local", &svcs, &slices)
    }

    fn a(ip: &str) -> Rec {
        Rec::A(ip.parse().unwrap())
    }

    #[test]
    fn clusterip_service_resolves_case_insensitively_with_trailing_dot() {
        assert_eq!(zone().lookup("Web.Default.svc.cluster.local.", Qtype::A), Lookup::Found(vec![a("10.96.0.20")]));
    }

    #[test]
    fn headless_service_resolves_to_ready_pods_and_their_hostnames() {
        let z = zone();
        assert_eq!(z.lookup("db.shop.svc.cluster.local", Qtype::A), Lookup::Found(vec![a("10.244.1.7")]));
        assert_eq!(z.lookup("db-0.db.shop.svc.cluster.local", Qtype::A), Lookup::Found(vec![a("10.244.1.7")]));
        assert_eq!(z.lookup("db-1.db.shop.svc.cluster.local", Qtype::A), Lookup::NxDomain, "not ready");
    }

    #[test]
    fn srv_records_for_named_ports() {
        assert_eq!(
            zone().lookup("_http._tcp.web.default.svc.cluster.local", Qtype::Srv),
            Lookup::Found(vec![Rec::Srv { port: 80, target: "web.default.svc.cluster.local".into() }])
        );
    }

    #[test]
    fn pod_names_nodata_nxdomain_and_foreign_names() {
        let z = zone();
        assert_eq!(z.lookup("10-244-1-7.shop.pod.cluster.local", Qtype::A), Lookup::Found(vec![a("10.244.1.7")]));
        assert_eq!(z.lookup("web.default.svc.cluster.local", Qtype::Other), Lookup::Found(vec![]), "AAAA: NODATA");
        assert_eq!(z.lookup("default.svc.cluster.local", Qtype::A), Lookup::Found(vec![]), "intermediate name");
        assert_eq!(z.lookup("nope.default.svc.cluster.local", Qtype::A), Lookup::NxDomain);
        assert_eq!(z.lookup("example.org", Qtype::A), Lookup::NotOurs);
        assert_eq!(z.lookup("notcluster.local", Qtype::A), Lookup::NotOurs, "suffix match is on labels");
    }
}
