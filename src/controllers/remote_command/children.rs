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

/// Label and annotation of the output Secret that name its RemoteCommand.
const REMOTE_COMMAND_KEY: &str = "kubeinvoke.io/remote-command";

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

/// The output Secret's name: `spec.output.secretName` or `<name>-output`. A name too long for
/// that (object names may have 253 characters) keeps its start and gets a hash of the whole name,
/// so two long names never share a Secret.
pub fn output_secret_name(rc: &RemoteCommand) -> String {
    rc.spec
        .output
        .secret_name
        .clone()
        .unwrap_or_else(|| derived_name(&rc.name_any(), "-output"))
}

/// `<name><suffix>` when it is a valid object name (≤ 253), else `<start of name>-<hash><suffix>`.
fn derived_name(name: &str, suffix: &str) -> String {
    const MAX: usize = 253;
    let plain = format!("{name}{suffix}");
    if plain.len() <= MAX {
        return plain;
    }
    let hash = short_hash(name);
    let keep = MAX - suffix.len() - hash.len() - 1;
    // Names are ASCII; a cut must not leave a '.' or '-' before the '-<hash>'.
    let start = name[..keep].trim_end_matches(['.', '-']);
    format!("{start}-{hash}{suffix}")
}

/// The `kubeinvoke.io/remote-command` label: the name when it fits a label value (≤ 63), else
/// `<start>-<hash>`; the full name is always in the annotation of the same key.
fn name_label(name: &str) -> String {
    const MAX: usize = 63;
    if name.len() <= MAX {
        return name.to_string();
    }
    let hash = short_hash(name);
    let start = name[..MAX - hash.len() - 1].trim_end_matches(['.', '-', '_']);
    format!("{start}-{hash}")
}

fn short_hash(name: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(name.as_bytes());
    digest[..5].iter().map(|b| format!("{b:02x}")).collect()
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
                (REMOTE_COMMAND_KEY.to_string(), name_label(&rc.name_any())),
            ])),
            annotations: Some(BTreeMap::from([(
                REMOTE_COMMAND_KEY.to_string(),
                rc.name_any(),
            )])),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_up_to_the_crd_limit_give_valid_secret_names_and_labels() {
        let short = "build";
        assert_eq!(derived_name(short, "-output"), "build-output");
        assert_eq!(name_label(short), "build");
        for len in [63, 64, 200, 246, 247, 253] {
            let name: String = "a.b-c".repeat(60)[..len]
                .trim_end_matches(['.', '-'])
                .to_string();
            let secret = derived_name(&name, "-output");
            assert!(secret.len() <= 253, "{len}: {}", secret.len());
            assert!(secret.ends_with("-output"));
            assert!(!secret.contains(".-") && !secret.contains("-."), "{secret}");
            let label = name_label(&name);
            assert!(label.len() <= 63, "{len}: {label}");
            let edge = |c: char| c.is_ascii_alphanumeric();
            assert!(label.starts_with(edge) && label.ends_with(edge), "{label}");
        }
        // Two long names that share their start get different Secrets.
        let a = format!("{}a", "x".repeat(252));
        let b = format!("{}b", "x".repeat(252));
        assert_ne!(derived_name(&a, "-output"), derived_name(&b, "-output"));
        assert_ne!(name_label(&a), name_label(&b));
    }
}
