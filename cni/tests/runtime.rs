//! The runtime side (what rkube's kubelet uses): a conflist loaded from a config directory, chained
//! rkube-bridge -> reference tuning with prevResult, CHECK and DEL from the cached ADD result.

mod common;

use std::path::PathBuf;

use common::*;
use rkube_cni::runtime::{load_network, Attachment, CniRuntime};
use serde_json::json;

#[test]
fn conflist_chain_add_check_del() {
    assert!(std::path::Path::new("/usr/lib/cni/tuning").exists(), "apt-get install -y containernetworking-plugins");
    let net = TestNet::new();
    let (ns, path) = net.netns();
    let bridge = net.conf("rkube-bridge", "rkube-host-local", json!({"isDefaultGateway": true}));
    let mut first = bridge.clone();
    let obj = first.as_object_mut().expect("object");
    obj.remove("name");
    obj.remove("cniVersion");
    let list = json!({
        "cniVersion": "1.0.0",
        "name": net.name,
        "plugins": [first, {"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.arp_ignore": "1"}}],
    });
    let conf_dir = net.dir.path().join("net.d");
    std::fs::create_dir_all(&conf_dir).expect("mkdir");
    std::fs::write(conf_dir.join("10-test.conflist"), list.to_string()).expect("write conflist");
    std::fs::write(conf_dir.join("99-ignored.txt"), "not a config").expect("write");

    let network = load_network(&conf_dir).expect("load network");
    assert_eq!(network.plugins.len(), 2);
    let ours = PathBuf::from(BRIDGE).parent().expect("dir").to_path_buf();
    let rt = CniRuntime::new(vec![ours, PathBuf::from(REFERENCE_DIR)], net.dir.path().join("results"));
    let att = Attachment { container_id: "rt1".into(), netns: path.clone().into(), ifname: "eth0".into(), args: String::new() };

    let res = rt.add(&network, &att).expect("ADD through the chain");
    let ip = res.ips[0].address.addr().to_string();
    assert!(ping(None, &ip), "host cannot reach {ip}");
    let tuned = sh(&["ip", "netns", "exec", &ns, "cat", "/proc/sys/net/ipv4/conf/eth0/arp_ignore"]);
    assert_eq!(tuned.trim(), "1", "tuning did not run after the bridge");
    assert_eq!(rt.cached(&network, &att).expect("cached result").ips, res.ips);

    rt.check(&network, &att).expect("CHECK through the chain");
    sh(&["ip", "-n", &ns, "addr", "flush", "dev", "eth0"]);
    let e = rt.check(&network, &att).expect_err("CHECK after flushing the address");
    assert_eq!(e.code, 101, "{e}");

    rt.del(&network, &att).expect("DEL through the chain");
    assert!(rt.cached(&network, &att).is_none(), "cached result left after DEL");
    assert!(net.leases().is_empty() && net.ports().is_empty());
    rt.del(&network, &att).expect("second DEL");
}
