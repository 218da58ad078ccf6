//! Secrets the operator writes belong to exactly one resource: a Secret of the same name that the
//! resource does not own is never overwritten, not even one created a moment after we looked —
//! unless whoever may write that Secret handed it over ([`ADOPT_ANNOTATION`]).

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use super::context::FIELD_MANAGER;
use super::reason::{Failure, Reason};
use crate::kubeconfig::{MANAGED_BY, MANAGED_BY_LABEL};

/// On an existing Secret, `<Kind>/<name>` (e.g. `KubeconfigExport/prod-east`): that resource of
/// the Secret's namespace may take it over, as if it had written it (a hand-made Argo CD cluster
/// Secret moving to an export keeps its name, so Argo CD keeps the cluster). The annotation is the
/// consent of whoever may write the Secret; naming the Secret in a spec is not, else anyone who may
/// create a resource could have the operator overwrite any Secret of the namespace.
pub const ADOPT_ANNOTATION: &str = "kubeinvoke.io/adopt";

/// The Secret `name` if it exists and `owner` owns it (or it was handed over to `owner`); `None` if
/// there is none; `SecretConflict` if someone else's Secret has that name. `field` names the spec
/// field that chose the name.
pub async fn owned_secret<K>(
    api: &Api<Secret>,
    owner: &K,
    name: &str,
    field: &str,
) -> Result<Option<Secret>, Failure>
where
    K: Resource<DynamicType = ()>,
{
    let Some(existing) = api.get_opt(name).await? else {
        return Ok(None);
    };
    if is_ours(&existing, owner) {
        return Ok(Some(existing));
    }
    if handed_over(&existing, owner) {
        tracing::info!(secret = %name, namespace = %existing.namespace().unwrap_or_default(), owner = %owner.meta().name.as_deref().unwrap_or_default(), "taking over the Secret handed over by its {ADOPT_ANNOTATION} annotation");
        return Ok(Some(existing));
    }
    Err(conflict(owner, name, field))
}

/// Whether `secret` was handed over to `owner` ([`ADOPT_ANNOTATION`]) and no other controller owns
/// it (an object has at most one controller; taking over another's would start a tug of war).
fn handed_over<K: Resource<DynamicType = ()>>(secret: &Secret, owner: &K) -> bool {
    let wanted = format!(
        "{}/{}",
        K::kind(&()),
        owner.meta().name.as_deref().unwrap_or_default()
    );
    secret.annotations().get(ADOPT_ANNOTATION) == Some(&wanted)
        && !secret
            .owner_references()
            .iter()
            .any(|o| o.controller == Some(true))
}

/// Whether `secret` belongs to `owner`: it names `owner` as an owner, or it is one the operator
/// wrote for an earlier object of the same kind and name. Names are unique in a namespace, so that
/// earlier object is gone (a GitOps re-sync recreates a RemoteCommand that
/// `ttlSecondsAfterFinished` deleted before the garbage collector got to its Secret).
fn is_ours<K: Resource<DynamicType = ()>>(secret: &Secret, owner: &K) -> bool {
    let uid = owner.meta().uid.clone().unwrap_or_default();
    let name = owner.meta().name.clone().unwrap_or_default();
    let refs = secret.owner_references();
    if refs.iter().any(|o| o.uid == uid) {
        return true;
    }
    let managed = secret.labels().get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY);
    managed
        && refs.iter().any(|o| {
            o.controller == Some(true)
                && o.kind == K::kind(&())
                && o.api_version == K::api_version(&())
                && o.name == name
                && o.uid != uid
        })
}

fn conflict<K: Resource<DynamicType = ()>>(owner: &K, name: &str, field: &str) -> Failure {
    let namespace = owner.meta().namespace.clone().unwrap_or_default();
    Failure::terminal(
        Reason::SecretConflict,
        format!(
            "Secret {namespace}/{name} exists and is not owned by this {kind}; not overwriting it \
             (delete it, choose another {field}, or hand it over by annotating the Secret \
             {ADOPT_ANNOTATION}={kind}/{owner})",
            kind = K::kind(&()),
            owner = owner.meta().name.as_deref().unwrap_or_default()
        ),
    )
}

/// Writes `secret` (which names `owner` as its controller) without ever taking over someone
/// else's: with no `existing` Secret it is created, and a Secret that appeared since the read
/// fails the create (then it is ours only if it names `owner`); an `existing` one (owned, from
/// [`owned_secret`]) is applied with its resourceVersion as a precondition, so a Secret replaced
/// in between makes the write fail instead of being merged.
pub async fn write_secret<K>(
    api: &Api<Secret>,
    owner: &K,
    existing: Option<&Secret>,
    mut secret: Secret,
    field: &str,
) -> Result<(), Failure>
where
    K: Resource<DynamicType = ()>,
{
    let name = secret.name_any();
    let existing = match existing {
        Some(e) => e.clone(),
        None => {
            let params = PostParams {
                field_manager: Some(FIELD_MANAGER.to_string()),
                ..Default::default()
            };
            match api.create(&params, &secret).await {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(e)) if refused_for_good(e.code) => {
                    return Err(rejected(&name, &e));
                }
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    match owned_secret(api, owner, &name, field).await? {
                        Some(ours) => ours,
                        // Gone again: the next reconcile creates it.
                        None => return Err(kube::Error::Api(e).into()),
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    secret.metadata.resource_version = existing.resource_version();
    // Server-side apply drops what it no longer sends only from fields it alone applied; what the
    // first write (a create) set belongs to an update. So keys and labels this operator wrote
    // before and does not write now (a format change) are removed first, fenced the same way.
    let stale = stale_fields(&existing, &secret);
    if stale != json!({}) {
        let mut patch = stale;
        patch["metadata"]["resourceVersion"] = json!(existing.resource_version());
        let cleaned = api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        secret.metadata.resource_version = cleaned.resource_version();
    }
    let written = api
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&secret),
        )
        .await;
    match written {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if refused_for_good(e.code) => Err(rejected(&name, &e)),
        Err(e) => Err(e.into()),
    }
}

/// A merge patch removing what this operator wrote into `existing` (data keys, labels,
/// annotations — by its field manager, whatever the operation) and `next` no longer holds; `{}`
/// when nothing is stale.
fn stale_fields(existing: &Secret, next: &Secret) -> Value {
    let mut patch = json!({});
    let sections: [(&[&str], Vec<&String>, Vec<&String>); 3] = [
        (
            &["data"],
            existing.data.iter().flat_map(|d| d.keys()).collect(),
            next.data.iter().flat_map(|d| d.keys()).collect(),
        ),
        (
            &["metadata", "labels"],
            existing.labels().keys().collect(),
            next.metadata.labels.iter().flat_map(|l| l.keys()).collect(),
        ),
        (
            &["metadata", "annotations"],
            existing.annotations().keys().collect(),
            next.metadata
                .annotations
                .iter()
                .flat_map(|a| a.keys())
                .collect(),
        ),
    ];
    for (at, present, kept) in sections {
        for key in present {
            if kept.contains(&key) || !written_by_us(existing, at, key) {
                continue;
            }
            let mut slot = &mut patch;
            for part in at {
                slot = &mut slot[*part];
            }
            slot[key.as_str()] = Value::Null;
        }
    }
    patch
}

/// Whether this operator's field manager (any operation) owns `at`.`key` of `secret`.
fn written_by_us(secret: &Secret, at: &[&str], key: &str) -> bool {
    secret.managed_fields().iter().any(|entry| {
        entry.manager.as_deref() == Some(FIELD_MANAGER)
            && entry.fields_v1.as_ref().is_some_and(|f| {
                at.iter()
                    .try_fold(&f.0, |v, part| v.get(format!("f:{part}")))
                    .and_then(|v| v.get(format!("f:{key}")))
                    .is_some()
            })
    })
}

/// The API server refuses this Secret as it is (400 bad request, 413 too large, 422 invalid):
/// the same write would be refused again, so it is not retried until a deadline.
fn refused_for_good(code: u16) -> bool {
    matches!(code, 400 | 413 | 422)
}

fn rejected(name: &str, e: &kube::core::Status) -> Failure {
    Failure::terminal(
        Reason::SecretRejected,
        format!(
            "the Kubernetes API server refused to store Secret {name} (HTTP {}, {}): {}",
            e.code,
            e.reason,
            crate::text::truncate(&e.message, 600)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::RemoteCommand;

    fn command(uid: &str) -> RemoteCommand {
        let mut rc: RemoteCommand = serde_json::from_value(serde_json::json!({
            "apiVersion": "kubeinvoke.io/v1alpha1", "kind": "RemoteCommand",
            "metadata": {"name": "nightly", "namespace": "team-a", "uid": uid},
            "spec": {"target": {"aks": {"resourceId": "/subscriptions/s/resourceGroups/r/providers/Microsoft.ContainerService/managedClusters/c"}}, "command": "true"},
        }))
        .unwrap();
        rc.metadata.uid = Some(uid.into());
        rc
    }

    fn secret(owner: &RemoteCommand, managed: bool) -> Secret {
        let mut s = Secret::default();
        s.metadata.owner_references = owner.controller_owner_ref(&()).map(|o| vec![o]);
        if managed {
            s.metadata.labels = Some([(MANAGED_BY_LABEL.into(), MANAGED_BY.into())].into());
        }
        s
    }

    #[test]
    fn a_secret_left_by_an_earlier_object_of_the_same_name_is_taken_over() {
        let old = command("old-uid");
        let new = command("new-uid");
        assert!(is_ours(&secret(&new, true), &new));
        assert!(
            is_ours(&secret(&old, true), &new),
            "left over by the earlier nightly"
        );
        assert!(
            !is_ours(&secret(&old, false), &new),
            "not written by kubeinvoke"
        );
        let mut other = command("x");
        other.metadata.name = Some("weekly".into());
        assert!(!is_ours(&secret(&other, true), &new), "another object's");
        assert!(!is_ours(&Secret::default(), &new), "nobody's");
    }

    #[test]
    fn only_a_secret_handed_over_to_this_very_object_is_taken_over() {
        let rc = command("uid");
        let annotated = |value: &str| {
            let mut s = Secret::default();
            s.metadata.annotations = Some([(ADOPT_ANNOTATION.into(), value.into())].into());
            s
        };
        assert!(handed_over(&annotated("RemoteCommand/nightly"), &rc));
        assert!(
            !handed_over(&annotated("RemoteCommand/weekly"), &rc),
            "another name"
        );
        assert!(
            !handed_over(&annotated("KubeconfigExport/nightly"), &rc),
            "another kind"
        );
        assert!(!handed_over(&annotated("nightly"), &rc), "no kind");
        assert!(!handed_over(&Secret::default(), &rc), "not handed over");
        let mut controlled = annotated("RemoteCommand/nightly");
        controlled.metadata.owner_references =
            command("other").controller_owner_ref(&()).map(|o| vec![o]);
        assert!(!handed_over(&controlled, &rc), "another controller's");
    }

    #[test]
    fn only_what_this_operator_wrote_and_no_longer_writes_is_stale() {
        let existing: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "edge",
                "labels": {"argocd.argoproj.io/secret-type": "cluster", "noted-by": "audit", "kubeinvoke.io/managed-by": "kubeinvoke"},
                "managedFields": [
                    {"manager": "kubeinvoke", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1",
                     "fieldsV1": {"f:data": {"f:kubeconfig": {}, "f:name": {}},
                                  "f:metadata": {"f:labels": {"f:argocd.argoproj.io/secret-type": {}, "f:kubeinvoke.io/managed-by": {}}}}},
                    {"manager": "kubectl", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1",
                     "fieldsV1": {"f:data": {"f:notes": {}}, "f:metadata": {"f:labels": {"f:noted-by": {}}}}}
                ]
            },
            "data": {"kubeconfig": "eA==", "name": "eA==", "notes": "eA=="}
        }))
        .unwrap();
        let next: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "edge", "labels": {"kubeinvoke.io/managed-by": "kubeinvoke"}},
            "data": {"value": "eA==", "name": "eA=="}
        }))
        .unwrap();
        assert_eq!(
            stale_fields(&existing, &next),
            serde_json::json!({
                "data": {"kubeconfig": null},
                "metadata": {"labels": {"argocd.argoproj.io/secret-type": null}}
            })
        );
        assert_eq!(stale_fields(&existing, &existing), serde_json::json!({}));
    }
}
