//! Attacks on the host from a container's root or from a hostile bundle, performed for real (issue 12): each test
//! asserts the refusal and that nothing was written, created or left outside the container.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::Bundle;
use rkube_testsupport::poll_until;
use serde_json::json;

/// A private copy of the rkube-runtime binary, so an attack that succeeds overwrites the copy, never the build.
struct RuntimeCopy {
    _dir: tempfile::TempDir,
    path: PathBuf,
    bytes: Vec<u8>,
}

impl RuntimeCopy {
    fn new() -> RuntimeCopy {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rkube-runtime");
        // RKUBE_ESCAPES_RUNTIME=<older build> shows the same attacks succeeding against it.
        let from = std::env::var("RKUBE_ESCAPES_RUNTIME").unwrap_or_else(|_| common::RT.to_string());
        fs::copy(from, &path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        let bytes = fs::read(&path).unwrap();
        RuntimeCopy { _dir: dir, path, bytes }
    }

    /// Runs the copy; stderr goes to a file, not a pipe: a created container keeps the stdio it was given.
    fn ok(&self, b: &Bundle, args: &[&str]) {
        let log = self._dir.path().join("stderr");
        let status = Command::new(&self.path)
            .arg("--root")
            .arg(b.root.path())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .status()
            .unwrap();
        assert!(status.success(), "{args:?}: {}", fs::read_to_string(&log).unwrap_or_default());
    }

    fn assert_untouched(&self) {
        let now = fs::read(&self.path).unwrap();
        assert!(now == self.bytes, "the host's rkube-runtime binary was modified from inside the container");
    }
}

/// Waits for the attacker's verdict file in the container's /tmp.
fn verdict(b: &Bundle, name: &str) -> String {
    let p = b.rootfs().join("tmp").join(name);
    poll_until(&format!("attacker verdict {}", p.display()), Duration::from_secs(60), || fs::read_to_string(&p).ok().filter(|s| s.ends_with("END\n")))
}

/// After it has opened a runtime binary as fd 3 (or failed to), the attacker retries opening it for writing for up to
/// 10 s: the kernel refuses writes while any process still executes the file (ETXTBSY), so it waits for them to
/// exit, as a real attacker would.
const WRITE_BACK: &str = r#"
n=0
while [ $n -lt 100 ]; do
    if { command exec 4>>/proc/self/fd/3; } 2>/tmp/attack.err; then echo PWNED >&4; echo wrote >> /tmp/attack.verdict; echo END >> /tmp/attack.verdict; exit 0; fi
    grep -q 'busy' /tmp/attack.err || break
    n=$((n+1)); sleep 0.1
done
echo "write-refused: $(cat /tmp/attack.err)" >> /tmp/attack.verdict
"#;

/// The attacker's last line: its verdict file is complete.
const END: &str = "echo END >> /tmp/attack.verdict";

fn parked_init_attack(cap_sys_ptrace: bool) -> String {
    let rt = RuntimeCopy::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    if cap_sys_ptrace {
        for set in ["bounding", "effective", "permitted"] {
            b.config["process"]["capabilities"][set].as_array_mut().unwrap().push(json!("CAP_SYS_PTRACE"));
        }
    }
    b.write();
    let id = b.id();
    rt.ok(&b, &["create", "--bundle", b.path().to_str().unwrap(), &id]);
    // The container's pid 1 is the runtime's init, parked until start: the attacker (root in the container,
    // exec'd into it) grabs its executable.
    let attack = format!(
        "if {{ command exec 3</proc/1/exe; }} 2>/tmp/attack.err; then echo opened > /tmp/attack.verdict; \
         else echo \"open-refused: $(cat /tmp/attack.err)\" > /tmp/attack.verdict; {END}; exit 0; fi\n\
         while [ /proc/1/exe -ef /proc/self/fd/3 ]; do sleep 0.05; done\n{WRITE_BACK}\n{END}\n"
    );
    rt.ok(&b, &["exec", "-d", &id, "sh", "-c", &attack]);
    poll_until("the attacker to try /proc/1/exe", Duration::from_secs(20), || fs::metadata(b.rootfs().join("tmp/attack.verdict")).ok());
    rt.ok(&b, &["start", &id]);
    let v = verdict(&b, "attack.verdict");
    rt.assert_untouched();
    assert!(!v.contains("wrote"), "the attacker wrote the runtime binary: {v}");
    b.rt(&["delete", "--force", &id]);
    v
}

#[test]
fn container_root_cannot_open_the_parked_init_binary() {
    let v = parked_init_attack(false);
    // The init is non-dumpable until it execs the container's program: /proc/1/exe is refused outright.
    assert!(v.starts_with("open-refused"), "{v}");
    assert!(v.contains("Permission denied") || v.contains("not permitted"), "{v}");
}

#[test]
fn container_root_with_cap_sys_ptrace_cannot_write_the_runtime_binary() {
    let v = parked_init_attack(true);
    // CAP_SYS_PTRACE gets past non-dumpable, so the open succeeds, but the init runs from a read-only clone (or a
    // sealed memfd): the write is refused, and the host's binary is untouched.
    assert!(v.starts_with("opened"), "{v}");
    assert!(v.contains("write-refused") && (v.contains("Read-only file system") || v.contains("not permitted")), "{v}");
}

/// The literal scenario: the attacker loops over /proc grabbing any executable that is not busybox while the
/// kubelet-like caller runs `rkube-runtime exec` into the container again and again; once the runtime processes are
/// gone it tries to write what it grabbed.
fn exec_race_attack(cap_sys_ptrace: bool) -> String {
    let rt = RuntimeCopy::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    if cap_sys_ptrace {
        for set in ["bounding", "effective", "permitted"] {
            b.config["process"]["capabilities"][set].as_array_mut().unwrap().push(json!("CAP_SYS_PTRACE"));
        }
    }
    b.write();
    let id = b.id();
    rt.ok(&b, &["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
    let attack = format!(
        r#"echo ready > /tmp/attack.ready
i=0; found=
while [ $i -lt 4000 ] && [ -z "$found" ] && [ ! -e /tmp/attack.stop ]; do
    for p in /proc/[0-9]*; do
        [ "$p" = /proc/$$ ] && continue
        command exec 3<"$p/exe" 2>/dev/null || continue
        if [ /proc/self/fd/3 -ef /bin/busybox ]; then exec 3<&-; else found=$p; break; fi
    done
    i=$((i+1))
done
if [ -z "$found" ]; then echo "never-opened" > /tmp/attack.verdict; {END}; exit 0; fi
echo "opened $found" > /tmp/attack.verdict
while [ ! -e /tmp/attack.stop ]; do sleep 0.05; done
{WRITE_BACK}
{END}
"#
    );
    rt.ok(&b, &["exec", "-d", &id, "sh", "-c", &attack]);
    poll_until("the attacker to start", Duration::from_secs(20), || fs::metadata(b.rootfs().join("tmp/attack.ready")).ok());
    for _ in 0..150 {
        rt.ok(&b, &["exec", &id, "true"]);
        if b.rootfs().join("tmp/attack.verdict").exists() {
            break;
        }
    }
    fs::write(b.rootfs().join("tmp/attack.stop"), "").unwrap();
    let v = verdict(&b, "attack.verdict");
    rt.assert_untouched();
    assert!(!v.contains("wrote"), "the attacker wrote the runtime binary: {v}");
    b.rt(&["delete", "--force", &id]);
    v
}

#[test]
fn exec_race_from_container_root_never_reaches_the_runtime_binary() {
    let v = exec_race_attack(false);
    // Non-dumpable from before the namespaces are joined until the exec: never opened.
    assert!(v.starts_with("never-opened"), "{v}");
}

#[test]
fn exec_race_with_cap_sys_ptrace_cannot_write_the_runtime_binary() {
    let v = exec_race_attack(true);
    assert!(
        v.starts_with("never-opened") || v.contains("Read-only file system") || v.contains("not permitted"),
        "{v}"
    );
}

/// The container's view of its shell's descriptors: `fd -> target` pairs from `ls -l /proc/$$/fd`.
fn fd_table(out: &str) -> Vec<(u32, String)> {
    // A descriptor whose link cannot be read is listed without " -> ": keep it, with an empty target.
    let mut t: Vec<(u32, String)> = out
        .lines()
        .filter(|l| l.starts_with('l'))
        .filter_map(|l| {
            let (left, target) = l.split_once(" -> ").unwrap_or((l, ""));
            Some((left.split_whitespace().last()?.parse().ok()?, target.trim().to_string()))
        })
        .collect();
    t.sort();
    t
}

/// Runs `args` of rkube-runtime from a shell that opens fds 3 and 4 (two files), closes every other descriptor
/// up to 40 that the test harness may have inherited, and passes them on.
fn with_fds_3_and_4(b: &Bundle, f3: &std::path::Path, f4: &std::path::Path, args: &str) -> std::process::Output {
    let script = format!(
        "exec 3<{} 4<{}; for fd in $(seq 5 40); do eval \"exec $fd>&-\"; done; exec {} --root {} {args}",
        f3.display(),
        f4.display(),
        common::RT,
        b.root.path().display()
    );
    Command::new("bash").arg("-c").arg(script).stdin(Stdio::null()).output().unwrap()
}

/// The fds `ls -l /proc/self/fd` shows, without the one ls opened to read that directory (closed again by the
/// time ls reads the links, so it is the one entry without a target; a descriptor still open always has one).
fn fds_of_ls(out: &Output) -> Vec<(u32, String)> {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = fd_table(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(table.iter().filter(|(_, t)| t.is_empty()).count(), 1, "{table:?}");
    table.into_iter().filter(|(_, t)| !t.is_empty()).collect()
}

#[test]
fn preserve_fds_passes_only_the_callers_descriptors() {
    let files = tempfile::tempdir().unwrap();
    let (f3, f4) = (files.path().join("three"), files.path().join("four"));
    fs::write(&f3, "3").unwrap();
    fs::write(&f4, "4").unwrap();
    let mut b = Bundle::new(&["ls", "-l", "/proc/self/fd"]);
    b.write();
    let id = b.id();
    // N = 20: fds 3..22 may be passed; the caller passed 3 and 4 only. The runtime's own descriptors (its sync
    // socket, the exec fifo, namespace files) are numbered in that range too and must not come along.
    let out = with_fds_3_and_4(&b, &f3, &f4, &format!("run --preserve-fds 20 --bundle {} {id}", b.path().display()));
    let table = fds_of_ls(&out);
    let fds: Vec<u32> = table.iter().map(|(fd, _)| *fd).collect();
    assert_eq!(fds, [0, 1, 2, 3, 4], "only stdio and the caller's fds: {table:?}");
    assert_eq!(table[3].1, f3.display().to_string());
    assert_eq!(table[4].1, f4.display().to_string());

    // exec --preserve-fds: the same for a process joining a running container.
    b.config["process"]["args"] = json!(["sleep", "1000"]);
    let (id, _) = b.create();
    assert!(b.rt(&["start", &id]).status.success());
    let table = fds_of_ls(&with_fds_3_and_4(&b, &f3, &f4, &format!("exec --preserve-fds 20 {id} ls -l /proc/self/fd")));
    let fds: Vec<u32> = table.iter().map(|(fd, _)| *fd).collect();
    assert_eq!(fds, [0, 1, 2, 3, 4], "exec: only stdio and the caller's fds: {table:?}");
    // Without --preserve-fds nothing beyond stdio passes, even what the caller left open.
    let table = fds_of_ls(&with_fds_3_and_4(&b, &f3, &f4, &format!("exec {id} ls -l /proc/self/fd")));
    assert_eq!(table.iter().map(|(fd, _)| *fd).collect::<Vec<_>>(), [0, 1, 2], "{table:?}");
    assert!(b.rt(&["delete", "--force", &id]).status.success());
}

/// The image-author variant: the image's `/bin/probe` is a symlink to `/proc/self/exe`, so when the caller runs it
/// with `exec` (a kubelet exec probe), the process in the container would re-execute whatever binary set it up: the
/// runtime itself, as an ordinary (dumpable) container process that the image's pid 1 can grab and, once it is
/// free, write. The victim holds itself on a fifo so the test does not depend on winning a race. Kernels that
/// refuse to execute a file outside the container's mount namespace through the magic link (this machine's 6.18
/// does, ENOENT, for the old runtime as well) stop it at the exec; elsewhere the sealed executable stops the write.
#[test]
fn image_that_execs_proc_self_exe_cannot_write_the_runtime_binary() {
    let rt = RuntimeCopy::new();
    let attacker = format!(
        r#"echo ready > /tmp/attack.ready
found=
while [ -z "$found" ] && [ ! -e /tmp/attack.stop ]; do
    for p in /proc/[0-9]*; do
        [ "$p" = /proc/1 ] && continue
        command exec 3<"$p/exe" 2>/dev/null || continue
        if [ /proc/self/fd/3 -ef /bin/busybox ]; then exec 3<&-; else found=$p; break; fi
    done
done
if [ -z "$found" ]; then echo never-opened > /tmp/attack.verdict; {END}; sleep 1000; fi
echo "opened $found" > /tmp/attack.verdict
cat /tmp/logfifo > /dev/null
{WRITE_BACK}
{END}
sleep 1000
"#
    );
    let mut b = Bundle::new(&["sh", "-c", &attacker]);
    std::os::unix::fs::symlink("/proc/self/exe", b.rootfs().join("bin/probe")).unwrap();
    nix::unistd::mkfifo(&b.rootfs().join("tmp/logfifo"), nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap();
    b.write();
    let id = b.id();
    rt.ok(&b, &["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
    poll_until("the attacker to start", Duration::from_secs(20), || fs::metadata(b.rootfs().join("tmp/attack.ready")).ok());
    // The "probe": would run the runtime binary inside the container, blocked opening its --log fifo until the
    // attacker has grabbed it.
    let probe = Command::new(&rt.path)
        .arg("--root")
        .arg(b.root.path())
        .args(["exec", &id, "/bin/probe", "--log", "/tmp/logfifo", "state", "no-such-container"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let probe_err = String::from_utf8_lossy(&probe.stderr).into_owned();
    fs::write(b.rootfs().join("tmp/attack.stop"), "").unwrap();
    let v = verdict(&b, "attack.verdict");
    rt.assert_untouched();
    assert!(!v.contains("wrote"), "{v}");
    if v.starts_with("never-opened") {
        // The kernel refused the exec through the magic link.
        assert!(probe_err.contains("/bin/probe") && probe_err.contains("ENOENT"), "{probe_err}");
    } else {
        assert!(v.contains("write-refused") && (v.contains("Read-only file system") || v.contains("not permitted")), "{v}");
    }
    b.rt(&["delete", "--force", &id]);
}

/// Creates with the bundle as it is; the create must fail naming `must_mention` and leave no state or cgroup.
fn create_fails(b: &mut Bundle, must_mention: &[&str]) -> String {
    b.write();
    let id = b.id();
    let out = b.rt(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "create should fail");
    for m in must_mention {
        assert!(err.contains(m), "error does not mention {m:?}: {err}");
    }
    assert!(!b.root.path().join(&id).exists(), "state dir left behind: {err}");
    assert!(!b.cgroup_exists(), "cgroup left behind: {err}");
    err
}

/// /l0 -> /l1 -> ... -> /l255 -> `target` in the rootfs: 256 links.
fn link_chain(rootfs: &std::path::Path, target: &std::path::Path) {
    for i in 0..255 {
        std::os::unix::fs::symlink(format!("/l{}", i + 1), rootfs.join(format!("l{i}"))).unwrap();
    }
    std::os::unix::fs::symlink(target, rootfs.join("l255")).unwrap();
}

#[test]
fn mount_destination_through_256_links_to_a_host_path_fails_with_eloop() {
    let host = tempfile::tempdir().unwrap();
    let target = host.path().join("made-by-the-runtime");
    let source = tempfile::tempdir().unwrap();
    fs::write(source.path().join("file"), "secret").unwrap();
    // A directory bind, then a file bind (terminationMessagePath is one), through the same chain.
    for (src, what) in [(source.path().to_path_buf(), "dir"), (source.path().join("file"), "file")] {
        let mut b = Bundle::new(&["true"]);
        link_chain(&b.rootfs(), &target);
        b.config["mounts"].as_array_mut().unwrap().push(json!({"destination": "/l0", "type": "bind", "source": src, "options": ["rbind"]}));
        let err = create_fails(&mut b, &["mounts: /l0", "ELOOP"]);
        assert!(!target.exists(), "{what} bind: the runtime created {} on the host: {err}", target.display());
        assert_eq!(fs::read_dir(host.path()).unwrap().count(), 0);
    }
    assert_eq!(fs::read_to_string(source.path().join("file")).unwrap(), "secret");
}

#[test]
fn mount_destination_through_an_absolute_link_lands_inside_the_root() {
    let host = tempfile::tempdir().unwrap();
    let mut b = Bundle::new(&["sh", "-c", "cat /proc/self/mountinfo"]);
    std::os::unix::fs::symlink(host.path(), b.rootfs().join("evil")).unwrap();
    b.config["mounts"].as_array_mut().unwrap().push(json!({"destination": "/evil/x", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}));
    let out = b.run_ok();
    let inside = host.path().join("x");
    assert!(
        out.lines().any(|l| l.split_whitespace().nth(4) == Some(inside.to_str().unwrap()) && l.contains(" - tmpfs ")),
        "tmpfs not mounted at {} inside the container: {out}",
        inside.display()
    );
    assert_eq!(fs::read_dir(host.path()).unwrap().count(), 0, "the runtime made something on the host");
    assert!(b.rootfs().join(inside.strip_prefix("/").unwrap()).is_dir(), "mount point made inside the rootfs");
}

#[test]
fn image_whose_dev_links_to_a_host_path_gets_its_devices_inside_the_root() {
    let host = tempfile::tempdir().unwrap();
    let mut b = Bundle::new(&["sh", "-c", "ls /dev; test -c /dev/null && echo null-is-a-device"]);
    let _ = fs::remove_dir_all(b.rootfs().join("dev"));
    std::os::unix::fs::symlink(host.path(), b.rootfs().join("dev")).unwrap();
    // No tmpfs on /dev: the runtime makes the nodes and links in the image's /dev itself.
    b.config["mounts"].as_array_mut().unwrap().retain(|m| !m["destination"].as_str().unwrap().starts_with("/dev"));
    b.config["linux"]["devices"] = json!([{"path": "/dev/extra/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438}]);
    let out = b.run_ok();
    assert!(out.contains("null-is-a-device") && out.contains("extra"), "{out}");
    assert_eq!(fs::read_dir(host.path()).unwrap().count(), 0, "device nodes made on the host");
    let inside = b.rootfs().join(host.path().strip_prefix("/").unwrap());
    assert!(inside.join("null").exists() && inside.join("extra/fuse").exists() && inside.join("fd").is_symlink());
}

#[test]
fn rootfs_whose_proc_or_sys_is_a_symlink_is_refused() {
    for (dir, typ) in [("proc", "proc"), ("sys", "sysfs")] {
        // An absolute link (to a host path, or inside the root: the runtime would mount and write there), and a
        // relative one inside the root.
        let host = tempfile::tempdir().unwrap();
        for target in [host.path().to_str().unwrap(), "tmp/elsewhere"] {
            let mut b = Bundle::new(&["true"]);
            fs::remove_dir(b.rootfs().join(dir)).unwrap();
            fs::create_dir_all(b.rootfs().join("tmp/elsewhere")).unwrap();
            std::os::unix::fs::symlink(target, b.rootfs().join(dir)).unwrap();
            let err = create_fails(&mut b, &[&format!("mounts: /{dir}"), &format!("filesystem \"{typ}\" must be mounted on an ordinary directory")]);
            assert_eq!(err.trim_end().lines().count(), 1, "{err}");
            assert_eq!(fs::read_dir(host.path()).unwrap().count(), 0, "{err}");
            assert_eq!(fs::read_dir(b.rootfs().join("tmp/elsewhere")).unwrap().count(), 0, "{err}");
            assert!(fs::symlink_metadata(b.rootfs().join(dir)).unwrap().file_type().is_symlink());
        }
    }
    // A file where /proc should be is refused as well.
    let mut b = Bundle::new(&["true"]);
    fs::remove_dir(b.rootfs().join("proc")).unwrap();
    fs::write(b.rootfs().join("proc"), "").unwrap();
    create_fails(&mut b, &["mounts: /proc", "is not a directory"]);
}
