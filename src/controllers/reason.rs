//! Machine-readable reasons (PascalCase) shown in `status.reason`, conditions and Events, and the
//! one type every controller step fails with.

use std::fmt;

/// Every reason a kubeinvoke status can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    // In progress.
    Pending,
    Dispatching,
    Running,
    Throttled,
    Retrying,
    /// A write lost a race: the object changed since it was read (never shown in status).
    Conflict,
    Refreshing,
    /// A fleet run launches nothing new (`spec.suspend`).
    Suspended,
    // Finished well.
    Completed,
    ExitCodeUnavailable,
    Exported,
    // Finished badly.
    NonZeroExit,
    CommandDidNotStart,
    AdmissionDenied,
    TargetNotRunning,
    SecretRejected,
    DeadlineExceeded,
    StartingDeadlineExceeded,
    DispatchInterrupted,
    SessionInterrupted,
    InvalidSpec,
    TargetNotFound,
    Forbidden,
    CredentialNotFound,
    FileNotFound,
    FileNotAllowed,
    ResultUnavailable,
    ContextTooLarge,
    RunCommandDisabled,
    SecretConflict,
    InvalidKubeconfig,
    ArmOperationFailed,
    /// A fleet run ended with failed targets (within `maxErrors`).
    TargetsFailed,
    /// A fleet run stopped launching: more targets failed than `maxErrors` allows.
    MaxErrorsExceeded,
    /// Some exports of a KubeconfigExportSet failed (its `status.failedClusters`).
    ExportsFailed,
}

impl Reason {
    /// Every reason, for the documentation test (README's tables must name exactly these).
    pub const ALL: &'static [Reason] = &[
        Reason::Pending,
        Reason::Dispatching,
        Reason::Running,
        Reason::Throttled,
        Reason::Retrying,
        Reason::Conflict,
        Reason::Refreshing,
        Reason::Suspended,
        Reason::Completed,
        Reason::ExitCodeUnavailable,
        Reason::Exported,
        Reason::NonZeroExit,
        Reason::CommandDidNotStart,
        Reason::AdmissionDenied,
        Reason::TargetNotRunning,
        Reason::SecretRejected,
        Reason::DeadlineExceeded,
        Reason::StartingDeadlineExceeded,
        Reason::DispatchInterrupted,
        Reason::SessionInterrupted,
        Reason::InvalidSpec,
        Reason::TargetNotFound,
        Reason::Forbidden,
        Reason::CredentialNotFound,
        Reason::FileNotFound,
        Reason::FileNotAllowed,
        Reason::ResultUnavailable,
        Reason::ContextTooLarge,
        Reason::RunCommandDisabled,
        Reason::SecretConflict,
        Reason::InvalidKubeconfig,
        Reason::ArmOperationFailed,
        Reason::TargetsFailed,
        Reason::MaxErrorsExceeded,
        Reason::ExportsFailed,
    ];

    /// A missing or unusable reference, waited for ([`Failure::awaits_reference`]).
    pub fn is_reference_wait(self) -> bool {
        matches!(
            self,
            Reason::CredentialNotFound | Reason::FileNotFound | Reason::FileNotAllowed
        )
    }

    /// The reason written as `name` in a status, if it is one of ours.
    pub fn named(name: &str) -> Option<Reason> {
        Reason::ALL.iter().copied().find(|r| r.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Pending => "Pending",
            Reason::Dispatching => "Dispatching",
            Reason::Running => "Running",
            Reason::Throttled => "Throttled",
            Reason::Retrying => "Retrying",
            Reason::Conflict => "Conflict",
            Reason::Refreshing => "Refreshing",
            Reason::Completed => "Completed",
            Reason::ExitCodeUnavailable => "ExitCodeUnavailable",
            Reason::Exported => "Exported",
            Reason::NonZeroExit => "NonZeroExit",
            Reason::CommandDidNotStart => "CommandDidNotStart",
            Reason::AdmissionDenied => "AdmissionDenied",
            Reason::TargetNotRunning => "TargetNotRunning",
            Reason::SecretRejected => "SecretRejected",
            Reason::DeadlineExceeded => "DeadlineExceeded",
            Reason::StartingDeadlineExceeded => "StartingDeadlineExceeded",
            Reason::DispatchInterrupted => "DispatchInterrupted",
            Reason::SessionInterrupted => "SessionInterrupted",
            Reason::InvalidSpec => "InvalidSpec",
            Reason::TargetNotFound => "TargetNotFound",
            Reason::Forbidden => "Forbidden",
            Reason::CredentialNotFound => "CredentialNotFound",
            Reason::FileNotFound => "FileNotFound",
            Reason::FileNotAllowed => "FileNotAllowed",
            Reason::ResultUnavailable => "ResultUnavailable",
            Reason::ContextTooLarge => "ContextTooLarge",
            Reason::RunCommandDisabled => "RunCommandDisabled",
            Reason::SecretConflict => "SecretConflict",
            Reason::InvalidKubeconfig => "InvalidKubeconfig",
            Reason::ArmOperationFailed => "ArmOperationFailed",
            Reason::Suspended => "Suspended",
            Reason::TargetsFailed => "TargetsFailed",
            Reason::MaxErrorsExceeded => "MaxErrorsExceeded",
            Reason::ExportsFailed => "ExportsFailed",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a step could not go on: a reason, a message for people (no secrets), and whether trying
/// again can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct Failure {
    pub reason: Reason,
    pub message: String,
    /// Transient (throttling, 5xx, network, the Kubernetes API): retried within the deadline.
    pub transient: bool,
}

impl Failure {
    /// A failure that ends the run or export for this generation.
    pub fn terminal(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
            transient: false,
        }
    }
    /// A failure worth retrying.
    pub fn transient(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
            transient: true,
        }
    }

    /// A missing or unusable reference (credential Secret, file ConfigMap or Secret): GitOps
    /// applies a resource and what it names in no fixed order, and a person may fix it, so it is
    /// waited for — retried every [`REFERENCE_RETRY`] at first, backing off to 30 s
    /// (`limits::reference_retry`) — rather than a final verdict.
    pub fn awaits_reference(&self) -> bool {
        self.reason.is_reference_wait()
    }
}

/// The `x-ms-correlation-request-id` of a call: ARM wants a GUID. Derived (UUIDv5) from what
/// identifies the call — e.g. uid, generation, runId and attempt of a dispatch — so it is unique per
/// attempt and the same after a restart, for support tickets.
pub fn correlation_id(parts: &[&str]) -> String {
    const KUBEINVOKE: uuid::Uuid = uuid::Uuid::from_u128(0x6b75_6265_696e_766f_6b65_2e69_6f2f_7631);
    uuid::Uuid::new_v5(&KUBEINVOKE, parts.join("/").as_bytes()).to_string()
}

/// How often a resource waiting for a reference looks again at first: a Secret or ConfigMap
/// created by GitOps is picked up within seconds. (Secrets are read one by one, never watched.)
pub const REFERENCE_RETRY: std::time::Duration = std::time::Duration::from_secs(3);

impl From<kube::Error> for Failure {
    fn from(e: kube::Error) -> Self {
        Failure::transient(Reason::Retrying, format!("Kubernetes API: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::Reason;

    /// The README is the contract: its RemoteCommand reasons table and the KubeconfigExport status
    /// list together name every reason the code can write, and nothing else. `Conflict` is
    /// internal (a lost write race, never written to status); `Pending` is never written either.
    #[test]
    fn readme_documents_exactly_the_reasons_in_code() {
        let readme = include_str!("../../README.md");
        let mut documented: BTreeSet<String> = first_column(readme, "### Reasons").collect();
        let kcx = readme
            .split("`expiresAt`")
            .nth(1)
            .and_then(|rest| {
                rest.split("`reason`\n(")
                    .nth(1)
                    .or(rest.split("`reason` (").nth(1))
            })
            .and_then(|rest| rest.split(')').next())
            .expect("README's KubeconfigExport status lists its reasons");
        documented.extend(backticked(kcx));
        documented.extend(first_column(readme, "### Fleet run reasons"));
        documented.extend(first_column(readme, "### KubeconfigExportSet reasons"));
        let in_code = written_reasons();
        let missing: Vec<_> = in_code.difference(&documented).collect();
        let unknown: Vec<_> = documented.difference(&in_code).collect();
        assert!(
            missing.is_empty() && unknown.is_empty(),
            "README reasons differ from the code: not documented {missing:?}, documented but unknown {unknown:?}"
        );
    }

    /// docs/operate.md's runbook ("Troubleshooting by reason") has one row per reason a status can
    /// show, and names no other.
    #[test]
    fn runbook_has_a_row_for_every_reason() {
        let doc = include_str!("../../docs/operate.md");
        let section = doc
            .split("## Troubleshooting by reason")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .expect("docs/operate.md has a 'Troubleshooting by reason' section");
        let mut rows = Vec::new();
        for line in section.lines().filter(|l| l.starts_with("| `")) {
            let first = line.split('|').nth(1).unwrap_or_default();
            rows.extend(backticked(first));
        }
        let documented: BTreeSet<String> = rows.iter().cloned().collect();
        assert_eq!(rows.len(), documented.len(), "a reason has two rows");
        let in_code = written_reasons();
        let missing: Vec<_> = in_code.difference(&documented).collect();
        let unknown: Vec<_> = documented.difference(&in_code).collect();
        assert!(
            missing.is_empty() && unknown.is_empty(),
            "docs/operate.md's runbook differs from the code: no row for {missing:?}, rows for unknown {unknown:?}"
        );
    }

    /// Every reason a status can show: not `Conflict` (a lost write race, internal) nor `Pending`
    /// (never written).
    fn written_reasons() -> BTreeSet<String> {
        Reason::ALL
            .iter()
            .filter(|r| !matches!(r, Reason::Conflict | Reason::Pending))
            .map(|r| r.as_str().to_string())
            .collect()
    }

    /// The backticked names in the first column of the first table after `heading` in `doc`.
    fn first_column<'a>(doc: &'a str, heading: &str) -> impl Iterator<Item = String> + 'a {
        doc.split(heading)
            .nth(1)
            .unwrap_or_else(|| panic!("README has a '{heading}' section"))
            .lines()
            .skip_while(|l| !l.starts_with("| `"))
            .take_while(|l| l.starts_with("| `"))
            .flat_map(|line| backticked(line.split('|').nth(1).unwrap_or_default()))
    }

    fn backticked(text: &str) -> Vec<String> {
        text.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn all_is_complete_and_unique() {
        let names: BTreeSet<_> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), Reason::ALL.len());
    }
}
