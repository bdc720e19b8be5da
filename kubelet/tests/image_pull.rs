//! Pulls from a real registry (Debian's docker-registry on 127.0.0.1): by tag and by digest, unknown images,
//! multi-layer images with whiteouts mounted through overlayfs, and GC of what no container uses. Root.

mod image_support;

use std::collections::HashSet;
use std::os::unix::fs::FileTypeExt;
use std::sync::{Arc, Mutex};

use image_support::{layer_tar, rt, write_layout, Entry, MountGuard};
use rkube_kubelet::image::overlay::mount_rootfs;
use rkube_kubelet::image::{gc, no_progress, PullProgress, Puller, RegistryClient, RegistryConfig, Store};
use rkube_testsupport::{busybox_oci_layout, require_root, unique_name, Registry};

fn new_puller(root: &std::path::Path) -> Puller {
    let store = Store::open(root).expect("open store");
    Puller::new(store, Arc::new(RegistryClient::new(RegistryConfig::default()).expect("client")))
}

#[test]
fn pull_by_tag_and_digest_then_mount_busybox_rootfs() {
    require_root();
    let registry = Registry::start();
    let src = tempfile::tempdir().expect("tempdir");
    let layout = busybox_oci_layout(src.path(), "1.36", &["sh"]);
    let image = registry.push(&layout, "busybox", "1.36");
    let root = tempfile::tempdir().expect("store dir");
    let puller = new_puller(root.path());

    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    let outcome = rt()
        .block_on(puller.pull(&image, None, Arc::new(move |p| ev.lock().expect("events").push(p))))
        .expect("pull by tag");
    assert_eq!(outcome.image.repo_tags, vec![format!("{}/busybox:1.36", registry.host())]);
    assert_eq!(outcome.image.layers.len(), 1);
    assert!(outcome.downloaded_bytes > 500_000, "busybox layer is ~1 MB gzip'd, got {}", outcome.downloaded_bytes);
    let events = events.lock().expect("events").clone();
    assert!(matches!(events.first(), Some(PullProgress::Resolved { layers: 1, .. })), "{events:?}");
    assert!(events.iter().any(|e| matches!(e, PullProgress::LayerBytes { downloaded, size, .. } if downloaded == size)));
    assert!(matches!(events.last(), Some(PullProgress::LayerDone { .. })), "{events:?}");
    assert!(outcome.event_message(&image).starts_with(&format!("Successfully pulled image {image:?} in ")));

    // By digest: the registry's manifest digest (skopeo may re-encode the manifest, so ask the store).
    let digest = outcome.image.repo_digests[0].split_once('@').expect("repo digest").1.to_string();
    let by_digest = format!("{}/busybox@{digest}", registry.host());
    let second = new_puller(root.path());
    let again = rt().block_on(second.pull(&by_digest, None, no_progress())).expect("pull by digest");
    assert_eq!(again.image.id, outcome.image.id);
    assert_eq!(again.downloaded_bytes, 0, "layer was already in the store");
    // A fresh store pulls by digest too.
    let root2 = tempfile::tempdir().expect("store dir");
    let fresh = rt().block_on(new_puller(root2.path()).pull(&by_digest, None, no_progress())).expect("pull by digest, fresh");
    assert_eq!(fresh.image.id, outcome.image.id);
    assert!(fresh.image.repo_tags.is_empty());

    let store = puller.store().clone();
    let record = store.resolve(&image).expect("resolve").expect("image in store");
    let target = root.path().join("mnt").join(unique_name("c"));
    let container = unique_name("ctr");
    let _guard = MountGuard { store: store.clone(), container: container.clone(), target: target.clone() };
    mount_rootfs(&store, &container, &record, &target, false).expect("mount rootfs");
    let bb = std::fs::metadata(target.join("bin/busybox")).expect("/bin/busybox in mounted rootfs");
    assert!(bb.len() > 500_000);
    assert!(std::fs::symlink_metadata(target.join("bin/sh")).expect("/bin/sh").file_type().is_symlink());
    // The rootfs is writable and writes land in the container's upperdir, not in the shared layer.
    std::fs::write(target.join("tmp/hello"), b"hi").expect("write into rootfs");
    assert!(root.path().join("containers").join(&container).join("upper/tmp/hello").exists());
    assert!(!store.layer_dir(&record.layers[0].diff_id).expect("layer dir").join("tmp/hello").exists());
}

#[test]
fn unknown_image_names_image_registry_and_status() {
    let registry = Registry::start();
    let root = tempfile::tempdir().expect("store dir");
    let image = format!("{}/nope:1", registry.host());
    let err = rt().block_on(new_puller(root.path()).pull(&image, None, no_progress())).expect_err("unknown image");
    assert_eq!(err.reason(), "ErrImagePull");
    assert_eq!(
        err.to_string(),
        format!("failed to pull image \"{image}\": manifest unknown (HTTP 404) from registry {}", registry.host())
    );
    // Nothing to reach at all: the error names the registry too.
    let port = rkube_testsupport::registry::free_port();
    let image = format!("127.0.0.1:{port}/busybox:1");
    let err = rt().block_on(new_puller(root.path()).pull(&image, None, no_progress())).expect_err("no registry");
    let msg = err.to_string();
    assert!(msg.contains(&format!("cannot reach registry 127.0.0.1:{port}")), "{msg}");
}

#[test]
fn whiteouts_in_upper_layer_hide_lower_files_in_overlay() {
    require_root();
    let registry = Registry::start();
    let src = tempfile::tempdir().expect("tempdir");
    let lower = layer_tar(&[
        Entry::Dir("etc/"),
        Entry::File("etc/keep", b"keep"),
        Entry::File("etc/gone", b"gone"),
        Entry::Dir("data/"),
        Entry::File("data/old1", b"1"),
        Entry::File("data/old2", b"2"),
        Entry::File("bin/tool", b"#!tool"),
        Entry::Hardlink("bin/tool-link", "bin/tool"),
        Entry::Symlink("bin/alias", "tool"),
    ]);
    let upper = layer_tar(&[
        Entry::Dir("etc/"),
        Entry::File("etc/.wh.gone", b""),
        Entry::Dir("data/"),
        Entry::File("data/.wh..wh..opq", b""),
        Entry::File("data/new", b"new"),
    ]);
    let layout = write_layout(src.path(), "v1", &[lower, upper]);
    let skopeo = rkube_testsupport::require_command("skopeo", "skopeo");
    let image = format!("{}/layered:v1", registry.host());
    let status = std::process::Command::new(skopeo)
        .args(["copy", "--quiet", "--dest-tls-verify=false", "--insecure-policy"])
        .arg(format!("oci:{}:v1", layout.dir.display()))
        .arg(format!("docker://{image}"))
        .status()
        .expect("skopeo");
    assert!(status.success());

    let root = tempfile::tempdir().expect("store dir");
    let puller = new_puller(root.path());
    let outcome = rt().block_on(puller.pull(&image, None, no_progress())).expect("pull layered image");
    assert_eq!(outcome.image.layers.len(), 2);
    let store = puller.store().clone();

    // In the upper layer's own dir the whiteouts are overlay whiteouts.
    let upper_dir = store.layer_dir(&outcome.image.layers[1].diff_id).expect("layer dir");
    let wh = std::fs::symlink_metadata(upper_dir.join("etc/gone")).expect("whiteout node");
    assert!(wh.file_type().is_char_device(), "whiteout must be a char device");
    assert_eq!(std::os::unix::fs::MetadataExt::rdev(&wh), 0);
    assert_eq!(xattr::get(upper_dir.join("data"), "trusted.overlay.opaque").expect("xattr").as_deref(), Some(&b"y"[..]));
    assert!(!upper_dir.join("data/.wh..wh..opq").exists());
    // Lower layer: hardlink shares the inode, symlink kept.
    let lower_dir = store.layer_dir(&outcome.image.layers[0].diff_id).expect("layer dir");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(lower_dir.join("bin/tool")).expect("tool").ino(),
        std::fs::metadata(lower_dir.join("bin/tool-link")).expect("tool-link").ino()
    );
    assert_eq!(std::fs::read_link(lower_dir.join("bin/alias")).expect("symlink").to_str(), Some("tool"));
    assert_eq!(std::fs::metadata(lower_dir.join("etc/keep")).expect("keep").mtime(), 1_700_000_000);

    let target = root.path().join("rootfs");
    let container = unique_name("ctr");
    let _guard = MountGuard { store: store.clone(), container: container.clone(), target: target.clone() };
    mount_rootfs(&store, &container, &outcome.image, &target, true).expect("mount rootfs readonly");
    assert_eq!(std::fs::read(target.join("etc/keep")).expect("keep"), b"keep");
    assert!(!target.join("etc/gone").exists(), "whiteout must hide etc/gone");
    let mut data: Vec<String> =
        std::fs::read_dir(target.join("data")).expect("data").map(|e| e.expect("entry").file_name().to_string_lossy().into()).collect();
    data.sort();
    assert_eq!(data, vec!["new".to_string()], "opaque dir must hide the lower layer's files");
    // Readonly rootfs: writes fail with EROFS.
    let err = std::fs::write(target.join("etc/new"), b"x").expect_err("readonly rootfs");
    assert_eq!(err.raw_os_error(), Some(nix::libc::EROFS));
}

#[test]
fn gc_removes_unused_images_oldest_first_and_their_layers() {
    require_root();
    let registry = Registry::start();
    let root = tempfile::tempdir().expect("store dir");
    let puller = new_puller(root.path());
    let store = puller.store().clone();
    let mut images = Vec::new();
    for (i, name) in ["gc-a", "gc-b", "gc-c"].iter().enumerate() {
        let src = tempfile::tempdir().expect("tempdir");
        let content = format!("image {i}");
        let layout = write_layout(src.path(), "v1", &[layer_tar(&[Entry::File("id", content.as_bytes())])]);
        let skopeo = rkube_testsupport::require_command("skopeo", "skopeo");
        let image = format!("{}/{name}:v1", registry.host());
        let ok = std::process::Command::new(skopeo)
            .args(["copy", "--quiet", "--dest-tls-verify=false", "--insecure-policy"])
            .arg(format!("oci:{}:v1", layout.dir.display()))
            .arg(format!("docker://{image}"))
            .status()
            .expect("skopeo")
            .success();
        assert!(ok);
        let pulled = rt().block_on(puller.pull(&image, None, no_progress())).expect("pull");
        images.push(pulled.image);
    }
    // gc-a is used by a running container (its rootfs is mounted); gc-c is named in use by the caller.
    let target = root.path().join("rootfs-a");
    let container = unique_name("ctr");
    let _guard = MountGuard { store: store.clone(), container: container.clone(), target: target.clone() };
    mount_rootfs(&store, &container, &images[0], &target, false).expect("mount");
    let in_use: HashSet<String> = [format!("{}/gc-c:v1", registry.host())].into_iter().collect();

    let report = gc::collect_garbage(&store, &in_use, u64::MAX).expect("gc");
    assert_eq!(report.removed_images, vec![images[1].id.clone()]);
    assert!(report.freed_bytes > 0);
    assert!(!store.layer_dir(&images[1].layers[0].diff_id).expect("dir").exists(), "unused layer removed");
    assert!(!store.has_blob(&images[1].layers[0].digest));
    assert!(store.layer_dir(&images[0].layers[0].diff_id).expect("dir").exists(), "layer of image in use kept");
    let left: Vec<String> = store.list().expect("list").into_iter().map(|r| r.id).collect();
    assert_eq!(left.len(), 2);
    assert!(left.contains(&images[0].id) && left.contains(&images[2].id));
    // Removing an image a container runs from is refused.
    let err = store.remove_image(&format!("{}/gc-a:v1", registry.host())).expect_err("in use");
    assert!(err.to_string().contains(&container), "{err}");
}

#[test]
fn multi_arch_index_resolves_to_this_platform() {
    require_root();
    use image_support::{gzip, sha256};
    let registry = Registry::start();
    let src = tempfile::tempdir().expect("tempdir");
    let dir = src.path();
    std::fs::create_dir_all(dir.join("blobs/sha256")).expect("blobs");
    let put = |data: &[u8]| -> (String, usize) {
        let d = sha256(data);
        std::fs::write(dir.join("blobs/sha256").join(d.trim_start_matches("sha256:")), data).expect("blob");
        (d, data.len())
    };
    let mut manifests = Vec::new();
    for arch in ["arm64", "amd64", "s390x"] {
        let tar = layer_tar(&[Entry::File("arch", arch.as_bytes())]);
        let (ld, ls) = put(&gzip(&tar));
        let config = serde_json::json!({"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": [sha256(&tar)]}});
        let (cd, cs) = put(&serde_json::to_vec(&config).expect("config"));
        let manifest = serde_json::json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": ls}],
        });
        let (md, ms) = put(&serde_json::to_vec(&manifest).expect("manifest"));
        manifests.push(serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
                                          "platform": {"architecture": arch, "os": "linux"}}));
    }
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests});
    let (idx_digest, idx_size) = put(&serde_json::to_vec(&index).expect("index"));
    let top = serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": idx_digest, "size": idx_size, "annotations": {"org.opencontainers.image.ref.name": "multi"}}]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&top).expect("top")).expect("index.json");
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).expect("oci-layout");
    let image = format!("{}/multi:v1", registry.host());
    let ok = std::process::Command::new(rkube_testsupport::require_command("skopeo", "skopeo"))
        .args(["copy", "--all", "--quiet", "--dest-tls-verify=false", "--insecure-policy"])
        .arg(format!("oci:{}:multi", dir.display()))
        .arg(format!("docker://{image}"))
        .status()
        .expect("skopeo")
        .success();
    assert!(ok, "push multi-arch index");

    let root = tempfile::tempdir().expect("store dir");
    let puller = new_puller(root.path());
    let outcome = rt().block_on(puller.pull(&image, None, no_progress())).expect("pull index");
    let layer = puller.store().layer_dir(&outcome.image.layers[0].diff_id).expect("layer");
    assert_eq!(std::fs::read(layer.join("arch")).expect("arch file"), b"amd64", "this node's platform was chosen");
    // The repo digest is the index's (what the registry serves for the tag), the manifest digest amd64's.
    let repo_digest = outcome.image.repo_digests[0].split_once('@').expect("digest").1.to_string();
    assert_ne!(repo_digest, outcome.image.manifest_digest);
    // Pulling by the index digest gives the same image.
    let by_digest = format!("{}/multi@{repo_digest}", registry.host());
    let again = rt().block_on(puller.pull(&by_digest, None, no_progress())).expect("pull index by digest");
    assert_eq!(again.image.id, outcome.image.id);
}
