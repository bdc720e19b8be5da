//! `rkube cluster up --nodes 3` with the real kubectl: one cluster shared by every check (CI time), in steps:
//! all nodes Ready (and how long `up` took, printed); a Deployment of 6 over all nodes; pod to pod across every
//! pair of nodes with the receiver seeing the sender's pod IP (no NAT); a ClusterIP Service by its DNS name from
//! a pod on every node; NodePort on every node's LAN address from a namespace playing an outside client; a node
//! stopped -> NotReady, its pods replaced elsewhere, the Service still answering; started again -> Ready, its
//! stale pods removed; a partitioned node NotReady, healed Ready. Every node joins with a bootstrap token (a CSR
//! each, Approved,Issued; each kubelet is system:node:<name>, refused another node's Lease). A DaemonSet runs
//! one pod per node and keeps it on a stopped node; a StatefulSet's pod on the stopped node is not replaced
//! until it is force-deleted (at most one pod per identity).
//!
//! The guard runs `rkube cluster down` on drop and checks nothing is left: network namespaces, the host link,
//! cgroups, mounts, the data dir.

mod local_cluster;
mod up_support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rkube_testsupport::{poll_until, require_command, require_root, unique_name};
use local_cluster::{rkube, LocalCluster};
use up_support::{import_busybox, kubectl_ok_with, kubectl_try_with, kubectl_with};

struct TestCluster {
    cluster: LocalCluster,
    client_ns: String,
    client_port: String,
}

impl std::ops::Deref for TestCluster {
    type Target = LocalCluster;
    fn deref(&self) -> &LocalCluster {
        &self.cluster
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl TestCluster {
    fn new() -> TestCluster {
        require_root();
        require_command("ip", "iproute2");
        require_command("nft", "nftables");
        require_command("kubectl", "kubectl");
        // a LAN of this test's own: 172.28.<100..199>.0/24
        let cluster = LocalCluster::new("c", [172, 28, 100 + (std::process::id() % 100) as u8]);
        TestCluster { cluster, client_ns: unique_name("rkcl"), client_port: unique_name("cl") }
    }

    fn kubectl_try(&self, args: &[&str]) -> Option<String> {
        kubectl_try_with(&self.kubeconfig(), args)
    }

    fn ready(&self, node: &str) -> String {
        self.kubectl_try(&["get", "node", node, "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"]).unwrap_or_default().trim().to_string()
    }

    /// Running, ready pods of app=web not being deleted: name -> (node, pod IP).
    fn web_pods(&self) -> BTreeMap<String, (String, String)> {
        let out = self
            .kubectl_try(&[
                "get",
                "pods",
                "-l",
                "app=web",
                "-o",
                "jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} {.status.podIP} {.status.phase} {.metadata.deletionTimestamp} {.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}",
            ])
            .unwrap_or_default();
        out.lines()
            .filter_map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                // a pod being deleted has one more field (its deletionTimestamp)
                (w.len() == 5 && w[3] == "Running" && w[4] == "True").then(|| (w[0].to_string(), (w[1].to_string(), w[2].to_string())))
            })
            .collect()
    }

    /// Pods of `app=<app>`: (name, node, phase, uid, being deleted).
    fn pods_of(&self, app: &str) -> Vec<(String, String, String, String, bool)> {
        let out = self
            .kubectl_try(&[
                "get",
                "pods",
                "-l",
                &format!("app={app}"),
                "-o",
                "jsonpath={range .items[*]}{.metadata.name}|{.spec.nodeName}|{.status.phase}|{.metadata.uid}|{.metadata.deletionTimestamp}{\"\\n\"}{end}",
            ])
            .unwrap_or_default();
        out.lines()
            .filter_map(|l| {
                let w: Vec<&str> = l.split('|').map(str::trim).collect();
                (w.len() == 5).then(|| (w[0].to_string(), w[1].to_string(), w[2].to_string(), w[3].to_string(), !w[4].is_empty()))
            })
            .collect()
    }

    /// One pod per node of `nodes` (node -> (pod, IP)).
    fn pod_per_node(&self, nodes: &[String]) -> BTreeMap<String, (String, String)> {
        let mut out = BTreeMap::new();
        for (pod, (node, ip)) in self.web_pods() {
            if nodes.contains(&node) {
                out.entry(node).or_insert((pod, ip));
            }
        }
        out
    }

    /// The server's answer to a TCP connection from pod `from` to `host:port`: `netstat -tn` run in the
    /// serving pod, which lists the connection with the client's address as the server sees it.
    fn connect_from_pod(&self, from: &str, host: &str, port: u16) -> Option<String> {
        self.kubectl_try(&["exec", from, "--", "sh", "-c", &format!("nc -w 5 {host} {port} </dev/null")])
    }

    /// The same, from the outside client namespace.
    fn connect_from_client(&self, host: &str, port: u16) -> Option<String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.client_ns, "timeout", "10", "bash", "-c", &format!("exec 3<>/dev/tcp/{host}/{port}; cat <&3")])
            .output()
            .expect("client");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (!text.is_empty()).then_some(text)
    }

    /// A namespace of the test's own on the LAN (.200), playing a machine outside the cluster.
    fn attach_client(&self) {
        let lan = format!("rkc-{}-lan", self.name);
        let [a, b, c] = self.subnet;
        ip(&["netns", "add", &self.client_ns]);
        ip(&["-n", &lan, "link", "add", &self.client_port, "type", "veth", "peer", "name", "eth0", "netns", &self.client_ns]);
        ip(&["-n", &lan, "link", "set", &self.client_port, "master", "lan", "up"]);
        ip(&["-n", &self.client_ns, "addr", "add", &format!("{a}.{b}.{c}.200/24"), "dev", "eth0"]);
        ip(&["-n", &self.client_ns, "link", "set", "eth0", "up"]);
        ip(&["-n", &self.client_ns, "link", "set", "lo", "up"]);
    }
}

impl Drop for TestCluster {
    /// The outside client's namespace; the cluster itself goes with [`LocalCluster`]'s drop.
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.client_ns]).stderr(Stdio::null()).status();
    }
}

const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 6
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 1
      # no tolerations of their own: the server's --default-*-toleration-seconds=2 (not upstream's 300) gives
      # them theirs, so they are replaced within seconds once their node is unreachable
      affinity:
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 100
            podAffinityTerm:
              topologyKey: kubernetes.io/hostname
              labelSelector: {matchLabels: {app: web}}
      containers:
      - name: c
        image: busybox:latest
        imagePullPolicy: Never
        # every connection to 8080 gets the pod's own view of its TCP connections, the client's address included
        command: ["sh", "-c", "while true; do nc -l -p 8080 -e netstat -tn; done"]
        readinessProbe:
          tcpSocket: {port: 8080}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - {port: 80, targetPort: 8080, nodePort: 30080}
"#;

/// A DaemonSet (one pod per node, upstream's default tolerations) and a StatefulSet of one (at most one pod of
/// an identity: never replaced while its node is unreachable, only once the pod is force-deleted).
const AGENT_AND_DB: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels: {app: agent}
  template:
    metadata:
      labels: {app: agent}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: busybox:latest
        imagePullPolicy: Never
        command: ["sleep", "3600"]
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  replicas: 1
  serviceName: db
  selector:
    matchLabels: {app: db}
  template:
    metadata:
      labels: {app: db}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: busybox:latest
        imagePullPolicy: Never
        command: ["sleep", "3600"]
"#;

#[test]
fn three_node_cluster() {
    let c = TestCluster::new();
    let [a, b, s3] = c.subnet;
    let subnet = format!("{a}.{b}.{s3}.0/24");
    // 1. up, timed
    let t0 = Instant::now();
    // this machine's disk may be fuller than the default nodefs threshold: pressure would taint every node
    // a node is Unknown after 25 s without a Lease renewal (upstream's --node-monitor-grace-period is 50 s; the
    // kubelet renews every 10 s)
    let out = c.cluster(&[
        "up",
        "--nodes",
        "3",
        "--subnet",
        &subnet,
        "--timeout",
        "180",
        "--kubelet-arg=--eviction-hard=memory.available<1Mi,nodefs.available<1%",
        "--server-arg=--node-monitor-grace-period=25s",
        // DefaultTolerationSeconds: pods evicted 2 s after their node is NotReady or unreachable
        "--server-arg=--default-not-ready-toleration-seconds=2",
        "--server-arg=--default-unreachable-toleration-seconds=2",
    ]);
    let took = t0.elapsed();
    eprintln!("{out}");
    eprintln!("MEASURE rkube cluster up --nodes 3 to all Ready: {:.2} s", took.as_secs_f64());
    let nodes: Vec<String> = (1..=3).map(|i| c.node(i)).collect();
    for n in &nodes {
        assert_eq!(c.ready(n), "True", "node {n} Ready once up returns");
    }
    let status = c.cluster(&["status"]);
    for (i, n) in nodes.iter().enumerate() {
        assert!(status.contains(n) && status.contains(&c.node_ip(i + 1)), "status lists {n}: {status}");
    }
    assert_eq!(status.matches("running").count(), 4, "server and 3 kubelets running: {status}");
    let wide = c.kubectl(&["get", "nodes", "-o", "wide"]);
    eprintln!("{wide}");
    for i in 1..=3 {
        assert!(wide.contains(&c.node_ip(i)), "node InternalIP {} in {wide}", c.node_ip(i));
    }
    // every node joined as upstream's nodes do: a CSR each, filed as the bootstrap token's user, approved and
    // signed; each kubelet runs as system:node:<name>, which the Node authorizer holds to its own objects
    let csrs = c.kubectl(&["get", "csr"]);
    eprintln!("{csrs}");
    let joined: Vec<&str> = csrs.lines().filter(|l| l.contains("system:bootstrap:") && l.contains("Approved,Issued")).collect();
    assert_eq!(joined.len(), 3, "one approved, issued CSR per node, requested by system:bootstrap:<token id>: {csrs}");
    for (i, n) in nodes.iter().enumerate() {
        let own = c.data.join(n).join("kubelet.conf");
        let other = &nodes[(i + 1) % 3];
        let whoami = kubectl_with(&own, &["auth", "whoami"]);
        assert!(whoami.contains(&format!("system:node:{n}")) && whoami.contains("system:nodes"), "{}: {whoami}", own.display());
        let out = up_support::kubectl_output_with(&own, &["get", "lease", "-n", "kube-node-lease", other], None);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(&format!("User \"system:node:{n}\" cannot get resource \"leases\"")), "{n}'s credential may not read {other}'s Lease: {err}");
    }
    // no agent was handed the admin kubeconfig: each runs `rkube join` with the token (its first start)
    for pid in status.lines().filter_map(|l| l.split("kubelet pid ").nth(1)).filter_map(|r| r.split_whitespace().next()) {
        let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default().replace('\0', " ");
        assert!(cmdline.contains(" join --server ") && cmdline.contains("--discovery-token-ca-cert-hash sha256:"), "agent {pid} joined with a token: {cmdline}");
        assert!(!cmdline.contains(&c.kubeconfig().display().to_string()), "agent {pid} has no admin credential: {cmdline}");
    }
    // each node has its own image store
    for n in &nodes {
        import_busybox(&c.data.join(n));
    }

    // 2. a Deployment of 6 over all nodes
    kubectl_ok_with(&c.kubeconfig(), &["apply", "-f", "-"], Some(WEB));
    kubectl_ok_with(&c.kubeconfig(), &["apply", "-f", "-"], Some(AGENT_AND_DB));
    poll_until("6 web pods ready on all 3 nodes", Duration::from_secs(120), || {
        let pods = c.web_pods();
        let on: BTreeSet<&String> = pods.values().map(|(n, _)| n).collect();
        (pods.len() == 6 && on.len() == 3).then_some(())
    });
    let per_node = c.pod_per_node(&nodes);
    eprintln!("one pod per node: {per_node:?}");
    // the apiserver's DefaultTolerationSeconds gave each pod the configured 2 s, the DaemonSet's pods keep the
    // DaemonSet controller's tolerations without a limit
    let (web_pod, _) = per_node.values().next().expect("a web pod");
    let tols = c.kubectl(&["get", "pod", web_pod, "-o", "jsonpath={range .spec.tolerations[*]}{.key}={.effect}/{.tolerationSeconds} {end}"]);
    let mut tols: Vec<&str> = tols.split_whitespace().collect();
    tols.sort();
    assert_eq!(tols, ["node.kubernetes.io/not-ready=NoExecute/2", "node.kubernetes.io/unreachable=NoExecute/2"], "{web_pod}'s tolerations");
    // the DaemonSet: exactly one running pod on every Ready node
    poll_until("one agent pod running on each of the 3 nodes", Duration::from_secs(60), || {
        let pods = c.pods_of("agent");
        let on: BTreeSet<&String> = pods.iter().filter(|p| p.2 == "Running").map(|p| &p.1).collect();
        (pods.len() == 3 && on.len() == 3).then_some(())
    });
    let db = poll_until("db-0 running", Duration::from_secs(60), || c.pods_of("db").into_iter().find(|p| p.0 == "db-0" && p.2 == "Running"));
    let agent = c.pods_of("agent").into_iter().next().expect("an agent pod").0;
    let unlimited = c.kubectl(&["get", "pod", &agent, "-o", "jsonpath={.spec.tolerations[?(@.key==\"node.kubernetes.io/unreachable\")].tolerationSeconds}"]);
    assert_eq!(unlimited.trim(), "", "{agent} tolerates unreachable without a limit (the DaemonSet's own toleration, not a default one)");
    // the routes a node keeps (shown in docs/cluster.md)
    let routes = String::from_utf8_lossy(&Command::new("ip").args(["-n", &format!("rkc-{}", nodes[0]), "route"]).output().expect("ip").stdout).into_owned();
    eprintln!("routes in node {}:\n{routes}", nodes[0]);
    for (n, i) in [(&nodes[1], 2), (&nodes[2], 3)] {
        let cidr = c.kubectl(&["get", "node", n, "-o", "jsonpath={.spec.podCIDR}"]);
        assert!(routes.contains(&format!("{} via {}", cidr.trim(), c.node_ip(i))), "route to {n}'s podCIDR {cidr} via its address in {routes}");
    }

    // 3. pod to pod across every pair of nodes, and the receiver sees the sender's pod IP
    for (from_node, (from_pod, from_ip)) in &per_node {
        for (to_node, (_, to_ip)) in &per_node {
            if from_node == to_node {
                continue;
            }
            let seen = poll_until(&format!("{from_node} -> {to_node}"), Duration::from_secs(30), || c.connect_from_pod(from_pod, to_ip, 8080).filter(|s| s.contains(":8080")));
            // e.g. `tcp 1 0 ::ffff:10.244.1.2:8080 ::ffff:10.244.0.2:38652 CLOSE_WAIT` (the client has sent EOF).
            // The receiver's table also holds earlier pairs' connections in TIME_WAIT, so look at every
            // connection to its port: one comes from the sender's pod IP, none from a node address (SNAT).
            let foreigns: Vec<&str> = seen
                .lines()
                .filter(|l| l.split_whitespace().nth(3).is_some_and(|local| local.trim_start_matches("::ffff:") == format!("{to_ip}:8080")))
                .filter_map(|l| l.split_whitespace().nth(4))
                .map(|f| f.trim_start_matches("::ffff:"))
                .collect();
            assert!(foreigns.iter().any(|f| f.starts_with(&format!("{from_ip}:"))), "{to_node} sees the connection from {from_node}'s pod {from_ip}: {seen}");
            let lan = format!("{}.", c.node_ip(1).rsplit_once('.').expect("a dotted node address").0);
            assert!(!foreigns.iter().any(|f| f.starts_with(&lan)), "{to_node} sees a connection from a node address (masqueraded), not a pod IP: {seen}");
        }
    }

    // 4. ClusterIP by DNS name from a pod on every node
    for (node, (pod, _)) in &per_node {
        poll_until(&format!("web.default.svc.cluster.local:80 from {node}"), Duration::from_secs(30), || {
            c.connect_from_pod(pod, "web.default.svc.cluster.local", 80).filter(|s| s.contains(":8080"))
        });
    }

    // 5. NodePort on every node's LAN address from outside
    c.attach_client();
    for i in 1..=3 {
        let addr = c.node_ip(i);
        poll_until(&format!("NodePort {addr}:30080 from the client"), Duration::from_secs(30), || c.connect_from_client(&addr, 30080).filter(|s| s.contains(":8080")));
    }

    // 6. a node stopped (the one db-0 runs on): NotReady, its pods replaced elsewhere, the Service still
    // answering; its DaemonSet pod stays (it tolerates unreachable), db-0 is not replaced until force-deleted
    let gone_i = nodes.iter().position(|n| *n == db.1).expect("db-0 on a cluster node") + 1;
    let gone = nodes[gone_i - 1].clone();
    let up_i: Vec<usize> = (1..=3).filter(|i| *i != gone_i).collect();
    let stale: BTreeSet<String> = c.web_pods().into_iter().filter(|(_, (n, _))| *n == gone).map(|(p, _)| p).collect();
    assert!(!stale.is_empty(), "pods ran on {gone}");
    eprintln!("{}", c.cluster(&["node", "stop", &gone]));
    let t = Instant::now();
    poll_until(&format!("{gone} NotReady"), Duration::from_secs(120), || (c.ready(&gone) != "True").then_some(()));
    eprintln!("MEASURE node NotReady after its agent stopped: {:.1} s", t.elapsed().as_secs_f64());
    let taints = c.kubectl(&["get", "node", &gone, "-o", "jsonpath={.spec.taints[*].key}"]);
    assert!(taints.contains("node.kubernetes.io/unreachable"), "unreachable taint on {gone}: {taints}");
    poll_until("6 web pods ready on the other nodes", Duration::from_secs(120), || {
        let pods = c.web_pods();
        (pods.len() == 6 && pods.values().all(|(n, _)| *n != gone)).then_some(())
    });
    // at most one db-0: evicted (being deleted) but still the same pod on the unreachable node, and no other
    let dbs = c.pods_of("db");
    assert!(
        dbs.len() == 1 && dbs[0].0 == "db-0" && dbs[0].1 == gone && dbs[0].3 == db.3 && dbs[0].4,
        "db-0 stays the one pod, Terminating on {gone}, while its node is unreachable: {dbs:?}"
    );
    let agents = c.pods_of("agent");
    assert!(agents.iter().any(|p| p.1 == gone && !p.4) && agents.len() == 3, "the agent pod on {gone} is not evicted: {agents:?}");
    c.kubectl(&["delete", "pod", "db-0", "--grace-period=0", "--force"]);
    let moved = poll_until("db-0 again on a live node after the force delete", Duration::from_secs(60), || {
        c.pods_of("db").into_iter().find(|p| p.0 == "db-0" && p.2 == "Running" && p.3 != db.3 && !p.4)
    });
    assert_ne!(moved.1, gone, "the new db-0 runs on a live node");
    for &i in &up_i {
        let addr = c.node_ip(i);
        poll_until(&format!("NodePort {addr}:30080 with {gone} down"), Duration::from_secs(30), || c.connect_from_client(&addr, 30080).filter(|s| s.contains(":8080")));
    }
    let survivor = c.pod_per_node(&nodes[up_i[0] - 1..up_i[0]]).into_values().next().expect("a pod on a live node").0;
    poll_until("the Service from a pod with a node down", Duration::from_secs(30), || c.connect_from_pod(&survivor, "web", 80).filter(|s| s.contains(":8080")));

    // 7. started again: Ready, its stale pods removed
    eprintln!("{}", c.cluster(&["node", "start", &gone]));
    poll_until(&format!("{gone} Ready again"), Duration::from_secs(60), || (c.ready(&gone) == "True").then_some(()));
    poll_until(&format!("stale pods of {gone} removed"), Duration::from_secs(90), || {
        let names = c.kubectl_try(&["get", "pods", "-l", "app=web", "-o", "jsonpath={.items[*].metadata.name}"])?;
        let left: Vec<&str> = names.split_whitespace().filter(|p| stale.contains(*p)).collect();
        left.is_empty().then_some(())
    });

    // 8. a partitioned node: NotReady while cut off, Ready once healed
    let cut = nodes[up_i[0] - 1].clone();
    eprintln!("{}", c.cluster(&["node", "partition", &cut]));
    assert!(c.cluster(&["status"]).contains("PARTITIONED"));
    poll_until(&format!("{cut} NotReady while partitioned"), Duration::from_secs(120), || (c.ready(&cut) != "True").then_some(()));
    eprintln!("{}", c.cluster(&["node", "heal", &cut]));
    poll_until(&format!("{cut} Ready once healed"), Duration::from_secs(60), || (c.ready(&cut) == "True").then_some(()));
}

#[test]
fn bad_input_leaves_nothing_behind() {
    require_root();
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("x");
    for (args, want) in [
        (vec!["--name", "Bad_Name"], "cluster name"),
        (vec!["--name", "ok", "--subnet", "8.8.8.0/24"], "private"),
        (vec!["--name", "ok", "--subnet", "10.244.1.0/24"], "pod CIDR"),
        (vec!["--name", "ok", "--nodes", "0"], "node count"),
    ] {
        let mut a = vec!["cluster", "up", "--data-dir", data.to_str().expect("utf8")];
        a.extend(args);
        let out = rkube(&a);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(want), "{a:?}: {err}");
        assert!(!data.exists(), "nothing made for {a:?}");
    }
    let out = rkube(&["cluster", "down", "--name", "nothere", "--data-dir", data.to_str().expect("utf8")]);
    assert!(out.status.success(), "down of nothing is fine: {}", String::from_utf8_lossy(&out.stderr));
    let out = rkube(&["cluster", "status", "--name", "nothere", "--data-dir", data.to_str().expect("utf8")]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("no cluster"));
}
