//! What one tenant can make the operator hold, bounded for all of them together: the bytes of the
//! ConfigMaps, Secrets and outputs it copies, its share of the running reconciles, and the ACI exec
//! sessions open at once. Every bound is shared by the whole process, so a namespace that asks for
//! a lot waits (or requeues) instead of growing the operator past its memory limit; and no
//! namespace may take more than a quarter of the bytes, so the others always find room.
//!
//! Whoever holds bytes never waits for more (each use takes what it needs in one request), so the
//! waits cannot deadlock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::turns::Turns;
pub use super::turns::{Share, Ticket};

/// The largest object the API server stores (etcd's default request limit): what one GET of a
/// ConfigMap or Secret may bring, whatever it selects.
pub const MAX_OBJECT_BYTES: usize = 1536 * 1024;

/// Bytes are counted in KiB permits (a semaphore counts at most `u32::MAX >> 3` permits).
const UNIT: usize = 1024;

/// How long a reconcile turned away for its namespace's share waits before it tries again.
pub const SHARE_RETRY: Duration = Duration::from_secs(2);

pub struct Limits {
    bytes: Arc<Semaphore>,
    total_units: usize,
    /// Each namespace's quarter of `bytes`, made when it first asks.
    namespace_bytes: Mutex<HashMap<String, Arc<Semaphore>>>,
    turns: Turns,
    dispatch_lines: Turns,
    sessions: Arc<Semaphore>,
}

/// How many of a namespace's runs wait at once for the write budget of one subscription (through
/// one credential) while it is short: under a second at the operator's 9 writes/s
/// (`remote_command/line.rs`).
pub const DISPATCH_LINE: usize = 8;
/// The same while the budget has tokens to spare (a burst): the line is not what slows it.
pub const DISPATCH_LINE_ROOMY: usize = 64;

/// Bytes held against the shared budget (and the namespace's share of it) until dropped.
#[derive(Debug, Default)]
pub struct Held {
    namespace: Option<OwnedSemaphorePermit>,
    all: Option<OwnedSemaphorePermit>,
}

impl Limits {
    /// `budget_bytes` for what reconciles copy, `per_namespace` reconciles of one namespace at
    /// once, `sessions` ACI exec sessions at once.
    pub fn new(budget_bytes: usize, per_namespace: usize, sessions: usize) -> Self {
        let total_units = budget_bytes.div_ceil(UNIT).max(MAX_OBJECT_BYTES / UNIT);
        Self {
            bytes: Arc::new(Semaphore::new(total_units)),
            total_units,
            namespace_bytes: Default::default(),
            turns: Turns::new(per_namespace),
            dispatch_lines: Turns::with_short(DISPATCH_LINE_ROOMY, DISPATCH_LINE),
            sessions: Arc::new(Semaphore::new(sessions.max(1))),
        }
    }

    /// Waits (first come, first served) until `bytes` fit in `namespace`'s share and in the
    /// budget, and holds them. A request larger than the share holds all of the share.
    pub async fn hold(&self, namespace: &str, bytes: usize) -> Held {
        let share = self.share_units();
        let units = bytes.div_ceil(UNIT).clamp(1, share) as u32;
        let own = self
            .namespace_bytes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(namespace.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(share)))
            .clone();
        let namespace = own.acquire_many_owned(units).await.expect("never closed");
        let all = self
            .bytes
            .clone()
            .acquire_many_owned(units)
            .await
            .expect("never closed");
        Held {
            namespace: Some(namespace),
            all: Some(all),
        }
    }

    /// A namespace's share of the budget, in units.
    fn share_units(&self) -> usize {
        (self.total_units / 4).max(MAX_OBJECT_BYTES / UNIT)
    }

    /// A place among the namespace's running reconciles, handed out oldest ticket first
    /// ([`Turns::enter`]), or `None` when it has its share.
    pub fn enter(&self, namespace: &str, ticket: Option<Ticket>) -> Option<Share> {
        self.turns.enter(namespace, ticket)
    }

    /// Leaves `ticket` in `namespace`'s line for an object the watch just saw ([`Turns::expect`]).
    pub fn expect(&self, namespace: &str, ticket: Ticket) {
        self.turns.expect(namespace, ticket)
    }

    /// A place among the runs waiting for one ARM write budget (`line`: the namespace, the
    /// subscription and the credential), handed out oldest ticket first, or `None` when the line
    /// is full.
    pub fn dispatch_line(&self, line: &str, ticket: Ticket) -> Option<Share> {
        self.dispatch_lines.enter(line, Some(ticket))
    }

    /// One of the ACI exec sessions that may be open at once, or `None` when all are taken.
    pub fn session(&self) -> Option<OwnedSemaphorePermit> {
        self.sessions.clone().try_acquire_owned().ok()
    }

    /// Bytes of the budget held right now (a gauge).
    pub fn held_bytes(&self) -> usize {
        (self.total_units - self.bytes.available_permits()) * UNIT
    }
}

impl Held {
    /// Keeps only `bytes` of what is held (at least 1 KiB while anything is), giving the rest back.
    pub fn keep(&mut self, bytes: usize) {
        let keep = bytes.div_ceil(UNIT).max(1);
        for permit in [self.namespace.as_mut(), self.all.as_mut()]
            .into_iter()
            .flatten()
        {
            let extra = permit.num_permits().saturating_sub(keep);
            if extra > 0 {
                drop(permit.split(extra));
            }
        }
    }

    pub fn bytes(&self) -> usize {
        self.all.as_ref().map_or(0, |p| p.num_permits() * UNIT)
    }
}

/// How long a run waiting for a reference waits before it looks again: every 3 s at first (GitOps
/// applies things seconds apart), then a tenth of how long it has waited, at most 30 s — so that
/// thousands of runs naming what never comes cost the API server little.
pub fn reference_retry(waited: Duration) -> Duration {
    (waited / 10).clamp(
        super::reason::REFERENCE_RETRY,
        super::reason::REFERENCE_RETRY * 10,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_millis(50);

    #[tokio::test]
    async fn bytes_wait_for_the_budget_and_come_back_when_dropped() {
        let limits = Limits::new(8 * MAX_OBJECT_BYTES, 4, 1);
        let mut held = Vec::new();
        for ns in ["a", "b", "c", "d"] {
            held.push(limits.hold(ns, 2 * MAX_OBJECT_BYTES).await);
        }
        assert_eq!(limits.held_bytes(), 8 * MAX_OBJECT_BYTES);
        let more = tokio::time::timeout(WAIT, limits.hold("e", 1)).await;
        assert!(more.is_err(), "the budget is spent: more must wait");
        held[0].keep(10 * UNIT);
        assert_eq!(held[0].bytes(), 10 * UNIT);
        let more = tokio::time::timeout(WAIT, limits.hold("e", UNIT)).await;
        assert!(more.is_ok(), "what keep gave back is free again");
        drop((held, more));
        assert_eq!(limits.held_bytes(), 0);
    }

    #[tokio::test]
    async fn one_namespace_never_holds_more_than_a_quarter() {
        let limits = Limits::new(8 * MAX_OBJECT_BYTES, 4, 1);
        let greedy = limits.hold("greedy", 100 * MAX_OBJECT_BYTES).await;
        assert_eq!(greedy.bytes(), 2 * MAX_OBJECT_BYTES);
        let again = tokio::time::timeout(WAIT, limits.hold("greedy", UNIT)).await;
        assert!(again.is_err(), "greedy has its quarter");
        let other = tokio::time::timeout(WAIT, limits.hold("victim", MAX_OBJECT_BYTES)).await;
        assert!(other.is_ok(), "the others still find room");
    }

    #[test]
    fn sessions_are_capped() {
        let limits = Limits::new(MAX_OBJECT_BYTES, 2, 2);
        let (_s1, _s2) = (limits.session().unwrap(), limits.session().unwrap());
        assert!(limits.session().is_none());
    }

    #[test]
    fn awaited_references_back_off_to_thirty_seconds() {
        assert_eq!(reference_retry(Duration::ZERO), Duration::from_secs(3));
        assert_eq!(
            reference_retry(Duration::from_secs(100)),
            Duration::from_secs(10)
        );
        assert_eq!(
            reference_retry(Duration::from_secs(86400)),
            Duration::from_secs(30)
        );
    }
}
