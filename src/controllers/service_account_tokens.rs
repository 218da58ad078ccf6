//! Tokens for workload identity federation, minted per namespace: a credential Secret that names
//! `AZURE_SERVICE_ACCOUNT` gets a short-lived token of that ServiceAccount — in the resource's own
//! namespace — from the TokenRequest API, with Entra ID's exchange audience. The federated
//! credential in Entra ID names `system:serviceaccount:<namespace>:<name>`, so the identity works
//! for that namespace only. The operator's own token is never presented for anyone's client id.
//!
//! Naming a ServiceAccount is not enough to borrow it: its owner opts in to the client id, with the
//! Azure Workload Identity convention (`azure.workload.identity/client-id` on the ServiceAccount,
//! equal to the Secret's `AZURE_CLIENT_ID`), and the operator's own ServiceAccount is never lent.

use std::path::Path;

use base64::Engine;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};

use crate::azure::credentials::{ServiceAccountRef, ServiceAccountTokens, TOKEN_EXCHANGE_AUDIENCE};

/// Ten minutes, the API server's minimum: each token buys one access token, which is cached.
const TOKEN_SECONDS: i64 = 600;

/// The annotation by which a ServiceAccount's owner names the client id its tokens may be
/// exchanged for (Azure Workload Identity's convention).
pub const CLIENT_ID_ANNOTATION: &str = "azure.workload.identity/client-id";

/// Where a pod's own ServiceAccount token is mounted.
pub const POD_TOKEN_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

#[derive(Clone)]
pub struct KubeServiceAccountTokens {
    client: kube::Client,
    /// The operator's own ServiceAccount (namespace, name), when it runs in a pod.
    own: Option<(String, String)>,
}

impl KubeServiceAccountTokens {
    pub fn new(client: kube::Client, own: Option<(String, String)>) -> Self {
        Self { client, own }
    }

    /// Why `account` may not be used, if it may not: the operator's own, missing, or not opted
    /// in to the client id.
    fn refusal(&self, account: &ServiceAccountRef, sa: Option<&ServiceAccount>) -> Option<String> {
        let (ns, name, id) = (&account.namespace, &account.name, &account.client_id);
        if self.own.as_ref() == Some(&(ns.clone(), name.clone())) {
            return Some(format!(
                "ServiceAccount {ns}/{name} is the operator's own, whose identity is never lent to a credential Secret"
            ));
        }
        let Some(sa) = sa else {
            return Some(format!("ServiceAccount {ns}/{name} does not exist"));
        };
        let opted_in = sa
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(CLIENT_ID_ANNOTATION))
            .is_some_and(|v| v.trim().eq_ignore_ascii_case(id));
        (!opted_in).then(|| {
            format!(
                "ServiceAccount {ns}/{name} has not opted in to client id {id}: its owner annotates it \
                 {CLIENT_ID_ANNOTATION}: {id} (the Azure Workload Identity convention)"
            )
        })
    }
}

/// The ServiceAccount a pod runs as, from the `sub` of its mounted token
/// (`system:serviceaccount:<namespace>:<name>`); `None` outside a pod.
pub fn own_service_account(token_file: &Path) -> Option<(String, String)> {
    let token = std::fs::read_to_string(token_file).ok()?;
    let payload = token.trim().split('.').nth(1)?;
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&payload).ok()?;
    let sub = claims["sub"].as_str()?;
    let mut parts = sub.strip_prefix("system:serviceaccount:")?.splitn(2, ':');
    Some((parts.next()?.to_string(), parts.next()?.to_string()))
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
        let api = Api::<ServiceAccount>::namespaced(self.client.clone(), &account.namespace);
        let sa = api
            .get_opt(&account.name)
            .await
            .map_err(|e| format!("reading the ServiceAccount: {e}"))?;
        if let Some(why) = self.refusal(account, sa.as_ref()) {
            return Err(why);
        }
        let response = api
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

#[cfg(test)]
mod tests {
    use super::*;

    fn account(name: &str) -> ServiceAccountRef {
        ServiceAccountRef {
            namespace: "team-a".into(),
            name: name.into(),
            client_id: "11111111-2222-3333-4444-555555555555".into(),
        }
    }

    fn sa(annotation: Option<&str>) -> ServiceAccount {
        let mut sa: ServiceAccount =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "deployer"}})).unwrap();
        if let Some(v) = annotation {
            sa.metadata.annotations =
                Some([(CLIENT_ID_ANNOTATION.to_string(), v.to_string())].into());
        }
        sa
    }

    #[tokio::test]
    async fn only_an_opted_in_service_account_other_than_the_operators_is_lent() {
        let client =
            kube::Client::try_from(kube::Config::new("http://127.0.0.1:1".parse().unwrap()))
                .unwrap();
        let tokens =
            KubeServiceAccountTokens::new(client, Some(("team-a".into(), "kubeinvoke".into())));
        let id = "11111111-2222-3333-4444-555555555555";
        assert_eq!(
            tokens.refusal(&account("deployer"), Some(&sa(Some(id)))),
            None
        );
        assert_eq!(
            tokens.refusal(&account("deployer"), Some(&sa(Some(&id.to_uppercase())))),
            None,
            "client ids are GUIDs: case does not matter"
        );
        let refused =
            |name: &str, sa: Option<&ServiceAccount>| tokens.refusal(&account(name), sa).unwrap();
        assert!(refused("deployer", Some(&sa(None))).contains("has not opted in"));
        assert!(refused("deployer", Some(&sa(Some("someone-else")))).contains("has not opted in"));
        assert!(refused("deployer", None).contains("does not exist"));
        // Even opted in: the operator's own ServiceAccount is never lent.
        assert!(refused("kubeinvoke", Some(&sa(Some(id)))).contains("operator's own"));
    }

    #[test]
    fn the_pods_own_service_account_is_read_from_its_token() {
        let b64 = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let token = format!(
            "{}.{}.sig",
            b64(serde_json::json!({"alg": "RS256"})),
            b64(serde_json::json!({"sub": "system:serviceaccount:kubeinvoke-system:kubeinvoke"}))
        );
        let file = std::env::temp_dir().join(format!("kubeinvoke-own-sa-{}", std::process::id()));
        std::fs::write(&file, token).unwrap();
        assert_eq!(
            own_service_account(&file),
            Some(("kubeinvoke-system".into(), "kubeinvoke".into()))
        );
        std::fs::write(&file, "not a token").unwrap();
        assert_eq!(own_service_account(&file), None);
        std::fs::remove_file(&file).unwrap();
        assert_eq!(own_service_account(&file), None);
    }
}
