//! [`RuntimeClient`] over the runc-compatible command line of `rkube-runtime`: sandbox, create (run by the
//! monitor), start, kill, delete, state, exec, OOM kills and stats through `events --stats`, and rkube's own
//! `cgroup memory|cpu|remove` for the cgroups that are no container's (a pod's parent cgroup, a node's tree). One
//! process per call keeps the kubelet free of fork-in-a-threaded-process hazards.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{CgroupMemory, ContainerStats, CpuSample, RuntimeClient, RuntimeError, SandboxInfo};

/// The runtime binary and its state root.
#[derive(Clone, Debug)]
pub struct RuntimeCli {
    /// The `rkube-runtime` executable, run once per call.
    pub bin: PathBuf,
    /// The runtime's state root, passed as `--root` to every call (one directory per container).
    pub root: PathBuf,
}

impl RuntimeCli {
    fn run(&self, what: &str, args: &[&str]) -> Result<String, RuntimeError> {
        let out = Command::new(&self.bin)
            .arg("--root")
            .arg(&self.root)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|source| RuntimeError::Spawn { bin: self.bin.clone(), what: what.into(), source })?;
        if !out.status.success() {
            let mut message = String::from_utf8_lossy(&out.stderr).trim().to_string();
            if message.is_empty() {
                message = format!("exit status {}", out.status);
            }
            return Err(RuntimeError::Failed { bin: self.bin.clone(), what: what.into(), message });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

}

impl RuntimeClient for RuntimeCli {
    fn sandbox(&self, id: &str, hostname: &str, cgroups_path: &str) -> Result<SandboxInfo, RuntimeError> {
        let out = self.run(
            &format!("sandbox {id}"),
            &["sandbox", id, "--hostname", hostname, "--cgroups-path", cgroups_path],
        )?;
        let v: serde_json::Value = serde_json::from_str(&out).map_err(|_| RuntimeError::Output {
            bin: self.bin.clone(),
            what: format!("sandbox {id}"),
            output: out.clone(),
        })?;
        let pid = v["pid"].as_i64().unwrap_or(0) as i32;
        let namespaces = v["namespaces"]
            .as_object()
            .map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string()))).collect())
            .unwrap_or_default();
        if pid <= 0 {
            return Err(RuntimeError::Output { bin: self.bin.clone(), what: format!("sandbox {id}"), output: out });
        }
        Ok(SandboxInfo { pid, namespaces })
    }

    fn create_argv(&self, id: &str, bundle: &Path, pid_file: &Path) -> Vec<OsString> {
        vec![
            self.bin.clone().into(),
            "--root".into(),
            self.root.clone().into(),
            "create".into(),
            "--bundle".into(),
            bundle.into(),
            "--pid-file".into(),
            pid_file.into(),
            id.into(),
        ]
    }

    fn start(&self, id: &str) -> Result<(), RuntimeError> {
        self.run(&format!("start {id}"), &["start", id]).map(|_| ())
    }

    fn kill(&self, id: &str, signal: &str) -> Result<(), RuntimeError> {
        self.run(&format!("kill {id} {signal}"), &["kill", id, signal]).map(|_| ())
    }

    fn delete(&self, id: &str) -> Result<(), RuntimeError> {
        match self.run(&format!("delete {id}"), &["delete", "--force", id]) {
            Ok(_) => Ok(()),
            Err(RuntimeError::Failed { message, .. }) if message.contains("not exist") || message.contains("not found") => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn state(&self, id: &str) -> Option<String> {
        let out = self.run(&format!("state {id}"), &["state", id]).ok()?;
        let v: serde_json::Value = serde_json::from_str(&out).ok()?;
        v["status"].as_str().map(str::to_string)
    }

    fn exec(&self, id: &str, argv: &[String], timeout: Duration) -> Result<(i32, String), RuntimeError> {
        let what = format!("exec {id}");
        let mut child = Command::new(&self.bin)
            .arg("--root")
            .arg(&self.root)
            .arg("exec")
            .arg(id)
            .args(argv)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| RuntimeError::Spawn { bin: self.bin.clone(), what: what.clone(), source })?;
        let deadline = std::time::Instant::now() + timeout;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if std::time::Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(RuntimeError::Failed { bin: self.bin.clone(), what, message: format!("timed out after {timeout:?}") });
                }
            }
        }
        let out = child
            .wait_with_output()
            .map_err(|source| RuntimeError::Spawn { bin: self.bin.clone(), what, source })?;
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        Ok((out.status.code().unwrap_or(128 + 9), text))
    }

    /// `events --stats` reports the container cgroup's OOM kill count (cgroup v1 `memory.oom_control`, v2
    /// `memory.events`), as long as the container is not deleted.
    fn oom_killed(&self, id: &str) -> bool {
        let Ok(out) = self.run(&format!("events --stats {id}"), &["events", "--stats", id]) else { return false };
        oom_kills_of_events(&out) > 0
    }

    fn remove_cgroup_tree(&self, cgroups_path: &str) -> Result<Vec<(PathBuf, String)>, RuntimeError> {
        let what = format!("cgroup remove {cgroups_path}");
        let out = self.run(&what, &["cgroup", "remove", cgroups_path])?;
        let bad = || RuntimeError::Output { bin: self.bin.clone(), what: what.clone(), output: out.clone() };
        let v: serde_json::Value = serde_json::from_str(&out).map_err(|_| bad())?;
        serde_json::from_value(v["left"].clone()).map_err(|_| bad())
    }

    /// `cgroup memory`: a cgroup with no memory cgroup (gone, or never made) is None, not an error.
    fn cgroup_memory(&self, cgroups_path: &str) -> Result<Option<CgroupMemory>, RuntimeError> {
        let what = format!("cgroup memory {cgroups_path}");
        match self.run(&what, &["cgroup", "memory", cgroups_path]) {
            Ok(out) => serde_json::from_str(&out).map(Some).map_err(|_| RuntimeError::Output { bin: self.bin.clone(), what, output: out }),
            Err(RuntimeError::Failed { message, .. }) if message.contains("no memory cgroup") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `events --stats`: the runtime reads the container cgroup's limits and usage.
    fn container_stats(&self, id: &str) -> Result<ContainerStats, RuntimeError> {
        let what = format!("events --stats {id}");
        let out = self.run(&what, &["events", "--stats", id])?;
        stats_of_events(&out).ok_or_else(|| RuntimeError::Output { bin: self.bin.clone(), what, output: out })
    }

    /// `cgroup cpu PATH... --sample-ms N`: one process reads every cgroup twice, N ms apart.
    fn cgroup_cpu(&self, cgroups_paths: &[String], sample: Duration) -> Result<CpuSample, RuntimeError> {
        let what = format!("cgroup cpu {}", cgroups_paths.join(" "));
        let ms = sample.as_millis().to_string();
        let mut args = vec!["cgroup", "cpu", "--sample-ms", ms.as_str(), "--"];
        args.extend(cgroups_paths.iter().map(String::as_str));
        let out = self.run(&what, &args)?;
        serde_json::from_str(&out).map_err(|_| RuntimeError::Output { bin: self.bin.clone(), what, output: out })
    }
}

/// The `data` of the runtime's `events --stats` line.
fn stats_of_events(out: &str) -> Option<ContainerStats> {
    out.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["type"] == "stats")
        .and_then(|v| serde_json::from_value(v["data"].clone()).ok())
}

/// `data.memory.oom_kill` of the runtime's `events --stats` line (runc's shape), 0 when absent.
fn oom_kills_of_events(out: &str) -> u64 {
    out.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["data"]["memory"]["oom_kill"].as_u64())
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oom_kills_are_read_from_the_events_line() {
        assert_eq!(oom_kills_of_events(r#"{"type":"stats","id":"c","data":{"memory":{"oom_kill":2},"pids":{"current":0}}}"#), 2);
        assert_eq!(oom_kills_of_events(r#"{"type":"stats","id":"c","data":{"memory":{"oom_kill":0}}}"#), 0);
        assert_eq!(oom_kills_of_events("not json"), 0);
        assert_eq!(oom_kills_of_events(""), 0);
    }

    /// The `cgroup memory|remove` answers are parsed as the runtime prints them (a script stands in for it).
    #[test]
    fn cgroup_verbs_are_asked_of_the_runtime() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("fake-runtime");
        let script = r#"#!/bin/sh
shift 2
case "$1 $2 $3" in
  "cgroup memory kubepods/p1") echo '{"dir":"/cg/memory/kubepods/p1","workingSet":400,"children":{"u1-app-0":100,"u1-app-1":300}}' ;;
  "cgroup memory kubepods/none") echo 'error: cgroup memory "kubepods/none": no memory cgroup kubepods/none under /sys/fs/cgroup (cgroup hybrid)' >&2; exit 1 ;;
  "cgroup remove kubepods/p1") echo '{"removed":["/cg/memory/kubepods/p1"],"left":[["/cg/pids/kubepods/p1","Device or resource busy (os error 16)"]]}' ;;
  *) echo "error: unexpected $*" >&2; exit 1 ;;
esac
"#;
        std::fs::write(&bin, script).expect("write");
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let rt = RuntimeCli { bin, root: dir.path().join("state") };
        let m = rt.cgroup_memory("kubepods/p1").expect("memory").expect("some");
        assert_eq!((m.working_set, m.children.len()), (400, 2));
        assert_eq!(rt.pod_memory_bytes("kubepods/p1"), 400);
        assert_eq!(rt.container_memory_bytes("kubepods/p1", "u1").into_iter().collect::<Vec<_>>(), [("app".to_string(), 300)]);
        assert_eq!(rt.cgroup_memory("kubepods/none").expect("a missing cgroup is not an error"), None);
        let left = rt.remove_cgroup_tree("kubepods/p1").expect("remove");
        assert_eq!(left, [(PathBuf::from("/cg/pids/kubepods/p1"), "Device or resource busy (os error 16)".to_string())]);
        let e = rt.remove_cgroup_tree("other").expect_err("a failing runtime is an error");
        assert!(e.to_string().contains("cgroup remove other") && e.to_string().contains("unexpected"), "{e}");
    }

    #[test]
    fn stats_are_read_from_the_events_line() {
        let line = r#"{"type":"stats","id":"c","data":{"cpu":{"usage":{"total":5},"limits":{"quota":50000,"period":100000,"shares":512,"weight":null}},"memory":{"usage":{"usage":4096,"limit":67108864},"oom_kill":0},"pids":{"current":1,"limit":null},"cgroupDirs":{"memory":"/cg/memory/k/c"}}}"#;
        let st = stats_of_events(line).expect("stats");
        assert_eq!(st.cpu.limits.quota, Some(50000));
        assert_eq!(st.memory.usage.limit, Some(67108864));
        assert_eq!(st.pids.limit, None);
        assert_eq!(st.cgroup_dirs["memory"], PathBuf::from("/cg/memory/k/c"));
        // an older runtime's line (no limits) still reads, with the limits unknown
        let old = stats_of_events(r#"{"type":"stats","id":"c","data":{"memory":{"oom_kill":0},"pids":{"current":0}}}"#).expect("old");
        assert_eq!(old.memory.usage.limit, None);
        assert_eq!(stats_of_events("not json"), None);
    }
}
