//! What a fleet run does next, from its frozen target list and what its children say: which
//! targets to launch now (under `maxConcurrency`, not once more than `maxErrors` failed, not while
//! suspended), the counts, and whether the run is over. Pure; the reconcile does the I/O.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use sha2::{Digest, Sha256};

use crate::api::Phase;
use crate::api::remote_command_set::{FailedTarget, MAX_FAILED_TARGETS, RemoteCommandSetSpec};

/// Which run a spec asks for: `template`, `targets` and `runId`, digested. Rate control
/// (`maxConcurrency`, `maxErrors`) and `suspend` are not part of it: changing them steers the run
/// in progress.
pub fn run_key(spec: &RemoteCommandSetSpec) -> String {
    let what = serde_json::json!([spec.template, spec.targets, spec.run_id]);
    hex(&Sha256::digest(what.to_string().as_bytes()))[..16].to_string()
}

/// The RemoteCommand of `target` in run `run_key` of set `set`: the same name every time it is
/// asked for (a create that finds it is a launch already done), unique per set, run and target,
/// and short enough for `<name>-output` and label values.
pub fn child_name(set: &str, run_key: &str, target: &str) -> String {
    let digest = hex(&Sha256::digest(
        format!("{set}\n{run_key}\n{}", target.to_ascii_lowercase()).as_bytes(),
    ));
    let prefix: String = set.chars().take(40).collect();
    let prefix = prefix.trim_end_matches(['-', '.']);
    format!("{prefix}-{}", &digest[..10])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `maxConcurrency` or `maxErrors` for `targets` targets: a number, or a percentage of the targets
/// (`round_up` for concurrency, at least one; down for errors, as a budget never grows by rounding).
pub fn limit(
    value: Option<&IntOrString>,
    default: i32,
    targets: usize,
    round_up: bool,
) -> Result<usize, String> {
    let n = match value {
        None => i64::from(default),
        Some(IntOrString::Int(n)) => i64::from(*n),
        Some(IntOrString::String(s)) => {
            let percent: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.trim().parse().ok())
                .filter(|p| (0..=100).contains(p))
                .ok_or_else(|| format!("{s:?} is neither a number nor a percentage (0-100%)"))?;
            let scaled = percent * targets as i64;
            if round_up {
                (scaled + 99) / 100
            } else {
                scaled / 100
            }
        }
    };
    if n < 0 {
        return Err(format!("{n} is negative"));
    }
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    Ok(if round_up { n.max(1) } else { n })
}

/// What a target's RemoteCommand says, as far as the run cares.
#[derive(Debug, Clone, PartialEq)]
pub struct Child {
    pub name: String,
    pub phase: Phase,
    pub reason: Option<String>,
    pub exit_code: Option<i32>,
}

/// The run's next step and its counts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Indexes into the target list to launch now, in order.
    pub launch: Vec<usize>,
    pub active: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub not_started: usize,
    /// More than `maxErrors` failed: nothing new is launched in this run.
    pub stopped: bool,
    /// Nothing runs and nothing more will be launched.
    pub done: bool,
    pub failed_targets: Vec<FailedTarget>,
}

/// The next step of a run over `targets`, whose launched children are `children` (by target
/// index; a child created but not seen yet counts as pending).
pub fn plan(
    targets: &[String],
    children: &BTreeMap<usize, Child>,
    max_concurrency: usize,
    max_errors: usize,
    suspend: bool,
) -> Plan {
    let mut p = Plan::default();
    for (i, child) in children {
        match child.phase {
            Phase::Succeeded => p.succeeded += 1,
            Phase::Failed => {
                p.failed += 1;
                if p.failed_targets.len() < MAX_FAILED_TARGETS {
                    p.failed_targets.push(FailedTarget {
                        resource_id: targets.get(*i).cloned().unwrap_or_default(),
                        name: child.name.clone(),
                        reason: child.reason.clone(),
                        exit_code: child.exit_code,
                    });
                }
            }
            Phase::Pending | Phase::Running => p.active += 1,
        }
    }
    p.stopped = p.failed > max_errors;
    let unlaunched = (0..targets.len()).filter(|i| !children.contains_key(i));
    if !p.stopped && !suspend {
        let room = max_concurrency.saturating_sub(p.active);
        p.launch = unlaunched.take(room).collect();
    }
    p.active += p.launch.len();
    p.not_started = targets.len() - children.len() - p.launch.len();
    p.done = p.active == 0 && (p.not_started == 0 || p.stopped);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks-{i}")).collect()
    }

    fn child(i: usize, phase: Phase) -> (usize, Child) {
        (
            i,
            Child {
                name: format!("c{i}"),
                phase,
                reason: (phase == Phase::Failed).then(|| "NonZeroExit".into()),
                exit_code: None,
            },
        )
    }

    #[test]
    fn limits_take_numbers_and_percentages() {
        let pct = |s: &str| Some(IntOrString::String(s.into()));
        assert_eq!(limit(None, 50, 500, true), Ok(50));
        assert_eq!(limit(Some(&IntOrString::Int(3)), 50, 500, true), Ok(3));
        assert_eq!(limit(pct("10%").as_ref(), 50, 25, true), Ok(3), "2.5 up");
        assert_eq!(limit(pct("10%").as_ref(), 0, 25, false), Ok(2), "2.5 down");
        assert_eq!(
            limit(pct("1%").as_ref(), 50, 5, true),
            Ok(1),
            "at least one"
        );
        assert_eq!(limit(Some(&IntOrString::Int(0)), 50, 5, true), Ok(1));
        assert_eq!(limit(None, 0, 5, false), Ok(0));
        assert!(limit(pct("ten").as_ref(), 0, 5, false).is_err());
        assert!(limit(pct("150%").as_ref(), 0, 5, false).is_err());
        assert!(limit(Some(&IntOrString::Int(-1)), 0, 5, false).is_err());
    }

    #[test]
    fn child_names_are_stable_distinct_and_short() {
        let a = child_name("patch", "k1", "/subscriptions/s/x/a");
        assert_eq!(
            a,
            child_name("patch", "k1", "/SUBSCRIPTIONS/s/x/A"),
            "ARM ids ignore case"
        );
        assert_ne!(
            a,
            child_name("patch", "k2", "/subscriptions/s/x/a"),
            "another run"
        );
        assert_ne!(
            a,
            child_name("patch", "k1", "/subscriptions/s/x/b"),
            "another target"
        );
        assert_ne!(
            a,
            child_name("patch2", "k1", "/subscriptions/s/x/a"),
            "another set"
        );
        let long = child_name(&"x".repeat(253), "k", "t");
        assert_eq!(long.len(), 51);
        assert!(child_name("a.-", "k", "t").starts_with("a-"));
    }

    #[test]
    fn launches_up_to_the_concurrency_in_order() {
        let t = targets(10);
        let p = plan(&t, &BTreeMap::new(), 3, 0, false);
        assert_eq!(p.launch, vec![0, 1, 2]);
        assert_eq!((p.active, p.not_started, p.done), (3, 7, false));
        let running: BTreeMap<_, _> = [
            child(0, Phase::Succeeded),
            child(1, Phase::Running),
            child(2, Phase::Pending),
        ]
        .into();
        let p = plan(&t, &running, 3, 0, false);
        assert_eq!(p.launch, vec![3], "one finished, one more");
        assert_eq!((p.succeeded, p.active, p.not_started), (1, 3, 6));
    }

    #[test]
    fn past_max_errors_nothing_new_starts_and_running_ones_finish() {
        let t = targets(10);
        let some: BTreeMap<_, _> = [
            child(0, Phase::Failed),
            child(1, Phase::Failed),
            child(2, Phase::Running),
        ]
        .into();
        let p = plan(&t, &some, 5, 1, false);
        assert!(p.stopped && p.launch.is_empty() && !p.done);
        assert_eq!((p.failed, p.active, p.not_started), (2, 1, 7));
        assert_eq!(p.failed_targets.len(), 2);
        let finished: BTreeMap<_, _> = [
            child(0, Phase::Failed),
            child(1, Phase::Failed),
            child(2, Phase::Succeeded),
        ]
        .into();
        let p = plan(&t, &finished, 5, 1, false);
        assert!(p.done, "stopped and nothing runs");
        let within: BTreeMap<_, _> = [child(0, Phase::Failed)].into();
        assert_eq!(
            plan(&t, &within, 2, 1, false).launch,
            vec![1, 2],
            "one failure is allowed"
        );
    }

    #[test]
    fn suspended_runs_launch_nothing_and_resume() {
        let t = targets(4);
        let p = plan(&t, &BTreeMap::new(), 2, 0, true);
        assert!(p.launch.is_empty() && !p.done);
        assert_eq!(p.not_started, 4);
        assert_eq!(plan(&t, &BTreeMap::new(), 2, 0, false).launch, vec![0, 1]);
    }

    #[test]
    fn a_run_is_done_when_every_target_finished() {
        let t = targets(2);
        let all: BTreeMap<_, _> = [child(0, Phase::Succeeded), child(1, Phase::Failed)].into();
        let p = plan(&t, &all, 2, 5, false);
        assert!(p.done && !p.stopped);
        assert_eq!((p.succeeded, p.failed, p.not_started), (1, 1, 0));
        assert!(plan(&[], &BTreeMap::new(), 2, 0, false).done, "no targets");
    }

    #[test]
    fn run_keys_ignore_rate_control_and_suspend() {
        let spec: RemoteCommandSetSpec = serde_json::from_value(serde_json::json!({
            "template": {"command": "true"},
            "targets": {"resourceIds": ["/subscriptions/s/resourceGroups/r/providers/Microsoft.ContainerService/managedClusters/a"]},
        }))
        .unwrap();
        let mut steered = spec.clone();
        steered.max_concurrency = Some(IntOrString::Int(1));
        steered.suspend = true;
        assert_eq!(run_key(&spec), run_key(&steered));
        let mut rerun = spec.clone();
        rerun.run_id = Some("2".into());
        assert_ne!(run_key(&spec), run_key(&rerun));
    }
}
