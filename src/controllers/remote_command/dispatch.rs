//! The exactly-once dispatch protocol: how one attempt of a run goes from "decided to send" to
//! "ARM's answer recorded" without ever being sent twice — across crashes, API server outages, and
//! two replicas that both believe for a moment that they lead (docs/exactly-once.md).
//!
//! 1. **Decide** on the API server's current object (a fresh read, resourceVersion R), never on a
//!    cache that may lag behind our own last write.
//! 2. **Intent, fenced**: write `Running`, attempt n, no command id — with R as precondition. A
//!    conflict means someone else (a replica that took over, a person) changed the object since
//!    the read: nothing is sent, the next reconcile reads again.
//! 3. **Tenure**: right before the request this process must still hold the leader Lease with a
//!    margin to spare ([`crate::leader::Tenure`]). A process frozen past its lease wakes up
//!    without tenure; it rolls its intent back (fenced by the intent's own resourceVersion) and
//!    sends nothing.
//! 4. **Send** the request.
//! 5. **Record** the answer: first in this process's [`Journal`], then in status, fenced by the
//!    intent's resourceVersion (a lost status write is written again from the journal).
//!
//! A crash between 2 and 5 leaves `Running` without a command id: whether ARM got the request is
//! unknown, so under `AtMostOnce` the run ends as `DispatchInterrupted`, under `AtLeastOnce` it is
//! sent again. The same steps guard an ACI exec session, whose outcome is kept in the journal
//! until its status write lands.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;

use super::{status, write_status};
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
    let rc = &intent.rc;
    tracing::warn!(rcmd = %rc.name_any(), namespace = %rc.namespace().unwrap_or_default(), "lost the leader Lease between intent and request; not sending");
    if let Err(f) = write_status(api, rc, &intent.before).await {
        tracing::info!(rcmd = %rc.name_any(), reason = %f.reason, "intent not rolled back (another replica moved the object on)");
    }
    false
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
    Ok(Ok(intent))
}

/// What this process knows that the API server may not show yet: command ids ARM accepted whose
/// status write has not landed, ACI sessions live in this process, and finished sessions whose
/// outcome is still to be written.
#[derive(Default)]
pub struct Journal {
    accepted: Mutex<HashMap<String, (RunKey, String)>>,
    sessions: Mutex<HashMap<String, (RunKey, tokio::task::AbortHandle)>>,
    outcomes: Mutex<HashMap<String, (RunKey, RemoteCommandStatus)>>,
}

impl Journal {
    /// Step 5, first half: ARM accepted `command_id` for `run`.
    pub fn record_accepted(&self, run: &RunKey, command_id: &str) {
        lock(&self.accepted).insert(run.uid.clone(), (run.clone(), command_id.to_string()));
    }
    pub fn accepted(&self, run: &RunKey) -> Option<String> {
        lock(&self.accepted)
            .get(&run.uid)
            .filter(|(r, _)| r == run)
            .map(|(_, id)| id.clone())
    }
    pub fn forget_accepted(&self, uid: &str) {
        lock(&self.accepted).remove(uid);
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
    }

    /// Stops the live session of `uid`, if any (the resource was deleted or its run replaced).
    pub fn abort_session(&self, uid: &str) {
        if let Some((_, handle)) = lock(&self.sessions).remove(uid) {
            handle.abort();
        }
        lock(&self.outcomes).remove(uid);
    }

    /// A finished session's final status, kept until it is written.
    pub fn record_outcome(&self, run: &RunKey, status: &RemoteCommandStatus) {
        lock(&self.outcomes).insert(run.uid.clone(), (run.clone(), status.clone()));
    }
    pub fn outcome(&self, run: &RunKey) -> Option<RemoteCommandStatus> {
        lock(&self.outcomes)
            .get(&run.uid)
            .filter(|(r, _)| r == run)
            .map(|(_, s)| s.clone())
    }
    pub fn forget_outcome(&self, uid: &str) {
        lock(&self.outcomes).remove(uid);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
