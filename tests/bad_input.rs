//! Bad input, table-driven: malformed resource IDs, LRO headers, kubeconfigs, ARM responses and
//! RemoteCommand / KubeconfigExport specs. Each case names the outcome the README documents (a
//! status `reason`, or the API server refusing the object); none may panic.
//!
//! Pure cases call the parsers directly; ARM-response cases drive the real ARM client against a
//! scripted loopback server (the emulator only answers well-formed); spec cases go through the
//! real API server, the emulator and the operator.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, PostParams};
use kubeinvoke::azure::lro::{parse_retry_after_value, poll_link, retry_after};
use kubeinvoke::azure::{AksClusterId, ConnectedClusterId, ContainerGroupId};
use kubeinvoke::kubeconfig::{ParsedKubeconfig, parse_credentials};
use reqwest::Url;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};
use support::emulator::{Emulator, SUBSCRIPTION, aks_id, group_id, world};
use support::operator::Operator;
use support::{Cluster, wait_until};

const SUB: &str = "00000000-0000-0000-0000-000000000000";

fn id(rest: &str) -> String {
    format!("/subscriptions/{SUB}/resourceGroups/rg1/providers/{rest}")
}

/// AKS cluster IDs that are not: (case, ID).
fn bad_cluster_ids() -> Vec<(&'static str, String)> {
    vec![
        ("empty", String::new()),
        ("no leading slash", id("Microsoft.ContainerService/managedClusters/aks1")[1..].to_string()),
        ("subscription not a GUID", "/subscriptions/my-sub/resourceGroups/rg1/providers/Microsoft.ContainerService/managedClusters/aks1".into()),
        ("wrong provider namespace", id("Microsoft.Compute/managedClusters/aks1")),
        ("wrong resource type", id("Microsoft.ContainerService/virtualMachines/aks1")),
        ("name ends with a dash", id("Microsoft.ContainerService/managedClusters/aks1-")),
        ("name of 64 characters", id(&format!("Microsoft.ContainerService/managedClusters/{}", "a".repeat(64)))),
        ("extra trailing segment", id("Microsoft.ContainerService/managedClusters/aks1/agentPools/np1")),
        ("double slash", format!("/subscriptions/{SUB}//resourceGroups/rg1/providers/Microsoft.ContainerService/managedClusters/aks1")),
        ("resource group ends with a dot", format!("/subscriptions/{SUB}/resourceGroups/rg./providers/Microsoft.ContainerService/managedClusters/aks1")),
        ("non-ASCII name", id("Microsoft.ContainerService/managedClusters/akś1")),
        ("query string", id("Microsoft.ContainerService/managedClusters/aks1?api-version=2025-10-01")),
        ("surrounding whitespace", format!(" {} ", id("Microsoft.ContainerService/managedClusters/aks1"))),
        ("trailing slash", id("Microsoft.ContainerService/managedClusters/aks1/")),
        ("huge", id(&format!("Microsoft.ContainerService/managedClusters/{}", "x".repeat(100_000)))),
    ]
}

#[test]
fn malformed_resource_ids_are_refused_by_the_parser() {
    for (case, bad) in bad_cluster_ids() {
        assert!(
            bad.parse::<AksClusterId>().is_err(),
            "AKS ID case {case:?} was accepted"
        );
    }
    // The right shape for the wrong kind, and ACI's stricter names.
    let aks = aks_id("aks1");
    assert!(
        aks.parse::<ContainerGroupId>().is_err(),
        "an AKS ID is not a container group"
    );
    assert!(
        aks.parse::<ConnectedClusterId>().is_err(),
        "an AKS ID is not a connected cluster"
    );
    assert!(
        id("Microsoft.ContainerInstance/containerGroups/CG1")
            .parse::<ContainerGroupId>()
            .is_err(),
        "container group names are lower case"
    );
    let err = "/subscriptions/x"
        .parse::<AksClusterId>()
        .expect_err("too short");
    assert!(
        err.to_string().contains("expected /subscriptions/"),
        "{err}"
    );
}

fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        map.append(
            HeaderName::from_bytes(k.as_bytes()).expect("header name"),
            HeaderValue::from_bytes(v).expect("header value"),
        );
    }
    map
}

#[test]
fn malformed_lro_headers_are_errors_not_panics() {
    let base =
        Url::parse("https://management.azure.com/subscriptions/s/x?api-version=1").expect("url");
    let huge = "9".repeat(64 * 1024);
    let poll_cases: Vec<(&str, HeaderMap)> = vec![
        ("empty Location", headers(&[("location", b"")])),
        (
            "Location of another scheme",
            headers(&[("location", b"ftp://example.com/x")]),
        ),
        (
            "truncated Azure-AsyncOperation",
            headers(&[("azure-asyncoperation", b"https://")]),
        ),
        (
            "non-ASCII Location",
            headers(&[("location", "https://ex\u{e4}mple.com/x".as_bytes())]),
        ),
        (
            "Azure-AsyncOperation with bad port",
            headers(&[("azure-asyncoperation", b"https://host:99999/x")]),
        ),
    ];
    for (case, h) in poll_cases {
        assert!(poll_link(&h, &base).is_err(), "{case}: accepted");
    }
    let now = SystemTime::now();
    let retry_cases: Vec<(&str, HeaderMap)> = vec![
        ("Retry-After words", headers(&[("retry-after", b"soon")])),
        ("Retry-After negative", headers(&[("retry-after", b"-1")])),
        ("Retry-After fraction", headers(&[("retry-after", b"1.5")])),
        (
            "retry-after-ms not a number",
            headers(&[("retry-after-ms", b"1e3")]),
        ),
        (
            "x-ms-retry-after-ms negative",
            headers(&[("x-ms-retry-after-ms", b"-20")]),
        ),
        (
            "Retry-After half a date",
            headers(&[("retry-after", b"Wed, 21 Oct 2015 07:28")]),
        ),
    ];
    for (case, h) in retry_cases {
        assert!(retry_after(&h, now).is_err(), "{case}: accepted");
    }
    // Any run of digits is a delay, cut to the cap however long: never an overflow.
    assert_eq!(
        retry_after(&headers(&[("retry-after", huge.as_bytes())]), now),
        Ok(Some(kubeinvoke::azure::lro::MAX_RETRY_AFTER)),
        "Retry-After 64 KiB of digits"
    );
    // Well-formed edge values still work: a past date means now.
    assert_eq!(
        parse_retry_after_value("Wed, 21 Oct 2015 07:28:00 GMT", now),
        Ok(Duration::ZERO)
    );
    assert_eq!(
        parse_retry_after_value(" 7 ", now),
        Ok(Duration::from_secs(7))
    );
}

fn b64(s: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn malformed_kubeconfigs_are_invalid_kubeconfig() {
    let ok_cluster = "clusters: [{name: c, cluster: {server: 'https://x:443'}}]";
    let ok_rest = "users: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x";
    let cases: Vec<(&str, String)> = vec![
        ("not base64", "!!!not base64!!!".into()),
        ("base64 of binary", b64(&[0xff, 0xfe, 0x00, 0x80])),
        ("truncated YAML", b64(b"apiVersion: v1\nclusters: [{name: c, cluster: {server")),
        ("a YAML list", b64(b"- a\n- b\n")),
        ("garbage JSON", b64(b"{\"clusters\": [}")),
        ("no clusters", b64(format!("clusters: []\n{ok_rest}").as_bytes())),
        ("current context undefined", b64(format!("{ok_cluster}\nusers: [{{name: u, user: {{token: t}}}}]\ncontexts: [{{name: x, context: {{cluster: c, user: u}}}}]\ncurrent-context: y").as_bytes())),
        ("cluster without server", b64(format!("clusters: [{{name: c, cluster: {{}}}}]\n{ok_rest}").as_bytes())),
        ("clusters is a string", b64(format!("clusters: nope\n{ok_rest}").as_bytes())),
        ("deeply nested", b64(format!("clusters: {}{}", "[".repeat(2000), "]".repeat(2000)).as_bytes())),
    ];
    for (case, value) in cases {
        let err = ParsedKubeconfig::from_base64("clusterUser", &value)
            .expect_err(&format!("{case}: accepted"));
        assert_eq!(err.reason(), "InvalidKubeconfig", "{case}: {err}");
    }
    let empty = parse_credentials(&[]).expect_err("no kubeconfig");
    assert_eq!(empty.reason(), "InvalidKubeconfig");
}

// ---------------------------------------------------------------------------------------------
// ARM responses no real ARM sends, from a scripted loopback server, through the real ARM client
// and the one mapping from ARM errors to reasons.

#[derive(Clone)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn reply(status: u16, headers: &[(&str, &str)], body: &str) -> Reply {
    Reply {
        status,
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: body.as_bytes().to_vec(),
    }
}

type Script = Arc<Mutex<HashMap<String, Reply>>>;

async fn scripted_arm(script: Script) -> String {
    use axum::response::IntoResponse;
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let script = script.clone();
        async move {
            let path = req.uri().path().to_string();
            let found = script
                .lock()
                .expect("script")
                .iter()
                .find(|(key, _)| {
                    path.contains(&format!("/{key}/")) || path.ends_with(&format!("/{key}"))
                })
                .map(|(_, r)| r.clone());
            let Some(r) = found else {
                return (axum::http::StatusCode::IM_A_TEAPOT, "unscripted").into_response();
            };
            let mut resp = axum::response::Response::new(axum::body::Body::from(r.body));
            *resp.status_mut() = axum::http::StatusCode::from_u16(r.status).expect("status");
            for (k, v) in r.headers {
                resp.headers_mut().append(
                    HeaderName::from_bytes(k.as_bytes()).expect("name"),
                    HeaderValue::from_str(&v).expect("value"),
                );
            }
            resp
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

#[derive(Debug)]
struct FixedToken;

#[async_trait::async_trait]
impl azure_core::credentials::TokenCredential for FixedToken {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<azure_core::credentials::TokenRequestOptions<'_>>,
    ) -> azure_core::Result<azure_core::credentials::AccessToken> {
        Ok(azure_core::credentials::AccessToken {
            token: azure_core::credentials::Secret::new("bad-input-token"),
            expires_on: azure_core::time::OffsetDateTime::now_utc()
                + azure_core::time::Duration::hours(1),
        })
    }
}

enum Call {
    Get,
    RunCommand,
    CommandResult,
    UserCredential,
}

#[tokio::test]
async fn malformed_arm_responses_map_to_their_reason() {
    use kubeinvoke::azure::client::{NoopObserver, RetryPolicy};
    use kubeinvoke::azure::throttle::{Throttle, ThrottleConfig};
    use kubeinvoke::azure::{AksClient, ArmClient, CallContext, Cloud, Principal};
    use kubeinvoke::controllers::arm_errors::failure;
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();

    let json = ("content-type", "application/json; charset=utf-8");
    let huge = "7".repeat(64 * 1024);
    let loc = |name: &str, tail: &str| {
        format!(
            "{{base}}/subscriptions/{SUB}/resourceGroups/rg1/providers/Microsoft.ContainerService/managedClusters/{name}/{tail}?api-version=2025-10-01"
        )
    };
    // (case, cluster name = script key, call, reply, reason, transient)
    let cases: Vec<(&str, &str, Call, Reply, &str, bool)> = vec![
        (
            "garbage JSON",
            "c-garbage",
            Call::Get,
            reply(200, &[json], "{\"properties\": {"),
            "Retrying",
            true,
        ),
        (
            "HTML instead of JSON",
            "c-html",
            Call::Get,
            reply(
                200,
                &[("content-type", "text/html")],
                "<html>gateway</html>",
            ),
            "Retrying",
            true,
        ),
        (
            "JSON of the wrong shape",
            "c-shape",
            Call::Get,
            reply(200, &[json], "[1, 2, 3]"),
            "Retrying",
            true,
        ),
        (
            "404 with an HTML body",
            "c-404",
            Call::Get,
            reply(404, &[("content-type", "text/html")], "<h1>Not Found</h1>"),
            "TargetNotFound",
            false,
        ),
        (
            "403 AuthorizationFailed",
            "c-403",
            Call::Get,
            reply(
                403,
                &[json],
                r#"{"error":{"code":"AuthorizationFailed","message":"The client 'x' with object id 'y' does not have authorization to perform action 'Microsoft.ContainerService/managedClusters/read' over scope 'z'"}}"#,
            ),
            // A role assignment may still be on its way: waited for until the deadline.
            "Forbidden",
            true,
        ),
        (
            "401 without a body",
            "c-401",
            Call::Get,
            reply(401, &[], ""),
            "Forbidden",
            false,
        ),
        (
            "400 with a body that is not JSON",
            "c-400",
            Call::Get,
            reply(400, &[("content-type", "text/plain")], "bad"),
            "InvalidSpec",
            false,
        ),
        (
            "500 with an empty body",
            "c-500",
            Call::Get,
            reply(500, &[], ""),
            "Retrying",
            true,
        ),
        (
            "202 without Location",
            "c-noloc",
            Call::RunCommand,
            reply(202, &[("retry-after", "1")], ""),
            "ResultUnavailable",
            false,
        ),
        (
            "202 with a truncated Location",
            "c-trunc",
            Call::RunCommand,
            reply(202, &[("location", "https://")], ""),
            "ResultUnavailable",
            false,
        ),
        (
            "202 whose Location is not a command result",
            "c-other",
            Call::RunCommand,
            reply(202, &[("location", &loc("c-other", "operations/x"))], ""),
            "ResultUnavailable",
            false,
        ),
        (
            "202 with Retry-After in words",
            "c-ra",
            Call::RunCommand,
            reply(
                202,
                &[
                    (
                        "location",
                        &loc("c-ra", "commandResults/0123456789abcdef0123456789abcdef"),
                    ),
                    ("retry-after", "later"),
                ],
                "",
            ),
            "accepted",
            false,
        ),
        (
            // Any 2xx to a run command is ARM's acceptance: a body past the read cap does not
            // make it "not processed" (and so sent again).
            "202 with a body past the read cap",
            "c-body",
            Call::RunCommand,
            Reply {
                body: vec![b'x'; kubeinvoke::azure::client::MAX_BODY_BYTES + 1],
                ..reply(
                    202,
                    &[(
                        "location",
                        &loc("c-body", "commandResults/0123456789abcdef0123456789abcdef"),
                    )],
                    "",
                )
            },
            "accepted",
            false,
        ),
        (
            // An absurd delay is cut to five minutes (and the poll to the run's deadline).
            "202 with a 64 KiB Retry-After",
            "c-huge",
            Call::CommandResult,
            reply(202, &[("retry-after", &huge)], ""),
            "accepted",
            false,
        ),
        (
            "result without provisioningState",
            "c-nostate",
            Call::CommandResult,
            reply(200, &[json], r#"{"properties":{}}"#),
            "Retrying",
            true,
        ),
        (
            "truncated result JSON",
            "c-cut",
            Call::CommandResult,
            reply(200, &[json], r#"{"properties":{"provisioningState":"Succ"#),
            "Retrying",
            true,
        ),
        (
            "result with a negative Retry-After",
            "c-neg",
            Call::CommandResult,
            reply(202, &[("retry-after", "-5")], ""),
            "Retrying",
            true,
        ),
        (
            "kubeconfig value not base64",
            "c-kc64",
            Call::UserCredential,
            reply(
                200,
                &[json],
                r#"{"kubeconfigs":[{"name":"clusterUser","value":"%%%"}]}"#,
            ),
            "InvalidKubeconfig",
            false,
        ),
        (
            "no kubeconfigs",
            "c-kc0",
            Call::UserCredential,
            reply(200, &[json], r#"{"kubeconfigs":[]}"#),
            "InvalidKubeconfig",
            false,
        ),
        (
            "kubeconfig of invalid YAML",
            "c-kcyaml",
            Call::UserCredential,
            reply(
                200,
                &[json],
                &format!(
                    r#"{{"kubeconfigs":[{{"name":"clusterUser","value":"{}"}}]}}"#,
                    b64(b"clusters: [\n  - {name")
                ),
            ),
            "InvalidKubeconfig",
            false,
        ),
    ];

    let script: Script = Default::default();
    let base = scripted_arm(script.clone()).await;
    for (_, name, _, r, _, _) in &cases {
        let mut r = r.clone();
        for h in &mut r.headers {
            h.1 = h.1.replace("{base}", &base);
        }
        script.lock().expect("script").insert(name.to_string(), r);
    }
    // The scripted ARM speaks plain HTTP, which `Cloud::custom` refuses: build the variant directly.
    let cloud = Cloud::Custom {
        arm_endpoint: reqwest::Url::parse(&format!("{base}/")).expect("ARM URL"),
        authority_host: reqwest::Url::parse("https://login.invalid").expect("authority URL"),
        exec_hosts: Vec::new(),
    };
    let arm = ArmClient::from_parts(
        reqwest::Client::new(),
        &cloud,
        Throttle::new(ThrottleConfig::default()),
        RetryPolicy {
            max_attempts: 2,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(10),
        },
        Arc::new(NoopObserver),
    );
    let aks = AksClient::new(arm, None);
    let mut mismatches = Vec::new();
    for (case, name, call, _, want, transient) in cases {
        let ctx = CallContext {
            credential: Arc::new(FixedToken),
            principal: Principal {
                tenant_id: "t".into(),
                client_id: "c".into(),
            },
            subscription: SUB.into(),
            correlation_id: format!("bad-input-{name}"),
            deadline: tokio::time::Instant::now() + Duration::from_secs(10),
            fence: None,
            forget_credential: None,
            party: "bad-input".into(),
            order: None,
        };
        let cluster: AksClusterId = id(&format!(
            "Microsoft.ContainerService/managedClusters/{name}"
        ))
        .parse()
        .expect("id");
        let command_id = kubeinvoke::azure::CommandId::new("0123456789abcdef0123456789abcdef")
            .expect("command id");
        let got: (String, bool) = match call {
            Call::Get => match aks.get_cluster(&ctx, &cluster).await {
                Ok(_) => ("accepted".into(), false),
                Err(e) => {
                    let f = failure(&e);
                    (f.reason.as_str().into(), f.transient)
                }
            },
            Call::RunCommand => match aks
                .run_command(&ctx, &cluster, "true", None, None, false)
                .await
            {
                Ok(_) => ("accepted".into(), false),
                Err(e) => {
                    let f = failure(&e);
                    (f.reason.as_str().into(), f.transient)
                }
            },
            Call::CommandResult => match aks.command_result(&ctx, &cluster, &command_id).await {
                Ok(_) => ("accepted".into(), false),
                Err(e) => {
                    let f = failure(&e);
                    (f.reason.as_str().into(), f.transient)
                }
            },
            Call::UserCredential => match aks
                .list_cluster_user_credential(&ctx, &cluster, None, None)
                .await
            {
                Ok(creds) => {
                    let values: Vec<(String, String)> = creds
                        .iter()
                        .map(|c| (c.name.clone(), c.value_base64.expose().to_string()))
                        .collect();
                    match parse_credentials(&values) {
                        Ok(_) => ("accepted".into(), false),
                        Err(e) => (e.reason().into(), false),
                    }
                }
                Err(e) => {
                    let f = failure(&e);
                    (f.reason.as_str().into(), f.transient)
                }
            },
        };
        if got != (want.to_string(), transient) {
            mismatches.push(format!(
                "{case}: got {got:?}, want ({want}, transient {transient})"
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "ARM response cases:\n{}",
        mismatches.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Specs through the real API server, the emulator and the operator.

enum Want {
    /// The API server refuses the object (schema): `status.reason` never exists.
    Refused,
    /// The operator ends the resource with this reason.
    Reason(&'static str),
}

const FAULTY_CLUSTERS: &str = r#"          - {name: kc-b64, kubeconfigFault: invalidBase64}
          - {name: kc-yaml, kubeconfigFault: invalidYaml}
          - {name: kc-empty, kubeconfigFault: empty}
          - {name: kc-noclusters, kubeconfigFault: noClusters}"#;

fn rc_spec(target: Value, command: &str) -> Value {
    json!({"target": target, "command": command})
}

fn aks_target(id: &str) -> Value {
    json!({"aks": {"resourceId": id}})
}

fn kcx_spec(cluster: &str) -> Value {
    json!({"source": {"aks": {"resourceId": aks_id(cluster), "role": "User"}}, "secret": {"name": format!("{cluster}-kubeconfig")}})
}

fn rc_cases() -> Vec<(String, Value, Want)> {
    let with = |mut spec: Value, key: &str, value: Value| {
        spec[key] = value;
        spec
    };
    let ok = || rc_spec(aks_target(&aks_id("aks1")), "echo bad-input");
    // A missing or unusable reference is waited for until the deadline: keep it short.
    let waits = || with(ok(), "timeoutSeconds", json!(3));
    let mut cases: Vec<(String, Value, Want)> = bad_cluster_ids()
        .into_iter()
        .map(|(case, bad)| {
            (
                format!("resource ID: {case}"),
                rc_spec(aks_target(&bad), "true"),
                Want::Refused,
            )
        })
        .collect();
    cases.extend([
        ("timeoutSeconds 0".into(), with(ok(), "timeoutSeconds", json!(0)), Want::Refused),
        ("timeoutSeconds over a day".into(), with(ok(), "timeoutSeconds", json!(86_401)), Want::Refused),
        ("maxAttempts 11".into(), with(ok(), "maxAttempts", json!(11)), Want::Refused),
        ("tailBytes 20000".into(), with(ok(), "output", json!({"tailBytes": 20_000})), Want::Refused),
        ("unknown dispatchPolicy".into(), with(ok(), "dispatchPolicy", json!("Sometimes")), Want::Refused),
        ("two targets".into(), rc_spec(json!({"aks": {"resourceId": aks_id("aks1")}, "containerInstance": {"resourceId": group_id("cg1"), "container": "app"}}), "true"), Want::Refused),
        ("no target".into(), rc_spec(json!({}), "true"), Want::Refused),
        ("absolute file path".into(), with(ok(), "files", json!([{"configMapRef": {"name": "files", "items": [{"key": "a", "path": "/etc/passwd"}]}}])), Want::Refused),
        ("file path with ..".into(), with(ok(), "files", json!([{"configMapRef": {"name": "files", "items": [{"key": "a", "path": "../a"}]}}])), Want::Refused),
        ("container name in upper case".into(), rc_spec(json!({"containerInstance": {"resourceId": group_id("cg1"), "container": "App"}}), "ls"), Want::Refused),
        ("missing ConfigMap".into(), with(waits(), "files", json!([{"configMapRef": {"name": "nope"}}])), Want::Reason("FileNotFound")),
        ("missing Secret".into(), with(waits(), "files", json!([{"secretRef": {"name": "nope"}}])), Want::Reason("FileNotFound")),
        ("missing key".into(), with(waits(), "files", json!([{"configMapRef": {"name": "files", "items": [{"key": "absent"}]}}])), Want::Reason("FileNotFound")),
        ("files over --max-context-bytes".into(), with(ok(), "files", json!([{"configMapRef": {"name": "noise"}}])), Want::Reason("ContextTooLarge")),
        ("missing credentialRef".into(), with(waits(), "credentialRef", json!({"name": "nope"})), Want::Reason("CredentialNotFound")),
        ("credential without AZURE_CLIENT_ID".into(), with(waits(), "credentialRef", json!({"name": "no-client-id"})), Want::Reason("CredentialNotFound")),
        // A wrong secret and a missing role look like new ones still replicating: waited for.
        ("wrong client secret".into(), with(waits(), "credentialRef", json!({"name": "wrong-secret"})), Want::Reason("Forbidden")),
        ("identity without runcommand/action".into(), with(waits(), "credentialRef", json!({"name": "read-only"})), Want::Reason("Forbidden")),
        ("unknown cluster".into(), rc_spec(aks_target(&aks_id("no-such-cluster")), "true"), Want::Reason("TargetNotFound")),
        ("unknown resource group".into(), rc_spec(aks_target(&format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/nope/providers/Microsoft.ContainerService/managedClusters/aks1")), "true"), Want::Reason("TargetNotFound")),
        ("run command disabled".into(), rc_spec(aks_target(&aks_id("aks-norun")), "true"), Want::Reason("RunCommandDisabled")),
        ("ACI arguments without shell".into(), rc_spec(json!({"containerInstance": {"resourceId": group_id("cg1"), "container": "app"}}), "ls -la /"), Want::Reason("InvalidSpec")),
        ("ACI unknown container".into(), rc_spec(json!({"containerInstance": {"resourceId": group_id("cg1"), "container": "nope"}}), "ls"), Want::Reason("TargetNotFound")),
        ("output Secret owned by someone else".into(), with(ok(), "output", json!({"secretName": "taken"})), Want::Reason("SecretConflict")),
    ]);
    cases
}

fn kcx_cases() -> Vec<(String, Value, Want)> {
    let mut interval = kcx_spec("aks1");
    interval["refreshInterval"] = json!("10s");
    let mut words = kcx_spec("aks1");
    words["refreshInterval"] = json!("hourly");
    vec![
        (
            "kubeconfig not base64".into(),
            kcx_spec("kc-b64"),
            Want::Reason("InvalidKubeconfig"),
        ),
        (
            "kubeconfig not YAML".into(),
            kcx_spec("kc-yaml"),
            Want::Reason("InvalidKubeconfig"),
        ),
        (
            "empty kubeconfig".into(),
            kcx_spec("kc-empty"),
            Want::Reason("InvalidKubeconfig"),
        ),
        (
            "kubeconfig without clusters".into(),
            kcx_spec("kc-noclusters"),
            Want::Reason("InvalidKubeconfig"),
        ),
        (
            "refreshInterval under a minute".into(),
            interval,
            Want::Reason("InvalidSpec"),
        ),
        ("refreshInterval in words".into(), words, Want::Refused),
        (
            "unknown cluster".into(),
            kcx_spec("no-such-cluster"),
            Want::Reason("TargetNotFound"),
        ),
    ]
}

async fn prerequisites(client: &kube::Client, ns: &str) {
    let secrets = Api::<Secret>::namespaced(client.clone(), ns);
    let secret = |name: &str, data: Value| -> Secret {
        serde_json::from_value(json!({"metadata": {"name": name}, "stringData": data}))
            .expect("Secret")
    };
    use support::emulator::{CLIENT_ID, TENANT};
    for s in [
        secret(
            "no-client-id",
            json!({"AZURE_TENANT_ID": TENANT, "AZURE_CLIENT_SECRET": "x"}),
        ),
        secret(
            "wrong-secret",
            json!({"AZURE_TENANT_ID": TENANT, "AZURE_CLIENT_ID": CLIENT_ID, "AZURE_CLIENT_SECRET": "not-the-secret"}),
        ),
        secret(
            "read-only",
            json!({"AZURE_TENANT_ID": TENANT, "AZURE_CLIENT_ID": "44444444-4444-4444-4444-444444444444", "AZURE_CLIENT_SECRET": "limited-secret"}),
        ),
        secret("taken", json!({"note": "not owned by any RemoteCommand"})),
    ] {
        secrets
            .create(&PostParams::default(), &s)
            .await
            .expect("create Secret");
    }
    // 256 KiB of incompressible bytes: over the operator's --max-context-bytes of 64 KiB once zipped.
    let mut noise = Vec::with_capacity(256 * 1024);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while noise.len() < 256 * 1024 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        noise.extend_from_slice(&x.to_le_bytes());
    }
    let configmaps = Api::<ConfigMap>::namespaced(client.clone(), ns);
    for cm in [
        json!({"metadata": {"name": "files"}, "data": {"a": "hello"}}),
        json!({"metadata": {"name": "noise"}, "binaryData": {"noise.bin": b64(&noise)}}),
    ] {
        configmaps
            .create(
                &PostParams::default(),
                &serde_json::from_value(cm).expect("ConfigMap"),
            )
            .await
            .expect("create ConfigMap");
    }
}

/// `status.reason` once it is final (not one of the in-progress reasons).
fn final_reason(status: Option<&Value>) -> Option<String> {
    let reason = status?.get("reason")?.as_str()?;
    let in_progress = [
        "",
        "Pending",
        "Dispatching",
        "Running",
        "Throttled",
        "Retrying",
        "Refreshing",
    ];
    (!in_progress.contains(&reason)).then(|| reason.to_string())
}

#[tokio::test]
async fn malformed_specs_are_refused_or_fail_with_their_reason() {
    let (client, ns) = support::rcmd::setup("bad-input").await;
    prerequisites(&client, &ns).await;
    let emulator = Emulator::start(&world(FAULTY_CLUSTERS, ""), &[]);
    let _operator = Operator::start(&emulator, &ns, &["--max-context-bytes", "65536"]);
    // Raw JSON through a dynamic API: what kubectl apply would send, typed or not.
    let api_for = |kind: &str, plural: &str| {
        let gvk = kube::api::GroupVersionKind::gvk("kubeinvoke.io", "v1alpha1", kind);
        Api::<kube::api::DynamicObject>::namespaced_with(
            client.clone(),
            &ns,
            &kube::api::ApiResource::from_gvk_with_plural(&gvk, plural),
        )
    };
    let rcs = api_for("RemoteCommand", "remotecommands");
    let kcxs = api_for("KubeconfigExport", "kubeconfigexports");

    let mut waiting = Vec::new();
    let mut mismatches = Vec::new();
    let all: Vec<(&str, String, Value, Want)> = rc_cases()
        .into_iter()
        .map(|(c, s, w)| ("RemoteCommand", c, s, w))
        .chain(
            kcx_cases()
                .into_iter()
                .map(|(c, s, w)| ("KubeconfigExport", c, s, w)),
        )
        .collect();
    let total = all.len();
    for (i, (kind, case, spec, want)) in all.into_iter().enumerate() {
        let name = format!("case-{i:02}");
        let object = json!({
            "apiVersion": "kubeinvoke.io/v1alpha1", "kind": kind,
            "metadata": {"name": name}, "spec": spec,
        });
        let object: kube::api::DynamicObject = serde_json::from_value(object).expect("object");
        let api = if kind == "RemoteCommand" { &rcs } else { &kcxs };
        let created = api
            .create(&PostParams::default(), &object)
            .await
            .map(|_| ());
        match (created, want) {
            (Err(_), Want::Refused) => {}
            (Ok(()), Want::Refused) => mismatches.push(format!(
                "{kind} {case:?} ({name}): accepted by the API server"
            )),
            (Err(e), Want::Reason(r)) => {
                mismatches.push(format!("{kind} {case:?} ({name}): refused ({e}), want {r}"))
            }
            (Ok(()), Want::Reason(r)) => waiting.push((kind, case, name, r)),
        }
    }
    eprintln!("{total} spec cases, {} for the operator", waiting.len());
    let cluster = Cluster::get();
    for (kind, case, name, want) in waiting {
        let resource = if kind == "RemoteCommand" {
            "remotecommands.kubeinvoke.io"
        } else {
            "kubeconfigexports.kubeinvoke.io"
        };
        let got = wait_until(
            Duration::from_secs(60),
            &format!("{kind} {case:?} ({name}) to end"),
            || async {
                let out = cluster.kubectl(&["get", resource, "-n", &ns, &name, "-o", "json"]);
                let obj: Value = serde_json::from_slice(&out.stdout).ok()?;
                final_reason(obj.get("status"))
            },
        )
        .await;
        if got != want {
            mismatches.push(format!(
                "{kind} {case:?} ({name}): reason {got}, want {want}"
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "spec cases:\n{}",
        mismatches.join("\n")
    );
}
