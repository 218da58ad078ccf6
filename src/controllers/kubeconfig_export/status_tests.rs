use super::*;
use crate::api::kubeconfig_export::{KubeconfigExportSpec, SecretSpec, Source};
use crate::controllers::conditions::{STALLED, status_of};

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn kcx(generation: i64, status: Option<KubeconfigExportStatus>) -> KubeconfigExport {
    let mut k = KubeconfigExport::new(
        "edge",
        KubeconfigExportSpec {
            source: Source::default(),
            authentication: Default::default(),
            secret: SecretSpec {
                name: "edge-kubeconfig".into(),
                ..Default::default()
            },
            refresh_interval: "1h".into(),
            credential_ref: None,
        },
    );
    k.metadata.generation = Some(generation);
    k.status = status;
    k
}

fn export(hash: &str, next: &str) -> Export {
    Export {
        secret_name: "edge-kubeconfig".into(),
        server: "https://edge:6443".into(),
        credential_name: "clusterUser".into(),
        content_hash: hash.into(),
        expires_at: Some(ts("2026-01-01T02:00:00Z")),
        next_refresh: ts(next),
    }
}

const T0: &str = "2026-01-01T00:00:00Z";

#[test]
fn fetch_is_due_on_new_generation_missing_schedule_or_time() {
    let now = ts(T0);
    assert!(needs_fetch(&kcx(1, None), now), "never fetched");
    let scheduled = KubeconfigExportStatus {
        observed_generation: 1,
        next_refresh_time: Some(Time(ts("2026-01-01T00:10:00Z"))),
        ..Default::default()
    };
    assert!(!needs_fetch(&kcx(1, Some(scheduled.clone())), now));
    assert_eq!(
        until_next(&kcx(1, Some(scheduled.clone())), now),
        Duration::from_secs(600)
    );
    assert!(
        needs_fetch(&kcx(2, Some(scheduled.clone())), now),
        "spec changed"
    );
    assert!(needs_fetch(
        &kcx(1, Some(scheduled.clone())),
        ts("2026-01-01T00:10:00Z")
    ));
    let unscheduled = KubeconfigExportStatus {
        observed_generation: 1,
        ..Default::default()
    };
    assert!(needs_fetch(&kcx(1, Some(unscheduled)), now));
}

#[test]
fn first_export_then_refresh_keeps_ready() {
    let now = ts(T0);
    let first = refreshing(&kcx(1, None), now);
    assert_eq!(status_of(&first.conditions, READY), Some("False"));
    assert_eq!(status_of(&first.conditions, RECONCILING), Some("True"));
    assert_eq!(first.reason.as_deref(), Some("Refreshing"));

    let done = exported(first, 1, &export("sha256:a", "2026-01-01T01:00:00Z"), now);
    assert_eq!(status_of(&done.conditions, READY), Some("True"));
    assert_eq!(status_of(&done.conditions, RECONCILING), None);
    assert_eq!(done.reason.as_deref(), Some("Exported"));
    assert_eq!(done.content_hash.as_deref(), Some("sha256:a"));
    assert_eq!(done.last_refresh_time, Some(Time(now)));
    assert_eq!(
        done.next_refresh_time,
        Some(Time(ts("2026-01-01T01:00:00Z")))
    );
    assert_eq!(done.expires_at, Some(Time(ts("2026-01-01T02:00:00Z"))));
    assert_eq!(done.secret_name.as_deref(), Some("edge-kubeconfig"));

    // A scheduled refresh of the same generation: Ready stays True, Reconciling is added.
    let later = ts("2026-01-01T01:00:00Z");
    let again = refreshing(&kcx(1, Some(done.clone())), later);
    assert_eq!(status_of(&again.conditions, READY), Some("True"));
    assert_eq!(status_of(&again.conditions, RECONCILING), Some("True"));
    let ready = again.conditions.iter().find(|c| c.type_ == READY).unwrap();
    assert_eq!(ready.last_transition_time, Time(now), "Ready did not flip");

    // A spec change is not a refresh: Ready goes False while fetching.
    let changed = refreshing(&kcx(2, Some(done)), later);
    assert_eq!(status_of(&changed.conditions, READY), Some("False"));
    assert_eq!(changed.observed_generation, 2);
}

#[test]
fn terminal_failure_stalls_and_keeps_the_last_good_export() {
    let now = ts(T0);
    let good = exported(
        KubeconfigExportStatus::default(),
        1,
        &export("sha256:good", "2026-01-01T01:00:00Z"),
        now,
    );
    let failure = Failure::terminal(
        Reason::InvalidKubeconfig,
        "kubeconfig \"x\" is not valid YAML",
    );
    let later = ts("2026-01-01T01:00:00Z");
    let at = retry_at(&good, &failure, Duration::from_secs(3600), later);
    assert_eq!(at, ts("2026-01-01T02:00:00Z"), "a refresh interval away");
    let s = failed(good.clone(), 1, &failure, at, later);
    assert_eq!(status_of(&s.conditions, READY), Some("False"));
    assert_eq!(status_of(&s.conditions, STALLED), Some("True"));
    assert_eq!(s.reason.as_deref(), Some("InvalidKubeconfig"));
    assert_eq!(s.content_hash.as_deref(), Some("sha256:good"));
    assert_eq!(s.last_refresh_time, good.last_refresh_time);
    assert_eq!(s.server, good.server);
    assert_eq!(s.next_refresh_time, Some(Time(at)));
}

#[test]
fn transient_failure_reconciles_with_growing_backoff() {
    let start = ts(T0);
    let base = refreshing(&kcx(1, None), start);
    let failure = Failure::transient(Reason::Retrying, "ARM answered 503");
    let s = failed(base, 1, &failure, start, start);
    assert_eq!(status_of(&s.conditions, RECONCILING), Some("True"));
    assert_eq!(status_of(&s.conditions, STALLED), None);
    assert_eq!(s.reason.as_deref(), Some("Retrying"));

    let cases: [(&str, Reason, u64); 5] = [
        ("2026-01-01T00:00:00Z", Reason::Retrying, 5),
        ("2026-01-01T00:00:00Z", Reason::Throttled, 10),
        ("2026-01-01T00:01:00Z", Reason::Retrying, 30),
        ("2026-01-01T00:04:00Z", Reason::Retrying, 120),
        ("2026-01-01T03:00:00Z", Reason::Retrying, 300),
    ];
    for (now, reason, secs) in cases {
        let f = Failure::transient(reason, "x");
        assert_eq!(
            retry_delay(&s, &f, ts(now)),
            Duration::from_secs(secs),
            "{now} {reason}"
        );
    }
    assert_eq!(
        retry_at(&s, &failure, Duration::from_secs(3600), ts(T0)),
        ts("2026-01-01T00:00:05Z")
    );
}

#[test]
fn exported_event_notes_say_what_changed_without_content() {
    let first = change_note(
        &KubeconfigExportStatus::default(),
        &export("sha256:a", "2026-01-01T01:00:00Z"),
    );
    assert!(first.starts_with("wrote Secret edge-kubeconfig"), "{first}");

    let previous = exported(
        KubeconfigExportStatus::default(),
        1,
        &export("sha256:a", "2026-01-01T01:00:00Z"),
        ts(T0),
    );
    let mut rotated = export("sha256:b", "2026-01-01T02:00:00Z");
    assert_eq!(
        change_note(&previous, &rotated),
        "updated Secret edge-kubeconfig: credentials or Secret layout changed"
    );
    rotated.expires_at = Some(ts("2026-01-01T03:00:00Z"));
    rotated.server = "https://edge-2:6443".into();
    let note = change_note(&previous, &rotated);
    assert!(
        note.contains("server (https://edge:6443 → https://edge-2:6443)")
            && note.contains("credential expiry"),
        "{note}"
    );
    let restored = change_note(&previous, &export("sha256:a", "2026-01-01T02:00:00Z"));
    assert!(restored.contains("content unchanged"), "{restored}");
    for n in [first, note, restored] {
        assert!(!n.contains("sha256"), "no hashes or content: {n}");
    }
}
