//! Getting the kubeconfig through ARM (AKS list credential, AKS Arc list kubeconfig), parsing the
//! first one, and the exec-to-token swap of `authentication: Token`.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use tokio::time::Instant;

use crate::api::kubeconfig_export::{Authentication, KubeconfigExport, Role};
use crate::azure::aks::CredentialFormat;
use crate::azure::{
    AksClusterId, ArmError, CallContext, ConnectedClusterId, KubeconfigCredential, KubeconfigRole,
};
use crate::controllers::arm_errors;
use crate::controllers::context::Context;
use crate::controllers::reason::{Failure, Reason};
use crate::controllers::references::CredentialSource;
use crate::kubeconfig::{KubeconfigError, ParsedKubeconfig, SecretString, parse_credentials};

/// Budget of one fetch, LRO polling of AKS Arc included.
const FETCH_BUDGET: Duration = Duration::from_secs(120);

/// A parsed kubeconfig and the ARM name of its cluster.
pub struct Fetched {
    pub parsed: ParsedKubeconfig,
    pub cluster_name: String,
}

/// An ARM error as a status failure. A fetch that ran out of time is tried again later (the
/// shared mapping treats a timeout as the end of a one-shot run).
pub fn arm_failure(err: &ArmError) -> Failure {
    let failure = arm_errors::failure(err);
    match err {
        ArmError::Timeout { .. } => Failure::transient(Reason::Retrying, failure.message),
        _ => failure,
    }
}

/// A kubeconfig problem as a status failure (`InvalidKubeconfig` or `InvalidSpec`).
pub fn kubeconfig_failure(err: &KubeconfigError) -> Failure {
    let reason = match err.reason() {
        crate::kubeconfig::REASON_INVALID_SPEC => Reason::InvalidSpec,
        _ => Reason::InvalidKubeconfig,
    };
    Failure::terminal(reason, err.to_string())
}

fn role(role: Role) -> KubeconfigRole {
    match role {
        Role::User => KubeconfigRole::User,
        Role::Admin => KubeconfigRole::Admin,
    }
}

/// Fetches, parses and (with `authentication: Token`) swaps plugin users for a bearer token.
pub async fn fetch(
    ctx: &Context,
    kcx: &KubeconfigExport,
    credential: &CredentialSource,
) -> Result<Fetched, Failure> {
    let correlation_id = crate::controllers::reason::correlation_id(&[
        &kcx.uid().unwrap_or_default(),
        &kcx.metadata.generation.unwrap_or_default().to_string(),
    ]);
    let deadline = Instant::now() + FETCH_BUDGET;
    let source = &kcx.spec.source;
    let (call, credentials, cluster_name) = match (&source.hybrid, &source.aks) {
        (Some(hybrid), None) => {
            let id: ConnectedClusterId =
                hybrid.connected_cluster_resource_id.parse().map_err(|e| {
                    Failure::terminal(
                        Reason::InvalidSpec,
                        format!("spec.source.hybrid.connectedClusterResourceId: {e}"),
                    )
                })?;
            let call = ctx.azure.call_context(
                &kcx.namespace().unwrap_or_default(),
                credential,
                id.subscription_id(),
                correlation_id,
                deadline,
            )?;
            let creds = ctx
                .azure
                .hybrid
                .list_kubeconfig(&call, &id, role(hybrid.role), hybrid.api_version.as_deref())
                .await
                .map_err(|e| arm_failure(&e))?;
            (call, creds, id.name)
        }
        (None, Some(aks)) => {
            let id: AksClusterId = aks.resource_id.parse().map_err(|e| {
                Failure::terminal(
                    Reason::InvalidSpec,
                    format!("spec.source.aks.resourceId: {e}"),
                )
            })?;
            let call = ctx.azure.call_context(
                &kcx.namespace().unwrap_or_default(),
                credential,
                id.subscription_id(),
                correlation_id,
                deadline,
            )?;
            let fqdn = aks.server_fqdn.as_deref();
            let creds = match aks.role {
                // Always the kubelogin exec user for AAD clusters: the legacy `azure`
                // auth-provider no longer works on Kubernetes ≥ 1.26; non-AAD clusters ignore it.
                Role::User => {
                    ctx.azure
                        .aks
                        .list_cluster_user_credential(
                            &call,
                            &id,
                            fqdn,
                            Some(CredentialFormat::Exec),
                        )
                        .await
                }
                Role::Admin => {
                    ctx.azure
                        .aks
                        .list_cluster_admin_credential(&call, &id, fqdn)
                        .await
                }
            }
            .map_err(|e| arm_failure(&e))?;
            (call, creds, id.name)
        }
        _ => {
            return Err(Failure::terminal(
                Reason::InvalidSpec,
                "spec.source must set exactly one of hybrid or aks",
            ));
        }
    };
    let mut parsed = parse(&credentials)?;
    if kcx.spec.authentication == Authentication::Token
        && (parsed.has_exec_user() || parsed.has_auth_provider())
    {
        let (token, expires_at) = aad_token(ctx, &call).await?;
        parsed.swap_exec_for_token(&token, expires_at);
    }
    Ok(Fetched {
        parsed,
        cluster_name,
    })
}

fn parse(credentials: &[KubeconfigCredential]) -> Result<ParsedKubeconfig, Failure> {
    let values: Vec<(String, String)> = credentials
        .iter()
        .map(|c| (c.name.clone(), c.value_base64.expose().to_string()))
        .collect();
    parse_credentials(&values).map_err(|e| kubeconfig_failure(&e))
}

async fn aad_token(
    ctx: &Context,
    call: &CallContext,
) -> Result<(SecretString, Option<Timestamp>), Failure> {
    let (token, expires_at) = ctx
        .azure
        .aks_aad_token_with_expiry(call)
        .await
        .map_err(|e| arm_failure(&e))?;
    Ok((SecretString::new(token.expose()), expires_at))
}
