//! What a request asks to do, in the terms policies are written in: upstream's RequestInfo. A resource request
//! (`/api/v1/...`, `/apis/<group>/<version>/...`) has a verb (get, list, watch, create, update, patch, delete,
//! deletecollection), API group, resource, subresource, namespace and name; anything else is a non-resource
//! request with the lowercased HTTP method as verb and the path.

use http::Method;

use crate::request::Query;
use crate::status::ApiError;

/// Subresources of a namespace, which live at `/namespaces/{ns}/{sub}` (upstream's `namespaceSubresources`).
const NAMESPACE_SUBRESOURCES: &[&str] = &["status", "finalize"];

/// One request as authorization sees it (upstream's `authorizer.Attributes`): what RBAC rules, the node
/// authorizer and SubjectAccessReviews are checked against.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attributes {
    /// The API verb (`get`, `list`, `watch`, `create`...) or, for a non-resource request, the lowercased method.
    pub verb: String,
    /// Whether the request addresses a resource (then the fields below it apply) rather than a plain path.
    pub resource_request: bool,
    /// The request path (non-resource requests).
    pub path: String,
    /// The namespace in the path, empty for cluster-scoped requests and all-namespace lists.
    pub namespace: String,
    /// The API group, empty for the core group.
    pub api_group: String,
    /// The resource (`pods`).
    pub resource: String,
    /// The subresource (`status`, `log`...), empty for the main resource.
    pub subresource: String,
    /// The object's name (for a list or watch, the one a `metadata.name=` field selector narrows it to), or empty.
    pub name: String,
}

impl Attributes {
    /// Whether `path` is a resource request (`/api/<v>/...` or `/apis/<g>/<v>/...` with something after the
    /// version), as opposed to discovery and other non-resource paths.
    pub fn is_resource_path(path: &str) -> bool {
        let segs: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
        matches!(segs.as_slice(), ["api", _, _, ..] | ["apis", _, _, _, ..])
    }

    /// What `method` on `path` asks, with the query as parsed once for the handler too (see
    /// [`crate::request::query`]): the verb (`watch` by the same reading of `watch` the handler uses) and, for a
    /// list or watch, the name an exact `metadata.name` field selector narrows it to.
    pub fn from_request(method: &Method, path: &str, query: &Query) -> Attributes {
        let segs: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
        let (group, rest) = match segs.as_slice() {
            ["api", _version, rest @ ..] if !rest.is_empty() => ("", rest),
            ["apis", g, _version, rest @ ..] if !rest.is_empty() => (*g, rest),
            _ => return Attributes { verb: method.as_str().to_ascii_lowercase(), path: path.to_string(), ..Default::default() },
        };
        let mut rest = rest.to_vec();
        let mut watch = query.watch;
        if rest.first() == Some(&"watch") {
            watch = true;
            rest.remove(0);
        }
        let mut a = Attributes { resource_request: true, api_group: group.to_string(), path: path.to_string(), ..Default::default() };
        // /namespaces/{ns}/{resource}/... is namespaced; /namespaces/{ns} alone, and its status and finalize
        // subresources, are the namespace itself (upstream's namespaceSubresources)
        if rest.first() == Some(&"namespaces") && rest.len() >= 2 {
            a.namespace = rest[1].to_string();
            if rest.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&rest[2]) {
                rest.drain(..2);
            }
        }
        a.resource = rest.first().map(|s| s.to_string()).unwrap_or_default();
        a.name = rest.get(1).map(|s| s.to_string()).unwrap_or_default();
        a.subresource = rest.get(2).map(|s| s.to_string()).unwrap_or_default();
        a.verb = match *method {
            Method::GET | Method::HEAD if watch => "watch",
            Method::GET | Method::HEAD if a.name.is_empty() => "list",
            Method::GET | Method::HEAD => "get",
            Method::POST => "create",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE if a.name.is_empty() => "deletecollection",
            Method::DELETE => "delete",
            _ => "",
        }
        .to_string();
        if method == Method::GET && a.verb == "get" && matches!(a.subresource.as_str(), "exec" | "attach" | "portforward") {
            // WebSocket upgrades come as GET; they write to the pod all the same (upstream 1.31+ asks for create)
            a.verb = "create".into();
        }
        if matches!(a.verb.as_str(), "list" | "watch") && a.name.is_empty() {
            // a list or watch of one object by name (`--field-selector metadata.name=x`) may use resourceNames
            // rules; the handler applies the very same parsed selector
            if let Some(name) = query.exact_name() {
                a.name = name.to_string();
            }
        }
        a
    }

    /// The check for one impersonation header: `impersonate` on users, groups, serviceaccounts, uids or
    /// userextras/<key>.
    pub fn impersonation(resource: &str, subresource: &str, namespace: &str, name: &str) -> Attributes {
        Attributes {
            verb: "impersonate".into(),
            resource_request: true,
            api_group: if resource == "uids" || resource == "userextras" { "authentication.k8s.io".into() } else { String::new() },
            resource: resource.into(),
            subresource: subresource.into(),
            namespace: namespace.into(),
            name: name.into(),
            path: String::new(),
        }
    }

    /// `resource` or `resource/subresource`, as messages and rules name it.
    pub fn full_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }

    /// Upstream's 403 for a denied request, word for word.
    pub fn forbidden(&self, user: &str) -> ApiError {
        if !self.resource_request {
            return ApiError::new(403, "Forbidden", format!("forbidden: User \"{user}\" cannot {} path \"{}\"", self.verb, self.path));
        }
        let scope = if self.namespace.is_empty() {
            "at the cluster scope".to_string()
        } else {
            format!("in the namespace \"{}\"", self.namespace)
        };
        let why = format!(
            "User \"{user}\" cannot {} resource \"{}\" in API group \"{}\" {scope}",
            self.verb,
            self.full_resource(),
            self.api_group
        );
        let qualified = if self.api_group.is_empty() { self.resource.clone() } else { format!("{}.{}", self.resource, self.api_group) };
        let message = if self.name.is_empty() {
            format!("{qualified} is forbidden: {why}")
        } else {
            format!("{qualified} \"{}\" is forbidden: {why}", self.name)
        };
        let mut details = serde_json::json!({"kind": self.resource});
        if !self.name.is_empty() {
            details["name"] = self.name.clone().into();
        }
        if !self.api_group.is_empty() {
            details["group"] = self.api_group.clone().into();
        }
        ApiError { code: 403, reason: "Forbidden", message, details: Some(details) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(method: Method, path: &str, query: Option<&str>) -> Attributes {
        Attributes::from_request(&method, path, &Query::parse(query).expect("valid query"))
    }

    #[test]
    fn resource_requests_are_read_like_upstream() {
        let a = attrs(Method::GET, "/api/v1/namespaces/default/pods", None);
        assert_eq!((a.verb.as_str(), a.namespace.as_str(), a.resource.as_str(), a.name.as_str()), ("list", "default", "pods", ""));
        let a = attrs(Method::GET, "/api/v1/namespaces/default/pods", Some("watch=true"));
        assert_eq!(a.verb, "watch");
        let a = attrs(Method::GET, "/api/v1/watch/namespaces/default/pods/web", None);
        assert_eq!((a.verb.as_str(), a.name.as_str()), ("watch", "web"));
        let a = attrs(Method::PATCH, "/apis/apps/v1/namespaces/x/deployments/web/scale", None);
        assert_eq!((a.verb.as_str(), a.api_group.as_str(), a.full_resource().as_str(), a.name.as_str()), ("patch", "apps", "deployments/scale", "web"));
        let a = attrs(Method::GET, "/api/v1/namespaces/kube-system", None);
        assert_eq!((a.verb.as_str(), a.resource.as_str(), a.name.as_str(), a.namespace.as_str()), ("get", "namespaces", "kube-system", "kube-system"));
        let a = attrs(Method::DELETE, "/api/v1/nodes", None);
        assert_eq!((a.verb.as_str(), a.namespace.as_str()), ("deletecollection", ""));
        let a = attrs(Method::GET, "/api/v1/namespaces/d/pods/p/exec", Some("command=sh"));
        assert_eq!(a.verb, "create", "a WebSocket exec writes to the pod");
        let a = attrs(Method::GET, "/api/v1/namespaces/d/pods", Some("fieldSelector=metadata.name%3Dweb"));
        assert_eq!((a.verb.as_str(), a.name.as_str()), ("list", "web"));
    }

    #[test]
    fn other_paths_are_non_resource_requests() {
        for p in ["/version", "/healthz", "/api", "/apis", "/apis/apps", "/api/v1", "/apis/apps/v1", "/openapi/v2"] {
            let a = attrs(Method::GET, p, None);
            assert!(!a.resource_request, "{p}");
            assert_eq!(a.verb, "get");
        }
    }

    #[test]
    fn forbidden_messages_match_upstream() {
        let a = attrs(Method::GET, "/api/v1/namespaces/default/pods", None);
        assert_eq!(
            a.forbidden("alice").message,
            "pods is forbidden: User \"alice\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
        );
        let a = attrs(Method::GET, "/apis/apps/v1/namespaces/default/deployments/web", None);
        assert_eq!(
            a.forbidden("alice").message,
            "deployments.apps \"web\" is forbidden: User \"alice\" cannot get resource \"deployments\" in API group \"apps\" in the namespace \"default\""
        );
        let a = attrs(Method::GET, "/api/v1/nodes", None);
        assert!(a.forbidden("bob").message.ends_with("in API group \"\" at the cluster scope"));
        let a = attrs(Method::GET, "/metrics", None);
        assert_eq!(a.forbidden("bob").message, "forbidden: User \"bob\" cannot get path \"/metrics\"");
        assert_eq!(a.forbidden("bob").code, 403);
    }
}
