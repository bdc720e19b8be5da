//! The client against the kernel, in a network namespace of the test's own: a thread unshares its netns, so
//! every link made here goes away with the thread, pass or fail. Links, addresses and routes as the plugins and
//! the kubelet use them; errors that name what was asked.

use std::net::IpAddr;

use ipnet::IpNet;
use rkube_netlink::Netlink;

fn in_own_netns(f: impl FnOnce() + Send) {
    rkube_testsupport::require_root();
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("a network namespace of the test's own");
            f();
        })
        .join()
        .expect("the test thread");
    });
}

#[test]
fn bridge_address_route_round_trip() {
    in_own_netns(|| {
        let mut nl = Netlink::open().expect("open");
        let mac = [0x02, 0x72, 0, 0, 0, 1];
        assert!(nl.create_bridge("rkbr0", mac, Some(1400), false).expect("create"), "made");
        assert!(!nl.create_bridge("rkbr0", mac, Some(1400), false).expect("create again"), "already there");
        let br = nl.link_by_name("rkbr0", "test").expect("look up").expect("the bridge");
        assert!(br.is_bridge() && br.up, "{br:?}");
        assert_eq!((br.mtu, br.mac.as_str(), br.name.as_str()), (Some(1400), "02:72:00:00:00:01", "rkbr0"));
        assert_eq!(nl.link_by_index(br.index, "test").expect("by index").map(|l| l.name), Some("rkbr0".to_string()));

        let net: IpNet = "10.77.0.1/24".parse().expect("cidr");
        assert!(nl.add_address(br.index, "rkbr0", net, "test").expect("add"), "added");
        assert!(!nl.add_address(br.index, "rkbr0", net, "test").expect("add again"), "already there");
        assert_eq!(nl.addresses(br.index, "rkbr0", "test").expect("list"), vec![net]);

        let gw: IpAddr = "10.77.0.254".parse().expect("ip");
        let dst: IpNet = "10.78.0.0/16".parse().expect("cidr");
        assert!(nl.add_route(dst, Some(gw), br.index, "rkbr0", "test").expect("route"), "added");
        assert!(!nl.add_route(dst, Some(gw), br.index, "rkbr0", "test").expect("route again"), "already there");
        let routes = nl.routes(true, "test").expect("routes");
        assert!(routes.iter().any(|r| r.dst == dst && r.gw == Some(gw) && r.oif == Some(br.index)), "{routes:?}");
        nl.forget_neighbour(br.index, "rkbr0", gw).expect("no entry is not an error");

        assert!(nl.del_address(br.index, "rkbr0", net, "test").expect("del"), "removed");
        assert!(!nl.del_address(br.index, "rkbr0", net, "test").expect("del again"), "was not there");
        nl.delete_link(br.index, "rkbr0", "test").expect("delete");
        assert!(nl.link_by_name("rkbr0", "test").expect("look up").is_none(), "gone");
        nl.delete_link(br.index, "rkbr0", "test").expect("a link already gone is not an error");
        assert!(!nl.delete_link_by_name("rkbr0", "test").expect("by name"), "nothing to delete");

        // a refused request names what was asked and carries the kernel's errno
        let e = nl.set_up(999_999, "nosuch0").expect_err("no such link");
        assert!(e.to_string().contains("nosuch0"), "{e}");
        assert_eq!(e.errno(), Some(libc::ENODEV), "{e}");
    });
}

/// The vxlan pod network's pieces as the kubelet writes them, read back over netlink and as `ip -d link`,
/// `ip route`, `ip neigh` and `bridge fdb` print them inside the namespace.
#[test]
fn vxlan_device_onlink_route_neighbour_and_fdb_round_trip() {
    use rkube_netlink::link::VxlanSpec;
    use rkube_netlink::neigh::{FdbEntry, Neighbour};
    use rkube_netlink::route::OnlinkRoute;
    rkube_testsupport::require_command("bridge", "iproute2");
    in_own_netns(|| {
        let show = |args: &[&str]| {
            let out = std::process::Command::new(args[0]).args(&args[1..]).output().expect("run");
            assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let mut nl = Netlink::open().expect("open");
        // the underlay: a bridge with the node's address (this kernel has no dummy links)
        nl.create_bridge("rkul0", [0x02, 0x72, 0, 0, 0, 2], Some(1500), false).expect("underlay");
        let ul = nl.link_by_name("rkul0", "test").expect("look up").expect("underlay");
        nl.add_address(ul.index, "rkul0", "172.29.0.11/24".parse().expect("cidr"), "test").expect("address");

        let spec = VxlanSpec { name: "rkvx0".into(), vni: 1, local: "172.29.0.11".parse().expect("ip"), underlay: ul.index, port: 8472, mtu: 1450 };
        assert!(nl.create_vxlan(&spec, "test").expect("create"), "made");
        assert!(!nl.create_vxlan(&spec, "test").expect("create again"), "already there");
        let vx = nl.link_by_name("rkvx0", "test").expect("look up").expect("the vxlan");
        assert!(vx.up && vx.mtu == Some(1450), "{vx:?}");
        assert_eq!(nl.vxlan_of(vx.index, "test").expect("vxlan of"), Some(spec.clone()));
        assert_eq!(nl.vxlan_of(ul.index, "test").expect("vxlan of a bridge"), None, "a bridge is no vxlan");
        let d = show(&["ip", "-d", "link", "show", "rkvx0"]);
        for want in ["mtu 1450", "vxlan id 1 local 172.29.0.11 dev rkul0", "dstport 8472", "nolearning"] {
            assert!(d.contains(want), "{want:?} not in {d}");
        }
        nl.set_mtu(vx.index, "rkvx0", 1400, "test").expect("mtu");
        assert_eq!(nl.link_by_index(vx.index, "test").expect("look up").and_then(|l| l.mtu), Some(1400));

        let route = OnlinkRoute { dst: "10.244.2.0/24".parse().expect("cidr"), gw: "10.244.2.0".parse().expect("ip"), oif: vx.index, protocol: 82 };
        nl.replace_onlink_route(&route, "rkvx0", "test").expect("route");
        nl.replace_onlink_route(&route, "rkvx0", "test").expect("route again is a replace");
        assert_eq!(nl.onlink_routes(vx.index, 82, "test").expect("routes"), vec![route.clone()]);
        assert!(nl.onlink_routes(vx.index, 83, "test").expect("routes").is_empty(), "another protocol's");
        let r = show(&["ip", "route", "show", "proto", "82"]);
        assert!(r.contains("10.244.2.0/24 via 10.244.2.0 dev rkvx0") && r.contains("onlink"), "{r}");

        let n = Neighbour { ip: "10.244.2.0".parse().expect("ip"), mac: "02:aa:bb:cc:dd:02".into() };
        nl.replace_neighbour(vx.index, "rkvx0", &n, "test").expect("neighbour");
        assert_eq!(nl.permanent_neighbours(vx.index, "rkvx0", "test").expect("neighbours"), vec![n.clone()]);
        let t = show(&["ip", "neigh", "show", "dev", "rkvx0"]);
        assert!(t.contains("10.244.2.0 lladdr 02:aa:bb:cc:dd:02 PERMANENT"), "{t}");

        let f = FdbEntry { mac: "02:aa:bb:cc:dd:02".into(), dst: "172.29.0.12".parse().expect("ip") };
        nl.replace_fdb(vx.index, "rkvx0", &f, "test").expect("fdb");
        assert_eq!(nl.fdb(vx.index, "rkvx0", "test").expect("fdb"), vec![f.clone()]);
        let b = show(&["bridge", "fdb", "show", "dev", "rkvx0"]);
        assert!(b.contains("02:aa:bb:cc:dd:02 dst 172.29.0.12 self permanent"), "{b}");

        // and each goes again
        assert!(nl.delete_onlink_route(&route, "rkvx0", "test").expect("delete route"), "deleted");
        assert!(!nl.delete_onlink_route(&route, "rkvx0", "test").expect("delete again"), "already gone");
        nl.forget_neighbour(vx.index, "rkvx0", n.ip.into()).expect("delete neighbour");
        nl.delete_fdb(vx.index, "rkvx0", &f, "test").expect("delete fdb");
        nl.delete_fdb(vx.index, "rkvx0", &f, "test").expect("a missing entry is not an error");
        assert!(nl.onlink_routes(vx.index, 82, "test").expect("routes").is_empty());
        assert!(nl.permanent_neighbours(vx.index, "rkvx0", "test").expect("neighbours").is_empty());
        assert!(nl.fdb(vx.index, "rkvx0", "test").expect("fdb").is_empty(), "{}", show(&["bridge", "fdb", "show", "dev", "rkvx0"]));

        let bad = Neighbour { ip: n.ip, mac: "not-a-mac".into() };
        let e = nl.replace_neighbour(vx.index, "rkvx0", &bad, "test").expect_err("a bad MAC");
        assert!(e.to_string().contains("not-a-mac") && e.to_string().contains("rkvx0"), "{e}");
    });
}
