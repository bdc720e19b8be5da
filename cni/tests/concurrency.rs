//! 50 concurrent ADDs into 50 namespaces on one (not yet existing) bridge, with ipMasq: 50 distinct addresses,
//! each reachable from the host and from every other pod; 50 concurrent DELs leave no veth, lease or nft table.

mod common;

use std::collections::HashSet;

use common::*;
use serde_json::json;

const PODS: usize = 50;

#[test]
fn fifty_concurrent_adds_then_dels() {
    let net = TestNet::new();
    let conf = net.conf("rkube-bridge", "rkube-host-local", json!({"ipMasq": true, "isDefaultGateway": true}));
    let pods: Vec<(String, String)> = (0..PODS).map(|_| net.netns()).collect();

    let ips: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = pods
            .iter()
            .enumerate()
            .map(|(i, (_, path))| {
                let conf = &conf;
                s.spawn(move || result_ip(&call(BRIDGE, "ADD", &format!("conc{i}"), path, conf).expect_ok("concurrent ADD")))
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("ADD thread")).collect()
    });

    let distinct: HashSet<&String> = ips.iter().collect();
    assert_eq!(distinct.len(), PODS, "addresses handed out twice: {ips:?}");
    assert_eq!(net.leases().len(), PODS);
    assert_eq!(net.ports().len(), PODS);
    assert!(net.nft_table_exists());
    for (i, ip) in ips.iter().enumerate() {
        assert!(ping(None, ip), "host cannot ping pod {i} at {ip}");
    }
    // Full mesh: every pod pings every other pod (not itself: that needs lo, the loopback plugin's job), one
    // shell loop per pod, five pods at a time. The kernel's ARP
    // table is shared by all namespaces and holds 1024 entries by default (gc_thresh3), less than a 50x50 mesh,
    // so every namespace's neighbour cache is flushed between rounds.
    let mut failures: Vec<String> = Vec::new();
    for (c, chunk) in pods.chunks(5).enumerate() {
        let outs: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = chunk
                .iter()
                .enumerate()
                .map(|(j, (ns, _))| {
                    let me = &ips[c * 5 + j];
                    let targets: Vec<&str> = ips.iter().filter(|ip| *ip != me).map(String::as_str).collect();
                    let targets = targets.join(" ");
                    let script = format!("for ip in {targets}; do ping -c1 -W2 $ip >/dev/null || echo \"{ns} -> $ip\"; done");
                    s.spawn(move || sh(&["ip", "netns", "exec", ns, "sh", "-c", &script]))
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("ping thread")).collect()
        });
        failures.extend(outs.iter().flat_map(|o| o.lines().map(str::to_string)));
        for (ns, _) in &pods {
            sh(&["ip", "-n", ns, "neigh", "flush", "all"]);
        }
    }
    assert!(failures.is_empty(), "pods that could not reach each other: {failures:?}");

    std::thread::scope(|s| {
        for (i, (_, path)) in pods.iter().enumerate() {
            let conf = &conf;
            s.spawn(move || call(BRIDGE, "DEL", &format!("conc{i}"), path, conf).expect_ok("concurrent DEL"));
        }
    });
    assert!(net.ports().is_empty(), "veths left on the bridge: {:?}", net.ports());
    assert!(net.leases().is_empty(), "leases left: {:?}", net.leases());
    assert!(!net.nft_table_exists(), "nft table left after the last DEL");
    for (ns, _) in &pods {
        assert!(!succeeds(&["ip", "-n", ns, "link", "show", "eth0"]), "eth0 left in {ns}");
    }
}
