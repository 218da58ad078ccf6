//! The exactly-once dispatch protocol: how one attempt of a run goes from "decided to send" to
//! "ARM's answer recorded" without ever being sent twice — across crashes, API server outages, and
//! two replicas that both believe for a moment that they lead (docs/exactly-once.md).
//!
//! 1. **Decide** on the API server's current object (a fresh read, resourceVersion R), never on a
//!    cache that may lag behind our own last write.
//! 2. **Intent, fenced**: write `Running`, attempt n, no command id — with R as precondition. A
//!    conflict means someone else (a replica that took over, a person) changed the object since
//!    the read: nothing is sent, the next reconcile reads again.
//! 3. **Tenure**: right before the request — and again before every retry of it, as the request's
//!    fence ([`crate::azure::Fence`]) — this process must still hold the leader Lease with a
//!    margin to spare ([`crate::leader::Tenure`]). A process frozen past its lease wakes up
//!    without tenure; it rolls its intent back (fenced by the intent's own resourceVersion) and
//!    sends nothing.
//! 4. **Send** the request.
//! 5. **Record** the answer: first in this process's [`Journal`], then in status, fenced by the
//!    intent's resourceVersion (a lost status write is written again from the journal).
//!
//! A crash between 2 and 5 leaves `Running` without a command id: whether ARM got the request is
//! unknown, so under `AtMostOnce` the run ends as `DispatchInterrupted`, under `AtLeastOnce` it is
//! sent again. A process that was only frozen (not crashed) still holds ARM's answer when it wakes:
//! it writes it over that `DispatchInterrupted` verdict — same run, same attempt, fenced like every
//! write, nothing sent again — and the run is followed to ARM's result ([`Recorded::WrittenLate`]).
//! The same steps guard an ACI exec session, whose outcome is kept in the journal until its status
//! write lands.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

use super::{status, write_status};
use crate::api::Phase;
use crate::api::remote_command::{RemoteCommand, RemoteCommandStatus};
use crate::controllers::context::Context;
use crate::controllers::reason::{Failure, Reason};

/// A run: (uid, generation, runId).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RunKey {
    pub uid: String,
    pub generation: i64,
    pub run_id: String,
}

/// An attempt this process has claimed: the intent is written, nothing is sent yet.
pub struct Intent {
    /// The object as the intent write left it (its resourceVersion fences the next write).
    pub rc: RemoteCommand,
    /// The status written: Running, this attempt, no command id.
    pub status: RemoteCommandStatus,
    /// The status before the intent, restored when the attempt is given up unsent.
    before: RemoteCommandStatus,
}

/// Step 2: claims the next attempt of `rc` (read fresh) by writing the intent, fenced by the
/// read's resourceVersion. `None`: this process must not dispatch now (it lost its tenure, or the
/// object changed since the read); the caller requeues and reads again.
async fn claim(
    api: &Api<RemoteCommand>,
    rc: &RemoteCommand,
    ctx: &Context,
    base: RemoteCommandStatus,
) -> Result<Option<Intent>, Failure> {
    if !ctx.tenure.holds() {
        tracing::info!(rcmd = %rc.name_any(), "not dispatching: this replica no longer holds the leader Lease");
        return Ok(None);
    }
    let mut s = status::dispatching(base.clone(), Timestamp::now());
    s.correlation_id = Some(status::correlation_id(rc, s.attempts.unwrap_or(1)));
    match write_status(api, rc, &s).await {
        Ok(written) => Ok(Some(Intent {
            rc: written,
            status: s,
            before: base,
        })),
        Err(f) if f.reason == Reason::Conflict => {
            tracing::info!(rcmd = %rc.name_any(), "not dispatching: the object changed since it was read");
            Ok(None)
        }
        Err(f) => Err(f),
    }
}

/// Step 3: whether the claimed attempt may be sent now. When this process lost its tenure in the
/// meantime, the intent is rolled back (unless someone else already moved the object on) and
/// nothing is sent.
async fn may_send(api: &Api<RemoteCommand>, ctx: &Context, intent: &Intent) -> bool {
    if ctx.tenure.holds() {
        return true;
    }
    give_up(api, intent).await;
    false
}

/// This process lost its tenure after claiming the attempt and sent nothing (checked here, or by
/// the request's fence before a retry): the intent is rolled back — fenced by its own
/// resourceVersion, so a replica that moved the object on meanwhile wins — and the next reconcile
/// (if this process still reconciles at all) reads the object again.
pub async fn give_up(api: &Api<RemoteCommand>, intent: &Intent) -> Action {
    let rc = &intent.rc;
    tracing::warn!(rcmd = %rc.name_any(), namespace = %rc.namespace().unwrap_or_default(), "lost the leader Lease between intent and request; not sending");
    if let Err(f) = write_status(api, rc, &intent.before).await {
        tracing::info!(rcmd = %rc.name_any(), reason = %f.reason, "intent not rolled back (another replica moved the object on)");
    }
    Action::requeue(Duration::from_secs(1))
}

/// Steps 2 and 3 together: the claimed attempt, ready to send — or, when this process must not send
/// now, the requeue to return (the next reconcile reads the object again).
pub async fn ready_to_send(
    api: &Api<RemoteCommand>,
    rc: &RemoteCommand,
    ctx: &Context,
    base: RemoteCommandStatus,
) -> Result<Result<Intent, Action>, Failure> {
    let Some(intent) = claim(api, rc, ctx, base).await? else {
        return Ok(Err(Action::requeue(Duration::from_millis(200))));
    };
    if !may_send(api, ctx, &intent).await {
        return Ok(Err(Action::requeue(Duration::from_secs(1))));
    }
    audit(&intent);
    Ok(Ok(intent))
}

/// The audit line of an attempt, logged right before it is sent: who asked (the resource's uid,
/// which the API server's audit log ties to a user), what and where (the target), and the
/// correlation id Azure's activity log shows. One line per attempt, whatever happens next.
fn audit(intent: &Intent) {
    let rc = &intent.rc;
    let target = rc.spec.target.resource_id();
    tracing::info!(
        audit = true,
        uid = %rc.uid().unwrap_or_default(),
        namespace = %rc.namespace().unwrap_or_default(),
        rcmd = %rc.name_any(),
        generation = rc.metadata.generation.unwrap_or_default(),
        resource_id = %target,
        attempt = intent.status.attempts.unwrap_or(1),
        correlation_id = intent.status.correlation_id.as_deref().unwrap_or_default(),
        "dispatching"
    );
}

/// Step 5, second half: how writing ARM's answer into status went.
pub enum Recorded {
    /// In the API server now.
    Written,
    /// In the API server now, over the `DispatchInterrupted` verdict another replica reached while
    /// this answer was on its way (this process was frozen between the request and the record).
    /// The verdict said "unknown whether it ran"; the command id says it was accepted, once.
    WrittenLate,
    /// The object no longer shows this attempt running (deleted, its run replaced, or another
    /// replica decided about it): nothing to write, the answer is dropped.
    Superseded,
    /// Not written within the patience given; the journal keeps it for the next try.
    NotYet(Failure),
}

/// Step 5, second half: writes `status`, which carries ARM's answer to the attempt `intent` claimed,
/// on the object as it is now — as long as that still shows the attempt running. A conflict is
/// not a refusal here: a label or annotation changed by someone else also moves the
/// resourceVersion, so the object is read again and checked. Transient errors are retried with
/// backoff until `patience` is used up (`None`: until it lands or is superseded).
pub async fn record(
    api: &Api<RemoteCommand>,
    intent: &RemoteCommand,
    status: &RemoteCommandStatus,
    patience: Option<Duration>,
) -> Recorded {
    let give_up = patience.map(|p| tokio::time::Instant::now() + p);
    let attempt = intent.status.as_ref().and_then(|s| s.attempts);
    let mut current = intent.clone();
    let mut status = status.clone();
    let mut late = false;
    let mut delay = Duration::from_millis(100);
    loop {
        let error = match write_status(api, &current, &status).await {
            Ok(_) if late => return Recorded::WrittenLate,
            Ok(_) => return Recorded::Written,
            Err(f) if f.reason == Reason::Conflict => match api.get_opt(&intent.name_any()).await {
                Ok(Some(fresh)) if shows_attempt_running(&fresh, intent, attempt) => {
                    current = fresh;
                    continue;
                }
                Ok(Some(fresh))
                    if !late && shows_attempt_interrupted(&fresh, intent, attempt, &status) =>
                {
                    tracing::warn!(rcmd = %intent.name_any(), command_id = status.command_id.as_deref().unwrap_or_default(), "ARM's answer arrives after the run was declared DispatchInterrupted; recording it");
                    status = late_answer(status);
                    current = fresh;
                    late = true;
                    continue;
                }
                Ok(_) => return Recorded::Superseded,
                Err(e) => Failure::from(e),
            },
            // Deleted meanwhile (by someone, or by its TTL after another replica ended the run):
            // there is nothing left to record the answer on, and nothing is sent again.
            Err(f) if f.transient && matches!(api.get_opt(&intent.name_any()).await, Ok(None)) => {
                return Recorded::Superseded;
            }
            Err(f) if f.transient => f,
            Err(f) => return Recorded::NotYet(f),
        };
        tracing::warn!(rcmd = %intent.name_any(), reason = %error.reason, "could not record ARM's answer yet; retrying");
        if give_up.is_some_and(|g| tokio::time::Instant::now() + delay > g) {
            return Recorded::NotYet(error);
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// The message a late answer carries: what happened, in the order it happened.
fn late_answer(mut status: RemoteCommandStatus) -> RemoteCommandStatus {
    let accepted = status.message.take().unwrap_or_default();
    let message = format!(
        "{accepted}; recorded late: the run had been declared DispatchInterrupted while this answer was on its way \
         (the replica that sent it was paused); it was sent once and is followed to its result"
    );
    status.message = Some(crate::text::clean(&message, 1024));
    status
}

/// Step 5 in full: keeps `status` (ARM's answer to the attempt `intent` claimed) in the journal,
/// writes it ([`record`]), and drops it from the journal once it is written or superseded.
pub async fn record_answer(
    api: &Api<RemoteCommand>,
    journal: &Journal,
    intent: &RemoteCommand,
    status: &RemoteCommandStatus,
    patience: Option<Duration>,
) -> Recorded {
    journal.record_answer(intent, status);
    let recorded = record(api, intent, status, patience).await;
    if !matches!(recorded, Recorded::NotYet(_)) {
        journal.forget_answer(&intent.uid().unwrap_or_default());
    }
    recorded
}

/// Whether `fresh` still shows the attempt `intent` claimed as running, with no answer recorded.
fn shows_attempt_running(
    fresh: &RemoteCommand,
    intent: &RemoteCommand,
    attempt: Option<i32>,
) -> bool {
    let Some(s) = fresh.status.as_ref() else {
        return false;
    };
    status::run_key(fresh) == status::run_key(intent)
        && s.phase == Some(Phase::Running)
        && s.attempts == attempt
        && s.command_id.is_none()
}

/// Whether `fresh` shows the attempt `intent` claimed ended as `DispatchInterrupted` — decided by
/// someone who did not know ARM's answer — while `answer` carries the command id ARM accepted for
/// it. Only an accepted AKS command qualifies: it is running on the cluster whatever the verdict
/// says, and polling it needs nothing sent again.
fn shows_attempt_interrupted(
    fresh: &RemoteCommand,
    intent: &RemoteCommand,
    attempt: Option<i32>,
    answer: &RemoteCommandStatus,
) -> bool {
    let Some(s) = fresh.status.as_ref() else {
        return false;
    };
    answer.command_id.is_some()
        && status::run_key(fresh) == status::run_key(intent)
        && s.phase == Some(Phase::Failed)
        && s.reason.as_deref() == Some(Reason::DispatchInterrupted.as_str())
        && s.attempts == attempt
        && s.command_id.is_none()
}

/// ARM's answer to one attempt, not yet in the API server: the command id ARM accepted, or an
/// exec session's final status.
struct Answer {
    run: RunKey,
    /// The object as the intent left it (name, namespace, the claimed attempt).
    intent: RemoteCommand,
    status: RemoteCommandStatus,
}

/// What this process knows that the API server may not show yet: ARM's answers whose status write
/// has not landed, and the ACI sessions live in this process.
#[derive(Default)]
pub struct Journal {
    answers: Mutex<HashMap<String, Answer>>,
    sessions: Mutex<HashMap<String, (RunKey, tokio::task::AbortHandle)>>,
    /// Told whenever a session ends.
    session_ended: tokio::sync::Notify,
}

impl Journal {
    /// Step 5, first half: ARM answered the attempt `intent` claimed; `status` records the answer.
    pub fn record_answer(&self, intent: &RemoteCommand, status: &RemoteCommandStatus) {
        let run = status::run_key(intent);
        let answer = Answer {
            run: run.clone(),
            intent: intent.clone(),
            status: status.clone(),
        };
        lock(&self.answers).insert(run.uid, answer);
    }
    /// The status that records ARM's answer for `run`, while it is not written.
    pub fn answer(&self, run: &RunKey) -> Option<RemoteCommandStatus> {
        lock(&self.answers)
            .get(&run.uid)
            .filter(|a| &a.run == run)
            .map(|a| a.status.clone())
    }
    /// The AKS command id ARM accepted for `run`, while it is not written.
    pub fn accepted(&self, run: &RunKey) -> Option<String> {
        self.answer(run).and_then(|s| s.command_id)
    }
    /// Whether this process holds an answer or a session of any run of the object `uid`.
    pub fn holds(&self, uid: &str) -> bool {
        lock(&self.answers).contains_key(uid) || lock(&self.sessions).contains_key(uid)
    }
    pub fn forget_answer(&self, uid: &str) {
        lock(&self.answers).remove(uid);
    }

    pub fn add_session(&self, run: &RunKey, handle: tokio::task::AbortHandle) {
        lock(&self.sessions).insert(run.uid.clone(), (run.clone(), handle));
    }
    pub fn has_session(&self, run: &RunKey) -> bool {
        lock(&self.sessions)
            .get(&run.uid)
            .is_some_and(|(r, h)| r == run && !h.is_finished())
    }
    pub fn end_session(&self, uid: &str) {
        lock(&self.sessions).remove(uid);
        self.session_ended.notify_waiters();
    }

    /// Waits until no ACI session of this process is open, at most `patience`; returns how many
    /// are still open then.
    pub async fn sessions_closed(&self, patience: std::time::Duration) -> usize {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            // Asked for before counting, so that an end in between is not missed.
            let ended = self.session_ended.notified();
            let open = lock(&self.sessions)
                .values()
                .filter(|(_, h)| !h.is_finished())
                .count();
            if open == 0 || tokio::time::timeout_at(deadline, ended).await.is_err() {
                return open;
            }
        }
    }

    /// Stops the live session of `uid`, if any, and drops its answer (the resource was deleted or
    /// its run replaced).
    pub fn abort_session(&self, uid: &str) {
        if let Some((_, handle)) = lock(&self.sessions).remove(uid) {
            handle.abort();
        }
        lock(&self.answers).remove(uid);
    }
}

/// On the way out (SIGTERM, a rolling update, the Lease lost), once no reconcile runs any more:
/// writes every answer still only in the journal, each for at most `patience`, so that the next
/// leader finds ARM's answers in status and does not take an accepted command for an interrupted
/// one. Returns how many could not be written.
pub async fn flush(ctx: &Context, patience: Duration) -> usize {
    let answers: Vec<Answer> = lock(&ctx.journal.answers).drain().map(|(_, a)| a).collect();
    if answers.is_empty() {
        return 0;
    }
    let writes = answers.iter().map(|a| async move {
        let api: Api<RemoteCommand> = Api::namespaced(
            ctx.client.clone(),
            &a.intent.namespace().unwrap_or_default(),
        );
        let recorded = record(&api, &a.intent, &a.status, Some(patience)).await;
        if let Recorded::WrittenLate = recorded {
            announce_late(ctx, &a.intent, &a.status).await;
        }
        recorded
    });
    let left = futures::future::join_all(writes)
        .await
        .into_iter()
        .filter(|r| matches!(r, Recorded::NotYet(_)))
        .count();
    tracing::info!(
        answers = answers.len(),
        unwritten = left,
        "recorded ARM's answers before stopping"
    );
    left
}

/// Tells `kubectl describe` that a run declared `DispatchInterrupted` is followed after all.
pub async fn announce_late(ctx: &Context, rc: &RemoteCommand, status: &RemoteCommandStatus) {
    let note = format!(
        "ARM had accepted attempt {} as command {} before the run was declared DispatchInterrupted; \
         the late answer is recorded and the command is followed to its result (it was sent once)",
        status.attempts.unwrap_or(1),
        status.command_id.as_deref().unwrap_or_default()
    );
    ctx.event(rc, EventType::Normal, "LateAnswer", "Dispatch", &note)
        .await;
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::remote_command::RemoteCommandSpec;

    fn rc(generation: i64, status: RemoteCommandStatus) -> RemoteCommand {
        let spec: RemoteCommandSpec = serde_json::from_value(serde_json::json!({
            "target": {"aks": {"resourceId": "/subscriptions/x/resourceGroups/r/providers/Microsoft.ContainerService/managedClusters/c"}},
            "command": "true",
        }))
        .unwrap();
        let mut rc = RemoteCommand::new("x", spec);
        rc.metadata.generation = Some(generation);
        rc.metadata.uid = Some("uid-1".into());
        rc.status = Some(status);
        rc
    }

    #[tokio::test(start_paused = true)]
    async fn the_way_out_waits_for_open_sessions_and_no_longer() {
        let journal = std::sync::Arc::new(Journal::default());
        let run = status::run_key(&rc(1, running(1)));
        let (end, ended) = tokio::sync::oneshot::channel::<()>();
        let session = {
            let (journal, uid) = (journal.clone(), run.uid.clone());
            tokio::spawn(async move {
                let _ = ended.await;
                journal.end_session(&uid);
            })
        };
        journal.add_session(&run, session.abort_handle());
        let waiting = {
            let journal = journal.clone();
            tokio::spawn(async move { journal.sessions_closed(Duration::from_secs(60)).await })
        };
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!waiting.is_finished(), "returned with a session open");
        end.send(()).unwrap();
        assert_eq!(waiting.await.unwrap(), 0);

        // A session that never ends is given up on at the deadline.
        let forever = tokio::spawn(std::future::pending::<()>());
        journal.add_session(&run, forever.abort_handle());
        assert_eq!(journal.sessions_closed(Duration::from_secs(60)).await, 1);
    }

    fn running(attempt: i32) -> RemoteCommandStatus {
        RemoteCommandStatus {
            phase: Some(Phase::Running),
            attempts: Some(attempt),
            observed_generation: 1,
            ..Default::default()
        }
    }

    #[test]
    fn an_answer_is_written_only_on_the_attempt_it_answers() {
        let intent = rc(1, running(2));
        // Someone labelled it: same run, same attempt, still no answer.
        assert!(shows_attempt_running(&intent.clone(), &intent, Some(2)));
        // Another replica moved on: a later attempt, an answer, a verdict, a new generation.
        assert!(!shows_attempt_running(&rc(1, running(3)), &intent, Some(2)));
        let mut answered = running(2);
        answered.command_id = Some("abc".into());
        assert!(!shows_attempt_running(&rc(1, answered), &intent, Some(2)));
        let mut failed = running(2);
        failed.phase = Some(Phase::Failed);
        assert!(!shows_attempt_running(&rc(1, failed), &intent, Some(2)));
        assert!(!shows_attempt_running(&rc(2, running(2)), &intent, Some(2)));
    }

    #[test]
    fn a_late_answer_is_written_only_over_its_own_attempt_declared_interrupted() {
        let intent = rc(1, running(2));
        let mut answer = running(2);
        answer.command_id = Some("abc".into());
        let interrupted = |attempt: i32, reason: &str| {
            let mut s = running(attempt);
            s.phase = Some(Phase::Failed);
            s.reason = Some(reason.into());
            s
        };
        let declared = rc(1, interrupted(2, "DispatchInterrupted"));
        assert!(shows_attempt_interrupted(
            &declared,
            &intent,
            Some(2),
            &answer
        ));
        // Not an answer with a command id (an ACI verdict): nothing to follow.
        assert!(!shows_attempt_interrupted(
            &declared,
            &intent,
            Some(2),
            &running(2)
        ));
        // Another attempt, another verdict, another run: their decisions stand.
        let other_attempt = rc(1, interrupted(3, "DispatchInterrupted"));
        assert!(!shows_attempt_interrupted(
            &other_attempt,
            &intent,
            Some(2),
            &answer
        ));
        let deadline = rc(1, interrupted(2, "DeadlineExceeded"));
        assert!(!shows_attempt_interrupted(
            &deadline,
            &intent,
            Some(2),
            &answer
        ));
        let new_generation = rc(2, interrupted(2, "DispatchInterrupted"));
        assert!(!shows_attempt_interrupted(
            &new_generation,
            &intent,
            Some(2),
            &answer
        ));
        let mut followed = interrupted(2, "DispatchInterrupted");
        followed.command_id = Some("xyz".into());
        assert!(!shows_attempt_interrupted(
            &rc(1, followed),
            &intent,
            Some(2),
            &answer
        ));
        let late = late_answer(RemoteCommandStatus {
            message: Some("ARM accepted command abc".into()),
            ..answer
        });
        assert!(
            late.message
                .unwrap()
                .starts_with("ARM accepted command abc; recorded late")
        );
    }
}
