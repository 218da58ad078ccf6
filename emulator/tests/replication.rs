//! Transient identity faults: a new app that Entra does not know yet, a role assignment that has
//! not reached ARM yet, and Entra's throttling.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

fn world(field: &str) -> String {
    format!(
        r#"
tenants: [{{id: {TENANT}}}]
principals: [{{tenantId: {TENANT}, clientId: {CLIENT}, clientSecret: {SECRET}, {field}: 1.5}}]
subscriptions: [{{id: {SUB}, resourceGroups: [{{name: rg1, managedClusters: [{{name: aks1}}]}}]}}]
"#
    )
}

#[tokio::test]
async fn a_new_app_is_unknown_to_entra_until_it_replicates() {
    let emu = start(&[]);
    for round in 0..2 {
        // PUT restarts the window each time.
        let put_at = Instant::now();
        emu.put_world(&world("notReplicatedForSeconds")).await;
        let r = emu.token_for(CLIENT, SECRET, ARM_SCOPE).await;
        assert_eq!(r.status(), 400, "round {round}");
        let v = json_of(r).await;
        assert_eq!(v["error"], "unauthorized_client");
        assert_eq!(v["error_codes"], json!([700016]));
        assert!(
            v["error_description"].as_str().unwrap().contains(&format!(
                "Application with identifier '{CLIENT}' was not found"
            )),
            "{v}"
        );
        wait_for(Duration::from_secs(10), "the app to replicate", || async {
            (emu.token_for(CLIENT, SECRET, ARM_SCOPE).await.status() == 200).then_some(())
        })
        .await;
        assert!(put_at.elapsed() >= Duration::from_millis(1400));
    }
}

#[tokio::test]
async fn a_new_role_assignment_is_denied_until_it_propagates() {
    let emu = start(&[]);
    let put_at = Instant::now();
    emu.put_world(&world("roleAssignmentDelaySeconds")).await;
    let t = emu.arm_token().await;
    let url = emu.url(&format!("{}?api-version=2025-10-01", cluster_path("aks1")));
    let r = emu.http.get(&url).bearer_auth(&t).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "AuthorizationFailed");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("'Microsoft.ContainerService/managedClusters/read'"));
    assert!(
        message.ends_with("If access was recently granted, please refresh your credentials."),
        "{message}"
    );
    wait_for(
        Duration::from_secs(10),
        "the assignment to propagate",
        || async {
            let r = emu.http.get(&url).bearer_auth(&t).send().await.unwrap();
            (r.status() == 200).then_some(())
        },
    )
    .await;
    assert!(put_at.elapsed() >= Duration::from_millis(1400));
}

#[tokio::test]
async fn entra_throttles_in_its_own_words() {
    let emu = start(&[]);
    let r = emu
        .http
        .put(emu.url("/_emulator/faults"))
        .body(r#"{"entra.token": {"throttleRate": 1.0, "retryAfter": "7"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = emu.token_for(CLIENT, SECRET, ARM_SCOPE).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "7");
    let v = json_of(r).await;
    assert_eq!(v["error"], "temporarily_unavailable");
    assert_eq!(v["error_codes"], json!([50196]));
    let description = v["error_description"].as_str().unwrap();
    assert!(
        description.starts_with("AADSTS50196: ") && description.contains("request loop"),
        "{description}"
    );
}
