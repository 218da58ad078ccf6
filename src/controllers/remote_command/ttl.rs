//! `spec.ttlSecondsAfterFinished`: a finished run is deleted once its time is up — by the leader
//! only, and only while the API server still shows that same run finished. What it owns goes with
//! it through ownerReferences: its output Secret, and the ConfigMaps `kubectl invoke --file` made.
//!
//! Deleting never makes a run happen again: the run was terminal (nothing of it is sent any more),
//! the delete is fenced by the uid and resourceVersion of the object that showed it terminal (a
//! new runId, a new generation or a late answer written meanwhile makes it fail), and an answer
//! still on its way for a deleted object is dropped, not retried (`dispatch::record`).

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Preconditions, PropagationPolicy};
use kube::runtime::controller::Action;

use super::status::is_current_run;
use crate::api::remote_command::RemoteCommand;
use crate::controllers::context::Context;
use crate::controllers::reason::Failure;

/// How soon a collection that could not decide (tenure, a lost race) is tried again.
const RETRY: Duration = Duration::from_secs(1);

/// How long until `rc` may be deleted: `None` when never (no TTL, or not a finished current run),
/// zero when now.
pub fn remaining(rc: &RemoteCommand, now: Timestamp) -> Option<Duration> {
    let ttl = rc.spec.ttl_seconds_after_finished?;
    let status = rc.status.as_ref()?;
    let finished = status.phase.is_some_and(|p| p.is_terminal());
    if !(finished && is_current_run(rc)) {
        return None;
    }
    let done = status.completion_time.as_ref()?.0;
    let at = done
        .checked_add(SignedDuration::from_secs(ttl.max(0)))
        .ok()?;
    Some(Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO))
}

/// What a reconcile of a finished run returns: wake up when its TTL ends, or wait for a change.
pub fn requeue(rc: &RemoteCommand) -> Action {
    match remaining(rc, Timestamp::now()) {
        Some(left) => Action::requeue(left.max(Duration::from_millis(100))),
        None => Action::await_change(),
    }
}

/// A finished run whose TTL may have ended (`rc` from the cache): decided again on the API
/// server's current object, then deleted with that object's uid and resourceVersion as
/// preconditions.
pub async fn collect(
    api: &Api<RemoteCommand>,
    rc: &RemoteCommand,
    ctx: &Context,
) -> Result<Action, Failure> {
    if remaining(rc, Timestamp::now()) != Some(Duration::ZERO) {
        return Ok(requeue(rc));
    }
    if !ctx.tenure.holds() {
        return Ok(Action::requeue(RETRY));
    }
    let Some(fresh) = api.get_opt(&rc.name_any()).await? else {
        return Ok(Action::await_change());
    };
    let params = match verdict(&fresh, Timestamp::now()) {
        Verdict::Delete(params) => params,
        Verdict::Wait(left) => return Ok(Action::requeue(left)),
    };
    match api.delete(&fresh.name_any(), &params).await {
        Ok(_) => {
            let status = fresh.status.clone().unwrap_or_default();
            tracing::info!(
                rcmd = %fresh.name_any(),
                namespace = %fresh.namespace().unwrap_or_default(),
                phase = ?status.phase,
                reason = status.reason.as_deref().unwrap_or_default(),
                ttl_seconds = fresh.spec.ttl_seconds_after_finished.unwrap_or_default(),
                "ttlSecondsAfterFinished passed; deleted the finished run"
            );
            ctx.journal.forget_answer(&fresh.uid().unwrap_or_default());
            Ok(Action::await_change())
        }
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(Action::await_change()),
        // Changed since the read: decide again on what it is now.
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(Action::requeue(RETRY)),
        Err(e) => Err(e.into()),
    }
}

/// What to do with the API server's current object.
#[derive(Debug)]
enum Verdict {
    /// Delete it, on the condition that it is still exactly this object.
    Delete(DeleteParams),
    /// Look again after this long.
    Wait(Duration),
}

fn verdict(fresh: &RemoteCommand, now: Timestamp) -> Verdict {
    match remaining(fresh, now) {
        Some(Duration::ZERO) => Verdict::Delete(DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            preconditions: Some(Preconditions {
                uid: fresh.metadata.uid.clone(),
                resource_version: fresh.metadata.resource_version.clone(),
            }),
            ..Default::default()
        }),
        Some(left) => Verdict::Wait(left),
        // Reopened (a late answer) or asked to run again: the state machine takes it from here.
        None => Verdict::Wait(RETRY),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Phase;
    use crate::api::remote_command::{RemoteCommandSpec, RemoteCommandStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn rc(ttl: Option<i64>, phase: Phase, completed: Option<&str>) -> RemoteCommand {
        let spec: RemoteCommandSpec = serde_json::from_value(serde_json::json!({
            "target": {"aks": {"resourceId": "/subscriptions/x/resourceGroups/r/providers/Microsoft.ContainerService/managedClusters/c"}},
            "command": "true",
        }))
        .unwrap();
        let mut rc = RemoteCommand::new("x", spec);
        rc.spec.ttl_seconds_after_finished = ttl;
        rc.metadata.generation = Some(1);
        rc.status = Some(RemoteCommandStatus {
            phase: Some(phase),
            observed_generation: 1,
            completion_time: completed.map(|t| Time(at(t))),
            ..Default::default()
        });
        rc
    }

    #[test]
    fn a_finished_run_expires_its_ttl_after_completion() {
        let now = at("2026-01-01T00:01:00Z");
        let done = Some("2026-01-01T00:00:00Z");
        for (ttl, phase, want) in [
            (
                Some(3600),
                Phase::Succeeded,
                Some(Duration::from_secs(3540)),
            ),
            (Some(60), Phase::Failed, Some(Duration::ZERO)),
            (Some(30), Phase::Succeeded, Some(Duration::ZERO)),
            (Some(0), Phase::Failed, Some(Duration::ZERO)),
            (None, Phase::Succeeded, None),
        ] {
            assert_eq!(
                remaining(&rc(ttl, phase, done), now),
                want,
                "{ttl:?} {phase:?}"
            );
        }
    }

    #[test]
    fn a_run_that_is_not_finished_never_expires() {
        let now = at("2030-01-01T00:00:00Z");
        for phase in [Phase::Pending, Phase::Running] {
            // A completion time left from an earlier run does not count.
            let running = rc(Some(0), phase, Some("2026-01-01T00:00:00Z"));
            assert_eq!(remaining(&running, now), None, "{phase:?}");
        }
        // Finished, but for an earlier generation: a new run is asked for.
        let mut asked_again = rc(Some(0), Phase::Succeeded, Some("2026-01-01T00:00:00Z"));
        asked_again.metadata.generation = Some(2);
        assert_eq!(remaining(&asked_again, now), None);
        // Finished for an earlier runId.
        let mut new_run_id = rc(Some(0), Phase::Failed, Some("2026-01-01T00:00:00Z"));
        new_run_id.spec.run_id = Some("again".into());
        assert_eq!(remaining(&new_run_id, now), None);
        // No completion time (never written by the operator): kept.
        assert_eq!(remaining(&rc(Some(0), Phase::Failed, None), now), None);
    }

    /// The delete names the very object that showed the run finished: its uid (not a namesake
    /// created since) and its resourceVersion (no late answer, runId or spec written since).
    #[test]
    fn the_delete_is_fenced_by_the_object_that_showed_it_finished() {
        let now = at("2026-01-01T01:00:00Z");
        let mut done = rc(Some(60), Phase::Succeeded, Some("2026-01-01T00:00:00Z"));
        done.metadata.uid = Some("uid-7".into());
        done.metadata.resource_version = Some("4242".into());
        match verdict(&done, now) {
            Verdict::Delete(params) => {
                let p = params.preconditions.expect("preconditions");
                assert_eq!(p.uid.as_deref(), Some("uid-7"));
                assert_eq!(p.resource_version.as_deref(), Some("4242"));
                assert!(matches!(
                    params.propagation_policy,
                    Some(PropagationPolicy::Background)
                ));
            }
            other => panic!("{other:?}"),
        }
        let mut reopened = done.clone();
        reopened.status.as_mut().unwrap().phase = Some(Phase::Running);
        assert!(matches!(verdict(&reopened, now), Verdict::Wait(RETRY)));
        let early = at("2026-01-01T00:00:20Z");
        assert!(matches!(verdict(&done, early), Verdict::Wait(d) if d == Duration::from_secs(40)));
    }
}
