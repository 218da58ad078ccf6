//! What every reconcile shares: the Kubernetes client, the Event recorder, the ARM clients with
//! their shared request budget and credential cache, and the in-memory run journal.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::time::Instant as Deadline;

use kube::Client;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Reporter};

use super::arm_errors;
use super::events::Events;
use super::grants::OperatorGrants;
use super::limits::Limits;
use super::reason::{Failure, Reason};
use super::references::CredentialSource;
pub use super::remote_command::dispatch::{Journal, RunKey};
use crate::azure::aci::AciClient;
use crate::azure::aks::{AksClient, ClusterInfo};
use crate::azure::hybrid::HybridClient;
use crate::azure::{
    self, AksClusterId, ArmClient, ArmError, CallContext, Cloud, CredentialCache, CredentialConfig,
    CredentialFactory, Secret,
};
use crate::metrics::Metrics;

/// Field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "kubeinvoke";
/// How long a cluster's facts (AAD-managed, run command disabled) are reused.
const CLUSTER_INFO_TTL: Duration = Duration::from_secs(300);

/// Operator settings the controllers read.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Who may use the operator's own identity, and where.
    pub operator_grants: OperatorGrants,
    pub max_context_bytes: usize,
    /// Bounds of what tenants can make the operator hold ([`Limits`]).
    pub memory_budget_bytes: usize,
    pub max_reconciles_per_namespace: usize,
    pub max_aci_sessions: usize,
    /// Reconciles of one kind at once (per watched namespace).
    pub max_concurrent_reconciles: u16,
}

pub struct Context {
    pub client: Client,
    pub events: Events,
    pub settings: Settings,
    pub azure: Azure,
    pub journal: Journal,
    pub metrics: Arc<Metrics>,
    /// Whether this process may still act as the leader (checked right before a dispatch).
    pub tenure: crate::leader::Tenure,
    /// Bytes, reconcile places and ACI sessions shared by all namespaces.
    pub limits: Limits,
    /// The order in which objects arrived (their place in line within a second).
    pub arrivals: super::arrivals::Arrivals,
}

impl Context {
    pub fn new(
        client: Client,
        reporter: Reporter,
        settings: Settings,
        azure: Azure,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            limits: Limits::new(
                settings.memory_budget_bytes,
                settings.max_reconciles_per_namespace,
                settings.max_aci_sessions,
            ),
            events: Events::new(client.clone(), reporter),
            client,
            settings,
            azure,
            journal: Journal::default(),
            metrics,
            tenure: crate::leader::Tenure::unconditional(),
            arrivals: Default::default(),
        }
    }

    /// Dispatches are fenced by `tenure` (leader election).
    pub fn with_tenure(mut self, tenure: crate::leader::Tenure) -> Self {
        self.tenure = tenure;
        self
    }

    /// The resource's credential (design §4), read from the API server for every use: a rotated,
    /// revoked or newly created Secret takes effect for the next ARM request. The Azure credential
    /// built from it (and its token cache) is kept per Secret version, so an unchanged Secret costs
    /// one GET, not a token request.
    pub async fn credential(
        &self,
        namespace: &str,
        credential_ref: Option<&crate::api::CredentialRef>,
    ) -> Result<CredentialSource, Failure> {
        super::references::resolve_credential(
            &self.client,
            &self.limits,
            namespace,
            credential_ref,
            &self.settings.operator_grants,
        )
        .await
    }

    /// Publishes an Event about `obj`; the note is cut to 1024 bytes. A repeat of an Event with the
    /// same note counts in its series; a different note is a new Event. Failing to publish is
    /// logged, never fatal.
    pub async fn event<K>(&self, obj: &K, type_: EventType, reason: &str, action: &str, note: &str)
    where
        K: Resource<DynamicType = ()>,
    {
        let event = Event {
            type_,
            reason: reason.to_string(),
            note: Some(crate::text::clean(note, 1024)),
            action: action.to_string(),
            secondary: None,
        };
        if let Err(e) = self.events.publish(&event, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, reason, "could not publish an Event");
        }
    }
}

/// The ARM side of the operator.
pub struct Azure {
    pub cloud: Cloud,
    pub arm: ArmClient,
    pub aks: AksClient,
    pub aci: AciClient,
    pub hybrid: HybridClient,
    factory: CredentialFactory,
    credentials: Arc<CredentialCache>,
    clusters: Mutex<HashMap<String, (Instant, ClusterInfo)>>,
}

impl Azure {
    pub fn new(
        cloud: Cloud,
        arm: ArmClient,
        aks: AksClient,
        aci: AciClient,
        hybrid: HybridClient,
    ) -> Self {
        let factory = CredentialFactory::new(cloud.clone(), arm.http().clone());
        Self {
            cloud,
            arm,
            aks,
            aci,
            hybrid,
            factory,
            credentials: Arc::new(CredentialCache::new()),
            clusters: Mutex::default(),
        }
    }

    /// Gives the operator the Azure identity `--operator-identity` chose.
    pub fn with_operator_identity(
        mut self,
        operator: azure::credentials::OperatorIdentity,
    ) -> Self {
        self.factory = self.factory.with_operator_identity(operator);
        self
    }

    /// Lets credential Secrets name a ServiceAccount of their namespace (workload identity):
    /// tokens for it come from `tokens`.
    pub fn with_service_account_tokens(
        mut self,
        tokens: Arc<dyn azure::credentials::ServiceAccountTokens>,
    ) -> Self {
        self.factory = self.factory.with_service_account_tokens(tokens);
        self
    }

    /// A call context for `subscription` with the resolved credential (cached per Secret version).
    pub fn call_context(
        &self,
        party: &str,
        source: &CredentialSource,
        subscription: &str,
        correlation_id: String,
        deadline: Deadline,
    ) -> Result<CallContext, Failure> {
        let (key, version, source) = azure_source(source);
        source
            .check_subscription(subscription)
            .map_err(|e| Failure::terminal(Reason::Forbidden, e.to_string()))?;
        let credential = self
            .credentials
            .get_or_try_insert(&key, &version, || self.factory.build(&source))
            .map_err(|e| arm_errors::failure(&e))?;
        let cache = self.credentials.clone();
        Ok(CallContext {
            credential,
            principal: source.principal(),
            subscription: subscription.to_string(),
            correlation_id,
            deadline,
            fence: None,
            forget_credential: Some(Arc::new(move || cache.remove(&key))),
            party: party.to_string(),
            order: None,
        })
    }

    /// The `clusterToken` of a run command: a token for the AKS AAD server application, from the
    /// cluster's Entra tenant (`aadProfile.tenantID`, when it is not the credential's own), valid
    /// for the rest of the run. The command pod's kubectl uses it until the command ends, so a
    /// cached token about to expire is not good enough (az mints one per invocation): a new one
    /// is minted then, as far as Entra's token lifetime (about an hour) allows.
    pub async fn cluster_token(
        &self,
        source: &CredentialSource,
        call: &CallContext,
        cluster_tenant: Option<&str>,
        run_left: std::time::Duration,
    ) -> Result<Secret, ArmError> {
        const LONGEST_NEEDED: std::time::Duration = std::time::Duration::from_secs(50 * 60);
        let needed = run_left.min(LONGEST_NEEDED);
        let (_, _, mut config) = azure_source(source);
        let other_tenant = match (&mut config, cluster_tenant) {
            (azure::CredentialSource::Config(c), Some(t))
                if !c.tenant_id.eq_ignore_ascii_case(t) =>
            {
                c.tenant_id = t.to_string();
                true
            }
            _ => false,
        };
        if !other_tenant {
            let (token, expires) = self.aks_aad_token_with_expiry(call).await?;
            let left = expires.map(|at| at.duration_since(k8s_openapi::jiff::Timestamp::now()));
            let fresh_enough = left.is_none_or(|l| {
                l >= k8s_openapi::jiff::SignedDuration::try_from(needed).unwrap_or_default()
            });
            if fresh_enough || matches!(config, azure::CredentialSource::OperatorIdentity) {
                return Ok(token);
            }
        }
        // A credential of its own has an empty token cache: the token it mints is new.
        let fresh = self.factory.build(&config)?;
        Ok(self.aks_aad_token_from(fresh.as_ref()).await?.0)
    }

    /// The cluster's facts, from a short-lived cache or one ARM `GET`. The cache is per principal:
    /// what one identity was allowed to read never stands in for another's read (a principal
    /// without `managedClusters/read` is refused, as `az aks command invoke` is).
    pub async fn cluster_info(
        &self,
        call: &CallContext,
        id: &AksClusterId,
    ) -> Result<ClusterInfo, ArmError> {
        let key = format!("{}|{}", call.principal, id.to_string().to_ascii_lowercase());
        if let Some((at, info)) = self
            .clusters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            && at.elapsed() < CLUSTER_INFO_TTL
        {
            return Ok(info.clone());
        }
        let info = self.aks.get_cluster(call, id).await?;
        // A stopped cluster is read again next time: it may have been started meanwhile.
        if !info.stopped() {
            let mut clusters = self.clusters.lock().unwrap_or_else(|e| e.into_inner());
            // Expired entries go as new ones come: the cache holds at most what was read within
            // the TTL.
            clusters.retain(|_, (at, _)| at.elapsed() < CLUSTER_INFO_TTL);
            clusters.insert(key, (Instant::now(), info.clone()));
        }
        Ok(info)
    }

    /// A token for the AKS AAD server application from the call's identity, with its expiry (a
    /// kubeconfig that carries the token must be refreshed before it).
    pub async fn aks_aad_token_with_expiry(
        &self,
        call: &CallContext,
    ) -> Result<(Secret, Option<k8s_openapi::jiff::Timestamp>), ArmError> {
        self.aks_aad_token_from(call.credential.as_ref()).await
    }

    async fn aks_aad_token_from(
        &self,
        credential: &dyn azure_core::credentials::TokenCredential,
    ) -> Result<(Secret, Option<k8s_openapi::jiff::Timestamp>), ArmError> {
        let token = credential
            .get_token(&[self.cloud.aks_aad_server_scope()], None)
            .await
            .map_err(|e| ArmError::Auth {
                operation: "AksAadServerToken",
                message: e.to_string(),
            })?;
        let expires_at =
            k8s_openapi::jiff::Timestamp::from_second(token.expires_on.unix_timestamp()).ok();
        Ok((Secret::new(token.token.secret().to_string()), expires_at))
    }
}

/// The cache key, version and azure-side description of a resolved credential.
fn azure_source(source: &CredentialSource) -> (String, String, azure::CredentialSource) {
    match source {
        CredentialSource::Secret(s) => (
            format!("{}/{}", s.namespace, s.name),
            s.resource_version.clone(),
            azure::CredentialSource::Config(CredentialConfig {
                tenant_id: s.tenant_id.clone(),
                client_id: s.client_id.clone(),
                client_secret: s.client_secret.clone().map(Secret::new),
                service_account: s.service_account.clone().map(|name| {
                    azure::credentials::ServiceAccountRef {
                        namespace: s.namespace.clone(),
                        name,
                        client_id: s.client_id.clone(),
                    }
                }),
                subscription_id: s.subscription_id.clone(),
            }),
        ),
        CredentialSource::Operator(_) => (
            "operator".to_string(),
            String::new(),
            azure::CredentialSource::OperatorIdentity,
        ),
    }
}

impl Context {
    /// Shared by both controllers: an `Arc` for `Controller::run`.
    pub fn shared(self) -> Arc<Self> {
        Arc::new(self)
    }
}
