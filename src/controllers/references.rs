//! What a resource points at in its own namespace: the Azure credential Secret and the files of a
//! RemoteCommand. Nothing here reaches outside the resource's namespace.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Api, Client};

use super::reason::{Failure, Reason};
use crate::api::CredentialRef;
use crate::api::remote_command::FileSource;

/// Name of the per-namespace default credential Secret.
pub const DEFAULT_CREDENTIAL_SECRET: &str = "kubeinvoke-credentials";

/// Where a resource's Azure identity comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// A Secret in the resource's namespace.
    Secret(SecretCredential),
    /// The operator's own identity (workload identity, else managed identity).
    Operator,
}

/// The keys of a credential Secret. `Debug` never shows the client secret.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretCredential {
    pub namespace: String,
    pub name: String,
    /// Changes whenever the Secret does: part of the credential cache key.
    pub resource_version: String,
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub subscription_id: Option<String>,
}

impl SecretCredential {
    /// Key of the credential cache: one credential per Secret version.
    pub fn cache_key(&self) -> String {
        format!("{}/{}@{}", self.namespace, self.name, self.resource_version)
    }
}

impl std::fmt::Debug for SecretCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretCredential")
            .field("secret", &format_args!("{}/{}", self.namespace, self.name))
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("subscription_id", &self.subscription_id)
            .finish()
    }
}

impl std::fmt::Debug for CredentialSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CredentialSource::Secret(s) => s.fmt(f),
            CredentialSource::Operator => f.write_str("OperatorIdentity"),
        }
    }
}

/// Which namespaces may use the operator's own identity.
#[derive(Debug, Clone, Default)]
pub enum GlobalCredentialNamespaces {
    /// Every namespace (the default).
    #[default]
    All,
    /// Only these.
    Only(Vec<String>),
}

impl GlobalCredentialNamespaces {
    /// Parses the flag value: empty or `*` = all; else a comma-separated list.
    pub fn parse(value: &str) -> Self {
        let names: Vec<String> = value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        if names.is_empty() || names.iter().any(|n| n == "*") {
            Self::All
        } else {
            Self::Only(names)
        }
    }

    pub fn allows(&self, namespace: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(names) => names.iter().any(|n| n == namespace),
        }
    }
}

/// Resolves the credential per design §4: `credentialRef` → `kubeinvoke-credentials` → the
/// operator's identity where allowed.
pub async fn resolve_credential(
    client: &Client,
    namespace: &str,
    credential_ref: Option<&CredentialRef>,
    global: &GlobalCredentialNamespaces,
) -> Result<CredentialSource, Failure> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    if let Some(r) = credential_ref {
        return match secrets.get_opt(&r.name).await? {
            Some(secret) => secret_credential(namespace, &secret).map(CredentialSource::Secret),
            None => Err(Failure::terminal(
                Reason::CredentialNotFound,
                format!(
                    "credential Secret {namespace}/{} (spec.credentialRef) does not exist",
                    r.name
                ),
            )),
        };
    }
    if let Some(secret) = secrets.get_opt(DEFAULT_CREDENTIAL_SECRET).await? {
        return secret_credential(namespace, &secret).map(CredentialSource::Secret);
    }
    if global.allows(namespace) {
        return Ok(CredentialSource::Operator);
    }
    Err(Failure::terminal(
        Reason::CredentialNotFound,
        format!(
            "no spec.credentialRef, no Secret {namespace}/{DEFAULT_CREDENTIAL_SECRET}, and the operator's own \
             identity is not allowed in namespace {namespace} (--global-credential-namespaces)"
        ),
    ))
}

fn secret_credential(namespace: &str, secret: &Secret) -> Result<SecretCredential, Failure> {
    let name = secret.metadata.name.clone().unwrap_or_default();
    let data = secret_data(secret);
    let get = |key: &str| {
        data.get(key)
            .map(|v| String::from_utf8_lossy(v).trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let missing = |key: &str| {
        Failure::terminal(
            Reason::CredentialNotFound,
            format!("credential Secret {namespace}/{name} has no key {key}"),
        )
    };
    Ok(SecretCredential {
        namespace: namespace.to_string(),
        resource_version: secret.metadata.resource_version.clone().unwrap_or_default(),
        tenant_id: get("AZURE_TENANT_ID").ok_or_else(|| missing("AZURE_TENANT_ID"))?,
        client_id: get("AZURE_CLIENT_ID").ok_or_else(|| missing("AZURE_CLIENT_ID"))?,
        client_secret: get("AZURE_CLIENT_SECRET"),
        subscription_id: get("AZURE_SUBSCRIPTION_ID"),
        name,
    })
}

/// `data` merged with `stringData` (a Secret read back from the API server only has `data`, but a
/// test double may not).
fn secret_data(secret: &Secret) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    for (k, v) in secret.string_data.iter().flatten() {
        out.insert(k.clone(), v.clone().into_bytes());
    }
    out
}

/// One file for the AKS run-command context.
#[derive(Clone, PartialEq, Eq)]
pub struct File {
    pub path: String,
    pub contents: Vec<u8>,
}

impl std::fmt::Debug for File {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "File({}, {} bytes)", self.path, self.contents.len())
    }
}

/// Reads the files of `spec.files` from ConfigMaps and Secrets in `namespace`.
pub async fn collect_files(
    client: &Client,
    namespace: &str,
    sources: &[FileSource],
) -> Result<Vec<File>, Failure> {
    let mut files = Vec::new();
    for (index, source) in sources.iter().enumerate() {
        let (kind, keys_ref, data) = match (&source.config_map_ref, &source.secret_ref) {
            (Some(r), None) => {
                let cm = Api::<ConfigMap>::namespaced(client.clone(), namespace)
                    .get_opt(&r.name)
                    .await?;
                let data = cm.map(|cm| {
                    let mut data: BTreeMap<String, Vec<u8>> = cm
                        .data
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| (k, v.into_bytes()))
                        .collect();
                    data.extend(cm.binary_data.into_iter().flatten().map(|(k, v)| (k, v.0)));
                    data
                });
                ("ConfigMap", r, data)
            }
            (None, Some(r)) => {
                let secret = Api::<Secret>::namespaced(client.clone(), namespace)
                    .get_opt(&r.name)
                    .await?;
                ("Secret", r, secret.as_ref().map(secret_data))
            }
            _ => {
                return Err(Failure::terminal(
                    Reason::InvalidSpec,
                    format!(
                        "spec.files[{index}] must set exactly one of configMapRef or secretRef"
                    ),
                ));
            }
        };
        let Some(data) = data else {
            return Err(Failure::terminal(
                Reason::FileNotFound,
                format!(
                    "{kind} {namespace}/{} (spec.files[{index}]) does not exist",
                    keys_ref.name
                ),
            ));
        };
        if keys_ref.items.is_empty() {
            files.extend(
                data.into_iter()
                    .map(|(path, contents)| File { path, contents }),
            );
            continue;
        }
        for item in &keys_ref.items {
            let Some(contents) = data.get(&item.key) else {
                return Err(Failure::terminal(
                    Reason::FileNotFound,
                    format!(
                        "{kind} {namespace}/{} has no key {} (spec.files[{index}])",
                        keys_ref.name, item.key
                    ),
                ));
            };
            let path = item.path.clone().unwrap_or_else(|| item.key.clone());
            files.push(File {
                path,
                contents: contents.clone(),
            });
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_namespaces() {
        assert!(GlobalCredentialNamespaces::parse("").allows("x"));
        assert!(GlobalCredentialNamespaces::parse("*").allows("x"));
        let only = GlobalCredentialNamespaces::parse("a, b");
        assert!(only.allows("a") && only.allows("b") && !only.allows("c"));
    }

    #[test]
    fn debug_hides_the_client_secret() {
        let c = SecretCredential {
            namespace: "ns".into(),
            name: "creds".into(),
            resource_version: "1".into(),
            tenant_id: "t".into(),
            client_id: "c".into(),
            client_secret: Some("super-secret-value".into()),
            subscription_id: None,
        };
        let shown = format!("{:?}", CredentialSource::Secret(c));
        assert!(
            !shown.contains("super-secret-value") && shown.contains("<redacted>"),
            "{shown}"
        );
    }
}
