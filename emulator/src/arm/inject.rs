//! Fault injection at ARM's front door: latency, then one draw per authenticated request that may
//! drop the connection or answer 429 / 500 / 503 / 403 itself, or let a listing answer empty.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::Response;

use super::path::Route;
use super::{arm_error, auth};
use crate::faults::{self, Injected};
use crate::server::ConnCtl;
use crate::state::Shared;

/// An authenticated ARM request as fault injection sees it.
pub(super) struct Injectable<'a> {
    pub(super) op: &'static str,
    pub(super) method: &'a str,
    pub(super) path: &'a str,
    pub(super) route: &'a Route,
    pub(super) token: &'a crate::state::TokenInfo,
    /// Names the throttle bucket in the early-request bookkeeping.
    pub(super) scope_key: &'a str,
}

/// What fault injection decided for one request.
pub(super) enum Injection {
    None,
    /// Answer a listing with no resources (other operations go on as usual).
    EmptyList,
    Respond(Response),
}

/// Latency and injected faults for an authenticated ARM request.
pub(super) async fn inject(
    state: &Shared,
    ctl: Option<ConnCtl>,
    req: &Injectable<'_>,
) -> Injection {
    let (op, client) = (req.op, req.token.client_id.as_str());
    let spec = faults::effective(&state.faults(), op);
    if let Some(ms) = spec.latency_ms.filter(|ms| *ms > 0) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let draw = state.rng.lock().expect("rng lock").next_f64();
    let Some(kind) = faults::pick(&spec, draw) else {
        return Injection::None;
    };
    let retry = spec
        .retry_after
        .clone()
        .unwrap_or_else(|| state.settings.retry_after.clone());
    if kind == Injected::Drop
        && let Some(ctl) = ctl
    {
        crate::server::log_dropped(state, req.method, req.path, op, Some(client));
        return Injection::Respond(ctl.drop_connection().await);
    }
    if kind == Injected::EmptyList {
        if !matches!(req.route, Route::List { .. }) {
            return Injection::None;
        }
        state.stats().injected_faults += 1;
        return Injection::EmptyList;
    }
    let mut stats = state.stats();
    stats.injected_faults += 1;
    let mut resp = match kind {
        Injected::Throttle => {
            stats.throttled429 += 1;
            if let Some(secs) = retry.seconds() {
                let now = Instant::now();
                stats.throttle_not_before.insert(
                    (req.scope_key.to_string(), client.to_string()),
                    (now, crate::retry_after::not_before(now, secs)),
                );
            }
            arm_error(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                format!(
                    "The request is being throttled. Please retry after {retry} seconds. (injected by kubeinvoke-emulator)"
                ),
            )
        }
        Injected::Error503 => arm_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "The service is temporarily unavailable. (injected by kubeinvoke-emulator)",
        ),
        // ARM's own denial, as if the role assignment were gone.
        Injected::Error403 => {
            let (action, scope) = auth::action_and_scope(req.route).unwrap_or_else(|| {
                let scope = req
                    .route
                    .subscription()
                    .map_or_else(|| "/".to_string(), |s| format!("/subscriptions/{s}"));
                ("*/read".to_string(), scope)
            });
            auth::forbidden(req.token, &action, &scope)
        }
        _ => arm_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            "Encountered internal server error. (injected by kubeinvoke-emulator)",
        ),
    };
    if matches!(kind, Injected::Throttle | Injected::Error503) {
        retry.apply(resp.headers_mut());
    }
    Injection::Respond(resp)
}
