//! `rkube inspect pod` on `rkube up`, compared with the kernel's own view, as root: a pod with two containers, an
//! emptyDir, a hostPath, limits and a Service. Every fact of `rkube inspect pod -o json` is checked against what
//! the test reads itself: `/proc/<pid>/ns/*` links, `/proc/<pid>/cgroup` and cgroupfs files, `ip -j link` on the
//! host and in the pod's netns, `/proc/<pid>/mountinfo`, `nft -j list table`. The kubelet endpoint answers
//! `kubectl get --raw /api/v1/nodes/<node>/proxy/inspect/...` too. `rkube inspect service` and `rkube inspect node`
//! likewise: a NodePort Service's numgen slots, endpoint chains and map elements against `nft -j`; the node's
//! bridge, host-gw route (to a second Node's podCIDR), DNS link, proxy table counts, QoS cgroups and pods against
//! `ip -j`, `nft -j`, `/proc/<pid>/cgroup` and cgroupfs. Bad input: a missing pod, a pod not scheduled, a pod on
//! an unreachable node, a missing Service or node, no node named in a two-node cluster: exit 1, a message naming
//! what is wrong, nothing on stdout.
//!
//! Needs the binaries: `cargo build --release -p rkube -p rkube-kubelet -p rkube-runtime -p rkube-cni --bins`.

mod up_support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rkube_testsupport::{poll_until, unique_name};
use serde_json::Value;
use up_support::{bin, Up};

fn manifest(host_dir: &Path) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: insp
  labels: {{app: insp}}
spec:
  terminationGracePeriodSeconds: 1
  volumes:
  - {{name: scratch, emptyDir: {{}}}}
  - {{name: host, hostPath: {{path: "{host}", type: Directory}}}}
  containers:
  - name: app
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", "exec sleep 3600"]
    ports: [{{containerPort: 8080}}]
    resources:
      requests: {{cpu: 250m, memory: 32Mi}}
      limits: {{cpu: 500m, memory: 64Mi}}
    volumeMounts:
    - {{name: scratch, mountPath: /data}}
    - {{name: host, mountPath: /host, readOnly: true}}
  - name: side
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", "exec sleep 3600"]
    resources:
      limits: {{cpu: 200m, memory: 48Mi}}
    volumeMounts:
    - {{name: scratch, mountPath: /scratch}}
---
apiVersion: v1
kind: Service
metadata:
  name: insp
spec:
  selector: {{app: insp}}
  ports: [{{port: 80, targetPort: 8080}}]
"#,
        host = host_dir.display()
    )
}

/// `rkube inspect` with the cluster's kubeconfig: (exit code, stdout, stderr).
fn inspect(up: &Up, args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(bin("rkube"));
    cmd.arg("inspect").args(args).arg("--kubeconfig").arg(up.kubeconfig()).env("RKUBE_LOG", "warn");
    let out = rkube_testsupport::output_within(&mut cmd, None, Duration::from_secs(60), "rkube inspect");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn inspect_json(up: &Up, pod: &str) -> Value {
    let (code, out, err) = inspect(up, &["pod", pod, "-o", "json"]);
    assert_eq!(code, 0, "rkube inspect pod {pod}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("json: {e}: {out}"))
}

fn ns_inode(pid: i64, kind: &str) -> u64 {
    let link = std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).unwrap_or_else(|e| panic!("read /proc/{pid}/ns/{kind}: {e}"));
    let s = link.to_string_lossy();
    s.rsplit_once('[').and_then(|(_, r)| r.strip_suffix(']')).and_then(|n| n.parse().ok()).expect("inode")
}

fn ip_json(args: &[&str]) -> Value {
    let out = Command::new("ip").arg("-j").args(args).output().expect("ip");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("ip json")
}

fn read_trim(p: &str) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {p}: {e}")).trim().to_string()
}

/// The mountinfo line of `pid` at `mount_point` (the last one): its fields split at spaces.
fn mountinfo_at(pid: i64, mount_point: &str) -> Vec<String> {
    let mi = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).expect("mountinfo");
    let line = mi.lines().rev().find(|l| l.split(' ').nth(4) == Some(mount_point)).unwrap_or_else(|| panic!("no mount at {mount_point}:\n{mi}"));
    line.split(' ').map(str::to_string).collect()
}

#[test]
fn inspect_pod_matches_the_kernels_own_view() {
    let up = Up::start();
    let host_dir = tempfile::tempdir().expect("host dir");
    std::fs::write(host_dir.path().join("from-host"), "hi").expect("write");
    up.kubectl_ok(&["apply", "-f", "-"], Some(&manifest(host_dir.path())));
    up.kubectl(&["wait", "--for=condition=Ready", "pod/insp", "--timeout=120s"]);
    let node = up.kubectl(&["get", "pod", "insp", "-o", "jsonpath={.spec.nodeName}"]).trim().to_string();
    let pod_ip = up.kubectl(&["get", "pod", "insp", "-o", "jsonpath={.status.podIP}"]).trim().to_string();
    let cluster_ip = up.kubectl(&["get", "svc", "insp", "-o", "jsonpath={.spec.clusterIP}"]).trim().to_string();

    // the service proxy syncs on its own time: wait until the inspection shows the Service's endpoint
    let doc = poll_until("inspect shows the Service's rules", Duration::from_secs(60), || {
        let d = inspect_json(&up, "insp");
        (d["serviceRules"]["endpoints"].as_array().map(Vec::len) == Some(1)).then_some(d)
    });
    assert_eq!(doc["apiVersion"], "inspect.rkube.io/v1alpha1");
    assert_eq!(doc["kind"], "PodInspection");
    assert_eq!(doc["metadata"]["node"], node.as_str());
    assert_eq!(doc["qosClass"], "Burstable");

    // sandbox and namespaces, against /proc/<pid>/ns/*
    let sb_pid = doc["sandbox"]["pid"].as_i64().expect("sandbox pid");
    let cmd = std::fs::read(format!("/proc/{sb_pid}/cmdline")).expect("cmdline");
    let first = String::from_utf8_lossy(cmd.split(|b| *b == 0).next().unwrap_or_default()).into_owned();
    assert_eq!(doc["sandbox"]["command"][0], first.as_str());
    for ns in doc["sandbox"]["namespaces"].as_array().expect("sandbox namespaces") {
        assert_eq!(ns["inode"].as_u64(), Some(ns_inode(sb_pid, ns["type"].as_str().expect("type"))), "sandbox {ns}");
    }
    // "host" is the node's namespaces: the kubelet's own (rkube up runs it in its process), not PID 1's, which
    // an init may not let even root read (EACCES here)
    let node_pid = i64::from(up.child.as_ref().expect("rkube up runs").id());
    for ns in doc["sandbox"]["namespaces"].as_array().expect("sandbox namespaces") {
        let kind = ns["type"].as_str().expect("type");
        let want = if ns["inode"].as_u64() == Some(ns_inode(node_pid, kind)) { "host" } else { "pod" };
        assert_eq!(ns["shared"], want, "sandbox {kind}");
    }
    assert!(
        doc["sandbox"]["namespaces"].as_array().expect("ns").iter().any(|n| n["type"] == "user" && n["shared"] == "host"),
        "the sandbox keeps the node's user namespace: {}",
        doc["sandbox"]["namespaces"]
    );
    let containers = doc["containers"].as_array().expect("containers");
    assert_eq!(containers.iter().map(|c| c["name"].as_str().unwrap_or_default()).collect::<Vec<_>>(), vec!["app", "side"]);
    for c in containers {
        let name = c["name"].as_str().unwrap_or_default();
        let pid = c["pid"].as_i64().unwrap_or_else(|| panic!("{name}: pid"));
        let kinds: Vec<&str> = c["namespaces"].as_array().expect("namespaces").iter().filter_map(|n| n["type"].as_str()).collect();
        assert_eq!(kinds, vec!["net", "ipc", "uts", "pid", "mnt", "cgroup", "user"], "{name}");
        for ns in c["namespaces"].as_array().expect("namespaces") {
            let kind = ns["type"].as_str().expect("type");
            let inode = ns_inode(pid, kind);
            assert_eq!(ns["inode"].as_u64(), Some(inode), "{name} {kind}");
            let want = if inode == ns_inode(node_pid, kind) {
                "host"
            } else if inode == ns_inode(sb_pid, kind) {
                "pod"
            } else {
                "own"
            };
            assert_eq!(ns["shared"], want, "{name} {kind}");
        }
        for kind in ["net", "ipc", "uts"] {
            assert_eq!(ns_inode(pid, kind), ns_inode(sb_pid, kind), "{name} joins the sandbox's {kind}");
        }
        assert!(c["namespaces"].as_array().expect("ns").iter().any(|n| n["type"] == "mnt" && n["shared"] == "own"), "{name}: own mnt");

        // the cgroup is the process's (/proc/<pid>/cgroup), its limits and usage those cgroupfs holds
        let cg = &c["cgroup"];
        let proc_cgroup = read_trim(&format!("/proc/{pid}/cgroup"));
        let mem_line = proc_cgroup.lines().find(|l| l.split(':').nth(1) == Some("memory")).expect("memory line");
        let path = mem_line.split(':').nth(2).expect("memory cgroup");
        let reported = cg["path"].as_str().expect("cgroup path");
        assert_eq!(reported.trim_start_matches('/'), path.trim_start_matches('/'), "{name}: /proc/{pid}/cgroup {proc_cgroup}");
        assert_eq!(cg["dirs"]["memory"].as_str(), Some(format!("/sys/fs/cgroup/memory{path}").as_str()), "{name}");
        let limit: u64 = read_trim(&format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes")).parse().expect("limit");
        assert_eq!(cg["memory"]["limitBytes"].as_u64(), Some(limit), "{name}");
        assert_eq!(limit, if name == "app" { 64 << 20 } else { 48 << 20 });
        assert!(cg["memory"]["usageBytes"].as_u64().unwrap_or(0) > 0, "{name}: memory usage");
        let quota: i64 = read_trim(&format!("/sys/fs/cgroup/cpu{path}/cpu.cfs_quota_us")).parse().expect("quota");
        assert_eq!(cg["cpu"]["quotaMicros"].as_i64(), Some(quota), "{name}");
        assert_eq!(quota, if name == "app" { 50_000 } else { 20_000 });
        assert_eq!(cg["cpu"]["periodMicros"].as_u64(), Some(read_trim(&format!("/sys/fs/cgroup/cpu{path}/cpu.cfs_period_us")).parse().expect("period")));
        assert_eq!(cg["cpu"]["shares"].as_u64(), Some(read_trim(&format!("/sys/fs/cgroup/cpu{path}/cpu.shares")).parse().expect("shares")));
        let pids_max = read_trim(&format!("/sys/fs/cgroup/pids{path}/pids.max"));
        assert_eq!(cg["pids"]["limit"].as_u64(), pids_max.parse().ok(), "{name}: pids.max {pids_max}");
        assert!(cg["pids"]["current"].as_u64().unwrap_or(0) >= 1, "{name}: pids.current");

        // the rootfs: the overlay the container's mount table shows at /, its layers in the image store
        let root = mountinfo_at(pid, "/");
        let sep = root.iter().position(|f| f == "-").expect("separator");
        assert_eq!(root[sep + 1], "overlay");
        assert_eq!(c["rootfs"]["fsType"], "overlay");
        let upper = c["rootfs"]["upperDir"].as_str().expect("upper");
        assert!(root[sep + 3].contains(&format!("upperdir={upper}")), "{name}: {}", root[sep + 3]);
        let layers = c["rootfs"]["lowerLayers"].as_array().expect("layers");
        assert!(!layers.is_empty());
        for l in layers {
            let digest = l["digest"].as_str().expect("digest");
            let hex = digest.strip_prefix("sha256:").expect("sha256");
            assert!(up.data.path().join("images/layers").join(hex).is_dir(), "{digest} in the store");
        }

        // the monitor and the log
        let mon = c["monitor"]["pid"].as_i64().expect("monitor pid");
        assert!(std::fs::read(format!("/proc/{mon}/cmdline")).expect("monitor cmdline").starts_with(b"rkube-monitor") || {
            let exe = std::fs::read_link(format!("/proc/{mon}/exe")).expect("exe");
            exe.to_string_lossy().ends_with("rkube-monitor")
        });
        assert!(Path::new(c["monitor"]["logFile"].as_str().expect("log")).is_file(), "{name}: log file");
    }

    // volumes: the emptyDir is one host dir both containers see; the hostPath is the test's dir, read-only
    let mounts = |c: usize| containers[c]["mounts"].as_array().expect("mounts").clone();
    let find = |c: usize, p: &str| mounts(c).into_iter().find(|m| m["mountPath"] == p).unwrap_or_else(|| panic!("mount {p}"));
    let (app_pid, side_pid) = (containers[0]["pid"].as_i64().expect("pid"), containers[1]["pid"].as_i64().expect("pid"));
    let data = find(0, "/data");
    assert_eq!((data["volume"].as_str(), data["kind"].as_str()), (Some("scratch"), Some("emptyDir")));
    let scratch = find(1, "/scratch");
    assert_eq!(data["hostSource"], scratch["hostSource"], "one emptyDir for both");
    up.kubectl(&["exec", "insp", "-c", "app", "--", "sh", "-c", "echo written-inside > /data/probe"]);
    let on_host = Path::new(data["hostSource"].as_str().expect("source")).join("probe");
    assert_eq!(read_trim(&on_host.to_string_lossy()), "written-inside", "the emptyDir's host source is the dir the container writes");
    let mi = mountinfo_at(app_pid, "/data");
    assert_eq!(data["kernel"]["mountId"].as_u64(), mi[0].parse().ok());
    assert_eq!(data["kernel"]["root"].as_str(), Some(mi[3].as_str()));
    assert_eq!(data["kernel"]["device"].as_str(), Some(mi[2].as_str()));
    let mi_side = mountinfo_at(side_pid, "/scratch");
    assert_eq!(scratch["kernel"]["root"].as_str(), Some(mi_side[3].as_str()));
    let host = find(0, "/host");
    assert_eq!(host["kind"], "hostPath");
    assert_eq!(host["hostSource"].as_str(), host_dir.path().to_str());
    assert_eq!(host["kernel"]["readOnly"], true);
    let mi_host = mountinfo_at(app_pid, "/host");
    assert!(mi_host[5].split(',').any(|o| o == "ro"), "{mi_host:?}");
    assert!(mounts(0).iter().any(|m| m["mountPath"] == "/etc/hosts" && m["kind"] == "kubelet"));

    // the veth pair and the bridge, against ip -j link on the host and in the pod's netns
    let net = &doc["network"];
    assert_eq!(net["podIp"], pod_ip.as_str());
    let host_end = net["hostVeth"]["name"].as_str().expect("host end");
    let host_link = &ip_json(&["link", "show", "dev", host_end])[0];
    assert_eq!(net["hostVeth"]["ifindex"], host_link["ifindex"]);
    assert_eq!(host_link["master"].as_str(), Some(up.bridge.as_str()));
    assert_eq!(net["bridge"]["name"].as_str(), Some(up.bridge.as_str()));
    let bridge = &ip_json(&["link", "show", "dev", &up.bridge])[0];
    assert_eq!(net["bridge"]["mac"], bridge["address"]);
    let netns = format!("--net=/proc/{sb_pid}/ns/net");
    let out = Command::new("nsenter").args([netns.as_str(), "ip", "-j", "link", "show", "dev", "eth0"]).output().expect("nsenter");
    let eth0: Value = serde_json::from_slice(&out.stdout).expect("eth0 json");
    assert_eq!(net["podInterface"]["ifindex"], eth0[0]["ifindex"]);
    assert_eq!(net["podInterface"]["mac"], eth0[0]["address"]);
    assert_eq!(eth0[0]["link_index"], host_link["ifindex"], "eth0's peer is the host end");
    assert_eq!(host_link["link_index"], eth0[0]["ifindex"], "the host end's peer is eth0");
    assert_eq!(net["hostVeth"]["peerIfindex"], eth0[0]["ifindex"]);
    assert!(net["routes"].as_array().expect("routes").iter().any(|r| r["dst"] == "default"), "{}", net["routes"]);
    let hosts = std::fs::read_to_string(format!("/proc/{app_pid}/root/etc/hosts")).expect("hosts");
    assert_eq!(net["hosts"].as_str(), Some(hosts.as_str()));
    let resolv = std::fs::read_to_string(format!("/proc/{app_pid}/root/etc/resolv.conf")).expect("resolv");
    assert_eq!(net["resolvConf"].as_str(), Some(resolv.as_str()));

    // the nft rules that lead to the pod, against nft -j list table
    let ep = &doc["serviceRules"]["endpoints"][0];
    assert_eq!(ep["service"], "default/insp");
    assert_eq!(ep["endpoint"], format!("{pod_ip}:8080").as_str());
    assert_eq!(ep["table"].as_str(), Some(up.net.proxy_table.as_str()), "one Service: the proxy's own table, no shard");
    let table = Command::new("nft").args(["-j", "list", "table", "ip", &up.net.proxy_table]).output().expect("nft");
    let table: Value = serde_json::from_slice(&table.stdout).expect("nft json");
    let chain = ep["endpointChain"].as_str().expect("chain");
    let dnat = table["nftables"].as_array().expect("items").iter().filter_map(|i| i.get("rule")).any(|r| {
        r["chain"] == chain && r["expr"].as_array().is_some_and(|e| e.iter().any(|x| x["dnat"]["addr"] == pod_ip.as_str()))
    });
    assert!(dnat, "{chain} DNATs to {pod_ip} in the table");
    assert!(ep["serviceIps"].as_array().expect("ips").iter().any(|i| i == &Value::from(format!("{cluster_ip}:80/tcp"))), "{ep}");
    assert!(ep["viaChains"].as_array().expect("via").iter().any(|c| c.as_str().is_some_and(|c| c.starts_with("svc-default/insp/"))), "{ep}");

    // the same endpoint through kubectl and the node proxy, and the tree for people (no colour off a terminal)
    let raw = up.kubectl(&["get", "--raw", &format!("/api/v1/nodes/{node}/proxy/inspect/pods/default/insp")]);
    let raw: Value = serde_json::from_str(&raw).expect("raw json");
    assert_eq!((raw["kind"].as_str(), raw["sandbox"]["pid"].as_i64()), (Some("PodInspection"), Some(sb_pid)));
    let (code, tree, err) = inspect(&up, &["pod", "insp"]);
    assert_eq!(code, 0, "{err}");
    assert!(tree.starts_with("pod default/insp "), "{tree}");
    assert!(tree.contains(&format!("sandbox {} pid {sb_pid}", doc["sandbox"]["id"].as_str().unwrap_or_default())), "{tree}");
    assert!(tree.contains(&format!("default/insp tcp/80 → {pod_ip}:8080")), "{tree}");
    assert!(!tree.contains('\x1b'), "no colour off a terminal");
    let (code, yaml, _) = inspect(&up, &["pod", "insp", "-o", "yaml"]);
    assert_eq!(code, 0);
    assert!(yaml.starts_with("apiVersion: inspect.rkube.io/v1alpha1\nkind: PodInspection\n"), "{yaml}");
}

#[test]
fn inspect_bad_input_exits_1_naming_what_is_wrong() {
    let up = Up::start();
    // no such pod
    let (code, out, err) = inspect(&up, &["pod", "nope", "-n", "default"]);
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(err.contains("pod default/nope not found"), "{err}");

    // a pod no node fits: Pending, never scheduled
    up.kubectl_ok(
        &["apply", "-f", "-"],
        Some("apiVersion: v1\nkind: Pod\nmetadata: {name: nowhere}\nspec:\n  nodeSelector: {no-such-label: x}\n  containers: [{name: c, image: busybox:latest, imagePullPolicy: Never}]\n"),
    );
    let (code, out, err) = inspect(&up, &["pod", "nowhere"]);
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(err.contains("pod default/nowhere is Pending and not scheduled to a node yet"), "{err}");

    // a pod on a node whose kubelet nobody answers for: a Node at the node's address on a port nothing listens on
    let ghost = unique_name("ghost");
    up.kubectl_ok(&["apply", "-f", "-"], Some(&format!("apiVersion: v1\nkind: Node\nmetadata: {{name: {ghost}}}\n")));
    let status = format!(
        r#"{{"status":{{"addresses":[{{"type":"InternalIP","address":"{}"}}],"daemonEndpoints":{{"kubeletEndpoint":{{"Port":9}}}}}}}}"#,
        up.node_ip
    );
    up.kubectl(&["patch", "node", &ghost, "--subresource=status", "--type=merge", "-p", &status]);
    up.kubectl_ok(
        &["apply", "-f", "-"],
        Some(&format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: stranded}}\nspec:\n  nodeName: {ghost}\n  containers: [{{name: c, image: busybox:latest, imagePullPolicy: Never}}]\n")),
    );
    let (code, out, err) = inspect(&up, &["pod", "stranded"]);
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(err.contains(&format!("node {ghost} of pod default/stranded is unreachable")), "{err}");
    let _ = up.kubectl_output(&["delete", "pod", "stranded", "nowhere", "--grace-period=0", "--force"]);
    let _ = up.kubectl_output(&["delete", "node", &ghost]);
}

const SERVICE_PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: web-a, labels: {app: web}}
spec:
  terminationGracePeriodSeconds: 1
  containers: [{name: c, image: busybox:latest, imagePullPolicy: Never, command: ["sh", "-c", "exec sleep 3600"], ports: [{containerPort: 8080}], resources: {limits: {cpu: 100m, memory: 32Mi}}}]
---
apiVersion: v1
kind: Pod
metadata: {name: web-b, labels: {app: web}}
spec:
  terminationGracePeriodSeconds: 1
  containers: [{name: c, image: busybox:latest, imagePullPolicy: Never, command: ["sh", "-c", "exec sleep 3600"], ports: [{containerPort: 8080}], resources: {requests: {memory: 16Mi}}}]
---
apiVersion: v1
kind: Pod
metadata: {name: spin, labels: {app: spin}}
spec:
  terminationGracePeriodSeconds: 1
  containers: [{name: c, image: busybox:latest, imagePullPolicy: Never, command: ["sh", "-c", "while :; do :; done"], resources: {limits: {cpu: 200m, memory: 16Mi}}}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
"#;

/// The memory cgroup path of `pid` (`/proc/<pid>/cgroup`, the v1 `memory` line).
fn memory_cgroup_of(pid: i64) -> String {
    let text = read_trim(&format!("/proc/{pid}/cgroup"));
    text.lines().find(|l| l.split(':').nth(1) == Some("memory")).and_then(|l| l.split(':').nth(2)).unwrap_or_else(|| panic!("no memory line: {text}")).to_string()
}

/// usage less total_inactive_file of a v1 memory cgroup, as the test reads it.
fn working_set(cgroup: &str) -> u64 {
    let dir = format!("/sys/fs/cgroup/memory/{}", cgroup.trim_start_matches('/'));
    let usage: u64 = read_trim(&format!("{dir}/memory.usage_in_bytes")).parse().expect("usage");
    let stat = read_trim(&format!("{dir}/memory.stat"));
    let inactive: u64 = stat.lines().find_map(|l| l.strip_prefix("total_inactive_file ")).and_then(|v| v.parse().ok()).unwrap_or(0);
    usage.saturating_sub(inactive)
}

/// CPU time a v1 cpuacct cgroup has used (`cpuacct.usage`, ns), as the test reads it.
fn cpuacct_usage(cgroup: &str) -> u64 {
    read_trim(&format!("/sys/fs/cgroup/cpuacct/{}/cpuacct.usage", cgroup.trim_start_matches('/'))).parse().expect("cpuacct.usage")
}

/// Chains, rules, `svc-` and `ep-` chains, and map elements of the proxy table, counted by the test.
fn count_table(table: &str) -> (Value, [u64; 6]) {
    let out = Command::new("nft").args(["-j", "list", "table", "ip", table]).output().expect("nft");
    assert!(out.status.success(), "nft list table {table}: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("nft json");
    let items = v["nftables"].as_array().cloned().unwrap_or_default();
    let chains: Vec<&str> = items.iter().filter_map(|i| i["chain"]["name"].as_str()).collect();
    let elems = |map: &str| items.iter().filter(|i| i["map"]["name"] == map).map(|i| i["map"]["elem"].as_array().map_or(0, Vec::len) as u64).sum();
    let counts = [
        chains.len() as u64,
        items.iter().filter(|i| i.get("rule").is_some()).count() as u64,
        chains.iter().filter(|c| c.starts_with("svc-")).count() as u64,
        chains.iter().filter(|c| c.starts_with("ep-")).count() as u64,
        elems("service-ips"),
        elems("service-nodeports"),
    ];
    (v, counts)
}

/// A protocol-82 route the test adds, removed on drop (and with the test's veth, whatever happens).
struct RouteGuard(String);

impl RouteGuard {
    fn add(dst: &str, via: &str, dev: &str) -> RouteGuard {
        Self::replace(dst, via, dev);
        RouteGuard(dst.to_string())
    }

    /// Idempotent: a host-gw `rkube kubelet` of another test on this host removes protocol-82 routes it did not
    /// make, so the poll puts it back before each look.
    fn replace(dst: &str, via: &str, dev: &str) {
        let ok = Command::new("ip").args(["route", "replace", dst, "via", via, "dev", dev, "proto", "82"]).status().expect("ip route").success();
        assert!(ok, "ip route replace {dst} via {via} dev {dev} proto 82");
    }
}

impl Drop for RouteGuard {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["route", "del", &self.0, "proto", "82"]).status();
    }
}

#[test]
fn inspect_node_and_service_match_the_kernels_own_view() {
    let up = Up::start();
    up.kubectl_ok(&["apply", "-f", "-"], Some(SERVICE_PODS));
    up.kubectl(&["wait", "--for=condition=Ready", "pod/web-a", "pod/web-b", "pod/spin", "--timeout=120s"]);
    let node = up.kubectl(&["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"]).trim().to_string();
    let ip_of = |p: &str| up.kubectl(&["get", "pod", p, "-o", "jsonpath={.status.podIP}"]).trim().to_string();
    let (ip_a, ip_b) = (ip_of("web-a"), ip_of("web-b"));
    let cluster_ip = up.kubectl(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"]).trim().to_string();
    let node_port = up.kubectl(&["get", "svc", "web", "-o", "jsonpath={.spec.ports[0].nodePort}"]).trim().to_string();

    // --- the service: wait until this node's proxy has both endpoints, then check every fact against nft
    let svc = poll_until("inspect service shows both endpoints", Duration::from_secs(60), || {
        let (code, out, err) = inspect(&up, &["service", "web", "-o", "json"]);
        assert_eq!(code, 0, "rkube inspect service web: {err}");
        let d: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("json: {e}: {out}"));
        (d["ports"][0]["endpoints"].as_array().map(Vec::len) == Some(2)).then_some(d)
    });
    assert_eq!((svc["apiVersion"].as_str(), svc["kind"].as_str()), (Some("inspect.rkube.io/v1alpha1"), Some("ServiceInspection")));
    assert_eq!((svc["metadata"]["node"].as_str(), svc["type"].as_str()), (Some(node.as_str()), Some("NodePort")));
    assert_eq!(svc["clusterIps"], serde_json::json!([cluster_ip]));
    assert_eq!(svc["table"].as_str(), Some(up.net.proxy_table.as_str()));
    let port = &svc["ports"][0];
    assert_eq!(port["port"], "tcp/http");
    assert!(port["serviceIps"].as_array().expect("ips").contains(&Value::from(format!("{cluster_ip}:80/tcp"))), "{port}");
    assert_eq!(port["nodePorts"], serde_json::json!([format!("{node_port}/tcp")]));
    let mut eps: Vec<String> = port["endpoints"].as_array().expect("eps").iter().map(|e| e["endpoint"].as_str().unwrap_or_default().to_string()).collect();
    eps.sort();
    let mut want = vec![format!("{ip_a}:8080"), format!("{ip_b}:8080")];
    want.sort();
    assert_eq!(eps, want);
    // the kernel's table: the service chain's numgen vmap picks exactly these chains at these slots, each DNATs
    let (table, _) = count_table(&up.net.proxy_table);
    let items = table["nftables"].as_array().expect("items");
    let svc_chain = port["serviceChain"].as_str().expect("svc chain");
    let picks: Vec<(u64, String)> = items
        .iter()
        .filter(|i| i["rule"]["chain"] == svc_chain)
        .flat_map(|i| i["rule"]["expr"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e.get("vmap").cloned())
        .flat_map(|vm| vm["data"]["set"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| Some((p[0].as_u64()?, p[1]["goto"]["target"].as_str()?.to_string())))
        .collect();
    let reported: Vec<(u64, String)> =
        port["endpoints"].as_array().expect("eps").iter().map(|e| (e["slot"].as_u64().expect("slot"), e["chain"].as_str().expect("chain").to_string())).collect();
    assert_eq!(picks, reported, "the numgen slots of {svc_chain}");
    for e in port["endpoints"].as_array().expect("eps") {
        let (chain, ep) = (e["chain"].as_str().expect("chain"), e["endpoint"].as_str().expect("endpoint"));
        let (ip, p) = ep.split_once(':').expect("ip:port");
        let dnat = items.iter().filter(|i| i["rule"]["chain"] == chain).flat_map(|i| i["rule"]["expr"].as_array().cloned().unwrap_or_default()).any(|x| {
            x["dnat"]["addr"] == ip && x["dnat"]["port"].to_string() == p
        });
        assert!(dnat, "{chain} DNATs to {ep} in the table");
    }
    let (code, tree, err) = inspect(&up, &["service", "web"]);
    assert_eq!(code, 0, "{err}");
    assert!(tree.starts_with(&format!("service default/web NodePort {cluster_ip} on node {node}")), "{tree}");
    assert!(tree.contains(&format!("from NodePort {node_port}/tcp")) && tree.contains(&format!("{ip_a}:8080")) && !tree.contains('\x1b'), "{tree}");
    let (code, out, err) = inspect(&up, &["service", "nope"]);
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(err.contains("service default/nope not found"), "{err}");

    // --- the node. A route to another node's pods as the host-gw kubelet makes them (protocol 82), through the
    // test's veth: `rkube up` is one node and keeps none itself, and `rkube kubelet`'s would need a second kubelet
    let n: u32 = up.node_ip.split('.').nth(2).and_then(|o| o.parse().ok()).expect("octet");
    let (ghost_cidr, ghost_ip) = (format!("10.250.{n}.0/24"), format!("{}2", up.node_ip.trim_end_matches('1')));
    let _route = RouteGuard::add(&ghost_cidr, &ghost_ip, &up.veth);
    // a second Node (no kubelet behind it): `rkube inspect node` without a name must then ask which
    let ghost = unique_name("ghost");
    up.kubectl_ok(&["apply", "-f", "-"], Some(&format!("apiVersion: v1\nkind: Node\nmetadata: {{name: {ghost}}}\n")));
    let doc = poll_until("inspect node shows the route to the other node's pods and the whole table", Duration::from_secs(60), || {
        RouteGuard::replace(&ghost_cidr, &ghost_ip, &up.veth);
        let (code, out, err) = inspect(&up, &["node", &node, "-o", "json"]);
        assert_eq!(code, 0, "rkube inspect node {node}: {err}");
        let d: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("json: {e}: {out}"));
        let (_, counts) = count_table(&up.net.proxy_table);
        let p = &d["proxy"];
        let got = ["chains", "rules", "servicePorts", "endpoints", "serviceIps", "nodePorts"].map(|k| p[k].as_u64().unwrap_or(u64::MAX));
        let routed = d["podRoutes"].as_array().is_some_and(|r| r.iter().any(|r| r["dst"] == ghost_cidr.as_str()));
        (routed && got == counts).then_some(d)
    });
    assert_eq!((doc["kind"].as_str(), doc["metadata"]["name"].as_str()), (Some("NodeInspection"), Some(node.as_str())));
    assert_eq!(doc["proxy"]["tables"], serde_json::json!([up.net.proxy_table]), "a few Services: one table counted");
    let spec_cidr = up.kubectl(&["get", "node", &node, "-o", "jsonpath={.spec.podCIDR}"]).trim().to_string();
    assert_eq!(doc["podCidr"].as_str().unwrap_or_default(), spec_cidr);
    // routes: what `ip route show proto 82` holds for the other node
    RouteGuard::replace(&ghost_cidr, &ghost_ip, &up.veth);
    let kernel_routes = ip_json(&["-4", "route", "show", "proto", "82", "to", &ghost_cidr]);
    let kr = kernel_routes.as_array().expect("routes").iter().find(|r| r["dst"] == ghost_cidr.as_str()).expect("the kernel has the route");
    let dr = doc["podRoutes"].as_array().expect("routes").iter().find(|r| r["dst"] == ghost_cidr.as_str()).expect("reported");
    assert_eq!((dr["gateway"].as_str(), dr["dev"].as_str()), (Some(ghost_ip.as_str()), kr["dev"].as_str()));
    assert_eq!(kr["gateway"].as_str(), Some(ghost_ip.as_str()));
    // the bridge, against ip -j addr
    let bridge = &ip_json(&["addr", "show", "dev", &up.bridge])[0];
    assert_eq!((doc["bridge"]["name"].as_str(), &doc["bridge"]["ifindex"], &doc["bridge"]["mac"]), (Some(up.bridge.as_str()), &bridge["ifindex"], &bridge["address"]));
    let bridge_addrs: Vec<Value> = bridge["addr_info"]
        .as_array()
        .expect("addr_info")
        .iter()
        .filter(|a| a["family"] == "inet")
        .map(|a| Value::from(format!("{}/{}", a["local"].as_str().unwrap_or_default(), a["prefixlen"])))
        .collect();
    assert_eq!(doc["bridge"]["addresses"], Value::from(bridge_addrs));
    // cluster DNS: the address and the link the kubelet put it on
    assert_eq!((doc["dns"]["address"].as_str(), doc["dns"]["link"].as_str()), (Some(up.net.cluster_dns.as_str()), Some(up.net.dns_link.as_str())));
    let dns_link = &ip_json(&["addr", "show", "dev", &up.net.dns_link])[0];
    assert!(dns_link["addr_info"].as_array().expect("addr").iter().any(|a| a["local"] == up.net.cluster_dns.as_str()), "{dns_link}");
    assert!(doc["dns"]["linkAddresses"].as_array().expect("addrs").iter().any(|a| a.as_str().is_some_and(|a| a.starts_with(&format!("{}/", up.net.cluster_dns)))));
    // the QoS tree and each pod: its sandbox process and cgroup, against /proc and cgroupfs
    let classes: Vec<(&str, &str)> = doc["cgroups"]["classes"].as_array().expect("classes").iter().map(|c| (c["qosClass"].as_str().unwrap_or_default(), c["path"].as_str().unwrap_or_default())).collect();
    assert_eq!(classes, vec![("Guaranteed", "kubepods"), ("Burstable", "kubepods/burstable"), ("BestEffort", "kubepods/besteffort")]);
    for (name, class) in [("web-a", "Guaranteed"), ("web-b", "Burstable")] {
        let p = doc["pods"].as_array().expect("pods").iter().find(|p| p["name"] == name).unwrap_or_else(|| panic!("{name} in {}", doc["pods"]));
        assert_eq!(p["qosClass"], class, "{name}");
        let pod_doc = inspect_json(&up, name);
        let sb_pid = p["sandboxPid"].as_i64().unwrap_or_else(|| panic!("{name}: sandbox pid"));
        assert_eq!(Some(sb_pid), pod_doc["sandbox"]["pid"].as_i64(), "{name}");
        assert_eq!(p["podIp"].as_str(), Some(ip_of(name).as_str()));
        let cgroup = p["cgroup"].as_str().expect("cgroup");
        let uid = up.kubectl(&["get", "pod", name, "-o", "jsonpath={.metadata.uid}"]).trim().to_string();
        assert!(cgroup.ends_with(&format!("/pod{uid}")), "{cgroup}");
        // the kernel puts the container's process below the pod's cgroup, in the class's cgroup
        let cpid = pod_doc["containers"][0]["pid"].as_i64().expect("container pid");
        let kernel = memory_cgroup_of(cpid);
        assert!(kernel.starts_with(&format!("/{cgroup}/")), "{name}: /proc/{cpid}/cgroup memory {kernel}, reported {cgroup}");
        let class_path = classes.iter().find(|(c, _)| *c == class).map(|(_, p)| *p).expect("class");
        assert_eq!(cgroup.rsplit_once('/').map(|(parent, _)| parent), Some(class_path), "{name}");
        // a sleeping busybox's memory holds still: the runtime's working set and the test's agree within half
        let (reported, read) = (p["memoryWorkingSetBytes"].as_u64().expect("ws"), working_set(cgroup));
        assert!(reported > 0 && reported.abs_diff(read) <= reported.max(read) / 2, "{name}: reported {reported}, cgroupfs {read}");
    }
    let burstable = doc["cgroups"]["classes"][1]["memoryWorkingSetBytes"].as_u64().expect("ws");
    assert!(burstable > 0, "the Burstable cgroup holds web-b");

    // CPU: cpuacct.usage only grows, so the time reported for each QoS class and pod lies between the test's
    // own reads just before and just after the call; the CPU the rate stands for (millicores over the sample)
    // cannot be more than the kernel counted over the whole call; the spinning pod's rate is above 0 and at most
    // one CPU (one busy shell) and the sleeping ones use less than it
    let pod_cgroup = |d: &Value, name: &str| d["pods"].as_array().expect("pods").iter().find(|p| p["name"] == name).and_then(|p| p["cgroup"].as_str()).expect("cgroup").to_string();
    // a class cgroup the kubelet has not made (no pod of that class yet) has nothing to read: null
    let (mut paths, absent): (Vec<String>, Vec<String>) =
        classes.iter().map(|(_, p)| p.to_string()).partition(|p| Path::new(&format!("/sys/fs/cgroup/cpuacct/{p}")).exists());
    paths.extend(["web-a", "web-b", "spin"].map(|n| pod_cgroup(&doc, n)));
    let before: Vec<u64> = paths.iter().map(|p| cpuacct_usage(p)).collect();
    let (code, out, err) = inspect(&up, &["node", &node, "-o", "json"]);
    let after: Vec<u64> = paths.iter().map(|p| cpuacct_usage(p)).collect();
    assert_eq!(code, 0, "{err}");
    let d: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("json: {e}: {out}"));
    let sample_ms = d["cgroups"]["cpuSampleMillis"].as_u64().expect("cpuSampleMillis");
    assert!(sample_ms >= 100, "the rate is over the kubelet's 100 ms sample: {sample_ms}");
    let entry = |path: &str| -> Value {
        let class = d["cgroups"]["classes"].as_array().expect("classes").iter().find(|c| c["path"] == path);
        class.or_else(|| d["pods"].as_array().expect("pods").iter().find(|p| p["cgroup"] == path)).cloned().unwrap_or_else(|| panic!("{path} in {d}"))
    };
    for path in &absent {
        assert_eq!(entry(path)["cpuUsageNanos"], Value::Null, "{path} does not exist: nothing read");
    }
    let mut rates = std::collections::BTreeMap::new();
    for (i, path) in paths.iter().enumerate() {
        let e = entry(path);
        let used = e["cpuUsageNanos"].as_u64().unwrap_or_else(|| panic!("{path}: cpuUsageNanos in {e}"));
        assert!(before[i] <= used && used <= after[i], "{path}: reported {used} ns, cgroupfs {} before and {} after", before[i], after[i]);
        let m = e["cpuMillicores"].as_u64().unwrap_or_else(|| panic!("{path}: cpuMillicores in {e}"));
        assert!(m * sample_ms * 1000 <= after[i] - before[i], "{path}: {m}m over {sample_ms} ms is more than the {} ns cgroupfs counted", after[i] - before[i]);
        rates.insert(path.clone(), m);
    }
    let (spin, web_a) = (rates[&pod_cgroup(&d, "spin")], rates[&pod_cgroup(&d, "web-a")]);
    assert!(spin > 0 && spin <= 1000 && web_a < spin, "spin {spin}m, web-a {web_a}m: {rates:?}");

    RouteGuard::replace(&ghost_cidr, &ghost_ip, &up.veth);
    let (code, tree, err) = inspect(&up, &["node", &node]);
    assert_eq!(code, 0, "{err}");
    assert!(tree.starts_with(&format!("node {node} (")), "{tree}");
    let sb_a = doc["pods"].as_array().expect("pods").iter().find(|p| p["name"] == "web-a").and_then(|p| p["sandboxPid"].as_i64()).expect("pid");
    assert!(tree.contains(&format!("default/web-a sandbox ")) && tree.contains(&format!(" pid {sb_a} ")), "{tree}");
    assert!(tree.contains(&format!("{ghost_cidr} via {ghost_ip}")), "{tree}");
    // bad input: a missing node; no name while the cluster has two
    let (code, out, err) = inspect(&up, &["node", "nope"]);
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(err.contains("node nope not found"), "{err}");
    let (code, out, err) = inspect(&up, &["node"]);
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(err.contains("2 nodes in the cluster: name one"), "{err}");
    let _ = up.kubectl_output(&["delete", "node", &ghost]);
}
