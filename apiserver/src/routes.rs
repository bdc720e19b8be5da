//! The router: every request goes through one dispatcher that parses the path once against the resource table,
//! authenticates and authorizes it, and serves discovery, OpenAPI, health and metrics itself; resource paths go
//! to `handlers`, pod streams and node proxying to `proxy`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Router;
use http::{header, Method, Request, StatusCode};
use serde_json::json;

use crate::auth::attributes::Attributes;
use crate::discovery;
use crate::handlers::{self, context::json_response};
use crate::openapi;
use crate::request::Query;
use crate::state::ApiState;
use crate::status::ApiError;

/// The router: everything goes through one dispatcher so paths are parsed once against the resource table.
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new().fallback(dispatch).with_state(state)
}

async fn dispatch(State(state): State<Arc<ApiState>>, req: Request<Body>) -> Response {
    let (parts, body) = req.into_parts();
    let method = parts.method.clone();
    let path = parts.uri.path().to_string();
    let headers = parts.headers.clone();
    let tls = parts.extensions.get::<crate::auth::TlsIdentity>();
    if tls.is_none() {
        // plain HTTP: no authentication, so no browser page from another site (or a rebound name) may use it
        if let Err(e) = crate::request::origin::check_plain_http(&headers, parts.uri.host(), &state.config.tls_hosts) {
            tracing::debug!(path, message = %e.message, "plain-HTTP request refused");
            return e.into_response();
        }
    }
    let user = match crate::auth::authenticate(&state, tls, &headers, &path).await {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    // The query is parsed once, here: authorization and the handler read this one value.
    let query = match Query::parse(parts.uri.query()) {
        Ok(q) => q,
        Err(e) if Attributes::is_resource_path(&path) => return e.into_response(),
        Err(_) => Query::default(),
    };
    let attrs = Attributes::from_request(&method, &path, &query);
    if let Err(e) = crate::auth::authorize(&state, &user, &attrs).await {
        return e.into_response();
    }
    let segs: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let accept = crate::request::accept(&headers).to_string();
    if method == Method::GET {
        match segs.as_slice() {
            ["version"] => return json_response(StatusCode::OK, &discovery::version()),
            ["healthz" | "livez" | "readyz", ..] => return health(&state, &segs).await,
            ["debug", "rkube", "traces", rest @ ..] => return handlers::trace::serve(rest, &path),
            ["metrics"] => {
                return ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render() + &rkube_trace::export::metrics()).into_response()
            }
            ["api"] => {
                return match discovery::wants_aggregated(&accept) {
                    Some(v) => aggregated_response(discovery::aggregated(true, v), v),
                    None => json_response(StatusCode::OK, &discovery::api_versions(&state.advertise)),
                }
            }
            ["apis"] => {
                return match discovery::wants_aggregated(&accept) {
                    Some(v) => aggregated_response(discovery::aggregated(false, v), v),
                    None => json_response(StatusCode::OK, &discovery::api_group_list()),
                }
            }
            ["api", "v1"] => return json_or_404(discovery::api_resource_list("", "v1"), &path),
            ["apis", g] => return json_or_404(discovery::api_group(g), &path),
            ["apis", g, v] => return json_or_404(discovery::api_resource_list(g, v), &path),
            ["openapi", "v2"] | ["swagger-2.0.0.pb-v1"] | ["swagger.json"] => return openapi::v2::respond(&headers),
            ["openapi", "v3"] => return openapi::v3::index(),
            ["openapi", "v3", rest @ ..] => return openapi::v3::document(&rest.join("/")),
            // Custom resources are not served, so there are none; kubectl lists them to learn whether a kind
            // it cannot validate client-side (a TokenReview, say) is a custom one, and fails on a 404.
            ["apis", "apiextensions.k8s.io", "v1", "customresourcedefinitions"] => {
                let rv = state.store.current_revision().await.map(|r| r.to_string()).unwrap_or_default();
                return json_response(
                    StatusCode::OK,
                    &json!({"kind": "CustomResourceDefinitionList", "apiVersion": "apiextensions.k8s.io/v1", "metadata": {"resourceVersion": rv}, "items": []}),
                );
            }
            _ => {}
        }
    }
    // Streaming subresources are proxied to the kubelet as raw upgraded connections, before any body is read.
    match segs.as_slice() {
        ["api", "v1", "namespaces", ns, "pods", name, sub @ ("exec" | "attach" | "portforward")]
            if matches!(method, Method::GET | Method::POST) =>
        {
            let (ns, name, sub) = (ns.to_string(), name.to_string(), sub.to_string());
            return crate::node_proxy::pod_stream(state, &ns, &name, &sub, &query, Request::from_parts(parts, body)).await;
        }
        ["api", "v1", "nodes", name, "proxy", rest @ ..] => {
            let (name, rest) = (name.to_string(), rest.join("/"));
            return crate::node_proxy::node_proxy(state, &name, &rest, Request::from_parts(parts, body)).await;
        }
        _ => {}
    }
    match segs.first() {
        Some(&"api") | Some(&"apis") => {
            let asked = handlers::Asked { query, verb: attrs.verb };
            handlers::resource_request(state, user, method, parts.uri, asked, headers, body).await
        }
        _ => ApiError::path_not_found(&path).into_response(),
    }
}

fn aggregated_response(doc: serde_json::Value, version: &str) -> Response {
    let ct = format!("application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList");
    let body = serde_json::to_vec(&doc).unwrap_or_default();
    (StatusCode::OK, [(header::CONTENT_TYPE, ct)], body).into_response()
}

fn json_or_404(doc: Option<serde_json::Value>, path: &str) -> Response {
    match doc {
        Some(d) => json_response(StatusCode::OK, &d),
        None => ApiError::path_not_found(path).into_response(),
    }
}

async fn health(state: &ApiState, segs: &[&str]) -> Response {
    let store_ok = state.store.current_revision().await.is_ok();
    if segs.len() > 1 && segs[1] == "ping" {
        return (StatusCode::OK, "ok").into_response();
    }
    if store_ok {
        (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "ok").into_response()
    } else {
        (StatusCode::INTERNAL_SERVER_ERROR, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "[-]etcd failed: storage unreachable\nhealthz check failed").into_response()
    }
}
