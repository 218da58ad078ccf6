//! Microsoft.HybridContainerService (AKS Arc) list{User,Admin}Kubeconfig: an ARM long-running
//! operation whose headers follow each api-version's swagger (see [`final_state_via_location`]).

use std::time::SystemTime;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::kubeconfig::{self, Doc, User};
use super::path::RgScope;
use super::{Ctx, arm_error, require_rg, resource_not_found};
use crate::state::rfc3339;
use crate::world::LroError;

#[derive(Debug, Clone)]
pub struct HybridOp {
    pub id: String,
    pub location: String,
    pub scope: RgScope,
    pub cluster: String,
    pub admin: bool,
    pub polls: u32,
    pub in_progress_polls: u32,
    pub started: SystemTime,
    pub ended: Option<SystemTime>,
    /// Final body pieces, fixed when the operation completes.
    pub result: Option<Result<String, LroError>>,
}

fn api_version_ok(ctx: &Ctx, location: &str) -> Result<(), Response> {
    let supported = &ctx.state.settings.hybrid_api_versions;
    if supported
        .iter()
        .any(|v| v.eq_ignore_ascii_case(&ctx.api_version))
    {
        return Ok(());
    }
    Err(arm_error(
        StatusCode::BAD_REQUEST,
        "NoRegisteredProviderFound",
        format!(
            "No registered resource provider found for location '{location}' and API version '{}' for type 'provisionedClusterInstances'. The supported api-versions are '{}'.",
            ctx.api_version,
            supported.join(", ")
        ),
    ))
}

/// The api-versions whose swagger declares the list operations `final-state-via: location` with a
/// 202 carrying only `Location` and `Retry-After` (specification/hybridaks/resource-manager/
/// Microsoft.HybridContainerService/HybridContainerService/preview/2026-04-01-preview/openapi.json,
/// and preview/2026-06-01-preview/openapi.json likewise). The others answer like 2024-01-01
/// (stable/2024-01-01/provisionedClusterInstances.json: `final-state-via: azure-async-operation`,
/// with `Location` as well).
fn final_state_via_location(api_version: &str) -> bool {
    ["2026-04-01-preview", "2026-06-01-preview"]
        .iter()
        .any(|v| api_version.eq_ignore_ascii_case(v))
}

fn instance_id(scope: &RgScope, cluster: &str) -> String {
    format!(
        "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Kubernetes/connectedClusters/{cluster}/providers/Microsoft.HybridContainerService/provisionedClusterInstances/default",
        scope.sub, scope.rg
    )
}

/// Tenant-level, like the service's own (the spec examples' `id`:
/// `/providers/Microsoft.HybridContainerService/locations/EASTUS/operationStatuses/<uuid>*<HEX>`).
fn op_path(location: &str, kind: &str, id: &str) -> String {
    format!("/providers/Microsoft.HybridContainerService/locations/{location}/{kind}/{id}")
}

pub fn list_kubeconfig(ctx: &Ctx, scope: &RgScope, cluster: &str, admin: bool) -> Response {
    let rg_location = ctx
        .world
        .resource_group(&scope.sub, &scope.rg)
        .map(|g| g.location.clone())
        .unwrap_or_else(|| "westeurope".into());
    if let Err(r) = api_version_ok(ctx, &rg_location) {
        return r;
    }
    if let Err(r) = require_rg(ctx, scope) {
        return r;
    }
    let Some(cc) = ctx.world.connected_cluster(&scope.sub, &scope.rg, cluster) else {
        return resource_not_found("Microsoft.Kubernetes/connectedClusters", cluster, &scope.rg);
    };
    let location = cc.location.clone().unwrap_or(rg_location);
    let id = format!(
        "{}*{}",
        uuid::Uuid::new_v4(),
        crate::state::random_hex().to_ascii_uppercase()
    );
    let op = HybridOp {
        id: id.clone(),
        location: location.clone(),
        scope: scope.clone(),
        cluster: cc.name.clone(),
        admin,
        polls: 0,
        in_progress_polls: cc.lro_polls.unwrap_or(2),
        started: SystemTime::now(),
        ended: None,
        result: None,
    };
    ctx.state
        .hybrid_ops
        .lock()
        .expect("ops lock")
        .insert(id.clone(), op);
    let mut resp = StatusCode::ACCEPTED.into_response();
    let h = resp.headers_mut();
    let mut links = vec![("location", "operationResults")];
    if !final_state_via_location(&ctx.api_version) {
        links.push(("azure-asyncoperation", "operationStatuses"));
    }
    for (name, kind) in links {
        if let Ok(v) = HeaderValue::from_str(&ctx.url(&op_path(&location, kind, &id))) {
            h.insert(name, v);
        }
    }
    ctx.retry_after().apply(h);
    resp
}

/// The kubeconfig value from the *current* world (so rotations show up), or the LRO error.
fn complete(ctx: &Ctx, op: &HybridOp) -> Result<String, LroError> {
    let Some(cc) = ctx
        .world
        .connected_cluster(&op.scope.sub, &op.scope.rg, &op.cluster)
    else {
        return Err(LroError {
            code: "ResourceNotFound".into(),
            message: format!("connected cluster '{}' no longer exists", op.cluster),
        });
    };
    if let Some(e) = &cc.lro_error {
        return Err(e.clone());
    }
    let spec = &cc.kubeconfig;
    let default_server = format!(
        "https://{}.{}.arc.emulator.local:6443",
        cc.name, op.location
    );
    let (server, ca_data) =
        kubeconfig::endpoint(spec, false, default_server, &ctx.state.settings.ca_pem);
    let tenant = ctx
        .world
        .subscription(&op.scope.sub)
        .map(|s| ctx.world.subscription_tenant(s))
        .unwrap_or_default();
    let (role, user) = if op.admin {
        ("clusterAdmin", kubeconfig::admin_user(spec, &cc.name))
    } else if spec.user_exec {
        ("clusterUser", User::Exec { tenant })
    } else {
        let token = spec
            .user_token
            .clone()
            .unwrap_or_else(|| format!("emulator-user-token-{}", cc.name));
        ("clusterUser", User::Token(token))
    };
    let doc = Doc {
        cluster: &cc.name,
        context: format!("{}-{}", cc.name, if op.admin { "admin" } else { "user" }),
        user_name: format!("{role}_{}_{}", op.scope.rg, cc.name),
        server,
        ca_data,
        user,
    };
    Ok(kubeconfig::encode(&doc, cc.kubeconfig_fault))
}

fn body(op: &HybridOp) -> Value {
    let mut b = json!({
        "id": op_path(&op.location, "operationStatuses", &op.id),
        "name": op.id,
        "resourceId": instance_id(&op.scope, &op.cluster),
        "startTime": rfc3339(op.started),
    });
    match &op.result {
        None => b["status"] = json!("InProgress"),
        Some(Ok(value)) => {
            b["status"] = json!("Succeeded");
            b["properties"] = json!({"kubeconfigs": [{"name": if op.admin { "clusterAdmin" } else { "clusterUser" }, "value": value}]});
        }
        Some(Err(e)) => {
            b["status"] = json!("Failed");
            b["error"] = json!({"code": e.code, "message": e.message});
        }
    }
    if let Some(t) = op.ended {
        b["endTime"] = json!(rfc3339(t));
    }
    b
}

/// GET on the Azure-AsyncOperation (`result == false`) or Location (`result == true`) URL.
pub fn poll(ctx: &Ctx, id: &str, result: bool) -> Response {
    let snapshot = ctx
        .state
        .hybrid_ops
        .lock()
        .expect("ops lock")
        .get(id)
        .cloned();
    let Some(mut op) = snapshot else {
        return arm_error(
            StatusCode::NOT_FOUND,
            "OperationNotFound",
            format!("The operation '{id}' was not found."),
        );
    };
    if let Err(r) = api_version_ok(ctx, &op.location) {
        return r;
    }
    op.polls += 1;
    if op.result.is_none() && op.polls > op.in_progress_polls {
        op.result = Some(complete(ctx, &op));
        op.ended = Some(SystemTime::now());
    }
    ctx.state
        .hybrid_ops
        .lock()
        .expect("ops lock")
        .insert(id.to_string(), op.clone());
    if result && op.result.is_none() {
        let mut resp = StatusCode::ACCEPTED.into_response();
        let h = resp.headers_mut();
        if let Ok(v) =
            HeaderValue::from_str(&ctx.url(&op_path(&op.location, "operationResults", id)))
        {
            h.insert("location", v);
        }
        ctx.retry_after().apply(h);
        return resp;
    }
    let mut resp = axum::Json(body(&op)).into_response();
    if !result && op.result.is_none() {
        ctx.retry_after().apply(resp.headers_mut());
    }
    resp
}
