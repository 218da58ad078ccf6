//! Secrets the operator writes belong to exactly one resource: a Secret of the same name that the
//! resource does not own is never overwritten.

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::{Resource, ResourceExt};

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
    let namespace = owner.meta().namespace.clone().unwrap_or_default();
    Err(Failure::terminal(
        Reason::SecretConflict,
        format!(
            "Secret {namespace}/{name} exists and is not owned by this {}; not overwriting it \
             (delete it or choose another {field})",
            K::kind(&())
        ),
    ))
}
