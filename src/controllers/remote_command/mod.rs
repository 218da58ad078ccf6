//! The RemoteCommand controller: runs a command once per (generation, runId) through ARM and
//! reports exit code, timings and output. `reconcile` reads top to bottom as the state machine.

mod aci;
mod aks;
mod children;
pub mod dispatch;
mod line;
pub mod status;
mod ttl;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;

use super::context::Context;
use super::limits::{Share, Ticket};
use super::reason::{Failure, Reason};
use crate::api::Phase;
use crate::api::remote_command::{DispatchPolicy, RemoteCommand, RemoteCommandStatus};
use status::{is_current_run, run_key};

pub(crate) use children::write_status;

/// Label of this controller in metrics.
pub const CONTROLLER: &str = "remote_command";

/// Sends a RemoteCommand back to its controller: its turn among the namespace's running
/// reconciles came ([`crate::controllers::turns`]).
pub type Wakes = futures::channel::mpsc::UnboundedSender<ObjectRef<RemoteCommand>>;

/// `rc`'s place in its namespace's line: older commands are dispatched and polled first.
fn ticket(rc: &RemoteCommand, ctx: &Context, wakes: &Wakes) -> Ticket {
    let (wakes, me) = (wakes.clone(), ObjectRef::from_obj(rc));
    Ticket {
        age: ctx.arrivals.age(rc),
        wake: Arc::new(move || {
            let _ = wakes.unbounded_send(me.clone());
        }),
    }
}

/// A command the watch delivers (in the order the API server stored them): numbered on first sight,
/// and a run about to start stands in its namespace's line before its reconcile comes — at a
/// start-up or a burst, the reconciles that happen to run first do not take the places of older
/// commands.
pub fn arrived(rc: &RemoteCommand, ctx: &Context, wakes: &Wakes) {
    ctx.arrivals.note(rc);
    if rc.metadata.deletion_timestamp.is_none() && !is_current_run(rc) {
        let namespace = rc.namespace().unwrap_or_default();
        ctx.limits.expect(&namespace, ticket(rc, ctx, wakes));
    }
}

/// One step of the state machine for `rc`.
pub async fn reconcile(
    rc: Arc<RemoteCommand>,
    ctx: Arc<Context>,
    wakes: Wakes,
) -> Result<Action, Failure> {
    let api: Api<RemoteCommand> =
        Api::namespaced(ctx.client.clone(), &rc.namespace().unwrap_or_default());
    if rc.metadata.deletion_timestamp.is_some() {
        ctx.journal.abort_session(&rc.uid().unwrap_or_default());
        return Ok(Action::await_change());
    }
    let ticket = ticket(&rc, &ctx, &wakes);
    let Some(_share) = ctx
        .limits
        .enter(&rc.namespace().unwrap_or_default(), Some(ticket.clone()))
    else {
        tracing::debug!(rcmd = %rc.name_any(), "turned away: the namespace's places are taken");
        return Ok(Action::requeue(super::limits::SHARE_RETRY));
    };
    let line = match line::enter(&rc, &ctx, &ticket) {
        Ok(place) => place,
        Err(wait) => {
            tracing::debug!(rcmd = %rc.name_any(), "turned away: the dispatch line is full");
            return Ok(line::turned_away(&api, &rc, wait).await);
        }
    };
    // Decisions that may send a command (or declare one lost) are taken on the API server's
    // current view, not on a cache that may lag behind our own last status write — except for a
    // command nobody touched yet, whose intent write the cached resourceVersion fences.
    let rc = if needs_fresh_read(&rc, &ctx.journal) {
        match api.get_opt(&rc.name_any()).await? {
            Some(fresh) => fresh,
            None => return Ok(Action::await_change()),
        }
    } else {
        (*rc).clone()
    };
    let run = run_key(&rc);

    if !is_current_run(&rc) {
        ctx.journal.abort_session(&run.uid);
        ctx.journal.forget_answer(&run.uid);
        return start(&api, &rc, &ctx, status::base(&rc), line).await;
    }
    let current = rc.status.clone().unwrap_or_default();
    match current.phase.unwrap_or_default() {
        Phase::Succeeded | Phase::Failed => ttl::collect(&api, &rc, &ctx).await,
        // A transient failure before the first dispatch: try again.
        Phase::Pending => start(&api, &rc, &ctx, current, line).await,
        Phase::Running => {
            // A finished ACI session whose status write is still pending is not overtaken.
            let expired = status::deadline(&rc).is_some_and(|d| Timestamp::now() >= d);
            if expired && ctx.journal.answer(&run).is_none() {
                ctx.journal.abort_session(&run.uid);
                let failure = Failure::terminal(
                    Reason::DeadlineExceeded,
                    format!(
                        "the run did not finish within timeoutSeconds ({}s); ARM has no cancel for a dispatched command, \
                         so it may still run to completion",
                        rc.spec.timeout_seconds
                    ),
                );
                return fail(&api, &rc, &ctx, current, failure).await;
            }
            if rc.spec.target.aks.is_some() {
                aks::continue_run(&api, &rc, &ctx, current).await
            } else {
                aci::continue_run(&api, &rc, &ctx, current).await
            }
        }
    }
}

/// Whether the cached object could lead to a dispatch or an interruption verdict.
///
/// A command never dispatched — no status at all, or `Pending` (waiting for a reference, its
/// turn, a transient failure to pass) — of which this process holds no answer or session, is
/// decided on the cache: if the cache lags behind a write (its own, a replica's, a person's), the
/// intent's precondition — the cached resourceVersion — makes the API server refuse it and
/// nothing is sent (docs/exactly-once.md). That spares a burst one GET per command before its
/// dispatch, and hundreds of runs waiting for a Secret one GET of their whole object at every
/// look. Anything else is read fresh: its decision may also drop what the journal holds.
fn needs_fresh_read(rc: &RemoteCommand, journal: &dispatch::Journal) -> bool {
    let run = run_key(rc);
    if !is_current_run(rc) {
        return rc.status.is_some() || journal.holds(&run.uid);
    }
    let status = rc.status.as_ref();
    match status.and_then(|s| s.phase) {
        Some(Phase::Pending) => journal.holds(&run.uid),
        Some(Phase::Running) if rc.spec.target.aks.is_some() => {
            status.is_some_and(|s| s.command_id.is_none()) && journal.accepted(&run).is_none()
        }
        Some(Phase::Running) => !journal.has_session(&run),
        _ => false,
    }
}

/// Starts (or retries) the run: checks, then dispatch for the target kind.
async fn start(
    api: &Api<RemoteCommand>,
    rc: &RemoteCommand,
    ctx: &Arc<Context>,
    base: RemoteCommandStatus,
    line: Option<Share>,
) -> Result<Action, Failure> {
    if base.attempts.unwrap_or(0) == 0
        && let Some(mut late) = status::past_starting_deadline(rc, Timestamp::now())
    {
        // What it was waiting for, if anything, is part of the story.
        if let (Some(reason), Some(message)) = (&base.reason, &base.message) {
            late.message
                .push_str(&format!("; it was waiting: {reason}: {message}"));
        }
        return fail(api, rc, ctx, base, late).await;
    }
    let credential = match ctx
        .credential(
            &rc.namespace().unwrap_or_default(),
            rc.spec.credential_ref.as_ref(),
        )
        .await
    {
        Ok(c) => c,
        Err(f) => return not_started(api, rc, ctx, base, f).await,
    };
    let target = rc.spec.target.resource_id();
    let wanted = super::grants::Use {
        resource_id: target,
        admin_kubeconfig: false,
        aad_token: false,
        run_command: true,
    };
    if let Err(f) = credential.check_use(&rc.namespace().unwrap_or_default(), wanted) {
        return not_started(api, rc, ctx, base, f).await;
    }
    // Someone else's Secret under the output's name would only be noticed after the command ran:
    // refused before anything is sent (it is checked again when the output is written).
    let secrets = Api::namespaced(ctx.client.clone(), &rc.namespace().unwrap_or_default());
    let output = children::output_secret_name(rc);
    if let Err(f) =
        super::owned::owned_secret(&secrets, rc, &output, "spec.output.secretName").await
    {
        return not_started(api, rc, ctx, base, f).await;
    }
    let result = match (&rc.spec.target.aks, &rc.spec.target.container_instance) {
        (Some(_), None) => aks::start(api, rc, ctx, base.clone(), &credential, line).await,
        (None, Some(_)) => aci::start(api, rc, ctx, base.clone(), &credential).await,
        _ => Err(Failure::terminal(
            Reason::InvalidSpec,
            "spec.target must set exactly one of aks or containerInstance",
        )),
    };
    match result {
        Ok(action) => Ok(action),
        Err(f) => not_started(api, rc, ctx, base, f).await,
    }
}

/// A failure before anything was dispatched: retry later when it may pass (a transient error, or
/// a reference that may still appear) until the run's deadline, else the run fails.
async fn not_started(
    api: &Api<RemoteCommand>,
    rc: &RemoteCommand,
    ctx: &Arc<Context>,
    base: RemoteCommandStatus,
    failure: Failure,
) -> Result<Action, Failure> {
    let now = Timestamp::now();
    let expired = status::deadline_of(&base, rc).is_some_and(|d| now >= d);
    // A run that waited for a role assignment (403), a replicating principal or a reference fails
    // with what it waited for when its deadline passes, even though the last try was cut short by
    // that deadline (and so says only "not in time").
    let waited_for = base.reason.as_deref().and_then(|r| {
        [
            Reason::Forbidden,
            Reason::CredentialNotFound,
            Reason::FileNotFound,
            Reason::FileNotAllowed,
        ]
        .into_iter()
        .find(|w| w.as_str() == r)
    });
    let failure = match waited_for {
        Some(reason)
            if expired
                && matches!(
                    failure.reason,
                    Reason::Throttled | Reason::Retrying | Reason::DeadlineExceeded
                ) =>
        {
            Failure::transient(reason, base.message.clone().unwrap_or_default())
        }
        _ => failure,
    };
    if !(failure.transient || failure.awaits_reference()) {
        return fail(api, rc, ctx, base, failure).await;
    }
    if expired {
        let message = format!(
            "{}; gave up after timeoutSeconds ({}s) without dispatching",
            failure.message, rc.spec.timeout_seconds
        );
        return fail(
            api,
            rc,
            ctx,
            base,
            Failure::terminal(failure.reason, message),
        )
        .await;
    }
    let starts_waiting = base.reason.as_deref() != Some(failure.reason.as_str());
    let s = status::progress(base, Phase::Pending, failure.reason, &failure.message, now);
    // A look that finds what the last one found has nothing to tell: no write (each would send the
    // whole object through the API server, for every waiting run, every few seconds).
    if rc.status.as_ref() != Some(&s) {
        write_status(api, rc, &s).await?;
        tracing::info!(rcmd = %rc.name_any(), namespace = %rc.namespace().unwrap_or_default(), reason = %failure.reason, "not dispatched yet; will retry");
    }
    if failure.awaits_reference() {
        if starts_waiting {
            warn(ctx, rc, &failure).await;
        }
        return Ok(Action::requeue(super::limits::reference_retry(
            status::waited(&s, now),
        )));
    }
    if failure.reason == Reason::Forbidden && starts_waiting {
        warn(ctx, rc, &failure).await;
    }
    // Never wait past the deadline: the verdict comes when it passes.
    let until_deadline = status::time_left(&s, rc) + Duration::from_millis(100);
    Ok(Action::requeue(retry_delay(&failure).min(until_deadline)))
}

/// Ends the run with a failure: status, Event, log.
async fn fail(
    api: &Api<RemoteCommand>,
    rc: &RemoteCommand,
    ctx: &Context,
    base: RemoteCommandStatus,
    failure: Failure,
) -> Result<Action, Failure> {
    let s = status::failed(base, &failure, Timestamp::now());
    write_status(api, rc, &s).await?;
    ctx.metrics.outcome(CONTROLLER, failure.reason.as_str());
    ctx.journal.forget_answer(&rc.uid().unwrap_or_default());
    tracing::warn!(rcmd = %rc.name_any(), namespace = %rc.namespace().unwrap_or_default(), reason = %failure.reason, detail = %failure.message, "run failed");
    warn(ctx, rc, &failure).await;
    Ok(ttl::requeue(&status::with_status(rc, &s)))
}

/// A Warning Event with the failure's reason and message.
async fn warn(ctx: &Context, rc: &RemoteCommand, failure: &Failure) {
    let reason = failure.reason.as_str();
    ctx.event(rc, EventType::Warning, reason, "Run", &failure.message)
        .await;
}

/// How long to wait before trying a transient failure again.
fn retry_delay(failure: &Failure) -> Duration {
    match failure.reason {
        Reason::Throttled => Duration::from_secs(10),
        // A role assignment or a new principal settles in minutes, not seconds.
        Reason::Forbidden => Duration::from_secs(15),
        // Lost a race with another writer: read again soon.
        Reason::Conflict => Duration::from_millis(200),
        _ => Duration::from_secs(5),
    }
}

/// Requeue after an unexpected error (e.g. the Kubernetes API was unavailable).
pub fn error_policy(rc: Arc<RemoteCommand>, failure: &Failure, _ctx: Arc<Context>) -> Action {
    tracing::warn!(rcmd = %rc.name_any(), namespace = %rc.namespace().unwrap_or_default(), reason = %failure.reason, error = %failure.message, "reconcile failed; retrying");
    Action::requeue(retry_delay(failure))
}

/// Whether an interrupted dispatch may be sent again: only under `AtLeastOnce`, and at most
/// `maxAttempts` attempts in all.
fn may_redispatch(rc: &RemoteCommand, attempts: i32) -> bool {
    rc.spec.dispatch_policy == DispatchPolicy::AtLeastOnce && attempts < rc.spec.max_attempts
}

/// Why an interrupted dispatch is not sent again (the end of a failure message).
fn not_sent_again(rc: &RemoteCommand, attempts: i32) -> String {
    if rc.spec.dispatch_policy == DispatchPolicy::AtLeastOnce {
        format!(
            "not sent again: AtLeastOnce made {attempts} of maxAttempts ({}) attempts",
            rc.spec.max_attempts
        )
    } else {
        "under AtMostOnce it is not sent again (set dispatchPolicy: AtLeastOnce or a new runId to run it)"
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::remote_command::RemoteCommandSpec;

    fn new_command() -> RemoteCommand {
        let spec: RemoteCommandSpec = serde_json::from_value(serde_json::json!({
            "target": {"aks": {"resourceId": "/subscriptions/x/resourceGroups/r/providers/Microsoft.ContainerService/managedClusters/c"}},
            "command": "true",
        }))
        .unwrap();
        let mut rc = RemoteCommand::new("x", spec);
        rc.metadata.generation = Some(1);
        rc.metadata.uid = Some("uid-1".into());
        rc
    }

    #[test]
    fn only_a_command_untouched_by_anyone_is_decided_on_the_cache() {
        let journal = dispatch::Journal::default();
        let rc = new_command();
        assert!(
            !needs_fresh_read(&rc, &journal),
            "new: the intent's fence suffices"
        );
        let mut started = rc.clone();
        started.status = Some(status::dispatching(status::base(&rc), Timestamp::now()));
        assert!(needs_fresh_read(&started, &journal), "started: read fresh");
        // The cache may lag behind this process's own intent: what the journal holds of the
        // object must not be dropped on its word.
        journal.record_answer(&started, started.status.as_ref().unwrap());
        assert!(needs_fresh_read(&rc, &journal));
    }

    #[test]
    fn a_run_that_waits_undispatched_is_decided_on_the_cache_unless_the_journal_holds_it() {
        let journal = dispatch::Journal::default();
        let mut waiting = new_command();
        let base = status::base(&waiting);
        waiting.status = Some(status::progress(
            base,
            Phase::Pending,
            Reason::CredentialNotFound,
            "Secret c not found",
            Timestamp::now(),
        ));
        assert!(
            !needs_fresh_read(&waiting, &journal),
            "Pending: the intent's fence suffices"
        );
        let mut started = waiting.clone();
        started.status = Some(status::dispatching(
            waiting.status.clone().unwrap(),
            Timestamp::now(),
        ));
        journal.record_answer(&started, started.status.as_ref().unwrap());
        assert!(
            needs_fresh_read(&waiting, &journal),
            "the cache lags behind an intent this process wrote: read fresh"
        );
    }
}
