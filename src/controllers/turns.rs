//! A namespace's places among the running reconciles, handed out oldest first.
//!
//! A namespace runs at most `places` reconciles at once, so that it cannot take every place
//! of the controllers from the others. A reconcile that finds its namespace's places taken does
//! not wait for one (it would hold a controller place meanwhile): it leaves a ticket and requeues.
//! Tickets are kept in order of the object's age (creation time, then name). A place given back
//! wakes the oldest ticket, and a free place goes to a newcomer only when no older ticket waits.
//! So commands are dispatched in the order they were created, and the poll of a command created
//! earlier goes before the dispatch of one created later. Without tickets, the reconciles turned
//! away drew lots every few seconds: a command could be overtaken by hundreds created after it,
//! and a result already out at ARM waited behind dispatches.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Asks the object's controller to reconcile it again (a wake lost on the way is made up for by
/// the requeue every turned-away reconcile also asks for).
pub type Wake = Arc<dyn Fn() + Send + Sync>;

pub use super::arrivals::Age;

/// A reconcile's claim to its turn.
#[derive(Clone)]
pub struct Ticket {
    pub age: Age,
    pub wake: Wake,
}

/// How long a woken ticket keeps its place in line before whoever comes next may take it (its
/// object was deleted, or its controller is slow to come back).
const WOKEN_KEEPS_ITS_PLACE: Duration = Duration::from_secs(1);

/// How long a ticket left for an object seen by the watch ([`Turns::expect`]) waits for the
/// object's reconcile to claim it (it does within milliseconds unless the object went).
const CLAIMED_WITHIN: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Line {
    running: usize,
    /// Whether what the holders wait for is short (the line then admits `short` at once).
    short: bool,
    waiting: BTreeMap<Age, Waiter>,
    /// Tickets left by the watch, with when: forgotten from the front once unclaimed too long.
    expected: VecDeque<(Instant, Age)>,
    /// Tickets woken and not back yet, with when they were woken.
    woken: BTreeMap<Age, Instant>,
}

struct Waiter {
    wake: Wake,
    /// Left by the watch, not by a reconcile turned away.
    expected: bool,
}

impl Line {
    /// Whether a place is free for `age`: none of the older tickets still waits for its wake, and
    /// the places free outnumber the older tickets woken and on their way back (each keeps one).
    /// A younger ticket that finds room beside them goes in: turned away, it would be woken
    /// again at once, and again, until the elder came back.
    fn room_for(&self, age: &Age, places: usize) -> bool {
        let older_waiting = self.waiting.range(..age).next().is_some();
        let older_woken = self.woken.range(..age).count();
        !older_waiting && self.running + older_woken < places
    }

    /// Wakes the oldest waiting ticket when a place is free for it.
    fn wake_oldest(&mut self, places: usize, now: Instant) {
        if self.running + self.woken.len() >= places {
            return;
        }
        if let Some((age, waiter)) = self.waiting.pop_first() {
            self.woken.insert(age, now);
            // A ticket of the watch is not woken: its reconcile is on its way, and a wake that
            // reached it running would run it again at once, before its requeue.
            if !waiter.expected {
                (waiter.wake)();
            }
        }
    }

    /// Drops what no longer holds a place: woken tickets that did not come back in time, and
    /// tickets of the watch that no reconcile claimed.
    fn forget_stale(&mut self, now: Instant) {
        self.woken
            .retain(|_, at| now.duration_since(*at) < WOKEN_KEEPS_ITS_PLACE);
        while let Some((at, _)) = self.expected.front() {
            if now.duration_since(*at) < CLAIMED_WITHIN {
                break;
            }
            if let Some((_, age)) = self.expected.pop_front()
                && self.waiting.get(&age).is_some_and(|w| w.expected)
            {
                self.waiting.remove(&age);
            }
        }
    }
}

type Lines = Arc<Mutex<HashMap<String, Line>>>;

pub struct Turns {
    places: usize,
    /// Places of a line marked short ([`Share::mark_short`]).
    short: usize,
    lines: Lines,
}

/// One of a namespace's running reconciles; gives its place back (and wakes the oldest ticket)
/// when dropped.
pub struct Share {
    namespace: String,
    lines: Lines,
    places: usize,
}

impl Turns {
    pub fn new(places: usize) -> Self {
        Self::with_short(places, places)
    }

    /// Lines of `places`, and of `short` places while what they wait for is short.
    pub fn with_short(places: usize, short: usize) -> Self {
        Self {
            places: places.max(1),
            short: short.clamp(1, places.max(1)),
            lines: Default::default(),
        }
    }

    /// A place in `namespace`'s line (or any line: a key), or `None`: the caller requeues (after
    /// [`super::limits::SHARE_RETRY`] at the latest) without doing anything, and with a ticket it
    /// is woken when its turn comes. Without a ticket a caller is not ordered (kinds with few
    /// objects), and takes any free place.
    pub fn enter(&self, namespace: &str, ticket: Option<Ticket>) -> Option<Share> {
        let now = Instant::now();
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let line = lines.entry(namespace.to_string()).or_default();
        line.forget_stale(now);
        if let Some(t) = &ticket {
            line.woken.remove(&t.age);
        }
        let places = if line.short { self.short } else { self.places };
        let admitted = match &ticket {
            Some(t) => line.room_for(&t.age, places),
            None => line.running < places,
        };
        if admitted {
            if let Some(t) = &ticket {
                line.waiting.remove(&t.age);
            }
            line.running += 1;
            return Some(Share {
                namespace: namespace.to_string(),
                lines: self.lines.clone(),
                places,
            });
        }
        if let Some(t) = ticket {
            let waiter = Waiter {
                wake: t.wake,
                expected: false,
            };
            line.waiting.insert(t.age, waiter);
        }
        // A free place while older tickets wait (a woken one did not come back in time): the
        // next one in line is woken.
        line.wake_oldest(places, now);
        None
    }

    /// Leaves `ticket` in `key`'s line for an object the watch just saw, before its reconcile
    /// comes: when hundreds come at once (a start-up, a burst applied), the first reconciles to
    /// run do not take the places of older objects whose reconciles are still on their way. The
    /// object's reconcile claims it; unclaimed, it is forgotten after [`CLAIMED_WITHIN`].
    pub fn expect(&self, key: &str, ticket: Ticket) {
        let now = Instant::now();
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let line = lines.entry(key.to_string()).or_default();
        line.forget_stale(now);
        if line.waiting.contains_key(&ticket.age) || line.woken.contains_key(&ticket.age) {
            return;
        }
        line.expected.push_back((now, ticket.age.clone()));
        let waiter = Waiter {
            wake: ticket.wake,
            expected: true,
        };
        line.waiting.insert(ticket.age, waiter);
    }
}

impl Share {
    /// Says whether what this line's holders wait for is short: a short line admits fewer.
    pub fn mark_short(&self, short: bool) {
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(line) = lines.get_mut(&self.namespace) {
            line.short = short;
        }
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(line) = lines.get_mut(&self.namespace) {
            line.running = line.running.saturating_sub(1);
            let now = Instant::now();
            line.forget_stale(now);
            line.wake_oldest(self.places, now);
            if line.running == 0 && line.waiting.is_empty() && line.woken.is_empty() {
                lines.remove(&self.namespace);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn ticket(created: i64, name: &str, woken: &Arc<Mutex<Vec<String>>>) -> Option<Ticket> {
        let (woken, name_) = (woken.clone(), name.to_string());
        Some(Ticket {
            age: (created, 0, name.to_string()),
            wake: Arc::new(move || woken.lock().unwrap().push(name_.clone())),
        })
    }

    #[test]
    fn a_namespace_gets_its_share_and_no_more() {
        let turns = Turns::new(2);
        let a1 = turns.enter("a", None).expect("first");
        let _a2 = turns.enter("a", None).expect("second");
        assert!(turns.enter("a", None).is_none(), "a has its share");
        assert!(turns.enter("b", None).is_some(), "b is not held back by a");
        drop(a1);
        assert!(turns.enter("a", None).is_some(), "a's place came back");
    }

    #[test]
    fn places_go_to_the_oldest_ticket_not_to_whoever_asks_first() {
        let woken = Arc::new(Mutex::new(Vec::new()));
        let turns = Turns::new(1);
        let running = turns.enter("ns", ticket(10, "first", &woken)).unwrap();
        // Turned away in this order: younger first.
        assert!(turns.enter("ns", ticket(12, "young", &woken)).is_none());
        assert!(turns.enter("ns", ticket(11, "old", &woken)).is_none());
        drop(running);
        assert_eq!(
            *woken.lock().unwrap(),
            ["old"],
            "the oldest ticket is woken"
        );
        // The younger one comes back before the woken one does: the place waits for the elder.
        assert!(turns.enter("ns", ticket(12, "young", &woken)).is_none());
        let old = turns.enter("ns", ticket(11, "old", &woken));
        assert!(old.is_some(), "the oldest takes the place");
        drop(old);
        assert_eq!(*woken.lock().unwrap(), ["old", "young"]);
        assert!(turns.enter("ns", ticket(12, "young", &woken)).is_some());
    }

    #[test]
    fn a_woken_ticket_back_before_an_elder_goes_in_when_there_is_room_for_both() {
        let woken = Arc::new(Mutex::new(Vec::new()));
        let turns = Turns::new(2);
        let running = [turns.enter("ns", None), turns.enter("ns", None)];
        assert!(turns.enter("ns", ticket(10, "old", &woken)).is_none());
        assert!(turns.enter("ns", ticket(11, "young", &woken)).is_none());
        drop(running);
        assert_eq!(*woken.lock().unwrap(), ["old", "young"]);
        // The younger one's reconcile comes back first: a place is left for the elder, so it
        // goes in, instead of being turned away and woken again, over and over.
        let young = turns.enter("ns", ticket(11, "young", &woken));
        assert!(young.is_some(), "room for both: the younger goes in");
        assert_eq!(woken.lock().unwrap().len(), 2, "nobody was woken again");
        assert!(turns.enter("ns", ticket(12, "newcomer", &woken)).is_none());
        assert!(turns.enter("ns", ticket(10, "old", &woken)).is_some());
    }

    #[test]
    fn a_line_marked_short_admits_fewer() {
        let turns = Turns::with_short(4, 1);
        let first = turns.enter("line", None).unwrap();
        let _second = turns.enter("line", None).expect("roomy: up to 4");
        first.mark_short(true);
        assert!(
            turns.enter("line", None).is_none(),
            "short: 1, and 2 hold places"
        );
        drop(first);
        assert!(turns.enter("line", None).is_none(), "still 1 holder: full");
    }

    #[test]
    fn a_lost_wake_does_not_keep_a_free_place_empty() {
        let woken = Arc::new(AtomicUsize::new(0));
        let turns = Turns::new(1);
        let running = turns.enter("ns", None).unwrap();
        let count = woken.clone();
        let gone = Some(Ticket {
            age: (1, 0, "deleted-meanwhile".into()),
            wake: Arc::new(move || {
                count.fetch_add(1, Ordering::SeqCst);
            }),
        });
        assert!(turns.enter("ns", gone).is_none());
        drop(running);
        assert_eq!(woken.load(Ordering::SeqCst), 1);
        let names = Arc::new(Mutex::new(Vec::new()));
        assert!(
            turns.enter("ns", ticket(5, "next", &names)).is_none(),
            "the place is kept for the woken one a moment"
        );
        // Its object never comes back; the next in line is not kept out for long.
        {
            let mut lines = turns.lines.lock().unwrap();
            let line = lines.get_mut("ns").unwrap();
            for at in line.woken.values_mut() {
                *at -= WOKEN_KEEPS_ITS_PLACE;
            }
        }
        assert!(turns.enter("ns", ticket(5, "next", &names)).is_some());
    }
    #[test]
    fn a_ticket_left_by_the_watch_keeps_younger_reconciles_from_going_first() {
        let woken = Arc::new(Mutex::new(Vec::new()));
        let turns = Turns::new(1);
        // The watch saw both; the younger one's reconcile happens to run first.
        turns.expect("ns", ticket(10, "old", &woken).unwrap());
        turns.expect("ns", ticket(10, "young", &woken).unwrap());
        assert!(
            turns.enter("ns", ticket(10, "young", &woken)).is_none(),
            "the place is the elder's"
        );
        assert!(
            woken.lock().unwrap().is_empty(),
            "the elder's reconcile is on its way: no wake to run it twice"
        );
        let old = turns.enter("ns", ticket(10, "old", &woken));
        assert!(old.is_some());
        drop(old);
        assert_eq!(*woken.lock().unwrap(), ["young"]);
        assert!(turns.enter("ns", ticket(10, "young", &woken)).is_some());
    }

    #[test]
    fn a_ticket_no_reconcile_claims_is_forgotten() {
        let woken = Arc::new(Mutex::new(Vec::new()));
        let turns = Turns::new(1);
        let running = turns.enter("ns", None).unwrap();
        turns.expect(
            "ns",
            ticket(1, "deleted-before-its-reconcile", &woken).unwrap(),
        );
        assert!(turns.enter("ns", ticket(2, "next", &woken)).is_none());
        {
            let mut lines = turns.lines.lock().unwrap();
            for (at, _) in lines.get_mut("ns").unwrap().expected.iter_mut() {
                *at -= CLAIMED_WITHIN;
            }
        }
        drop(running);
        assert_eq!(*woken.lock().unwrap(), ["next"], "not the unclaimed one");
    }
}
