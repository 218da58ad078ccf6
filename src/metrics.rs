//! Prometheus metrics: reconciles and their outcomes per controller and reason, reconcile
//! duration, ARM requests by operation and status, throttling (429s, waits), commands by phase and
//! the fill of the client-side ARM token buckets.

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

type Seconds = Counter<f64, AtomicU64>;

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
            registry: Registry::default(),
        };
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

    /// Refreshes the gauges read from state (commands by phase, bucket fill) and encodes all.
    pub fn render(&self, phases: &[(String, i64)], buckets: &[BucketLevel]) -> String {
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
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "could not encode metrics");
        }
        out
    }
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
        let text = m.render(&[("Running".into(), 3)], &[]);
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
        ] {
            assert!(text.contains(series), "missing {series} in:\n{text}");
        }
    }
}
