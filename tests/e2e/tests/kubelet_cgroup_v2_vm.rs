//! The kubelet on cgroup v2, for real: the whole node (`rkube up`: apiserver, controllers, kubelet, bridge
//! network, service proxy) runs inside the TCG qemu VM of the runtime's v2 test (tests/support/src/vm.rs, Debian's
//! cloud kernel on a pure cgroup2 hierarchy), driven by the real kubectl inside the guest. The host itself is
//! cgroup v1 (hybrid), which is why a VM is needed. One boot checks:
//!
//! - the QoS tree: `kubepods/` holding Guaranteed pods, `kubepods/burstable/`, `kubepods/besteffort/`, each pod a
//!   `pod<uid>` cgroup with its sandbox and one leaf per container, the container's process in its leaf;
//! - the container limits as v2 files: `memory.max`, `cpu.max` (CFS quota over period), `cpu.weight` (from the
//!   CPU request's shares), `pids.max` (no PID limit unless asked: `max`, upstream's default). The pod-level
//!   cgroup gets no limits of its own (upstream sets the sum of the containers' there): printed, not asserted;
//! - a container over its memory limit reported `OOMKilled` (read from v2's `memory.events`);
//! - node-pressure eviction on v2 signals: after a restart of `rkube up` (the running pods are adopted, not
//!   restarted) with a memory threshold just under what the guest has free, a BestEffort pod filling a memory
//!   emptyDir is evicted, ranked by its v2 working set (`memory.current` less `inactive_file`), and the
//!   Guaranteed pod stays;
//! - `rkube down` leaves no cgroup under kubepods.
//!
//! The guest has no network device: the node address is on a veth pair inside the guest. Kernel modules (bridge,
//! veth, overlay, nftables) come from the kernel package that scripts/vm-deps.sh unpacked. Needs root, qemu and
//! the kernel (scripts/vm-deps.sh), and the binaries: `cargo build --release -p rkube -p rkube-kubelet -p
//! rkube-runtime -p rkube-cni --bins`.

mod up_support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rkube_testsupport::{busybox_oci_layout, require_command, require_root, vm::Vm};
use up_support::bin;

const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: guaranteed
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", "cat /proc/self/cgroup; exec sleep 3600"]
    resources:
      requests: {cpu: 250m, memory: 64Mi}
      limits: {cpu: 250m, memory: 64Mi}
---
apiVersion: v1
kind: Pod
metadata:
  name: burstable
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", "exec sleep 3600"]
    resources:
      requests: {cpu: 100m, memory: 32Mi}
      limits: {memory: 128Mi}
---
apiVersion: v1
kind: Pod
metadata:
  name: besteffort
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", "exec sleep 3600"]
---
apiVersion: v1
kind: Pod
metadata:
  name: oom
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", "head -c 100000000 /dev/zero | tail > /dev/null"]
    resources:
      limits: {memory: 16Mi}
"#;

const HOG: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: hog
spec:
  terminationGracePeriodSeconds: 1
  volumes:
  - name: ram
    emptyDir: {medium: Memory}
  containers:
  - name: c
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", "dd if=/dev/zero of=/ram/fill bs=1M count=300 && echo filled && exec sleep 3600"]
    volumeMounts: [{name: ram, mountPath: /ram}]
"#;

/// Runs in the guest as /test.sh: every result is a `RKUBE-VM <what> key=value ...` line.
const SCRIPT: &str = r#"
export PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
say() { echo "RKUBE-VM $*"; }
t() { cut -d' ' -f1 /proc/uptime; }
fail() { say "FAIL $*"; echo "--- rkube log"; tail -n 60 /tmp/rkube.log; exit 1; }
K="kubectl --kubeconfig /var/lib/rkube/kubeconfig --request-timeout=60s"
say "start t=$(t)"
depmod || fail depmod
for m in overlay bridge veth br_netfilter nf_conntrack nf_nat nf_tables nft_chain_nat nft_nat nft_masq nft_ct nft_fib_ipv4 nft_reject_ipv4 nft_reject_inet nft_numgen; do
  modprobe $m || fail "modprobe $m"
done
# iproute2 by its path: this busybox runs its own applets (ip included) before looking at PATH
IP=/usr/local/bin/ip
$IP link set lo up
$IP link add rkv0 type veth peer name rkv1 && $IP addr add 10.88.0.1/24 dev rkv0 && $IP link set rkv0 up && $IP link set rkv1 up || fail "veth"
mkdir -p /var/lib/rkube
rkube image import --root /var/lib/rkube/images --name docker.io/library/busybox:latest /busybox-oci >/tmp/import.log 2>&1 || { cat /tmp/import.log; fail import; }
start_up() {
  RKUBE_LOG=info,kube=warn rkube up --data-dir /var/lib/rkube --listen 127.0.0.1:6443 --node-ip 10.88.0.1 --bridge rkbr0 \
    --pod-cidr 10.88.1.0/24 --cluster-dns 10.96.0.10 --dns-upstream none "$@" >>/tmp/rkube.log 2>&1 &
  PID=$!
  n=0
  until [ -f /var/lib/rkube/kubeconfig ] && $K get nodes 2>/dev/null | grep -q ' Ready'; do
    kill -0 $PID 2>/dev/null || fail "rkube up exited"
    sleep 1; n=$((n+1)); [ $n -gt 300 ] && fail "node not Ready"
  done
}
start_up
say "node-ready t=$(t)"
$K apply -f /pods.yaml >/dev/null || fail apply
$K wait --for=condition=Ready pod/guaranteed pod/burstable pod/besteffort --timeout=300s >/dev/null || fail "pods not Ready"
say "pods-ready t=$(t)"
say "kubepods children=$(cd /sys/fs/cgroup/kubepods && ls -d */ | tr -d / | tr '\n' ,) subtree=$(tr ' ' , < /sys/fs/cgroup/kubepods/cgroup.subtree_control)"
for p in guaranteed burstable besteffort; do
  uid=$($K get pod $p -o jsonpath='{.metadata.uid}')
  d=$(find /sys/fs/cgroup/kubepods -type d -name "pod$uid")
  [ -n "$d" ] || fail "no cgroup for pod $p ($uid)"
  c=""; sb=""
  for x in $d/*/; do x=${x%/}; case ${x##*/} in sb-*) sb=$x ;; *) c=$x ;; esac; done
  [ -n "$c" ] && [ -n "$sb" ] || fail "pod $p: no container or sandbox cgroup in $d"
  pid=$(head -n1 $c/cgroup.procs)
  [ $p = guaranteed ] && gpid=$pid
  say "pod $p uid=$uid dir=${d#/sys/fs/cgroup/} pod.memory.max=$(cat $d/memory.max) pod.cpu.max=$(tr ' ' _ < $d/cpu.max) ctr.memory.max=$(cat $c/memory.max) ctr.cpu.max=$(tr ' ' _ < $c/cpu.max) ctr.cpu.weight=$(cat $c/cpu.weight) ctr.pids.max=$(cat $c/pids.max) ctr.procs=$(wc -l < $c/cgroup.procs) sandbox.procs=$(wc -l < $sb/cgroup.procs) ctr.pid.cgroup=$(cut -d: -f3 /proc/$pid/cgroup) ctr.pid.cmd=$(tr '\0' _ < /proc/$pid/cmdline)"
done
say "guaranteed-log $($K logs guaranteed | tr '\n' ' ')"
n=0
until r=$($K get pod oom -o jsonpath='{.status.containerStatuses[0].state.terminated.reason}') && [ -n "$r" ]; do
  sleep 1; n=$((n+1)); [ $n -gt 120 ] && fail "oom pod never terminated"
done
say "oom reason=$r exit=$($K get pod oom -o jsonpath='{.status.containerStatuses[0].state.terminated.exitCode}') phase=$($K get pod oom -o jsonpath='{.status.phase}') t=$(t)"

# eviction: restart rkube up (pods adopted) with a threshold 150 MiB under what is free now
avail=$(awk '/MemAvailable/ {print int($2/1024)}' /proc/meminfo)
kill $PID; wait $PID
start_up --eviction-hard "memory.available<$((avail - 150))Mi" --eviction-pressure-transition-period 30s
say "restarted avail=${avail}Mi threshold=$((avail - 150))Mi t=$(t)"
$K apply -f /hog.yaml >/dev/null || fail "apply hog"
n=0; pressure=False
until [ "$($K get pod hog -o jsonpath='{.status.reason}')" = Evicted ]; do
  [ "$($K get node -o jsonpath='{.items[0].status.conditions[?(@.type=="MemoryPressure")].status}')" = True ] && pressure=True
  sleep 1; n=$((n+1)); [ $n -gt 240 ] && fail "hog never evicted (MemAvailable now $(awk '/MemAvailable/ {print int($2/1024)}' /proc/meminfo)Mi)"
done
# the node's condition is written on the same 10 s beat as the eviction, and may land just after the pod's status
n=0
until [ $pressure = True ] || [ $n -gt 20 ]; do
  [ "$($K get node -o jsonpath='{.items[0].status.conditions[?(@.type=="MemoryPressure")].status}')" = True ] && pressure=True
  sleep 1; n=$((n+1))
done
say "evicted phase=$($K get pod hog -o jsonpath='{.status.phase}') pressure-seen=$pressure t=$(t)"
say "eviction-message $($K get pod hog -o jsonpath='{.status.message}')"
say "after guaranteed=$($K get pod guaranteed -o jsonpath='{.status.phase}_{.status.containerStatuses[0].restartCount}') burstable=$($K get pod burstable -o jsonpath='{.status.phase}') besteffort=$($K get pod besteffort -o jsonpath='{.status.phase}') same-process=$([ -d /proc/$gpid ] && echo yes || echo no)"
kill $PID; wait $PID
rkube down --data-dir /var/lib/rkube >>/tmp/rkube.log 2>&1 || fail "rkube down"
say "down left=$(find /sys/fs/cgroup/kubepods -mindepth 1 -type d 2>/dev/null | wc -l) t=$(t)"
"#;

/// The `key=value` fields of the first `RKUBE-VM <what> ...` line.
fn fields(console: &str, what: &str) -> HashMap<String, String> {
    let prefix = format!("RKUBE-VM {what} ");
    let line = console
        .lines()
        .find_map(|l| l.find(&prefix).map(|i| &l[i + prefix.len()..]))
        .unwrap_or_else(|| panic!("no `{what}` line in the guest's output:\n{console}"));
    line.split_whitespace().filter_map(|w| w.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn rest_of(console: &str, what: &str) -> String {
    let prefix = format!("RKUBE-VM {what} ");
    console.lines().find_map(|l| l.find(&prefix).map(|i| l[i + prefix.len()..].trim().to_string())).unwrap_or_default()
}

#[test]
fn kubelet_runs_pods_on_cgroup_v2_in_a_qemu_vm() {
    require_root();
    let nft = require_command("nft", "nftables");
    let ip = require_command("ip", "iproute2");
    let kubectl = std::fs::canonicalize(require_command("kubectl", "kubectl")).expect("kubectl path");
    let version = rkube_testsupport::vm::kernel_version();
    let work = tempfile::tempdir().expect("tempdir");
    let layout = busybox_oci_layout(&work.path().join("oci"), "latest", &["sh"]);

    let mut vm = Vm::new();
    vm.memory_mb(2048);
    for b in ["rkube", "rkube-runtime", "rkube-monitor", "rkube-bridge", "rkube-host-local"] {
        vm.binary(&bin(b), &format!("/usr/local/bin/{b}"));
    }
    vm.binary(&kubectl, "/usr/local/bin/kubectl").binary(&nft, "/usr/sbin/nft").binary(&ip, "/usr/local/bin/ip");
    vm.kernel_modules(
        &version,
        &["kernel/net/bridge", "kernel/net/802", "kernel/net/llc", "kernel/net/netfilter", "kernel/net/ipv4/netfilter", "kernel/net/ipv6/netfilter", "kernel/fs/overlayfs"],
        &["kernel/drivers/net/veth.ko", "kernel/lib/libcrc32c.ko", "modules.order", "modules.builtin"],
    );
    vm.tree(&layout.dir, "/busybox-oci");
    // rkube's API client loads the system's CA roots even for a plain HTTP apiserver, and fails without any
    let roots = std::fs::read("/etc/ssl/certs/ca-certificates.crt").expect("the host's CA bundle (ca-certificates)");
    vm.file("/etc/ssl/certs/ca-certificates.crt", roots, 0o644);
    vm.file("/pods.yaml", PODS, 0o644).file("/hog.yaml", HOG, 0o644);
    let started = Instant::now();
    let run = vm.run(SCRIPT, Duration::from_secs(900));
    let console = &run.console;
    eprintln!("VM run took {:?}; what the guest reported:", started.elapsed());
    for l in console.lines().filter_map(|l| l.find("RKUBE-VM ").map(|i| &l[i..])) {
        eprintln!("  {l}");
    }
    assert_eq!(run.exit_code, Some(0), "the guest script failed:\n{console}");

    // the QoS tree, and each container's process in its own leaf under its pod
    let tree = fields(console, "kubepods");
    let children: Vec<&str> = tree["children"].split(',').filter(|s| !s.is_empty()).collect();
    assert!(children.contains(&"burstable") && children.contains(&"besteffort"), "kubepods/: {children:?}");
    for c in ["cpu", "memory", "pids"] {
        assert!(tree["subtree"].split(',').any(|s| s == c), "kubepods delegates {c} to its children: {}", tree["subtree"]);
    }
    let pod = |name: &str| fields(console, &format!("pod {name}"));
    let (g, b, be) = (pod("guaranteed"), pod("burstable"), pod("besteffort"));
    assert_eq!(g["dir"], format!("kubepods/pod{}", g["uid"]), "Guaranteed pods sit directly under kubepods");
    assert_eq!(b["dir"], format!("kubepods/burstable/pod{}", b["uid"]));
    assert_eq!(be["dir"], format!("kubepods/besteffort/pod{}", be["uid"]));
    assert!(children.contains(&format!("pod{}", g["uid"]).as_str()), "the Guaranteed pod is a child of kubepods: {children:?}");
    for (name, p) in [("guaranteed", &g), ("burstable", &b), ("besteffort", &be)] {
        assert_eq!((p["ctr.procs"].as_str(), p["sandbox.procs"].as_str()), ("1", "1"), "{name}: one process in the container leaf, the pause in the sandbox's: {p:?}");
        assert!(p["ctr.pid.cgroup"].starts_with(&format!("/{}/", p["dir"])), "{name}: its process is in the pod's cgroup: {p:?}");
        assert!(p["ctr.pid.cmd"].starts_with("sleep_3600"), "{name}: the container's own process: {p:?}");
        assert_eq!(p["ctr.pids.max"], "max", "{name}: no PID limit unless asked (upstream's default --pod-max-pids -1)");
    }
    // limits: Guaranteed 250m / 64Mi; Burstable 100m request, 128Mi limit; BestEffort none
    assert_eq!((g["ctr.memory.max"].as_str(), g["ctr.cpu.max"].as_str()), ("67108864", "25000_100000"), "{g:?}");
    assert_eq!(g["ctr.cpu.weight"], "10", "250m: 256 shares, weight 1 + (256-2)*9999/262142");
    assert_eq!((b["ctr.memory.max"].as_str(), b["ctr.cpu.max"].as_str()), ("134217728", "max_100000"), "{b:?}");
    assert_eq!(b["ctr.cpu.weight"], "4", "100m: 102 shares");
    assert_eq!((be["ctr.memory.max"].as_str(), be["ctr.cpu.max"].as_str(), be["ctr.cpu.weight"].as_str()), ("max", "max_100000", "1"), "{be:?}");
    // a v2 membership line; the full path, as no cgroup namespace is asked for (containerd on v2 would show 0::/)
    let log = rest_of(console, "guaranteed-log");
    assert_eq!(log, format!("0::{}", g["ctr.pid.cgroup"]), "the container's own view of its cgroup");

    // OOMKilled from memory.events
    let oom = fields(console, "oom");
    assert_eq!((oom["reason"].as_str(), oom["exit"].as_str(), oom["phase"].as_str()), ("OOMKilled", "137", "Failed"), "{oom:?}");

    // eviction on v2 signals: the hog goes, ranked by its v2 working set; the others stay, not restarted
    let ev = fields(console, "evicted");
    assert_eq!((ev["phase"].as_str(), ev["pressure-seen"].as_str()), ("Failed", "True"), "{ev:?}");
    let msg = rest_of(console, "eviction-message");
    assert!(msg.starts_with("The node was low on resource: memory."), "{msg}");
    // "... Container c was using 308276Ki, request is 0, ..." (a quantity: Ki, Mi or Gi)
    let used = msg.split("was using ").nth(1).and_then(|r| r.split(',').next()).unwrap_or_default();
    let (digits, unit) = used.split_at(used.find(|c: char| !c.is_ascii_digit()).unwrap_or(used.len()));
    let mib = digits.parse::<u64>().ok().and_then(|n| match unit {
        "Ki" => Some(n >> 10),
        "Mi" => Some(n),
        "Gi" => Some(n << 10),
        "" => Some(n >> 20),
        _ => None,
    });
    let mib = mib.unwrap_or_else(|| panic!("the pod's use in the message: {msg}"));
    assert!(mib >= 250, "the hog's working set read from v2 memory.current: {used} ({msg})");
    let after = fields(console, "after");
    assert_eq!(after["guaranteed"], "Running_0", "adopted across the restart, and not evicted");
    assert_eq!((after["burstable"].as_str(), after["besteffort"].as_str(), after["same-process"].as_str()), ("Running", "Running", "yes"), "{after:?}");
    assert_eq!(fields(console, "down")["left"], "0", "rkube down removes every pod cgroup");
}
