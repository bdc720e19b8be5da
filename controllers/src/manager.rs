//! The controller manager: one watch per shared kind (pods, ReplicaSets, Jobs, Nodes, Leases) fanned out to
//! every controller that needs it, and one kube-rs `Controller` per kind of object reconciled.
//! [`run_all`] runs them all until one stops; the scheduler runs separately (`scheduler::run`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ReplicationController, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use tokio::task::JoinSet;

use crate::context::{Config, Fanout, ReconcileError, Shared};
use crate::{clusterrole_aggregation, cronjob, daemonset, deployment, endpoints, garbage_collector, job, node_lifecycle, replicaset, serviceaccount, statefulset};

/// Why the controller manager stopped.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    /// A controller's loop ended (its watch stream closed).
    #[error("controller {0} stopped")]
    Stopped(&'static str),
    /// A controller task panicked.
    #[error("controller task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

fn error_policy<K: Resource<DynamicType = ()>, C>(obj: Arc<K>, err: &ReconcileError, _ctx: Arc<C>) -> Action {
    tracing::warn!(kind = %K::kind(&()), object = %obj.name_any(), error = %err, "reconcile failed, retrying");
    Action::requeue(Duration::from_secs(2))
}

async fn drain<S, T, E>(name: &'static str, stream: S) -> &'static str
where
    S: futures::Stream<Item = Result<T, E>>,
    E: std::fmt::Display,
{
    stream
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(controller = name, error = %e, "controller event");
            }
        })
        .await;
    name
}

/// Run every controller against the cluster behind `client` until one of them stops.
///
/// Boxed here, so the controllers' code (every `Controller::run` instantiation) is compiled once, in this crate,
/// and not again in each binary, test and example that polls the future.
pub fn run_all(client: Client, config: Config) -> futures::future::BoxFuture<'static, Result<(), ManagerError>> {
    Box::pin(run_all_loops(client, config))
}

async fn run_all_loops(client: Client, config: Config) -> Result<(), ManagerError> {
    let wc = watcher::Config::default();
    let pods = Fanout::start(Api::<Pod>::all(client.clone()));
    let replicasets = Fanout::start(Api::<ReplicaSet>::all(client.clone()));
    let jobs = Fanout::start(Api::<Job>::all(client.clone()));
    let nodes = Fanout::start(Api::<Node>::all(client.clone()));
    let leases = Fanout::start(Api::<Lease>::namespaced(client.clone(), node_lifecycle::LEASE_NAMESPACE));
    // acting on a half-filled pod cache would create pods that already exist
    let _ = pods.store.wait_until_ready().await;
    let _ = replicasets.store.wait_until_ready().await;
    let _ = jobs.store.wait_until_ready().await;
    let _ = nodes.store.wait_until_ready().await;
    let shared = Arc::new(Shared {
        client: client.clone(),
        config: config.clone(),
        pods: pods.store.clone(),
        expectations: Mutex::new(Default::default()),
    });
    let mut set: JoinSet<&'static str> = JoinSet::new();

    set.spawn(drain(
        "replicaset",
        Controller::new(Api::<ReplicaSet>::all(client.clone()), wc.clone())
            .owns_stream(pods.subscribe())
            .run(replicaset::reconcile_owner::<ReplicaSet>, error_policy, shared.clone()),
    ));
    set.spawn(drain(
        "replicationcontroller",
        Controller::new(Api::<ReplicationController>::all(client.clone()), wc.clone())
            .owns_stream(pods.subscribe())
            .run(replicaset::reconcile_owner::<ReplicationController>, error_policy, shared.clone()),
    ));
    let dctx = Arc::new(deployment::controller::DeploymentCtx { shared: shared.clone(), replicasets: replicasets.store.clone() });
    set.spawn(drain(
        "deployment",
        Controller::new(Api::<Deployment>::all(client.clone()), wc.clone())
            .owns_stream(replicasets.subscribe())
            .run(deployment::controller::reconcile, error_policy, dctx),
    ));
    set.spawn(drain(
        "statefulset",
        Controller::new(Api::<StatefulSet>::all(client.clone()), wc.clone())
            .owns_stream(pods.subscribe())
            .run(statefulset::reconcile, error_policy, shared.clone()),
    ));
    {
        let ctrl = Controller::new(Api::<DaemonSet>::all(client.clone()), wc.clone());
        let ds_store = ctrl.store();
        let dsctx = Arc::new(daemonset::DaemonSetCtx { shared: shared.clone(), nodes: nodes.store.clone() });
        set.spawn(drain(
            "daemonset",
            ctrl.owns_stream(pods.subscribe())
                .watches_stream(nodes.subscribe(), move |_node: Node| {
                    ds_store.state().iter().map(|d| ObjectRef::from(d.as_ref())).collect::<Vec<_>>()
                })
                .run(daemonset::reconcile, error_policy, dsctx),
        ));
    }
    set.spawn(drain(
        "job",
        Controller::new(Api::<Job>::all(client.clone()), wc.clone())
            .owns_stream(pods.subscribe())
            .run(job::reconcile, error_policy, shared.clone()),
    ));
    let cctx = Arc::new(cronjob::CronJobCtx { shared: shared.clone(), jobs: jobs.store.clone() });
    set.spawn(drain(
        "cronjob",
        Controller::new(Api::<CronJob>::all(client.clone()), wc.clone())
            .owns_stream(jobs.subscribe())
            .run(cronjob::reconcile, error_policy, cctx),
    ));
    {
        let ctrl = Controller::new(Api::<Service>::all(client.clone()), wc.clone());
        let svc_store = ctrl.store();
        set.spawn(drain(
            "endpoints",
            ctrl.watches_stream(pods.subscribe(), move |pod: Pod| {
                let ns = pod.namespace();
                svc_store
                    .state()
                    .iter()
                    .filter(|s| s.namespace() == ns)
                    .map(|s| ObjectRef::from(s.as_ref()))
                    .collect::<Vec<_>>()
            })
            .run(endpoints::reconcile, error_policy, shared.clone()),
        ));
    }
    let lctx = Arc::new(node_lifecycle::LifecycleCtx {
        shared: shared.clone(),
        nodes: nodes.store.clone(),
        leases: leases.store.clone(),
        cidrs: Mutex::new(None),
    });
    set.spawn(drain(
        "node-lifecycle",
        Controller::new(Api::<Node>::all(client.clone()), wc.clone())
            .watches_stream(leases.subscribe(), node_lifecycle::lease_to_node)
            .run(node_lifecycle::reconcile, error_policy, lctx),
    ));
    set.spawn(drain(
        "serviceaccount",
        Controller::new(Api::<Namespace>::all(client.clone()), wc.clone())
            .watches(Api::<ServiceAccount>::all(client.clone()), wc.clone(), serviceaccount::sa_to_namespace)
            .run(serviceaccount::reconcile, error_policy, shared.clone()),
    ));
    {
        // the fan-out's store only names the aggregating roles to requeue; each reconcile lists the sources afresh
        let roles = Fanout::start(Api::<ClusterRole>::all(client.clone()));
        let actx = Arc::new(clusterrole_aggregation::AggregationCtx { shared: shared.clone(), roles: roles.store.clone() });
        set.spawn(drain(
            "clusterrole-aggregation",
            Controller::new(Api::<ClusterRole>::all(client.clone()), wc.clone())
                .watches_stream(roles.subscribe(), clusterrole_aggregation::aggregators(roles.store.clone()))
                .reconcile_all_on(clusterrole_aggregation::once_ready(roles.store.clone()))
                .run(clusterrole_aggregation::reconcile, error_policy, actx),
        ));
    }
    {
        let client = client.clone();
        let config = config.clone();
        set.spawn(async move {
            garbage_collector::run(client, config).await;
            "garbage-collector"
        });
    }
    // CSR approving and signing, token cleaner, bootstrap signer (joining nodes)
    set.spawn(crate::certificates::run(client.clone(), config.csr_signing.clone()));
    tracing::info!("controller manager started");
    match set.join_next().await {
        Some(Ok(name)) => Err(ManagerError::Stopped(name)),
        Some(Err(e)) => Err(ManagerError::Join(e)),
        None => Ok(()),
    }
}

/// Leader election settings for [`run_elected`].
#[derive(Clone, Debug)]
pub struct Election {
    /// The lease, renew and retry periods.
    pub timing: crate::leader::Timing,
    /// holderIdentity, `<hostname>_<uuid>` ([`crate::leader::identity`]).
    pub identity: String,
    /// No other control plane can exist (the embedded store): a Lease held by another identity is a dead
    /// process's and is taken at once, so a restart is not delayed by the lease duration.
    pub sole_candidate: bool,
}

/// What a control plane runs besides its apiserver.
#[derive(Clone, Debug, Default)]
pub struct Loops {
    /// The controllers' settings: periods, the node lifecycle's CIDRs and grace, the CSR signer's CA.
    pub controllers: Config,
    /// The scheduler's settings.
    pub scheduler: crate::scheduler::SchedulerConfig,
    /// The built-in load balancer's pool (`--lb-pool`).
    pub lb_pool: Option<crate::service_lb::Pool>,
}

/// The scheduler (Lease `kube-scheduler`) and the controller manager with the load balancer controller (Lease
/// `kube-controller-manager`), each on its own [`crate::leader::Term`]; [`Elected::stop`] ends them.
pub struct Elected {
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Runs the control loops against the apiserver `kube` points at: each only while it holds its Lease when
/// `election` is given (upstream's `--leader-elect`, the default), else at once. Each term builds its own client
/// on its own runtime, so nothing of a stopped term outlives it.
pub fn run_elected(kube: kube::Config, loops: Loops, election: Option<Election>) -> Result<Elected, kube::Error> {
    use crate::leader::{self, Elector, Term};
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let scheduler_work = {
        let (kube, config) = (kube.clone(), loops.scheduler.clone());
        move || -> std::io::Result<Term> {
            let (kube, config) = (kube.clone(), config.clone());
            Term::spawn("scheduler", move || async move {
                match Client::try_from(kube) {
                    Ok(client) => {
                        if let Err(e) = crate::scheduler::run(client, config).await {
                            tracing::error!(error = %e, "scheduler stopped");
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "scheduler: cannot build an API client"),
                }
            })
        }
    };
    let manager_work = {
        let kube = kube.clone();
        move || -> std::io::Result<Term> {
            let (kube, loops) = (kube.clone(), loops.clone());
            Term::spawn("controller-manager", move || async move {
                let client = match Client::try_from(kube) {
                    Ok(c) => c,
                    Err(e) => return tracing::error!(error = %e, "controller manager: cannot build an API client"),
                };
                let lb = tokio::spawn(crate::service_lb::run(client.clone(), loops.lb_pool));
                if let Err(e) = run_all(client, loops.controllers).await {
                    tracing::error!(error = %e, "controllers stopped");
                }
                lb.abort();
            })
        }
    };
    let mut tasks = Vec::new();
    match election {
        None => {
            // no election: the terms run until stopped
            let terms = [scheduler_work(), manager_work()];
            let mut stopped = stopped;
            tasks.push(tokio::spawn(async move {
                let _ = stopped.wait_for(|s| *s).await;
                for t in terms.into_iter().flatten() {
                    t.stop().await;
                }
            }));
        }
        Some(e) => {
            let client = Client::try_from(kube)?;
            for (name, work) in [
                (leader::SCHEDULER_LEASE, Box::new(scheduler_work) as Box<dyn FnMut() -> std::io::Result<Term> + Send>),
                (leader::CONTROLLER_MANAGER_LEASE, Box::new(manager_work)),
            ] {
                let elector = Elector {
                    api: Api::namespaced(client.clone(), leader::LEASE_NAMESPACE),
                    name: name.to_string(),
                    identity: e.identity.clone(),
                    timing: e.timing,
                    sole_candidate: e.sole_candidate,
                };
                tasks.push(tokio::spawn(elector.run(work, stopped.clone())));
            }
        }
    }
    Ok(Elected { stop, tasks })
}

impl Elected {
    /// Stops every term (waiting until its runtime is gone) and releases held Leases.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}
