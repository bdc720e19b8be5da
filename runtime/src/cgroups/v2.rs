//! cgroup v2 (unified): one directory, controllers enabled through each ancestor's `cgroup.subtree_control`,
//! knobs named `memory.max`, `cpu.max`, `cpu.weight`, `pids.max`, `hugetlb.<size>.max`.
//!
//! Owns writing `linux.resources` into a cgroup2 directory, on a pure v2 host or the hybrid `unified` mount.
//! Device rules need an eBPF program on v2; they are not enforced here (see docs/runtime.md).

use std::fs;
use std::path::Path;

use oci_spec::runtime::LinuxResources;

use super::{mkdir_all, write, write_if_present, CgroupError};

/// Which knobs to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Knobs {
    /// A pure v2 host: everything.
    All,
    /// The hybrid `unified` mount, where only hugetlb lives.
    HugetlbOnly,
    /// Create the directory only.
    None,
}

/// OCI cpu shares (2..262144) to cgroup2 cpu.weight (1..10000), the conversion the kernel docs and runc use.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 100;
    }
    1 + ((shares.clamp(2, 262144) - 2) * 9999) / 262142
}

/// Creates `rel` under `root`, enables the controllers it needs in every ancestor, and writes the resources.
pub fn create(root: &Path, rel: &Path, res: Option<&LinuxResources>, knobs: Knobs) -> Result<(), CgroupError> {
    let available = fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
    let wanted: Vec<&str> = available
        .split_whitespace()
        .filter(|c| match knobs {
            Knobs::All => ["memory", "pids", "cpu", "cpuset", "hugetlb", "io", "rdma"].contains(c),
            Knobs::HugetlbOnly => *c == "hugetlb",
            Knobs::None => false,
        })
        .collect();
    let mut cur = root.to_path_buf();
    for c in rel.components() {
        if !wanted.is_empty() {
            let enable: Vec<String> = wanted.iter().map(|c| format!("+{c}")).collect();
            let ctl = cur.join("cgroup.subtree_control");
            let have = fs::read_to_string(&ctl).unwrap_or_default();
            if wanted.iter().any(|w| !have.split_whitespace().any(|h| h == *w)) {
                write(&ctl, &enable.join(" "))?;
            }
        }
        cur.push(c);
        if !cur.exists() {
            mkdir_all(&cur)?;
        }
    }
    if let Some(res) = res {
        apply(&cur, res, knobs)?;
    }
    Ok(())
}

fn apply(dir: &Path, res: &LinuxResources, knobs: Knobs) -> Result<(), CgroupError> {
    if knobs == Knobs::None {
        return Ok(());
    }
    for h in res.hugepage_limits().iter().flatten() {
        write(&dir.join(format!("hugetlb.{}.max", h.page_size())), &h.limit().to_string())?;
    }
    if knobs == Knobs::HugetlbOnly {
        return Ok(());
    }
    let max = |v: i64| if v < 0 { "max".to_string() } else { v.to_string() };
    if let Some(m) = res.memory() {
        if let Some(r) = m.reservation() {
            write(&dir.join("memory.low"), &max(r))?;
        }
        if let Some(l) = m.limit() {
            write(&dir.join("memory.max"), &max(l))?;
            // OCI swap is memory+swap; cgroup2 swap.max is swap alone.
            let swap = match m.swap() {
                Some(s) if s < 0 || l < 0 => "max".to_string(),
                Some(s) if s < l => {
                    return Err(CgroupError::Invalid {
                        field: "memory.swap",
                        reason: format!("memory+swap {s} is below the memory limit {l}"),
                    })
                }
                Some(s) => (s - l).to_string(),
                None => "0".to_string(),
            };
            write_if_present(&dir.join("memory.swap.max"), &swap)?;
        }
    }
    if let Some(c) = res.cpu() {
        if let Some(s) = c.shares() {
            write(&dir.join("cpu.weight"), &shares_to_weight(s).to_string())?;
        }
        if c.quota().is_some() || c.period().is_some() {
            let period = c.period().unwrap_or(100_000);
            let quota = match c.quota() {
                Some(q) if q > 0 => q.to_string(),
                _ => "max".to_string(),
            };
            write(&dir.join("cpu.max"), &format!("{quota} {period}"))?;
        }
        if let Some(b) = c.burst() {
            write(&dir.join("cpu.max.burst"), &b.to_string())?;
        }
        if let Some(i) = c.idle() {
            write(&dir.join("cpu.idle"), &i.to_string())?;
        }
        if let Some(cpus) = c.cpus() {
            write(&dir.join("cpuset.cpus"), cpus)?;
        }
        if let Some(mems) = c.mems() {
            write(&dir.join("cpuset.mems"), mems)?;
        }
    }
    if let Some(p) = res.pids() {
        write(&dir.join("pids.max"), &if p.limit() > 0 { p.limit().to_string() } else { "max".to_string() })?;
    }
    if let Some(b) = res.block_io() {
        // io.weight comes from the iocost controller or BFQ (io.bfq.weight); writing fails clearly without them.
        let wfile = if dir.join("io.weight").exists() || !dir.join("io.bfq.weight").exists() { "io.weight" } else { "io.bfq.weight" };
        if let Some(w) = b.weight() {
            write(&dir.join(wfile), &format!("default {w}"))?;
        }
        for d in b.weight_device().iter().flatten() {
            if let Some(w) = d.weight() {
                write(&dir.join(wfile), &format!("{}:{} {w}", d.major(), d.minor()))?;
            }
        }
        for (key, devs) in [
            ("rbps", b.throttle_read_bps_device()),
            ("wbps", b.throttle_write_bps_device()),
            ("riops", b.throttle_read_iops_device()),
            ("wiops", b.throttle_write_iops_device()),
        ] {
            for d in devs.iter().flatten() {
                write(&dir.join("io.max"), &format!("{}:{} {key}={}", d.major(), d.minor(), d.rate()))?;
            }
        }
    }
    for (dev, l) in res.rdma().iter().flatten() {
        write(&dir.join("rdma.max"), &super::rdma_line(dev, l))?;
    }
    if let Some(rules) = res.devices().as_ref().filter(|r| !r.is_empty()) {
        super::devices::attach(dir, rules)?;
    }
    for (k, v) in res.unified().iter().flatten() {
        if k.contains('/') || k.starts_with('.') {
            return Err(CgroupError::Invalid { field: "unified", reason: format!("{k:?} is not a cgroup file name") });
        }
        write(&dir.join(k), v)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_v2_knobs_and_enables_controllers() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("cgroup.controllers"), "cpuset cpu io memory hugetlb pids").unwrap();
        fs::write(t.path().join("cgroup.subtree_control"), "").unwrap();
        // The fake needs the intermediate level to exist with its own subtree_control, as the kernel would make.
        fs::create_dir_all(t.path().join("pod")).unwrap();
        fs::write(t.path().join("pod/cgroup.subtree_control"), "").unwrap();
        fs::create_dir_all(t.path().join("pod/c1")).unwrap();
        fs::write(t.path().join("pod/c1/memory.swap.max"), "").unwrap();
        let res: LinuxResources = serde_json::from_value(serde_json::json!({
            "memory": {"limit": 16777216, "swap": 16777216},
            "cpu": {"shares": 1024, "quota": 50000, "period": 100000},
            "pids": {"limit": 10},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
            "unified": {"memory.high": "12000000"}
        }))
        .unwrap();
        create(t.path(), Path::new("pod/c1"), Some(&res), Knobs::All).unwrap();
        let r = |p: &str| fs::read_to_string(t.path().join(p)).unwrap();
        assert!(r("cgroup.subtree_control").contains("+memory"));
        assert!(r("pod/cgroup.subtree_control").contains("+pids"));
        assert_eq!(r("pod/c1/memory.max"), "16777216");
        assert_eq!(r("pod/c1/memory.swap.max"), "0");
        assert_eq!(r("pod/c1/cpu.weight"), "39");
        assert_eq!(r("pod/c1/cpu.max"), "50000 100000");
        assert_eq!(r("pod/c1/pids.max"), "10");
        assert_eq!(r("pod/c1/hugetlb.2MB.max"), "4194304");
        assert_eq!(r("pod/c1/memory.high"), "12000000");
    }

    #[test]
    fn hybrid_unified_gets_hugetlb_only() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("cgroup.controllers"), "hugetlb").unwrap();
        fs::write(t.path().join("cgroup.subtree_control"), "").unwrap();
        let res: LinuxResources = serde_json::from_value(serde_json::json!({
            "memory": {"limit": 1000},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 0}]
        }))
        .unwrap();
        create(t.path(), Path::new("c"), Some(&res), Knobs::HugetlbOnly).unwrap();
        assert_eq!(fs::read_to_string(t.path().join("c/hugetlb.2MB.max")).unwrap(), "0");
        assert!(!t.path().join("c/memory.max").exists());
    }

    #[test]
    fn shares_convert_to_weight() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262144), 10000);
        assert_eq!(shares_to_weight(1024), 39);
    }
}
