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

use crate::metrics::{Metrics, StateGauges};

/// State-derived gauges, read at scrape time: RemoteCommands by phase, the ARM bucket fill and
/// KubeconfigExports by readiness and expiry.
pub type GaugeSource = Box<dyn Fn() -> StateGauges + Send + Sync>;

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
    let state = p.gauges.get().map(|g| g()).unwrap_or_default();
    let body = p.metrics.render(&state);
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

/// What one listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoints {
    /// `/metrics`, `/healthz` and `/readyz` (no separate metrics address).
    All,
    /// `/healthz` and `/readyz` only.
    Probes,
    /// `/metrics` only (`--metrics-bind-address`).
    Metrics,
}

impl Endpoints {
    fn paths(self) -> &'static str {
        match self {
            Endpoints::All => "/metrics, /healthz, /readyz",
            Endpoints::Probes => "/healthz, /readyz",
            Endpoints::Metrics => "/metrics",
        }
    }
}

pub fn router(probes: Arc<Probes>, endpoints: Endpoints) -> Router {
    let mut router = Router::new();
    if endpoints != Endpoints::Probes {
        router = router.route("/metrics", get(metrics));
    }
    if endpoints != Endpoints::Metrics {
        router = router
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz));
    }
    router.with_state(probes)
}

/// Binds the address now, so a taken port fails start-up rather than later.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
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
    endpoints: Endpoints,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(addr = %addr, "serving {}", endpoints.paths());
    }
    axum::serve(listener, router(probes, endpoints))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn status_of(endpoints: Endpoints, path: &str) -> u16 {
        let probes = Probes::new(Arc::new(Metrics::new()));
        probes.set_ready(true);
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve(listener, probes, endpoints, std::future::pending()));
        let status = reqwest::get(format!("http://{addr}{path}"))
            .await
            .unwrap()
            .status()
            .as_u16();
        server.abort();
        status
    }

    #[tokio::test]
    async fn metrics_can_live_on_their_own_listener() {
        assert_eq!(status_of(Endpoints::All, "/metrics").await, 200);
        assert_eq!(status_of(Endpoints::All, "/readyz").await, 200);
        assert_eq!(status_of(Endpoints::Probes, "/metrics").await, 404);
        assert_eq!(status_of(Endpoints::Probes, "/healthz").await, 200);
        assert_eq!(status_of(Endpoints::Metrics, "/metrics").await, 200);
        assert_eq!(status_of(Endpoints::Metrics, "/readyz").await, 404);
    }

    #[tokio::test]
    async fn probe_reads_the_status_line() {
        let probes = Probes::new(Arc::new(Metrics::new()));
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(serve(
            listener,
            probes.clone(),
            Endpoints::All,
            std::future::pending(),
        ));
        let timeout = Duration::from_secs(2);
        let check = move |kind| {
            let addr = addr.clone();
            tokio::task::spawn_blocking(move || probe(kind, &addr, timeout))
        };
        assert!(check(ProbeKind::Healthz).await.unwrap().is_ok());
        assert!(
            check(ProbeKind::Readyz).await.unwrap().is_err(),
            "not ready yet"
        );
        probes.set_ready(true);
        assert!(check(ProbeKind::Readyz).await.unwrap().is_ok());
        server.abort();
        assert!(probe(ProbeKind::Healthz, "not an address", timeout).is_err());
    }
}
