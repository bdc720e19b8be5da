//! Pure parts of image handling the pod code relies on, no root needed: imagePullPolicy defaults and decisions,
//! imagePullSecrets (`.dockerconfigjson`) parsing, and the order in which GC picks images.

use std::collections::HashSet;

use base64::Engine;
use rkube_kubelet::image::gc::collect_garbage;
use rkube_kubelet::image::pull_policy::{decide, PullDecision, PullPolicy};
use rkube_kubelet::image::{DockerConfigJson, ImageRecord, Reference, Store};

#[test]
fn pull_policy_defaults_and_decisions() {
    use PullDecision::*;
    use PullPolicy::*;
    // (image, explicit policy, present in store) -> decision
    let hex = "0".repeat(64);
    let cases: Vec<(String, Option<PullPolicy>, bool, PullDecision)> = vec![
        ("busybox".into(), None, true, Pull),                      // no tag = :latest -> Always
        ("busybox:latest".into(), None, true, Pull),               // :latest -> Always
        ("busybox:1.36".into(), None, true, UseLocal),             // tag -> IfNotPresent
        ("busybox:1.36".into(), None, false, Pull),
        (format!("busybox@sha256:{hex}"), None, true, UseLocal),   // digest only -> IfNotPresent
        (format!("busybox:latest@sha256:{hex}"), None, true, Pull), // latest tag wins, as in the API defaulting
        ("busybox:1.36".into(), Some(Always), true, Pull),
        ("busybox".into(), Some(IfNotPresent), true, UseLocal),
        ("busybox".into(), Some(IfNotPresent), false, Pull),
        ("busybox".into(), Some(Never), true, UseLocal),
        ("busybox:1.36".into(), Some(Never), false, NeverPullMissing),
        ("127.0.0.1:5000/app".into(), None, true, Pull),
        ("127.0.0.1:5000/app:v2".into(), None, false, Pull),
    ];
    for (image, policy, present, want) in cases {
        let r = Reference::parse(&image).expect("reference");
        let effective = PullPolicy::effective(policy, &r);
        assert_eq!(decide(effective, present), want, "{image} policy={policy:?} present={present}");
    }
    assert_eq!(NeverPullMissing.waiting_reason(), Some("ErrImageNeverPull"));
    assert_eq!(PullPolicy::from_api("IfNotPresent"), Ok(Some(IfNotPresent)));
    assert_eq!(PullPolicy::from_api(""), Ok(None));
    assert!(PullPolicy::from_api("Sometimes").is_err());
}

#[test]
fn dockerconfigjson_secret_gives_credentials_per_registry() {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let json = serde_json::json!({
        "auths": {
            "127.0.0.1:5000": {"auth": b64("alice:pa:ss")},
            "https://index.docker.io/v1/": {"auth": b64("bob:hub")},
            "quay.io": {"username": "carol", "password": "q"},
            "empty.example": {}
        }
    });
    let cfg = DockerConfigJson::parse(&serde_json::to_vec(&json).expect("json")).expect("parse");
    let c = cfg.credentials_for("127.0.0.1:5000").expect("local registry creds");
    assert_eq!((c.username.as_str(), c.password.as_str()), ("alice", "pa:ss"), "password may contain ':'");
    let hub = cfg.credentials_for(&Reference::parse("busybox").expect("ref").registry).expect("docker hub creds");
    assert_eq!(hub.username, "bob");
    assert_eq!(cfg.credentials_for("quay.io").expect("quay").password, "q");
    assert!(cfg.credentials_for("empty.example").is_none());
    assert!(cfg.credentials_for("127.0.0.1:5001").is_none());
    assert!(!format!("{c:?}").contains("pa:ss"), "Debug must not print passwords");

    let bad = serde_json::json!({"auths": {"r.example": {"auth": b64("no-colon")}}});
    let err = DockerConfigJson::parse(&serde_json::to_vec(&bad).expect("json")).expect_err("no colon");
    assert!(err.to_string().contains("r.example"), "{err}");
    assert!(DockerConfigJson::parse(b"not json").is_err());

    // Several secrets: the first naming a registry wins.
    let other = DockerConfigJson::parse(br#"{"auths":{"127.0.0.1:5000":{"username":"zed","password":"z"}}}"#).expect("parse");
    let merged = DockerConfigJson::merge([cfg, other]);
    assert_eq!(merged.credentials_for("127.0.0.1:5000").expect("creds").username, "alice");
}

fn record(n: u8, last_used: u64, size: u64) -> ImageRecord {
    let id = format!("sha256:{}", format!("{n:02x}").repeat(32));
    ImageRecord {
        id: id.clone(),
        manifest_digest: id,
        repo_tags: vec![format!("127.0.0.1:5000/img{n}:v1")],
        repo_digests: vec![],
        layers: vec![],
        size,
        created: 1,
        last_used,
    }
}

#[test]
fn gc_frees_least_recently_used_first_and_stops_when_enough_is_freed() {
    let root = tempfile::tempdir().expect("store dir");
    let store = Store::open(root.path()).expect("store");
    for (n, used) in [(1, 300), (2, 100), (3, 200), (4, 50)] {
        store.add_image(record(n, used, 1000)).expect("add");
    }
    // img4 is the oldest but in use; need 1500 bytes -> img2 (100) then img3 (200) go, img1 (300) stays.
    let in_use: HashSet<String> = ["127.0.0.1:5000/img4:v1".to_string()].into_iter().collect();
    let report = collect_garbage(&store, &in_use, 1500).expect("gc");
    assert_eq!(report.removed_images, vec![record(2, 0, 0).id, record(3, 0, 0).id]);
    let left: Vec<String> = store.list().expect("list").into_iter().map(|r| r.id).collect();
    assert_eq!(left, vec![record(1, 0, 0).id, record(4, 0, 0).id]);
}
