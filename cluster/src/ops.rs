//! `up`, `down`, `status` and the node drills, carrying out the [`Plan`] and the [`state`](crate::state) file's
//! record: each thing is recorded before it is made, so whatever `up` leaves after failing halfway, it removes
//! on its way out and `down` removes on a second try.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::lan;
use crate::plan::{self, NodePlan, Plan};
use crate::process;
use crate::state::{teardown_steps, NodeState, State, Step};
use crate::{io_err, ClusterError, Result};

const NONE: Option<&str> = None;
/// How long a stopped agent gets to exit on SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// How to make a cluster.
pub struct UpOptions {
    /// The names, addresses and directories to make.
    pub plan: Plan,
    /// The `rkube` binary whose `server`, `kubelet` and `down` the cluster runs.
    pub exe: PathBuf,
    /// How long to wait for every node to be Ready.
    pub ready_timeout: Duration,
    /// Extra arguments for `rkube server`, after the ones the plan sets (data dir, listen address, TLS).
    pub server_args: Vec<String>,
    /// Extra arguments for every node agent, after the ones its node plan sets; recorded in the state so a
    /// restarted agent (`rkube cluster node start`) gets them again.
    pub kubelet_args: Vec<String>,
}

/// A node drill.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeAction {
    /// SIGTERM to its agent (pods keep running, as when a kubelet dies).
    Stop,
    /// Its agent again.
    Start,
    /// Its LAN port down.
    Partition,
    /// Its LAN port up.
    Heal,
}

fn child_env() -> Vec<(&'static str, String)> {
    vec![("RKUBE_LOG", std::env::var("RKUBE_LOG").unwrap_or_else(|_| "info,kube=warn".into()))]
}

fn spawn(exe: &Path, args: &[String], log: &Path) -> Result<crate::state::Proc> {
    let env = child_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    process::spawn(exe, args, log, &env)
}

/// The node's own kubeconfig, written by `rkube join` once its certificate is issued.
pub fn node_kubeconfig(n: &NodeState) -> PathBuf {
    n.data_dir.join("kubelet.conf")
}

/// The command line of node `n`'s agent. The first time, `rkube join` with the cluster's bootstrap token and CA
/// pin, as any machine joins (a CSR as `system:bootstrap:<id>`, then its own `system:node:<name>` certificate in
/// `<data>/kubelet.conf`); once `joined` (that file exists), `rkube kubelet --kubeconfig` it, as a joined node
/// restarts. Never the admin credential. Pure.
pub fn agent_args(s: &State, n: &NodeState, joined: bool) -> Result<Vec<String>> {
    let mut a: Vec<String> = Vec::new();
    if joined {
        a.extend(["kubelet".to_string(), "--kubeconfig".to_string(), node_kubeconfig(n).display().to_string()]);
    } else {
        let j = s.join.as_ref().ok_or_else(|| ClusterError::State {
            path: State::path(&s.data_dir),
            message: format!("node {} has not joined and the cluster has no join token; make the cluster again (`rkube cluster down`, `up`)", n.name),
        })?;
        a.extend(["join", "--server", &j.server, "--token", &j.token, "--discovery-token-ca-cert-hash", &j.ca_cert_hash].map(str::to_string));
    }
    a.extend(["--netns".to_string(), n.netns.clone(), "--data-dir".to_string(), n.data_dir.display().to_string()]);
    for (k, v) in [
        ("--node-name", n.name.as_str()),
        ("--node-ip", &n.addr.to_string()),
        ("--bridge", &n.bridge),
        ("--cgroup-root", &n.cgroup_root),
        // no uplink in a node's namespace: cluster names only
        ("--dns-upstream", "none"),
    ] {
        a.extend([k.to_string(), v.to_string()]);
    }
    a.extend(s.kubelet_args.iter().cloned());
    Ok(a)
}

/// A bootstrap token for the cluster's nodes, made through the API with the admin kubeconfig as a user would
/// (`rkube token create --print-join-command`), retried until the server answers.
fn create_join_token(exe: &Path, s: &State) -> Result<crate::state::JoinCreds> {
    let kc = s.kubeconfig.display().to_string();
    let desc = format!("rkube cluster {} nodes", s.name);
    let args = ["token", "create", "--kubeconfig", &kc, "--print-join-command", "--description", &desc];
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = lan::run(&exe.display().to_string(), &args);
        match r {
            Ok(out) => {
                return crate::state::JoinCreds::parse(&out).ok_or_else(|| ClusterError::Command { cmd: "rkube token create".into(), message: format!("not a join command: {out}") })
            }
            Err(e) if Instant::now() > deadline => return Err(ClusterError::Timeout { what: "a bootstrap token for the nodes".into(), secs: 60, last: e.to_string() }),
            Err(_) => {
                if let Some(sv) = s.server.as_ref().filter(|sv| !process::alive(sv)) {
                    return Err(ClusterError::Command { cmd: "rkube server".into(), message: format!("exited; its log:\n{}", tail(&sv.log, 20)) });
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

fn node_log(s: &State, n: &NodeState) -> PathBuf {
    s.data_dir.join(format!("{}.log", n.name))
}

fn start_kubelet(exe: &Path, s: &State, n: &NodeState) -> Result<crate::state::Proc> {
    spawn(exe, &agent_args(s, n, node_kubeconfig(n).exists())?, &node_log(s, n))
}

/// The last lines of a log, for an error message.
fn tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let v: Vec<&str> = text.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// Makes the cluster and waits until every node is Ready; on any failure, removes what it made and returns the
/// error. `say` gets the progress lines.
pub fn up(o: &UpOptions, say: &mut dyn FnMut(&str)) -> Result<State> {
    let p = &o.plan;
    if State::load(&p.data_dir)?.is_some() {
        return Err(ClusterError::Exists { name: p.name.clone(), path: State::path(&p.data_dir) });
    }
    let taken = plan::conflicts(p.subnet, &lan::host_addrs()?);
    if !taken.is_empty() {
        return Err(ClusterError::Invalid { what: "LAN subnet", value: p.subnet_cidr(), why: format!("already in use on this host ({}); pick another with --subnet", taken.join(", ")) });
    }
    let mut names = vec![p.lan_netns()];
    names.extend(p.node_plans().into_iter().map(|n| n.netns));
    if let Some(n) = names.iter().find(|n| lan::netns_exists(n)) {
        return Err(ClusterError::Invalid { what: "cluster name", value: p.name.clone(), why: format!("network namespace {n} already exists (another cluster of that name?)") });
    }
    if lan::link_exists(&p.host_link()) {
        return Err(ClusterError::Invalid { what: "cluster name", value: p.name.clone(), why: format!("link {} already exists", p.host_link()) });
    }
    let fresh_dir = !p.data_dir.exists();
    std::fs::create_dir_all(&p.data_dir).map_err(io_err("create the data dir", &p.data_dir))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p.data_dir, std::fs::Permissions::from_mode(0o700)).map_err(io_err("chmod 0700", &p.data_dir))?;
    }
    let mut s = State {
        name: p.name.clone(),
        subnet: p.subnet_cidr(),
        lan: p.lan,
        data_dir: p.data_dir.clone(),
        lan_netns: None,
        host_link: None,
        host_addr: p.host_addr(),
        shared_mount: false,
        cgroup_top: p.cgroup_top(),
        kubeconfig: p.kubeconfig(),
        api_url: format!("https://{}", p.api_listen()),
        server: None,
        kubelet_args: o.kubelet_args.clone(),
        join: None,
        nodes: Vec::new(),
    };
    s.save()?;
    match make(o, &mut s, say) {
        Ok(()) => Ok(s),
        Err(e) => {
            say(&format!("cluster up failed: {e}; removing what it made"));
            for line in teardown(&o.exe, &s) {
                say(&line);
            }
            if fresh_dir && State::load(&p.data_dir).ok().flatten().is_none() {
                let _ = std::fs::remove_dir_all(&p.data_dir);
            }
            Err(e)
        }
    }
}

fn make(o: &UpOptions, s: &mut State, say: &mut dyn FnMut(&str)) -> Result<()> {
    let p = &o.plan;
    let started = Instant::now();
    // the data dir shared with the node agents' mount namespaces (see crate::netns)
    mount(Some(&p.data_dir), &p.data_dir, NONE, MsFlags::MS_BIND, NONE).map_err(|e| ClusterError::Command { cmd: format!("bind-mount {}", p.data_dir.display()), message: e.to_string() })?;
    s.shared_mount = true;
    s.save()?;
    mount(NONE, &p.data_dir, NONE, MsFlags::MS_SHARED, NONE).map_err(|e| ClusterError::Command { cmd: format!("make {} a shared mount", p.data_dir.display()), message: e.to_string() })?;
    s.lan_netns = Some(p.lan_netns());
    s.save()?;
    lan::add_netns(&p.lan_netns())?;
    lan::make_lan(p)?;
    s.host_link = Some(p.host_link());
    s.save()?;
    lan::make_host_link(p)?;
    match p.router_addr() {
        None => say(&format!("LAN {} in netns {}, host {} on {}", p.subnet_cidr(), p.lan_netns(), p.host_addr(), p.host_link())),
        Some(r) => say(&format!(
            "routed LAN {} (a /{} per node) with its router in netns {} ({r} on the host's segment), host {} on {}",
            p.subnet_cidr(),
            plan::SEGMENT_PREFIX,
            p.lan_netns(),
            p.host_addr(),
            p.host_link()
        )),
    }
    let server_dir = p.server_dir();
    std::fs::create_dir_all(&server_dir).map_err(io_err("create", &server_dir))?;
    let mut args: Vec<String> = vec!["server".into(), "--data-dir".into(), server_dir.display().to_string(), "--listen".into(), p.api_listen(), "--tls".into()];
    args.extend(o.server_args.iter().cloned());
    let server = spawn(&o.exe, &args, &p.data_dir.join("server.log"))?;
    say(&format!("control plane: rkube server (pid {}) on {}", server.pid, s.api_url));
    s.server = Some(server.clone());
    s.save()?;
    // the kubelets read the kubeconfig at start
    let deadline = Instant::now() + Duration::from_secs(60);
    while !p.kubeconfig().exists() {
        if !process::alive(&server) {
            return Err(ClusterError::Command { cmd: "rkube server".into(), message: format!("exited; its log:\n{}", tail(&server.log, 20)) });
        }
        if Instant::now() > deadline {
            return Err(ClusterError::Timeout { what: "rkube server writing its kubeconfig".into(), secs: 60, last: tail(&server.log, 5) });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // the nodes join with a bootstrap token, never the admin credential
    s.join = Some(create_join_token(&o.exe, s)?);
    s.save()?;
    say("bootstrap token for the nodes made (`rkube token list`)");
    for np in p.node_plans() {
        let NodePlan { index, name, netns, addr, lan_port, data_dir, bridge, cgroup_root, .. } = np.clone();
        s.nodes.push(NodeState { name, index, netns, addr, lan_port, data_dir, bridge, cgroup_root, netns_made: true, kubelet: None, partitioned: false });
        s.save()?;
        lan::add_netns(&np.netns)?;
        lan::make_node_link(p, &np)?;
        let i = s.nodes.len() - 1;
        let k = start_kubelet(&o.exe, s, &s.nodes[i])?;
        say(&format!("node {} ({}) in netns {}: rkube join (pid {})", np.name, np.addr, np.netns, k.pid));
        s.nodes[i].kubelet = Some(k);
        s.save()?;
    }
    let names: Vec<String> = s.nodes.iter().map(|n| n.name.clone()).collect();
    let snapshot = s.clone();
    crate::ready::wait_ready(
        &p.kubeconfig(),
        &names,
        o.ready_timeout,
        &mut |ready, total| say(&format!("{ready}/{total} nodes Ready ({:.1} s)", started.elapsed().as_secs_f64())),
        &mut || {
            if let Some(sv) = &snapshot.server {
                if !process::alive(sv) {
                    return Err(ClusterError::Command { cmd: "rkube server".into(), message: format!("exited; its log:\n{}", tail(&sv.log, 20)) });
                }
            }
            for n in &snapshot.nodes {
                if let Some(k) = &n.kubelet {
                    if !process::alive(k) {
                        return Err(ClusterError::Command { cmd: format!("rkube kubelet of {}", n.name), message: format!("exited; its log:\n{}", tail(&k.log, 20)) });
                    }
                }
            }
            Ok(())
        },
    )?;
    Ok(())
}

/// Carries out `down` for a loaded state; returns what it did, line by line. The state file is removed only
/// when every step succeeded, so a second `down` retries what failed.
fn teardown(exe: &Path, s: &State) -> Vec<String> {
    let mut out = Vec::new();
    let mut failed = false;
    for step in teardown_steps(s) {
        let r: Result<String> = match &step {
            Step::Stop { what, proc_ } => {
                if process::alive(proc_) {
                    let killed = process::stop(proc_, STOP_GRACE);
                    Ok(format!("stopped {what} (pid {}{})", proc_.pid, if killed { ", killed" } else { "" }))
                } else {
                    Ok(format!("{what} (pid {}) not running", proc_.pid))
                }
            }
            Step::NodeDown { node, netns, data_dir, cgroup_root } => node_down(exe, node, netns, data_dir, cgroup_root),
            Step::DeleteNetns(n) => lan::del_netns(n).map(|_| format!("removed netns {n}")),
            Step::DeleteLink(l) => lan::del_link(l).map(|_| format!("removed link {l}")),
            Step::Unmount(p) => unmount_all(p).map(|_| format!("unmounted {}", p.display())),
            Step::RemoveState(p) => {
                if failed {
                    Ok(format!("kept {} (a step failed: run `rkube cluster down` again)", p.display()))
                } else {
                    remove_data(&s.data_dir).map(|_| format!("removed {}", s.data_dir.display()))
                }
            }
        };
        match r {
            Ok(line) => out.push(line),
            Err(e) => {
                failed = true;
                out.push(format!("error: {e}"));
            }
        }
    }
    out
}

/// `rkube down` for one node, inside its network namespace (made again, empty, if it is gone, so the node's
/// link and table removals never reach the host's).
fn node_down(exe: &Path, node: &str, netns: &str, data_dir: &Path, cgroup_root: &str) -> Result<String> {
    let recreated = !lan::netns_exists(netns);
    if recreated {
        lan::add_netns(netns)?;
    }
    let data = data_dir.display().to_string();
    let out = lan::run(&exe.display().to_string(), &["down", "--netns", netns, "--data-dir", &data, "--cgroup-root", cgroup_root, "--purge"]);
    if recreated {
        let _ = lan::del_netns(netns);
    }
    out.map(|_| format!("node {node}: pods, mounts, cgroups and network removed"))
}

/// Mount points at or under `dir` in this mount namespace, deepest first.
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let canon = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let prefix = canon.to_string_lossy().into_owned();
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut v: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| *m == prefix || m.starts_with(&format!("{prefix}/")))
        .map(PathBuf::from)
        .collect();
    v.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    v.dedup();
    v
}

fn unmount_all(dir: &Path) -> Result<()> {
    for m in mounts_under(dir) {
        umount2(&m, MntFlags::MNT_DETACH).map_err(|e| ClusterError::Command { cmd: format!("umount {}", m.display()), message: e.to_string() })?;
    }
    Ok(())
}

/// Removes the data dir, unless something is still mounted under it (then nothing is removed).
fn remove_data(dir: &Path) -> Result<()> {
    let left = mounts_under(dir);
    if !left.is_empty() {
        return Err(ClusterError::Command { cmd: format!("remove {}", dir.display()), message: format!("still mounted: {left:?}") });
    }
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err("remove", dir)(e)),
        _ => Ok(()),
    }
}

/// `rkube cluster down`: removes everything the state file records. Nothing recorded: nothing to do.
pub fn down(exe: &Path, data_dir: &Path, name: &str) -> Result<Vec<String>> {
    match State::load(data_dir)? {
        None => Ok(vec![format!("no cluster {name:?} at {} (nothing to remove)", data_dir.display())]),
        Some(s) => {
            let lines = teardown(exe, &s);
            if State::load(data_dir).ok().flatten().is_some() {
                return Err(ClusterError::Command { cmd: "rkube cluster down".into(), message: lines.join("\n") });
            }
            Ok(lines)
        }
    }
}

/// `rkube cluster status`: the recorded cluster, with what runs and exists now.
pub fn status(data_dir: &Path, name: &str) -> Result<String> {
    let s = State::load(data_dir)?.ok_or_else(|| ClusterError::NotFound { name: name.to_string(), path: State::path(data_dir) })?;
    let kind = match s.lan {
        plan::Lan::Bridge => "LAN",
        plan::Lan::Routed => "routed LAN",
    };
    let mut out = format!("cluster {} ({kind} {}, data {})\n", s.name, s.subnet, s.data_dir.display());
    let yes = |b: bool| if b { "yes" } else { "no" };
    out += &format!(
        "  LAN netns {}: {}; host link {} {}: {}\n",
        s.lan_netns.as_deref().unwrap_or("-"),
        yes(s.lan_netns.as_deref().is_some_and(lan::netns_exists)),
        s.host_link.as_deref().unwrap_or("-"),
        s.host_addr,
        yes(s.host_link.as_deref().is_some_and(lan::link_exists))
    );
    match &s.server {
        Some(p) => out += &format!("  server: pid {} {} ({}), API {}\n", p.pid, if process::alive(p) { "running" } else { "not running" }, p.log.display(), s.api_url),
        None => out += "  server: not started\n",
    }
    out += &format!("  kubeconfig: {}\n", s.kubeconfig.display());
    for n in &s.nodes {
        let agent = match &n.kubelet {
            Some(k) if process::alive(k) => format!("kubelet pid {} running", k.pid),
            Some(k) => format!("kubelet pid {} not running", k.pid),
            None => "kubelet stopped".into(),
        };
        out += &format!(
            "  node {} {} netns {} ({}) bridge {} cgroup {}: {}{}\n",
            n.name,
            n.addr,
            n.netns,
            if lan::netns_exists(&n.netns) { "exists" } else { "missing" },
            n.bridge,
            n.cgroup_root,
            agent,
            if n.partitioned { ", PARTITIONED" } else { "" }
        );
    }
    Ok(out)
}

/// `rkube cluster node stop|start|partition|heal NODE`.
pub fn node_action(exe: &Path, data_dir: &Path, name: &str, node: &str, action: NodeAction) -> Result<String> {
    let mut s = State::load(data_dir)?.ok_or_else(|| ClusterError::NotFound { name: name.to_string(), path: State::path(data_dir) })?;
    let i = s.node(node)?;
    let n = s.nodes[i].clone();
    let msg = match action {
        NodeAction::Stop => match &n.kubelet {
            Some(k) if process::alive(k) => {
                process::stop(k, STOP_GRACE);
                s.nodes[i].kubelet = None;
                format!("stopped the kubelet of {} (pid {}); its pods keep running", n.name, k.pid)
            }
            _ => {
                s.nodes[i].kubelet = None;
                format!("the kubelet of {} is not running", n.name)
            }
        },
        NodeAction::Start => {
            if let Some(k) = n.kubelet.as_ref().filter(|k| process::alive(k)) {
                return Err(ClusterError::Invalid { what: "node", value: n.name.clone(), why: format!("its kubelet already runs (pid {})", k.pid) });
            }
            let k = start_kubelet(exe, &s, &n)?;
            s.nodes[i].kubelet = Some(k.clone());
            format!("started the kubelet of {} (pid {}, log {})", n.name, k.pid, k.log.display())
        }
        NodeAction::Partition | NodeAction::Heal => {
            let lan_ns = s.lan_netns.clone().unwrap_or_default();
            let up = action == NodeAction::Heal;
            lan::set_port(&lan_ns, &n.lan_port, up)?;
            s.nodes[i].partitioned = !up;
            format!("{} {}: LAN port {} {}", if up { "healed" } else { "partitioned" }, n.name, n.lan_port, if up { "up" } else { "down" })
        }
    };
    s.save()?;
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::JoinCreds;

    #[test]
    fn a_node_joins_with_the_token_first_and_restarts_with_its_own_credential() {
        let p = Plan::new("c", plan::DEFAULT_SUBNET, 2, Some(Path::new("/d"))).expect("plan");
        let np = p.node(2);
        let n = NodeState {
            name: np.name, index: 2, netns: np.netns, addr: np.addr, lan_port: np.lan_port, data_dir: np.data_dir,
            bridge: np.bridge, cgroup_root: np.cgroup_root, netns_made: true, kubelet: None, partitioned: false,
        };
        let mut s = State {
            name: "c".into(), subnet: p.subnet_cidr(), lan: p.lan, data_dir: p.data_dir.clone(), lan_netns: None, host_link: None,
            host_addr: p.host_addr(), shared_mount: false, cgroup_top: p.cgroup_top(), kubeconfig: p.kubeconfig(),
            api_url: "https://172.28.0.1:6443".into(), server: None, kubelet_args: vec!["--eviction-hard=x".into()], join: None,
            nodes: vec![n.clone()],
        };
        let err = agent_args(&s, &n, false).expect_err("no token").to_string();
        assert!(err.contains("no join token"), "{err}");
        s.join = Some(JoinCreds { server: "https://172.28.0.1:6443".into(), token: "abcdef.0123456789abcdef".into(), ca_cert_hash: "sha256:ab".into() });
        let first = agent_args(&s, &n, false).expect("join").join(" ");
        assert!(first.starts_with("join --server https://172.28.0.1:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash sha256:ab --netns rkc-c-n2 --data-dir /d/c-n2 "), "{first}");
        let again = agent_args(&s, &n, true).expect("kubelet").join(" ");
        assert!(again.starts_with("kubelet --kubeconfig /d/c-n2/kubelet.conf --netns rkc-c-n2 "), "{again}");
        for a in [&first, &again] {
            assert!(!a.contains("server/kubeconfig"), "never the admin kubeconfig: {a}");
            assert!(a.contains("--node-name c-n2 --node-ip 172.28.0.12 --bridge c-br2 --cgroup-root rkc-c/n2 --dns-upstream none --eviction-hard=x"), "{a}");
        }
    }
}
