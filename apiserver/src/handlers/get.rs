//! GET of one object, its `status`, or its `scale` (an autoscaling/v1 Scale built from the object).

use axum::response::Response;
use http::StatusCode;
use serde_json::{json, Value};

use super::context::{json_response, read_object, set_type_meta, Ctx};
use crate::request;
use crate::status::ApiError;
use crate::table::{self, selector_string};

/// GET of one object or of its `status`/`scale` subresource, as JSON, YAML or a one-row Table.
pub async fn get(ctx: &Ctx) -> Result<Response, ApiError> {
    let info = ctx.info();
    let name = ctx.name();
    let Some((mut obj, _)) = read_object(&ctx.state, info, &ctx.target.key(), name).await? else {
        return Err(ApiError::not_found(info, name));
    };
    set_type_meta(&mut obj, info);
    match ctx.target.subresource.as_deref() {
        None | Some("status") => {
            if ctx.target.subresource.is_some() && !info.has_status {
                return Err(ApiError::path_not_found(&ctx.path));
            }
            if request::wants_table(&ctx.headers) {
                let t = table::table(info, crate::strategy::of(info).printer(), std::slice::from_ref(&obj), "", &ctx.query, request::table_version(&ctx.headers));
                return Ok(json_response(StatusCode::OK, &t));
            }
            Ok(json_response(StatusCode::OK, &obj))
        }
        Some("scale") if info.subresource("scale").is_some() => Ok(json_response(StatusCode::OK, &scale_of(&obj))),
        Some("log") if info.resource == "pods" => crate::node_proxy::pod_log(ctx, &obj).await,
        Some(sub @ ("exec" | "attach" | "portforward")) if info.resource == "pods" => Err(super::create::not_served(sub)),
        Some(_) => Err(ApiError::path_not_found(&ctx.path)),
    }
}

/// The autoscaling/v1 Scale view of a scalable object.
pub fn scale_of(obj: &Value) -> Value {
    let meta = &obj["metadata"];
    let selector = obj.pointer("/spec/selector").map(selector_string).unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"],
            "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(0))},
        "status": {
            "replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector,
        },
    })
}

