//! The `config` JSON of an Argo CD cluster Secret, built from the current context's cluster and
//! user: `tlsClientConfig`, then `bearerToken`, basic auth or `execProviderConfig`.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;

use super::error::KubeconfigError;
use super::parse::{ParsedKubeconfig, decode_base64};

/// Argo CD's `ClusterConfig` (the subset a kubeconfig can fill). Only set fields are written.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ClusterConfig<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bearer_token: Option<&'a str>,
    tls_client_config: TlsClientConfig<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exec_provider_config: Option<ExecProviderConfig<'a>>,
}

/// Argo CD's `TLSClientConfig`; the `*Data` fields are `[]byte` in Go, so base64 of the PEM.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TlsClientConfig<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    insecure: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ca_data: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cert_data: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_data: Option<String>,
}

/// Argo CD's `ExecProviderConfig`; `env` is a map there, a list in kubeconfigs.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExecProviderConfig<'a> {
    command: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    args: &'a [String],
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    env: BTreeMap<&'a str, &'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_version: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    install_hint: Option<&'a str>,
}

/// Re-encodes kubeconfig base64 canonically (padded, one line), as Go's `[]byte` JSON decoding needs.
fn canonical_base64(
    parsed: &ParsedKubeconfig,
    value: Option<&str>,
    field: &'static str,
) -> Result<Option<String>, KubeconfigError> {
    value
        .map(|v| {
            decode_base64(v)
                .map(|bytes| STANDARD.encode(bytes))
                .ok_or_else(|| KubeconfigError::InvalidField {
                    credential: parsed.credential_name().to_owned(),
                    field,
                })
        })
        .transpose()
}

/// The `config` value, serialized deterministically (fixed field order, sorted env).
pub(crate) fn cluster_config_json(parsed: &ParsedKubeconfig) -> Result<Vec<u8>, KubeconfigError> {
    let cluster = parsed.cluster();
    let user = parsed.user();
    let config = ClusterConfig {
        username: user.username.as_deref(),
        password: user.password.as_ref().map(|p| p.expose()),
        bearer_token: user.token.as_ref().map(|t| t.expose()),
        tls_client_config: TlsClientConfig {
            insecure: cluster.insecure_skip_tls_verify,
            server_name: cluster.tls_server_name.as_deref(),
            ca_data: canonical_base64(
                parsed,
                cluster.certificate_authority_data.as_deref(),
                "certificate-authority-data",
            )?,
            cert_data: canonical_base64(
                parsed,
                user.client_certificate_data.as_deref(),
                "client-certificate-data",
            )?,
            key_data: canonical_base64(
                parsed,
                user.client_key_data.as_ref().map(|k| k.expose()),
                "client-key-data",
            )?,
        },
        exec_provider_config: user.exec.as_ref().map(|exec| ExecProviderConfig {
            command: &exec.command,
            args: &exec.args,
            env: exec
                .env
                .iter()
                .map(|e| (e.name.as_str(), e.value.expose()))
                .collect(),
            api_version: exec.api_version.as_deref(),
            install_hint: exec.install_hint.as_deref(),
        }),
    };
    serde_json::to_vec(&config).map_err(|_| KubeconfigError::Serialize {
        what: "Argo CD cluster config",
    })
}

#[cfg(test)]
#[path = "argocd_tests.rs"]
mod tests;
