//! Prometheus metrics: reconciles and their outcomes per controller and reason, reconcile
//! duration, ARM requests by operation and status, throttling (429s, waits), commands by phase, the
//! fill of the client-side ARM token buckets, KubeconfigExports by readiness and expiry, and the
//! build. README ("Operate") lists them; a test below keeps that list, the alert rules and the
//! dashboard in step with the code.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::azure::client::ArmObserver;
use crate::azure::throttle::{BucketLevel, OpKind};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabels {
    controller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    controller: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ArmLabels {
    operation: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: String,
}

/// Buckets are per (subscription, principal) and tenants choose both: the metrics aggregate them
/// by kind (reads | writes) only, so no tenant-chosen value or client id becomes a label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BucketLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExportStateLabels {
    ready: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WindowLabels {
    within: String,
}

type Seconds = Counter<f64, AtomicU64>;

/// The windows of `kubeinvoke_kubeconfig_exports_expiring`, as label and seconds.
pub const EXPIRY_WINDOWS: [(&str, i64); 3] = [("1h", 3600), ("24h", 86_400), ("7d", 604_800)];

/// The gauges read from the caches at scrape time.
#[derive(Debug, Default, Clone)]
pub struct StateGauges {
    /// RemoteCommands by phase.
    pub phases: Vec<(String, i64)>,
    /// Fill of the client-side ARM buckets.
    pub buckets: Vec<BucketLevel>,
    pub exports: ExportGauges,
}

/// KubeconfigExports counted by state: labels take values from fixed sets only (condition
/// statuses, the operator's reasons, [`EXPIRY_WINDOWS`]), never a name a tenant chose.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ExportGauges {
    /// By (`Ready` condition status, `status.reason`).
    pub by_state: BTreeMap<(String, String), i64>,
    /// Exports whose credentials have expired.
    pub expired: i64,
    /// Per entry of [`EXPIRY_WINDOWS`]: exports whose credentials stop working within it (the
    /// expired ones included).
    pub expiring: [i64; EXPIRY_WINDOWS.len()],
}

impl ExportGauges {
    /// Counts one export: its `Ready` status and reason (already reduced to known values) and how
    /// many seconds its credentials have left, when known.
    pub fn count(&mut self, ready: &str, reason: &str, seconds_left: Option<i64>) {
        *self
            .by_state
            .entry((ready.to_string(), reason.to_string()))
            .or_default() += 1;
        let Some(left) = seconds_left else {
            return;
        };
        if left <= 0 {
            self.expired += 1;
        }
        for (n, (_, window)) in self.expiring.iter_mut().zip(EXPIRY_WINDOWS) {
            if left < window {
                *n += 1;
            }
        }
    }
}

pub struct Metrics {
    registry: Registry,
    reconciles: Family<ControllerLabels, Counter>,
    reconcile_errors: Family<ReasonLabels, Counter>,
    outcomes: Family<ReasonLabels, Counter>,
    reconcile_duration: Family<ControllerLabels, Histogram>,
    arm_requests: Family<ArmLabels, Counter>,
    arm_throttled: Family<OperationLabels, Counter>,
    arm_throttle_wait: Family<OperationLabels, Seconds>,
    arm_retries: Family<OperationLabels, Counter>,
    commands: Family<PhaseLabels, Gauge>,
    bucket_tokens: Family<BucketLabels, Gauge<f64, AtomicU64>>,
    buckets: Family<BucketLabels, Gauge>,
    buckets_paused: Family<BucketLabels, Gauge>,
    leader: Gauge,
    exports: Family<ExportStateLabels, Gauge>,
    exports_expired: Gauge,
    exports_expiring: Family<WindowLabels, Gauge>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("kubeinvoke");
        let m = Self {
            reconciles: Family::default(),
            reconcile_errors: Family::default(),
            outcomes: Family::default(),
            reconcile_duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 16))
            }),
            arm_requests: Family::default(),
            arm_throttled: Family::default(),
            arm_throttle_wait: Family::default(),
            arm_retries: Family::default(),
            commands: Family::default(),
            bucket_tokens: Family::default(),
            buckets: Family::default(),
            buckets_paused: Family::default(),
            leader: Gauge::default(),
            exports: Family::default(),
            exports_expired: Gauge::default(),
            exports_expiring: Family::default(),
            registry: Registry::default(),
        };
        let build: Family<Vec<(String, String)>, Gauge> = Family::default();
        build.get_or_create(&build_labels()).set(1);
        registry.register(
            "build_info",
            "1, labelled with the version (and the git revision when the build was given one)",
            build,
        );
        registry.register(
            "reconciles",
            "Reconciles, by controller",
            m.reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconciles that failed and were retried, by controller and reason",
            m.reconcile_errors.clone(),
        );
        registry.register(
            "outcomes",
            "Runs and exports that ended, by controller and status reason",
            m.outcomes.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of one reconcile",
            m.reconcile_duration.clone(),
        );
        registry.register(
            "arm_requests",
            "ARM and Entra ID HTTP exchanges, by operation and status code (none = no response)",
            m.arm_requests.clone(),
        );
        registry.register(
            "arm_throttled",
            "ARM 429 answers, by operation",
            m.arm_throttled.clone(),
        );
        registry.register(
            "arm_throttle_wait_seconds",
            "Time spent waiting for the client-side ARM token bucket",
            m.arm_throttle_wait.clone(),
        );
        registry.register(
            "arm_retries",
            "ARM requests sent again after a retryable failure",
            m.arm_retries.clone(),
        );
        registry.register(
            "remote_commands",
            "RemoteCommands watched, by phase (Running = in flight)",
            m.commands.clone(),
        );
        registry.register(
            "arm_bucket_tokens",
            "Fewest tokens left in any client-side ARM bucket (subscription, principal) of this kind",
            m.bucket_tokens.clone(),
        );
        registry.register(
            "arm_buckets",
            "Client-side ARM buckets in use (idle full buckets are dropped)",
            m.buckets.clone(),
        );
        registry.register(
            "arm_buckets_paused",
            "Client-side ARM buckets paused by a 429 Retry-After",
            m.buckets_paused.clone(),
        );
        registry.register(
            "leader",
            "1 when this instance holds the leader Lease (or runs without leader election)",
            m.leader.clone(),
        );
        registry.register(
            "kubeconfig_exports",
            "KubeconfigExports watched, by Ready condition status and status reason",
            m.exports.clone(),
        );
        registry.register(
            "kubeconfig_exports_expired",
            "KubeconfigExports whose exported credentials have expired (status.expiresAt passed)",
            m.exports_expired.clone(),
        );
        registry.register(
            "kubeconfig_exports_expiring",
            "KubeconfigExports whose exported credentials expire within the window (expired included)",
            m.exports_expiring.clone(),
        );
        Self { registry, ..m }
    }

    /// One reconcile finished; `error_reason` is set when it failed.
    pub fn reconciled(&self, controller: &str, duration: Duration, error_reason: Option<&str>) {
        let c = ControllerLabels {
            controller: controller.to_string(),
        };
        self.reconciles.get_or_create(&c).inc();
        self.reconcile_duration
            .get_or_create(&c)
            .observe(duration.as_secs_f64());
        if let Some(reason) = error_reason {
            self.reconcile_errors
                .get_or_create(&ReasonLabels {
                    controller: controller.to_string(),
                    reason: reason.to_string(),
                })
                .inc();
        }
    }

    /// A run or export reached a terminal or steady state with `reason`.
    pub fn outcome(&self, controller: &str, reason: &str) {
        self.outcomes
            .get_or_create(&ReasonLabels {
                controller: controller.to_string(),
                reason: reason.to_string(),
            })
            .inc();
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// Refreshes the gauges read from state (commands by phase, bucket fill, exports) and encodes
    /// all.
    pub fn render(&self, state: &StateGauges) -> String {
        let (phases, buckets) = (&state.phases, &state.buckets);
        self.commands.clear();
        for (phase, n) in phases {
            self.commands
                .get_or_create(&PhaseLabels {
                    phase: phase.clone(),
                })
                .set(*n);
        }
        for kind in [OpKind::Read, OpKind::Write] {
            let of_kind: Vec<&BucketLevel> =
                buckets.iter().filter(|l| l.key.kind == kind).collect();
            let labels = BucketLabels {
                kind: kind.as_str().to_string(),
            };
            self.buckets
                .get_or_create(&labels)
                .set(of_kind.len() as i64);
            self.buckets_paused
                .get_or_create(&labels)
                .set(of_kind.iter().filter(|l| l.paused).count() as i64);
            if let Some(min) = of_kind.iter().map(|l| l.tokens).reduce(f64::min) {
                self.bucket_tokens.get_or_create(&labels).set(min);
            }
        }
        self.exports.clear();
        for ((ready, reason), n) in &state.exports.by_state {
            self.exports
                .get_or_create(&ExportStateLabels {
                    ready: ready.clone(),
                    reason: reason.clone(),
                })
                .set(*n);
        }
        self.exports_expired.set(state.exports.expired);
        for ((within, _), n) in EXPIRY_WINDOWS.iter().zip(state.exports.expiring) {
            self.exports_expiring
                .get_or_create(&WindowLabels {
                    within: within.to_string(),
                })
                .set(n);
        }
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "could not encode metrics");
        }
        out
    }
}

/// `version`, and `revision` when the build environment set `KUBEINVOKE_GIT_REVISION` (a source
/// tarball has no git history to ask, so the build never requires one).
fn build_labels() -> Vec<(String, String)> {
    let mut labels = vec![("version".to_string(), env!("CARGO_PKG_VERSION").to_string())];
    if let Some(revision) = option_env!("KUBEINVOKE_GIT_REVISION").filter(|r| !r.is_empty()) {
        labels.push(("revision".to_string(), revision.to_string()));
    }
    labels
}

impl ArmObserver for Metrics {
    fn response(&self, operation: &'static str, status: Option<u16>) {
        let status = status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "none".to_string());
        self.arm_requests
            .get_or_create(&ArmLabels {
                operation: operation.to_string(),
                status,
            })
            .inc();
    }
    fn throttled(&self, operation: &'static str) {
        self.arm_throttled
            .get_or_create(&OperationLabels {
                operation: operation.to_string(),
            })
            .inc();
    }
    fn throttle_wait(&self, operation: &'static str, waited: Duration) {
        self.arm_throttle_wait
            .get_or_create(&OperationLabels {
                operation: operation.to_string(),
            })
            .inc_by(waited.as_secs_f64());
    }
    fn retry(&self, operation: &'static str, _delay: Duration) {
        self.arm_retries
            .get_or_create(&OperationLabels {
                operation: operation.to_string(),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_named_series() {
        let m = Metrics::new();
        m.reconciled("remote_command", Duration::from_millis(3), None);
        m.reconciled("remote_command", Duration::from_millis(3), Some("Retrying"));
        m.outcome("remote_command", "Completed");
        m.response("ManagedClusters_RunCommand", Some(202));
        m.throttled("ManagedClusters_GetCommandResult");
        m.throttle_wait("ManagedClusters_RunCommand", Duration::from_millis(500));
        m.set_leader(true);
        let mut exports = ExportGauges::default();
        exports.count("True", "Exported", Some(7200));
        exports.count("False", "Forbidden", Some(-5));
        exports.count("Unknown", "None", None);
        let state = StateGauges {
            phases: vec![("Running".into(), 3)],
            exports,
            ..Default::default()
        };
        let text = m.render(&state);
        for series in [
            "kubeinvoke_reconciles_total{controller=\"remote_command\"} 2",
            "kubeinvoke_reconcile_errors_total{controller=\"remote_command\",reason=\"Retrying\"} 1",
            "kubeinvoke_outcomes_total{controller=\"remote_command\",reason=\"Completed\"} 1",
            "kubeinvoke_arm_requests_total{operation=\"ManagedClusters_RunCommand\",status=\"202\"} 1",
            "kubeinvoke_arm_throttled_total{operation=\"ManagedClusters_GetCommandResult\"} 1",
            "kubeinvoke_arm_throttle_wait_seconds_total{operation=\"ManagedClusters_RunCommand\"} 0.5",
            "kubeinvoke_remote_commands{phase=\"Running\"} 3",
            "kubeinvoke_leader 1",
            "kubeinvoke_reconcile_duration_seconds_bucket",
            "kubeinvoke_kubeconfig_exports{ready=\"True\",reason=\"Exported\"} 1",
            "kubeinvoke_kubeconfig_exports{ready=\"False\",reason=\"Forbidden\"} 1",
            "kubeinvoke_kubeconfig_exports_expired 1",
            "kubeinvoke_kubeconfig_exports_expiring{within=\"1h\"} 1",
            "kubeinvoke_kubeconfig_exports_expiring{within=\"24h\"} 2",
            "kubeinvoke_kubeconfig_exports_expiring{within=\"7d\"} 2",
            &format!(
                "kubeinvoke_build_info{{version=\"{}\"",
                env!("CARGO_PKG_VERSION")
            ),
        ] {
            assert!(text.contains(series), "missing {series} in:\n{text}");
        }
    }

    /// An export that leaves a state leaves its series: the gauges are counts of what the caches
    /// hold now, not of everything ever seen.
    #[test]
    fn export_states_no_longer_held_disappear() {
        let m = Metrics::new();
        let mut before = ExportGauges::default();
        before.count("False", "Refreshing", None);
        let state = |exports| StateGauges {
            exports,
            ..Default::default()
        };
        assert!(m.render(&state(before)).contains("reason=\"Refreshing\""));
        let mut after = ExportGauges::default();
        after.count("True", "Exported", None);
        let text = m.render(&state(after));
        assert!(!text.contains("reason=\"Refreshing\""), "{text}");
        assert!(
            text.contains("kubeinvoke_kubeconfig_exports_expired 0"),
            "{text}"
        );
    }
}

#[cfg(test)]
#[path = "metrics_catalog_tests.rs"]
mod catalog_tests;
