//! cgroup v2 for real: boots Debian's kernel in a TCG qemu VM with an initramfs this test builds (busybox, the
//! rkube-runtime binary and its libraries, two bundles), mounts a pure cgroup2 hierarchy, and checks from inside
//! containers that memory/pids/cpu limits are written the v2 way and that an OOM kill under 16 MiB is reported
//! through `memory.events`. The host itself is cgroup v1 (hybrid), which is why a VM is needed.
//!
//! Needs qemu and Debian's cloud kernel, unpacked by scripts/vm-deps.sh (never installed).

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use rkube_testsupport::{busybox_rootfs, require_root};
use serde_json::json;

fn sh(script: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(script).output().expect("run sh");
    assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const GUEST_INIT: &str = r#"#!/bin/busybox sh
B=/bin/busybox
if [ ! -e /switched ]; then
    # The initramfs root cannot be pivot_root'ed away; move everything onto a tmpfs and switch to it.
    $B mkdir -p /newroot && $B mount -t tmpfs -o size=600m tmpfs /newroot
    for d in bin lib lib64 usr bundle-limits bundle-oom bundle-sleep rkube-runtime init; do [ -e /$d ] && $B cp -a /$d /newroot/; done
    $B mkdir -p /newroot/proc /newroot/sys /newroot/dev /newroot/run /newroot/tmp && $B touch /newroot/switched
    exec $B switch_root /newroot /init
fi
$B --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mkdir -p /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup
echo "RKUBE-VM fs=$(awk '$2=="/sys/fs/cgroup" {print $3}' /proc/mounts) controllers=$(cat /sys/fs/cgroup/cgroup.controllers)"
R="/rkube-runtime --root /run/rk"
$R run --bundle /bundle-limits lim1; echo "RKUBE-VM limits-exit=$?"
$R create --bundle /bundle-oom oom1 > /tmp/oom.out 2>&1; echo "RKUBE-VM oom-create=$?"
$R start oom1
n=0; while [ "$($R state oom1 | grep -c stopped)" = 0 ] && [ $n -lt 600 ]; do sleep 0.1; n=$((n+1)); done
echo "RKUBE-VM oom-out=$(cat /tmp/oom.out | tr '\n' ' ')"
echo "RKUBE-VM oom-events=$($R events --stats oom1)"
$R delete oom1; echo "RKUBE-VM delete-exit=$?"
S=/sys/fs/cgroup/rkube-vm/sleep
$R run -d --bundle /bundle-sleep s1; echo "RKUBE-VM sleep-run=$?"
$R pause s1; echo "RKUBE-VM pause=$? paused=$($R state s1 | grep -c paused) freeze=$(cat $S/cgroup.freeze) $(grep frozen $S/cgroup.events)"
$R resume s1; echo "RKUBE-VM resume=$? running=$($R state s1 | grep -c running) thawed=$(cat $S/cgroup.freeze) $(grep frozen $S/cgroup.events)"
$R update --pids-limit 7 --memory 64m --cpu-quota 20000 --cpu-period 100000 s1; echo "RKUBE-VM update=$? upids=$(cat $S/pids.max) umem=$(cat $S/memory.max) ucpu=$(cat $S/cpu.max | tr ' ' _)"
$R pause s1; $R delete --force s1; echo "RKUBE-VM paused-delete=$?"
echo "RKUBE-VM left=$(find /sys/fs/cgroup/rkube-vm -mindepth 1 -type d | wc -l)"
echo RKUBE-VM-DONE
poweroff -f
"#;

#[test]
fn cgroup_v2_limits_and_oom_in_a_qemu_vm() {
    require_root();
    // qemu from scripts/vm-deps.sh, unpacked with dpkg-deb: installing qemu-system-x86 would remove the
    // machine's qemu-utils.
    let (mut qemu, kernel) = rkube_testsupport::vm::qemu();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("initramfs");
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    fs::copy(common::RT, root.join("rkube-runtime")).unwrap();
    // The runtime's shared libraries, at the paths its ELF interpreter expects.
    for lib in sh(&format!("ldd {}", common::RT)).lines().filter_map(|l| l.split_whitespace().find(|w| w.starts_with('/'))) {
        let dest = root.join(lib.trim_start_matches('/'));
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        sh(&format!("cp -L {lib} {}", dest.display()));
    }
    fs::write(root.join("init"), GUEST_INIT).unwrap();
    fs::set_permissions(root.join("init"), fs::Permissions::from_mode(0o755)).unwrap();

    let limits = concat!(
        "echo RKUBE-VM mem=$(cat /sys/fs/cgroup/memory.max) pids=$(cat /sys/fs/cgroup/pids.max) ",
        "cpu=\"$(cat /sys/fs/cgroup/cpu.max)\" weight=$(cat /sys/fs/cgroup/cpu.weight) cgroup=$(cat /proc/self/cgroup); ",
        "mknod /tmp/sda b 8 0 2>/dev/null; echo RKUBE-VM mknod-block=$?; ",
        "mknod /tmp/n c 1 3 && echo x > /tmp/n; echo RKUBE-VM mknod-null=$?; ",
        // ENOSPC on write proves /dev/full opened; a device rule refusing it fails the open with EPERM instead,
        // which also exits 1: the error text tells them apart, and a read must give zeros
        "( echo x > /dev/full ) 2>/tmp/e; echo \"RKUBE-VM devfull=$? err=$(cat /tmp/e)\"; ",
        "echo \"RKUBE-VM devfull-read=$(head -c 3 /dev/full | od -An -tx1 | tr -d ' ')\"; ",
        "( mknod /tmp/sda2 b 8 0 ) 2>/tmp/e; echo \"RKUBE-VM mknod-block-err=$(cat /tmp/e)\"; ",
        "echo RKUBE-VM hugetlb=$(cat /sys/fs/cgroup/hugetlb.2MB.max)");
    let mut cfg = common::default_config(&["sh", "-c", limits], "/rkube-vm/lim");
    cfg["linux"]["resources"] = json!({"memory": {"limit": 33554432}, "pids": {"limit": 20},
        "cpu": {"shares": 1024, "quota": 50000, "period": 100000}, "devices": [{"allow": false, "access": "rwm"}],
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]});
    for set in ["bounding", "effective", "permitted"] {
        cfg["process"]["capabilities"][set] = json!(["CAP_MKNOD", "CAP_DAC_OVERRIDE"]);
    }
    busybox_rootfs(&root.join("bundle-limits/rootfs"));
    fs::write(root.join("bundle-limits/config.json"), cfg.to_string()).unwrap();
    let mut cfg = common::default_config(&["sh", "-c", "dd if=/dev/zero of=/dev/null bs=64M count=1; echo dd-exit=$?"], "/rkube-vm/oom");
    cfg["linux"]["resources"] = json!({"memory": {"limit": 16777216}});
    busybox_rootfs(&root.join("bundle-oom/rootfs"));
    fs::write(root.join("bundle-oom/config.json"), cfg.to_string()).unwrap();
    let cfg = common::default_config(&["sleep", "1000"], "/rkube-vm/sleep");
    busybox_rootfs(&root.join("bundle-sleep/rootfs"));
    fs::write(root.join("bundle-sleep/config.json"), cfg.to_string()).unwrap();
    let initrd = dir.path().join("initrd.gz");
    sh(&format!("cd {} && find . | /bin/busybox cpio -o -H newc 2>/dev/null | gzip -1 > {}", root.display(), initrd.display()));

    qemu.args(["-m", "1024"])
        .arg("-kernel").arg(&kernel)
        .arg("-initrd").arg(&initrd)
        .args(["-append", "console=ttyS0 panic=-1 quiet rdinit=/init"]);
    let out = rkube_testsupport::vm::run_to_end(qemu, Duration::from_secs(900));
    let line = |key: &str| out.lines().find(|l| l.contains(&format!("RKUBE-VM {key}"))).unwrap_or_else(|| panic!("no {key} in VM output:\n{out}")).to_string();
    assert!(out.contains("RKUBE-VM-DONE"), "VM did not finish:\n{out}");
    assert!(line("fs=").contains("fs=cgroup2 "), "{out}");
    let lim = line("mem=");
    assert!(lim.contains("mem=33554432") && lim.contains("pids=20") && lim.contains("cpu=50000 100000") && lim.contains("weight=39"), "{lim}");
    assert!(lim.contains("cgroup=0::/"), "cgroup namespace root: {lim}");
    assert!(line("limits-exit=").contains("limits-exit=0"));
    // Device rules as a BPF program: a block device is refused even with CAP_MKNOD, the defaults work.
    assert!(line("mknod-block=").contains("mknod-block=1"), "{out}");
    assert!(line("mknod-null=").contains("mknod-null=0"), "{out}");
    let devfull = line("devfull=");
    assert!(
        devfull.contains("devfull=1") && devfull.contains("No space left on device") && !devfull.contains("not permitted"),
        "writing /dev/full fails with ENOSPC, i.e. the open was allowed: {devfull}"
    );
    assert!(line("devfull-read=").trim_end().ends_with("devfull-read=000000"), "/dev/full reads zeros: {out}");
    let block = line("mknod-block-err=");
    assert!(block.contains("Operation not permitted"), "the block device is refused by the device rules (EPERM): {block}");
    // hugepageLimits on pure v2: hugetlb.<size>.max in the container's own cgroup
    assert!(line("hugetlb=").trim_end().ends_with("hugetlb=4194304"), "{out}");
    assert!(line("oom-out=").contains("dd-exit=137"), "{out}");
    let ev = line("oom-events=");
    let v: serde_json::Value = serde_json::from_str(ev.split_once("oom-events=").unwrap().1.trim()).unwrap();
    assert!(v["data"]["memory"]["oom_kill"].as_u64().unwrap() >= 1, "{ev}");
    assert!(line("delete-exit=").contains("delete-exit=0"));
    // pause/resume through cgroup.freeze and cgroup.events; update on a running container; a paused one deleted.
    assert!(line("sleep-run=").contains("sleep-run=0"), "{out}");
    let p = line("pause=");
    assert!(p.contains("pause=0") && p.contains("paused=1") && p.contains("freeze=1") && p.contains("frozen 1"), "{p}");
    let r = line("resume=");
    assert!(r.contains("resume=0") && r.contains("running=1") && r.contains("thawed=0") && r.contains("frozen 0"), "{r}");
    let u = line("update=");
    assert!(u.contains("update=0") && u.contains("upids=7") && u.contains("umem=67108864") && u.contains("ucpu=20000_100000"), "{u}");
    assert!(line("paused-delete=").contains("paused-delete=0"), "{out}");
    assert!(line("left=").contains("left=0"), "cgroup left behind: {out}");
}
