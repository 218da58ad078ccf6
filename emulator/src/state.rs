//! Shared emulator state: settings, the current world, issued tokens, running work and statistics.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::faults::{Buckets, Budgets, FaultConfig, SplitMix};
use crate::world::World;

/// Fixed settings decided at start-up.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `https://127.0.0.1:PORT` (no trailing slash).
    pub base_url: String,
    /// Default `Retry-After` when no fault entry sets one.
    pub retry_after: crate::retry_after::RetryAfter,
    pub token_lifetime: u64,
    /// The emulator CA (PEM); the default `certificate-authority-data` of kubeconfigs.
    pub ca_pem: String,
    /// How long an unused ACI exec session stays valid.
    pub exec_session_ttl: Duration,
    /// Cap of run command logs in bytes.
    pub log_cap: usize,
    /// Accepted HybridContainerService api-versions.
    pub hybrid_api_versions: Vec<String>,
    /// ACI exec: bytes of one input message beyond this are dropped.
    pub aci_input_limit: usize,
    /// ACI exec: sessions are cut after this long (`None`: never).
    pub aci_session_cap: Option<Duration>,
    /// ACI exec: a session silent from the client's side this long loses its TCP connection
    /// without a close frame (`None`: never).
    pub aci_idle_drop: Option<Duration>,
    /// `wss://{exec host}:{exec port}`: where exec websockets are, as ACI hands out a host and
    /// port of its own (no trailing slash).
    pub exec_base: String,
    /// api-versions served for managedClusters / containerGroups; empty: any well-formed one.
    pub aks_api_versions: Vec<String>,
    pub aci_api_versions: Vec<String>,
}

/// What an issued access token stands for. The token value itself is only the map key.
#[derive(Debug, Clone)]
pub struct TokenInfo {
    pub client_id: String,
    pub object_id: String,
    pub tenant_id: String,
    pub audience: Audience,
    pub expires_at: std::time::SystemTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    Arm,
    AksServer,
}

pub struct AppState {
    pub settings: Settings,
    pub world: RwLock<Arc<World>>,
    pub faults: RwLock<FaultConfig>,
    pub budgets: RwLock<Budgets>,
    pub rng: Mutex<SplitMix>,
    pub tokens: Mutex<HashMap<String, TokenInfo>>,
    pub buckets: Mutex<Buckets>,
    pub commands: Mutex<HashMap<String, crate::arm::runner::CommandRecord>>,
    /// runCommand attempts per cluster (lower-cased resource id), for `failFirst`.
    pub run_attempts: Mutex<HashMap<String, u32>>,
    pub hybrid_ops: Mutex<HashMap<String, crate::arm::hybrid::HybridOp>>,
    pub exec_sessions: Mutex<HashMap<String, crate::aci_ws::ExecSession>>,
    pub stats: Mutex<Stats>,
    pub started: std::time::SystemTime,
    /// When the current world began: the emulator's start, or the last `PUT /_emulator/world`.
    /// Windows such as `notReplicatedForSeconds` count from here.
    pub world_since: RwLock<Instant>,
}

pub type Shared = Arc<AppState>;

impl AppState {
    pub fn world(&self) -> Arc<World> {
        self.world.read().expect("world lock").clone()
    }

    pub fn faults(&self) -> FaultConfig {
        self.faults.read().expect("faults lock").clone()
    }

    pub fn budgets(&self) -> Budgets {
        self.budgets.read().expect("budgets lock").clone()
    }

    pub fn stats(&self) -> std::sync::MutexGuard<'_, Stats> {
        self.stats.lock().expect("stats lock")
    }

    pub fn retry_after_for(&self, op: &str) -> crate::retry_after::RetryAfter {
        crate::faults::effective(&self.faults(), op)
            .retry_after
            .unwrap_or_else(|| self.settings.retry_after.clone())
    }

    /// Whether `seconds` since the current world began have not passed yet.
    pub fn within_world_window(&self, seconds: Option<f64>) -> bool {
        let since = *self.world_since.read().expect("world clock lock");
        seconds.is_some_and(|s| since.elapsed().as_secs_f64() < s)
    }
}

/// One line of the request log. Never holds token values or request bodies.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogEntry {
    pub time: String,
    pub method: String,
    pub path: String,
    pub operation: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// HTTP status; 0 when the connection was dropped without a response.
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_request_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

const LOG_LIMIT: usize = 20_000;

#[derive(Default)]
pub struct Stats {
    pub log: Vec<LogEntry>,
    pub requests: BTreeMap<String, u64>,
    pub status: BTreeMap<String, BTreeMap<String, u64>>,
    pub throttled429: u64,
    pub injected_faults: u64,
    pub early_requests: u64,
    pub early_by_op: BTreeMap<String, u64>,
    pub dispatches: BTreeMap<String, u64>,
    /// The most AKS run commands whose result was not out yet (`commandDuration`) at one time.
    pub commands_running_peak: u64,
    pub exec_sessions: BTreeMap<String, u64>,
    /// TLS handshakes completed on the ARM port, and how many of those connections speak HTTP/2:
    /// a client that reuses its connections makes few, whatever its number of requests.
    pub tls_handshakes: u64,
    pub http2_connections: u64,
    /// (when the 429 was answered, the not-before it promised), per (throttle scope, principal).
    pub throttle_not_before: HashMap<(String, String), (Instant, Instant)>,
    /// Not-before instants promised by a 202 Retry-After, per (principal, lower-cased path).
    pub poll_not_before: HashMap<(String, String), Instant>,
}

impl Stats {
    pub fn record(&mut self, entry: LogEntry) {
        *self.requests.entry(entry.operation.clone()).or_default() += 1;
        let key = if entry.status == 0 {
            "dropped".to_string()
        } else {
            entry.status.to_string()
        };
        *self
            .status
            .entry(entry.operation.clone())
            .or_default()
            .entry(key)
            .or_default() += 1;
        if self.log.len() >= LOG_LIMIT {
            self.log.remove(0);
        }
        self.log.push(entry);
    }

    pub fn connection(&mut self, http2: bool) {
        self.tls_handshakes += 1;
        self.http2_connections += u64::from(http2);
    }

    pub fn early(&mut self, op: &str) {
        self.early_requests += 1;
        *self.early_by_op.entry(op.to_string()).or_default() += 1;
    }

    pub fn reset(&mut self) {
        *self = Stats::default();
    }

    pub fn counters_json(&self) -> serde_json::Value {
        serde_json::json!({
            "requests": self.requests,
            "status": self.status,
            "throttled429": self.throttled429,
            "injectedFaults": self.injected_faults,
            "earlyRequests": self.early_requests,
            "earlyRequestsByOp": self.early_by_op,
            "dispatches": self.dispatches,
            "commandsRunningPeak": self.commands_running_peak,
            "execSessions": self.exec_sessions,
            "tlsHandshakes": self.tls_handshakes,
            "http2Connections": self.http2_connections,
        })
    }
}

/// RFC 3339 UTC timestamp with second precision, like ARM's.
pub fn rfc3339(t: std::time::SystemTime) -> String {
    let dt = time::OffsetDateTime::from(t);
    dt.replace_nanosecond(0)
        .unwrap_or(dt)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// RFC 3339 UTC timestamp with nanoseconds (container log style).
pub fn rfc3339_nanos(t: std::time::SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// 128 random bits as 32 lowercase hex characters.
pub fn random_hex() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// An opaque random token value (256 bits).
pub fn random_token() -> String {
    format!("{}{}", random_hex(), random_hex())
}
