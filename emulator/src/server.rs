//! TLS accept loop, the router, and the response decoration / request log shared by all routes.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{any, get, post};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::state::{LogEntry, Shared};

/// Per-connection handle a handler uses to close the connection without answering.
#[derive(Clone)]
pub struct ConnCtl(Arc<Notify>);

impl ConnCtl {
    /// Closes the TCP/TLS connection; the pending request never gets a response.
    pub async fn drop_connection(&self) -> Response {
        self.0.notify_one();
        std::future::pending::<Response>().await
    }
}

/// Operation name and caller, attached to a response for the request log.
#[derive(Clone, Debug)]
pub struct OpInfo {
    pub op: String,
    pub client_id: Option<String>,
}

pub fn tag(mut resp: Response, op: &str, client_id: Option<&str>) -> Response {
    resp.extensions_mut().insert(OpInfo {
        op: op.to_string(),
        client_id: client_id.map(str::to_string),
    });
    resp
}

/// Records a request that got no response (dropped connection).
pub fn log_dropped(state: &Shared, method: &str, path: &str, op: &str, client: Option<&str>) {
    let mut stats = state.stats();
    stats.injected_faults += 1;
    stats.record(LogEntry {
        time: crate::state::rfc3339_nanos(std::time::SystemTime::now()),
        method: method.to_string(),
        path: path.to_string(),
        operation: op.to_string(),
        client_id: client.map(str::to_string),
        status: 0,
        correlation_id: None,
        client_request_id: None,
        request_id: None,
    });
}

pub fn router(state: Shared) -> Router {
    Router::new()
        .nest("/_emulator", crate::control::router())
        .route("/msi/token", get(crate::msi::msi_token))
        .route("/metadata/endpoints", get(crate::metadata::endpoints))
        .route("/{tenant}/oauth2/v2.0/token", post(crate::entra::token))
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(crate::entra::openid_configuration),
        )
        .route(
            "/common/discovery/instance",
            get(crate::entra::instance_discovery),
        )
        .fallback(any(crate::arm::handle))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// The exec listener's router: only the ACI exec websocket, on a host and port of its own as ACI
/// hands out (`wss://<id>.<region>.atlas.cloudapp.azure.com:19390/execstream/…`).
pub fn exec_router(state: Shared) -> Router {
    Router::new()
        .route("/execstream/{session}", get(crate::aci_ws::handler))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Adds `x-ms-request-id` (and the correlation/client request ids) and writes the request log.
async fn observe(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    if path.starts_with("/_emulator") {
        return next.run(req).await;
    }
    let h = req.headers();
    // Specified as a GUID, but ARM takes other ids (undecorated 32-hex ones: Azure/azure-dev PR
    // #9141) and echoes them; refusing them here would be strictness ARM does not have.
    let sent = header(h, "x-ms-correlation-request-id");
    let correlation = sent.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let client_request_id = header(h, "x-ms-client-request-id");
    let echo =
        header(h, "x-ms-return-client-request-id").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let mut resp = next.run(req).await;
    let request_id = uuid::Uuid::new_v4().to_string();
    let headers = resp.headers_mut();
    for (name, value) in [
        ("x-ms-request-id", Some(&request_id)),
        ("x-ms-correlation-request-id", Some(&correlation)),
        (
            "x-ms-client-request-id",
            client_request_id.as_ref().filter(|_| echo),
        ),
    ] {
        if let Some(v) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(name, v);
        }
    }
    let info = resp.extensions().get::<OpInfo>().cloned();
    let entry = LogEntry {
        time: crate::state::rfc3339_nanos(std::time::SystemTime::now()),
        method,
        path,
        operation: info
            .as_ref()
            .map(|i| i.op.clone())
            .unwrap_or_else(|| "unknown".into()),
        client_id: info.and_then(|i| i.client_id),
        status: resp.status().as_u16(),
        correlation_id: Some(correlation),
        client_request_id,
        request_id: Some(request_id),
    };
    tracing::info!(method = %entry.method, path = %entry.path, op = %entry.operation, status = entry.status, "request");
    state.stats().record(entry);
    resp
}

/// Accepts TLS connections forever, each speaking what ALPN agreed (HTTP/2 or HTTP/1.1; a client
/// that offers no ALPN gets HTTP/1.1). A client speaking plain HTTP fails the handshake and is
/// closed. With `counted`, every completed handshake is counted (`/_emulator/counters`).
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    counted: Option<Shared>,
) {
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        let counted = counted.clone();
        tokio::spawn(async move {
            let tls =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
            let http2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
            if let Some(state) = &counted {
                state.stats().connection(http2);
            }
            let ctl = ConnCtl(Arc::new(Notify::new()));
            let ctl2 = ctl.clone();
            let svc = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ctl2.clone());
                    app.clone().oneshot(req.map(axum::body::Body::new))
                },
            );
            let mut builder = auto::Builder::new(TokioExecutor::new());
            if http2 {
                builder = builder.http2_only();
            }
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), svc);
            tokio::select! {
                res = conn => {
                    if let Err(e) = res {
                        tracing::debug!(%peer, error = %e, "connection ended with error");
                    }
                }
                _ = ctl.0.notified() => {
                    tracing::info!(%peer, "dropping connection (injected fault)");
                }
            }
        });
    }
}
