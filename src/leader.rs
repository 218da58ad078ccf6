//! Leader election on a `coordination.k8s.io/v1` Lease: only the holder reconciles (and so only it
//! writes status and calls ARM); standby replicas wait. Losing the lease stops the controllers.

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::watch;

use crate::config::LeaderArgs;

pub struct Leadership {
    state: watch::Receiver<bool>,
    task: tokio::task::JoinHandle<kube_lease_manager::Result<LeaseManager>>,
}

impl Leadership {
    /// Starts competing for the lease and returns once this instance holds it.
    pub async fn acquire(
        client: Client,
        args: &LeaderArgs,
        identity: &str,
    ) -> Result<Self, kube_lease_manager::LeaseManagerError> {
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
        Ok(Self { state, task })
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
