//! 50 concurrent ADDs into 50 namespaces on one (not yet existing) bridge, with ipMasq: 50 distinct addresses,
//! each reachable from the host and from another pod; 50 concurrent DELs leave no veth, lease or nft table.

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
    for (i, (ns, _)) in pods.iter().enumerate() {
        assert!(ping(None, &ips[i]), "host cannot ping pod {i} at {}", ips[i]);
        let next = &ips[(i + 1) % PODS];
        assert!(ping(Some(ns), next), "pod {i} cannot ping pod {} at {next}", (i + 1) % PODS);
    }

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
