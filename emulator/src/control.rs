//! Control API under `/_emulator/` (loopback only, no auth): request log, counters, reset,
//! and run-time replacement of the world and the fault configuration.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::faults::{FaultConfig, validate_faults};
use crate::state::Shared;
use crate::world::{ResourceKind, World};

pub fn router() -> Router<Shared> {
    Router::new()
        .route("/requests", get(requests))
        .route("/counters", get(counters))
        .route("/reset", post(reset))
        .route("/world", get(get_world).put(put_world))
        .route("/faults", get(get_faults).put(put_faults))
        .route("/exec-sessions", get(exec_sessions))
        .route(
            "/subscriptions/{sub}/resourceGroups/{rg}/{kind}/{name}",
            axum::routing::put(put_resource).delete(delete_resource),
        )
}

fn bad(msg: String) -> Response {
    (StatusCode::BAD_REQUEST, axum::Json(json!({"error": msg}))).into_response()
}

async fn requests(State(s): State<Shared>) -> Response {
    axum::Json(s.stats().log.clone()).into_response()
}

async fn counters(State(s): State<Shared>) -> Response {
    axum::Json(s.stats().counters_json()).into_response()
}

/// Clears counters, the request log, Retry-After bookkeeping and the rate-limit buckets.
async fn reset(State(s): State<Shared>) -> Response {
    s.stats().reset();
    s.buckets.lock().expect("buckets lock").clear();
    axum::Json(json!({"reset": true})).into_response()
}

async fn get_world(State(s): State<Shared>) -> Response {
    axum::Json(s.world().as_ref().clone()).into_response()
}

/// Applies a world: replaces resources; `faults`/`budgets` in it replace the current ones. The
/// world's clock restarts (windows such as `notReplicatedForSeconds` count from now).
pub fn apply_world(s: &Shared, world: World) -> Result<(), String> {
    if let Some(f) = &world.faults {
        validate_faults(f)?;
        *s.faults.write().expect("faults lock") = f.clone();
    }
    if let Some(b) = &world.budgets {
        *s.budgets.write().expect("budgets lock") = b.clone();
    }
    *s.world.write().expect("world lock") = Arc::new(world);
    *s.world_since.write().expect("world clock lock") = std::time::Instant::now();
    Ok(())
}

async fn put_world(State(s): State<Shared>, body: String) -> Response {
    let world = match World::parse(&body) {
        Ok(w) => w,
        Err(e) => return bad(format!("invalid world: {e}")),
    };
    match apply_world(&s, world) {
        Ok(()) => axum::Json(json!({"applied": true})).into_response(),
        Err(e) => bad(e),
    }
}

type ResourcePath = Path<(String, String, String, String)>;

fn resource_kind(kind: &str) -> Result<ResourceKind, Response> {
    ResourceKind::parse(kind).ok_or_else(|| {
        bad(format!(
            "unknown collection '{kind}' (managedClusters, connectedClusters, containerGroups)"
        ))
    })
}

/// Adds or replaces one resource (body: its world fields, YAML or JSON). Unlike `PUT /world`, the
/// rest of the world, its clock, faults and budgets stay as they are.
async fn put_resource(
    State(s): State<Shared>,
    Path((sub, rg, kind, name)): ResourcePath,
    body: String,
) -> Response {
    let kind = match resource_kind(&kind) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let fields: serde_json::Value = match serde_saphyr::from_str(&body) {
        Ok(serde_json::Value::Null) => json!({}),
        Ok(v) => v,
        Err(e) => return bad(format!("invalid resource: {e}")),
    };
    let mut current = s.world.write().expect("world lock");
    let mut world = current.as_ref().clone();
    match world.put_resource(&sub, &rg, kind, &name, fields) {
        Ok(created) => {
            *current = Arc::new(world);
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (status, axum::Json(json!({"applied": true}))).into_response()
        }
        Err(e) => bad(e),
    }
}

async fn delete_resource(
    State(s): State<Shared>,
    Path((sub, rg, kind, name)): ResourcePath,
) -> Response {
    let kind = match resource_kind(&kind) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let mut current = s.world.write().expect("world lock");
    let mut world = current.as_ref().clone();
    if !world.remove_resource(&sub, &rg, kind, &name) {
        let msg = format!("no {name} in {sub}/{rg}");
        return (StatusCode::NOT_FOUND, axum::Json(json!({"error": msg}))).into_response();
    }
    *current = Arc::new(world);
    axum::Json(json!({"deleted": true})).into_response()
}

async fn get_faults(State(s): State<Shared>) -> Response {
    axum::Json(s.faults()).into_response()
}

async fn put_faults(State(s): State<Shared>, body: String) -> Response {
    let cfg: FaultConfig = match serde_saphyr::from_str(&body) {
        Ok(c) => c,
        Err(e) => return bad(format!("invalid faults: {e}")),
    };
    if let Err(e) = validate_faults(&cfg) {
        return bad(e);
    }
    *s.faults.write().expect("faults lock") = cfg;
    axum::Json(json!({"applied": true})).into_response()
}

/// The exec sessions in the order they were handed out (oldest first).
async fn exec_sessions(State(s): State<Shared>) -> Response {
    let mut list: Vec<_> = s
        .exec_sessions
        .lock()
        .expect("sessions lock")
        .values()
        .cloned()
        .collect();
    // Every session gets the same time to live, so expiry orders them by creation.
    list.sort_by_key(|x| x.expires);
    axum::Json(list).into_response()
}
