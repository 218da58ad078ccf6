//! Errors of the Azure layer: what ARM said, or why we could not ask it.

use std::time::Duration;

use serde::Deserialize;

/// How much of a non-JSON error body we keep (it only helps diagnose proxies and gateways).
const SNIPPET_CHARS: usize = 200;

/// An error answer from ARM (or a resource provider behind it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The ARM operation we were performing, e.g. `ManagedClusters_RunCommand`.
    pub operation: &'static str,
    pub status: u16,
    /// ARM error code (`error.code`), e.g. `AuthorizationFailed`, `ResourceNotFound`.
    pub code: Option<String>,
    pub message: String,
    pub target: Option<String>,
    /// `x-ms-request-id`, the id Azure support asks for.
    pub request_id: Option<String>,
    /// `Retry-After` of the response, when it had one.
    pub retry_after: Option<Duration>,
}

#[derive(Debug, thiserror::Error)]
pub enum ArmError {
    #[error("{}", describe_api(.0))]
    Api(Box<ApiError>),
    /// The connection could not be established: the request was certainly not sent.
    #[error("{operation}: could not connect to Azure: {message}")]
    Connect {
        operation: &'static str,
        message: String,
    },
    /// The exchange failed after the connection was made: the request may have been processed.
    #[error("{operation}: connection to Azure failed: {message}")]
    Transport {
        operation: &'static str,
        message: String,
    },
    #[error("{operation}: could not get an Entra ID token: {message}")]
    Auth {
        operation: &'static str,
        message: String,
    },
    /// The deadline passed before the request left (waiting for the request budget, a token, or
    /// a Retry-After after a refusal): ARM certainly did not process it.
    #[error("{operation}: not sent before the deadline: {reason}")]
    NotSent {
        operation: &'static str,
        reason: String,
    },
    /// The call's fence fell before the request left (a dispatch whose replica lost the leader
    /// Lease): ARM certainly did not process it, and this process must not send it.
    #[error("{operation}: not sent: this replica no longer holds the leader Lease")]
    Fenced { operation: &'static str },
    #[error("{operation}: deadline exceeded{}", last_error.as_ref().map(|e| format!(" (last error: {e})")).unwrap_or_default())]
    Timeout {
        operation: &'static str,
        last_error: Option<String>,
    },
    #[error("{operation}: invalid response from Azure: {message}")]
    InvalidResponse {
        operation: &'static str,
        message: String,
    },
    /// ARM answered 2xx to a request that must not run twice — it accepted it and may run it — but
    /// the answer cannot be followed (no usable Location, so no result to poll).
    #[error("{operation}: accepted by ARM, but {message}; the command may have run")]
    AcceptedUnreadable {
        operation: &'static str,
        message: String,
    },
    /// A long-running operation ended `Failed` or `Canceled`.
    #[error("{operation}: operation {status}: {}{message}", code.as_ref().map(|c| format!("{c}: ")).unwrap_or_default())]
    OperationFailed {
        operation: &'static str,
        status: String,
        code: Option<String>,
        message: String,
    },
    /// The request was refused before it was sent (bad input).
    #[error("invalid request: {0}")]
    Validation(String),
    #[error(
        "the zipped files are {size} bytes once base64-encoded, more than the limit of {limit}"
    )]
    ContextTooLarge { size: usize, limit: usize },
    /// Refused before sending: ARM would refuse a body this large (`RequestContentTooLarge`).
    #[error(
        "the request would be {size} bytes (files zipped and base64-encoded, command and token), more than ARM's limit of {limit}"
    )]
    BodyTooLarge { size: usize, limit: usize },
    #[error("credential configuration: {0}")]
    Credential(String),
}

fn describe_api(e: &ApiError) -> String {
    let mut s = format!("{}: HTTP {}", e.operation, e.status);
    if let Some(code) = &e.code {
        s.push_str(&format!(" {code}"));
    }
    if !e.message.is_empty() {
        s.push_str(&format!(": {}", e.message));
    }
    if let Some(id) = &e.request_id {
        s.push_str(&format!(" (x-ms-request-id {id})"));
    }
    s
}

impl ArmError {
    pub fn metric_label(&self) -> &'static str {
        match self {
            ArmError::Api(_) => "api_error",
            ArmError::Connect { .. } => "connect",
            ArmError::Transport { .. } => "transport",
            ArmError::Auth { .. } => "auth",
            ArmError::Timeout { .. } => "timeout",
            ArmError::NotSent { .. } => "not_sent",
            ArmError::Fenced { .. } => "fenced",
            ArmError::InvalidResponse { .. } => "invalid_response",
            ArmError::AcceptedUnreadable { .. } => "accepted_unreadable",
            ArmError::OperationFailed { .. } => "operation_failed",
            ArmError::Validation(_) => "validation",
            ArmError::ContextTooLarge { .. } => "context_too_large",
            ArmError::BodyTooLarge { .. } => "body_too_large",
            ArmError::Credential(_) => "credential",
        }
    }

    pub fn invalid_response(operation: &'static str, message: impl Into<String>) -> Self {
        ArmError::InvalidResponse {
            operation,
            message: message.into(),
        }
    }

    pub fn api(&self) -> Option<&ApiError> {
        match self {
            ArmError::Api(e) => Some(e),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        self.api().map(|e| e.status)
    }

    /// Worth sending again: throttling, gateway and server trouble, lost connections.
    pub fn is_retryable(&self) -> bool {
        match self {
            ArmError::Api(e) => matches!(e.status, 408 | 429 | 500 | 502 | 503 | 504),
            ArmError::Connect { .. } | ArmError::Transport { .. } => true,
            _ => false,
        }
    }

    /// For a request that must not run twice (AKS run command): after this error ARM may still
    /// have accepted it, so the caller cannot tell whether it was dispatched.
    pub fn may_have_been_processed(&self) -> bool {
        match self {
            ArmError::Api(e) => matches!(e.status, 408 | 500 | 502 | 503 | 504),
            ArmError::Transport { .. }
            | ArmError::Timeout { .. }
            | ArmError::AcceptedUnreadable { .. } => true,
            _ => false,
        }
    }

    pub fn is_throttled(&self) -> bool {
        self.status() == Some(429)
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    pub fn is_forbidden(&self) -> bool {
        self.status() == Some(403)
    }

    /// For a 403 `AuthorizationFailed`, the RBAC action the identity lacks.
    pub fn missing_action(&self) -> Option<String> {
        let e = self.api()?;
        if e.status != 403 {
            return None;
        }
        forbidden_action(&e.message)
    }

    pub fn retry_after(&self) -> Option<Duration> {
        self.api().and_then(|e| e.retry_after)
    }
}

/// Extracts `X` from ARM's "does not have authorization to perform action 'X' over scope ...".
pub fn forbidden_action(message: &str) -> Option<String> {
    let start = message.find("perform action '")? + "perform action '".len();
    let rest = &message[start..];
    let end = rest.find('\'')?;
    let action = &rest[..end];
    let plausible = !action.is_empty()
        && action.len() <= 256
        && action
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "./-_*".contains(c));
    plausible.then(|| action.to_string())
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: Option<ErrorBody>,
    // Some providers answer with the error fields at the top level.
    code: Option<String>,
    message: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    code: Option<String>,
    message: Option<String>,
    target: Option<String>,
    #[serde(default)]
    details: Vec<ErrorDetail>,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: Option<String>,
    message: Option<String>,
}

/// Error code, message and target from an ARM `ErrorResponse` or ACI `CloudError` body.
/// A body that is not JSON becomes a short, printable snippet.
pub fn parse_error_body(body: &[u8]) -> (Option<String>, String, Option<String>) {
    match serde_json::from_slice::<ErrorEnvelope>(body) {
        Ok(ErrorEnvelope { error: Some(e), .. }) => {
            let mut message = e.message.unwrap_or_default();
            // The top-level message of a validation error is often generic; the first detail is not.
            if let Some(d) = e.details.first() {
                let detail = match (&d.code, &d.message) {
                    (Some(c), Some(m)) => format!("{c}: {m}"),
                    (None, Some(m)) => m.clone(),
                    _ => String::new(),
                };
                if !detail.is_empty() && !message.contains(&detail) {
                    message = format!("{message} ({detail})");
                }
            }
            (e.code, message, e.target)
        }
        Ok(ErrorEnvelope {
            error: None,
            code,
            message: Some(message),
        }) => (code, message, None),
        _ => (None, snippet(body), None),
    }
}

/// A printable prefix of an unexpected body: control characters dropped, cut at a char boundary.
pub fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(SNIPPET_CHARS)
        .collect();
    if text.chars().count() > SNIPPET_CHARS {
        out.push('…');
    }
    out.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16) -> ArmError {
        ArmError::Api(Box::new(ApiError {
            operation: "Op",
            status,
            code: None,
            message: String::new(),
            target: None,
            request_id: None,
            retry_after: None,
        }))
    }

    #[test]
    fn retryable_statuses() {
        for (status, retryable) in [
            (408, true),
            (429, true),
            (500, true),
            (502, true),
            (503, true),
            (504, true),
            (400, false),
            (401, false),
            (403, false),
            (404, false),
            (409, false),
            (501, false),
        ] {
            assert_eq!(api(status).is_retryable(), retryable, "status {status}");
        }
        assert!(
            ArmError::Transport {
                operation: "Op",
                message: "reset".into()
            }
            .is_retryable()
        );
        assert!(
            !ArmError::Timeout {
                operation: "Op",
                last_error: None
            }
            .is_retryable()
        );
        let refused = ArmError::Connect {
            operation: "Op",
            message: "refused".into(),
        };
        assert!(refused.is_retryable());
        assert!(!refused.may_have_been_processed());
        assert!(api(504).may_have_been_processed());
        assert!(!api(429).may_have_been_processed());
        assert!(!api(400).may_have_been_processed());
        assert!(api(404).is_not_found());
        assert!(api(403).is_forbidden());
    }

    #[test]
    fn forbidden_action_table() {
        let cases = [
            (
                "The client 'x' with object id 'y' does not have authorization to perform action 'Microsoft.ContainerService/managedClusters/runcommand/action' over scope '/subscriptions/s' or the scope is invalid.",
                Some("Microsoft.ContainerService/managedClusters/runcommand/action"),
            ),
            (
                "does not have authorization to perform action '' over scope",
                None,
            ),
            (
                "does not have authorization to perform action 'unterminated",
                None,
            ),
            ("no action here", None),
            ("perform action 'bad action with spaces' over", None),
        ];
        for (message, want) in cases {
            assert_eq!(forbidden_action(message).as_deref(), want, "{message}");
        }
    }

    #[test]
    fn parse_error_bodies() {
        type Case = (
            &'static [u8],
            Option<&'static str>,
            &'static str,
            Option<&'static str>,
        );
        let cases: [Case; 6] = [
            (
                br#"{"error":{"code":"ResourceNotFound","message":"gone","target":"name"}}"#,
                Some("ResourceNotFound"),
                "gone",
                Some("name"),
            ),
            (
                br#"{"error":{"code":"InvalidRequest","message":"bad","details":[{"code":"X","message":"why"}]}}"#,
                Some("InvalidRequest"),
                "bad (X: why)",
                None,
            ),
            (br#"{"code":"Conflict","message":"busy"}"#, Some("Conflict"), "busy", None),
            (b"<html>\n<body>Bad Gateway</body></html>", None, "<html> <body>Bad Gateway</body></html>", None),
            (b"", None, "", None),
            (br#"{"error":"#, None, r#"{"error":"#, None),
        ];
        for (body, code, message, target) in cases {
            let (c, m, t) = parse_error_body(body);
            assert_eq!(
                (c.as_deref(), m.as_str(), t.as_deref()),
                (code, message, target)
            );
        }
    }

    #[test]
    fn snippet_is_bounded() {
        let long = "é".repeat(1000);
        let s = snippet(long.as_bytes());
        assert_eq!(s.chars().count(), SNIPPET_CHARS + 1);
    }

    #[test]
    fn display_names_request_id() {
        let e = ArmError::Api(Box::new(ApiError {
            operation: "ManagedClusters_Get",
            status: 404,
            code: Some("ResourceNotFound".into()),
            message: "not here".into(),
            target: None,
            request_id: Some("abc".into()),
            retry_after: None,
        }));
        assert_eq!(
            e.to_string(),
            "ManagedClusters_Get: HTTP 404 ResourceNotFound: not here (x-ms-request-id abc)"
        );
        assert_eq!(e.metric_label(), "api_error");
    }
}
