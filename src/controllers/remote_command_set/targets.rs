//! A fleet run's targets, resolved once when the run starts: the explicit resource IDs, then what
//! the selector finds through ARM's list operations, each target once. The selector lists with the
//! set's own credential, within its grant when that is the operator's identity.

use std::collections::BTreeSet;

use kube::ResourceExt;

use crate::api::remote_command_set::{
    ArmSelector, FleetResourceType, MAX_TARGETS, RemoteCommandSet,
};
use crate::azure::discovery::{self, Listable};
use crate::azure::resource_id::{AksClusterId, ContainerGroupId};
use crate::controllers::context::Context;
use crate::controllers::grants::Use;
use crate::controllers::reason::{Failure, Reason};
use crate::controllers::selector as select;

/// What the schema cannot say about a set's spec (Kubernetes 1.20 has no CEL rules).
pub fn validate(set: &RemoteCommandSet) -> Result<(), Failure> {
    let spec = &set.spec;
    let invalid = |m: String| Err(Failure::terminal(Reason::InvalidSpec, m));
    if spec.targets.resource_ids.is_empty() && spec.targets.selector.is_none() {
        return invalid("spec.targets needs resourceIds, a selector, or both".into());
    }
    let groups = spec.targets.resource_type == FleetResourceType::ContainerGroups;
    if groups && spec.template.container.is_none() {
        return invalid("spec.template.container is required for ContainerGroups".into());
    }
    if !groups && (spec.template.container.is_some() || spec.template.shell.is_some()) {
        return invalid("spec.template.container and shell are for ContainerGroups only".into());
    }
    if let Some(selector) = &spec.targets.selector {
        select::validate(selector, "spec.targets.selector")?;
    }
    Ok(())
}

/// The run's targets, in launch order: the explicit IDs as given, then the discovered ones
/// sorted; each once (ARM IDs compare without regard to case). More than [`MAX_TARGETS`] is
/// `InvalidSpec`.
pub async fn resolve(set: &RemoteCommandSet, ctx: &Context) -> Result<Vec<String>, Failure> {
    let spec = &set.spec;
    let mut targets = Vec::new();
    for (i, id) in spec.targets.resource_ids.iter().enumerate() {
        targets.push(canonical(spec.targets.resource_type, id).map_err(|e| {
            Failure::terminal(
                Reason::InvalidSpec,
                format!("spec.targets.resourceIds[{i}]: {e}"),
            )
        })?);
    }
    if let Some(selector) = &spec.targets.selector {
        let mut found = discover(set, selector, ctx).await?;
        found.sort_by_key(|id| id.to_ascii_lowercase());
        targets.extend(found);
    }
    let mut seen = BTreeSet::new();
    targets.retain(|id| seen.insert(id.to_ascii_lowercase()));
    if targets.len() > MAX_TARGETS {
        return Err(Failure::terminal(
            Reason::InvalidSpec,
            format!(
                "{} targets; a run has at most {MAX_TARGETS} (narrow the selector or split the fleet)",
                targets.len()
            ),
        ));
    }
    Ok(targets)
}

fn canonical(kind: FleetResourceType, id: &str) -> Result<String, String> {
    match kind {
        FleetResourceType::ManagedClusters => id
            .parse::<AksClusterId>()
            .map(|id| id.to_string())
            .map_err(|e| e.to_string()),
        FleetResourceType::ContainerGroups => id
            .parse::<ContainerGroupId>()
            .map(|id| id.to_string())
            .map_err(|e| e.to_string()),
    }
}

fn listable(kind: FleetResourceType) -> Listable {
    match kind {
        FleetResourceType::ManagedClusters => discovery::MANAGED_CLUSTERS,
        FleetResourceType::ContainerGroups => discovery::CONTAINER_GROUPS,
    }
}

/// Lists every scope of the selector with the set's credential and keeps the matching resources.
async fn discover(
    set: &RemoteCommandSet,
    selector: &ArmSelector,
    ctx: &Context,
) -> Result<Vec<String>, Failure> {
    let namespace = set.namespace().unwrap_or_default();
    let uid = set.uid().unwrap_or_default();
    let who = select::Lister {
        namespace: &namespace,
        credential_ref: set.spec.template.credential_ref.as_ref(),
        wanted: Use {
            resource_id: "",
            admin_kubeconfig: false,
            aad_token: false,
            run_command: true,
        },
        seed: &uid,
    };
    let kind = listable(set.spec.targets.resource_type);
    let scopes = select::list(ctx, &who, selector, kind, MAX_TARGETS).await?;
    Ok(scopes
        .into_iter()
        .flat_map(|s| s.selected)
        .filter_map(|r| canonical(set.spec.targets.resource_type, &r.id).ok())
        .collect())
}
