//! A throwaway TCG qemu VM running Debian's cloud kernel on pure cgroup v2, for the tests that must prove the v2
//! code paths on a machine whose own cgroups are v1. `scripts/vm-deps.sh` unpacks qemu and the kernel into
//! `/var/cache/rkube-vm` (or `$RKUBE_VM_DIR`); this module builds the initramfs itself (newc cpio, gzip) from the
//! host files a test names plus the shared libraries they link, boots it, and returns what the guest printed.
//!
//! Inside the guest: the payload is copied to a tmpfs and `switch_root` moves into it (pivot_root does not work on
//! the initramfs itself), then proc, sysfs, devtmpfs, tmpfs /tmp and cgroup2 at /sys/fs/cgroup are mounted with
//! every controller enabled for children, and `/test.sh` runs. Its exit code comes back in a marker line.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::ChildGuard;

const EXIT_MARKER: &str = "RKUBE-VM-EXIT ";

/// Where scripts/vm-deps.sh unpacked qemu and the kernel.
pub fn vm_root() -> PathBuf {
    let dir = std::env::var_os("RKUBE_VM_DIR").map(PathBuf::from).unwrap_or_else(|| "/var/cache/rkube-vm".into());
    dir.join("root")
}

/// The version of the kernel scripts/vm-deps.sh unpacked (its directory under lib/modules). Panics, naming the
/// directory and the script, when there is none.
pub fn kernel_version() -> String {
    let modules = vm_root().join("lib/modules");
    std::fs::read_dir(&modules)
        .ok()
        .and_then(|mut d| d.next())
        .and_then(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .unwrap_or_else(|| panic!("no kernel modules under {}: run scripts/vm-deps.sh", modules.display()))
}

enum Entry {
    Dir,
    File { data: Vec<u8>, mode: u32 },
    Symlink(String),
}

/// An initramfs under construction plus the script to run in it.
pub struct Vm {
    entries: BTreeMap<String, Entry>,
    memory_mb: u32,
}

/// What the guest printed and how its script ended.
#[derive(Debug)]
pub struct VmRun {
    /// Everything the guest wrote to its serial console (kernel messages and the script's output), for assertions and failure dumps.
    pub console: String,
    /// The exit code of /test.sh, or None if the guest never reported one (crash, panic, timeout).
    pub exit_code: Option<i32>,
}

impl Default for Vm {
    fn default() -> Self {
        Self::new()
    }
}

impl Vm {
    /// An initramfs holding busybox as /bin/busybox and /bin/sh, and 512 MiB of guest memory.
    pub fn new() -> Vm {
        let mut vm = Vm { entries: BTreeMap::new(), memory_mb: 512 };
        vm.binary(Path::new("/bin/busybox"), "/bin/busybox");
        vm.symlink("/bin/sh", "busybox");
        vm
    }

    /// The guest's memory (512 MiB by default).
    pub fn memory_mb(&mut self, mb: u32) -> &mut Self {
        self.memory_mb = mb;
        self
    }

    fn add_parents(&mut self, guest: &str) {
        let mut p = Path::new(guest).parent();
        while let Some(dir) = p {
            let s = dir.to_string_lossy().to_string();
            if s == "/" || s.is_empty() {
                break;
            }
            self.entries.entry(s).or_insert(Entry::Dir);
            p = dir.parent();
        }
    }

    /// Adds a file with the given contents and mode.
    pub fn file(&mut self, guest: &str, data: impl Into<Vec<u8>>, mode: u32) -> &mut Self {
        self.add_parents(guest);
        self.entries.insert(guest.to_string(), Entry::File { data: data.into(), mode });
        self
    }

    /// Adds a symlink `guest` pointing at `target`.
    pub fn symlink(&mut self, guest: &str, target: &str) -> &mut Self {
        self.add_parents(guest);
        self.entries.insert(guest.to_string(), Entry::Symlink(target.to_string()));
        self
    }

    /// Adds an executable and every shared library `ldd` says it needs, at the same paths as on the host.
    pub fn binary(&mut self, host: &Path, guest: &str) -> &mut Self {
        let data = std::fs::read(host).unwrap_or_else(|e| panic!("read {}: {e}", host.display()));
        self.file(guest, data, 0o755);
        let out = Command::new("ldd").arg(host).output().expect("run ldd");
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let path = match line.split("=>").nth(1) {
                Some(rhs) => rhs.split_whitespace().next().unwrap_or(""),
                None => line.split_whitespace().next().unwrap_or(""),
            };
            if path.starts_with('/') && !self.entries.contains_key(path) {
                let real = std::fs::canonicalize(path).unwrap_or_else(|_| PathBuf::from(path));
                let lib = std::fs::read(&real).unwrap_or_else(|e| panic!("read {}: {e}", real.display()));
                self.file(path, lib, 0o755);
            }
        }
        self
    }

    /// The unpacked kernel's (`version`'s) module directories `dirs` and files `files` (paths under
    /// lib/modules/VERSION, e.g. `kernel/net/bridge`, `modules.order`) at the same place in the guest.
    pub fn kernel_modules(&mut self, version: &str, dirs: &[&str], files: &[&str]) -> &mut Self {
        let kdir = vm_root().join("lib/modules").join(version);
        for dir in dirs {
            self.tree(&kdir.join(dir), &format!("/lib/modules/{version}/{dir}"));
        }
        for file in files {
            let data = std::fs::read(kdir.join(file)).unwrap_or_else(|e| panic!("{}: {e}", kdir.join(file).display()));
            self.file(&format!("/lib/modules/{version}/{file}"), data, 0o644);
        }
        self
    }

    /// Copies a host directory tree (files, dirs, symlinks) to `guest`.
    pub fn tree(&mut self, host: &Path, guest: &str) -> &mut Self {
        self.entries.insert(guest.to_string(), Entry::Dir);
        self.add_parents(guest);
        for entry in std::fs::read_dir(host).unwrap_or_else(|e| panic!("read dir {}: {e}", host.display())) {
            let entry = entry.expect("dir entry");
            let g = format!("{}/{}", guest.trim_end_matches('/'), entry.file_name().to_string_lossy());
            let meta = std::fs::symlink_metadata(entry.path()).expect("stat");
            if meta.file_type().is_symlink() {
                let t = std::fs::read_link(entry.path()).expect("readlink");
                self.symlink(&g, &t.to_string_lossy());
            } else if meta.is_dir() {
                self.tree(&entry.path(), &g);
            } else {
                let data = std::fs::read(entry.path()).expect("read file");
                self.file(&g, data, meta.mode() & 0o7777);
            }
        }
        self
    }

    fn cpio(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut ino = 1u32;
        let mut push = |out: &mut Vec<u8>, name: &str, mode: u32, data: &[u8]| {
            let name = name.trim_start_matches('/');
            let header = format!(
                "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
                ino, mode, 0, 0, 1, 0, data.len(), 0, 0, 0, 0, name.len() + 1, 0
            );
            ino += 1;
            out.extend_from_slice(header.as_bytes());
            out.extend_from_slice(name.as_bytes());
            out.push(0);
            while out.len() % 4 != 0 {
                out.push(0);
            }
            out.extend_from_slice(data);
            while out.len() % 4 != 0 {
                out.push(0);
            }
        };
        for (name, entry) in &self.entries {
            match entry {
                Entry::Dir => push(&mut out, name, 0o040755, &[]),
                Entry::File { data, mode } => push(&mut out, name, 0o100000 | mode, data),
                Entry::Symlink(t) => push(&mut out, name, 0o120777, t.as_bytes()),
            }
        }
        push(&mut out, "TRAILER!!!", 0, &[]);
        out
    }

    /// The initramfs (gzipped newc cpio) with `script` as /test.sh, in a temp file qemu reads at start.
    fn initrd(&mut self, script: &str) -> tempfile::NamedTempFile {
        self.file("/test.sh", script, 0o755);
        self.file("/init", STAGE1, 0o755);
        self.file("/stage2", STAGE2, 0o755);
        for d in ["/proc", "/sys", "/dev", "/tmp", "/newroot", "/run"] {
            self.entries.insert(d.to_string(), Entry::Dir);
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&self.cpio()).expect("gzip initramfs");
        let initrd = tempfile::NamedTempFile::new().expect("initrd temp file");
        std::fs::write(initrd.path(), gz.finish().expect("finish gzip")).expect("write initrd");
        std::fs::set_permissions(initrd.path(), std::fs::Permissions::from_mode(0o644)).expect("chmod initrd");
        initrd
    }

    fn boot_args(&self, qemu: &mut Command, kernel: &Path, initrd: &Path) {
        qemu.args(["-m", &self.memory_mb.to_string()])
            .arg("-kernel").arg(kernel)
            .arg("-initrd").arg(initrd)
            .args(["-append", "console=ttyS0 quiet panic=-1 systemd.unified_cgroup_hierarchy=1"]);
    }

    /// Boots the VM, runs `script` as /test.sh and returns the console output. Panics if qemu or the kernel is
    /// missing (naming the script that fetches them) or if the guest does not finish within `timeout`.
    pub fn run(&mut self, script: &str, timeout: Duration) -> VmRun {
        let (mut qemu, kernel) = qemu();
        let initrd = self.initrd(script);
        qemu.args(["-nic", "none"]);
        self.boot_args(&mut qemu, &kernel, initrd.path());
        let console = run_to_end(qemu, timeout);
        let exit_code = exit_code(&console);
        VmRun { console, exit_code }
    }

    /// Boots the VM with `script` as /test.sh and returns while it runs: the guest's console is collected as it
    /// comes ([`RunningVm::console`]) and qemu is stopped by its PID when the handle drops. With `tap`, the
    /// guest gets one virtio NIC (`eth0` once the guest loads virtio_net) on that existing tap device, opened in
    /// network namespace `netns` (`/run/netns/NAME`, entered with nsenter, which execs qemu: the PID is qemu's)
    /// or in the test's own; qemu runs no ifup script and loads no option ROM (no PXE boot: the kernel is given).
    pub fn start(&mut self, script: &str, tap: Option<&VmTap>) -> RunningVm {
        let (mut qemu, kernel) = match tap.and_then(|t| t.netns.as_deref()) {
            Some(ns) => qemu_in_netns(ns),
            None => qemu(),
        };
        let initrd = self.initrd(script);
        match tap {
            Some(t) => {
                qemu.args(["-netdev", &format!("tap,id=n0,ifname={},script=no,downscript=no", t.ifname)])
                    .args(["-device", &format!("virtio-net-pci,netdev=n0,mac={},romfile=", t.mac)]);
            }
            None => {
                qemu.args(["-nic", "none"]);
            }
        }
        self.boot_args(&mut qemu, &kernel, initrd.path());
        let mut child = qemu.spawn().expect("start qemu");
        let console = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let collect = |pipe: Box<dyn Read + Send>, sink: std::sync::Arc<std::sync::Mutex<String>>| {
            std::thread::spawn(move || {
                let mut pipe = pipe;
                let mut chunk = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    sink.lock().unwrap_or_else(|e| e.into_inner()).push_str(&String::from_utf8_lossy(&chunk[..n]));
                }
            })
        };
        let readers = vec![
            collect(Box::new(child.stdout.take().expect("qemu stdout")), console.clone()),
            collect(Box::new(child.stderr.take().expect("qemu stderr")), console.clone()),
        ];
        RunningVm { guard: Some(ChildGuard::new(child, "qemu")), console, readers, _initrd: initrd }
    }
}

/// A tap device the test made for a guest's NIC (`ip tuntap add NAME mode tap`), and where it lives.
pub struct VmTap {
    /// The tap's name (`ip link` name on the host side).
    pub ifname: String,
    /// The network namespace the tap is in (`ip netns` name); None: the test's own.
    pub netns: Option<String>,
    /// The MAC address the guest's virtio NIC gets on this tap.
    pub mac: String,
}

/// A guest started by [`Vm::start`].
pub struct RunningVm {
    guard: Option<ChildGuard>,
    console: std::sync::Arc<std::sync::Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
    _initrd: tempfile::NamedTempFile,
}

impl RunningVm {
    /// qemu's PID.
    pub fn pid(&self) -> u32 {
        self.guard.as_ref().map(|g| g.pid()).unwrap_or(0)
    }

    /// True while qemu runs.
    pub fn is_running(&mut self) -> bool {
        self.guard.as_mut().is_some_and(|g| g.is_running())
    }

    /// Everything the guest (and qemu on stderr) printed so far.
    pub fn console(&self) -> String {
        self.console.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The rest of the first console line holding `RKUBE-VM <what> `, if the guest printed one yet.
    pub fn said(&self, what: &str) -> Option<String> {
        let prefix = format!("RKUBE-VM {what} ");
        self.console().lines().find_map(|l| l.find(&prefix).map(|i| l[i + prefix.len()..].trim().to_string()))
    }

    /// The exit code /test.sh reported, once it has finished.
    pub fn exit_code(&self) -> Option<i32> {
        exit_code(&self.console())
    }

    /// Stops qemu (SIGTERM, then SIGKILL, by PID) and returns the whole console.
    pub fn stop(&mut self) -> String {
        self.guard.take();
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        self.console()
    }
}

impl Drop for RunningVm {
    fn drop(&mut self) {
        self.stop();
    }
}

fn exit_code(console: &str) -> Option<i32> {
    console
        .lines()
        .find_map(|l| l.find(EXIT_MARKER).map(|i| l[i + EXIT_MARKER.len()..].trim().to_string()))
        .and_then(|s| s.parse().ok())
}

/// qemu-system-x86_64 as scripts/vm-deps.sh unpacked it, set up for a headless TCG guest on one CPU with its
/// serial console on stdout, and the kernel to boot. The caller adds -m, -kernel, -initrd and -append. Panics
/// naming vm-deps.sh if qemu or the kernel is missing.
pub fn qemu() -> (Command, PathBuf) {
    qemu_command(None)
}

/// [`qemu`] run in network namespace `netns` (`/run/netns/NAME`) through `nsenter --net`, which execs qemu: the
/// child's PID is qemu's. Only the network namespace changes (not the mounts, as `ip netns exec` would).
pub fn qemu_in_netns(netns: &str) -> (Command, PathBuf) {
    qemu_command(Some(netns))
}

fn qemu_command(netns: Option<&str>) -> (Command, PathBuf) {
    let root = vm_root();
    let binary = root.join("usr/bin/qemu-system-x86_64");
    let kernel = std::fs::read_dir(root.join("boot"))
        .ok()
        .and_then(|mut d| d.find_map(|e| e.ok().map(|e| e.path()).filter(|p| p.to_string_lossy().contains("vmlinuz"))));
    let (true, Some(kernel)) = (binary.exists(), kernel) else {
        panic!("qemu or the kernel is missing under {}: run scripts/vm-deps.sh", root.display());
    };
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net=/run/netns/{ns}")).arg("--").arg(&binary);
            c
        }
        None => Command::new(&binary),
    };
    // Debian 12's library packages are not all merged-/usr: libnl, for one, unpacks under /lib.
    let libs = [root.join("usr/lib/x86_64-linux-gnu"), root.join("lib/x86_64-linux-gnu")];
    cmd.env("LD_LIBRARY_PATH", std::env::join_paths(libs).expect("library path"))
        .arg("-L").arg(root.join("usr/share/qemu"))
        .arg("-L").arg(root.join("usr/share/seabios"))
        .args(["-accel", "tcg", "-smp", "1", "-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    (cmd, kernel)
}

/// Runs a qemu command until the guest powers off and returns everything it printed: the guest's console, then
/// whatever qemu itself wrote to stderr (a missing library or firmware shows there, not on the console). Panics if
/// the guest is still running after `timeout`.
pub fn run_to_end(mut qemu: Command, timeout: Duration) -> String {
    let mut child = qemu.spawn().expect("start qemu");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("qemu stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("qemu stderr")));
    let mut guard = ChildGuard::new(child, "qemu");
    let deadline = Instant::now() + timeout;
    while guard.is_running() {
        assert!(Instant::now() < deadline, "the VM did not finish within {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(guard);
    let mut out = stdout.join().expect("console reader");
    let err = stderr.join().expect("stderr reader");
    if !err.trim().is_empty() {
        out.push_str("\n--- qemu stderr ---\n");
        out.push_str(&err);
    }
    out
}

const STAGE1: &str = r#"#!/bin/sh
/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
mount -t tmpfs -o size=75% tmpfs /newroot
for e in /*; do
  case "$e" in /newroot|/proc|/sys|/dev) ;; *) cp -a "$e" /newroot/ ;; esac
done
mkdir -p /newroot/proc /newroot/sys /newroot/dev
exec switch_root /newroot /stage2
"#;

const STAGE2: &str = r#"#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm && mount -t devpts devpts /dev/pts && mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t cgroup2 cgroup2 /sys/fs/cgroup
for c in $(cat /sys/fs/cgroup/cgroup.controllers); do echo "+$c" > /sys/fs/cgroup/cgroup.subtree_control; done
hostname rkube-vm
cd /
/bin/sh /test.sh
echo "RKUBE-VM-EXIT $?"
poweroff -f
"#;
