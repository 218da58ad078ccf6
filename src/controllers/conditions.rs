//! kstatus conditions (`Ready`, `Reconciling`, `Stalled`) as `metav1.Condition`s: one of each type
//! at most, and `lastTransitionTime` moves only when a condition's status flips.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

pub const READY: &str = "Ready";
pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";

/// The state a resource is in, as kstatus (Flux, `kubectl wait`) and Argo CD read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Work is under way: `Reconciling=True`, `Ready=False`.
    Progressing,
    /// Done and good: `Ready=True`.
    Ready,
    /// Done and failed for good: `Ready=False`, `Stalled=True`.
    Stalled,
}

/// Sets the kstatus conditions for `health` with `reason`/`message`, keeping the
/// `lastTransitionTime` of conditions whose status does not change. Conditions of other types are
/// kept as they are.
pub fn apply(
    conditions: &mut Vec<Condition>,
    health: Health,
    reason: &str,
    message: &str,
    generation: i64,
    now: &Time,
) {
    let (ready, reconciling, stalled) = match health {
        Health::Progressing => ("False", Some("True"), None),
        Health::Ready => ("True", None, None),
        Health::Stalled => ("False", None, Some("True")),
    };
    set(conditions, READY, ready, reason, message, generation, now);
    match reconciling {
        Some(status) => set(
            conditions,
            RECONCILING,
            status,
            reason,
            message,
            generation,
            now,
        ),
        None => remove(conditions, RECONCILING),
    }
    match stalled {
        Some(status) => set(
            conditions, STALLED, status, reason, message, generation, now,
        ),
        None => remove(conditions, STALLED),
    }
}

/// Sets one condition; `lastTransitionTime` changes only when `status` does.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    generation: i64,
    now: &Time,
) {
    let message = crate::text::clean(message, 1024);
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != status {
                c.last_transition_time = now.clone();
            }
            c.status = status.to_string();
            c.reason = reason.to_string();
            c.message = message;
            c.observed_generation = Some(generation);
        }
        None => conditions.push(Condition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: reason.to_string(),
            message,
            observed_generation: Some(generation),
            last_transition_time: now.clone(),
        }),
    }
    // Never two conditions of one type, whatever was there before.
    let mut seen = std::collections::HashSet::new();
    conditions.retain(|c| seen.insert(c.type_.clone()));
}

fn remove(conditions: &mut Vec<Condition>, type_: &str) {
    conditions.retain(|c| c.type_ != type_);
}

/// The status of condition `type_`, if present.
pub fn status_of<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a str> {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn progressing_then_ready_then_stalled() {
        let mut c = Vec::new();
        apply(
            &mut c,
            Health::Progressing,
            "Dispatching",
            "sending",
            1,
            &at(10),
        );
        assert_eq!(status_of(&c, READY), Some("False"));
        assert_eq!(status_of(&c, RECONCILING), Some("True"));
        assert_eq!(status_of(&c, STALLED), None);

        apply(&mut c, Health::Ready, "Completed", "done", 1, &at(20));
        assert_eq!(status_of(&c, READY), Some("True"));
        assert_eq!(status_of(&c, RECONCILING), None);
        let ready = c.iter().find(|c| c.type_ == READY).unwrap();
        assert_eq!(ready.last_transition_time, at(20), "Ready flipped");

        apply(&mut c, Health::Stalled, "NonZeroExit", "exit 3", 2, &at(30));
        assert_eq!(status_of(&c, READY), Some("False"));
        assert_eq!(status_of(&c, STALLED), Some("True"));
        assert_eq!(
            c.iter()
                .find(|c| c.type_ == READY)
                .unwrap()
                .observed_generation,
            Some(2)
        );
    }

    #[test]
    fn transition_time_moves_only_on_status_flip() {
        let mut c = Vec::new();
        apply(&mut c, Health::Progressing, "Dispatching", "a", 1, &at(10));
        apply(&mut c, Health::Progressing, "Running", "b", 1, &at(20));
        let ready = c.iter().find(|c| c.type_ == READY).unwrap();
        assert_eq!(ready.last_transition_time, at(10));
        assert_eq!(ready.reason, "Running");
        assert_eq!(ready.message, "b");
    }

    #[test]
    fn never_two_conditions_of_one_type() {
        let dup = Condition {
            type_: READY.into(),
            status: "Unknown".into(),
            reason: "X".into(),
            message: String::new(),
            observed_generation: None,
            last_transition_time: at(1),
        };
        let mut c = vec![dup.clone(), dup];
        apply(&mut c, Health::Ready, "Completed", "done", 1, &at(5));
        assert_eq!(c.iter().filter(|c| c.type_ == READY).count(), 1);
    }

    #[test]
    fn long_messages_are_cut() {
        let mut c = Vec::new();
        apply(&mut c, Health::Stalled, "X", &"é".repeat(2000), 1, &at(1));
        assert!(c[0].message.len() <= 1024);
    }
}
