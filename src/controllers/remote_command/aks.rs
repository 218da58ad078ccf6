//! AKS targets: checks, dispatch through `runCommand`, and polling `commandResults`.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

use super::dispatch::{self, Recorded};
use super::status::{self, Outcome};
use super::{children, fail, may_redispatch, not_sent_again, not_started, write_status};
use crate::api::Phase;
use crate::api::remote_command::{RemoteCommand, RemoteCommandStatus};
use crate::azure::aks::{CommandId, CommandStatus, RUN_COMMAND_OP, RunCommandResult};
use crate::azure::throttle::OpKind;
use crate::azure::{AksClusterId, ArmError, CallContext};
use crate::controllers::arm_errors;
use crate::controllers::context::Context;
use crate::controllers::limits::Share;
use crate::controllers::reason::{Failure, Reason};
use crate::controllers::references::{self, CredentialSource};

/// AKS keeps at most 512 kB of a run command's logs and drops the rest, by design (MicrosoftDocs
/// azure-docs PR #115257, azure-cli #27484). Logs this long (512 000 bytes, less a split UTF-8
/// character) may have been cut: status says so.
const AKS_OUTPUT_CAP: usize = 512_000 - 3;

/// How long a run's first dispatch may wait for the ARM write budget before status says so.
const ACKNOWLEDGE_AFTER: Duration = Duration::from_secs(5);

/// A wait for the write budget longer than this says the budget is short (`line.rs`).
const SHORT_BUDGET: Duration = Duration::from_millis(100);

/// Longest single ARM exchange budget inside one reconcile.
const STEP_BUDGET: Duration = Duration::from_secs(60);
/// How long one reconcile keeps trying to record a command id ARM accepted before it leaves it to
/// the journal (and a later reconcile, or the flush on the way out).
const RECORD_PATIENCE: Duration = Duration::from_secs(10);

fn cluster_id(rc: &RemoteCommand) -> Result<AksClusterId, Failure> {
    let raw = rc.spec.target.aks.as_ref().map(|t| t.resource_id.as_str());
    status::target_id(raw, "spec.target.aks.resourceId")
}

/// The ARM deadline of one step: the run's deadline, at most a minute away.
fn step_deadline(rc: &RemoteCommand) -> Instant {
    let current = rc.status.clone().unwrap_or_default();
    Instant::now() + status::time_left(&current, rc).min(STEP_BUDGET)
}

async fn call_context(
    ctx: &Arc<Context>,
    rc: &RemoteCommand,
    credential: &CredentialSource,
    id: &AksClusterId,
    attempt: i32,
) -> Result<CallContext, Failure> {
    let call = ctx.azure.call_context(
        &rc.namespace().unwrap_or_default(),
        credential,
        id.subscription_id(),
        status::correlation_id(rc, attempt),
        step_deadline(rc),
    )?;
    // When the budget is short, the dispatch of the oldest command goes first, and so does the
    // poll of the oldest (its result is the likeliest to be out).
    Ok(CallContext {
        order: Some(ctx.arrivals.age(rc)),
        ..call
    })
}

/// Checks the target and the files, then dispatches.
pub async fn start(
    api: &Api<RemoteCommand>,
    rc: &RemoteCommand,
    ctx: &Arc<Context>,
    base: RemoteCommandStatus,
    credential: &CredentialSource,
    line: Option<Share>,
) -> Result<Action, Failure> {
    let id = cluster_id(rc)?;
    let namespace = rc.namespace().unwrap_or_default();
    let credential_secrets: Vec<&str> = rc
        .spec
        .credential_ref
        .as_ref()
        .map(|r| r.name.as_str())
        .into_iter()
        .chain([references::DEFAULT_CREDENTIAL_SECRET])
        .collect();
    // The files' bytes stay held until the dispatch is over. A wait for the memory budget is said
    // in status soon (as one for the ARM budget is) and tried again; nothing was sent.
    let collected = references::collect_files(
        &ctx.client,
        &ctx.limits,
        &namespace,
        &rc.spec.files,
        &credential_secrets,
        ctx.settings.max_context_bytes,
    );
    let patience = status::time_left(&base, rc).min(ACKNOWLEDGE_AFTER * 2);
    let (files, _files_held) = tokio::time::timeout(patience, collected).await.map_err(
        |_| {
            Failure::transient(
                Reason::Throttled,
                "waiting for the operator's memory budget (--memory-budget-mib) to read spec.files",
            )
        },
    )??;
    let context = if files.is_empty() {
        None
    } else {
        let files = files.into_iter().map(|f| (f.path, f.contents)).collect();
        Some(
            crate::azure::aks::build_context(files, ctx.settings.max_context_bytes)
                .map_err(|e| arm_errors::failure(&e))?,
        )
    };
    let attempt = base.attempts.unwrap_or(0) + 1;
    let call = call_context(ctx, rc, credential, &id, attempt).await?;
    ctx.azure
        .arm
        .prepare(&call, RUN_COMMAND_OP)
        .await
        .map_err(|e| arm_errors::failure(&e))?;
    let cluster = ctx
        .azure
        .cluster_info(&call, &id)
        .await
        .map_err(|e| arm_errors::failure(&e))?;
    if cluster.stopped() {
        return Err(Failure::terminal(
            Reason::TargetNotRunning,
            format!(
                "cluster {id} is {} (powerState; provisioningState {}): nothing runs on a stopped cluster; start it (az aks start) and set a new spec.runId",
                cluster.power_state.as_deref().unwrap_or_default(),
                cluster.provisioning_state.as_deref().unwrap_or("unknown")
            ),
        ));
    }
    if cluster.run_command_disabled {
        return Err(Failure::terminal(
            Reason::RunCommandDisabled,
            format!("run command is disabled on {id} (apiServerAccessProfile.disableRunCommand)"),
        ));
    }
    let cluster_token = if cluster.aad_managed {
        let left = status::time_left(&base, rc);
        Some(
            ctx.azure
                .cluster_token(credential, &call, cluster.aad_tenant_id.as_deref(), left)
                .await
                .map_err(|e| arm_errors::failure(&e))?,
        )
    } else {
        None
    };

    // A runCommand POST can block up to ARM's 60 s (AKS waits for the command pod before it answers
    // "did not start", azure-cli #27776): never start one that cannot finish in time.
    let left = status::time_left(&base, rc);
    let needed = dispatch_headroom(rc);
    if left < needed {
        return Err(Failure::terminal(
            Reason::DeadlineExceeded,
            format!(
                "not dispatched: only {}s of timeoutSeconds ({}s) were left, and a runCommand request may take {}s to answer",
                left.as_secs(),
                rc.spec.timeout_seconds,
                needed.as_secs()
            ),
        ));
    }

    // Take the write budget first: waiting for it can be long when many commands start at once,
    // and a crash while waiting must not look like an interrupted dispatch. The wait ends early
    // enough to leave the request its headroom.
    let budget = CallContext {
        deadline: Instant::now() + (left - needed),
        ..call.clone()
    };
    let asked = Instant::now();
    let reserve = ctx
        .azure
        .arm
        .reserve(&budget, RUN_COMMAND_OP, OpKind::Write);
    tokio::pin!(reserve);
    // A run nobody has written yet looks unserved to `kubectl invoke` (which withdraws such a run
    // after 30 s): a long wait for the budget is said in status, keeping our place in the line.
    let mut acknowledged = None;
    let reserved = tokio::select! {
        r = &mut reserve => r,
        _ = tokio::time::sleep(ACKNOWLEDGE_AFTER), if base.phase.is_none() => {
            let s = status::progress(
                base.clone(),
                Phase::Pending,
                Reason::Throttled,
                "waiting for the ARM write budget before dispatching",
                Timestamp::now(),
            );
            acknowledged = Some(write_status(api, rc, &s).await?);
            reserve.await
        }
    };
    reserved.map_err(|e| arm_errors::failure(&e))?;
    // The budget is ours: the next run in the dispatch line may wait for it now. A wait says the
    // budget is short, and the line admits fewer until a token comes at once again.
    if let Some(line) = line {
        line.mark_short(asked.elapsed() > SHORT_BUDGET);
    }
    let (rc, base) = match &acknowledged {
        Some(written) => (written, written.status.clone().unwrap_or_default()),
        None => (rc, base),
    };
    // The budget wait can be long: a run whose starting deadline passed meanwhile is not sent.
    if base.attempts.unwrap_or(0) == 0
        && let Some(late) = status::past_starting_deadline(rc, Timestamp::now())
    {
        return Err(late);
    }

    // The exactly-once protocol (dispatch.rs): fenced intent, tenure check, request, record.
    let intent = match dispatch::ready_to_send(api, rc, ctx, base).await? {
        Ok(intent) => intent,
        Err(wait) => return Ok(wait),
    };
    // Tenure is asked again right before every attempt of the POST, retries after a 429 or a
    // refused connection included: a replica that lost the Lease meanwhile sends nothing.
    let call = CallContext {
        deadline: step_deadline(&intent.rc),
        fence: Some(ctx.tenure.fence()),
        ..call
    };
    let sent = ctx
        .azure
        .aks
        .run_command(&call, &id, &rc.spec.command, context, cluster_token, true)
        .await;
    let (rc, s) = (&intent.rc, intent.status.clone());
    match sent {
        Ok(accepted) => {
            let command_id = accepted.command_id.to_string();
            let mut s = s;
            s.command_id = Some(command_id.clone());
            let s = status::progress(
                s,
                Phase::Running,
                Reason::Running,
                &format!("ARM accepted command {command_id}"),
                Timestamp::now(),
            );
            match dispatch::record_answer(api, &ctx.journal, rc, &s, Some(RECORD_PATIENCE)).await {
                Recorded::Written => {}
                Recorded::WrittenLate => {
                    dispatch::announce_late(ctx, rc, &s).await;
                    return Ok(Action::requeue(Duration::from_secs(1)));
                }
                Recorded::Superseded => {
                    tracing::warn!(rcmd = %rc.name_any(), command_id = %command_id, "ARM accepted the command, but the RemoteCommand moved on meanwhile");
                    return Ok(Action::requeue(Duration::from_secs(1)));
                }
                Recorded::NotYet(f) => {
                    // The journal holds the command id; the next reconcile (or the flush on the
                    // way out) records it.
                    tracing::warn!(rcmd = %rc.name_any(), error = %f, "could not record the command id yet");
                    return Ok(Action::requeue(Duration::from_secs(1)));
                }
            }
            tracing::info!(rcmd = %rc.name_any(), namespace = %namespace, command_id = %command_id, attempt = s.attempts.unwrap_or(1), "dispatched");
            ctx.event(
                rc,
                EventType::Normal,
                "Dispatched",
                "Dispatch",
                &format!("ARM accepted command {command_id} on {id}"),
            )
            .await;
            Ok(Action::requeue(poll_delay(
                accepted.retry_after,
                status::time_left(&s, rc),
            )))
        }
        Err(ArmError::Fenced { .. }) => Ok(dispatch::give_up(api, &intent).await),
        Err(e) => dispatch_failed(api, rc, ctx, s, &e).await,
    }
}

/// How much of the run's time a dispatch needs left: the 60 s ARM gives a runCommand POST (AKS
/// docs, "Access a private AKS cluster": the maximum time for the command pod to be scheduled), or
/// half the timeout when that is shorter (a short timeout is the user's choice).
fn dispatch_headroom(rc: &RemoteCommand) -> Duration {
    const POST_MAY_TAKE: Duration = Duration::from_secs(60);
    POST_MAY_TAKE.min(Duration::from_secs(rc.spec.timeout_seconds.max(1) as u64) / 2)
}

/// The dispatch request failed: refused outright (nothing ran), or lost on the way (unknown).
async fn dispatch_failed(
    api: &Api<RemoteCommand>,
    rc: &RemoteCommand,
    ctx: &Arc<Context>,
    s: RemoteCommandStatus,
    err: &ArmError,
) -> Result<Action, Failure> {
    let failure = arm_errors::failure(err);
    if matches!(err, ArmError::AcceptedUnreadable { .. }) {
        // ARM accepted it: the run ends here under either policy, it is never sent again.
        return fail(api, rc, ctx, s, failure).await;
    }
    if let Some(why) = not_run_error(err) {
        return not_run_outcome(api, rc, ctx, s, why).await;
    }
    if refused(err) {
        // ARM answered: the command was not accepted, so this attempt does not count.
        let mut s = s;
        s.attempts = s.attempts.map(|a| a - 1);
        return not_started(api, rc, ctx, s, failure).await;
    }
    let attempts = s.attempts.unwrap_or(1);
    if may_redispatch(rc, attempts) {
        tracing::warn!(rcmd = %rc.name_any(), error = %failure.message, "dispatch outcome unknown; dispatching again (AtLeastOnce)");
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let failure = Failure::terminal(
        Reason::DispatchInterrupted,
        format!(
            "it is unknown whether ARM accepted the command ({}); {}",
            failure.message,
            not_sent_again(rc, attempts)
        ),
    );
    fail(api, rc, ctx, s, failure).await
}

/// ARM answered with a refusal (or the request never left), so the command certainly did not start.
fn refused(err: &ArmError) -> bool {
    !err.may_have_been_processed()
}

/// What reading one command result may hold: the body and the output parsed from it.
const RESULT_BYTES: usize = 1024 * 1024;

/// Polls the dispatched command, or handles a dispatch whose outcome was not recorded.
pub async fn continue_run(
    api: &Api<RemoteCommand>,
    rc: &RemoteCommand,
    ctx: &Arc<Context>,
    current: RemoteCommandStatus,
) -> Result<Action, Failure> {
    let run = status::run_key(rc);
    let command_id = match (&current.command_id, ctx.journal.answer(&run)) {
        (Some(id), _) => id.clone(),
        (None, Some(answer)) => {
            // Accepted, but the status write did not land yet: write it now.
            let Some(id) = answer.command_id.clone() else {
                return Err(Failure::transient(
                    Reason::Retrying,
                    "no command id in the journal",
                ));
            };
            match dispatch::record_answer(api, &ctx.journal, rc, &answer, Some(RECORD_PATIENCE))
                .await
            {
                Recorded::Written => {}
                Recorded::WrittenLate => {
                    dispatch::announce_late(ctx, rc, &answer).await;
                    return Ok(Action::requeue(Duration::from_secs(1)));
                }
                Recorded::Superseded => return Ok(Action::requeue(Duration::from_secs(1))),
                Recorded::NotYet(f) => return Err(f),
            }
            id
        }
        (None, None) => return interrupted(api, rc, ctx, current).await,
    };
    let id = cluster_id(rc)?;
    let credential = ctx
        .credential(
            &rc.namespace().unwrap_or_default(),
            rc.spec.credential_ref.as_ref(),
        )
        .await;
    let credential = match credential {
        Ok(c) => c,
        Err(f) if f.transient => return Err(f),
        Err(f) => return fail(api, rc, ctx, current, f).await,
    };
    let call = call_context(ctx, rc, &credential, &id, current.attempts.unwrap_or(1)).await?;
    let command = CommandId::new(&command_id)
        .map_err(|e| Failure::terminal(Reason::InvalidSpec, format!("status.commandId: {e}")))?;
    // A result holds the command's output (AKS keeps at most 512 kB of logs, JSON-escaped in the
    // body) until it is in the output Secret.
    let _output = ctx
        .limits
        .hold(&rc.namespace().unwrap_or_default(), RESULT_BYTES)
        .await;
    match ctx.azure.aks.command_result(&call, &id, &command).await {
        Ok(CommandStatus::Running {
            retry_after,
            started_at,
        }) => {
            let delay = poll_delay(retry_after, status::time_left(&current, rc));
            match started_at {
                Some(at) if current.command_started_at.is_none() => {
                    seen_started(api, rc, current, &command_id, at).await?;
                }
                _ => {}
            }
            Ok(Action::requeue(delay))
        }
        // A failed result without `startedAt`: AKS never started the command pod (in-band "did
        // not start"), so it may be sent again — unless an earlier poll saw it started. With
        // `startedAt` the command ran and then failed: it is reported as ARM said, never sent again
        // (RunCommandResult in the AKS 2025-10-01 swagger; azure-cli `aks_command_result` prints
        // the same fields).
        Ok(CommandStatus::Finished(mut result))
            if !result.succeeded
                && result.started_at.is_none()
                && current.command_started_at.is_some() =>
        {
            result.started_at = current.command_started_at.clone();
            finished(api, rc, ctx, current, &command_id, result).await
        }
        Ok(CommandStatus::Finished(result)) if !result.succeeded && result.started_at.is_none() => {
            let why = result
                .reason
                .unwrap_or_else(|| result.provisioning_state.clone());
            // The reason of a failed result is free text, often "<code>: <message>".
            let (code, message) = why.split_once(':').unwrap_or(("", &why));
            let verdict = not_run(code.trim(), message.trim())
                .or_else(|| not_run("KubernetesOperationError", &why))
                .unwrap_or(NotRun::DidNotStart(why.clone()));
            not_run_outcome(api, rc, ctx, current, verdict).await
        }
        Ok(CommandStatus::Finished(result)) => {
            finished(api, rc, ctx, current, &command_id, result).await
        }
        Err(e) if e.api().is_some_and(|a| a.status == 404) => {
            result_not_found(api, rc, ctx, current, &call, &id, &command_id).await
        }
        Err(e) => {
            let failure = arm_errors::failure(&e);
            if failure.transient {
                tracing::info!(rcmd = %rc.name_any(), reason = %failure.reason, "polling failed; retrying");
                return Ok(Action::requeue(super::retry_delay(&failure)));
            }
            fail(api, rc, ctx, current, failure).await
        }
    }
}

/// ARM said the command started (`startedAt` in an in-progress answer): recorded once, so that no
/// later answer — a `failed` result without `startedAt`, a 404 — can make it look unstarted.
async fn seen_started(
    api: &Api<RemoteCommand>,
    rc: &RemoteCommand,
    current: RemoteCommandStatus,
    command_id: &str,
    at: String,
) -> Result<(), Failure> {
    let mut s = current;
    s.command_started_at = Some(at.clone());
    let s = status::progress(
        s,
        Phase::Running,
        Reason::Running,
        &format!("command {command_id} started on the cluster at {at}"),
        Timestamp::now(),
    );
    write_status(api, rc, &s).await?;
    Ok(())
}

/// `commandResults` answered 404 for a command ARM accepted. AKS does that when the command pod
/// never reached Running (support article "Resolve az aks command invoke failures", cause 1), and
/// also when the cluster is gone: the cluster is read again (not from the cache) to tell which.
async fn result_not_found(
    api: &Api<RemoteCommand>,
    rc: &RemoteCommand,
    ctx: &Arc<Context>,
    current: RemoteCommandStatus,
    call: &CallContext,
    id: &AksClusterId,
    command_id: &str,
) -> Result<Action, Failure> {
    match ctx.azure.aks.get_cluster(call, id).await {
        Ok(_) => {}
        Err(e) if e.api().is_some_and(|a| a.status == 404) => {
            let failure = Failure::terminal(
                Reason::TargetNotFound,
                format!(
                    "cluster {id} no longer exists, and with it the result of command {command_id}: whether the command ran is unknown"
                ),
            );
            return fail(api, rc, ctx, current, failure).await;
        }
        Err(e) => {
            let failure = arm_errors::failure(&e);
            if failure.transient {
                return Ok(Action::requeue(super::retry_delay(&failure)));
            }
            return fail(api, rc, ctx, current, failure).await;
        }
    }
    if let Some(at) = &current.command_started_at {
        let failure = Failure::terminal(
            Reason::ResultUnavailable,
            format!(
                "ARM no longer has the result of command {command_id}, which started at {at}; it is not sent again"
            ),
        );
        return fail(api, rc, ctx, current, failure).await;
    }
    let why = format!(
        "ARM has no result for command {command_id} (404) while the cluster exists: AKS answers so when the command pod never reached Running"
    );
    let attempts = current.attempts.unwrap_or(1);
    if may_redispatch(rc, attempts) {
        return did_not_start(api, rc, ctx, current, why).await;
    }
    // A 404 proves less than a `failed` result (a result can also be gone because it expired):
    // whether it ran is unknown.
    let failure = Failure::terminal(
        Reason::ResultUnavailable,
        format!(
            "{why}, or the result expired: whether the command ran is unknown; {}",
            not_sent_again(rc, attempts)
        ),
    );
    fail(api, rc, ctx, current, failure).await
}

/// The command ran: its logs go to the output Secret and its verdict to status — the exit code
/// when AKS reports it succeeded, ARM's reason when AKS reports it failed after it started.
async fn finished(
    api: &Api<RemoteCommand>,
    rc: &RemoteCommand,
    ctx: &Arc<Context>,
    current: RemoteCommandStatus,
    command_id: &str,
    result: RunCommandResult,
) -> Result<Action, Failure> {
    let run = status::run_key(rc);
    let at_service_cap = result.logs.len() >= AKS_OUTPUT_CAP;
    let (output, truncated) = status::stored_output(result.logs.into_bytes());
    let secret = children::write_output(&ctx.client, rc, &output, result.exit_code).await;
    let secret = match secret {
        Ok(name) => name,
        Err(f) if f.transient => return Err(f),
        Err(f) => {
            // The command ran: its exit code is kept even when its output cannot be stored.
            let mut current = current;
            current.exit_code = result.exit_code;
            ctx.journal.forget_answer(&run.uid);
            return fail(api, rc, ctx, current, f).await;
        }
    };
    let exit = result.exit_code.unwrap_or(0);
    let note = status::output_note(output.len(), &secret, truncated, at_service_cap);
    let message = if result.succeeded {
        format!("command {command_id} exited with code {exit}; {note}")
    } else {
        format!(
            "AKS reports command {command_id} {} after it started at {}: {}; it is not dispatched again; {note}",
            result.provisioning_state,
            result.started_at.as_deref().unwrap_or_default(),
            result.reason.as_deref().unwrap_or("no reason given"),
        )
    };
    let outcome = Outcome {
        exit_code: result.exit_code.or(result.succeeded.then_some(0)),
        output,
        truncated: truncated || at_service_cap,
        output_secret_name: secret,
        tail_bytes: rc.spec.output.tail_bytes.max(0) as usize,
        message: message.clone(),
    };
    let now = Timestamp::now();
    let mut s = status::finished(current, outcome, now);
    if !result.succeeded {
        let failure = Failure::terminal(Reason::ArmOperationFailed, message.clone());
        s = status::failed(s, &failure, now);
    }
    write_status(api, rc, &s).await?;
    // The Event and the metric say what status says.
    let reason = s.reason.clone().unwrap_or_default();
    ctx.metrics.outcome(super::CONTROLLER, &reason);
    ctx.journal.forget_answer(&run.uid);
    tracing::info!(rcmd = %rc.name_any(), command_id = %command_id, exit_code = ?result.exit_code, reason = %reason, "finished");
    let kind = if s.phase == Some(Phase::Succeeded) {
        EventType::Normal
    } else {
        EventType::Warning
    };
    ctx.event(rc, kind, &reason, "Complete", &message).await;
    Ok(super::ttl::requeue(&status::with_status(rc, &s)))
}

/// AKS could not start the command's pod (reported in the result, or as the POST's error): it did
/// not run, so it is dispatched again up to `maxAttempts` within the deadline, reading the object
/// fresh; then the run fails as `CommandDidNotStart`.
async fn did_not_start(
    api: &Api<RemoteCommand>,
    rc: &RemoteCommand,
    ctx: &Arc<Context>,
    current: RemoteCommandStatus,
    why: String,
) -> Result<Action, Failure> {
    let run = status::run_key(rc);
    let attempts = current.attempts.unwrap_or(1);
    let within_deadline = status::deadline(rc).is_none_or(|d| Timestamp::now() < d);
    if attempts < rc.spec.max_attempts && within_deadline {
        tracing::info!(rcmd = %rc.name_any(), attempt = attempts, reason = %why, "command did not start; dispatching again");
        ctx.event(
            rc,
            EventType::Warning,
            "CommandDidNotStart",
            "Dispatch",
            &format!("attempt {attempts} did not start ({why}); trying again"),
        )
        .await;
        ctx.journal.forget_answer(&run.uid);
        // Pending again: the next reconcile reads the object fresh and dispatches attempt + 1.
        let message = format!("attempt {attempts} did not start ({why}); dispatching again");
        let mut s = status::progress(
            current,
            Phase::Pending,
            Reason::CommandDidNotStart,
            &message,
            Timestamp::now(),
        );
        s.command_id = None;
        write_status(api, rc, &s).await?;
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    let failure = Failure::terminal(
        Reason::CommandDidNotStart,
        format!("the command did not start after {attempts} attempt(s): ARM reported {why}"),
    );
    fail(api, rc, ctx, current, failure).await
}

/// What AKS said about a command it did not run, by ARM error code (the wording varies).
#[derive(Debug, PartialEq, Eq)]
enum NotRun {
    /// The command pod did not start: may be sent again.
    DidNotStart(String),
    /// An admission webhook of the cluster refused the command pod: final, the message names it.
    AdmissionDenied(String),
}

/// Reads an AKS refusal to run a command, from the POST's error or a `failed` result's reason:
/// - `KubernetesPerformanceError` is always "did not start", whatever its text ("… did not start
///   within 30s", "Pod is not schedulable: Insufficient resources for the RunCommand pod…":
///   azure-cli #27776, #22738, #23203, #24192);
/// - `KubernetesOperationError` "… admission webhook … denied the request" is a policy's verdict
///   (support article "Resolve az aks command invoke failures", cause 2), final;
/// - `KubernetesOperationError` "… did not start …" is the older wording of the first case.
fn not_run(code: &str, message: &str) -> Option<NotRun> {
    let text = format!("{code}: {message}");
    let lower = message.to_ascii_lowercase();
    if code.eq_ignore_ascii_case("KubernetesOperationError")
        && lower.contains("admission webhook")
        && lower.contains("denied the request")
    {
        return Some(NotRun::AdmissionDenied(text));
    }
    let did_not_start = code.eq_ignore_ascii_case("KubernetesPerformanceError")
        || (code.eq_ignore_ascii_case("KubernetesOperationError")
            && lower.contains("did not start"));
    did_not_start.then_some(NotRun::DidNotStart(text))
}

/// [`not_run`] of a dispatch's ARM error.
fn not_run_error(err: &ArmError) -> Option<NotRun> {
    let api = err.api()?;
    not_run(api.code.as_deref()?, &api.message)
}

/// A command AKS did not run: sent again when it did not start, final when a webhook refused it.
async fn not_run_outcome(
    api: &Api<RemoteCommand>,
    rc: &RemoteCommand,
    ctx: &Arc<Context>,
    current: RemoteCommandStatus,
    why: NotRun,
) -> Result<Action, Failure> {
    match why {
        NotRun::DidNotStart(why) => did_not_start(api, rc, ctx, current, why).await,
        NotRun::AdmissionDenied(why) => {
            let failure = Failure::terminal(
                Reason::AdmissionDenied,
                format!(
                    "an admission webhook of the cluster refused the command pod, so the command did not run: {why}"
                ),
            );
            fail(api, rc, ctx, current, failure).await
        }
    }
}

/// Running without a command id and no record of acceptance here: an earlier process crashed
/// between asking ARM and recording its answer.
async fn interrupted(
    api: &Api<RemoteCommand>,
    rc: &RemoteCommand,
    ctx: &Arc<Context>,
    current: RemoteCommandStatus,
) -> Result<Action, Failure> {
    let attempts = current.attempts.unwrap_or(1);
    if may_redispatch(rc, attempts) {
        tracing::warn!(rcmd = %rc.name_any(), "dispatch was interrupted; dispatching again (AtLeastOnce)");
        ctx.event(
            rc,
            EventType::Warning,
            "DispatchInterrupted",
            "Dispatch",
            "the operator stopped while dispatching; dispatching again (AtLeastOnce)",
        )
        .await;
        return super::start(api, rc, ctx, current, None).await;
    }
    let failure = Failure::terminal(
        Reason::DispatchInterrupted,
        format!(
            "the operator stopped after asking ARM to run the command and before recording ARM's answer; {} \
             (should a paused replica still hold ARM's answer, it records it when it wakes and the run is followed to its result)",
            not_sent_again(rc, attempts)
        ),
    );
    fail(api, rc, ctx, current, failure).await
}

/// Wait what ARM asked (ARM RPC: a client honours `Retry-After` as sent), at least a second; 5 s
/// when it asks nothing, as `az aks command invoke` polls. Never past the run's deadline: a longer
/// wait could only end in `DeadlineExceeded` later than needed.
fn poll_delay(retry_after: Option<Duration>, left: Duration) -> Duration {
    retry_after
        .unwrap_or(Duration::from_secs(5))
        .min(left)
        .max(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_read_by_code_not_wording() {
        let did = |c: &str, m: &str| matches!(not_run(c, m), Some(NotRun::DidNotStart(_)));
        assert!(did(
            "KubernetesPerformanceError",
            "Pod is not schedulable: Insufficient resources for the RunCommand pod. Consider adjusting AutoScaler settings"
        ));
        assert!(did(
            "KubernetesPerformanceError",
            "container command-1 in aks-command namespace did not start within 30s"
        ));
        assert!(did("KubernetesPerformanceError", "anything at all"));
        assert!(did(
            "KubernetesOperationError",
            "command pod did not start within 30 seconds. Retrying may help"
        ));
        let denied = not_run(
            "KubernetesOperationError",
            "Failed to run command in managed cluster due to kubernetes failure. details: admission webhook \"validation.gatekeeper.sh\" denied the request: [no-host-network]",
        );
        assert!(
            matches!(&denied, Some(NotRun::AdmissionDenied(m)) if m.contains("validation.gatekeeper.sh")),
            "{denied:?}"
        );
        assert_eq!(not_run("KubernetesOperationError", "etcd is slow"), None);
        assert_eq!(not_run("BadRequest", "did not start"), None);
    }

    #[test]
    fn polls_when_arm_asks_within_the_deadline() {
        let s = Duration::from_secs;
        let long = s(3600);
        assert_eq!(poll_delay(None, long), s(5));
        // ARM's 60 s is honoured, not cut to a shorter poll.
        assert_eq!(poll_delay(Some(s(60)), long), s(60));
        assert_eq!(poll_delay(Some(Duration::ZERO), long), s(1));
        // Never past the deadline, and never a busy loop once it is near.
        assert_eq!(poll_delay(Some(s(60)), s(7)), s(7));
        assert_eq!(poll_delay(Some(s(60)), Duration::ZERO), s(1));
    }
}
