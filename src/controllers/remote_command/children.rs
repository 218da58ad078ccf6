//! What the RemoteCommand controller writes: its status and the output Secret, both with
//! server-side apply.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::api::remote_command::{RemoteCommand, RemoteCommandStatus};
use crate::controllers::context::FIELD_MANAGER;
use crate::controllers::reason::{Failure, Reason};

/// Label on every object the operator creates.
pub const MANAGED_BY: (&str, &str) = (
    crate::kubeconfig::MANAGED_BY_LABEL,
    crate::kubeconfig::MANAGED_BY,
);

/// Applies the whole status (we own every field of it), fenced: the write fails with
/// [`Reason::Conflict`] when the object changed since `rc` was read (resourceVersion precondition),
/// so a replica that lost a race never overwrites a newer decision. Returns the object as written.
pub async fn write_status(
    api: &Api<RemoteCommand>,
    rc: &RemoteCommand,
    status: &RemoteCommandStatus,
) -> Result<RemoteCommand, Failure> {
    let mut patch = json!({ "apiVersion": "kubeinvoke.io/v1alpha1", "kind": "RemoteCommand", "status": status });
    if let Some(rv) = &rc.metadata.resource_version {
        patch["metadata"] = json!({ "resourceVersion": rv });
    }
    let written = api
        .patch_status(
            &rc.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await;
    match written {
        Ok(rc) => Ok(rc),
        Err(kube::Error::Api(e)) if e.code == 409 => Err(Failure::transient(
            Reason::Conflict,
            "the RemoteCommand changed since it was read; reading it again",
        )),
        Err(e) => Err(e.into()),
    }
}

/// The output Secret's name: `spec.output.secretName` or `<name>-output`.
pub fn output_secret_name(rc: &RemoteCommand) -> String {
    rc.spec
        .output
        .secret_name
        .clone()
        .unwrap_or_else(|| format!("{}-output", rc.name_any()))
}

/// Writes the full output (key `output`) and exit code (key `exitCode`, when known) to the output
/// Secret, owned by `rc`. A Secret of that name that `rc` does not own is left alone.
pub async fn write_output(
    client: &kube::Client,
    rc: &RemoteCommand,
    output: &[u8],
    exit_code: Option<i32>,
) -> Result<String, Failure> {
    let namespace = rc.namespace().unwrap_or_default();
    let name = output_secret_name(rc);
    let api: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    const FIELD: &str = "spec.output.secretName";
    let existing = crate::controllers::owned::owned_secret(&api, rc, &name, FIELD).await?;
    let mut data = BTreeMap::from([("output".to_string(), ByteString(output.to_vec()))]);
    if let Some(code) = exit_code {
        data.insert(
            "exitCode".to_string(),
            ByteString(code.to_string().into_bytes()),
        );
    }
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace),
            labels: Some(BTreeMap::from([
                (MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string()),
                ("kubeinvoke.io/remote-command".to_string(), rc.name_any()),
            ])),
            owner_references: rc.controller_owner_ref(&()).map(|o| vec![o]),
            ..Default::default()
        },
        type_: Some("Opaque".to_string()),
        data: Some(data),
        ..Default::default()
    };
    crate::controllers::owned::write_secret(&api, rc, existing.as_ref(), secret, FIELD).await?;
    Ok(name)
}
