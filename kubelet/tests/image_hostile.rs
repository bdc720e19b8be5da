//! Hostile images and a hostile node account against the image store (issue 12, "Images and the node's
//! store"). Each test performs the attack, asserts the refusal, and checks nothing was written, deleted or
//! left behind outside where it belongs:
//!
//! - whiteouts naming `..`, `.` or nothing (which used to delete the store's tmp/ with other pulls in it);
//! - a local unprivileged user reaching setuid binaries and device nodes in unpacked layers, a container's
//!   upper dir or its mounted rootfs (the docker CVE-2021-41091 class), while a container running as a
//!   non-root user still works;
//! - gzip bombs, too many entries, too large an image, huge tar metadata;
//! - imports whose blobs and configs are symlinks to `/dev/zero` or `/etc/shadow`, FIFOs, device nodes;
//! - an image's `/etc/passwd` that is a FIFO, a 1 TiB sparse file, or a symlink to a host path.
//!
//! Root (mknod, chown, overlay mounts, setpriv).

mod image_support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use image_support::{
    files_under, layer_tar, rt, write_layout, write_layout_with, Entry, FakeAuth, FakeRegistry, Faults, MountGuard,
};
use rkube_kubelet::image::import::{import, ImportError};
use rkube_kubelet::image::limits::Limits;
use rkube_kubelet::image::overlay::mount_rootfs;
use rkube_kubelet::image::secure_fs::ensure_private_dir;
use rkube_kubelet::image::unpack::{unpack_layer, UnpackError};
use rkube_kubelet::image::{no_progress, PullError, Puller, RegistryClient, RegistryConfig, Store};
use rkube_testsupport::{require_command, require_root, unique_name};

/// One tar entry of any kind, written with the tar crate (names like `.wh...` are plain names to it).
struct Raw<'a> {
    name: &'a str,
    kind: tar::EntryType,
    mode: u32,
    dev: Option<(u32, u32)>,
    data: &'a [u8],
}

fn raw(name: &str, kind: tar::EntryType, mode: u32) -> Raw<'_> {
    Raw { name, kind, mode, dev: None, data: &[] }
}

fn raw_tar(entries: &[Raw]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(e.kind);
        h.set_mode(e.mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_size(e.data.len() as u64);
        if let Some((major, minor)) = e.dev {
            h.set_device_major(major).expect("major");
            h.set_device_minor(minor).expect("minor");
        }
        b.append_data(&mut h, e.name, e.data).expect("tar entry");
    }
    b.into_inner().expect("finish tar")
}

/// A store under a world-traversable dir (as /var/lib/rkube is), so only the store's own modes protect it.
fn open_store(limits: Option<Limits>) -> (tempfile::TempDir, Store) {
    let base = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod base");
    let store = Store::open(base.path().join("images")).expect("store");
    let store = match limits {
        Some(l) => store.with_limits(l),
        None => store,
    };
    (base, store)
}

fn new_puller(store: &Store) -> Puller {
    Puller::new(store.clone(), Arc::new(RegistryClient::new(RegistryConfig::default()).expect("client")))
}

/// The store holds no image, no layer and no blob, and its tmp/ holds exactly `tmp_before`.
fn assert_nothing_added(store: &Store, tmp_before: &[String], what: &str) {
    assert!(store.list().expect("list").is_empty(), "{what}: no image recorded");
    assert_eq!(files_under(&store.root().join("layers")), Vec::<String>::new(), "{what}: no layer in the store");
    assert_eq!(files_under(&store.root().join("blobs")), Vec::<String>::new(), "{what}: no blob in the store");
    assert_eq!(files_under(&store.tmp_dir()), tmp_before, "{what}: tmp/ exactly as before");
}

/// Runs `f` on a thread and waits for it with a deadline: what used to block forever fails the test instead.
fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| panic!("{what}: still blocked after 60 s"))
}

// ---------------------------------------------------------------------------------------------------------
// 1. Whiteouts

#[test]
fn whiteouts_of_dot_dot_dot_or_nothing_are_refused_and_delete_nothing() {
    require_root();
    let (_base, store) = open_store(None);
    let tmp = store.tmp_dir();
    // Another pull at work: its staging dir and a resumable partial download.
    let other = tmp.join(format!("unpack-0123456789ab-{}-other", std::process::id()));
    std::fs::create_dir_all(other.join("bin")).expect("other staging");
    std::fs::write(other.join("bin/sh"), b"another pull's layer").expect("other file");
    std::fs::write(tmp.join(format!("{}.partial", "ab".repeat(32))), b"half a layer").expect("partial");
    let tmp_before = files_under(&tmp);

    for (i, wh) in [".wh...", ".wh..", ".wh.", "sub/.wh...", "sub/.wh..", "sub/.wh."].iter().enumerate() {
        let staging = tmp.join(format!("unpack-mine-{i}"));
        std::fs::create_dir(&staging).expect("staging");
        let t = raw_tar(&[
            raw("sub", tar::EntryType::Directory, 0o755),
            Raw { data: b"k", ..raw("sub/keep", tar::EntryType::Regular, 0o644) },
            Raw { data: b"t", ..raw("top", tar::EntryType::Regular, 0o644) },
            raw(wh, tar::EntryType::Regular, 0o644),
        ]);
        let err = unpack_layer(&t[..], &staging).expect_err("a whiteout of ., .. or nothing");
        assert!(matches!(err, UnpackError::BadWhiteout { .. }), "{wh}: {err}");
        assert!(err.to_string().contains("does not name an entry of its directory"), "{wh}: {err}");
        assert_eq!(
            files_under(&staging),
            vec!["sub/keep".to_string(), "top".to_string()],
            "{wh}: the layer itself untouched"
        );
        std::fs::remove_dir_all(&staging).expect("rm staging");
        assert_eq!(files_under(&tmp), tmp_before, "{wh}: the other pull's staging dir and partial file are intact");
    }

    // Whiteouts (plain and opaque) under a directory that is a link out of the layer: refused, outside untouched.
    let outside = tempfile::tempdir().expect("outside");
    std::fs::write(outside.path().join("victim"), b"keep me").expect("victim");
    for wh in ["out/.wh.victim", "out/.wh..wh..opq"] {
        let staging = tmp.join("unpack-mine-link");
        std::fs::create_dir(&staging).expect("staging");
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_size(0);
        b.append_link(&mut h, "out", outside.path()).expect("link");
        let t = {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o644);
            h.set_size(0);
            b.append_data(&mut h, wh, &[][..]).expect("whiteout");
            b.into_inner().expect("tar")
        };
        let err = unpack_layer(&t[..], &staging).expect_err(wh);
        assert!(matches!(err, UnpackError::Escape { .. }), "{wh}: {err}");
        assert_eq!(std::fs::read(outside.path().join("victim")).expect("victim"), b"keep me", "{wh}");
        assert_eq!(
            xattr::get(outside.path(), "trusted.overlay.opaque").expect("xattr"),
            None,
            "{wh}: no opaque mark outside"
        );
        std::fs::remove_dir_all(&staging).expect("rm staging");
    }
    assert_eq!(files_under(&tmp), tmp_before);

    // Still working: a real whiteout becomes a 0/0 device; AUFS metadata (.wh..wh.*) is skipped, not a whiteout.
    let staging = tmp.join("unpack-mine-ok");
    std::fs::create_dir(&staging).expect("staging");
    let t = raw_tar(&[
        raw("sub", tar::EntryType::Directory, 0o755),
        raw("sub/.wh.gone", tar::EntryType::Regular, 0o644),
        raw(".wh..wh.plnk", tar::EntryType::Directory, 0o700),
        raw("sub/.wh..wh.aufs", tar::EntryType::Regular, 0o644),
    ]);
    unpack_layer(&t[..], &staging).expect("plain whiteouts unpack");
    let gone = std::fs::symlink_metadata(staging.join("sub/gone")).expect("whiteout device");
    assert_eq!(gone.rdev(), 0);
    assert_eq!(files_under(&staging), vec!["sub/gone".to_string()], "AUFS metadata left no entry");
    std::fs::remove_dir_all(&staging).expect("rm staging");

    // The whole path, as a pull and an import do it: refused, naming the layer; nothing added, nothing lost.
    let src = tempfile::tempdir().expect("src");
    let layout = write_layout(
        &src.path().join("layout"),
        "1",
        &[layer_tar(&[Entry::Dir("etc"), Entry::File("etc/x", b"x"), Entry::File(".wh...", b"")])],
    );
    let err = import(&store, &layout.dir, Some("hostile/wh")).expect_err("import");
    match &err {
        ImportError::Unpack { digest, source: UnpackError::BadWhiteout { .. }, .. } => {
            assert_eq!(digest, &layout.layer_digests[0])
        }
        other => panic!("import: {other}"),
    }
    assert_nothing_added(&store, &tmp_before, "import");

    let registry = FakeRegistry::start(&layout, "hostile/wh", FakeAuth::None, Faults::default());
    let image = format!("{}/hostile/wh:1", registry.host());
    let err = rt().block_on(new_puller(&store).pull(&image, None, no_progress())).expect_err("pull");
    match &err {
        PullError::Unpack { digest, source: UnpackError::BadWhiteout { .. }, .. } => {
            assert_eq!(digest, &layout.layer_digests[0])
        }
        other => panic!("pull: {other}"),
    }
    assert!(err.to_string().contains(&layout.layer_digests[0]), "{err}");
    assert_nothing_added(&store, &tmp_before, "pull");
}

// ---------------------------------------------------------------------------------------------------------
// 2. Who can reach the store

/// Runs `args` as `nobody` (uid/gid 65534, no supplementary groups).
fn as_nobody(args: &[&str]) -> Output {
    let setpriv = require_command("setpriv", "util-linux");
    Command::new(setpriv)
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args(args)
        .output()
        .expect("setpriv")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).trim().to_string()
}

/// `nobody` runs the setuid-root copy of `id` at `bin`: its effective uid, or the error. Through a shell:
/// setpriv keeps its capabilities until its own exec, so it could reach paths nobody cannot.
fn run_suid(bin: &Path) -> Result<String, String> {
    let out = as_nobody(&["sh", "-c", "exec \"$0\" -u", bin.to_str().expect("utf8")]);
    if out.status.success() {
        Ok(text(&out.stdout))
    } else {
        Err(text(&out.stderr))
    }
}

/// `nobody` opens the device node at `dev` for reading.
fn open_dev(dev: &Path) -> Result<(), String> {
    let out = as_nobody(&["sh", "-c", ": < \"$0\"", dev.to_str().expect("utf8")]);
    if out.status.success() {
        Ok(())
    } else {
        Err(text(&out.stderr))
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("metadata").mode() & 0o7777
}

#[test]
fn setuid_files_and_devices_of_images_and_containers_are_out_of_other_users_reach() {
    require_root();
    require_command("chroot", "coreutils");
    let id_bin = std::fs::read("/usr/bin/id").expect("/usr/bin/id");
    let busybox = std::fs::read("/bin/busybox").expect("apt-get install -y busybox-static");
    let layer = raw_tar(&[
        raw("bin", tar::EntryType::Directory, 0o755),
        Raw { data: &busybox, ..raw("bin/busybox", tar::EntryType::Regular, 0o755) },
        raw("usr/bin", tar::EntryType::Directory, 0o755),
        Raw { data: &id_bin, ..raw("usr/bin/suid-id", tar::EntryType::Regular, 0o4755) },
        raw("dev", tar::EntryType::Directory, 0o755),
        Raw { dev: Some((1, 3)), ..raw("dev/open-null", tar::EntryType::Char, 0o666) },
        Raw { dev: Some((7, 0)), ..raw("dev/open-loop0", tar::EntryType::Block, 0o666) },
        raw("etc", tar::EntryType::Directory, 0o755),
        Raw { data: b"hello from the image\n", ..raw("etc/motd", tar::EntryType::Regular, 0o644) },
        raw("tmp", tar::EntryType::Directory, 0o1777),
    ]);
    let (base, store) = open_store(None);
    let root = store.root().to_path_buf();
    let src = tempfile::tempdir().expect("src");
    let layout = write_layout(&src.path().join("layout"), "1", &[layer]);
    let record = import(&store, &layout.dir, Some("hostile/suid")).expect("import").remove(0);
    let layer_dir = store.layer_dir(&record.layers[0].diff_id).expect("layer dir");
    let layer_bin = layer_dir.join("usr/bin/suid-id");
    let layer_dev = layer_dir.join("dev/open-null");
    let layer_blk = layer_dir.join("dev/open-loop0");
    assert_eq!(mode(&layer_bin), 0o4755, "the image's setuid bit is kept (the attack needs it)");

    // A container: its rootfs mounted where the kubelet mounts it (under its root dir, made as the kubelet
    // makes it), and its root writes a setuid binary and a device node, which land in the upper dir.
    let kubelet_root = base.path().join("kubelet");
    ensure_private_dir(&kubelet_root, 0o750).expect("kubelet root");
    let container = unique_name("suid");
    let merged = kubelet_root.join("pods/p/containers/c/bundle/rootfs");
    let _mount = MountGuard { store: store.clone(), container: container.clone(), target: merged.clone() };
    let m = mount_rootfs(&store, &container, &record, &merged, false).expect("mount rootfs");
    std::fs::write(merged.join("usr/bin/upper-id"), &id_bin).expect("write into the container");
    std::fs::set_permissions(merged.join("usr/bin/upper-id"), std::fs::Permissions::from_mode(0o4755))
        .expect("chmod u+s");
    nix::sys::stat::mknod(
        &merged.join("dev/upper-null"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    )
    .expect("mknod in the container");
    std::fs::set_permissions(merged.join("dev/upper-null"), std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let upper_bin = m.upper.join("usr/bin/upper-id");
    let upper_dev = m.upper.join("dev/upper-null");
    let merged_bin = merged.join("usr/bin/suid-id");
    assert_eq!(mode(&upper_bin), 0o4755);

    // Control: with every directory 0755, as the store used to be, the attack works. The test can see it.
    let inner = ["", "blobs", "blobs/sha256", "layers", "containers", "tmp"];
    for d in inner {
        std::fs::set_permissions(root.join(d), std::fs::Permissions::from_mode(0o755)).expect("loosen");
    }
    std::fs::set_permissions(&kubelet_root, std::fs::Permissions::from_mode(0o755)).expect("loosen");
    assert_eq!(run_suid(&layer_bin).as_deref(), Ok("0"), "control: nobody ran the layer's setuid copy as euid 0");
    assert_eq!(run_suid(&upper_bin).as_deref(), Ok("0"), "control: and the upper dir's");
    assert_eq!(run_suid(&merged_bin).as_deref(), Ok("0"), "control: and the mounted rootfs's");
    assert_eq!(open_dev(&layer_dev), Ok(()), "control: nobody opened the layer's device node");
    assert_eq!(open_dev(&upper_dev), Ok(()), "control: and the upper dir's");

    // Start: the store and the kubelet check their modes and tighten them.
    let store = Store::open(&root).expect("reopen store");
    for d in inner {
        assert_eq!(mode(&root.join(d)), 0o700, "{d}: 0700 after open");
    }
    assert_eq!(ensure_private_dir(&kubelet_root, 0o750).expect("kubelet root"), Some(0o755), "loose mode reported");
    assert_eq!(mode(&kubelet_root), 0o750);

    for (what, bin) in [("layer", &layer_bin), ("upper dir", &upper_bin), ("mounted rootfs", &merged_bin)] {
        let err = run_suid(bin).expect_err(what);
        assert!(err.contains("Permission denied"), "{what}: {err}");
    }
    for (what, dev) in [("layer", &layer_dev), ("layer block", &layer_blk), ("upper dir", &upper_dev)] {
        let err = open_dev(dev).expect_err(what);
        assert!(err.contains("Permission denied"), "{what}: {err}");
    }
    let ls = as_nobody(&["ls", root.to_str().expect("utf8")]);
    assert!(!ls.status.success() && text(&ls.stderr).contains("Permission denied"), "{}", text(&ls.stderr));

    // A container process running as a non-root user still reads the image and writes its upper dir:
    // overlayfs reaches layers and upper dir with the mounter's credentials, not the process's.
    let out = Command::new("chroot")
        .arg("--userspec=65534:65534")
        .arg(&merged)
        .args([
            "/bin/busybox",
            "sh",
            "-c",
            "/bin/busybox id -u; /bin/busybox cat /etc/motd; echo written > /tmp/w; /bin/busybox cat /tmp/w",
        ])
        .output()
        .expect("chroot");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "65534\nhello from the image\nwritten");
    assert_eq!(std::fs::read(m.upper.join("tmp/w")).expect("in the upper dir"), b"written\n");
    drop(store);
}

#[test]
fn a_store_root_owned_by_another_user_is_refused() {
    require_root();
    let base = tempfile::tempdir().expect("tempdir");
    let root = base.path().join("images");
    std::fs::create_dir(&root).expect("pre-made root");
    std::os::unix::fs::chown(&root, Some(1000), Some(1000)).expect("chown");
    let err = Store::open(&root).expect_err("another user's dir");
    assert!(
        err.to_string().contains(&format!("{} is owned by uid 1000, not by this process (uid 0)", root.display())),
        "{err}"
    );
    assert!(std::fs::read_dir(&root).expect("root").next().is_none(), "nothing created in it");
}

// ---------------------------------------------------------------------------------------------------------
// 3. Size caps

fn small_limits() -> Limits {
    Limits { layer_bytes: 16 << 20, image_bytes: 24 << 20, layer_entries: 100 }
}

#[test]
fn gzip_bomb_layer_is_stopped_at_the_layer_limit_in_pull_and_import() {
    require_root();
    let zeros = vec![0u8; 64 << 20];
    let src = tempfile::tempdir().expect("src");
    let layout = write_layout(&src.path().join("layout"), "1", &[layer_tar(&[Entry::File("zeros", &zeros)])]);
    let blob = std::fs::metadata(
        src.path().join("layout/blobs/sha256").join(layout.layer_digests[0].trim_start_matches("sha256:")),
    )
    .expect("blob")
    .len();
    eprintln!("bomb: {blob} bytes of gzip for {} bytes of tar", zeros.len());
    assert!(blob < 1 << 20, "a bomb: {blob} bytes compressed");

    let (_base, store) = open_store(Some(small_limits()));
    let want = format!(
        "layer {}: uncompressed layer is over the limit of 16Mi (16777216 bytes) per layer; raise it with --image-max-layer-size",
        layout.layer_digests[0]
    );
    let err = import(&store, &layout.dir, Some("hostile/bomb")).expect_err("import");
    assert!(matches!(err, ImportError::Unpack { source: UnpackError::LayerTooLarge { .. }, .. }), "{err}");
    assert!(err.to_string().ends_with(&want), "{err}");
    assert_nothing_added(&store, &[], "import");

    let registry = FakeRegistry::start(&layout, "hostile/bomb", FakeAuth::None, Faults::default());
    let image = format!("{}/hostile/bomb:1", registry.host());
    let err = rt().block_on(new_puller(&store).pull(&image, None, no_progress())).expect_err("pull");
    assert!(matches!(err, PullError::Unpack { source: UnpackError::LayerTooLarge { .. }, .. }), "{err}");
    assert_eq!(err.to_string(), format!("failed to pull image {image:?}: {want}"));
    assert_nothing_added(&store, &[], "pull (staging dir and partial download removed)");

    // Raised limits let the same image in.
    let store = store.with_limits(Limits { layer_bytes: 128 << 20, image_bytes: 128 << 20, layer_entries: 100 });
    import(&store, &layout.dir, Some("hostile/bomb")).expect("within raised limits");
}

#[test]
fn images_over_the_image_limit_or_the_entry_limit_are_refused() {
    require_root();
    let src = tempfile::tempdir().expect("src");
    let (_base, store) = open_store(Some(small_limits()));

    // Two layers of 14 MiB: each under the 16 MiB layer limit, together over the 24 MiB image limit.
    let a = vec![1u8; 14 << 20];
    let b = vec![2u8; 14 << 20];
    let layout = write_layout(
        &src.path().join("two"),
        "1",
        &[layer_tar(&[Entry::File("a", &a)]), layer_tar(&[Entry::File("b", &b)])],
    );
    let err = import(&store, &layout.dir, Some("hostile/two")).expect_err("image limit");
    assert!(matches!(err, ImportError::Unpack { source: UnpackError::ImageTooLarge { .. }, .. }), "{err}");
    assert!(
        err.to_string().ends_with(&format!(
            "layer {}: the image's layers are over the limit of 24Mi (25165824 bytes) uncompressed per image; raise it with --image-max-size",
            layout.layer_digests[1]
        )),
        "{err}"
    );
    assert!(store.list().expect("list").is_empty());
    assert_eq!(files_under(&store.tmp_dir()), Vec::<String>::new(), "no staging dir left");
    assert!(!store.has_layer(&layout.diff_ids[1]), "the layer over the limit is not in the store");

    // 300 empty files against a limit of 100 entries.
    let names: Vec<String> = (0..300).map(|i| format!("f{i}")).collect();
    let entries: Vec<Entry> = names.iter().map(|n| Entry::File(n, b"")).collect();
    let layout = write_layout(&src.path().join("many"), "1", &[layer_tar(&entries)]);
    let err = import(&store, &layout.dir, Some("hostile/many")).expect_err("entry limit");
    assert!(
        err.to_string().ends_with(&format!(
            "layer {}: layer has more than 100 entries; raise the limit with --image-max-layer-entries",
            layout.layer_digests[0]
        )),
        "{err}"
    );
    assert_eq!(files_under(&store.tmp_dir()), Vec::<String>::new());
    assert!(store.list().expect("list").is_empty());
}

#[test]
fn huge_tar_metadata_is_refused_before_it_is_held_in_memory() {
    require_root();
    // A pax header of 16 MiB (the tar reader would hold it whole in memory), then a file.
    let value = "a".repeat(16 << 20);
    let body = format!("comment={value}\n");
    let record = {
        let mut len = body.len() + 1;
        while format!("{len} {body}").len() != len {
            len += 1;
        }
        format!("{len} {body}")
    };
    let t = raw_tar(&[
        Raw { data: record.as_bytes(), ..raw("PaxHeaders/f", tar::EntryType::XHeader, 0o644) },
        Raw { data: b"x", ..raw("f", tar::EntryType::Regular, 0o644) },
    ]);
    let dest = tempfile::tempdir().expect("dest");
    let err = unpack_layer(&t[..], dest.path()).expect_err("metadata limit");
    assert!(matches!(err, UnpackError::EntryMetadata { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "tar metadata of one entry (pax records, long names, sparse maps) is over 4Mi (4194304 bytes)"
    );
    assert!(!dest.path().join("f").exists());
}

// ---------------------------------------------------------------------------------------------------------
// 4. Import sources that point elsewhere

fn blob_path(layout_dir: &Path, digest: &str) -> PathBuf {
    layout_dir.join("blobs/sha256").join(digest.trim_start_matches("sha256:"))
}

fn replace_with_symlink(path: &Path, target: &str) {
    std::fs::remove_file(path).expect("rm blob");
    std::os::unix::fs::symlink(target, path).expect("symlink");
}

#[test]
fn import_never_follows_blob_or_config_links_out_of_the_layout() {
    require_root();
    let (_base, store) = open_store(None);
    let src = tempfile::tempdir().expect("src");
    let secret_dir = tempfile::tempdir().expect("secret");
    let secret = secret_dir.path().join("shadow");
    std::fs::write(
        &secret,
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"hunter2":1}"#,
    )
    .expect("secret");
    let layer = || layer_tar(&[Entry::File("hello", b"hi")]);

    let cases: Vec<(&str, Box<dyn Fn(&image_support::Layout)>, String)> = vec![
        (
            "layer blob -> /dev/zero",
            Box::new(|l| replace_with_symlink(&blob_path(&l.dir, &l.layer_digests[0]), "/dev/zero")),
            "is a symlink to \"/dev/zero\", which names no file inside".into(),
        ),
        (
            "layer blob -> ../../../../dev/zero",
            Box::new(|l| {
                replace_with_symlink(&blob_path(&l.dir, &l.layer_digests[0]), "../../../../../../../../dev/zero")
            }),
            "which names no file inside".into(),
        ),
        (
            "config -> /etc/shadow",
            Box::new(|l| replace_with_symlink(&blob_path(&l.dir, &l.config_digest), "/etc/shadow")),
            "is a symlink to \"/etc/shadow\", which names no file inside".into(),
        ),
        (
            "config -> a secret outside",
            Box::new({
                let secret = secret.clone();
                move |l| replace_with_symlink(&blob_path(&l.dir, &l.config_digest), secret.to_str().expect("utf8"))
            }),
            "which names no file inside".into(),
        ),
        (
            "layer blob is a FIFO",
            Box::new(|l| {
                let p = blob_path(&l.dir, &l.layer_digests[0]);
                std::fs::remove_file(&p).expect("rm");
                nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o644)).expect("mkfifo");
            }),
            "not a regular file (a FIFO)".into(),
        ),
        (
            "layer blob is /dev/zero's device node",
            Box::new(|l| {
                let p = blob_path(&l.dir, &l.layer_digests[0]);
                std::fs::remove_file(&p).expect("rm");
                nix::sys::stat::mknod(
                    &p,
                    nix::sys::stat::SFlag::S_IFCHR,
                    nix::sys::stat::Mode::from_bits_truncate(0o644),
                    nix::sys::stat::makedev(1, 5),
                )
                .expect("mknod");
            }),
            "not a regular file (a character device)".into(),
        ),
        (
            "blobs dir -> /",
            Box::new(|l| {
                std::fs::rename(l.dir.join("blobs"), l.dir.join("real-blobs")).expect("mv");
                std::os::unix::fs::symlink("/", l.dir.join("blobs")).expect("symlink");
            }),
            "No such file or directory".into(),
        ),
    ];
    for (i, (what, break_it, want)) in cases.into_iter().enumerate() {
        let layout = write_layout(&src.path().join(format!("l{i}")), "1", &[layer()]);
        break_it(&layout);
        let store2 = store.clone();
        let dir = layout.dir.clone();
        let res = within(what, move || import(&store2, &dir, Some("hostile/link")));
        let err = res.expect_err(what);
        let msg = err.to_string();
        assert!(matches!(err, ImportError::File { .. }), "{what}: {msg}");
        assert!(msg.contains(want.as_str()), "{what}: {msg}");
        assert!(!msg.contains("hunter2"), "{what}: nothing of the outside file in the error: {msg}");
        assert_nothing_added(&store, &[], what);
    }

    // The path given is a FIFO: refused without opening it.
    let fifo = src.path().join("image.tar");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).expect("mkfifo");
    let store2 = store.clone();
    let err = within("import of a FIFO", move || import(&store2, &fifo, None)).expect_err("a FIFO");
    assert!(err.to_string().ends_with("not a directory or a regular file (a FIFO)"), "{err}");
    assert_nothing_added(&store, &[], "FIFO");
}

/// A docker-save archive at `path`: manifest.json, config.json and `layers` (name, content; None when an
/// `extra` entry provides that name: a symlink, whose target is its `data`, or a device node or FIFO).
fn docker_archive(path: &Path, layers: &[(&str, Option<&[u8]>)], extra: &[Raw]) {
    let mut diff_ids = Vec::new();
    let mut b = tar::Builder::new(Vec::new());
    let add = |b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, name, data).expect("entry");
    };
    let mut last_tar: Vec<u8> = Vec::new();
    for (name, data) in layers {
        if let Some(d) = data {
            last_tar = d.to_vec();
            add(&mut b, name, d);
        }
        diff_ids.push(image_support::sha256(&last_tar));
    }
    let config = serde_json::json!({"architecture": "amd64", "os": "linux", "config": {}, "rootfs": {"type": "layers", "diff_ids": diff_ids}});
    add(&mut b, "config.json", &serde_json::to_vec(&config).expect("config"));
    let manifest = serde_json::json!([{"Config": "config.json", "RepoTags": ["hostile/docker:1"], "Layers": layers.iter().map(|l| l.0).collect::<Vec<_>>()}]);
    add(&mut b, "manifest.json", &serde_json::to_vec(&manifest).expect("manifest"));
    for e in extra {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(e.kind);
        h.set_mode(e.mode);
        h.set_size(0);
        if let Some((major, minor)) = e.dev {
            h.set_device_major(major).expect("major");
            h.set_device_minor(minor).expect("minor");
        }
        if e.kind == tar::EntryType::Symlink {
            b.append_link(&mut h, e.name, std::str::from_utf8(e.data).expect("utf8")).expect("link");
        } else {
            b.append_data(&mut h, e.name, &[][..]).expect("entry");
        }
    }
    std::fs::write(path, b.into_inner().expect("tar")).expect("write archive");
}

#[test]
fn archives_with_links_out_or_device_nodes_are_refused_and_leave_no_temp_dir() {
    require_root();
    let (_base, store) = open_store(None);
    let src = tempfile::tempdir().expect("src");
    let layer = layer_tar(&[Entry::File("hello", b"hi")]);

    // Docker's own dedupe: a second layer.tar that is a relative link to the first imports fine.
    let ok = src.path().join("dedupe.tar");
    docker_archive(
        &ok,
        &[("a/layer.tar", Some(&layer[..])), ("b/layer.tar", None)],
        &[Raw { data: b"../a/layer.tar", ..raw("b/layer.tar", tar::EntryType::Symlink, 0o777) }],
    );
    let rec = import(&store, &ok, None).expect("a link inside the archive").remove(0);
    assert_eq!(rec.layers.len(), 2);
    assert!(rec.repo_tags.iter().any(|t| t.ends_with("hostile/docker:1")), "{:?}", rec.repo_tags);
    store.remove_image(&rec.id).expect("rm");
    assert_nothing_added(&store, &[], "after rm");

    let cases: Vec<(&str, Vec<Raw>, &str)> = vec![
        (
            "layer.tar -> /dev/zero",
            vec![Raw { data: b"/dev/zero", ..raw("a/layer.tar", tar::EntryType::Symlink, 0o777) }],
            "is a symlink to \"/dev/zero\", which names no file inside",
        ),
        (
            "layer.tar a character device 1:5 (/dev/zero)",
            vec![Raw { dev: Some((1, 5)), ..raw("a/layer.tar", tar::EntryType::Char, 0o666) }],
            "image archive entry \"a/layer.tar\" is a character device: an image archive holds only files, directories and links",
        ),
        (
            "layer.tar a block device",
            vec![Raw { dev: Some((7, 0)), ..raw("a/layer.tar", tar::EntryType::Block, 0o666) }],
            "is a block device",
        ),
        (
            "layer.tar a FIFO",
            vec![raw("a/layer.tar", tar::EntryType::Fifo, 0o666)],
            "is a FIFO",
        ),
    ];
    for (what, extra, want) in cases {
        let archive = src.path().join(format!("{}.tar", unique_name("bad")));
        docker_archive(&archive, &[("a/layer.tar", None)], &extra);
        let store2 = store.clone();
        let err = within(what, move || import(&store2, &archive, None)).expect_err(what);
        assert!(err.to_string().contains(want), "{what}: {err}");
        assert_nothing_added(&store, &[], what);
    }

    // config.json -> /etc/shadow inside an archive: the config read stays inside the extracted archive.
    let archive = src.path().join("shadow.tar");
    let mut b = tar::Builder::new(Vec::new());
    let manifest = br#"[{"Config":"config.json","RepoTags":["hostile/docker:1"],"Layers":[]}]"#;
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(manifest.len() as u64);
    b.append_data(&mut h, "manifest.json", &manifest[..]).expect("manifest");
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "config.json", "/etc/shadow").expect("link");
    std::fs::write(&archive, b.into_inner().expect("tar")).expect("archive");
    let err = import(&store, &archive, None).expect_err("config -> /etc/shadow");
    assert!(err.to_string().contains("is a symlink to \"/etc/shadow\", which names no file inside"), "{err}");
    assert!(!err.to_string().contains("root:"), "{err}");
    assert_nothing_added(&store, &[], "config -> /etc/shadow");

    // An archive larger than the image limit is not extracted past it.
    let small = store.clone().with_limits(Limits { layer_bytes: 1 << 20, image_bytes: 1 << 20, layer_entries: 100 });
    let big = vec![0u8; 4 << 20];
    let archive = src.path().join("big.tar.gz");
    docker_archive(&archive, &[("a/layer.tar", Some(&big[..]))], &[]);
    let gz = image_support::gzip(&std::fs::read(&archive).expect("read"));
    std::fs::write(&archive, gz).expect("gz");
    let err = import(&small, &archive, None).expect_err("archive limit");
    assert!(err.to_string().ends_with("image archive is over the limit of 1Mi (1048576 bytes) (the image size limit); raise it with --image-max-size"), "{err}");
    assert_nothing_added(&store, &[], "archive limit");
}

// ---------------------------------------------------------------------------------------------------------
// 5. The image's /etc/passwd

fn pod_and_container() -> (k8s_openapi::api::core::v1::Pod, k8s_openapi::api::core::v1::Container) {
    let pod = k8s_openapi::api::core::v1::Pod {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some("p".into()),
            ..Default::default()
        },
        spec: Some(Default::default()),
        status: None,
    };
    (pod, k8s_openapi::api::core::v1::Container { name: "c".into(), ..Default::default() })
}

#[test]
fn image_passwd_fifo_huge_file_or_host_link_never_blocks_or_leaves_the_rootfs() {
    require_root();
    use rkube_kubelet::container::security::{image_user_in_rootfs, SecurityError};
    let layer = raw_tar(&[
        raw("etc", tar::EntryType::Directory, 0o755),
        raw("etc/passwd", tar::EntryType::Fifo, 0o644),
        Raw { data: b"nobody:x:65534:65534::/:/bin/false\n", ..raw("etc/passwd.real", tar::EntryType::Regular, 0o644) },
        Raw { data: b"nogroup:x:65534:\n", ..raw("etc/group", tar::EntryType::Regular, 0o644) },
    ]);
    let (_base, store) = open_store(None);
    let src = tempfile::tempdir().expect("src");
    let layout = write_layout_with(&src.path().join("layout"), "1", &[layer], serde_json::json!({"User": "nobody"}));
    let record = import(&store, &layout.dir, Some("hostile/passwd")).expect("import").remove(0);
    let target = src.path().join("rootfs");
    let container = unique_name("pw");
    let _mount = MountGuard { store: store.clone(), container: container.clone(), target: target.clone() };
    mount_rootfs(&store, &container, &record, &target, false).expect("mount");

    let look = |user: &'static str| {
        let t = target.clone();
        within(&format!("look up {user}"), move || {
            let (p, c) = pod_and_container();
            image_user_in_rootfs(&p, &c, Some(user), &t)
        })
    };

    // A FIFO: refused at once, named (it used to block the pod worker forever).
    let err = look("nobody").expect_err("a FIFO");
    assert!(matches!(err, SecurityError::AccountFile { file: "passwd", .. }), "{err}");
    assert!(
        err.to_string()
            .contains("etc/passwd: not a regular file (a FIFO); it must be a regular file of at most 4194304 bytes"),
        "{err}"
    );

    // A symlink to a host path: resolved inside the rootfs, so the host's file is never read.
    let host = tempfile::tempdir().expect("host");
    std::fs::write(host.path().join("passwd"), "hostonly:x:4242:4242::/:/bin/sh\n").expect("host passwd");
    std::fs::remove_file(target.join("etc/passwd")).expect("rm fifo");
    std::os::unix::fs::symlink(host.path().join("passwd"), target.join("etc/passwd")).expect("symlink");
    assert!(matches!(look("hostonly"), Err(SecurityError::UnknownName { .. })), "the host's passwd is not read");
    // A link inside the image is fine.
    std::fs::remove_file(target.join("etc/passwd")).expect("rm");
    std::os::unix::fs::symlink("/etc/passwd.real", target.join("etc/passwd")).expect("symlink");
    assert_eq!(look("nobody").expect("in-image link"), Some("65534:65534".into()));

    // A 1 TiB sparse file: refused from its size, never read.
    std::fs::remove_file(target.join("etc/passwd")).expect("rm");
    std::fs::File::create(target.join("etc/passwd")).expect("create").set_len(1 << 40).expect("sparse");
    let err = look("nobody").expect_err("too large");
    assert!(err.to_string().contains("1099511627776 bytes, over the limit of 4194304 bytes"), "{err}");

    // /etc/group the same way.
    std::fs::remove_file(target.join("etc/passwd")).expect("rm");
    std::fs::copy(target.join("etc/passwd.real"), target.join("etc/passwd")).expect("cp");
    std::fs::remove_file(target.join("etc/group")).expect("rm");
    nix::unistd::mkfifo(&target.join("etc/group"), nix::sys::stat::Mode::from_bits_truncate(0o644)).expect("mkfifo");
    let err = look("nobody:nogroup").expect_err("group FIFO");
    assert!(matches!(err, SecurityError::AccountFile { file: "group", .. }), "{err}");
}
