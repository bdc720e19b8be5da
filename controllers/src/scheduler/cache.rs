//! The scheduler's in-memory view of the cluster: one `NodeInfo` per node with the sum of requests, used host
//! ports and per-controller pod counts of the pods bound (or assumed bound) to it.
//!
//! Owns: incremental add/remove of pods and nodes so that scheduling one pod never re-lists anything. It must
//! not talk to the apiserver; the watch loop in `scheduler::run` feeds it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod, PodAffinityTerm, Taint};

use crate::util::owner;
use rkube_apimachinery::pod::{self, Requests};
use rkube_apimachinery::quantity;

/// Requests a pod without any is counted with when scoring (Kubernetes' non-zero defaults).
pub const DEFAULT_MILLI_CPU: i64 = 100;
/// 200 MiB, as kube-scheduler's scoring defaults.
pub const DEFAULT_MEMORY: i64 = 200 * 1024 * 1024;

/// What the cache remembers of a pod placed on a node.
#[derive(Debug, Clone)]
pub struct PodEntry {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// The pod's labels, shared with the copies the affinity checks hold.
    pub labels: Arc<BTreeMap<String, String>>,
    /// The uid of the pod's controller (spreading score), None for a bare pod.
    pub owner_uid: Option<String>,
    /// The node it is placed on.
    pub node: String,
    /// What it requests (cpu milli, memory bytes).
    pub requests: Requests,
    /// Its requests with the non-zero scoring defaults.
    pub non_zero: Requests,
    /// The (protocol, hostIP, hostPort) triples it holds on the node.
    pub ports: Vec<(String, String, i32)>,
    /// Required anti-affinity terms of this pod (checked against incoming pods, symmetric rule).
    pub anti_affinity: Vec<PodAffinityTerm>,
    /// `spec.priority` (0 when unset): pods of lower priority are the victims a preemption dry run considers.
    pub priority: i32,
}

impl PodEntry {
    /// Build the entry for a pod bound to `node`.
    pub fn from_pod(p: &Pod, node: &str) -> Self {
        let spec = p.spec.clone().unwrap_or_default();
        let requests = pod::requests(&spec);
        let non_zero = non_zero_requests(&spec);
        let anti_affinity = spec
            .affinity
            .as_ref()
            .and_then(|a| a.pod_anti_affinity.as_ref())
            .and_then(|a| a.required_during_scheduling_ignored_during_execution.clone())
            .unwrap_or_default();
        PodEntry {
            namespace: p.metadata.namespace.clone().unwrap_or_else(|| "default".into()),
            name: p.metadata.name.clone().unwrap_or_default(),
            labels: Arc::new(p.metadata.labels.clone().unwrap_or_default()),
            owner_uid: owner::controller_ref(&p.metadata).map(|o| o.uid.clone()),
            node: node.to_string(),
            requests,
            non_zero,
            ports: pod::host_ports(&spec),
            anti_affinity,
            priority: spec.priority.unwrap_or(0),
        }
    }
}

/// Requests with Kubernetes' defaults for containers that request nothing (used only for scoring).
pub fn non_zero_requests(spec: &k8s_openapi::api::core::v1::PodSpec) -> Requests {
    let mut sum = Requests::default();
    for c in &spec.containers {
        let r = c.resources.as_ref().and_then(|r| r.requests.as_ref());
        let cpu = r.and_then(|r| r.get("cpu")).map(|q| quantity::milli_value(q).unwrap_or(0));
        let mem = r.and_then(|r| r.get("memory")).map(|q| quantity::value(q).unwrap_or(0));
        sum.cpu += cpu.unwrap_or(DEFAULT_MILLI_CPU);
        sum.memory += mem.unwrap_or(DEFAULT_MEMORY);
    }
    sum
}

/// One node as the scheduler sees it.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// The node's name.
    pub name: String,
    /// The node's labels (node affinity, topology keys).
    pub labels: BTreeMap<String, String>,
    /// The node's taints.
    pub taints: Vec<Taint>,
    /// Whether its Ready condition is True.
    pub ready: bool,
    /// Whether it is cordoned (`spec.unschedulable`).
    pub unschedulable: bool,
    /// allocatable cpu (milli), memory (bytes), pods
    pub alloc_cpu: i64,
    /// Allocatable memory, bytes.
    pub alloc_memory: i64,
    /// Allocatable pod count.
    pub alloc_pods: i64,
    /// The sum of the requests of its pods.
    pub requested: Requests,
    /// The sum of their non-zero scoring requests.
    pub non_zero_requested: Requests,
    /// How many pods are placed on it.
    pub pod_count: i64,
    /// The host ports its pods hold, as (protocol, hostIP, hostPort).
    pub used_ports: HashSet<(String, String, i32)>,
    /// pods on this node per controller uid (spreading score)
    pub owner_counts: HashMap<String, u32>,
    /// keys ("ns/name") of pods on this node
    pub pods: HashSet<String>,
}

impl NodeInfo {
    /// Node facts from the API object, with no pods yet.
    pub fn from_node(node: &Node) -> Self {
        let status = node.status.as_ref();
        let alloc = status.and_then(|s| s.allocatable.as_ref().or(s.capacity.as_ref()));
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .is_some_and(|c| c.status == "True");
        let spec = node.spec.as_ref();
        NodeInfo {
            name: node.metadata.name.clone().unwrap_or_default(),
            labels: node.metadata.labels.clone().unwrap_or_default(),
            taints: spec.and_then(|s| s.taints.clone()).unwrap_or_default(),
            ready,
            unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
            alloc_cpu: alloc.and_then(|a| a.get("cpu")).map(|q| quantity::milli_value(q).unwrap_or(0)).unwrap_or(0),
            alloc_memory: alloc.and_then(|a| a.get("memory")).map(|q| quantity::value(q).unwrap_or(0)).unwrap_or(0),
            alloc_pods: alloc.and_then(|a| a.get("pods")).map(|q| quantity::value(q).unwrap_or(0)).unwrap_or(110),
            requested: Requests::default(),
            non_zero_requested: Requests::default(),
            pod_count: 0,
            used_ports: HashSet::new(),
            owner_counts: HashMap::new(),
            pods: HashSet::new(),
        }
    }

    fn add(&mut self, key: &str, e: &PodEntry) {
        if !self.pods.insert(key.to_string()) {
            return;
        }
        self.requested.cpu += e.requests.cpu;
        self.requested.memory += e.requests.memory;
        self.non_zero_requested.cpu += e.non_zero.cpu;
        self.non_zero_requested.memory += e.non_zero.memory;
        self.pod_count += 1;
        for p in &e.ports {
            self.used_ports.insert(p.clone());
        }
        if let Some(o) = &e.owner_uid {
            *self.owner_counts.entry(o.clone()).or_default() += 1;
        }
    }

    /// This node as it would be without `victims` (a preemption dry run).
    pub fn without(&self, victims: &[&PodEntry]) -> NodeInfo {
        let mut n = self.clone();
        for v in victims {
            n.remove(&format!("{}/{}", v.namespace, v.name), v);
        }
        n
    }

    fn remove(&mut self, key: &str, e: &PodEntry) {
        if !self.pods.remove(key) {
            return;
        }
        self.requested.cpu -= e.requests.cpu;
        self.requested.memory -= e.requests.memory;
        self.non_zero_requested.cpu -= e.non_zero.cpu;
        self.non_zero_requested.memory -= e.non_zero.memory;
        self.pod_count -= 1;
        for p in &e.ports {
            self.used_ports.remove(p);
        }
        if let Some(o) = &e.owner_uid {
            if let Some(c) = self.owner_counts.get_mut(o) {
                *c -= 1;
                if *c == 0 {
                    self.owner_counts.remove(o);
                }
            }
        }
    }
}

/// All nodes and the pods placed on them. Nodes live in a Vec (stable scan order for the rotating start
/// index) with an index by name.
#[derive(Debug, Default)]
pub struct Cache {
    /// Every known node, in the order nodes were first seen.
    pub nodes: Vec<NodeInfo>,
    index: HashMap<String, usize>,
    pods: HashMap<String, PodEntry>,
    /// pods whose node is not (yet) in the cache, re-added when the node appears
    orphans: HashMap<String, PodEntry>,
    /// pods that carry required anti-affinity terms (symmetric check)
    anti_affinity_pods: HashSet<String>,
}

/// Cache key of a pod: "namespace/name".
pub fn pod_key(p: &Pod) -> String {
    format!("{}/{}", p.metadata.namespace.as_deref().unwrap_or("default"), p.metadata.name.as_deref().unwrap_or(""))
}

impl Cache {
    /// Add or replace a node, keeping the pods already counted on it.
    pub fn upsert_node(&mut self, node: &Node) {
        let mut info = NodeInfo::from_node(node);
        if let Some(&i) = self.index.get(&info.name) {
            let old = &self.nodes[i];
            info.requested = old.requested;
            info.non_zero_requested = old.non_zero_requested;
            info.pod_count = old.pod_count;
            info.used_ports = old.used_ports.clone();
            info.owner_counts = old.owner_counts.clone();
            info.pods = old.pods.clone();
            self.nodes[i] = info;
        } else {
            let name = info.name.clone();
            self.index.insert(name.clone(), self.nodes.len());
            self.nodes.push(info);
            let waiting: Vec<String> =
                self.orphans.iter().filter(|(_, e)| e.node == name).map(|(k, _)| k.clone()).collect();
            for k in waiting {
                if let Some(e) = self.orphans.remove(&k) {
                    self.place(k, e);
                }
            }
        }
    }

    /// Remove a node; its pods wait as orphans in case it comes back.
    pub fn remove_node(&mut self, name: &str) {
        let Some(i) = self.index.remove(name) else { return };
        self.nodes.swap_remove(i);
        if i < self.nodes.len() {
            let moved = self.nodes[i].name.clone();
            self.index.insert(moved, i);
        }
        let keys: Vec<String> = self.pods.iter().filter(|(_, e)| e.node == name).map(|(k, _)| k.clone()).collect();
        for k in keys {
            if let Some(e) = self.pods.remove(&k) {
                self.orphans.insert(k, e);
            }
        }
    }

    /// Node by name.
    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.index.get(name).map(|&i| &self.nodes[i])
    }

    fn place(&mut self, key: String, e: PodEntry) {
        if let Some(&i) = self.index.get(&e.node) {
            self.nodes[i].add(&key, &e);
            if !e.anti_affinity.is_empty() {
                self.anti_affinity_pods.insert(key.clone());
            }
            self.pods.insert(key, e);
        } else {
            self.orphans.insert(key, e);
        }
    }

    /// Record a pod bound (or assumed bound) to `node`. Idempotent; moving a pod re-counts it.
    pub fn add_pod(&mut self, p: &Pod, node: &str) {
        let key = pod_key(p);
        if let Some(existing) = self.pods.get(&key) {
            if existing.node == node {
                return;
            }
        }
        self.remove_pod_key(&key);
        self.place(key, PodEntry::from_pod(p, node));
    }

    /// Forget a pod (deleted, or finished so it no longer uses resources).
    pub fn remove_pod_key(&mut self, key: &str) {
        self.orphans.remove(key);
        self.anti_affinity_pods.remove(key);
        if let Some(e) = self.pods.remove(key) {
            if let Some(&i) = self.index.get(&e.node) {
                self.nodes[i].remove(key, &e);
            }
        }
    }

    /// Whether a pod is counted (bound or assumed).
    pub fn has_pod(&self, key: &str) -> bool {
        self.pods.contains_key(key) || self.orphans.contains_key(key)
    }

    /// All placed pods.
    pub fn pods(&self) -> impl Iterator<Item = &PodEntry> {
        self.pods.values()
    }

    /// Placed pods that carry required anti-affinity terms.
    pub fn anti_affinity_pods(&self) -> impl Iterator<Item = &PodEntry> {
        self.anti_affinity_pods.iter().filter_map(|k| self.pods.get(k))
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}
