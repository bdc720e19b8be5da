//! Layer unpacking against hostile and unusual tars: no entry may write, link or delete outside the layer
//! directory; device nodes, xattrs, modes and ownership come through. Root (mknod, chown, trusted xattrs).

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use rkube_kubelet::image::unpack::{unpack_layer, UnpackError};
use rkube_testsupport::require_root;

/// A tar entry written byte-for-byte, so names with `..` and absolute link targets can be made.
fn raw(b: &mut tar::Builder<Vec<u8>>, name: &str, kind: tar::EntryType, link: Option<&str>, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    {
        let gnu = h.as_gnu_mut().expect("gnu header");
        gnu.name[..name.len()].copy_from_slice(name.as_bytes());
    }
    if let Some(l) = link {
        h.set_link_name_literal(l).expect("link name");
    }
    h.set_entry_type(kind);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mode(if kind == tar::EntryType::Directory { 0o755 } else { 0o644 });
    h.set_size(data.len() as u64);
    h.set_mtime(1_600_000_000);
    h.set_cksum();
    b.append(&h, data).expect("append");
}

fn tar_of(f: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    f(&mut b);
    b.into_inner().expect("tar")
}

fn expect_escape(tar: &[u8], dest: &Path) {
    match unpack_layer(tar, dest) {
        Err(UnpackError::Escape { .. }) => {}
        other => panic!("expected an escape error, got {other:?}"),
    }
}

#[test]
fn hostile_entries_never_touch_anything_outside_the_layer_dir() {
    require_root();
    let base = tempfile::tempdir().expect("tempdir");
    let outside = base.path().join("outside");
    std::fs::create_dir(&outside).expect("outside dir");
    std::fs::write(outside.join("victim"), b"keep me").expect("victim");
    let fresh = |n: &str| {
        let d = base.path().join("layers").join(n);
        std::fs::create_dir_all(&d).expect("layer dir");
        d
    };

    // `..` in a path.
    let t = tar_of(|b| raw(b, "../../outside/pwned", tar::EntryType::Regular, None, b"x"));
    expect_escape(&t, &fresh("dotdot"));

    // Write through an absolute symlink that points outside.
    let t = tar_of(|b| {
        raw(b, "evil", tar::EntryType::Symlink, Some(outside.to_str().expect("utf8")), b"");
        raw(b, "evil/pwned", tar::EntryType::Regular, None, b"x");
    });
    expect_escape(&t, &fresh("abs-symlink"));

    // Write through a relative symlink that climbs out.
    let t = tar_of(|b| {
        raw(b, "up", tar::EntryType::Symlink, Some("../../outside"), b"");
        raw(b, "up/pwned", tar::EntryType::Regular, None, b"x");
    });
    expect_escape(&t, &fresh("rel-symlink"));

    // Hardlink to a file outside (absolute source).
    let victim = outside.join("victim");
    let t = tar_of(|b| raw(b, "hl", tar::EntryType::Link, Some(victim.to_str().expect("utf8")), b""));
    let dest = fresh("hardlink");
    assert!(unpack_layer(&t[..], &dest).is_err(), "hardlink to an outside file must fail");
    assert!(!dest.join("hl").exists());

    // A whiteout through an escaping symlink must not delete the outside file.
    let t = tar_of(|b| {
        raw(b, "wh", tar::EntryType::Symlink, Some(outside.to_str().expect("utf8")), b"");
        raw(b, "wh/.wh.victim", tar::EntryType::Regular, None, b"");
    });
    expect_escape(&t, &fresh("whiteout"));

    // A directory entry over a symlink to outside must not chmod the outside dir.
    let before = std::fs::metadata(&outside).expect("outside").mode();
    let t = tar_of(|b| {
        raw(b, "d", tar::EntryType::Symlink, Some(outside.to_str().expect("utf8")), b"");
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().expect("gnu").name[..2].copy_from_slice(b"d/");
        h.set_entry_type(tar::EntryType::Directory);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mode(0o777);
        h.set_size(0);
        h.set_cksum();
        b.append(&h, &[][..]).expect("append");
    });
    let dest = fresh("dir-over-symlink");
    unpack_layer(&t[..], &dest).expect("a directory entry replaces the symlink");
    assert!(std::fs::symlink_metadata(dest.join("d")).expect("d").is_dir());
    assert_eq!(std::fs::metadata(&outside).expect("outside").mode(), before, "outside dir untouched");

    // After all of that, the outside directory is exactly as it was.
    let names: Vec<String> =
        std::fs::read_dir(&outside).expect("outside").map(|e| e.expect("e").file_name().to_string_lossy().into()).collect();
    assert_eq!(names, vec!["victim".to_string()]);
    assert_eq!(std::fs::read(outside.join("victim")).expect("victim"), b"keep me");
    assert!(!base.path().join("pwned").exists());
}

#[test]
fn devices_xattrs_modes_owners_and_diff_id() {
    require_root();
    let t = tar_of(|b| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Char);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mode(0o666);
        h.set_device_major(1).expect("major");
        h.set_device_minor(3).expect("minor");
        h.set_size(0);
        b.append_data(&mut h, "dev/null", &[][..]).expect("char dev");
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Fifo);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mode(0o600);
        h.set_size(0);
        b.append_data(&mut h, "run/fifo", &[][..]).expect("fifo");
        b.append_pax_extensions([("SCHILY.xattr.user.rkube", &b"hello"[..])]).expect("pax");
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o4755);
        h.set_uid(1234);
        h.set_gid(5678);
        h.set_mtime(1_500_000_000);
        h.set_size(3);
        b.append_data(&mut h, "usr/bin/suid", &b"abc"[..]).expect("file");
    });
    let dest = tempfile::tempdir().expect("tempdir");
    let gz = {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&t).expect("gz");
        e.finish().expect("gz")
    };
    let unpacked = unpack_layer(&gz[..], dest.path()).expect("unpack");
    use sha2::Digest;
    assert_eq!(unpacked.diff_id, format!("sha256:{}", hex::encode(sha2::Sha256::digest(&t))), "diff_id is over the uncompressed tar");

    let null = std::fs::symlink_metadata(dest.path().join("dev/null")).expect("dev/null");
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), nix::sys::stat::makedev(1, 3));
    assert_eq!(null.mode() & 0o7777, 0o666);
    assert!(std::fs::symlink_metadata(dest.path().join("run/fifo")).expect("fifo").file_type().is_fifo());
    let suid = std::fs::metadata(dest.path().join("usr/bin/suid")).expect("suid");
    assert_eq!(suid.mode() & 0o7777, 0o4755);
    assert_eq!((suid.uid(), suid.gid()), (1234, 5678));
    assert_eq!(suid.mtime(), 1_500_000_000);
    assert_eq!(xattr::get(dest.path().join("usr/bin/suid"), "user.rkube").expect("xattr").as_deref(), Some(&b"hello"[..]));
}
