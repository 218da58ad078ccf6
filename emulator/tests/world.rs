//! Behaviour driven by the world file: federated principals, command duration, kubeconfig
//! endpoints and faults, determinism of seeded faults.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::*;
use serde_json::{Value, json};

const WORLD: &str = r#"
tenants: [{id: 00000000-0000-0000-0000-000000000001}]
principals:
  - {tenantId: 00000000-0000-0000-0000-000000000001, clientId: 11111111-1111-1111-1111-111111111111, clientSecret: emulator-secret}
  - tenantId: 00000000-0000-0000-0000-000000000001
    clientId: 33333333-3333-3333-3333-333333333333
    federated: true
    subject: system:serviceaccount:ns:sa
subscriptions:
  - id: 00000000-0000-0000-0000-000000000000
    resourceGroups:
      - name: rg1
        managedClusters:
          - name: slow
            commandDuration: 1.0
          - name: pub
            kubeconfig: {server: "https://10.0.0.1:443", publicServer: "https://pub.example:443", userToken: tok}
          - name: broken
            kubeconfigFault: invalidBase64
"#;

fn jwt(claims: Value) -> String {
    let enc = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.{}",
        enc(json!({"alg": "RS256", "typ": "JWT"})),
        enc(claims),
        "c2ln"
    )
}

async fn assertion_token(emu: &Emulator, assertion: &str) -> reqwest::Response {
    let body = format!(
        "grant_type=client_credentials&client_id=33333333-3333-3333-3333-333333333333&scope=https%3A%2F%2Fmanagement.azure.com%2F.default&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={assertion}"
    );
    emu.http
        .post(emu.url(&format!("/{TENANT}/oauth2/v2.0/token")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn federated_assertion_checks_subject() {
    let emu = start(&[]);
    emu.put_world(WORLD).await;
    let good = assertion_token(
        &emu,
        &jwt(json!({"sub": "system:serviceaccount:ns:sa", "aud": "api://AzureADTokenExchange"})),
    )
    .await;
    assert_eq!(good.status(), 200);
    let wrong = assertion_token(&emu, &jwt(json!({"sub": "system:serviceaccount:ns:other"}))).await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(json_of(wrong).await["error_codes"], json!([70021]));
    let garbled = assertion_token(&emu, "not-a-jwt").await;
    assert_eq!(json_of(garbled).await["error_codes"], json!([50027]));
}

#[tokio::test]
async fn command_duration_delays_the_result() {
    let emu = start(&["--retry-after", "0"]);
    emu.put_world(WORLD).await;
    let t = emu.arm_token().await;
    let r = emu
        .http
        .post(emu.url(&format!(
            "{}/runCommand?api-version=2025-10-01",
            cluster_path("slow")
        )))
        .bearer_auth(&t)
        .json(&json!({"command": "true"}))
        .send()
        .await
        .unwrap();
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let started = std::time::Instant::now();
    let result: Value = wait_for(Duration::from_secs(10), "slow result", || async {
        let r = emu
            .http
            .get(&location)
            .bearer_auth(&t)
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            Some(json_of(r).await)
        } else {
            None
        }
    })
    .await;
    let p = &result["properties"];
    assert_ne!(
        p["startedAt"], p["finishedAt"],
        "finishedAt reflects the duration: {p}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "result visible too early"
    );
}

async fn user_kubeconfig(emu: &Emulator, t: &str, cluster: &str, query: &str) -> String {
    let r = emu
        .http
        .post(emu.url(&format!(
            "{}/listClusterUserCredential?api-version=2025-10-01{query}",
            cluster_path(cluster)
        )))
        .bearer_auth(t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    json_of(r).await["kubeconfigs"][0]["value"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn kubeconfig_endpoints_and_content_faults() {
    let emu = start(&[]);
    emu.put_world(WORLD).await;
    let t = emu.arm_token().await;
    let decode = |v: String| {
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(v).unwrap()).unwrap()
    };
    let private = decode(user_kubeconfig(&emu, &t, "pub", "").await);
    assert!(
        private.contains("server: https://10.0.0.1:443") && private.contains("token: tok"),
        "{private}"
    );
    let public = decode(user_kubeconfig(&emu, &t, "pub", "&server-fqdn=public").await);
    assert!(public.contains("server: https://pub.example:443"));
    let broken = user_kubeconfig(&emu, &t, "broken", "").await;
    assert!(
        base64::engine::general_purpose::STANDARD
            .decode(broken)
            .is_err()
    );
}

async fn statuses(seed: &str) -> Vec<u16> {
    let emu = start(&[
        "--throttle-rate",
        "0.5",
        "--fault-ops",
        "aks.get",
        "--seed",
        seed,
        "--retry-after",
        "0",
    ]);
    let t = emu.arm_token().await;
    let mut out = Vec::new();
    for _ in 0..12 {
        let r = emu
            .http
            .get(emu.url(&format!("{}?api-version=2025-10-01", cluster_path("aks1"))))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap();
        out.push(r.status().as_u16());
    }
    out
}

#[tokio::test]
async fn seeded_faults_are_deterministic() {
    let a = statuses("1234").await;
    assert_eq!(a, statuses("1234").await);
    assert!(a.contains(&429) && a.contains(&200), "{a:?}");
}
