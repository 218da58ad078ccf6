//! Leader election on a `coordination.k8s.io/v1` Lease: only the holder reconciles (and so only it
//! writes status and calls ARM); standby replicas wait. Losing the lease stops the controllers.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::watcher;
use kube::{Api, Client};
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::watch;

use crate::config::LeaderArgs;

pub struct Leadership {
    state: watch::Receiver<bool>,
    task: tokio::task::JoinHandle<kube_lease_manager::Result<LeaseManager>>,
    tenure: Tenure,
    tenure_task: tokio::task::JoinHandle<()>,
}

/// Until when this process may act as the leader, as the Lease itself says: its own last renewal
/// plus the lease duration, less a safety margin. A process that was frozen (SIGSTOP, a stalled
/// VM, a long GC-like pause) past its lease wakes up with an expired tenure even before its lease
/// manager notices that a standby took over, so a dispatch it had in flight is not sent
/// (docs/exactly-once.md). Without leader election the tenure never ends.
#[derive(Clone)]
pub struct Tenure {
    until: Option<Arc<Mutex<Option<SystemTime>>>>,
    margin: Duration,
}

impl Tenure {
    /// A single replica without leader election: always the leader.
    pub fn unconditional() -> Self {
        Self {
            until: None,
            margin: Duration::ZERO,
        }
    }

    fn elected(lease_seconds: u64) -> Self {
        Self {
            until: Some(Arc::new(Mutex::new(None))),
            margin: margin(lease_seconds),
        }
    }

    /// Whether this process still holds the Lease, with the margin to spare.
    pub fn holds(&self) -> bool {
        let Some(until) = &self.until else {
            return true;
        };
        let until = *until.lock().unwrap_or_else(|e| e.into_inner());
        until.is_some_and(|u| SystemTime::now() + self.margin < u)
    }

    /// [`Self::holds`] as a fence for the ARM requests of a dispatch, asked before each attempt.
    pub fn fence(&self) -> crate::azure::Fence {
        let tenure = self.clone();
        Arc::new(move || tenure.holds())
    }

    fn observe(&self, lease: &Lease, identity: &str) {
        let Some(until) = &self.until else { return };
        let held = lease.spec.as_ref().and_then(|spec| {
            if spec.holder_identity.as_deref() != Some(identity) {
                return None;
            }
            let renewed = spec.renew_time.as_ref()?.0;
            let seconds = u64::try_from(spec.lease_duration_seconds?).ok()?;
            let renewed = SystemTime::UNIX_EPOCH
                + Duration::from_millis(u64::try_from(renewed.as_millisecond()).ok()?);
            Some(renewed + Duration::from_secs(seconds))
        });
        *until.lock().unwrap_or_else(|e| e.into_inner()) = held;
    }
}

/// How much of the lease must remain for a dispatch: covers the time between the check and the
/// request, and clock skew between replicas.
fn margin(lease_seconds: u64) -> Duration {
    Duration::from_millis((lease_seconds * 1000 / 5).clamp(1000, 3000))
}

/// Follows the Lease object and keeps `tenure` up to date with every renewal.
async fn follow_lease(api: Api<Lease>, name: String, identity: String, tenure: Tenure) {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = std::pin::pin!(watcher::watcher(api, config));
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Apply(lease) | watcher::Event::InitApply(lease)) => {
                tenure.observe(&lease, &identity)
            }
            Ok(watcher::Event::Delete(_)) => {
                if let Some(until) = &tenure.until {
                    *until.lock().unwrap_or_else(|e| e.into_inner()) = None;
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "watching the leader Lease failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

impl Leadership {
    /// Starts competing for the lease and returns once this instance holds it.
    pub async fn acquire(
        client: Client,
        args: &LeaderArgs,
        identity: &str,
    ) -> Result<Self, kube_lease_manager::LeaseManagerError> {
        let tenure = Tenure::elected(args.leader_election_lease_seconds);
        let tenure_task = tokio::spawn(follow_lease(
            Api::namespaced(client.clone(), &args.leader_election_namespace),
            args.leader_election_lease_name.clone(),
            identity.to_string(),
            tenure.clone(),
        ));
        let manager = LeaseManagerBuilder::new(client, &args.leader_election_lease_name)
            .with_namespace(&args.leader_election_namespace)
            .with_identity(identity)
            .with_duration(args.leader_election_lease_seconds)
            .with_grace(grace(args.leader_election_lease_seconds))
            .with_field_manager("kubeinvoke")
            .build()
            .await?;
        let (mut state, task) = manager.watch().await;
        tracing::info!(lease = %args.leader_election_lease_name, namespace = %args.leader_election_namespace, identity, "waiting to become the leader");
        while !*state.borrow_and_update() {
            if state.changed().await.is_err() {
                break;
            }
        }
        tracing::info!(identity, "became the leader");
        Ok(Self {
            state,
            task,
            tenure,
            tenure_task,
        })
    }

    /// This process's tenure, for checks right before an irreversible request.
    pub fn tenure(&self) -> Tenure {
        self.tenure.clone()
    }

    /// Completes when the lease is lost.
    pub fn lost(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut state = self.state.clone();
        async move {
            while *state.borrow_and_update() {
                if state.changed().await.is_err() {
                    return;
                }
            }
        }
    }

    /// Hands the lease back so a standby takes over at once (graceful shutdown).
    pub async fn release(self) {
        self.tenure_task.abort();
        drop(self.state);
        match self.task.await {
            Ok(Ok(manager)) => {
                if let Err(e) = manager.release().await {
                    tracing::warn!(error = %e, "could not release the lease; it expires by itself");
                }
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "lease manager stopped with an error"),
            Err(e) => tracing::warn!(error = %e, "lease manager task failed"),
        }
    }
}

/// Renew a few seconds before the lease would expire (at least one second, at most a third).
fn grace(lease_seconds: u64) -> u64 {
    (lease_seconds / 3).clamp(1, 5)
}

/// A standby is ready when some replica holds the lease (so the Deployment rolls out with one
/// leader and ready standbys); it re-checks every few seconds until it leads itself.
pub async fn report_known_leader(
    client: Client,
    args: LeaderArgs,
    probes: std::sync::Arc<crate::server::Probes>,
) {
    use k8s_openapi::api::coordination::v1::Lease;
    let api: kube::Api<Lease> = kube::Api::namespaced(client, &args.leader_election_namespace);
    loop {
        let known = match api.get_opt(&args.leader_election_lease_name).await {
            Ok(Some(lease)) => lease
                .spec
                .and_then(|s| s.holder_identity)
                .is_some_and(|h| !h.is_empty()),
            _ => false,
        };
        probes.set_ready(known);
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
}
