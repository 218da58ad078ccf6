//! ARM front door: authentication, faults, api-version, throttling, authorization, then the
//! resource providers (AKS, ACI, HybridContainerService).

pub mod aci;
pub mod aks;
mod api_version;
mod auth;
mod body_limit;
mod command_pod;
mod connected_cluster;
mod container_group;
pub mod hybrid;
mod inject;
pub mod kubeconfig;
mod list;
pub mod path;
mod run_admission;
pub mod runner;
mod subscriptions;
mod throttle;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::faults::{self, Kind, Scope};
use crate::server::{ConnCtl, tag};
use crate::state::Shared;
use crate::world::{ResourceKind, World};
use api_version::Provider;
use auth::{authenticate, check_access};
use inject::{Injectable, Injection, inject};
use path::{ClusterAction, Route};

/// Everything a resource-provider handler needs about one authenticated request.
pub struct Ctx {
    pub state: Shared,
    pub world: Arc<World>,
    pub api_version: String,
    pub query: HashMap<String, String>,
    pub body: Bytes,
    pub op: &'static str,
    /// Who is asking (from the bearer token).
    pub caller: crate::state::TokenInfo,
    /// The `emptyListRate` fault drew this request: a listing answers empty.
    pub empty_list: bool,
}

impl Ctx {
    /// An absolute URL on this emulator for `path` with the request's api-version.
    pub fn url(&self, path: &str) -> String {
        format!(
            "{}{}?api-version={}",
            self.state.settings.base_url, path, self.api_version
        )
    }

    pub fn retry_after(&self) -> crate::retry_after::RetryAfter {
        self.state.retry_after_for(self.op)
    }
}

/// An ARM error body `{"error":{"code","message","target","details":[]}}`.
pub fn arm_error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body =
        json!({"error": {"code": code, "message": message.into(), "target": null, "details": []}});
    (status, axum::Json(body)).into_response()
}

pub fn subscription_not_found(sub: &str) -> Response {
    arm_error(
        StatusCode::NOT_FOUND,
        "SubscriptionNotFound",
        format!("The subscription '{sub}' could not be found."),
    )
}

pub fn resource_group_not_found(rg: &str) -> Response {
    arm_error(
        StatusCode::NOT_FOUND,
        "ResourceGroupNotFound",
        format!("Resource group '{rg}' could not be found."),
    )
}

pub fn resource_not_found(kind: &str, name: &str, rg: &str) -> Response {
    arm_error(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        format!(
            "The Resource '{kind}/{name}' under resource group '{rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
        ),
    )
}

/// The request's api-version must be one `provider` serves (checked before the resource group,
/// as ARM routes by type and version first; the location named is the group's when it exists).
fn served_version(ctx: &Ctx, scope: &path::RgScope, provider: Provider) -> Result<(), Response> {
    let location = ctx
        .world
        .resource_group(&scope.sub, &scope.rg)
        .map(|g| g.location.clone())
        .unwrap_or_else(|| "westeurope".into());
    api_version::check(ctx, provider, &location)
}

/// Checks the resource group exists (the subscription was checked up front).
pub fn require_rg(ctx: &Ctx, scope: &path::RgScope) -> Result<(), Response> {
    match ctx.world.resource_group(&scope.sub, &scope.rg) {
        Some(_) => Ok(()),
        None => Err(resource_group_not_found(&scope.rg)),
    }
}

fn parse_query(uri: &axum::http::Uri) -> HashMap<String, String> {
    uri.query()
        .map(|q| {
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    let dec = |s: &str| {
                        percent_encoding::percent_decode_str(&s.replace('+', " "))
                            .decode_utf8_lossy()
                            .into_owned()
                    };
                    (dec(k), dec(v))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Fallback handler: every request that is not Entra, MSI, ACI websocket or control.
pub async fn handle(State(state): State<Shared>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let method = parts.method.as_str().to_string();
    let raw_path = parts.uri.path().to_string();
    if raw_path.contains("//") {
        let r = arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestUri",
            format!(
                "The request URI path '{raw_path}' is invalid: it contains an empty segment ('//')."
            ),
        );
        return tag(r, "arm.invalid", None);
    }
    if body_limit::declared_too_large(&parts.headers) {
        let r = body_limit::refuse_declared(&parts.headers, body).await;
        return tag(r, "arm.tooLarge", None);
    }
    let route = path::parse(&raw_path);
    let op = route.op(&method);
    let token = match authenticate(&state, &parts.headers) {
        Ok(t) => t,
        Err(r) => return tag(r, op, None),
    };
    let client = token.client_id.clone();
    let throttle_scope = match route.subscription() {
        Some(s) => Scope::Subscription(s.to_ascii_lowercase()),
        None => Scope::Tenant(token.tenant_id.to_ascii_lowercase()),
    };
    let kind = if method == "GET" || method == "HEAD" {
        Kind::Read
    } else {
        Kind::Write
    };
    // Retry-After after a 429 applies to the bucket that was empty: scope + principal + kind.
    let scope_key = format!("{throttle_scope:?}/{}", kind.as_str());
    let now = Instant::now();
    // Early requests: before a Retry-After this emulator gave the same principal elapsed.
    {
        let mut stats = state.stats();
        // A request that left the client before it could have read the 429 (it arrived within
        // the reaction grace after the 429 was answered) was in flight, not early.
        let throttled_early = stats
            .throttle_not_before
            .get(&(scope_key.clone(), client.clone()))
            .is_some_and(|(answered, t)| now < *t && now >= *answered + IN_FLIGHT_GRACE);
        let poll_early = method == "GET"
            && stats
                .poll_not_before
                .get(&(client.clone(), raw_path.to_ascii_lowercase()))
                .is_some_and(|t| now < *t);
        if throttled_early || poll_early {
            stats.early(op);
        }
    }
    let ctl = parts.extensions.get::<ConnCtl>().cloned();
    let request = Injectable {
        op,
        method: &method,
        path: &raw_path,
        route: &route,
        token: &token,
        scope_key: &scope_key,
    };
    let empty_list = match inject(&state, ctl, &request).await {
        Injection::None => false,
        Injection::EmptyList => true,
        Injection::Respond(r) => return tag(r, op, Some(&client)),
    };
    let query = parse_query(&parts.uri);
    let Some(api_version) = query.get("api-version").cloned().filter(|v| !v.is_empty()) else {
        let r = arm_error(
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        );
        return tag(r, op, Some(&client));
    };
    let bucket = throttle::Request {
        scope: &throttle_scope,
        client: &client,
        kind,
        now,
        scope_key: &scope_key,
    };
    let quota = match throttle::take(&state, &bucket) {
        Ok(q) => q,
        Err(r) => return tag(r, op, Some(&client)),
    };
    let world = state.world();
    let mut resp = match check_access(&world, &token, &route, &state) {
        Err(r) => r,
        Ok(()) => {
            let body = match body_limit::read(body).await {
                Ok(b) => b,
                Err(r) => return tag(r, op, Some(&client)),
            };
            let ctx = Ctx {
                state: state.clone(),
                world,
                api_version,
                query,
                body,
                op,
                caller: token.clone(),
                empty_list,
            };
            let resp = dispatch(&ctx, &route, &method).await;
            let delay = faults::effective(&state.faults(), op)
                .response_delay_ms
                .unwrap_or(0);
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            resp
        }
    };
    quota.apply(resp.headers_mut());
    remember_poll_urls(&state, &resp, &client, &raw_path);
    tag(resp, op, Some(&client))
}

/// Remembers the not-before time of every poll URL handed out with a `Retry-After`.
/// An Azure-AsyncOperation 200 that is still in progress (it carries Retry-After) counts too.
fn remember_poll_urls(state: &Shared, resp: &Response, client: &str, request_path: &str) {
    let h = resp.headers();
    let in_progress_status = resp.status() == StatusCode::OK && h.contains_key("retry-after");
    if resp.status() != StatusCode::ACCEPTED && !in_progress_status {
        return;
    }
    let Some(secs) = h
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return;
    };
    let until = crate::retry_after::not_before(Instant::now(), secs);
    let mut stats = state.stats();
    if in_progress_status {
        stats.poll_not_before.insert(
            (client.to_string(), request_path.to_ascii_lowercase()),
            until,
        );
        return;
    }
    for name in ["location", "azure-asyncoperation"] {
        if let Some(url) = h.get(name).and_then(|v| v.to_str().ok()) {
            let path = url
                .strip_prefix(&state.settings.base_url)
                .unwrap_or(url)
                .split('?')
                .next()
                .unwrap_or("")
                .to_ascii_lowercase();
            stats
                .poll_not_before
                .insert((client.to_string(), path), until);
        }
    }
}

/// How long after a 429 answer a request of the same principal still counts as already in flight
/// (sent before the client could have read the 429) rather than early.
const IN_FLIGHT_GRACE: Duration = Duration::from_millis(250);

async fn dispatch(ctx: &Ctx, route: &Route, method: &str) -> Response {
    let not_served = || {
        arm_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!(
                "The requested path and method ({method}) are not served by kubeinvoke-emulator."
            ),
        )
    };
    match (route, ctx.op) {
        (Route::Subscriptions, "arm.listSubscriptions") => subscriptions::list(ctx),
        (Route::Subscription { sub }, "arm.getSubscription") => subscriptions::get(ctx, sub),
        (Route::List { sub, rg, kind }, "aks.list" | "arc.list" | "aci.list") => {
            let provider = match kind {
                ResourceKind::ManagedClusters => Provider::Aks,
                ResourceKind::ConnectedClusters => Provider::Arc,
                ResourceKind::ContainerGroups => Provider::Aci,
            };
            let location = rg
                .as_deref()
                .and_then(|rg| ctx.world.resource_group(sub, rg))
                .map_or("westeurope", |g| g.location.as_str());
            match api_version::check(ctx, provider, location) {
                Ok(()) => list::list(ctx, sub, rg.as_deref(), *kind, ctx.empty_list),
                Err(r) => r,
            }
        }
        (Route::ConnectedCluster { scope, name }, "arc.get") => {
            if let Err(r) = served_version(ctx, scope, Provider::Arc) {
                return r;
            }
            if let Err(r) = require_rg(ctx, scope) {
                return r;
            }
            match ctx.world.connected_cluster(&scope.sub, &scope.rg, name) {
                Some(cc) => connected_cluster::get(ctx, scope, cc),
                None => {
                    resource_not_found("Microsoft.Kubernetes/connectedClusters", name, &scope.rg)
                }
            }
        }
        (
            Route::Cluster {
                scope,
                name,
                action,
            },
            _,
        ) => {
            if let Err(r) = served_version(ctx, scope, Provider::Aks) {
                return r;
            }
            if let Err(r) = require_rg(ctx, scope) {
                return r;
            }
            let Some(cluster) = ctx.world.managed_cluster(&scope.sub, &scope.rg, name) else {
                return resource_not_found(
                    "Microsoft.ContainerService/managedClusters",
                    name,
                    &scope.rg,
                );
            };
            match (action, ctx.op) {
                (ClusterAction::Get, "aks.get") => aks::get(ctx, scope, cluster),
                (ClusterAction::RunCommand, "aks.runCommand") => {
                    aks::run_command(ctx, scope, cluster).await
                }
                (ClusterAction::CommandResult(id), "aks.commandResult") => {
                    aks::command_result(ctx, scope, cluster, id)
                }
                (ClusterAction::ListUser, "aks.listUserCredential") => {
                    aks::list_credential(ctx, scope, cluster, false)
                }
                (ClusterAction::ListAdmin, "aks.listAdminCredential") => {
                    aks::list_credential(ctx, scope, cluster, true)
                }
                _ => not_served(),
            }
        }
        (
            Route::Container {
                scope,
                group,
                container,
                ..
            },
            "aci.exec" | "aci.logs",
        ) => match served_version(ctx, scope, Provider::Aci) {
            Ok(()) => aci::handle(ctx, scope, group, container).await,
            Err(r) => r,
        },
        (Route::Container { scope, group, .. } | Route::ContainerGroup { scope, group, .. }, _) => {
            if let Err(r) = served_version(ctx, scope, Provider::Aci) {
                return r;
            }
            if let Err(r) = require_rg(ctx, scope) {
                return r;
            }
            let Some(cg) = ctx.world.container_group(&scope.sub, &scope.rg, group) else {
                return resource_not_found(
                    "Microsoft.ContainerInstance/containerGroups",
                    group,
                    &scope.rg,
                );
            };
            if ctx.op == "aci.get" {
                return container_group::get(ctx, scope, cg);
            }
            not_served()
        }
        (
            Route::HybridList {
                scope,
                cluster,
                admin,
            },
            "hybrid.listKubeconfig",
        ) => hybrid::list_kubeconfig(ctx, scope, cluster, *admin),
        (
            Route::HybridPoll { id, result, .. },
            "hybrid.operationStatus" | "hybrid.operationResult",
        ) => hybrid::poll(ctx, id, *result),
        (Route::Other { sub, rg, resource }, _) => {
            if let (Some(sub), Some(rg)) = (sub, rg) {
                if ctx.world.resource_group(sub, rg).is_none() {
                    return resource_group_not_found(rg);
                }
                if let Some((ns, ty, name)) = resource {
                    return resource_not_found(&format!("{ns}/{ty}"), name, rg);
                }
            }
            not_served()
        }
        _ => not_served(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding() {
        let uri: axum::http::Uri = "/x?api-version=2024-01-01&server-fqdn=public&a=b%20c"
            .parse()
            .unwrap();
        let q = parse_query(&uri);
        assert_eq!(q["api-version"], "2024-01-01");
        assert_eq!(q["a"], "b c");
    }
}
