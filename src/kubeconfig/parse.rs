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
mod tests {
    use super::*;
    use crate::kubeconfig::testdata::{
        AUTH_PROVIDER_TOKEN, PASSWORD, SERVER, TOKEN, aad_auth_provider, aad_exec, admin_cert,
        admin_token, b64, basic_auth, jwt, parse,
    };

    fn one(yaml: &str) -> Vec<(String, String)> {
        vec![("clusterUser".to_owned(), b64(yaml))]
    }

    const CLUSTER: &str = "clusters:\n- name: c\n  cluster: {server: 'https://c:443'}\n";
    const CONTEXT: &str = "contexts:\n- name: ctx\n  context: {cluster: c, user: u}\n";
    const USER: &str = "users:\n- name: u\n  user: {token: SECRET-STATIC-TOKEN-0123456789}\n";

    #[test]
    fn parse_errors() {
        let with = |parts: &[&str]| one(&parts.concat());
        let cases: Vec<(&str, Vec<(String, String)>, &str)> = vec![
            ("empty response", vec![], "empty"),
            (
                "not base64",
                vec![("clusterUser".into(), "not base64!".into())],
                "invalid_base64",
            ),
            (
                "not utf-8",
                vec![("clusterUser".into(), b64([0xff, 0xfe, 0x00]))],
                "invalid_yaml",
            ),
            (
                "not yaml",
                one("clusters: [unclosed\n  token: SECRET-STATIC-TOKEN-0123456789"),
                "invalid_yaml",
            ),
            (
                "a scalar",
                one("SECRET-STATIC-TOKEN-0123456789"),
                "not_kubeconfig",
            ),
            (
                "a list",
                one("- SECRET-STATIC-TOKEN-0123456789\n"),
                "not_kubeconfig",
            ),
            (
                "wrong field type",
                one("clusters: SECRET-STATIC-TOKEN-0123456789\n"),
                "not_kubeconfig",
            ),
            (
                "yaml but nothing of a kubeconfig",
                one("hello: world\n"),
                "no_clusters",
            ),
            ("no clusters", with(&[CONTEXT, USER]), "no_clusters"),
            ("no contexts", with(&[CLUSTER, USER]), "no_contexts"),
            ("no users", with(&[CLUSTER, CONTEXT]), "no_users"),
            (
                "null users",
                with(&[CLUSTER, CONTEXT, "users: null\n"]),
                "no_users",
            ),
            (
                "current-context undefined",
                with(&[CLUSTER, CONTEXT, USER, "current-context: other\n"]),
                "unresolved_context",
            ),
            (
                "context names an undefined cluster",
                with(&[
                    CLUSTER,
                    "contexts:\n- name: ctx\n  context: {cluster: x, user: u}\n",
                    USER,
                ]),
                "unresolved_context",
            ),
            (
                "context names an undefined user",
                with(&[
                    CLUSTER,
                    "contexts:\n- name: ctx\n  context: {cluster: c, user: x}\n",
                    USER,
                ]),
                "unresolved_context",
            ),
            (
                "cluster without server",
                with(&["clusters:\n- name: c\n  cluster: {}\n", CONTEXT, USER]),
                "no_server",
            ),
        ];
        for (name, input, label) in cases {
            let err = parse_credentials(&input).expect_err(name);
            assert_eq!(err.metric_label(), label, "{name}: {err}");
            assert_eq!(err.reason(), "InvalidKubeconfig", "{name}");
            let message = err.to_string();
            assert!(!message.contains(TOKEN), "{name} leaks content: {message}");
            assert!(
                !format!("{err:?}").contains(TOKEN),
                "{name} leaks content in Debug"
            );
        }
    }

    #[test]
    fn error_messages_name_what_is_wrong() {
        let err = parse_credentials(&one(
            &[CLUSTER, CONTEXT, USER, "current-context: other\n"].concat()
        ))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"kubeconfig "clusterUser": context "other" is not defined"#
        );
        let err = parse_credentials(&one("a: b\n  c: [")).unwrap_err();
        assert!(err.to_string().contains("(line "), "{err}");
    }

    #[test]
    fn uses_the_first_kubeconfig_and_tolerates_wrapped_base64() {
        let first = b64(aad_exec());
        let wrapped: String = first
            .as_bytes()
            .chunks(60)
            .map(|c| format!("  {}\r\n", std::str::from_utf8(c).unwrap()))
            .collect();
        let unpadded = first.trim_end_matches('=').to_owned();
        for value in [first.clone(), wrapped, unpadded] {
            let parsed = parse_credentials(&[
                ("clusterUser".into(), value),
                ("second".into(), "not even base64!".into()),
            ])
            .unwrap();
            assert_eq!(parsed.credential_name(), "clusterUser");
            assert!(parsed.has_exec_user());
        }
    }

    #[test]
    fn facts() {
        let exec = parse(&aad_exec());
        assert_eq!(exec.server(), SERVER);
        assert_eq!(exec.cluster_name(Some("aks-prod")), "aks-prod");
        assert_eq!(exec.cluster_name(Some("")), "aks-1");
        assert_eq!(exec.cluster_name(None), "aks-1");
        assert_eq!(exec.user_name(), "clusterUser_rg_aks-1");
        assert!(exec.has_exec_user() && !exec.has_auth_provider());
        assert_eq!(exec.expiry(), None, "an exec user's expiry is unknown");

        let legacy = parse(&aad_auth_provider());
        assert!(!legacy.has_exec_user() && legacy.has_auth_provider());

        let admin = parse(&admin_token(TOKEN));
        assert!(!admin.has_exec_user() && !admin.has_auth_provider());
        assert_eq!(admin.expiry(), None, "opaque tokens have no known expiry");
    }

    #[test]
    fn current_context_defaults_to_the_first() {
        let second_ctx = "- name: ctx2\n  context: {cluster: c, user: u}\n";
        for current in ["", "current-context: \"\"\n"] {
            let parsed = parse(&[CLUSTER, CONTEXT, second_ctx, USER, current].concat());
            assert_eq!(parsed.current_context().name, "ctx");
            assert_eq!(parsed.config().current_context.as_deref(), Some("ctx"));
        }
        let parsed = parse(
            &[
                CLUSTER,
                CONTEXT,
                second_ctx,
                USER,
                "current-context: ctx2\n",
            ]
            .concat(),
        );
        assert_eq!(parsed.current_context().name, "ctx2");
    }

    #[test]
    fn expiry_is_the_earliest_known() {
        let cert_end: Timestamp = "2030-06-01T00:00:00Z".parse().unwrap();
        let early = Timestamp::from_second(1_800_000_000).unwrap(); // 2027
        let late = Timestamp::from_second(2_000_000_000).unwrap(); // 2033
        let with_token = |token: &str| admin_cert(2030, 6, 1).replace(TOKEN, token);
        let cases: [(&str, String, Option<Timestamp>); 4] = [
            (
                "certificate, opaque token",
                admin_cert(2030, 6, 1),
                Some(cert_end),
            ),
            (
                "jwt before certificate",
                with_token(&jwt(r#"{"exp":1800000000}"#)),
                Some(early),
            ),
            (
                "certificate before jwt",
                with_token(&jwt(r#"{"exp":2000000000}"#)),
                Some(cert_end),
            ),
            (
                "jwt only",
                admin_token(&jwt(r#"{"exp":2000000000}"#)),
                Some(late),
            ),
        ];
        for (name, yaml, want) in cases {
            assert_eq!(parse(&yaml).expiry(), want, "{name}");
        }
    }

    #[test]
    fn swap_replaces_plugins_with_the_token() {
        let token = SecretString::new("new-bearer-token");
        let at = Timestamp::from_second(1_900_000_000).unwrap();
        let jwt_token = SecretString::new(jwt(r#"{"exp":1850000000}"#));
        let jwt_exp = Timestamp::from_second(1_850_000_000).unwrap();
        let cases: [(
            &str,
            String,
            &SecretString,
            Option<Timestamp>,
            usize,
            Option<Timestamp>,
        ); 5] = [
            ("exec", aad_exec(), &token, Some(at), 1, Some(at)),
            (
                "auth-provider",
                aad_auth_provider(),
                &token,
                Some(at),
                1,
                Some(at),
            ),
            (
                "expiry from the jwt",
                aad_exec(),
                &jwt_token,
                None,
                1,
                Some(jwt_exp),
            ),
            ("unknown expiry", aad_exec(), &token, None, 1, None),
            (
                "admin token untouched",
                admin_token(TOKEN),
                &token,
                Some(at),
                0,
                None,
            ),
        ];
        for (name, yaml, token, expires_at, want_swapped, want_expiry) in cases {
            let mut parsed = parse(&yaml);
            let before = parsed.user().token.clone();
            assert_eq!(
                parsed.swap_exec_for_token(token, expires_at),
                want_swapped,
                "{name}"
            );
            assert!(
                !parsed.has_exec_user() && !parsed.has_auth_provider(),
                "{name}"
            );
            assert_eq!(parsed.expiry(), want_expiry, "{name}");
            let user = parsed.user();
            if want_swapped == 0 {
                assert_eq!(user.token, before, "{name}");
                continue;
            }
            assert_eq!(user.token.as_ref(), Some(token), "{name}");
            assert!(
                user.exec.is_none() && user.auth_provider.is_none(),
                "{name}"
            );
            // The cluster side is untouched.
            assert_eq!(parsed.server(), SERVER, "{name}");
        }
    }

    #[test]
    fn unknown_fields_survive() {
        let parsed = parse(&aad_exec());
        let config = parsed.config();
        assert!(config.extra.contains_key("preferences"));
        let exec = config.users[0].user.exec.as_ref().unwrap();
        assert_eq!(
            exec.extra.get("provideClusterInfo"),
            Some(&serde_json::Value::Bool(false))
        );
        assert_eq!(exec.env[0].value.expose(), "/tmp/az");
    }

    #[test]
    fn debug_does_not_leak() {
        let mut swapped = parse(&aad_exec());
        swapped.swap_exec_for_token(&SecretString::new(TOKEN), None);
        let cert = admin_cert(2030, 1, 1);
        let key_data = cert
            .lines()
            .find_map(|l| l.trim().strip_prefix("client-key-data: "))
            .unwrap()
            .to_owned();
        let cases = [
            ("admin", parse(&cert), vec![TOKEN, key_data.as_str()]),
            (
                "auth-provider",
                parse(&aad_auth_provider()),
                vec![AUTH_PROVIDER_TOKEN],
            ),
            ("basic auth", parse(&basic_auth()), vec![PASSWORD]),
            ("swapped", swapped, vec![TOKEN]),
        ];
        for (name, parsed, secrets) in cases {
            let debug = format!("{parsed:?} {parsed:#?}");
            assert!(debug.contains("clusterUser"), "{name}: {debug}");
            for secret in secrets {
                assert!(!debug.contains(secret), "{name} leaks in Debug: {debug}");
            }
        }
    }
}
