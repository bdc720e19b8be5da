//! The pod lifecycle as a pure function: given a pod's spec, what the kubelet observed of its sandbox and
//! containers, and the time, [`step`] says what to do next. It performs no I/O; the pod worker carries out the
//! actions and calls `step` again with what it then observes. Status reporting ([`super::status`]) reads the
//! same observations through the helpers here, so what is reported and what is done cannot disagree.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{Container, Pod};

use super::backoff::{self, Backoff};

/// Default `terminationGracePeriodSeconds`.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// What the runtime reports about the latest instance of one container.
#[derive(Clone, Debug, PartialEq)]
pub enum ContainerState {
    /// Created but not started (a kubelet stopped between create and start).
    Created {
        /// The runtime's container id (`<short pod uid>-<name>-<restart count>`).
        id: String,
    },
    /// Its process runs.
    Running {
        /// The runtime's container id.
        id: String,
        /// When it started.
        started_at: DateTime<Utc>,
    },
    /// Its process has exited.
    Exited {
        /// The runtime's container id.
        id: String,
        /// The exit code (128 + the signal's number when a signal killed it).
        exit_code: i32,
        /// When it started, if it did.
        started_at: Option<DateTime<Utc>>,
        /// When it exited.
        finished_at: DateTime<Utc>,
        /// The kernel's OOM killer ended it (the status's reason `OOMKilled`).
        oom_killed: bool,
        /// Contents of terminationMessagePath, if any.
        message: Option<String>,
    },
}

impl ContainerState {
    /// The instance's container id, whatever its state.
    pub fn id(&self) -> &str {
        match self {
            Self::Created { id } | Self::Running { id, .. } | Self::Exited { id, .. } => id,
        }
    }
}

/// One container as the kubelet sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct ObservedContainer {
    /// What the runtime reports of the latest instance.
    pub state: ContainerState,
    /// How many times the container was restarted (the status's restartCount).
    pub restart_count: i32,
    /// Readiness probe verdict (true when there is no readiness probe and the container runs).
    pub ready: bool,
    /// Startup probe passed (true when there is none and the container runs).
    pub started: bool,
    /// The liveness or startup probe declared the container unhealthy: it must be killed and restarted.
    pub unhealthy: bool,
    /// The image the instance runs, as `<image>@<digest>` (the status's imageID).
    pub image_id: String,
    /// How the instance before this one ended (an `Exited` state), kept across restarts: upstream's lastState.
    pub last_exit: Option<ContainerState>,
}

impl ObservedContainer {
    /// A first instance in `state`: no restarts, not ready, not started, healthy.
    pub fn new(state: ContainerState) -> Self {
        Self { state, restart_count: 0, ready: false, started: false, unhealthy: false, image_id: String::new(), last_exit: None }
    }
}

/// Why starting a container failed; each maps to the waiting reason Kubernetes reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// The image could not be pulled: `ErrImagePull`, then `ImagePullBackOff` while waiting to retry.
    ImagePull,
    /// The image name is not valid: `InvalidImageName` (never retried until the spec changes).
    InvalidImageName,
    /// `imagePullPolicy: Never` and the node lacks the image: `ErrImageNeverPull`, retried (an import may
    /// bring it) without becoming a pull back-off.
    NeverPull,
    /// A referenced ConfigMap/Secret/key is missing: `CreateContainerConfigError`.
    CreateConfig,
    /// The runtime refused to create the container (bad volume, bad hostPath...): `CreateContainerError`.
    Create,
    /// The container was created but its process could not start (command not found): `RunContainerError`.
    Run,
    /// A volume could not be set up (hostPath type check, tmpfs mount): the kubelet's volume manager reports
    /// `FailedMount` events and the container stays `ContainerCreating` until the mount succeeds.
    Mount,
}

impl FailureKind {
    /// The waiting reason reported right after the failure.
    pub fn reason(self) -> &'static str {
        match self {
            Self::ImagePull => "ErrImagePull",
            Self::InvalidImageName => "InvalidImageName",
            Self::NeverPull => "ErrImageNeverPull",
            Self::CreateConfig => "CreateContainerConfigError",
            Self::Create => "CreateContainerError",
            Self::Run => "RunContainerError",
            Self::Mount => "ContainerCreating",
        }
    }

    /// The reason shown while waiting for the retry.
    pub fn backoff_reason(self) -> &'static str {
        match self {
            Self::ImagePull => "ImagePullBackOff",
            Self::Run => "CrashLoopBackOff",
            other => other.reason(),
        }
    }
}

/// The latest failure to start a container, until a start succeeds.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    /// What failed, which sets the waiting reason.
    pub kind: FailureKind,
    /// The error, for the waiting message and the event.
    pub message: String,
    /// When the latest attempt failed.
    pub at: DateTime<Utc>,
    /// Consecutive failures (1 after the first).
    pub attempts: u32,
}

impl Failure {
    /// When the next attempt may start: [`Failure::at`] plus the [`backoff::retry_delay`] of `attempts`.
    pub fn retry_at(&self) -> DateTime<Utc> {
        self.at + chrono::Duration::from_std(backoff::retry_delay(self.attempts)).unwrap_or_default()
    }
}

/// The pod sandbox as observed.
#[derive(Clone, Debug, PartialEq)]
pub enum SandboxState {
    /// No sandbox: none made yet, or it was torn down.
    None,
    /// The sandbox process runs.
    Ready {
        /// The sandbox's id in the runtime.
        id: String,
        /// The pod IP: CNI's, or the node IP with hostNetwork; None until the network is attached.
        ip: Option<String>,
    },
    /// The sandbox process died or its network is gone: everything in it must be restarted.
    NotReady {
        /// The sandbox's id in the runtime.
        id: String,
    },
}

/// Everything the kubelet knows about one pod's runtime state.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    /// The pod's sandbox: none, running, or dead.
    pub sandbox: SandboxState,
    /// Latest instance of each container (init and regular share one namespace of names).
    pub containers: HashMap<String, ObservedContainer>,
    /// Latest start failure of each container that has not started since.
    pub failures: HashMap<String, Failure>,
    /// The kubelet evicted the pod (a disk emptyDir over its sizeLimit): the message. Final: nothing restarts.
    pub evicted: Option<String>,
}

impl Default for Observed {
    fn default() -> Self {
        Self { sandbox: SandboxState::None, containers: HashMap::new(), failures: HashMap::new(), evicted: None }
    }
}

/// Why a container or pod is being killed (also the event message).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KillReason {
    /// The pod was deleted.
    PodDeleted,
    /// Every container finished and none will restart: reclaim the sandbox.
    PodCompleted,
    /// The sandbox died; containers must move to a new one.
    SandboxChanged,
    /// A liveness or startup probe failed.
    Unhealthy,
    /// Container processes were found without a ready sandbox.
    Orphaned,
    /// The kubelet evicted the pod.
    Evicted,
}

/// One thing to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Create the sandbox (namespaces + network).
    CreateSandbox,
    /// Stop every container (SIGTERM, `grace`, SIGKILL, preStop hooks first), then the sandbox.
    KillPod {
        /// How long each container gets between SIGTERM and SIGKILL.
        grace: Duration,
        /// Why.
        reason: KillReason,
    },
    /// Ensure the image, create and start this container in the sandbox (removing an older instance).
    StartContainer {
        /// The container's name.
        name: String,
        /// It is an init container (they run one at a time, in order, before the others).
        init: bool,
    },
    /// Stop one container (preStop, SIGTERM, `grace`, SIGKILL).
    KillContainer {
        /// The container's name.
        name: String,
        /// How long it gets between SIGTERM and SIGKILL.
        grace: Duration,
        /// Why.
        reason: KillReason,
    },
    /// Nothing to do for `name` before `until` (CrashLoopBackOff, ImagePullBackOff...).
    BackOff {
        /// The container's name.
        name: String,
        /// When it may be started again.
        until: DateTime<Utc>,
        /// The waiting reason shown meanwhile.
        reason: &'static str,
    },
    /// The pod is deleted and nothing of it runs any more: remove it from the apiserver and forget it.
    Finalize,
}

fn restart_policy(pod: &Pod) -> &str {
    pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()).unwrap_or("Always")
}

fn containers(pod: &Pod) -> &[Container] {
    pod.spec.as_ref().map(|s| s.containers.as_slice()).unwrap_or(&[])
}

fn init_containers(pod: &Pod) -> &[Container] {
    pod.spec.as_ref().and_then(|s| s.init_containers.as_deref()).unwrap_or(&[])
}

/// Grace period for stopping: the deletion's own, else the spec's, else 30 s.
pub fn grace_period(pod: &Pod) -> Duration {
    let secs = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
        .unwrap_or(DEFAULT_GRACE.as_secs() as i64);
    Duration::from_secs(secs.max(0) as u64)
}

/// Whether a regular container that exited with `exit_code` is restarted under the pod's restart policy.
pub fn should_restart(policy: &str, exit_code: i32) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => exit_code != 0,
        _ => true,
    }
}

/// Where an init container stands.
#[derive(Clone, Debug, PartialEq)]
pub enum InitProgress {
    /// Every init container exited 0.
    Done,
    /// Init container `index` has to run (or is running, or waits for a retry).
    Pending(usize),
    /// Init container `index` failed and the pod's restartPolicy is Never: the pod has failed.
    Failed(usize),
}

/// Progress of the init containers (they run one at a time, in order).
pub fn init_progress(pod: &Pod, observed: &Observed) -> InitProgress {
    let never = restart_policy(pod) == "Never";
    for (i, c) in init_containers(pod).iter().enumerate() {
        match observed.containers.get(&c.name).map(|o| &o.state) {
            Some(ContainerState::Exited { exit_code: 0, .. }) => continue,
            Some(ContainerState::Exited { .. }) if never => return InitProgress::Failed(i),
            // A container that never ran (config error, pull error) is retried whatever the policy, as upstream.
            _ => return InitProgress::Pending(i),
        }
    }
    InitProgress::Done
}

/// True when every regular container has exited and none will be restarted (or init failed under Never).
pub fn is_terminal(pod: &Pod, observed: &Observed) -> bool {
    if let InitProgress::Failed(_) = init_progress(pod, observed) {
        return true;
    }
    let policy = restart_policy(pod);
    let cs = containers(pod);
    !cs.is_empty()
        && cs.iter().all(|c| match observed.containers.get(&c.name).map(|o| &o.state) {
            Some(ContainerState::Exited { exit_code, .. }) => !should_restart(policy, *exit_code),
            _ => false,
        })
}

/// What to do with a container that has not started yet, or exited: start now, wait, or nothing.
fn start_or_wait(
    name: &str,
    init: bool,
    restartable: bool,
    observed: &Observed,
    backoff: &mut Backoff,
    now: DateTime<Utc>,
) -> Option<Action> {
    if let Some(f) = observed.failures.get(name) {
        if f.kind == FailureKind::InvalidImageName {
            return None;
        }
        let until = f.retry_at();
        if now < until {
            return Some(Action::BackOff { name: name.to_string(), until, reason: f.kind.backoff_reason() });
        }
        return Some(Action::StartContainer { name: name.to_string(), init });
    }
    match observed.containers.get(name).map(|o| &o.state) {
        None | Some(ContainerState::Created { .. }) => {
            Some(Action::StartContainer { name: name.to_string(), init })
        }
        Some(ContainerState::Running { .. }) => None,
        Some(ContainerState::Exited { started_at, finished_at, .. }) => {
            if !restartable {
                return None;
            }
            let delay = backoff.delay_for(name, *started_at, *finished_at);
            let until = *finished_at + chrono::Duration::from_std(delay).unwrap_or_default();
            if now < until {
                Some(Action::BackOff { name: name.to_string(), until, reason: "CrashLoopBackOff" })
            } else {
                Some(Action::StartContainer { name: name.to_string(), init })
            }
        }
    }
}

fn anything_running(observed: &Observed) -> bool {
    observed.containers.values().any(|o| !matches!(o.state, ContainerState::Exited { .. }))
}

/// The next actions for `pod`. An empty list means: nothing to do until something changes.
/// `backoff` records restart delays per exit (deterministically; calling twice for one exit is harmless).
pub fn step(pod: &Pod, observed: &Observed, backoff: &mut Backoff, now: DateTime<Utc>) -> Vec<Action> {
    let grace = grace_period(pod);
    // Deleted: stop everything, then finalize.
    if pod.metadata.deletion_timestamp.is_some() {
        if observed.sandbox != SandboxState::None || anything_running(observed) {
            return vec![Action::KillPod { grace, reason: KillReason::PodDeleted }];
        }
        return vec![Action::Finalize];
    }
    // Evicted: stop everything, keep the status (Failed, Evicted); the pod's controller replaces it.
    if observed.evicted.is_some() {
        if observed.sandbox != SandboxState::None || anything_running(observed) {
            return vec![Action::KillPod { grace, reason: KillReason::Evicted }];
        }
        return Vec::new();
    }
    // Finished: reclaim the sandbox, keep the status.
    if is_terminal(pod, observed) {
        if observed.sandbox != SandboxState::None || anything_running(observed) {
            return vec![Action::KillPod { grace, reason: KillReason::PodCompleted }];
        }
        return Vec::new();
    }
    match &observed.sandbox {
        SandboxState::None => {
            if anything_running(observed) {
                return vec![Action::KillPod { grace, reason: KillReason::Orphaned }];
            }
            return vec![Action::CreateSandbox];
        }
        SandboxState::NotReady { .. } => {
            return vec![Action::KillPod { grace, reason: KillReason::SandboxChanged }];
        }
        SandboxState::Ready { .. } => {}
    }
    // Init containers, one at a time. A failed init container restarts unless the policy is Never.
    match init_progress(pod, observed) {
        InitProgress::Done => {}
        InitProgress::Failed(_) => return Vec::new(),
        InitProgress::Pending(i) => {
            let c = &init_containers(pod)[i];
            return start_or_wait(&c.name, true, true, observed, backoff, now).into_iter().collect();
        }
    }
    let policy = restart_policy(pod);
    let mut actions = Vec::new();
    for c in containers(pod) {
        let obs = observed.containers.get(&c.name);
        if let Some(o) = obs {
            if let ContainerState::Running { .. } = o.state {
                if o.unhealthy {
                    actions.push(Action::KillContainer { name: c.name.clone(), grace, reason: KillReason::Unhealthy });
                }
                continue;
            }
        }
        let restartable = match obs.map(|o| &o.state) {
            Some(ContainerState::Exited { exit_code, .. }) => should_restart(policy, *exit_code),
            _ => true,
        };
        if let Some(a) = start_or_wait(&c.name, false, restartable, observed, backoff, now) {
            actions.push(a);
        }
    }
    actions
}

/// The earliest time a `BackOff` in `actions` ends: when the worker must call `step` again.
pub fn next_wakeup(actions: &[Action]) -> Option<DateTime<Utc>> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::BackOff { until, .. } => Some(*until),
            _ => None,
        })
        .min()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::TimeZone;
    use k8s_openapi::api::core::v1::PodSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    pub fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + secs, 0).single().expect("valid time")
    }

    pub fn pod(policy: &str, init: &[&str], regular: &[&str]) -> Pod {
        let mk = |n: &&str| Container { name: n.to_string(), image: Some("busybox".into()), ..Default::default() };
        Pod {
            metadata: ObjectMeta { name: Some("p".into()), namespace: Some("default".into()), ..Default::default() },
            spec: Some(PodSpec {
                restart_policy: Some(policy.into()),
                init_containers: if init.is_empty() { None } else { Some(init.iter().map(mk).collect()) },
                containers: regular.iter().map(mk).collect(),
                ..Default::default()
            }),
            status: None,
        }
    }

    pub fn ready_sandbox() -> SandboxState {
        SandboxState::Ready { id: "sb".into(), ip: Some("10.88.0.2".into()) }
    }

    pub fn running(at: i64) -> ObservedContainer {
        let mut o = ObservedContainer::new(ContainerState::Running { id: "c".into(), started_at: t(at) });
        o.ready = true;
        o.started = true;
        o
    }

    pub fn exited(code: i32, started: i64, finished: i64) -> ObservedContainer {
        ObservedContainer::new(ContainerState::Exited {
            id: "c".into(),
            exit_code: code,
            started_at: Some(t(started)),
            finished_at: t(finished),
            oom_killed: false,
            message: None,
        })
    }

    pub fn obs(sandbox: SandboxState, cs: &[(&str, ObservedContainer)]) -> Observed {
        Observed {
            sandbox,
            containers: cs.iter().map(|(n, o)| (n.to_string(), o.clone())).collect(),
            failures: HashMap::new(),
            evicted: None,
        }
    }

    fn start(n: &str, init: bool) -> Action {
        Action::StartContainer { name: n.into(), init }
    }

    #[test]
    fn table() {
        let grace = DEFAULT_GRACE;
        struct Case {
            what: &'static str,
            pod: Pod,
            observed: Observed,
            now: i64,
            want: Vec<Action>,
        }
        let cases = vec![
            Case { what: "new pod gets a sandbox", pod: pod("Always", &[], &["a"]), observed: Observed::default(), now: 0, want: vec![Action::CreateSandbox] },
            Case { what: "sandbox ready: start all containers", pod: pod("Always", &[], &["a", "b"]), observed: obs(ready_sandbox(), &[]), now: 0, want: vec![start("a", false), start("b", false)] },
            Case { what: "init containers first, in order", pod: pod("Always", &["i1", "i2"], &["a"]), observed: obs(ready_sandbox(), &[]), now: 0, want: vec![start("i1", true)] },
            Case { what: "running init container: wait", pod: pod("Always", &["i1", "i2"], &["a"]), observed: obs(ready_sandbox(), &[("i1", running(0))]), now: 5, want: vec![] },
            Case { what: "second init after first succeeded", pod: pod("Always", &["i1", "i2"], &["a"]), observed: obs(ready_sandbox(), &[("i1", exited(0, 0, 1))]), now: 2, want: vec![start("i2", true)] },
            Case { what: "all init done: regular containers", pod: pod("Always", &["i1", "i2"], &["a"]), observed: obs(ready_sandbox(), &[("i1", exited(0, 0, 1)), ("i2", exited(0, 1, 2))]), now: 3, want: vec![start("a", false)] },
            Case { what: "failed init under Always backs off", pod: pod("Always", &["i1"], &["a"]), observed: obs(ready_sandbox(), &[("i1", exited(1, 0, 1))]), now: 2, want: vec![Action::BackOff { name: "i1".into(), until: t(11), reason: "CrashLoopBackOff" }] },
            Case { what: "failed init under Always restarts after backoff", pod: pod("Always", &["i1"], &["a"]), observed: obs(ready_sandbox(), &[("i1", exited(1, 0, 1))]), now: 11, want: vec![start("i1", true)] },
            Case { what: "failed init under Never fails the pod and reclaims the sandbox", pod: pod("Never", &["i1"], &["a"]), observed: obs(ready_sandbox(), &[("i1", exited(1, 0, 1))]), now: 2, want: vec![Action::KillPod { grace, reason: KillReason::PodCompleted }] },
            Case { what: "running container: nothing", pod: pod("Always", &[], &["a"]), observed: obs(ready_sandbox(), &[("a", running(0))]), now: 100, want: vec![] },
            Case { what: "crashed under Always: back off 10 s", pod: pod("Always", &[], &["a"]), observed: obs(ready_sandbox(), &[("a", exited(1, 0, 5))]), now: 6, want: vec![Action::BackOff { name: "a".into(), until: t(15), reason: "CrashLoopBackOff" }] },
            Case { what: "completed under Always also restarts", pod: pod("Always", &[], &["a"]), observed: obs(ready_sandbox(), &[("a", exited(0, 0, 5))]), now: 15, want: vec![start("a", false)] },
            Case { what: "completed under OnFailure: done, sandbox reclaimed", pod: pod("OnFailure", &[], &["a"]), observed: obs(ready_sandbox(), &[("a", exited(0, 0, 5))]), now: 15, want: vec![Action::KillPod { grace, reason: KillReason::PodCompleted }] },
            Case { what: "failed under OnFailure restarts", pod: pod("OnFailure", &[], &["a"]), observed: obs(ready_sandbox(), &[("a", exited(2, 0, 5))]), now: 15, want: vec![start("a", false)] },
            Case { what: "failed under Never: terminal", pod: pod("Never", &[], &["a"]), observed: obs(ready_sandbox(), &[("a", exited(2, 0, 5))]), now: 15, want: vec![Action::KillPod { grace, reason: KillReason::PodCompleted }] },
            Case { what: "terminal and reclaimed: nothing", pod: pod("Never", &[], &["a"]), observed: obs(SandboxState::None, &[("a", exited(2, 0, 5))]), now: 15, want: vec![] },
            Case { what: "one of two done under Never: keep the other", pod: pod("Never", &[], &["a", "b"]), observed: obs(ready_sandbox(), &[("a", exited(0, 0, 5)), ("b", running(0))]), now: 15, want: vec![] },
            Case { what: "sandbox died: kill all and recreate", pod: pod("Always", &[], &["a"]), observed: obs(SandboxState::NotReady { id: "sb".into() }, &[("a", running(0))]), now: 15, want: vec![Action::KillPod { grace, reason: KillReason::SandboxChanged }] },
            Case { what: "containers without sandbox are orphans", pod: pod("Always", &[], &["a"]), observed: obs(SandboxState::None, &[("a", running(0))]), now: 15, want: vec![Action::KillPod { grace, reason: KillReason::Orphaned }] },
        ];
        for c in cases {
            let mut b = Backoff::new();
            let got = step(&c.pod, &c.observed, &mut b, t(c.now));
            assert_eq!(got, c.want, "case: {}", c.what);
        }
    }

    #[test]
    fn unhealthy_container_is_killed_with_grace() {
        let mut p = pod("Always", &[], &["a"]);
        p.spec.as_mut().expect("spec").termination_grace_period_seconds = Some(3);
        let mut o = running(0);
        o.unhealthy = true;
        let got = step(&p, &obs(ready_sandbox(), &[("a", o)]), &mut Backoff::new(), t(50));
        assert_eq!(
            got,
            vec![Action::KillContainer { name: "a".into(), grace: Duration::from_secs(3), reason: KillReason::Unhealthy }]
        );
    }

    #[test]
    fn deleted_pod_is_killed_with_deletion_grace_then_finalized() {
        let mut p = pod("Always", &[], &["a"]);
        p.metadata.deletion_timestamp = Some(crate::time::to_k8s(t(0)));
        p.metadata.deletion_grace_period_seconds = Some(7);
        let got = step(&p, &obs(ready_sandbox(), &[("a", running(0))]), &mut Backoff::new(), t(1));
        assert_eq!(got, vec![Action::KillPod { grace: Duration::from_secs(7), reason: KillReason::PodDeleted }]);
        let got = step(&p, &obs(SandboxState::None, &[("a", exited(137, 0, 2))]), &mut Backoff::new(), t(3));
        assert_eq!(got, vec![Action::Finalize]);
    }

    #[test]
    fn crash_loop_delays_double_across_restarts() {
        let p = pod("Always", &[], &["a"]);
        let mut b = Backoff::new();
        let mut now = 0i64;
        let mut waits = Vec::new();
        for _ in 0..7 {
            // container runs 1 s and crashes
            let o = obs(ready_sandbox(), &[("a", exited(1, now, now + 1))]);
            let acts = step(&p, &o, &mut b, t(now + 1));
            let until = next_wakeup(&acts).expect("backoff");
            waits.push((until - t(now + 1)).num_seconds());
            assert_eq!(step(&p, &o, &mut b, until), vec![start("a", false)], "restart once the backoff ends");
            now = (until - t(0)).num_seconds();
        }
        assert_eq!(waits, vec![10, 20, 40, 80, 160, 300, 300]);
        // a run of 10 minutes resets the delay
        let o = obs(ready_sandbox(), &[("a", exited(1, now, now + 600))]);
        let acts = step(&p, &o, &mut b, t(now + 600));
        assert_eq!((next_wakeup(&acts).expect("backoff") - t(now + 600)).num_seconds(), 10);
    }

    #[test]
    fn failed_start_waits_for_retry_then_retries() {
        let p = pod("Always", &[], &["a"]);
        let mut o = obs(ready_sandbox(), &[]);
        o.failures.insert(
            "a".into(),
            Failure { kind: FailureKind::ImagePull, message: "not found".into(), at: t(0), attempts: 2 },
        );
        let got = step(&p, &o, &mut Backoff::new(), t(5));
        assert_eq!(got, vec![Action::BackOff { name: "a".into(), until: t(20), reason: "ImagePullBackOff" }]);
        assert_eq!(step(&p, &o, &mut Backoff::new(), t(20)), vec![start("a", false)]);
    }

    #[test]
    fn config_error_is_retried_even_under_never() {
        let p = pod("Never", &[], &["a"]);
        let mut o = obs(ready_sandbox(), &[]);
        o.failures.insert(
            "a".into(),
            Failure { kind: FailureKind::CreateConfig, message: "configmap missing".into(), at: t(0), attempts: 1 },
        );
        assert!(!is_terminal(&p, &o));
        assert_eq!(step(&p, &o, &mut Backoff::new(), t(10)), vec![start("a", false)]);
    }
}
