//! End-to-end tests of what the Azure CLI needs from the emulator as a custom cloud: cloud
//! metadata, the subscription list `az login` reads, run command results as az reads them, and
//! the admin kubeconfig context `az aks get-credentials --admin` renames.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::*;
use serde_json::{Value, json};

async fn get(emu: &Emulator, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = emu.http.get(emu.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn cloud_metadata_points_at_the_emulator_without_auth() {
    let emu = start(&[]);
    // The version `az cloud register` asks for: one cloud object.
    let r = get(&emu, "/metadata/endpoints?api-version=2022-09-01", None).await;
    assert_eq!(r.status(), 200);
    let cloud = json_of(r).await;
    let base = format!("{}/", emu.base);
    assert_eq!(cloud["resourceManager"], base.as_str());
    assert_eq!(cloud["authentication"]["loginEndpoint"], base.as_str());
    assert_eq!(
        cloud["authentication"]["audiences"][0],
        "https://management.core.windows.net/"
    );
    assert!(
        cloud["suffixes"].is_object(),
        "az indexes suffixes: {cloud}"
    );
    // 2019-05-01 answers a list of clouds.
    let r = get(&emu, "/metadata/endpoints?api-version=2019-05-01", None).await;
    let list = json_of(r).await;
    assert_eq!(list[0]["resourceManager"], base.as_str());
    let r = get(&emu, "/metadata/endpoints?api-version=1999-01-01", None).await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        json_of(r).await["error"]["code"],
        "InvalidApiVersionParameter"
    );
}

#[tokio::test]
async fn subscriptions_list_what_the_principal_may_see() {
    let emu = start(&[]);
    let other_sub = "00000000-0000-0000-0000-0000000000aa";
    let foreign_sub = "00000000-0000-0000-0000-0000000000bb";
    let limited = "33333333-3333-3333-3333-333333333333";
    let world = format!(
        r#"
tenants: [{{id: {TENANT}}}, {{id: 00000000-0000-0000-0000-0000000000ff}}]
principals:
  - {{tenantId: {TENANT}, clientId: {CLIENT}, clientSecret: {SECRET}}}
  - {{tenantId: {TENANT}, clientId: {limited}, clientSecret: s, subscriptions: [{other_sub}]}}
subscriptions:
  - {{id: {SUB}, displayName: Main}}
  - {{id: {other_sub}}}
  - {{id: {foreign_sub}, tenantId: 00000000-0000-0000-0000-0000000000ff}}
"#
    );
    emu.put_world(&world).await;
    let t = emu.arm_token().await;
    let r = get(&emu, "/subscriptions?api-version=2022-12-01", Some(&t)).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()
            .contains_key("x-ms-ratelimit-remaining-tenant-reads"),
        "a tenant-level read"
    );
    let body = json_of(r).await;
    let ids: Vec<&str> = body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["subscriptionId"].as_str().unwrap())
        .collect();
    // The other tenant's subscription is not listed.
    assert_eq!(ids, [SUB, other_sub]);
    let main = &body["value"][0];
    assert_eq!(main["id"], format!("/subscriptions/{SUB}"));
    assert_eq!(main["tenantId"], TENANT);
    assert_eq!(main["displayName"], "Main");
    assert_eq!(main["state"], "Enabled");
    assert_eq!(
        body["value"][1]["displayName"], other_sub,
        "default: the id"
    );
    assert_eq!(body["count"], json!({"type": "Total", "value": 2}));

    // A principal limited to some subscriptions sees only those.
    let resp = emu.token_for(limited, "s", ARM_SCOPE).await;
    let limited_token = json_of(resp).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let body = json_of(
        get(
            &emu,
            "/subscriptions?api-version=2022-12-01",
            Some(&limited_token),
        )
        .await,
    )
    .await;
    assert_eq!(body["value"].as_array().unwrap().len(), 1);
    assert_eq!(body["value"][0]["subscriptionId"], other_sub);

    // One subscription by id; an unknown one is SubscriptionNotFound; no token is a 401.
    let path = format!("/subscriptions/{SUB}?api-version=2022-12-01");
    let one = json_of(get(&emu, &path, Some(&t)).await).await;
    assert_eq!(one["displayName"], "Main");
    let r = get(
        &emu,
        "/subscriptions/00000000-0000-0000-0000-0000000000cc?api-version=2022-12-01",
        Some(&t),
    )
    .await;
    assert_eq!(r.status(), 404);
    assert_eq!(json_of(r).await["error"]["code"], "SubscriptionNotFound");
    assert_eq!(
        get(&emu, "/subscriptions?api-version=2022-12-01", None)
            .await
            .status(),
        401
    );
}

fn slow_cluster_world(duration: f64) -> String {
    format!(
        r#"
tenants: [{{id: {TENANT}}}]
principals: [{{tenantId: {TENANT}, clientId: {CLIENT}, clientSecret: {SECRET}}}]
subscriptions:
  - id: {SUB}
    resourceGroups:
      - name: rg1
        managedClusters:
          - {{name: slow, commandDuration: {duration}}}
          - {{name: slow-never, commandDuration: {duration}, runCommandFailure: {{reason: KubernetesPerformanceError}}}}
"#
    )
}

/// One GET of a poll URL ARM handed out.
async fn poll(emu: &Emulator, t: &str, location: &str) -> reqwest::Response {
    emu.http.get(location).bearer_auth(t).send().await.unwrap()
}

/// POSTs a run command and returns the poll URL from `Location`.
async fn dispatch(emu: &Emulator, t: &str, cluster: &str, command: &str) -> String {
    let r = emu
        .http
        .post(emu.url(&format!(
            "{}/runCommand?api-version=2025-10-01",
            cluster_path(cluster)
        )))
        .bearer_auth(t)
        .json(&json!({"command": command}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    r.headers()["location"].to_str().unwrap().to_string()
}

#[tokio::test]
async fn an_in_progress_result_is_202_with_a_running_body() {
    let emu = start(&["--retry-after", "1"]);
    emu.put_world(&slow_cluster_world(30.0)).await;
    let t = emu.arm_token().await;
    let location = dispatch(&emu, &t, "slow", "echo hi").await;
    let id = location
        .split("/commandResults/")
        .nth(1)
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_string();
    let r = poll(&emu, &t, &location).await;
    assert_eq!(r.status(), 202);
    assert!(r.headers().contains_key("location"));
    assert_eq!(r.headers()["retry-after"], "1");
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = json_of(r).await;
    assert_eq!(body["id"], id.as_str());
    assert_eq!(body["properties"]["provisioningState"], "Running");
    // A host process starts at once.
    assert!(body["properties"]["startedAt"].is_string(), "{body}");
    assert!(body["properties"].get("exitCode").is_none(), "{body}");

    // A command that will fail without starting shows no startedAt while "running".
    let location = dispatch(&emu, &t, "slow-never", "echo hi").await;
    let r = poll(&emu, &t, &location).await;
    assert_eq!(r.status(), 202);
    let body: Value = json_of(r).await;
    assert_eq!(body["properties"]["provisioningState"], "Running");
    assert!(body["properties"].get("startedAt").is_none(), "{body}");
}

#[tokio::test]
async fn final_states_are_capitalized_as_the_service_answers() {
    let emu = start(&["--retry-after", "0"]);
    emu.put_world(&slow_cluster_world(0.0)).await;
    let t = emu.arm_token().await;
    for (cluster, want) in [("slow", "Succeeded"), ("slow-never", "Failed")] {
        let location = dispatch(&emu, &t, cluster, "true").await;
        let body = wait_for(Duration::from_secs(20), "a final result", || async {
            let r = emu
                .http
                .get(&location)
                .bearer_auth(&t)
                .send()
                .await
                .unwrap();
            (r.status() == 200).then_some(r)
        })
        .await;
        let body = json_of(body).await;
        assert_eq!(body["properties"]["provisioningState"], want, "{body}");
    }
}

#[tokio::test]
async fn admin_kubeconfig_context_is_the_cluster_name() {
    let emu = start(&[]);
    let t = emu.arm_token().await;
    for action in ["listClusterAdminCredential", "listClusterUserCredential"] {
        let r = emu
            .http
            .post(emu.url(&format!(
                "{}/{action}?api-version=2025-10-01",
                cluster_path("aks1")
            )))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v = json_of(r).await;
        let yaml = base64::engine::general_purpose::STANDARD
            .decode(v["kubeconfigs"][0]["value"].as_str().unwrap())
            .unwrap();
        let kc: Value = serde_saphyr::from_slice(&yaml).unwrap();
        // AKS names both contexts after the cluster; az appends "-admin" to the admin one.
        assert_eq!(kc["current-context"], "aks1", "{action}");
        assert_eq!(kc["contexts"][0]["name"], "aks1", "{action}");
    }
}
