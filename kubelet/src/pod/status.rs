//! Pod status from observations: phase, conditions, container statuses with Kubernetes' reasons. Pure; the
//! status syncer sends the result to the apiserver when it differs from what is there.

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{
    Container, ContainerState as K8sState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, Pod, PodCondition, PodIP, PodStatus, HostIP,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::backoff::Backoff;
use super::lifecycle::{
    init_progress, is_terminal, should_restart, ContainerState, InitProgress, Observed, SandboxState,
};

/// Pod phase: not every container has started yet (sandbox, images, init containers).
pub const PENDING: &str = "Pending";
/// Pod phase: every container was started; at least one runs or will restart.
pub const RUNNING: &str = "Running";
/// Pod phase: every container exited 0 and none will restart. Terminal.
pub const SUCCEEDED: &str = "Succeeded";
/// Pod phase: every container has ended, at least one in failure and not to restart, or the pod was evicted.
/// Terminal.
pub const FAILED: &str = "Failed";

fn policy(pod: &Pod) -> &str {
    pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()).unwrap_or("Always")
}

/// The pod's phase, following upstream's rules: a container waiting to restart after a crash counts as
/// stopped, not waiting; all stopped under Always is still Running.
pub fn phase(pod: &Pod, observed: &Observed) -> &'static str {
    if observed.evicted.is_some() {
        return FAILED;
    }
    match init_progress(pod, observed) {
        InitProgress::Failed(_) => return FAILED,
        InitProgress::Pending(_) => return PENDING,
        InitProgress::Done => {}
    }
    let cs = pod.spec.as_ref().map(|s| s.containers.as_slice()).unwrap_or(&[]);
    if cs.is_empty() {
        return PENDING;
    }
    let (mut running, mut waiting, mut stopped, mut failed) = (0, 0, 0, 0);
    for c in cs {
        match observed.containers.get(&c.name).map(|o| &o.state) {
            Some(ContainerState::Running { .. }) => running += 1,
            Some(ContainerState::Exited { exit_code, .. }) => {
                stopped += 1;
                if *exit_code != 0 {
                    failed += 1;
                }
            }
            _ => waiting += 1,
        }
    }
    if waiting > 0 {
        return PENDING;
    }
    if running > 0 {
        return RUNNING;
    }
    debug_assert_eq!(stopped, cs.len());
    if is_terminal(pod, observed) {
        if failed > 0 {
            FAILED
        } else {
            SUCCEEDED
        }
    } else {
        // restarting under Always / OnFailure
        RUNNING
    }
}

fn ts(t: DateTime<Utc>) -> Time {
    crate::time::to_k8s(t)
}

/// Status of one container (init or regular).
fn container_status(
    c: &Container,
    init: bool,
    pod: &Pod,
    observed: &Observed,
    backoff: &Backoff,
    now: DateTime<Utc>,
    waiting_for_init: bool,
) -> ContainerStatus {
    let o = observed.containers.get(&c.name);
    let mut st = ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone().unwrap_or_default(),
        image_id: o.map(|o| o.image_id.clone()).unwrap_or_default(),
        container_id: o.map(|o| format!("rkube://{}", o.state.id())),
        restart_count: o.map(|o| o.restart_count).unwrap_or(0),
        ready: false,
        started: Some(false),
        ..Default::default()
    };
    let waiting = |reason: &str, message: Option<String>| K8sState {
        waiting: Some(ContainerStateWaiting { reason: Some(reason.to_string()), message }),
        ..Default::default()
    };
    if let Some(f) = observed.failures.get(&c.name) {
        let reason = if now < f.retry_at() && f.attempts > 1 { f.kind.backoff_reason() } else { f.kind.reason() };
        // a failed mount shows as plain ContainerCreating (the reason is in the FailedMount events)
        let message = match (f.kind, reason) {
            (super::lifecycle::FailureKind::Mount, _) => None,
            // upstream (1.30+) carries the last pull error into the back-off message
            (_, "ImagePullBackOff") => {
                Some(format!("Back-off pulling image \"{}\": ErrImagePull: {}", c.image.as_deref().unwrap_or(""), f.message))
            }
            _ => Some(f.message.clone()),
        };
        st.state = Some(waiting(reason, message));
        if let Some(ContainerState::Exited { .. }) = o.map(|o| &o.state) {
            st.last_state = o.map(|o| terminated(&o.state));
        }
        return st;
    }
    let Some(o) = o else {
        let reason = if waiting_for_init { "PodInitializing" } else { "ContainerCreating" };
        st.state = Some(waiting(reason, None));
        return st;
    };
    // the previous instance's end, as upstream reports it for a restarted container; replaced below by the
    // current instance's while that one waits to be restarted
    st.last_state = o.last_exit.as_ref().map(terminated);
    match &o.state {
        ContainerState::Created { .. } => st.state = Some(waiting("ContainerCreating", None)),
        ContainerState::Running { started_at, .. } => {
            st.state = Some(K8sState {
                running: Some(ContainerStateRunning { started_at: Some(ts(*started_at)) }),
                ..Default::default()
            });
            st.started = Some(o.started);
            st.ready = o.ready && o.started && !init;
        }
        ContainerState::Exited { exit_code, finished_at, .. } => {
            let restarts = if init { *exit_code != 0 && policy(pod) != "Never" } else { should_restart(policy(pod), *exit_code) };
            let in_backoff = backoff
                .current(&c.name)
                .map(|d| now < *finished_at + chrono::Duration::from_std(d).unwrap_or_default())
                .unwrap_or(false);
            if restarts && in_backoff && !is_terminal(pod, observed) {
                let delay = backoff.current(&c.name).map(|d| d.as_secs()).unwrap_or(10);
                let pod_name = pod.metadata.name.as_deref().unwrap_or("");
                let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
                let uid = pod.metadata.uid.as_deref().unwrap_or("");
                st.state = Some(waiting(
                    "CrashLoopBackOff",
                    Some(format!(
                        "back-off {delay}s restarting failed container={} pod={pod_name}_{ns}({uid})",
                        c.name
                    )),
                ));
                st.last_state = Some(terminated(&o.state));
            } else {
                st.state = Some(terminated(&o.state));
            }
        }
    }
    st
}

/// The `terminated` state Kubernetes reports for an exit: reason OOMKilled, Completed or Error.
pub fn terminated(state: &ContainerState) -> K8sState {
    match state {
        ContainerState::Exited { id, exit_code, started_at, finished_at, oom_killed, message } => {
            let reason = if *oom_killed {
                "OOMKilled"
            } else if *exit_code == 0 {
                "Completed"
            } else {
                "Error"
            };
            K8sState {
                terminated: Some(ContainerStateTerminated {
                    container_id: Some(format!("rkube://{id}")),
                    exit_code: *exit_code,
                    reason: Some(reason.to_string()),
                    message: message.clone(),
                    started_at: started_at.map(ts),
                    finished_at: Some(ts(*finished_at)),
                    signal: None,
                }),
                ..Default::default()
            }
        }
        _ => K8sState::default(),
    }
}

/// Keeps `lastTransitionTime` of a condition whose status did not change.
fn condition(previous: Option<&PodStatus>, type_: &str, ok: bool, reason: Option<&str>, now: DateTime<Utc>) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    let last = previous
        .and_then(|p| p.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == type_))
        .filter(|c| c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or(ts(now));
    PodCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        last_transition_time: Some(last),
        reason: if ok { None } else { reason.map(str::to_string) },
        ..Default::default()
    }
}

/// Inputs that come from the node rather than the pod.
#[derive(Clone, Debug, Default)]
pub struct NodeFacts {
    /// The node's IP: the status's hostIP and hostIPs.
    pub host_ip: String,
}

/// The whole status of `pod`. `pod.status` (as last reported) keeps condition transition times and startTime.
pub fn pod_status(pod: &Pod, observed: &Observed, backoff: &Backoff, node: &NodeFacts, now: DateTime<Utc>) -> PodStatus {
    let prev = pod.status.as_ref();
    let spec = pod.spec.as_ref();
    let inits = spec.and_then(|s| s.init_containers.as_deref()).unwrap_or(&[]);
    let regular = spec.map(|s| s.containers.as_slice()).unwrap_or(&[]);
    let progress = init_progress(pod, observed);
    let initialized = progress == InitProgress::Done;
    let waiting_for_init = !initialized;
    let init_statuses: Vec<ContainerStatus> =
        inits.iter().map(|c| container_status(c, true, pod, observed, backoff, now, false)).collect();
    let statuses: Vec<ContainerStatus> =
        regular.iter().map(|c| container_status(c, false, pod, observed, backoff, now, waiting_for_init)).collect();
    let phase = phase(pod, observed);
    let containers_ready = !statuses.is_empty() && statuses.iter().all(|s| s.ready);
    let terminal = phase == SUCCEEDED || phase == FAILED;
    let pod_ip = match &observed.sandbox {
        SandboxState::Ready { ip, .. } => ip.clone(),
        _ => prev.and_then(|p| p.pod_ip.clone()).filter(|_| terminal),
    };
    let sandbox_ready = matches!(observed.sandbox, SandboxState::Ready { .. });
    let mut conditions = vec![
        condition(prev, "PodReadyToStartContainers", sandbox_ready, None, now),
        condition(prev, "Initialized", initialized, Some("ContainersNotInitialized"), now),
        condition(prev, "Ready", containers_ready, Some(if terminal { "PodCompleted" } else { "ContainersNotReady" }), now),
        condition(prev, "ContainersReady", containers_ready, Some(if terminal { "PodCompleted" } else { "ContainersNotReady" }), now),
        condition(prev, "PodScheduled", true, None, now),
    ];
    if !initialized {
        let names: Vec<&str> = inits
            .iter()
            .filter(|c| !matches!(observed.containers.get(&c.name).map(|o| &o.state), Some(ContainerState::Exited { exit_code: 0, .. })))
            .map(|c| c.name.as_str())
            .collect();
        conditions[1].message = Some(format!("containers with incomplete status: [{}]", names.join(" ")));
    }
    if !containers_ready && !terminal {
        let names: Vec<&str> = statuses.iter().filter(|s| !s.ready).map(|s| s.name.as_str()).collect();
        let msg = format!("containers with unready status: [{}]", names.join(" "));
        conditions[2].message = Some(msg.clone());
        conditions[3].message = Some(msg);
    }
    PodStatus {
        phase: Some(phase.to_string()),
        conditions: Some(conditions),
        host_ip: Some(node.host_ip.clone()).filter(|s| !s.is_empty()),
        host_ips: Some(vec![HostIP { ip: node.host_ip.clone() }]).filter(|_| !node.host_ip.is_empty()),
        pod_ip: pod_ip.clone(),
        pod_ips: pod_ip.map(|ip| vec![PodIP { ip }]),
        start_time: Some(prev.and_then(|p| p.start_time.clone()).unwrap_or(ts(now))),
        init_container_statuses: if inits.is_empty() { None } else { Some(init_statuses) },
        container_statuses: Some(statuses),
        qos_class: Some(crate::container::qos::qos_class(pod).as_str().to_string()),
        reason: observed.evicted.as_ref().map(|_| "Evicted".to_string()),
        message: observed.evicted.clone(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::super::lifecycle::tests::{exited, obs, pod, ready_sandbox, running, t};
    use super::super::lifecycle::{step, Failure, FailureKind};
    use super::*;

    fn cond<'a>(s: &'a PodStatus, type_: &str) -> &'a PodCondition {
        s.conditions.as_ref().and_then(|cs| cs.iter().find(|c| c.type_ == type_)).expect("condition")
    }

    fn waiting_reason(s: &ContainerStatus) -> Option<&str> {
        s.state.as_ref()?.waiting.as_ref()?.reason.as_deref()
    }

    fn node() -> NodeFacts {
        NodeFacts { host_ip: "10.200.0.1".into() }
    }

    #[test]
    fn phases() {
        let cases: Vec<(&str, Pod, Observed, &str)> = vec![
            ("nothing yet", pod("Always", &[], &["a"]), Observed::default(), PENDING),
            ("init running", pod("Always", &["i"], &["a"]), obs(ready_sandbox(), &[("i", running(0))]), PENDING),
            ("one of two running", pod("Always", &[], &["a", "b"]), obs(ready_sandbox(), &[("a", running(0))]), PENDING),
            ("all running", pod("Always", &[], &["a", "b"]), obs(ready_sandbox(), &[("a", running(0)), ("b", running(0))]), RUNNING),
            ("crash looping under Always", pod("Always", &[], &["a"]), obs(ready_sandbox(), &[("a", exited(1, 0, 1))]), RUNNING),
            ("all completed under Never", pod("Never", &[], &["a", "b"]), obs(ready_sandbox(), &[("a", exited(0, 0, 1)), ("b", exited(0, 0, 1))]), SUCCEEDED),
            ("one failed under Never", pod("Never", &[], &["a", "b"]), obs(ready_sandbox(), &[("a", exited(0, 0, 1)), ("b", exited(3, 0, 1))]), FAILED),
            ("failed under OnFailure restarts", pod("OnFailure", &[], &["a"]), obs(ready_sandbox(), &[("a", exited(3, 0, 1))]), RUNNING),
            ("completed under OnFailure", pod("OnFailure", &[], &["a"]), obs(ready_sandbox(), &[("a", exited(0, 0, 1))]), SUCCEEDED),
            ("init failed under Never", pod("Never", &["i"], &["a"]), obs(ready_sandbox(), &[("i", exited(1, 0, 1))]), FAILED),
            ("one done one running under Never", pod("Never", &[], &["a", "b"]), obs(ready_sandbox(), &[("a", exited(0, 0, 1)), ("b", running(0))]), RUNNING),
        ];
        for (what, p, o, want) in cases {
            assert_eq!(phase(&p, &o), want, "case: {what}");
        }
    }

    #[test]
    fn running_pod_is_ready_with_ip_and_conditions() {
        let p = pod("Always", &[], &["a"]);
        let s = pod_status(&p, &obs(ready_sandbox(), &[("a", running(0))]), &Backoff::new(), &node(), t(5));
        assert_eq!(s.phase.as_deref(), Some(RUNNING));
        assert_eq!(s.pod_ip.as_deref(), Some("10.88.0.2"));
        assert_eq!(s.host_ip.as_deref(), Some("10.200.0.1"));
        for c in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
            assert_eq!(cond(&s, c).status, "True", "{c}");
        }
        let cs = &s.container_statuses.as_ref().expect("statuses")[0];
        assert!(cs.ready);
        assert_eq!(cs.started, Some(true));
        assert!(cs.state.as_ref().and_then(|s| s.running.as_ref()).is_some());
        assert_eq!(s.qos_class.as_deref(), Some("BestEffort"));
    }

    #[test]
    fn unready_container_makes_pod_unready_with_message() {
        let p = pod("Always", &[], &["a"]);
        let mut o = running(0);
        o.ready = false;
        let s = pod_status(&p, &obs(ready_sandbox(), &[("a", o)]), &Backoff::new(), &node(), t(5));
        assert_eq!(cond(&s, "Ready").status, "False");
        assert_eq!(cond(&s, "Ready").reason.as_deref(), Some("ContainersNotReady"));
        assert_eq!(cond(&s, "Ready").message.as_deref(), Some("containers with unready status: [a]"));
    }

    #[test]
    fn transition_time_kept_while_status_unchanged() {
        let mut p = pod("Always", &[], &["a"]);
        let o = obs(ready_sandbox(), &[("a", running(0))]);
        p.status = Some(pod_status(&p, &o, &Backoff::new(), &node(), t(5)));
        let s = pod_status(&p, &o, &Backoff::new(), &node(), t(50));
        assert_eq!(cond(&s, "Ready").last_transition_time, Some(ts(t(5))));
        assert_eq!(s.start_time, Some(ts(t(5))));
    }

    #[test]
    fn reasons() {
        // init pending: regular containers show PodInitializing
        let p = pod("Always", &["i"], &["a"]);
        let s = pod_status(&p, &obs(ready_sandbox(), &[("i", running(0))]), &Backoff::new(), &node(), t(1));
        assert_eq!(waiting_reason(&s.container_statuses.as_ref().expect("s")[0]), Some("PodInitializing"));
        assert_eq!(cond(&s, "Initialized").message.as_deref(), Some("containers with incomplete status: [i]"));

        // restarted and running again: the last state is the previous instance's end
        let p = pod("Always", &[], &["a"]);
        let mut again = running(5);
        again.restart_count = 1;
        again.last_exit = Some(exited(3, 0, 4).state);
        let s = pod_status(&p, &obs(ready_sandbox(), &[("a", again)]), &Backoff::new(), &node(), t(6));
        let cs = &s.container_statuses.as_ref().expect("s")[0];
        let last = cs.last_state.as_ref().and_then(|l| l.terminated.as_ref()).expect("last state of a restarted container");
        assert_eq!((last.exit_code, last.reason.as_deref(), last.finished_at.clone()), (3, Some("Error"), Some(ts(t(4)))));
        assert!(cs.state.as_ref().and_then(|s| s.running.as_ref()).is_some());
        let first = pod_status(&p, &obs(ready_sandbox(), &[("a", running(5))]), &Backoff::new(), &node(), t(6));
        assert_eq!(first.container_statuses.as_ref().expect("s")[0].last_state, None, "a first instance has none");

        // crash loop: waiting CrashLoopBackOff with last state Error
        let p = pod("Always", &[], &["a"]);
        let mut b = Backoff::new();
        let o = obs(ready_sandbox(), &[("a", exited(1, 0, 1))]);
        step(&p, &o, &mut b, t(2));
        let s = pod_status(&p, &o, &b, &node(), t(2));
        let cs = &s.container_statuses.as_ref().expect("s")[0];
        assert_eq!(waiting_reason(cs), Some("CrashLoopBackOff"));
        let last = cs.last_state.as_ref().and_then(|l| l.terminated.as_ref()).expect("last state");
        assert_eq!((last.exit_code, last.reason.as_deref()), (1, Some("Error")));

        // OOM
        let mut o = obs(ready_sandbox(), &[("a", exited(137, 0, 1))]);
        if let Some(c) = o.containers.get_mut("a") {
            if let ContainerState::Exited { oom_killed, .. } = &mut c.state {
                *oom_killed = true;
            }
        }
        let p = pod("Never", &[], &["a"]);
        let s = pod_status(&p, &o, &Backoff::new(), &node(), t(2));
        let term = s.container_statuses.as_ref().expect("s")[0].state.as_ref().and_then(|s| s.terminated.clone()).expect("terminated");
        assert_eq!((term.exit_code, term.reason.as_deref()), (137, Some("OOMKilled")));
        assert_eq!(s.phase.as_deref(), Some(FAILED));
        assert_eq!(cond(&s, "Ready").reason.as_deref(), Some("PodCompleted"));

        // completed
        let s = pod_status(&p, &obs(ready_sandbox(), &[("a", exited(0, 0, 1))]), &Backoff::new(), &node(), t(2));
        let term = s.container_statuses.as_ref().expect("s")[0].state.as_ref().and_then(|s| s.terminated.clone()).expect("terminated");
        assert_eq!(term.reason.as_deref(), Some("Completed"));

        // start failures: first ErrImagePull, then ImagePullBackOff while waiting
        for (attempts, now, want) in [(1, 1, "ErrImagePull"), (2, 1, "ImagePullBackOff"), (2, 100, "ErrImagePull")] {
            let mut o = obs(ready_sandbox(), &[]);
            o.failures.insert("a".into(), Failure { kind: FailureKind::ImagePull, message: "m".into(), at: t(0), attempts });
            let s = pod_status(&pod("Always", &[], &["a"]), &o, &Backoff::new(), &node(), t(now));
            assert_eq!(waiting_reason(&s.container_statuses.as_ref().expect("s")[0]), Some(want), "attempts {attempts} now {now}");
            // upstream's messages: the pull error as it is, then wrapped in the back-off's
            let p = pod("Always", &[], &["a"]);
            let image = p.spec.as_ref().and_then(|s| s.containers[0].image.clone()).unwrap_or_default();
            let message = s.container_statuses.as_ref().expect("s")[0].state.as_ref().and_then(|s| s.waiting.clone()).and_then(|w| w.message);
            let expected = if want == "ImagePullBackOff" { format!("Back-off pulling image \"{image}\": ErrImagePull: m") } else { "m".into() };
            assert_eq!(message.as_deref(), Some(expected.as_str()), "attempts {attempts} now {now}");
        }
        // evicted: Failed with upstream's reason and message, and nothing restarts even under Always
        let mut o = obs(ready_sandbox(), &[("a", running(0))]);
        o.evicted = Some("Usage of EmptyDir volume \"s\" exceeds the limit \"1Mi\". ".into());
        let p = pod("Always", &[], &["a"]);
        let s = pod_status(&p, &o, &Backoff::new(), &node(), t(1));
        assert_eq!((s.phase.as_deref(), s.reason.as_deref()), (Some(FAILED), Some("Evicted")));
        assert!(s.message.as_deref().unwrap_or("").contains("exceeds the limit"));
        let acts = step(&p, &o, &mut Backoff::new(), t(1));
        assert!(matches!(acts.as_slice(), [crate::pod::lifecycle::Action::KillPod { reason: crate::pod::lifecycle::KillReason::Evicted, .. }]), "{acts:?}");
        let mut stopped = obs(SandboxState::None, &[("a", exited(137, 0, 1))]);
        stopped.evicted = o.evicted.clone();
        assert!(step(&p, &stopped, &mut Backoff::new(), t(2)).is_empty(), "an evicted pod is not restarted");
        for (kind, want) in [
            (FailureKind::CreateConfig, "CreateContainerConfigError"),
            (FailureKind::Create, "CreateContainerError"),
            (FailureKind::Run, "RunContainerError"),
            (FailureKind::Mount, "ContainerCreating"),
            (FailureKind::NeverPull, "ErrImageNeverPull"),
        ] {
            let mut o = obs(ready_sandbox(), &[]);
            o.failures.insert("a".into(), Failure { kind, message: "m".into(), at: t(0), attempts: 1 });
            let s = pod_status(&pod("Always", &[], &["a"]), &o, &Backoff::new(), &node(), t(1));
            let cs = &s.container_statuses.as_ref().expect("s")[0];
            assert_eq!(waiting_reason(cs), Some(want));
            assert_eq!(s.phase.as_deref(), Some(PENDING));
        }
        // a missing image under policy Never is retried but never shown as a pull back-off
        let mut o = obs(ready_sandbox(), &[]);
        let msg = "Container image \"x:1\" is not present with pull policy of Never";
        o.failures.insert("a".into(), Failure { kind: FailureKind::NeverPull, message: msg.into(), at: t(0), attempts: 3 });
        let s = pod_status(&pod("Always", &[], &["a"]), &o, &Backoff::new(), &node(), t(1));
        let cs = &s.container_statuses.as_ref().expect("s")[0];
        let w = cs.state.as_ref().and_then(|s| s.waiting.as_ref()).expect("waiting");
        assert_eq!((w.reason.as_deref(), w.message.as_deref()), (Some("ErrImageNeverPull"), Some(msg)));
    }
}
