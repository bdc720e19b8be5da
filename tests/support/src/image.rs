//! A busybox root filesystem and OCI image, made from Debian's busybox-static (`/bin/busybox`) with no network.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

const BUSYBOX: &str = "/bin/busybox";

/// Fills `dest` with a minimal root filesystem: busybox and a symlink per applet in /bin, /etc/passwd and
/// /etc/group with root and nobody, and empty /proc, /sys, /dev, /tmp, /root, /var.
pub fn busybox_rootfs(dest: &Path) {
    assert!(
        Path::new(BUSYBOX).exists(),
        "{BUSYBOX} is missing: apt-get install -y busybox-static (scripts/deps.sh installs every test dependency)"
    );
    for d in ["bin", "sbin", "etc", "proc", "sys", "dev", "tmp", "root", "var", "usr/bin", "home"] {
        fs::create_dir_all(dest.join(d)).expect("create rootfs directory");
    }
    fs::set_permissions(dest.join("tmp"), fs::Permissions::from_mode(0o1777)).expect("chmod /tmp");
    let bb = dest.join("bin/busybox");
    fs::copy(BUSYBOX, &bb).expect("copy busybox into rootfs");
    let out = Command::new(BUSYBOX).arg("--list").output().expect("run busybox --list");
    for applet in String::from_utf8_lossy(&out.stdout).lines() {
        let link = dest.join("bin").join(applet);
        if applet != "busybox" && !link.exists() {
            symlink("busybox", &link).expect("symlink busybox applet");
        }
    }
    fs::write(
        dest.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n",
    )
    .expect("write /etc/passwd");
    fs::write(dest.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").expect("write /etc/group");
}

/// An OCI image layout on disk (image-spec 1.0): `oci-layout`, `index.json`, `blobs/sha256/...`.
#[derive(Debug, Clone)]
pub struct OciLayout {
    /// The layout's directory.
    pub dir: PathBuf,
    /// The tag `index.json` names the manifest by (`org.opencontainers.image.ref.name`).
    pub tag: String,
    /// `sha256:...` of the image manifest.
    pub manifest_digest: String,
    /// `sha256:...` of the image config.
    pub config_digest: String,
    /// `sha256:...` of the single rootfs layer (gzip tar).
    pub layer_digest: String,
}

fn write_blob(dir: &Path, data: &[u8]) -> (String, usize) {
    let hex = hex::encode(Sha256::digest(data));
    let path = dir.join("blobs/sha256").join(&hex);
    fs::write(&path, data).expect("write blob");
    (format!("sha256:{hex}"), data.len())
}

/// Builds a one-layer busybox image at `dir` tagged `tag`, whose default command is `cmd`.
pub fn busybox_oci_layout(dir: &Path, tag: &str, cmd: &[&str]) -> OciLayout {
    busybox_oci_layout_as(dir, tag, cmd, None)
}

/// The same image, whose config names `user` (`User`: a name or uid, `:group` optional) when given.
pub fn busybox_oci_layout_as(dir: &Path, tag: &str, cmd: &[&str], user: Option<&str>) -> OciLayout {
    let rootfs = tempfile::tempdir().expect("tempdir for rootfs");
    busybox_rootfs(rootfs.path());
    fs::create_dir_all(dir.join("blobs/sha256")).expect("create blobs dir");

    // Layer: a gzip'd tar of the rootfs. diff_id is the digest of the uncompressed tar.
    let mut tar_bytes = Vec::new();
    {
        let mut builder = tar::Builder::new(&mut tar_bytes);
        builder.follow_symlinks(false);
        builder.append_dir_all(".", rootfs.path()).expect("tar rootfs");
        builder.finish().expect("finish tar");
    }
    let diff_id = format!("sha256:{}", hex::encode(Sha256::digest(&tar_bytes)));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar_bytes).expect("gzip layer");
    let layer = gz.finish().expect("finish gzip");
    let (layer_digest, layer_size) = write_blob(dir, &layer);

    let mut image_config = serde_json::json!({
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "Cmd": cmd,
        "WorkingDir": "/",
    });
    if let Some(u) = user {
        image_config["User"] = serde_json::json!(u);
    }
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": image_config,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "rkube-testsupport busybox_oci_layout"}],
    });
    let (config_digest, config_size) = write_blob(dir, &serde_json::to_vec(&config).expect("config json"));

    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": layer_size}],
    });
    let (manifest_digest, manifest_size) = write_blob(dir, &serde_json::to_vec(&manifest).expect("manifest json"));

    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_size,
            "annotations": {"org.opencontainers.image.ref.name": tag},
            "platform": {"architecture": "amd64", "os": "linux"},
        }],
    });
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).expect("index json")).expect("write index.json");
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).expect("write oci-layout");

    OciLayout { dir: dir.to_path_buf(), tag: tag.to_string(), manifest_digest, config_digest, layer_digest }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_blobs_match_their_digests() {
        if !Path::new(BUSYBOX).exists() {
            panic!("{BUSYBOX} missing: apt-get install -y busybox-static");
        }
        let dir = tempfile::tempdir().unwrap();
        let layout = busybox_oci_layout(dir.path(), "1.0", &["sh"]);
        for d in [&layout.manifest_digest, &layout.config_digest, &layout.layer_digest] {
            let hex = d.strip_prefix("sha256:").unwrap();
            let data = fs::read(dir.path().join("blobs/sha256").join(hex)).unwrap();
            assert_eq!(hex::encode(Sha256::digest(&data)), hex);
        }
        let index: serde_json::Value = serde_json::from_slice(&fs::read(dir.path().join("index.json")).unwrap()).unwrap();
        assert_eq!(index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"], "1.0");
    }
}
