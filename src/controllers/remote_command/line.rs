//! The dispatch line: how a run waits for the ARM write budget of its subscription.
//!
//! At most [`DISPATCH_LINE`] runs of a namespace wait at once for the budget of one subscription
//! (through one credential); they leave the line as soon as ARM's budget gave them a token. The
//! others wait outside with their ticket (oldest first, [`crate::controllers::turns`]) and hold
//! none of the namespace's places meanwhile, so a subscription whose budget is spent does not
//! keep the runs of other subscriptions (with budget left) from starting. The line is taken from
//! the cached object, before any request: a run turned away costs nothing.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;

use super::status::{self, is_current_run};
use super::write_status;
use crate::api::Phase;
use crate::api::remote_command::RemoteCommand;
use crate::azure::AksClusterId;
use crate::controllers::context::Context;
#[cfg(doc)]
use crate::controllers::limits::DISPATCH_LINE;
use crate::controllers::limits::{Share, Ticket};
use crate::controllers::reason::{Failure, Reason};

/// How long a run that waits for a budget with nothing written says nothing: well before
/// `kubectl invoke` takes a run nobody answered for unserved (30 s).
const ACKNOWLEDGE_AFTER: Duration = Duration::from_secs(10);

/// When a run turned away looks again if its turn did not wake it first.
const LINE_RETRY: Duration = Duration::from_secs(30);

/// A place in `rc`'s dispatch line when this reconcile may dispatch an AKS run (`Ok(None)` when
/// it will not dispatch); `Err` with the requeue when the line is full.
pub async fn enter(
    api: &Api<RemoteCommand>,
    rc: &RemoteCommand,
    ctx: &Arc<Context>,
    ticket: &Ticket,
) -> Result<Result<Option<Share>, Action>, Failure> {
    let Some(aks) = rc.spec.target.aks.as_ref() else {
        return Ok(Ok(None));
    };
    let starting =
        !is_current_run(rc) || rc.status.as_ref().and_then(|s| s.phase) == Some(Phase::Pending);
    let Ok(cluster) =
        status::target_id::<AksClusterId>(Some(&aks.resource_id), "spec.target.aks.resourceId")
    else {
        return Ok(Ok(None));
    };
    if !starting {
        return Ok(Ok(None));
    }
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
    if let Some(place) = ctx.limits.dispatch_line(&line, ticket.clone()) {
        return Ok(Ok(Some(place)));
    }
    if !is_current_run(rc) && age(rc) >= ACKNOWLEDGE_AFTER {
        acknowledge(api, rc).await?;
    }
    Ok(Err(Action::requeue(LINE_RETRY)))
}

/// Says in status that the run waits for the budget, once, from the API server's current view.
async fn acknowledge(api: &Api<RemoteCommand>, rc: &RemoteCommand) -> Result<(), Failure> {
    let Some(fresh) = api.get_opt(&rc.name_any()).await? else {
        return Ok(());
    };
    if is_current_run(&fresh) {
        return Ok(());
    }
    let s = status::progress(
        status::base(&fresh),
        Phase::Pending,
        Reason::Throttled,
        "waiting for the ARM write budget before dispatching",
        Timestamp::now(),
    );
    write_status(api, &fresh, &s).await?;
    Ok(())
}

/// How long ago `rc` was created.
fn age(rc: &RemoteCommand) -> Duration {
    let Some(created) = rc.metadata.creation_timestamp.as_ref() else {
        return Duration::ZERO;
    };
    let seconds = Timestamp::now().as_second() - created.0.as_second();
    Duration::from_secs(seconds.max(0) as u64)
}
