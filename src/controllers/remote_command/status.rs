//! Pure status computation for RemoteCommand: which run a status belongs to, and the status of
//! each step of a run.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::dispatch::RunKey;
use crate::api::Phase;
use crate::api::remote_command::{RemoteCommand, RemoteCommandStatus};
use crate::controllers::conditions::{self, Health};
use crate::controllers::reason::{Failure, Reason};

/// The run the spec asks for.
pub fn run_key(rc: &RemoteCommand) -> RunKey {
    RunKey {
        uid: rc.metadata.uid.clone().unwrap_or_default(),
        generation: rc.metadata.generation.unwrap_or_default(),
        run_id: rc.spec.run_id.clone().unwrap_or_default(),
    }
}

/// Whether `status` describes the run the spec asks for (same generation and runId, and started).
pub fn is_current_run(rc: &RemoteCommand) -> bool {
    let Some(status) = rc.status.as_ref() else {
        return false;
    };
    status.phase.is_some()
        && status.observed_generation == rc.metadata.generation.unwrap_or_default()
        && status.run_id.clone().unwrap_or_default() == rc.spec.run_id.clone().unwrap_or_default()
}

/// `rc` as it is after writing `status` (for code that reads back the status it just wrote).
pub fn with_status(rc: &RemoteCommand, status: &RemoteCommandStatus) -> RemoteCommand {
    let mut rc = rc.clone();
    rc.status = Some(status.clone());
    rc
}

/// Parses the target's resource ID (`field` names it in the message).
pub fn target_id<T>(raw: Option<&str>, field: &str) -> Result<T, Failure>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    raw.unwrap_or_default()
        .parse::<T>()
        .map_err(|e| Failure::terminal(Reason::InvalidSpec, format!("{field}: {e}")))
}

/// When the current run must be over: dispatch time + `timeoutSeconds`.
pub fn deadline(rc: &RemoteCommand) -> Option<Timestamp> {
    deadline_of(rc.status.as_ref()?, rc)
}

/// `startTime` (the run's first reconcile) + `timeoutSeconds`.
pub fn deadline_of(status: &RemoteCommandStatus, rc: &RemoteCommand) -> Option<Timestamp> {
    let start = status.start_time.as_ref()?.0;
    start
        .checked_add(SignedDuration::from_secs(rc.spec.timeout_seconds))
        .ok()
}

/// How long the run described by `status` has left before its deadline (all of `timeoutSeconds`
/// when it has not started).
pub fn time_left(status: &RemoteCommandStatus, rc: &RemoteCommand) -> std::time::Duration {
    deadline_of(status, rc)
        .map(|d| {
            std::time::Duration::try_from(d.duration_since(Timestamp::now())).unwrap_or_default()
        })
        .unwrap_or(std::time::Duration::from_secs(
            rc.spec.timeout_seconds.max(1) as u64,
        ))
}

/// How long the run has been going (waiting included) at `now`.
pub fn waited(status: &RemoteCommandStatus, now: Timestamp) -> std::time::Duration {
    status
        .start_time
        .as_ref()
        .and_then(|t| std::time::Duration::try_from(now.duration_since(t.0)).ok())
        .unwrap_or_default()
}

/// The status of the current run, or a fresh one for a new run.
pub fn base(rc: &RemoteCommand) -> RemoteCommandStatus {
    if is_current_run(rc) {
        return rc.status.clone().unwrap_or_default();
    }
    let conditions = rc
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    RemoteCommandStatus {
        observed_generation: rc.metadata.generation.unwrap_or_default(),
        run_id: Some(rc.spec.run_id.clone().unwrap_or_default()),
        attempts: Some(0),
        conditions,
        ..Default::default()
    }
}

/// Progress (Pending or Running) with `reason`.
pub fn progress(
    mut s: RemoteCommandStatus,
    phase: Phase,
    reason: Reason,
    message: &str,
    now: Timestamp,
) -> RemoteCommandStatus {
    s.phase = Some(phase);
    s.reason = Some(reason.to_string());
    s.message = Some(crate::text::clean(message, 1024));
    // The run starts at its first status write: the deadline counts from there, waiting included.
    s.start_time = s.start_time.or(Some(Time(now)));
    let generation = s.observed_generation;
    conditions::apply(
        &mut s.conditions,
        Health::Progressing,
        reason.as_str(),
        message,
        generation,
        &Time(now),
    );
    s
}

/// About to dispatch attempt `attempts + 1`: Running without a command id, the start time kept
/// from the first attempt.
pub fn dispatching(s: RemoteCommandStatus, now: Timestamp) -> RemoteCommandStatus {
    let attempt = s.attempts.unwrap_or(0) + 1;
    let mut s = progress(
        s,
        Phase::Running,
        Reason::Dispatching,
        &format!("dispatching attempt {attempt}"),
        now,
    );
    s.attempts = Some(attempt);
    s.command_id = None;
    s.command_started_at = None;
    s.start_time = s.start_time.or(Some(Time(now)));
    s
}

/// The command finished (the output is already in its Secret).
pub struct Outcome {
    pub exit_code: Option<i32>,
    pub output: Vec<u8>,
    /// Only the end of the output was kept (see [`stored_output`]).
    pub truncated: bool,
    pub output_secret_name: String,
    pub tail_bytes: usize,
    pub message: String,
}

/// The correlation id of `attempt` of the current run: unique per (uid, generation, runId, attempt).
pub fn correlation_id(rc: &RemoteCommand, attempt: i32) -> String {
    crate::controllers::reason::correlation_id(&[
        &rc.metadata.uid.clone().unwrap_or_default(),
        &rc.metadata.generation.unwrap_or_default().to_string(),
        rc.spec.run_id.as_deref().unwrap_or_default(),
        &attempt.to_string(),
    ])
}

/// Most output bytes kept in the output Secret: a Secret holds at most 1 MiB in all.
pub const MAX_STORED_OUTPUT: usize = 900 * 1024;

/// The output as stored: its last [`MAX_STORED_OUTPUT`] bytes, and whether anything was cut. A run
/// whose output does not fit still finishes, with the end of it (where errors usually are).
pub fn stored_output(mut output: Vec<u8>) -> (Vec<u8>, bool) {
    if output.len() <= MAX_STORED_OUTPUT {
        return (output, false);
    }
    let cut = output.len() - MAX_STORED_OUTPUT;
    output.drain(..cut);
    (output, true)
}

/// Where the output is and which part of it, for a status message: all of it, or its last bytes
/// (the beginning dropped here, or by the ACI session buffer). `at_service_cap`: the output reached
/// the 512 kB AKS keeps of run command logs, and which end AKS keeps is not documented.
pub fn output_note(stored: usize, secret: &str, cut: bool, at_service_cap: bool) -> String {
    let mut note = if cut {
        format!(
            "output in Secret {secret}: its last {stored} bytes (the beginning did not fit and was dropped)"
        )
    } else {
        format!("output ({stored} bytes) in Secret {secret}")
    };
    if at_service_cap {
        note.push_str(
            "; it reached the 512 kB AKS keeps of run command logs, so AKS may have cut it (which end AKS keeps is not documented)",
        );
    }
    note
}

pub fn finished(
    mut s: RemoteCommandStatus,
    outcome: Outcome,
    now: Timestamp,
) -> RemoteCommandStatus {
    let (phase, reason, health) = match outcome.exit_code {
        Some(0) => (Phase::Succeeded, Reason::Completed, Health::Ready),
        Some(_) => (Phase::Failed, Reason::NonZeroExit, Health::Stalled),
        None => (Phase::Succeeded, Reason::ExitCodeUnavailable, Health::Ready),
    };
    s.phase = Some(phase);
    s.exit_code = outcome.exit_code;
    s.completion_time = Some(Time(now));
    s.output_secret_name = Some(outcome.output_secret_name);
    s.output_bytes = Some(outcome.output.len() as i64);
    s.output_truncated = outcome.truncated.then_some(true);
    s.output_tail = Some(crate::text::tail_utf8(&outcome.output, outcome.tail_bytes));
    s.reason = Some(reason.to_string());
    s.message = Some(crate::text::clean(&outcome.message, 1024));
    let generation = s.observed_generation;
    conditions::apply(
        &mut s.conditions,
        health,
        reason.as_str(),
        &outcome.message,
        generation,
        &Time(now),
    );
    s
}

/// The run failed for good.
pub fn failed(
    mut s: RemoteCommandStatus,
    failure: &Failure,
    now: Timestamp,
) -> RemoteCommandStatus {
    s.phase = Some(Phase::Failed);
    s.completion_time = Some(Time(now));
    s.reason = Some(failure.reason.to_string());
    s.message = Some(crate::text::clean(&failure.message, 1024));
    let generation = s.observed_generation;
    conditions::apply(
        &mut s.conditions,
        Health::Stalled,
        failure.reason.as_str(),
        &failure.message,
        generation,
        &Time(now),
    );
    s
}

/// When the run was asked for: its creation, or the latest write of its spec by anyone but the
/// operator (a change of spec or runId), from `managedFields`.
pub fn requested_at(rc: &RemoteCommand) -> Option<Timestamp> {
    let created = rc.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let latest = rc
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| m.manager.as_deref() != Some(crate::controllers::context::FIELD_MANAGER))
        .filter(|m| m.subresource.as_deref() != Some("status"))
        // Only a manager of the spec asked for a run: labels and annotations change nothing.
        .filter(|m| {
            m.fields_v1
                .as_ref()
                .is_some_and(|f| f.0.get("f:spec").is_some())
        })
        .filter_map(|m| m.time.as_ref().map(|t| t.0))
        .max();
    latest.into_iter().chain(created).max()
}

/// A run not yet dispatched whose `startingDeadlineSeconds` passed: it must not start any more.
pub fn past_starting_deadline(rc: &RemoteCommand, now: Timestamp) -> Option<Failure> {
    let bound = rc.spec.starting_deadline_seconds?;
    let asked = requested_at(rc)?;
    let late = now.duration_since(asked).as_secs();
    (late > bound).then(|| {
        Failure::terminal(
            Reason::StartingDeadlineExceeded,
            format!(
                "not dispatched: the run was asked for {late}s ago, later than startingDeadlineSeconds ({bound}s) allows; \
                 it was never sent (set a new spec.runId to run it now)"
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::remote_command::RemoteCommandSpec;
    use crate::controllers::conditions::{READY, RECONCILING, STALLED, status_of};

    fn rc(
        generation: i64,
        run_id: Option<&str>,
        status: Option<RemoteCommandStatus>,
    ) -> RemoteCommand {
        let spec: RemoteCommandSpec = serde_json::from_value(serde_json::json!({
            "target": {"aks": {"resourceId": "/subscriptions/x/resourceGroups/r/providers/Microsoft.ContainerService/managedClusters/c"}},
            "command": "true", "runId": run_id,
        }))
        .unwrap();
        let mut rc = RemoteCommand::new("x", spec);
        rc.metadata.generation = Some(generation);
        rc.metadata.uid = Some("uid-1".into());
        rc.status = status;
        rc
    }

    fn now() -> Timestamp {
        Timestamp::from_second(1_700_000_000).unwrap()
    }

    #[test]
    fn a_fresh_object_is_a_new_run() {
        let fresh = rc(
            1,
            None,
            Some(RemoteCommandStatus {
                observed_generation: 0,
                ..Default::default()
            }),
        );
        assert!(!is_current_run(&fresh));
        let s = base(&fresh);
        assert_eq!(
            (s.observed_generation, s.attempts, s.run_id.as_deref()),
            (1, Some(0), Some(""))
        );
    }

    #[test]
    fn same_generation_and_run_id_is_the_current_run() {
        let started = dispatching(base(&rc(1, None, None)), now());
        assert!(is_current_run(&rc(1, None, Some(started.clone()))));
        assert!(
            !is_current_run(&rc(2, None, Some(started.clone()))),
            "a spec change starts a new run"
        );
        assert!(
            !is_current_run(&rc(1, Some("again"), Some(started))),
            "a new runId starts a new run"
        );
    }

    #[test]
    fn dispatching_counts_attempts_and_keeps_the_start_time() {
        let s1 = dispatching(base(&rc(1, None, None)), now());
        assert_eq!(
            (s1.phase, s1.attempts, s1.command_id.clone()),
            (Some(Phase::Running), Some(1), None)
        );
        let later = now().checked_add(SignedDuration::from_secs(30)).unwrap();
        let s2 = dispatching(s1.clone(), later);
        assert_eq!(s2.attempts, Some(2));
        assert_eq!(s2.start_time, s1.start_time);
        assert_eq!(status_of(&s2.conditions, RECONCILING), Some("True"));
    }

    #[test]
    fn correlation_ids_are_guids_unique_per_attempt_and_stable() {
        let r = rc(1, None, None);
        let first = correlation_id(&r, 1);
        assert!(uuid::Uuid::parse_str(&first).is_ok(), "{first}");
        assert_eq!(first, correlation_id(&r, 1), "stable across restarts");
        assert_ne!(first, correlation_id(&r, 2), "per attempt");
        assert_ne!(
            first,
            correlation_id(&rc(2, None, None), 1),
            "per generation"
        );
    }

    #[test]
    fn output_past_a_secret_keeps_its_end() {
        let small = b"fits".to_vec();
        assert_eq!(stored_output(small.clone()), (small, false));
        let mut big = vec![b'a'; MAX_STORED_OUTPUT];
        big.extend_from_slice(b"the error at the end");
        let (kept, cut) = stored_output(big);
        assert!(cut);
        assert_eq!(kept.len(), MAX_STORED_OUTPUT);
        assert!(kept.ends_with(b"the error at the end"));
    }

    #[test]
    fn outcomes_map_to_phase_and_reason() {
        let out = |code| Outcome {
            exit_code: code,
            output: "héllo wörld".as_bytes().to_vec(),
            truncated: false,
            output_secret_name: "x-output".into(),
            tail_bytes: 6,
            message: "m".into(),
        };
        let s = finished(base(&rc(1, None, None)), out(Some(0)), now());
        assert_eq!(
            (s.phase, s.reason.as_deref()),
            (Some(Phase::Succeeded), Some("Completed"))
        );
        assert_eq!(status_of(&s.conditions, READY), Some("True"));
        assert_eq!(s.output_tail.as_deref(), Some("wörld"));
        assert_eq!(s.output_bytes, Some(13));
        let s = finished(base(&rc(1, None, None)), out(Some(3)), now());
        assert_eq!(
            (s.phase, s.reason.as_deref(), s.exit_code),
            (Some(Phase::Failed), Some("NonZeroExit"), Some(3))
        );
        assert_eq!(status_of(&s.conditions, STALLED), Some("True"));
        let s = finished(base(&rc(1, None, None)), out(None), now());
        assert_eq!(
            (s.phase, s.reason.as_deref(), s.exit_code),
            (Some(Phase::Succeeded), Some("ExitCodeUnavailable"), None)
        );
    }

    #[test]
    fn deadline_counts_from_dispatch() {
        let mut r = rc(1, None, None);
        r.status = Some(dispatching(base(&r), now()));
        assert_eq!(
            deadline(&r),
            now().checked_add(SignedDuration::from_secs(600)).ok()
        );
    }

    #[test]
    fn the_starting_deadline_counts_from_the_latest_request() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
        let t = |secs: i64| Timestamp::from_second(1_800_000_000 + secs).unwrap();
        let mut rc = RemoteCommand::new(
            "r",
            serde_json::from_value(serde_json::json!({"target": {"aks": {"resourceId": "x"}}, "command": "true", "startingDeadlineSeconds": 60})).unwrap(),
        );
        rc.metadata.creation_timestamp = Some(Time(t(0)));
        assert!(past_starting_deadline(&rc, t(59)).is_none());
        let late = past_starting_deadline(&rc, t(61)).expect("past its deadline");
        assert_eq!(late.reason, Reason::StartingDeadlineExceeded);
        // A later change of the spec by a user asks again; the operator's own writes do not.
        let entry = |manager: &str, at: i64, sub: Option<&str>, field: &str| ManagedFieldsEntry {
            manager: Some(manager.into()),
            time: Some(Time(t(at))),
            subresource: sub.map(str::to_string),
            fields_v1: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::FieldsV1(
                serde_json::json!({ field: {} }),
            )),
            ..Default::default()
        };
        rc.metadata.managed_fields = Some(vec![
            entry("kubectl-client-side-apply", 100, None, "f:spec"),
            entry(
                crate::controllers::context::FIELD_MANAGER,
                500,
                None,
                "f:spec",
            ),
            entry("someone", 900, Some("status"), "f:status"),
            entry("labeller", 950, None, "f:metadata"),
        ]);
        assert!(past_starting_deadline(&rc, t(150)).is_none());
        assert!(past_starting_deadline(&rc, t(170)).is_some());
        rc.spec.starting_deadline_seconds = None;
        assert!(past_starting_deadline(&rc, t(100_000)).is_none());
    }
}
