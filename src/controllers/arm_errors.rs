//! The one place where an ARM error becomes a status reason: which failures end a run and which
//! are retried within its deadline.

use super::reason::{Failure, Reason};
use crate::azure::ArmError;

/// Maps an ARM error to a reason and a message for people (never a token or a body that may hold
/// one: `ArmError`'s messages are already free of those).
pub fn failure(err: &ArmError) -> Failure {
    let message = crate::text::truncate(&err.to_string(), 900).to_string();
    match err {
        ArmError::Api(api) => match api.status {
            404 => Failure::terminal(Reason::TargetNotFound, message),
            403 => {
                let message = match err.missing_action() {
                    Some(action) => {
                        format!("the Azure identity lacks the RBAC action {action}: {message}")
                    }
                    None => message,
                };
                Failure::terminal(Reason::Forbidden, message)
            }
            401 => Failure::terminal(
                Reason::Forbidden,
                format!("ARM refused the token: {message}"),
            ),
            429 => Failure::transient(Reason::Throttled, message),
            400 | 405 | 411 | 413 | 415 | 422 => Failure::terminal(Reason::InvalidSpec, message),
            _ => Failure::transient(Reason::Retrying, message),
        },
        // An Entra ID answer with an AADSTS code is a definite refusal (wrong secret, unknown
        // client, wrong tenant) — except the codes Entra uses for its own transient failures;
        // anything else may pass.
        ArmError::Auth { message: m, .. } if m.contains("AADSTS") && !entra_transient(m) => {
            Failure::terminal(
                Reason::Forbidden,
                format!("Entra ID refused the credential: {message}"),
            )
        }
        ArmError::Auth { .. }
        | ArmError::Connect { .. }
        | ArmError::Transport { .. }
        | ArmError::InvalidResponse { .. } => Failure::transient(Reason::Retrying, message),
        ArmError::Timeout { .. } => Failure::terminal(Reason::DeadlineExceeded, message),
        // Nothing was sent: the request budget (or a Retry-After) outlasted this step.
        ArmError::NotSent { .. } => Failure::transient(Reason::Throttled, message),
        // Nothing was sent; the replica that now leads decides.
        ArmError::Fenced { .. } => Failure::transient(Reason::Conflict, message),
        ArmError::OperationFailed { .. } => Failure::terminal(Reason::ArmOperationFailed, message),
        // Never sent again, whatever the dispatch policy: ARM accepted it.
        ArmError::AcceptedUnreadable { .. } => {
            Failure::terminal(Reason::ResultUnavailable, message)
        }
        ArmError::Validation(_) => Failure::terminal(Reason::InvalidSpec, message),
        ArmError::ContextTooLarge { .. } => Failure::terminal(Reason::ContextTooLarge, message),
        ArmError::Credential(_) => Failure::terminal(Reason::CredentialNotFound, message),
    }
}

/// AADSTS codes Entra ID answers when the failure is its own and a retry may pass (90033: "a
/// transient error has occurred, please try again").
fn entra_transient(message: &str) -> bool {
    ["AADSTS90033"].iter().any(|code| message.contains(code))
}
