//! One worker is a real VM (issue 15): a TCG qemu guest (Debian's cloud kernel, pure cgroup v2: the harness of
//! kubelet_cgroup_v2_vm.rs, tests/support/src/vm.rs) joins a cluster running on this machine through `rkube join
//! --server URL --token T --discovery-token-ca-cert-hash sha256:...`, started by vagrant/rkube-node.sh, the same
//! script every Vagrant node's kubelet unit runs.
//!
//! The host side is `rkube cluster up --nodes 1` (control plane on the host link of the cluster's LAN, one node in
//! its own network namespace). The guest's NIC is a tap device of the test's own, a port of the cluster's LAN
//! bridge (in the LAN's namespace: nothing touches the host's uplink), and the guest gives it a static address on
//! the LAN. The join command comes from `rkube token create --print-join-command` and is the only cluster secret
//! the guest holds: no admin credential goes into the VM. Checked: the VM's CSR filed by `system:bootstrap:<id>`
//! and Approved,Issued; the VM's kubelet.conf holding a `system:node:<name>` certificate of the cluster CA; the VM
//! Node Ready; a pod scheduled onto the VM node Running; a pod on the host's node reaching it by pod IP (host-gw
//! routes over the LAN, both ways, the receiver seeing the sender's pod IP: no NAT); `kubectl exec` and `kubectl
//! logs` into the VM's pod (apiserver to the VM's kubelet over the tap).
//!
//! It takes 21-41 s here, with other builds running (the guest boots to its NIC in 8-14 s of TCG, joins and is
//! Ready 3-5 s later), so it runs in CI; the phases are printed as MEASURE lines. Needs root, qemu and the kernel
//! (scripts/vm-deps.sh), bash, iproute2, nftables, nsenter, kubectl, openssl, and the binaries: `cargo build
//! --release -p rkube -p rkube-kubelet -p rkube-runtime -p rkube-cni --bins`.

mod up_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rkube_testsupport::vm::{RunningVm, Vm, VmTap};
use rkube_testsupport::{busybox_oci_layout, require_command, require_root, unique_name};
use up_support::{bin, import_busybox, kubectl_ok_with, kubectl_try_with, kubectl_with};

/// Runs in the guest as /test.sh. Results are `RKUBE-VM <what> ...` lines on the console. It brings up the NIC,
/// imports busybox, starts the node agent through rkube-node.sh, reports when the node has its certificate and
/// when the node agent's host-gw route appears, and stays up until the test stops qemu.
const SCRIPT: &str = r#"
export PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
say() { echo "RKUBE-VM $*"; }
t() { cut -d' ' -f1 /proc/uptime; }
fail() { say "FAIL $*"; echo "--- node log"; tail -n 80 /tmp/node.log; exit 1; }
say "booted t=$(t)"
depmod || fail depmod
for m in virtio_pci virtio_net overlay bridge veth br_netfilter nf_conntrack nf_nat nf_tables nft_chain_nat nft_nat nft_masq nft_ct nft_fib_ipv4 nft_reject_ipv4 nft_reject_inet nft_numgen; do
  modprobe $m || fail "modprobe $m"
done
# iproute2 by its path: this busybox runs its own applets (ip included) before looking at PATH
IP=/usr/local/bin/ip
$IP link set lo up
n=0
until [ -e /sys/class/net/eth0 ]; do sleep 0.2; n=$((n+1)); [ $n -gt 100 ] && fail "no eth0 (virtio_net)"; done
$IP addr add @VM_CIDR@ dev eth0 && $IP link set eth0 up || fail "eth0 address"
mkdir -p /var/lib/rkube
rkube image import --root /var/lib/rkube/images --name docker.io/library/busybox:latest /busybox-oci >/tmp/import.log 2>&1 || { cat /tmp/import.log; fail import; }
say "net-up t=$(t) addr=$($IP -4 -br addr show dev eth0 | tr -s ' ' | cut -d' ' -f3)"
RKUBE=/usr/local/bin/rkube RKUBE_LOG=info,kube=warn bash /usr/local/bin/rkube-node /etc/rkube/join-command @NODE@ @VM_IP@ \
  --dns-upstream none --eviction-hard 'memory.available<50Mi,nodefs.available<1%' >/tmp/node.log 2>&1 &
PID=$!
n=0
until [ -s /var/lib/rkube/kubelet.conf ]; do
  kill -0 $PID 2>/dev/null || fail "the node agent exited before it had its certificate"
  sleep 0.5; n=$((n+1)); [ $n -gt 1200 ] && fail "no kubelet.conf after 600 s"
done
say "joined t=$(t)"
say "kubelet-cert $(sed -n 's/^ *client-certificate-data: *//p' /var/lib/rkube/kubelet.conf | tr -d '"')"
say "files $(find /var/lib/rkube /etc/rkube -maxdepth 1 -type f | sort | tr '\n' ,)"
routed=
while kill -0 $PID 2>/dev/null; do
  if [ -z "$routed" ] && $IP route | grep -q 'proto 82'; then
    say "routes t=$(t) $($IP route | tr '\n' ';')"
    routed=1
  fi
  sleep 1
done
fail "the node agent exited"
"#;

/// The cluster, the tap and the VM of one test; all removed on drop, the VM first.
struct VmCluster {
    name: String,
    data: PathBuf,
    tmp: tempfile::TempDir,
    subnet: [u8; 3],
    tap: String,
    vm: Option<RunningVm>,
}

fn rkube(args: &[&str]) -> std::process::Output {
    Command::new(bin("rkube")).args(args).env("RKUBE_LOG", "info,kube=warn").stdin(Stdio::null()).output().expect("run rkube")
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl VmCluster {
    fn which(&self) -> Vec<String> {
        vec!["--name".into(), self.name.clone(), "--data-dir".into(), self.data.display().to_string()]
    }

    fn lan_netns(&self) -> String {
        format!("rkc-{}-lan", self.name)
    }

    fn addr(&self, host: u8) -> String {
        let [a, b, c] = self.subnet;
        format!("{a}.{b}.{c}.{host}")
    }

    fn kubeconfig(&self) -> PathBuf {
        self.data.join("server/kubeconfig")
    }

    fn kubectl(&self, args: &[&str]) -> String {
        kubectl_with(&self.kubeconfig(), args)
    }

    fn kubectl_try(&self, args: &[&str]) -> Option<String> {
        kubectl_try_with(&self.kubeconfig(), args)
    }

    fn vm(&mut self) -> &mut RunningVm {
        self.vm.as_mut().expect("the VM runs")
    }

    /// Polls `f` until it gives a value, failing at once with the guest's console if the guest gave up.
    fn wait_for<T>(&mut self, what: &str, timeout: Duration, mut f: impl FnMut(&VmCluster) -> Option<T>) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = f(self) {
                return v;
            }
            let vm = self.vm();
            if vm.said("FAIL").is_some() || !vm.is_running() {
                panic!("waiting for {what}: the guest stopped or failed:\n{}", vm.console());
            }
            assert!(Instant::now() < deadline, "{what}: not within {timeout:?}; the guest's console:\n{}", vm.console());
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for VmCluster {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        if let Some(mut vm) = self.vm.take() {
            let console = vm.stop();
            if panicking {
                eprintln!("--- the guest's console (last 80 lines)");
                let lines: Vec<&str> = console.lines().collect();
                eprintln!("{}", lines[lines.len().saturating_sub(80)..].join("\n"));
            }
        }
        if panicking {
            if let Ok(rd) = std::fs::read_dir(&self.data) {
                for f in rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "log")) {
                    if let Some(tail) = rkube_testsupport::log_tail(&f, 25) {
                        eprintln!("{tail}");
                    }
                }
            }
        }
        // the tap goes with the LAN's namespace too; removed first so nothing of it outlives qemu
        let _ = Command::new("ip").args(["-n", &self.lan_netns(), "link", "del", &self.tap]).stderr(Stdio::null()).status();
        let mut a = vec!["cluster".to_string(), "down".to_string()];
        a.extend(self.which());
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let out = rkube(&a);
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        eprintln!("rkube cluster down:\n{text}");
        if panicking {
            return;
        }
        assert!(out.status.success(), "cluster down failed: {text}");
        let netns = String::from_utf8_lossy(&Command::new("ip").args(["netns", "list"]).output().expect("ip").stdout).into_owned();
        assert!(!netns.contains(&format!("rkc-{}-", self.name)), "network namespaces left: {netns}");
        assert!(!self.data.exists(), "data dir {} left", self.data.display());
    }
}

/// `openssl x509` of a base64 PEM: subject, issuer, and whether it verifies against `ca` (a PEM file).
fn x509(cert_b64: &str, ca: &Path, dir: &Path) -> (String, String, bool) {
    use base64::Engine;
    let pem = base64::engine::general_purpose::STANDARD.decode(cert_b64.trim()).expect("base64 certificate");
    let file = dir.join("vm-kubelet.crt");
    std::fs::write(&file, pem).expect("write certificate");
    let out = Command::new("openssl").args(["x509", "-noout", "-subject", "-issuer", "-nameopt", "RFC2253", "-in"]).arg(&file).output().expect("openssl x509");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |k: &str| text.lines().find_map(|l| l.strip_prefix(k)).unwrap_or_default().trim().to_string();
    let verified = Command::new("openssl").args(["verify", "-CAfile"]).arg(ca).arg(&file).output().expect("openssl verify").status.success();
    (field("subject="), field("issuer="), verified)
}

/// A pod that answers every TCP connection on 8080 with its own `netstat -tn` (the caller's address included),
/// on the node named.
fn server_pod(name: &str, node: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 1\n  nodeSelector: {{kubernetes.io/hostname: {node}}}\n  containers:\n  - name: c\n    image: busybox:latest\n    imagePullPolicy: Never\n    command: [\"sh\", \"-c\", \"echo serving on `hostname`; while true; do nc -l -p 8080 -e netstat -tn; done\"]\n"
    )
}

#[test]
fn a_qemu_vm_joins_with_a_token_and_serves_a_pod_the_host_reaches() {
    require_root();
    let nft = require_command("nft", "nftables");
    let ipcmd = require_command("ip", "iproute2");
    let bash = require_command("bash", "bash");
    require_command("kubectl", "kubectl");
    require_command("openssl", "openssl");
    require_command("nsenter", "util-linux");
    let version = rkube_testsupport::vm::kernel_version();

    let tmp = tempfile::tempdir().expect("tempdir");
    let name = unique_name("vj");
    let mut c = VmCluster {
        data: tmp.path().join(&name),
        tmp,
        // a LAN of this test's own, apart from cluster.rs's 172.28.100-199.x
        subnet: [172, 27, (std::process::id() % 200) as u8 + 20],
        tap: unique_name("rkvt"),
        vm: None,
        name,
    };
    let [a, b, s] = c.subnet;
    let subnet = format!("{a}.{b}.{s}.0/24");
    let host_node = format!("{}-n1", c.name);
    let vm_node = unique_name("vmw");
    let vm_ip = c.addr(50);

    // 1. the cluster on this machine: control plane and one node
    let t0 = Instant::now();
    let mut up: Vec<String> = vec!["cluster".into(), "up".into(), "--nodes".into(), "1".into(), "--subnet".into(), subnet.clone(), "--timeout".into(), "120".into()];
    up.push("--kubelet-arg=--eviction-hard=memory.available<1Mi,nodefs.available<1%".into());
    up.extend(c.which());
    let up: Vec<&str> = up.iter().map(String::as_str).collect();
    let out = rkube(&up);
    assert!(out.status.success(), "rkube cluster up: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("MEASURE rkube cluster up --nodes 1: {:.1} s", t0.elapsed().as_secs_f64());
    import_busybox(&c.data.join(&host_node));

    // 2. the VM's NIC: a tap of ours, a port of the LAN bridge (in the LAN's namespace)
    let lan = c.lan_netns();
    ip(&["-n", &lan, "tuntap", "add", "dev", &c.tap, "mode", "tap"]);
    ip(&["-n", &lan, "link", "set", &c.tap, "master", "lan", "up"]);

    // 3. a bootstrap token and the CA's pin: the only thing of the cluster the VM gets
    let kc = c.kubeconfig();
    let out = rkube(&["token", "create", "--kubeconfig", &kc.display().to_string(), "--print-join-command", "--description", "qemu worker"]);
    assert!(out.status.success(), "rkube token create: {}", String::from_utf8_lossy(&out.stderr));
    let join_command = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let words: Vec<&str> = join_command.split_whitespace().collect();
    let after = |flag: &str| words.iter().position(|w| *w == flag).map(|i| words[i + 1].to_string()).unwrap_or_else(|| panic!("{flag} in {join_command:?}"));
    assert_eq!(after("--server"), format!("https://{}:6443", c.addr(1)), "the join command names the API on the LAN");
    let token_id = after("--token").split('.').next().expect("token id").to_string();

    // 4. the guest: the node's binaries, the tools the kubelet runs, the kernel's modules, busybox, the join
    // command, and vagrant/rkube-node.sh
    let work = c.tmp.path().join("vm");
    std::fs::create_dir_all(&work).expect("vm work dir");
    let layout = busybox_oci_layout(&work.join("oci"), "latest", &["sh"]);
    let mut vm = Vm::new();
    vm.memory_mb(2048);
    for bin_name in ["rkube", "rkube-runtime", "rkube-monitor", "rkube-bridge", "rkube-host-local"] {
        vm.binary(&bin(bin_name), &format!("/usr/local/bin/{bin_name}"));
    }
    vm.binary(&nft, "/usr/sbin/nft").binary(&ipcmd, "/usr/local/bin/ip").binary(&bash, "/usr/bin/bash");
    vm.kernel_modules(
        &version,
        &["kernel/drivers/virtio", "kernel/net/bridge", "kernel/net/802", "kernel/net/llc", "kernel/net/netfilter", "kernel/net/ipv4/netfilter", "kernel/net/ipv6/netfilter", "kernel/fs/overlayfs"],
        &["kernel/drivers/net/virtio_net.ko", "kernel/drivers/net/net_failover.ko", "kernel/net/core/failover.ko", "kernel/drivers/net/veth.ko", "kernel/lib/libcrc32c.ko", "modules.order", "modules.builtin"],
    );
    vm.tree(&layout.dir, "/busybox-oci");
    let roots = std::fs::read("/etc/ssl/certs/ca-certificates.crt").expect("the host's CA bundle (ca-certificates)");
    vm.file("/etc/ssl/certs/ca-certificates.crt", roots, 0o644);
    vm.file("/etc/rkube/join-command", format!("{join_command}\n"), 0o600);
    let node_script = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../vagrant/rkube-node.sh")).expect("vagrant/rkube-node.sh");
    vm.file("/usr/local/bin/rkube-node", node_script, 0o755);
    let script = SCRIPT.replace("@VM_CIDR@", &format!("{vm_ip}/24")).replace("@VM_IP@", &vm_ip).replace("@NODE@", &vm_node);
    let tap = VmTap { ifname: c.tap.clone(), netns: Some(lan.clone()), mac: "52:54:00:27:00:50".into() };
    let boot = Instant::now();
    c.vm = Some(vm.start(&script, Some(&tap)));
    eprintln!("qemu pid {} on tap {} in {lan}", c.vm().pid(), c.tap);

    // 5. the join: the CSR, the certificate, the Node Ready
    let net_up = c.wait_for("the guest's NIC up", Duration::from_secs(300), |c| c.vm.as_ref().and_then(|v| v.said("net-up")));
    eprintln!("MEASURE VM boot to its NIC up and busybox imported: {:.1} s (guest: {net_up})", boot.elapsed().as_secs_f64());
    let joined = c.wait_for("the VM's kubelet.conf", Duration::from_secs(300), |c| c.vm.as_ref().and_then(|v| v.said("joined")));
    eprintln!("MEASURE VM boot to its certificate (rkube join's TLS bootstrap): {:.1} s (guest: {joined})", boot.elapsed().as_secs_f64());
    let ready_after = c.wait_for("the VM's Node Ready", Duration::from_secs(300), |c| {
        let s = c.kubectl_try(&["get", "node", &vm_node, "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"])?;
        (s.trim() == "True").then(|| boot.elapsed())
    });
    eprintln!("MEASURE VM boot to its Node Ready: {:.1} s", ready_after.as_secs_f64());
    eprintln!("{}", c.kubectl(&["get", "nodes", "-o", "wide"]));

    let csrs = c.kubectl(&["get", "csr"]);
    eprintln!("{csrs}");
    let row = csrs.lines().find(|l| l.contains(&format!("system:bootstrap:{token_id}"))).unwrap_or_else(|| panic!("no CSR filed with the VM's token {token_id}:\n{csrs}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[2..], ["kubernetes.io/kube-apiserver-client-kubelet", &format!("system:bootstrap:{token_id}"), "<none>", "Approved,Issued"], "{csrs}");

    // the VM's own certificate: system:node:<name> in system:nodes, from the cluster CA; the guest holds no
    // other credential than the join command it was given and what the join wrote
    let cert = c.vm().said("kubelet-cert").expect("the guest printed its kubelet.conf certificate");
    let ca_b64 = c.kubectl(&["config", "view", "--raw", "-o", "jsonpath={.clusters[0].cluster.certificate-authority-data}"]);
    let ca = c.tmp.path().join("ca.crt");
    {
        use base64::Engine;
        std::fs::write(&ca, base64::engine::general_purpose::STANDARD.decode(ca_b64.trim()).expect("CA base64")).expect("write CA");
    }
    let (subject, issuer, verified) = x509(&cert, &ca, c.tmp.path());
    eprintln!("the VM's kubelet certificate: subject {subject}, issuer {issuer}");
    assert_eq!(subject, format!("CN=system:node:{vm_node},O=system:nodes"), "the VM runs with its own node certificate");
    assert!(verified, "the VM's certificate is signed by the cluster CA (issuer {issuer})");
    let files = c.vm().said("files").unwrap_or_default();
    assert!(!files.split(',').any(|f| f.ends_with("/kubeconfig") || f.contains("admin")), "no admin credential in the VM: {files}");

    // 6. a pod on the VM node, one on the host's node; each reaches the other by pod IP, no NAT
    kubectl_ok_with(&kc, &["apply", "-f", "-"], Some(&server_pod("on-vm", &vm_node)));
    kubectl_ok_with(&kc, &["apply", "-f", "-"], Some(&server_pod("on-host", &host_node)));
    let pod_ip = |c: &VmCluster, pod: &str| -> Option<String> {
        let s = c.kubectl_try(&["get", "pod", pod, "-o", "jsonpath={.spec.nodeName}/{.status.phase}/{.status.podIP}"])?;
        let w: Vec<&str> = s.trim().split('/').collect();
        (w.len() == 3 && w[1] == "Running" && !w[2].is_empty()).then(|| (w[0].to_string(), w[2].to_string())).map(|(n, ip)| format!("{n} {ip}"))
    };
    let vm_pod = c.wait_for("the pod on the VM node Running", Duration::from_secs(300), |c| pod_ip(c, "on-vm"));
    eprintln!("MEASURE VM boot to a pod Running on it: {:.1} s", boot.elapsed().as_secs_f64());
    let host_pod = c.wait_for("the pod on the host's node Running", Duration::from_secs(120), |c| pod_ip(c, "on-host"));
    let (vm_pod_node, vm_pod_ip) = vm_pod.split_once(' ').expect("node and IP");
    let (host_pod_node, host_pod_ip) = host_pod.split_once(' ').expect("node and IP");
    assert_eq!((vm_pod_node, host_pod_node), (vm_node.as_str(), host_node.as_str()));
    let vm_cidr = c.kubectl(&["get", "node", &vm_node, "-o", "jsonpath={.spec.podCIDR}"]);
    let host_cidr = c.kubectl(&["get", "node", &host_node, "-o", "jsonpath={.spec.podCIDR}"]);
    eprintln!("VM pod {vm_pod_ip} in {vm_cidr}, host pod {host_pod_ip} in {host_cidr}");

    // the routes: the host node's to the VM's podCIDR via the VM's address, and the VM's back
    let routes = String::from_utf8_lossy(&Command::new("ip").args(["-n", &format!("rkc-{host_node}"), "route"]).output().expect("ip").stdout).into_owned();
    eprintln!("routes in {host_node}:\n{routes}");
    assert!(routes.contains(&format!("{} via {vm_ip}", vm_cidr.trim())), "host-gw route to the VM's podCIDR via {vm_ip}: {routes}");
    let vm_routes = c.wait_for("the VM's host-gw route", Duration::from_secs(120), |c| c.vm.as_ref().and_then(|v| v.said("routes")));
    eprintln!("routes in the VM: {vm_routes}");
    assert!(vm_routes.contains(&format!("{} via {} dev eth0 proto 82", host_cidr.trim(), c.addr(11))), "the VM's route to {host_node}'s podCIDR: {vm_routes}");

    // host pod -> VM pod: the VM pod's netstat lists the host pod's IP as the peer
    let t_reach = Instant::now();
    let seen = c.wait_for("the host's pod reaching the VM's pod", Duration::from_secs(120), |c| {
        c.kubectl_try(&["exec", "on-host", "--", "sh", "-c", &format!("nc -w 5 {vm_pod_ip} 8080 </dev/null")]).filter(|s| s.contains(":8080"))
    });
    eprintln!("the VM's pod answered the host's pod ({:.1} s):\n{seen}", t_reach.elapsed().as_secs_f64());
    let line = seen.lines().find(|l| l.contains(&format!("{vm_pod_ip}:8080"))).unwrap_or_default().to_string();
    let peer = line.split_whitespace().nth(4).unwrap_or_default();
    assert!(peer.trim_start_matches("::ffff:").starts_with(&format!("{host_pod_ip}:")), "the VM's pod sees the host pod's IP {host_pod_ip}, not a node address: {seen}");

    // VM pod -> host pod, through `kubectl exec` into the VM (apiserver to the VM's kubelet)
    let seen = c.wait_for("the VM's pod reaching the host's pod", Duration::from_secs(120), |c| {
        c.kubectl_try(&["exec", "on-vm", "--", "sh", "-c", &format!("nc -w 5 {host_pod_ip} 8080 </dev/null")]).filter(|s| s.contains(":8080"))
    });
    let line = seen.lines().find(|l| l.contains(&format!("{host_pod_ip}:8080"))).unwrap_or_default().to_string();
    let peer = line.split_whitespace().nth(4).unwrap_or_default();
    assert!(peer.trim_start_matches("::ffff:").starts_with(&format!("{vm_pod_ip}:")), "the host's pod sees the VM pod's IP {vm_pod_ip}: {seen}");
    let logs = c.kubectl(&["logs", "on-vm"]);
    assert!(logs.contains("serving on on-vm"), "kubectl logs from the VM's kubelet: {logs}");
    eprintln!("MEASURE VM boot to both directions checked: {:.1} s", boot.elapsed().as_secs_f64());
}
