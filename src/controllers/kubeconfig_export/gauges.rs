//! KubeconfigExports in the cache counted for the metrics: by `Ready` and reason, and by how long
//! their exported credentials have left.

use k8s_openapi::jiff::Timestamp;

use crate::api::kubeconfig_export::KubeconfigExport;
use crate::controllers::conditions::{self, READY};
use crate::controllers::reason::Reason;
use crate::metrics::ExportGauges;

/// Counts `exports` as of `now`. Labels come from fixed sets: a `Ready` status other than
/// `True`/`False` is `Unknown`, a reason the operator does not write (someone else patched the
/// status) is `Unknown`, and an export without a reason yet is `None`.
pub fn count<'a>(
    exports: impl IntoIterator<Item = impl AsRef<KubeconfigExport> + 'a>,
    now: Timestamp,
) -> ExportGauges {
    let mut gauges = ExportGauges::default();
    for kcx in exports {
        let status = kcx.as_ref().status.as_ref();
        let ready = match status.and_then(|s| conditions::status_of(&s.conditions, READY)) {
            Some("True") => "True",
            Some("False") => "False",
            _ => "Unknown",
        };
        let reason = match status.and_then(|s| s.reason.as_deref()) {
            None => "None",
            Some(r) => Reason::ALL
                .iter()
                .map(|known| known.as_str())
                .find(|known| *known == r)
                .unwrap_or("Unknown"),
        };
        let seconds_left = status
            .and_then(|s| s.expires_at.as_ref())
            .map(|t| t.0.duration_since(now).as_secs());
        gauges.count(ready, reason, seconds_left);
    }
    gauges
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;

    fn export(status: serde_json::Value) -> Arc<KubeconfigExport> {
        Arc::new(
            serde_json::from_value(json!({
                "apiVersion": "kubeinvoke.io/v1alpha1", "kind": "KubeconfigExport",
                "metadata": {"name": "x", "namespace": "tenant-chosen-name"},
                "spec": {"source": {"aks": {"resourceId": "/subscriptions/s/resourceGroups/r/providers/Microsoft.ContainerService/managedClusters/c"}},
                         "secret": {"name": "tenant-secret"}},
                "status": status,
            }))
            .unwrap(),
        )
    }

    #[test]
    fn counts_by_readiness_reason_and_time_left() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let ready = |status: &str| json!([{"type": "Ready", "status": status, "reason": "x", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]);
        let exports = [
            export(
                json!({"observedGeneration": 1, "reason": "Exported", "expiresAt": "2026-01-01T00:30:00Z", "conditions": ready("True")}),
            ),
            export(
                json!({"observedGeneration": 1, "reason": "Exported", "expiresAt": "2026-01-03T00:00:00Z", "conditions": ready("True")}),
            ),
            export(
                json!({"observedGeneration": 1, "reason": "Forbidden", "expiresAt": "2025-12-31T23:00:00Z", "conditions": ready("False")}),
            ),
            export(
                json!({"observedGeneration": 1, "reason": "made up by someone", "conditions": ready("Maybe")}),
            ),
            export(serde_json::Value::Null),
        ];
        let got = count(exports.iter(), now);
        let state = |ready: &str, reason: &str| got.by_state.get(&(ready.into(), reason.into()));
        assert_eq!(state("True", "Exported"), Some(&2));
        assert_eq!(state("False", "Forbidden"), Some(&1));
        assert_eq!(state("Unknown", "Unknown"), Some(&1));
        assert_eq!(state("Unknown", "None"), Some(&1));
        assert_eq!(got.by_state.len(), 4);
        assert_eq!(got.expired, 1);
        // 1h: the expired one and the one with 30 minutes left; 24h: the same; 7d: all three.
        assert_eq!(got.expiring, [2, 2, 3]);
    }
}
