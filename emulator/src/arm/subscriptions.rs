//! Microsoft.Resources subscriptions: `GET /subscriptions` (what `az login` lists to build its
//! profile) and `GET /subscriptions/{id}` (`az login --skip-subscription-discovery -s ID`).

use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Ctx, subscription_not_found};
use crate::world::{Subscription, World};

/// One subscription in ARM's shape (Subscriptions - List, 2022-12-01).
fn body(world: &World, s: &Subscription) -> Value {
    json!({
        "id": format!("/subscriptions/{}", s.id),
        "authorizationSource": "RoleBased",
        "managedByTenants": [],
        "subscriptionId": s.id,
        "tenantId": world.subscription_tenant(s),
        "displayName": s.display_name(),
        "state": "Enabled",
        "subscriptionPolicies": {
            "locationPlacementId": "Public_2014-09-01",
            "quotaId": "PayAsYouGo_2014-09-01",
            "spendingLimit": "Off",
        },
    })
}

/// The subscriptions the caller sees: those of its token's tenant, narrowed to the principal's
/// `subscriptions` when the world lists them.
fn visible<'w>(ctx: &'w Ctx) -> impl Iterator<Item = &'w Subscription> + 'w {
    let world = &ctx.world;
    let caller = &ctx.caller;
    let principal = world
        .principal(&caller.tenant_id, &caller.client_id)
        .or_else(|| world.principal_any_tenant(&caller.client_id));
    let allowed = principal.and_then(|p| p.subscriptions.as_ref());
    world.subscriptions.iter().filter(move |s| {
        world
            .subscription_tenant(s)
            .eq_ignore_ascii_case(&caller.tenant_id)
            && allowed.is_none_or(|a| a.iter().any(|id| id.eq_ignore_ascii_case(&s.id)))
    })
}

/// `GET /subscriptions`
pub fn list(ctx: &Ctx) -> Response {
    let value: Vec<Value> = visible(ctx).map(|s| body(&ctx.world, s)).collect();
    let count = value.len();
    axum::Json(json!({"value": value, "count": {"type": "Total", "value": count}})).into_response()
}

/// `GET /subscriptions/{id}` (existence, tenant and the principal's list were checked up front).
pub fn get(ctx: &Ctx, sub: &str) -> Response {
    match ctx.world.subscription(sub) {
        Some(s) => axum::Json(body(&ctx.world, s)).into_response(),
        None => subscription_not_found(sub),
    }
}
