//! AKS Arc (Microsoft.HybridContainerService): kubeconfigs of a provisioned cluster, a long-running POST.

use reqwest::Method;
use serde::Deserialize;

use super::KubeconfigCredential;
use super::aks::{CredentialEntry, into_kubeconfigs};
use super::client::{ArmClient, ArmRequest, CallContext, Target, expect_json};
use super::error::ArmError;
use super::lro::{self, LroConfig, OperationState, operation_state, poll_until_done};
use super::resource_id::ConnectedClusterId;

/// Latest stable; its final state comes via Azure-AsyncOperation. `2026-04-01-preview` uses Location.
pub const DEFAULT_API_VERSION: &str = "2024-01-01";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KubeconfigRole {
    User,
    Admin,
}

#[derive(Debug, Clone)]
pub struct HybridClient {
    arm: ArmClient,
    api_version: String,
    lro: LroConfig,
}

/// `ListCredentialResponse`: an operation-status document that carries the kubeconfigs.
#[derive(Deserialize)]
struct ListCredentialResponse {
    status: Option<String>,
    error: Option<ErrorInfo>,
    properties: Option<CredentialProperties>,
}

#[derive(Deserialize)]
struct ErrorInfo {
    code: Option<String>,
    message: Option<String>,
}

#[derive(Deserialize)]
struct CredentialProperties {
    #[serde(default)]
    kubeconfigs: Vec<CredentialEntry>,
}

/// The action path under the connected cluster; `id` renders with a leading slash, so no `//`.
pub fn list_kubeconfig_path(id: &ConnectedClusterId, role: KubeconfigRole) -> String {
    let action = match role {
        KubeconfigRole::User => "listUserKubeconfig",
        KubeconfigRole::Admin => "listAdminKubeconfig",
    };
    format!(
        "{id}/providers/Microsoft.HybridContainerService/provisionedClusterInstances/default/{action}"
    )
}

impl HybridClient {
    pub fn new(arm: ArmClient, api_version: Option<String>, lro: LroConfig) -> Self {
        Self {
            arm,
            api_version: api_version.unwrap_or_else(|| DEFAULT_API_VERSION.to_string()),
            lro,
        }
    }

    /// Starts the list operation and polls it to the end (within `ctx.deadline`).
    /// Values stay base64; a `Failed` operation becomes [`ArmError::OperationFailed`].
    pub async fn list_kubeconfig(
        &self,
        ctx: &CallContext,
        id: &ConnectedClusterId,
        role: KubeconfigRole,
        api_version: Option<&str>,
    ) -> Result<Vec<KubeconfigCredential>, ArmError> {
        let op = match role {
            KubeconfigRole::User => "ProvisionedClusterInstances_ListUserKubeconfig",
            KubeconfigRole::Admin => "ProvisionedClusterInstances_ListAdminKubeconfig",
        };
        let version = api_version.unwrap_or(&self.api_version);
        let accepted = self
            .arm
            .send(
                ctx,
                ArmRequest::path(op, Method::POST, list_kubeconfig_path(id, role), version),
            )
            .await?;
        let location = lro::location(&accepted.headers, &accepted.url)
            .map_err(|m| ArmError::invalid_response(op, m))?;
        let done = poll_until_done(&self.arm, ctx, op, accepted, &self.lro).await?;
        let mut body: ListCredentialResponse = expect_json(&done, op)?;
        // A status document without the result: the result is at Location (final-state-via location).
        if body.properties.is_none()
            && body.status.as_deref().map(operation_state) == Some(OperationState::Succeeded)
            && let Some(location) = location.filter(|l| *l != done.url)
        {
            let result = self
                .arm
                .send(ctx, ArmRequest::new(op, Method::GET, Target::Url(location)))
                .await?;
            body = expect_json(&result, op)?;
        }
        if let Some(status) = body.status {
            match operation_state(&status) {
                OperationState::Succeeded => {}
                OperationState::Failed | OperationState::Canceled => {
                    let (code, message) = body
                        .error
                        .map(|e| (e.code, e.message.unwrap_or_default()))
                        .unwrap_or_default();
                    return Err(ArmError::OperationFailed {
                        operation: op,
                        status,
                        code,
                        message,
                    });
                }
                OperationState::Running => {
                    return Err(ArmError::invalid_response(
                        op,
                        format!("final response has status '{status}'"),
                    ));
                }
            }
        }
        let properties = body
            .properties
            .ok_or_else(|| ArmError::invalid_response(op, "final response without 'properties'"))?;
        let kubeconfigs = into_kubeconfigs(properties.kubeconfigs, op)?;
        if kubeconfigs.is_empty() {
            return Err(ArmError::invalid_response(
                op,
                "no kubeconfig in the response",
            ));
        }
        Ok(kubeconfigs)
    }
}

#[cfg(test)]
#[path = "hybrid_tests.rs"]
mod tests;
