//! ARM authentication (bearer tokens) and authorization (subscriptions, allowed actions).

use std::time::SystemTime;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;

use super::arm_error;
use super::path::{self, ClusterAction, Route};
use super::subscription_not_found;
use crate::state::{Audience, Shared, TokenInfo};
use crate::world::World;

fn unauthorized(state: &Shared, code: &str, message: &str) -> Response {
    let mut resp = arm_error(StatusCode::UNAUTHORIZED, code, message);
    let tenant = state
        .world()
        .tenants
        .first()
        .map(|t| t.id.clone())
        .unwrap_or_default();
    let challenge = format!(
        "Bearer authorization_uri=\"{}/{tenant}\", error=\"invalid_token\", error_description=\"{message}\"",
        state.settings.base_url
    );
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        resp.headers_mut().insert("www-authenticate", v);
    }
    resp
}

/// Validates the bearer token: live and issued for the ARM audience.
pub(super) fn authenticate(state: &Shared, headers: &HeaderMap) -> Result<TokenInfo, Response> {
    let Some(value) = headers.get("authorization") else {
        return Err(unauthorized(
            state,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.",
        ));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return Err(unauthorized(
            state,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is provided in an invalid format.",
        ));
    };
    let info = state
        .tokens
        .lock()
        .expect("tokens lock")
        .get(token)
        .cloned();
    let Some(info) = info else {
        return Err(unauthorized(
            state,
            "InvalidAuthenticationToken",
            "The access token is invalid.",
        ));
    };
    let now = SystemTime::now();
    if info.expires_at <= now {
        return Err(unauthorized(
            state,
            "ExpiredAuthenticationToken",
            &format!(
                "The access token expiry UTC time '{}' is earlier than current UTC time '{}'.",
                crate::state::rfc3339(info.expires_at),
                crate::state::rfc3339(now)
            ),
        ));
    }
    if info.audience != Audience::Arm {
        return Err(unauthorized(
            state,
            "InvalidAuthenticationTokenAudience",
            &format!(
                "The access token has been obtained for wrong audience or resource '{}'. It should exactly match with one of the allowed audiences 'https://management.core.windows.net/','https://management.core.windows.net','https://management.azure.com/','https://management.azure.com'.",
                crate::entra::AKS_SERVER_APP
            ),
        ));
    }
    Ok(info)
}

/// The RBAC action and scope a route needs.
pub(super) fn action_and_scope(route: &Route) -> Option<(String, String)> {
    let rg_prefix = |s: &path::RgScope| format!("/subscriptions/{}/resourceGroups/{}", s.sub, s.rg);
    match route {
        Route::Cluster {
            scope,
            name,
            action,
        } => {
            let verb = match action {
                ClusterAction::Get => "read",
                ClusterAction::RunCommand => "runcommand/action",
                ClusterAction::CommandResult(_) => "commandResults/read",
                ClusterAction::ListUser => "listClusterUserCredential/action",
                ClusterAction::ListAdmin => "listClusterAdminCredential/action",
                ClusterAction::Other => return None,
            };
            Some((
                format!("Microsoft.ContainerService/managedClusters/{verb}"),
                format!(
                    "{}/providers/Microsoft.ContainerService/managedClusters/{name}",
                    rg_prefix(scope)
                ),
            ))
        }
        Route::Container {
            scope,
            group,
            action,
            ..
        } => {
            let verb = if action.eq_ignore_ascii_case("exec") {
                "exec/action"
            } else {
                "logs/read"
            };
            Some((
                format!("Microsoft.ContainerInstance/containerGroups/containers/{verb}"),
                format!(
                    "{}/providers/Microsoft.ContainerInstance/containerGroups/{group}",
                    rg_prefix(scope)
                ),
            ))
        }
        Route::ContainerGroup {
            scope,
            group,
            whole: true,
        } => Some((
            "Microsoft.ContainerInstance/containerGroups/read".to_string(),
            format!(
                "{}/providers/Microsoft.ContainerInstance/containerGroups/{group}",
                rg_prefix(scope)
            ),
        )),
        Route::HybridList {
            scope,
            cluster,
            admin,
        } => Some((
            format!(
                "Microsoft.HybridContainerService/provisionedClusterInstances/{}/action",
                if *admin {
                    "listAdminKubeconfig"
                } else {
                    "listUserKubeconfig"
                }
            ),
            format!(
                "{}/providers/Microsoft.Kubernetes/connectedClusters/{cluster}/providers/Microsoft.HybridContainerService/provisionedClusterInstances/default",
                rg_prefix(scope)
            ),
        )),
        // A listing needs the type's read action over the subscription or the resource group.
        Route::List { sub, rg, kind } => Some((
            format!("{}/read", kind.arm_type()),
            match rg {
                Some(rg) => format!("/subscriptions/{sub}/resourceGroups/{rg}"),
                None => format!("/subscriptions/{sub}"),
            },
        )),
        Route::ConnectedCluster { scope, name } => Some((
            "Microsoft.Kubernetes/connectedClusters/read".to_string(),
            format!(
                "{}/providers/Microsoft.Kubernetes/connectedClusters/{name}",
                rg_prefix(scope)
            ),
        )),
        _ => None,
    }
}

fn action_allowed(allowed: &[String], action: &str) -> bool {
    allowed.iter().any(|a| match a.strip_suffix('*') {
        Some(prefix) => action
            .to_ascii_lowercase()
            .starts_with(&prefix.to_ascii_lowercase()),
        None => a.eq_ignore_ascii_case(action),
    })
}

pub(super) fn forbidden(token: &TokenInfo, action: &str, scope: &str) -> Response {
    arm_error(
        StatusCode::FORBIDDEN,
        "AuthorizationFailed",
        format!(
            "The client '{}' with object id '{}' does not have authorization to perform action '{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, please refresh your credentials.",
            token.client_id, token.object_id
        ),
    )
}

/// Subscription existence, tenant, the principal's subscription list and allowed actions.
pub(super) fn check_access(
    world: &World,
    token: &TokenInfo,
    route: &Route,
    state: &Shared,
) -> Result<(), Response> {
    let principal = world
        .principal(&token.tenant_id, &token.client_id)
        .or_else(|| world.principal_any_tenant(&token.client_id));
    if let Some(sub) = route.subscription() {
        let Some(s) = world.subscription(sub) else {
            return Err(subscription_not_found(sub));
        };
        let tenant = world.subscription_tenant(s);
        if !tenant.eq_ignore_ascii_case(&token.tenant_id) {
            return Err(unauthorized(
                state,
                "InvalidAuthenticationTokenTenant",
                &format!(
                    "The access token is from the wrong issuer 'https://sts.windows.net/{}/'. It must match the tenant 'https://sts.windows.net/{tenant}/' associated with this subscription. Please use the authority (URL) 'https://login.windows.net/{tenant}' to get the token.",
                    token.tenant_id
                ),
            ));
        }
        if let Some(allowed) = principal.and_then(|p| p.subscriptions.as_ref())
            && !allowed.iter().any(|a| a.eq_ignore_ascii_case(sub))
        {
            let (action, scope) = action_and_scope(route)
                .unwrap_or_else(|| ("*/read".into(), format!("/subscriptions/{sub}")));
            return Err(forbidden(token, &action, &scope));
        }
    }
    // A role assignment takes a while to reach ARM everywhere: until then every action is denied,
    // with ARM's advice to refresh credentials (the message `forbidden` builds ends with it).
    if principal.is_some_and(|p| state.within_world_window(p.role_assignment_delay_seconds)) {
        let (action, scope) = action_and_scope(route).unwrap_or_else(|| {
            let scope = route
                .subscription()
                .map_or_else(|| "/".to_string(), |s| format!("/subscriptions/{s}"));
            ("*/read".to_string(), scope)
        });
        return Err(forbidden(token, &action, &scope));
    }
    if let (Some(allowed), Some((action, scope))) = (
        principal.and_then(|p| p.allowed_actions.as_ref()),
        action_and_scope(route),
    ) && !action_allowed(allowed, &action)
    {
        return Err(forbidden(token, &action, &scope));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_actions() {
        let allowed = vec!["Microsoft.ContainerService/managedClusters/*".to_string()];
        assert!(action_allowed(
            &allowed,
            "microsoft.containerservice/managedClusters/runcommand/action"
        ));
        assert!(!action_allowed(
            &allowed,
            "Microsoft.ContainerInstance/containerGroups/containers/exec/action"
        ));
    }
}
