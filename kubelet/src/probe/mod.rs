//! Liveness, readiness and startup probes: exec (in the container through the runtime), httpGet and
//! tcpSocket (against the pod IP), with initialDelaySeconds, periodSeconds, timeoutSeconds, successThreshold
//! and failureThreshold. The pod worker runs due probes on its own thread and reads the verdicts.

pub mod exec;
pub mod http;
pub mod tcp;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{Container, ExecAction, HTTPGetAction, LifecycleHandler, Probe, TCPSocketAction};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::runtime_client::RuntimeClient;

/// Which of a container's three probes; each keeps its own counters and verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    /// Failing (failureThreshold times in a row) gets the container killed and restarted.
    Liveness,
    /// Gates the container's (and so the pod's) Ready condition, and with it the Service endpoints.
    Readiness,
    /// Holds off the other two until it succeeds once; failing it kills the container like liveness.
    Startup,
}

#[derive(Clone, Debug, Default)]
struct ProbeState {
    last_run: Option<Instant>,
    successes: i32,
    failures: i32,
    /// Current verdict after thresholds; None until decided.
    result: Option<bool>,
}

/// Probe state of one pod's containers.
#[derive(Debug, Default)]
pub struct Prober {
    state: HashMap<(String, ProbeKind), ProbeState>,
}

fn probe_of(c: &Container, kind: ProbeKind) -> Option<&Probe> {
    match kind {
        ProbeKind::Liveness => c.liveness_probe.as_ref(),
        ProbeKind::Readiness => c.readiness_probe.as_ref(),
        ProbeKind::Startup => c.startup_probe.as_ref(),
    }
}

fn secs(v: Option<i32>, default: i32) -> Duration {
    Duration::from_secs(v.unwrap_or(default).max(0) as u64)
}

/// Resolves a probe port (number or the name of a container port).
pub fn resolve_port(c: &Container, port: &IntOrString) -> Option<u16> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).ok(),
        IntOrString::String(s) => s.parse().ok().or_else(|| {
            c.ports.as_deref()?.iter().find(|p| p.name.as_deref() == Some(s)).and_then(|p| u16::try_from(p.container_port).ok())
        }),
    }
}

/// Runs one probe once: (success, message).
pub fn run_once(p: &Probe, c: &Container, container_id: &str, pod_ip: &str, runtime: &dyn RuntimeClient) -> (bool, String) {
    let timeout = secs(p.timeout_seconds, 1).max(Duration::from_secs(1));
    let action = Action { exec: p.exec.as_ref(), http_get: p.http_get.as_ref(), tcp_socket: p.tcp_socket.as_ref() };
    action.run(c, container_id, pod_ip, runtime, timeout)
}

/// Runs a postStart or preStop handler once: (success, message). Upstream runs the same three actions a probe
/// has; an exec hook fails on a non-zero exit, an httpGet hook on a status outside 200-399.
pub fn run_hook(h: &LifecycleHandler, c: &Container, container_id: &str, pod_ip: &str, runtime: &dyn RuntimeClient, timeout: Duration) -> (bool, String) {
    if let Some(sleep) = &h.sleep {
        // upstream's sleep action (1.29+): the kubelet waits, cut short by the hook's time budget (for preStop,
        // what is left of the grace period); a negative duration is refused by validation, here it is zero
        let wanted = Duration::from_secs(u64::try_from(sleep.seconds).unwrap_or(0));
        std::thread::sleep(wanted.min(timeout));
        return (true, String::new());
    }
    let action = Action { exec: h.exec.as_ref(), http_get: h.http_get.as_ref(), tcp_socket: h.tcp_socket.as_ref() };
    action.run(c, container_id, pod_ip, runtime, timeout)
}

/// What a probe and a lifecycle handler have in common.
struct Action<'a> {
    exec: Option<&'a ExecAction>,
    http_get: Option<&'a HTTPGetAction>,
    tcp_socket: Option<&'a TCPSocketAction>,
}

impl Action<'_> {
    fn run(&self, c: &Container, container_id: &str, pod_ip: &str, runtime: &dyn RuntimeClient, timeout: Duration) -> (bool, String) {
        if let Some(e) = self.exec {
            return exec::probe(runtime, container_id, e.command.as_deref().unwrap_or(&[]), timeout);
        }
        if let Some(h) = self.http_get {
            let Some(port) = resolve_port(c, &h.port) else { return (false, format!("invalid port {:?}", h.port)) };
            let host = h.host.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| pod_ip.to_string());
            let headers: Vec<(String, String)> =
                h.http_headers.as_deref().unwrap_or(&[]).iter().map(|h| (h.name.clone(), h.value.clone())).collect();
            return http::probe(&host, port, h.path.as_deref().unwrap_or("/"), &headers, timeout);
        }
        if let Some(t) = self.tcp_socket {
            let Some(port) = resolve_port(c, &t.port) else { return (false, format!("invalid port {:?}", t.port)) };
            let host = t.host.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| pod_ip.to_string());
            return tcp::probe(&host, port, timeout);
        }
        (true, String::new())
    }
}

impl Prober {
    /// (ready, started, unhealthy) of container `name` per its probes so far.
    pub fn results(&self, name: &str, c: Option<&Container>) -> (bool, bool, bool) {
        let Some(c) = c else { return (true, true, false) };
        let get = |k| self.state.get(&(name.to_string(), k));
        let started = match c.startup_probe {
            Some(_) => get(ProbeKind::Startup).and_then(|s| s.result) == Some(true),
            None => true,
        };
        let ready = started
            && match c.readiness_probe {
                Some(_) => get(ProbeKind::Readiness).and_then(|s| s.result) == Some(true),
                None => true,
            };
        let live_failed = c.liveness_probe.is_some() && get(ProbeKind::Liveness).and_then(|s| s.result) == Some(false);
        let startup_failed = c.startup_probe.is_some() && get(ProbeKind::Startup).and_then(|s| s.result) == Some(false);
        (ready, started, live_failed || startup_failed)
    }

    /// Runs every probe of `c` that is due; returns the outcome of each run.
    pub fn run_due(
        &mut self,
        c: &Container,
        container_id: &str,
        started_at: DateTime<Utc>,
        pod_ip: &str,
        runtime: &dyn RuntimeClient,
    ) -> Vec<(ProbeKind, (bool, String))> {
        let mut out = Vec::new();
        let running_for = (Utc::now() - started_at).to_std().unwrap_or_default();
        let started = self.results(&c.name, Some(c)).1;
        for kind in [ProbeKind::Startup, ProbeKind::Liveness, ProbeKind::Readiness] {
            let Some(p) = probe_of(c, kind) else { continue };
            if kind != ProbeKind::Startup && !started {
                continue;
            }
            if kind == ProbeKind::Startup && started {
                continue;
            }
            if running_for < secs(p.initial_delay_seconds, 0) {
                continue;
            }
            let st = self.state.entry((c.name.clone(), kind)).or_default();
            if let Some(last) = st.last_run {
                if last.elapsed() < secs(p.period_seconds, 10) {
                    continue;
                }
            }
            st.last_run = Some(Instant::now());
            let outcome = run_once(p, c, container_id, pod_ip, runtime);
            let success_threshold = if kind == ProbeKind::Readiness { p.success_threshold.unwrap_or(1) } else { 1 };
            let failure_threshold = p.failure_threshold.unwrap_or(3);
            if outcome.0 {
                st.successes += 1;
                st.failures = 0;
                if st.successes >= success_threshold {
                    st.result = Some(true);
                }
            } else {
                st.failures += 1;
                st.successes = 0;
                if st.failures >= failure_threshold {
                    st.result = Some(false);
                }
            }
            out.push((kind, outcome));
        }
        out
    }

    /// How long until the next probe may be due (None without probes).
    pub fn next_due(&self) -> Option<Duration> {
        if self.state.is_empty() {
            None
        } else {
            Some(Duration::from_millis(200))
        }
    }

    /// The container is gone: its next instance starts with fresh probe state.
    pub fn forget(&mut self, name: &str) {
        self.state.retain(|(n, _), _| n != name);
    }
}

#[cfg(test)]
mod hook_tests {
    use super::*;
    use k8s_openapi::api::core::v1::SleepAction;

    #[test]
    fn sleep_hook_waits_its_seconds_but_not_past_the_budget() {
        let rt = crate::runtime_client::fake::FakeRuntime::default();
        let c = Container { name: "c".into(), ..Default::default() };
        let h = LifecycleHandler { sleep: Some(SleepAction { seconds: 1 }), ..Default::default() };
        let t = Instant::now();
        assert_eq!(run_hook(&h, &c, "id", "127.0.0.1", &rt, Duration::from_secs(30)), (true, String::new()));
        assert!(t.elapsed() >= Duration::from_secs(1), "slept {:?}", t.elapsed());
        let h = LifecycleHandler { sleep: Some(SleepAction { seconds: 3600 }), ..Default::default() };
        let t = Instant::now();
        assert!(run_hook(&h, &c, "id", "127.0.0.1", &rt, Duration::from_millis(50)).0);
        assert!(t.elapsed() < Duration::from_secs(5), "the budget cuts a long sleep short: {:?}", t.elapsed());
    }
}
