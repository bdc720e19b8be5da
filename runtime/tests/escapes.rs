//! Attacks on the host from a container's root or from a hostile bundle, performed for real (issue 12): each test
//! asserts the refusal and that nothing was written, created or left outside the container.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
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
        fs::copy(common::RT, &path).unwrap();
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
