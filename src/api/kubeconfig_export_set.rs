//! `KubeconfigExportSet`: the kubeconfig of every AKS or AKS Arc cluster an ARM selector finds, as
//! one child KubeconfigExport per cluster, re-discovered on an interval. A cluster that appears
//! gets its export within one interval; one that is gone is let go only after several successful
//! listings in a row did not show it.
// Each kube `printcolumn(...)` repeats `type_ = …`; clippy mistakes that for a duplicated attribute.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::CredentialRef;
use super::kubeconfig_export::{
    Authentication, DEFAULT_REFRESH_INTERVAL, DURATION_PATTERN, Role, SecretFormat,
};
use super::remote_command_set::ArmSelector;

/// Default of `spec.discoveryInterval`.
pub const DEFAULT_DISCOVERY_INTERVAL: &str = "5m";
/// Default of `spec.pruneAfterAbsentListings`.
pub const DEFAULT_PRUNE_AFTER: i32 = 3;
/// Default of `spec.template.secret.namePattern`.
pub const DEFAULT_NAME_PATTERN: &str = "{name}-kubeconfig";
/// Most clusters one set holds.
pub const MAX_CLUSTERS: usize = 1000;
/// How many clusters `status.failedClusters` and `status.absentClusters` list at most.
pub const MAX_LISTED: usize = 20;

/// Which clusters, how their kubeconfigs are exported, and how often ARM is listed again.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "kubeinvoke.io",
    version = "v1alpha1",
    kind = "KubeconfigExportSet",
    namespaced,
    status = "KubeconfigExportSetStatus",
    shortname = "kcxset",
    category = "kubeinvoke",
    printcolumn(
        name = "Clusters",
        type_ = "integer",
        json_path = ".status.clusters",
        description = "Clusters whose kubeconfig the set exports"
    ),
    printcolumn(
        name = "Ready",
        type_ = "integer",
        json_path = ".status.ready",
        description = "Exports whose Secret holds a current kubeconfig"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.reason",
        description = "Machine-readable reason of the current state"
    ),
    printcolumn(
        name = "Discovered",
        type_ = "date",
        json_path = ".status.lastDiscoveryTime",
        description = "When ARM was last listed successfully"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp",
        description = "Time since the object was created"
    )
)]
#[kube(
    doc = "Keeps the kubeconfig of every AKS or AKS Arc cluster that Azure Resource Manager lists in the selector's scopes, as one KubeconfigExport (and its Secret) per cluster, re-discovered on an interval."
)]
#[serde(rename_all = "camelCase")]
pub struct KubeconfigExportSetSpec {
    /// The clusters: every one of `resourceType` ARM lists in these scopes whose tags match.
    pub selector: ClusterSelector,

    /// What each cluster's KubeconfigExport says, without its source.
    #[serde(default)]
    pub template: KubeconfigExportTemplate,

    /// How often ARM is listed again, as a duration such as `5m` or `1h`; at least `1m`.
    #[serde(default = "default_discovery_interval")]
    #[schemars(pattern(DURATION_PATTERN))]
    pub discovery_interval: String,

    /// A cluster's export (and Secret) is deleted once this many successful listings in a row did
    /// not show it (default 3). A failed listing, a 403, or a scope listed empty while the set
    /// holds clusters of it never counts.
    #[serde(default = "default_prune_after")]
    #[schemars(range(min = 1, max = 100))]
    pub prune_after_absent_listings: i32,
}

fn default_discovery_interval() -> String {
    DEFAULT_DISCOVERY_INTERVAL.to_string()
}

fn default_prune_after() -> i32 {
    DEFAULT_PRUNE_AFTER
}

/// The clusters of one type that ARM lists in the scopes and whose tags match.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSelector {
    /// `ManagedClusters` (AKS, default) or `ConnectedClusters` (AKS enabled by Azure Arc: the
    /// connected clusters of kind `ProvisionedCluster`).
    #[serde(default)]
    pub resource_type: ClusterType,
    /// Scopes and tag requirements, as a RemoteCommandSet's `targets.selector`.
    #[serde(flatten)]
    pub scope: ArmSelector,
}

/// The clusters a set exports.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ClusterType {
    /// `Microsoft.ContainerService/managedClusters`: AKS.
    #[default]
    ManagedClusters,
    /// `Microsoft.Kubernetes/connectedClusters` of kind `ProvisionedCluster`: AKS enabled by Azure Arc.
    ConnectedClusters,
}

/// A KubeconfigExport's spec without its source.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubeconfigExportTemplate {
    /// `User` (default) or `Admin`.
    #[serde(default)]
    pub role: Role,
    /// As a KubeconfigExport's `authentication`.
    #[serde(default)]
    pub authentication: Authentication,
    /// As a KubeconfigExport's `refreshInterval` (default `1h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(DURATION_PATTERN))]
    pub refresh_interval: Option<String>,
    /// AKS only: ARM's `server-fqdn` query value (as a KubeconfigExport's `source.aks.serverFqdn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub server_fqdn: Option<String>,
    /// AKS Arc only: the HybridContainerService api-version (as a KubeconfigExport's
    /// `source.hybrid.apiVersion`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["2024-01-01", "2026-04-01-preview"]))]
    pub api_version: Option<String>,
    /// Each cluster's Secret.
    #[serde(default)]
    pub secret: SecretTemplate,
    /// Azure credentials, for the listing and every export; default as a KubeconfigExport's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_ref: Option<CredentialRef>,
}

/// Each cluster's Secret: its name from a pattern, its layout, labels and annotations.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretTemplate {
    /// The Secret's name, with `{name}`, `{resourceGroup}` and `{subscription}` replaced by the
    /// cluster's; lower-cased, every character other than `a-z`, `0-9`, `-` and `.` becomes `-`.
    /// Default `{name}-kubeconfig`. Two clusters whose names come out the same: the first by
    /// resource ID gets it, the other is listed as `SecretConflict`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 200))]
    pub name_pattern: Option<String>,
    /// As a KubeconfigExport's `secret.format`.
    #[serde(default)]
    pub format: SecretFormat,
    /// As a KubeconfigExport's `secret.key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), pattern("^[-._a-zA-Z0-9]+$"))]
    pub key: Option<String>,
    /// As a KubeconfigExport's `secret.labels`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 32, "additionalProperties" = {"type": "string", "maxLength": 63}))]
    pub labels: BTreeMap<String, String>,
    /// As a KubeconfigExport's `secret.annotations`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 32, "additionalProperties" = {"type": "string", "maxLength": 4096}))]
    pub annotations: BTreeMap<String, String>,
}

/// What the set holds and when ARM was last listed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubeconfigExportSetStatus {
    /// The `metadata.generation` this status belongs to.
    #[serde(default)]
    pub observed_generation: i64,
    /// Clusters whose kubeconfig the set exports (one KubeconfigExport each).
    #[serde(default)]
    pub clusters: i32,
    /// Of those, the exports whose Secret holds a current kubeconfig.
    #[serde(default)]
    pub ready: i32,
    /// When ARM was last listed successfully (every scope).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_discovery_time: Option<Time>,
    /// When ARM will be listed next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_discovery_time: Option<Time>,
    /// Clusters still exported that recent successful listings did not show, with how many in a
    /// row; at `pruneAfterAbsentListings` their export is deleted. All of them (at most 1000).
    /// Always written, empty too: an emptied list must replace the one before it.
    #[serde(default)]
    pub absent_clusters: Vec<AbsentCluster>,
    /// The first 20 clusters whose export is not ready, with its reason. Always written, empty
    /// too.
    #[serde(default)]
    pub failed_clusters: Vec<FailedCluster>,
    /// Machine-readable reason of the current state, PascalCase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable explanation of the current state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `Ready`, `Reconciling`, `Stalled` (kstatus) and `Discovered` (the last listing succeeded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// A cluster the last successful listings did not show.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AbsentCluster {
    /// ARM resource ID of the cluster.
    pub resource_id: String,
    /// Successful listings in a row without it.
    pub listings: i32,
}

/// A cluster whose export is not ready.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailedCluster {
    /// ARM resource ID of the cluster.
    pub resource_id: String,
    /// Its KubeconfigExport (none when it could not have one, e.g. `SecretConflict`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<String>,
    /// Why: its export's reason, `SecretConflict` (another cluster has its Secret name) or
    /// `Conflict` (a KubeconfigExport of its name that the set does not control).
    pub reason: String,
}

/// `template.refreshInterval`, or a KubeconfigExport's default.
pub fn refresh_interval(template: &KubeconfigExportTemplate) -> String {
    template
        .refresh_interval
        .clone()
        .unwrap_or_else(|| DEFAULT_REFRESH_INTERVAL.to_string())
}
