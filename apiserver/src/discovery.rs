//! Discovery documents built from the resource table: legacy `/api` (APIVersions), `/apis` (APIGroupList),
//! `/api/v1` and `/apis/<g>/<v>` (APIResourceList), and aggregated discovery (APIGroupDiscoveryList, v2 and
//! v2beta1) which newer kubectl asks for first, plus `/version`.

use serde_json::{json, Value};

use crate::registry::{self, ResourceInfo};

/// The Kubernetes major version this server reports.
pub const KUBE_MAJOR: &str = "1";
/// The Kubernetes minor version this server reports (kubectl warns when it is more than one away from its own).
pub const KUBE_MINOR: &str = "33";
/// The `gitVersion` of `/version`, what `kubectl version` prints as the server version.
pub const GIT_VERSION: &str = "v1.33.0-rkube";

/// The `/version` document (`version.Info`).
pub fn version() -> Value {
    json!({
        "major": KUBE_MAJOR,
        "minor": KUBE_MINOR,
        "gitVersion": GIT_VERSION,
        "gitCommit": env!("CARGO_PKG_VERSION"),
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "rust",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, if std::env::consts::ARCH == "x86_64" { "amd64" } else { std::env::consts::ARCH }),
    })
}

/// `/api`.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_version_str(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

/// `/apis`.
pub fn api_group_list() -> Value {
    let groups: Vec<Value> = registry::groups()
        .into_iter()
        .filter(|g| !g.is_empty())
        .map(|g| {
            let v = registry::group_version(g).unwrap_or("v1");
            let gv = json!({"groupVersion": group_version_str(g, v), "version": v});
            json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`.
pub fn api_group(group: &str) -> Option<Value> {
    let v = registry::group_version(group)?;
    let gv = json!({"groupVersion": group_version_str(group, v), "version": v});
    Some(json!({"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": [gv.clone()], "preferredVersion": gv}))
}

/// `/api/v1` or `/apis/<group>/<version>`.
pub fn api_resource_list(group: &str, version: &str) -> Option<Value> {
    if registry::group_version(group) != Some(version) {
        return None;
    }
    let mut resources = Vec::new();
    for r in registry::resources_of(group, version) {
        let mut main = json!({
            "name": r.resource,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs,
        });
        if !r.short_names.is_empty() {
            main["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            main["categories"] = json!(r.categories);
        }
        resources.push(main);
        for s in r.subresources {
            let mut sub = json!({
                "name": format!("{}/{}", r.resource, s.name),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": s.kind,
                "verbs": s.verbs,
            });
            if s.group != r.group || s.version != r.version {
                sub["group"] = json!(s.group);
                sub["version"] = json!(s.version);
            }
            resources.push(sub);
        }
    }
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version_str(group, version),
        "resources": resources,
    }))
}

fn aggregated_resource(r: &ResourceInfo) -> Value {
    let mut res = json!({
        "resource": r.resource,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": r.verbs,
    });
    if !r.short_names.is_empty() {
        res["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        res["categories"] = json!(r.categories);
    }
    if !r.subresources.is_empty() {
        res["subresources"] = json!(r
            .subresources
            .iter()
            .map(|s| json!({
                "subresource": s.name,
                "responseKind": {"group": s.group, "version": s.version, "kind": s.kind},
                "verbs": s.verbs,
            }))
            .collect::<Vec<_>>());
    }
    res
}

/// Aggregated discovery for the core group (`legacy` = `/api`) or all named groups (`/apis`).
pub fn aggregated(legacy: bool, version: &str) -> Value {
    let items: Vec<Value> = registry::groups()
        .into_iter()
        .filter(|g| g.is_empty() == legacy)
        .map(|g| {
            let v = registry::group_version(g).unwrap_or("v1");
            let resources: Vec<Value> = registry::resources_of(g, v).map(aggregated_resource).collect();
            json!({
                "metadata": {"name": g, "creationTimestamp": null},
                "versions": [{"version": v, "resources": resources, "freshness": "Current"}],
            })
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    })
}

/// Which aggregated discovery version the Accept header asks for, if any (`v2` or `v2beta1`), in the client's
/// order of preference.
pub fn wants_aggregated(accept: &str) -> Option<&'static str> {
    for part in accept.split(',') {
        let p = part.replace(' ', "");
        if p.contains("g=apidiscovery.k8s.io") && p.contains("as=APIGroupDiscoveryList") {
            if p.contains("v=v2beta1") {
                return Some("v2beta1");
            }
            if p.contains("v=v2") {
                return Some("v2");
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subresources_are_listed() {
        let l = api_resource_list("apps", "v1").expect("apps/v1");
        let names: Vec<&str> = l["resources"].as_array().into_iter().flatten().filter_map(|r| r["name"].as_str()).collect();
        assert!(names.contains(&"deployments/scale"));
        assert!(names.contains(&"deployments/status"));
        let scale = l["resources"].as_array().into_iter().flatten().find(|r| r["name"] == "deployments/scale").expect("scale");
        assert_eq!(scale["group"], "autoscaling");
    }

    #[test]
    fn aggregated_accept_negotiation() {
        assert_eq!(
            wants_aggregated("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"),
            Some("v2")
        );
        assert_eq!(wants_aggregated("application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"), Some("v2beta1"));
        assert_eq!(wants_aggregated("application/json"), None);
        let core = aggregated(true, "v2");
        assert_eq!(core["items"][0]["metadata"]["name"], "");
        assert!(aggregated(false, "v2")["items"].as_array().is_some_and(|a| a.len() >= 5));
    }
}
