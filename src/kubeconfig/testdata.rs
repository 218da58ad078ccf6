//! Kubeconfigs shaped like the ones ARM returns, and helpers to make certificates and tokens.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use super::parse::{ParsedKubeconfig, parse_credentials};
use super::render::{RenderContext, RenderedSecret};
use super::sensitive::SecretString;
use crate::api::kubeconfig_export::{Authentication, SecretFormat, SecretSpec};

/// Token value planted in fixtures, to check that it never shows up where it must not.
pub const TOKEN: &str = "SECRET-STATIC-TOKEN-0123456789";
pub const PASSWORD: &str = "SECRET-PASSWORD-42";
pub const AUTH_PROVIDER_TOKEN: &str = "SECRET-AUTH-PROVIDER-ACCESS-TOKEN";
pub const SERVER: &str = "https://aks-1-dns-1a2b3c.hcp.westeurope.azmk8s.io:443";
pub const CA_PEM: &str = "-----BEGIN CERTIFICATE-----\nQ0E=\n-----END CERTIFICATE-----\n";

pub fn b64(data: impl AsRef<[u8]>) -> String {
    STANDARD.encode(data)
}

/// A self-signed client certificate valid until midnight UTC of the given day, and its key (PEM).
pub fn client_cert(year: i32, month: u8, day: u8) -> (String, String) {
    let mut params = rcgen::CertificateParams::new(vec!["masterclient".to_owned()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(year, month, day);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// An unsigned JWT with the given claims.
pub fn jwt(claims: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT"}"#);
    format!("{header}.{}.c2lnbmF0dXJl", URL_SAFE_NO_PAD.encode(claims))
}

fn document(user: &str) -> String {
    format!(
        r#"apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: {ca}
    server: {SERVER}
  name: aks-1
contexts:
- context:
    cluster: aks-1
    user: clusterUser_rg_aks-1
  name: aks-1
current-context: aks-1
kind: Config
preferences: {{}}
users:
- name: clusterUser_rg_aks-1
  user:
{user}"#,
        ca = b64(CA_PEM),
    )
}

/// An AAD user kubeconfig (`format=exec`): kubelogin, device code login.
pub fn aad_exec() -> String {
    document(
        r#"    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      args:
      - get-token
      - --environment
      - AzurePublicCloud
      - --server-id
      - 6dae42f8-4368-4678-94ff-3960e28e3630
      - --client-id
      - 80faf920-1908-4b52-b5ef-a8e7bedfc67a
      - --tenant-id
      - 00000000-1111-2222-3333-444444444444
      - --login
      - devicecode
      command: kubelogin
      env:
      - name: AZURE_CONFIG_DIR
        value: /tmp/az
      installHint: install kubelogin
      provideClusterInfo: false
"#,
    )
}

/// A legacy `format=azure` kubeconfig.
pub fn aad_auth_provider() -> String {
    document(&format!(
        r#"    auth-provider:
      config:
        apiserver-id: 6dae42f8-4368-4678-94ff-3960e28e3630
        client-id: 80faf920-1908-4b52-b5ef-a8e7bedfc67a
        access-token: {AUTH_PROVIDER_TOKEN}
        config-mode: "1"
        environment: AzurePublicCloud
        tenant-id: 00000000-1111-2222-3333-444444444444
      name: azure
"#
    ))
}

/// An admin kubeconfig with a client certificate valid until the given day, and a static token.
pub fn admin_cert(year: i32, month: u8, day: u8) -> String {
    let (cert, key) = client_cert(year, month, day);
    document(&format!(
        "    client-certificate-data: {}\n    client-key-data: {}\n    token: {TOKEN}\n",
        b64(cert),
        b64(key)
    ))
}

/// An admin kubeconfig with only a bearer token.
pub fn admin_token(token: &str) -> String {
    document(&format!("    token: {token}\n"))
}

/// A user with basic auth.
pub fn basic_auth() -> String {
    document(&format!("    username: admin\n    password: {PASSWORD}\n"))
}

pub fn parse(yaml: &str) -> ParsedKubeconfig {
    parse_credentials(&[("clusterUser".to_owned(), b64(yaml))]).unwrap()
}

/// A Secret spec of the given format.
pub fn spec(format: SecretFormat) -> SecretSpec {
    SecretSpec {
        name: "edge-01-kubeconfig".into(),
        format,
        ..Default::default()
    }
}

/// A render context.
pub fn ctx(authentication: Authentication, cluster_name: Option<&str>) -> RenderContext {
    RenderContext {
        authentication,
        cluster_name: cluster_name.map(str::to_owned),
    }
}

/// `Passthrough`, with the ARM cluster name `aks-prod`.
pub fn passthrough() -> RenderContext {
    ctx(Authentication::Passthrough, Some("aks-prod"))
}

/// The AAD exec kubeconfig with its exec user swapped for [`TOKEN`].
pub fn swapped_exec() -> ParsedKubeconfig {
    let mut parsed = parse(&aad_exec());
    parsed.swap_exec_for_token(&SecretString::new(TOKEN), None);
    parsed
}

/// A data value as text.
pub fn text(secret: &RenderedSecret, key: &str) -> String {
    String::from_utf8(secret.data[key].expose().to_vec()).unwrap()
}
