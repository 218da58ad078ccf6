//! The dispatch line: how a run waits for the ARM write budget of its subscription.
//!
//! While a subscription's budget is short, at most [`DISPATCH_LINE`] runs of a namespace wait at
//! once for it (through one credential; [`DISPATCH_LINE_ROOMY`] while its tokens come at once, as
//! in a burst); they leave the line as soon as ARM's budget gave them a token. The others wait
//! outside with their ticket (oldest first, [`crate::controllers::turns`]) and hold
//! none of the namespace's places meanwhile, so a subscription whose budget is spent does not
//! keep the runs of other subscriptions (with budget left) from starting. The line is taken from
//! the cached object, before any request: a run turned away costs nothing — until it has waited
//! [`WAIT_SHOWN_AFTER`]: then its status says once why it waits.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;

use super::status::{self, is_current_run};
use crate::api::Phase;
use crate::api::remote_command::RemoteCommand;
use crate::azure::AksClusterId;
use crate::controllers::context::Context;
#[cfg(doc)]
use crate::controllers::limits::{DISPATCH_LINE, DISPATCH_LINE_ROOMY};
use crate::controllers::limits::{Share, Ticket};
use crate::controllers::reason::Reason;

/// When a run turned away looks again if its turn did not wake it first.
const LINE_RETRY: Duration = Duration::from_secs(30);

/// How long a new run waits outside the line before its status says so (`Pending`,
/// `Throttled`), once. Sooner, a status write for every run of a burst would cost the API server
/// more than the burst's own writes; never, and a run queued behind hundreds shows nothing at all.
const WAIT_SHOWN_AFTER: Duration = Duration::from_secs(15);

/// A place in `rc`'s dispatch line when this reconcile may dispatch an AKS run (`Ok(None)` when
/// it will not dispatch); `Err` with the requeue when the line is full.
pub fn enter(rc: &RemoteCommand, ctx: &Context, ticket: &Ticket) -> Result<Option<Share>, Action> {
    // A new run starts; a current one starts again while Pending, unless it waits for a
    // reference: it looks again every few seconds and stops at its checks, and in line the oldest
    // of hundreds such would take every place, every time, from younger runs.
    let starting = !is_current_run(rc)
        || rc.status.as_ref().is_some_and(|s| {
            s.phase == Some(Phase::Pending)
                && !s
                    .reason
                    .as_deref()
                    .and_then(Reason::named)
                    .is_some_and(Reason::is_reference_wait)
        });
    let Some(aks) = rc.spec.target.aks.as_ref().filter(|_| starting) else {
        return Ok(None);
    };
    let Ok(cluster) =
        status::target_id::<AksClusterId>(Some(&aks.resource_id), "spec.target.aks.resourceId")
    else {
        // Refused with its reason by the dispatch itself.
        return Ok(None);
    };
    let line = format!(
        "{}/{}/{}",
        rc.namespace().unwrap_or_default(),
        cluster.subscription_id().to_ascii_lowercase(),
        rc.spec
            .credential_ref
            .as_ref()
            .map(|c| c.name.as_str())
            .unwrap_or_default()
    );
    match ctx.limits.dispatch_line(&line, ticket.clone()) {
        Some(place) => Ok(Some(place)),
        None => Err(Action::requeue(LINE_RETRY)),
    }
}

/// A run turned away from the line: once it has waited [`WAIT_SHOWN_AFTER`] since its creation
/// with no status of its own run, status says why it waits (a conflict with a newer write is left
/// to the next look). Then `wait`.
pub async fn turned_away(api: &Api<RemoteCommand>, rc: &RemoteCommand, wait: Action) -> Action {
    let created = rc.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let waited = created.map_or(Duration::ZERO, |c| {
        Duration::try_from(Timestamp::now().duration_since(c)).unwrap_or_default()
    });
    if is_current_run(rc) || waited < WAIT_SHOWN_AFTER {
        return wait;
    }
    let message = "waits its turn for the ARM write budget of its subscription: older runs of \
                   this namespace through the same credential go first";
    let s = status::progress(
        status::base(rc),
        Phase::Pending,
        Reason::Throttled,
        message,
        Timestamp::now(),
    );
    if let Err(f) = super::children::write_status(api, rc, &s).await {
        tracing::debug!(rcmd = %rc.name_any(), reason = %f.reason, "waiting status not written");
    }
    wait
}
