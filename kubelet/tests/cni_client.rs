//! The kubelet's CNI client against real plugins: a conflist loaded from a config directory (other files ignored),
//! a chain bridge -> tuning with prevResult, the cached ADD result, CHECK passing and then failing once the pod's
//! address is flushed, and DEL (twice: the second must succeed too, as the spec asks). The reference plugins from
//! Debian's containernetworking-plugins are used, so the client is tested against plugins that are not ours.
//! Ported from cni/tests/runtime.rs when the client moved from the plugins' crate into the kubelet.

use std::path::{Path, PathBuf};
use std::process::Command;

use rkube_kubelet::pod::cni_client::{load_network, Attachment, CniRuntime};
use rkube_testsupport::{require_command, require_root, unique_name};
use serde_json::json;

const REFERENCE_DIR: &str = "/usr/lib/cni";

fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().expect("run a command");
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A netns and a bridge of this test's own, removed on drop pass or fail.
struct TestNet {
    ns: String,
    bridge: String,
    dir: tempfile::TempDir,
}

impl TestNet {
    fn new() -> TestNet {
        require_root();
        require_command("ip", "iproute2");
        for p in ["bridge", "host-local", "tuning"] {
            assert!(Path::new(REFERENCE_DIR).join(p).exists(), "{REFERENCE_DIR}/{p} missing: apt-get install -y containernetworking-plugins");
        }
        let net = TestNet { ns: unique_name("kcc"), bridge: unique_name("kcb"), dir: tempfile::tempdir().expect("tempdir") };
        sh(&["ip", "netns", "add", &net.ns]);
        net
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
        let _ = Command::new("ip").args(["link", "del", &self.bridge]).status();
    }
}

/// The addresses host-local holds for the test's network (one file per address under dataDir/<network>).
fn leases(net: &TestNet) -> Vec<String> {
    std::fs::read_dir(net.dir.path().join("ipam").join(&net.bridge))
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with("10.")).collect())
        .unwrap_or_default()
}

#[test]
fn conflist_chain_add_check_del() {
    let net = TestNet::new();
    // a /24 from 10.124.x.0 that depends on the pid, so parallel test processes do not overlap
    let third = (std::process::id() % 200) + 20;
    let list = json!({
        "cniVersion": "1.0.0",
        "name": net.bridge,
        "plugins": [
            {"type": "bridge", "bridge": net.bridge, "isGateway": false, "ipMasq": false,
             "ipam": {"type": "host-local", "dataDir": net.dir.path().join("ipam"), "ranges": [[{"subnet": format!("10.124.{third}.0/24")}]]}},
            {"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.arp_ignore": "1"}},
        ],
    });
    let conf_dir = net.dir.path().join("net.d");
    std::fs::create_dir_all(&conf_dir).expect("mkdir");
    std::fs::write(conf_dir.join("10-test.conflist"), list.to_string()).expect("write conflist");
    std::fs::write(conf_dir.join("99-ignored.txt"), "not a config").expect("write");

    let network = load_network(&conf_dir).expect("load network");
    assert_eq!(network.plugins.len(), 2);
    let rt = CniRuntime::new(vec![PathBuf::from(REFERENCE_DIR)], net.dir.path().join("results"));
    let netns = PathBuf::from(format!("/var/run/netns/{}", net.ns));
    let att = Attachment { container_id: "kcc1".into(), netns, ifname: "eth0".into(), args: String::new() };

    let res = rt.add(&network, &att).expect("ADD through the chain");
    let ip = res.ips[0].address.addr().to_string();
    let addrs = sh(&["ip", "-n", &net.ns, "-o", "-4", "addr", "show", "dev", "eth0"]);
    assert!(addrs.contains(&format!("{ip}/24")), "the result's {ip} is not on the pod's eth0: {addrs}");
    let tuned = sh(&["ip", "netns", "exec", &net.ns, "cat", "/proc/sys/net/ipv4/conf/eth0/arp_ignore"]);
    assert_eq!(tuned.trim(), "1", "tuning did not run after the bridge");
    assert_eq!(rt.cached(&network, &att).expect("cached result").ips, res.ips);
    assert_eq!(leases(&net), vec![ip.clone()], "host-local's lease for the pod");

    rt.check(&network, &att).expect("CHECK through the chain");
    sh(&["ip", "-n", &net.ns, "addr", "flush", "dev", "eth0"]);
    let e = rt.check(&network, &att).expect_err("CHECK must fail after the pod's address is flushed");
    assert!(!e.msg.is_empty(), "CHECK failed without a message: {e:?}");

    rt.del(&network, &att).expect("DEL through the chain");
    assert!(rt.cached(&network, &att).is_none(), "cached result left after DEL");
    assert!(leases(&net).is_empty(), "host-local leases left after DEL: {:?}", leases(&net));
    rt.del(&network, &att).expect("second DEL");
}
