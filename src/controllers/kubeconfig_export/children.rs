//! What the KubeconfigExport controller writes: its status and the kubeconfig Secret, both with
//! server-side apply. A Secret this export does not own is never touched.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ObjectMeta, Preconditions};
use kube::{Resource, ResourceExt};

use crate::api::kubeconfig_export::{KubeconfigExport, KubeconfigExportStatus};
use crate::controllers::reason::Failure;
use crate::kubeconfig::RenderedSecret;

/// Applies the whole status (we own every field of it).
pub async fn write_status(
    api: &Api<KubeconfigExport>,
    kcx: &KubeconfigExport,
    status: &KubeconfigExportStatus,
) -> Result<(), Failure> {
    crate::controllers::status::apply(api, &kcx.name_any(), status, None).await
}

/// What [`apply_secret`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretWrite {
    /// The Secret was created or its content replaced.
    Written,
    /// The Secret is ours and already holds this content.
    Unchanged,
}

/// Writes `rendered` to the Secret `spec.secret.name`, owned by `kcx`, unless it already holds
/// content with `hash` (`previous_hash` is the hash the status says was written last).
pub async fn apply_secret(
    client: &kube::Client,
    kcx: &KubeconfigExport,
    rendered: &RenderedSecret,
    hash: &str,
    previous_hash: Option<&str>,
) -> Result<SecretWrite, Failure> {
    let namespace = kcx.namespace().unwrap_or_default();
    let name = kcx.spec.secret.name.clone();
    let api: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    const FIELD: &str = "spec.secret.name";
    let mut existing = crate::controllers::owned::owned_secret(&api, kcx, &name, FIELD).await?;
    if let Some(current) = existing.take() {
        if previous_hash == Some(hash) {
            return Ok(SecretWrite::Unchanged);
        }
        // A Secret's type is immutable: a format change that changes it needs a new Secret.
        let current_type = current.type_.as_deref().unwrap_or("Opaque");
        if current_type != rendered.type_ {
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: current.uid(),
                    resource_version: None,
                }),
                ..Default::default()
            };
            api.delete(&name, &params).await?;
        } else {
            existing = Some(current);
        }
    }
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace),
            labels: Some(rendered.labels.clone()),
            annotations: Some(rendered.annotations.clone()).filter(|a| !a.is_empty()),
            owner_references: kcx.controller_owner_ref(&()).map(|o| vec![o]),
            ..Default::default()
        },
        type_: Some(rendered.type_.clone()),
        data: Some(rendered.data_as_byte_strings()),
        ..Default::default()
    };
    crate::controllers::owned::write_secret(&api, kcx, existing.as_ref(), secret, FIELD).await?;
    Ok(SecretWrite::Written)
}

/// Deletes Secret `name` when this export owns it: what is left after `spec.secret.name` changed.
/// A Secret we do not own, or one already gone, is left alone.
pub async fn delete_previous_secret(
    client: &kube::Client,
    kcx: &KubeconfigExport,
    name: &str,
) -> Result<(), Failure> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &kcx.namespace().unwrap_or_default());
    let Some(existing) = api.get_metadata_opt(name).await? else {
        return Ok(());
    };
    let uid = kcx.uid().unwrap_or_default();
    if !existing.owner_references().iter().any(|o| o.uid == uid) {
        return Ok(());
    }
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: existing.uid(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
