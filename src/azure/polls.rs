//! When the next poll of each long-running operation may go: the `Retry-After` of ARM's last
//! answer for it, kept by the client itself.
//!
//! A caller schedules its next poll from that answer, but a reconcile can come early (a wake, a
//! watch event racing a requeue), and ARM counts a poll before its `Retry-After` as the client's
//! fault. So the client answers such a poll itself, "still running, ask again in …", without a
//! request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long past its instant a forgotten entry is kept (an operation nobody polls any more).
const KEPT_PAST: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Default)]
pub struct Polls {
    not_before: Arc<Mutex<HashMap<String, Instant>>>,
}

impl Polls {
    /// ARM said to wait `retry_after` before polling `operation` (its path) again.
    pub fn wait(&self, operation: &str, retry_after: Option<Duration>) {
        let Some(wait) = retry_after else {
            self.done(operation);
            return;
        };
        let now = Instant::now();
        let mut map = self.lock();
        // Entries of operations nobody polls any more go, from time to time.
        if map.len() >= 64 && map.len().is_power_of_two() {
            map.retain(|_, at| now < *at + KEPT_PAST);
        }
        map.insert(operation.to_ascii_lowercase(), now + wait);
    }

    /// How long a poll of `operation` must still wait (`None`: it may go now).
    pub fn too_early(&self, operation: &str) -> Option<Duration> {
        let at = *self.lock().get(&operation.to_ascii_lowercase())?;
        at.checked_duration_since(Instant::now())
            .filter(|left| !left.is_zero())
    }

    /// `operation` ended: nothing to wait for.
    pub fn done(&self, operation: &str) {
        self.lock().remove(&operation.to_ascii_lowercase());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.not_before.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poll_waits_for_the_last_retry_after_of_its_operation_only() {
        let polls = Polls::default();
        polls.wait("/Subs/1/commandResults/a", Some(Duration::from_secs(30)));
        let left = polls
            .too_early("/subs/1/commandresults/A")
            .expect("too early");
        assert!(left > Duration::from_secs(29) && left <= Duration::from_secs(30));
        assert_eq!(polls.too_early("/subs/1/commandResults/b"), None);
        polls.wait("/subs/1/commandResults/a", Some(Duration::ZERO));
        assert_eq!(polls.too_early("/subs/1/commandResults/a"), None);
        polls.wait("/subs/1/commandResults/a", Some(Duration::from_secs(30)));
        polls.done("/subs/1/commandResults/a");
        assert_eq!(polls.too_early("/subs/1/commandResults/a"), None);
    }
}
