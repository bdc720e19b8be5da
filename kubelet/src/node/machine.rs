//! Facts about this machine, read from /proc and /etc (paths are parameters so tests use a temp dir).

use std::path::Path;

/// What the Node's capacity, nodeInfo and pressure conditions are computed from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MachineFacts {
    /// Processors in /proc/cpuinfo (at least 1): the Node's `cpu` capacity.
    pub cpus: u32,
    /// MemTotal, bytes: the Node's `memory` capacity.
    pub memory_total_bytes: u64,
    /// MemAvailable, bytes: the `memory.available` eviction signal.
    pub memory_available_bytes: u64,
    /// The data dir's filesystem size, bytes (0 when unreadable): the `ephemeral-storage` capacity.
    pub disk_total_bytes: u64,
    /// Its space available to unprivileged users, bytes: the `nodefs.available` eviction signal.
    pub disk_free_bytes: u64,
    /// Processes and threads that exist now (/proc/loadavg's fourth field, after the slash), for PIDPressure.
    pub pids_running: u64,
    /// `kernel.pid_max` (32768 when unreadable).
    pub pid_max: u64,
    /// /etc/machine-id: nodeInfo's machineID and systemUUID.
    pub machine_id: String,
    /// The kernel's boot id: nodeInfo's bootID (it changes on reboot).
    pub boot_id: String,
    /// `kernel.osrelease`: nodeInfo's kernelVersion.
    pub kernel_version: String,
    /// /etc/os-release's PRETTY_NAME (`Linux` without one): nodeInfo's osImage.
    pub os_image: String,
    /// `kernel.hostname`.
    pub hostname: String,
}

fn meminfo_kib(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn read_trim(root: &Path, rel: &str) -> String {
    std::fs::read_to_string(root.join(rel)).map(|s| s.trim().to_string()).unwrap_or_default()
}

/// Reads the facts under `root` (`/` on a real node); `data_dir` is where pod data lives (disk capacity).
pub fn read(root: &Path, data_dir: &Path) -> MachineFacts {
    let meminfo = read_trim(root, "proc/meminfo");
    let cpus = std::fs::read_to_string(root.join("proc/cpuinfo"))
        .map(|s| s.lines().filter(|l| l.starts_with("processor")).count() as u32)
        .unwrap_or(0)
        .max(1);
    let os_release = read_trim(root, "etc/os-release");
    let os_image = os_release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".into());
    let (disk_total_bytes, disk_free_bytes) = match nix::sys::statvfs::statvfs(data_dir) {
        Ok(s) => (s.blocks() * s.fragment_size(), s.blocks_available() * s.fragment_size()),
        Err(_) => (0, 0),
    };
    let loadavg = read_trim(root, "proc/loadavg");
    let pids_running = loadavg
        .split_whitespace()
        .nth(3)
        .and_then(|f| f.split('/').nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    MachineFacts {
        cpus,
        memory_total_bytes: meminfo_kib(&meminfo, "MemTotal:") * 1024,
        memory_available_bytes: meminfo_kib(&meminfo, "MemAvailable:") * 1024,
        disk_total_bytes,
        disk_free_bytes,
        pids_running,
        pid_max: read_trim(root, "proc/sys/kernel/pid_max").parse().unwrap_or(32768),
        machine_id: read_trim(root, "etc/machine-id"),
        boot_id: read_trim(root, "proc/sys/kernel/random/boot_id"),
        kernel_version: read_trim(root, "proc/sys/kernel/osrelease"),
        os_image,
        hostname: read_trim(root, "proc/sys/kernel/hostname"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_fake_root() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let r = tmp.path();
        for (p, c) in [
            ("proc/meminfo", "MemTotal:       24000000 kB\nMemFree: 1 kB\nMemAvailable:   20000000 kB\n"),
            ("proc/cpuinfo", "processor\t: 0\nmodel\t: x\n\nprocessor\t: 1\n"),
            ("proc/loadavg", "0.00 0.01 0.05 1/345 999\n"),
            ("proc/sys/kernel/pid_max", "4194304\n"),
            ("proc/sys/kernel/random/boot_id", "b00t\n"),
            ("proc/sys/kernel/osrelease", "6.18.0\n"),
            ("proc/sys/kernel/hostname", "box\n"),
            ("etc/machine-id", "abc123\n"),
            ("etc/os-release", "NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"),
        ] {
            std::fs::create_dir_all(r.join(p).parent().expect("parent")).expect("mkdir");
            std::fs::write(r.join(p), c).expect("write");
        }
        let f = read(r, r);
        assert_eq!(f.cpus, 2);
        assert_eq!(f.memory_total_bytes, 24_000_000 * 1024);
        assert_eq!(f.memory_available_bytes, 20_000_000 * 1024);
        assert_eq!(f.pids_running, 345);
        assert_eq!(f.pid_max, 4_194_304);
        assert_eq!((f.machine_id.as_str(), f.boot_id.as_str(), f.kernel_version.as_str()), ("abc123", "b00t", "6.18.0"));
        assert_eq!(f.os_image, "Debian GNU/Linux 12 (bookworm)");
        assert!(f.disk_total_bytes > 0);
    }
}
