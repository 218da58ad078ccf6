//! Client-side token buckets that keep the operator under ARM's request limits.
//!
//! ARM throttles per (subscription, principal, reads|writes|deletes) with a token bucket per region.
//! We mirror that with one bucket per (subscription, principal, kind), shared by every caller, and
//! pause a whole bucket when ARM answers 429 so no caller sends before `Retry-After` elapsed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::credentials::Principal;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    Read,
    Write,
}

impl OpKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Read => "read",
            OpKind::Write => "write",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BucketKey {
    pub subscription: String,
    pub principal: Principal,
    pub kind: OpKind,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketConfig {
    pub burst: f64,
    pub per_second: f64,
}

/// Defaults are 90% of ARM's public-cloud limits (writes 200/10 per s, reads 250/25 per s).
/// The margin leaves room for other clients of the same principal (az CLI, portal, other
/// controllers) and for requests ARM counts that we do not see (e.g. polls by the RP itself),
/// so that 429s stay the exception rather than the steady state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThrottleConfig {
    pub read: BucketConfig,
    pub write: BucketConfig,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            read: BucketConfig {
                burst: 225.0,
                per_second: 22.5,
            },
            write: BucketConfig {
                burst: 180.0,
                per_second: 9.0,
            },
        }
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
    paused_until: Option<Instant>,
}

/// Current fill of one bucket, for a gauge.
#[derive(Debug, Clone, PartialEq)]
pub struct BucketLevel {
    pub key: BucketKey,
    pub tokens: f64,
    pub paused: bool,
}

/// A bucket that is full, not paused and unused for this long is dropped: one is kept per
/// (subscription, principal) a tenant ever named, and a new one starts full anyway.
const IDLE_EVICTION: Duration = Duration::from_secs(600);

/// A waiting line: whoever holds the lock is at its head.
type Line = Arc<tokio::sync::Mutex<()>>;
/// A party's line, served oldest first ([`super::line`]).
type PartyLine = Arc<super::line::Line>;

#[derive(Debug, Default)]
pub struct Throttle {
    config: ThrottleConfig,
    buckets: Mutex<HashMap<BucketKey, Bucket>>,
    /// One waiting line per bucket: tokens are handed out in the order callers asked (tokio's
    /// mutex is fair), so nobody who came first waits for everyone who came later.
    queues: Mutex<HashMap<BucketKey, Line>>,
    /// In front of it, one line per (bucket, party): only the first of each party stands in the
    /// bucket's line, so its tokens go round the parties waiting (and in order within each) —
    /// a namespace that asks a thousand times does not put everyone else behind its thousand.
    party_lines: Mutex<HashMap<(BucketKey, String), PartyLine>>,
    last_sweep: Mutex<Option<Instant>>,
}

impl Throttle {
    pub fn new(config: ThrottleConfig) -> Arc<Self> {
        Arc::new(Self {
            config,
            buckets: Mutex::new(HashMap::new()),
            queues: Mutex::new(HashMap::new()),
            party_lines: Mutex::new(HashMap::new()),
            last_sweep: Mutex::new(None),
        })
    }

    /// Drops idle full buckets, at most once a minute (an O(buckets) walk).
    fn sweep(&self, buckets: &mut HashMap<BucketKey, Bucket>, now: Instant) {
        let mut last = self.last_sweep.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(60)) {
            return;
        }
        *last = Some(now);
        buckets.retain(|key, b| {
            let cfg = self.config_for(key.kind);
            let idle = now.saturating_duration_since(b.updated);
            let full = b.tokens + idle.as_secs_f64() * cfg.per_second >= cfg.burst;
            let paused = b.paused_until.is_some_and(|p| p > now);
            paused || !full || idle < IDLE_EVICTION
        });
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        queues.retain(|key, line| buckets.contains_key(key) || Arc::strong_count(line) > 1);
        let mut parties = self.party_lines.lock().unwrap_or_else(|e| e.into_inner());
        parties.retain(|(key, _), line| {
            buckets.contains_key(key) || Arc::strong_count(line) > 1 || line.in_use()
        });
    }

    fn config_for(&self, kind: OpKind) -> BucketConfig {
        match kind {
            OpKind::Read => self.config.read,
            OpKind::Write => self.config.write,
        }
    }

    /// The bucket of `key`, a full one when it is new.
    fn bucket<'b>(
        &self,
        buckets: &'b mut HashMap<BucketKey, Bucket>,
        key: &BucketKey,
        now: Instant,
    ) -> &'b mut Bucket {
        let cfg = self.config_for(key.kind);
        buckets.entry(key.clone()).or_insert_with(|| Bucket {
            tokens: cfg.burst,
            updated: now,
            paused_until: None,
        })
    }

    /// Takes one token, or says how long to wait before trying again.
    fn try_take(&self, key: &BucketKey, now: Instant) -> Result<(), Duration> {
        let cfg = self.config_for(key.kind);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        self.sweep(&mut buckets, now);
        let bucket = self.bucket(&mut buckets, key, now);
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * cfg.per_second).min(cfg.burst);
        bucket.updated = now;
        if let Some(until) = bucket.paused_until {
            if until > now {
                return Err(until - now);
            }
            bucket.paused_until = None;
        }
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let missing = 1.0 - bucket.tokens;
            Err(Duration::from_secs_f64(
                missing / cfg.per_second.max(f64::EPSILON),
            ))
        }
    }

    /// Waits (on tokio time) until the bucket grants `party` a token; returns how long it waited.
    /// Wrap in `tokio::time::timeout_at` to bound the wait by a deadline.
    pub async fn acquire(&self, key: &BucketKey, party: &str) -> Duration {
        self.acquire_in_order(key, party, None).await
    }

    /// [`Self::acquire`], the party's callers served in `order` (oldest first); a caller without
    /// one stands as created when it asked.
    pub async fn acquire_in_order(
        &self,
        key: &BucketKey,
        party: &str,
        order: Option<super::line::Order>,
    ) -> Duration {
        let start = Instant::now();
        let order = order.unwrap_or_else(|| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            (now, 0, String::new())
        });
        let own = self
            .party_lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((key.clone(), party.to_string()))
            .or_default()
            .clone();
        let _first_of_party = own.turn(order).await;
        let line = self
            .queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.clone())
            .or_default()
            .clone();
        // Only the head of the line waits for the bucket; the others wait for their turn.
        let _turn = line.lock().await;
        loop {
            match self.try_take(key, Instant::now()) {
                Ok(()) => return Instant::now() - start,
                Err(wait) => tokio::time::sleep(wait.max(Duration::from_millis(1))).await,
            }
        }
    }

    /// Stops every caller of `key` until `until` (ARM said 429 + Retry-After); never shortens a pause.
    /// The bucket is also emptied: ARM's bucket is, so our estimate of it should be too.
    pub fn pause_until(&self, key: &BucketKey, until: Instant) {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = self.bucket(&mut buckets, key, now);
        bucket.tokens = 0.0;
        bucket.updated = now.max(until);
        bucket.paused_until = Some(bucket.paused_until.map_or(until, |p| p.max(until)));
    }

    /// ARM said how many requests of this kind it still allows (`x-ms-ratelimit-remaining-*`):
    /// other clients of the same principal, or of the subscription as a whole, spend the same
    /// budget. Our estimate never holds more than 90% of what ARM reports (the same margin as the
    /// defaults); it is only ever lowered here, refilling does the rest.
    pub fn observe_remaining(&self, key: &BucketKey, remaining: f64) {
        if !remaining.is_finite() || remaining < 0.0 {
            return;
        }
        let cfg = self.config_for(key.kind);
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = self.bucket(&mut buckets, key, now);
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        if bucket.paused_until.is_none_or(|p| p <= now) {
            bucket.tokens = (bucket.tokens + elapsed * cfg.per_second).min(cfg.burst);
            bucket.updated = now;
        }
        bucket.tokens = bucket.tokens.min(remaining * 0.9);
    }

    /// Fill of every bucket in use (refilled to now), for metrics.
    pub fn levels(&self) -> Vec<BucketLevel> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        self.sweep(&mut buckets, now);
        buckets
            .iter()
            .map(|(key, b)| {
                let cfg = self.config_for(key.kind);
                let elapsed = now.saturating_duration_since(b.updated).as_secs_f64();
                BucketLevel {
                    key: key.clone(),
                    tokens: (b.tokens + elapsed * cfg.per_second).min(cfg.burst),
                    paused: b.paused_until.is_some_and(|p| p > now),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn arm_s_remaining_count_lowers_the_estimate_never_raises_it() {
        let t = Throttle::new(ThrottleConfig::default());
        let k = key(OpKind::Read);
        t.observe_remaining(&k, 10.0);
        let level = |t: &Throttle| t.levels()[0].tokens;
        assert!((level(&t) - 9.0).abs() < 0.01, "{}", level(&t));
        t.observe_remaining(&k, 1000.0);
        assert!(level(&t) < 9.1, "never raised: {}", level(&t));
        t.observe_remaining(&k, f64::NAN);
        t.observe_remaining(&k, -1.0);
        assert!(level(&t) >= 8.9);
    }

    fn key(kind: OpKind) -> BucketKey {
        BucketKey {
            subscription: "sub".into(),
            principal: Principal {
                tenant_id: "t".into(),
                client_id: "c".into(),
            },
            kind,
        }
    }

    fn small() -> Arc<Throttle> {
        Throttle::new(ThrottleConfig {
            read: BucketConfig {
                burst: 3.0,
                per_second: 1.0,
            },
            write: BucketConfig {
                burst: 2.0,
                per_second: 0.5,
            },
        })
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_go_to_callers_in_the_order_they_asked() {
        let t = small();
        let k = key(OpKind::Write);
        t.acquire(&k, "ns").await;
        t.acquire(&k, "ns").await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiters = Vec::new();
        for i in 0..6 {
            let (t, k, order) = (t.clone(), k.clone(), order.clone());
            waiters.push(tokio::spawn(async move {
                t.acquire(&k, "ns").await;
                order.lock().unwrap().push(i);
            }));
            // Let waiter i take its place in line before i + 1 asks.
            tokio::task::yield_now().await;
        }
        for w in waiters {
            w.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3, 4, 5]);
    }

    /// A namespace that asked six times first does not put a later one behind all six: the
    /// bucket's tokens alternate between the parties waiting, in order within each.
    #[tokio::test(start_paused = true)]
    async fn tokens_go_round_the_parties_waiting() {
        let t = small();
        let k = key(OpKind::Write);
        t.acquire(&k, "flood").await;
        t.acquire(&k, "flood").await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiters = Vec::new();
        let asks = (0..6)
            .map(|i| ("flood", i))
            .chain((0..2).map(|i| ("victim", i)));
        for (party, i) in asks {
            let (t, k, order) = (t.clone(), k.clone(), order.clone());
            waiters.push(tokio::spawn(async move {
                t.acquire(&k, party).await;
                order.lock().unwrap().push(format!("{party}{i}"));
            }));
            tokio::task::yield_now().await;
        }
        for w in waiters {
            w.await.unwrap();
        }
        assert_eq!(
            *order.lock().unwrap(),
            [
                "flood0", "victim0", "flood1", "victim1", "flood2", "flood3", "flood4", "flood5"
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_caller_does_not_take_the_token_an_earlier_one_waits_for() {
        let t = small();
        let k = key(OpKind::Write);
        t.acquire(&k, "ns").await;
        t.acquire(&k, "ns").await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let first = {
            let (t, k, order) = (t.clone(), k.clone(), order.clone());
            tokio::spawn(async move {
                t.acquire(&k, "ns").await;
                order.lock().unwrap().push("first");
            })
        };
        tokio::task::yield_now().await;
        // The next token is due now; a caller arriving at that instant must queue behind `first`.
        tokio::time::advance(Duration::from_secs(2)).await;
        t.acquire(&k, "ns").await;
        order.lock().unwrap().push("late");
        first.await.unwrap();
        assert_eq!(*order.lock().unwrap(), ["first", "late"]);
    }

    #[tokio::test(start_paused = true)]
    async fn burst_then_refill_rate() {
        let t = small();
        let k = key(OpKind::Read);
        for _ in 0..3 {
            assert_eq!(t.acquire(&k, "ns").await, Duration::ZERO);
        }
        let start = Instant::now();
        t.acquire(&k, "ns").await;
        t.acquire(&k, "ns").await;
        let waited = Instant::now() - start;
        assert!(
            waited >= Duration::from_secs(2) && waited < Duration::from_millis(2100),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn reads_and_writes_are_separate_buckets() {
        let t = small();
        for _ in 0..2 {
            t.acquire(&key(OpKind::Write), "ns").await;
        }
        assert_eq!(t.acquire(&key(OpKind::Read), "ns").await, Duration::ZERO);
        let start = Instant::now();
        t.acquire(&key(OpKind::Write), "ns").await;
        assert!(Instant::now() - start >= Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn pause_blocks_every_caller_until_the_instant() {
        let t = small();
        let k = key(OpKind::Read);
        let until = Instant::now() + Duration::from_secs(30);
        t.pause_until(&k, until);
        // A shorter pause later must not shorten the first one.
        t.pause_until(&k, Instant::now() + Duration::from_secs(1));
        assert!(t.levels().iter().all(|l| l.paused));
        let (a, b) = tokio::join!(t.acquire(&k, "ns"), t.acquire(&k, "ns"));
        assert!(
            a >= Duration::from_secs(30) && b >= Duration::from_secs(30),
            "{a:?} {b:?}"
        );
        assert!(Instant::now() >= until);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_full_buckets_are_dropped_and_paused_ones_kept() {
        let t = small();
        for n in 0..1000 {
            let mut k = key(OpKind::Read);
            k.subscription = format!("sub-{n}");
            t.acquire(&k, "ns").await;
        }
        let paused = key(OpKind::Write);
        t.pause_until(&paused, Instant::now() + Duration::from_secs(3600));
        assert_eq!(t.levels().len(), 1001);
        tokio::time::advance(IDLE_EVICTION + Duration::from_secs(61)).await;
        let left = t.levels();
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!(left[0].key, paused);
    }

    #[tokio::test(start_paused = true)]
    async fn levels_report_fill() {
        let t = small();
        let k = key(OpKind::Read);
        t.acquire(&k, "ns").await;
        let levels = t.levels();
        assert_eq!(levels.len(), 1);
        assert!((levels[0].tokens - 2.0).abs() < 0.01);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!((t.levels()[0].tokens - 3.0).abs() < 0.01, "capped at burst");
    }

    #[test]
    fn defaults_are_below_arm_limits() {
        let c = ThrottleConfig::default();
        assert!(c.read.burst < 250.0 && c.read.per_second < 25.0);
        assert!(c.write.burst < 200.0 && c.write.per_second < 10.0);
    }
}
