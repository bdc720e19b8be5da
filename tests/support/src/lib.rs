//! Fixtures shared by rkube's tests: a busybox rootfs and OCI image built from Debian's busybox-static, a local
//! registry bound to 127.0.0.1, unique names for the resources a test makes, and guards that remove them.
//!
//! Nothing here knows about rkube's own crates, so every crate can use it as a dev-dependency.
#![warn(missing_docs)]

pub mod etcd;
pub mod image;
pub mod naming;
pub mod poll;
pub mod process;
pub mod registry;
pub mod vm;

pub use image::{busybox_oci_layout, busybox_oci_layout_as, busybox_rootfs, OciLayout};
pub use naming::unique_name;
pub use poll::poll_until;
pub use process::{output_within, ChildGuard};
pub use registry::Registry;

/// The last `n` lines of a log file under a `--- <path> (last lines)` header, for a failing test to print;
/// None when the file cannot be read.
pub fn log_tail(path: &std::path::Path, n: usize) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut tail: Vec<&str> = text.lines().rev().take(n).collect();
    tail.reverse();
    Some(format!("--- {} (last lines)\n{}", path.display(), tail.join("\n")))
}

/// Panics with a clear message unless the test runs as root: privileged tests run for real, never skipped silently.
pub fn require_root() {
    // SAFETY-free: geteuid via /proc avoids a libc dependency.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap_or("");
    assert_eq!(euid, "0", "this test needs root (it makes real namespaces, mounts and cgroups); run it as root");
}

/// Path of a command on this machine, or a panic naming the Debian package that provides it.
pub fn require_command(cmd: &str, package: &str) -> std::path::PathBuf {
    for dir in ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let p = std::path::Path::new(dir).join(cmd);
        if p.exists() {
            return p;
        }
    }
    panic!("`{cmd}` is not installed: apt-get install -y {package} (scripts/deps.sh installs every test dependency)");
}

/// How a TCP connect ended, as the client's kernel reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectOutcome {
    /// The handshake completed: something accepts on that address.
    Connected,
    /// ECONNREFUSED: a RST or an ICMP port-unreachable came back (what a reject rule sends).
    Refused,
    /// No answer within the timeout (a drop, or a packet lost on its way).
    TimedOut,
    /// Any other error, with its text (host or network unreachable, ...).
    Other(String),
}

/// Opens a TCP connection to `ip:port` from inside network namespace `netns` (`ip netns exec`, python3's socket
/// module) and says how it ended: a check that a port is refused must not pass on a timeout.
pub fn tcp_connect_in(netns: &str, ip: &str, port: u16, timeout: std::time::Duration) -> ConnectOutcome {
    const SCRIPT: &str = "import socket, sys\n\
s = socket.socket()\n\
s.settimeout(float(sys.argv[3]))\n\
try:\n    s.connect((sys.argv[1], int(sys.argv[2]))); print('connected')\n\
except ConnectionRefusedError: print('refused')\n\
except socket.timeout: print('timeout')\n\
except OSError as e: print('error', e.errno, e.strerror)\n";
    let mut cmd = std::process::Command::new("ip");
    cmd.args(["netns", "exec", netns, "python3", "-c", SCRIPT, ip, &port.to_string(), &format!("{:.3}", timeout.as_secs_f64())]);
    let out = output_within(&mut cmd, None, timeout + std::time::Duration::from_secs(30), &format!("connect to {ip}:{port} from {netns}"));
    let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
    match said.as_str() {
        "connected" => ConnectOutcome::Connected,
        "refused" => ConnectOutcome::Refused,
        "timeout" => ConnectOutcome::TimedOut,
        _ => ConnectOutcome::Other(format!("{said} {}", String::from_utf8_lossy(&out.stderr).trim())),
    }
}
