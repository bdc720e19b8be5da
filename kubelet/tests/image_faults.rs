//! Pull faults a real registry will not produce on demand, against a registry served by the test: a corrupt
//! blob (detected, nothing left in the store), a connection cut mid-layer (resumed with HTTP Range), and the
//! WWW-Authenticate Bearer token flow. Unpacking whiteouts needs root (mknod, trusted xattrs), so these do too.

mod image_support;

use std::sync::Arc;

use image_support::{files_under, layer_tar, rt, write_layout, Entry, FakeAuth, FakeRegistry, Faults};
use rkube_kubelet::image::{no_progress, Credentials, PullProgress, Puller, RegistryClient, RegistryConfig, Store};
use rkube_testsupport::require_root;

fn new_puller(root: &std::path::Path) -> Puller {
    Puller::new(Store::open(root).expect("store"), Arc::new(RegistryClient::new(RegistryConfig::default()).expect("client")))
}

/// A two-layer image whose second layer is big enough that a cut in its middle is a real partial download.
fn two_layer_layout(dir: &std::path::Path) -> image_support::Layout {
    // Incompressible content so the gzip'd layer stays large.
    let mut noise = Vec::with_capacity(2 << 20);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while noise.len() < (2 << 20) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        noise.extend_from_slice(&x.to_le_bytes());
    }
    write_layout(
        dir,
        "v1",
        &[
            layer_tar(&[Entry::Dir("etc/"), Entry::File("etc/os-release", b"ID=test\n")]),
            layer_tar(&[Entry::Dir("data/"), Entry::File("data/blob", &noise), Entry::File("etc/.wh.os-release", b"")]),
        ],
    )
}

#[test]
fn corrupt_blob_is_rejected_and_nothing_is_left_in_the_store() {
    require_root();
    let src = tempfile::tempdir().expect("tempdir");
    let layout = two_layer_layout(src.path());
    let bad = layout.layer_digests[1].clone();
    let mut corrupted = layout.blobs[&bad].clone();
    let mid = corrupted.len() / 2;
    corrupted[mid] ^= 0xff;
    let registry = FakeRegistry::start(&layout, "app", FakeAuth::None, Faults { corrupt_blob: Some((bad.clone(), corrupted)), ..Faults::default() });
    let root = tempfile::tempdir().expect("store");
    let image = format!("{}/app:v1", registry.host());
    let err = rt().block_on(new_puller(root.path()).pull(&image, None, no_progress())).expect_err("corrupt layer");
    let msg = err.to_string();
    assert_eq!(err.reason(), "ErrImagePull");
    assert!(msg.starts_with(&format!("failed to pull image {image:?}: ")), "{msg}");
    assert!(msg.contains(&format!("layer {bad} from registry {}", registry.host())) && msg.contains("has digest sha256:"), "{msg}");

    let store = Store::open(root.path()).expect("store");
    assert!(store.list().expect("list").is_empty(), "no image record");
    assert!(!store.has_blob(&bad));
    assert!(!store.has_layer(&layout.diff_ids[1]));
    // No manifest/config written; no staging dirs or partial files left. (The good layer may be kept: it was
    // verified and is reusable, and GC prunes it if no image ever references it.)
    let left: Vec<String> = files_under(root.path())
        .into_iter()
        .filter(|f| !f.starts_with("layers/") && f != "lock" && !f.starts_with(&format!("blobs/sha256/{}", layout.layer_digests[0].trim_start_matches("sha256:"))))
        .collect();
    assert!(left.is_empty(), "left in the store: {left:?}");
    assert!(!root.path().join("index.json").exists() || store.list().expect("list").is_empty());
    assert_eq!(std::fs::read_dir(store.tmp_dir()).expect("tmp").count(), 0);
}

#[test]
fn cut_download_resumes_with_range() {
    require_root();
    let src = tempfile::tempdir().expect("tempdir");
    let layout = two_layer_layout(src.path());
    let big = layout.layer_digests[1].clone();
    let cut = layout.blobs[&big].len() / 3;
    let registry =
        FakeRegistry::start(&layout, "app", FakeAuth::None, Faults { cut_first_blob: Some((big.clone(), cut)), ..Faults::default() });
    let root = tempfile::tempdir().expect("store");
    let image = format!("{}/app:v1", registry.host());
    let events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let ev = events.clone();
    let outcome = rt()
        .block_on(new_puller(root.path()).pull(&image, None, Arc::new(move |p| ev.lock().expect("ev").push(p))))
        .expect("pull resumes after the cut");

    let blob_requests: Vec<_> =
        registry.requests().into_iter().filter(|r| r.path == format!("/v2/app/blobs/{big}")).collect();
    assert_eq!(blob_requests.len(), 2, "one cut request and one resumed request: {blob_requests:?}");
    assert_eq!(blob_requests[0].headers.get("range"), None);
    assert_eq!(blob_requests[1].headers.get("range").map(String::as_str), Some(format!("bytes={cut}-").as_str()));
    // Only the missing part was fetched again.
    let total: u64 = layout.layer_digests.iter().map(|d| layout.blobs[d].len() as u64).sum();
    assert_eq!(outcome.downloaded_bytes, total, "each byte fetched once");
    let store = Store::open(root.path()).expect("store");
    let layer = store.layer_dir(&layout.diff_ids[1]).expect("dir");
    assert_eq!(std::fs::metadata(layer.join("data/blob")).expect("data/blob").len(), 2 << 20);
    assert!(events.lock().expect("ev").iter().any(|e| matches!(e, PullProgress::LayerDone { digest } if *digest == big)));
    assert_eq!(std::fs::read_dir(store.tmp_dir()).expect("tmp").count(), 0, "partial file moved into blobs/");
}

#[test]
fn partial_file_from_an_earlier_pull_is_resumed() {
    require_root();
    let src = tempfile::tempdir().expect("tempdir");
    let layout = two_layer_layout(src.path());
    let big = layout.layer_digests[1].clone();
    let registry = FakeRegistry::start(&layout, "app", FakeAuth::None, Faults::default());
    let root = tempfile::tempdir().expect("store");
    let store = Store::open(root.path()).expect("store");
    // As if an earlier kubelet died mid-download.
    let have = layout.blobs[&big].len() / 2;
    std::fs::write(store.partial_path(&big).expect("partial"), &layout.blobs[&big][..have]).expect("write partial");

    let image = format!("{}/app:v1", registry.host());
    let outcome = rt().block_on(new_puller(root.path()).pull(&image, None, no_progress())).expect("pull");
    let req = registry.requests().into_iter().find(|r| r.path == format!("/v2/app/blobs/{big}")).expect("blob request");
    assert_eq!(req.headers.get("range").map(String::as_str), Some(format!("bytes={have}-").as_str()));
    let total: u64 = layout.layer_digests.iter().map(|d| layout.blobs[d].len() as u64).sum();
    assert_eq!(outcome.downloaded_bytes, total - have as u64);
    assert!(store.has_layer(&layout.diff_ids[1]) && store.has_blob(&big));
}

#[test]
fn bearer_token_flow_with_credentials() {
    require_root();
    let src = tempfile::tempdir().expect("tempdir");
    let layout = write_layout(src.path(), "v1", &[layer_tar(&[Entry::File("hello", b"world")])]);
    let auth = FakeAuth::Bearer { user: "alice".into(), pass: "s3cret".into(), token: "tok-123".into() };
    let registry = FakeRegistry::start(&layout, "private/app", auth, Faults::default());
    let image = format!("{}/private/app:v1", registry.host());

    // Anonymous: the token server refuses, and the error says so.
    let root = tempfile::tempdir().expect("store");
    let err = rt().block_on(new_puller(root.path()).pull(&image, None, no_progress())).expect_err("anonymous");
    let msg = err.to_string();
    assert!(msg.contains("unauthorized (HTTP 401)") && msg.contains(&registry.host()), "{msg}");

    // Wrong password: refused too.
    let wrong = Credentials { username: "alice".into(), password: "nope".into() };
    assert!(rt().block_on(new_puller(root.path()).pull(&image, Some(&wrong), no_progress())).is_err());

    let creds = Credentials { username: "alice".into(), password: "s3cret".into() };
    let outcome = rt().block_on(new_puller(root.path()).pull(&image, Some(&creds), no_progress())).expect("pull with token");
    assert_eq!(outcome.image.layers.len(), 1);
    let reqs = registry.requests();
    let token_req = reqs.iter().rev().find(|r| r.path.starts_with("/token?")).expect("token request");
    assert!(token_req.path.contains("service=fake-registry"), "{}", token_req.path);
    assert!(token_req.path.contains("scope=repository%3Aprivate%2Fapp%3Apull"), "{}", token_req.path);
    // Blob requests carried the token.
    let blob = reqs.iter().rev().find(|r| r.path.contains("/blobs/")).expect("blob request");
    assert_eq!(blob.headers.get("authorization").map(String::as_str), Some("Bearer tok-123"));
    let manifest = reqs.iter().rev().find(|r| r.path.contains("/manifests/")).expect("manifest request");
    let accept = manifest.headers.get("accept").expect("accept header");
    for t in [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ] {
        assert!(accept.contains(t), "Accept lacks {t}: {accept}");
    }
}

#[test]
fn concurrent_pulls_of_one_image_fetch_each_layer_once() {
    require_root();
    let src = tempfile::tempdir().expect("tempdir");
    let layout = two_layer_layout(src.path());
    let registry = FakeRegistry::start(&layout, "app", FakeAuth::None, Faults::default());
    let root = tempfile::tempdir().expect("store");
    let puller = new_puller(root.path());
    let image = format!("{}/app:v1", registry.host());
    let (a, b) = rt().block_on(async {
        tokio::join!(puller.pull(&image, None, no_progress()), puller.pull(&image, None, no_progress()))
    });
    let (a, b) = (a.expect("first pull"), b.expect("second pull"));
    assert_eq!(a.image.id, b.image.id);
    let total: u64 = layout.layer_digests.iter().map(|d| layout.blobs[d].len() as u64).sum();
    assert_eq!(a.downloaded_bytes + b.downloaded_bytes, total, "every layer downloaded by exactly one pull");
    for d in &layout.layer_digests {
        let n = registry.requests().iter().filter(|r| r.path == format!("/v2/app/blobs/{d}")).count();
        assert_eq!(n, 1, "blob {d} requested {n} times");
    }
}
