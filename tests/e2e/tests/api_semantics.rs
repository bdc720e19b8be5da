//! The HTTP API itself, as client libraries see it: bad input answered with the right Status and nothing stored,
//! list/watch semantics (selectors, paging, resourceVersion, in-stream 410), and object semantics (generation,
//! status subresource, optimistic concurrency, finalizers, propagation, generateName).

mod common;

use std::time::Duration;

use common::{as_str, TestServer};
use futures::StreamExt;
use rkube_testsupport::unique_name;
use serde_json::{json, Value};

struct Api<'a> {
    s: &'a TestServer,
    http: reqwest::Client,
}

impl<'a> Api<'a> {
    fn new(s: &'a TestServer) -> Api<'a> {
        Api { s, http: reqwest::Client::new() }
    }

    fn send(&self, method: &str, path: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
        let url = format!("{}{path}", self.s.url);
        self.s.runtime().block_on(async {
            let resp = self
                .http
                .request(method.parse().expect("method"), &url)
                .header("Content-Type", content_type)
                .body(body)
                .send()
                .await
                .expect("request");
            let code = resp.status().as_u16();
            let text = resp.text().await.expect("body");
            (code, serde_json::from_str(&text).unwrap_or(Value::String(text)))
        })
    }

    fn json(&self, method: &str, path: &str, body: &Value) -> (u16, Value) {
        self.send(method, path, "application/json", serde_json::to_vec(body).expect("json"))
    }

    fn get(&self, path: &str) -> (u16, Value) {
        self.send("GET", path, "application/json", Vec::new())
    }

    /// Reads watch events until `n` arrived or `timeout`.
    fn watch(&self, path: &str, n: usize, timeout: Duration) -> (u16, Vec<Value>) {
        let url = format!("{}{path}", self.s.url);
        self.s.runtime().block_on(async {
            let resp = self.http.get(&url).send().await.expect("watch");
            let code = resp.status().as_u16();
            let mut stream = resp.bytes_stream();
            let mut buf = Vec::new();
            let mut events = Vec::new();
            let deadline = tokio::time::Instant::now() + timeout;
            while events.len() < n {
                let chunk = match tokio::time::timeout_at(deadline, stream.next()).await {
                    Ok(Some(Ok(c))) => c,
                    _ => break,
                };
                buf.extend_from_slice(&chunk);
                while let Some(i) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=i).collect();
                    if let Ok(v) = serde_json::from_slice::<Value>(&line) {
                        events.push(v);
                    }
                }
            }
            (code, events)
        })
    }
}

fn cm(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}, "data": {"k": "v"}})
}

const CMS: &str = "/api/v1/namespaces/default/configmaps";

#[test]
fn bad_input_gets_the_right_status_and_stores_nothing() {
    let s = TestServer::start();
    let api = Api::new(&s);
    let pods = "/api/v1/namespaces/default/pods";
    let (code, st) = api.send("POST", pods, "application/json", b"{\"apiVersion\": \"v1\", \"kind\": ".to_vec());
    assert_eq!((code, st["reason"].as_str()), (400, Some("BadRequest")), "{st}");
    let (code, st) = api.send("POST", pods, "application/yaml", b"metadata: [unclosed\n  - :".to_vec());
    assert_eq!(code, 400, "{st}");
    let (code, st) = api.json("POST", pods, &json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}}));
    assert_eq!(code, 400, "wrong kind for the path: {st}");
    let (code, st) = api.json("POST", pods, &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "Bad_Name"},
        "spec": {"containers": [{"name": "c", "image": "i"}]}}));
    assert_eq!((code, st["reason"].as_str()), (422, Some("Invalid")), "{st}");
    assert_eq!(st["details"]["causes"][0]["field"], "metadata.name");
    let (code, st) = api.json("POST", CMS, &cm("ok-name", json!({"bad key!": "v"})));
    assert_eq!(code, 422, "{st}");
    assert!(st["message"].as_str().unwrap_or_default().contains("metadata.labels"), "{st}");
    let (code, st) = api.json("POST", pods, &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": "nope"}}));
    assert_eq!(code, 400, "bad type: {st}");
    assert!(st["message"].as_str().unwrap_or_default().contains("spec.containers"), "{st}");
    let big = format!("{{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{{\"name\":\"big\"}},\"data\":{{\"k\":\"{}\"}}}}", "x".repeat(10 * 1024 * 1024));
    let (code, st) = api.send("POST", CMS, "application/json", big.into_bytes());
    assert_eq!((code, st["reason"].as_str()), (413, Some("RequestEntityTooLarge")), "{st}");
    let (code, st) = api.json(
        &"POST",
        &format!("{CMS}?fieldValidation=Strict"),
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "strict"}, "dataa": {}}),
    );
    assert_eq!(code, 400, "{st}");
    assert!(st["message"].as_str().unwrap_or_default().contains("unknown field \"dataa\""), "{st}");
    let (code, st) = api.json("POST", "/api/v1/namespaces/nope/configmaps", &cm("x", json!({})));
    assert_eq!((code, st["message"].as_str()), (404, Some("namespaces \"nope\" not found")), "{st}");
    let (code, _) = api.send("POST", CMS, "text/html", b"<html>".to_vec());
    assert_eq!(code, 415);

    // Stale resourceVersion: 409 and the object keeps its value.
    let (code, created) = api.json("POST", CMS, &cm("cas", json!({})));
    assert_eq!(code, 201);
    let mut first = created.clone();
    first["data"]["k"] = json!("one");
    let (code, _) = api.json("PUT", &format!("{CMS}/cas"), &first);
    assert_eq!(code, 200);
    let mut stale = created.clone();
    stale["data"]["k"] = json!("two");
    let (code, st) = api.json("PUT", &format!("{CMS}/cas"), &stale);
    assert_eq!((code, st["reason"].as_str()), (409, Some("Conflict")), "{st}");
    assert_eq!(api.get(&format!("{CMS}/cas")).1["data"]["k"], "one");

    // kubectl prints these as it does for a real cluster, and nothing is stored.
    let file = s.write("unknown.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: unk\nbogus: 1\n");
    let bad_name = s.write("bad-name.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n");
    for v in common::KUBECTLS {
        let err = s.fails(v, &["apply", "-f", as_str(&file)]);
        assert!(
            err.contains("Error from server (BadRequest)") && err.contains("strict decoding error: unknown field \"bogus\""),
            "kubectl.{v}: {err}"
        );
        let err = s.fails(v, &["create", "-f", as_str(&bad_name)]);
        assert!(
            err.contains("The ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\""),
            "kubectl.{v}: {err}"
        );
    }

    let (_, list) = api.get(pods);
    assert_eq!(list["items"].as_array().map(Vec::len), Some(0), "nothing stored: {list}");
    let (_, list) = api.get(CMS);
    let names: Vec<&str> = list["items"].as_array().into_iter().flatten().filter_map(|i| i["metadata"]["name"].as_str()).collect();
    assert_eq!(names, vec!["cas"]);
    let (code, _) = api.get("/readyz");
    assert_eq!(code, 200, "still serving");
}

#[test]
fn selectors_paging_and_watch_semantics() {
    let s = TestServer::start();
    let api = Api::new(&s);
    let prefix = unique_name("sel");
    for (i, tier) in ["web", "web", "db", "cache", "db"].iter().enumerate() {
        let mut labels = json!({"tier": tier});
        if i % 2 == 0 {
            labels["even"] = json!("yes");
        }
        let (code, st) = api.json("POST", CMS, &cm(&format!("{prefix}-{i}"), labels));
        assert_eq!(code, 201, "{st}");
    }
    let count = |q: &str| -> usize {
        let (code, l) = api.get(&format!("{CMS}?labelSelector={}", q));
        assert_eq!(code, 200, "{q}: {l}");
        l["items"].as_array().map(Vec::len).unwrap_or(0)
    };
    assert_eq!(count("tier%3Dweb"), 2);
    assert_eq!(count("tier%21%3Dweb,tier"), 3);
    assert_eq!(count("tier%20in%20(db,cache)"), 3);
    assert_eq!(count("tier%20notin%20(db)"), 3);
    assert_eq!(count("even"), 3);
    assert_eq!(count("!even"), 2);
    let (_, l) = api.get(&format!("{CMS}?fieldSelector=metadata.name%3D{prefix}-3"));
    assert_eq!(l["items"][0]["metadata"]["name"], format!("{prefix}-3"));
    let (code, _) = api.get(&format!("{CMS}?fieldSelector=spec.bogus%3Dx"));
    assert_eq!(code, 400);

    // Pages of 2 at one revision cover everything once.
    let mut seen = Vec::new();
    let mut cont = String::new();
    let mut pages = 0;
    loop {
        let (code, l) = api.get(&format!("{CMS}?limit=2&continue={cont}"));
        assert_eq!(code, 200, "{l}");
        pages += 1;
        seen.extend(l["items"].as_array().into_iter().flatten().filter_map(|i| i["metadata"]["name"].as_str().map(str::to_string)));
        match l["metadata"]["continue"].as_str() {
            Some(c) if !c.is_empty() => cont = c.to_string(),
            _ => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 5);

    // Watch from a resourceVersion sees later changes only.
    let (_, l) = api.get(CMS);
    let rv = l["metadata"]["resourceVersion"].as_str().expect("rv").to_string();
    let mut obj = api.get(&format!("{CMS}/{prefix}-0")).1;
    obj["data"]["k"] = json!("changed");
    assert_eq!(api.json("PUT", &format!("{CMS}/{prefix}-0"), &obj).0, 200);
    let (code, events) = api.watch(&format!("{CMS}?watch=true&resourceVersion={rv}&labelSelector=tier%3Dweb"), 1, Duration::from_secs(10));
    assert_eq!(code, 200);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["type"], "MODIFIED");
    assert_eq!(events[0]["object"]["data"]["k"], "changed");

    // resourceVersionMatch=Exact reads the past.
    let (code, old) = api.get(&format!("{CMS}?resourceVersion={rv}&resourceVersionMatch=Exact&fieldSelector=metadata.name%3D{prefix}-0"));
    assert_eq!(code, 200, "{old}");
    assert_eq!(old["items"][0]["data"]["k"], "v");

    // Once compacted, an old resourceVersion is an in-stream 410 (HTTP 200), as clients expect.
    let state = s.state();
    let current = s.runtime().block_on(state.store.current_revision()).expect("revision");
    s.runtime().block_on(state.store.compact(current)).expect("compact");
    let (code, events) = api.watch(&format!("{CMS}?watch=true&resourceVersion=1"), 1, Duration::from_secs(10));
    assert_eq!(code, 200);
    assert_eq!(events[0]["type"], "ERROR", "{events:?}");
    assert_eq!(events[0]["object"]["code"], 410);
    let (code, _) = api.get(&format!("{CMS}?resourceVersion=1&resourceVersionMatch=Exact"));
    assert_eq!(code, 410);
}

#[test]
fn object_semantics_generation_status_finalizers_propagation() {
    let s = TestServer::start();
    let api = Api::new(&s);
    let deps = "/apis/apps/v1/namespaces/default/deployments";
    let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"generateName": "gen-", "finalizers": ["example.com/hold"]},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
    let (code, created) = api.json("POST", deps, &d);
    assert_eq!(code, 201, "{created}");
    let name = created["metadata"]["name"].as_str().expect("generated name").to_string();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");
    assert_eq!(created["metadata"]["generation"], 1);
    let path = format!("{deps}/{name}");

    // Label change: no generation bump. Spec change: bump. Status writes through the main resource are ignored.
    let (code, o) = api.send("PATCH", &path, "application/merge-patch+json", br#"{"metadata":{"labels":{"x":"y"}},"status":{"replicas":9}}"#.to_vec());
    assert_eq!(code, 200, "{o}");
    assert_eq!(o["metadata"]["generation"], 1);
    assert!(o["status"].get("replicas").is_none(), "{o}");
    let (_, o) = api.send("PATCH", &path, "application/merge-patch+json", br#"{"spec":{"replicas":4}}"#.to_vec());
    assert_eq!(o["metadata"]["generation"], 2);
    // The status subresource changes status only.
    let (code, o) = api.send("PATCH", &format!("{path}/status"), "application/merge-patch+json", br#"{"spec":{"replicas":1},"status":{"replicas":4,"observedGeneration":2}}"#.to_vec());
    assert_eq!(code, 200, "{o}");
    assert_eq!((o["spec"]["replicas"].clone(), o["status"]["replicas"].clone()), (json!(4), json!(4)));
    assert_eq!(o["metadata"]["generation"], 2);
    // JSON patch and strategic merge patch
    let (code, o) = api.send("PATCH", &path, "application/json-patch+json", br#"[{"op":"replace","path":"/spec/replicas","value":5}]"#.to_vec());
    assert_eq!((code, o["spec"]["replicas"].clone()), (200, json!(5)));
    let (code, o) = api.send(
        "PATCH",
        &path,
        "application/strategic-merge-patch+json",
        br#"{"spec":{"template":{"spec":{"containers":[{"name":"side","image":"s"}]}}}}"#.to_vec(),
    );
    assert_eq!(code, 200);
    assert_eq!(o["spec"]["template"]["spec"]["containers"].as_array().map(Vec::len), Some(2), "merged by name: {o}");

    // Delete with a finalizer: deletionTimestamp set, object stays; removing the finalizer deletes it.
    let (code, o) = api.json("DELETE", &path, &json!({"propagationPolicy": "Foreground"}));
    assert_eq!(code, 200);
    assert!(o["metadata"]["deletionTimestamp"].is_string(), "{o}");
    let fins = o["metadata"]["finalizers"].clone();
    assert_eq!(fins, json!(["example.com/hold", "foregroundDeletion"]), "propagation recorded for the garbage collector");
    assert_eq!(api.get(&path).0, 200);
    let (code, _) = api.send("PATCH", &path, "application/merge-patch+json", br#"{"metadata":{"finalizers":null}}"#.to_vec());
    assert_eq!(code, 200);
    assert_eq!(api.get(&path).0, 404);

    // Pods bound to a node are deleted gracefully (the kubelet finishes), unbound ones at once.
    let pods = "/api/v1/namespaces/default/pods";
    let pod = |n: &str, node: Option<&str>| {
        let mut p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": n}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
        if let Some(node) = node {
            p["spec"]["nodeName"] = json!(node);
        }
        p
    };
    assert_eq!(api.json("POST", pods, &pod("free", None)).0, 201);
    assert_eq!(api.json("POST", pods, &pod("bound", Some("n1"))).0, 201);
    assert_eq!(api.json("DELETE", &format!("{pods}/free"), &json!({})).0, 200);
    assert_eq!(api.get(&format!("{pods}/free")).0, 404);
    let (_, o) = api.json("DELETE", &format!("{pods}/bound"), &json!({}));
    assert_eq!(o["metadata"]["deletionGracePeriodSeconds"], 30);
    assert_eq!(api.get(&format!("{pods}/bound")).0, 200);
    assert_eq!(api.json("DELETE", &format!("{pods}/bound"), &json!({"gracePeriodSeconds": 0})).0, 200);
    assert_eq!(api.get(&format!("{pods}/bound")).0, 404);

    // Eviction deletes with the Eviction's deleteOptions: a bound pod evicted with grace 0 is gone at once.
    assert_eq!(api.json("POST", pods, &pod("evicted", Some("n1"))).0, 201);
    let eviction = |name: &str, grace: i64| {
        json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name}, "deleteOptions": {"gracePeriodSeconds": grace}})
    };
    let (code, st) = api.json("POST", &format!("{pods}/evicted/eviction"), &eviction("other", 0));
    assert_eq!(code, 400, "an Eviction naming another pod: {st}");
    assert_eq!(api.get(&format!("{pods}/evicted")).0, 200, "a refused eviction deletes nothing");
    let (code, st) = api.json("POST", &format!("{pods}/evicted/eviction"), &eviction("evicted", 0));
    assert_eq!(code, 201, "{st}");
    assert_eq!(api.get(&format!("{pods}/evicted")).0, 404);
    assert_eq!(api.json("POST", &format!("{pods}/evicted/eviction"), &eviction("evicted", 0)).0, 404);

    // Binding assigns a node once.
    assert_eq!(api.json("POST", pods, &pod("sched", None)).0, 201);
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "sched"}, "target": {"kind": "Node", "name": "n1"}});
    assert_eq!(api.json("POST", &format!("{pods}/sched/binding"), &binding).0, 201);
    assert_eq!(api.get(&format!("{pods}/sched")).1["spec"]["nodeName"], "n1");
    assert_eq!(api.json("POST", &format!("{pods}/sched/binding"), &binding).0, 409);
}

#[test]
fn events_are_one_set_under_both_event_apis() {
    let s = TestServer::start();
    let api = Api::new(&s);
    let new_api = "/apis/events.k8s.io/v1/namespaces/default/events";
    let core_api = "/api/v1/namespaces/default/events";
    let (code, e) = api.json(
        "POST",
        new_api,
        &json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "via-new"},
            "eventTime": "2024-01-01T00:00:00.000000Z", "reportingController": "rkube/test", "reportingInstance": "t",
            "action": "Testing", "reason": "Tested", "note": "written as events.k8s.io", "type": "Normal",
            "regarding": {"kind": "Pod", "name": "p1", "namespace": "default"}}),
    );
    assert_eq!(code, 201, "{e}");
    let (code, core) = api.get(&format!("{core_api}/via-new"));
    assert_eq!(code, 200, "{core}");
    assert_eq!(core["apiVersion"], "v1");
    assert_eq!(core["message"], "written as events.k8s.io");
    assert_eq!(core["involvedObject"]["name"], "p1");
    let (code, _) = api.json(
        "POST",
        core_api,
        &json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "via-core"}, "message": "written as core",
            "reason": "Tested", "type": "Warning", "involvedObject": {"kind": "Pod", "name": "p1", "namespace": "default"}}),
    );
    assert_eq!(code, 201);
    let (_, list) = api.get(&format!("{new_api}?fieldSelector=regarding.name%3Dp1"));
    let notes: Vec<&str> = list["items"].as_array().into_iter().flatten().filter_map(|i| i["note"].as_str()).collect();
    assert_eq!(notes, vec!["written as core", "written as events.k8s.io"], "{list}");
    let out = s.ok("1.33", &["get", "events", "--field-selector", "involvedObject.name=p1"]);
    assert!(out.contains("written as core") && out.contains("written as events.k8s.io"), "{out}");
    assert_eq!(api.json("DELETE", &format!("{new_api}/via-core"), &json!({})).0, 200);
    assert_eq!(api.get(&format!("{core_api}/via-core")).0, 404);
}
