//! Azure Resource Manager and Entra ID: everything the operator needs from Azure, nothing of Kubernetes.
//!
//! `client` sends ARM requests (auth, throttling, retries), `lro` polls long-running operations, and
//! `aks`, `aci` and `hybrid` are the three resource-provider APIs the controllers call.

pub mod aci;
pub mod aci_output;
pub mod aks;
pub mod client;
pub mod cloud;
pub mod credentials;
pub mod error;
pub mod hybrid;
pub mod lro;
pub mod resource_id;
pub mod secret;
pub mod throttle;

#[cfg(test)]
pub(crate) mod testutil;

pub use client::{ArmClient, ArmClientConfig, ArmRequest, ArmResponse, CallContext};
pub use cloud::Cloud;
pub use credentials::{
    CredentialCache, CredentialConfig, CredentialFactory, CredentialSource, Principal,
};
pub use error::ArmError;
pub use resource_id::{AksClusterId, ConnectedClusterId, ContainerGroupId};
pub use secret::Secret;

/// One kubeconfig from a list-credential call; `value_base64` is exactly what ARM sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeconfigCredential {
    pub name: String,
    pub value_base64: Secret,
}
