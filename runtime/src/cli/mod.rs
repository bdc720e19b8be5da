//! Command-line parsing (runc's verbs and flags) and output shapes (runc's `state`, `list`, `ps`, `features`,
//! `spec`). Errors are one line on stderr and, with `--log`, in the log file (`--log-format json` as podman
//! expects).

mod spec;

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use rkube_runtime::cgroups::tree;
use rkube_runtime::container::{self, create::run, CreateRequest};
use rkube_runtime::exec::ExecRequest;
use rkube_runtime::sandbox::SandboxRequest;

#[derive(Parser)]
#[command(name = "rkube-runtime", version, about = "rkube's OCI container runtime (runc-compatible CLI)")]
struct Cli {
    /// Directory for container state.
    #[arg(long, global = true, default_value = "/run/rkube-runtime")]
    root: PathBuf,
    /// Log file for errors.
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long = "log-format", global = true, default_value = "text")]
    log_format: String,
    /// cgroupsPath is in systemd's slice:prefix:name form.
    #[arg(long = "systemd-cgroup", global = true)]
    systemd_cgroup: bool,
    #[arg(long, global = true, hide = true)]
    debug: bool,
    #[arg(long, global = true, hide = true, num_args = 0..=1, default_missing_value = "true")]
    rootless: Option<String>,
    #[arg(long = "criu", global = true, hide = true)]
    criu: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args)]
struct CreateArgs {
    id: String,
    #[arg(short, long, default_value = ".")]
    bundle: PathBuf,
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    #[arg(long = "no-pivot")]
    no_pivot: bool,
    #[arg(long = "no-new-keyring")]
    no_new_keyring: bool,
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: u32,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a container (parked until start).
    Create(CreateArgs),
    /// Start a created container.
    Start { id: String },
    /// Print the OCI state of a container.
    State { id: String },
    /// Send a signal (default TERM) to the container's process.
    Kill {
        id: String,
        signal: Option<String>,
        #[arg(short, long)]
        all: bool,
    },
    /// Delete a container and everything it holds.
    Delete {
        id: String,
        #[arg(short, long)]
        force: bool,
    },
    /// Create, start and (unless detached) wait for a container, then delete it.
    Run {
        #[command(flatten)]
        create: CreateArgs,
        #[arg(short, long)]
        detach: bool,
        #[arg(long)]
        keep: bool,
    },
    /// Run a process in a running container.
    Exec {
        id: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
        #[arg(short, long)]
        process: Option<PathBuf>,
        #[arg(short, long)]
        tty: bool,
        #[arg(short, long)]
        detach: bool,
        #[arg(long = "pid-file")]
        pid_file: Option<PathBuf>,
        #[arg(long = "console-socket")]
        console_socket: Option<PathBuf>,
        #[arg(long)]
        cwd: Option<PathBuf>,
        #[arg(short, long)]
        env: Vec<String>,
        #[arg(short, long)]
        user: Option<String>,
        #[arg(long = "preserve-fds", default_value_t = 0)]
        preserve_fds: u32,
        #[arg(long = "no-new-privs")]
        no_new_privs: bool,
        #[arg(long = "process-label", hide = true)]
        process_label: Option<String>,
        #[arg(long = "apparmor", hide = true)]
        apparmor: Option<String>,
        /// Add a capability to the bounding, effective and permitted sets of the process (ambient too where the
        /// process's inheritable set has it).
        #[arg(long = "cap")]
        cap: Vec<String>,
    },
    /// Freeze every process of a running container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// Change the resource limits of a container (runc's flags; -r takes a linux.resources JSON file, - for stdin).
    Update {
        id: String,
        #[arg(short = 'r', long)]
        resources: Option<PathBuf>,
        #[arg(long)]
        memory: Option<String>,
        #[arg(long = "memory-swap")]
        memory_swap: Option<String>,
        #[arg(long = "memory-reservation")]
        memory_reservation: Option<String>,
        #[arg(long = "cpu-quota", allow_hyphen_values = true)]
        cpu_quota: Option<i64>,
        #[arg(long = "cpu-period")]
        cpu_period: Option<u64>,
        #[arg(long = "cpu-shares")]
        cpu_shares: Option<u64>,
        #[arg(long = "cpuset-cpus")]
        cpuset_cpus: Option<String>,
        #[arg(long = "cpuset-mems")]
        cpuset_mems: Option<String>,
        #[arg(long = "pids-limit", allow_hyphen_values = true)]
        pids_limit: Option<i64>,
        #[arg(long = "blkio-weight")]
        blkio_weight: Option<u16>,
    },
    /// List the processes in a container.
    Ps {
        id: String,
        #[arg(short, long, default_value = "table")]
        format: String,
        ps_args: Vec<String>,
    },
    /// List containers.
    List {
        #[arg(short, long, default_value = "table")]
        format: String,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Print the features this runtime supports (JSON).
    Features,
    /// Write a default config.json.
    Spec {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
    },
    /// Print resource events; with --stats, the cgroup's limits and usage (cpu, memory, pids, OOM kills) once.
    Events {
        id: String,
        #[arg(long)]
        stats: bool,
        #[arg(long, hide = true)]
        interval: Option<String>,
    },
    /// Measure or remove a cgroup that is no container's (rkube's; runc has no such verb): a pod's parent cgroup,
    /// a node's kubepods tree.
    Cgroup {
        #[command(subcommand)]
        cmd: CgroupCmd,
        /// Where the cgroup hierarchies are mounted.
        #[arg(long = "cgroup-root", default_value = container::CGROUP_ROOT)]
        cgroup_root: PathBuf,
    },
    /// Create a pod sandbox: a pause process holding new net/ipc/uts (and pid with --share-pid) namespaces.
    Sandbox {
        id: String,
        #[arg(long)]
        hostname: Option<String>,
        #[arg(long = "share-pid")]
        share_pid: bool,
        #[arg(long = "cgroups-path")]
        cgroups_path: Option<String>,
        #[arg(long = "pid-file")]
        pid_file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum CgroupCmd {
    /// Remove the cgroup tree PATH (relative to each hierarchy's root) from every hierarchy, children first; a
    /// cgroup still holding processes stays. Prints {"removed": [dirs], "left": [[dir, reason]]}.
    Remove { path: String },
    /// Print the memory working set of cgroup PATH and of each child: {"dir", "workingSet", "children": {name: bytes}}.
    Memory { path: String },
    /// Print the CPU time each cgroup PATH has used, read twice SAMPLE_MS apart for a rate:
    /// {"sampleMillis": n, "cgroups": [{"path", "dir", "usageNanos", "millicores"}]} (nulls for a cgroup with no
    /// cpuacct / cpu.stat; millicores null without --sample-ms).
    Cpu {
        #[arg(required = true)]
        paths: Vec<String>,
        /// Read again after this many milliseconds and report the rate over that interval (0: no rate)
        #[arg(long = "sample-ms", default_value_t = 0)]
        sample_ms: u64,
    },
}

fn log_error(cli_log: Option<&PathBuf>, format: &str, msg: &str) {
    // "error: " first, the shape callers and test harnesses match (runc's log says level=error).
    eprintln!("error: {msg}");
    if let Some(path) = cli_log {
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            let time = rkube_runtime::container::state::now_rfc3339();
            let line = if format == "json" {
                serde_json::json!({"level": "error", "msg": msg, "time": time}).to_string()
            } else {
                format!("time=\"{time}\" level=error msg={msg:?}")
            };
            let _ = writeln!(f, "{line}");
        }
    }
}

/// Runs the CLI; returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match dispatch(&cli) {
        Ok(code) => code,
        Err(msg) => {
            log_error(cli.log.as_ref(), &cli.log_format, &msg);
            1
        }
    }
}

fn create_request(cli: &Cli, a: &CreateArgs) -> CreateRequest {
    CreateRequest {
        root: cli.root.clone(),
        id: a.id.clone(),
        bundle: a.bundle.clone(),
        pid_file: a.pid_file.clone(),
        console_socket: a.console_socket.clone(),
        preserve_fds: a.preserve_fds,
        systemd_cgroup: cli.systemd_cgroup,
        no_pivot: a.no_pivot,
        cgroup_root: None,
        stdio: None,
    }
}

fn print_json(v: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn dispatch(cli: &Cli) -> Result<i32, String> {
    let root = &cli.root;
    if matches!(cli.cmd, Cmd::Create(_) | Cmd::Run { .. } | Cmd::Exec { .. } | Cmd::Sandbox { .. }) {
        // These verbs put processes into containers: run them from a sealed executable (CVE-2019-5736). Returns
        // at once when already re-executed; before anything is opened.
        rkube_runtime::sealed::ensure().map_err(|e| e.to_string())?;
    }
    let s = |e: rkube_runtime::ContainerError| e.to_string();
    match &cli.cmd {
        Cmd::Create(a) => {
            container::create(&create_request(cli, a)).map_err(s)?;
            Ok(0)
        }
        Cmd::Run { create, detach, keep: _ } => run(&create_request(cli, create), *detach).map_err(s),
        Cmd::Start { id } => container::start(root, id).map(|_| 0).map_err(s),
        Cmd::State { id } => {
            let st = container::state(root, id).map_err(s)?;
            print_json(&st.oci_json());
            Ok(0)
        }
        Cmd::Kill { id, signal, all } => {
            let name = signal.clone().unwrap_or_else(|| "TERM".into());
            let sig = container::parse_signal(&name).ok_or_else(|| format!("kill: unknown signal {name:?}; use a name like TERM or a number"))?;
            container::kill(root, id, sig, *all).map(|_| 0).map_err(s)
        }
        Cmd::Delete { id, force } => container::delete(root, id, *force).map(|_| 0).map_err(s),
        Cmd::Exec { id, command, process, tty, detach, pid_file, console_socket, cwd, env, user, preserve_fds, no_new_privs, cap, .. } => {
            let proc_ = match process {
                Some(p) => {
                    let data = std::fs::read(p).map_err(|e| format!("read --process {}: {e}", p.display()))?;
                    let de = &mut serde_json::Deserializer::from_slice(&data);
                    let pr: oci_spec::runtime::Process = serde_path_to_error::deserialize(de)
                        .map_err(|e| format!("{}: {}: {}", p.display(), e.path(), e.inner()))?;
                    pr
                }
                None => {
                    if command.is_empty() {
                        return Err("exec: give a command or --process file.json".into());
                    }
                    let st = container::state(root, id).map_err(s)?;
                    let base = rkube_runtime::config::load(&st.bundle).ok().and_then(|sp| sp.process().clone()).unwrap_or_default();
                    let mut pr = base;
                    pr.set_args(Some(command.clone()));
                    pr.set_terminal(Some(*tty));
                    if let Some(c) = cwd {
                        pr.set_cwd(c.clone());
                    }
                    if !env.is_empty() {
                        let mut e = pr.env().clone().unwrap_or_default();
                        e.extend(env.iter().cloned());
                        pr.set_env(Some(e));
                    }
                    if let Some(u) = user {
                        let (uid, gid) = u.split_once(':').unwrap_or((u.as_str(), "0"));
                        let mut usr = pr.user().clone();
                        usr.set_uid(uid.parse().map_err(|_| format!("exec --user {u:?}: use uid[:gid]"))?);
                        usr.set_gid(gid.parse().map_err(|_| format!("exec --user {u:?}: use uid[:gid]"))?);
                        pr.set_user(usr);
                    }
                    if *no_new_privs {
                        pr.set_no_new_privileges(Some(true));
                    }
                    if !cap.is_empty() {
                        let mut c = pr.capabilities().clone().unwrap_or_else(rkube_runtime::capabilities::none);
                        rkube_runtime::capabilities::add_for_exec(&mut c, cap).map_err(|e| format!("exec --cap: {e}"))?;
                        pr.set_capabilities(Some(c));
                    }
                    pr
                }
            };
            let req = ExecRequest {
                root: root.clone(),
                id: id.clone(),
                process: Some(proc_),
                pid_file: pid_file.clone(),
                console_socket: console_socket.clone(),
                preserve_fds: *preserve_fds,
                stdio: None,
            };
            let ex = rkube_runtime::exec::exec(&req).map_err(s)?;
            if *detach {
                return Ok(0);
            }
            match ex.pidfd {
                Some(fd) => rkube_runtime::sys::wait_pidfd(&fd).map(|e| e.as_shell_code()).map_err(|e| format!("wait for exec: {e}")),
                None => Ok(0),
            }
        }
        Cmd::Pause { id } => container::pause(root, id).map(|_| 0).map_err(s),
        Cmd::Resume { id } => container::resume(root, id).map(|_| 0).map_err(s),
        Cmd::Update { id, resources, memory, memory_swap, memory_reservation, cpu_quota, cpu_period, cpu_shares, cpuset_cpus, cpuset_mems, pids_limit, blkio_weight } => {
            let mut v = match resources {
                Some(p) => {
                    let data = if p.as_os_str() == "-" {
                        let mut b = Vec::new();
                        std::io::Read::read_to_end(&mut std::io::stdin(), &mut b).map_err(|e| format!("update -r -: read stdin: {e}"))?;
                        b
                    } else {
                        std::fs::read(p).map_err(|e| format!("update -r {}: {e}", p.display()))?
                    };
                    serde_json::from_slice::<serde_json::Value>(&data).map_err(|e| format!("update -r {}: {e}", p.display()))?
                }
                None => serde_json::json!({}),
            };
            let mut set = |section: &str, key: &str, val: serde_json::Value| {
                if !v[section].is_object() {
                    v[section] = serde_json::json!({});
                }
                v[section][key] = val;
            };
            for (flag, val, key) in [("--memory", memory, "limit"), ("--memory-swap", memory_swap, "swap"), ("--memory-reservation", memory_reservation, "reservation")] {
                if let Some(x) = val {
                    set("memory", key, serde_json::json!(parse_bytes(x).ok_or_else(|| format!("update {flag} {x:?}: give bytes, -1, or a size like 64m"))?));
                }
            }
            if let Some(x) = cpu_quota {
                set("cpu", "quota", serde_json::json!(x));
            }
            if let Some(x) = cpu_period {
                set("cpu", "period", serde_json::json!(x));
            }
            if let Some(x) = cpu_shares {
                set("cpu", "shares", serde_json::json!(x));
            }
            if let Some(x) = cpuset_cpus {
                set("cpu", "cpus", serde_json::json!(x));
            }
            if let Some(x) = cpuset_mems {
                set("cpu", "mems", serde_json::json!(x));
            }
            if let Some(x) = pids_limit {
                set("pids", "limit", serde_json::json!(x));
            }
            if let Some(x) = blkio_weight {
                set("blockIO", "weight", serde_json::json!(x));
            }
            let r: oci_spec::runtime::LinuxResources = serde_path_to_error::deserialize(v)
                .map_err(|e| format!("update: linux.resources.{}: {}", e.path(), e.inner()))?;
            container::update(root, id, &r).map(|_| 0).map_err(s)
        }
        Cmd::Ps { id, format, .. } => {
            let pids = container::ps(root, id).map_err(s)?;
            if format == "json" {
                println!("{}", serde_json::to_string(&pids).unwrap_or_default());
            } else {
                println!("PID");
                for p in pids {
                    println!("{p}");
                }
            }
            Ok(0)
        }
        Cmd::List { format, quiet } => {
            let all = container::list(root);
            if *quiet {
                for c in &all {
                    println!("{}", c.id);
                }
            } else if format == "json" {
                let v: Vec<serde_json::Value> = all.iter().map(|c| c.oci_json()).collect();
                println!("{}", serde_json::Value::Array(v));
            } else {
                println!("{:<20} {:<10} {:<10} {:<40} {:<32} OWNER", "ID", "PID", "STATUS", "BUNDLE", "CREATED");
                for c in &all {
                    let pid = if c.status == rkube_runtime::ContainerStatus::Stopped { 0 } else { c.pid };
                    println!("{:<20} {:<10} {:<10} {:<40} {:<32} root", c.id, pid, c.status.as_str(), c.bundle.display(), c.created);
                }
            }
            Ok(0)
        }
        Cmd::Features => {
            print_json(&spec::features());
            Ok(0)
        }
        Cmd::Spec { bundle } => {
            let path = bundle.join("config.json");
            if path.exists() {
                return Err(format!("spec: {} already exists; remove it first", path.display()));
            }
            let data = serde_json::to_string_pretty(&spec::default_spec()).unwrap_or_default();
            std::fs::write(&path, data).map_err(|e| format!("spec: write {}: {e}", path.display()))?;
            Ok(0)
        }
        Cmd::Events { id, stats: _, .. } => {
            let st = container::state(root, id).map_err(s)?;
            let cg = container::cgroup_of(&st);
            // runc's stats shape, plus the CPU limits and the directories read (cgroups/stats.rs)
            let data = cg.map(|c| c.stats()).unwrap_or_default();
            let v = serde_json::json!({"type": "stats", "id": id, "data": data});
            println!("{v}");
            Ok(0)
        }
        Cmd::Cgroup { cmd, cgroup_root } => {
            let layout = rkube_runtime::cgroups::Layout::detect(cgroup_root);
            let checked = |verb: &str, path: &str| tree::checked_path(path).map_err(|e| format!("cgroup {verb} {path:?}: {e}"));
            let v = match cmd {
                CgroupCmd::Cpu { paths, sample_ms } => return cgroup_cpu(&layout, paths, *sample_ms),
                CgroupCmd::Remove { path } => serde_json::to_value(tree::remove_tree(&layout, &checked("remove", path)?)),
                CgroupCmd::Memory { path } => {
                    let rel = checked("memory", path)?;
                    let m = tree::memory_use(&layout, &rel).ok_or_else(|| {
                        format!("cgroup memory {path:?}: no memory cgroup {} under {} (cgroup {})", rel.display(), cgroup_root.display(), layout.name())
                    })?;
                    serde_json::to_value(m)
                }
            };
            println!("{}", v.unwrap_or_default());
            Ok(0)
        }
        Cmd::Sandbox { id, hostname, share_pid, cgroups_path, pid_file } => {
            let req = SandboxRequest {
                root: root.clone(),
                id: id.clone(),
                hostname: hostname.clone(),
                share_pid: *share_pid,
                cgroups_path: cgroups_path.clone(),
                cgroup_root: None,
                pid_file: pid_file.clone(),
            };
            let st = rkube_runtime::sandbox::create(&req).map_err(s)?;
            let mut v = st.oci_json();
            v["namespaces"] = serde_json::json!(st.private.namespaces);
            print_json(&v);
            Ok(0)
        }
    }
}

/// `cgroup cpu PATH... [--sample-ms N]`: each cgroup's CPU time, and with a sample, the rate between two reads
/// N ms apart (one process and one wait for every path, so the kubelet's node view costs one runtime call).
fn cgroup_cpu(layout: &rkube_runtime::cgroups::Layout, paths: &[String], sample_ms: u64) -> Result<i32, String> {
    let rels = paths.iter().map(|p| tree::checked_path(p).map_err(|e| format!("cgroup cpu {p:?}: {e}"))).collect::<Result<Vec<_>, _>>()?;
    let read = || rels.iter().map(|r| tree::cpu_use(layout, r)).collect::<Vec<_>>();
    let (t0, first) = (std::time::Instant::now(), read());
    let second = (sample_ms > 0).then(|| {
        std::thread::sleep(std::time::Duration::from_millis(sample_ms));
        read()
    });
    let elapsed = t0.elapsed().as_nanos().max(1);
    let cgroups: Vec<serde_json::Value> = paths
        .iter()
        .enumerate()
        .map(|(i, path)| {
            let last = second.as_ref().map_or(&first[i], |s| &s[i]);
            // CPU-nanoseconds per wall-nanosecond, in thousandths of a CPU
            let millicores = second.as_ref().and_then(|s| {
                let used = s[i].as_ref()?.usage_nanos.checked_sub(first[i].as_ref()?.usage_nanos)?;
                u64::try_from(u128::from(used) * 1000 / elapsed).ok()
            });
            serde_json::json!({"path": path, "dir": last.as_ref().map(|c| &c.dir), "usageNanos": last.as_ref().map(|c| c.usage_nanos), "millicores": millicores})
        })
        .collect();
    let sample_millis = if second.is_some() { u64::try_from(elapsed / 1_000_000).unwrap_or(u64::MAX) } else { 0 };
    println!("{}", serde_json::json!({"sampleMillis": sample_millis, "cgroups": cgroups}));
    Ok(0)
}

/// A size as runc's flags take it: bytes, -1 (no limit), or a number with k, m, g or t (powers of 1024, an
/// optional trailing b, any case).
fn parse_bytes(s: &str) -> Option<i64> {
    let t = s.trim().to_ascii_lowercase();
    if t == "-1" {
        return Some(-1);
    }
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.char_indices().last()? {
        (i, 'k') => (&t[..i], 1i64 << 10),
        (i, 'm') => (&t[..i], 1 << 20),
        (i, 'g') => (&t[..i], 1 << 30),
        (i, 't') => (&t[..i], 1 << 40),
        _ => (t, 1),
    };
    num.trim().parse::<i64>().ok().filter(|n| *n >= 0)?.checked_mul(mult)
}
