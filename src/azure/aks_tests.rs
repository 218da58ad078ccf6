use std::io::Read;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;

use super::*;
use crate::azure::testutil::{self, ctx, serve};

const SUB: &str = "00000000-1111-2222-3333-444444444444";
const CLUSTER: &str = "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg1/providers/Microsoft.ContainerService/managedClusters/c1";

#[derive(Default)]
struct Fake {
    bodies: Mutex<Vec<Value>>,
    polls: Mutex<u32>,
    results: Mutex<Vec<(u16, Value)>>,
    queries: Mutex<Vec<std::collections::HashMap<String, String>>>,
}

async fn run_command(
    State(f): State<Arc<Fake>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    assert_eq!(headers["authorization"], "Bearer test-token");
    f.bodies.lock().unwrap().push(body);
    let host = headers["host"].to_str().unwrap().to_string();
    let location = format!(
        "http://{host}/subscriptions/{SUB}/resourcegroups/rg1/providers/Microsoft.ContainerService/managedClusters/c1/commandResults/0e9872e6629349dc865e27ee6f8bab2d?api-version=2025-10-01"
    );
    (
        StatusCode::ACCEPTED,
        [("location", location), ("retry-after", "2".to_string())],
    )
        .into_response()
}

async fn command_result(
    State(f): State<Arc<Fake>>,
    Path((_, _, _, id)): Path<(String, String, String, String)>,
) -> Response {
    *f.polls.lock().unwrap() += 1;
    if id != "0e9872e6629349dc865e27ee6f8bab2d" {
        let body = serde_json::json!({"error":{"code":"NotFound","message":"no such command"}});
        return (StatusCode::NOT_FOUND, Json(body)).into_response();
    }
    let mut results = f.results.lock().unwrap();
    let (status, body) = results.remove(0);
    if status == 202 && body.is_null() {
        return (
            StatusCode::ACCEPTED,
            [("location", "http://ignored/"), ("retry-after", "3")],
        )
            .into_response();
    }
    (StatusCode::from_u16(status).unwrap(), Json(body)).into_response()
}

async fn credentials(
    State(f): State<Arc<Fake>>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Json<Value> {
    f.queries.lock().unwrap().push(q);
    Json(
        serde_json::json!({"kubeconfigs":[{"name":"clusterUser","value":"Y3JlZGVudGlhbFZhbHVlMQ=="}]}),
    )
}

async fn cluster() -> Json<Value> {
    Json(
        serde_json::json!({"name":"c1","properties":{"provisioningState":"Succeeded","fqdn":"c1.hcp.example",
        "privateFQDN":"c1.privatelink.westeurope.azmk8s.io","aadProfile":{"managed":true},"apiServerAccessProfile":{"enablePrivateCluster":true,"disableRunCommand":false}}}),
    )
}

async fn fake(results: Vec<(u16, Value)>) -> (AksClient, Arc<Fake>) {
    let f = Arc::new(Fake {
        results: Mutex::new(results),
        ..Default::default()
    });
    let base_path = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ContainerService/managedClusters/{name}";
    let router = Router::new()
        .route(base_path, get(cluster))
        .route(&format!("{base_path}/runCommand"), post(run_command))
        .route("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ContainerService/managedClusters/{name}/commandResults/{id}", get(command_result))
        .route(&format!("{base_path}/listClusterUserCredential"), post(credentials))
        .route(&format!("{base_path}/listClusterAdminCredential"), post(credentials))
        .with_state(f.clone());
    let base = serve(router).await;
    (AksClient::new(testutil::client(&base), None), f)
}

fn id() -> AksClusterId {
    CLUSTER.parse().unwrap()
}

#[tokio::test]
async fn get_cluster_reads_aad_and_run_command_flags() {
    let (aks, _) = fake(vec![]).await;
    let info = aks
        .get_cluster(&ctx(Duration::from_secs(5)), &id())
        .await
        .unwrap();
    assert!(info.aad_managed);
    assert!(!info.run_command_disabled);
    assert_eq!(info.fqdn.as_deref(), Some("c1.hcp.example"));
    assert_eq!(
        info.private_fqdn.as_deref(),
        Some("c1.privatelink.westeurope.azmk8s.io")
    );
}

#[tokio::test]
async fn run_command_sends_body_and_parses_location() {
    let (aks, f) = fake(vec![]).await;
    let accepted = aks
        .run_command(
            &ctx(Duration::from_secs(5)),
            &id(),
            "kubectl get pods",
            Some("UEsFBg==".into()),
            Some(Secret::new("aad-tok")),
            false,
        )
        .await
        .unwrap();
    assert_eq!(
        accepted.command_id.as_str(),
        "0e9872e6629349dc865e27ee6f8bab2d"
    );
    assert_eq!(accepted.retry_after, Some(Duration::from_secs(2)));
    assert!(accepted.location.as_str().contains("/resourcegroups/rg1/"));
    let body = f.bodies.lock().unwrap()[0].clone();
    assert_eq!(
        body,
        serde_json::json!({"command":"kubectl get pods","context":"UEsFBg==","clusterToken":"aad-tok"})
    );

    aks.run_command(&ctx(Duration::from_secs(5)), &id(), "ls", None, None, false)
        .await
        .unwrap();
    let body = f.bodies.lock().unwrap()[1].clone();
    assert_eq!(
        body,
        serde_json::json!({"command":"ls","context":""}),
        "no clusterToken for non-AAD clusters"
    );
    assert!(matches!(
        aks.run_command(&ctx(Duration::from_secs(5)), &id(), "  ", None, None, false)
            .await,
        Err(ArmError::Validation(_))
    ));
}

#[tokio::test]
async fn command_result_running_then_finished() {
    let (aks, fake) = fake(vec![
        (202, Value::Null),
        (200, serde_json::json!({"id":"x","properties":{"provisioningState":"Running"}})),
        (202, serde_json::json!({"id":"x","properties":{"provisioningState":"Running","startedAt":"2021-02-17T00:28:20Z"}})),
        (200, serde_json::json!({"id":"x","properties":{"provisioningState":"succeeded","exitCode":3,
            "startedAt":"2021-02-17T00:28:20Z","finishedAt":"2021-02-17T00:28:33Z","logs":"namespace dummy created"}})),
        (200, serde_json::json!({"id":"x","properties":{"provisioningState":"Failed","reason":"ImagePullBackoff"}})),
        (200, serde_json::json!({"id":"x"})),
    ])
    .await;
    let c = ctx(Duration::from_secs(5));
    let cmd = CommandId::new("0e9872e6629349dc865e27ee6f8bab2d").unwrap();
    assert_eq!(
        aks.command_result(&c, &id(), &cmd).await.unwrap(),
        CommandStatus::Running {
            retry_after: Some(Duration::from_secs(3)),
            started_at: None,
        }
    );
    // Asked again before ARM's Retry-After, the client answers itself, without a request.
    let CommandStatus::Running {
        retry_after: Some(left),
        ..
    } = aks.command_result(&c, &id(), &cmd).await.unwrap()
    else {
        panic!("not running")
    };
    assert!(left > Duration::from_secs(2) && left <= Duration::from_secs(3));
    assert_eq!(*fake.polls.lock().unwrap(), 1, "one request so far");
    aks.polls.done(&format!("{}/commandResults/{cmd}", id()));
    assert_eq!(
        aks.command_result(&c, &id(), &cmd).await.unwrap(),
        CommandStatus::Running {
            retry_after: None,
            started_at: None,
        }
    );
    // A 202 with a body says when the command pod started.
    assert!(matches!(
        aks.command_result(&c, &id(), &cmd).await.unwrap(),
        CommandStatus::Running { started_at: Some(t), .. } if t == "2021-02-17T00:28:20Z"
    ));
    let CommandStatus::Finished(done) = aks.command_result(&c, &id(), &cmd).await.unwrap() else {
        panic!("not finished")
    };
    assert!(done.succeeded);
    assert_eq!(done.exit_code, Some(3));
    assert_eq!(done.logs, "namespace dummy created");
    assert!(
        !format!("{done:?}").contains("dummy"),
        "logs are redacted from Debug"
    );
    let CommandStatus::Finished(failed) = aks.command_result(&c, &id(), &cmd).await.unwrap() else {
        panic!("not finished")
    };
    assert!(!failed.succeeded);
    assert_eq!(failed.reason.as_deref(), Some("ImagePullBackoff"));
    let err = aks.command_result(&c, &id(), &cmd).await.unwrap_err();
    assert!(matches!(err, ArmError::InvalidResponse { .. }), "{err:?}");
}

#[tokio::test]
async fn list_credentials_pass_query_and_keep_base64() {
    let (aks, f) = fake(vec![]).await;
    let c = ctx(Duration::from_secs(5));
    let creds = aks
        .list_cluster_user_credential(&c, &id(), Some("public"), Some(CredentialFormat::Exec))
        .await
        .unwrap();
    assert_eq!(creds.len(), 1);
    assert_eq!(creds[0].name, "clusterUser");
    assert_eq!(creds[0].value_base64.expose(), "Y3JlZGVudGlhbFZhbHVlMQ==");
    aks.list_cluster_admin_credential(&c, &id(), None)
        .await
        .unwrap();
    let queries = f.queries.lock().unwrap();
    assert_eq!(queries[0]["server-fqdn"], "public");
    assert_eq!(queries[0]["format"], "exec");
    assert_eq!(queries[0]["api-version"], "2025-10-01");
    assert!(!queries[1].contains_key("server-fqdn"));
}

#[tokio::test]
async fn unknown_command_is_not_found() {
    let (aks, f) = fake(vec![]).await;
    let err = aks
        .command_result(
            &ctx(Duration::from_secs(5)),
            &id(),
            &CommandId::new("nope").unwrap(),
        )
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    assert_eq!(err.api().and_then(|a| a.code.as_deref()), Some("NotFound"));
    assert_eq!(*f.polls.lock().unwrap(), 1, "404 is not retried");
}

#[test]
fn command_id_from_location_table() {
    let cases = [
        (
            "https://management.azure.com/subscriptions/s/resourcegroups/rg/providers/Microsoft.ContainerService/managedClusters/c/commandResults/0e9872e6629349dc865e27ee6f8bab2d?api-version=2025-10-01",
            Ok("0e9872e6629349dc865e27ee6f8bab2d"),
        ),
        (
            "https://x/managedClusters/c/COMMANDRESULTS/abc-1_2",
            Ok("abc-1_2"),
        ),
        ("https://x/commandResults/abc/extra?x=1", Ok("abc")),
        ("https://x/commandResults/?api-version=1", Err(())),
        ("https://x/operations/abc", Err(())),
        ("https://x/commandResults/a%20b", Err(())),
        ("", Err(())),
    ];
    for (location, want) in cases {
        let got = command_id_from_location(location);
        assert_eq!(
            got.as_ref().map(CommandId::as_str).map_err(|_| ()),
            want,
            "{location}"
        );
    }
}

fn unzip(b64: &str) -> Vec<(String, Vec<u8>)> {
    let bytes = STANDARD.decode(b64).unwrap();
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    (0..archive.len())
        .map(|i| {
            let mut f = archive.by_index(i).unwrap();
            let mut data = Vec::new();
            f.read_to_end(&mut data).unwrap();
            (f.name().unwrap().to_string(), data)
        })
        .collect()
}

#[test]
fn build_context_keeps_paths() {
    let files = vec![
        ("ns.yaml".to_string(), b"kind: Namespace".to_vec()),
        ("values/prod.yaml".to_string(), b"a: 1".to_vec()),
    ];
    let encoded = build_context(files.clone(), 4 << 20).unwrap();
    assert!(!encoded.contains('\n'));
    assert_eq!(unzip(&encoded), files);
}

#[test]
fn build_context_rejects_bad_paths() {
    for path in [
        "",
        "/etc/passwd",
        "../x",
        "a/../b",
        "a//b",
        "./a",
        "a/",
        "C:/x",
        "a\\b",
        "a\nb",
    ] {
        let err = build_context(vec![(path.to_string(), vec![1])], 1 << 20).unwrap_err();
        assert!(matches!(err, ArmError::Validation(_)), "{path}: {err:?}");
    }
    let dup = vec![("a".to_string(), vec![1]), ("a".to_string(), vec![2])];
    assert!(matches!(
        build_context(dup, 1 << 20),
        Err(ArmError::Validation(_))
    ));
}

#[test]
fn build_context_enforces_the_limit() {
    // Random-ish bytes do not compress, so the zip is larger than the input.
    let data: Vec<u8> = (0..10_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let err = build_context(vec![("blob".into(), data.clone())], 1000).unwrap_err();
    assert!(
        matches!(err, ArmError::ContextTooLarge { limit: 1000, .. }),
        "{err:?}"
    );
    assert!(build_context(vec![("blob".into(), data)], 1 << 20).is_ok());
    assert!(build_context(vec![], 1000).is_ok(), "an empty zip is fine");
}
