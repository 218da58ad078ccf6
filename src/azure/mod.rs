//! Azure Resource Manager and Entra ID: everything the operator needs from Azure, nothing of Kubernetes.
//!
//! `client` sends ARM requests (auth, throttling, retries), `lro` polls long-running operations,
//! `aks`, `aci` and `hybrid` are the three resource-provider APIs the controllers call, and
//! `discovery` lists a resource type's resources for fleets.
//!
//! Wiring, once per process: `ArmClient::new(&ArmClientConfig::new(cloud), observer)` (one shared
//! set of token buckets), `CredentialFactory::new(cloud, client.http().clone())` + a
//! `CredentialCache`, `aci::websocket_tls_config(ca)`; then `AksClient`, `AciClient` and
//! `HybridClient` over clones of the `ArmClient`. Per reconcile run: a `CallContext` (credential,
//! principal, subscription, correlation id, deadline).

pub mod aci;
pub mod aci_output;
pub mod aks;
pub mod client;
pub mod cloud;
pub mod credentials;
pub mod discovery;
pub mod error;
pub mod hybrid;
pub mod line;
pub mod lro;
pub mod polls;
pub mod resource_id;
pub mod secret;
pub mod throttle;

#[cfg(test)]
pub(crate) mod testutil;

pub use aci::{AciClient, ExecOutput, SessionLimits};
pub use aks::{
    AksClient, ClusterInfo, CommandId, CommandStatus, RunCommandAccepted, RunCommandResult,
};
pub use client::{
    ArmClient, ArmClientConfig, ArmObserver, ArmRequest, ArmResponse, CallContext, Fence,
};
pub use cloud::Cloud;
pub use credentials::{
    CredentialCache, CredentialConfig, CredentialFactory, CredentialSource, Principal,
};
pub use error::ArmError;
pub use hybrid::{HybridClient, KubeconfigRole};
pub use resource_id::{AksClusterId, ConnectedClusterId, ContainerGroupId};
pub use secret::Secret;

/// One kubeconfig from a list-credential call; `value_base64` is exactly what ARM sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeconfigCredential {
    pub name: String,
    pub value_base64: Secret,
}
