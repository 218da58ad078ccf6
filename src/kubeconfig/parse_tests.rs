//! Tests of parsing, facts, expiry, the token swap and Debug redaction.

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

/// Name, ARM kubeconfigs, expected `metric_label()`.
type ErrorCase = (&'static str, Vec<(String, String)>, &'static str);

#[test]
fn parse_errors() {
    let with = |parts: &[&str]| one(&parts.concat());
    let cases: Vec<ErrorCase> = vec![
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

/// Name, kubeconfig, token, its expiry, users expected swapped, expected `expiry()`.
type SwapCase<'a> = (
    &'a str,
    String,
    &'a SecretString,
    Option<Timestamp>,
    usize,
    Option<Timestamp>,
);

#[test]
fn swap_replaces_plugins_with_the_token() {
    let token = SecretString::new("new-bearer-token");
    let at = Timestamp::from_second(1_900_000_000).unwrap();
    let jwt_token = SecretString::new(jwt(r#"{"exp":1850000000}"#));
    let jwt_exp = Timestamp::from_second(1_850_000_000).unwrap();
    let cases: [SwapCase<'_>; 5] = [
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
