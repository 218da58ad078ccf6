//! Microsoft.Kubernetes/connectedClusters/{name}: the Arc connected cluster as GET and the list
//! operations show it. Every connected cluster of the world has an AKS Arc provisioned cluster
//! (its `provisionedClusterInstances/default` serves the kubeconfigs), so each is of kind
//! `ProvisionedCluster`.

use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Ctx;
use super::path::RgScope;
use crate::world::ConnectedCluster;

/// The shape of the 2024-01-01 swagger's examples (SPECS: specification/hybridkubernetes/
/// resource-manager/Microsoft.Kubernetes/HybridKubernetes/stable/2024-01-01/examples/
/// GetProvisionedClusterExample.json, GetClustersBySubscriptionExample.json): `kind:
/// ProvisionedCluster` marks an AKS Arc cluster; the agent's certificate is a placeholder.
pub fn body(ctx: &Ctx, scope: &RgScope, cc: &ConnectedCluster) -> Value {
    let location = cc.location.clone().unwrap_or_else(|| {
        ctx.world
            .resource_group(&scope.sub, &scope.rg)
            .map(|g| g.location.clone())
            .unwrap_or_else(|| "westeurope".into())
    });
    let tenant = ctx
        .world
        .subscription(&scope.sub)
        .map(|s| ctx.world.subscription_tenant(s))
        .unwrap_or_default();
    let id = format!(
        "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Kubernetes/connectedClusters/{}",
        scope.sub, scope.rg, cc.name
    );
    let distribution = if cc.plain { "generic" } else { "AKS" };
    let mut body = json!({
        "id": id,
        "name": cc.name,
        "type": "Microsoft.Kubernetes/connectedClusters",
        "location": location,
        "tags": cc.tags,
        "identity": {
            "type": "SystemAssigned",
            "principalId": crate::world::derived_object_id(&id),
            "tenantId": tenant,
        },
        "properties": {
            "agentPublicKeyCertificate": "",
            "kubernetesVersion": cc.kubernetes_version.clone().unwrap_or_else(|| "1.33.2".into()),
            "totalNodeCount": 1,
            "agentVersion": "1.21.10",
            "provisioningState": "Succeeded",
            "connectivityStatus": "Connected",
            "distribution": distribution,
            "privateLinkState": "Disabled",
            "azureHybridBenefit": "NotApplicable",
        },
    });
    // A plain Arc-enabled cluster has no `kind`.
    if !cc.plain {
        body["kind"] = json!("ProvisionedCluster");
    }
    body
}

pub fn get(ctx: &Ctx, scope: &RgScope, cc: &ConnectedCluster) -> Response {
    axum::Json(body(ctx, scope, cc)).into_response()
}
