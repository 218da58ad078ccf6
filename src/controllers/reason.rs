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
    // Finished well.
    Completed,
    ExitCodeUnavailable,
    Exported,
    // Finished badly.
    NonZeroExit,
    CommandDidNotStart,
    DeadlineExceeded,
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
}

impl Reason {
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
            Reason::DeadlineExceeded => "DeadlineExceeded",
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
    /// waited for — retried every [`REFERENCE_RETRY`] — rather than a final verdict.
    pub fn awaits_reference(&self) -> bool {
        matches!(
            self.reason,
            Reason::CredentialNotFound | Reason::FileNotFound | Reason::FileNotAllowed
        )
    }
}

/// The `x-ms-correlation-request-id` of a call: ARM wants a GUID. Derived (UUIDv5) from what
/// identifies the call — e.g. uid, generation, runId and attempt of a dispatch — so it is unique per
/// attempt and the same after a restart, for support tickets.
pub fn correlation_id(parts: &[&str]) -> String {
    const KUBEINVOKE: uuid::Uuid = uuid::Uuid::from_u128(0x6b75_6265_696e_766f_6b65_2e69_6f2f_7631);
    uuid::Uuid::new_v5(&KUBEINVOKE, parts.join("/").as_bytes()).to_string()
}

/// How often a resource waiting for a reference looks again: a Secret or ConfigMap created by
/// GitOps is picked up within seconds. (Secrets are read one by one, never watched.)
pub const REFERENCE_RETRY: std::time::Duration = std::time::Duration::from_secs(3);

impl From<kube::Error> for Failure {
    fn from(e: kube::Error) -> Self {
        Failure::transient(Reason::Retrying, format!("Kubernetes API: {e}"))
    }
}
