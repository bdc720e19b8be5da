//! Every served resource through the real kubectl: create (apply), get in each output format, label, annotate,
//! describe, scale (where scalable), edit (through a patch), delete; plus `kubectl create <kind>` generators
//! (kubectl 1.33 sends those as protobuf), server-side apply, server dry-run, explain and `get all`.

mod common;

use common::{as_str, deployment_yaml, TestServer, KUBECTLS};
use rkube_testsupport::unique_name;

/// (resource for kubectl, manifest) for one instance of every served kind, named `name`.
fn manifests(name: &str) -> Vec<(&'static str, String)> {
    let tmpl = format!(
        "    metadata:\n      labels:\n        app: {name}\n    spec:\n      containers:\n      - name: c\n        image: busybox:1.36\n"
    );
    vec![
        ("configmap", format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  k: v\n")),
        ("secret", format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\nstringData:\n  password: s3cret\n")),
        ("serviceaccount", format!("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {name}\n")),
        ("pod", format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels:\n    app: {name}\nspec:\n  containers:\n  - name: c\n    image: busybox:1.36\n")),
        ("service", format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  selector:\n    app: {name}\n  ports:\n  - port: 80\n    targetPort: 8080\n")),
        ("endpoints", format!("apiVersion: v1\nkind: Endpoints\nmetadata:\n  name: {name}\nsubsets:\n- addresses:\n  - ip: 10.0.0.1\n  ports:\n  - port: 80\n")),
        ("event", format!("apiVersion: v1\nkind: Event\nmetadata:\n  name: {name}\ninvolvedObject:\n  kind: Pod\n  name: x\n  namespace: default\nreason: Test\nmessage: hello\ntype: Normal\n")),
        ("replicationcontroller", format!("apiVersion: v1\nkind: ReplicationController\nmetadata:\n  name: {name}\nspec:\n  replicas: 1\n  selector:\n    app: {name}\n  template:\n{tmpl}")),
        ("limitrange", format!("apiVersion: v1\nkind: LimitRange\nmetadata:\n  name: {name}\nspec:\n  limits:\n  - type: Container\n    default:\n      cpu: 100m\n")),
        ("deployment", deployment_yaml(name, 1, "busybox:1.36")),
        ("replicaset", format!("apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: {name}\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: {name}\n  template:\n{tmpl}")),
        ("statefulset", format!("apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: {name}\nspec:\n  serviceName: {name}\n  replicas: 1\n  selector:\n    matchLabels:\n      app: {name}\n  template:\n{tmpl}")),
        ("daemonset", format!("apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: {name}\nspec:\n  selector:\n    matchLabels:\n      app: {name}\n  template:\n{tmpl}")),
        ("controllerrevision", format!("apiVersion: apps/v1\nkind: ControllerRevision\nmetadata:\n  name: {name}\nrevision: 1\ndata:\n  spec: {{}}\n")),
        ("job", format!("apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: c\n        image: busybox:1.36\n")),
        ("cronjob", format!("apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: {name}\nspec:\n  schedule: '*/5 * * * *'\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: OnFailure\n          containers:\n          - name: c\n            image: busybox:1.36\n")),
        ("lease", format!("apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata:\n  name: {name}\nspec:\n  holderIdentity: me\n  leaseDurationSeconds: 40\n")),
        ("endpointslice", format!("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}\naddressType: IPv4\nendpoints:\n- addresses:\n  - 10.0.0.2\nports:\n- port: 80\n")),
        ("events.events.k8s.io", format!("apiVersion: events.k8s.io/v1\nkind: Event\nmetadata:\n  name: {name}\neventTime: '2024-01-01T00:00:00.000000Z'\nreportingController: rkube/test\nreportingInstance: test\naction: Testing\nreason: Test\nregarding:\n  kind: Pod\n  name: x\n  namespace: default\ntype: Normal\n")),
        ("role", format!("apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: {name}\nrules:\n- apiGroups: ['']\n  resources: [pods]\n  verbs: [get, list]\n")),
        ("rolebinding", format!("apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: {name}\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n  name: {name}\nsubjects:\n- kind: ServiceAccount\n  name: default\n")),
        ("clusterrole", format!("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: {name}\nrules:\n- nonResourceURLs: [/healthz]\n  verbs: [get]\n")),
        ("clusterrolebinding", format!("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: {name}\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: {name}\nsubjects:\n- kind: Group\n  apiGroup: rbac.authorization.k8s.io\n  name: devs\n")),
        ("node", format!("apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  labels:\n    kubernetes.io/hostname: {name}\n")),
        ("namespace", format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n")),
    ]
}

/// Kinds with a scale subresource `kubectl scale` drives.
const SCALABLE: &[&str] = &["replicationcontroller", "deployment", "replicaset", "statefulset"];

/// Every resource through kubectl `v`: apply (twice: the second must not write), get in every output format,
/// label, annotate, edit (kubectl sends the edit as a patch), scale where scalable, describe, delete.
fn every_resource(v: &str) {
    let s = TestServer::start();
    let name = unique_name("r");
    // An editor for `kubectl edit` that relabels the object, as a user would in vi.
    let editor = s.write("editor.sh", "#!/bin/sh\nsed -i 's/e2e: \"yes\"/e2e: edited/' \"$1\"\n");
    std::process::Command::new("chmod").arg("+x").arg(&editor).status().expect("chmod");
    for (resource, manifest) in manifests(&name) {
        let file = s.write(&format!("{name}-{resource}.yaml"), &manifest);
        let out = s.ok(v, &["apply", "-f", as_str(&file)]);
        assert!(out.contains("created"), "kubectl.{v} apply {resource}: {out}");
        let json: serde_json::Value = serde_json::from_str(&s.ok(v, &["get", resource, &name, "-o", "json"])).expect("json");
        assert_eq!(json["metadata"]["name"], name.as_str(), "{resource}");
        let rv = json["metadata"]["resourceVersion"].as_str().unwrap_or_default().to_string();
        assert!(!rv.is_empty(), "{resource}");
        let out = s.ok(v, &["apply", "-f", as_str(&file)]);
        // For some kinds kubectl's own three-way diff finds a patch to send even against a real cluster, and says
        // "configured": a Secret's stringData (the live object holds it as data), and an EndpointSlice's atomic
        // ports list (the live one carries the defaulted protocol). The server must still find nothing to write.
        let kubectl_patches_anyway = ["secret", "endpointslice"].contains(&resource);
        assert!(out.contains("unchanged") || kubectl_patches_anyway, "kubectl.{v} second apply of {resource}: {out}");
        let rv2 = s.ok(v, &["get", resource, &name, "-o", "jsonpath={.metadata.resourceVersion}"]);
        assert_eq!(rv2, rv, "kubectl.{v}: applying {resource} again must not write");

        let yaml = s.ok(v, &["get", resource, &name, "-o", "yaml"]);
        let kind = json["kind"].as_str().unwrap_or_default();
        assert!(yaml.contains(&format!("kind: {kind}\n")) && yaml.contains(&format!("name: {name}\n")), "kubectl.{v} -o yaml {resource}: {yaml}");
        let jp = s.ok(v, &["get", resource, &name, "-o", "jsonpath={.kind}/{.metadata.name}"]);
        assert_eq!(jp, format!("{kind}/{name}"), "kubectl.{v} -o jsonpath {resource}");

        let out = s.ok(v, &["label", resource, &name, "e2e=yes"]);
        assert!(out.contains("labeled"), "{resource}: {out}");
        let out = s.ok(v, &["annotate", resource, &name, "note=hi"]);
        assert!(out.contains("annotate"), "{resource}: {out}");
        let listed = s.ok(v, &["get", resource, "-l", "e2e=yes", "-o", "name"]);
        assert!(listed.lines().any(|l| l.ends_with(&format!("/{name}"))), "kubectl.{v} get {resource} -l: {listed}");
        let table = s.ok(v, &["get", resource, &name]);
        assert!(table.lines().count() >= 2 && table.contains(&name) || resource.starts_with("event"), "{resource}: {table}");
        let wide = s.ok(v, &["get", resource, &name, "-o", "wide"]);
        assert!(wide.lines().next().unwrap_or_default().contains("NAME") || resource.starts_with("event"), "kubectl.{v} -o wide {resource}: {wide}");
        let described = s.ok(v, &["describe", resource, &name]);
        // Some describers (LimitRange) print no labels; those that do must show the new one.
        let labels_ok = !described.contains("Labels:") || described.contains("e2e=yes");
        assert!(described.contains(&name) && labels_ok, "kubectl.{v} describe {resource}: {described}");

        let out = rkube_testsupport::output_within(
            std::process::Command::new(common::kubectl_bin(v)).env("KUBE_EDITOR", &editor).arg("--kubeconfig").arg(&s.kubeconfig).args(["edit", resource, &name]),
            None,
            common::KUBECTL_DEADLINE,
            "kubectl edit",
        );
        assert!(out.status.success(), "kubectl.{v} edit {resource}: {}", String::from_utf8_lossy(&out.stderr));
        let label = s.ok(v, &["get", resource, &name, "-o", "jsonpath={.metadata.labels.e2e}"]);
        assert_eq!(label, "edited", "kubectl.{v} edit {resource}");

        if SCALABLE.contains(&resource) {
            let out = s.ok(v, &["scale", resource, &name, "--replicas=3"]);
            assert!(out.contains("scaled"), "kubectl.{v} scale {resource}: {out}");
            let got = s.ok(v, &["get", resource, &name, "-o", "jsonpath={.spec.replicas}"]);
            assert_eq!(got, "3", "kubectl.{v} scale {resource}");
        }

        let out = s.ok(v, &["delete", resource, &name, "--wait=true", "--timeout=60s"]);
        assert!(out.contains("deleted"), "{resource}: {out}");
        let err = s.fails(v, &["get", resource, &name]);
        assert!(err.contains("NotFound"), "kubectl.{v} {resource} still there after delete: {err}");
    }
}

#[test]
fn every_resource_with_kubectl_1_27() {
    every_resource("1.27");
}

#[test]
fn every_resource_with_kubectl_1_33() {
    every_resource("1.33");
}

#[test]
fn scale_edit_and_generators() {
    let s = TestServer::start();
    for v in KUBECTLS {
        let name = unique_name("g");
        for (kind, extra) in [
            ("deployment", vec!["--image=busybox:1.36", "--replicas=2", "--port=80"]),
            ("job", vec!["--image=busybox:1.36"]),
            ("cronjob", vec!["--image=busybox:1.36", "--schedule=*/1 * * * *"]),
        ] {
            let mut args = vec!["create", kind, name.as_str()];
            args.extend(extra);
            let out = s.ok(v, &args);
            assert!(out.contains("created"), "kubectl.{v} create {kind}: {out}");
        }
        let d: serde_json::Value = serde_json::from_str(&s.ok(v, &["get", "deploy", &name, "-o", "json"])).expect("json");
        assert_eq!(d["spec"]["replicas"], 2);
        assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], name.as_str());
        assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"], 80);
        for (kind, args) in [
            ("configmap", vec!["--from-literal=a=b"]),
            ("secret generic", vec!["--from-literal=p=q"]),
            ("serviceaccount", vec![]),
            ("service clusterip", vec!["--tcp=80:8080"]),
            ("namespace", vec![]),
        ] {
            let mut a: Vec<&str> = vec!["create"];
            a.extend(kind.split(' '));
            a.push(&name);
            a.extend(args);
            let out = s.ok(v, &a);
            assert!(out.contains("created"), "kubectl.{v} create {kind}: {out}");
        }
        let secret = s.ok(v, &["get", "secret", &name, "-o", "jsonpath={.data.p}"]);
        assert_eq!(secret, "cQ==", "base64 of q");
        let svc = s.ok(v, &["get", "svc", &name, "-o", "jsonpath={.spec.ports[0].targetPort} {.spec.clusterIP}"]);
        assert!(svc.starts_with("8080 10."), "{svc}");

        // scale goes through the scale subresource and bumps generation
        let out = s.ok(v, &["scale", "deployment", &name, "--replicas=5"]);
        assert!(out.contains("scaled"), "{out}");
        let got = s.ok(v, &["get", "deploy", &name, "-o", "jsonpath={.spec.replicas} {.metadata.generation}"]);
        assert_eq!(got, "5 2");

        // edit: an EDITOR that rewrites the image, sent as a patch
        let editor = s.write("editor.sh", "#!/bin/sh\nsed -i 's/busybox:1.36/busybox:1.37/' \"$1\"\n");
        std::process::Command::new("chmod").arg("+x").arg(&editor).status().expect("chmod");
        let out = rkube_testsupport::output_within(
            std::process::Command::new(common::kubectl_bin(v)).env("KUBE_EDITOR", &editor).arg("--kubeconfig").arg(&s.kubeconfig).args(["edit", "deployment", &name]),
            None,
            common::KUBECTL_DEADLINE,
            "kubectl edit",
        );
        assert!(out.status.success(), "edit: {}", String::from_utf8_lossy(&out.stderr));
        let img = s.ok(v, &["get", "deploy", &name, "-o", "jsonpath={.spec.template.spec.containers[0].image}"]);
        assert_eq!(img, "busybox:1.37");

        let all = s.ok(v, &["get", "all"]);
        for needle in [format!("deployment.apps/{name}"), format!("job.batch/{name}"), format!("cronjob.batch/{name}"), format!("service/{name}")] {
            assert!(all.contains(&needle), "kubectl.{v} get all lacks {needle}: {all}");
        }
        for kind in ["deployment", "job", "cronjob", "configmap", "secret", "serviceaccount", "service", "namespace"] {
            s.ok(v, &["delete", kind, &name]);
        }
    }
}

/// RBAC objects as manifests and charts carry them: kubectl's role/binding generators (protobuf from 1.33),
/// names with colons, the binding columns of `get -o wide`, upstream's validation messages, and a roleRef that
/// cannot change. Stored and served, not enforced (as `--authorization-mode=AlwaysAllow`).
#[test]
fn rbac_objects_with_generators_validation_and_columns() {
    let s = TestServer::start();
    for v in KUBECTLS {
        let n = unique_name("rb");
        let cr = format!("system:{n}-reader");
        for args in [
            vec!["create", "role", n.as_str(), "--verb=get,list", "--resource=pods,services"],
            vec!["create", "rolebinding", n.as_str(), "--role", n.as_str(), "--user=jane", "--serviceaccount=default:builder"],
            vec!["create", "clusterrole", cr.as_str(), "--verb=get", "--resource=nodes"],
            vec!["create", "clusterrolebinding", n.as_str(), "--clusterrole", cr.as_str(), "--group=devs"],
        ] {
            let out = s.ok(v, &args);
            assert!(out.contains("created"), "kubectl.{v} {args:?}: {out}");
        }
        let rules = s.ok(v, &["get", "role", &n, "-o", "jsonpath={.rules[0].verbs} {.rules[0].resources}"]);
        assert_eq!(rules, r#"["get","list"] ["pods","services"]"#, "kubectl.{v}");
        let subjects = s.ok(v, &["get", "rolebinding", &n, "-o", "jsonpath={range .subjects[*]}{.kind}/{.name}/{.apiGroup};{end}"]);
        assert_eq!(subjects, "User/jane/rbac.authorization.k8s.io;ServiceAccount/builder/;", "kubectl.{v}: defaulted apiGroups");
        let wide = s.ok(v, &["get", "rolebinding", &n, "-o", "wide"]);
        let header: Vec<&str> = wide.lines().next().unwrap_or_default().split_whitespace().collect();
        assert_eq!(header, vec!["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"], "kubectl.{v}: {wide}");
        assert!(wide.contains(&format!("Role/{n}")) && wide.contains("jane") && wide.contains("default/builder"), "kubectl.{v}: {wide}");
        let roles = s.ok(v, &["get", "clusterroles", &cr]);
        assert!(roles.starts_with("NAME") && roles.contains("CREATED AT") && roles.contains(&cr), "kubectl.{v}: {roles}");
        // roleRef is fixed
        let out = s.fails(v, &["patch", "clusterrolebinding", &n, "-p", r#"{"roleRef":{"name":"other"}}"#]);
        assert!(out.contains("cannot change roleRef"), "kubectl.{v}: {out}");
        // bad input, with upstream's words; nothing stored
        let bad = s.write(
            &format!("{n}-bad.yaml"),
            &format!("apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: {n}-bad\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Deployment\n  name: x\n"),
        );
        let out = s.fails(v, &["apply", "-f", as_str(&bad)]);
        assert!(out.contains(r#"roleRef.kind: Unsupported value: "Deployment": supported values: "Role", "ClusterRole""#), "kubectl.{v}: {out}");
        s.fails(v, &["get", "rolebinding", &format!("{n}-bad")]);
        for (kind, name) in [("role", &n), ("rolebinding", &n), ("clusterrole", &cr), ("clusterrolebinding", &n)] {
            s.ok(v, &["delete", kind, name]);
        }
    }
}

#[test]
fn server_side_apply_dry_run_and_explain() {
    let s = TestServer::start();
    for v in KUBECTLS {
        let name = unique_name("ssa");
        let file = s.write(&format!("{name}.yaml"), &deployment_yaml(&name, 2, "busybox:1.36"));
        let out = s.ok(v, &["apply", "--server-side", "-f", as_str(&file)]);
        assert!(out.contains("serverside-applied"), "{out}");
        let d: serde_json::Value = serde_json::from_str(&s.ok(v, &["get", "deploy", &name, "-o", "json", "--show-managed-fields"])).expect("json");
        let managers: Vec<&str> = d["metadata"]["managedFields"].as_array().into_iter().flatten().filter_map(|m| m["manager"].as_str()).collect();
        assert!(managers.contains(&"kubectl"), "{managers:?}");
        let rv = d["metadata"]["resourceVersion"].clone();
        // Re-applying the same configuration changes nothing.
        s.ok(v, &["apply", "--server-side", "-f", as_str(&file)]);
        let again = s.ok(v, &["get", "deploy", &name, "-o", "jsonpath={.metadata.resourceVersion}"]);
        assert_eq!(serde_json::json!(again), rv, "second server-side apply must not write");
        // A field dropped from the applied configuration is removed.
        let without_replicas = deployment_yaml(&name, 2, "busybox:1.37").replace("  replicas: 2\n", "");
        let file2 = s.write(&format!("{name}-2.yaml"), &without_replicas);
        s.ok(v, &["apply", "--server-side", "-f", as_str(&file2)]);
        let d: serde_json::Value = serde_json::from_str(&s.ok(v, &["get", "deploy", &name, "-o", "json"])).expect("json");
        assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["image"], "busybox:1.37");
        assert_eq!(d["spec"]["replicas"], 1, "replicas went back to its default once no manager owned it");

        // Another field manager applying a different value conflicts unless it forces.
        // (kubectl owns the image since its last apply; nobody owns replicas any more.)
        let other = s.write(&format!("{name}-3.yaml"), &deployment_yaml(&name, 7, "busybox:1.38"));
        let err = s.fails(v, &["apply", "--server-side", "--field-manager=other", "-f", as_str(&other)]);
        assert!(err.contains("conflict with \"kubectl\"") && err.contains(".image"), "kubectl.{v}: {err}");
        s.ok(v, &["apply", "--server-side", "--field-manager=other", "--force-conflicts", "-f", as_str(&other)]);
        let got = s.ok(v, &["get", "deploy", &name, "-o", "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].image}"]);
        assert_eq!(got, "7 busybox:1.38");

        // Server dry run: answers as if created, stores nothing.
        let dry = unique_name("dry");
        let file3 = s.write(&format!("{dry}.yaml"), &deployment_yaml(&dry, 1, "busybox:1.36"));
        let out = s.ok(v, &["apply", "--dry-run=server", "-f", as_str(&file3)]);
        assert!(out.contains("(server dry run)"), "{out}");
        let err = s.fails(v, &["get", "deploy", &dry]);
        assert!(err.contains("NotFound"), "{err}");
        let out = s.ok(v, &["delete", "deploy", &name, "--dry-run=server"]);
        assert!(out.contains("(server dry run)"), "{out}");
        s.ok(v, &["get", "deploy", &name]);

        let explain = s.ok(v, &["explain", "deployment.spec.strategy"]);
        assert!(explain.contains("rollingUpdate") && explain.contains("Recreate"), "kubectl.{v} explain: {explain}");
        let explain = s.ok(v, &["explain", "pods.spec.containers.image"]);
        assert!(explain.contains("Container image name"), "{explain}");
        s.ok(v, &["delete", "deploy", &name]);
    }
}
