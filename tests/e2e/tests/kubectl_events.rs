//! Events as `kubectl describe` finds them: describe of a pod, a deployment and a node lists the events recorded
//! for that object (kubectl asks for them with field selectors on involvedObject.name/namespace/kind/uid), and
//! each of those field selectors filters on its own, for core/v1 and events.k8s.io/v1 alike.

mod common;

use common::{as_str, deployment_yaml, TestServer, KUBECTLS};
use rkube_testsupport::unique_name;
use serde_json::Value;

/// A core/v1 Event manifest about `kind`/`name` (namespace and uid as given; "" leaves the field out).
fn event_yaml(event: &str, ns: &str, kind: &str, name: &str, obj_ns: &str, uid: &str, reason: &str, message: &str) -> String {
    let mut y = format!(
        "apiVersion: v1\nkind: Event\nmetadata:\n  name: {event}\n  namespace: {ns}\ninvolvedObject:\n  kind: {kind}\n  name: {name}\n"
    );
    if !obj_ns.is_empty() {
        y.push_str(&format!("  namespace: {obj_ns}\n"));
    }
    if !uid.is_empty() {
        y.push_str(&format!("  uid: {uid}\n"));
    }
    y.push_str(&format!("reason: {reason}\nmessage: {message}\ntype: Normal\nsource:\n  component: e2e\ncount: 1\n"));
    y
}

/// The events section of `kubectl describe` output: everything after the line starting with `Events:`.
fn events_section(describe: &str) -> &str {
    describe.find("\nEvents:").map(|i| &describe[i..]).unwrap_or_else(|| panic!("no Events: section in {describe}"))
}

#[test]
fn describe_pod_deployment_and_node_show_their_events() {
    let s = TestServer::start();
    for v in KUBECTLS {
        let name = unique_name("ev");
        let pod = format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers:\n  - name: c\n    image: busybox:1.36\n"
        );
        let node = format!("apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n");
        for (kind, manifest) in [("pod", pod), ("deployment", deployment_yaml(&name, 1, "busybox:1.36")), ("node", node)] {
            let file = s.write(&format!("{name}-{kind}.yaml"), &manifest);
            s.ok(v, &["create", "-f", as_str(&file)]);
        }
        let uid = |kind: &str| s.ok(v, &["get", kind, &name, "-o", "jsonpath={.metadata.uid}"]);
        let (pod_uid, deploy_uid) = (uid("pod"), uid("deployment"));
        // Events about each object, and decoys that share its name but not its kind, uid or namespace.
        let events = [
            event_yaml(&format!("{name}.pod"), "default", "Pod", &name, "default", &pod_uid, "Scheduled", "pod-event-seen"),
            event_yaml(&format!("{name}.old-pod"), "default", "Pod", &name, "default", "0000-old-uid", "Killing", "old-pod-decoy"),
            event_yaml(&format!("{name}.dep"), "default", "Deployment", &name, "default", &deploy_uid, "ScalingReplicaSet", "deployment-event-seen"),
            // kubelet records node events with the node's name as uid, and kubectl describe node asks for that.
            event_yaml(&format!("{name}.node"), "default", "Node", &name, "", &name, "NodeReady", "node-event-seen"),
        ];
        let file = s.write(&format!("{name}-events.yaml"), &events.join("---\n"));
        s.ok(v, &["create", "-f", as_str(&file)]);
        // An events.k8s.io/v1 event about the pod is part of the same set.
        let new_api = format!(
            "apiVersion: events.k8s.io/v1\nkind: Event\nmetadata:\n  name: {name}.new\neventTime: '2024-01-01T00:00:00.000000Z'\nreportingController: rkube/e2e\nreportingInstance: e2e\naction: Pulling\nreason: Pulling\nnote: pod-new-api-event-seen\ntype: Normal\nregarding:\n  kind: Pod\n  name: {name}\n  namespace: default\n  uid: {pod_uid}\n"
        );
        let file = s.write(&format!("{name}-new.yaml"), &new_api);
        s.ok(v, &["create", "-f", as_str(&file)]);

        let pod = s.ok(v, &["describe", "pod", &name]);
        let ev = events_section(&pod);
        assert!(ev.contains("Scheduled") && ev.contains("pod-event-seen"), "kubectl.{v} describe pod: {pod}");
        assert!(ev.contains("pod-new-api-event-seen"), "kubectl.{v} describe pod lacks the events.k8s.io event: {pod}");
        assert!(!ev.contains("old-pod-decoy"), "kubectl.{v}: an event for another uid leaked into describe pod: {pod}");
        assert!(!ev.contains("deployment-event-seen"), "kubectl.{v}: another kind leaked into describe pod: {pod}");

        let dep = s.ok(v, &["describe", "deployment", &name]);
        let ev = events_section(&dep);
        assert!(ev.contains("ScalingReplicaSet") && ev.contains("deployment-event-seen"), "kubectl.{v} describe deployment: {dep}");
        assert!(!ev.contains("pod-event-seen"), "kubectl.{v}: pod event in describe deployment: {dep}");

        let node = s.ok(v, &["describe", "node", &name]);
        let ev = events_section(&node);
        assert!(ev.contains("NodeReady") && ev.contains("node-event-seen"), "kubectl.{v} describe node: {node}");
        assert!(!ev.contains("pod-event-seen"), "kubectl.{v}: pod event in describe node: {node}");

        s.ok(v, &["delete", "-f", as_str(&s.path(&format!("{name}-events.yaml")))]);
        s.ok(v, &["delete", "events.events.k8s.io", &format!("{name}.new")]);
        for kind in ["pod", "deployment", "node"] {
            s.ok(v, &["delete", kind, &name, "--wait=false"]);
        }
    }
}

#[test]
fn event_field_selectors_filter_on_each_involved_object_field() {
    let s = TestServer::start();
    let v = "1.33";
    let name = unique_name("fs");
    let other_ns = unique_name("fs-ns");
    s.ok(v, &["create", "namespace", &other_ns]);
    let events = [
        event_yaml("a", "default", "Pod", &name, "default", "uid-a", "R", "a"),
        event_yaml("b", "default", "Pod", &name, "default", "uid-b", "R", "b"),
        event_yaml("c", "default", "Service", &name, "default", "uid-c", "R", "c"),
        event_yaml("d", &other_ns, "Pod", &name, &other_ns, "uid-d", "R", "d"),
        event_yaml("e", "default", "Pod", "someone-else", "default", "uid-e", "R", "e"),
        event_yaml("f", "default", "Node", &name, "", &name, "R", "f"),
    ];
    let file = s.write("events.yaml", &events.join("---\n"));
    s.ok(v, &["create", "-f", as_str(&file)]);

    // Event names matched by `selector` across all namespaces, through the core API and (with the fields named
    // regarding.*, as events.k8s.io/v1 names them) through the events.k8s.io API.
    let names = |selector: &str| -> (Vec<String>, Vec<String>) {
        let get = |res: &str, selector: &str| -> Vec<String> {
            let out = s.ok(v, &["get", res, "-A", "--field-selector", selector, "-o", "json"]);
            let list: Value = serde_json::from_str(&out).expect("json list");
            let mut n: Vec<String> =
                list["items"].as_array().into_iter().flatten().filter_map(|i| i["metadata"]["name"].as_str().map(str::to_string)).collect();
            n.sort();
            n
        };
        (get("events", selector), get("events.events.k8s.io", &selector.replace("involvedObject.", "regarding.")))
    };
    let cases: [(String, &[&str]); 8] = [
        (format!("involvedObject.name={name}"), &["a", "b", "c", "d", "f"]),
        (format!("involvedObject.name={name},involvedObject.kind=Pod"), &["a", "b", "d"]),
        (format!("involvedObject.name={name},involvedObject.namespace=default"), &["a", "b", "c"]),
        (format!("involvedObject.name={name},involvedObject.namespace={other_ns}"), &["d"]),
        (format!("involvedObject.name={name},involvedObject.uid=uid-b"), &["b"]),
        // A node's events carry no involvedObject.namespace; kubectl describe node asks for the empty value.
        (format!("involvedObject.name={name},involvedObject.namespace=,involvedObject.uid={name}"), &["f"]),
        (format!("involvedObject.kind!=Pod,involvedObject.name={name}"), &["c", "f"]),
        (format!("involvedObject.name={name},reason=R,type=Normal"), &["a", "b", "c", "d", "f"]),
    ];
    for (selector, want) in cases {
        let (core, new) = names(&selector);
        assert_eq!(core, want, "core/v1 events with {selector}");
        assert_eq!(new, want, "events.k8s.io/v1 events with {selector}");
    }
    let out = s.ok(v, &["get", "events", "-A", "--field-selector", &format!("involvedObject.name={name},source=e2e"), "-o", "name"]);
    assert_eq!(out.lines().count(), 5, "source selects on source.component: {out}");
    // Each API accepts only its own names for the fields, as Kubernetes does.
    let err = s.fails(v, &["get", "events.events.k8s.io", "--field-selector", "involvedObject.name=x"]);
    assert!(err.contains("BadRequest") && err.contains("involvedObject.name"), "{err}");
    let err = s.fails(v, &["get", "events", "--field-selector", "regarding.name=x"]);
    assert!(err.contains("BadRequest") && err.contains("regarding.name"), "{err}");
    let err = s.fails(v, &["get", "events", "--field-selector", "involvedObject.bogus=x"]);
    assert!(err.contains("BadRequest") && err.contains("involvedObject.bogus"), "{err}");
}
