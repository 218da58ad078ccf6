//! The list operations of managedClusters, connectedClusters and containerGroups, per subscription
//! and per resource group: `{"value": [...], "nextLink": "..."}` pages.
//!
//! What ARM specifies (Azure/azure-resource-manager-rpc: v1.0/resource-api-reference.md,
//! "pagination"): `nextLink` is absent on the last page (never an empty string), is built with an
//! opaque `skipToken` chosen by the resource provider, a page may hold fewer items than asked for,
//! even none while a `nextLink` follows, and a client reads until no `nextLink` comes back. The
//! Hybrid Kubernetes example spells the parameter `$skiptoken` (SPECS: specification/
//! hybridkubernetes/resource-manager/Microsoft.Kubernetes/HybridKubernetes/stable/2024-01-01/
//! examples/GetClustersBySubscriptionExample.json). The Python SDK follows the link's path and
//! query, replacing only `api-version` by its own (azure-mgmt-containerservice and
//! azure-mgmt-containerinstance `list` / `list_by_resource_group`, `prepare_request`), and it
//! unquotes then quotes each query value: a token of URL-safe characters survives that unchanged.
//!
//! The emulator's choices where the sources are silent: items are sorted by lower-cased resource
//! id, and the token names the last id already sent, so a resource added or removed between two
//! pages neither shifts nor repeats the others; the page size is the world's `listPaging.pageSize`
//! (100 by default; none of the three providers documents its own).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};

use super::path::RgScope;
use super::{Ctx, aks, arm_error, connected_cluster, container_group, resource_group_not_found};
use crate::world::ResourceKind;

const TOKEN_PREFIX: &str = "after:";

fn encode_token(last_id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{TOKEN_PREFIX}{last_id}"))
}

/// The lower-cased id after which the page starts ("" = from the first).
fn decode_token(token: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()?;
    String::from_utf8(bytes)
        .ok()?
        .strip_prefix(TOKEN_PREFIX)
        .map(str::to_string)
}

/// Every resource of `kind` in the subscription (or one of its resource groups), as GET shows
/// them (container groups without `instanceView`), sorted by lower-cased id.
fn items(ctx: &Ctx, sub: &str, rg: Option<&str>, kind: ResourceKind) -> Vec<(String, Value)> {
    let Some(subscription) = ctx.world.subscription(sub) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for group in &subscription.resource_groups {
        if rg.is_some_and(|rg| !group.name.eq_ignore_ascii_case(rg)) {
            continue;
        }
        let scope = RgScope {
            sub: subscription.id.clone(),
            rg: group.name.clone(),
        };
        match kind {
            ResourceKind::ManagedClusters => out.extend(
                group
                    .managed_clusters
                    .iter()
                    .map(|c| aks::body(ctx, &scope, c)),
            ),
            ResourceKind::ConnectedClusters => out.extend(
                group
                    .connected_clusters
                    .iter()
                    .map(|c| connected_cluster::body(ctx, &scope, c)),
            ),
            ResourceKind::ContainerGroups => out.extend(
                group
                    .container_groups
                    .iter()
                    .map(|c| container_group::body(ctx, &scope, c, false)),
            ),
        }
    }
    let mut keyed: Vec<(String, Value)> = out
        .into_iter()
        .map(|v| (v["id"].as_str().unwrap_or("").to_ascii_lowercase(), v))
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    keyed
}

fn next_link(ctx: &Ctx, sub: &str, rg: Option<&str>, kind: ResourceKind, token: &str) -> String {
    let path = match rg {
        Some(rg) => format!(
            "/subscriptions/{sub}/resourceGroups/{rg}/providers/{}",
            kind.arm_type()
        ),
        None => format!("/subscriptions/{sub}/providers/{}", kind.arm_type()),
    };
    format!("{}&$skiptoken={token}", ctx.url(&path))
}

/// One page of the listing. `empty` answers an empty listing whatever the world holds (the
/// `emptyListRate` fault).
pub fn list(ctx: &Ctx, sub: &str, rg: Option<&str>, kind: ResourceKind, empty: bool) -> Response {
    if let Some(rg) = rg
        && ctx.world.resource_group(sub, rg).is_none()
    {
        return resource_group_not_found(rg);
    }
    if empty {
        return axum::Json(json!({"value": []})).into_response();
    }
    let token = ctx
        .query
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("$skiptoken"))
        .map(|(_, v)| v.as_str());
    let paging = ctx.world.list_paging();
    let after = match token {
        None if paging.empty_first_page => {
            let link = next_link(ctx, sub, rg, kind, &encode_token(""));
            return axum::Json(json!({"value": [], "nextLink": link})).into_response();
        }
        None => String::new(),
        Some(t) => match decode_token(t) {
            Some(after) => after,
            None => {
                return arm_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidSkipToken",
                    format!("The skip token '{t}' is not valid for this listing."),
                );
            }
        },
    };
    let mut rest = items(ctx, sub, rg, kind)
        .into_iter()
        .filter(|(id, _)| after.is_empty() || *id > after)
        .peekable();
    let page: Vec<(String, Value)> = rest.by_ref().take(paging.page_size).collect();
    let mut body = json!({"value": page.iter().map(|(_, v)| v).collect::<Vec<_>>()});
    if rest.peek().is_some()
        && let Some((last, _)) = page.last()
    {
        body["nextLink"] = json!(next_link(ctx, sub, rg, kind, &encode_token(last)));
    }
    axum::Json(body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_stay_url_safe() {
        let id = "/subscriptions/s/resourcegroups/rg-(1)/providers/x/y/aks-001";
        let t = encode_token(id);
        assert!(
            t.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{t}"
        );
        assert_eq!(decode_token(&t).as_deref(), Some(id));
        assert_eq!(decode_token(&encode_token("")).as_deref(), Some(""));
        assert!(
            !encode_token("").is_empty(),
            "an empty value would be dropped by parse_qs"
        );
        assert_eq!(decode_token("not base64!"), None);
        assert_eq!(decode_token("YWJj"), None, "base64 without the prefix");
    }
}
