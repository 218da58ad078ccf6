//! The `Retry-After` value the emulator sends: whole seconds, or any text passed through verbatim
//! (so tests can send what a hostile or broken server would: "-5", "garbage", 2^64-1).

use std::fmt;
use std::time::{Duration, Instant};

use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderMap, HeaderValue};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Seconds as ARM sends them, or text sent exactly as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryAfter {
    Seconds(u64),
    Verbatim(String),
}

impl Default for RetryAfter {
    fn default() -> Self {
        RetryAfter::Seconds(1)
    }
}

impl RetryAfter {
    /// From a command-line value: digits that fit in 64 bits are seconds, anything else verbatim.
    pub fn from_flag(text: &str) -> RetryAfter {
        match text.parse::<u64>() {
            Ok(n) if !text.starts_with('+') => RetryAfter::Seconds(n),
            _ => RetryAfter::Verbatim(text.to_string()),
        }
    }

    /// The header value; `None` when the text cannot be a header (control characters).
    pub fn header(&self) -> Option<HeaderValue> {
        match self {
            RetryAfter::Seconds(n) => Some(HeaderValue::from(*n)),
            RetryAfter::Verbatim(t) => HeaderValue::from_str(t).ok(),
        }
    }

    /// Sets `Retry-After` to this value (nothing when it cannot be a header value).
    pub fn apply(&self, headers: &mut HeaderMap) {
        if let Some(v) = self.header() {
            headers.insert(RETRY_AFTER, v);
        }
    }

    /// Whole seconds when the value reads as such (for the early-request bookkeeping only).
    pub fn seconds(&self) -> Option<u64> {
        match self {
            RetryAfter::Seconds(n) => Some(*n),
            RetryAfter::Verbatim(t) => t.trim().parse().ok(),
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        match self.header() {
            Some(_) => Ok(()),
            None => Err(format!(
                "retryAfter {:?} cannot be sent as an HTTP header value",
                self.to_string()
            )),
        }
    }
}

impl fmt::Display for RetryAfter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetryAfter::Seconds(n) => write!(f, "{n}"),
            RetryAfter::Verbatim(t) => f.write_str(t),
        }
    }
}

/// `now + secs`, saturating far in the future instead of overflowing (2^64-1 seconds is a
/// legitimate test value).
pub fn not_before(now: Instant, secs: u64) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    now.checked_add(Duration::from_secs(secs))
        .unwrap_or_else(|| now + CENTURY)
}

impl Serialize for RetryAfter {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            RetryAfter::Seconds(n) => s.serialize_u64(*n),
            RetryAfter::Verbatim(t) => s.serialize_str(t),
        }
    }
}

impl<'de> Deserialize<'de> for RetryAfter {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Any;
        impl Visitor<'_> for Any {
            type Value = RetryAfter;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("seconds or a string sent verbatim")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<RetryAfter, E> {
                Ok(RetryAfter::Seconds(n))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<RetryAfter, E> {
                Ok(u64::try_from(n)
                    .map_or_else(|_| RetryAfter::Verbatim(n.to_string()), RetryAfter::Seconds))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<RetryAfter, E> {
                Ok(RetryAfter::Verbatim(n.to_string()))
            }
            fn visit_str<E: de::Error>(self, t: &str) -> Result<RetryAfter, E> {
                Ok(RetryAfter::Verbatim(t.to_string()))
            }
        }
        d.deserialize_any(Any)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_seconds_and_strings_verbatim() {
        let parse = |y: &str| serde_saphyr::from_str::<RetryAfter>(y).unwrap();
        assert_eq!(parse("3"), RetryAfter::Seconds(3));
        assert_eq!(parse("-5"), RetryAfter::Verbatim("-5".into()));
        assert_eq!(
            parse("\"18446744073709551615\""),
            RetryAfter::Verbatim("18446744073709551615".into())
        );
        assert_eq!(parse("garbage"), RetryAfter::Verbatim("garbage".into()));
        assert_eq!(
            serde_json::to_string(&RetryAfter::Verbatim("x".into())).unwrap(),
            "\"x\""
        );
        assert_eq!(RetryAfter::from_flag("7"), RetryAfter::Seconds(7));
        assert_eq!(
            RetryAfter::from_flag("+7"),
            RetryAfter::Verbatim("+7".into())
        );
        assert!(RetryAfter::Verbatim("a\nb".into()).validate().is_err());
    }

    #[test]
    fn huge_values_do_not_overflow() {
        let now = Instant::now();
        assert!(not_before(now, u64::MAX) > now);
        assert_eq!(
            RetryAfter::Verbatim("18446744073709551615".into()).seconds(),
            Some(u64::MAX)
        );
    }
}
