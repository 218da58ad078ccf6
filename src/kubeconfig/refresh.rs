//! When to fetch a kubeconfig again: `spec.refreshInterval`, or earlier when credentials expire.

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::error::KubeconfigError;

/// `refreshInterval` may not be shorter than this.
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(60);
/// No refresh is scheduled sooner than this after the last one, even for credentials that are
/// (nearly) expired, so a bad credential cannot make the controller spin.
pub const MIN_REFRESH_DELAY: SignedDuration = SignedDuration::from_secs(30);

/// The next refresh: the earlier of `now + refresh_interval` and the point where 90% of the
/// credentials' remaining lifetime has passed (expiry − 10%), but not before `now + 30s`.
pub fn next_refresh(
    now: Timestamp,
    refresh_interval: Duration,
    expires_at: Option<Timestamp>,
) -> Timestamp {
    let add = |d: SignedDuration| now.saturating_add(d).unwrap_or(Timestamp::MAX);
    let interval = SignedDuration::try_from(refresh_interval).unwrap_or(SignedDuration::MAX);
    let mut next = add(interval);
    if let Some(expiry) = expires_at {
        let remaining = expiry.duration_since(now);
        next = next.min(add(remaining - remaining / 10));
    }
    next.max(add(MIN_REFRESH_DELAY))
}

/// Parses `refreshInterval`: one or more `<number><unit>` with unit `s`, `m` or `h` and an
/// optional decimal fraction (`90s`, `1.5h`, `1h30m`), at least one minute.
pub fn parse_refresh_interval(value: &str) -> Result<Duration, KubeconfigError> {
    let invalid = |why| KubeconfigError::InvalidRefreshInterval {
        value: value.to_owned(),
        why,
    };
    const SHAPE: &str = "expected numbers with units s, m or h, such as 90s, 30m or 1h30m";
    if value.is_empty() {
        return Err(invalid(SHAPE));
    }
    let mut total_nanos: u128 = 0;
    let mut rest = value;
    while !rest.is_empty() {
        let int_len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if int_len == 0 {
            return Err(invalid(SHAPE));
        }
        let (int_part, tail) = rest.split_at(int_len);
        let (frac_part, tail) = match tail.strip_prefix('.') {
            Some(after) => {
                let len = after
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(after.len());
                if len == 0 {
                    return Err(invalid(SHAPE));
                }
                after.split_at(len)
            }
            None => ("", tail),
        };
        let mut chars = tail.chars();
        let unit_nanos: u128 = match chars.next() {
            Some('s') => 1_000_000_000,
            Some('m') => 60 * 1_000_000_000,
            Some('h') => 3600 * 1_000_000_000,
            _ => return Err(invalid(SHAPE)),
        };
        rest = chars.as_str();
        let too_long = || invalid("too long");
        let whole: u128 = int_part.parse().map_err(|_| too_long())?;
        // Digits past nanosecond precision of an hour cannot matter.
        let frac_digits = &frac_part[..frac_part.len().min(15)];
        let frac: u128 = if frac_digits.is_empty() {
            0
        } else {
            frac_digits.parse().map_err(|_| too_long())?
        };
        let part = whole
            .checked_mul(unit_nanos)
            .and_then(|w| w.checked_add(frac * unit_nanos / 10u128.pow(frac_digits.len() as u32)))
            .ok_or_else(too_long)?;
        total_nanos = total_nanos.checked_add(part).ok_or_else(too_long)?;
    }
    let secs = u64::try_from(total_nanos / 1_000_000_000).map_err(|_| invalid("too long"))?;
    let duration = Duration::new(secs, (total_nanos % 1_000_000_000) as u32);
    if duration < MIN_REFRESH_INTERVAL {
        return Err(invalid("must be at least 1m"));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn refresh_intervals() {
        let ok: [(&str, u64); 8] = [
            ("1m", 60),
            ("60s", 60),
            ("90s", 90),
            ("1h", 3600),
            ("1h30m", 5400),
            ("1.5h", 5400),
            ("2h0m30s", 7230),
            ("0.5m30s", 60),
        ];
        for (input, secs) in ok {
            assert_eq!(
                parse_refresh_interval(input),
                Ok(Duration::from_secs(secs)),
                "{input}"
            );
        }
        let bad: [(&str, &str); 10] = [
            ("", "expected"),
            ("59s", "at least 1m"),
            ("0.9m", "at least 1m"),
            ("1", "expected"),
            ("h", "expected"),
            ("1d", "expected"),
            ("1.h", "expected"),
            ("-1h", "expected"),
            ("1h 30m", "expected"),
            ("99999999999999999999999999999999999999999h", "too long"),
        ];
        for (input, why) in bad {
            let err = parse_refresh_interval(input).unwrap_err();
            assert!(err.to_string().contains(why), "{input}: {err}");
            assert_eq!(err.reason(), "InvalidSpec");
        }
    }

    #[test]
    fn next_refresh_table() {
        let now = ts("2026-01-01T00:00:00Z");
        let hour = Duration::from_secs(3600);
        let cases: [(&str, Duration, Option<&str>, &str); 6] = [
            ("no expiry: interval", hour, None, "2026-01-01T01:00:00Z"),
            (
                "far expiry: interval",
                hour,
                Some("2026-02-01T00:00:00Z"),
                "2026-01-01T01:00:00Z",
            ),
            // 10h left: refresh after 9h, but the 1h interval is sooner.
            (
                "interval sooner",
                hour,
                Some("2026-01-01T10:00:00Z"),
                "2026-01-01T01:00:00Z",
            ),
            // 50m left: refresh at 45m, before the interval.
            (
                "expiry sooner",
                hour,
                Some("2026-01-01T00:50:00Z"),
                "2026-01-01T00:45:00Z",
            ),
            (
                "nearly expired: floor",
                hour,
                Some("2026-01-01T00:00:10Z"),
                "2026-01-01T00:00:30Z",
            ),
            (
                "already expired: floor",
                hour,
                Some("2025-12-31T00:00:00Z"),
                "2026-01-01T00:00:30Z",
            ),
        ];
        for (name, interval, expiry, want) in cases {
            assert_eq!(
                next_refresh(now, interval, expiry.map(ts)),
                ts(want),
                "{name}"
            );
        }
        assert_eq!(
            next_refresh(now, Duration::MAX, None),
            Timestamp::MAX,
            "huge intervals saturate"
        );
    }
}
