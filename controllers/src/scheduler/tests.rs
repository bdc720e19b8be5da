//! Table-driven tests of filters, scores and the FailedScheduling message, no apiserver needed.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, Container, ContainerPort, Node, NodeAffinity, NodeCondition, NodeSelector, NodeSelectorRequirement,
    NodeSelectorTerm, NodeSpec, NodeStatus, Pod, PodAffinityTerm, PodAntiAffinity, PodSpec,
    PreferredSchedulingTerm, ResourceRequirements, Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use rand::SeedableRng;

use super::algorithm::{num_feasible_nodes_to_find, Algorithm};
use super::cache::Cache;

pub(crate) fn node(name: &str, cpu: &str, mem: &str) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some([("kubernetes.io/hostname".to_string(), name.to_string())].into()),
            ..Default::default()
        },
        spec: Some(NodeSpec::default()),
        status: Some(NodeStatus {
            allocatable: Some(
                [
                    ("cpu".to_string(), Quantity(cpu.into())),
                    ("memory".to_string(), Quantity(mem.into())),
                    ("pods".to_string(), Quantity("110".into())),
                ]
                .into(),
            ),
            conditions: Some(vec![NodeCondition { type_: "Ready".into(), status: "True".into(), ..Default::default() }]),
            ..Default::default()
        }),
    }
}

pub(crate) fn pod(name: &str, cpu: &str, mem: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            labels: Some([("app".to_string(), "web".to_string())].into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "c".into(),
                resources: Some(ResourceRequirements {
                    requests: Some(
                        [("cpu".to_string(), Quantity(cpu.into())), ("memory".to_string(), Quantity(mem.into()))]
                            .into(),
                    ),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: None,
    }
}

fn algo() -> Algorithm<rand::rngs::StdRng> {
    Algorithm::new(rand::rngs::StdRng::seed_from_u64(7))
}

fn cache_of(nodes: &[Node]) -> Cache {
    let mut c = Cache::default();
    for n in nodes {
        c.upsert_node(n);
    }
    c
}

fn schedule(cache: &Cache, p: &Pod) -> Result<String, String> {
    algo().schedule(cache, p).map_err(|e| e.to_string())
}

#[test]
fn insufficient_memory_message_matches_kube_scheduler() {
    let c = cache_of(&[node("a", "4", "1Gi"), node("b", "4", "1Gi"), node("c", "4", "1Gi")]);
    let p = pod("big", "100m", "2Gi");
    // more than any node's allocatable: preemption cannot help (NodeResourcesFit's Unresolvable)
    assert_eq!(
        schedule(&c, &p),
        Err("0/3 nodes are available: 3 Insufficient memory. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling..".into())
    );
}

/// kube-scheduler's DefaultPreemption dry run, as it shows in the message: no pods of lower priority, lower-priority
/// pods whose removal would not be enough, lower-priority pods whose removal would make room (upstream preempts
/// and adds nothing; rkube does not preempt, the pod waits), and preemptionPolicy Never.
#[test]
fn the_preemption_part_follows_upstreams_dry_run() {
    let mut c = cache_of(&[node("a", "4", "1Gi"), node("b", "4", "1Gi")]);
    let with_priority = |name: &str, mem: &str, prio: i32| {
        let mut p = pod(name, "100m", mem);
        p.spec.as_mut().expect("spec").priority = Some(prio);
        p
    };
    c.add_pod(&with_priority("a-big", "800Mi", 10), "a");
    c.add_pod(&with_priority("b-big", "800Mi", 0), "b");
    // priority 0: nothing below it to evict on either node
    assert_eq!(
        schedule(&c, &with_priority("p", "512Mi", 0)),
        Err("0/2 nodes are available: 2 Insufficient memory. preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod..".into())
    );
    // priority 5: b's pod is a victim and its removal makes room: upstream preempts, so no preemption part
    assert_eq!(schedule(&c, &with_priority("p", "512Mi", 5)), Err("0/2 nodes are available: 2 Insufficient memory.".into()));
    // the same with a victim too small to make room: the filters' reason after removing it
    c.remove_pod_key("default/b-big");
    c.add_pod(&with_priority("b-small", "100Mi", 0), "b");
    c.add_pod(&with_priority("b-high", "700Mi", 10), "b");
    assert_eq!(
        schedule(&c, &with_priority("p", "512Mi", 5)),
        Err("0/2 nodes are available: 2 Insufficient memory. preemption: 0/2 nodes are available: 1 Insufficient memory, 1 No preemption victims found for incoming pod..".into())
    );
    let mut never = with_priority("p", "512Mi", 5);
    never.spec.as_mut().expect("spec").preemption_policy = Some("Never".into());
    assert_eq!(
        schedule(&c, &never),
        Err("0/2 nodes are available: 2 Insufficient memory. preemption: not eligible due to preemptionPolicy=Never..".into())
    );
}

#[test]
fn mixed_reasons_are_counted_and_sorted() {
    let mut cordoned = node("a", "4", "4Gi");
    cordoned.spec.as_mut().expect("spec").unschedulable = Some(true);
    let mut tainted = node("b", "4", "4Gi");
    tainted.spec.as_mut().expect("spec").taints =
        Some(vec![Taint { key: "dedicated".into(), value: Some("gpu".into()), effect: "NoSchedule".into(), time_added: None }]);
    let small = node("c", "1", "4Gi");
    let mut not_ready = node("d", "4", "4Gi");
    not_ready.status.as_mut().expect("status").conditions.as_mut().expect("conds")[0].status = "False".into();
    let c = cache_of(&[cordoned, tainted, small, not_ready]);
    let p = pod("p", "2", "1Gi");
    assert_eq!(
        schedule(&c, &p),
        Err("0/4 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {dedicated: gpu}, \
             1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, 1 node(s) were unschedulable. \
             preemption: 0/4 nodes are available: 4 Preemption is not helpful for scheduling.."
            .into())
    );
    assert_eq!(schedule(&Cache::default(), &p), Err("no nodes available to schedule pods".into()));
}

#[test]
fn filter_table() {
    struct Case {
        name: &'static str,
        tweak_node: fn(&mut Node),
        tweak_pod: fn(&mut Pod),
        fits: bool,
    }
    fn no_node(_: &mut Node) {}
    fn no_pod(_: &mut Pod) {}
    fn taint_noexec(n: &mut Node) {
        n.spec.as_mut().expect("spec").taints =
            Some(vec![Taint { key: "k".into(), value: Some("v".into()), effect: "NoExecute".into(), time_added: None }]);
    }
    fn tolerate_k_exists(p: &mut Pod) {
        p.spec.as_mut().expect("spec").tolerations =
            Some(vec![Toleration { key: Some("k".into()), operator: Some("Exists".into()), ..Default::default() }]);
    }
    fn tolerate_k_wrong_value(p: &mut Pod) {
        p.spec.as_mut().expect("spec").tolerations = Some(vec![Toleration {
            key: Some("k".into()),
            value: Some("other".into()),
            effect: Some("NoExecute".into()),
            ..Default::default()
        }]);
    }
    fn tolerate_everything(p: &mut Pod) {
        p.spec.as_mut().expect("spec").tolerations =
            Some(vec![Toleration { operator: Some("Exists".into()), ..Default::default() }]);
    }
    fn prefer_no_schedule(n: &mut Node) {
        n.spec.as_mut().expect("spec").taints =
            Some(vec![Taint { key: "k".into(), value: None, effect: "PreferNoSchedule".into(), time_added: None }]);
    }
    fn zone_a(n: &mut Node) {
        n.metadata.labels.as_mut().expect("labels").insert("zone".into(), "a".into());
    }
    fn select_zone_a(p: &mut Pod) {
        p.spec.as_mut().expect("spec").node_selector = Some([("zone".to_string(), "a".to_string())].into());
    }
    fn affinity_zone_in_b(p: &mut Pod) {
        p.spec.as_mut().expect("spec").affinity = Some(Affinity {
            node_affinity: Some(NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: Some(vec![NodeSelectorRequirement {
                            key: "zone".into(),
                            operator: "In".into(),
                            values: Some(vec!["b".into()]),
                        }]),
                        match_fields: None,
                    }],
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    fn pods_full(n: &mut Node) {
        n.status.as_mut().expect("status").allocatable.as_mut().expect("alloc").insert("pods".into(), Quantity("0".into()));
    }
    let cases = [
        Case { name: "plain fits", tweak_node: no_node, tweak_pod: no_pod, fits: true },
        Case { name: "NoExecute taint untolerated", tweak_node: taint_noexec, tweak_pod: no_pod, fits: false },
        Case { name: "Exists toleration", tweak_node: taint_noexec, tweak_pod: tolerate_k_exists, fits: true },
        Case { name: "Equal with wrong value", tweak_node: taint_noexec, tweak_pod: tolerate_k_wrong_value, fits: false },
        Case { name: "empty key Exists tolerates all", tweak_node: taint_noexec, tweak_pod: tolerate_everything, fits: true },
        Case { name: "PreferNoSchedule never filters", tweak_node: prefer_no_schedule, tweak_pod: no_pod, fits: true },
        Case { name: "nodeSelector match", tweak_node: zone_a, tweak_pod: select_zone_a, fits: true },
        Case { name: "nodeSelector mismatch", tweak_node: no_node, tweak_pod: select_zone_a, fits: false },
        Case { name: "required affinity mismatch", tweak_node: zone_a, tweak_pod: affinity_zone_in_b, fits: false },
        Case { name: "pods count full", tweak_node: pods_full, tweak_pod: no_pod, fits: false },
    ];
    for case in cases {
        let mut n = node("n", "4", "4Gi");
        (case.tweak_node)(&mut n);
        let mut p = pod("p", "100m", "100Mi");
        (case.tweak_pod)(&mut p);
        let got = schedule(&cache_of(&[n]), &p);
        assert_eq!(got.is_ok(), case.fits, "{}: {got:?}", case.name);
    }
}

#[test]
fn host_port_conflict_and_resources_account_for_bound_pods() {
    let mut c = cache_of(&[node("a", "1", "4Gi"), node("b", "1", "4Gi")]);
    let with_port = |name: &str| {
        let mut p = pod(name, "100m", "10Mi");
        p.spec.as_mut().expect("spec").containers[0].ports =
            Some(vec![ContainerPort { container_port: 80, host_port: Some(8080), ..Default::default() }]);
        p
    };
    c.add_pod(&with_port("p1"), "a");
    c.add_pod(&with_port("p2"), "b");
    assert_eq!(
        schedule(&c, &with_port("p3")),
        Err("0/2 nodes are available: 2 node(s) didn't have free ports for the requested pod ports. \
             preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod.."
            .into())
    );
    // removing the pod frees its port and resources
    c.remove_pod_key("default/p1");
    assert_eq!(schedule(&c, &with_port("p3")), Ok("a".into()));
    c.add_pod(&pod("hog", "900m", "10Mi"), "a");
    assert_eq!(schedule(&c, &pod("x", "200m", "10Mi")), Ok("b".into()));
}

#[test]
fn required_anti_affinity_on_hostname_puts_one_per_node() {
    let mut c = cache_of(&[node("a", "4", "4Gi"), node("b", "4", "4Gi"), node("c", "4", "4Gi")]);
    let anti = |name: &str| {
        let mut p = pod(name, "10m", "10Mi");
        p.spec.as_mut().expect("spec").affinity = Some(Affinity {
            pod_anti_affinity: Some(PodAntiAffinity {
                required_during_scheduling_ignored_during_execution: Some(vec![PodAffinityTerm {
                    label_selector: Some(LabelSelector {
                        match_labels: Some([("app".to_string(), "web".to_string())].into()),
                        ..Default::default()
                    }),
                    topology_key: "kubernetes.io/hostname".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        });
        p
    };
    let mut used = Vec::new();
    let mut a = algo();
    for i in 0..3 {
        let p = anti(&format!("w{i}"));
        let n = a.schedule(&c, &p).expect("fits");
        assert!(!used.contains(&n), "{n} used twice");
        used.push(n.clone());
        c.add_pod(&p, &n);
    }
    let err = a.schedule(&c, &anti("w3")).expect_err("no fourth node");
    assert_eq!(
        err.to_string(),
        "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules. \
         preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.."
    );
    // a pod without anti-affinity but matching the labels is kept off by the existing pods' rules (symmetry)
    let plain = pod("plain", "10m", "10Mi");
    assert_eq!(
        a.schedule(&c, &plain).map_err(|e| e.to_string()),
        Err("0/3 nodes are available: 3 node(s) didn't satisfy existing pods anti-affinity rules. \
             preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.."
            .into())
    );
}

#[test]
fn scores_prefer_least_allocated_spread_and_preferred_affinity() {
    // least allocated: b is empty
    let mut c = cache_of(&[node("a", "4", "4Gi"), node("b", "4", "4Gi")]);
    c.add_pod(&pod("hog", "3", "3Gi"), "a");
    assert_eq!(schedule(&c, &pod("p", "100m", "100Mi")), Ok("b".into()));

    // spreading: pods of one ReplicaSet spread evenly over 3 equal nodes
    let mut c = cache_of(&[node("a", "8", "8Gi"), node("b", "8", "8Gi"), node("c", "8", "8Gi")]);
    let mut a = algo();
    let mut per_node: BTreeMap<String, u32> = BTreeMap::new();
    for i in 0..9 {
        let mut p = pod(&format!("rs-{i}"), "0", "0");
        p.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: "rs".into(),
            uid: "rs-uid".into(),
            controller: Some(true),
            block_owner_deletion: None,
        }]);
        let n = a.schedule(&c, &p).expect("fits");
        c.add_pod(&p, &n);
        *per_node.entry(n).or_default() += 1;
    }
    assert_eq!(per_node.values().copied().collect::<Vec<_>>(), vec![3, 3, 3]);

    // preferred node affinity wins over equal nodes
    let mut zb = node("b", "4", "4Gi");
    zb.metadata.labels.as_mut().expect("labels").insert("disk".into(), "ssd".into());
    let c = cache_of(&[node("a", "4", "4Gi"), zb, node("c", "4", "4Gi")]);
    let mut p = pod("p", "100m", "100Mi");
    p.spec.as_mut().expect("spec").affinity = Some(Affinity {
        node_affinity: Some(NodeAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![PreferredSchedulingTerm {
                weight: 50,
                preference: NodeSelectorTerm {
                    match_expressions: Some(vec![NodeSelectorRequirement {
                        key: "disk".into(),
                        operator: "In".into(),
                        values: Some(vec!["ssd".into()]),
                    }]),
                    match_fields: None,
                },
            }]),
            ..Default::default()
        }),
        ..Default::default()
    });
    for _ in 0..5 {
        assert_eq!(schedule(&c, &p), Ok("b".into()));
    }
}

#[test]
fn balanced_allocation_prefers_even_usage() {
    // node a would be cpu-heavy after placement, node b balanced
    let mut c = cache_of(&[node("a", "4", "4Gi"), node("b", "4", "4Gi")]);
    c.add_pod(&pod("cpu-hog", "2", "0"), "a");
    c.add_pod(&pod("both", "1", "1Gi"), "b");
    assert_eq!(schedule(&c, &pod("p", "500m", "512Mi")), Ok("b".into()));
}

#[test]
fn feasible_nodes_to_find_follows_adaptive_percentage() {
    assert_eq!(num_feasible_nodes_to_find(50, None), 50);
    assert_eq!(num_feasible_nodes_to_find(1000, None), 420);
    assert_eq!(num_feasible_nodes_to_find(5000, None), 500);
    assert_eq!(num_feasible_nodes_to_find(5000, Some(100)), 5000);
    assert_eq!(num_feasible_nodes_to_find(150, Some(10)), 100);
}
