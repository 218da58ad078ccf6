//! Publishing Events: kube's `Recorder`, except that a different note makes a different Event.
//!
//! kube-runtime's `Recorder` folds an Event into the series of an earlier one (a PATCH of
//! `series.count`) when type, reason, action, reporter, `regarding` and `related` match; the note
//! is not compared, so the series keeps the note of its first Event. An export that wrote
//! Secret `a` and then Secret `b` would show one Event, "wrote Secret a", counted twice. Each
//! Recorder caches the series it has started, so one Recorder per key *with* the note keeps kube's
//! create-then-patch logic for true repeats and starts a new Event whenever the note changes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use sha2::{Digest, Sha256};

/// How long a series stays open without a repeat: kube's Recorder forgets a series after six
/// minutes too, so a Recorder idle that long has nothing left to fold into.
const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);

/// What makes two Events "the same": kube's key plus a digest of the note. The reporter is one
/// per process and so left out; `related` is never set by kubeinvoke.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct SeriesKey {
    regarding: [Option<String>; 5],
    type_: EventType,
    reason: String,
    action: String,
    note: [u8; 32],
}

impl SeriesKey {
    fn of(event: &Event, regarding: &ObjectReference) -> Self {
        let note = Sha256::digest(event.note.as_deref().unwrap_or_default().as_bytes());
        Self {
            regarding: [
                regarding.api_version.clone(),
                regarding.kind.clone(),
                regarding.namespace.clone(),
                regarding.name.clone(),
                regarding.uid.clone(),
            ],
            type_: event.type_,
            reason: event.reason.clone(),
            action: event.action.clone(),
            note: note.into(),
        }
    }
}

/// One value per key, dropped after [`SERIES_WINDOW`] without use.
struct PerKey<T> {
    entries: HashMap<SeriesKey, (Instant, T)>,
}

impl<T: Clone> PerKey<T> {
    fn new() -> Self {
        Self {
            entries: HashMap::new(),
        }
    }

    fn get_or_insert_with(&mut self, key: SeriesKey, now: Instant, make: impl FnOnce() -> T) -> T {
        self.entries
            .retain(|_, (used, _)| now.saturating_duration_since(*used) < SERIES_WINDOW);
        let entry = self.entries.entry(key).or_insert_with(|| (now, make()));
        entry.0 = now;
        entry.1.clone()
    }
}

/// Publishes Events with kube's `Recorder`, one Recorder per [`SeriesKey`].
pub struct Events {
    client: Client,
    reporter: Reporter,
    recorders: Mutex<PerKey<Recorder>>,
}

impl Events {
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Self {
            client,
            reporter,
            recorders: Mutex::new(PerKey::new()),
        }
    }

    /// Creates the Event, or counts a repeat in the series of an identical one (same note
    /// included) published in the last six minutes.
    pub async fn publish(
        &self,
        event: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let recorder = self
            .recorders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(SeriesKey::of(event, regarding), Instant::now(), || {
                Recorder::new(self.client.clone(), self.reporter.clone())
            });
        recorder.publish(event, regarding).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(reason: &str, note: &str) -> Event {
        Event {
            type_: EventType::Normal,
            reason: reason.to_string(),
            note: Some(note.to_string()),
            action: "Export".to_string(),
            secondary: None,
        }
    }

    fn object(name: &str, uid: &str) -> ObjectReference {
        ObjectReference {
            api_version: Some("kubeinvoke.io/v1alpha1".into()),
            kind: Some("KubeconfigExport".into()),
            namespace: Some("team-a".into()),
            name: Some(name.into()),
            uid: Some(uid.into()),
            ..Default::default()
        }
    }

    #[test]
    fn the_note_is_part_of_the_key() {
        let edge = object("edge", "u1");
        let a = SeriesKey::of(&event("Exported", "wrote Secret a"), &edge);
        assert_eq!(
            a,
            SeriesKey::of(&event("Exported", "wrote Secret a"), &edge)
        );
        assert_ne!(
            a,
            SeriesKey::of(&event("Exported", "wrote Secret b"), &edge)
        );
        assert_ne!(
            a,
            SeriesKey::of(&event("Refreshed", "wrote Secret a"), &edge)
        );
        assert_ne!(
            a,
            SeriesKey::of(&event("Exported", "wrote Secret a"), &object("edge", "u2")),
            "a re-created object (new uid) starts its own series"
        );
        let mut warning = event("Exported", "wrote Secret a");
        warning.type_ = EventType::Warning;
        assert_ne!(a, SeriesKey::of(&warning, &edge));
    }

    #[test]
    fn repeats_share_a_recorder_until_the_window_passes() {
        let edge = object("edge", "u1");
        let key = |note: &str| SeriesKey::of(&event("Exported", note), &edge);
        let mut made = 0;
        let mut next = || {
            made += 1;
            made
        };
        let mut per_key = PerKey::new();
        let t0 = Instant::now();
        assert_eq!(per_key.get_or_insert_with(key("a"), t0, &mut next), 1);
        let t1 = t0 + Duration::from_secs(60);
        assert_eq!(per_key.get_or_insert_with(key("a"), t1, &mut next), 1);
        assert_eq!(per_key.get_or_insert_with(key("b"), t1, &mut next), 2);
        // Each use restarts the window.
        let t2 = t1 + Duration::from_secs(5 * 60);
        assert_eq!(per_key.get_or_insert_with(key("a"), t2, &mut next), 1);
        let t3 = t2 + Duration::from_secs(5 * 60);
        assert_eq!(per_key.get_or_insert_with(key("a"), t3, &mut next), 1);
        // "b" idled for ten minutes: dropped, and a later "b" starts afresh.
        assert_eq!(per_key.entries.len(), 1, "idle entries are dropped");
        assert_eq!(per_key.get_or_insert_with(key("b"), t3, &mut next), 3);
        let t4 = t3 + SERIES_WINDOW;
        assert_eq!(per_key.get_or_insert_with(key("a"), t4, &mut next), 4);
    }
}
