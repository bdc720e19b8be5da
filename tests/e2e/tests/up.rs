//! `rkube up` with the real kubectl, as root: a busybox Pod (image imported offline) reaches Running with an
//! address from rkube's bridge network, its logs come through the apiserver's proxy from the kubelet, a
//! `kill -9` of rkube leaves the container running and the next `rkube up` adopts it without a restart, and
//! `rkube down` removes pods, mounts, the bridge and the network's veths.
//!
//! The node gets an address on a veth pair this test creates (never the uplink's). Needs the binaries:
//! `cargo build -p rkube -p rkube-kubelet -p rkube-runtime -p rkube-cni --bins`.

mod up_support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rkube_testsupport::poll_until;
use up_support::{bin, mounts_under, Up};

const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: hello
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: hello
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", "echo hello from $(hostname); while true; do sleep 1; done"]
"#;

#[test]
fn up_runs_a_busybox_pod_survives_kill9_and_down_cleans_up() {
    let mut up = Up::start();
    up.kubectl_ok(&["apply", "-f", "-"], Some(POD));
    up.kubectl_ok(&["wait", "--for=condition=Ready", "pod/hello", "--timeout=60s"], None);
    let ip = up.kubectl(&["get", "pod", "hello", "-o", "jsonpath={.status.podIP}"]);
    assert!(ip.starts_with(&up.subnet_prefix), "pod IP {ip} from rkube's bridge network {}0/24", up.subnet_prefix);
    let host_ip = up.kubectl(&["get", "pod", "hello", "-o", "jsonpath={.status.hostIP}"]);
    assert_eq!(host_ip, up.node_ip);
    let logs = poll_until("logs through the apiserver", Duration::from_secs(20), || {
        // no logs until the container has started
        let l = up.kubectl_try(&["logs", "hello"])?;
        l.contains("hello from hello").then_some(l)
    });
    assert!(logs.starts_with("hello from hello"), "{logs}");
    let events = up.kubectl(&["get", "events", "--field-selector", "involvedObject.name=hello", "-o", "jsonpath={.items[*].reason}"]);
    for r in ["Scheduled", "Pulled", "Created", "Started"] {
        assert!(events.split_whitespace().any(|e| e == r), "event {r} in {events}");
    }
    let started_before = up.kubectl(&["get", "pod", "hello", "-o", "jsonpath={.status.containerStatuses[0].state.running.startedAt}"]);

    // kill -9: the container keeps running; the next rkube adopts it
    up.kill9();
    let pods = up.data.path().join("kubelet/pods");
    let monitor_alive = std::fs::read_dir(&pods).expect("pod dirs").flatten().any(|p| {
        let pidfile = p.path().join("containers/hello/monitor/monitor.pid");
        let pid = std::fs::read_to_string(pidfile).unwrap_or_default();
        !pid.trim().is_empty() && Path::new(&format!("/proc/{}", pid.trim())).exists()
    });
    assert!(monitor_alive, "the container's monitor outlives rkube");
    up.launch();
    poll_until("pod Ready again after restart", Duration::from_secs(30), || {
        let s = up.kubectl(&["get", "pod", "hello", "-o", "jsonpath={.status.containerStatuses[0].ready}"]);
        (s == "true").then_some(())
    });
    let restarts = up.kubectl(&["get", "pod", "hello", "-o", "jsonpath={.status.containerStatuses[0].restartCount}"]);
    assert_eq!(restarts, "0", "adopted, not restarted");
    let started_after = up.kubectl(&["get", "pod", "hello", "-o", "jsonpath={.status.containerStatuses[0].state.running.startedAt}"]);
    assert_eq!(started_before, started_after, "same container instance");
    let started_events = up.kubectl(&["get", "events", "--field-selector", "involvedObject.name=hello,reason=Started", "-o", "name"]);
    assert_eq!(started_events.lines().count(), 1, "no second Started event: {started_events}");

    // delete, then down: nothing left
    up.kubectl_ok(&["delete", "pod", "hello", "--timeout=60s"], None);
    assert!(up.kubectl(&["get", "pods", "-o", "name"]).trim().is_empty());
    let data = up.data.path().to_path_buf();
    let st = Command::new(bin("rkube")).args(["down", "--data-dir"]).arg(&data).status().expect("down");
    assert!(st.success());
    up.child = None;
    assert_eq!(mounts_under(&data), 0, "no mounts left under the data dir");
    let links = Command::new("ip").args(["-o", "link"]).output().expect("ip link");
    let links = String::from_utf8_lossy(&links.stdout);
    assert!(!links.contains(&format!(" {}:", up.bridge)), "bridge {} removed", up.bridge);
    assert!(!links.contains(&format!("master {} ", up.bridge)), "no veth left on the bridge");
    assert!(!data.join("kubelet/pods").exists());
    up.net.assert_gone();
}

fn waiting_or_terminated_reason(up: &Up, pod: &str) -> String {
    let w = up.kubectl(&["get", "pod", pod, "-o", "jsonpath={.status.containerStatuses[0].state.waiting.reason}"]);
    if !w.is_empty() {
        return w;
    }
    up.kubectl(&["get", "pod", pod, "-o", "jsonpath={.status.containerStatuses[0].state.terminated.reason}"])
}

#[test]
fn up_shares_volumes_and_reports_bad_input() {
    let up = Up::start();
    let host_dir = up.data.path().join("host-data");
    let manifest = format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: pair
spec:
  terminationGracePeriodSeconds: 1
  volumes:
  - name: shared
    emptyDir: {{}}
  - name: host
    hostPath:
      path: {host}
      type: DirectoryOrCreate
  containers:
  - name: server
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", "echo from-emptydir > /www/index.html; echo written-by-pod > /host/out.txt; httpd -f -p 8080 -h /www"]
    volumeMounts:
    - {{name: shared, mountPath: /www}}
    - {{name: host, mountPath: /host}}
  - name: client
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", "until wget -qO- http://127.0.0.1:8080/index.html; do sleep 0.2; done; sleep 3600"]
---
apiVersion: v1
kind: Pod
metadata:
  name: needs-config
spec:
  containers:
  - name: c
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sleep", "3600"]
    env:
    - name: X
      valueFrom:
        configMapKeyRef: {{name: missing, key: k}}
---
apiVersion: v1
kind: Pod
metadata:
  name: bad-hostpath
spec:
  volumes:
  - name: h
    hostPath: {{path: /proc/version, type: Directory}}
  containers:
  - name: c
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sleep", "3600"]
    volumeMounts: [{{name: h, mountPath: /h}}]
---
apiVersion: v1
kind: Pod
metadata:
  name: no-image
spec:
  containers:
  - name: c
    image: 127.0.0.1:1/nope/missing:1
    command: ["sleep", "3600"]
---
apiVersion: v1
kind: Pod
metadata:
  name: bad-command
spec:
  containers:
  - name: c
    image: busybox:latest
    imagePullPolicy: Never
    command: ["/no/such/program"]
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
    command: ["sh", "-c", "head -c 200000000 /dev/zero | tail > /dev/null"]
    resources:
      limits: {{memory: 16Mi}}
"#,
        host = host_dir.display()
    );
    up.kubectl_ok(&["apply", "-f", "-"], Some(&manifest));
    up.kubectl_ok(&["wait", "--for=condition=Ready", "pod/pair", "--timeout=60s"], None);
    // two containers of one pod: shared emptyDir, talking over localhost
    poll_until("client read the server's file over localhost", Duration::from_secs(20), || {
        up.kubectl(&["logs", "pair", "-c", "client"]).contains("from-emptydir").then_some(())
    });
    // hostPath writes reach the host
    poll_until("hostPath file on the host", Duration::from_secs(10), || {
        std::fs::read_to_string(host_dir.join("out.txt")).ok().filter(|s| s.trim() == "written-by-pod")
    });
    // bad input: reported in status and events, pods stay Pending
    let cases = [
        ("needs-config", &["CreateContainerConfigError"][..]),
        ("bad-hostpath", &["ContainerCreating"][..]),
        ("no-image", &["ErrImagePull", "ImagePullBackOff"][..]),
        ("bad-command", &["RunContainerError"][..]),
        ("oom", &["OOMKilled"][..]),
    ];
    for (pod, want) in cases {
        let got = poll_until(&format!("{pod} reports {want:?}"), Duration::from_secs(60), || {
            let r = waiting_or_terminated_reason(&up, pod);
            want.contains(&r.as_str()).then_some(r)
        });
        eprintln!("{pod}: {got}");
    }
    let msg = up.kubectl(&["get", "pod", "needs-config", "-o", "jsonpath={.status.containerStatuses[0].state.waiting.message}"]);
    assert!(msg.contains("configmap \"missing\" not found"), "{msg}");
    let msg = up.kubectl(&["get", "pod", "bad-command", "-o", "jsonpath={.status.containerStatuses[0].state.waiting.message}"]);
    assert!(msg.contains("\"/no/such/program\"") && msg.contains("No such file or directory"), "{msg}");
    // upstream: the volume manager's FailedMount event, the container waiting in ContainerCreating
    let msg = poll_until("FailedMount event for bad-hostpath", Duration::from_secs(30), || {
        let m = up.kubectl(&["get", "events", "--field-selector", "involvedObject.name=bad-hostpath,reason=FailedMount", "-o", "jsonpath={.items[*].message}"]);
        (!m.is_empty()).then_some(m)
    });
    assert!(
        msg.contains("MountVolume.SetUp failed for volume \"h\" : hostPath type check failed: /proc/version is not a directory"),
        "{msg}"
    );
    let events = up.kubectl(&["get", "events", "--field-selector", "type=Warning", "-o", "jsonpath={.items[*].involvedObject.name}"]);
    for pod in ["needs-config", "bad-hostpath", "no-image", "bad-command"] {
        assert!(events.split_whitespace().any(|e| e == pod), "a Warning event for {pod}: {events}");
    }
    assert_eq!(up.kubectl(&["get", "pod", "oom", "-o", "jsonpath={.status.phase}"]), "Failed");
    // nothing leaks: after deleting everything, no pod state, mounts or veths remain
    up.kubectl_ok(&["delete", "pods", "--all", "--timeout=90s"], None);
    let pods_dir = up.data.path().join("kubelet/pods");
    poll_until("pod directories removed", Duration::from_secs(30), || {
        (std::fs::read_dir(&pods_dir).map(|d| d.count()).unwrap_or(0) == 0).then_some(())
    });
    assert_eq!(mounts_under(up.data.path()), 0, "no mounts left");
    let links = Command::new("ip").args(["-o", "link"]).output().expect("ip link");
    assert!(!String::from_utf8_lossy(&links.stdout).contains(&format!("master {} ", up.bridge)), "no veth left on the bridge");
}

#[test]
fn up_runs_static_pods_and_mirrors_them() {
    let up = Up::start();
    let manifest = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: static-web\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: web\n    image: busybox:latest\n    imagePullPolicy: Never\n    command: [\"sh\", \"-c\", \"echo static; sleep 3600\"]\n";
    let file = up.data.path().join("manifests/static-web.yaml");
    std::fs::write(&file, manifest).expect("write manifest");
    let name = poll_until("mirror pod appears", Duration::from_secs(30), || {
        let out = up.kubectl(&["get", "pods", "-o", "jsonpath={.items[*].metadata.name}"]);
        out.split_whitespace().find(|n| n.starts_with("static-web-")).map(str::to_string)
    });
    let mirror = up.kubectl(&["get", "pod", &name, "-o", "jsonpath={.metadata.annotations.kubernetes\\.io/config\\.mirror}"]);
    assert!(!mirror.is_empty(), "mirror annotation set");
    poll_until("mirror pod reports Running", Duration::from_secs(30), || {
        (up.kubectl(&["get", "pod", &name, "-o", "jsonpath={.status.phase}"]) == "Running").then_some(())
    });
    poll_until("static pod logs", Duration::from_secs(20), || up.kubectl(&["logs", &name]).contains("static").then_some(()));
    // the file is the source of truth: deleting the mirror brings it back, removing the file removes the pod
    up.kubectl_ok(&["delete", "pod", &name, "--wait=false"], None);
    poll_until("mirror recreated", Duration::from_secs(30), || {
        // NotFound between the delete and the kubelet's new mirror
        (up.kubectl_try(&["get", "pod", &name, "-o", "jsonpath={.status.phase}"])? == "Running").then_some(())
    });
    std::fs::remove_file(&file).expect("remove manifest");
    poll_until("static pod and mirror gone", Duration::from_secs(60), || {
        up.kubectl(&["get", "pods", "-o", "name"]).trim().is_empty().then_some(())
    });
    let pods_dir = up.data.path().join("kubelet/pods");
    poll_until("static pod state removed", Duration::from_secs(30), || {
        (std::fs::read_dir(&pods_dir).map(|d| d.count()).unwrap_or(0) == 0).then_some(())
    });
}

#[test]
fn up_restarts_on_liveness_failure_and_backs_off_crashes() {
    let up = Up::start();
    let manifest = r#"
apiVersion: v1
kind: Pod
metadata:
  name: live
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", "touch /tmp/healthy; sleep 2; rm /tmp/healthy; sleep 3600"]
    livenessProbe:
      exec: {command: ["cat", "/tmp/healthy"]}
      periodSeconds: 1
      failureThreshold: 2
    readinessProbe:
      tcpSocket: {port: 1}
      periodSeconds: 1
---
apiVersion: v1
kind: Pod
metadata:
  name: crash
spec:
  containers:
  - name: c
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", "echo crashing; exit 2"]
"#;
    up.kubectl_ok(&["apply", "-f", "-"], Some(manifest));
    poll_until("liveness restart", Duration::from_secs(60), || {
        let n = up.kubectl(&["get", "pod", "live", "-o", "jsonpath={.status.containerStatuses[0].restartCount}"]);
        (n.parse::<i32>().unwrap_or(0) >= 1).then_some(())
    });
    let reasons = up.kubectl(&["get", "events", "--field-selector", "involvedObject.name=live", "-o", "jsonpath={.items[*].reason}"]);
    assert!(reasons.contains("Unhealthy") && reasons.contains("Killing"), "{reasons}");
    // readiness on a closed port: running but never ready
    assert_eq!(up.kubectl(&["get", "pod", "live", "-o", "jsonpath={.status.containerStatuses[0].ready}"]), "false");
    assert_eq!(up.kubectl(&["get", "pod", "live", "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"]), "False");
    // crash: CrashLoopBackOff with the last exit, then a restart after 10 s
    poll_until("CrashLoopBackOff", Duration::from_secs(30), || {
        (waiting_or_terminated_reason(&up, "crash") == "CrashLoopBackOff").then_some(())
    });
    let last = up.kubectl(&["get", "pod", "crash", "-o", "jsonpath={.status.containerStatuses[0].lastState.terminated.exitCode}"]);
    assert_eq!(last, "2");
    poll_until("restart after the backoff", Duration::from_secs(30), || {
        let n = up.kubectl(&["get", "pod", "crash", "-o", "jsonpath={.status.containerStatuses[0].restartCount}"]);
        (n.parse::<i32>().unwrap_or(0) >= 1).then_some(())
    });
    let logs = up.kubectl(&["logs", "crash", "--previous"]);
    assert!(logs.contains("crashing"), "previous logs: {logs}");
}

#[test]
fn up_pulls_busybox_from_a_local_registry() {
    let up = Up::start();
    let registry = rkube_testsupport::Registry::start();
    let layout = rkube_testsupport::busybox_oci_layout(&up.data.path().join("oci-reg"), "1.36", &["sh"]);
    let image = registry.push(&layout, "library/busybox", "1.36");
    eprintln!("pushed {image}");
    let manifest = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: pulled\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: {}/library/busybox:1.36\n    command: [\"sh\", \"-c\", \"echo pulled-ok; sleep 3600\"]\n",
        registry.host()
    );
    up.kubectl_ok(&["apply", "-f", "-"], Some(&manifest));
    up.kubectl_ok(&["wait", "--for=condition=Ready", "pod/pulled", "--timeout=60s"], None);
    let reasons = up.kubectl(&["get", "events", "--field-selector", "involvedObject.name=pulled", "-o", "jsonpath={.items[*].reason}"]);
    assert!(reasons.contains("Pulling") && reasons.contains("Pulled"), "{reasons}");
    let image_id = up.kubectl(&["get", "pod", "pulled", "-o", "jsonpath={.status.containerStatuses[0].imageID}"]);
    assert!(image_id.contains("sha256:"), "{image_id}");
    poll_until("logs", Duration::from_secs(20), || up.kubectl(&["logs", "pulled"]).contains("pulled-ok").then_some(()));
    poll_until("node lists the pulled image", Duration::from_secs(20), || {
        up.kubectl(&["get", "node", "-o", "jsonpath={.items[0].status.images[*].names}"]).contains("library/busybox:1.36").then_some(())
    });
}

#[test]
fn up_runs_post_start_hooks_and_kills_on_failure() {
    let up = Up::start();
    let manifest = r#"
apiVersion: v1
kind: Pod
metadata:
  name: hooked
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", "sleep 3600"]
    lifecycle:
      postStart:
        exec: {command: ["sh", "-c", "echo hooked > /tmp/hook"]}
---
apiVersion: v1
kind: Pod
metadata:
  name: bad-hook
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", "sleep 3600"]
    lifecycle:
      postStart:
        exec: {command: ["sh", "-c", "exit 9"]}
"#;
    up.kubectl_ok(&["apply", "-f", "-"], Some(manifest));
    up.kubectl_ok(&["wait", "--for=condition=Ready", "pod/hooked", "--timeout=60s"], None);
    poll_until("FailedPostStartHook", Duration::from_secs(30), || {
        let r = up.kubectl(&["get", "events", "--field-selector", "involvedObject.name=bad-hook", "-o", "jsonpath={.items[*].reason}"]);
        r.contains("FailedPostStartHook").then_some(())
    });
    poll_until("failed hook kills the container", Duration::from_secs(30), || {
        let r = waiting_or_terminated_reason(&up, "bad-hook");
        (r == "CrashLoopBackOff" || r == "Error").then_some(())
    });
    assert_eq!(up.kubectl(&["get", "pod", "hooked", "-o", "jsonpath={.status.containerStatuses[0].restartCount}"]), "0");
}

#[test]
fn up_runs_pre_stop_hooks_before_stopping() {
    let up = Up::start();
    let host_dir = up.data.path().join("prestop-data");
    // An httpGet preStop hook reaches busybox httpd in the pod, whose CGI script writes to a hostPath: the file
    // on the host proves the kubelet made the request before it stopped the container. A failing exec hook is
    // an event and does not hold up the stop.
    let manifest = format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: stopper
spec:
  terminationGracePeriodSeconds: 10
  volumes:
  - name: out
    hostPath: {{path: {host}, type: DirectoryOrCreate}}
  containers:
  - name: web
    image: busybox:latest
    imagePullPolicy: Never
    command:
    - sh
    - -c
    - |
      mkdir -p /www/cgi-bin
      cat > /www/cgi-bin/stop <<'EOF'
      #!/bin/sh
      echo stopped-by-hook > /out/prestop
      printf 'Content-Type: text/plain\r\n\r\nok\n'
      EOF
      chmod +x /www/cgi-bin/stop
      exec httpd -f -p 8080 -h /www
    ports: [{{name: http, containerPort: 8080}}]
    readinessProbe:
      tcpSocket: {{port: http}}
      periodSeconds: 1
    volumeMounts: [{{name: out, mountPath: /out}}]
    lifecycle:
      preStop:
        httpGet: {{path: /cgi-bin/stop, port: http}}
---
apiVersion: v1
kind: Pod
metadata:
  name: bad-stop
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: c
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sleep", "3600"]
    lifecycle:
      preStop:
        exec: {{command: ["sh", "-c", "exit 3"]}}
"#,
        host = host_dir.display()
    );
    up.kubectl_ok(&["apply", "-f", "-"], Some(&manifest));
    up.kubectl_ok(&["wait", "--for=condition=Ready", "pod/stopper", "pod/bad-stop", "--timeout=60s"], None);
    assert!(!host_dir.join("prestop").exists(), "the hook ran before the pod was deleted");
    up.kubectl_ok(&["delete", "pod", "stopper", "bad-stop", "--timeout=60s"], None);
    let written = std::fs::read_to_string(host_dir.join("prestop")).unwrap_or_default();
    assert_eq!(written.trim(), "stopped-by-hook", "the httpGet preStop hook reached the container before it stopped");
    let events = poll_until("FailedPreStopHook for bad-stop", Duration::from_secs(20), || {
        let m = up.kubectl(&["get", "events", "--field-selector", "involvedObject.name=bad-stop,reason=FailedPreStopHook", "-o", "jsonpath={.items[*].message}"]);
        (!m.is_empty()).then_some(m)
    });
    assert!(events.contains("PreStopHook failed"), "{events}");
}

#[test]
fn up_runs_an_image_as_its_named_user() {
    let up = Up::start();
    // User: nobody in the image config; the name is looked up in the image's own /etc/passwd (65534:65534)
    up_support::import_busybox_as(up.data.path(), "nobody", Some("nobody"));
    up_support::import_busybox_as(up.data.path(), "ghost", Some("ghost"));
    let manifest = r#"
apiVersion: v1
kind: Pod
metadata:
  name: as-nobody
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: busybox:nobody
    imagePullPolicy: Never
    command: ["sh", "-c", "echo ids=$(id -u):$(id -g)"]
---
apiVersion: v1
kind: Pod
metadata:
  name: as-ghost
spec:
  containers:
  - name: c
    image: busybox:ghost
    imagePullPolicy: Never
    command: ["sleep", "3600"]
"#;
    up.kubectl_ok(&["apply", "-f", "-"], Some(manifest));
    let logs = poll_until("as-nobody prints its ids", Duration::from_secs(60), || {
        // no logs until the container has started
        let l = up.kubectl_try(&["logs", "as-nobody"])?;
        l.contains("ids=").then_some(l)
    });
    assert_eq!(logs.trim(), "ids=65534:65534");
    let reason = poll_until("as-ghost reports CreateContainerError", Duration::from_secs(60), || {
        let r = waiting_or_terminated_reason(&up, "as-ghost");
        (r == "CreateContainerError").then_some(r)
    });
    let msg = up.kubectl(&["get", "pod", "as-ghost", "-o", "jsonpath={.status.containerStatuses[0].state.waiting.message}"]);
    assert!(msg.contains("unable to find user ghost"), "{reason}: {msg}");
    // nothing half-made: the failed container's rootfs is not left mounted
    up.kubectl_ok(&["delete", "pod", "as-ghost", "as-nobody", "--timeout=60s"], None);
    assert_eq!(mounts_under(up.data.path()), 0, "no mounts left");
}

#[test]
fn up_evicts_a_pod_whose_disk_empty_dir_exceeds_its_size_limit() {
    let up = Up::start();
    let manifest = r#"
apiVersion: v1
kind: Pod
metadata:
  name: filler
spec:
  terminationGracePeriodSeconds: 1
  volumes:
  - name: scratch
    emptyDir: {sizeLimit: 1Mi}
  containers:
  - name: c
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", "head -c 3000000 /dev/zero > /scratch/fill; sleep 3600"]
    volumeMounts: [{name: scratch, mountPath: /scratch}]
---
apiVersion: v1
kind: Pod
metadata:
  name: within
spec:
  terminationGracePeriodSeconds: 1
  volumes:
  - name: scratch
    emptyDir: {sizeLimit: 10Mi}
  containers:
  - name: c
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", "head -c 1000000 /dev/zero > /scratch/fill; sleep 3600"]
    volumeMounts: [{name: scratch, mountPath: /scratch}]
"#;
    up.kubectl_ok(&["apply", "-f", "-"], Some(manifest));
    let status = poll_until("filler evicted", Duration::from_secs(60), || {
        let s = up.kubectl(&["get", "pod", "filler", "-o", "jsonpath={.status.phase}/{.status.reason}/{.status.message}"]);
        s.starts_with("Failed/").then_some(s)
    });
    assert_eq!(status.trim_end(), "Failed/Evicted/Usage of EmptyDir volume \"scratch\" exceeds the limit \"1Mi\".");
    let events = up.kubectl(&["get", "events", "--field-selector", "involvedObject.name=filler,reason=Evicted", "-o", "jsonpath={.items[*].message}"]);
    assert!(events.contains("exceeds the limit"), "an Evicted event: {events}");
    // the container was stopped and stays stopped: an evicted pod is not restarted
    poll_until("filler's container terminated", Duration::from_secs(30), || {
        let r = up.kubectl(&["get", "pod", "filler", "-o", "jsonpath={.status.containerStatuses[0].state.terminated.exitCode}"]);
        (!r.is_empty()).then_some(())
    });
    assert_eq!(up.kubectl(&["get", "pod", "filler", "-o", "jsonpath={.status.containerStatuses[0].restartCount}"]), "0");
    // the pod under its limit runs on, measured by the same loop
    assert_eq!(up.kubectl(&["get", "pod", "within", "-o", "jsonpath={.status.phase}"]), "Running");
    up.kubectl_ok(&["delete", "pod", "filler", "within", "--timeout=60s"], None);
}

#[test]
fn up_projects_service_account_tokens_bound_to_the_pod() {
    use base64::Engine;
    let up = Up::start();
    let manifest = r#"
apiVersion: v1
kind: Pod
metadata:
  name: tokened
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", "cat /var/run/secrets/tokens/api; echo; cat /var/run/secrets/tokens/vault; echo; cat /var/run/secrets/tokens/namespace; echo; sleep 3600"]
    volumeMounts:
    - {name: tokens, mountPath: /var/run/secrets/tokens, readOnly: true}
  volumes:
  - name: tokens
    projected:
      sources:
      - serviceAccountToken: {path: api, expirationSeconds: 3607}
      - serviceAccountToken: {path: vault, audience: vault, expirationSeconds: 600}
      - downwardAPI: {items: [{path: namespace, fieldRef: {fieldPath: metadata.namespace}}]}
"#;
    up.kubectl_ok(&["apply", "-f", "-"], Some(manifest));
    up.kubectl_ok(&["wait", "--for=condition=Ready", "pod/tokened", "--timeout=60s"], None);
    let logs = poll_until("tokens in the logs", Duration::from_secs(20), || {
        let l = up.kubectl(&["logs", "tokened"]);
        (l.lines().count() >= 3).then_some(l)
    });
    let lines: Vec<&str> = logs.lines().collect();
    let (api, vault) = (lines[0], lines[1]);
    assert_eq!(lines[2], "default", "the downward API source sits beside the tokens");
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(api.split('.').nth(1).expect("a JWT")).expect("base64url"),
    )
    .expect("claims");
    assert_eq!(claims["sub"], "system:serviceaccount:default:default");
    assert_eq!(claims["kubernetes.io"]["pod"]["name"], "tokened");
    assert_eq!(claims["exp"].as_i64().zip(claims["iat"].as_i64()).map(|(e, i)| e - i), Some(3607));
    let review = |token: &str, audience: &str| {
        let body = format!("apiVersion: authentication.k8s.io/v1\nkind: TokenReview\nspec:\n  token: {token}\n  audiences: [{audience}]\n");
        up.kubectl_ok(
            &["create", "-f", "-", "-o", "jsonpath={.status.authenticated} {.status.user.username} {.status.user.extra.authentication\\.kubernetes\\.io/pod-name[0]}"],
            Some(&body),
        )
    };
    let api_audience = "https://kubernetes.default.svc.cluster.local";
    assert_eq!(review(api, api_audience), "true system:serviceaccount:default:default tokened");
    assert_eq!(review(vault, "vault"), "true system:serviceaccount:default:default tokened");
    assert!(review(vault, api_audience).starts_with("false"), "a token for vault is not one for the API");
    // bound to the pod: gone with it
    up.kubectl_ok(&["delete", "pod", "tokened", "--wait=true", "--timeout=60s"], None);
    assert!(review(api, api_audience).starts_with("false"));
}

#[test]
fn up_resyncs_config_map_files_and_renews_tokens() {
    let up = Up::start_with(&["--sync-frequency", "2s"]);
    let manifest = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
data:
  greeting: hello
---
apiVersion: v1
kind: Pod
metadata:
  name: synced
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sleep", "3600"]
    volumeMounts:
    - {name: cfg, mountPath: /cfg}
    - {name: tok, mountPath: /tok}
  volumes:
  - name: cfg
    configMap: {name: cfg}
  - name: tok
    projected:
      sources:
      - serviceAccountToken: {path: token, expirationSeconds: 600}
"#;
    up.kubectl_ok(&["apply", "-f", "-"], Some(manifest));
    up.kubectl_ok(&["wait", "--for=condition=Ready", "pod/synced", "--timeout=60s"], None);
    let read = |path: &str| up.kubectl(&["exec", "synced", "--", "cat", path]).trim().to_string();
    assert_eq!(read("/cfg/greeting"), "hello");
    let first = read("/tok/token");
    assert_eq!(first.split('.').count(), 3, "a JWT: {first}");
    up.kubectl_ok(&["patch", "configmap", "cfg", "-p", r#"{"data":{"greeting":"bonjour"}}"#], None);
    poll_until("the ConfigMap change reaches the mounted file", Duration::from_secs(30), || {
        (read("/cfg/greeting") == "bonjour").then_some(())
    });
    poll_until("a renewed token", Duration::from_secs(30), || {
        let t = read("/tok/token");
        (t.split('.').count() == 3 && t != first).then_some(())
    });
}
