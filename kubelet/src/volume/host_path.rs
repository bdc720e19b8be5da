//! hostPath volumes: the host path itself, after the type check Kubernetes defines for `type`
//! (`DirectoryOrCreate` and `FileOrCreate` create what is missing; the others only check).

use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

use super::VolumeError;

/// Checks (and for the `...OrCreate` types creates) `path` according to `type_`; empty means no check.
pub fn check_type(volume: &str, path: &Path, type_: Option<&str>) -> Result<(), VolumeError> {
    let fail = |what: &str| VolumeError::HostPathType {
        volume: volume.to_string(),
        message: format!("hostPath type check failed: {} {what}", path.display()),
    };
    let md = fs::metadata(path).ok();
    let is = |f: &dyn Fn(&fs::Metadata) -> bool| md.as_ref().map(f).unwrap_or(false);
    match type_.unwrap_or("") {
        "" => Ok(()),
        "DirectoryOrCreate" if md.is_none() => {
            fs::create_dir_all(path).map_err(|source| VolumeError::Io { volume: volume.into(), path: path.into(), source })?;
            fs::set_permissions(path, fs::Permissions::from_mode(0o755))
                .map_err(|source| VolumeError::Io { volume: volume.into(), path: path.into(), source })
        }
        "DirectoryOrCreate" | "Directory" => {
            if is(&|m| m.is_dir()) {
                Ok(())
            } else {
                Err(fail("is not a directory"))
            }
        }
        "FileOrCreate" if md.is_none() => {
            // like upstream: the parent must already exist
            fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .map_err(|source| VolumeError::Io { volume: volume.into(), path: path.into(), source })?;
            fs::set_permissions(path, fs::Permissions::from_mode(0o644))
                .map_err(|source| VolumeError::Io { volume: volume.into(), path: path.into(), source })
        }
        "FileOrCreate" | "File" => {
            if is(&|m| m.is_file()) {
                Ok(())
            } else {
                Err(fail("is not a file"))
            }
        }
        "Socket" => {
            if is(&|m| m.file_type().is_socket()) {
                Ok(())
            } else {
                Err(fail("is not a socket file"))
            }
        }
        "CharDevice" => {
            if is(&|m| m.file_type().is_char_device()) {
                Ok(())
            } else {
                Err(fail("is not a character device"))
            }
        }
        "BlockDevice" => {
            if is(&|m| m.file_type().is_block_device()) {
                Ok(())
            } else {
                Err(fail("is not a block device"))
            }
        }
        other => Err(VolumeError::HostPathType {
            volume: volume.to_string(),
            message: format!("{other} is an invalid volume type for hostPath {}", path.display()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let d = tmp.path();
        let file = d.join("f");
        fs::write(&file, "x").expect("file");
        let sock_path = d.join("s.sock");
        let _sock = std::os::unix::net::UnixListener::bind(&sock_path).expect("socket");

        // create types
        let created = d.join("new/nested");
        check_type("v", &created, Some("DirectoryOrCreate")).expect("dir created");
        assert!(created.is_dir());
        let newfile = d.join("new/file");
        check_type("v", &newfile, Some("FileOrCreate")).expect("file created");
        assert!(newfile.is_file());
        let orphan = d.join("missing-parent/file");
        assert!(check_type("v", &orphan, Some("FileOrCreate")).is_err(), "parent must exist");

        let ok: &[(&Path, &str)] = &[
            (d, "Directory"),
            (d, "DirectoryOrCreate"),
            (&file, "File"),
            (&file, "FileOrCreate"),
            (&sock_path, "Socket"),
            (Path::new("/dev/null"), "CharDevice"),
            (Path::new("/does/not/exist"), ""),
        ];
        for (p, t) in ok {
            check_type("v", p, Some(t)).unwrap_or_else(|e| panic!("{t} on {}: {e}", p.display()));
        }
        let bad: &[(&Path, &str, &str)] = &[
            (&file, "Directory", "is not a directory"),
            (&file, "DirectoryOrCreate", "is not a directory"),
            (d, "File", "is not a file"),
            (&d.join("nope"), "File", "is not a file"),
            (&d.join("nope"), "Directory", "is not a directory"),
            (&file, "Socket", "is not a socket file"),
            (&file, "CharDevice", "is not a character device"),
            (Path::new("/dev/null"), "BlockDevice", "is not a block device"),
            (d, "Folder", "is an invalid volume type"),
        ];
        for (p, t, want) in bad {
            let err = check_type("v", p, Some(t)).expect_err(t).to_string();
            assert!(err.contains(want), "{t} on {}: {err}", p.display());
        }
        let err = check_type("v", &file, Some("Directory")).expect_err("dir").to_string();
        assert!(err.contains(&format!("hostPath type check failed: {} is not a directory", file.display())), "{err}");
    }
}
