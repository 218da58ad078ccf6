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

use super::status::{self, Outcome};
use super::{children, fail, may_redispatch, write_status};
use crate::api::remote_command::{RemoteCommand, RemoteCommandStatus};
use crate::azure::ContainerGroupId;
use crate::azure::aci::SessionLimits;
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

/// ACI runs one executable with no arguments: without `shell`, `command` must be just that.
fn validate(rc: &RemoteCommand) -> Result<(), Failure> {
    let target = rc.spec.target.container_instance.as_ref();
    if target.and_then(|t| t.shell.as_ref()).is_none()
        && rc.spec.command.trim().contains(char::is_whitespace)
    {
        return Err(Failure::terminal(
            Reason::InvalidSpec,
            "Azure Container Instances exec runs a single executable without arguments; this command has \
             arguments or spaces. Set spec.target.containerInstance.shell (e.g. /bin/sh) to run a command line",
        ));
    }
    Ok(())
}

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
    let mut s = status::dispatching(base, Timestamp::now());
    let correlation = status::correlation_id(rc, s.attempts.unwrap_or(1));
    s.correlation_id = Some(correlation.clone());
    let deadline = Instant::now() + Duration::from_secs(rc.spec.timeout_seconds as u64);
    let call = ctx
        .azure
        .call_context(credential, id.subscription_id(), correlation, deadline)?;
    write_status(api, rc, &s).await?;
    let run = status::run_key(rc);
    let task = {
        let (api, rc, ctx, s, id) = (
            api.clone(),
            status::with_status(rc, &s),
            ctx.clone(),
            s.clone(),
            id.clone(),
        );
        tokio::spawn(async move {
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
                .run(
                    &call,
                    &id,
                    &target.container,
                    &rc.spec.command,
                    target.shell.as_deref(),
                    &limits,
                )
                .await;
            finish(&api, &rc, &ctx, s, result).await;
        })
    };
    ctx.journal.add_session(&run, task.abort_handle());
    tracing::info!(rcmd = %rc.name_any(), namespace = %rc.namespace().unwrap_or_default(), "exec session started");
    ctx.event(
        rc,
        EventType::Normal,
        "Dispatched",
        "Dispatch",
        &format!("exec session started in {id}"),
    )
    .await;
    Ok(Action::requeue(Duration::from_secs(
        rc.spec.timeout_seconds as u64,
    )))
}

/// Writes the session's outcome, unless the run was replaced or deleted meanwhile.
async fn finish(
    api: &Api<RemoteCommand>,
    rc: &RemoteCommand,
    ctx: &Arc<Context>,
    s: RemoteCommandStatus,
    result: Result<crate::azure::aci::ExecOutput, crate::azure::ArmError>,
) {
    let uid = rc.uid().unwrap_or_default();
    let still_current = match api.get_opt(&rc.name_any()).await {
        Ok(Some(fresh)) => status::run_key(&fresh) == status::run_key(rc),
        _ => false,
    };
    if !still_current {
        ctx.journal.end_session(&uid);
        return;
    }
    let outcome = match result {
        Ok(out) => {
            let (output, cut) = status::stored_output(out.output.into_bytes());
            let truncated = cut || out.truncated;
            match children::write_output(&ctx.client, rc, &output, out.exit_code).await {
                Ok(secret) => {
                    let message = match out.exit_code {
                        Some(code) => format!(
                            "exited with code {code}; output ({} bytes) in Secret {secret}",
                            output.len()
                        ),
                        None => format!(
                            "the session ended; ACI reports no exit code without spec.target.containerInstance.shell; \
                             output ({} bytes) in Secret {secret}",
                            output.len()
                        ),
                    };
                    Ok(Outcome {
                        exit_code: out.exit_code,
                        output,
                        truncated,
                        output_secret_name: secret,
                        tail_bytes: rc.spec.output.tail_bytes.max(0) as usize,
                        message,
                    })
                }
                Err(f) => Err(f),
            }
        }
        Err(e) => {
            let f = arm_errors::failure(&e);
            Err(if f.transient {
                Failure::terminal(Reason::SessionInterrupted, f.message)
            } else {
                f
            })
        }
    };
    let written = match outcome {
        Ok(outcome) => {
            let message = outcome.message.clone();
            let code = outcome.exit_code;
            let s = status::finished(s, outcome, Timestamp::now());
            let written = write_status(api, rc, &s).await;
            ctx.metrics
                .outcome(super::CONTROLLER, s.reason.as_deref().unwrap_or_default());
            let (kind, reason) = match code {
                Some(0) => (EventType::Normal, "Completed"),
                Some(_) => (EventType::Warning, "NonZeroExit"),
                None => (EventType::Normal, "ExitCodeUnavailable"),
            };
            ctx.event(rc, kind, reason, "Complete", &message).await;
            written
        }
        Err(f) => fail(api, rc, ctx, s, f).await.map(|_| ()),
    };
    if let Err(e) = written {
        tracing::warn!(rcmd = %rc.name_any(), error = %e, "could not record the session's outcome");
    }
    ctx.journal.end_session(&uid);
}

/// Running with no live session here: it died with an earlier process.
pub async fn continue_run(
    api: &Api<RemoteCommand>,
    rc: &RemoteCommand,
    ctx: &Arc<Context>,
    current: RemoteCommandStatus,
) -> Result<Action, Failure> {
    let run = status::run_key(rc);
    if ctx.journal.has_session(&run) {
        let left = status::deadline(rc)
            .map(|d| {
                Duration::try_from(d.duration_since(Timestamp::now())).unwrap_or(Duration::ZERO)
            })
            .unwrap_or(Duration::from_secs(60));
        return Ok(Action::requeue(left.max(Duration::from_secs(1))));
    }
    if may_redispatch(rc) {
        tracing::warn!(rcmd = %rc.name_any(), "exec session was interrupted; running it again (AtLeastOnce)");
        return super::start(api, rc, ctx, current).await;
    }
    let failure = Failure::terminal(
        Reason::SessionInterrupted,
        "the operator stopped during the exec session; under AtMostOnce it is not run again \
         (set dispatchPolicy: AtLeastOnce or a new runId to run it)",
    );
    fail(api, rc, ctx, current, failure).await
}
