//! Container Instances targets: an exec session over ARM's websocket, run in a task of its own so
//! a long session never holds a reconcile.

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
use super::{children, fail, may_redispatch, not_sent_again};
use crate::api::Phase;
use crate::api::remote_command::{RemoteCommand, RemoteCommandStatus};
use crate::azure::aci::{ExecOutput, SessionError, SessionLimits};
use crate::azure::{ArmError, CallContext, ContainerGroupId};
use crate::controllers::arm_errors;
use crate::controllers::context::Context;
use crate::controllers::reason::{Failure, Reason};
use crate::controllers::references::CredentialSource;

fn group_id(rc: &RemoteCommand) -> Result<ContainerGroupId, Failure> {
    let raw = rc
        .spec
        .target
        .container_instance
        .as_ref()
        .map(|t| t.resource_id.as_str());
    status::target_id(raw, "spec.target.containerInstance.resourceId")
}

fn shell_of(rc: &RemoteCommand) -> Option<&str> {
    rc.spec
        .target
        .container_instance
        .as_ref()
        .and_then(|t| t.shell.as_deref())
}

/// ACI runs one executable with no arguments: without `shell`, `command` must be just that; with
/// it, every line must fit the terminal it is typed into.
fn validate(rc: &RemoteCommand) -> Result<(), Failure> {
    match shell_of(rc) {
        None if rc.spec.command.trim().contains(char::is_whitespace) => Err(Failure::terminal(
            Reason::InvalidSpec,
            "Azure Container Instances exec runs a single executable without arguments; this command has \
             arguments or spaces. Set spec.target.containerInstance.shell (e.g. /bin/sh) to run a command line",
        )),
        Some(_) => crate::azure::aci_output::validate_shell_command(&rc.spec.command)
            .map_err(|m| Failure::terminal(Reason::InvalidSpec, format!("spec.command: {m}"))),
        None => Ok(()),
    }
}

/// What the container group says before anything is sent: exec needs a running group, and a
/// Windows group has no POSIX shell to type into.
fn check_group(
    rc: &RemoteCommand,
    id: &ContainerGroupId,
    group: &Result<crate::azure::aci::GroupInfo, crate::azure::ArmError>,
) -> Result<(), Failure> {
    let group = match group {
        Ok(g) => g,
        // Without `containerGroups/read` the check is skipped: exec itself needs only
        // `containers/exec/action`, and refusing here would break identities granted just that.
        Err(e) if e.api().is_some_and(|a| a.status == 403) => {
            tracing::info!(rcmd = %rc.name_any(), "cannot read the container group (403); exec without checking its state");
            return Ok(());
        }
        Err(e) => return Err(arm_errors::failure(e)),
    };
    if group.not_running() {
        return Err(Failure::terminal(
            Reason::TargetNotRunning,
            format!(
                "container group {id} is {}, not Running: exec needs a running container (az container start)",
                group.state.as_deref().unwrap_or_default()
            ),
        ));
    }
    if let Some(shell) = shell_of(rc)
        && group.windows()
    {
        return Err(Failure::terminal(
            Reason::InvalidSpec,
            format!(
                "container group {id} runs Windows containers: spec.target.containerInstance.shell ('{shell}') \
                 types the command into a POSIX shell and reads `$?`, which cmd.exe does not have; run a single \
                 executable without shell instead"
            ),
        ));
    }
    Ok(())
}

/// How long ACI keeps an exec session open at most (MicrosoftDocs/azure-docs #48526: sessions are
/// cut after about 10–15 minutes, not configurable): the low end, for the warning in status.
pub const SESSION_CAP: Duration = Duration::from_secs(10 * 60);

/// What a session holds: its output buffer (`SessionLimits`' 512 KiB) and what surrounds it.
const SESSION_OUTPUT_BYTES: usize = 1024 * 1024;

/// Starts the exec session in a task; the task writes the result.
pub async fn start(
    api: &Api<RemoteCommand>,
    rc: &RemoteCommand,
    ctx: &Arc<Context>,
    base: RemoteCommandStatus,
    credential: &CredentialSource,
) -> Result<Action, Failure> {
    validate(rc)?;
    let id = group_id(rc)?;
    let attempt = base.attempts.unwrap_or(0) + 1;
    let left = status::time_left(&base, rc);
    let call = ctx.azure.call_context(
        &rc.namespace().unwrap_or_default(),
        credential,
        id.subscription_id(),
        status::correlation_id(rc, attempt),
        Instant::now() + left,
    )?;
    // Everything that can fail before the session starts fails here, where nothing was sent and
    // the run is simply tried again (like an AKS dispatch refused by ARM).
    ctx.azure
        .arm
        .prepare(&call, "Containers_ExecuteCommand")
        .await
        .map_err(|e| arm_errors::failure(&e))?;
    check_group(rc, &id, &ctx.azure.aci.get_group(&call, &id).await)?;

    let warning = session_cap_warning(rc);
    let mut base = base;
    base.warnings = warning.iter().cloned().collect();
    let call = CallContext {
        fence: Some(ctx.tenure.fence()),
        ..call
    };

    if base.attempts.unwrap_or(0) == 0
        && let Some(late) = status::past_starting_deadline(rc, Timestamp::now())
    {
        return Err(late);
    }
    // Sessions are few at once, each with its output buffer paid for before anything is sent.
    let Some(slot) = ctx.limits.session() else {
        return Err(Failure::transient(
            Reason::Throttled,
            "waiting for one of the exec sessions the operator keeps open at once (--max-aci-sessions)",
        ));
    };
    let buffer = ctx
        .limits
        .hold(&rc.namespace().unwrap_or_default(), SESSION_OUTPUT_BYTES)
        .await;
    // The exactly-once protocol (dispatch.rs): fenced intent, tenure check, then the session.
    let intent = match dispatch::ready_to_send(api, rc, ctx, base).await? {
        Ok(intent) => intent,
        Err(wait) => return Ok(wait),
    };
    let run = status::run_key(rc);
    let task = {
        let (api, ctx, id) = (api.clone(), ctx.clone(), id.clone());
        tokio::spawn(async move {
            let _held = (slot, buffer);
            let rc = &intent.rc;
            let target = rc
                .spec
                .target
                .container_instance
                .clone()
                .unwrap_or_default();
            let limits = SessionLimits::new(call.deadline);
            let result = ctx
                .azure
                .aci
                .run_session(
                    &call,
                    &id,
                    &target.container,
                    &rc.spec.command,
                    target.shell.as_deref(),
                    &limits,
                )
                .await;
            finish(&api, &ctx, &intent, result).await;
        })
    };
    ctx.journal.add_session(&run, task.abort_handle());
    tracing::info!(rcmd = %rc.name_any(), namespace = %rc.namespace().unwrap_or_default(), "exec session started");
    let mut note = format!("exec session started in {id}");
    if let Some(warning) = warning {
        note.push_str(&format!("; {warning}"));
    }
    ctx.event(rc, EventType::Normal, "Dispatched", "Dispatch", &note)
        .await;
    Ok(Action::requeue(left.max(Duration::from_secs(1))))
}

/// Said in `status.warnings` (and the `Dispatched` Event) when the run may outlast ACI's cap on
/// exec sessions.
fn session_cap_warning(rc: &RemoteCommand) -> Option<String> {
    (rc.spec.timeout_seconds as u64 > SESSION_CAP.as_secs()).then(|| {
        format!(
            "timeoutSeconds ({}s) is longer than Azure Container Instances keeps an exec session open (about {} minutes): a command that runs longer is cut and ends as SessionInterrupted",
            rc.spec.timeout_seconds,
            SESSION_CAP.as_secs() / 60
        )
    })
}

/// What a finished session leaves: the final status, and the Event that tells about it.
struct Verdict {
    status: RemoteCommandStatus,
    event: (EventType, &'static str, String),
}

/// Records the session's outcome. It is kept in the journal and written until the write lands
/// (a failed write never turns into a failure or a second run), unless the run was replaced or
/// deleted meanwhile. A session that failed before its command was sent goes back to Pending; one
/// stopped by the fence (this replica lost the Lease) rolls its intent back, as an AKS dispatch does.
async fn finish(
    api: &Api<RemoteCommand>,
    ctx: &Arc<Context>,
    intent: &dispatch::Intent,
    result: Result<ExecOutput, SessionError>,
) {
    let (rc, s) = (&intent.rc, intent.status.clone());
    let run = status::run_key(rc);
    if let Err(e) = &result
        && matches!(e.error, ArmError::Fenced { .. })
    {
        dispatch::give_up(api, intent).await;
        ctx.journal.end_session(&run.uid);
        return;
    }
    let verdict = match result {
        Ok(out) => finished(rc, ctx, s, out).await,
        Err(e) if !e.command_sent => not_sent(rc, s, arm_errors::failure(&e.error)),
        Err(e) => {
            let f = arm_errors::failure(&e.error);
            let f = if f.transient {
                Failure::terminal(Reason::SessionInterrupted, f.message)
            } else {
                f
            };
            failed(rc, s, &f)
        }
    };
    // Patience without end: a finished session's outcome is written until it lands.
    let recorded = dispatch::record_answer(api, &ctx.journal, rc, &verdict.status, None).await;
    if let Recorded::Written = recorded {
        let (kind, reason, note) = &verdict.event;
        if verdict.status.phase.is_some_and(|p| p.is_terminal()) {
            ctx.metrics.outcome(
                super::CONTROLLER,
                verdict.status.reason.as_deref().unwrap_or_default(),
            );
        }
        ctx.event(rc, *kind, reason, "Complete", note).await;
    }
    ctx.journal.end_session(&run.uid);
}

/// The session ran to its end (or was cut): the output goes to its Secret, then the verdict.
async fn finished(
    rc: &RemoteCommand,
    ctx: &Context,
    s: RemoteCommandStatus,
    out: ExecOutput,
) -> Verdict {
    let (output, cut) = status::stored_output(out.output.into_bytes());
    let truncated = cut || out.truncated;
    let secret = loop {
        match children::write_output(&ctx.client, rc, &output, out.exit_code).await {
            Ok(secret) => break secret,
            Err(f) if f.transient => {
                tracing::warn!(rcmd = %rc.name_any(), reason = %f.reason, "could not write the output Secret yet; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(f) => {
                // The command ran: its exit code is kept even when its output cannot be stored.
                let mut s = s;
                s.exit_code = out.exit_code;
                return failed(rc, s, &f);
            }
        }
    };
    if out.interrupted {
        let mut s = s;
        s.output_secret_name = Some(secret.clone());
        s.output_bytes = Some(output.len() as i64);
        s.output_tail = Some(crate::text::tail_utf8(
            &output,
            rc.spec.output.tail_bytes.max(0) as usize,
        ));
        s.output_truncated = truncated.then_some(true);
        let why = if shell_of(rc).is_some() {
            "the exec session closed before the command finished (its end marker never came): Azure Container \
             Instances cuts exec sessions after about 10-15 minutes, and a network path may drop the connection"
        } else {
            "the exec connection was lost without a close frame, so nothing says the executable finished (it may \
             still be running in the container)"
        };
        let f = Failure::terminal(
            Reason::SessionInterrupted,
            format!(
                "{why}; the output so far: {}",
                status::output_note(output.len(), &secret, truncated, false)
            ),
        );
        return failed(rc, s, &f);
    }
    let note = status::output_note(output.len(), &secret, truncated, false);
    let message = match out.exit_code {
        Some(code) => format!("exited with code {code}; {note}"),
        None => format!(
            "the session ended; ACI reports no exit code without spec.target.containerInstance.shell; {note}"
        ),
    };
    let code = out.exit_code;
    let outcome = Outcome {
        exit_code: code,
        output,
        truncated,
        output_secret_name: secret,
        tail_bytes: rc.spec.output.tail_bytes.max(0) as usize,
        message: message.clone(),
    };
    let (kind, reason) = match code {
        Some(0) => (EventType::Normal, "Completed"),
        Some(_) => (EventType::Warning, "NonZeroExit"),
        None => (EventType::Normal, "ExitCodeUnavailable"),
    };
    tracing::info!(rcmd = %rc.name_any(), exit_code = ?code, "exec session finished");
    Verdict {
        status: status::finished(s, outcome, Timestamp::now()),
        event: (kind, reason, message),
    }
}

/// The run failed for good.
fn failed(rc: &RemoteCommand, s: RemoteCommandStatus, f: &Failure) -> Verdict {
    tracing::warn!(rcmd = %rc.name_any(), namespace = %rc.namespace().unwrap_or_default(), reason = %f.reason, detail = %f.message, "run failed");
    Verdict {
        status: status::failed(s, f, Timestamp::now()),
        event: (EventType::Warning, f.reason.as_str(), f.message.clone()),
    }
}

/// Nothing reached the container: the attempt does not count and the run is tried again (a
/// terminal refusal, e.g. a missing container group, ends it).
fn not_sent(rc: &RemoteCommand, s: RemoteCommandStatus, f: Failure) -> Verdict {
    if !f.transient {
        return failed(rc, s, &f);
    }
    let mut s = s;
    s.attempts = s.attempts.map(|a| (a - 1).max(0));
    tracing::info!(rcmd = %rc.name_any(), reason = %f.reason, "exec session failed before the command was sent; trying again");
    let message = format!("{}; nothing was sent, trying again", f.message);
    Verdict {
        status: status::progress(s, Phase::Pending, f.reason, &message, Timestamp::now()),
        event: (EventType::Warning, f.reason.as_str(), message),
    }
}

/// Running with no live session here: a finished session whose status is still to be written,
/// or a session that died with an earlier process.
pub async fn continue_run(
    api: &Api<RemoteCommand>,
    rc: &RemoteCommand,
    ctx: &Arc<Context>,
    current: RemoteCommandStatus,
) -> Result<Action, Failure> {
    let run = status::run_key(rc);
    if ctx.journal.has_session(&run) || ctx.journal.answer(&run).is_some() {
        let left = status::deadline(rc)
            .map(|d| {
                Duration::try_from(d.duration_since(Timestamp::now())).unwrap_or(Duration::ZERO)
            })
            .unwrap_or(Duration::from_secs(60));
        return Ok(Action::requeue(left.max(Duration::from_secs(1))));
    }
    let attempts = current.attempts.unwrap_or(1);
    if may_redispatch(rc, attempts) {
        tracing::warn!(rcmd = %rc.name_any(), "exec session was interrupted; running it again (AtLeastOnce)");
        return super::start(api, rc, ctx, current, None).await;
    }
    let failure = Failure::terminal(
        Reason::SessionInterrupted,
        format!(
            "the operator stopped during the exec session; {}",
            not_sent_again(rc, attempts)
        ),
    );
    fail(api, rc, ctx, current, failure).await
}
