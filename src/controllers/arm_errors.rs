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
            // A role assignment takes minutes to reach ARM ("If access was recently granted,
            // please refresh your credentials"): a 403 is waited for like a missing Secret, until
            // the deadline, with the reason shown.
            403 => {
                let message = match err.missing_action() {
                    Some(action) => {
                        format!("the Azure identity lacks the RBAC action {action}: {message}")
                    }
                    None => message,
                };
                Failure::transient(
                    Reason::Forbidden,
                    format!(
                        "{message} (retried until the deadline: a new role assignment can take minutes to apply)"
                    ),
                )
            }
            // The token expired on ARM's clock (a skewed clock here): the next attempt gets a new one.
            401 if api.code.as_deref() == Some("ExpiredAuthenticationToken") => Failure::transient(
                Reason::Retrying,
                format!("ARM says the token expired: {message}"),
            ),
            401 => Failure::terminal(
                Reason::Forbidden,
                format!("ARM refused the token: {message}"),
            ),
            // The target stopped after it was read (or was not read): ACI's exec on a stopped
            // group (azure-cli #8136), AKS's "(Succeeded,Stopped) state" (Azure/AKS #1871).
            400 | 409 if not_running(api.code.as_deref(), &api.message) => {
                Failure::terminal(Reason::TargetNotRunning, message)
            }
            429 => Failure::transient(Reason::Throttled, message),
            // ARM's limit on a request body (`RequestContentTooLarge`): only a run command's files
            // make one that large.
            413 => Failure::terminal(
                Reason::ContextTooLarge,
                format!(
                    "ARM refused the request as too large (its limit is 4 MB for the whole body: files, command and token): {message}"
                ),
            ),
            400 | 405 | 411 | 415 | 422 => Failure::terminal(Reason::InvalidSpec, message),
            _ => Failure::transient(Reason::Retrying, message),
        },
        // Asking to borrow the operator's own ServiceAccount: refused for good.
        ArmError::Auth { message: m, .. }
            if m.contains("no token for ServiceAccount") && m.contains("is the operator's own") =>
        {
            Failure::terminal(Reason::Forbidden, message)
        }
        // Workload identity without its ServiceAccount, or one whose owner has not opted in to the
        // client id: an awaited reference, like a missing Secret (GitOps may create or annotate it
        // later), not a token outage.
        ArmError::Auth { message: m, .. }
            if m.contains("no token for ServiceAccount")
                && (m.contains("does not exist") || m.contains("has not opted in")) =>
        {
            Failure::terminal(Reason::CredentialNotFound, message)
        }
        // Entra ID's own throttling and outages pass with time.
        ArmError::Auth { message: m, .. } if entra_throttled(m) => Failure::transient(
            Reason::Throttled,
            format!("Entra ID asks to retry later: {message}"),
        ),
        // Entra's own transient failure ("a transient error has occurred, please try again").
        ArmError::Auth { message: m, .. } if m.contains("AADSTS90033") => {
            Failure::transient(Reason::Retrying, message)
        }
        // A new application or secret is not known everywhere in the directory at once: waited
        // for until the deadline, like a missing Secret, with the reason shown.
        ArmError::Auth { message: m, .. } if entra_replicating(m) => Failure::transient(
            Reason::Forbidden,
            format!(
                "Entra ID does not accept the credential yet: {message} (retried until the deadline: a new \
                 application or client secret can take minutes to replicate; a wrong one fails then)"
            ),
        ),
        // Any other AADSTS code is a definite refusal (unknown tenant, bad assertion).
        ArmError::Auth { message: m, .. } if m.contains("AADSTS") => Failure::terminal(
            Reason::Forbidden,
            format!("Entra ID refused the credential: {message}"),
        ),
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
        ArmError::ContextTooLarge { .. } | ArmError::BodyTooLarge { .. } => {
            Failure::terminal(Reason::ContextTooLarge, message)
        }
        ArmError::Credential(_) => Failure::terminal(Reason::CredentialNotFound, message),
    }
}

/// An answer that says the target is stopped or not running.
fn not_running(code: Option<&str>, message: &str) -> bool {
    matches!(
        code,
        Some("ContainerGroupStopped" | "ContainerGroupNotRunning")
    ) || message.to_ascii_lowercase().contains(",stopped) state")
}

/// Entra ID's answers for its own load: AADSTS50196 (throttled), OAuth's
/// `temporarily_unavailable`, and HTTP 429.
fn entra_throttled(message: &str) -> bool {
    [
        "AADSTS50196",
        "temporarily_unavailable",
        "429 Too Many Requests",
    ]
    .iter()
    .any(|code| message.contains(code))
}

/// A principal or secret the directory does not know yet (AADSTS700016: application not found;
/// AADSTS7000215: invalid client secret) — what a new one looks like while it replicates.
fn entra_replicating(message: &str) -> bool {
    ["AADSTS700016", "AADSTS7000215"]
        .iter()
        .any(|code| message.contains(code))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::azure::error::ApiError;

    fn api(status: u16, code: &str, message: &str) -> ArmError {
        ArmError::Api(Box::new(ApiError {
            operation: "Op",
            status,
            code: Some(code.to_string()),
            message: message.to_string(),
            target: None,
            request_id: None,
            retry_after: None,
        }))
    }

    fn auth(message: &str) -> ArmError {
        ArmError::Auth {
            operation: "Op",
            message: message.to_string(),
        }
    }

    #[test]
    fn each_answer_gets_its_reason_and_whether_it_may_pass() {
        let cases = [
            (
                api(409, "ContainerGroupStopped", "stopped"),
                Reason::TargetNotRunning,
                false,
            ),
            (
                api(
                    400,
                    "OperationNotAllowed",
                    "Managed cluster is in (Succeeded,Stopped) state.",
                ),
                Reason::TargetNotRunning,
                false,
            ),
            (
                api(413, "RequestContentTooLarge", "too large"),
                Reason::ContextTooLarge,
                false,
            ),
            (
                api(400, "InvalidParameter", "bad"),
                Reason::InvalidSpec,
                false,
            ),
            (
                api(
                    403,
                    "AuthorizationFailed",
                    "If access was recently granted, please refresh your credentials.",
                ),
                Reason::Forbidden,
                true,
            ),
            (
                api(401, "ExpiredAuthenticationToken", "expired"),
                Reason::Retrying,
                true,
            ),
            (
                api(401, "InvalidAuthenticationTokenTenant", "wrong tenant"),
                Reason::Forbidden,
                false,
            ),
            (
                api(429, "TooManyRequests", "slow down"),
                Reason::Throttled,
                true,
            ),
            (
                auth("AADSTS50196: The server terminated an operation"),
                Reason::Throttled,
                true,
            ),
            (
                auth(
                    "no token for ServiceAccount team-a/deployer: ServiceAccount team-a/deployer does not exist",
                ),
                Reason::CredentialNotFound,
                false,
            ),
            (
                auth(
                    "no token for ServiceAccount team-a/deployer: ServiceAccount team-a/deployer has not opted in to client id x",
                ),
                Reason::CredentialNotFound,
                false,
            ),
            (
                auth(
                    "no token for ServiceAccount op/kubeinvoke: ServiceAccount op/kubeinvoke is the operator's own, whose identity is never lent",
                ),
                Reason::Forbidden,
                false,
            ),
            (
                auth(
                    "no token for ServiceAccount team-a/deployer: TokenRequest: connection refused",
                ),
                Reason::Retrying,
                true,
            ),
            (
                auth("temporarily_unavailable: try later"),
                Reason::Throttled,
                true,
            ),
            (
                auth("server_error: AADSTS90033: A transient error has occurred"),
                Reason::Retrying,
                true,
            ),
            (
                auth("AADSTS700016: Application not found in the directory"),
                Reason::Forbidden,
                true,
            ),
            (
                auth("AADSTS7000215: Invalid client secret provided"),
                Reason::Forbidden,
                true,
            ),
            (
                auth("AADSTS90002: Tenant not found"),
                Reason::Forbidden,
                false,
            ),
        ];
        for (err, reason, transient) in cases {
            let f = failure(&err);
            assert_eq!((f.reason, f.transient), (reason, transient), "{err}");
        }
    }
}
