//! Bad input gets the spec's error JSON with the right code and a message naming the problem, and leaves
//! nothing behind: no bridge, no veth, no lease.

mod common;

use common::*;
use serde_json::json;

fn nothing_made(net: &TestNet) {
    assert!(net.leases().is_empty(), "lease left: {:?}", net.leases());
    assert!(net.ports().is_empty(), "veth left: {:?}", net.ports());
}

fn bridge_exists(net: &TestNet) -> bool {
    std::path::Path::new(&format!("/sys/class/net/{}", net.bridge)).exists()
}

#[test]
fn malformed_config_and_version() {
    let net = TestNet::new();
    let (_, path) = net.netns();
    let vars = |cmd| {
        vec![
            ("CNI_COMMAND", Some(cmd)),
            ("CNI_CONTAINERID", Some("bad1")),
            ("CNI_NETNS", Some(path.as_str())),
            ("CNI_IFNAME", Some("eth0")),
        ]
    };
    let out = call_raw(BRIDGE, &vars("ADD"), b"{\"cniVersion\": \"1.0.0\", ");
    out.expect_err(6, "invalid JSON");
    assert!(out.msg().contains("not valid JSON"), "{}", out.msg());

    let mut conf = net.conf("rkube-bridge", "rkube-host-local", json!({}));
    conf["cniVersion"] = json!("9.9.9");
    let out = call(BRIDGE, "ADD", "bad1", &path, &conf);
    out.expect_err(1, "unknown cniVersion");
    assert!(out.msg().contains("9.9.9"), "{}", out.msg());

    let conf = net.conf("rkube-bridge", "rkube-host-local", json!({"isGateway": "yes"}));
    call(BRIDGE, "ADD", "bad1", &path, &conf).expect_err(7, "isGateway of the wrong type");

    let conf = net.conf("rkube-bridge", "rkube-host-local", json!({"ipam": {"ranges": [[{"subnet": "10.99.0.0/24", "rangeStart": "10.98.0.5"}]]}}));
    let out = call(BRIDGE, "ADD", "bad1", &path, &conf);
    out.expect_err(7, "rangeStart outside the subnet");
    assert!(out.msg().contains("10.98.0.5"), "{}", out.msg());

    let conf = net.conf("rkube-bridge", "rkube-host-local", json!({"vlan": 10}));
    let out = call(BRIDGE, "ADD", "bad1", &path, &conf);
    out.expect_err(2, "vlan (not supported)");
    assert!(out.msg().contains("vlan"), "{}", out.msg());

    let conf = net.conf("rkube-bridge", "no-such-ipam", json!({}));
    let out = call(BRIDGE, "ADD", "bad1", &path, &conf);
    out.expect_err(7, "IPAM plugin not in CNI_PATH");
    assert!(out.msg().contains("no-such-ipam"), "{}", out.msg());

    let out = call_raw(BRIDGE, &[("CNI_COMMAND", Some("VERSION"))], br#"{"cniVersion":"0.4.0"}"#);
    assert!(out.ok);
    assert_eq!(out.json["cniVersion"], "0.4.0");
    assert!(out.json["supportedVersions"].as_array().expect("list").contains(&json!("1.0.0")));
    nothing_made(&net);
    assert!(!bridge_exists(&net));
}

#[test]
fn missing_environment() {
    let net = TestNet::new();
    let (_, path) = net.netns();
    let conf = net.conf("rkube-bridge", "rkube-host-local", json!({})).to_string();
    let cni_path = cni_path();
    let base = [
        ("CNI_COMMAND", Some("ADD")),
        ("CNI_CONTAINERID", Some("env1")),
        ("CNI_NETNS", Some(path.as_str())),
        ("CNI_IFNAME", Some("eth0")),
        ("CNI_PATH", Some(cni_path.as_str())),
    ];
    for var in ["CNI_NETNS", "CNI_CONTAINERID", "CNI_IFNAME"] {
        let vars: Vec<_> = base.iter().map(|(k, v)| (*k, if *k == var { None } else { *v })).collect();
        let out = call_raw(BRIDGE, &vars, conf.as_bytes());
        out.expect_err(4, var);
        assert!(out.msg().contains(var), "{var}: {}", out.msg());
    }
    let vars: Vec<_> = base.iter().map(|(k, v)| (*k, if *k == "CNI_COMMAND" { Some("FROB") } else { *v })).collect();
    call_raw(BRIDGE, &vars, conf.as_bytes()).expect_err(4, "unknown CNI_COMMAND");
    nothing_made(&net);
    assert!(!bridge_exists(&net));
}

#[test]
fn netns_that_does_not_exist() {
    let net = TestNet::new();
    let conf = net.conf("rkube-bridge", "rkube-host-local", json!({}));
    let path = format!("/var/run/netns/{}", rkube_testsupport::unique_name("rkgone"));
    let out = call(BRIDGE, "ADD", "gone1", &path, &conf);
    out.expect_err(3, "ADD into a missing netns");
    assert!(out.msg().contains(&path), "{}", out.msg());
    nothing_made(&net);
    assert!(!bridge_exists(&net), "bridge made for an ADD that could not work");
    call(BRIDGE, "DEL", "gone1", &path, &conf).expect_ok("DEL with the netns gone");

    let not_netns = net.dir.path().join("not-a-netns");
    std::fs::write(&not_netns, "").expect("write file");
    let not_netns = not_netns.display().to_string();
    let out = call(BRIDGE, "ADD", "gone1", &not_netns, &conf);
    out.expect_err(4, "ADD with CNI_NETNS naming a plain file");
    assert!(out.msg().contains(&not_netns), "{}", out.msg());
    nothing_made(&net);
}

#[test]
fn bridge_name_too_long() {
    let net = TestNet::new();
    let (_, path) = net.netns();
    let long = format!("{}-much-too-long", net.bridge);
    let conf = net.conf("rkube-bridge", "rkube-host-local", json!({"bridge": long}));
    let out = call(BRIDGE, "ADD", "long1", &path, &conf);
    out.expect_err(7, "bridge name too long");
    assert!(out.msg().contains(&long) && out.msg().contains("15"), "{}", out.msg());
    assert!(!std::path::Path::new(&format!("/sys/class/net/{long}")).exists());
    nothing_made(&net);
}

#[test]
fn range_exhausted_leaves_nothing_half_made() {
    let net = TestNet::new();
    let (_, pa) = net.netns();
    let (nb, pb) = net.netns();
    let conf = net.conf(
        "rkube-bridge",
        "rkube-host-local",
        json!({"ipMasq": true, "ipam": {"ranges": [[{"subnet": net.subnet(), "rangeStart": net.addr(20), "rangeEnd": net.addr(20)}]]}}),
    );
    let a = call(BRIDGE, "ADD", "exa", &pa, &conf).expect_ok("ADD a");
    assert_eq!(result_ip(&a), net.addr(20));
    let out = call(BRIDGE, "ADD", "exb", &pb, &conf);
    out.expect_err(100, "ADD with the range exhausted");
    assert!(out.msg().contains(&net.subnet()), "{}", out.msg());
    assert!(!succeeds(&["ip", "-n", &nb, "link", "show", "eth0"]), "eth0 made in {nb} by a failed ADD");
    assert_eq!(net.ports().len(), 1);
    assert_eq!(net.leases(), vec![net.addr(20)]);
    call(BRIDGE, "DEL", "exb", &pb, &conf).expect_ok("DEL of the failed ADD");
    assert!(net.nft_table_exists(), "DEL of the failed ADD removed a's masquerade table");
    call(BRIDGE, "DEL", "exa", &pa, &conf).expect_ok("DEL a");
    nothing_made(&net);
    assert!(!net.nft_table_exists());
}

#[test]
fn host_local_alone() {
    let net = TestNet::new();
    let conf = net.conf("rkube-host-local", "rkube-host-local", json!({"ipam": {"ranges": [], "subnet": null}}));
    let out = call(HOST_LOCAL, "ADD", "hl1", "/var/run/netns/unused", &conf);
    out.expect_err(7, "host-local without ranges");
    assert!(out.msg().contains("no ranges"), "{}", out.msg());
    let conf = net.conf("rkube-host-local", "rkube-host-local", json!({}));
    let r = call(HOST_LOCAL, "ADD", "hl1", "/var/run/netns/unused", &conf).expect_ok("host-local ADD");
    assert_eq!(r["ips"][0]["address"], format!("{}/24", net.addr(2)));
    call(HOST_LOCAL, "CHECK", "hl1", "/var/run/netns/unused", &conf).expect_ok("host-local CHECK");
    call(HOST_LOCAL, "CHECK", "hl2", "/var/run/netns/unused", &conf).expect_err(101, "CHECK of an unknown attachment");
    let mut gc = conf.clone();
    gc["cniVersion"] = json!("1.1.0");
    gc["cni.dev/valid-attachments"] = json!([]);
    call(HOST_LOCAL, "GC", "", "", &gc).expect_ok("GC");
    assert!(net.leases().is_empty(), "GC kept a lease no valid attachment owns");
    call(HOST_LOCAL, "DEL", "hl1", "", &conf).expect_ok("DEL after GC");
}
