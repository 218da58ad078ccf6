//! Tests of the Argo CD cluster `config` JSON for each kind of user.

use serde_json::{Value, json};

use crate::api::kubeconfig_export::SecretFormat;
use crate::kubeconfig::parse::ParsedKubeconfig;
use crate::kubeconfig::render::render;
use crate::kubeconfig::testdata::{
    CA_PEM, PASSWORD, SERVER, TOKEN, aad_exec, admin_cert, admin_token, b64, basic_auth, parse,
    passthrough, spec, swapped_exec, text,
};

fn argocd_config(parsed: &ParsedKubeconfig) -> Value {
    let secret = render(parsed, &spec(SecretFormat::ArgoCd), &passthrough()).unwrap();
    serde_json::from_slice(secret.data["config"].expose()).unwrap()
}

#[test]
fn argocd_config_for_a_token_user() {
    let secret = render(&swapped_exec(), &spec(SecretFormat::ArgoCd), &passthrough()).unwrap();
    assert_eq!(text(&secret, "name"), "aks-prod");
    assert_eq!(text(&secret, "server"), SERVER);
    let config: Value = serde_json::from_slice(secret.data["config"].expose()).unwrap();
    assert_eq!(
        config,
        json!({"bearerToken": TOKEN, "tlsClientConfig": {"caData": b64(CA_PEM)}})
    );
}

#[test]
fn argocd_config_for_a_client_certificate_user() {
    let yaml = admin_cert(2030, 1, 1).replace("    token: SECRET-STATIC-TOKEN-0123456789\n", "");
    let parsed = parse(&yaml);
    let user = parsed.user();
    let config = argocd_config(&parsed);
    assert_eq!(
        config,
        json!({"tlsClientConfig": {
            "caData": b64(CA_PEM),
            "certData": user.client_certificate_data.as_deref().unwrap(),
            "keyData": user.client_key_data.as_ref().unwrap().expose(),
        }})
    );
}

#[test]
fn argocd_config_for_an_exec_user() {
    let config = argocd_config(&parse(&aad_exec()));
    assert_eq!(
        config,
        json!({
            "tlsClientConfig": {"caData": b64(CA_PEM)},
            "execProviderConfig": {
                "command": "kubelogin",
                "args": ["get-token", "--environment", "AzurePublicCloud",
                         "--server-id", "6dae42f8-4368-4678-94ff-3960e28e3630",
                         "--client-id", "80faf920-1908-4b52-b5ef-a8e7bedfc67a",
                         "--tenant-id", "00000000-1111-2222-3333-444444444444",
                         "--login", "devicecode"],
                "env": {"AZURE_CONFIG_DIR": "/tmp/az"},
                "apiVersion": "client.authentication.k8s.io/v1beta1",
                "installHint": "install kubelogin",
            }
        })
    );
}

#[test]
fn argocd_config_tls_and_basic_auth_fields() {
    // (insecure-skip-tls-verify never gets this far: ARM content that turns TLS off is refused.)
    let yaml = basic_auth().replace(
        "    server:",
        "    insecure-skip-tls-verify: false\n    tls-server-name: api.internal\n    server:",
    );
    // Wrapped base64 in the kubeconfig comes out as one canonical line.
    let yaml = yaml.replace(
        &b64(CA_PEM),
        &format!("\"{}\\n{}\"", &b64(CA_PEM)[..10], &b64(CA_PEM)[10..]),
    );
    let config = argocd_config(&parse(&yaml));
    assert_eq!(
        config,
        json!({
            "username": "admin",
            "password": PASSWORD,
            "tlsClientConfig": {"caData": b64(CA_PEM), "insecure": false, "serverName": "api.internal"}
        })
    );
    let bad = parse(&admin_token(TOKEN).replace(&b64(CA_PEM), "'not base64!'"));
    let err = render(&bad, &spec(SecretFormat::ArgoCd), &passthrough()).unwrap_err();
    assert_eq!(err.metric_label(), "invalid_field", "{err}");
}

#[test]
fn an_argocd_secret_turns_back_into_the_same_credentials() {
    for yaml in [admin_cert(2030, 1, 1), aad_exec()] {
        let original = parse(&yaml);
        let secret = render(&original, &spec(SecretFormat::ArgoCd), &passthrough()).unwrap();
        let back = crate::kubeconfig::argocd::kubeconfig_from_cluster_secret(
            &text(&secret, "name"),
            &text(&secret, "server"),
            secret.data["config"].expose(),
        )
        .unwrap();
        let again = parse(&back);
        assert_eq!(again.server(), original.server());
        assert_eq!(
            again
                .cluster()
                .certificate_authority_data
                .as_deref()
                .map(b64_decode),
            original
                .cluster()
                .certificate_authority_data
                .as_deref()
                .map(b64_decode)
        );
        let (a, b) = (again.user(), original.user());
        assert_eq!(
            a.token.as_ref().map(|t| t.expose().to_string()),
            b.token.as_ref().map(|t| t.expose().to_string())
        );
        assert_eq!(
            a.client_key_data.as_ref().map(|k| b64_decode(k.expose())),
            b.client_key_data.as_ref().map(|k| b64_decode(k.expose()))
        );
        assert_eq!(
            a.exec.as_ref().map(|e| (&e.command, &e.args)),
            b.exec.as_ref().map(|e| (&e.command, &e.args))
        );
    }
}

fn b64_decode(v: &str) -> Vec<u8> {
    crate::kubeconfig::parse::decode_base64(v).unwrap()
}
