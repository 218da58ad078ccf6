//! Writing a resource's status: the whole of it, with server-side apply as the operator's field
//! manager, which owns every status field. Fenced when asked: a status computed from an object
//! read from the cache is refused (`Conflict`) if the object changed since, e.g. by this very
//! controller's previous write that the cache has not shown yet — a stale read never overwrites a
//! newer status. (A RemoteCommand's status is written by its own controller, fenced too.)

use std::time::Duration;

use kube::Resource;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::context::FIELD_MANAGER;
use super::reason::{Failure, Reason};

/// Applies `status` to the object `name` of `api`; with `read_at`, only if the object is still at
/// that resourceVersion.
pub async fn apply<K>(
    api: &Api<K>,
    name: &str,
    status: &impl Serialize,
    read_at: Option<&str>,
) -> Result<(), Failure>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut patch = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    if let Some(rv) = read_at {
        patch["metadata"] = json!({ "resourceVersion": rv });
    }
    let written = api
        .patch_status(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await;
    match written {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Err(Failure::transient(
            Reason::Conflict,
            format!(
                "the {} changed since it was read; reading it again",
                K::kind(&())
            ),
        )),
        Err(e) => Err(e.into()),
    }
}

/// When a reconcile that could not record its failure (the Kubernetes API was unavailable, or its
/// status write was fenced off) runs again: soon after a stale read, else in 5 s.
pub fn retry(kind: &str, name: &str, namespace: &str, failure: &Failure) -> Action {
    if failure.reason == Reason::Conflict {
        tracing::debug!(
            kind,
            name,
            namespace,
            "read a stale object; reconciling again"
        );
        return Action::requeue(Duration::from_millis(500));
    }
    tracing::warn!(kind, name, namespace, reason = %failure.reason, error = %failure.message, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}
