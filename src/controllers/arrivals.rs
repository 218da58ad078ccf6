//! The order in which objects arrived, finer than their creation second.
//!
//! `creationTimestamp` keeps whole seconds, and a burst puts dozens of commands in one second: by
//! name alone, `heavy-0` went before `over-0` created a second's fraction earlier. The watch
//! delivers new objects in the order the API server stored them, so the operator numbers each
//! object the first time it sees it; objects of the same second stand in that order. After a
//! restart the first sight is the initial list (by name), which is what the second's name order
//! said anyway.
//!
//! Only objects created within [`REMEMBERED_FOR`] are numbered (at most [`REMEMBERED`] of them):
//! ties within a second matter while a burst is served, and an object older than that stands by
//! its name among its second's peers — all of them at once, so no two swap places twice.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use kube::Resource;

/// Where an object stands in line: its creation second, then its arrival, then its name.
pub type Age = crate::azure::line::Order;

/// How long after its creation an object's arrival is remembered.
pub const REMEMBERED_FOR: Duration = Duration::from_secs(15 * 60);

/// The most arrivals remembered at once (a namespace creating objects as fast as the API server
/// lets it cannot grow the operator without bound; past this, a second's peers stand by name).
pub const REMEMBERED: usize = 100_000;

/// The arrival of an object not numbered: after every numbered peer of its second.
const UNNUMBERED: u64 = u64::MAX;

#[derive(Default)]
pub struct Arrivals {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    next: u64,
    /// The arrival of each object remembered, by uid.
    seen: HashMap<String, u64>,
    /// The same uids in order of arrival, with their creation second: forgotten from the front.
    order: VecDeque<(i64, String)>,
}

fn now_secs() -> i64 {
    k8s_openapi::jiff::Timestamp::now().as_second()
}

fn created<K: Resource>(obj: &K) -> i64 {
    obj.meta()
        .creation_timestamp
        .as_ref()
        .map_or(0, |t| t.0.as_second())
}

impl Arrivals {
    /// Numbers `obj` if this is the first time it is seen (called from the watch, in its order).
    pub fn note<K: Resource>(&self, obj: &K) {
        self.note_at(obj, now_secs());
    }

    fn note_at<K: Resource>(&self, obj: &K, now: i64) {
        let (created, cutoff) = (created(obj), now - REMEMBERED_FOR.as_secs() as i64);
        let Some(uid) = obj.meta().uid.as_deref().filter(|_| created >= cutoff) else {
            return;
        };
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while state.order.front().is_some_and(|(at, _)| *at < cutoff) {
            if let Some((_, gone)) = state.order.pop_front() {
                state.seen.remove(&gone);
            }
        }
        if state.seen.contains_key(uid) || state.seen.len() >= REMEMBERED {
            return;
        }
        let next = state.next;
        state.next += 1;
        state.seen.insert(uid.to_string(), next);
        state.order.push_back((created, uid.to_string()));
    }

    /// `obj`'s place in line.
    pub fn age<K: Resource>(&self, obj: &K) -> Age {
        self.age_at(obj, now_secs())
    }

    fn age_at<K: Resource>(&self, obj: &K, now: i64) -> Age {
        let meta = obj.meta();
        let created = created(obj);
        let arrival = if created < now - REMEMBERED_FOR.as_secs() as i64 {
            UNNUMBERED
        } else {
            let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            meta.uid
                .as_ref()
                .and_then(|uid| state.seen.get(uid).copied())
                .unwrap_or(UNNUMBERED)
        };
        (created, arrival, meta.name.clone().unwrap_or_default())
    }

    /// How many arrivals are remembered (a gauge for tests).
    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.state.lock().unwrap().seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn object(name: &str, created: i64) -> ConfigMap {
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some(name.into());
        cm.metadata.uid = Some(format!("uid-{name}"));
        cm.metadata.creation_timestamp = Some(Time(
            k8s_openapi::jiff::Timestamp::from_second(created).unwrap(),
        ));
        cm
    }

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn objects_of_one_second_stand_in_the_order_they_arrived_not_by_name() {
        let arrivals = Arrivals::default();
        let (over, heavy) = (object("over-9", NOW), object("heavy-0", NOW));
        arrivals.note_at(&over, NOW);
        arrivals.note_at(&heavy, NOW);
        arrivals.note_at(&over, NOW);
        assert!(arrivals.age_at(&over, NOW) < arrivals.age_at(&heavy, NOW));
        // A second earlier is earlier, whenever it was seen.
        let earlier = object("z", NOW - 1);
        arrivals.note_at(&earlier, NOW);
        assert!(arrivals.age_at(&earlier, NOW) < arrivals.age_at(&over, NOW));
    }

    #[test]
    fn old_arrivals_are_forgotten_and_their_second_stands_by_name() {
        let arrivals = Arrivals::default();
        let (b, a) = (object("b", NOW), object("a", NOW));
        arrivals.note_at(&b, NOW);
        arrivals.note_at(&a, NOW);
        let later = NOW + REMEMBERED_FOR.as_secs() as i64 + 1;
        assert!(arrivals.age_at(&a, later) < arrivals.age_at(&b, later));
        arrivals.note_at(&object("new", later), later);
        assert_eq!(arrivals.remembered(), 1, "a and b are forgotten");
        // Too old to number when first seen (a restart long after a burst).
        arrivals.note_at(&object("old", NOW), later);
        assert_eq!(arrivals.remembered(), 1);
    }

    #[test]
    fn what_is_remembered_is_bounded() {
        let arrivals = Arrivals::default();
        {
            let mut state = arrivals.state.lock().unwrap();
            for i in 0..REMEMBERED {
                state.seen.insert(format!("x{i}"), i as u64);
            }
        }
        let late = object("late", NOW);
        arrivals.note_at(&late, NOW);
        assert_eq!(arrivals.remembered(), REMEMBERED);
        assert_eq!(arrivals.age_at(&late, NOW).1, UNNUMBERED);
    }
}
