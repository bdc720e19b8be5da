//! `tcp_connect_in` tells a refused port from a dropped one: the checks that say "refused, not timed out"
//! depend on it. Inside a network namespace of its own (loopback only), removed on drop.

use std::process::Command;
use std::time::Duration;

use rkube_testsupport::{require_command, require_root, tcp_connect_in, unique_name, ConnectOutcome};

struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn run(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().expect("run");
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn refused_dropped_and_open_ports_are_told_apart() {
    require_root();
    require_command("nft", "nftables");
    require_command("python3", "python3");
    let ns = Netns(unique_name("rkt"));
    run(&["ip", "netns", "add", &ns.0]);
    run(&["ip", "-n", &ns.0, "link", "set", "lo", "up"]);
    // nothing listens on 9: the kernel answers with a RST
    assert_eq!(tcp_connect_in(&ns.0, "127.0.0.1", 9, Duration::from_secs(5)), ConnectOutcome::Refused);
    // the same port behind a drop rule: no answer at all
    let rules = "table ip t { chain out { type filter hook output priority 0; tcp dport 9 drop; }; }";
    run(&["ip", "netns", "exec", &ns.0, "nft", rules]);
    assert_eq!(tcp_connect_in(&ns.0, "127.0.0.1", 9, Duration::from_secs(1)), ConnectOutcome::TimedOut);
    // a listener: connected
    let mut listener = Command::new("ip")
        .args(["netns", "exec", &ns.0, "python3", "-c", "import socket,time\ns=socket.socket(); s.bind(('127.0.0.1', 8099)); s.listen(); print('up', flush=True); time.sleep(30)"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("listener");
    let mut up = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(listener.stdout.take().expect("stdout")), &mut up).expect("listener ready");
    let _guard = rkube_testsupport::ChildGuard::new(listener, "python listener");
    assert_eq!(up.trim(), "up");
    assert_eq!(tcp_connect_in(&ns.0, "127.0.0.1", 8099, Duration::from_secs(5)), ConnectOutcome::Connected);
}
