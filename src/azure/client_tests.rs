use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap as AxHeaders, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;

use super::*;
use crate::azure::testutil::{self, ctx, serve};
use crate::azure::throttle::BucketConfig;

/// A fake that answers from a script of (status, headers, body) and records what it saw.
type ScriptedReply = (u16, Vec<(&'static str, String)>, String);

#[derive(Default)]
struct Script {
    replies: Mutex<Vec<ScriptedReply>>,
    seen: Mutex<Vec<(std::time::Instant, String, AxHeaders)>>,
    calls: AtomicUsize,
}

async fn scripted(State(s): State<Arc<Script>>, req: Request) -> Response {
    s.calls.fetch_add(1, Ordering::SeqCst);
    let uri = req.uri().to_string();
    s.seen
        .lock()
        .unwrap()
        .push((std::time::Instant::now(), uri, req.headers().clone()));
    let mut replies = s.replies.lock().unwrap();
    let (status, headers, body) = if replies.len() > 1 {
        replies.remove(0)
    } else {
        replies[0].clone()
    };
    let mut resp = (StatusCode::from_u16(status).unwrap(), body).into_response();
    for (k, v) in headers {
        resp.headers_mut().insert(k, v.parse().unwrap());
    }
    resp
}

type Scripted<'a> = (u16, Vec<(&'static str, String)>, &'a str);

async fn fake(replies: Vec<Scripted<'_>>) -> (String, Arc<Script>) {
    let script = Arc::new(Script {
        replies: Mutex::new(
            replies
                .into_iter()
                .map(|(s, h, b)| (s, h, b.to_string()))
                .collect(),
        ),
        ..Default::default()
    });
    let base = serve(
        Router::new()
            .fallback(any(scripted))
            .with_state(script.clone()),
    )
    .await;
    (base, script)
}

fn get(path: &str) -> ArmRequest {
    ArmRequest::path("Test_Get", Method::GET, path, "2025-10-01")
}

#[tokio::test]
async fn sends_auth_and_request_ids() {
    let (base, script) = fake(vec![(200, vec![("x-ms-request-id", "rid-1".into())], "{}")]).await;
    let client = testutil::client(&base);
    let resp = client
        .send(
            &ctx(Duration::from_secs(10)),
            get("/subscriptions/s/x").query("tail", "5"),
        )
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.request_id.as_deref(), Some("rid-1"));
    let seen = script.seen.lock().unwrap();
    let (_, uri, headers) = &seen[0];
    assert_eq!(uri, "/subscriptions/s/x?api-version=2025-10-01&tail=5");
    assert_eq!(headers["authorization"], "Bearer test-token");
    assert_eq!(headers["x-ms-correlation-request-id"], "corr-1");
    assert_eq!(headers["x-ms-client-request-id"].len(), 36);
}

#[tokio::test]
async fn retries_5xx_then_succeeds() {
    let (base, script) = fake(vec![
        (500, vec![], "oops"),
        (
            503,
            vec![],
            r#"{"error":{"code":"ServiceUnavailable","message":"busy"}}"#,
        ),
        (200, vec![], "{}"),
    ])
    .await;
    let resp = testutil::client(&base)
        .send(&ctx(Duration::from_secs(10)), get("/x"))
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(script.calls.load(Ordering::SeqCst), 3);
    let seen = script.seen.lock().unwrap();
    assert_ne!(
        seen[0].2["x-ms-client-request-id"], seen[1].2["x-ms-client-request-id"],
        "fresh id per try"
    );
}

#[tokio::test]
async fn gives_up_after_max_attempts() {
    let (base, script) = fake(vec![(502, vec![], "bad gateway")]).await;
    let err = testutil::client(&base)
        .send(&ctx(Duration::from_secs(10)), get("/x"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(502));
    assert_eq!(script.calls.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn not_found_and_forbidden_are_not_retried() {
    let forbidden = r#"{"error":{"code":"AuthorizationFailed","message":"The client 'x' does not have authorization to perform action 'Microsoft.ContainerService/managedClusters/read' over scope '/subscriptions/s'."}}"#;
    for (status, body) in [
        (
            404,
            r#"{"error":{"code":"ResourceNotFound","message":"gone"}}"#,
        ),
        (403, forbidden),
    ] {
        let (base, script) = fake(vec![(
            status,
            vec![("x-ms-request-id", "rid-9".into())],
            body,
        )])
        .await;
        let err = testutil::client(&base)
            .send(&ctx(Duration::from_secs(10)), get("/x"))
            .await
            .unwrap_err();
        assert_eq!(script.calls.load(Ordering::SeqCst), 1, "{status}");
        let api = err.api().unwrap();
        assert_eq!(api.request_id.as_deref(), Some("rid-9"));
        if status == 404 {
            assert!(err.is_not_found());
            assert_eq!(api.code.as_deref(), Some("ResourceNotFound"));
        } else {
            assert!(err.is_forbidden());
            assert_eq!(
                err.missing_action().as_deref(),
                Some("Microsoft.ContainerService/managedClusters/read")
            );
        }
        assert!(!err.to_string().contains("test-token"));
    }
}

#[tokio::test]
async fn honours_retry_after_on_429_and_pauses_the_bucket() {
    let (base, script) = fake(vec![
        (429, vec![("retry-after", "1".into())], "{}"),
        (200, vec![], "{}"),
    ])
    .await;
    let client = testutil::client(&base);
    client
        .send(&ctx(Duration::from_secs(10)), get("/x"))
        .await
        .unwrap();
    let seen = script.seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    let gap = seen[1].0 - seen[0].0;
    assert!(
        gap >= Duration::from_secs(1),
        "second request after {gap:?}"
    );
    drop(seen);
    // The pause was recorded on the shared bucket (it has expired by now).
    assert_eq!(client.throttle().levels().len(), 1);
}

#[tokio::test]
async fn retry_after_past_the_deadline_gives_up_without_waiting_as_not_sent() {
    let (base, script) = fake(vec![(429, vec![("retry-after", "3600".into())], "{}")]).await;
    let started = std::time::Instant::now();
    let err = testutil::client(&base)
        .send(&ctx(Duration::from_secs(5)), get("/x"))
        .await
        .unwrap_err();
    // A 429 is a refusal: giving up after it means ARM processed nothing.
    assert!(matches!(err, ArmError::NotSent { .. }), "{err:?}");
    assert!(!err.may_have_been_processed());
    assert!(started.elapsed() < Duration::from_secs(4));
    assert_eq!(script.calls.load(Ordering::SeqCst), 1);
    // Every caller of the bucket is now held back.
    assert!(
        testutil::client(&base).throttle().levels().is_empty(),
        "a new client has its own buckets"
    );
}

#[tokio::test]
async fn garbage_json_is_invalid_response() {
    let (base, _) = fake(vec![(
        200,
        vec![("content-type", "application/json".into())],
        "{not json",
    )])
    .await;
    let resp = testutil::client(&base)
        .send(&ctx(Duration::from_secs(5)), get("/x"))
        .await
        .unwrap();
    let err = expect_json::<serde_json::Value>(&resp, "Test_Get").unwrap_err();
    assert_eq!(err.metric_label(), "invalid_response");
    let (base, _) = fake(vec![(
        200,
        vec![("content-type", "text/html".into())],
        "<html>password=hunter2",
    )])
    .await;
    let resp = testutil::client(&base)
        .send(&ctx(Duration::from_secs(5)), get("/x"))
        .await
        .unwrap();
    let err = expect_json::<serde_json::Value>(&resp, "Test_Get").unwrap_err();
    assert!(matches!(err, ArmError::InvalidResponse { .. }));
    // A 2xx body may hold credentials: never quoted.
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[tokio::test]
async fn connection_refused_is_retried_then_transport_error() {
    testutil::install_crypto();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let err = testutil::client(&base)
        .send(&ctx(Duration::from_secs(10)), get("/x"))
        .await
        .unwrap_err();
    assert!(matches!(err, ArmError::Connect { .. }), "{err:?}");
    assert!(!err.may_have_been_processed());
}

#[tokio::test]
async fn polling_urls_must_stay_on_the_arm_host() {
    let client = testutil::client("http://127.0.0.1:1");
    let req = ArmRequest::new(
        "Poll",
        Method::GET,
        Target::Url(Url::parse("http://evil.example/x").unwrap()),
    );
    let err = client
        .send(&ctx(Duration::from_secs(5)), req)
        .await
        .unwrap_err();
    assert!(matches!(err, ArmError::InvalidResponse { .. }));
    let err = client
        .send(&ctx(Duration::from_secs(5)), get("//double"))
        .await
        .unwrap_err();
    assert!(matches!(err, ArmError::Validation(_)));
}

#[test]
fn backoff_grows_and_is_capped() {
    let p = RetryPolicy {
        max_attempts: 5,
        initial_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(8),
    };
    assert_eq!(p.backoff(0, 0.0), Duration::from_millis(500));
    assert_eq!(p.backoff(0, 1.0), Duration::from_secs(1));
    assert_eq!(p.backoff(2, 0.0), Duration::from_secs(2));
    assert_eq!(p.backoff(10, 1.0), Duration::from_secs(8));
    let r = random_unit();
    assert!((0.0..1.0).contains(&r));
}

#[tokio::test]
async fn non_idempotent_requests_are_not_retried_on_5xx_but_are_on_429() {
    let (base, script) = fake(vec![(500, vec![], "boom")]).await;
    let post = ArmRequest::path("Test_Post", Method::POST, "/x", "1").not_idempotent();
    let err = testutil::client(&base)
        .send(&ctx(Duration::from_secs(5)), post.clone())
        .await
        .unwrap_err();
    assert!(err.may_have_been_processed());
    assert_eq!(script.calls.load(Ordering::SeqCst), 1);
    let (base, script) = fake(vec![
        (429, vec![("retry-after-ms", "10".into())], "{}"),
        (202, vec![], ""),
    ])
    .await;
    let resp = testutil::client(&base)
        .send(&ctx(Duration::from_secs(5)), post)
        .await
        .unwrap();
    assert_eq!(resp.status, 202);
    assert_eq!(script.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_429_holds_back_other_callers_of_the_same_bucket() {
    let (base, script) = fake(vec![
        (429, vec![("retry-after", "1".into())], "{}"),
        (200, vec![], "{}"),
    ])
    .await;
    let client = ArmClient::from_parts(
        reqwest::Client::new(),
        &testutil::plain_cloud(&base),
        Throttle::new(ThrottleConfig::default()),
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        },
        Arc::new(NoopObserver),
    );
    let c = ctx(Duration::from_secs(10));
    let err = client.send(&c, get("/first")).await.unwrap_err();
    assert!(err.is_throttled());
    // Another caller, another path, same (subscription, principal, reads) bucket.
    client.send(&c, get("/second")).await.unwrap();
    let seen = script.seen.lock().unwrap();
    let gap = seen[1].0 - seen[0].0;
    assert!(
        gap >= Duration::from_secs(1),
        "second caller sent after {gap:?}"
    );
}

#[derive(Default)]
struct Counting {
    responses: Mutex<Vec<(&'static str, Option<u16>)>>,
    throttled: AtomicUsize,
    retries: AtomicUsize,
}

impl ArmObserver for Counting {
    fn response(&self, operation: &'static str, status: Option<u16>) {
        self.responses.lock().unwrap().push((operation, status));
    }
    fn throttled(&self, _operation: &'static str) {
        self.throttled.fetch_add(1, Ordering::SeqCst);
    }
    fn retry(&self, _operation: &'static str, _delay: Duration) {
        self.retries.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn observer_counts_requests_429s_and_retries() {
    let (base, _) = fake(vec![
        (429, vec![("retry-after-ms", "5".into())], "{}"),
        (503, vec![], ""),
        (200, vec![], "{}"),
    ])
    .await;
    let observer = Arc::new(Counting::default());
    let client = ArmClient::from_parts(
        reqwest::Client::new(),
        &testutil::plain_cloud(&base),
        Throttle::new(ThrottleConfig::default()),
        RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(10),
        },
        observer.clone(),
    );
    client
        .send(&ctx(Duration::from_secs(5)), get("/x"))
        .await
        .unwrap();
    assert_eq!(
        *observer.responses.lock().unwrap(),
        [
            ("Test_Get", Some(429)),
            ("Test_Get", Some(503)),
            ("Test_Get", Some(200))
        ]
    );
    assert_eq!(observer.throttled.load(Ordering::SeqCst), 1);
    assert_eq!(observer.retries.load(Ordering::SeqCst), 2);
}

#[derive(Debug)]
struct FailingCredential;

#[async_trait::async_trait]
impl azure_core::credentials::TokenCredential for FailingCredential {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<azure_core::credentials::TokenRequestOptions<'_>>,
    ) -> azure_core::Result<azure_core::credentials::AccessToken> {
        Err(azure_core::Error::with_message(
            azure_core::error::ErrorKind::Credential,
            "AADSTS7000215: invalid client secret",
        ))
    }
}

#[tokio::test]
async fn token_failure_is_an_auth_error_and_nothing_is_sent() {
    let (base, script) = fake(vec![(200, vec![], "{}")]).await;
    let mut c = ctx(Duration::from_secs(5));
    c.credential = Arc::new(FailingCredential);
    let err = testutil::client(&base)
        .send(&c, get("/x"))
        .await
        .unwrap_err();
    assert_eq!(err.metric_label(), "auth");
    assert!(err.to_string().contains("AADSTS7000215"));
    assert_eq!(script.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn requests_ask_for_the_arm_scope() {
    let (base, _) = fake(vec![(200, vec![], "{}")]).await;
    let stub = Arc::new(testutil::StubCredential::new("t"));
    let mut c = ctx(Duration::from_secs(5));
    c.credential = stub.clone();
    testutil::client(&base).send(&c, get("/x")).await.unwrap();
    // Asked before the budget is charged and again for the request (a real credential caches).
    let scopes = stub.scopes.lock().unwrap().clone();
    assert!(!scopes.is_empty());
    assert!(
        scopes.iter().all(|s| *s == format!("{base}/.default")),
        "{scopes:?}"
    );
}

/// A client whose budget holds one read and one write, refilled only after minutes.
fn one_request_each(base: &str) -> ArmClient {
    let one = BucketConfig {
        burst: 1.0,
        per_second: 0.001,
    };
    ArmClient::from_parts(
        reqwest::Client::new(),
        &testutil::plain_cloud(base),
        Throttle::new(ThrottleConfig {
            read: one,
            write: one,
        }),
        RetryPolicy::default(),
        Arc::new(NoopObserver),
    )
}

#[tokio::test]
async fn a_budget_that_outlasts_the_deadline_is_not_sent_and_a_reservation_is_spent_once() {
    let (base, script) = fake(vec![(200, vec![], "{}"), (200, vec![], "{}")]).await;
    let client = one_request_each(&base);
    let call = ctx(Duration::from_millis(200));
    // The one write token is reserved, then spent by the prepaid request: no second wait.
    client.reserve(&call, "Op", OpKind::Write).await.unwrap();
    let post = |prepaid| {
        ArmRequest::path("Op", Method::POST, "/x", "v")
            .not_idempotent()
            .prepaid(prepaid)
    };
    client.send(&call, post(true)).await.unwrap();
    // The bucket is empty for far longer than the deadline: the next write is never sent.
    let err = client.send(&call, post(false)).await.unwrap_err();
    assert!(matches!(err, ArmError::NotSent { .. }), "{err:?}");
    assert!(
        !err.may_have_been_processed(),
        "a request that never left cannot have been processed"
    );
    assert_eq!(script.calls.load(Ordering::SeqCst), 1);
}

/// A credential Entra refuses never spends the budget of the principal it names: a junk Secret
/// claiming a victim's client id must not drain the victim's bucket.
#[tokio::test]
async fn a_refused_credential_never_spends_the_budget_it_names() {
    #[derive(Debug)]
    struct Refused;
    #[async_trait::async_trait]
    impl azure_core::credentials::TokenCredential for Refused {
        async fn get_token(
            &self,
            _: &[&str],
            _: Option<azure_core::credentials::TokenRequestOptions<'_>>,
        ) -> azure_core::Result<azure_core::credentials::AccessToken> {
            Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Credential,
                "AADSTS7000215: Invalid client secret provided.",
            ))
        }
    }
    let (base, script) = fake(vec![(200, vec![], "{}")]).await;
    let client = one_request_each(&base);
    let mut junk = ctx(Duration::from_millis(200));
    junk.credential = Arc::new(Refused);
    for _ in 0..3 {
        assert!(client.send(&junk, get("/x")).await.is_err());
        assert!(client.reserve(&junk, "Op", OpKind::Write).await.is_err());
    }
    // The genuine principal (same claimed identity) still has its one read and one write.
    let genuine = ctx(Duration::from_millis(200));
    client.send(&genuine, get("/x")).await.unwrap();
    client.reserve(&genuine, "Op", OpKind::Write).await.unwrap();
    assert_eq!(script.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_http_client_never_follows_a_redirect() {
    testutil::install_crypto();
    let hits = Arc::new(AtomicUsize::new(0));
    let followed = hits.clone();
    let router = Router::new()
        .route(
            "/runCommand",
            any(|| async { (StatusCode::TEMPORARY_REDIRECT, [("location", "/elsewhere")]) }),
        )
        .route(
            "/elsewhere",
            any(move || {
                followed.fetch_add(1, Ordering::SeqCst);
                async { StatusCode::OK }
            }),
        );
    let base = serve(router).await;
    let http = build_http_client(None, Duration::from_secs(5), Duration::from_secs(5)).unwrap();
    let resp = http
        .post(format!("{base}/runCommand"))
        .body("{\"command\":\"secret\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the body was re-sent");
}

#[tokio::test]
async fn a_body_past_the_limit_is_refused_not_buffered() {
    testutil::install_crypto();
    let router = Router::new().route("/huge", any(|| async { vec![b'x'; MAX_BODY_BYTES + 1] }));
    let base = serve(router).await;
    let err = testutil::client(&base)
        .send(&ctx(Duration::from_secs(10)), get("/huge"))
        .await
        .unwrap_err();
    match err {
        ArmError::InvalidResponse { message, .. } => {
            assert!(message.contains("larger than"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn tenant_level_urls_draw_on_the_tenant_budget() {
    let c = ctx(Duration::from_secs(1));
    let scope = |u: &str| bucket_scope(&Url::parse(u).unwrap(), &c);
    assert_eq!(
        scope("https://arm/subscriptions/ABC/resourceGroups/r/providers/p/x"),
        "abc"
    );
    assert_eq!(
        scope(
            "https://arm/providers/Microsoft.HybridContainerService/locations/westeurope/operationStatuses/1"
        ),
        TENANT_SCOPE
    );
}

#[tokio::test]
async fn a_429_on_a_subscription_does_not_hold_back_tenant_level_polls() {
    let (base, _script) = fake(vec![
        (429, vec![("retry-after", "60".into())], "{}"),
        (200, vec![], "{}"),
    ])
    .await;
    let client = ArmClient::from_parts(
        reqwest::Client::new(),
        &testutil::plain_cloud(&base),
        Throttle::new(ThrottleConfig::default()),
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        },
        Arc::new(NoopObserver),
    );
    let c = ctx(Duration::from_secs(5));
    let err = client
        .send(&c, get("/subscriptions/s/resourceGroups/r/x"))
        .await
        .unwrap_err();
    assert!(err.is_throttled());
    // The subscription's bucket is paused for a minute, past this context's deadline...
    let held = client
        .send(&c, get("/subscriptions/s/resourceGroups/r/y"))
        .await
        .unwrap_err();
    assert!(!held.is_throttled(), "{held}");
    // ...while a tenant-level status URL goes out at once.
    client
        .send(
            &ctx(Duration::from_secs(5)),
            get("/providers/Microsoft.HybridContainerService/locations/l/operationStatuses/1"),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_fence_that_falls_stops_the_retry_of_a_dispatch() {
    // The first attempt is throttled; by the time its Retry-After has passed, this replica lost
    // its tenure: the retry must not leave.
    let (base, script) = fake(vec![
        (429, vec![("retry-after-ms", "10".into())], "{}"),
        (202, vec![], ""),
    ])
    .await;
    let holds = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let fence: Fence = {
        let (holds, script) = (holds.clone(), script.clone());
        Arc::new(move || {
            // Held for the first attempt only.
            let first = script.calls.load(Ordering::SeqCst) == 0;
            holds.load(Ordering::SeqCst) && first
        })
    };
    let call = CallContext {
        fence: Some(fence),
        forget_credential: None,
        ..ctx(Duration::from_secs(5))
    };
    let post = ArmRequest::path("Test_Post", Method::POST, "/x", "1").not_idempotent();
    let err = testutil::client(&base)
        .send(&call, post.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, ArmError::Fenced { .. }), "{err:?}");
    assert!(!err.may_have_been_processed());
    assert_eq!(script.calls.load(Ordering::SeqCst), 1, "the retry was sent");

    // A fence already down sends nothing at all.
    holds.store(false, Ordering::SeqCst);
    let (base, script) = fake(vec![(202, vec![], "")]).await;
    let fence: Fence = {
        let holds = holds.clone();
        Arc::new(move || holds.load(Ordering::SeqCst))
    };
    let call = CallContext {
        fence: Some(fence),
        forget_credential: None,
        ..ctx(Duration::from_secs(5))
    };
    let err = testutil::client(&base).send(&call, post).await.unwrap_err();
    assert!(matches!(err, ArmError::Fenced { .. }), "{err:?}");
    assert_eq!(script.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_2xx_to_a_dispatch_is_an_answer_even_when_its_body_cannot_be_read() {
    testutil::install_crypto();
    let router = Router::new().route(
        "/huge",
        any(|| async {
            (
                StatusCode::ACCEPTED,
                [("location", "/elsewhere")],
                vec![b'x'; MAX_BODY_BYTES + 1],
            )
        }),
    );
    let base = serve(router).await;
    let client = testutil::client(&base);
    let post = ArmRequest::path("Test_Post", Method::POST, "/huge", "1").not_idempotent();
    let resp = client
        .send(&ctx(Duration::from_secs(10)), post)
        .await
        .expect("a 2xx is ARM's acceptance");
    assert_eq!(resp.status, 202);
    assert_eq!(resp.headers["location"], "/elsewhere");
    let why = resp.unread_body.clone().expect("the body was not read");
    assert!(why.contains("larger than"), "{why}");
    let err = resp.json::<serde_json::Value>("Test_Post").unwrap_err();
    assert!(err.to_string().contains("could not be read"), "{err}");
    // The connection breaks in the middle of the body: still an answer. A raw socket, so that the
    // headers surely leave before the body is cut.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cut = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = socket.read(&mut buf).await.unwrap();
            assert!(n > 0, "the request ended early");
            request.extend_from_slice(&buf[..n]);
        }
        socket
            .write_all(b"HTTP/1.1 202 Accepted\r\nlocation: /elsewhere\r\ncontent-length: 100\r\n\r\n{\"partial")
            .await
            .unwrap();
        socket.shutdown().await.unwrap();
    });
    let post = ArmRequest::path("Test_Post", Method::POST, "/cut", "1").not_idempotent();
    let resp = testutil::client(&cut)
        .send(&ctx(Duration::from_secs(10)), post)
        .await
        .expect("a 2xx is ARM's acceptance");
    assert_eq!(resp.status, 202);
    assert!(resp.unread_body.is_some());
    // A read is still refused outright.
    let err = client
        .send(&ctx(Duration::from_secs(10)), get("/huge"))
        .await
        .unwrap_err();
    assert!(matches!(err, ArmError::InvalidResponse { .. }), "{err:?}");
}

#[tokio::test]
async fn an_expired_token_drops_the_credential_so_the_next_try_gets_a_new_one() {
    let body = r#"{"error":{"code":"ExpiredAuthenticationToken","message":"The access token expiry UTC time is earlier than current UTC time."}}"#;
    let (base, _) = fake(vec![(401, vec![], body), (401, vec![], "{}")]).await;
    let forgotten = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let call = CallContext {
        forget_credential: Some({
            let forgotten = forgotten.clone();
            Arc::new(move || {
                forgotten.fetch_add(1, Ordering::SeqCst);
            })
        }),
        ..ctx(Duration::from_secs(5))
    };
    let client = testutil::client(&base);
    let err = client.send(&call, get("/x")).await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert_eq!(forgotten.load(Ordering::SeqCst), 1);
    // Any other 401 keeps the credential.
    let _ = client.send(&call, get("/x")).await.unwrap_err();
    assert_eq!(forgotten.load(Ordering::SeqCst), 1);
}

/// A cold client sends its first request alone: the connection it opens (HTTP/2 with ARM) is the
/// one the burst behind it shares, instead of one TLS handshake per request of the burst.
#[tokio::test]
async fn the_first_request_goes_alone_and_the_burst_follows_it() {
    testutil::install_crypto();
    #[derive(Default)]
    struct Seen {
        arrived_during_first: AtomicUsize,
        first_out: std::sync::atomic::AtomicBool,
        first_taken: std::sync::atomic::AtomicBool,
    }
    let seen = Arc::new(Seen::default());
    let router = Router::new()
        .route(
            "/r",
            any(|State(seen): State<Arc<Seen>>| async move {
                if seen.first_out.load(Ordering::SeqCst) {
                    seen.arrived_during_first.fetch_add(1, Ordering::SeqCst);
                }
                if !seen.first_taken.swap(true, Ordering::SeqCst) {
                    seen.first_out.store(true, Ordering::SeqCst);
                    // The first answer takes a while: whoever arrives meanwhile did not wait.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    seen.first_out.store(false, Ordering::SeqCst);
                }
                StatusCode::OK
            }),
        )
        .with_state(seen.clone());
    let base = serve(router).await;
    let client = testutil::client(&base);
    let call = ctx(Duration::from_secs(10));
    let burst = (0..10).map(|_| client.send(&call, get("/r")));
    for answer in futures::future::join_all(burst).await {
        assert_eq!(answer.unwrap().status, 200);
    }
    assert_eq!(seen.arrived_during_first.load(Ordering::SeqCst), 0);
}
