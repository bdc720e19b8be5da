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
