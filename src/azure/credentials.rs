//! Entra ID credentials: built from a plain configuration, cached per source, named for rate limits.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use azure_core::credentials::TokenCredential;
use azure_core::http::ClientMethodOptions;
use azure_core::http::{ClientOptions, Transport};
use azure_identity::{
    ClientAssertion, ClientAssertionCredential, ClientAssertionCredentialOptions,
    ClientSecretCredential, ClientSecretCredentialOptions, ManagedIdentityCredential,
    ManagedIdentityCredentialOptions, UserAssignedId, WorkloadIdentityCredential,
    WorkloadIdentityCredentialOptions,
};

use super::cloud::Cloud;
use super::error::ArmError;
use super::secret::Secret;

pub type SharedCredential = Arc<dyn TokenCredential>;

/// Who calls ARM; ARM's request limits are per principal, so our buckets are too.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    pub tenant_id: String,
    pub client_id: String,
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.tenant_id, self.client_id)
    }
}

/// The keys of a credentials Secret, already read out of Kubernetes. Exactly one of
/// `client_secret` and `service_account` authenticates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialConfig {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    /// Workload identity federation with a token of this ServiceAccount (of the resource's own
    /// namespace), minted for the exchange: the federated credential names the namespace.
    pub service_account: Option<ServiceAccountRef>,
    /// When set, the credential may only be used in this subscription.
    pub subscription_id: Option<String>,
}

/// A ServiceAccount in Kubernetes, and the client id its token is presented for (its owner must
/// have opted in to that client id).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServiceAccountRef {
    pub namespace: String,
    pub name: String,
    pub client_id: String,
}

/// Audience of a token presented to Entra ID for workload identity federation.
pub const TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";

/// Mints short-lived tokens for ServiceAccounts (the Kubernetes TokenRequest API), audience
/// [`TOKEN_EXCHANGE_AUDIENCE`].
#[async_trait::async_trait]
pub trait ServiceAccountTokens: Send + Sync + fmt::Debug {
    async fn token(&self, account: &ServiceAccountRef) -> Result<String, String>;
}

/// The assertion of a ServiceAccount's federated credential: a fresh token each time Entra ID
/// needs one (the access token it buys is cached by the credential).
#[derive(Debug)]
struct ServiceAccountAssertion {
    tokens: Arc<dyn ServiceAccountTokens>,
    account: ServiceAccountRef,
}

#[async_trait::async_trait]
impl ClientAssertion for ServiceAccountAssertion {
    async fn secret(
        &self,
        _options: Option<ClientMethodOptions<'_>>,
    ) -> azure_core::Result<String> {
        self.tokens.token(&self.account).await.map_err(|e| {
            azure_core::Error::with_message(
                azure_core::error::ErrorKind::Credential,
                format!(
                    "no token for ServiceAccount {}/{}: {e}",
                    self.account.namespace, self.account.name
                ),
            )
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    Config(CredentialConfig),
    /// The operator's own identity, of the kind `--operator-identity` chose.
    OperatorIdentity,
}

/// Which Azure identity the operator itself has (`--operator-identity`): chosen explicitly, never
/// a silent fallback to whatever the node offers (a VM's managed identity reaches what the VM may).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OperatorIdentity {
    /// None: only credential Secrets act.
    #[default]
    None,
    /// Workload identity: `AZURE_CLIENT_ID`, `AZURE_TENANT_ID` and `AZURE_FEDERATED_TOKEN_FILE` (as
    /// the Azure Workload Identity webhook sets them).
    Workload,
    /// The managed identity of the node or pod (`AZURE_CLIENT_ID` picks a user-assigned one).
    Managed,
}

impl std::str::FromStr for OperatorIdentity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Self::None),
            "workload" => Ok(Self::Workload),
            "managed" => Ok(Self::Managed),
            other => Err(format!(
                "--operator-identity {other:?}: expected none, workload or managed"
            )),
        }
    }
}

impl CredentialSource {
    /// The principal, as far as it is known without asking Entra ID.
    pub fn principal(&self) -> Principal {
        match self {
            CredentialSource::Config(c) => Principal {
                tenant_id: c.tenant_id.clone(),
                client_id: c.client_id.clone(),
            },
            CredentialSource::OperatorIdentity => Principal {
                tenant_id: std::env::var("AZURE_TENANT_ID").unwrap_or_default(),
                client_id: std::env::var("AZURE_CLIENT_ID")
                    .unwrap_or_else(|_| "operator".to_string()),
            },
        }
    }

    /// Refuses a credential restricted to another subscription.
    pub fn check_subscription(&self, subscription_id: &str) -> Result<(), ArmError> {
        match self {
            CredentialSource::Config(CredentialConfig {
                subscription_id: Some(allowed),
                ..
            }) if !allowed.eq_ignore_ascii_case(subscription_id) => {
                Err(ArmError::Credential(format!(
                    "the credential is restricted to subscription {allowed}, not {subscription_id}"
                )))
            }
            _ => Ok(()),
        }
    }
}

/// Builds azure_identity credentials for one cloud, over an HTTP client that trusts the extra CA.
#[derive(Debug, Clone)]
pub struct CredentialFactory {
    cloud: Cloud,
    http: reqwest::Client,
    tokens: Option<Arc<dyn ServiceAccountTokens>>,
    operator: OperatorIdentity,
}

impl CredentialFactory {
    /// `http` should come from [`super::client::build_http_client`] so the `--ca-file` CA is trusted.
    pub fn new(cloud: Cloud, http: reqwest::Client) -> Self {
        Self {
            cloud,
            http,
            tokens: None,
            operator: OperatorIdentity::None,
        }
    }

    /// The operator's own identity (none until chosen).
    pub fn with_operator_identity(mut self, operator: OperatorIdentity) -> Self {
        self.operator = operator;
        self
    }

    /// Where ServiceAccount tokens for workload identity come from.
    pub fn with_service_account_tokens(mut self, tokens: Arc<dyn ServiceAccountTokens>) -> Self {
        self.tokens = Some(tokens);
        self
    }

    /// Options of every credential. Token requests are retried briefly (two retries, at most 5 s):
    /// the default policy retries for up to a minute, which holds a reconcile that long; the
    /// operator retries failed token requests itself, with its own backoff and the run's deadline.
    fn client_options(&self) -> ClientOptions {
        use azure_core::http::{ExponentialRetryOptions, RetryOptions};
        use azure_core::time::Duration;
        let mut options = ClientOptions {
            cloud: Some(self.cloud.core_configuration()),
            transport: Some(Transport::new(Arc::new(self.http.clone()))),
            ..Default::default()
        };
        options.retry = RetryOptions::exponential(ExponentialRetryOptions {
            initial_delay: Duration::milliseconds(200),
            max_retries: 2,
            max_total_elapsed: Duration::seconds(5),
            max_delay: Duration::seconds(2),
        });
        options
    }

    pub fn build(&self, source: &CredentialSource) -> Result<SharedCredential, ArmError> {
        let fail = |e: azure_core::Error| ArmError::Credential(e.to_string());
        match source {
            CredentialSource::Config(c) => {
                if c.tenant_id.trim().is_empty() || c.client_id.trim().is_empty() {
                    return Err(ArmError::Credential(
                        "AZURE_TENANT_ID and AZURE_CLIENT_ID are required".into(),
                    ));
                }
                match (&c.client_secret, &c.service_account) {
                    (Some(secret), _) => {
                        let cred = ClientSecretCredential::new(
                            &c.tenant_id,
                            c.client_id.clone(),
                            azure_core::credentials::Secret::new(secret.expose().to_string()),
                            Some(ClientSecretCredentialOptions {
                                client_options: self.client_options(),
                            }),
                        )
                        .map_err(fail)?;
                        Ok(cred)
                    }
                    (None, Some(account)) => {
                        let tokens = self.tokens.clone().ok_or_else(|| {
                            ArmError::Credential(
                                "workload identity needs ServiceAccount tokens, which this operator cannot mint".into(),
                            )
                        })?;
                        let assertion = ServiceAccountAssertion {
                            tokens,
                            account: account.clone(),
                        };
                        let options = ClientAssertionCredentialOptions {
                            client_options: self.client_options(),
                        };
                        Ok(ClientAssertionCredential::new(
                            c.tenant_id.clone(),
                            c.client_id.clone(),
                            assertion,
                            Some(options),
                        )
                        .map_err(fail)?)
                    }
                    // Never the operator's own token for a client id someone else names.
                    (None, None) => Err(ArmError::Credential(
                        "a credential needs a client secret or a ServiceAccount".into(),
                    )),
                }
            }
            CredentialSource::OperatorIdentity => match self.operator {
                OperatorIdentity::None => Err(ArmError::Credential(
                    "the operator has no Azure identity of its own (--operator-identity none)"
                        .into(),
                )),
                OperatorIdentity::Workload => {
                    if std::env::var_os("AZURE_FEDERATED_TOKEN_FILE").is_none() {
                        return Err(ArmError::Credential(
                            "--operator-identity workload, but AZURE_FEDERATED_TOKEN_FILE is not set (is the pod labelled for Azure Workload Identity?)".into(),
                        ));
                    }
                    let mut options = WorkloadIdentityCredentialOptions::default();
                    options.credential_options.client_options = self.client_options();
                    Ok(WorkloadIdentityCredential::new(Some(options)).map_err(fail)?)
                }
                OperatorIdentity::Managed => {
                    let options = ManagedIdentityCredentialOptions {
                        user_assigned_id: std::env::var("AZURE_CLIENT_ID")
                            .ok()
                            .map(UserAssignedId::ClientId),
                        client_options: self.client_options(),
                    };
                    Ok(ManagedIdentityCredential::new(Some(options)).map_err(fail)?)
                }
            },
        }
    }
}

/// One credential per source (e.g. "namespace/secret-name"), rebuilt when its version
/// (e.g. the Secret's resourceVersion) changes, so tokens are cached for as long as the Secret is unchanged.
#[derive(Default)]
pub struct CredentialCache {
    entries: Mutex<HashMap<String, (String, SharedCredential)>>,
}

impl fmt::Debug for CredentialCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.entries.lock().map(|e| e.len()).unwrap_or(0);
        f.debug_struct("CredentialCache")
            .field("entries", &n)
            .finish()
    }
}

impl CredentialCache {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get_or_try_insert(
        &self,
        source_key: &str,
        version: &str,
        build: impl FnOnce() -> Result<SharedCredential, ArmError>,
    ) -> Result<SharedCredential, ArmError> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((v, cred)) = entries.get(source_key)
            && v == version
        {
            return Ok(cred.clone());
        }
        let cred = build()?;
        entries.insert(source_key.to_string(), (version.to_string(), cred.clone()));
        Ok(cred)
    }

    /// Forgets a source (its Secret was deleted).
    pub fn remove(&self, source_key: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(source_key);
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A bearer token for `scope`; failures become [`ArmError::Auth`] without the token in the message.
pub async fn get_token(
    credential: &dyn TokenCredential,
    scope: &str,
    operation: &'static str,
) -> Result<Secret, ArmError> {
    let token = credential
        .get_token(&[scope], None)
        .await
        .map_err(|e| ArmError::Auth {
            operation,
            message: e.to_string(),
        })?;
    Ok(Secret::new(token.token.secret().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::azure::testutil::StubCredential;

    fn config(secret: Option<&str>) -> CredentialConfig {
        CredentialConfig {
            tenant_id: "tenant".into(),
            client_id: "client".into(),
            client_secret: secret.map(Secret::new),
            service_account: None,
            subscription_id: Some("SUB-1".into()),
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let c = config(Some("s3cr3t-value"));
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }

    #[test]
    fn builds_each_kind() {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let factory = CredentialFactory::new(
            Cloud::custom("https://arm.local", "https://login.local").unwrap(),
            reqwest::Client::new(),
        );
        factory
            .build(&CredentialSource::Config(config(Some("x"))))
            .unwrap();
        // Neither a secret nor a ServiceAccount: refused, never the operator's own token.
        assert!(matches!(
            factory.build(&CredentialSource::Config(config(None))),
            Err(ArmError::Credential(_))
        ));
        let mut federated = config(None);
        federated.service_account = Some(ServiceAccountRef {
            namespace: "team-a".into(),
            name: "deployer".into(),
            client_id: "x".into(),
        });
        assert!(
            matches!(
                factory.build(&CredentialSource::Config(federated.clone())),
                Err(ArmError::Credential(_))
            ),
            "no token source configured"
        );
        #[derive(Debug)]
        struct Fixed;
        #[async_trait::async_trait]
        impl ServiceAccountTokens for Fixed {
            async fn token(&self, _: &ServiceAccountRef) -> Result<String, String> {
                Ok("jwt".into())
            }
        }
        factory
            .clone()
            .with_service_account_tokens(Arc::new(Fixed))
            .build(&CredentialSource::Config(federated))
            .unwrap();
        let mut empty = config(Some("x"));
        empty.tenant_id = " ".into();
        assert!(matches!(
            factory.build(&CredentialSource::Config(empty)),
            Err(ArmError::Credential(_))
        ));
    }

    #[test]
    fn subscription_restriction() {
        let source = CredentialSource::Config(config(None));
        assert!(source.check_subscription("sub-1").is_ok());
        assert!(source.check_subscription("other").is_err());
        assert!(
            CredentialSource::OperatorIdentity
                .check_subscription("any")
                .is_ok()
        );
        assert_eq!(source.principal().to_string(), "tenant/client");
    }

    #[test]
    fn cache_returns_the_same_credential_per_version() {
        let cache = CredentialCache::new();
        let mut builds = 0;
        let mut get = |key: &str, version: &str| {
            cache
                .get_or_try_insert(key, version, || {
                    builds += 1;
                    Ok(Arc::new(StubCredential::new("t")) as SharedCredential)
                })
                .unwrap()
        };
        let a = get("ns/creds", "1");
        let b = get("ns/creds", "1");
        assert!(Arc::ptr_eq(&a, &b));
        let c = get("ns/creds", "2");
        assert!(!Arc::ptr_eq(&a, &c));
        get("other/creds", "1");
        assert_eq!(builds, 3);
        assert_eq!(cache.len(), 2, "a new version replaces the old entry");
        cache.remove("ns/creds");
        assert_eq!(cache.len(), 1);
    }
}
