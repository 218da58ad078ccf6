//! App Service style managed identity endpoint (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`).

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::entra::{audience_of, entra_fault, issue};
use crate::server::{ConnCtl, tag};
use crate::state::{Shared, TokenInfo};
use crate::world::World;

/// `GET /msi/token?api-version=2019-08-01&resource=...` with `x-identity-header` (App Service shape).
pub async fn msi_token(
    State(state): State<Shared>,
    Extension(ctl): Extension<ConnCtl>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let op = "msi.token";
    if let Some(r) = entra_fault(&state, op, &ctl, "/msi/token").await {
        return tag(r, op, None);
    }
    let world = state.world();
    let (resp, client) = msi_inner(&state, &world, &headers, &q);
    tag(resp, op, client.as_deref())
}

fn msi_inner(
    state: &Shared,
    world: &World,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
) -> (Response, Option<String>) {
    let bad = |status: StatusCode, msg: &str| {
        (
            (
                status,
                axum::Json(json!({"statusCode": status.as_u16(), "message": msg})),
            )
                .into_response(),
            None,
        )
    };
    let Some(mi) = &world.managed_identity else {
        return bad(
            StatusCode::BAD_REQUEST,
            "No managed identity is configured.",
        );
    };
    let sent = headers
        .get("x-identity-header")
        .and_then(|v| v.to_str().ok());
    if sent != Some(mi.header.as_str()) {
        return bad(
            StatusCode::UNAUTHORIZED,
            "Unauthorized: missing or wrong x-identity-header.",
        );
    }
    if q.get("api-version").map(String::as_str) != Some("2019-08-01") {
        return bad(StatusCode::BAD_REQUEST, "api-version must be 2019-08-01.");
    }
    if let Some(cid) = q.get("client_id")
        && !cid.eq_ignore_ascii_case(&mi.client_id)
    {
        return bad(
            StatusCode::BAD_REQUEST,
            "No managed identity with that client_id is assigned.",
        );
    }
    if q.contains_key("object_id") || q.contains_key("mi_res_id") || q.contains_key("msi_res_id") {
        return bad(
            StatusCode::BAD_REQUEST,
            "Only client_id selection is supported by the emulator.",
        );
    }
    let resource = q.get("resource").map(String::as_str).unwrap_or("");
    let Some(audience) = audience_of(resource, &state.settings.base_url) else {
        return bad(
            StatusCode::BAD_REQUEST,
            &format!("Unknown resource '{resource}'."),
        );
    };
    let lifetime = world
        .principal_any_tenant(&mi.client_id)
        .and_then(|p| p.token_lifetime_seconds)
        .unwrap_or(state.settings.token_lifetime);
    let expires = SystemTime::now() + Duration::from_secs(lifetime);
    let token = issue(
        state,
        TokenInfo {
            client_id: mi.client_id.clone(),
            object_id: mi
                .object_id
                .clone()
                .unwrap_or_else(|| crate::world::derived_object_id(&mi.client_id)),
            tenant_id: mi.tenant_id.clone(),
            audience,
            expires_at: expires,
        },
    );
    let expires_on = expires
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let body = json!({
        "access_token": token,
        "expires_on": expires_on.to_string(),
        "resource": resource,
        "token_type": "Bearer",
        "client_id": mi.client_id,
    });
    (axum::Json(body).into_response(), Some(mi.client_id.clone()))
}
