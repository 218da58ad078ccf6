//! The operator's HTTP endpoints: `/metrics` (Prometheus text), `/healthz` (the process serves),
//! `/readyz` (caches synced and, with leader election, a known leader).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

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

/// Records the bound address in `path` (written aside, then renamed: a probe never reads half).
pub fn write_addr_file(path: &Path, addr: SocketAddr) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, addr.to_string())?;
    std::fs::rename(&tmp, path)
}

/// What `kubeinvoke probe` checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProbeKind {
    Healthz,
    Readyz,
}

/// `kubeinvoke probe`: one GET of `/healthz` or `/readyz` on the address written by
/// `--http-addr-file` (or given), for exec probes where an HTTP probe cannot know the port. `Ok`
/// when it answers 200; the error says what failed.
pub fn probe(kind: ProbeKind, addr: &str, timeout: Duration) -> Result<(), String> {
    let path = match kind {
        ProbeKind::Healthz => "/healthz",
        ProbeKind::Readyz => "/readyz",
    };
    let addr: SocketAddr = addr
        .trim()
        .parse()
        .map_err(|e| format!("bad address {addr:?}: {e}"))?;
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| format!("{addr}: {e}"))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")
        .map_err(|e| format!("send to {addr}: {e}"))?;
    let mut head = [0u8; 64];
    let mut read = 0;
    while read < head.len() {
        match stream.read(&mut head[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) => return Err(format!("read from {addr}: {e}")),
        }
        if head[..read].contains(&b'\n') {
            break;
        }
    }
    let status_line = String::from_utf8_lossy(&head[..read]);
    let status = status_line.lines().next().unwrap_or_default();
    match status.split_whitespace().nth(1) {
        Some("200") => Ok(()),
        _ => Err(format!("{path}: {status:?}")),
    }
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
