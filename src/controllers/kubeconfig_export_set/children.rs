//! A KubeconfigExportSet's children: one KubeconfigExport per cluster, named from the set and the
//! cluster ([`super::plan::child_name`]), controlled by the set. It is written only when missing or
//! when its spec differs from what the template says, and only while the set controls it: an
//! export of that name the set does not control is never touched.

use std::collections::BTreeMap;

use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, Preconditions};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::api::KubeconfigExport;
use crate::api::kubeconfig_export::{
    AksSource, HybridSource, KubeconfigExportSpec, SecretSpec, Source,
};
use crate::api::kubeconfig_export_set::{ClusterType, KubeconfigExportSet, refresh_interval};
use crate::controllers::context::FIELD_MANAGER;
use crate::controllers::reason::{Failure, Reason};

/// Label of a child: the name of its set (`kubectl get kcx -l kubeinvoke.io/kubeconfig-export-set=X`);
/// the set's watch of its children selects on it.
pub const SET_LABEL: &str = "kubeinvoke.io/kubeconfig-export-set";

/// The spec the template gives cluster `id`, writing Secret `secret`.
pub fn spec(set: &KubeconfigExportSet, id: &str, secret: &str) -> KubeconfigExportSpec {
    let t = &set.spec.template;
    let source = match set.spec.selector.resource_type {
        ClusterType::ManagedClusters => Source {
            aks: Some(AksSource {
                resource_id: id.to_string(),
                role: t.role,
                server_fqdn: t.server_fqdn.clone(),
            }),
            hybrid: None,
        },
        ClusterType::ConnectedClusters => Source {
            hybrid: Some(HybridSource {
                connected_cluster_resource_id: id.to_string(),
                role: t.role,
                api_version: t.api_version.clone(),
            }),
            aks: None,
        },
    };
    KubeconfigExportSpec {
        source,
        authentication: t.authentication,
        secret: SecretSpec {
            name: secret.to_string(),
            format: t.secret.format,
            key: t.secret.key.clone(),
            labels: t.secret.labels.clone(),
            annotations: t.secret.annotations.clone(),
        },
        refresh_interval: refresh_interval(t),
        credential_ref: t.credential_ref.clone(),
    }
}

/// What the cache shows of the child named `name`.
pub enum Existing {
    Missing,
    /// The set's, with this spec.
    Ours(Box<KubeconfigExportSpec>),
    /// Someone else's: left alone.
    Foreign,
}

/// The child `name` of `set` as the cache of `exports` shows it.
pub fn existing(
    exports: &Store<KubeconfigExport>,
    set: &KubeconfigExportSet,
    name: &str,
) -> Existing {
    let key = ObjectRef::new(name).within(&set.namespace().unwrap_or_default());
    match exports.get(&key) {
        None => Existing::Missing,
        Some(kcx) if controlled_by(&kcx, set) => Existing::Ours(Box::new(kcx.spec.clone())),
        Some(_) => Existing::Foreign,
    }
}

/// Whether `kcx` is controlled by `set` (its controller owner reference has the set's uid).
pub fn controlled_by(kcx: &KubeconfigExport, set: &KubeconfigExportSet) -> bool {
    let uid = set.uid();
    kcx.owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && Some(&o.uid) == uid.as_ref())
}

/// Creates or updates the child `name` with `spec` (server-side apply, as the operator's field
/// manager). Refused by the API server (400/422): `InvalidSpec`, the template is at fault.
pub async fn apply(
    api: &Api<KubeconfigExport>,
    set: &KubeconfigExportSet,
    name: &str,
    spec: &KubeconfigExportSpec,
) -> Result<(), Failure> {
    let meta = ObjectMeta {
        name: Some(name.to_string()),
        labels: Some(BTreeMap::from([(
            SET_LABEL.to_string(),
            set.name_any().chars().take(63).collect(),
        )])),
        owner_references: set.controller_owner_ref(&()).map(|o| vec![o]),
        ..Default::default()
    };
    let patch = json!({
        "apiVersion": "kubeinvoke.io/v1alpha1",
        "kind": "KubeconfigExport",
        "metadata": meta,
        "spec": spec,
    });
    match api
        .patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if matches!(e.code, 400 | 422) => Err(Failure::terminal(
            Reason::InvalidSpec,
            format!(
                "the API server refused the KubeconfigExport {name} ({}): {}",
                e.code,
                crate::text::truncate(&e.message, 600)
            ),
        )),
        Err(e) => Err(e.into()),
    }
}

/// Deletes the child `name` (its Secret goes with it), only if it is still the one the set
/// controls (`uid`); gone already is fine.
pub async fn delete(api: &Api<KubeconfigExport>, name: &str, uid: &str) -> Result<(), Failure> {
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if matches!(e.code, 404 | 409) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The uid of the cached child `name`, when the set controls it.
pub fn child_uid(
    exports: &Store<KubeconfigExport>,
    set: &KubeconfigExportSet,
    name: &str,
) -> Option<String> {
    let key = ObjectRef::new(name).within(&set.namespace().unwrap_or_default());
    exports
        .get(&key)
        .filter(|kcx| controlled_by(kcx, set))
        .and_then(|kcx| kcx.uid())
}

/// The clusters the set holds now: its children in the cache, by their source.
pub fn held(
    exports: &Store<KubeconfigExport>,
    set: &KubeconfigExportSet,
) -> Vec<(String, KubeconfigExport)> {
    let namespace = set.namespace();
    exports
        .state()
        .into_iter()
        .filter(|kcx| kcx.namespace() == namespace && controlled_by(kcx, set))
        .filter_map(|kcx| held_id(&kcx).map(|id| (id, (*kcx).clone())))
        .collect()
}

/// The cluster an export is of.
pub fn held_id(kcx: &KubeconfigExport) -> Option<String> {
    match (&kcx.spec.source.aks, &kcx.spec.source.hybrid) {
        (Some(aks), _) => Some(aks.resource_id.clone()),
        (None, Some(hybrid)) => Some(hybrid.connected_cluster_resource_id.clone()),
        (None, None) => None,
    }
}
