//! Secrets the operator writes belong to exactly one resource: a Secret of the same name that the
//! resource does not own is never overwritten, not even one created a moment after we looked.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};

use super::context::FIELD_MANAGER;
use super::reason::{Failure, Reason};

/// The Secret `name` if it exists and `owner` owns it; `None` if there is none; `SecretConflict`
/// if someone else's Secret has that name. `field` names the spec field that chose the name.
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
    let uid = owner.meta().uid.clone().unwrap_or_default();
    if existing.owner_references().iter().any(|o| o.uid == uid) {
        return Ok(Some(existing));
    }
    Err(conflict(owner, name, field))
}

fn conflict<K: Resource<DynamicType = ()>>(owner: &K, name: &str, field: &str) -> Failure {
    let namespace = owner.meta().namespace.clone().unwrap_or_default();
    Failure::terminal(
        Reason::SecretConflict,
        format!(
            "Secret {namespace}/{name} exists and is not owned by this {}; not overwriting it \
             (delete it or choose another {field})",
            K::kind(&())
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
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&secret),
    )
    .await?;
    Ok(())
}
