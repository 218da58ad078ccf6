//! The ARM HTTP client: bearer token, request ids, client-side throttling, retries within a deadline.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use azure_core::Bytes;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use super::cloud::Cloud;
use super::credentials::{Principal, SharedCredential, get_token};
use super::error::{ApiError, ArmError, parse_error_body, snippet};
use super::lro;
use super::throttle::{BucketKey, OpKind, Throttle, ThrottleConfig};

/// What metrics want to count; every method has a no-op default.
pub trait ArmObserver: Send + Sync {
    /// One HTTP exchange finished; `status` is `None` when no response came back.
    fn response(&self, _operation: &'static str, _status: Option<u16>) {}
    /// ARM answered 429.
    fn throttled(&self, _operation: &'static str) {}
    /// A request waited for the client-side token bucket.
    fn throttle_wait(&self, _operation: &'static str, _waited: Duration) {}
    fn retry(&self, _operation: &'static str, _delay: Duration) {}
}

#[derive(Debug, Default)]
pub struct NoopObserver;
impl ArmObserver for NoopObserver {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total tries per request, the first included.
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// Exponential backoff with "equal jitter": half fixed, half random, so callers spread out.
    pub fn backoff(&self, retry: u32, random: f64) -> Duration {
        let exp = self
            .initial_backoff
            .saturating_mul(2u32.saturating_pow(retry.min(16)));
        let capped = exp.min(self.max_backoff);
        capped / 2 + capped.mul_f64(random.clamp(0.0, 1.0) / 2.0)
    }
}

/// A uniform random number in [0, 1) without another dependency.
pub(crate) fn random_unit() -> f64 {
    (uuid::Uuid::new_v4().as_u128() >> 75) as f64 / (1u64 << 53) as f64
}

#[derive(Debug, Clone)]
pub struct ArmClientConfig {
    pub cloud: Cloud,
    /// PEM bundle of extra CAs to trust (`--ca-file`), on top of the system roots.
    pub extra_ca_pem: Option<Vec<u8>>,
    pub connect_timeout: Duration,
    /// Per HTTP exchange; ARM itself gives up on providers after 60 s.
    pub request_timeout: Duration,
    pub retry: RetryPolicy,
    pub throttle: ThrottleConfig,
}

impl ArmClientConfig {
    pub fn new(cloud: Cloud) -> Self {
        Self {
            cloud,
            extra_ca_pem: None,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(75),
            retry: RetryPolicy::default(),
            throttle: ThrottleConfig::default(),
        }
    }
}

/// Largest response body read from ARM. Its largest legitimate answers (run-command logs of up to
/// 512 kB, JSON-escaped; kubeconfig lists) are far below it; a larger body is garbage and must not
/// cost the operator its memory.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Reads the body chunk by chunk, refusing it past [`MAX_BODY_BYTES`].
async fn read_body(mut response: reqwest::Response, op: &'static str) -> Result<Bytes, ArmError> {
    let too_large = || {
        ArmError::invalid_response(
            op,
            format!("response body larger than {MAX_BODY_BYTES} bytes"),
        )
    };
    if response
        .content_length()
        .is_some_and(|n| n > MAX_BODY_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_BODY_BYTES {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body.into()),
            Err(e) => {
                return Err(ArmError::Transport {
                    operation: op,
                    message: format!("reading the body: {}", e.without_url()),
                });
            }
        }
    }
}

/// The reqwest client used for ARM and Entra ID: rustls, system roots plus the extra CA.
pub fn build_http_client(
    extra_ca_pem: Option<&[u8]>,
    connect_timeout: Duration,
    request_timeout: Duration,
) -> Result<reqwest::Client, ArmError> {
    // No redirects: a 307/308 would re-send a run command's body (command, files, clusterToken)
    // and the bearer token to wherever the answer points. ARM's APIs never redirect.
    // ARM's front door speaks HTTP/2 (ALPN; the Azure SDK for Go's default transport attempts it
    // on every call): all requests share one connection instead of a TLS handshake per concurrent
    // request. Like that transport, a connection silent for 10 s is pinged and dropped when the
    // ping is not answered within 5 s, so a connection a middlebox cut is not reused.
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(connect_timeout)
        .timeout(request_timeout)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .http2_keep_alive_timeout(Duration::from_secs(5))
        .http2_keep_alive_while_idle(true)
        .user_agent(concat!("kubeinvoke/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = extra_ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| ArmError::Credential(format!("CA file: {e}")))?;
        if certs.is_empty() {
            return Err(ArmError::Credential(
                "CA file holds no PEM certificate".into(),
            ));
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| ArmError::Credential(format!("HTTP client: {e}")))
}

/// Whether a request may still leave, asked right before every attempt of it (the first and each
/// retry): a dispatch is fenced by the leader tenure of its replica (docs/exactly-once.md).
pub type Fence = Arc<dyn Fn() -> bool + Send + Sync>;

/// Who is calling, on whose behalf, and until when: one per reconcile run.
#[derive(Clone)]
pub struct CallContext {
    pub credential: SharedCredential,
    pub principal: Principal,
    pub subscription: String,
    /// Sent as `x-ms-correlation-request-id` so ARM can group the calls of one run.
    pub correlation_id: String,
    pub deadline: Instant,
    /// When set and false, nothing is sent any more: [`ArmError::Fenced`].
    pub fence: Option<Fence>,
    /// Called when ARM says the token expired (`ExpiredAuthenticationToken`, a clock off from
    /// ARM's): the credential and its cached token are dropped, so the next try mints a new one.
    pub forget_credential: Option<Arc<dyn Fn() + Send + Sync>>,
    /// Who the call is for (the resource's namespace): a bucket's tokens go round the parties
    /// waiting for it, so one namespace's flood does not queue up everyone else.
    pub party: String,
    /// Where the call stands among its party's when the bucket is short (oldest first: a
    /// command's creation time and name); `None` stands as created when it asks.
    pub order: Option<super::line::Order>,
}

impl std::fmt::Debug for CallContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallContext")
            .field("principal", &self.principal)
            .field("subscription", &self.subscription)
            .field("correlation_id", &self.correlation_id)
            .finish_non_exhaustive()
    }
}

/// Where a request goes: a path under the ARM endpoint, or an absolute URL ARM gave us (polling).
#[derive(Debug, Clone)]
pub enum Target {
    Path(String),
    Url(Url),
}

#[derive(Debug, Clone)]
pub struct ArmRequest {
    pub operation: &'static str,
    pub method: Method,
    pub target: Target,
    pub api_version: Option<String>,
    pub query: Vec<(&'static str, String)>,
    pub body: Option<serde_json::Value>,
    /// Safe to send twice. When false, only answers that prove the request was not processed
    /// (429, connection not established) are retried.
    pub idempotent: bool,
    /// The caller already took this request's budget token ([`ArmClient::reserve`]); only
    /// retries take another.
    pub prepaid: bool,
}

impl ArmRequest {
    pub fn new(operation: &'static str, method: Method, target: Target) -> Self {
        Self {
            operation,
            method,
            target,
            api_version: None,
            query: Vec::new(),
            body: None,
            idempotent: true,
            prepaid: false,
        }
    }

    pub fn not_idempotent(mut self) -> Self {
        self.idempotent = false;
        self
    }

    /// The budget token was taken beforehand with [`ArmClient::reserve`].
    pub fn prepaid(mut self, prepaid: bool) -> Self {
        self.prepaid = prepaid;
        self
    }

    pub fn path(
        operation: &'static str,
        method: Method,
        path: impl Into<String>,
        api_version: &str,
    ) -> Self {
        Self::new(operation, method, Target::Path(path.into())).api_version(api_version)
    }

    pub fn api_version(mut self, v: &str) -> Self {
        self.api_version = Some(v.to_string());
        self
    }

    pub fn query(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.query.push((name, value.into()));
        self
    }

    pub fn json(mut self, body: serde_json::Value) -> Self {
        self.body = Some(body);
        self
    }
}

#[derive(Debug, Clone)]
pub struct ArmResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The URL that was requested (to resolve relative polling links).
    pub url: Url,
    pub request_id: Option<String>,
    /// Why the body could not be read (too large, the connection dropped). Only a request that
    /// must not be sent twice gets a 2xx like this back, as an answer: ARM accepted it, whatever
    /// its body; `body` is then empty.
    pub unread_body: Option<String>,
}

impl ArmResponse {
    pub fn json<T: DeserializeOwned>(&self, operation: &'static str) -> Result<T, ArmError> {
        if let Some(why) = &self.unread_body {
            return Err(ArmError::invalid_response(
                operation,
                format!("HTTP {} body could not be read: {why}", self.status),
            ));
        }
        serde_json::from_slice(&self.body).map_err(|e| {
            ArmError::invalid_response(
                operation,
                format!("HTTP {} body is not the expected JSON: {e}", self.status),
            )
        })
    }
}

struct Inner {
    http: reqwest::Client,
    cloud: Cloud,
    endpoint: Url,
    scope: String,
    throttle: Arc<Throttle>,
    retry: RetryPolicy,
    observer: Arc<dyn ArmObserver>,
    first: FirstConnection,
}

/// Until ARM has answered once, requests leave one at a time. A cold HTTP client opens a
/// connection for every request sent at once (only the handshake tells it that ARM speaks HTTP/2),
/// so a first burst of dispatches would pay a TLS handshake each; after one answer they all share
/// the connection it opened.
#[derive(Default)]
struct FirstConnection {
    open: std::sync::atomic::AtomicBool,
    line: tokio::sync::Mutex<()>,
}

/// How long a request waits for the first one to open the connection before it opens its own.
const FIRST_CONNECTION_WAIT: Duration = Duration::from_secs(5);

impl FirstConnection {
    /// Held while the first request is out; `None` once a connection is open.
    async fn wait(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        use std::sync::atomic::Ordering;
        if self.open.load(Ordering::Acquire) {
            return None;
        }
        let turn = tokio::time::timeout(FIRST_CONNECTION_WAIT, self.line.lock())
            .await
            .ok()?;
        (!self.open.load(Ordering::Acquire)).then_some(turn)
    }

    fn opened(&self) {
        self.open.store(true, std::sync::atomic::Ordering::Release);
    }
}

/// Cheap to clone; all clones share the HTTP connection pool and the token buckets.
#[derive(Clone)]
pub struct ArmClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ArmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArmClient")
            .field("endpoint", &self.inner.endpoint.as_str())
            .finish_non_exhaustive()
    }
}

impl ArmClient {
    pub fn new(config: &ArmClientConfig, observer: Arc<dyn ArmObserver>) -> Result<Self, ArmError> {
        let http = build_http_client(
            config.extra_ca_pem.as_deref(),
            config.connect_timeout,
            config.request_timeout,
        )?;
        Ok(Self::from_parts(
            http,
            &config.cloud,
            Throttle::new(config.throttle),
            config.retry,
            observer,
        ))
    }

    pub fn from_parts(
        http: reqwest::Client,
        cloud: &Cloud,
        throttle: Arc<Throttle>,
        retry: RetryPolicy,
        observer: Arc<dyn ArmObserver>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                http,
                cloud: cloud.clone(),
                endpoint: cloud.arm_endpoint(),
                scope: cloud.arm_scope(),
                throttle,
                retry,
                observer,
                first: FirstConnection::default(),
            }),
        }
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    pub fn cloud(&self) -> &Cloud {
        &self.inner.cloud
    }

    pub fn throttle(&self) -> &Arc<Throttle> {
        &self.inner.throttle
    }

    pub fn endpoint(&self) -> &Url {
        &self.inner.endpoint
    }

    /// The request URL. Absolute URLs must point at the ARM host (or a subdomain of it): the
    /// bearer token goes with them, so a forged `Location` must not send it elsewhere.
    fn url_for(&self, req: &ArmRequest) -> Result<Url, ArmError> {
        let mut url = match &req.target {
            Target::Path(path) => {
                if !path.starts_with('/') || path.starts_with("//") {
                    return Err(ArmError::Validation(format!(
                        "ARM path must start with a single '/': {path}"
                    )));
                }
                let base = self.inner.endpoint.as_str().trim_end_matches('/');
                Url::parse(&format!("{base}{path}"))
                    .map_err(|e| ArmError::Validation(format!("ARM path {path}: {e}")))?
            }
            Target::Url(url) => {
                let ep = &self.inner.endpoint;
                let host_ok = match (url.host_str(), ep.host_str()) {
                    (Some(h), Some(e)) => {
                        h.eq_ignore_ascii_case(e)
                            || h.to_ascii_lowercase().ends_with(&format!(".{e}"))
                    }
                    _ => false,
                };
                if url.scheme() != ep.scheme()
                    || !host_ok
                    || url.port_or_known_default() != ep.port_or_known_default()
                {
                    return Err(ArmError::invalid_response(
                        req.operation,
                        format!(
                            "polling URL host {:?} is not the ARM endpoint",
                            url.host_str()
                        ),
                    ));
                }
                url.clone()
            }
        };
        {
            let mut pairs = url.query_pairs_mut();
            if let Some(v) = &req.api_version {
                pairs.append_pair("api-version", v);
            }
            for (k, v) in &req.query {
                pairs.append_pair(k, v);
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        Ok(url)
    }

    /// Sends one ARM request with retries. `Ok` is any 2xx; everything else is an [`ArmError`].
    pub async fn send(&self, ctx: &CallContext, req: ArmRequest) -> Result<ArmResponse, ArmError> {
        let op = req.operation;
        let url = self.url_for(&req)?;
        let key = BucketKey {
            subscription: bucket_scope(&url, ctx),
            principal: ctx.principal.clone(),
            kind: if req.method == Method::GET || req.method == Method::HEAD {
                OpKind::Read
            } else {
                OpKind::Write
            },
        };
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            if !(attempt == 1 && req.prepaid) {
                // Authenticated before charged: a credential Entra refuses never spends the
                // budget of the principal it claims to be (the token is cached for the request).
                self.prepare(ctx, op).await?;
                self.take_budget(ctx, op, &key).await?;
            }
            let result = self.send_once(ctx, &req, &url).await;
            let err = match result {
                Ok(resp) => {
                    self.observe_remaining(&key, &resp.headers);
                    return Ok(resp);
                }
                Err(e) => e,
            };
            if err.api().is_some_and(|a| {
                a.status == 401 && a.code.as_deref() == Some("ExpiredAuthenticationToken")
            }) && let Some(forget) = &ctx.forget_credential
            {
                forget();
            }
            let delay = err
                .retry_after()
                .unwrap_or_else(|| self.inner.retry.backoff(attempt - 1, random_unit()));
            if err.is_throttled() {
                // Every caller of this bucket waits, not only this one.
                self.inner.observer.throttled(op);
                self.inner
                    .throttle
                    .pause_until(&key, lro::instant_after(Instant::now(), delay));
            }
            let retryable = if req.idempotent {
                err.is_retryable()
            } else {
                err.is_throttled() || matches!(err, ArmError::Connect { .. })
            };
            if !retryable || attempt >= self.inner.retry.max_attempts {
                return Err(err);
            }
            if lro::instant_after(Instant::now(), delay) > ctx.deadline {
                return Err(if err.may_have_been_processed() {
                    ArmError::Timeout {
                        operation: op,
                        last_error: Some(err.to_string()),
                    }
                } else {
                    ArmError::NotSent {
                        operation: op,
                        reason: format!("the last answer ({err}) asks to wait past the deadline"),
                    }
                });
            }
            tracing::warn!(
                operation = op,
                attempt,
                delay_ms = delay.as_millis() as u64,
                kind = err.metric_label(),
                status = err.status().unwrap_or_default(),
                request_id = err
                    .api()
                    .and_then(|a| a.request_id.as_deref())
                    .unwrap_or_default(),
                "retrying ARM request"
            );
            self.inner.observer.retry(op, delay);
            tokio::time::sleep(delay).await;
        }
    }

    /// Fetches the call's bearer token now (the credential caches it for the requests that follow),
    /// so that a caller fails before it records an intent to send rather than after.
    pub async fn prepare(
        &self,
        ctx: &CallContext,
        operation: &'static str,
    ) -> Result<(), ArmError> {
        let remaining = ctx.deadline.saturating_duration_since(Instant::now());
        tokio::time::timeout(
            remaining,
            get_token(ctx.credential.as_ref(), &self.inner.scope, operation),
        )
        .await
        .map_err(|_| ArmError::NotSent {
            operation,
            reason: "waiting for an Entra ID token".into(),
        })??;
        Ok(())
    }

    /// Takes one token of the (subscription, principal, `kind`) budget now, waiting up to the
    /// context's deadline. A caller that must record something between "budget granted" and
    /// "request sent" reserves first and sends with [`ArmRequest::prepaid`].
    pub async fn reserve(
        &self,
        ctx: &CallContext,
        operation: &'static str,
        kind: OpKind,
    ) -> Result<(), ArmError> {
        let key = BucketKey {
            subscription: ctx.subscription.to_ascii_lowercase(),
            principal: ctx.principal.clone(),
            kind,
        };
        // Authenticated before charged, as in `send`.
        self.prepare(ctx, operation).await?;
        self.take_budget(ctx, operation, &key).await
    }

    async fn take_budget(
        &self,
        ctx: &CallContext,
        op: &'static str,
        key: &BucketKey,
    ) -> Result<(), ArmError> {
        let waited = tokio::time::timeout_at(
            ctx.deadline,
            self.inner
                .throttle
                .acquire_in_order(key, &ctx.party, ctx.order.clone()),
        )
        .await
        .map_err(|_| ArmError::NotSent {
            operation: op,
            reason: "waiting for the client-side ARM request budget".into(),
        })?;
        if !waited.is_zero() {
            self.inner.observer.throttle_wait(op, waited);
        }
        Ok(())
    }

    /// Corrects the bucket by what ARM reports still remains, for this principal and for the
    /// subscription as a whole (the subscription-global limit, shared by every principal).
    fn observe_remaining(&self, key: &BucketKey, headers: &reqwest::header::HeaderMap) {
        let kind = match key.kind {
            OpKind::Read => "reads",
            OpKind::Write => "writes",
        };
        let scope = if key.subscription == TENANT_SCOPE {
            "tenant"
        } else {
            "subscription"
        };
        for name in [
            format!("x-ms-ratelimit-remaining-{scope}-{kind}"),
            format!("x-ms-ratelimit-remaining-{scope}-global-{kind}"),
        ] {
            let remaining = headers
                .get(name.as_str())
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok());
            if let Some(remaining) = remaining {
                self.inner.throttle.observe_remaining(key, remaining);
            }
        }
    }

    async fn send_once(
        &self,
        ctx: &CallContext,
        req: &ArmRequest,
        url: &Url,
    ) -> Result<ArmResponse, ArmError> {
        let op = req.operation;
        let remaining = ctx.deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(ArmError::NotSent {
                operation: op,
                reason: "the deadline had passed".into(),
            });
        }
        let token = tokio::time::timeout(
            remaining,
            get_token(ctx.credential.as_ref(), &self.inner.scope, op),
        )
        .await
        .map_err(|_| ArmError::NotSent {
            operation: op,
            reason: "waiting for an Entra ID token".into(),
        })??;
        let mut auth =
            HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
                ArmError::Auth {
                    operation: op,
                    message: "token is not a valid header value".into(),
                }
            })?;
        auth.set_sensitive(true);
        let client_request_id = uuid::Uuid::new_v4().to_string();
        let mut builder = self
            .inner
            .http
            .request(req.method.clone(), url.clone())
            .timeout(remaining)
            .header(AUTHORIZATION, auth)
            .header("x-ms-client-request-id", &client_request_id)
            .header("x-ms-correlation-request-id", &ctx.correlation_id)
            .header("accept", "application/json");
        builder = match &req.body {
            Some(body) => builder
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_string()),
            None if req.method == Method::POST || req.method == Method::PUT => builder.body(""),
            None => builder,
        };
        let first = self.inner.first.wait().await;
        // Checked last, after every wait of this attempt (budget, token, backoff).
        if ctx.fence.as_ref().is_some_and(|holds| !holds()) {
            return Err(ArmError::Fenced { operation: op });
        }
        let sent = builder.send().await;
        if sent.is_ok() {
            self.inner.first.opened();
        }
        drop(first);
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                self.inner.observer.response(op, None);
                if e.is_timeout() && Instant::now() >= ctx.deadline {
                    return Err(ArmError::Timeout {
                        operation: op,
                        last_error: Some("request timed out".into()),
                    });
                }
                let connect = e.is_connect();
                let message = e.without_url().to_string();
                return Err(if connect {
                    ArmError::Connect {
                        operation: op,
                        message,
                    }
                } else {
                    ArmError::Transport {
                        operation: op,
                        message,
                    }
                });
            }
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let request_id = headers
            .get("x-ms-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let accepted = (200..300).contains(&status);
        let (body, unread_body) = match read_body(response, op).await {
            Ok(body) => (body, None),
            // A 2xx to a request that must not run twice is ARM's acceptance, readable or not:
            // the caller recovers what the headers tell and never sends it again.
            Err(e) if accepted && !req.idempotent => {
                tracing::warn!(operation = op, status, error = %e, "ARM accepted the request; its body could not be read");
                (Bytes::new(), Some(e.to_string()))
            }
            Err(e) => {
                self.inner.observer.response(op, None);
                return Err(e);
            }
        };
        self.inner.observer.response(op, Some(status));
        tracing::debug!(
            operation = op,
            status,
            request_id = request_id.as_deref().unwrap_or(""),
            client_request_id,
            correlation_id = ctx.correlation_id,
            "ARM response"
        );
        if accepted {
            return Ok(ArmResponse {
                status,
                headers,
                body,
                url: url.clone(),
                request_id,
                unread_body,
            });
        }
        let (code, message, target) = parse_error_body(&body);
        let retry_after = lro::retry_after(&headers, SystemTime::now()).ok().flatten();
        tracing::info!(
            operation = op,
            status,
            code = code.as_deref().unwrap_or(""),
            request_id = request_id.as_deref().unwrap_or(""),
            "ARM error response"
        );
        Err(ArmError::Api(Box::new(ApiError {
            operation: op,
            status,
            code,
            message,
            target,
            request_id,
            retry_after,
        })))
    }
}

/// Which ARM budget a request draws on: its URL's subscription, or the tenant's for a
/// tenant-level URL (e.g. the HybridContainerService operation status under
/// `/providers/…/locations/…`), which ARM counts apart from any subscription.
fn bucket_scope(url: &Url, ctx: &CallContext) -> String {
    let mut segments = url.path_segments().into_iter().flatten();
    match (segments.next(), segments.next()) {
        (Some(s), Some(id)) if s.eq_ignore_ascii_case("subscriptions") && !id.is_empty() => {
            id.to_ascii_lowercase()
        }
        (Some(s), _) if s.eq_ignore_ascii_case("providers") => TENANT_SCOPE.to_string(),
        _ => ctx.subscription.to_ascii_lowercase(),
    }
}

/// The budget key of tenant-level requests (no subscription in the path).
pub const TENANT_SCOPE: &str = "(tenant)";

/// Reads JSON and insists on a JSON content type when the server states one.
pub fn expect_json<T: DeserializeOwned>(
    resp: &ArmResponse,
    operation: &'static str,
) -> Result<T, ArmError> {
    if let Some(ct) = resp.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok())
        && !ct.to_ascii_lowercase().contains("json")
    {
        // A 2xx body may carry credentials (an exec session's password, a kubeconfig): quoted
        // only when it is an error page.
        let shown = if (200..300).contains(&resp.status) {
            format!("{} bytes", resp.body.len())
        } else {
            snippet(&resp.body)
        };
        return Err(ArmError::invalid_response(
            operation,
            format!("content-type {ct} instead of JSON: {shown}"),
        ));
    }
    resp.json(operation)
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
