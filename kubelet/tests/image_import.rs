//! Offline import of the three formats images travel in — an OCI layout directory, an oci-archive and a
//! docker-save archive (both made by skopeo from a busybox layout) — then the `rkube image ls` table lists
//! them, and `image rm` removes one with its content. Root (layer unpack keeps ownership).

use std::path::Path;
use std::process::Command;

use rkube_kubelet::image::import::import;
use rkube_kubelet::image::{listing, Store};
use rkube_testsupport::{busybox_oci_layout, require_command, require_root};

fn skopeo_copy(from: String, to: String) {
    let skopeo = require_command("skopeo", "skopeo");
    let ok = Command::new(skopeo)
        .args(["copy", "--quiet", "--insecure-policy"])
        .arg(&from)
        .arg(&to)
        .status()
        .expect("run skopeo")
        .success();
    assert!(ok, "skopeo copy {from} {to} failed");
}

#[test]
fn import_oci_layout_oci_archive_and_docker_archive_then_list() {
    require_root();
    let src = tempfile::tempdir().expect("tempdir");
    let layout_dir = src.path().join("layout");
    let layout = busybox_oci_layout(&layout_dir, "1.36", &["sh"]);
    let oci_archive = src.path().join("bb-oci.tar");
    skopeo_copy(format!("oci:{}:1.36", layout_dir.display()), format!("oci-archive:{}:2.0", oci_archive.display()));
    let docker_archive = src.path().join("bb-docker.tar");
    skopeo_copy(
        format!("oci:{}:1.36", layout_dir.display()),
        format!("docker-archive:{}:example.com/tools/dsave:3.1", docker_archive.display()),
    );

    let root = tempfile::tempdir().expect("store dir");
    let store = Store::open(root.path()).expect("store");

    // OCI layout with a name: the tag comes from the layout's ref.name.
    let from_dir = import(&store, &layout_dir, Some("127.0.0.1:5000/busybox")).expect("import layout");
    assert_eq!(from_dir.len(), 1);
    assert_eq!(from_dir[0].repo_tags, vec!["127.0.0.1:5000/busybox:1.36".to_string()]);
    assert_eq!(from_dir[0].id, layout.config_digest);
    assert_eq!(from_dir[0].manifest_digest, layout.manifest_digest);
    let layer = store.layer_dir(&from_dir[0].layers[0].diff_id).expect("layer dir");
    assert!(layer.join("bin/busybox").is_file());

    // oci-archive without a name: ref.name is a bare tag, the repository comes from the file name.
    let from_oci_archive = import(&store, &oci_archive, None).expect("import oci-archive");
    assert!(from_oci_archive[0].repo_tags.contains(&"localhost/bb-oci:2.0".to_string()), "{:?}", from_oci_archive[0].repo_tags);
    assert_eq!(from_oci_archive[0].id, layout.config_digest, "same config, same image ID");

    // docker-save archive: named by its RepoTags; skopeo wrote an uncompressed layer.
    let from_docker = import(&store, &docker_archive, None).expect("import docker-archive");
    assert!(from_docker[0].repo_tags.contains(&"example.com/tools/dsave:3.1".to_string()), "{:?}", from_docker[0].repo_tags);
    assert_eq!(from_docker[0].repo_tags.len(), 3, "tags of one image ID gather on one record");
    assert_eq!(from_docker[0].layers[0].diff_id, from_dir[0].layers[0].diff_id);

    // Same image ID: the tags gather on one record; no temp dirs left behind.
    let images = store.list().expect("list");
    assert_eq!(images.len(), 1, "{images:?}");
    assert_eq!(std::fs::read_dir(store.tmp_dir()).expect("tmp").count(), 0);

    let table = listing::table(&images);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("REPOSITORY") && lines[0].contains("TAG") && lines[0].contains("IMAGE ID") && lines[0].ends_with("SIZE"));
    let short_id: String = layout.config_digest.trim_start_matches("sha256:").chars().take(13).collect();
    for (repo, tag) in [("127.0.0.1:5000/busybox", "1.36"), ("localhost/bb-oci", "2.0"), ("example.com/tools/dsave", "3.1")] {
        let row = lines.iter().find(|l| l.starts_with(repo)).unwrap_or_else(|| panic!("{repo} missing from:\n{table}"));
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols[..3], [repo, tag, short_id.as_str()], "{row}");
        assert!(cols[3].ends_with("MB") || cols[3].ends_with("kB"), "{row}");
    }

    // rm by tag drops that tag; the last tag takes the image and its content with it.
    store.remove_image("localhost/bb-oci:2.0").expect("rm tag");
    assert_eq!(store.list().expect("list")[0].repo_tags.len(), 2);
    store.remove_image("127.0.0.1:5000/busybox:1.36").expect("rm tag");
    store.remove_image("example.com/tools/dsave:3.1").expect("rm image");
    assert!(store.list().expect("list").is_empty());
    assert!(!layer.exists(), "layer removed with the last image using it");
    assert_eq!(std::fs::read_dir(root.path().join("blobs/sha256")).expect("blobs").count(), 0);
}

#[test]
fn import_rejects_tampered_layout() {
    require_root();
    let src = tempfile::tempdir().expect("tempdir");
    let layout = busybox_oci_layout(src.path(), "1.0", &["sh"]);
    // Flip a byte inside the layer blob.
    let blob = src.path().join("blobs/sha256").join(layout.layer_digest.trim_start_matches("sha256:"));
    let mut bytes = std::fs::read(&blob).expect("blob");
    let last = bytes.len() - 20;
    bytes[last] ^= 0x55;
    std::fs::write(&blob, bytes).expect("write");
    let root = tempfile::tempdir().expect("store dir");
    let store = Store::open(root.path()).expect("store");
    let err = import(&store, src.path(), Some("x/y")).expect_err("tampered");
    let msg = err.to_string();
    assert!(msg.contains(&src.path().display().to_string()), "{msg}");
    assert!(store.list().expect("list").is_empty());
    assert_eq!(std::fs::read_dir(root.path().join("layers")).expect("layers").count(), 0);
    assert!(!Path::new(&store.tmp_dir()).read_dir().expect("tmp").any(|_| true), "tmp empty");
}
