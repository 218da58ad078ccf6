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
pub fn client(base: &str) -> ArmClient {
    let cloud = Cloud::custom(&format!("{base}/"), "https://login.invalid").unwrap();
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
        deadline: Instant::now() + deadline_in,
    }
}
