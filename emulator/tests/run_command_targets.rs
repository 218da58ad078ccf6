//! AKS run commands that do not start, results that are never found, stopped clusters and the
//! clusterToken's tenant and lifetime.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const OTHER_TENANT: &str = "00000000-0000-0000-0000-0000000000aa";
const SHORT: &str = "55555555-5555-5555-5555-555555555555";

fn world() -> String {
    format!(
        r#"
tenants: [{{id: {TENANT}}}, {{id: {OTHER_TENANT}}}]
principals:
  - {{tenantId: {TENANT}, clientId: {CLIENT}, clientSecret: {SECRET}}}
  - {{tenantId: {OTHER_TENANT}, clientId: {CLIENT}, clientSecret: {SECRET}}}
  - {{tenantId: {TENANT}, clientId: {SHORT}, clientSecret: s, tokenLifetimeSeconds: 3}}
subscriptions:
  - id: {SUB}
    resourceGroups:
      - name: rg1
        managedClusters:
          - name: plain
          - name: blocked
            runCommandFailure:
              reason: KubernetesPerformanceError
              message: "container command-x in aks-command namespace did not start within 30s"
              onPost: true
              status: 500
              blockSeconds: 1.0
          - name: webhook
            runCommandFailure:
              reason: KubernetesOperationError
              message: 'Failed to run command in managed cluster due to kubernetes failure. details: admission webhook "x" denied the request: no'
              onPost: true
          - {{name: lost, resultsNotFound: true}}
          - {{name: stopped, powerState: Stopped}}
          - {{name: aad-home, aadManaged: true}}
          - {{name: aad-other, aadManaged: true, aadTenantId: {OTHER_TENANT}}}
          - {{name: aad-slow, aadManaged: true, commandDuration: 5}}
"#
    )
}

async fn post(emu: &Emulator, t: &str, cluster: &str, body: Value) -> reqwest::Response {
    emu.http
        .post(emu.url(&format!(
            "{}/runCommand?api-version=2025-10-01",
            cluster_path(cluster)
        )))
        .bearer_auth(t)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn get(emu: &Emulator, t: &str, url: &str) -> reqwest::Response {
    emu.http.get(url).bearer_auth(t).send().await.unwrap()
}

/// `GET managedClusters/{name}`.
async fn get_cluster(emu: &Emulator, t: &str, name: &str) -> reqwest::Response {
    let url = emu.url(&format!("{}?api-version=2025-10-01", cluster_path(name)));
    get(emu, t, &url).await
}

/// A token of `client` from `tenant` for `scope`.
async fn token_in(emu: &Emulator, tenant: &str, client: &str, secret: &str, scope: &str) -> String {
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let r = emu
        .http
        .post(emu.url(&format!("/{tenant}/oauth2/v2.0/token")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=client_credentials&client_id={}&client_secret={}&scope={}",
            enc(client),
            enc(secret),
            enc(scope)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    json_of(r).await["access_token"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn error_code(r: reqwest::Response) -> (u16, String, String) {
    let status = r.status().as_u16();
    let v = json_of(r).await;
    (
        status,
        v["error"]["code"].as_str().unwrap_or_default().to_string(),
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

#[tokio::test]
async fn a_command_that_did_not_start_can_block_then_fail_the_post_with_500() {
    let emu = start(&[]);
    emu.put_world(&world()).await;
    let t = emu.arm_token().await;
    let sent = Instant::now();
    let r = post(&emu, &t, "blocked", json!({"command": "true"})).await;
    let waited = sent.elapsed();
    let (status, code, message) = error_code(r).await;
    assert_eq!((status, code.as_str()), (500, "KubernetesPerformanceError"));
    assert!(message.contains("did not start within 30s"), "{message}");
    assert!(waited >= Duration::from_millis(950), "blocked {waited:?}");
    // Other wordings come through `message`; the status defaults to 400.
    let (status, code, message) =
        error_code(post(&emu, &t, "webhook", json!({"command": "true"})).await).await;
    assert_eq!((status, code.as_str()), (400, "KubernetesOperationError"));
    assert!(message.contains("admission webhook \"x\" denied the request"));
    // Only error statuses make sense.
    let bad = world().replace("status: 500", "status: 200");
    let r = emu
        .http
        .put(emu.url("/_emulator/world"))
        .body(bad)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn an_accepted_command_whose_pod_never_ran_has_no_result() {
    let emu = start(&["--retry-after", "0"]);
    emu.put_world(&world()).await;
    let t = emu.arm_token().await;
    let marker = std::env::temp_dir().join(format!("emu-lost-{}", uuid::Uuid::new_v4().simple()));
    let command = format!("touch {}", marker.display());
    let lost = post(&emu, &t, "lost", json!({"command": command})).await;
    assert_eq!(lost.status(), 202);
    let lost_at = lost.headers()["location"].to_str().unwrap().to_string();
    // The same command on an ordinary cluster, sent after it, runs and finishes...
    let plain = post(&emu, &t, "plain", json!({"command": "true"})).await;
    let plain_at = plain.headers()["location"].to_str().unwrap().to_string();
    wait_for(Duration::from_secs(20), "the ordinary result", || async {
        (get(&emu, &t, &plain_at).await.status() == 200).then_some(())
    })
    .await;
    // ...while the other is never found, and never ran.
    for _ in 0..3 {
        let (status, code, _) = error_code(get(&emu, &t, &lost_at).await).await;
        assert_eq!((status, code.as_str()), (404, "NotFound"));
    }
    assert!(!marker.exists(), "the command must not run");
    assert_eq!(emu.counters().await["dispatches"][&command], 1);
}

#[tokio::test]
async fn a_stopped_cluster_says_so_and_refuses_run_commands() {
    let emu = start(&[]);
    emu.put_world(&world()).await;
    let t = emu.arm_token().await;
    let r = get_cluster(&emu, &t, "stopped").await;
    let v = json_of(r).await;
    assert_eq!(v["properties"]["powerState"]["code"], "Stopped");
    assert_eq!(v["properties"]["provisioningState"], "Succeeded");
    let (status, code, message) =
        error_code(post(&emu, &t, "stopped", json!({"command": "true"})).await).await;
    assert_eq!((status, code.as_str()), (400, "OperationNotAllowed"));
    assert!(message.contains("(Succeeded,Stopped)"), "{message}");
}

#[tokio::test]
async fn a_cluster_token_must_come_from_the_clusters_tenant() {
    let emu = start(&[]);
    emu.put_world(&world()).await;
    let t = emu.arm_token().await;
    let r = get_cluster(&emu, &t, "aad-other").await;
    let aad = &json_of(r).await["properties"]["aadProfile"];
    assert_eq!(aad["managed"], true);
    assert_eq!(aad["tenantID"], OTHER_TENANT);
    let home = token_in(&emu, TENANT, CLIENT, SECRET, AKS_SCOPE).await;
    let other = token_in(&emu, OTHER_TENANT, CLIENT, SECRET, AKS_SCOPE).await;
    let (status, code, message) = error_code(
        post(
            &emu,
            &t,
            "aad-other",
            json!({"command": "true", "clusterToken": home}),
        )
        .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (400, "InvalidClusterToken"));
    assert!(
        message.contains(TENANT) && message.contains(OTHER_TENANT),
        "says which tenants: {message}"
    );
    for (cluster, token) in [("aad-other", other), ("aad-home", home)] {
        let r = post(
            &emu,
            &t,
            cluster,
            json!({"command": "true", "clusterToken": token}),
        )
        .await;
        assert_eq!(r.status(), 202, "{cluster}");
    }
}

#[tokio::test]
async fn a_cluster_token_that_expires_mid_command_fails_it_as_unauthorized() {
    let emu = start(&["--retry-after", "0"]);
    emu.put_world(&world()).await;
    let t = emu.arm_token().await;
    // Lives 3 s; the command takes 5.
    let short = token_in(&emu, TENANT, SHORT, "s", AKS_SCOPE).await;
    let r = post(
        &emu,
        &t,
        "aad-slow",
        json!({"command": "true", "clusterToken": short}),
    )
    .await;
    assert_eq!(r.status(), 202);
    let at = r.headers()["location"].to_str().unwrap().to_string();
    let v: Value = wait_for(Duration::from_secs(20), "the result", || async {
        let r = get(&emu, &t, &at).await;
        if r.status() == 200 {
            Some(json_of(r).await)
        } else {
            None
        }
    })
    .await;
    let p = &v["properties"];
    assert_eq!(
        p["provisioningState"]
            .as_str()
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("failed")
    );
    assert_eq!(p["reason"], "ClusterTokenExpired");
    assert!(p["startedAt"].is_string(), "it did start: {p}");
    assert!(
        p["logs"]
            .as_str()
            .unwrap()
            .contains("You must be logged in to the server (Unauthorized)"),
        "{p}"
    );
}
