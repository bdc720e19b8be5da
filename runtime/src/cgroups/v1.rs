//! cgroup v1: one directory per hierarchy, knobs named `memory.limit_in_bytes`, `cpu.cfs_quota_us`, ...
//!
//! Owns writing `linux.resources` into v1 hierarchies. cpuset directories are seeded from their parent (a new v1
//! cpuset starts empty and would refuse processes).

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxResources};

use super::{mkdir_all, write, write_if_present, CgroupError};

/// Creates `rel` in every hierarchy and writes the resources each controller owns.
pub fn create(hierarchies: &[(String, PathBuf)], rel: &Path, res: Option<&LinuxResources>) -> Result<(), CgroupError> {
    for (name, root) in hierarchies {
        let dir = root.join(rel);
        if name == "cpuset" {
            create_cpuset(root, rel)?;
        } else {
            mkdir_all(&dir)?;
        }
        if let Some(res) = res {
            // A co-mounted hierarchy (`cpu,cpuacct`, `net_cls,net_prio`) takes the knobs of each controller in it.
            for controller in name.split(',') {
                apply(controller, &dir, res)?;
            }
        }
    }
    Ok(())
}

fn create_cpuset(root: &Path, rel: &Path) -> Result<(), CgroupError> {
    let mut cur = root.to_path_buf();
    for c in rel.components() {
        let parent = cur.clone();
        cur.push(c);
        if !cur.exists() {
            mkdir_all(&cur)?;
        }
        for knob in ["cpuset.cpus", "cpuset.mems"] {
            let mine = std::fs::read_to_string(cur.join(knob)).unwrap_or_default();
            if mine.trim().is_empty() {
                let theirs = std::fs::read_to_string(parent.join(knob)).unwrap_or_default();
                if !theirs.trim().is_empty() {
                    write(&cur.join(knob), theirs.trim())?;
                }
            }
        }
    }
    Ok(())
}

/// The line a v1 devices.allow/deny file takes for one rule: `c 1:3 rwm`, `a *:* rwm`.
pub fn device_rule(d: &LinuxDeviceCgroup) -> String {
    let typ = match d.typ().map(|t| t.as_str().to_string()) {
        Some(t) if t == "c" || t == "b" || t == "a" => t,
        Some(t) if t == "u" => "c".to_string(),
        _ => "a".to_string(),
    };
    let num = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_else(|| "*".to_string());
    let access = d.access().clone().unwrap_or_else(|| "rwm".to_string());
    format!("{typ} {}:{} {access}", num(d.major()), num(d.minor()))
}

fn apply(controller: &str, dir: &Path, res: &LinuxResources) -> Result<(), CgroupError> {
    match controller {
        "memory" => {
            if let Some(m) = res.memory() {
                if let Some(r) = m.reservation() {
                    write(&dir.join("memory.soft_limit_in_bytes"), &r.to_string())?;
                }
                if let Some(l) = m.limit() {
                    let swap_file = dir.join("memory.memsw.limit_in_bytes");
                    // memsw must stay >= limit: raise memsw first when it would otherwise be below the new limit.
                    let swap = m.swap().unwrap_or(l);
                    if swap_file.exists() && write(&dir.join("memory.limit_in_bytes"), &l.to_string()).is_err() {
                        write(&swap_file, &swap.to_string())?;
                        write(&dir.join("memory.limit_in_bytes"), &l.to_string())?;
                    } else {
                        write(&dir.join("memory.limit_in_bytes"), &l.to_string())?;
                        if swap_file.exists() {
                            write(&swap_file, &swap.to_string())?;
                        }
                    }
                }
                if let Some(s) = m.swappiness() {
                    if s > 100 {
                        return Err(CgroupError::Invalid { field: "memory.swappiness", reason: format!("{s} is above 100") });
                    }
                    write_if_present(&dir.join("memory.swappiness"), &s.to_string())?;
                }
                if m.disable_oom_killer() == Some(true) {
                    write(&dir.join("memory.oom_control"), "1")?;
                }
            }
        }
        "cpu" => {
            if let Some(c) = res.cpu() {
                if let Some(s) = c.shares() {
                    write(&dir.join("cpu.shares"), &s.to_string())?;
                }
                if let Some(p) = c.period() {
                    write(&dir.join("cpu.cfs_period_us"), &p.to_string())?;
                }
                if let Some(q) = c.quota() {
                    write(&dir.join("cpu.cfs_quota_us"), &q.to_string())?;
                }
                if let Some(r) = c.realtime_period() {
                    write_if_present(&dir.join("cpu.rt_period_us"), &r.to_string())?;
                }
                if let Some(r) = c.realtime_runtime() {
                    write_if_present(&dir.join("cpu.rt_runtime_us"), &r.to_string())?;
                }
                if let Some(b) = c.burst() {
                    write(&dir.join("cpu.cfs_burst_us"), &b.to_string())?;
                }
            }
        }
        "cpuset" => {
            if let Some(c) = res.cpu() {
                if let Some(cpus) = c.cpus() {
                    write(&dir.join("cpuset.cpus"), cpus)?;
                }
                if let Some(mems) = c.mems() {
                    write(&dir.join("cpuset.mems"), mems)?;
                }
            }
        }
        "pids" => {
            if let Some(p) = res.pids() {
                let v = if p.limit() > 0 { p.limit().to_string() } else { "max".to_string() };
                write(&dir.join("pids.max"), &v)?;
            }
        }
        "devices" => {
            if let Some(devs) = res.devices() {
                for d in devs {
                    let file = if d.allow() { "devices.allow" } else { "devices.deny" };
                    write(&dir.join(file), &device_rule(d))?;
                }
            }
        }
        "hugetlb" => {
            for h in res.hugepage_limits().iter().flatten() {
                write(&dir.join(format!("hugetlb.{}.limit_in_bytes", h.page_size())), &h.limit().to_string())?;
            }
        }
        "blkio" => {
            if let Some(b) = res.block_io() {
                // CFQ's blkio.weight, or BFQ's blkio.bfq.weight (cgroups::check refused a host with neither).
                let wfile = if dir.join("blkio.weight").exists() { "blkio.weight" } else { "blkio.bfq.weight" };
                if let Some(w) = b.weight() {
                    write(&dir.join(wfile), &w.to_string())?;
                }
                if let Some(w) = b.leaf_weight() {
                    write(&dir.join("blkio.leaf_weight"), &w.to_string())?;
                }
                for d in b.weight_device().iter().flatten() {
                    if let Some(w) = d.weight() {
                        write(&dir.join(wfile), &format!("{}:{} {w}", d.major(), d.minor()))?;
                    }
                    if let Some(w) = d.leaf_weight() {
                        write(&dir.join("blkio.leaf_weight_device"), &format!("{}:{} {w}", d.major(), d.minor()))?;
                    }
                }
                for (file, devs) in [
                    ("blkio.throttle.read_bps_device", b.throttle_read_bps_device()),
                    ("blkio.throttle.write_bps_device", b.throttle_write_bps_device()),
                    ("blkio.throttle.read_iops_device", b.throttle_read_iops_device()),
                    ("blkio.throttle.write_iops_device", b.throttle_write_iops_device()),
                ] {
                    for d in devs.iter().flatten() {
                        write(&dir.join(file), &format!("{}:{} {}", d.major(), d.minor(), d.rate()))?;
                    }
                }
            }
        }
        "net_cls" => {
            if let Some(id) = res.network().as_ref().and_then(|n| n.class_id()) {
                write(&dir.join("net_cls.classid"), &id.to_string())?;
            }
        }
        "net_prio" => {
            for p in res.network().as_ref().and_then(|n| n.priorities().clone()).into_iter().flatten() {
                write(&dir.join("net_prio.ifpriomap"), &format!("{} {}", p.name(), p.priority()))?;
            }
        }
        "rdma" => {
            for (dev, l) in res.rdma().iter().flatten() {
                write(&dir.join("rdma.max"), &super::rdma_line(dev, l))?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxResources;
    use std::fs;

    fn fake_v1(root: &Path) -> Vec<(String, PathBuf)> {
        let mut v = Vec::new();
        for h in ["memory", "cpu", "cpuset", "pids", "devices"] {
            fs::create_dir_all(root.join(h)).unwrap();
            fs::write(root.join(h).join("cgroup.procs"), "").unwrap();
            v.push((h.to_string(), root.join(h)));
        }
        fs::write(root.join("cpuset/cpuset.cpus"), "0-1\n").unwrap();
        fs::write(root.join("cpuset/cpuset.mems"), "0\n").unwrap();
        v
    }

    #[test]
    fn writes_v1_knobs_into_a_fake_cgroupfs() {
        let t = tempfile::tempdir().unwrap();
        let h = fake_v1(t.path());
        let res: LinuxResources = serde_json::from_value(serde_json::json!({
            "memory": {"limit": 16777216},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"},
            "pids": {"limit": 32},
            "devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]
        }))
        .unwrap();
        create(&h, Path::new("pod/c1"), Some(&res)).unwrap();
        let r = |p: &str| fs::read_to_string(t.path().join(p)).unwrap();
        assert_eq!(r("memory/pod/c1/memory.limit_in_bytes"), "16777216");
        assert_eq!(r("cpu/pod/c1/cpu.shares"), "512");
        assert_eq!(r("cpu/pod/c1/cpu.cfs_quota_us"), "50000");
        assert_eq!(r("cpu/pod/c1/cpu.cfs_period_us"), "100000");
        assert_eq!(r("cpuset/pod/cpuset.cpus"), "0-1", "intermediate cpuset seeded from the parent");
        assert_eq!(r("cpuset/pod/c1/cpuset.cpus"), "0");
        assert_eq!(r("cpuset/pod/c1/cpuset.mems"), "0");
        assert_eq!(r("pids/pod/c1/pids.max"), "32");
        assert_eq!(r("devices/pod/c1/devices.allow"), "c 1:3 rwm");
        assert_eq!(r("devices/pod/c1/devices.deny"), "a *:* rwm");
    }
}
