//! What a resource points at in its own namespace: the Azure credential Secret and the files of a
//! RemoteCommand. Nothing here reaches outside the resource's namespace.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Api, Client};

use super::grants::{Grant, OperatorGrants, Use};
use super::limits::{Held, Limits, MAX_OBJECT_BYTES};
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
    /// The operator's own identity (workload identity, else managed identity), within the grant
    /// of the resource's namespace.
    Operator(Grant),
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
    /// `AZURE_SERVICE_ACCOUNT`: workload identity federation with a token of this ServiceAccount
    /// of the same namespace.
    pub service_account: Option<String>,
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
            .field("service_account", &self.service_account)
            .field("subscription_id", &self.subscription_id)
            .finish()
    }
}

impl std::fmt::Debug for CredentialSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CredentialSource::Secret(s) => s.fmt(f),
            CredentialSource::Operator(_) => f.write_str("OperatorIdentity"),
        }
    }
}

impl CredentialSource {
    /// Refuses, before any ARM request, what the namespace's grant of the operator's identity does
    /// not cover; a namespace's own credential Secret may do anything its Azure RBAC allows.
    pub fn check_use(&self, namespace: &str, wanted: Use<'_>) -> Result<(), Failure> {
        match self {
            CredentialSource::Secret(_) => Ok(()),
            CredentialSource::Operator(grant) => grant.check(namespace, wanted),
        }
    }
}

/// Resolves the credential per design §4: `credentialRef` → `kubeinvoke-credentials` → the
/// operator's identity where allowed.
pub async fn resolve_credential(
    client: &Client,
    limits: &Limits,
    namespace: &str,
    credential_ref: Option<&CredentialRef>,
    grants: &OperatorGrants,
) -> Result<CredentialSource, Failure> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    // A tenant's Secret may be as large as the API server allows: its read is paid for.
    let _read = limits.hold(namespace, MAX_OBJECT_BYTES).await;
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
    if let Some(grant) = grants.for_namespace(namespace) {
        return Ok(CredentialSource::Operator(grant.clone()));
    }
    Err(Failure::terminal(
        Reason::CredentialNotFound,
        format!(
            "no spec.credentialRef, no Secret {namespace}/{DEFAULT_CREDENTIAL_SECRET}, and the operator's own \
             identity is not granted to namespace {namespace} (--global-credential-namespaces, --operator-identity-grants)"
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
    // A client secret, or workload identity federation with a ServiceAccount of this namespace
    // (a token minted for it, never the operator's own: the federated credential in Entra ID names
    // the namespace, so no other namespace can use the identity).
    let client_secret = get("AZURE_CLIENT_SECRET");
    let service_account = get("AZURE_SERVICE_ACCOUNT");
    if client_secret.is_some() == service_account.is_some() {
        return Err(Failure::terminal(
            Reason::CredentialNotFound,
            format!(
                "credential Secret {namespace}/{name} needs exactly one of AZURE_CLIENT_SECRET and \
                 AZURE_SERVICE_ACCOUNT (a ServiceAccount of this namespace, for workload identity)"
            ),
        ));
    }
    if let Some(sa) = &service_account
        && !is_dns_subdomain(sa)
    {
        return Err(Failure::terminal(
            Reason::CredentialNotFound,
            format!(
                "credential Secret {namespace}/{name}: AZURE_SERVICE_ACCOUNT is not a ServiceAccount name"
            ),
        ));
    }
    Ok(SecretCredential {
        namespace: namespace.to_string(),
        resource_version: secret.metadata.resource_version.clone().unwrap_or_default(),
        tenant_id: get("AZURE_TENANT_ID").ok_or_else(|| missing("AZURE_TENANT_ID"))?,
        client_id: get("AZURE_CLIENT_ID").ok_or_else(|| missing("AZURE_CLIENT_ID"))?,
        client_secret,
        service_account,
        subscription_id: get("AZURE_SUBSCRIPTION_ID"),
        name,
    })
}

fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .split('.')
            .all(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-'))
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
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

/// (is a Secret, name) of a `spec.files` source.
type SourceKey = (bool, String);
/// Key → contents of a ConfigMap or Secret.
type FileData = BTreeMap<String, Vec<u8>>;

/// Distinct ConfigMaps and Secrets one RemoteCommand's `spec.files` may name.
pub const MAX_FILE_SOURCES: usize = 8;

/// Label a Secret must carry (value `"true"`) before a RemoteCommand may send it as a file.
pub const ALLOW_AS_FILE_LABEL: &str = "kubeinvoke.io/allow-as-file";

/// Reads the files of `spec.files` from ConfigMaps and Secrets in `namespace`.
///
/// A tenant's resource can reach every Secret of its namespace, so a Secret is used only when it
/// opted in with [`ALLOW_AS_FILE_LABEL`], and never one of `credential_secrets` (whatever its
/// labels). Sizes are checked before anything is copied: the files together may hold at most
/// `max_bytes` (uncompressed), so no spec can make the operator copy more than that.
///
/// Memory is paid for before it is used: the largest object's size per object to read, from
/// `limits`' shared budget; once read, what they brought (whole objects, whatever `items`
/// selects, and the copies) is kept and the rest given back; the returned [`Held`] keeps it until
/// the caller drops it (after the dispatch). At most [`MAX_FILE_SOURCES`] objects are read, of
/// `1.5 × max_bytes` in all.
pub async fn collect_files(
    client: &Client,
    limits: &Limits,
    namespace: &str,
    sources: &[FileSource],
    credential_secrets: &[&str],
    max_bytes: usize,
) -> Result<(Vec<File>, Held), Failure> {
    let mut fetched: BTreeMap<SourceKey, Option<FileData>> = BTreeMap::new();
    let mut selected: Vec<(String, SourceKey, String)> = Vec::new();
    let mut total = 0usize;
    // What the reads may bring, taken at once (whoever holds bytes never waits for more).
    let distinct: std::collections::BTreeSet<_> = sources
        .iter()
        .map(|s| {
            (
                s.secret_ref.is_some(),
                s.config_map_ref
                    .as_ref()
                    .or(s.secret_ref.as_ref())
                    .map(|r| &r.name),
            )
        })
        .collect();
    let mut held = if distinct.is_empty() {
        Held::default()
    } else {
        limits
            .hold(
                namespace,
                distinct.len().min(MAX_FILE_SOURCES) * MAX_OBJECT_BYTES,
            )
            .await
    };
    let mut fetched_bytes = 0usize;
    let mut kept = 0usize;
    let max_fetched = max_bytes.saturating_add(max_bytes / 2);
    for (index, source) in sources.iter().enumerate() {
        let (is_secret, keys_ref) = match (&source.config_map_ref, &source.secret_ref) {
            (Some(r), None) => (false, r),
            (None, Some(r)) => (true, r),
            _ => {
                return Err(Failure::terminal(
                    Reason::InvalidSpec,
                    format!(
                        "spec.files[{index}] must set exactly one of configMapRef or secretRef"
                    ),
                ));
            }
        };
        let kind = if is_secret { "Secret" } else { "ConfigMap" };
        let key = (is_secret, keys_ref.name.clone());
        if !fetched.contains_key(&key) {
            if fetched.len() == MAX_FILE_SOURCES {
                return Err(Failure::terminal(
                    Reason::InvalidSpec,
                    format!(
                        "spec.files names more than {MAX_FILE_SOURCES} ConfigMaps and Secrets (reached at spec.files[{index}])"
                    ),
                ));
            }
            let data = if is_secret {
                file_secret(client, namespace, &keys_ref.name, index, credential_secrets).await?
            } else {
                Api::<ConfigMap>::namespaced(client.clone(), namespace)
                    .get_opt(&keys_ref.name)
                    .await?
                    .map(config_map_data)
            };
            let size: usize = data.iter().flatten().map(|(k, v)| k.len() + v.len()).sum();
            fetched_bytes = fetched_bytes.saturating_add(size);
            if fetched_bytes > max_fetched {
                return Err(Failure::terminal(
                    Reason::ContextTooLarge,
                    format!(
                        "the ConfigMaps and Secrets of spec.files hold more than {max_fetched} bytes together \
                         (whole objects count, whatever items selects; reached at {kind} {namespace}/{}, spec.files[{index}])",
                        keys_ref.name
                    ),
                ));
            }
            // What stays of each object: its data and the files copied from it.
            kept = kept.saturating_add(size.saturating_mul(2).min(MAX_OBJECT_BYTES));
            fetched.insert(key.clone(), data);
        }
        let Some(data) = fetched.get(&key).and_then(Option::as_ref) else {
            return Err(Failure::terminal(
                Reason::FileNotFound,
                format!(
                    "{kind} {namespace}/{} (spec.files[{index}]) does not exist",
                    keys_ref.name
                ),
            ));
        };
        let wanted: Vec<(String, String)> = if keys_ref.items.is_empty() {
            data.keys().map(|k| (k.clone(), k.clone())).collect()
        } else {
            keys_ref
                .items
                .iter()
                .map(|i| {
                    (
                        i.key.clone(),
                        i.path.clone().unwrap_or_else(|| i.key.clone()),
                    )
                })
                .collect()
        };
        for (data_key, path) in wanted {
            let Some(contents) = data.get(&data_key) else {
                return Err(Failure::terminal(
                    Reason::FileNotFound,
                    format!(
                        "{kind} {namespace}/{} has no key {data_key} (spec.files[{index}])",
                        keys_ref.name
                    ),
                ));
            };
            total = total.saturating_add(contents.len());
            if total > max_bytes {
                return Err(Failure::terminal(
                    Reason::ContextTooLarge,
                    format!(
                        "spec.files add up to more than {max_bytes} bytes (reached at {kind} {namespace}/{} key {data_key}, spec.files[{index}])",
                        keys_ref.name
                    ),
                ));
            }
            selected.push((path, key.clone(), data_key));
        }
    }
    held.keep(kept);
    // Only now, with the total known to fit, are the contents copied.
    let files = selected
        .into_iter()
        .map(|(path, source, data_key)| {
            let contents = fetched
                .get(&source)
                .and_then(Option::as_ref)
                .and_then(|d| d.get(&data_key))
                .cloned()
                .unwrap_or_default();
            File { path, contents }
        })
        .collect();
    Ok((files, held))
}

fn config_map_data(cm: ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let mut data: BTreeMap<String, Vec<u8>> = cm
        .data
        .into_iter()
        .flatten()
        .map(|(k, v)| (k, v.into_bytes()))
        .collect();
    data.extend(cm.binary_data.into_iter().flatten().map(|(k, v)| (k, v.0)));
    data
}

/// A Secret named by `spec.files`, if it may be used as one (see [`collect_files`]).
async fn file_secret(
    client: &Client,
    namespace: &str,
    name: &str,
    index: usize,
    credential_secrets: &[&str],
) -> Result<Option<BTreeMap<String, Vec<u8>>>, Failure> {
    if credential_secrets.contains(&name) {
        return Err(Failure::terminal(
            Reason::FileNotAllowed,
            format!(
                "Secret {namespace}/{name} (spec.files[{index}]) holds Azure credentials and is never sent as a file"
            ),
        ));
    }
    let Some(secret) = Api::<Secret>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await?
    else {
        return Ok(None);
    };
    if !allowed_as_file(&secret) {
        return Err(Failure::terminal(
            Reason::FileNotAllowed,
            format!(
                "Secret {namespace}/{name} (spec.files[{index}]) does not carry the label \
                 {ALLOW_AS_FILE_LABEL}: \"true\"; label it to let RemoteCommands send it as a file"
            ),
        ));
    }
    // A Secret that looks like a credential is refused too, labelled or not.
    let data = secret_data(&secret);
    if data.contains_key("AZURE_CLIENT_SECRET") || data.contains_key("AZURE_CLIENT_ID") {
        return Err(Failure::terminal(
            Reason::FileNotAllowed,
            format!(
                "Secret {namespace}/{name} (spec.files[{index}]) holds Azure credentials and is never sent as a file"
            ),
        ));
    }
    Ok(Some(data))
}

fn allowed_as_file(secret: &Secret) -> bool {
    secret
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(ALLOW_AS_FILE_LABEL))
        .is_some_and(|v| v == "true")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_client_secret() {
        let c = SecretCredential {
            namespace: "ns".into(),
            name: "creds".into(),
            resource_version: "1".into(),
            tenant_id: "t".into(),
            client_id: "c".into(),
            client_secret: Some("super-secret-value".into()),
            service_account: None,
            subscription_id: None,
        };
        let shown = format!("{:?}", CredentialSource::Secret(c));
        assert!(
            !shown.contains("super-secret-value") && shown.contains("<redacted>"),
            "{shown}"
        );
    }
}
