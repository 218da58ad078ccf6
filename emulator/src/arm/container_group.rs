//! Microsoft.ContainerInstance/containerGroups/{name}: the group's GET (what `az container exec`
//! reads first) and its state as exec sees it.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::path::RgScope;
use super::{Ctx, arm_error};
use crate::world::{ContainerGroup, ContainerGroupState, OsType};

fn state_name(s: ContainerGroupState) -> &'static str {
    match s {
        ContainerGroupState::Running => "Running",
        ContainerGroupState::Stopped => "Stopped",
        ContainerGroupState::Pending => "Pending",
        ContainerGroupState::Succeeded => "Succeeded",
        ContainerGroupState::Failed => "Failed",
    }
}

/// `GET …/containerGroups/{name}` in the shape of the ACI swagger's `ContainerGroup`
/// (stable/2025-09-01/containerInstance.json, example ContainerGroupsGet_Succeeded.json):
/// `properties.containers[].{name, properties}`, `osType`, `provisioningState`,
/// `instanceView.state`.
pub fn get(ctx: &Ctx, scope: &RgScope, cg: &ContainerGroup) -> Response {
    axum::Json(body(ctx, scope, cg, true)).into_response()
}

/// The group as GET shows it (`instance_view`) or as a list item: a list answers the swagger's
/// `ListResultContainerGroup`, the group without `instanceView` (example
/// stable/2025-09-01/examples/ContainerGroupsList.json has none).
pub fn body(
    ctx: &Ctx,
    scope: &RgScope,
    cg: &ContainerGroup,
    instance_view: bool,
) -> serde_json::Value {
    let location = ctx
        .world
        .resource_group(&scope.sub, &scope.rg)
        .map(|g| g.location.clone())
        .unwrap_or_else(|| "westeurope".into());
    let containers: Vec<_> = cg
        .containers
        .iter()
        .map(|c| {
            json!({"name": c.name, "properties": {
                "image": "mcr.microsoft.com/azuredocs/aci-helloworld",
                "command": [],
                "environmentVariables": [],
                "resources": {"requests": {"cpu": 1.0, "memoryInGB": 1.5}},
            }})
        })
        .collect();
    let mut body = json!({
        "id": format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.ContainerInstance/containerGroups/{}",
            scope.sub, scope.rg, cg.name
        ),
        "name": cg.name,
        "type": "Microsoft.ContainerInstance/containerGroups",
        "location": location,
        "properties": {
            "provisioningState": "Succeeded",
            "containers": containers,
            "restartPolicy": "Always",
            "osType": match cg.os_type {
                OsType::Linux => "Linux",
                OsType::Windows => "Windows",
            },
        },
    });
    if instance_view {
        body["properties"]["instanceView"] = json!({"events": [], "state": state_name(cg.state)});
    }
    if !cg.tags.is_empty() {
        body["tags"] = json!(cg.tags);
    }
    body
}

/// Exec needs a running group. What ACI answers otherwise is not documented: the emulator says
/// 409, `ContainerGroupStopped` with azure-cli #8136's wording for a stopped group ("Container
/// Group '…' in resource group '…' is stopped", seen there on restart), and
/// `ContainerGroupNotRunning` for the other states.
pub fn require_running(cg: &ContainerGroup, rg: &str) -> Result<(), Response> {
    let (code, message) = match cg.state {
        ContainerGroupState::Running => return Ok(()),
        ContainerGroupState::Stopped => (
            "ContainerGroupStopped",
            format!(
                "Container Group '{}' in resource group '{rg}' is stopped.",
                cg.name
            ),
        ),
        other => (
            "ContainerGroupNotRunning",
            format!(
                "Container Group '{}' in resource group '{rg}' is not running (its state is '{}').",
                cg.name,
                state_name(other)
            ),
        ),
    };
    Err(arm_error(StatusCode::CONFLICT, code, message))
}
