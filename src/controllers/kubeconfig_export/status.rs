//! Pure status computation for KubeconfigExport: when a fetch is due, the status of each step, the
//! retry backoff and the note of an `Exported` Event.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::api::kubeconfig_export::{KubeconfigExport, KubeconfigExportStatus};
use crate::controllers::conditions::{self, Health, READY, RECONCILING};
use crate::controllers::reason::{Failure, Reason};

/// Shortest and longest wait before a transient failure is tried again.
const MIN_RETRY: Duration = Duration::from_secs(5);
const MAX_RETRY: Duration = Duration::from_secs(300);

/// What one successful fetch produced, as the status shows it (no content).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    pub secret_name: String,
    pub server: String,
    pub credential_name: String,
    pub content_hash: String,
    pub expires_at: Option<Timestamp>,
    /// When the next fetch is due.
    pub next_refresh: Timestamp,
}

fn generation(kcx: &KubeconfigExport) -> i64 {
    kcx.metadata.generation.unwrap_or_default()
}

fn current(kcx: &KubeconfigExport) -> KubeconfigExportStatus {
    kcx.status.clone().unwrap_or_default()
}

fn add(now: Timestamp, d: Duration) -> Timestamp {
    let d = SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX);
    now.saturating_add(d).unwrap_or(Timestamp::MAX)
}

/// Whether the kubeconfig must be fetched now: the spec changed since the last fetch, none is
/// scheduled, or the scheduled time has come.
pub fn needs_fetch(kcx: &KubeconfigExport, now: Timestamp) -> bool {
    let Some(status) = kcx.status.as_ref() else {
        return true;
    };
    if status.observed_generation != generation(kcx) {
        return true;
    }
    match &status.next_refresh_time {
        Some(next) => now >= next.0,
        None => true,
    }
}

/// How long until the scheduled fetch (zero when it is due).
pub fn until_next(kcx: &KubeconfigExport, now: Timestamp) -> Duration {
    kcx.status
        .as_ref()
        .and_then(|s| s.next_refresh_time.as_ref())
        .map(|next| Duration::try_from(next.0.duration_since(now)).unwrap_or(Duration::ZERO))
        .unwrap_or(Duration::ZERO)
}

/// Whether the export is Ready for its current spec (a refresh then only renews it).
pub fn is_ready_for_this_generation(kcx: &KubeconfigExport) -> bool {
    let s = current(kcx);
    s.observed_generation == generation(kcx)
        && conditions::status_of(&s.conditions, READY) == Some("True")
}

/// The status while a fetch is under way. A refresh of an export that is `Ready` for this
/// generation keeps `Ready=True` (the Secret in place still works) and only adds
/// `Reconciling=True`; anything else is `Progressing`.
pub fn refreshing(kcx: &KubeconfigExport, now: Timestamp) -> KubeconfigExportStatus {
    let now_time = Time(now);
    let ready_now = is_ready_for_this_generation(kcx);
    let mut s = current(kcx);
    s.observed_generation = generation(kcx);
    s.reason = Some(Reason::Refreshing.to_string());
    if ready_now {
        let message = "fetching the kubeconfig again through ARM";
        s.message = Some(message.to_string());
        conditions::set(
            &mut s.conditions,
            RECONCILING,
            "True",
            Reason::Refreshing.as_str(),
            message,
            generation(kcx),
            &now_time,
        );
    } else {
        let message = "fetching the kubeconfig through ARM";
        s.message = Some(message.to_string());
        conditions::apply(
            &mut s.conditions,
            Health::Progressing,
            Reason::Refreshing.as_str(),
            message,
            generation(kcx),
            &now_time,
        );
    }
    s
}

/// The status after a successful fetch (whether or not the Secret had to be written).
pub fn exported(
    base: KubeconfigExportStatus,
    generation: i64,
    export: &Export,
    now: Timestamp,
) -> KubeconfigExportStatus {
    let mut s = base;
    s.observed_generation = generation;
    s.secret_name = Some(export.secret_name.clone());
    s.server = Some(export.server.clone());
    // ARM's names are bounded and cleaned like every message (the server is checked when parsed).
    s.credential_name = Some(crate::text::clean(&export.credential_name, 253));
    s.content_hash = Some(export.content_hash.clone());
    s.last_refresh_time = Some(Time(now));
    s.next_refresh_time = Some(Time(export.next_refresh));
    s.expires_at = export.expires_at.map(Time);
    let message = format!(
        "kubeconfig {:?} for {} is in Secret {}; next refresh at {}",
        export.credential_name, export.server, export.secret_name, export.next_refresh
    );
    s.reason = Some(Reason::Exported.to_string());
    conditions::apply(
        &mut s.conditions,
        Health::Ready,
        Reason::Exported.as_str(),
        &message,
        generation,
        &Time(now),
    );
    s.message = Some(crate::text::clean(&message, 1024));
    s
}

/// The status after a failed fetch; the last good export's fields (`contentHash`, `secretName`,
/// `server`, `expiresAt`, `lastRefreshTime`) stay as they were. `retry_at` is when the next fetch
/// is due: soon for a transient failure, a refresh interval away for a terminal one.
pub fn failed(
    base: KubeconfigExportStatus,
    generation: i64,
    failure: &Failure,
    retry_at: Timestamp,
    now: Timestamp,
) -> KubeconfigExportStatus {
    let mut s = base;
    s.observed_generation = generation;
    s.next_refresh_time = Some(Time(retry_at));
    s.reason = Some(failure.reason.to_string());
    s.message = Some(crate::text::clean(&failure.message, 1024));
    let health = if failure.transient {
        Health::Progressing
    } else {
        Health::Stalled
    };
    conditions::apply(
        &mut s.conditions,
        health,
        failure.reason.as_str(),
        &failure.message,
        generation,
        &Time(now),
    );
    s
}

/// Backoff for a transient failure: half of how long the export has been reconciling without
/// success, between 5 s (10 s when throttled) and 5 min; for an awaited reference, a tenth of it
/// between 3 s and 30 s (`limits::reference_retry`).
pub fn retry_delay(status: &KubeconfigExportStatus, failure: &Failure, now: Timestamp) -> Duration {
    let floor = match failure.reason {
        Reason::Throttled => MIN_RETRY * 2,
        _ => MIN_RETRY,
    };
    let since = status
        .conditions
        .iter()
        .find(|c| c.type_ == RECONCILING && c.status == "True")
        .map(|c| {
            Duration::try_from(now.duration_since(c.last_transition_time.0)).unwrap_or_default()
        })
        .unwrap_or_default();
    if failure.awaits_reference() {
        return crate::controllers::limits::reference_retry(since);
    }
    (since / 2).clamp(floor, MAX_RETRY)
}

/// When the next fetch is due after `failure`.
pub fn retry_at(
    status: &KubeconfigExportStatus,
    failure: &Failure,
    refresh_interval: Duration,
    now: Timestamp,
) -> Timestamp {
    if failure.transient {
        add(now, retry_delay(status, failure, now))
    } else {
        add(now, refresh_interval)
    }
}

/// The note of an `Exported` Event: what changed since the last export, never the content.
pub fn change_note(previous: &KubeconfigExportStatus, export: &Export) -> String {
    let Some(previous_hash) = previous.content_hash.as_deref() else {
        return format!(
            "wrote Secret {} with kubeconfig {:?} for {}",
            export.secret_name, export.credential_name, export.server
        );
    };
    let mut changes = Vec::new();
    if previous.secret_name.as_deref() != Some(&export.secret_name) {
        changes.push(format!(
            "Secret name ({} → {})",
            previous.secret_name.as_deref().unwrap_or("none"),
            export.secret_name
        ));
    }
    if previous.server.as_deref() != Some(&export.server) {
        changes.push(format!(
            "server ({} → {})",
            previous.server.as_deref().unwrap_or("none"),
            export.server
        ));
    }
    if previous.credential_name.as_deref() != Some(&export.credential_name) {
        changes.push("credential name".to_string());
    }
    if previous.expires_at.as_ref().map(|t| t.0) != export.expires_at {
        changes.push("credential expiry".to_string());
    }
    if changes.is_empty() {
        if previous_hash == export.content_hash {
            return format!(
                "wrote Secret {} again (it was missing); content unchanged",
                export.secret_name
            );
        }
        changes.push("credentials or Secret layout".to_string());
    }
    format!(
        "updated Secret {}: {} changed",
        export.secret_name,
        changes.join(", ")
    )
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
