//! Managed clusters in the world: what AKS shows of them, how their run commands go (host process
//! or command pod, configured failures) and the states that refuse commands.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{KubeconfigFault, KubeconfigSpec};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManagedCluster {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// ARM tags, shown by GET and the list operations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub aad_managed: bool,
    #[serde(default)]
    pub disable_run_command: bool,
    #[serde(default)]
    pub disable_local_accounts: bool,
    #[serde(default)]
    pub private_cluster: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<String>,
    #[serde(default)]
    pub kubeconfig: KubeconfigSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig_fault: Option<KubeconfigFault>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_command_failure: Option<RunCommandFailure>,
    /// Minimum time (seconds, may be fractional) before a command's result becomes visible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_duration: Option<f64>,
    /// Extra environment for run commands (e.g. `KUBECONFIG` pointing at a local apiserver).
    /// Host-process commands only: a command pod gets its kubeconfig from `kubeconfig`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub command_env: BTreeMap<String, String>,
    /// Run commands in pods, as AKS does, on the Kubernetes that `kubeconfig` names (server, CA and
    /// admin token); absent: a host process (`sh -c`), for load tests and the emulator's own tests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_pod: Option<CommandPod>,
    /// Accept run commands (and run them) but answer 202 without a Location: an acceptance the
    /// client cannot follow.
    #[serde(default)]
    pub accept_without_location: bool,
    /// Hold each accepted run command's 202 this long (seconds) after the command started: a slow
    /// answer (ARM and AKS busy), during which a client may be paused or cut off although the
    /// command runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept_after_seconds: Option<f64>,
    /// `properties.powerState.code`; a stopped cluster refuses run commands.
    #[serde(default)]
    pub power_state: PowerState,
    /// Accept run commands without running them; every `commandResults` GET answers 404, as
    /// when the command pod never reached Running.
    #[serde(default)]
    pub results_not_found: bool,
    /// The tenant of an AAD-managed cluster (`properties.aadProfile.tenantID`), whose tokens its
    /// run commands' `clusterToken` must be; default: the subscription's tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aad_tenant_id: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PowerState {
    #[default]
    Running,
    Stopped,
}

/// How command pods are made. Defaults are AKS's: namespace `aks-command`, 30 s to start, requests
/// 200m CPU / 500Mi, limits 500m / 1Gi.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CommandPod {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_timeout_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_request: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_request: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_limit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit: Option<String>,
}

impl CommandPod {
    pub fn image(&self) -> String {
        self.image
            .clone()
            .unwrap_or_else(|| "localhost/kubeinvoke/aks-runner:1".into())
    }
    pub fn namespace(&self) -> String {
        self.namespace
            .clone()
            .unwrap_or_else(|| "aks-command".into())
    }
    pub fn start_timeout(&self) -> u64 {
        self.start_timeout_seconds.unwrap_or(30)
    }
    pub fn cpu_request(&self) -> String {
        self.cpu_request.clone().unwrap_or_else(|| "200m".into())
    }
    pub fn memory_request(&self) -> String {
        self.memory_request
            .clone()
            .unwrap_or_else(|| "500Mi".into())
    }
    pub fn cpu_limit(&self) -> String {
        self.cpu_limit.clone().unwrap_or_else(|| "500m".into())
    }
    pub fn memory_limit(&self) -> String {
        self.memory_limit.clone().unwrap_or_else(|| "1Gi".into())
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunCommandFailure {
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Fail only the first N attempts on this cluster; every attempt when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_first: Option<u32>,
    /// Fail the POST itself (HTTP 400 with `reason` as the ARM error code), as AKS answers a
    /// command pod that did not start in time; otherwise the failure is the command's result.
    #[serde(default)]
    pub on_post: bool,
    /// The command started, then failed: the result carries `startedAt` (never sent again by a
    /// careful client). Otherwise it reads as a command pod that did not start.
    #[serde(default)]
    pub started: bool,
    /// With `onPost`: the HTTP status of the POST's failure (default 400; e.g. 500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// With `onPost`: the POST blocks this long (seconds) before failing, as AKS waits about 30 s
    /// for the command pod first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_seconds: Option<f64>,
}

impl RunCommandFailure {
    pub(super) fn validate(&self) -> Result<(), String> {
        if self.status.is_some_and(|s| !(400..=599).contains(&s)) {
            return Err("runCommandFailure.status must be an HTTP error status (400-599)".into());
        }
        if self
            .block_seconds
            .is_some_and(|b| !b.is_finite() || b < 0.0)
        {
            return Err("runCommandFailure.blockSeconds must be >= 0".into());
        }
        Ok(())
    }
}
