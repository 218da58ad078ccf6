//! Reading the kubeconfigs ARM returns (`kubeconfigs[] {name, value: base64}`) into a validated
//! [`ParsedKubeconfig`], the facts the status needs, and the exec-to-token swap.

use std::fmt;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use k8s_openapi::jiff::Timestamp;

use super::error::KubeconfigError;
use super::expiry::{certificate_not_after, jwt_expiry};
use super::model::{Cluster, Kubeconfig, NamedContext, User};
use super::sensitive::SecretString;

/// Standard base64 that accepts input with or without padding.
pub(crate) const BASE64_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decodes base64 that may be wrapped over lines or padded with spaces.
pub(crate) fn decode_base64(value: &str) -> Option<Vec<u8>> {
    let compact: String = value.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    BASE64_LENIENT.decode(compact).ok()
}

/// A kubeconfig that has at least one cluster, context and user, whose current context resolves
/// to a cluster with a server and to a user.
#[derive(Clone, PartialEq)]
pub struct ParsedKubeconfig {
    credential_name: String,
    config: Kubeconfig,
    /// Index into `config.contexts` of the current context.
    current: usize,
    /// Expiry of a token put in by [`ParsedKubeconfig::swap_exec_for_token`], when the caller knows it.
    swapped_token_expiry: Option<Timestamp>,
}

impl fmt::Debug for ParsedKubeconfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParsedKubeconfig")
            .field("credential_name", &self.credential_name)
            .field("config", &self.config)
            .field("swapped_token_expiry", &self.swapped_token_expiry)
            .finish()
    }
}

/// Reads the first kubeconfig of an ARM list-credential response, as `az` and kubelogin do.
/// `values` are `(name, base64 value)` pairs in response order.
pub fn parse_credentials(values: &[(String, String)]) -> Result<ParsedKubeconfig, KubeconfigError> {
    let (name, value) = values.first().ok_or(KubeconfigError::Empty)?;
    ParsedKubeconfig::from_base64(name, value)
}

impl ParsedKubeconfig {
    /// Parses one base64 kubeconfig named `credential_name`.
    pub fn from_base64(credential_name: &str, value: &str) -> Result<Self, KubeconfigError> {
        let bytes = decode_base64(value).ok_or_else(|| KubeconfigError::InvalidBase64 {
            credential: credential_name.to_owned(),
        })?;
        Self::from_yaml(credential_name, &bytes)
    }

    /// Parses one kubeconfig document (YAML or JSON bytes).
    pub fn from_yaml(credential_name: &str, yaml: &[u8]) -> Result<Self, KubeconfigError> {
        let credential = || credential_name.to_owned();
        let text = std::str::from_utf8(yaml).map_err(|_| KubeconfigError::InvalidYaml {
            credential: credential(),
            line: None,
            column: None,
        })?;
        // Generic YAML first, so syntax errors and shape errors are told apart. serde's own
        // messages quote the offending value, which may be a token: only positions are kept.
        let value: serde_json::Value = serde_saphyr::from_str(text).map_err(|e| {
            let at = e.location();
            KubeconfigError::InvalidYaml {
                credential: credential(),
                line: at.map(|l| l.line()),
                column: at.map(|l| l.column()),
            }
        })?;
        if !value.is_object() {
            return Err(KubeconfigError::NotKubeconfig {
                credential: credential(),
                what: "the document is not a mapping",
            });
        }
        let config: Kubeconfig =
            serde_json::from_value(value).map_err(|_| KubeconfigError::NotKubeconfig {
                credential: credential(),
                what: "a field has the wrong type or a list entry has no name",
            })?;
        Self::validate(credential_name, config)
    }

    fn validate(credential_name: &str, mut config: Kubeconfig) -> Result<Self, KubeconfigError> {
        super::trust::sanitize(credential_name, &mut config)?;
        let credential = credential_name.to_owned();
        if config.clusters.is_empty() {
            return Err(KubeconfigError::NoClusters { credential });
        }
        if config.contexts.is_empty() {
            return Err(KubeconfigError::NoContexts { credential });
        }
        if config.users.is_empty() {
            return Err(KubeconfigError::NoUsers { credential });
        }
        let current = match config.current_context.as_deref().filter(|c| !c.is_empty()) {
            None => 0,
            Some(wanted) => config
                .contexts
                .iter()
                .position(|c| c.name == wanted)
                .ok_or_else(|| KubeconfigError::UnresolvedContext {
                    credential: credential.clone(),
                    kind: "context",
                    name: wanted.to_owned(),
                })?,
        };
        // Written out, so every consumer picks the same context even when ARM left it unset.
        config.current_context = Some(config.contexts[current].name.clone());
        let parsed = Self {
            credential_name: credential,
            config,
            current,
            swapped_token_expiry: None,
        };
        let context = parsed.current_context();
        let cluster_name = context.context.cluster.clone();
        let cluster = parsed.find_cluster(&cluster_name)?;
        parsed.find_user_index()?;
        if cluster.server.as_deref().is_none_or(str::is_empty) {
            return Err(KubeconfigError::NoServer {
                credential: parsed.credential_name.clone(),
                cluster: cluster_name,
            });
        }
        Ok(parsed)
    }

    fn find_cluster(&self, name: &str) -> Result<&Cluster, KubeconfigError> {
        self.config
            .clusters
            .iter()
            .find(|c| c.name == name)
            .map(|c| &c.cluster)
            .ok_or_else(|| KubeconfigError::UnresolvedContext {
                credential: self.credential_name.clone(),
                kind: "cluster",
                name: name.to_owned(),
            })
    }

    fn find_user_index(&self) -> Result<usize, KubeconfigError> {
        let name = &self.current_context().context.user;
        self.config
            .users
            .iter()
            .position(|u| &u.name == name)
            .ok_or_else(|| KubeconfigError::UnresolvedContext {
                credential: self.credential_name.clone(),
                kind: "user",
                name: name.clone(),
            })
    }

    /// The name ARM gave this kubeconfig (e.g. `clusterUser`).
    pub fn credential_name(&self) -> &str {
        &self.credential_name
    }

    /// The whole kubeconfig.
    pub fn config(&self) -> &Kubeconfig {
        &self.config
    }

    /// The current context (or the first one when the kubeconfig named none).
    pub fn current_context(&self) -> &NamedContext {
        &self.config.contexts[self.current]
    }

    /// Name of the current context's cluster entry in the kubeconfig.
    pub fn kubeconfig_cluster_name(&self) -> &str {
        &self.current_context().context.cluster
    }

    /// The current context's cluster.
    pub fn cluster(&self) -> &Cluster {
        self.find_cluster(self.kubeconfig_cluster_name())
            .expect("checked when parsed")
    }

    /// Name of the current context's user entry.
    pub fn user_name(&self) -> &str {
        &self.current_context().context.user
    }

    /// The current context's user.
    pub fn user(&self) -> &User {
        &self.config.users[self.find_user_index().expect("checked when parsed")].user
    }

    /// API server URL of the current context's cluster.
    pub fn server(&self) -> &str {
        self.cluster().server.as_deref().unwrap_or_default()
    }

    /// The cluster's name for labels and Argo CD: the ARM resource name when the caller has it,
    /// else the kubeconfig's cluster entry name.
    pub fn cluster_name(&self, arm_cluster_name: Option<&str>) -> String {
        arm_cluster_name
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| self.kubeconfig_cluster_name())
            .to_owned()
    }

    /// Whether any user runs a credential plugin (`exec`, e.g. kubelogin).
    pub fn has_exec_user(&self) -> bool {
        self.config.users.iter().any(|u| u.user.exec.is_some())
    }

    /// Whether any user uses a legacy `auth-provider` (e.g. `azure` from `format=azure`).
    pub fn has_auth_provider(&self) -> bool {
        self.config
            .users
            .iter()
            .any(|u| u.user.auth_provider.is_some())
    }

    /// The earliest known expiry of the current user's credentials: the client certificate's
    /// NotAfter and the token's expiry (the one given to the swap, else a JWT's `exp`). `None`
    /// when neither is known, e.g. for an opaque token or an exec user.
    pub fn expiry(&self) -> Option<Timestamp> {
        let user = self.user();
        let cert = user
            .client_certificate_data
            .as_deref()
            .and_then(certificate_not_after);
        let token = self
            .swapped_token_expiry
            .or_else(|| user.token.as_ref().and_then(|t| jwt_expiry(t.expose())));
        [cert, token].into_iter().flatten().min()
    }

    /// Replaces every user that runs an `exec` plugin or an `auth-provider` with a bearer-token
    /// user. Only the authentication changes (certificates, basic auth and token files of those
    /// users go too, so the token is the one credential); impersonation and other fields stay.
    /// Users that authenticate without a plugin (admin certificates, static tokens) are left
    /// alone. `expires_at` is the token's expiry when known (it also counts for `expiry()`).
    /// Returns how many users were replaced.
    pub fn swap_exec_for_token(
        &mut self,
        token: &SecretString,
        expires_at: Option<Timestamp>,
    ) -> usize {
        let current_user = self.find_user_index().expect("checked when parsed");
        let mut swapped = 0;
        let mut current_swapped = false;
        for (i, named) in self.config.users.iter_mut().enumerate() {
            let user = &mut named.user;
            if user.exec.is_none() && user.auth_provider.is_none() {
                continue;
            }
            user.exec = None;
            user.auth_provider = None;
            user.client_certificate_data = None;
            user.client_key_data = None;
            user.client_certificate = None;
            user.client_key = None;
            user.token_file = None;
            user.username = None;
            user.password = None;
            user.token = Some(token.clone());
            swapped += 1;
            current_swapped |= i == current_user;
        }
        if current_swapped {
            self.swapped_token_expiry = expires_at.or_else(|| jwt_expiry(token.expose()));
        }
        swapped
    }
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
