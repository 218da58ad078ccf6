//! Helpers for the Azure layer's tests: a stub credential and loopback fake servers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use tokio::time::Instant;

use super::client::{ArmClient, CallContext, NoopObserver, RetryPolicy};
use super::cloud::Cloud;
use super::credentials::Principal;
use super::throttle::{Throttle, ThrottleConfig};

/// Hands out a fixed token and records the scopes it was asked for.
#[derive(Debug)]
pub struct StubCredential {
    token: String,
    pub scopes: Mutex<Vec<String>>,
}

impl StubCredential {
    pub fn new(token: &str) -> Self {
        Self {
            token: token.to_string(),
            scopes: Mutex::new(Vec::new()),
        }
    }
}

#[async_trait]
impl TokenCredential for StubCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        self.scopes
            .lock()
            .unwrap()
            .extend(scopes.iter().map(|s| s.to_string()));
        Ok(AccessToken {
            token: azure_core::credentials::Secret::new(self.token.clone()),
            expires_on: azure_core::time::OffsetDateTime::now_utc()
                + azure_core::time::Duration::hours(1),
        })
    }
}

pub fn install_crypto() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Serves `router` on 127.0.0.1:0 and returns its base URL (`http://127.0.0.1:PORT`).
pub async fn serve(router: axum::Router) -> String {
    install_crypto();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}")
}

/// A client for `base` with a fast retry policy and a generous throttle.
/// A custom cloud whose ARM is the plain-HTTP test server at `base` (which `Cloud::custom`
/// refuses: the variant is built directly).
pub fn plain_cloud(base: &str) -> Cloud {
    Cloud::Custom {
        arm_endpoint: reqwest::Url::parse(&format!("{base}/")).unwrap(),
        authority_host: reqwest::Url::parse("https://login.invalid").unwrap(),
        exec_hosts: Vec::new(),
    }
}

pub fn client(base: &str) -> ArmClient {
    let cloud = plain_cloud(base);
    ArmClient::from_parts(
        reqwest::Client::new(),
        &cloud,
        Throttle::new(ThrottleConfig::default()),
        RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
        },
        Arc::new(NoopObserver),
    )
}

pub fn ctx(deadline_in: Duration) -> CallContext {
    CallContext {
        credential: Arc::new(StubCredential::new("test-token")),
        principal: Principal {
            tenant_id: "t".into(),
            client_id: "c".into(),
        },
        subscription: "00000000-1111-2222-3333-444444444444".into(),
        correlation_id: "corr-1".into(),
        party: "ns".into(),
        order: None,
        deadline: Instant::now() + deadline_in,
        fence: None,
        forget_credential: None,
    }
}

/// A scripted reply; `{base}` in header values is replaced by the server's own base URL.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

pub fn reply(status: u16, headers: &[(&'static str, &str)], body: &str) -> Reply {
    Reply {
        status,
        headers: headers.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        body: body.to_string(),
    }
}

/// What a [`PathScript`] server saw: when, method, path with query.
pub type Seen = (std::time::Instant, String, String);

/// Answers per path (without query) from a queue of replies; the last reply repeats.
#[derive(Default)]
pub struct PathScript {
    pub replies: Mutex<std::collections::HashMap<String, Vec<Reply>>>,
    pub seen: Mutex<Vec<Seen>>,
}

impl PathScript {
    pub fn seen_paths(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|(_, m, p)| format!("{m} {p}"))
            .collect()
    }
}

async fn path_scripted(
    axum::extract::State(s): axum::extract::State<Arc<PathScript>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = req.uri().path().to_string();
    let host = req
        .headers()
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    s.seen.lock().unwrap().push((
        std::time::Instant::now(),
        req.method().to_string(),
        path_and_query,
    ));
    let next = {
        let mut replies = s.replies.lock().unwrap();
        match replies.get_mut(&path) {
            Some(queue) if queue.len() > 1 => Some(queue.remove(0)),
            Some(queue) => queue.first().cloned(),
            None => None,
        }
    };
    let Some(r) = next else {
        return (
            axum::http::StatusCode::NOT_FOUND,
            r#"{"error":{"code":"NotFound","message":"no script"}}"#,
        )
            .into_response();
    };
    let mut resp = (axum::http::StatusCode::from_u16(r.status).unwrap(), r.body).into_response();
    // ARM answers JSON; a test that wants another content type sets the header.
    resp.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    for (k, v) in r.headers {
        resp.headers_mut().insert(
            k,
            v.replace("{base}", &format!("http://{host}"))
                .parse()
                .unwrap(),
        );
    }
    resp
}

pub async fn serve_paths(script: Vec<(&str, Vec<Reply>)>) -> (String, Arc<PathScript>) {
    let state = Arc::new(PathScript::default());
    state
        .replies
        .lock()
        .unwrap()
        .extend(script.into_iter().map(|(p, r)| (p.to_string(), r)));
    let router = axum::Router::new()
        .fallback(axum::routing::any(path_scripted))
        .with_state(state.clone());
    (serve(router).await, state)
}
