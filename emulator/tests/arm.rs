//! End-to-end tests of the emulator binary: transport, Entra, ARM front door, AKS, hybrid.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use base64::Engine as _;
use common::*;
use serde_json::{Value, json};

#[test]
fn plain_http_is_refused() {
    let emu = start(&[]);
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", emu.port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    tcp.write_all(b"GET /_emulator/counters HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let _ = tcp.read_to_end(&mut got);
    assert!(
        !got.starts_with(b"HTTP/"),
        "plain HTTP got an HTTP answer: {:?}",
        String::from_utf8_lossy(&got)
    );
}

#[test]
fn non_loopback_listen_is_refused() {
    let out = std::process::Command::new(binary())
        .args(["--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "no ready line");
    assert!(String::from_utf8_lossy(&out.stderr).contains("non-loopback"));
}

#[test]
fn help_documents_flags() {
    let out = std::process::Command::new(binary())
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "--state-dir",
        "--ca-out",
        "--world",
        "--seed",
        "--write-burst",
        "--no-rate-limit",
        "--drop-rate",
    ] {
        assert!(text.contains(flag), "--help lacks {flag}");
    }
}

#[tokio::test]
async fn token_endpoint_good_and_bad_secret() {
    let emu = start(&[]);
    let ok = emu.token_for(CLIENT, SECRET, ARM_SCOPE).await;
    assert_eq!(ok.status(), 200);
    let v = json_of(ok).await;
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 3600);
    let bad = emu.token_for(CLIENT, "wrong", ARM_SCOPE).await;
    assert_eq!(bad.status(), 401);
    let v = json_of(bad).await;
    assert_eq!(v["error"], "invalid_client");
    assert_eq!(v["error_codes"], json!([7000215]));
    assert!(
        v["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS7000215:")
    );
    let scope = emu
        .token_for(CLIENT, SECRET, "https://graph.microsoft.com/.default")
        .await;
    assert_eq!(json_of(scope).await["error_codes"], json!([70011]));
}

async fn arm_get(emu: &Emulator, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = emu.http.get(emu.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

async fn expect_error(resp: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(resp.status(), status);
    assert!(resp.headers().contains_key("x-ms-request-id"));
    let v = json_of(resp).await;
    assert_eq!(v["error"]["code"], code, "{v}");
    v
}

#[tokio::test]
async fn arm_rejects_bad_tokens_with_401() {
    let emu = start(&["--token-lifetime-seconds", "1"]);
    let path = format!("{}?api-version=2025-10-01", cluster_path("aks1"));
    let r = arm_get(&emu, &path, None).await;
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_token\"")
    );
    expect_error(r, 401, "AuthenticationFailed").await;
    expect_error(
        arm_get(&emu, &path, Some("garbage")).await,
        401,
        "InvalidAuthenticationToken",
    )
    .await;
    let aks = emu.token(AKS_SCOPE).await;
    expect_error(
        arm_get(&emu, &path, Some(&aks)).await,
        401,
        "InvalidAuthenticationTokenAudience",
    )
    .await;
    let arm = emu.arm_token().await;
    wait_for(Duration::from_secs(5), "token expiry", || async {
        let r = arm_get(&emu, &path, Some(&arm)).await;
        (r.status() == 401).then_some(())
    })
    .await;
    expect_error(
        arm_get(&emu, &path, Some(&arm)).await,
        401,
        "ExpiredAuthenticationToken",
    )
    .await;
}

#[tokio::test]
async fn not_found_kinds_and_api_version() {
    let emu = start(&[]);
    let t = emu.arm_token().await;
    let v = "?api-version=2025-10-01";
    let other_sub = "/subscriptions/99999999-0000-0000-0000-000000000000/resourceGroups/rg1/providers/Microsoft.ContainerService/managedClusters/aks1";
    expect_error(
        arm_get(&emu, &format!("{other_sub}{v}"), Some(&t)).await,
        404,
        "SubscriptionNotFound",
    )
    .await;
    let no_rg = cluster_path("aks1").replace("rg1", "rg-nope");
    expect_error(
        arm_get(&emu, &format!("{no_rg}{v}"), Some(&t)).await,
        404,
        "ResourceGroupNotFound",
    )
    .await;
    let body = expect_error(
        arm_get(&emu, &format!("{}{v}", cluster_path("x")), Some(&t)).await,
        404,
        "ResourceNotFound",
    )
    .await;
    assert!(body["error"]["message"].as_str().unwrap().starts_with(
        "The Resource 'Microsoft.ContainerService/managedClusters/x' under resource group 'rg1' was not found"
    ));
    expect_error(
        arm_get(&emu, &cluster_path("aks1"), Some(&t)).await,
        400,
        "MissingApiVersionParameter",
    )
    .await;
    // Case-insensitive path matching, like ARM.
    let upper = cluster_path("AKS1")
        .replace("resourceGroups", "RESOURCEGROUPS")
        .replace("Microsoft.ContainerService", "microsoft.containerservice");
    assert_eq!(
        arm_get(&emu, &format!("{upper}{v}"), Some(&t))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn client_request_id_is_echoed_only_when_asked() {
    let emu = start(&[]);
    let t = emu.arm_token().await;
    let path = emu.url(&format!("{}?api-version=2025-10-01", cluster_path("aks1")));
    let r = emu
        .http
        .get(&path)
        .bearer_auth(&t)
        .header("x-ms-client-request-id", "abc")
        .send()
        .await
        .unwrap();
    assert!(!r.headers().contains_key("x-ms-client-request-id"));
    let r = emu
        .http
        .get(&path)
        .bearer_auth(&t)
        .header("x-ms-client-request-id", "abc")
        .header("x-ms-return-client-request-id", "true")
        .header(
            "x-ms-correlation-request-id",
            "0f8fad5b-d9cb-469f-a165-70867728950e",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-ms-client-request-id"], "abc");
    let log: Value = emu
        .http
        .get(emu.url("/_emulator/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let last = log
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|e| e["operation"] == "aks.get")
        .unwrap();
    assert_eq!(
        last["correlationId"],
        "0f8fad5b-d9cb-469f-a165-70867728950e"
    );
    assert_eq!(last["clientId"], CLIENT);
    assert!(
        !log.to_string().contains(&t),
        "the request log must never hold tokens"
    );
}

fn zip_b64(files: &[(&str, &str)]) -> String {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, body) in files {
        w.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(body.as_bytes()).unwrap();
    }
    base64::engine::general_purpose::STANDARD.encode(w.finish().unwrap().into_inner())
}

/// POSTs runCommand and polls the Location until a 200 result.
async fn run_command(emu: &Emulator, token: &str, cluster: &str, body: Value) -> Value {
    let r = emu
        .http
        .post(emu.url(&format!(
            "{}/runCommand?api-version=2025-10-01",
            cluster_path(cluster)
        )))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(&emu.base));
    let id = location
        .split("/commandResults/")
        .nth(1)
        .unwrap()
        .split('?')
        .next()
        .unwrap();
    assert!(
        id.len() == 32
            && id
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    assert!(location.ends_with("?api-version=2025-10-01"));
    wait_for(Duration::from_secs(20), "command result", || async {
        let r = emu
            .http
            .get(&location)
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        match r.status().as_u16() {
            202 => None,
            200 => Some(json_of(r).await),
            s => panic!("unexpected status {s}"),
        }
    })
    .await
}

#[tokio::test]
async fn capped_logs_end_at_a_character_boundary_within_the_cap() {
    let emu = start(&["--retry-after", "0", "--log-cap-bytes", "9"]);
    let t = emu.arm_token().await;
    // a b é ✓ ✓: the 9th byte is inside the second ✓.
    let res = run_command(
        &emu,
        &t,
        "aks1",
        json!({"command": "printf 'ab\\303\\251\\342\\234\\223\\342\\234\\223'"}),
    )
    .await;
    let logs = res["properties"]["logs"].as_str().unwrap();
    assert_eq!(logs, "ab\u{e9}\u{2713}");
}

#[tokio::test]
async fn run_command_runs_for_real_with_context() {
    let emu = start(&["--retry-after", "0"]);
    let t = emu.arm_token().await;
    let ctx = zip_b64(&[("a.txt", "alpha\n"), ("dir/b.txt", "beta\n")]);
    let res = run_command(
        &emu,
        &t,
        "aks1",
        json!({"command": "cat a.txt dir/b.txt; echo err >&2; exit 7", "context": ctx}),
    )
    .await;
    let p = &res["properties"];
    // Capitalized as the service answers (the spec's examples spell it in lower case).
    assert_eq!(p["provisioningState"], "Succeeded");
    assert_eq!(p["exitCode"], 7);
    assert_eq!(p["logs"], "alpha\nbeta\nerr\n");
    assert!(p["startedAt"].is_string() && p["finishedAt"].is_string());
    let counters = emu.counters().await;
    assert_eq!(
        counters["dispatches"]["cat a.txt dir/b.txt; echo err >&2; exit 7"],
        1
    );
}

#[tokio::test]
async fn a_failed_result_has_started_at_only_when_the_command_started() {
    let emu = start(&["--retry-after", "0"]);
    let world = format!(
        r#"
tenants: [{{id: {TENANT}}}]
principals: [{{tenantId: {TENANT}, clientId: {CLIENT}, clientSecret: {SECRET}}}]
subscriptions:
  - id: {SUB}
    resourceGroups:
      - name: rg1
        managedClusters:
          - {{name: never, runCommandFailure: {{reason: KubernetesPerformanceError, message: "did not start within 30s"}}}}
          - {{name: broke, runCommandFailure: {{reason: CommandTimedOut, message: "killed", started: true}}}}
"#
    );
    emu.put_world(&world).await;
    let t = emu.arm_token().await;
    let never = run_command(&emu, &t, "never", json!({"command": "true"})).await;
    let p = &never["properties"];
    assert_eq!(p["provisioningState"], "Failed");
    assert_eq!(p["reason"], "KubernetesPerformanceError");
    assert!(p.get("startedAt").is_none(), "{p}");
    let broke = run_command(&emu, &t, "broke", json!({"command": "true"})).await;
    let p = &broke["properties"];
    assert_eq!(p["provisioningState"], "Failed");
    assert_eq!(p["reason"], "CommandTimedOut");
    assert!(p["startedAt"].is_string(), "{p}");
}

#[tokio::test]
async fn run_command_logs_are_capped_at_512k() {
    let emu = start(&["--retry-after", "0"]);
    let t = emu.arm_token().await;
    let res = run_command(
        &emu,
        &t,
        "aks1",
        json!({"command": "echo first; head -c 700000 /dev/zero | tr '\\0' a"}),
    )
    .await;
    let logs = res["properties"]["logs"].as_str().unwrap();
    assert_eq!(logs.len(), 512 * 1024);
    assert!(logs.starts_with("first\n"), "the beginning is kept");
}

#[tokio::test]
async fn unknown_command_id_is_not_found() {
    let emu = start(&[]);
    let t = emu.arm_token().await;
    let path = format!(
        "{}/commandResults/0123456789abcdef0123456789abcdef?api-version=2025-10-01",
        cluster_path("aks1")
    );
    expect_error(arm_get(&emu, &path, Some(&t)).await, 404, "NotFound").await;
}

#[tokio::test]
async fn denied_action_is_authorization_failed() {
    let emu = start(&[]);
    let world = r#"
tenants: [{id: 00000000-0000-0000-0000-000000000001}]
principals:
  - {tenantId: 00000000-0000-0000-0000-000000000001, clientId: 44444444-4444-4444-4444-444444444444,
     clientSecret: s, objectId: 55555555-5555-5555-5555-555555555555,
     allowedActions: [Microsoft.ContainerService/managedClusters/read]}
subscriptions:
  - id: 00000000-0000-0000-0000-000000000000
    resourceGroups: [{name: rg1, managedClusters: [{name: aks1}]}]
"#;
    emu.put_world(world).await;
    let r = emu
        .token_for("44444444-4444-4444-4444-444444444444", "s", ARM_SCOPE)
        .await;
    let t = json_of(r).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = emu
        .http
        .post(emu.url(&format!(
            "{}/runCommand?api-version=2025-10-01",
            cluster_path("aks1")
        )))
        .bearer_auth(&t)
        .json(&json!({"command": "true"}))
        .send()
        .await
        .unwrap();
    let v = expect_error(r, 403, "AuthorizationFailed").await;
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("The client '44444444-4444-4444-4444-444444444444' with object id '55555555-5555-5555-5555-555555555555'"));
    assert!(msg.contains("'Microsoft.ContainerService/managedClusters/runcommand/action'"));
    assert_eq!(
        arm_get(
            &emu,
            &format!("{}?api-version=2025-10-01", cluster_path("aks1")),
            Some(&t)
        )
        .await
        .status(),
        200
    );
}

#[tokio::test]
async fn managed_identity_endpoint_issues_arm_tokens() {
    let emu = start(&[]);
    let url = format!(
        "{}?api-version=2019-08-01&resource=https://management.azure.com/",
        emu.ready["identityEndpoint"].as_str().unwrap()
    );
    let r = emu.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401, "x-identity-header is required");
    let r = emu
        .http
        .get(&url)
        .header("x-identity-header", "emulator-identity-header")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v = json_of(r).await;
    assert!(v["expires_on"].as_str().unwrap().parse::<u64>().is_ok());
    let t = v["access_token"].as_str().unwrap();
    assert_eq!(
        arm_get(
            &emu,
            &format!("{}?api-version=2025-10-01", cluster_path("aks1")),
            Some(t)
        )
        .await
        .status(),
        200
    );
}

fn hybrid_path(cluster: &str, action: &str) -> String {
    format!(
        "/subscriptions/{SUB}/resourceGroups/rg1/providers/Microsoft.Kubernetes/connectedClusters/{cluster}/providers/Microsoft.HybridContainerService/provisionedClusterInstances/default/{action}"
    )
}

fn kubeconfig_yaml(v: &Value) -> String {
    let value = v["properties"]["kubeconfigs"][0]["value"].as_str().unwrap();
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(value)
            .unwrap(),
    )
    .unwrap()
}

async fn list_user_kubeconfig(emu: &Emulator, t: &str, version: &str) -> reqwest::Response {
    emu.http
        .post(emu.url(&format!(
            "{}?api-version={version}",
            hybrid_path("arc1", "listUserKubeconfig")
        )))
        .bearer_auth(t)
        .send()
        .await
        .unwrap()
}

/// stable/2024-01-01: `final-state-via: azure-async-operation`, with `Location` as well.
#[tokio::test]
async fn hybrid_2024_01_01_lro_gives_async_operation_and_location() {
    let emu = start(&[]);
    let t = emu.arm_token().await;
    let version = "2024-01-01";
    let r = list_user_kubeconfig(&emu, &t, version).await;
    assert_eq!(r.status(), 202);
    let h = r.headers();
    let async_op = h["azure-asyncoperation"].to_str().unwrap().to_string();
    let location = h["location"].to_str().unwrap().to_string();
    assert_eq!(h["retry-after"], "1");
    // Tenant-level status URLs, as the spec examples' operation ids.
    let tenant_level = format!(
        "{}/providers/Microsoft.HybridContainerService/locations/westeurope/",
        emu.base
    );
    assert!(async_op.starts_with(&format!("{tenant_level}operationStatuses/")));
    assert!(
        location.starts_with(&format!("{tenant_level}operationResults/"))
            && location.ends_with(&format!("?api-version={version}"))
    );
    let status = |url: String| {
        let (http, t) = (emu.http.clone(), t.clone());
        async move { http.get(url).bearer_auth(t).send().await.unwrap() }
    };
    let first = status(async_op.clone()).await;
    assert_eq!(first.status(), 200);
    assert_eq!(json_of(first).await["status"], "InProgress");
    assert_eq!(status(location.clone()).await.status(), 202);
    let v = json_of(status(async_op).await).await;
    // The spec examples spell it "Succeeded".
    assert_eq!(v["status"], "Succeeded", "{v}");
    assert!(v["endTime"].is_string());
    assert!(kubeconfig_yaml(&v).contains("clusters:"));
    let final_loc = status(location).await;
    assert_eq!(final_loc.status(), 200);
    assert_eq!(json_of(final_loc).await["status"], "Succeeded");
}

/// preview/2026-04-01-preview: `final-state-via: location`; the 202 has only `Location` and
/// `Retry-After`.
#[tokio::test]
async fn hybrid_2026_04_01_preview_lro_gives_location_only() {
    let emu = start(&[]);
    let t = emu.arm_token().await;
    let version = "2026-04-01-preview";
    let r = list_user_kubeconfig(&emu, &t, version).await;
    assert_eq!(r.status(), 202);
    let h = r.headers();
    assert!(h.get("azure-asyncoperation").is_none(), "{h:?}");
    assert_eq!(h["retry-after"], "1");
    let location = h["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(&format!(
        "{}/providers/Microsoft.HybridContainerService/locations/westeurope/operationResults/",
        emu.base
    )));
    let mut polls = 0;
    let done = loop {
        polls += 1;
        assert!(polls <= 5, "still running after {polls} polls");
        let r = emu
            .http
            .get(&location)
            .bearer_auth(&t)
            .send()
            .await
            .unwrap();
        if r.status() == 202 {
            assert!(r.headers().get("location").is_some());
            continue;
        }
        assert_eq!(r.status(), 200);
        break json_of(r).await;
    };
    assert_eq!(polls, 3, "lroPolls=2 answers in progress, then the result");
    assert_eq!(done["status"], "Succeeded", "{done}");
    assert!(kubeconfig_yaml(&done).contains("clusters:"));
}

#[tokio::test]
async fn hybrid_unknown_api_version_is_refused() {
    let emu = start(&[]);
    let t = emu.arm_token().await;
    let r = list_user_kubeconfig(&emu, &t, "2023-01-01").await;
    expect_error(r, 400, "NoRegisteredProviderFound").await;
}

#[tokio::test]
async fn double_slash_paths_are_rejected() {
    let emu = start(&[]);
    let t = emu.arm_token().await;
    let good = hybrid_path("arc1", "listUserKubeconfig");
    for bad in [
        good.replace("arc1/providers", "arc1//providers"),
        format!("/{good}"),
    ] {
        let r = emu
            .http
            .post(emu.url(&format!("{bad}?api-version=2024-01-01")))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap();
        expect_error(r, 400, "InvalidRequestUri").await;
    }
}

#[tokio::test]
async fn correlation_request_ids_are_echoed_guid_or_not() {
    let emu = start(&[]);
    let token = emu.arm_token().await;
    let path = format!("{}?api-version=2025-10-01", cluster_path("aks1"));
    // A GUID, an undecorated 32-hex id (ARM takes those: Azure/azure-dev PR #9141) and free text.
    for id in [
        "2f1e6a0c-5d0b-4c1e-9a43-0d5b6f1f2a77",
        "2f1e6a0c5d0b4c1e9a430d5b6f1f2a77",
        "run-42-1",
    ] {
        let r = emu
            .http
            .get(emu.url(&path))
            .bearer_auth(&token)
            .header("x-ms-correlation-request-id", id)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{id}");
        assert_eq!(r.headers()["x-ms-correlation-request-id"], id);
    }
}
