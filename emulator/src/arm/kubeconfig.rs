//! Kubeconfig documents as AKS and AKS Arc return them (base64 of YAML), plus content faults.

use base64::Engine as _;
use serde_json::{Value, json};

use crate::entra::{AKS_CLIENT_APP, AKS_SERVER_APP};
use crate::world::{KubeconfigFault, KubeconfigSpec};

#[derive(Debug, Clone)]
pub enum User {
    Token(String),
    /// kubelogin exec plugin for an AAD cluster (AKS `format=exec`).
    Exec {
        tenant: String,
    },
    /// Legacy `auth-provider: azure` (AKS `format=azure`).
    AuthProvider {
        tenant: String,
    },
    /// Static admin credentials: client certificate/key (base64 PEM) and/or a token.
    Admin {
        cert: Option<String>,
        key: Option<String>,
        token: Option<String>,
    },
}

pub struct Doc<'a> {
    pub cluster: &'a str,
    pub context: String,
    pub user_name: String,
    pub server: String,
    pub ca_data: String,
    pub user: User,
}

fn user_json(user: &User) -> Value {
    match user {
        User::Token(t) => json!({"token": t}),
        User::Exec { tenant } => json!({"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "args": ["get-token", "--environment", "AzurePublicCloud", "--server-id", AKS_SERVER_APP,
                     "--client-id", AKS_CLIENT_APP, "--tenant-id", tenant, "--login", "devicecode"],
            "command": "kubelogin",
            "env": null,
            "installHint": "\nkubelogin is not installed which is required to connect to AAD enabled cluster.\n\nTo learn more, please go to https://aka.ms/aks/kubelogin\n",
            "provideClusterInfo": false,
        }}),
        User::AuthProvider { tenant } => json!({"auth-provider": {
            "config": {
                "apiserver-id": AKS_SERVER_APP,
                "client-id": AKS_CLIENT_APP,
                "config-mode": "1",
                "environment": "AzurePublicCloud",
                "tenant-id": tenant,
            },
            "name": "azure",
        }}),
        User::Admin { cert, key, token } => {
            let mut m = serde_json::Map::new();
            if let Some(c) = cert {
                m.insert("client-certificate-data".into(), json!(c));
            }
            if let Some(k) = key {
                m.insert("client-key-data".into(), json!(k));
            }
            if let Some(t) = token {
                m.insert("token".into(), json!(t));
            }
            Value::Object(m)
        }
    }
}

/// The YAML text of a kubeconfig; `with_clusters: false` leaves `clusters` empty.
pub fn render(doc: &Doc<'_>, with_clusters: bool) -> String {
    let clusters = if with_clusters {
        json!([{"cluster": {"certificate-authority-data": doc.ca_data, "server": doc.server}, "name": doc.cluster}])
    } else {
        json!([])
    };
    let value = json!({
        "apiVersion": "v1",
        "clusters": clusters,
        "contexts": [{"context": {"cluster": doc.cluster, "user": doc.user_name}, "name": doc.context}],
        "current-context": doc.context,
        "kind": "Config",
        "preferences": {},
        "users": [{"name": doc.user_name, "user": user_json(&doc.user)}],
    });
    serde_saphyr::to_string(&value).unwrap_or_default()
}

/// The `value` field: base64 of the YAML, or deliberately broken content.
pub fn encode(doc: &Doc<'_>, fault: Option<KubeconfigFault>) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    match fault {
        None => b64(&render(doc, true)),
        Some(KubeconfigFault::InvalidBase64) => "%%% this is not base64 %%%".to_string(),
        Some(KubeconfigFault::InvalidYaml) => {
            b64("apiVersion: v1\nclusters: [ {unclosed\n  - : :\n")
        }
        // An empty list has no value at all; where a value is still needed (hybrid), it is empty.
        Some(KubeconfigFault::Empty | KubeconfigFault::EmptyList) => String::new(),
        Some(KubeconfigFault::NoClusters) => b64(&render(doc, false)),
        Some(
            f @ (KubeconfigFault::InsecureSkipTlsVerify
            | KubeconfigFault::ProxyUrl
            | KubeconfigFault::ForeignExec),
        ) => {
            let text = render(doc, true);
            let mut v: Value = serde_saphyr::from_str(&text).unwrap_or_default();
            match f {
                KubeconfigFault::InsecureSkipTlsVerify => {
                    v["clusters"][0]["cluster"]["insecure-skip-tls-verify"] = json!(true)
                }
                KubeconfigFault::ProxyUrl => {
                    v["clusters"][0]["cluster"]["proxy-url"] = json!("http://127.0.0.1:1")
                }
                _ => {
                    v["users"][0]["user"] = json!({"exec": {
                        "apiVersion": "client.authentication.k8s.io/v1beta1",
                        "command": "sh",
                        "args": ["-c", "echo pwned"],
                    }})
                }
            }
            b64(&serde_saphyr::to_string(&v).unwrap_or_default())
        }
    }
}

/// Server URL, CA data (base64 PEM) for a cluster.
pub fn endpoint(
    spec: &KubeconfigSpec,
    public: bool,
    default_server: String,
    ca_pem: &str,
) -> (String, String) {
    let server = if public {
        spec.public_server.clone().or_else(|| spec.server.clone())
    } else {
        spec.server.clone()
    }
    .unwrap_or(default_server);
    let ca = spec
        .certificate_authority_data
        .clone()
        .unwrap_or_else(|| base64::engine::general_purpose::STANDARD.encode(ca_pem));
    (server, ca)
}

/// Static admin user from the spec, with a stable fallback token.
pub fn admin_user(spec: &KubeconfigSpec, cluster: &str) -> User {
    let has_cert = spec.admin_client_certificate.is_some() && spec.admin_client_key.is_some();
    User::Admin {
        cert: spec.admin_client_certificate.clone(),
        key: spec.admin_client_key.clone(),
        token: spec
            .admin_token
            .clone()
            .or_else(|| (!has_cert).then(|| format!("emulator-admin-token-{cluster}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(user: User) -> Doc<'static> {
        Doc {
            cluster: "aks1",
            context: "aks1".into(),
            user_name: "clusterUser_rg1_aks1".into(),
            server: "https://127.0.0.1:6443".into(),
            ca_data: "Q0E=".into(),
            user,
        }
    }

    #[test]
    fn exec_user_like_aks() {
        let y = render(
            &doc(User::Exec {
                tenant: "t1".into(),
            }),
            true,
        );
        assert!(y.contains("command: kubelogin"), "{y}");
        assert!(y.contains("client.authentication.k8s.io/v1beta1"));
        assert!(y.contains("devicecode"));
        let v: Value = serde_saphyr::from_str(&y).unwrap();
        assert_eq!(
            v["clusters"][0]["cluster"]["server"],
            "https://127.0.0.1:6443"
        );
    }

    #[test]
    fn faults_break_content() {
        let d = doc(User::Token("x".into()));
        assert_eq!(encode(&d, Some(KubeconfigFault::Empty)), "");
        assert!(
            base64::engine::general_purpose::STANDARD
                .decode(encode(&d, Some(KubeconfigFault::InvalidBase64)))
                .is_err()
        );
        let raw = base64::engine::general_purpose::STANDARD
            .decode(encode(&d, Some(KubeconfigFault::NoClusters)))
            .unwrap();
        let v: Value = serde_saphyr::from_slice(&raw).unwrap();
        assert_eq!(v["clusters"], json!([]));
        let raw = base64::engine::general_purpose::STANDARD
            .decode(encode(&d, Some(KubeconfigFault::InvalidYaml)))
            .unwrap();
        assert!(serde_saphyr::from_slice::<Value>(&raw).is_err());
    }
}
