//! An HA control plane: two `rkube server`s on one 3-member etcd (Debian's etcd-server on loopback ports), one
//! `rkube kubelet` node on a veth of the test's own, and the real kubectl. The servers share the cluster CA (the
//! second gets a copy of the first's `pki/`, as kubeadm's control-plane join copies the certificates) and
//! shortened leader election periods.
//!
//! What it shows: a write through one server is seen by a watch on the other; exactly one server holds each
//! Lease in kube-system; kill -9 of the controller manager's leader in the middle of a Deployment rollout hands
//! the Lease to the other server (holder changes, leaseTransitions + 1) and the rollout finishes with exactly the
//! replicas asked for, every pod created once (counted by uid per ReplicaSet over a watch that ran throughout),
//! none lost. The failover time is printed, not asserted (bench/ha.sh measures it).
//!
//! Needs root, etcd (`apt-get install etcd-server etcd-client`) and the binaries: `cargo build --release -p rkube
//! -p rkube-kubelet -p rkube-runtime -p rkube-cni --bins`.

mod up_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rkube_testsupport::etcd::EtcdCluster;
use rkube_testsupport::{poll_until, registry::free_port, require_command, require_root, unique_name, ChildGuard};
use up_support::{bin, import_busybox, kubectl_ok_with, kubectl_output_with, kubectl_try_with, ForwardGuard, NodeNet};

/// Short periods so the drill takes seconds: the leader gives up 4 s after its last renewal, a follower takes
/// over 6 s after it last saw the Lease change.
const LEADER_FLAGS: &[&str] =
    &["--leader-elect-lease-duration", "6s", "--leader-elect-renew-deadline", "4s", "--leader-elect-retry-period", "1s"];

struct Server {
    dir: tempfile::TempDir,
    log: PathBuf,
    child: Option<ChildGuard>,
}

impl Server {
    fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// The holderIdentity this server's electors use, from its log's "attempting to acquire" line.
    fn identity(&self) -> Option<String> {
        let log = strip_ansi(&std::fs::read_to_string(&self.log).ok()?);
        let line = log.lines().find(|l| l.contains("attempting to acquire leader lease"))?;
        let at = line.find("identity=")? + "identity=".len();
        Some(line[at..].split_whitespace().next()?.trim_matches('"').to_string())
    }

    fn acquired(&self, lease: &str) -> bool {
        let log = strip_ansi(&std::fs::read_to_string(&self.log).unwrap_or_default());
        log.contains(&format!("successfully acquired lease kube-system/{lease}"))
    }
}

struct Ha {
    // dropped in this order by Drop below: watches, kubelet (then `rkube down`), servers, links, etcd
    watches: Vec<ChildGuard>,
    kubelet: Option<ChildGuard>,
    servers: Vec<Server>,
    node_dir: tempfile::TempDir,
    node_name: String,
    net: NodeNet,
    etcd: EtcdCluster,
    _forward: ForwardGuard,
}

impl Ha {
    fn start_server(&mut self, shared_pki_from: Option<usize>) -> usize {
        let dir = tempfile::tempdir().expect("server dir");
        if let Some(from) = shared_pki_from {
            // one cluster CA, service account key and admin certificate for both servers
            let src = self.servers[from].dir.path().join("pki");
            let st = Command::new("cp").arg("-a").arg(&src).arg(dir.path().join("pki")).status().expect("cp pki");
            assert!(st.success(), "copy {} to the second server", src.display());
        }
        let i = self.servers.len();
        let log = dir.path().join("server.log");
        let port = free_port();
        let mut cmd = Command::new(bin("rkube"));
        cmd.args(["server", "--data-dir"])
            .arg(dir.path())
            .args(["--listen", &format!("127.0.0.1:{port}"), "--tls", "--cluster-dns", &self.net.cluster_dns])
            .args(self.net.server_args())
            .args(LEADER_FLAGS);
        for e in &self.etcd.endpoints {
            cmd.args(["--etcd", e]);
        }
        let child = cmd
            .env("RKUBE_LOG", "info,kube=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("server log"))
            .spawn()
            .expect("start rkube server");
        self.servers.push(Server { dir, log, child: Some(ChildGuard::new(child, format!("rkube server {i}"))) });
        let s = &mut self.servers[i];
        let kubeconfig = s.kubeconfig();
        poll_until(&format!("server {i} answers kubectl"), Duration::from_secs(60), || {
            assert!(s.child.as_mut().is_some_and(|c| c.is_running()), "rkube server {i} exited; see {}", s.log.display());
            if !kubeconfig.exists() {
                return None;
            }
            kubectl_output_with(&kubeconfig, &["get", "--raw", "/readyz", "--request-timeout=10s"], None).status.success().then_some(())
        });
        i
    }

    fn kubectl(&self, server: usize, args: &[&str]) -> String {
        kubectl_ok_with(&self.servers[server].kubeconfig(), args, None)
    }

    fn kubectl_in(&self, server: usize, args: &[&str], stdin: &str) -> String {
        kubectl_ok_with(&self.servers[server].kubeconfig(), args, Some(stdin))
    }

    /// `holderIdentity leaseTransitions` of a Lease in kube-system, read through `server` (None: not there yet).
    fn lease(&self, server: usize, name: &str) -> Option<(String, i64)> {
        let out = kubectl_try_with(
            &self.servers[server].kubeconfig(),
            &["get", "lease", "-n", "kube-system", name, "-o", "jsonpath={.spec.holderIdentity} {.spec.leaseTransitions}"],
        )?;
        let (holder, transitions) = out.trim().split_once(' ')?;
        Some((holder.to_string(), transitions.parse().ok()?))
    }

    /// `kubectl get ... --watch` through `server`, each event's fields as one line in `file`.
    fn watch(&mut self, server: usize, what: &[&str], file: &Path) {
        let child = Command::new("kubectl")
            .args(["get"])
            .args(what)
            .args(["--watch", "--request-timeout=0"])
            .env("KUBECONFIG", self.servers[server].kubeconfig())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(file).expect("watch file"))
            .stderr(std::fs::File::create(file.with_extension("err")).expect("watch err file"))
            .spawn()
            .expect("start kubectl --watch");
        self.watches.push(ChildGuard::new(child, "kubectl --watch"));
    }

    fn start_kubelet(&mut self, server: usize) {
        let log = self.node_dir.path().join("kubelet.log");
        let child = Command::new(bin("rkube"))
            .args(["kubelet", "--kubeconfig"])
            .arg(self.servers[server].kubeconfig())
            .args(["--node-name", &self.node_name, "--data-dir"])
            .arg(self.node_dir.path())
            .args(self.net.node_args())
            // the drill is about the control plane: a shared machine's disk under 10% free (the default
            // nodefs threshold) must not hold the pods back with DiskPressure
            .args(["--eviction-hard", "memory.available<100Mi,nodefs.available<1%"])
            .env("RKUBE_LOG", "info,kube=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("kubelet log"))
            .spawn()
            .expect("start rkube kubelet");
        let kubelet = self.kubelet.insert(ChildGuard::new(child, "rkube kubelet"));
        let kubeconfig = self.servers[server].kubeconfig();
        let name = self.node_name.clone();
        poll_until("node Ready", Duration::from_secs(60), || {
            assert!(kubelet.is_running(), "rkube kubelet exited; see {}", log.display());
            let s = kubectl_try_with(&kubeconfig, &["get", "node", &name, "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"]);
            (s.as_deref() == Some("True")).then_some(())
        });
    }

    fn kill9_server(&mut self, i: usize) {
        let mut g = self.servers[i].child.take().expect("the server runs");
        let pid = g.pid().to_string();
        let _ = Command::new("kill").args(["-KILL", &pid]).status();
        poll_until(&format!("server {i} (pid {pid}) to die"), Duration::from_secs(10), || (!g.is_running()).then_some(()));
    }

    fn print_logs(&self) {
        let mut logs: Vec<PathBuf> = self.servers.iter().map(|s| s.log.clone()).collect();
        logs.push(self.node_dir.path().join("kubelet.log"));
        for f in logs {
            if let Some(tail) = rkube_testsupport::log_tail(&f, 30) {
                eprintln!("{tail}");
            }
        }
    }
}

impl Drop for Ha {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_logs();
        }
        self.watches.clear();
        self.kubelet.take();
        let _ = Command::new(bin("rkube")).args(["down", "--data-dir"]).arg(self.node_dir.path()).stderr(Stdio::null()).status();
        for s in &mut self.servers {
            s.child.take();
        }
        self.net.remove_veth();
        // etcd's members are stopped by their own guard after this
    }
}

/// Deployment `web`: 4 busybox pods that sleep, rolled one at a time (maxSurge 1, maxUnavailable 0) and each
/// counted available only after 3 s, so a rollout lasts long enough to kill a server in the middle of it.
const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 4
  minReadySeconds: 3
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: busybox:latest
        imagePullPolicy: Never
        command: ["sh", "-c", "exec sleep 3600"]
        env: [{name: VERSION, value: "1"}]
"#;

/// The log without terminal colour sequences (`ESC [ ... m`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// Pods seen by the watch: uid -> (name, owning ReplicaSet).
fn pods_seen(file: &Path) -> BTreeMap<String, (String, String)> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 3).then(|| (f[0].to_string(), (f[1].to_string(), f[2].to_string())))
        })
        .collect()
}

#[test]
fn kill9_of_the_leader_mid_rollout_hands_over_and_the_rollout_finishes_exactly() {
    require_root();
    require_command("ip", "iproute2");
    require_command("nft", "nftables");
    require_command("kubectl", "kubectl");
    let etcd = EtcdCluster::start(3);
    let mut ha = Ha {
        watches: Vec::new(),
        kubelet: None,
        servers: Vec::new(),
        node_dir: tempfile::tempdir().expect("node dir"),
        node_name: unique_name("node"),
        net: NodeNet::new(),
        etcd,
        _forward: ForwardGuard::acquire(),
    };
    ha.net.create_veth();
    import_busybox(ha.node_dir.path());
    let a = ha.start_server(None);
    let b = ha.start_server(Some(a));

    // a write through one server is seen by a watch on the other, both ways
    let cm_watch = ha.node_dir.path().join("cm-watch.txt");
    ha.watch(b, &["configmaps", "-o", "name"], &cm_watch);
    let cm_watch_a = ha.node_dir.path().join("cm-watch-a.txt");
    ha.watch(a, &["configmaps", "-o", "name"], &cm_watch_a);
    ha.kubectl(a, &["create", "configmap", "written-via-a", "--from-literal=k=v"]);
    ha.kubectl(b, &["create", "configmap", "written-via-b", "--from-literal=k=v"]);
    poll_until("server B's watch to see the ConfigMap written through A", Duration::from_secs(30), || {
        std::fs::read_to_string(&cm_watch).unwrap_or_default().contains("configmap/written-via-a").then_some(())
    });
    poll_until("server A's watch to see the ConfigMap written through B", Duration::from_secs(30), || {
        std::fs::read_to_string(&cm_watch_a).unwrap_or_default().contains("configmap/written-via-b").then_some(())
    });

    // each Lease has one holder, one of the two servers, and only that server says it acquired it
    let ids: Vec<String> = (0..2)
        .map(|i| poll_until(&format!("server {i}'s leader election identity"), Duration::from_secs(30), || ha.servers[i].identity()))
        .collect();
    assert_ne!(ids[0], ids[1], "each server has its own holderIdentity");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname").trim().to_string();
    assert!(ids[0].starts_with(&format!("{host}_")), "holderIdentity is <hostname>_<uuid>: {}", ids[0]);
    let mut holders = BTreeMap::new();
    for lease in ["kube-scheduler", "kube-controller-manager"] {
        let (holder, _) = poll_until(&format!("lease {lease} held"), Duration::from_secs(30), || ha.lease(a, lease).filter(|(h, _)| !h.is_empty()));
        let leader = ids.iter().position(|id| *id == holder).unwrap_or_else(|| panic!("lease {lease} held by {holder}, neither server ({ids:?})"));
        assert!(ha.servers[leader].acquired(lease), "the holder logged the acquisition of {lease}");
        assert!(!ha.servers[1 - leader].acquired(lease), "the other server never acquired {lease}");
        holders.insert(lease, leader);
    }
    let table = ha.kubectl(b, &["get", "lease", "-n", "kube-system"]);
    eprintln!("kubectl get lease -n kube-system:\n{table}");
    let leader = holders["kube-controller-manager"];
    let survivor = 1 - leader;

    // the node talks to the server that stays up; so does every check below
    ha.start_kubelet(survivor);
    let pod_watch = ha.node_dir.path().join("pod-watch.txt");
    ha.watch(survivor, &["pods", "-l", "app=web", "-o", "jsonpath={.metadata.uid} {.metadata.name} {.metadata.ownerReferences[0].name}{\"\\n\"}"], &pod_watch);
    let rs_watch = ha.node_dir.path().join("rs-watch.txt");
    ha.watch(survivor, &["replicasets", "-o", "jsonpath={.metadata.uid} {.metadata.name}{\"\\n\"}"], &rs_watch);

    ha.kubectl_in(survivor, &["apply", "-f", "-"], DEPLOYMENT);
    ha.kubectl(survivor, &["rollout", "status", "deployment/web", "--timeout=180s"]);
    let first_rs = ha.kubectl(survivor, &["get", "rs", "-l", "app=web", "-o", "jsonpath={.items[*].metadata.name}"]).trim().to_string();
    assert!(!first_rs.is_empty() && !first_rs.contains(' '), "one ReplicaSet: {first_rs:?}");

    // roll out a new template; kill -9 the controller manager's leader once the new ReplicaSet has a pod
    let (_, transitions_before) = ha.lease(survivor, "kube-controller-manager").expect("lease");
    ha.kubectl(survivor, &["set", "env", "deployment/web", "VERSION=2"]);
    poll_until("the new ReplicaSet to have its first pod", Duration::from_secs(60), || {
        let seen = pods_seen(&pod_watch);
        seen.values().any(|(_, owner)| owner != &first_rs).then_some(())
    });
    let updated = ha.kubectl(survivor, &["get", "deployment", "web", "-o", "jsonpath={.status.updatedReplicas}"]);
    eprintln!("kill -9 of server {leader} (the controller manager's leader) with {} of 4 pods updated", updated.trim());
    let killed_at = Instant::now();
    ha.kill9_server(leader);
    let (holder, transitions) = poll_until("the other server to take the controller manager's Lease", Duration::from_secs(60), || {
        ha.lease(survivor, "kube-controller-manager").filter(|(h, _)| *h == ids[survivor])
    });
    let failover = killed_at.elapsed();
    eprintln!("failover: kube-controller-manager Lease held by {holder} {:.1} s after the kill -9 (lease duration 6 s)", failover.as_secs_f64());
    assert_eq!(transitions, transitions_before + 1, "leaseTransitions goes up by one on takeover");
    if holders["kube-scheduler"] == leader {
        poll_until("the other server to take the scheduler's Lease", Duration::from_secs(60), || {
            ha.lease(survivor, "kube-scheduler").filter(|(h, _)| *h == ids[survivor])
        });
    }

    // the rollout finishes on the new leader with exactly 4 pods of the new template
    ha.kubectl(survivor, &["rollout", "status", "deployment/web", "--timeout=180s"]);
    let new_rs = ha.kubectl(survivor, &["get", "deployment", "web", "-o", "jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}"]);
    assert_eq!(new_rs.trim(), "2", "revision 2");
    poll_until("exactly 4 pods, all of the new ReplicaSet, Running", Duration::from_secs(90), || {
        let rows = ha.kubectl(survivor, &["get", "pods", "-l", "app=web", "-o", "jsonpath={range .items[*]}{.metadata.ownerReferences[0].name} {.status.phase}{\"\\n\"}{end}"]);
        let rows: Vec<&str> = rows.lines().collect();
        (rows.len() == 4 && rows.iter().all(|r| !r.starts_with(&format!("{first_rs} ")) && r.ends_with(" Running"))).then_some(())
    });
    let status = ha.kubectl(survivor, &["get", "deployment", "web", "-o", "jsonpath={.status.replicas} {.status.updatedReplicas} {.status.availableReplicas}"]);
    assert_eq!(status.trim(), "4 4 4", "replicas, updatedReplicas, availableReplicas");

    // over the whole run: two ReplicaSets, four pods created by each, none twice
    let rs_names: BTreeSet<String> =
        std::fs::read_to_string(&rs_watch).unwrap_or_default().lines().filter_map(|l| l.split_whitespace().nth(1).map(str::to_string)).filter(|n| n.starts_with("web-")).collect();
    assert_eq!(rs_names.len(), 2, "one ReplicaSet per template: {rs_names:?}");
    let seen = pods_seen(&pod_watch);
    let mut per_rs: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (uid, (name, owner)) in &seen {
        per_rs.entry(owner.as_str()).or_default().insert(name.as_str());
        let _ = uid;
    }
    let names: BTreeSet<&str> = seen.values().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.len(), seen.len(), "no pod name reused by a second pod: {seen:?}");
    assert_eq!(per_rs.len(), 2, "pods of two ReplicaSets only: {per_rs:?}");
    for (rs, pods) in &per_rs {
        assert_eq!(pods.len(), 4, "ReplicaSet {rs} created exactly 4 pods over the run (none twice, none lost): {pods:?}");
    }
    eprintln!("pods created over the run, per ReplicaSet: {:?}", per_rs.iter().map(|(k, v)| (k, v.len())).collect::<Vec<_>>());
}
