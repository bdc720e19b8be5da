//! Services against the real apiserver with simulated nodes: the `kubernetes` Service, ClusterIP and
//! NodePort allocation with conflict checks, Endpoints/EndpointSlices with ready and not-ready addresses.

mod common;

use std::time::Duration;

use common::{create, wait_for, Cluster};
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::PostParams;
use kube::Api;
use serde_json::json;

const T: Duration = Duration::from_secs(30);

fn svc(name: &str, extra: serde_json::Value) -> Service {
    let mut v = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}});
    if let (Some(spec), Some(extra)) = (v["spec"].as_object_mut(), extra.as_object()) {
        for (k, val) in extra {
            spec.insert(k.clone(), val.clone());
        }
    }
    serde_json::from_value(v).expect("service json")
}

fn invalid_message(e: kube::Error) -> String {
    match e {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 422, "{s:?}");
            s.message
        }
        other => panic!("expected a 422 Invalid, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_service_cluster_ip_and_node_port_allocation_with_conflicts() {
    let cluster = Cluster::start(1).await;
    let default: Api<Service> = Api::namespaced(cluster.client.clone(), "default");
    let k = default.get("kubernetes").await.expect("the kubernetes Service in default");
    let spec = k.spec.expect("spec");
    assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.1"), "first address of 10.96.0.0/12");
    assert_eq!(spec.ports.as_ref().and_then(|p| p.first()).map(|p| p.port), Some(443));

    let ns = cluster.namespace("rksv").await;
    let api: Api<Service> = Api::namespaced(cluster.client.clone(), &ns);
    let pp = PostParams::default();
    // allocated ClusterIPs are distinct and inside 10.96.0.0/12
    let range: ipnet::Ipv4Net = "10.96.0.0/12".parse().expect("cidr");
    let mut ips = Vec::new();
    for i in 0..5 {
        let s = api.create(&pp, &svc(&format!("auto-{i}"), json!({}))).await.expect("create service");
        let ip: std::net::Ipv4Addr = s.spec.and_then(|s| s.cluster_ip).expect("clusterIP").parse().expect("ip");
        assert!(range.contains(&ip), "{ip} outside {range}");
        ips.push(ip);
    }
    let mut uniq = ips.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), ips.len(), "{ips:?}");
    // a requested ClusterIP is honoured once, then refused
    let fixed = api.create(&pp, &svc("fixed", json!({"clusterIP": "10.96.77.7"}))).await.expect("requested IP");
    assert_eq!(fixed.spec.and_then(|s| s.cluster_ip).as_deref(), Some("10.96.77.7"));
    let e = api.create(&pp, &svc("fixed-2", json!({"clusterIP": "10.96.77.7"}))).await.expect_err("IP taken");
    assert!(invalid_message(e).contains("provided IP is already allocated"));
    let e = api.create(&pp, &svc("outside", json!({"clusterIP": "10.244.0.9"}))).await.expect_err("outside the range");
    assert!(invalid_message(e).contains("not in the valid range"));
    assert!(api.get_opt("fixed-2").await.expect("get").is_none(), "a refused service leaves nothing behind");
    // NodePort: allocated from 30000-32767; a requested port is honoured once, then refused
    let np = api.create(&pp, &svc("np", json!({"type": "NodePort"}))).await.expect("NodePort service");
    let port = np.spec.and_then(|s| s.ports).and_then(|p| p.first().and_then(|p| p.node_port)).expect("nodePort");
    assert!((30000..=32767).contains(&port), "{port}");
    let mut want = svc("np-fixed", json!({"type": "NodePort"}));
    if let Some(p) = want.spec.as_mut().and_then(|s| s.ports.as_mut()).and_then(|p| p.first_mut()) {
        p.node_port = Some(port);
    }
    let e = api.create(&pp, &want).await.expect_err("nodePort taken");
    assert!(invalid_message(e).contains("provided port is already allocated"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_list_ready_and_not_ready_addresses() {
    let cluster = Cluster::start(2).await;
    let ns = cluster.namespace("rkep").await;
    let _: Service = create(&cluster.client, &ns, serde_json::to_value(svc("web", json!({}))).expect("json")).await;
    for (name, image) in [("web-ready", "web"), ("web-unready", "unready")] {
        let _: Pod = create(&cluster.client, &ns, json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": image}]}
        }))
        .await;
    }
    let ep: Api<Endpoints> = Api::namespaced(cluster.client.clone(), &ns);
    let (ready, not_ready) = wait_for("one ready and one not-ready address", T, || {
        let ep = ep.clone();
        async move {
            let s = ep.get_opt("web").await.ok()??.subsets?.into_iter().next()?;
            let names = |a: Option<Vec<k8s_openapi::api::core::v1::EndpointAddress>>| {
                a.unwrap_or_default().into_iter().filter_map(|a| a.target_ref?.name).collect::<Vec<_>>()
            };
            let (r, n) = (names(s.addresses), names(s.not_ready_addresses));
            (r.len() == 1 && n.len() == 1).then_some((r, n))
        }
    })
    .await;
    assert_eq!(ready, vec!["web-ready"]);
    assert_eq!(not_ready, vec!["web-unready"]);
    let slices: Api<EndpointSlice> = Api::namespaced(cluster.client.clone(), &ns);
    let list = slices.list(&kube::api::ListParams::default().labels("kubernetes.io/service-name=web")).await.expect("slices");
    assert_eq!(list.items.len(), 1);
    let mut by_ready: Vec<(String, Option<bool>)> = list.items[0]
        .endpoints
        .iter()
        .map(|e| (e.target_ref.as_ref().and_then(|t| t.name.clone()).unwrap_or_default(), e.conditions.as_ref().and_then(|c| c.ready)))
        .collect();
    by_ready.sort();
    assert_eq!(by_ready, vec![("web-ready".into(), Some(true)), ("web-unready".into(), Some(false))]);
    // the pod going away takes its address with it
    let papi: Api<Pod> = Api::namespaced(cluster.client.clone(), &ns);
    papi.delete("web-unready", &Default::default()).await.expect("delete pod");
    wait_for("not-ready address removed", T, || {
        let ep = ep.clone();
        async move {
            let s = ep.get_opt("web").await.ok()??.subsets?.into_iter().next()?;
            s.not_ready_addresses.unwrap_or_default().is_empty().then_some(())
        }
    })
    .await;
}
