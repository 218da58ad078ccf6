use std::time::Duration;

use super::*;
use crate::azure::testutil::{self, Reply, ctx, reply, serve_paths};

const ARC: &str = "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg/providers/Microsoft.Kubernetes/connectedClusters/edge-01";
const DONE: &str = r#"{"id":"/providers/Microsoft.HybridContainerService/locations/EASTUS/operationStatuses/1","status":"Succeeded",
  "properties":{"kubeconfigs":[{"name":"credentialName1","value":"Y3JlZGVudGlhbFZhbHVlMQ=="}]}}"#;

fn action_path(role: KubeconfigRole) -> String {
    list_kubeconfig_path(&ARC.parse().unwrap(), role)
}

fn lro_config() -> LroConfig {
    LroConfig {
        default_poll_interval: Duration::from_millis(20),
        min_poll_interval: Duration::from_millis(1),
    }
}

async fn run(
    script: Vec<(&str, Vec<Reply>)>,
    role: KubeconfigRole,
    version: Option<&str>,
) -> (
    Result<Vec<KubeconfigCredential>, ArmError>,
    Arc<testutil::PathScript>,
) {
    let (base, state) = serve_paths(script).await;
    let client = HybridClient::new(testutil::client(&base), None, lro_config());
    let result = client
        .list_kubeconfig(
            &ctx(Duration::from_secs(20)),
            &ARC.parse().unwrap(),
            role,
            version,
        )
        .await;
    (result, state)
}

use std::sync::Arc;

#[test]
fn path_has_no_double_slash() {
    let p = action_path(KubeconfigRole::User);
    assert!(!p.contains("//"), "{p}");
    assert_eq!(
        p,
        format!(
            "{ARC}/providers/Microsoft.HybridContainerService/provisionedClusterInstances/default/listUserKubeconfig"
        )
    );
    assert!(action_path(KubeconfigRole::Admin).ends_with("/default/listAdminKubeconfig"));
}

#[tokio::test]
async fn azure_async_operation_style_preferred_and_retry_after_honoured() {
    let path = action_path(KubeconfigRole::User);
    let (result, state) = run(
        vec![
            (
                path.as_str(),
                vec![reply(
                    202,
                    &[
                        (
                            "azure-asyncoperation",
                            "{base}/ops/1?api-version=2024-01-01",
                        ),
                        ("location", "{base}/loc/1"),
                        ("retry-after", "1"),
                    ],
                    "",
                )],
            ),
            (
                "/ops/1",
                vec![
                    reply(200, &[("retry-after", "1")], r#"{"status":"InProgress"}"#),
                    reply(200, &[], DONE),
                ],
            ),
        ],
        KubeconfigRole::User,
        None,
    )
    .await;
    let creds = result.unwrap();
    assert_eq!(creds[0].name, "credentialName1");
    assert_eq!(creds[0].value_base64.expose(), "Y3JlZGVudGlhbFZhbHVlMQ==");
    let paths = state.seen_paths();
    assert_eq!(paths[0], format!("POST {path}?api-version=2024-01-01"));
    assert_eq!(
        &paths[1..],
        [
            "GET /ops/1?api-version=2024-01-01",
            "GET /ops/1?api-version=2024-01-01"
        ]
    );
    let seen = state.seen.lock().unwrap();
    for pair in seen.windows(2) {
        let gap = pair[1].0 - pair[0].0;
        assert!(
            gap >= Duration::from_secs(1),
            "poll after {gap:?}, Retry-After was 1 s"
        );
    }
}

#[tokio::test]
async fn location_style() {
    let path = action_path(KubeconfigRole::Admin);
    let (result, state) = run(
        vec![
            (
                path.as_str(),
                vec![reply(
                    202,
                    &[("location", "{base}/loc/1?api-version=2026-04-01-preview")],
                    "",
                )],
            ),
            (
                "/loc/1",
                vec![
                    reply(202, &[("location", "{base}/loc/2")], ""),
                    reply(404, &[], ""),
                ],
            ),
            (
                "/loc/2",
                vec![reply(200, &[("content-type", "application/json")], DONE)],
            ),
        ],
        KubeconfigRole::Admin,
        Some("2026-04-01-preview"),
    )
    .await;
    assert_eq!(result.unwrap().len(), 1);
    assert_eq!(
        state.seen_paths(),
        [
            format!("POST {path}?api-version=2026-04-01-preview"),
            "GET /loc/1?api-version=2026-04-01-preview".into(),
            "GET /loc/2".into()
        ]
    );
}

#[tokio::test]
async fn failed_operation_carries_code_and_message() {
    let path = action_path(KubeconfigRole::User);
    let failed = r#"{"status":"Failed","error":{"code":"KubeconfigNotReady","message":"the cluster is still provisioning"}}"#;
    let (result, _) = run(
        vec![
            (
                path.as_str(),
                vec![reply(202, &[("azure-asyncoperation", "{base}/ops/9")], "")],
            ),
            ("/ops/9", vec![reply(200, &[], failed)]),
        ],
        KubeconfigRole::User,
        None,
    )
    .await;
    match result.unwrap_err() {
        ArmError::OperationFailed {
            code,
            message,
            status,
            ..
        } => {
            assert_eq!(code.as_deref(), Some("KubeconfigNotReady"));
            assert_eq!(message, "the cluster is still provisioning");
            assert_eq!(status, "Failed");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn synchronous_200_is_accepted() {
    let path = action_path(KubeconfigRole::User);
    let (result, _) = run(
        vec![(path.as_str(), vec![reply(200, &[], DONE)])],
        KubeconfigRole::User,
        None,
    )
    .await;
    assert_eq!(result.unwrap().len(), 1);
}

#[tokio::test]
async fn garbage_is_invalid_response() {
    let path = action_path(KubeconfigRole::User);
    let cases: Vec<Vec<(&str, Vec<Reply>)>> = vec![
        vec![(path.as_str(), vec![reply(202, &[], "")])],
        vec![(
            path.as_str(),
            vec![reply(
                202,
                &[("location", "{base}/loc/1"), ("retry-after", "soon")],
                "",
            )],
        )],
        vec![
            (
                path.as_str(),
                vec![reply(202, &[("azure-asyncoperation", "{base}/ops/1")], "")],
            ),
            ("/ops/1", vec![reply(200, &[], "{\"stat")]),
        ],
        vec![
            (
                path.as_str(),
                vec![reply(202, &[("azure-asyncoperation", "{base}/ops/1")], "")],
            ),
            ("/ops/1", vec![reply(200, &[], "{}")]),
        ],
        vec![(
            path.as_str(),
            vec![reply(
                200,
                &[],
                r#"{"status":"Succeeded","properties":{"kubeconfigs":[]}}"#,
            )],
        )],
    ];
    for script in cases {
        let (result, _) = run(script, KubeconfigRole::User, None).await;
        assert!(
            matches!(result, Err(ArmError::InvalidResponse { .. })),
            "{result:?}"
        );
    }
}

#[tokio::test]
async fn polling_stops_at_the_deadline() {
    let path = action_path(KubeconfigRole::User);
    let (base, _) = serve_paths(vec![(
        path.as_str(),
        vec![reply(
            202,
            &[
                ("azure-asyncoperation", "{base}/ops/1"),
                ("retry-after", "60"),
            ],
            "",
        )],
    )])
    .await;
    let client = HybridClient::new(testutil::client(&base), None, lro_config());
    let started = std::time::Instant::now();
    let err = client
        .list_kubeconfig(
            &ctx(Duration::from_secs(5)),
            &ARC.parse().unwrap(),
            KubeconfigRole::User,
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ArmError::Timeout { .. }), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "returned instead of sleeping past the deadline"
    );
}

#[tokio::test]
async fn status_without_result_falls_back_to_location() {
    let path = action_path(KubeconfigRole::User);
    let (result, state) = run(
        vec![
            (
                path.as_str(),
                vec![reply(
                    202,
                    &[
                        ("azure-asyncoperation", "{base}/ops/1"),
                        ("location", "{base}/result/1"),
                    ],
                    "",
                )],
            ),
            ("/ops/1", vec![reply(200, &[], r#"{"status":"Succeeded"}"#)]),
            ("/result/1", vec![reply(200, &[], DONE)]),
        ],
        KubeconfigRole::User,
        None,
    )
    .await;
    assert_eq!(result.unwrap()[0].name, "credentialName1");
    assert_eq!(state.seen_paths()[1..], ["GET /ops/1", "GET /result/1"]);
}
