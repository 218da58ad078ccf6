//! Arc connected clusters in the world, each with its AKS Arc provisioned cluster: what GET and
//! the list operations show, and how its kubeconfig operation (an LRO) ends.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{KubeconfigFault, KubeconfigSpec};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectedCluster {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// ARM tags, shown by GET and the list operations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// True: a plain Arc-enabled cluster (no `kind`, distribution `generic`), not AKS enabled by
    /// Azure Arc; listings show it, a fleet of AKS Arc clusters must leave it out.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub plain: bool,
    /// `properties.kubernetesVersion` of the connected cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<String>,
    /// In-progress polls before the operation finishes (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lro_polls: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lro_error: Option<LroError>,
    #[serde(default)]
    pub kubeconfig: KubeconfigSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig_fault: Option<KubeconfigFault>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LroError {
    pub code: String,
    #[serde(default)]
    pub message: String,
}
