//! Entra ID: the v2 token endpoint and the metadata MSAL reads first. Tokens are opaque random
//! strings remembered with their meaning.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Extension;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::json;

use crate::faults::{self, Injected};
use crate::server::{ConnCtl, tag};
use crate::state::{Audience, Shared, TokenInfo, random_token};

pub const AKS_SERVER_APP: &str = "6dae42f8-4368-4678-94ff-3960e28e3630";
pub const AKS_CLIENT_APP: &str = "80faf920-1908-4b52-b5ef-a8e7bedfc67a";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const PUBLIC_ARM: [&str; 2] = [
    "https://management.azure.com",
    "https://management.core.windows.net",
];

/// Maps a resource (scope without `/.default`) to the audience it names, if any.
pub fn audience_of(resource: &str, base_url: &str) -> Option<Audience> {
    let r = resource.trim_end_matches('/');
    if r.eq_ignore_ascii_case(AKS_SERVER_APP) {
        return Some(Audience::AksServer);
    }
    let arm =
        PUBLIC_ARM.iter().any(|a| r.eq_ignore_ascii_case(a)) || r.eq_ignore_ascii_case(base_url);
    arm.then_some(Audience::Arm)
}

/// Parses the space-separated `scope` of a client-credentials request.
fn scope_audience(scope: &str, base_url: &str) -> Option<Audience> {
    let mut found = None;
    for s in scope.split_whitespace() {
        if ["openid", "profile", "offline_access", "email"].contains(&s) {
            continue;
        }
        let resource = s.strip_suffix("/.default")?;
        if found.is_some() {
            return None;
        }
        found = Some(audience_of(resource, base_url)?);
    }
    found
}

/// An error body in Entra's shape.
pub fn aad_error(status: StatusCode, error: &str, code: u32, text: &str) -> Response {
    let trace = uuid::Uuid::new_v4().to_string();
    let correlation = uuid::Uuid::new_v4().to_string();
    let now = time::OffsetDateTime::now_utc();
    let stamp = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    let body = json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {text} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {stamp}"),
        "error_codes": [code],
        "timestamp": stamp,
        "trace_id": trace,
        "correlation_id": correlation,
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    });
    (status, axum::Json(body)).into_response()
}

pub(crate) fn issue(state: &Shared, info: TokenInfo) -> String {
    let token = random_token();
    let mut tokens = state.tokens.lock().expect("tokens lock");
    if tokens.len() > 50_000 {
        let now = SystemTime::now();
        tokens.retain(|_, t| t.expires_at > now);
    }
    tokens.insert(token.clone(), info);
    token
}

/// Applies latency and injected faults to an Entra request; `Some` means answer with it.
pub(crate) async fn entra_fault(
    state: &Shared,
    op: &str,
    ctl: &ConnCtl,
    path: &str,
) -> Option<Response> {
    let spec = faults::effective(&state.faults(), op);
    if let Some(ms) = spec.latency_ms.filter(|ms| *ms > 0) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let draw = state.rng.lock().expect("rng lock").next_f64();
    let kind = faults::pick(&spec, draw)?;
    let retry = spec
        .retry_after
        .clone()
        .unwrap_or_else(|| state.settings.retry_after.clone());
    if kind == Injected::Drop {
        crate::server::log_dropped(state, "POST", path, op, None);
        return Some(ctl.drop_connection().await);
    }
    state.stats().injected_faults += 1;
    // Entra's throttling: 429 `temporarily_unavailable` AADSTS50196 (its "client request loop"
    // text, as azure-sdk-for-net #23324 and AzureAD/MSAL.PS #10 quote it) with Retry-After.
    let (status, error, code, text) = match kind {
        Injected::Throttle => (
            StatusCode::TOO_MANY_REQUESTS,
            "temporarily_unavailable",
            50196,
            "The server terminated an operation because it encountered a client request loop. Please contact your app vendor.",
        ),
        Injected::Error500 => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            90033,
            "A transient error has occurred. Please try again. (injected by kubeinvoke-emulator)",
        ),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            90033,
            "A transient error has occurred. Please try again. (injected by kubeinvoke-emulator)",
        ),
    };
    let mut resp = aad_error(status, error, code, text);
    retry.apply(resp.headers_mut());
    Some(resp)
}

/// `POST /{tenant}/oauth2/v2.0/token`
pub async fn token(
    State(state): State<Shared>,
    Extension(ctl): Extension<ConnCtl>,
    Path(tenant): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let op = "entra.token";
    let path = format!("/{tenant}/oauth2/v2.0/token");
    if let Some(r) = entra_fault(&state, op, &ctl, &path).await {
        return tag(r, op, form.get("client_id").map(String::as_str));
    }
    let client = form.get("client_id").cloned();
    let resp = match token_inner(&state, &tenant, &form) {
        Ok(r) | Err(r) => r,
    };
    tag(resp, op, client.as_deref())
}

fn token_inner(
    state: &Shared,
    tenant: &str,
    form: &HashMap<String, String>,
) -> Result<Response, Response> {
    let world = state.world();
    if !world.tenant_exists(tenant) {
        return Err(aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            &format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
            ),
        ));
    }
    let grant = form.get("grant_type").map(String::as_str).unwrap_or("");
    if grant != "client_credentials" {
        return Err(aad_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            &format!("The app requested an unsupported grant type '{grant}'."),
        ));
    }
    let Some(client_id) = form.get("client_id") else {
        return Err(aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        ));
    };
    let not_found = || {
        aad_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
            ),
        )
    };
    let Some(principal) = world.principal(tenant, client_id) else {
        return Err(not_found());
    };
    // A new app is not known everywhere at once: while it replicates, Entra answers as for an
    // unknown one (AADSTS700016), then succeeds without anything changing on the client's side.
    if state.within_world_window(principal.not_replicated_for_seconds) {
        return Err(not_found());
    }
    let invalid_client =
        |code: u32, text: &str| aad_error(StatusCode::UNAUTHORIZED, "invalid_client", code, text);
    if let Some(secret) = form.get("client_secret") {
        if principal.client_secret.as_deref() != Some(secret.as_str()) {
            return Err(invalid_client(
                7000215,
                &format!(
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
                ),
            ));
        }
    } else if let Some(assertion) = form.get("client_assertion") {
        if form.get("client_assertion_type").map(String::as_str) != Some(ASSERTION_TYPE) {
            return Err(aad_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                900023,
                "The client_assertion_type must be 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'.",
            ));
        }
        check_assertion(assertion, principal, &world.oidc_issuers)
            .map_err(|(code, text)| invalid_client(code, &text))?;
    } else {
        return Err(invalid_client(
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        ));
    }
    let scope = form.get("scope").map(String::as_str).unwrap_or("");
    let Some(audience) = scope_audience(scope, &state.settings.base_url) else {
        return Err(aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            70011,
            &format!(
                "The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope '{scope}' is not valid. The scope must be a resource known to this tenant suffixed with '/.default'."
            ),
        ));
    };
    let lifetime = principal
        .token_lifetime_seconds
        .unwrap_or(state.settings.token_lifetime);
    let token = issue(
        state,
        TokenInfo {
            client_id: principal.client_id.clone(),
            object_id: principal.object_id(),
            tenant_id: principal.tenant_id.clone(),
            audience,
            expires_at: SystemTime::now() + Duration::from_secs(lifetime),
        },
    );
    Ok(axum::Json(json!({
        "token_type": "Bearer",
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": token,
    }))
    .into_response())
}

/// Accepts a well-formed JWT; checks `iss` and the signature, `sub`, `aud` and `exp` where the
/// world asks for them.
fn check_assertion(
    jwt: &str,
    p: &crate::world::Principal,
    issuers: &[crate::world::OidcIssuer],
) -> Result<(), (u32, String)> {
    let malformed = || (50027, "JWT token is invalid or malformed.".to_string());
    if !p.federated {
        return Err((
            700027,
            "Client assertion failed signature validation (this principal is not federated in the emulator's world).".into(),
        ));
    }
    let parts: Vec<&str> = jwt.split('.').collect();
    if parts.len() != 3 {
        return Err(malformed());
    }
    let decode = |s: &str| -> Option<serde_json::Value> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s.trim_end_matches('='))
            .ok()?;
        serde_json::from_slice(&bytes).ok()
    };
    let header = decode(parts[0])
        .filter(|v| v.is_object())
        .ok_or_else(malformed)?;
    let claims = decode(parts[1])
        .filter(|v| v.is_object())
        .ok_or_else(malformed)?;
    if let Some(want) = &p.issuer {
        if claims.get("iss").and_then(|v| v.as_str()) != Some(want.as_str()) {
            return Err((
                70021,
                "No matching federated identity record found for presented assertion issuer."
                    .into(),
            ));
        }
        let keys = issuers
            .iter()
            .find(|i| &i.issuer == want)
            .map(|i| i.jwks.clone())
            .unwrap_or_default();
        verify_rs256(&parts, &header, &keys).map_err(|why| {
            (
                700027,
                format!("Client assertion failed signature validation ({why})."),
            )
        })?;
    }
    if let Some(exp) = claims.get("exp").and_then(|v| v.as_u64()) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        if exp < now {
            return Err((
                700024,
                "Client assertion is not within its valid time range.".into(),
            ));
        }
    }
    let no_match = || {
        (
            70021,
            "No matching federated identity record found for presented assertion.".to_string(),
        )
    };
    if let Some(want) = &p.subject
        && claims.get("sub").and_then(|v| v.as_str()) != Some(want.as_str())
    {
        return Err(no_match());
    }
    if let Some(want) = &p.audience {
        let ok = match claims.get("aud") {
            Some(serde_json::Value::String(s)) => s == want,
            Some(serde_json::Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(want)),
            _ => false,
        };
        if !ok {
            return Err(no_match());
        }
    }
    Ok(())
}

/// Verifies the RS256 signature of `parts` (header.payload.signature) with the JWKS key the
/// header's `kid` names (or the only RSA key when there is no `kid`).
fn verify_rs256(
    parts: &[&str],
    header: &serde_json::Value,
    jwks: &serde_json::Value,
) -> Result<(), String> {
    use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
    if header.get("alg").and_then(|v| v.as_str()) != Some("RS256") {
        return Err("only RS256 is accepted".into());
    }
    let kid = header.get("kid").and_then(|v| v.as_str());
    let keys = jwks
        .get("keys")
        .and_then(|k| k.as_array())
        .cloned()
        .unwrap_or_default();
    let key = keys
        .iter()
        .filter(|k| k.get("kty").and_then(|v| v.as_str()) == Some("RSA"))
        .find(|k| kid.is_none() || k.get("kid").and_then(|v| v.as_str()) == kid)
        .ok_or("no key of the issuer matches the assertion's kid")?;
    let b64 = |field: &str| -> Result<Vec<u8>, String> {
        let text = key
            .get(field)
            .and_then(|v| v.as_str())
            .ok_or(format!("key has no {field}"))?;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .map_err(|e| format!("key {field}: {e}"))
    };
    let (n, e) = (b64("n")?, b64("e")?);
    let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[2].trim_end_matches('='))
        .map_err(|_| "the signature is not base64url".to_string())?;
    let message = format!("{}.{}", parts[0], parts[1]);
    RsaPublicKeyComponents { n: &n, e: &e }
        .verify(&RSA_PKCS1_2048_8192_SHA256, message.as_bytes(), &signature)
        .map_err(|_| "the signature does not match the issuer's key".to_string())
}

/// `GET /{tenant}/v2.0/.well-known/openid-configuration`
pub async fn openid_configuration(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
) -> Response {
    let op = "entra.metadata";
    let world = state.world();
    if !world.tenant_exists(&tenant) && !["common", "organizations"].contains(&tenant.as_str()) {
        let r = aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_tenant",
            90002,
            &format!("Tenant '{tenant}' not found."),
        );
        return tag(r, op, None);
    }
    let b = &state.settings.base_url;
    let body = json!({
        "token_endpoint": format!("{b}/{tenant}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{b}/{tenant}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": format!("{b}/{tenant}/v2.0"),
        "request_uri_parameter_supported": false,
        "userinfo_endpoint": format!("{b}/oidc/userinfo"),
        "authorization_endpoint": format!("{b}/{tenant}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{b}/{tenant}/oauth2/v2.0/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{b}/{tenant}/oauth2/v2.0/logout"),
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "tid", "oid"],
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    });
    tag(axum::Json(body).into_response(), op, None)
}

/// `GET /common/discovery/instance` (MSAL's instance discovery, when not disabled).
pub async fn instance_discovery(State(state): State<Shared>) -> Response {
    let b = &state.settings.base_url;
    let host = b.trim_start_matches("https://");
    let body = json!({
        "tenant_discovery_endpoint": format!("{b}/{{tenant}}/v2.0/.well-known/openid-configuration"),
        "api-version": "1.1",
        "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
    });
    tag(axum::Json(body).into_response(), "entra.metadata", None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arm_audience_spellings() {
        let base = "https://127.0.0.1:9";
        for s in [
            "https://management.azure.com/.default",
            "https://management.azure.com//.default",
            "https://management.core.windows.net//.default",
            "https://127.0.0.1:9/.default",
        ] {
            assert_eq!(scope_audience(s, base), Some(Audience::Arm), "{s}");
        }
        assert_eq!(
            scope_audience("6dae42f8-4368-4678-94ff-3960e28e3630/.default", base),
            Some(Audience::AksServer)
        );
        assert_eq!(
            scope_audience("https://graph.microsoft.com/.default", base),
            None
        );
        assert_eq!(scope_audience("https://management.azure.com", base), None);
        assert_eq!(scope_audience("", base), None);
    }
}

#[cfg(test)]
mod assertion_tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::rsa::KeySize;
    use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair};

    const ISSUER: &str = "https://issuer.test";

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    fn jwk(key: &RsaKeyPair, kid: &str) -> serde_json::Value {
        let public = key.public_key();
        serde_json::json!({"kty": "RSA", "kid": kid, "alg": "RS256",
            "n": b64(public.modulus().big_endian_without_leading_zero()),
            "e": b64(public.exponent().big_endian_without_leading_zero())})
    }

    fn signed(key: &RsaKeyPair, kid: &str, claims: serde_json::Value) -> String {
        let head = b64(serde_json::json!({"alg": "RS256", "kid": kid})
            .to_string()
            .as_bytes());
        let body = b64(claims.to_string().as_bytes());
        let message = format!("{head}.{body}");
        let mut signature = vec![0; key.public_modulus_len()];
        key.sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            message.as_bytes(),
            &mut signature,
        )
        .unwrap();
        format!("{message}.{}", b64(&signature))
    }

    fn principal() -> crate::world::Principal {
        crate::world::Principal {
            tenant_id: "t".into(),
            client_id: "c".into(),
            federated: true,
            issuer: Some(ISSUER.into()),
            subject: Some("system:serviceaccount:team-a:deployer".into()),
            audience: Some("api://AzureADTokenExchange".into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_federated_assertion_must_be_signed_by_the_issuer_and_name_the_subject() {
        let key = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let forger = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let issuers = vec![crate::world::OidcIssuer {
            issuer: ISSUER.into(),
            jwks: serde_json::json!({"keys": [jwk(&key, "k1")]}),
        }];
        let exp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 600;
        let claims = |sub: &str, iss: &str| serde_json::json!({"iss": iss, "sub": sub, "aud": ["api://AzureADTokenExchange"], "exp": exp});
        let good = claims("system:serviceaccount:team-a:deployer", ISSUER);
        assert!(check_assertion(&signed(&key, "k1", good.clone()), &principal(), &issuers).is_ok());
        // Another key claiming the same kid: the signature does not verify.
        let forged = check_assertion(&signed(&forger, "k1", good), &principal(), &issuers);
        assert_eq!(forged.unwrap_err().0, 700027);
        // The issuer's real key, but another namespace's ServiceAccount.
        let other = claims("system:serviceaccount:mallory:deployer", ISSUER);
        let refused = check_assertion(&signed(&key, "k1", other), &principal(), &issuers);
        assert_eq!(refused.unwrap_err().0, 70021);
        // Another issuer.
        let elsewhere = claims("system:serviceaccount:team-a:deployer", "https://evil.test");
        let refused = check_assertion(&signed(&key, "k1", elsewhere), &principal(), &issuers);
        assert_eq!(refused.unwrap_err().0, 70021);
    }
}
