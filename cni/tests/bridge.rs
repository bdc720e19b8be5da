//! rkube-bridge delegating to rkube-host-local, for real, as root: ADD/CHECK/DEL, CHECK after tampering, address
//! reuse across ADD/DEL cycles, dual stack, legacy 0.4.0 configs and ipMasq's nft table lifetime.

mod common;

use common::*;
use serde_json::{json, Value};

fn with_prev(conf: &Value, prev: &Value) -> Value {
    let mut c = conf.clone();
    c["prevResult"] = prev.clone();
    c
}

#[test]
fn add_check_del_round_trip() {
    let net = TestNet::new();
    let (ns, path) = net.netns();
    let conf = net.conf("rkube-bridge", "rkube-host-local", json!({"isDefaultGateway": true, "hairpinMode": true}));

    let res = call(BRIDGE, "ADD", "rt1", &path, &conf).expect_ok("ADD");
    assert_eq!(res["cniVersion"], "1.0.0");
    let ifs = res["interfaces"].as_array().expect("interfaces");
    assert_eq!(ifs.len(), 3, "bridge, host veth, container interface: {res}");
    assert_eq!(ifs[0]["name"], net.bridge.as_str());
    assert_eq!(ifs[2]["name"], "eth0");
    assert_eq!(ifs[2]["sandbox"], path.as_str());
    assert_eq!(res["ips"][0]["interface"], 2);
    assert_eq!(res["ips"][0]["gateway"], net.addr(1));
    assert_eq!(res["routes"][0]["dst"], "0.0.0.0/0");
    let ip = result_ip(&res);
    assert_eq!(addrs_in(&ns, "eth0"), vec![format!("{ip}/24")]);
    let host_veth = ifs[1]["name"].as_str().expect("veth name");
    assert_eq!(net.ports(), vec![host_veth.to_string()]);
    let hairpin = std::fs::read_to_string(format!("/sys/class/net/{host_veth}/brport/hairpin_mode")).expect("hairpin");
    assert_eq!(hairpin.trim(), "1");
    let routes = sh(&["ip", "-n", &ns, "route", "show", "default"]);
    assert!(routes.contains(&format!("via {}", net.addr(1))), "default route missing: {routes}");
    assert!(ping(None, &ip), "host cannot ping the pod at {ip}");
    assert_eq!(net.leases(), vec![ip.clone()]);

    call(BRIDGE, "CHECK", "rt1", &path, &with_prev(&conf, &res)).expect_ok("CHECK after ADD");

    call(BRIDGE, "DEL", "rt1", &path, &conf).expect_ok("DEL");
    assert!(!succeeds(&["ip", "-n", &ns, "link", "show", "eth0"]), "eth0 still in the netns after DEL");
    assert!(net.ports().is_empty(), "host veth left on the bridge: {:?}", net.ports());
    assert!(net.leases().is_empty(), "lease left after DEL: {:?}", net.leases());
    call(BRIDGE, "DEL", "rt1", &path, &conf).expect_ok("second DEL is idempotent");
}

#[test]
fn check_fails_after_tampering() {
    let net = TestNet::new();
    let (ns, path) = net.netns();
    let conf = net.conf("rkube-bridge", "rkube-host-local", json!({"isDefaultGateway": true}));
    let res = call(BRIDGE, "ADD", "tm1", &path, &conf).expect_ok("ADD");
    let prev = with_prev(&conf, &res);
    call(BRIDGE, "CHECK", "tm1", &path, &prev).expect_ok("CHECK before tampering");

    sh(&["ip", "-n", &ns, "route", "del", "default"]);
    let out = call(BRIDGE, "CHECK", "tm1", &path, &prev);
    out.expect_err(101, "CHECK without the default route");
    assert!(out.msg().contains("route 0.0.0.0/0"), "{}", out.msg());

    sh(&["ip", "-n", &ns, "addr", "flush", "dev", "eth0"]);
    let out = call(BRIDGE, "CHECK", "tm1", &path, &prev);
    out.expect_err(101, "CHECK without the address");
    assert!(out.msg().contains(&result_ip(&res)), "{}", out.msg());

    sh(&["ip", "-n", &ns, "link", "del", "eth0"]);
    let out = call(BRIDGE, "CHECK", "tm1", &path, &prev);
    out.expect_err(101, "CHECK without the interface");
    assert!(out.msg().contains("eth0"), "{}", out.msg());

    let out = call(BRIDGE, "CHECK", "tm1", &path, &conf);
    out.expect_err(7, "CHECK without prevResult");
    call(BRIDGE, "DEL", "tm1", &path, &conf).expect_ok("DEL after tampering");
    assert!(net.leases().is_empty());
}

#[test]
fn add_del_cycles_reuse_addresses() {
    let net = TestNet::new();
    // Two addresses only: .10 and .11.
    let conf = net.conf(
        "rkube-bridge",
        "rkube-host-local",
        json!({"ipam": {"ranges": [[{"subnet": net.subnet(), "rangeStart": net.addr(10), "rangeEnd": net.addr(11)}]]}}),
    );
    let (_, pa) = net.netns();
    let (_, pb) = net.netns();
    let (_, pc) = net.netns();
    let a = result_ip(&call(BRIDGE, "ADD", "cya", &pa, &conf).expect_ok("ADD a"));
    let b = result_ip(&call(BRIDGE, "ADD", "cyb", &pb, &conf).expect_ok("ADD b"));
    assert_ne!(a, b);
    call(BRIDGE, "ADD", "cyc", &pc, &conf).expect_err(100, "ADD c with the range full");
    call(BRIDGE, "DEL", "cya", &pa, &conf).expect_ok("DEL a");
    let c = result_ip(&call(BRIDGE, "ADD", "cyc", &pc, &conf).expect_ok("ADD c after DEL a"));
    assert_eq!(c, a, "the address a released is the only free one");
    assert!(ping(None, &c) && ping(None, &b));
    for _ in 0..3 {
        call(BRIDGE, "DEL", "cyc", &pc, &conf).expect_ok("DEL c");
        let again = result_ip(&call(BRIDGE, "ADD", "cyc", &pc, &conf).expect_ok("ADD c again"));
        assert_eq!(again, a);
        assert!(ping(None, &again));
    }
    let mut leases = net.leases();
    leases.sort();
    let mut want = vec![a.clone(), b.clone()];
    want.sort();
    assert_eq!(leases, want);
    call(BRIDGE, "DEL", "cyb", &pb, &conf).expect_ok("DEL b");
    call(BRIDGE, "DEL", "cyc", &pc, &conf).expect_ok("DEL c");
    assert!(net.leases().is_empty() && net.ports().is_empty());
}

#[test]
fn dual_stack_and_legacy_version() {
    let net = TestNet::new();
    let (ns, path) = net.netns();
    let v6 = format!("fd00:99:{}::/64", net.octet);
    let conf = net.conf(
        "rkube-bridge",
        "rkube-host-local",
        json!({"cniVersion": "0.4.0", "ipam": {"ranges": [[{"subnet": net.subnet()}], [{"subnet": v6}]]}}),
    );
    let res = call(BRIDGE, "ADD", "ds1", &path, &conf).expect_ok("dual-stack ADD");
    assert_eq!(res["cniVersion"], "0.4.0");
    assert_eq!(res["ips"][0]["version"], "4");
    assert_eq!(res["ips"][1]["version"], "6");
    let a6 = res["ips"][1]["address"].as_str().expect("v6 address").to_string();
    let out = sh(&["ip", "-n", &ns, "-6", "addr", "show", "dev", "eth0"]);
    assert!(out.contains(&a6), "{a6} not on eth0: {out}");
    let bridge_addrs = sh(&["ip", "-6", "addr", "show", "dev", &net.bridge]);
    assert!(bridge_addrs.contains(&format!("fd00:99:{}::1/64", net.octet)), "v6 gateway missing: {bridge_addrs}");
    let ip6 = a6.split('/').next().expect("addr");
    assert!(ping(None, ip6), "host cannot ping {ip6}");
    assert!(ping(None, &result_ip(&res)));
    let mut prev = conf.clone();
    prev["prevResult"] = res.clone();
    call(BRIDGE, "CHECK", "ds1", &path, &prev).expect_ok("CHECK 0.4.0");
    call(BRIDGE, "DEL", "ds1", &path, &conf).expect_ok("DEL");
    assert!(net.leases().is_empty());
}

#[test]
fn ip_masq_table_lives_while_attachments_use_it() {
    let net = TestNet::new();
    let conf = net.conf("rkube-bridge", "rkube-host-local", json!({"ipMasq": true}));
    let (_, pa) = net.netns();
    let (_, pb) = net.netns();
    assert!(!net.nft_table_exists());
    call(BRIDGE, "ADD", "mqa", &pa, &conf).expect_ok("ADD a");
    let rules = sh(&["nft", "list", "table", "inet", &net.nft_table()]);
    let subnet = net.subnet();
    assert!(
        rules.contains(&format!("ip saddr {subnet} ip daddr != {subnet}")) && rules.contains("masquerade"),
        "masquerade rule missing: {rules}"
    );
    assert!(rules.contains("hook postrouting"), "{rules}");
    call(BRIDGE, "ADD", "mqb", &pb, &conf).expect_ok("ADD b");
    let mut prev = conf.clone();
    call(BRIDGE, "DEL", "mqa", &pa, &conf).expect_ok("DEL a");
    assert!(net.nft_table_exists(), "table removed while b still uses it");
    // CHECK notices the table going missing.
    let res_b = call(BRIDGE, "ADD", "mqz", &pa, &conf).expect_ok("ADD z");
    prev["prevResult"] = res_b;
    sh(&["nft", "delete", "table", "inet", &net.nft_table()]);
    call(BRIDGE, "CHECK", "mqz", &pa, &prev).expect_err(102, "CHECK with the table gone");
    call(BRIDGE, "DEL", "mqz", &pa, &conf).expect_ok("DEL z");
    call(BRIDGE, "DEL", "mqb", &pb, &conf).expect_ok("DEL b");
    assert!(!net.nft_table_exists(), "table left after the last DEL");
    assert!(net.leases().is_empty() && net.ports().is_empty());
}

#[test]
fn status_and_gc_from_1_1() {
    let net = TestNet::new();
    let conf = net.conf("rkube-bridge", "rkube-host-local", json!({"cniVersion": "1.1.0", "ipMasq": true}));
    let (_, pa) = net.netns();
    let (_, pb) = net.netns();
    call(BRIDGE, "STATUS", "", "", &conf).expect_ok("STATUS");
    let missing = net.conf("rkube-bridge", "no-such-ipam", json!({"cniVersion": "1.1.0"}));
    call(BRIDGE, "STATUS", "", "", &missing).expect_err(50, "STATUS without the IPAM plugin");

    let a = result_ip(&call(BRIDGE, "ADD", "gca", &pa, &conf).expect_ok("ADD a"));
    let b = result_ip(&call(BRIDGE, "ADD", "gcb", &pb, &conf).expect_ok("ADD b"));
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "gcb", "ifname": "eth0"}]);
    call(BRIDGE, "GC", "", "", &gc).expect_ok("GC keeping b");
    assert_eq!(net.leases(), vec![b.clone()], "GC kept a's lease {a}");
    assert!(net.nft_table_exists(), "GC removed the table b still uses");
    gc["cni.dev/valid-attachments"] = json!([]);
    call(BRIDGE, "GC", "", "", &gc).expect_ok("GC keeping nothing");
    assert!(net.leases().is_empty());
    assert!(!net.nft_table_exists(), "GC left the table with no user");
}

#[test]
fn mtu_promisc_and_dual_stack_masquerade() {
    let net = TestNet::new();
    let (ns, path) = net.netns();
    let v6 = format!("fd00:98:{}::/64", net.octet);
    let conf = net.conf(
        "rkube-bridge",
        "rkube-host-local",
        json!({"mtu": 1400, "promiscMode": true, "ipMasq": true, "ipam": {"ranges": [[{"subnet": net.subnet()}], [{"subnet": v6}]]}}),
    );
    let res = call(BRIDGE, "ADD", "mtu1", &path, &conf).expect_ok("ADD");
    let mtu = |args: &[&str]| -> u64 {
        let v: Value = serde_json::from_str(&sh(args)).expect("ip -j");
        v[0]["mtu"].as_u64().unwrap_or(0)
    };
    assert_eq!(mtu(&["ip", "-n", &ns, "-j", "link", "show", "eth0"]), 1400);
    assert_eq!(mtu(&["ip", "-j", "link", "show", &net.bridge]), 1400);
    let host_veth = res["interfaces"][1]["name"].as_str().expect("veth").to_string();
    assert_eq!(mtu(&["ip", "-j", "link", "show", &host_veth]), 1400);
    let flags = sh(&["ip", "link", "show", &net.bridge]);
    assert!(flags.contains("PROMISC"), "bridge not promiscuous: {flags}");
    let rules = sh(&["nft", "list", "table", "inet", &net.nft_table()]);
    assert!(rules.contains(&format!("ip saddr {}", net.subnet())), "{rules}");
    assert!(rules.contains(&format!("ip6 saddr {v6}")) && rules.contains("ip6 daddr != ff00::/8"), "{rules}");
    call(BRIDGE, "DEL", "mtu1", &path, &conf).expect_ok("DEL");
    assert!(!net.nft_table_exists());
}

#[test]
fn del_after_the_netns_is_gone_releases_the_lease() {
    let net = TestNet::new();
    let (ns, path) = net.netns();
    let conf = net.conf("rkube-bridge", "rkube-host-local", json!({"ipMasq": true}));
    call(BRIDGE, "ADD", "gone2", &path, &conf).expect_ok("ADD");
    sh(&["ip", "netns", "del", &ns]);
    call(BRIDGE, "DEL", "gone2", &path, &conf).expect_ok("DEL with the netns deleted");
    assert!(net.leases().is_empty(), "lease kept after DEL: {:?}", net.leases());
    assert!(!net.nft_table_exists(), "masquerade table kept after the last DEL");
    // The kernel destroys a deleted namespace's veth in the background.
    rkube_testsupport::poll_until("the veth of the deleted netns to go", std::time::Duration::from_secs(10), || {
        net.ports().is_empty().then_some(())
    });
    let mut empty = conf.clone();
    empty["cniVersion"] = json!("1.0.0");
    let out = call_raw(
        BRIDGE,
        &[("CNI_COMMAND", Some("DEL")), ("CNI_CONTAINERID", Some("gone2")), ("CNI_IFNAME", Some("eth0")), ("CNI_PATH", Some(&cni_path()))],
        empty.to_string().as_bytes(),
    );
    assert!(out.ok, "DEL without CNI_NETNS: {}", out.stdout);
}

#[test]
fn pod_announces_itself_with_gratuitous_arp() {
    let net = TestNet::new();
    let (_, path) = net.netns();
    // A bridge made beforehand (rkube-bridge reuses it) that learns from gratuitous ARP.
    sh(&["ip", "link", "add", &net.bridge, "type", "bridge"]);
    sh(&["ip", "link", "set", &net.bridge, "up"]);
    std::fs::write(format!("/proc/sys/net/ipv4/conf/{}/arp_accept", net.bridge), "1").expect("arp_accept on the test bridge");
    let conf = net.conf("rkube-bridge", "rkube-host-local", json!({}));
    let res = call(BRIDGE, "ADD", "garp1", &path, &conf).expect_ok("ADD");
    let ip = result_ip(&res);
    let mac = res["interfaces"][2]["mac"].as_str().expect("mac").to_string();
    // No traffic is sent to the pod: the entry can only come from its announcement.
    let entry = rkube_testsupport::poll_until("the pod's gratuitous ARP", std::time::Duration::from_secs(5), || {
        let out = sh(&["ip", "neigh", "show", "dev", &net.bridge, &ip]);
        out.contains(&mac).then_some(out)
    });
    assert!(entry.contains(&mac), "{entry}");
    call(BRIDGE, "DEL", "garp1", &path, &conf).expect_ok("DEL");
}
