//! The operator's HTTP endpoints: `/metrics` (Prometheus text), `/healthz` (the process serves),
//! `/readyz` (caches synced and, with leader election, a known leader).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::azure::throttle::BucketLevel;
use crate::metrics::Metrics;

/// State-derived gauges, read at scrape time: RemoteCommands by phase and the ARM bucket fill.
pub type GaugeSource = Box<dyn Fn() -> (Vec<(String, i64)>, Vec<BucketLevel>) + Send + Sync>;

pub struct Probes {
    pub metrics: Arc<Metrics>,
    ready: AtomicBool,
    gauges: std::sync::OnceLock<GaugeSource>,
}

impl Probes {
    pub fn new(metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            metrics,
            ready: AtomicBool::new(false),
            gauges: std::sync::OnceLock::new(),
        })
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Where the state-derived gauges come from (set once the controllers exist).
    pub fn set_gauges(&self, source: GaugeSource) {
        let _ = self.gauges.set(source);
    }
}

async fn metrics(State(p): State<Arc<Probes>>) -> impl IntoResponse {
    let (phases, buckets) = p.gauges.get().map(|g| g()).unwrap_or_default();
    let body = p.metrics.render(&phases, &buckets);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(p): State<Arc<Probes>>) -> (StatusCode, &'static str) {
    if p.is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

pub fn router(probes: Arc<Probes>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(probes)
}

/// Binds the address now, so a taken port fails start-up rather than later.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "serving /metrics, /healthz, /readyz");
    Ok(listener)
}

/// Serves until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    probes: Arc<Probes>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(probes))
        .with_graceful_shutdown(shutdown)
        .await
}
