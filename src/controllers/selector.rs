//! Selecting Azure resources through ARM, shared by the fleet kinds: list every scope of an
//! [`ArmSelector`] (each subscription, or each of its resource groups) with the resource's own
//! credential, and keep what the tags select. With the operator's identity, a scope outside the
//! namespace's grant is refused before any request: a selector cannot reach it.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::api::CredentialRef;
use crate::api::remote_command_set::{ArmSelector, TagOperator};
use crate::azure::discovery::{self, Listable, Listed};
use crate::controllers::arm_errors;
use crate::controllers::context::Context;
use crate::controllers::grants::Use;
use crate::controllers::reason::{Failure, Reason};

/// How long one discovery may take, every scope's pages together.
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

/// What the schema cannot say (Kubernetes 1.20 has no CEL rules): `In` and `NotIn` take values,
/// `Exists` and `DoesNotExist` none. `field` is the selector's path, for the message.
pub fn validate(selector: &ArmSelector, field: &str) -> Result<(), Failure> {
    for e in &selector.match_expressions {
        let takes_values = matches!(e.operator, TagOperator::In | TagOperator::NotIn);
        if takes_values == e.values.is_empty() {
            return Err(Failure::terminal(
                Reason::InvalidSpec,
                format!(
                    "{field}.matchExpressions: {:?} on tag {:?} {}",
                    e.operator,
                    e.key,
                    if takes_values {
                        "needs values"
                    } else {
                        "takes no values"
                    }
                ),
            ));
        }
    }
    Ok(())
}

/// One listed scope: `/subscriptions/<s>` or `/subscriptions/<s>/resourceGroups/<g>`.
#[derive(Debug, Clone)]
pub struct Scope {
    pub scope: String,
    /// How many resources ARM listed there, selected or not.
    pub listed: usize,
    /// Those the tags select.
    pub selected: Vec<Listed>,
}

/// Who lists, and for what.
pub struct Lister<'a> {
    pub namespace: &'a str,
    pub credential_ref: Option<&'a CredentialRef>,
    /// What the operator's identity must be granted for (its `resource_id` is each scope).
    pub wanted: Use<'static>,
    /// Seed of each listing's correlation id (the object's uid).
    pub seed: &'a str,
}

/// Lists every scope of `selector`; the first scope that fails fails the whole discovery (a
/// partial listing must never read as "these resources are gone").
pub async fn list(
    ctx: &Context,
    who: &Lister<'_>,
    selector: &ArmSelector,
    kind: Listable,
    max_items: usize,
) -> Result<Vec<Scope>, Failure> {
    let credential = ctx.credential(who.namespace, who.credential_ref).await?;
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
    let mut scopes = Vec::new();
    for subscription in &selector.subscriptions {
        for group in &groups {
            let scope = match group {
                None => format!("/subscriptions/{subscription}"),
                Some(g) => format!("/subscriptions/{subscription}/resourceGroups/{g}"),
            };
            credential.check_use(
                who.namespace,
                Use {
                    resource_id: &scope,
                    ..who.wanted
                },
            )?;
            let correlation = crate::controllers::reason::correlation_id(&[who.seed, &scope]);
            let call = ctx.azure.call_context(
                who.namespace,
                &credential,
                subscription,
                correlation,
                deadline,
            )?;
            let listed =
                discovery::list(&ctx.azure.arm, &call, kind, subscription, *group, max_items)
                    .await
                    .map_err(|e| arm_errors::failure(&e))?;
            let count = listed.len();
            let selected = listed
                .into_iter()
                .filter(|r| kind.selects_kind(r.kind.as_deref()))
                .filter(|r| matches(selector, r.tags.as_ref().unwrap_or(&BTreeMap::new())))
                .collect();
            scopes.push(Scope {
                scope,
                listed: count,
                selected,
            });
        }
    }
    Ok(scopes)
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

    #[test]
    fn expressions_take_values_as_their_operator_says() {
        let with = |e| ArmSelector {
            match_expressions: vec![e],
            ..Default::default()
        };
        assert!(validate(&with(requirement("a", TagOperator::In, &["x"])), "s").is_ok());
        assert!(validate(&with(requirement("a", TagOperator::Exists, &[])), "s").is_ok());
        let err = validate(&with(requirement("a", TagOperator::NotIn, &[])), "spec.x").unwrap_err();
        assert_eq!(err.reason, Reason::InvalidSpec);
        assert!(
            err.message.contains("spec.x.matchExpressions"),
            "{}",
            err.message
        );
        assert!(
            validate(
                &with(requirement("a", TagOperator::DoesNotExist, &["x"])),
                "s"
            )
            .is_err()
        );
    }
}
