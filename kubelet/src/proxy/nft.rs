//! The nftables table behind Services. One table (`ip rkube-proxy` by default) holds everything; each sync replaces
//! it whole in one `nft` transaction, so a packet sees either the old rules or the new ones, never a mix.
//!
//! ```text
//! table ip rkube-proxy
//!   chain nat-prerouting  (nat, prerouting, dstnat)  jump services
//!   chain nat-output      (nat, output, dstnat)      jump services
//!   chain services        ip daddr <clusterIP> tcp dport <port> jump svc-<n>
//!                         fib daddr type local tcp dport <nodePort> mark 0x4000 jump svc-<n>
//!   chain svc-<n>         numgen random mod <k> vmap { 0 : goto ep-<n>-0, ... }
//!   chain ep-<n>-<i>      ip saddr <endpoint> mark 0x4000 (hairpin); dnat to <endpoint>:<port>
//!   chain nat-postrouting (nat, postrouting, srcnat) mark & 0x4000 == 0x4000 masquerade
//!   chain filter-output / filter-forward (filter)    ip daddr <service CIDR> reject
//!                         (filter-output first accepts local destinations: the node-local cluster DNS address)
//! ```
//! The last rule rejects what no Service took: a ClusterIP without ready endpoints, or an address in the service
//! CIDR that no Service has. Traffic meant for a Service never leaves the node toward the default route.

use std::borrow::Cow;
use std::collections::HashSet;
use std::net::Ipv4Addr;

use nftables::batch::Batch;
use nftables::expr::{
    BinaryOperation, Expression, Fib, FibFlag, FibResult, Meta, MetaKey, NamedExpression, NgMode, Numgen, Payload,
    PayloadField, Prefix, SetItem, Verdict,
};
use nftables::schema::{Chain, NfListObject, Nftables, Rule, Table};
use nftables::stmt::{JumpTarget, Mangle, Match, Operator, Reject, Statement, VerdictMap, NAT};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

use super::model::ServicePort;

/// The packet mark that asks nat-postrouting to masquerade (NodePort traffic and hairpin connections).
pub const MASQUERADE_MARK: u32 = 0x4000;

/// Which table to own and which service CIDR to guard.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub table: String,
    pub service_cidr: (Ipv4Addr, u8),
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig { table: "rkube-proxy".into(), service_cidr: (Ipv4Addr::new(10, 96, 0, 0), 12) }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("apply nftables table {table}: {source} (is the nftables package installed? `nft list ruleset` shows the current rules)")]
    Apply {
        table: String,
        #[source]
        source: nftables::helper::NftablesError,
    },
}

fn s(v: &str) -> Cow<'static, str> {
    Cow::Owned(v.to_string())
}

fn ip_field(field: &str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(PayloadField {
        protocol: s("ip"),
        field: s(field),
    })))
}

fn l4_dport_match(proto: &str, port: u16) -> Statement<'static> {
    Statement::Match(Match {
        left: Expression::Named(NamedExpression::Payload(Payload::PayloadField(PayloadField {
            protocol: s(proto),
            field: s("dport"),
        }))),
        right: Expression::Number(u32::from(port)),
        op: Operator::EQ,
    })
}

fn eq(left: Expression<'static>, right: Expression<'static>) -> Statement<'static> {
    Statement::Match(Match { left, right, op: Operator::EQ })
}

fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

fn set_mark() -> Statement<'static> {
    Statement::Mangle(Mangle {
        key: meta(MetaKey::Mark),
        value: Expression::BinaryOperation(Box::new(BinaryOperation::OR(vec![
            meta(MetaKey::Mark),
            Expression::Number(MASQUERADE_MARK),
        ]))),
    })
}

fn jump(chain: &str) -> Statement<'static> {
    Statement::Jump(JumpTarget { target: s(chain) })
}

struct Builder {
    table: String,
    batch: Batch<'static>,
}

impl Builder {
    fn chain(&mut self, name: &str, base: Option<(NfChainType, NfHook, i32)>) {
        let (kind, hook, prio) = match base {
            Some((k, h, p)) => (Some(k), Some(h), Some(p)),
            None => (None, None, None),
        };
        self.batch.add(NfListObject::Chain(Chain {
            family: NfFamily::IP,
            table: s(&self.table),
            name: s(name),
            _type: kind,
            hook,
            prio,
            policy: base.map(|_| NfChainPolicy::Accept),
            ..Chain::default()
        }));
    }

    fn rule(&mut self, chain: &str, expr: Vec<Statement<'static>>) {
        self.batch.add(NfListObject::Rule(Rule {
            family: NfFamily::IP,
            table: s(&self.table),
            chain: s(chain),
            expr: Cow::Owned(expr),
            ..Rule::default()
        }));
    }
}

/// The whole table for `ports`, as one transaction: (re)create the table, then fill it.
pub fn ruleset(cfg: &ProxyConfig, ports: &[ServicePort]) -> Nftables<'static> {
    let mut b = Builder { table: cfg.table.clone(), batch: Batch::new() };
    let table = NfListObject::Table(Table { family: NfFamily::IP, name: s(&cfg.table), ..Table::default() });
    // add + delete + add: replaces the table whether or not it existed, atomically.
    b.batch.add(table.clone());
    b.batch.delete(table.clone());
    b.batch.add(table);

    b.chain("nat-prerouting", Some((NfChainType::NAT, NfHook::Prerouting, -100)));
    b.chain("nat-output", Some((NfChainType::NAT, NfHook::Output, -100)));
    b.chain("nat-postrouting", Some((NfChainType::NAT, NfHook::Postrouting, 100)));
    b.chain("filter-output", Some((NfChainType::Filter, NfHook::Output, 0)));
    b.chain("filter-forward", Some((NfChainType::Filter, NfHook::Forward, 0)));
    b.chain("services", None);
    b.rule("nat-prerouting", vec![jump("services")]);
    b.rule("nat-output", vec![jump("services")]);
    b.rule(
        "nat-postrouting",
        vec![
            eq(
                Expression::BinaryOperation(Box::new(BinaryOperation::AND(
                    meta(MetaKey::Mark),
                    Expression::Number(MASQUERADE_MARK),
                ))),
                Expression::Number(MASQUERADE_MARK),
            ),
            Statement::Masquerade(None),
        ],
    );
    let (net, len) = cfg.service_cidr;
    // An address of this node inside the service CIDR (the node-local cluster DNS address) is a real local
    // destination, not an unserved ClusterIP: the node itself may query it.
    b.rule(
        "filter-output",
        vec![
            eq(
                Expression::Named(NamedExpression::Fib(Fib { result: FibResult::Type, flags: HashSet::from([FibFlag::Daddr]) })),
                Expression::String(s("local")),
            ),
            Statement::Accept(None),
        ],
    );
    for chain in ["filter-output", "filter-forward"] {
        b.rule(
            chain,
            vec![
                eq(
                    ip_field("daddr"),
                    Expression::Named(NamedExpression::Prefix(Prefix {
                        addr: Box::new(Expression::String(s(&net.to_string()))),
                        len: u32::from(len),
                    })),
                ),
                Statement::Reject(Some(Reject { _type: None, expr: None })),
            ],
        );
    }

    for (n, port) in ports.iter().enumerate() {
        if port.endpoints.is_empty() {
            continue; // filter chains reject it
        }
        let proto = port.protocol.as_nft();
        let svc_chain = format!("svc-{n}");
        b.chain(&svc_chain, None);
        b.rule(
            "services",
            vec![
                eq(ip_field("daddr"), Expression::String(s(&port.cluster_ip.to_string()))),
                l4_dport_match(proto, port.port),
                jump(&svc_chain),
            ],
        );
        if let Some(node_port) = port.node_port {
            b.rule(
                "services",
                vec![
                    eq(
                        Expression::Named(NamedExpression::Fib(Fib {
                            result: FibResult::Type,
                            flags: HashSet::from([FibFlag::Daddr]),
                        })),
                        Expression::String(s("local")),
                    ),
                    l4_dport_match(proto, node_port),
                    set_mark(),
                    jump(&svc_chain),
                ],
            );
        }
        let mut vmap = Vec::new();
        for (i, ep) in port.endpoints.iter().enumerate() {
            let ep_chain = format!("ep-{n}-{i}");
            b.chain(&ep_chain, None);
            // Hairpin: a pod reaching itself through its Service must see the node as the source.
            b.rule(&ep_chain, vec![eq(ip_field("saddr"), Expression::String(s(&ep.ip.to_string()))), set_mark()]);
            b.rule(
                &ep_chain,
                vec![
                    eq(meta(MetaKey::L4proto), Expression::String(s(proto))),
                    Statement::DNAT(Some(NAT {
                        addr: Some(Expression::String(s(&ep.ip.to_string()))),
                        family: None,
                        port: Some(Expression::Number(u32::from(ep.port))),
                        flags: None,
                    })),
                ],
            );
            vmap.push(SetItem::Mapping(
                Expression::Number(u32::try_from(i).unwrap_or(u32::MAX)),
                Expression::Verdict(Verdict::Goto(JumpTarget { target: s(&ep_chain) })),
            ));
        }
        b.rule(
            &svc_chain,
            vec![Statement::VerdictMap(VerdictMap {
                key: Expression::Named(NamedExpression::Numgen(Numgen {
                    mode: NgMode::Random,
                    ng_mod: u32::try_from(port.endpoints.len()).unwrap_or(u32::MAX),
                    offset: None,
                })),
                data: Expression::Named(NamedExpression::Set(vmap)),
            })],
        );
    }
    b.batch.to_nftables()
}

/// Replaces the proxy's table with the rules for `ports`.
pub fn apply(cfg: &ProxyConfig, ports: &[ServicePort]) -> Result<(), ProxyError> {
    nftables::helper::apply_ruleset(&ruleset(cfg, ports))
        .map_err(|source| ProxyError::Apply { table: cfg.table.clone(), source })
}

/// Removes the proxy's table (no error if it is not there).
pub fn remove(cfg: &ProxyConfig) -> Result<(), ProxyError> {
    let mut batch = Batch::new();
    let table = NfListObject::Table(Table { family: NfFamily::IP, name: s(&cfg.table), ..Table::default() });
    batch.add(table.clone());
    batch.delete(table);
    nftables::helper::apply_ruleset(&batch.to_nftables())
        .map_err(|source| ProxyError::Apply { table: cfg.table.clone(), source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::model::{Endpoint, Protocol};

    fn port(eps: &[&str], node_port: Option<u16>) -> ServicePort {
        ServicePort {
            namespace: "default".into(),
            service: "web".into(),
            port_name: "".into(),
            protocol: Protocol::Tcp,
            cluster_ip: "10.96.0.20".parse().unwrap(),
            port: 80,
            node_port,
            endpoints: eps.iter().map(|ip| Endpoint { ip: ip.parse().unwrap(), port: 8080 }).collect(),
        }
    }

    #[test]
    fn ruleset_replaces_table_and_balances_over_endpoints() {
        let nft = ruleset(&ProxyConfig::default(), &[port(&["10.244.0.4", "10.244.0.5"], Some(30080))]);
        let json = serde_json::to_string(&nft).unwrap();
        // add, delete, add of the table come first: an atomic replace.
        assert!(json.starts_with(r#"{"nftables":[{"add":{"table""#), "{json}");
        assert!(json.contains(r#"{"delete":{"table""#));
        assert!(json.contains(r#""numgen":{"mode":"random","mod":2"#), "{json}");
        assert!(json.contains(r#""dnat":{"addr":"10.244.0.5","port":8080}"#), "{json}");
        assert!(json.contains(r#""dport"}},"right":30080"#), "nodeport rule: {json}");
        assert!(json.contains(r#""prefix":{"addr":"10.96.0.0","len":12}"#), "service CIDR guard: {json}");
    }

    #[test]
    fn port_without_endpoints_gets_no_dnat() {
        let json = serde_json::to_string(&ruleset(&ProxyConfig::default(), &[port(&[], None)])).unwrap();
        assert!(!json.contains("dnat"), "{json}");
        assert!(!json.contains("svc-0"), "{json}");
    }
}
