//! ARM's throttling at the front door: the bucket of (scope, principal), the subscription-global
//! bucket every principal shares (15x a principal's, ARM's 2024 model), their
//! `x-ms-ratelimit-remaining-*` headers and the 429 when one is empty.

use std::time::Instant;

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;

use super::arm_error;
use crate::faults::{Kind, Scope, Take};
use crate::state::Shared;

/// The remaining-quota headers of an admitted request.
pub struct Quota(Vec<(HeaderName, u64)>);

impl Quota {
    pub fn apply(&self, headers: &mut HeaderMap) {
        for (name, n) in &self.0 {
            headers.insert(name.clone(), HeaderValue::from(*n));
        }
    }
}

fn header(name: String) -> HeaderName {
    HeaderName::try_from(name).expect("header name")
}

/// One ARM request as the buckets see it.
pub struct Request<'a> {
    /// Subscription, or tenant for tenant-level URLs.
    pub scope: &'a Scope,
    pub client: &'a str,
    pub kind: Kind,
    pub now: Instant,
    /// Names the bucket in the early-request bookkeeping.
    pub scope_key: &'a str,
}

/// Takes a token from the principal's bucket and, for a subscription, from the subscription's
/// global bucket.
pub fn take(state: &Shared, req: &Request<'_>) -> Result<Quota, Response> {
    let budgets = state.budgets();
    let own = header(format!(
        "x-ms-ratelimit-remaining-{}-{}",
        req.scope.header_prefix(),
        req.kind.as_str()
    ));
    let global_sub = match req.scope {
        Scope::Subscription(sub) => Some(sub.as_str()),
        Scope::Tenant(_) => None,
    };
    let global = header(format!(
        "x-ms-ratelimit-remaining-subscription-global-{}",
        req.kind.as_str()
    ));
    if !budgets.enabled {
        let (burst, _) = budgets.of(req.kind);
        let mut q = vec![(own, burst as u64)];
        if global_sub.is_some() {
            q.push((global, (burst * budgets.global_multiplier) as u64));
        }
        return Ok(Quota(q));
    }
    let mut buckets = state.buckets.lock().expect("buckets lock");
    let key = (req.scope.clone(), req.client.to_ascii_lowercase(), req.kind);
    let left = match buckets.take(&budgets, key, req.now) {
        Take::Allowed(n) => n,
        Take::Throttled(secs) => {
            drop(buckets);
            let actor = format!(" actor '{}'", req.client);
            return Err(throttled(state, req, secs, &actor, Quota(vec![(own, 0)])));
        }
    };
    let Some(sub) = global_sub else {
        return Ok(Quota(vec![(own, left)]));
    };
    match buckets.take_global(&budgets, sub, req.kind, req.now) {
        Take::Allowed(n) => Ok(Quota(vec![(own, left), (global, n)])),
        Take::Throttled(secs) => {
            drop(buckets);
            let quota = Quota(vec![(own, left), (global, 0)]);
            Err(throttled(state, req, secs, "", quota))
        }
    }
}

/// 429 `SubscriptionRequestsThrottled` with `Retry-After` = seconds until a token is back; the
/// global bucket's answer names no actor (its wording is not documented: the emulator's).
fn throttled(state: &Shared, req: &Request<'_>, secs: u64, actor: &str, quota: Quota) -> Response {
    let (what, name) = match req.scope {
        Scope::Subscription(s) => ("subscription", s.as_str()),
        Scope::Tenant(t) => ("tenant", t.as_str()),
    };
    let mut r = arm_error(
        StatusCode::TOO_MANY_REQUESTS,
        "SubscriptionRequestsThrottled",
        format!(
            "Number of '{}' requests for {what} '{name}'{actor} exceeded. Please try again after '{secs}' seconds after additional tokens are available. Refer to https://aka.ms/arm-throttling for additional information.",
            if req.kind == Kind::Read {
                "read"
            } else {
                "write"
            },
        ),
    );
    r.headers_mut()
        .insert("retry-after", HeaderValue::from(secs));
    quota.apply(r.headers_mut());
    let mut stats = state.stats();
    stats.throttled429 += 1;
    stats.throttle_not_before.insert(
        (req.scope_key.to_string(), req.client.to_string()),
        (req.now, crate::retry_after::not_before(req.now, secs)),
    );
    r
}
