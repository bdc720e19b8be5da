//! `rkube inspect pod` on `rkube up`, compared with the kernel's own view, as root: a pod with two containers, an
//! emptyDir, a hostPath, limits and a Service. Every fact of `rkube inspect pod -o json` is checked against what
//! the test reads itself: `/proc/<pid>/ns/*` links, `/proc/<pid>/cgroup` and cgroupfs files, `ip -j link` on the
//! host and in the pod's netns, `/proc/<pid>/mountinfo`, `nft -j list table`. The kubelet endpoint answers
//! `kubectl get --raw /api/v1/nodes/<node>/proxy/inspect/...` too. Bad input: a missing pod, a pod not scheduled,
//! a pod on an unreachable node: exit 1, a message naming what is wrong, nothing on stdout.
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
