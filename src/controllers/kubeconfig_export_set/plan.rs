//! What a KubeconfigExportSet holds after a listing: which clusters keep or get an export, which
//! are counted absent, which are let go, and each one's Secret name. Pure; the reconcile does the
//! I/O. A cluster is let go only after `pruneAfterAbsentListings` successful listings in a row did
//! not show it; a failed listing changes nothing, and a scope listed empty while the set holds
//! clusters of it does not count for them (ARM lists nothing, not 403, once an identity lost its
//! access to the resource groups inside a subscription).

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

use crate::api::kubeconfig_export_set::{AbsentCluster, DEFAULT_NAME_PATTERN};

/// The KubeconfigExport of cluster `id` in set `set`: the same name every time, unique per set and
/// cluster (IDs compare without regard to case), short enough for a Secret name to be derived.
pub fn child_name(set: &str, id: &str) -> String {
    let digest = Sha256::digest(format!("{set}\n{}", id.to_ascii_lowercase()).as_bytes());
    let hex: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
    let prefix: String = set.chars().take(200).collect();
    let prefix = prefix.trim_end_matches(['-', '.']);
    format!("{prefix}-{hex}")
}

/// What a listing found: the selected clusters, and the scopes ARM listed empty.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub selected: Vec<String>,
    pub empty_scopes: Vec<String>,
}

/// What the set holds next.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Membership {
    /// Clusters that keep or get an export, sorted by lower-cased ID.
    pub hold: Vec<String>,
    /// Held clusters the last successful listings did not show, with how many in a row.
    pub absent: Vec<AbsentCluster>,
    /// Clusters whose export is deleted now.
    pub prune: Vec<String>,
    /// Held clusters kept only because their scope was listed empty.
    pub unconfirmed: Vec<String>,
}

/// The set's members after `listing` (`None`: the listing failed), from the clusters `held` now
/// and the counts of `absent` before.
pub fn membership(
    held: &[String],
    listing: Option<&Listing>,
    absent: &[AbsentCluster],
    prune_after: i32,
) -> Membership {
    let key = |id: &str| id.to_ascii_lowercase();
    let Some(listing) = listing else {
        let mut hold = held.to_vec();
        hold.sort_by_key(|id| key(id));
        return Membership {
            hold,
            absent: absent.to_vec(),
            ..Default::default()
        };
    };
    let before: BTreeMap<String, i32> = absent
        .iter()
        .map(|a| (key(&a.resource_id), a.listings))
        .collect();
    let mut hold: BTreeMap<String, String> = listing
        .selected
        .iter()
        .map(|id| (key(id), id.clone()))
        .collect();
    let mut next = Membership::default();
    for id in held {
        let k = key(id);
        if hold.contains_key(&k) {
            continue;
        }
        if listing.empty_scopes.iter().any(|s| within(&k, s)) {
            next.unconfirmed.push(id.clone());
            if let Some(&n) = before.get(&k) {
                next.absent.push(AbsentCluster {
                    resource_id: id.clone(),
                    listings: n,
                });
            }
            hold.insert(k, id.clone());
            continue;
        }
        let listings = before.get(&k).copied().unwrap_or(0) + 1;
        if listings >= prune_after {
            next.prune.push(id.clone());
        } else {
            next.absent.push(AbsentCluster {
                resource_id: id.clone(),
                listings,
            });
            hold.insert(k, id.clone());
        }
    }
    next.hold = hold.into_values().collect();
    next.absent.sort_by_key(|a| key(&a.resource_id));
    next
}

/// Whether lower-cased `id` lies in `scope` (`/subscriptions/<s>[/resourceGroups/<g>]`).
fn within(id: &str, scope: &str) -> bool {
    id.strip_prefix(&scope.to_ascii_lowercase())
        .is_some_and(|rest| rest.starts_with('/'))
}

/// The Secret name of each cluster of `hold`, from `pattern`: the clusters already held (by their
/// export) keep theirs, then the others in ID order; a cluster whose name is taken gets `Err` with
/// the cluster that has it.
pub fn secret_names(
    pattern: Option<&str>,
    hold: &[String],
    held: &BTreeSet<String>,
) -> BTreeMap<String, Result<String, String>> {
    let pattern = pattern.unwrap_or(DEFAULT_NAME_PATTERN);
    let mut taken: BTreeMap<String, String> = BTreeMap::new();
    let mut names = BTreeMap::new();
    let (old, new): (Vec<&String>, Vec<&String>) = hold
        .iter()
        .partition(|id| held.contains(&id.to_ascii_lowercase()));
    for id in old.into_iter().chain(new) {
        let name = secret_name(pattern, id);
        let result = match taken.get(&name) {
            Some(other) => Err(other.clone()),
            None => {
                taken.insert(name.clone(), id.clone());
                Ok(name)
            }
        };
        names.insert(id.clone(), result);
    }
    names
}

/// `pattern` with `{name}`, `{resourceGroup}` and `{subscription}` of cluster `id`, made a valid
/// Secret name: lower-cased, other characters than `a-z`, `0-9`, `-` and `.` made `-`, at most
/// 253 characters, starting and ending alphanumeric.
pub fn secret_name(pattern: &str, id: &str) -> String {
    let parts: Vec<&str> = id.split('/').collect();
    let part = |after: &str| {
        parts
            .iter()
            .position(|p| p.eq_ignore_ascii_case(after))
            .and_then(|i| parts.get(i + 1))
            .copied()
            .unwrap_or_default()
    };
    let filled = pattern
        .replace("{name}", parts.last().copied().unwrap_or_default())
        .replace("{resourceGroup}", part("resourceGroups"))
        .replace("{subscription}", part("subscriptions"));
    let cleaned: String = filled
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .take(253)
        .collect();
    cleaned
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

/// What the spec's pattern must have: `{name}`, or every cluster would get the same Secret.
pub fn check_pattern(pattern: Option<&str>) -> Result<(), String> {
    match pattern {
        Some(p) if !p.contains("{name}") => Err(format!(
            "spec.template.secret.namePattern {p:?} must contain {{name}}"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
