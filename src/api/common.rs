//! Types and schema patterns shared by both kinds.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

// Resource-ID patterns are ARM knowledge; the Azure layer owns them and tests them against its
// own parser with one table, so the API server and the operator accept the same IDs.
pub use crate::azure::resource_id::{
    AKS_CLUSTER_ID_PATTERN, CONNECTED_CLUSTER_ID_PATTERN, CONTAINER_GROUP_ID_PATTERN,
    CONTAINER_NAME_PATTERN,
};

/// A Kubernetes object name (DNS-1123 subdomain).
pub const DNS_SUBDOMAIN_PATTERN: &str =
    "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// A relative file path: no leading `/`, no empty, `.` or `..` segment.
pub const RELATIVE_PATH_PATTERN: &str =
    "^(?:[^/.][^/]*|\\.[^/.][^/]*|\\.\\.[^/]+)(?:/(?:[^/.][^/]*|\\.[^/.][^/]*|\\.\\.[^/]+))*$";

/// Where the Azure credentials of a resource come from.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialRef {
    /// Name of a Secret in this resource's own namespace with the keys `AZURE_TENANT_ID`,
    /// `AZURE_CLIENT_ID`, exactly one of `AZURE_CLIENT_SECRET` or `AZURE_SERVICE_ACCOUNT` (workload
    /// identity federation with a token of that ServiceAccount of this namespace, once its owner
    /// lent it with the annotation `azure.workload.identity/client-id`; never the operator's own),
    /// and optionally `AZURE_SUBSCRIPTION_ID` (restricts the credential to that subscription). There is no namespace field, on purpose: a resource
    /// can never use another namespace's credentials.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
}

/// Phase of the run: `Pending` (accepted, not dispatched yet), `Running` (dispatched, result not
/// known yet), then `Succeeded` or `Failed` (`reason` says why), which are final for the run but
/// for one case: a run failed as `DispatchInterrupted` turns `Running` again when the replica that
/// sent it records ARM's late answer (a `LateAnswer` Event), and is then followed to its result.
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
