//! A fleet run's targets, resolved once when the run starts: the explicit resource IDs, then what
//! the selector finds through ARM's list operations, each target once. The selector lists with the
//! set's own credential, within its grant when that is the operator's identity.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kube::ResourceExt;
use tokio::time::Instant;

use crate::api::remote_command_set::{
    ArmSelector, FleetResourceType, MAX_TARGETS, RemoteCommandSet, TagOperator,
};
use crate::azure::discovery::{self, Listable};
use crate::azure::resource_id::{AksClusterId, ContainerGroupId};
use crate::controllers::arm_errors;
use crate::controllers::context::Context;
use crate::controllers::grants::Use;
use crate::controllers::reason::{Failure, Reason};

/// How long one discovery may take, every subscription's pages together.
const DISCOVERY_BUDGET: Duration = Duration::from_secs(120);

/// Whether a resource with `tags` is selected: every `matchTags` entry and every expression holds.
/// ARM tag names compare without regard to case, values exactly (Azure's tag documentation).
pub fn matches(selector: &ArmSelector, tags: &BTreeMap<String, String>) -> bool {
    let tag = |key: &str| {
        tags.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    };
    selector
        .match_tags
        .iter()
        .all(|(k, v)| tag(k) == Some(v.as_str()))
        && selector.match_expressions.iter().all(|e| {
            let value = tag(&e.key);
            match e.operator {
                TagOperator::In => value.is_some_and(|v| e.values.iter().any(|x| x == v)),
                TagOperator::NotIn => !value.is_some_and(|v| e.values.iter().any(|x| x == v)),
                TagOperator::Exists => value.is_some(),
                TagOperator::DoesNotExist => value.is_none(),
            }
        })
}

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
        for e in &selector.match_expressions {
            let takes_values = matches!(e.operator, TagOperator::In | TagOperator::NotIn);
            if takes_values == e.values.is_empty() {
                return invalid(format!(
                    "spec.targets.selector.matchExpressions: {:?} on tag {:?} {}",
                    e.operator,
                    e.key,
                    if takes_values {
                        "needs values"
                    } else {
                        "takes no values"
                    }
                ));
            }
        }
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
    let credential = ctx
        .credential(&namespace, set.spec.template.credential_ref.as_ref())
        .await?;
    let kind = listable(set.spec.targets.resource_type);
    let deadline = Instant::now() + DISCOVERY_BUDGET;
    let groups: Vec<Option<&str>> = if selector.resource_groups.is_empty() {
        vec![None]
    } else {
        selector
            .resource_groups
            .iter()
            .map(|g| Some(g.as_str()))
            .collect()
    };
    let mut found = Vec::new();
    for subscription in &selector.subscriptions {
        for group in &groups {
            let scope = match group {
                None => format!("/subscriptions/{subscription}"),
                Some(g) => format!("/subscriptions/{subscription}/resourceGroups/{g}"),
            };
            // The operator's identity lists only inside the namespace's grant: a selector cannot
            // reach a scope the grant excludes.
            credential.check_use(
                &namespace,
                Use {
                    resource_id: &scope,
                    admin_kubeconfig: false,
                    aad_token: false,
                    run_command: true,
                },
            )?;
            let correlation = crate::controllers::reason::correlation_id(&[
                &set.uid().unwrap_or_default(),
                &scope,
            ]);
            let call = ctx.azure.call_context(
                &namespace,
                &credential,
                subscription,
                correlation,
                deadline,
            )?;
            let listed = discovery::list(
                &ctx.azure.arm,
                &call,
                kind,
                subscription,
                *group,
                MAX_TARGETS,
            )
            .await
            .map_err(|e| arm_errors::failure(&e))?;
            found.extend(
                listed
                    .into_iter()
                    .filter(|r| matches(selector, r.tags.as_ref().unwrap_or(&BTreeMap::new())))
                    .filter_map(|r| canonical(set.spec.targets.resource_type, &r.id).ok()),
            );
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::remote_command_set::TagRequirement;

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn requirement(key: &str, operator: TagOperator, values: &[&str]) -> TagRequirement {
        TagRequirement {
            key: key.into(),
            operator,
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    #[test]
    fn tags_select_like_a_label_selector() {
        let selector = ArmSelector {
            match_tags: tags(&[("env", "prod")]),
            match_expressions: vec![
                requirement("tier", TagOperator::In, &["gold", "silver"]),
                requirement("frozen", TagOperator::DoesNotExist, &[]),
                requirement("owner", TagOperator::Exists, &[]),
                requirement("region", TagOperator::NotIn, &["cn"]),
            ],
            ..Default::default()
        };
        let good = tags(&[("Env", "prod"), ("tier", "gold"), ("owner", "x")]);
        assert!(matches(&selector, &good), "tag names ignore case");
        for (bad, why) in [
            (
                tags(&[("env", "Prod"), ("tier", "gold"), ("owner", "x")]),
                "values are exact",
            ),
            (
                tags(&[("env", "prod"), ("tier", "bronze"), ("owner", "x")]),
                "In",
            ),
            (
                tags(&[
                    ("env", "prod"),
                    ("tier", "gold"),
                    ("owner", "x"),
                    ("FROZEN", ""),
                ]),
                "DoesNotExist",
            ),
            (tags(&[("env", "prod"), ("tier", "gold")]), "Exists"),
            (
                tags(&[
                    ("env", "prod"),
                    ("tier", "gold"),
                    ("owner", "x"),
                    ("region", "cn"),
                ]),
                "NotIn",
            ),
        ] {
            assert!(!matches(&selector, &bad), "{why}");
        }
        assert!(
            matches(&ArmSelector::default(), &BTreeMap::new()),
            "no requirement"
        );
    }
}
