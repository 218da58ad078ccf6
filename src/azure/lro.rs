//! Long-running ARM operations: reading the polling headers and polling until a terminal state.

use std::time::{Duration, SystemTime};

use reqwest::Method;
use reqwest::Url;
use reqwest::header::HeaderMap;
use serde::Deserialize;
use tokio::time::Instant;

use super::client::{ArmClient, ArmRequest, ArmResponse, CallContext, Target};
use super::error::ArmError;

/// Where to ask about a running operation. `Azure-AsyncOperation` wins over `Location`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollLink {
    AsyncOperation(Url),
    Location(Url),
}

impl PollLink {
    pub fn url(&self) -> &Url {
        match self {
            PollLink::AsyncOperation(u) | PollLink::Location(u) => u,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LroConfig {
    /// Delay between polls when the service gives no `Retry-After`.
    pub default_poll_interval: Duration,
    /// Floor for a `Retry-After: 0`, so a misbehaving server cannot make us spin.
    pub min_poll_interval: Duration,
}

impl Default for LroConfig {
    fn default() -> Self {
        Self {
            default_poll_interval: Duration::from_secs(5),
            min_poll_interval: Duration::from_secs(1),
        }
    }
}

/// The terminal states are the same three for every ARM status field; anything else is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationState {
    Running,
    Succeeded,
    Failed,
    Canceled,
}

pub fn operation_state(status: &str) -> OperationState {
    match status.to_ascii_lowercase().as_str() {
        "succeeded" => OperationState::Succeeded,
        "failed" => OperationState::Failed,
        "canceled" | "cancelled" => OperationState::Canceled,
        _ => OperationState::Running,
    }
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, String> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.trim()))
            .map_err(|_| format!("header {name} is not ASCII")),
    }
}

fn link_url(headers: &HeaderMap, name: &str, base: &Url) -> Result<Option<Url>, String> {
    let Some(value) = header_str(headers, name)? else {
        return Ok(None);
    };
    if value.is_empty() {
        return Err(format!("header {name} is empty"));
    }
    // ARM sends absolute URLs; a relative one is resolved against the request, as HTTP allows.
    let url = base
        .join(value)
        .map_err(|e| format!("header {name} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
        return Err(format!("header {name} is not an http(s) URL"));
    }
    Ok(Some(url))
}

/// The `Location` header alone (the final result of a POST, whatever was polled).
pub fn location(headers: &HeaderMap, base: &Url) -> Result<Option<Url>, String> {
    link_url(headers, "location", base)
}

/// The link to poll, from a 202's headers.
pub fn poll_link(headers: &HeaderMap, base: &Url) -> Result<Option<PollLink>, String> {
    if let Some(u) = link_url(headers, "azure-asyncoperation", base)? {
        return Ok(Some(PollLink::AsyncOperation(u)));
    }
    Ok(link_url(headers, "location", base)?.map(PollLink::Location))
}

/// The longest wait any delay header can ask for. ARM's buckets refill in seconds and its polls
/// suggest a minute at most, so a larger value is a broken or hostile header: it is cut here, once,
/// and no caller does time arithmetic with an unbounded value (an `Instant` plus
/// `u64::MAX` seconds panics).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// One `Retry-After` value: delay-seconds or an HTTP-date (a past date means "now"), at most
/// [`MAX_RETRY_AFTER`].
pub fn parse_retry_after_value(value: &str, now: SystemTime) -> Result<Duration, String> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Any run of digits is a delay; one too long for u64 is simply "very long".
        let secs = value.parse::<u64>().unwrap_or(u64::MAX);
        return Ok(Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    let date = azure_core::time::parse_rfc7231(value)
        .map_err(|_| format!("Retry-After '{value}' is neither seconds nor an HTTP-date"))?;
    let now = azure_core::time::OffsetDateTime::from(now);
    let millis = (date - now).whole_milliseconds();
    Ok(Duration::from_millis(u64::try_from(millis).unwrap_or(0)).min(MAX_RETRY_AFTER))
}

fn parse_millis(name: &str, value: &str) -> Result<Duration, String> {
    let value = value.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{name} '{value}' is not a number of milliseconds"));
    }
    let millis = value.parse::<u64>().unwrap_or(u64::MAX);
    Ok(Duration::from_millis(millis).min(MAX_RETRY_AFTER))
}

/// `now + delay`, saturating: a delay too large for the clock ends far in the future instead of
/// panicking.
pub fn instant_after(now: Instant, delay: Duration) -> Instant {
    now.checked_add(delay)
        .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365))
}

/// The delay a response asks for: `x-ms-retry-after-ms`, then `retry-after-ms`, then `Retry-After`.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Result<Option<Duration>, String> {
    for name in ["x-ms-retry-after-ms", "retry-after-ms"] {
        if let Some(v) = header_str(headers, name)? {
            return parse_millis(name, v).map(Some);
        }
    }
    match header_str(headers, "retry-after")? {
        Some(v) => parse_retry_after_value(v, now).map(Some),
        None => Ok(None),
    }
}

#[derive(Deserialize)]
struct StatusBody {
    status: Option<String>,
    error: Option<StatusError>,
}

#[derive(Deserialize)]
struct StatusError {
    code: Option<String>,
    message: Option<String>,
}

/// Waits `delay`, or fails with a timeout when that would pass the deadline.
pub(crate) async fn wait_within(
    delay: Duration,
    deadline: Instant,
    operation: &'static str,
) -> Result<(), ArmError> {
    let wake = instant_after(Instant::now(), delay);
    if wake > deadline {
        return Err(ArmError::Timeout {
            operation,
            last_error: Some(format!(
                "the next poll would be after the deadline (in {delay:?})"
            )),
        });
    }
    tokio::time::sleep_until(wake).await;
    Ok(())
}

/// Polls the operation that `accepted` (a 202) started, until it ends, and returns the final response:
/// the status document for `Azure-AsyncOperation`, the result for `Location`.
/// `Failed`/`Canceled` on the status URL become [`ArmError::OperationFailed`].
pub async fn poll_until_done(
    client: &ArmClient,
    ctx: &CallContext,
    operation: &'static str,
    accepted: ArmResponse,
    config: &LroConfig,
) -> Result<ArmResponse, ArmError> {
    if accepted.status != 202 {
        return Ok(accepted);
    }
    let invalid = |m: String| ArmError::invalid_response(operation, m);
    let mut link = poll_link(&accepted.headers, &accepted.url)
        .map_err(invalid)?
        .ok_or_else(|| invalid("202 Accepted without Location or Azure-AsyncOperation".into()))?;
    let mut delay = retry_after(&accepted.headers, SystemTime::now()).map_err(invalid)?;
    loop {
        let wait = delay
            .unwrap_or(config.default_poll_interval)
            .max(config.min_poll_interval);
        wait_within(wait, ctx.deadline, operation).await?;
        let response = client
            .send(
                ctx,
                ArmRequest::new(operation, Method::GET, Target::Url(link.url().clone())),
            )
            .await?;
        delay = retry_after(&response.headers, SystemTime::now()).map_err(invalid)?;
        match &link {
            PollLink::AsyncOperation(_) => {
                let body: StatusBody = response.json(operation)?;
                let status = body
                    .status
                    .ok_or_else(|| invalid("operation status without 'status'".into()))?;
                match operation_state(&status) {
                    OperationState::Running => continue,
                    OperationState::Succeeded => return Ok(response),
                    OperationState::Failed | OperationState::Canceled => {
                        let (code, message) = body
                            .error
                            .map(|e| (e.code, e.message.unwrap_or_default()))
                            .unwrap_or_default();
                        return Err(ArmError::OperationFailed {
                            operation,
                            status,
                            code,
                            message,
                        });
                    }
                }
            }
            PollLink::Location(_) => {
                if response.status != 202 {
                    return Ok(response);
                }
                if let Some(next) = poll_link(&response.headers, &response.url).map_err(invalid)? {
                    link = match next {
                        PollLink::Location(u) => PollLink::Location(u),
                        // A status URL appearing mid-way is the better link.
                        other => other,
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    type Case<T> = (Vec<(&'static str, &'static str)>, Result<Option<T>, ()>);

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn operation_states() {
        for (s, want) in [
            ("Succeeded", OperationState::Succeeded),
            ("succeeded", OperationState::Succeeded),
            ("FAILED", OperationState::Failed),
            ("Canceled", OperationState::Canceled),
            ("Cancelled", OperationState::Canceled),
            ("InProgress", OperationState::Running),
            ("Accepted", OperationState::Running),
            ("", OperationState::Running),
        ] {
            assert_eq!(operation_state(s), want, "{s}");
        }
    }

    #[test]
    fn poll_link_table() {
        let base =
            Url::parse("https://management.azure.com/subscriptions/s/x?api-version=1").unwrap();
        let op = "https://management.azure.com/op/1?api-version=1";
        let loc = "https://management.azure.com/loc/1";
        let cases: Vec<Case<PollLink>> = vec![
            (vec![], Ok(None)),
            (
                vec![("location", loc)],
                Ok(Some(PollLink::Location(Url::parse(loc).unwrap()))),
            ),
            (
                vec![("location", loc), ("azure-asyncoperation", op)],
                Ok(Some(PollLink::AsyncOperation(Url::parse(op).unwrap()))),
            ),
            (
                vec![("location", "/relative/path?x=1")],
                Ok(Some(PollLink::Location(
                    Url::parse("https://management.azure.com/relative/path?x=1").unwrap(),
                ))),
            ),
            (vec![("location", "")], Err(())),
            (vec![("azure-asyncoperation", "ftp://x/y")], Err(())),
            (vec![("location", "https://")], Err(())),
        ];
        for (h, want) in cases {
            let got = poll_link(&headers(&h), &base).map_err(|_| ());
            assert_eq!(got, want, "{h:?}");
        }
    }

    #[test]
    fn non_ascii_header_is_an_error() {
        let mut h = HeaderMap::new();
        h.insert(
            "location",
            HeaderValue::from_bytes(b"https://x/\xff").unwrap(),
        );
        assert!(poll_link(&h, &Url::parse("https://x/").unwrap()).is_err());
    }

    #[test]
    fn retry_after_table() {
        // Sun, 06 Nov 1994 08:49:37 GMT
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        let cases: Vec<Case<Duration>> = vec![
            (vec![], Ok(None)),
            (vec![("retry-after", "7")], Ok(Some(Duration::from_secs(7)))),
            (vec![("retry-after", " 0 ")], Ok(Some(Duration::ZERO))),
            (
                vec![("retry-after", "Sun, 06 Nov 1994 08:50:07 GMT")],
                Ok(Some(Duration::from_secs(30))),
            ),
            (
                vec![("retry-after", "Sun, 06 Nov 1994 08:00:00 GMT")],
                Ok(Some(Duration::ZERO)),
            ),
            (
                vec![("retry-after-ms", "1500")],
                Ok(Some(Duration::from_millis(1500))),
            ),
            (
                vec![("x-ms-retry-after-ms", "250"), ("retry-after", "10")],
                Ok(Some(Duration::from_millis(250))),
            ),
            (vec![("retry-after", "-1")], Err(())),
            (vec![("retry-after", "1.5")], Err(())),
            (vec![("retry-after", "Sun, 06 Nov 19")], Err(())),
            (vec![("retry-after", "soon")], Err(())),
            // Absurd delays are cut to MAX_RETRY_AFTER, never an overflow.
            (
                vec![("retry-after", "99999999999999999999999")],
                Ok(Some(MAX_RETRY_AFTER)),
            ),
            (
                vec![("retry-after", "18446744073709551615")],
                Ok(Some(MAX_RETRY_AFTER)),
            ),
            (
                vec![("retry-after-ms", "18446744073709551615")],
                Ok(Some(MAX_RETRY_AFTER)),
            ),
            (
                vec![("retry-after", "Fri, 31 Dec 9999 23:59:59 GMT")],
                Ok(Some(MAX_RETRY_AFTER)),
            ),
            (vec![("retry-after-ms", "abc")], Err(())),
        ];
        for (h, want) in cases {
            assert_eq!(
                retry_after(&headers(&h), now).map_err(|_| ()),
                want,
                "{h:?}"
            );
        }
    }
}
