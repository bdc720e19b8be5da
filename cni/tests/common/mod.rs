//! Shared fixtures for the plugin tests: a uniquely named test network (bridge, subnet, lease and state dirs,
//! nft table) whose guard removes everything it made, pass or fail, and helpers that run the plugin binaries
//! per the CNI exec protocol.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use rkube_testsupport::{require_command, require_root, unique_name};
use serde_json::{json, Value};

pub const BRIDGE: &str = env!("CARGO_BIN_EXE_rkube-bridge");
pub const HOST_LOCAL: &str = env!("CARGO_BIN_EXE_rkube-host-local");
pub const REFERENCE_DIR: &str = "/usr/lib/cni";

/// CNI_PATH holding our plugins and, after them, the reference ones.
pub fn cni_path() -> String {
    let ours = Path::new(HOST_LOCAL).parent().expect("binary dir").display().to_string();
    format!("{ours}:{REFERENCE_DIR}")
}

static SUBNET: AtomicU32 = AtomicU32::new(0);

/// A /24 inside 10.125.0.0/16 no other test in this process uses (the third octet comes from a counter offset by
/// the process id, so test binaries running one after another rarely share one either). Not 10.99.x, where these
/// were: that is inside the service CIDR 10.96.0.0/12, and any rkube proxy table on the host (a running `rkube
/// up`, or one a killed test left) rejects the host's traffic to it, so the host could not ping the pods.
pub fn unique_subnet_octet() -> u32 {
    let n = SUBNET.fetch_add(1, Ordering::Relaxed);
    (std::process::id() * 37 + n) % 250 + 2
}

/// Forwarding sysctls the bridge turns on with isGateway; saved before the first live test network and restored
/// when the last one drops.
const FORWARDING: [&str; 3] = [
    "/proc/sys/net/ipv4/ip_forward",
    "/proc/sys/net/ipv6/conf/all/forwarding",
    "/proc/sys/net/ipv6/conf/default/forwarding",
];

static FORWARD: Mutex<(usize, Vec<(&'static str, String)>)> = Mutex::new((0, Vec::new()));

fn forward_hold() {
    let mut g = FORWARD.lock().unwrap_or_else(|e| e.into_inner());
    if g.0 == 0 {
        g.1 = FORWARDING.iter().filter_map(|p| std::fs::read_to_string(p).ok().map(|v| (*p, v))).collect();
    }
    g.0 += 1;
}

fn forward_release() {
    let mut g = FORWARD.lock().unwrap_or_else(|e| e.into_inner());
    g.0 -= 1;
    if g.0 == 0 {
        // all/forwarding rewrites every interface's value, so restore it before default.
        for (path, v) in g.1.drain(..) {
            let _ = std::fs::write(path, v.trim());
        }
    }
}

/// What one plugin call returned.
#[derive(Debug)]
pub struct Outcome {
    pub ok: bool,
    pub stdout: String,
    pub json: Value,
}

impl Outcome {
    pub fn code(&self) -> u64 {
        self.json["code"].as_u64().unwrap_or(0)
    }
    pub fn msg(&self) -> String {
        self.json["msg"].as_str().unwrap_or("").to_string()
    }
    #[track_caller]
    pub fn expect_ok(self, what: &str) -> Value {
        assert!(self.ok, "{what} failed: {}", self.stdout);
        self.json
    }
    #[track_caller]
    pub fn expect_err(&self, code: u64, what: &str) {
        assert!(!self.ok, "{what} should fail with code {code} but succeeded: {}", self.stdout);
        assert_eq!(self.code(), code, "{what}: wrong error code in {}", self.stdout);
        assert!(!self.msg().is_empty(), "{what}: error without msg: {}", self.stdout);
        assert!(self.json["cniVersion"].is_string(), "{what}: error without cniVersion: {}", self.stdout);
    }
}

/// Runs `plugin` with the given CNI variables (None leaves one unset) and `stdin`.
pub fn call_raw(plugin: &str, vars: &[(&str, Option<&str>)], stdin: &[u8]) -> Outcome {
    let mut cmd = Command::new(plugin);
    cmd.env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    for (k, v) in vars {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn plugin");
    child.stdin.take().expect("stdin").write_all(stdin).expect("write config");
    let out = child.wait_with_output().expect("wait for plugin");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let json = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    if !out.status.success() {
        assert!(json.is_object(), "plugin failed without error JSON on stdout: {stdout:?} stderr {:?}", String::from_utf8_lossy(&out.stderr));
    }
    Outcome { ok: out.status.success(), stdout, json }
}

/// Runs `plugin` with command `cmd` for container `id` in netns path `netns`, interface eth0.
pub fn call(plugin: &str, cmd: &str, id: &str, netns: &str, conf: &Value) -> Outcome {
    let path = cni_path();
    call_raw(
        plugin,
        &[
            ("CNI_COMMAND", Some(cmd)),
            ("CNI_CONTAINERID", Some(id)),
            ("CNI_NETNS", Some(netns)),
            ("CNI_IFNAME", Some("eth0")),
            ("CNI_PATH", Some(&path)),
        ],
        conf.to_string().as_bytes(),
    )
}

/// Runs a command that must succeed; returns stdout.
#[track_caller]
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().expect("run command");
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// True if `args` exits 0 (output discarded).
pub fn succeeds(args: &[&str]) -> bool {
    Command::new(args[0]).args(&args[1..]).stdout(Stdio::null()).stderr(Stdio::null()).status().map(|s| s.success()).unwrap_or(false)
}

/// One test network: unique bridge, network name, subnet, netns names and state directories. Drop removes the
/// netns it made (and so their veths), the bridge, the nft table and the directories.
pub struct TestNet {
    pub name: String,
    pub bridge: String,
    pub octet: u32,
    pub dir: tempfile::TempDir,
    netns: Mutex<Vec<String>>,
}

impl TestNet {
    pub fn new() -> TestNet {
        require_root();
        require_command("ip", "iproute2");
        require_command("nft", "nftables");
        forward_hold();
        TestNet {
            name: unique_name("rkn"),
            bridge: unique_name("rkb"),
            octet: unique_subnet_octet(),
            dir: tempfile::tempdir().expect("tempdir"),
            netns: Mutex::new(Vec::new()),
        }
    }

    pub fn subnet(&self) -> String {
        format!("10.125.{}.0/24", self.octet)
    }

    pub fn addr(&self, host: u32) -> String {
        format!("10.125.{}.{host}", self.octet)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("ipam")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn nft_table(&self) -> String {
        rkube_cni::nft::table_name(&self.name)
    }

    /// A bridge config delegating to `ipam_type` with one range; `extra` fields are merged in.
    pub fn conf(&self, plugin_type: &str, ipam_type: &str, extra: Value) -> Value {
        let mut c = json!({
            "cniVersion": "1.0.0",
            "name": self.name,
            "type": plugin_type,
            "bridge": self.bridge,
            "isGateway": true,
            "stateDir": self.state_dir(),
            "ipam": {
                "type": ipam_type,
                "ranges": [[{"subnet": self.subnet()}]],
                "dataDir": self.data_dir(),
            },
        });
        if let Some(o) = extra.as_object() {
            for (k, v) in o {
                if k == "ipam" {
                    for (ik, iv) in v.as_object().expect("ipam object") {
                        c["ipam"][ik] = iv.clone();
                    }
                } else {
                    c[k] = v.clone();
                }
            }
        }
        c
    }

    /// Makes a netns owned by this network; returns (name, path).
    pub fn netns(&self) -> (String, String) {
        let name = unique_name("rkns");
        sh(&["ip", "netns", "add", &name]);
        self.netns.lock().unwrap_or_else(|e| e.into_inner()).push(name.clone());
        let path = format!("/var/run/netns/{name}");
        (name, path)
    }

    /// Lease files in the network's data dir.
    pub fn leases(&self) -> Vec<String> {
        let dir = self.data_dir().join(&self.name);
        let Ok(rd) = std::fs::read_dir(dir) else { return Vec::new() };
        rd.flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
            .collect()
    }

    /// Ports of the bridge (host veths).
    pub fn ports(&self) -> Vec<String> {
        let Ok(rd) = std::fs::read_dir(format!("/sys/class/net/{}/brif", self.bridge)) else { return Vec::new() };
        rd.flatten().map(|e| e.file_name().to_string_lossy().to_string()).collect()
    }

    pub fn nft_table_exists(&self) -> bool {
        succeeds(&["nft", "list", "table", "inet", &self.nft_table()])
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        for ns in self.netns.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            let _ = Command::new("ip").args(["netns", "del", &ns]).stderr(Stdio::null()).status();
        }
        let _ = Command::new("ip").args(["link", "del", &self.bridge]).stderr(Stdio::null()).status();
        let _ = Command::new("nft").args(["delete", "table", "inet", &self.nft_table()]).stderr(Stdio::null()).status();
        forward_release();
    }
}

/// The IPv4 addresses on `ifname` inside netns `ns`.
pub fn addrs_in(ns: &str, ifname: &str) -> Vec<String> {
    let out = Command::new("ip").args(["-n", ns, "-j", "addr", "show", "dev", ifname]).output().expect("ip addr");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let mut ips = Vec::new();
    for link in v.as_array().into_iter().flatten() {
        for a in link["addr_info"].as_array().into_iter().flatten() {
            if a["scope"] == "global" {
                ips.push(format!("{}/{}", a["local"].as_str().unwrap_or(""), a["prefixlen"]));
            }
        }
    }
    ips
}

/// One ping from the host, or from inside `from_ns`, with a short timeout.
pub fn ping(from_ns: Option<&str>, addr: &str) -> bool {
    let mut args: Vec<&str> = Vec::new();
    if let Some(ns) = from_ns {
        args.extend(["ip", "netns", "exec", ns]);
    }
    args.extend(["ping", "-c1", "-W2", addr]);
    succeeds(&args)
}

/// The container address (without prefix) in an ADD result.
pub fn result_ip(res: &Value) -> String {
    let a = res["ips"][0]["address"].as_str().expect("result has an address");
    a.split('/').next().unwrap_or(a).to_string()
}
