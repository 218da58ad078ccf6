//! Writing a resource's status: the whole of it, with server-side apply as the operator's field
//! manager, which owns every status field. (A RemoteCommand's status is written fenced instead, by
//! its own controller.)

use kube::Resource;
use kube::api::{Api, Patch, PatchParams};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::context::FIELD_MANAGER;
use super::reason::Failure;

/// Applies `status` to the object `name` of `api`.
pub async fn apply<K>(api: &Api<K>, name: &str, status: &impl Serialize) -> Result<(), Failure>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let patch = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}
