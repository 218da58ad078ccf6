//! `KubeconfigExport`: fetch a cluster's kubeconfig through ARM and keep it in a Secret in the
//! format its consumer needs, refreshed before it expires.
// Each kube `printcolumn(...)` repeats `type_ = …`; clippy mistakes that for a duplicated attribute.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    AKS_CLUSTER_ID_PATTERN, CONNECTED_CLUSTER_ID_PATTERN, CredentialRef, DNS_SUBDOMAIN_PATTERN,
};

/// Default of `spec.refreshInterval`.
pub const DEFAULT_REFRESH_INTERVAL: &str = "1h";
/// A duration such as `90s`, `30m`, `1h` or `1h30m`.
pub const DURATION_PATTERN: &str = "^([0-9]+(\\.[0-9]+)?(s|m|h))+$";

/// Which cluster's kubeconfig to export, how it should authenticate, the Secret to keep it in and
/// how often to fetch it again.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "kubeinvoke.io",
    version = "v1alpha1",
    kind = "KubeconfigExport",
    namespaced,
    status = "KubeconfigExportStatus",
    shortname = "kcx",
    category = "kubeinvoke",
    printcolumn(
        name = "Secret",
        type_ = "string",
        json_path = ".spec.secret.name",
        description = "Secret that holds the kubeconfig"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Whether the Secret holds a current kubeconfig"
    ),
    // `string`, not `date`: kubectl (and the 1.20 API server's table printer) render a `date`
    // column as an age, and a time in the future as `<invalid>`. The RFC 3339 value reads fine.
    printcolumn(
        name = "Expires",
        type_ = "string",
        json_path = ".status.expiresAt",
        description = "Earliest expiry of the exported credentials (RFC 3339), when known"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.reason",
        priority = 1,
        description = "Machine-readable reason of the current state"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp",
        description = "Time since the object was created"
    )
)]
#[kube(
    doc = "Keeps the kubeconfig of an AKS or AKS Arc cluster, fetched through Azure Resource Manager, in a Secret in the format its consumer needs (kubectl, Flux, Cluster API, Argo CD), refreshed before it expires."
)]
#[serde(rename_all = "camelCase")]
pub struct KubeconfigExportSpec {
    /// Where the kubeconfig comes from: exactly one of `hybrid` or `aks`.
    pub source: Source,

    /// `Passthrough` keeps the kubeconfig's users as ARM returned them; `Token` replaces a
    /// kubelogin exec user with a bearer token of the resolved Azure identity for the AKS AAD
    /// server application, refreshed before it expires.
    #[serde(default)]
    pub authentication: Authentication,

    /// The Secret to write.
    pub secret: SecretSpec,

    /// How often to fetch the kubeconfig again, as a duration such as `30m`, `1h` or `1h30m`; at
    /// least `1m` (a shorter one is refused with `reason: InvalidSpec`). Credentials that expire
    /// sooner are refreshed before they do, whatever this says.
    #[serde(default = "default_refresh_interval")]
    #[schemars(pattern(DURATION_PATTERN))]
    pub refresh_interval: String,

    /// Azure credentials: a Secret in this namespace. When absent, the Secret
    /// `kubeinvoke-credentials` in this namespace, else the operator's own identity (only in the
    /// namespaces the operator allows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_ref: Option<CredentialRef>,
}

fn default_refresh_interval() -> String {
    DEFAULT_REFRESH_INTERVAL.to_string()
}

/// Where the kubeconfig comes from: exactly one of `hybrid` or `aks`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    /// AKS enabled by Azure Arc (HybridContainerService `listUserKubeconfig` /
    /// `listAdminKubeconfig`, like `az aksarc get-credentials`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hybrid: Option<HybridSource>,
    /// AKS (`listClusterUserCredential` / `listClusterAdminCredential`, like `az aks get-credentials`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aks: Option<AksSource>,
}

/// An AKS Arc cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HybridSource {
    /// ARM resource ID of the connected cluster:
    /// `/subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.Kubernetes/connectedClusters/<name>`.
    #[schemars(pattern(CONNECTED_CLUSTER_ID_PATTERN))]
    pub connected_cluster_resource_id: String,
    /// `User` (Entra ID user kubeconfig) or `Admin` (static admin credentials).
    #[serde(default)]
    pub role: Role,
    /// HybridContainerService api-version: `2024-01-01` (default; the operation finishes through
    /// Azure-AsyncOperation) or `2026-04-01-preview` (finishes through Location).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["2024-01-01", "2026-04-01-preview"]))]
    pub api_version: Option<String>,
}

/// An AKS cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AksSource {
    /// ARM resource ID of the cluster:
    /// `/subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.ContainerService/managedClusters/<name>`.
    #[schemars(pattern(AKS_CLUSTER_ID_PATTERN))]
    pub resource_id: String,
    /// `User` (`listClusterUserCredential`) or `Admin` (`listClusterAdminCredential`).
    #[serde(default)]
    pub role: Role,
    /// Optional ARM `server-fqdn` query value, e.g. `public` for the public FQDN of a private cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub server_fqdn: Option<String>,
}

/// Which kubeconfig to fetch.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum Role {
    /// The user kubeconfig (Entra ID authentication on AAD clusters).
    #[default]
    User,
    /// The admin kubeconfig (static cluster-admin credentials).
    Admin,
}

/// How the exported kubeconfig authenticates.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum Authentication {
    /// Keep the users as ARM returned them (a kubelogin exec user stays an exec user).
    #[default]
    Passthrough,
    /// Replace a kubelogin exec user with a bearer token of the resolved identity.
    Token,
}

/// The Secret the kubeconfig is written to.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretSpec {
    /// Name of the Secret, in this namespace. The operator owns it; it never overwrites a Secret it
    /// does not own (`reason: SecretConflict`).
    #[schemars(length(min = 1, max = 253), pattern(DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
    /// Layout of the Secret for its consumer: `Kubeconfig` (kubectl), `Flux`, `ClusterAPI` or `ArgoCD`.
    #[serde(default)]
    pub format: SecretFormat,
    /// `Kubeconfig` format only: the data key; default `kubeconfig`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), pattern("^[-._a-zA-Z0-9]+$"))]
    pub key: Option<String>,
    /// Extra labels for the Secret. Keys under `kubeinvoke.io/` are the operator's own and refused
    /// (`InvalidSpec`); the format's own labels win over these. At most 32, values up to 63
    /// characters (as the API server allows).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 32, "additionalProperties" = {"type": "string", "maxLength": 63}))]
    pub labels: BTreeMap<String, String>,
    /// Extra annotations for the Secret. Keys under `kubeinvoke.io/` are refused as for labels. At
    /// most 32, values up to 4096 characters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 32, "additionalProperties" = {"type": "string", "maxLength": 4096}))]
    pub annotations: BTreeMap<String, String>,
}

/// Secret layouts.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum SecretFormat {
    /// Opaque Secret with the kubeconfig under `kubeconfig` (or `key`), for kubectl and most tools.
    #[default]
    Kubeconfig,
    /// Opaque Secret with a self-contained kubeconfig under `value`, for Flux `spec.kubeConfig.secretRef`.
    Flux,
    /// Secret of type `cluster.x-k8s.io/secret` with the kubeconfig under `value`, for Cluster API.
    #[serde(rename = "ClusterAPI")]
    #[schemars(rename = "ClusterAPI")]
    ClusterApi,
    /// Argo CD cluster Secret (`name`, `server`, `config`), labelled `argocd.argoproj.io/secret-type: cluster`.
    #[serde(rename = "ArgoCD")]
    #[schemars(rename = "ArgoCD")]
    ArgoCd,
}

/// What the operator observed of the export.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubeconfigExportStatus {
    /// The `metadata.generation` this status belongs to; differs from it until the operator has
    /// seen the latest spec (tools such as kstatus read that as in progress).
    #[serde(default)]
    pub observed_generation: i64,
    /// Name of the Secret that holds the kubeconfig.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// API server URL in the exported kubeconfig.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// Name of the kubeconfig in ARM's answer, e.g. `clusterUser` or `clusterAdmin` (when ARM
    /// returns several, the first is exported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_name: Option<String>,
    /// `sha256:<hex>` of the Secret's data; the Secret is written only when this changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
    /// When the kubeconfig was last fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_refresh_time: Option<Time>,
    /// When the kubeconfig will be fetched next: `refreshInterval` after the last fetch, or sooner,
    /// once 90% of the credentials' remaining lifetime has passed; after a failure, the retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_refresh_time: Option<Time>,
    /// When the exported credentials stop working: the earlier expiry of the client certificate
    /// and the bearer token; absent when neither expiry is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
    /// Machine-readable reason of the current state, PascalCase (e.g. `Exported`, `SecretConflict`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable explanation of the current state; never contains secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Standard conditions: `Ready`, `Reconciling` and `Stalled` (kstatus).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
