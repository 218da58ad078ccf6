//! Injected faults, ARM token buckets and the early-request counter.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

async fn get_cluster(emu: &Emulator, token: &str) -> Result<reqwest::Response, reqwest::Error> {
    emu.http
        .get(emu.url(&format!("{}?api-version=2025-10-01", cluster_path("aks1"))))
        .bearer_auth(token)
        .send()
        .await
}

#[tokio::test]
async fn injected_statuses_at_rate_one() {
    for (flag, status, code) in [
        ("--throttle-rate", 429, "TooManyRequests"),
        ("--error500-rate", 500, "InternalServerError"),
        ("--error503-rate", 503, "ServiceUnavailable"),
    ] {
        let emu = start(&[
            flag,
            "1.0",
            "--fault-ops",
            "aks.get",
            "--retry-after",
            "4",
            "--seed",
            "7",
        ]);
        let t = emu.arm_token().await;
        let r = get_cluster(&emu, &t).await.unwrap();
        assert_eq!(r.status(), status);
        if status != 500 {
            assert_eq!(r.headers()["retry-after"], "4");
        }
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], code);
        assert_eq!(emu.counters().await["injectedFaults"], 1);
    }
}

#[tokio::test]
async fn dropped_connection_gets_no_response() {
    let emu = start(&["--drop-rate", "1.0", "--fault-ops", "aks.get"]);
    let t = emu.arm_token().await;
    let err = get_cluster(&emu, &t)
        .await
        .expect_err("connection must be dropped");
    assert!(!err.is_timeout(), "closed, not timed out: {err}");
    let c = emu.counters().await;
    assert!(
        c["status"]["aks.get"]["dropped"].as_u64().unwrap() >= 1,
        "{c}"
    );
}

#[tokio::test]
async fn faults_can_be_replaced_at_run_time() {
    let emu = start(&[]);
    let t = emu.arm_token().await;
    assert_eq!(get_cluster(&emu, &t).await.unwrap().status(), 200);
    let r = emu
        .http
        .put(emu.url("/_emulator/faults"))
        .body(r#"{"aks.get": {"error503Rate": 1.0, "retryAfter": 2}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(get_cluster(&emu, &t).await.unwrap().status(), 503);
}

#[tokio::test]
async fn write_bucket_throttles_and_counts_down() {
    let emu = start(&["--write-burst", "3", "--write-rate", "1"]);
    let t = emu.arm_token().await;
    let post = || {
        emu.http
            .post(emu.url(&format!(
                "{}/listClusterUserCredential?api-version=2025-10-01",
                cluster_path("aks1")
            )))
            .bearer_auth(&t)
            .send()
    };
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let r = post().await.unwrap();
        assert_eq!(r.status(), 200);
        remaining.push(
            r.headers()["x-ms-ratelimit-remaining-subscription-writes"]
                .to_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(remaining, ["2", "1", "0"]);
    let r = post().await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "SubscriptionRequestsThrottled");
    // Reads have their own bucket (and a read is not early: the 429 was for writes).
    let g = get_cluster(&emu, &t).await.unwrap();
    assert_eq!(g.status(), 200);
    assert!(
        g.headers()
            .contains_key("x-ms-ratelimit-remaining-subscription-reads")
    );
    // A request right after the 429 was already in flight when it was answered: not early.
    let _ = post().await.unwrap();
    assert_eq!(emu.counters().await["earlyRequests"], 0);
    // One sent after the client could have read the 429 (past the 250 ms in-flight grace) but
    // before its 1 s Retry-After ignored it: early. The pause is the scenario, not a sync.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let _ = post().await.unwrap();
    let c = emu.counters().await;
    assert_eq!(c["earlyRequests"], 1, "{c}");
    assert!(c["throttled429"].as_u64().unwrap() >= 1);
    // After the Retry-After the bucket has a token again.
    wait_for(Duration::from_secs(5), "bucket refill", || async {
        (post().await.unwrap().status() == 200).then_some(())
    })
    .await;
}

#[tokio::test]
async fn early_polls_are_counted() {
    let emu = start(&["--retry-after", "30"]);
    let t = emu.arm_token().await;
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
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let _ = emu
        .http
        .get(&location)
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    let c = emu.counters().await;
    assert_eq!(c["earlyRequestsByOp"]["aks.commandResult"], 1, "{c}");
    let reset = emu
        .http
        .post(emu.url("/_emulator/reset"))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 200);
    assert_eq!(emu.counters().await["earlyRequests"], 0);
}
