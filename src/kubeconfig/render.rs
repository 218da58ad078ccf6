//! Lays a parsed kubeconfig out as the Secret its consumer reads (kubectl, Flux, Cluster API,
//! Argo CD), and hashes the result so the controller writes the Secret only when it changes.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use sha2::{Digest, Sha256};

use super::argocd::cluster_config_json;
use super::error::KubeconfigError;
use super::model::Kubeconfig;
use super::parse::ParsedKubeconfig;
use super::sensitive::SecretBytes;
use crate::api::kubeconfig_export::{Authentication, SecretFormat, SecretSpec};

/// Label every exported Secret carries.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Its value.
pub const MANAGED_BY: &str = "kubeinvoke";
/// Data key of the `Kubeconfig` format when `spec.secret.key` is unset.
pub const DEFAULT_KUBECONFIG_KEY: &str = "kubeconfig";
/// Data key of the Flux and Cluster API formats.
pub const VALUE_KEY: &str = "value";
/// Secret type Cluster API gives kubeconfig Secrets.
pub const CLUSTER_API_SECRET_TYPE: &str = "cluster.x-k8s.io/secret";
/// Label naming the Cluster API cluster.
pub const CLUSTER_API_CLUSTER_NAME_LABEL: &str = "cluster.x-k8s.io/cluster-name";
/// Label that makes a Secret an Argo CD cluster.
pub const ARGOCD_SECRET_TYPE_LABEL: &str = "argocd.argoproj.io/secret-type";
const OPAQUE: &str = "Opaque";

/// What rendering needs besides the kubeconfig and the Secret spec.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RenderContext {
    /// `spec.authentication`.
    pub authentication: Authentication,
    /// The ARM resource name of the cluster, when known; else the kubeconfig's cluster name is used.
    pub cluster_name: Option<String>,
}

/// A Secret's content, ready to be applied. `Debug` redacts the data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderedSecret {
    /// The Secret's `type`.
    pub type_: String,
    pub data: BTreeMap<String, SecretBytes>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

impl RenderedSecret {
    /// The data as a Secret's `data` field.
    pub fn data_as_byte_strings(&self) -> BTreeMap<String, ByteString> {
        self.data
            .iter()
            .map(|(k, v)| (k.clone(), ByteString(v.expose().to_vec())))
            .collect()
    }
}

/// Renders the Secret for `spec.format`. Fails, without partial output, when the consumer cannot
/// use this kubeconfig (a plugin it cannot run, a file path it cannot read).
pub fn render(
    parsed: &ParsedKubeconfig,
    spec: &SecretSpec,
    ctx: &RenderContext,
) -> Result<RenderedSecret, KubeconfigError> {
    check_plugins(parsed, spec.format, ctx.authentication)?;
    if spec.format != SecretFormat::Kubeconfig {
        check_self_contained(parsed, spec.format)?;
    }
    let cluster_name = parsed.cluster_name(ctx.cluster_name.as_deref());
    let mut own_labels = BTreeMap::new();
    let mut data = BTreeMap::new();
    let type_ = match spec.format {
        SecretFormat::Kubeconfig => {
            let key = spec.key.as_deref().filter(|k| !k.is_empty());
            let key = key.unwrap_or(DEFAULT_KUBECONFIG_KEY);
            data.insert(key.to_owned(), to_yaml(parsed.config())?);
            OPAQUE
        }
        SecretFormat::Flux => {
            data.insert(VALUE_KEY.to_owned(), to_yaml(parsed.config())?);
            OPAQUE
        }
        SecretFormat::ClusterApi => {
            if !is_label_value(&cluster_name) {
                return Err(KubeconfigError::InvalidClusterName { name: cluster_name });
            }
            data.insert(VALUE_KEY.to_owned(), to_yaml(parsed.config())?);
            own_labels.insert(CLUSTER_API_CLUSTER_NAME_LABEL.to_owned(), cluster_name);
            CLUSTER_API_SECRET_TYPE
        }
        SecretFormat::ArgoCd => {
            data.insert(
                "config".to_owned(),
                SecretBytes::new(cluster_config_json(parsed)?),
            );
            data.insert(
                "name".to_owned(),
                SecretBytes::new(cluster_name.into_bytes()),
            );
            data.insert(
                "server".to_owned(),
                SecretBytes::new(parsed.server().as_bytes()),
            );
            own_labels.insert(ARGOCD_SECRET_TYPE_LABEL.to_owned(), "cluster".to_owned());
            OPAQUE
        }
    };
    own_labels.insert(MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned());
    // The user's labels first, so the ones consumers and ownership depend on win.
    let mut labels = spec.labels.clone();
    labels.extend(own_labels);
    Ok(RenderedSecret {
        type_: type_.to_owned(),
        data,
        labels,
        annotations: spec.annotations.clone(),
    })
}

/// `sha256:<hex>` of everything [`render`] decides: type, data, labels and annotations (each
/// length-prefixed, maps in key order). Labels and annotations count because a change to
/// `spec.secret.labels` must reach the Secret too.
pub fn content_hash(secret: &RenderedSecret) -> String {
    fn put(hasher: &mut Sha256, bytes: &[u8]) {
        hasher.update((bytes.len() as u64).to_be_bytes());
        hasher.update(bytes);
    }
    fn put_map<'a>(
        hasher: &mut Sha256,
        entries: impl ExactSizeIterator<Item = (&'a str, &'a [u8])>,
    ) {
        hasher.update((entries.len() as u64).to_be_bytes());
        for (k, v) in entries {
            put(hasher, k.as_bytes());
            put(hasher, v);
        }
    }
    let mut hasher = Sha256::new();
    put(&mut hasher, secret.type_.as_bytes());
    put_map(
        &mut hasher,
        secret.data.iter().map(|(k, v)| (k.as_str(), v.expose())),
    );
    put_map(
        &mut hasher,
        secret
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes())),
    );
    put_map(
        &mut hasher,
        secret
            .annotations
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes())),
    );
    let digest = hasher.finalize();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for byte in digest.iter() {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// YAML with plain (not folded) scalars, which every kubeconfig reader accepts.
fn to_yaml(config: &Kubeconfig) -> Result<SecretBytes, KubeconfigError> {
    let mut options = serde_saphyr::SerializerOptions::default();
    options.prefer_block_scalars = false;
    serde_saphyr::to_string_with_options(config, options)
        .map(|s| SecretBytes::new(s.into_bytes()))
        .map_err(|_| KubeconfigError::Serialize { what: "kubeconfig" })
}

/// Rejects a credential plugin the consumer cannot run, and a plugin left in place although
/// `authentication: Token` asked for it to be swapped.
fn check_plugins(
    parsed: &ParsedKubeconfig,
    format: SecretFormat,
    authentication: Authentication,
) -> Result<(), KubeconfigError> {
    let user = parsed.user();
    let plugin = match (&user.exec, &user.auth_provider) {
        (Some(_), _) => "exec",
        (None, Some(_)) => "auth-provider",
        (None, None) => return Ok(()),
    };
    let token_requested = authentication == Authentication::Token;
    let consumer_runs_it = match format {
        SecretFormat::Kubeconfig | SecretFormat::ClusterApi => true,
        SecretFormat::ArgoCd => plugin == "exec",
        SecretFormat::Flux => false,
    };
    if consumer_runs_it && !token_requested {
        return Ok(());
    }
    Err(KubeconfigError::ExecUserUnsupported {
        format,
        plugin: plugin.to_owned(),
        swapped_requested: token_requested,
    })
}

/// Rejects file paths, which mean nothing to a controller reading the Secret.
fn check_self_contained(
    parsed: &ParsedKubeconfig,
    format: SecretFormat,
) -> Result<(), KubeconfigError> {
    let cluster = parsed.cluster();
    let user = parsed.user();
    let cluster_entry = ("cluster", parsed.kubeconfig_cluster_name());
    let user_entry = ("user", parsed.user_name());
    let paths = [
        (
            cluster.certificate_authority.is_some(),
            "certificate-authority",
            cluster_entry,
        ),
        (
            user.client_certificate.is_some(),
            "client-certificate",
            user_entry,
        ),
        (user.client_key.is_some(), "client-key", user_entry),
        (user.token_file.is_some(), "tokenFile", user_entry),
    ];
    match paths.into_iter().find(|(present, _, _)| *present) {
        None => Ok(()),
        Some((_, field, (kind, name))) => Err(KubeconfigError::NotSelfContained {
            format,
            entry: format!("{kind} {name}"),
            field,
        }),
    }
}

/// A Kubernetes label value: at most 63 characters of `[A-Za-z0-9-_.]`, alphanumeric at both ends.
fn is_label_value(value: &str) -> bool {
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    !value.is_empty()
        && value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && alnum(value.chars().next())
        && alnum(value.chars().last())
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
