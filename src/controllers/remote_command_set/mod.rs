//! The RemoteCommandSet controller: a fleet run as a state machine. A new run (a spec whose
//! `template`, `targets` or `runId` changed) resolves its targets once and writes them to status
//! before anything is launched; then each reconcile launches what `maxConcurrency`, `maxErrors`
//! and `suspend` allow, counts what its children say, and ends the run when nothing runs and
//! nothing more will be launched. Children wake it through the set's watch of them.

pub mod children;
pub mod plan;
pub mod targets;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::Store;

use super::conditions::{self, Health};
use super::context::Context;
use super::reason::{Failure, Reason};
use crate::api::RemoteCommand;
use crate::api::remote_command_set::{
    DEFAULT_MAX_CONCURRENCY, RemoteCommandSet, RemoteCommandSetStatus,
};
use children::Launched;

/// Label of this controller in metrics.
pub const CONTROLLER: &str = "remote_command_set";

/// A running fleet is looked at again this often even if no child changed (a missed watch event
/// costs at most this).
const RECHECK: Duration = Duration::from_secs(60);

/// One step of `set`'s run. `commands` is the RemoteCommand cache of the set's watch scope.
pub async fn reconcile(
    set: Arc<RemoteCommandSet>,
    ctx: Arc<Context>,
    commands: Store<RemoteCommand>,
    launched: Arc<Launched>,
) -> Result<Action, Failure> {
    let uid = set.uid().unwrap_or_default();
    if set.metadata.deletion_timestamp.is_some() {
        // Its RemoteCommands go with it through their owner references.
        launched.forget(&uid);
        return Ok(Action::await_change());
    }
    // Which targets were launched is read from the children's cache: never before it is filled.
    if commands.wait_until_ready().await.is_err() {
        return Ok(Action::await_change());
    }
    let namespace = set.namespace().unwrap_or_default();
    let Some(_share) = ctx.limits.enter(&namespace, None) else {
        return Ok(Action::requeue(super::limits::SHARE_RETRY));
    };
    let api: Api<RemoteCommandSet> = Api::namespaced(ctx.client.clone(), &namespace);
    let generation = set.metadata.generation.unwrap_or_default();
    let run_key = plan::run_key(&set.spec);
    let mut status = set.status.clone().unwrap_or_default();

    if status.run_key.as_deref() != Some(run_key.as_str()) {
        launched.forget(&uid);
        let resolved = match targets::validate(&set) {
            Ok(()) => targets::resolve(&set, &ctx).await,
            Err(failure) => Err(failure),
        };
        let resolved = match resolved {
            Ok(t) => t,
            Err(failure) => return fail(&api, &set, &ctx, status, failure).await,
        };
        status = RemoteCommandSetStatus {
            observed_generation: generation,
            run_key: Some(run_key.clone()),
            run_id: set.spec.run_id.clone(),
            target_count: i32::try_from(resolved.len()).unwrap_or(i32::MAX),
            not_started: i32::try_from(resolved.len()).unwrap_or(i32::MAX),
            targets: resolved,
            start_time: Some(Time(Timestamp::now())),
            conditions: status.conditions,
            ..Default::default()
        };
        // The frozen target list is stored before the first launch: a restart finds it.
        write_status(&api, &set, &status).await?;
        tracing::info!(set = %set.name_any(), namespace = %namespace, targets = status.target_count, run = %run_key, "fleet run started");
        ctx.event(
            &*set,
            EventType::Normal,
            "RunStarted",
            "Resolve",
            &format!("{} targets", status.target_count),
        )
        .await;
    }

    let n = status.targets.len();
    let limits = plan::limit(
        set.spec.max_concurrency.as_ref(),
        DEFAULT_MAX_CONCURRENCY,
        n,
        true,
    )
    .and_then(|c| plan::limit(set.spec.max_errors.as_ref(), 0, n, false).map(|e| (c, e)));
    let (max_concurrency, max_errors) = match limits {
        Ok(l) => l,
        Err(e) => {
            let failure = Failure::terminal(
                Reason::InvalidSpec,
                format!("spec.maxConcurrency or spec.maxErrors: {e}"),
            );
            return fail(&api, &set, &ctx, status, failure).await;
        }
    };
    let mut observed = children::observe(&set, &run_key, &status.targets, &commands, &launched);
    let rc_api: Api<RemoteCommand> = Api::namespaced(ctx.client.clone(), &namespace);
    // Targets launched in this run whose RemoteCommand is gone: never launched again.
    let mark = usize::try_from(status.launched).unwrap_or(0).min(n);
    let gone: Vec<usize> = (0..mark).filter(|i| !observed.contains_key(i)).collect();
    if !gone.is_empty() && status.completion_time.is_some() {
        // The run is over and its commands deleted (its TTL, or by hand): its counts are final.
        if status.observed_generation != generation {
            status.observed_generation = generation;
            write_status(&api, &set, &status).await?;
        }
        return expire(&rc_api, &set, &run_key, &status).await;
    }
    for i in gone {
        // Deleted while the run went on: whether it ran is unknown.
        let name = plan::child_name(&set.name_any(), &run_key, &status.targets[i]);
        observed.insert(i, children::gone(name));
    }
    let next = plan::plan(
        &status.targets,
        &observed,
        max_concurrency,
        max_errors,
        set.spec.suspend,
    );
    for &i in &next.launch {
        let target = &status.targets[i];
        let name = plan::child_name(&set.name_any(), &run_key, target);
        let rc = children::child(&set, &run_key, &name, target);
        if let Err(failure) = children::launch(&rc_api, &rc).await {
            return fail(&api, &set, &ctx, status, failure).await;
        }
        launched.record(&uid, &name);
    }

    let before = status.clone();
    let highest = observed
        .keys()
        .chain(&next.launch)
        .max()
        .map_or(0, |i| i + 1);
    status.launched = i32::try_from(mark.max(highest)).unwrap_or(i32::MAX);
    settle(&mut status, &set, generation, &next);
    if status != before {
        write_status(&api, &set, &status).await?;
        if status.completion_time.is_some() && before.completion_time.is_none() {
            let (type_, reason) = match status.failed {
                0 => (EventType::Normal, "RunCompleted"),
                _ => (
                    EventType::Warning,
                    status.reason.as_deref().unwrap_or("TargetsFailed"),
                ),
            };
            let note = status.message.clone().unwrap_or_default();
            ctx.event(&*set, type_, reason, "Run", &note).await;
        }
    }
    if next.done {
        return expire(&rc_api, &set, &run_key, &status).await;
    }
    Ok(Action::requeue(RECHECK))
}

/// A completed run's `template.ttlSecondsAfterFinished`: once it has passed since the run
/// completed, the run's RemoteCommands (and with them their output Secrets) are deleted; until
/// then the set is looked at again when it passes.
async fn expire(
    api: &Api<RemoteCommand>,
    set: &RemoteCommandSet,
    run_key: &str,
    status: &RemoteCommandSetStatus,
) -> Result<Action, Failure> {
    let (Some(ttl), Some(completed)) = (
        set.spec.template.ttl_seconds_after_finished,
        status.completion_time.as_ref(),
    ) else {
        return Ok(Action::await_change());
    };
    let due = completed.0 + k8s_openapi::jiff::SignedDuration::from_secs(ttl);
    let now = Timestamp::now();
    if now < due {
        return Ok(Action::requeue(due.duration_since(now).unsigned_abs()));
    }
    let launched = usize::try_from(status.launched).unwrap_or(0);
    for target in status.targets.iter().take(launched) {
        children::delete(api, &plan::child_name(&set.name_any(), run_key, target)).await?;
    }
    Ok(Action::await_change())
}

/// The status `next` describes: counts, failed targets, reason, conditions, completion.
fn settle(
    status: &mut RemoteCommandSetStatus,
    set: &RemoteCommandSet,
    generation: i64,
    next: &plan::Plan,
) {
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    status.observed_generation = generation;
    status.active = count(next.active);
    status.succeeded = count(next.succeeded);
    status.failed = count(next.failed);
    status.not_started = count(next.not_started);
    status.failed_targets = next.failed_targets.clone();
    let (health, reason, message) = if next.done && next.failed == 0 {
        (
            Health::Ready,
            Reason::Completed,
            format!("all {} targets succeeded", status.target_count),
        )
    } else if next.done && next.stopped {
        (
            Health::Stalled,
            Reason::MaxErrorsExceeded,
            format!(
                "{} targets failed, more than maxErrors allows; {} not started",
                next.failed, next.not_started
            ),
        )
    } else if next.done {
        (
            Health::Stalled,
            Reason::TargetsFailed,
            format!("{} of {} targets failed", next.failed, status.target_count),
        )
    } else if set.spec.suspend && next.active == 0 {
        (
            Health::Progressing,
            Reason::Suspended,
            format!("suspended; {} not started", next.not_started),
        )
    } else {
        (
            Health::Progressing,
            Reason::Running,
            format!(
                "{} active, {} succeeded, {} failed, {} not started",
                next.active, next.succeeded, next.failed, next.not_started
            ),
        )
    };
    let reason = reason.as_str();
    if status.reason.as_deref() != Some(reason) || status.message.as_deref() != Some(&message) {
        let now = Time(Timestamp::now());
        conditions::apply(
            &mut status.conditions,
            health,
            reason,
            &message,
            generation,
            &now,
        );
        let suspended = if set.spec.suspend { "True" } else { "False" };
        conditions::set(
            &mut status.conditions,
            "Suspended",
            suspended,
            reason,
            &message,
            generation,
            &now,
        );
        status.reason = Some(reason.to_string());
        status.message = Some(message);
    }
    if next.done && status.completion_time.is_none() {
        status.completion_time = Some(Time(Timestamp::now()));
    } else if !next.done {
        // Resumed (a larger maxErrors): the run goes on.
        status.completion_time = None;
    }
}

/// Records a failure of the run itself (spec, discovery, a refused launch): transient ones are
/// retried, a reference that may still appear is awaited, terminal ones stall the run until its
/// spec changes.
async fn fail(
    api: &Api<RemoteCommandSet>,
    set: &RemoteCommandSet,
    ctx: &Context,
    mut status: RemoteCommandSetStatus,
    failure: Failure,
) -> Result<Action, Failure> {
    let generation = set.metadata.generation.unwrap_or_default();
    let waits = failure.transient || failure.awaits_reference();
    let health = if waits {
        Health::Progressing
    } else {
        Health::Stalled
    };
    let reason = failure.reason.as_str();
    let changed = status.reason.as_deref() != Some(reason);
    let now = Time(Timestamp::now());
    status.observed_generation = generation;
    conditions::apply(
        &mut status.conditions,
        health,
        reason,
        &failure.message,
        generation,
        &now,
    );
    status.reason = Some(reason.to_string());
    status.message = Some(crate::text::clean(&failure.message, 1024));
    write_status(api, set, &status).await?;
    tracing::warn!(set = %set.name_any(), namespace = %set.namespace().unwrap_or_default(), reason, detail = %failure.message, "fleet run held");
    if changed {
        let type_ = if waits {
            EventType::Normal
        } else {
            EventType::Warning
        };
        ctx.event(set, type_, reason, "Run", &failure.message).await;
    }
    ctx.metrics.outcome(CONTROLLER, reason);
    Ok(if waits {
        Action::requeue(super::reason::REFERENCE_RETRY.max(Duration::from_secs(10)))
    } else {
        Action::await_change()
    })
}

/// Applies the whole status (we own every field of it).
async fn write_status(
    api: &Api<RemoteCommandSet>,
    set: &RemoteCommandSet,
    status: &RemoteCommandSetStatus,
) -> Result<(), Failure> {
    // Fenced: the set was read from the cache, which may not show our last write yet.
    let read_at = set.metadata.resource_version.as_deref();
    crate::controllers::status::apply(api, &set.name_any(), status, read_at).await
}

/// Requeue after an error the reconcile could not record.
pub fn error_policy(set: Arc<RemoteCommandSet>, failure: &Failure, _ctx: Arc<Context>) -> Action {
    let namespace = set.namespace().unwrap_or_default();
    super::status::retry("RemoteCommandSet", &set.name_any(), &namespace, failure)
}
