//! Interop with Debian's containernetworking-plugins in /usr/lib/cni, both ways: rkube-bridge delegating to the
//! reference host-local, and the reference bridge delegating to rkube-host-local.

mod common;

use common::*;
use serde_json::json;

fn reference(plugin: &str) -> String {
    let p = format!("{REFERENCE_DIR}/{plugin}");
    assert!(
        std::path::Path::new(&p).exists(),
        "{p} is missing: apt-get install -y containernetworking-plugins (scripts/deps.sh installs it)"
    );
    p
}

#[test]
fn rkube_bridge_with_reference_host_local() {
    reference("host-local");
    let net = TestNet::new();
    let (ns, path) = net.netns();
    let (ns2, path2) = net.netns();
    let conf = net.conf("rkube-bridge", "host-local", json!({"isDefaultGateway": true}));
    let res = call(BRIDGE, "ADD", "ia1", &path, &conf).expect_ok("ADD with reference host-local");
    let res2 = call(BRIDGE, "ADD", "ia2", &path2, &conf).expect_ok("second ADD with reference host-local");
    let (ip, ip2) = (result_ip(&res), result_ip(&res2));
    assert_ne!(ip, ip2);
    assert!(ip.starts_with(&format!("10.125.{}.", net.octet)), "{ip}");
    assert_eq!(net.leases().len(), 2, "the reference host-local keeps leases in the same layout");
    assert!(ping(None, &ip) && ping(Some(&ns), &ip2) && ping(Some(&ns2), &ip));
    let mut prev = conf.clone();
    prev["prevResult"] = res;
    call(BRIDGE, "CHECK", "ia1", &path, &prev).expect_ok("CHECK with reference host-local");
    call(BRIDGE, "DEL", "ia1", &path, &conf).expect_ok("DEL");
    call(BRIDGE, "DEL", "ia2", &path2, &conf).expect_ok("DEL");
    assert!(net.leases().is_empty(), "reference host-local leases left: {:?}", net.leases());
    assert!(net.ports().is_empty());
    assert!(!succeeds(&["ip", "-n", &ns, "link", "show", "eth0"]));
}

#[test]
fn reference_bridge_with_rkube_host_local() {
    let bridge = reference("bridge");
    let net = TestNet::new();
    let (ns, path) = net.netns();
    let (_, path2) = net.netns();
    let conf = net.conf("bridge", "rkube-host-local", json!({"isDefaultGateway": true}));
    let res = call(&bridge, "ADD", "ib1", &path, &conf).expect_ok("reference bridge ADD with rkube-host-local");
    let res2 = call(&bridge, "ADD", "ib2", &path2, &conf).expect_ok("second reference bridge ADD");
    let (ip, ip2) = (result_ip(&res), result_ip(&res2));
    assert_ne!(ip, ip2);
    assert_eq!(res["ips"][0]["gateway"], net.addr(1));
    let mut leases = net.leases();
    leases.sort();
    let mut want = vec![ip.clone(), ip2.clone()];
    want.sort();
    assert_eq!(leases, want);
    assert!(ping(None, &ip) && ping(Some(&ns), &ip2));
    let mut prev = conf.clone();
    prev["prevResult"] = res;
    call(&bridge, "CHECK", "ib1", &path, &prev).expect_ok("reference bridge CHECK with rkube-host-local");
    call(&bridge, "DEL", "ib1", &path, &conf).expect_ok("reference bridge DEL");
    call(&bridge, "DEL", "ib2", &path2, &conf).expect_ok("reference bridge DEL");
    assert!(net.leases().is_empty(), "leases left after the reference bridge's DEL: {:?}", net.leases());
}
