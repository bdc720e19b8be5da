//! The service proxy's nftables table (`nft -j list table ip <table>`) read for the node and service views: the
//! table in numbers, and one Service's chains per port with what leads to them and the endpoints they pick. Pure:
//! the chain names are the proxy's (`kubelet/src/service_proxy/nft.rs`: `svc-`, `ext-`, `local-<ns>/<name>/<proto>/<port>`
//! and `ep-<that>__<ip>/<port>`), the unit tests feed a captured table.
//!
//! With more than a table's worth of Services the proxy spreads them over shard tables (`<table>-1`, ...,
//! [`crate::service_proxy::shard`]): [`shard_tables`] finds them, [`search_order`] says where to look for a
//! Service first (its hash's table, by the proxy's own rule), and [`summary_of`] counts them all.

use std::collections::BTreeMap;

use serde_json::Value;

use super::schema::{EndpointPick, ProxySummary, ServicePortRules};
use crate::service_proxy::shard::{shard_of, table_name, MAX_SHARDS};

/// The proxy's tables on the node in shard order, from `nft -j list tables`: `table` (shard 0) and the shard
/// tables the proxy names after it ([`table_name`]) that are there. Empty when none is (no proxy, or not synced
/// yet).
pub fn shard_tables(table: &str, listing: &Value) -> Vec<String> {
    let present: Vec<&str> = items(listing)
        .iter()
        .filter_map(|it| it.get("table"))
        .filter(|t| t["family"].as_str() == Some("ip"))
        .filter_map(|t| t["name"].as_str())
        .collect();
    (0..MAX_SHARDS).map(|shard| table_name(table, shard)).filter(|t| present.contains(&t.as_str())).collect()
}

/// Where to look for Service `ns/name`'s chains among the proxy's `tables` ([`shard_tables`]): first the table
/// its hash puts it in ([`shard_of`] over the tables there, the proxy's rule for most Services), then the others
/// in shard order. The proxy places a Service that comes when its hash's table is full in another one and
/// keeps it there (`service_proxy::shard`), which only the proxy's memory knows: so a Service
/// not in its hash's table is looked for in every other.
pub fn search_order<'t>(tables: &'t [String], ns: &str, name: &str) -> Vec<&'t str> {
    let Ok(count) = u32::try_from(tables.len()) else { return Vec::new() };
    let home = shard_of(ns, name, count) as usize;
    let mut order: Vec<&str> = tables.get(home).map(String::as_str).into_iter().collect();
    order.extend(tables.iter().enumerate().filter(|(i, _)| *i != home).map(|(_, t)| t.as_str()));
    order
}

/// Every shard table counted and added up ([`summary`] of each): `table` is the proxy's table, `tables` the
/// ones read (`shards`: name and `nft -j list table` listing, shard 0 first).
pub fn summary_of(table: &str, shards: &[(String, Value)]) -> ProxySummary {
    let mut all = ProxySummary { table: Some(table.to_string()), ..Default::default() };
    for (name, listing) in shards {
        let s = summary(name, listing);
        all.tables.push(name.clone());
        all.chains += s.chains;
        all.rules += s.rules;
        all.service_ports += s.service_ports;
        all.endpoints += s.endpoints;
        all.service_ips += s.service_ips;
        all.node_ports += s.node_ports;
    }
    all
}

fn items(nft: &Value) -> &[Value] {
    nft["nftables"].as_array().map(Vec::as_slice).unwrap_or_default()
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One table counted: chains, rules, service port (`svc-`) and endpoint (`ep-`) chains, map elements.
pub fn summary(table: &str, nft: &Value) -> ProxySummary {
    let mut s = ProxySummary { table: Some(table.to_string()), tables: vec![table.to_string()], ..Default::default() };
    for it in items(nft) {
        if let Some(c) = it.get("chain") {
            s.chains += 1;
            let name = c["name"].as_str().unwrap_or_default();
            s.service_ports += usize::from(name.starts_with("svc-"));
            s.endpoints += usize::from(name.starts_with("ep-"));
        } else if it.get("rule").is_some() {
            s.rules += 1;
        } else if let Some(m) = it.get("map") {
            let n = m["elem"].as_array().map(Vec::len).unwrap_or(0);
            match m["name"].as_str() {
                Some("service-ips") => s.service_ips += n,
                Some("service-nodeports") => s.node_ports += n,
                _ => {}
            }
        }
    }
    s
}

/// The chain a verdict (`{"goto": {"target": ..}}` or `jump`) names.
fn verdict_target(v: &Value) -> Option<&str> {
    v.get("goto").or_else(|| v.get("jump")).and_then(|t| t["target"].as_str())
}

/// The `<ip>:<port>` a chain DNATs to.
fn dnat_of(rules: &[&Value]) -> Option<String> {
    rules.iter().flat_map(|r| r["expr"].as_array().into_iter().flatten()).find_map(|e| {
        let d = e.get("dnat")?;
        let addr = d["addr"].as_str()?;
        Some(match d.get("port") {
            Some(p) => format!("{addr}:{}", scalar(p)),
            None => addr.to_string(),
        })
    })
}

/// `numgen ... vmap { slot : goto chain, ... }` of a chain's rules: (slot, chain) in slot order.
fn numgen_picks(rules: &[&Value]) -> Vec<(Option<u64>, String)> {
    let mut out = Vec::new();
    for r in rules {
        for e in r["expr"].as_array().into_iter().flatten() {
            if let Some(vm) = e.get("vmap").filter(|vm| vm["key"].get("numgen").is_some()) {
                for pair in vm["data"]["set"].as_array().into_iter().flatten() {
                    if let (Some(slot), Some(t)) = (pair.get(0).and_then(Value::as_u64), pair.get(1).and_then(verdict_target)) {
                        out.push((Some(slot), t.to_string()));
                    }
                }
            } else if let Some(t) = verdict_target(e).filter(|t| t.starts_with("ep-")) {
                out.push((None, t.to_string()));
            }
        }
    }
    out.sort();
    out
}

/// Service `ns/name`'s chains per port, with the `service-ips` and `service-nodeports` elements that lead to
/// them and the endpoints the service chain (or, without one, the `local-` chain) picks. Ports in chain-name
/// order; empty when the table has no chain of the Service (no endpoints anywhere, or not synced yet).
pub fn service_ports(nft: &Value, ns: &str, name: &str) -> Vec<ServicePortRules> {
    let prefix = format!("{ns}/{name}/");
    let mut rules: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    let mut ports: BTreeMap<String, ServicePortRules> = BTreeMap::new();
    for it in items(nft) {
        if let Some(c) = it.get("chain") {
            let chain = c["name"].as_str().unwrap_or_default();
            for kind in ["svc-", "ext-", "local-"] {
                if let Some(port) = chain.strip_prefix(kind).and_then(|k| k.strip_prefix(&prefix)) {
                    let p = ports.entry(port.to_string()).or_insert_with(|| ServicePortRules { port: port.to_string(), ..Default::default() });
                    if kind == "svc-" {
                        p.service_chain = Some(chain.to_string());
                    } else {
                        p.other_chains.push(chain.to_string());
                    }
                }
            }
        } else if let Some(r) = it.get("rule") {
            rules.entry(r["chain"].as_str().unwrap_or_default()).or_default().push(r);
        }
    }
    let rules_of = |chain: &str| rules.get(chain).cloned().unwrap_or_default();
    for p in ports.values_mut() {
        p.other_chains.sort();
        let mut ours: Vec<&str> = p.other_chains.iter().map(String::as_str).collect();
        ours.extend(p.service_chain.as_deref());
        for it in items(nft) {
            let Some(map) = it.get("map") else { continue };
            let node_ports = map["name"].as_str() == Some("service-nodeports");
            for el in map["elem"].as_array().into_iter().flatten() {
                let (Some(k), Some(target)) = (el.get(0), el.get(1).and_then(verdict_target)) else { continue };
                if !ours.contains(&target) {
                    continue;
                }
                let parts: Vec<String> = k["concat"].as_array().map(|a| a.iter().map(scalar).collect()).unwrap_or_else(|| vec![scalar(k)]);
                match (node_ports, parts.as_slice()) {
                    (false, [ip, proto, port]) => p.service_ips.push(format!("{ip}:{port}/{proto}")),
                    (true, [proto, port]) => p.node_ports.push(format!("{port}/{proto}")),
                    _ => {}
                }
            }
        }
        p.service_ips.sort();
        p.node_ports.sort();
        let picker = p.service_chain.clone().or_else(|| p.other_chains.iter().find(|c| c.starts_with("local-")).cloned());
        p.endpoints = picker
            .map(|c| numgen_picks(&rules_of(&c)))
            .unwrap_or_default()
            .into_iter()
            .map(|(slot, chain)| EndpointPick { slot, endpoint: dnat_of(&rules_of(&chain)).unwrap_or_default(), chain })
            .collect();
    }
    ports.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Value {
        serde_json::from_str(include_str!("fixtures/nft-table.json")).expect("fixture")
    }

    #[test]
    fn the_table_is_counted() {
        let s = summary("rkube-proxy", &fixture());
        assert_eq!(
            s,
            ProxySummary {
                table: Some("rkube-proxy".into()),
                tables: vec!["rkube-proxy".into()],
                chains: 8,
                rules: 11,
                service_ports: 2,
                endpoints: 3,
                service_ips: 3,
                node_ports: 1
            }
        );
        assert_eq!(summary("t", &serde_json::json!({})).chains, 0);
    }

    #[test]
    fn a_services_port_shows_what_leads_to_it_and_the_endpoint_each_slot_picks() {
        let got = service_ports(&fixture(), "default", "web");
        assert_eq!(got.len(), 1, "{got:?}");
        let p = &got[0];
        assert_eq!(p.port, "tcp/80");
        assert_eq!(p.service_chain.as_deref(), Some("svc-default/web/tcp/80"));
        assert_eq!(p.other_chains, vec!["ext-default/web/tcp/80"]);
        assert_eq!(p.service_ips, vec!["10.96.0.20:80/tcp", "192.168.50.1:80/tcp"]);
        assert_eq!(p.node_ports, vec!["30080/tcp"]);
        assert_eq!(
            p.endpoints,
            vec![
                EndpointPick { slot: Some(0), chain: "ep-default/web/tcp/80__10.244.21.5/8080".into(), endpoint: "10.244.21.5:8080".into() },
                EndpointPick { slot: Some(1), chain: "ep-default/web/tcp/80__10.244.21.6/8080".into(), endpoint: "10.244.21.6:8080".into() },
            ]
        );
        let other = service_ports(&fixture(), "default", "other");
        assert_eq!((other[0].service_ips.clone(), other[0].endpoints.len()), (vec!["10.96.0.53:53/tcp".to_string()], 1));
        assert!(service_ports(&fixture(), "default", "we").is_empty(), "a name is matched whole, not as a prefix");
        assert!(service_ports(&fixture(), "kube-system", "web").is_empty());
    }
}
