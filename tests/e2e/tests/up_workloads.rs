//! Workloads on `rkube up` (and on `rkube server` + a separate `rkube kubelet`) with the real kubectl, as root:
//! a Deployment through a standalone kubelet, a ReplicaSet of 3, a rolling image update and `rollout undo` with
//! two busybox tags from a local docker-registry, Services (NodePort from a test netns through the node's test
//! address, ClusterIP from a pod), cluster DNS from a pod, and an image pulled with imagePullSecrets from a
//! registry that requires basic auth. Every test owns its names; nothing may be left behind.
//!
//! Needs the binaries: `cargo build -p rkube -p rkube-kubelet -p rkube-runtime -p rkube-cni --bins`.

mod up_support;

use std::process::{Command, Stdio};
use std::time::Duration;

use rkube_testsupport::{poll_until, tcp_connect_in, unique_name, ConnectOutcome};
use up_support::{bin, mounts_under, SplitCluster, Up};

fn jsonpath(up: &Up, args: &[&str]) -> String {
    up.kubectl(args).trim().to_string()
}

/// Pod names and phases of `selector`, once exactly `n` pods are Running.
fn wait_running(up: &Up, selector: &str, n: usize, within: Duration) -> Vec<String> {
    poll_until(&format!("{n} pods of {selector} Running"), within, || {
        let out = up.kubectl(&["get", "pods", "-l", selector, "-o", "jsonpath={range .items[*]}{.metadata.name} {.status.phase} {.metadata.deletionTimestamp}{\"\\n\"}{end}"]);
        let rows: Vec<Vec<&str>> = out.lines().map(|l| l.split_whitespace().collect()).collect();
        let running: Vec<String> = rows.iter().filter(|r| r.len() == 2 && r[1] == "Running").map(|r| r[0].to_string()).collect();
        (rows.len() == n && running.len() == n).then_some(running)
    })
}

#[test]
fn up_runs_a_replicaset_of_three() {
    let up = Up::start();
    let rs = r#"
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: trio
spec:
  replicas: 3
  selector:
    matchLabels: {app: trio}
  template:
    metadata:
      labels: {app: trio}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: busybox:latest
        imagePullPolicy: Never
        command: ["sh", "-c", "sleep 3600"]
"#;
    up.kubectl_ok(&["apply", "-f", "-"], Some(rs));
    let pods = wait_running(&up, "app=trio", 3, Duration::from_secs(90));
    let ips = up.kubectl(&["get", "pods", "-l", "app=trio", "-o", "jsonpath={.items[*].status.podIP}"]);
    let ips: Vec<&str> = ips.split_whitespace().collect();
    assert_eq!(ips.len(), 3, "{ips:?}");
    assert!(ips.iter().all(|ip| ip.starts_with(&up.subnet_prefix)), "{ips:?} in {}0/24", up.subnet_prefix);
    assert_eq!(jsonpath(&up, &["get", "rs", "trio", "-o", "jsonpath={.status.readyReplicas}"]), "3");
    // a deleted pod is replaced
    up.kubectl_ok(&["delete", "pod", &pods[0], "--wait=false"], None);
    poll_until("replacement pod Running", Duration::from_secs(60), || {
        let now = wait_running(&up, "app=trio", 3, Duration::from_secs(60));
        (!now.contains(&pods[0])).then_some(())
    });
    up.kubectl_ok(&["delete", "rs", "trio", "--timeout=90s"], None);
    let pods_dir = up.data.path().join("kubelet/pods");
    poll_until("pod directories removed", Duration::from_secs(60), || {
        (std::fs::read_dir(&pods_dir).map(|d| d.count()).unwrap_or(0) == 0).then_some(())
    });
    assert_eq!(mounts_under(up.data.path()), 0, "no mounts left");
}

#[test]
fn up_rolls_a_deployment_to_a_new_image_and_back() {
    let up = Up::start();
    let registry = rkube_testsupport::Registry::start();
    for tag in ["1.36", "1.37"] {
        let layout = rkube_testsupport::busybox_oci_layout(&up.data.path().join(format!("oci-{tag}")), tag, &["sh"]);
        registry.push(&layout, "library/busybox", tag);
    }
    let first = format!("{}/library/busybox:1.36", registry.host());
    let second = format!("{}/library/busybox:1.37", registry.host());
    let deploy = format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: roll
spec:
  replicas: 3
  selector:
    matchLabels: {{app: roll}}
  template:
    metadata:
      labels: {{app: roll}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: {first}
        command: ["sh", "-c", "sleep 3600"]
"#
    );
    up.kubectl_ok(&["apply", "-f", "-"], Some(&deploy));
    up.kubectl_ok(&["rollout", "status", "deployment/roll", "--timeout=120s"], None);
    let images = |up: &Up| {
        let out = up.kubectl(&["get", "pods", "-l", "app=roll", "-o", "jsonpath={range .items[*]}{.spec.containers[0].image} {.status.phase}{\"\\n\"}{end}"]);
        out.lines().map(str::to_string).collect::<Vec<_>>()
    };
    let wait_all = |up: &Up, image: &str| {
        poll_until(&format!("3 Running pods of {image}"), Duration::from_secs(120), || {
            let rows = images(up);
            (rows.len() == 3 && rows.iter().all(|r| *r == format!("{image} Running"))).then_some(())
        })
    };
    wait_all(&up, &first);
    up.kubectl_ok(&["set", "image", "deployment/roll", &format!("c={second}")], None);
    up.kubectl_ok(&["rollout", "status", "deployment/roll", "--timeout=180s"], None);
    wait_all(&up, &second);
    let history = up.kubectl_ok(&["rollout", "history", "deployment/roll"], None);
    assert_eq!(revisions(&history), ["1", "2"], "two revisions: {history}");
    up.kubectl_ok(&["rollout", "undo", "deployment/roll"], None);
    up.kubectl_ok(&["rollout", "status", "deployment/roll", "--timeout=180s"], None);
    wait_all(&up, &first);
    // undo re-used revision 1's template as revision 3
    let history = up.kubectl_ok(&["rollout", "history", "deployment/roll"], None);
    assert_eq!(revisions(&history), ["2", "3"], "revision 1 became 3: {history}");
    assert_eq!(
        jsonpath(&up, &["get", "deployment", "roll", "-o", "jsonpath={.spec.template.spec.containers[0].image}"]),
        first,
        "undo restored the first image"
    );
    up.kubectl_ok(&["delete", "deployment", "roll", "--timeout=90s"], None);
    poll_until("pods gone", Duration::from_secs(90), || up.kubectl(&["get", "pods", "-o", "name"]).trim().is_empty().then_some(()));
}

/// The REVISION column of `kubectl rollout history`: the rows under the `REVISION  CHANGE-CAUSE` header.
fn revisions(history: &str) -> Vec<String> {
    let mut lines = history.lines().skip_while(|l| !l.starts_with("REVISION"));
    assert!(lines.next().is_some(), "no REVISION header in {history:?}");
    lines.filter_map(|l| l.split_whitespace().next()).map(str::to_string).collect()
}

/// A netns holding the peer end of the node's veth, as a client outside the node; deleted on drop.
struct ClientNs {
    name: String,
}

impl ClientNs {
    fn new(up: &Up) -> ClientNs {
        let ns = ClientNs { name: unique_name("rkc") };
        let peer = format!("{}p", up.net.veth);
        let client_ip = up.node_ip.trim_end_matches(".1").to_string() + ".2";
        for args in [
            vec!["netns", "add", &ns.name],
            vec!["link", "set", &peer, "netns", &ns.name],
            vec!["-n", &ns.name, "addr", "add", &format!("{client_ip}/24"), "dev", &peer],
            vec!["-n", &ns.name, "link", "set", &peer, "up"],
            vec!["-n", &ns.name, "link", "set", "lo", "up"],
        ] {
            assert!(Command::new("ip").args(&args).status().expect("ip").success(), "ip {args:?}");
        }
        ns
    }

    /// `wget -qO- url` from inside the netns (busybox; no -T, which crashes here), or None on failure.
    fn get(&self, url: &str) -> Option<String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "busybox", "wget", "-qO-", url])
            .stderr(Stdio::null())
            .output()
            .ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for ClientNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

#[test]
fn up_serves_nodeport_clusterip_and_cluster_dns() {
    let up = Up::start();
    let manifest = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: httpd
        image: busybox:latest
        imagePullPolicy: Never
        command: ["sh", "-c", "mkdir -p /www; echo served-by-$(hostname) > /www/index.html; httpd -f -p 8080 -h /www"]
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
  - {port: 80, targetPort: 8080}
---
apiVersion: v1
kind: Pod
metadata:
  name: client
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", "cat /etc/resolv.conf; while true; do echo ---; ping -c1 -W1 kubernetes.default; ping -c1 -W1 web; wget -qO- http://web/; sleep 2; done"]
"#;
    up.kubectl_ok(&["apply", "-f", "-"], Some(manifest));
    up.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=120s"], None);
    let svc = up.kubectl(&["get", "svc", "-A", "-o", "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}={.spec.clusterIP} {end}"]);
    assert!(svc.contains(&format!("kube-system/kube-dns={}", up.net.cluster_dns)), "kube-dns Service with the cluster DNS address: {svc}");
    let cluster_ip = jsonpath(&up, &["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"]);
    let node_port = jsonpath(&up, &["get", "svc", "web", "-o", "jsonpath={.spec.ports[0].nodePort}"]);

    // NodePort from outside the node: a netns on the node's test link
    let client = ClientNs::new(&up);
    let url = format!("http://{}:{node_port}/", up.node_ip);
    let body = poll_until(&format!("NodePort {url} from netns {}", client.name), Duration::from_secs(60), || client.get(&url));
    assert!(body.starts_with("served-by-web-"), "{body}");

    // the client pod: resolv.conf, DNS names, and the ClusterIP
    poll_until("client pod Running", Duration::from_secs(60), || {
        (jsonpath(&up, &["get", "pod", "client", "-o", "jsonpath={.status.phase}"]) == "Running").then_some(())
    });
    let logs = poll_until("client resolved both names and reached the ClusterIP", Duration::from_secs(60), || {
        let l = up.kubectl(&["logs", "client"]);
        // ping prints the address getaddrinfo found through the search path; wget reaches the ClusterIP by name
        (l.contains("served-by-web-") && l.contains(&format!("PING web ({cluster_ip})")) && l.contains("PING kubernetes.default (10.96.0.1)"))
            .then_some(l)
    });
    let resolv: Vec<&str> = logs.lines().take_while(|l| *l != "---").collect();
    assert!(resolv.contains(&format!("nameserver {}", up.net.cluster_dns).as_str()), "{resolv:?}");
    assert!(resolv.contains(&"search default.svc.cluster.local svc.cluster.local cluster.local"), "{resolv:?}");
    assert!(resolv.contains(&"options ndots:5"), "{resolv:?}");

    up.kubectl_ok(&["delete", "deployment", "web", "--timeout=90s"], None);
    up.kubectl_ok(&["delete", "pod", "client", "--timeout=60s"], None);
    // no endpoints: the NodePort is refused (ECONNREFUSED from the proxy's reject), not dropped to time out;
    // polled until the endpoints' removal reaches the proxy, and only a refusal ends the poll
    let port: u16 = node_port.parse().expect("nodePort");
    poll_until("NodePort refused once the endpoints are gone", Duration::from_secs(30), || {
        let outcome = tcp_connect_in(&client.name, &up.node_ip, port, Duration::from_secs(5));
        eprintln!("NodePort {}:{port} without endpoints: {outcome:?}", up.node_ip);
        (outcome == ConnectOutcome::Refused).then_some(())
    });
}

#[test]
fn up_pulls_with_image_pull_secrets() {
    let up = Up::start();
    let hash = bcrypt::hash("s3cret-pull", 5).expect("bcrypt");
    let registry = rkube_testsupport::Registry::start_with_htpasswd(&format!("puller:{hash}"));
    let layout = rkube_testsupport::busybox_oci_layout(&up.data.path().join("oci-auth"), "1.36", &["sh"]);
    registry.push_as(&layout, "private/busybox", "1.36", Some("puller:s3cret-pull"));
    let image = format!("{}/private/busybox:1.36", registry.host());
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode("puller:s3cret-pull");
    let dockercfg = format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, registry.host());
    let manifest = format!(
        r#"
apiVersion: v1
kind: Secret
metadata:
  name: regcred
type: kubernetes.io/dockerconfigjson
data:
  .dockerconfigjson: {}
---
apiVersion: v1
kind: Pod
metadata:
  name: with-secret
spec:
  terminationGracePeriodSeconds: 1
  imagePullSecrets: [{{name: regcred}}]
  containers:
  - name: c
    image: {image}
    command: ["sh", "-c", "echo private-ok; sleep 3600"]
"#,
        base64::engine::general_purpose::STANDARD.encode(dockercfg)
    );
    up.kubectl_ok(&["apply", "-f", "-"], Some(&manifest));
    up.kubectl_ok(&["wait", "--for=condition=Ready", "pod/with-secret", "--timeout=90s"], None);
    poll_until("logs", Duration::from_secs(20), || up.kubectl(&["logs", "with-secret"]).contains("private-ok").then_some(()));
    // the Pulling and Pulled events, in full as upstream's kubelet words them
    let events = up.kubectl(&["get", "events", "--field-selector", "involvedObject.name=with-secret", "-o", "jsonpath={range .items[*]}{.type}|{.reason}|{.message}{\"\\n\"}{end}"]);
    assert!(events.lines().any(|l| l == format!("Normal|Pulling|Pulling image \"{image}\"")), "{events}");
    // the size the Pulled event gives is the one the node then reports for the image (status every 10 s)
    let size = poll_until("the node lists the pulled image", Duration::from_secs(30), || {
        let nodes: serde_json::Value = serde_json::from_str(&up.kubectl(&["get", "nodes", "-o", "json"])).expect("nodes json");
        nodes["items"][0]["status"]["images"].as_array()?.iter().find_map(|i| {
            i["names"].as_array()?.iter().any(|n| n.as_str() == Some(image.as_str())).then(|| i["sizeBytes"].to_string())
        })
    });
    let pulled = events.lines().find_map(|l| l.strip_prefix("Normal|Pulled|")).unwrap_or_else(|| panic!("a Pulled event in {events}"));
    assert_pulled_message(pulled, &image, size.trim());
    // The same image without the secret. The image is on the node now, so with IfNotPresent the kubelet would
    // use it as upstream does; imagePullPolicy Always makes it ask the registry with the pod's own (no)
    // credentials: the registry says 401 and the pod reports the pull failure.
    let without = format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: without-secret
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: {image}
    imagePullPolicy: Always
    command: ["sh", "-c", "sleep 3600"]
"#
    );
    up.kubectl_ok(&["apply", "-f", "-"], Some(&without));
    let (reason, message) = poll_until("pull without credentials fails", Duration::from_secs(60), || {
        let r = jsonpath(&up, &["get", "pod", "without-secret", "-o", "jsonpath={.status.containerStatuses[0].state.waiting.reason}|{.status.containerStatuses[0].state.waiting.message}"]);
        let (reason, message) = r.split_once('|')?;
        ["ErrImagePull", "ImagePullBackOff"].contains(&reason).then(|| (reason.to_string(), message.to_string()))
    });
    // the registry's 401, in full: the puller's error (rkube's wording), then upstream's frames around it
    let pull_error = format!(
        "failed to pull image \"{image}\": unauthorized (HTTP 401) from registry {}: registry requires a username and password (imagePullSecrets)",
        registry.host()
    );
    let want = match reason.as_str() {
        "ErrImagePull" => pull_error.clone(),
        _ => format!("Back-off pulling image \"{image}\": ErrImagePull: {pull_error}"),
    };
    assert_eq!(message, want, "waiting {reason}");
    let events = up.kubectl(&["get", "events", "--field-selector", "involvedObject.name=without-secret,reason=Failed", "-o", "jsonpath={range .items[*]}{.message}{\"\\n\"}{end}"]);
    let failed_pull = format!("Failed to pull image \"{image}\": {pull_error}");
    assert!(events.lines().any(|l| l == failed_pull), "a Failed event {failed_pull:?} in {events}");
    assert!(events.lines().any(|l| l == "Error: ErrImagePull"), "{events}");
    // after the first failure, the next start waits: upstream's BackOff event (Normal, the plain message; the
    // waiting message above carries the error) and the start's own Failed event
    let events = poll_until("the pull backs off", Duration::from_secs(60), || {
        let e = up.kubectl(&["get", "events", "--field-selector", "involvedObject.name=without-secret", "-o", "jsonpath={range .items[*]}{.type}|{.reason}|{.message}{\"\\n\"}{end}"]);
        e.lines().any(|l| l.starts_with("Normal|BackOff|")).then_some(e)
    });
    assert!(events.lines().any(|l| l == format!("Normal|BackOff|Back-off pulling image \"{image}\"")), "{events}");
    assert!(events.lines().any(|l| l == "Warning|Failed|Error: ImagePullBackOff"), "{events}");
    // imagePullPolicy Never and an image the node lacks: upstream's ErrImageNeverPull, in its words, and no
    // pull (no Pulling event, never a pull back-off)
    let missing = format!("{image}-not-on-this-node");
    let never = format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: never-pull
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: {missing}
    imagePullPolicy: Never
"#
    );
    up.kubectl_ok(&["apply", "-f", "-"], Some(&never));
    let want = format!("ErrImageNeverPull|Container image \"{missing}\" is not present with pull policy of Never");
    poll_until("ErrImageNeverPull", Duration::from_secs(60), || {
        let r = jsonpath(&up, &["get", "pod", "never-pull", "-o", "jsonpath={.status.containerStatuses[0].state.waiting.reason}|{.status.containerStatuses[0].state.waiting.message}"]);
        (r == want).then_some(())
    });
    let events = poll_until("the never-pull events", Duration::from_secs(30), || {
        let e = up.kubectl(&["get", "events", "--field-selector", "involvedObject.name=never-pull", "-o", "jsonpath={range .items[*]}{.type}|{.reason}|{.message}{\"\\n\"}{end}"]);
        e.lines().any(|l| l == "Warning|Failed|Error: ErrImageNeverPull").then_some(e)
    });
    let never_event = format!("Warning|ErrImageNeverPull|Container image \"{missing}\" is not present with pull policy of Never");
    assert!(events.lines().any(|l| l == never_event), "{never_event:?} in {events}");
    assert!(!events.lines().any(|l| l.contains("|Pulling|") || l.contains("BackOff")), "{events}");
}

/// Upstream's Pulled event: `Successfully pulled image "IMAGE" in D (D including waiting). Image size: N bytes.`,
/// each D a Go duration truncated to the millisecond (`512ms`, `1.234s`, `1m2.5s`), N the image's size the node
/// reports for it.
fn assert_pulled_message(msg: &str, image: &str, size: &str) {
    let go_duration = |d: &str| {
        let ms = d.strip_suffix("ms").filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && !n.starts_with('0'));
        let s = d.strip_suffix('s').and_then(|r| {
            let r = r.rsplit_once('m').map(|(m, s)| (m.bytes().all(|b| b.is_ascii_digit()) && !m.is_empty()).then_some(s)).unwrap_or(Some(r))?;
            let (i, f) = r.split_once('.').unwrap_or((r, ""));
            (!i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()) && f.len() <= 3 && f.bytes().all(|b| b.is_ascii_digit()) && !f.ends_with('0')).then_some(())
        });
        ms.is_some() || s.is_some()
    };
    let rest = msg.strip_prefix(&format!("Successfully pulled image \"{image}\" in ")).unwrap_or_else(|| panic!("Pulled: {msg}"));
    let (d1, rest) = rest.split_once(" (").unwrap_or_else(|| panic!("Pulled: {msg}"));
    let (d2, rest) = rest.split_once(" including waiting). Image size: ").unwrap_or_else(|| panic!("Pulled: {msg}"));
    assert!(go_duration(d1) && go_duration(d2), "Go durations in {msg}");
    assert_eq!(rest, format!("{size} bytes."), "Pulled: {msg}");
}

/// `rkube server` and a separate `rkube kubelet` process (node address on a test veth): a Deployment of 2 goes
/// Ready through kubectl, and `rkube down` on the kubelet's data dir removes what the kubelet made.
#[test]
fn server_and_a_separate_kubelet_run_a_deployment() {
    let mut c = SplitCluster::start();
    let node_name = c.node_name.clone();
    let kubectl = |args: &[&str]| c.kubectl(args);
    let ip = kubectl(&["get", "node", &node_name, "-o", "jsonpath={.status.addresses[?(@.type==\"InternalIP\")].address}"]);
    assert_eq!(ip, c.net.node_ip);
    c.kubectl_ok(&["create", "deployment", "pair", "--image=busybox:latest", "--replicas=2", "--", "sh", "-c", "sleep 3600"]);
    // busybox:latest defaults to pullPolicy Always; the node works offline, so pin it to the imported image
    let patch = r#"{"spec":{"template":{"spec":{"terminationGracePeriodSeconds":1,"containers":[{"name":"busybox","imagePullPolicy":"Never"}]}}}}"#;
    c.kubectl_ok(&["patch", "deployment", "pair", "-p", patch]);
    c.kubectl_ok(&["rollout", "status", "deployment/pair", "--timeout=120s"]);
    let rows = kubectl(&["get", "pods", "-l", "app=pair", "-o", "jsonpath={range .items[*]}{.spec.nodeName} {.status.phase} {.status.podIP}{\"\\n\"}{end}"]);
    let running: Vec<&str> = rows.lines().filter(|l| l.starts_with(&format!("{node_name} Running {}", c.net.subnet_prefix))).collect();
    assert_eq!(running.len(), 2, "two pods Running on {node_name} in {}0/24: {rows}", c.net.subnet_prefix);
    let svc = kubectl(&["get", "svc", "-n", "kube-system", "kube-dns", "-o", "jsonpath={.spec.clusterIP}"]);
    assert_eq!(svc, c.net.cluster_dns, "rkube server made the kube-dns Service");

    // The joined kubelet's API is HTTPS and admits only certificates of the cluster CA (learnt from the
    // kubeconfig); the apiserver gets in with its own, so exec and logs still work through kubectl.
    let pod = kubectl(&["get", "pods", "-l", "app=pair", "-o", "jsonpath={.items[0].metadata.name}"]);
    assert_eq!(kubectl(&["exec", &pod, "--", "echo", "through-https"]).trim(), "through-https", "kubectl exec via the kubelet's HTTPS API");
    c.kubectl_ok(&["logs", &pod]);
    let url = format!("https://{}:10250/containerLogs/default/{pod}/busybox", c.net.node_ip);
    let curl = |extra: &[&str], url: &str| {
        let out = Command::new("curl").args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10"]).args(extra).arg(url).output().expect("curl");
        (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    let (_, code, err) = curl(&["-k"], &url);
    assert_eq!(code, "401", "no client certificate must not get in: upstream's 401 ({})", err.trim());
    let (ok, code, _) = curl(&[], &url.replacen("https://", "http://", 1));
    assert!(!ok || code == "400", "plain HTTP must not reach the API (HTTP {code})");
    let pki = c.server_dir.path().join("pki");
    let (cert, key) = (pki.join("admin.crt"), pki.join("admin.key"));
    let (ok, code, err) = curl(&["-k", "--cert", cert.to_str().expect("utf8"), "--key", key.to_str().expect("utf8")], &url);
    assert!(ok && code == "200", "a certificate of the cluster CA gets in: HTTP {code} {err}");
    let served = Command::new("openssl")
        .args(["s_client", "-connect", &format!("{}:10250", c.net.node_ip), "-cert", cert.to_str().expect("utf8"), "-key", key.to_str().expect("utf8")])
        .stdin(Stdio::null())
        .output()
        .expect("openssl");
    let kubelet_crt = std::fs::read_to_string(c.node_dir.path().join("pki/kubelet.crt")).expect("the kubelet wrote its certificate");
    let body: String = kubelet_crt.lines().filter(|l| !l.starts_with("-----")).collect();
    let shown: String = String::from_utf8_lossy(&served.stdout)
        .split("-----BEGIN CERTIFICATE-----")
        .nth(1)
        .and_then(|r| r.split("-----END CERTIFICATE-----").next())
        .map(|b| b.lines().collect())
        .unwrap_or_default();
    assert_eq!(shown, body, "the kubelet serves the certificate it signed itself");

    // stop the kubelet, then down removes its pods, bridge, DNS link and proxy table
    let _ = Command::new("kill").args(["-TERM", &c.kubelet_pid().to_string()]).status();
    let kubelet = c.kubelet.as_mut().expect("kubelet");
    poll_until("kubelet exits on SIGTERM", Duration::from_secs(30), || (!kubelet.is_running()).then_some(()));
    let st = Command::new(bin("rkube")).args(["down", "--data-dir"]).arg(c.node_dir.path()).status().expect("down");
    assert!(st.success());
    assert_eq!(mounts_under(c.node_dir.path()), 0, "no mounts left under the node's data dir");
    c.net.assert_gone();
}
