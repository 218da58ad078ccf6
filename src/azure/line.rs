//! A waiting line served oldest first: one holder at a time, the waiter with the smallest
//! [`Order`] next (ties in order of arrival).
//!
//! The token buckets ([`super::throttle`]) put each party's callers in such a line, so that when
//! a bucket is short the command created first is sent first and the poll of an older command
//! goes before the poll of a newer one — not whichever reconcile reached the bucket first.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// Where a caller stands: its command's creation time (seconds since the epoch), then the order in
/// which commands of that second arrived, then its name.
pub type Order = (i64, u64, String);

#[derive(Default, Debug)]
struct State {
    held: bool,
    next_seq: u64,
    waiting: BTreeMap<(Order, u64), oneshot::Sender<()>>,
}

#[derive(Default, Debug)]
pub struct Line {
    state: Mutex<State>,
}

/// The line's one holder; the next in line goes when it is dropped.
pub struct Turn {
    line: Arc<Line>,
}

/// A waiter's place: if its wait is given up after its turn came, the turn is passed on.
struct Place {
    line: Arc<Line>,
    key: Option<(Order, u64)>,
}

impl Line {
    /// Waits until every caller with a smaller order (and those of the same order that came
    /// earlier) had their turn.
    pub async fn turn(self: &Arc<Self>, order: Order) -> Turn {
        let (sent, granted) = oneshot::channel();
        let key = {
            let mut state = self.lock();
            if !state.held {
                state.held = true;
                return Turn { line: self.clone() };
            }
            let key = (order, state.next_seq);
            state.next_seq += 1;
            state.waiting.insert(key.clone(), sent);
            key
        };
        let mut place = Place {
            line: self.clone(),
            key: Some(key),
        };
        // The sender lives in the line until the turn is handed over: never cancelled.
        let _ = granted.await;
        place.key = None;
        Turn { line: self.clone() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands the turn to the first waiter still waiting, or frees the line.
    fn pass_on(&self) {
        let mut state = self.lock();
        while let Some((_, next)) = state.waiting.pop_first() {
            if next.send(()).is_ok() {
                return;
            }
        }
        state.held = false;
    }

    /// Whether anyone holds or waits for the line (an idle line may be dropped).
    pub fn in_use(&self) -> bool {
        let state = self.lock();
        state.held || !state.waiting.is_empty()
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.line.pass_on();
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else {
            return;
        };
        let gone = self.line.lock().waiting.remove(&key).is_some();
        if !gone {
            // The turn was handed to this waiter as it gave up: pass it on.
            self.line.pass_on();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn order(created: i64, name: &str) -> Order {
        (created, 0, name.to_string())
    }

    #[tokio::test]
    async fn the_oldest_waiter_goes_next_whatever_its_arrival() {
        let line = Arc::new(Line::default());
        let first = line.turn(order(5, "a")).await;
        let served = Arc::new(Mutex::new(Vec::new()));
        let mut waiters = Vec::new();
        for (created, name) in [(9, "young"), (7, "old"), (7, "old-b"), (8, "mid")] {
            let (mine, served) = (line.clone(), served.clone());
            waiters.push(tokio::spawn(async move {
                let _turn = mine.turn(order(created, name)).await;
                served.lock().unwrap().push(name);
            }));
            // Each is in line before the next arrives.
            while line.lock().waiting.len() < waiters.len() {
                tokio::task::yield_now().await;
            }
        }
        drop(first);
        for w in waiters {
            w.await.unwrap();
        }
        assert_eq!(*served.lock().unwrap(), ["old", "old-b", "mid", "young"]);
        assert!(!line.in_use());
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_does_not_stall_the_line() {
        let line = Arc::new(Line::default());
        let first = line.turn(order(1, "a")).await;
        let quitter = tokio::time::timeout(Duration::from_millis(10), line.turn(order(2, "q")));
        assert!(quitter.await.is_err());
        let next = {
            let line = line.clone();
            tokio::spawn(async move { line.turn(order(3, "n")).await })
        };
        while line.lock().waiting.is_empty() {
            tokio::task::yield_now().await;
        }
        drop(first);
        let turn = next.await.unwrap();
        drop(turn);
        assert!(!line.in_use());
    }
}
