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

/// The other way round, for people who want a kubeconfig file from an Argo CD cluster Secret
/// (`kubectl invoke kubeconfig`): a one-context kubeconfig named `name` with the Secret's
/// `server` and the credentials of its `config`. The result holds credentials.
pub fn kubeconfig_from_cluster_secret(
    name: &str,
    server: &str,
    config: &[u8],
) -> Result<String, String> {
    let config: serde_json::Value =
        serde_json::from_slice(config).map_err(|e| format!("config is not JSON: {e}"))?;
    let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
    let tls = &config["tlsClientConfig"];
    let mut cluster = serde_json::json!({ "server": server });
    if let Some(ca) = text(&tls["caData"]) {
        cluster["certificate-authority-data"] = ca.into();
    }
    if tls["insecure"].as_bool() == Some(true) {
        cluster["insecure-skip-tls-verify"] = true.into();
    }
    if let Some(sni) = text(&tls["serverName"]) {
        cluster["tls-server-name"] = sni.into();
    }
    let mut user = serde_json::json!({});
    for (from, to) in [
        (&tls["certData"], "client-certificate-data"),
        (&tls["keyData"], "client-key-data"),
        (&config["bearerToken"], "token"),
        (&config["username"], "username"),
        (&config["password"], "password"),
    ] {
        if let Some(v) = text(from) {
            user[to] = v.into();
        }
    }
    let exec = &config["execProviderConfig"];
    if let Some(command) = text(&exec["command"]) {
        let env: Vec<serde_json::Value> = exec["env"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| serde_json::json!({ "name": k, "value": v }))
                    .collect()
            })
            .unwrap_or_default();
        user["exec"] = serde_json::json!({
            "command": command,
            "args": exec["args"].as_array().cloned().unwrap_or_default(),
            "env": env,
            "apiVersion": text(&exec["apiVersion"]).unwrap_or_else(|| "client.authentication.k8s.io/v1beta1".into()),
        });
    }
    let kubeconfig = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": name, "cluster": cluster }],
        "users": [{ "name": name, "user": user }],
        "contexts": [{ "name": name, "context": { "cluster": name, "user": name } }],
        "current-context": name,
    });
    serde_saphyr::to_string(&kubeconfig).map_err(|e| format!("cannot write YAML: {e}"))
}

#[cfg(test)]
#[path = "argocd_tests.rs"]
mod tests;
