//! Tokens for workload identity federation, minted per namespace: a credential Secret that names
//! `AZURE_SERVICE_ACCOUNT` gets a short-lived token of that ServiceAccount — in the resource's own
//! namespace — from the TokenRequest API, with Entra ID's exchange audience. The federated
//! credential in Entra ID names `system:serviceaccount:<namespace>:<name>`, so the identity works
//! for that namespace only. The operator's own token is never presented for anyone's client id.

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};

use crate::azure::credentials::{ServiceAccountRef, ServiceAccountTokens, TOKEN_EXCHANGE_AUDIENCE};

/// Ten minutes, the API server's minimum: each token buys one access token, which is cached.
const TOKEN_SECONDS: i64 = 600;

#[derive(Clone)]
pub struct KubeServiceAccountTokens {
    client: kube::Client,
}

impl KubeServiceAccountTokens {
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }
}

impl std::fmt::Debug for KubeServiceAccountTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KubeServiceAccountTokens")
    }
}

#[async_trait::async_trait]
impl ServiceAccountTokens for KubeServiceAccountTokens {
    async fn token(&self, account: &ServiceAccountRef) -> Result<String, String> {
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: vec![TOKEN_EXCHANGE_AUDIENCE.to_string()],
                expiration_seconds: Some(TOKEN_SECONDS),
                ..Default::default()
            },
            ..Default::default()
        };
        let response = Api::<ServiceAccount>::namespaced(self.client.clone(), &account.namespace)
            .create_token_request(&account.name, &PostParams::default(), &request)
            .await
            .map_err(|e| match e {
                kube::Error::Api(s) if s.code == 404 => format!(
                    "ServiceAccount {}/{} does not exist",
                    account.namespace, account.name
                ),
                other => format!("TokenRequest: {other}"),
            })?;
        response
            .status
            .map(|s| s.token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| "TokenRequest answered without a token".to_string())
    }
}
