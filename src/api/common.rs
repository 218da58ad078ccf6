//! Types and schema patterns shared by both kinds.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A subscription ID is a GUID.
#[cfg(test)]
const SUBSCRIPTION: &str =
    "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}";
#[cfg(test)]
/// ARM resource group names: 1-90 of letters, digits, `-_.()`, not ending in a period.
const RESOURCE_GROUP: &str = "[-\\w.()]{0,89}[-\\w()]";

/// Builds an anchored pattern for a resource ID of `provider/type` whose name matches `name`.
/// ARM matches segment names case-insensitively, so the fixed segments do too.
macro_rules! arm_id_pattern {
    ($provider_type:literal, $name:literal) => {
        concat!(
            "^/(?i:subscriptions)/",
            "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
            "/(?i:resourceGroups)/[-\\w.()]{0,89}[-\\w()]/(?i:providers)/(?i:",
            $provider_type,
            ")/",
            $name,
            "$"
        )
    };
}

/// `…/Microsoft.ContainerService/managedClusters/<name>`; AKS names are 1-63 characters.
pub const AKS_CLUSTER_ID_PATTERN: &str = arm_id_pattern!(
    "Microsoft\\.ContainerService/managedClusters",
    "[a-zA-Z0-9](?:[-_a-zA-Z0-9]{0,61}[a-zA-Z0-9])?"
);
/// `…/Microsoft.ContainerInstance/containerGroups/<name>`; lower-case letters, digits and hyphens.
pub const CONTAINER_GROUP_ID_PATTERN: &str = arm_id_pattern!(
    "Microsoft\\.ContainerInstance/containerGroups",
    "[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"
);
/// `…/Microsoft.Kubernetes/connectedClusters/<name>` (an Arc-connected cluster, AKS Arc included).
pub const CONNECTED_CLUSTER_ID_PATTERN: &str = arm_id_pattern!(
    "Microsoft\\.Kubernetes/connectedClusters",
    "[a-zA-Z0-9](?:[-_.a-zA-Z0-9]{0,61}[a-zA-Z0-9])?"
);
/// A Kubernetes object name (DNS-1123 subdomain).
pub const DNS_SUBDOMAIN_PATTERN: &str =
    "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// A relative file path: no leading `/`, no empty, `.` or `..` segment.
pub const RELATIVE_PATH_PATTERN: &str =
    "^(?:[^/.][^/]*|\\.[^/.][^/]*|\\.\\.[^/]+)(?:/(?:[^/.][^/]*|\\.[^/.][^/]*|\\.\\.[^/]+))*$";

// The pieces above are spelled out again inside the macro (concat! needs literals); keep them equal.
#[cfg(test)]
#[test]
fn patterns_use_the_shared_pieces() {
    for p in [
        AKS_CLUSTER_ID_PATTERN,
        CONTAINER_GROUP_ID_PATTERN,
        CONNECTED_CLUSTER_ID_PATTERN,
    ] {
        assert!(p.contains(SUBSCRIPTION), "{p}");
        assert!(p.contains(RESOURCE_GROUP), "{p}");
    }
}

/// Where the Azure credentials of a resource come from.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialRef {
    /// Name of a Secret in this resource's own namespace with the keys `AZURE_TENANT_ID`,
    /// `AZURE_CLIENT_ID` and optionally `AZURE_CLIENT_SECRET` (without it: workload identity
    /// federation with the operator's service-account token) and `AZURE_SUBSCRIPTION_ID` (restricts
    /// the credential to that subscription). There is no namespace field, on purpose: a resource
    /// can never use another namespace's credentials.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
}

/// Lifecycle phase of a RemoteCommand run.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    /// Accepted by the operator, not yet dispatched.
    #[default]
    Pending,
    /// Dispatched to Azure (or about to be); the result is not known yet.
    Running,
    /// Finished; for ACI without a shell this means the session ended (`reason: ExitCodeUnavailable`).
    Succeeded,
    /// Finished without success; `reason` says why.
    Failed,
}

impl Phase {
    /// Succeeded and Failed never change again for the same run.
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed)
    }
}
