//! Fault injection (latency, 429/500/503, dropped connections) and ARM's token buckets.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::retry_after::RetryAfter;

/// Fault settings for one operation name (or `*`). Unset fields fall back to `*`, then to none.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultSpec {
    /// Added latency in milliseconds before the request is handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Delay in milliseconds after the request was handled, before the response is sent: the work
    /// is done (a command dispatched) but the client does not know yet; a client killed meanwhile
    /// never learns the outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_delay_ms: Option<u64>,
    /// `Retry-After` on 202 and injected 429/503 responses: seconds, or a string sent verbatim
    /// (hostile values such as "-5" or "18446744073709551615").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<RetryAfter>,
    /// Rate (0.0-1.0) of injected 429 TooManyRequests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle_rate: Option<f64>,
    /// Rate of injected 500 InternalServerError.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error500_rate: Option<f64>,
    /// Rate of injected 503 ServiceUnavailable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error503_rate: Option<f64>,
    /// Rate of connections closed without any response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_rate: Option<f64>,
    /// Rate of injected 403 AuthorizationFailed (as when a role assignment was removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error403_rate: Option<f64>,
    /// List operations only: rate of answers `200 {"value": []}` whatever the world holds (a
    /// listing that wrongly looks empty); other operations ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_list_rate: Option<f64>,
}

impl FaultSpec {
    fn overlay(&self, over: &FaultSpec) -> FaultSpec {
        FaultSpec {
            latency_ms: over.latency_ms.or(self.latency_ms),
            response_delay_ms: over.response_delay_ms.or(self.response_delay_ms),
            retry_after: over.retry_after.clone().or(self.retry_after.clone()),
            throttle_rate: over.throttle_rate.or(self.throttle_rate),
            error500_rate: over.error500_rate.or(self.error500_rate),
            error503_rate: over.error503_rate.or(self.error503_rate),
            drop_rate: over.drop_rate.or(self.drop_rate),
            error403_rate: over.error403_rate.or(self.error403_rate),
            empty_list_rate: over.empty_list_rate.or(self.empty_list_rate),
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        for r in [
            self.throttle_rate,
            self.error500_rate,
            self.error503_rate,
            self.drop_rate,
            self.error403_rate,
            self.empty_list_rate,
        ]
        .into_iter()
        .flatten()
        {
            if !(0.0..=1.0).contains(&r) {
                return Err(format!("fault rate {r} is outside 0.0-1.0"));
            }
        }
        self.retry_after
            .as_ref()
            .map_or(Ok(()), RetryAfter::validate)
    }
}

pub type FaultConfig = BTreeMap<String, FaultSpec>;

pub fn validate_faults(cfg: &FaultConfig) -> Result<(), String> {
    cfg.values().try_for_each(FaultSpec::validate)
}

/// Effective settings for `op`: `*` overlaid by the op's own entry.
pub fn effective(cfg: &FaultConfig, op: &str) -> FaultSpec {
    let base = cfg.get("*").cloned().unwrap_or_default();
    match cfg.get(op) {
        Some(own) => base.overlay(own),
        None => base,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Injected {
    Drop,
    Throttle,
    Error500,
    Error503,
    Error403,
    EmptyList,
}

/// Picks the fault (if any) for one request given a uniform draw in [0, 1).
pub fn pick(spec: &FaultSpec, draw: f64) -> Option<Injected> {
    let mut edge = 0.0;
    for (rate, kind) in [
        (spec.drop_rate, Injected::Drop),
        (spec.throttle_rate, Injected::Throttle),
        (spec.error500_rate, Injected::Error500),
        (spec.error503_rate, Injected::Error503),
        (spec.error403_rate, Injected::Error403),
        (spec.empty_list_rate, Injected::EmptyList),
    ] {
        edge += rate.unwrap_or(0.0);
        if draw < edge {
            return Some(kind);
        }
    }
    None
}

/// Small deterministic generator (SplitMix64), so `--seed` replays the same fault sequence.
pub struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> Self {
        SplitMix(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// ARM throttling limits per (scope, principal, reads|writes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Budgets {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "read_burst")]
    pub read_burst: f64,
    #[serde(default = "read_rate")]
    pub read_rate: f64,
    #[serde(default = "write_burst")]
    pub write_burst: f64,
    #[serde(default = "write_rate")]
    pub write_rate: f64,
    /// The subscription-global bucket, shared by all principals, is this many times a principal's
    /// (ARM's 2024 model: 15x; reported in `x-ms-ratelimit-remaining-subscription-global-*`).
    #[serde(default = "global_multiplier")]
    pub global_multiplier: f64,
}

fn yes() -> bool {
    true
}
fn read_burst() -> f64 {
    250.0
}
fn read_rate() -> f64 {
    25.0
}
fn write_burst() -> f64 {
    200.0
}
fn write_rate() -> f64 {
    10.0
}
fn global_multiplier() -> f64 {
    15.0
}

impl Default for Budgets {
    fn default() -> Self {
        Budgets {
            enabled: true,
            read_burst: read_burst(),
            read_rate: read_rate(),
            write_burst: write_burst(),
            write_rate: write_rate(),
            global_multiplier: global_multiplier(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Read,
    Write,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Read => "reads",
            Kind::Write => "writes",
        }
    }
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// The throttling scope: a subscription, or the tenant for tenant-level URLs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    Subscription(String),
    Tenant(String),
}

impl Scope {
    pub fn header_prefix(&self) -> &'static str {
        match self {
            Scope::Subscription(_) => "subscription",
            Scope::Tenant(_) => "tenant",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// Tokens left after this request.
    Allowed(u64),
    /// Seconds until a token is available.
    Throttled(u64),
}

/// The principal slot of the shared subscription-global buckets (no client id looks like it).
const GLOBAL: &str = "*";

impl Budgets {
    /// (burst, refill per second) of a principal's bucket of this kind.
    pub fn of(&self, kind: Kind) -> (f64, f64) {
        match kind {
            Kind::Read => (self.read_burst, self.read_rate),
            Kind::Write => (self.write_burst, self.write_rate),
        }
    }
}

#[derive(Default)]
pub struct Buckets {
    map: HashMap<(Scope, String, Kind), Bucket>,
}

impl Buckets {
    pub fn clear(&mut self) {
        self.map.clear();
    }

    pub fn take(&mut self, limits: &Budgets, key: (Scope, String, Kind), now: Instant) -> Take {
        let (burst, rate) = limits.of(key.2);
        self.take_from(burst, rate, key, now)
    }

    /// A token from the subscription's bucket shared by every principal.
    pub fn take_global(&mut self, limits: &Budgets, sub: &str, kind: Kind, now: Instant) -> Take {
        let (burst, rate) = limits.of(kind);
        let m = limits.global_multiplier;
        let key = (
            Scope::Subscription(sub.to_string()),
            GLOBAL.to_string(),
            kind,
        );
        self.take_from(burst * m, rate * m, key, now)
    }

    fn take_from(
        &mut self,
        burst: f64,
        rate: f64,
        key: (Scope, String, Kind),
        now: Instant,
    ) -> Take {
        let b = self.map.entry(key).or_insert(Bucket {
            tokens: burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Take::Allowed(b.tokens.floor() as u64)
        } else {
            let wait = if rate > 0.0 {
                ((1.0 - b.tokens) / rate).ceil() as u64
            } else {
                3600
            };
            Take::Throttled(wait.max(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn op_entry_overrides_star() {
        let mut cfg = FaultConfig::new();
        cfg.insert(
            "*".into(),
            FaultSpec {
                latency_ms: Some(5),
                retry_after: Some(RetryAfter::Seconds(3)),
                ..Default::default()
            },
        );
        cfg.insert(
            "aks.get".into(),
            FaultSpec {
                retry_after: Some(RetryAfter::Verbatim("-5".into())),
                ..Default::default()
            },
        );
        let e = effective(&cfg, "aks.get");
        assert_eq!(
            (e.latency_ms, e.retry_after),
            (Some(5), Some(RetryAfter::Verbatim("-5".into())))
        );
        assert_eq!(
            effective(&cfg, "aci.exec").retry_after,
            Some(RetryAfter::Seconds(3))
        );
    }

    #[test]
    fn pick_respects_rates() {
        let spec = FaultSpec {
            throttle_rate: Some(1.0),
            ..Default::default()
        };
        assert_eq!(pick(&spec, 0.999), Some(Injected::Throttle));
        assert_eq!(pick(&FaultSpec::default(), 0.0), None);
    }

    #[test]
    fn seeded_generator_is_deterministic() {
        let (mut a, mut b) = (SplitMix::new(42), SplitMix::new(42));
        for _ in 0..10 {
            let x = a.next_f64();
            assert_eq!(x, b.next_f64());
            assert!((0.0..1.0).contains(&x));
        }
    }

    #[test]
    fn bucket_empties_and_refills() {
        let limits = Budgets {
            write_burst: 3.0,
            write_rate: 1.0,
            ..Default::default()
        };
        let mut b = Buckets::default();
        let key = (Scope::Subscription("s".into()), "c".into(), Kind::Write);
        let t0 = Instant::now();
        assert_eq!(b.take(&limits, key.clone(), t0), Take::Allowed(2));
        assert_eq!(b.take(&limits, key.clone(), t0), Take::Allowed(1));
        assert_eq!(b.take(&limits, key.clone(), t0), Take::Allowed(0));
        assert_eq!(b.take(&limits, key.clone(), t0), Take::Throttled(1));
        let later = t0 + Duration::from_millis(1100);
        assert_eq!(b.take(&limits, key, later), Take::Allowed(0));
    }

    #[test]
    fn the_global_bucket_is_shared_and_larger() {
        let limits = Budgets {
            write_burst: 2.0,
            write_rate: 0.5,
            global_multiplier: 1.5,
            ..Default::default()
        };
        let mut b = Buckets::default();
        let t0 = Instant::now();
        // 3 tokens for the subscription, whoever asks.
        assert_eq!(
            b.take_global(&limits, "s", Kind::Write, t0),
            Take::Allowed(2)
        );
        assert_eq!(
            b.take_global(&limits, "s", Kind::Write, t0),
            Take::Allowed(1)
        );
        assert_eq!(
            b.take_global(&limits, "s", Kind::Write, t0),
            Take::Allowed(0)
        );
        assert!(matches!(
            b.take_global(&limits, "s", Kind::Write, t0),
            Take::Throttled(_)
        ));
        assert_eq!(
            b.take_global(&limits, "other", Kind::Write, t0),
            Take::Allowed(2)
        );
    }
}
