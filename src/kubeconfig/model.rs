//! Typed model of a kubeconfig (`apiVersion: v1`, `kind: Config`). Fields this module does not
//! use are kept in `extra` maps, so a kubeconfig survives parsing and rendering unchanged.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::sensitive::SecretString;

/// Unknown or unused fields, kept verbatim (sorted, so rendering is deterministic).
pub type Extra = BTreeMap<String, Value>;

/// A whole kubeconfig document.
#[derive(Serialize, Deserialize, Clone, PartialEq, Default)]
pub struct Kubeconfig {
    #[serde(
        rename = "apiVersion",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub clusters: Vec<NamedCluster>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub contexts: Vec<NamedContext>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub users: Vec<NamedUser>,
    #[serde(
        rename = "current-context",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub current_context: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl fmt::Debug for Kubeconfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kubeconfig")
            .field("current_context", &self.current_context)
            .field("clusters", &self.clusters)
            .field("contexts", &self.contexts)
            .field("users", &self.users)
            .field("extra_keys", &self.extra.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// `clusters[]`.
#[derive(Serialize, Deserialize, Clone, PartialEq, Debug)]
pub struct NamedCluster {
    pub name: String,
    #[serde(default)]
    pub cluster: Cluster,
}

/// `clusters[].cluster`: where the API server is and how to trust it. Nothing here is secret.
#[derive(Serialize, Deserialize, Clone, PartialEq, Debug, Default)]
pub struct Cluster {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(
        rename = "tls-server-name",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub tls_server_name: Option<String>,
    #[serde(
        rename = "insecure-skip-tls-verify",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub insecure_skip_tls_verify: Option<bool>,
    /// A file path: not usable inside a Secret.
    #[serde(
        rename = "certificate-authority",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub certificate_authority: Option<String>,
    /// Base64 of the PEM CA bundle.
    #[serde(
        rename = "certificate-authority-data",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub certificate_authority_data: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `contexts[]`.
#[derive(Serialize, Deserialize, Clone, PartialEq, Debug)]
pub struct NamedContext {
    pub name: String,
    #[serde(default)]
    pub context: Context,
}

/// `contexts[].context`: a cluster and a user, by name.
#[derive(Serialize, Deserialize, Clone, PartialEq, Debug, Default)]
pub struct Context {
    #[serde(default)]
    pub cluster: String,
    #[serde(default)]
    pub user: String,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `users[]`.
#[derive(Serialize, Deserialize, Clone, PartialEq, Debug)]
pub struct NamedUser {
    pub name: String,
    #[serde(default)]
    pub user: User,
}

/// `users[].user`: how to authenticate. Secret fields are [`SecretString`]s; `extra` may hold
/// secrets too (e.g. `auth-provider` tokens), so `Debug` only says which fields are set.
#[derive(Serialize, Deserialize, Clone, PartialEq, Default)]
pub struct User {
    /// Base64 of the PEM client certificate.
    #[serde(
        rename = "client-certificate-data",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_certificate_data: Option<String>,
    /// Base64 of the PEM private key.
    #[serde(
        rename = "client-key-data",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_key_data: Option<SecretString>,
    /// A file path: not usable inside a Secret.
    #[serde(
        rename = "client-certificate",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_certificate: Option<String>,
    /// A file path: not usable inside a Secret.
    #[serde(
        rename = "client-key",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<SecretString>,
    /// A file path: not usable inside a Secret.
    #[serde(rename = "tokenFile", default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<SecretString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<Exec>,
    /// Legacy auth provider plugin (`format=azure` gives `name: azure`); kept as data.
    #[serde(
        rename = "auth-provider",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub auth_provider: Option<Value>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |present: bool| if present { "<set>" } else { "<unset>" };
        f.debug_struct("User")
            .field(
                "client_certificate_data",
                &set(self.client_certificate_data.is_some()),
            )
            .field("client_key_data", &set(self.client_key_data.is_some()))
            .field("client_certificate", &self.client_certificate)
            .field("client_key", &self.client_key)
            .field("token", &set(self.token.is_some()))
            .field("token_file", &self.token_file)
            .field("username", &set(self.username.is_some()))
            .field("password", &set(self.password.is_some()))
            .field("exec", &self.exec.as_ref().map(|e| &e.command))
            .field("auth_provider", &set(self.auth_provider.is_some()))
            .field("extra_keys", &self.extra.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// `users[].user.exec`: a credential plugin such as kubelogin.
#[derive(Serialize, Deserialize, Clone, PartialEq, Default)]
pub struct Exec {
    #[serde(
        rename = "apiVersion",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub api_version: Option<String>,
    #[serde(default)]
    pub command: String,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub args: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub env: Vec<ExecEnv>,
    #[serde(
        rename = "installHint",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub install_hint: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `exec.env[]`. Values may be secret.
#[derive(Serialize, Deserialize, Clone, PartialEq, Default)]
pub struct ExecEnv {
    pub name: String,
    #[serde(default)]
    pub value: SecretString,
}

/// Kubeconfigs written by hand or by Go tools may say `users: null`; read it as empty.
fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}
